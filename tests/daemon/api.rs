//! Every route of the HTTP API.

use serde_json::json;

use crate::harness::Daemon;

#[test]
fn health_needs_no_token_and_unknown_routes_are_json_404() {
    let d = Daemon::start();
    let a = d.request("GET", "/v1/health", None, None);
    assert_eq!(a.status, 200);
    assert_eq!(a.json()["status"], "ok");
    let a = d.get("/v1/nope");
    assert_eq!(a.status, 404);
    assert_eq!(a.json()["code"], "no_route");
}

#[test]
fn bad_taskspec_is_400_with_the_cli_field_messages() {
    let d = Daemon::start();
    let a = d.post(
        "/v1/runs",
        json!({ "taskspec": d.spec("bad", "  goal: g\n  max_attempts: 0\n  colour: red\n") }),
    );
    assert_eq!(a.status, 400, "{a:?}");
    let v = a.json();
    assert_eq!(v["code"], "invalid_taskspec");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("nothing was run or recorded")
    );
    let errors = v["errors"].as_array().unwrap();
    assert!(!errors.is_empty());
    assert!(
        errors
            .iter()
            .all(|e| e["fix"].is_string() && e["field"].is_string()),
        "{v}"
    );
    // The same text the CLI prints for the same file.
    let path = d.sb.spec(
        "bad.yaml",
        &d.spec("bad", "  goal: g\n  max_attempts: 0\n  colour: red\n"),
    );
    let cli = d.sb.codencer(&["run", path.to_str().unwrap()]);
    assert_eq!(cli.code, Some(2));
    for e in errors {
        assert!(
            cli.stderr.contains(e["message"].as_str().unwrap()),
            "{cli}\n{e}"
        );
    }
    let a = d.post("/v1/runs", json!({ "nope": 1 }));
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["code"], "bad_request");
    assert!(
        d.get("/v1/runs").json()["runs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn runs_steps_attempts_artifacts_validations_routes() {
    let d = Daemon::start();
    let (run, steps) = d.submit(
        &d.spec(
            "routes",
            "  steps:\n    - goal: one\n      command: 'echo one > one.txt'\n      validators: ['test -f one.txt']\n    - goal: two\n      command: 'cat one.txt > two.txt'\n",
        ),
        false,
    );
    assert_eq!(steps.len(), 2);
    let result = d.wait_step(&run, &steps[1]);
    assert_eq!(result["status"], "passed", "{result}");
    let view = d.wait_run(&run, 60);
    assert_eq!(view["run"]["status"], "passed");
    assert_eq!(view["open"], false);
    assert_eq!(view["run"]["actor"], "admin");

    // list, filters, paging
    let list = d.get("/v1/runs?status=passed&limit=1").json();
    assert_eq!(list["runs"][0]["id"], run.as_str());
    assert_eq!(list["next_before"], run.as_str());
    assert_eq!(d.get("/v1/runs?status=failed").json()["runs"], json!([]));
    assert_eq!(d.get("/v1/runs?status=bogus").status, 400);
    // prefix ids work
    assert_eq!(
        d.get(&format!("/v1/runs/{}", &run[..20])).json()["run"]["id"],
        run.as_str()
    );
    assert_eq!(d.get("/v1/runs/NOSUCHRUN").status, 404);

    let res = d.get(&format!("/v1/runs/{run}/result")).json();
    assert_eq!(res["status"], "passed");
    assert_eq!(res["steps"].as_array().unwrap().len(), 2);
    let step = d.get(&format!("/v1/runs/{run}/steps/{}", steps[0])).json();
    assert_eq!(step["step"]["index"], 1);
    let step_by_index = d.get(&format!("/v1/runs/{run}/steps/2")).json();
    assert_eq!(step_by_index["step"]["id"], steps[1].as_str());
    let sr = d
        .get(&format!("/v1/runs/{run}/steps/{}/result", steps[0]))
        .json();
    assert_eq!(sr["files_changed"], json!(["one.txt"]));

    let attempts = d.get(&format!("/v1/runs/{run}/attempts")).json();
    let attempts = attempts["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    let attempt = d
        .get(&format!(
            "/v1/attempts/{}",
            attempts[0]["id"].as_str().unwrap()
        ))
        .json();
    assert_eq!(attempt["attempt"]["status"], "passed");
    let vals = d.get(&format!("/v1/runs/{run}/validations")).json();
    assert_eq!(vals["validations"][0]["status"], "passed");

    let arts = d.get(&format!("/v1/runs/{run}/artifacts")).json();
    let arts = arts["artifacts"].as_array().unwrap();
    let diff = arts.iter().find(|a| a["kind"] == "diff").unwrap();
    let id = diff["id"].as_str().unwrap();
    let meta = d.get(&format!("/v1/artifacts/{id}")).json();
    assert_eq!(meta["sha256"], diff["sha256"]);
    let content = d.get(&format!("/v1/artifacts/{id}/content"));
    assert_eq!(content.status, 200);
    assert!(
        content.head.to_ascii_lowercase().contains("text/x-diff"),
        "{}",
        content.head
    );
    assert!(content.body.contains("one.txt"), "{}", content.body);
    assert_eq!(content.body.len() as u64, diff["bytes"].as_u64().unwrap());
    assert_eq!(d.get("/v1/artifacts/nope").status, 404);

    // Finished runs cannot be cancelled, resumed or extended.
    let a = d.post(&format!("/v1/runs/{run}/cancel"), json!({}));
    assert_eq!(
        (a.status, a.json()["code"].clone()),
        (409, json!("run_finished"))
    );
    assert_eq!(
        d.post(&format!("/v1/runs/{run}/resume"), json!({})).status,
        409
    );
    let a = d.post(
        &format!("/v1/runs/{run}/steps"),
        json!({ "step": "goal: more" }),
    );
    assert_eq!(a.status, 409, "{a:?}");
    let q = d.get("/v1/queue").json();
    assert_eq!(q["limit"], 4);
}

#[test]
fn cancel_a_running_run_and_resume_a_waiting_one() {
    let d = Daemon::start();
    let (run, steps) = d.submit(
        &d.spec("slow", "  goal: wait\n  command: 'sleep 30'\n"),
        false,
    );
    // Wait until its attempt runs.
    for _ in 0..100 {
        if d.get(&format!("/v1/runs/{run}/attempts")).json()["attempts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // A unique prefix is enough; the answer names the whole id.
    let a = d.post(&format!("/v1/runs/{}/cancel", &run[..20]), json!({}));
    assert_eq!(a.status, 202, "{a:?}");
    assert_eq!(a.json()["run_id"], run.as_str(), "{a:?}");
    let view = d.wait_run(&run, 30);
    assert_eq!(view["run"]["status"], "cancelled");
    let result = d.wait_step(&run, &steps[0]);
    assert_eq!(result["status"], "cancelled", "{result}");
}

#[test]
fn gates_list_get_approve_reject_and_resume() {
    let d = Daemon::start();
    let body = "  goal: g\n  command: 'mkdir -p db/migrations && echo x > db/migrations/001.sql'\n";
    let (approved_run, a_steps) = d.submit(&d.spec("approve", body), false);
    let (rejected_run, r_steps) = d.submit(&d.spec("reject", body), false);
    assert_eq!(
        d.wait_step(&approved_run, &a_steps[0])["status"],
        "awaiting_approval"
    );
    assert_eq!(
        d.wait_step(&rejected_run, &r_steps[0])["status"],
        "awaiting_approval"
    );
    let pending = d.get("/v1/gates?status=pending").json();
    assert_eq!(pending["gates"].as_array().unwrap().len(), 2, "{pending}");
    let gate_of = |run: &str| {
        d.get(&format!("/v1/gates?run={run}&status=pending")).json()["gates"][0]["id"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let g1 = gate_of(&approved_run);
    let g2 = gate_of(&rejected_run);
    assert_eq!(d.get(&format!("/v1/gates/{g1}")).json()["name"], "approval");

    // A rejection needs a reason.
    let a = d.post(&format!("/v1/gates/{g2}/reject"), json!({}));
    assert_eq!(a.status, 400, "{a:?}");

    let a = d.post(
        &format!("/v1/gates/{g1}/approve"),
        json!({ "reason": "fine" }),
    );
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.json()["status"], "approved");
    assert_eq!(a.json()["decided_by"], "admin");
    let a = d.post(
        &format!("/v1/gates/{g2}/reject"),
        json!({ "reason": "no migrations today" }),
    );
    assert_eq!(a.json()["status"], "rejected");
    // Deciding twice is a conflict.
    assert_eq!(
        d.post(&format!("/v1/gates/{g1}/approve"), json!({})).status,
        409
    );

    assert_eq!(d.wait_run(&approved_run, 30)["run"]["status"], "passed");
    let rejected = d.wait_run(&rejected_run, 30);
    assert_eq!(rejected["run"]["status"], "failed");
    let step = d
        .get(&format!("/v1/runs/{rejected_run}/steps/1/result"))
        .json();
    assert!(
        step["reason"]
            .as_str()
            .unwrap()
            .contains("no migrations today"),
        "{step}"
    );
    // resume of an open-ended run kicks it (nothing left here: 409 for finished).
    assert_eq!(
        d.post(&format!("/v1/runs/{approved_run}/resume"), json!({}))
            .status,
        409
    );
}

#[test]
fn tokens_routes_create_list_revoke() {
    let d = Daemon::start();
    let a = d.post(
        "/v1/tokens",
        json!({ "name": "bot", "scopes": ["runs:read"] }),
    );
    assert_eq!(a.status, 201, "{a:?}");
    let v = a.json();
    let secret = v["token"].as_str().unwrap().to_string();
    let id = v["record"]["id"].as_str().unwrap().to_string();
    assert_eq!(
        d.request("GET", "/v1/runs", Some(&secret), None).status,
        200
    );
    let list = d.get("/v1/tokens").json();
    let names: Vec<_> = list["tokens"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("admin"), json!("bot")]);
    assert!(!d.get("/v1/tokens").body.contains(&secret));
    assert_eq!(
        d.post(
            "/v1/tokens",
            json!({ "name": "bot", "scopes": ["runs:read"] })
        )
        .status,
        400
    );
    assert_eq!(
        d.post("/v1/tokens", json!({ "name": "x", "scopes": ["root"] }))
            .status,
        400
    );
    let a = d.request("DELETE", &format!("/v1/tokens/{id}"), Some(&d.admin), None);
    assert_eq!(a.status, 200, "{a:?}");
    assert!(a.json()["revoked_at"].is_string());
    assert_eq!(
        d.request("GET", "/v1/runs", Some(&secret), None).status,
        401
    );
}

#[test]
fn events_stream_resumes_from_a_sequence_number() {
    let d = Daemon::start();
    let (run, steps) = d.submit(
        &d.spec("sse", "  goal: g\n  command: 'echo x > x.txt'\n"),
        false,
    );
    d.wait_step(&run, &steps[0]);
    d.wait_run(&run, 30);
    let all = d.sse(&format!("/v1/runs/{run}/events"), 2, None);
    assert!(all.contains("event: run.created"), "{all}");
    assert!(all.contains("event: run.completed"), "{all}");
    let ids: Vec<u64> = all
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|s| s.trim().parse().unwrap())
        .collect();
    assert!(ids.len() > 5, "{all}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let from = ids[3];
    let rest = d.sse(&format!("/v1/runs/{run}/events?after={from}"), 2, None);
    let rest_ids: Vec<u64> = rest
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .map(|s| s.trim().parse().unwrap())
        .collect();
    assert_eq!(rest_ids, ids[4..].to_vec());
    // Last-Event-ID (a reconnecting EventSource) does the same.
    let again = d.sse(&format!("/v1/events?run={run}"), 2, Some(from));
    assert!(!again.contains(&format!("id: {from}\n")), "{again}");
    assert!(again.contains(&format!("id: {}\n", ids[4])), "{again}");
    // Live: a new run's events arrive on an open stream.
    let last = *ids.last().unwrap();
    let url = format!("/v1/events?after={last}");
    let (base, token) = (d.url.clone(), d.admin.clone());
    let watcher = std::thread::spawn(move || crate::harness::sse(&base, &token, &url, 8, None));
    std::thread::sleep(std::time::Duration::from_millis(500));
    let (run2, _) = d.submit(&d.spec("live", "  goal: g\n  command: 'true'\n"), false);
    let text = watcher.join().unwrap();
    assert!(text.contains(&run2), "{text}");
}

#[test]
fn artifacts_come_from_the_database_or_a_file_and_a_lost_file_is_410() {
    let d = Daemon::start();
    // 100,000 bytes of stdout: over the 64 KiB kept in the database, so a file blob.
    let (run, steps) = d.submit(
        &d.spec(
            "blobs",
            "  goal: g\n  command: 'head -c 100000 /dev/zero | tr \"\\\\0\" x; echo small > small.txt'\n",
        ),
        false,
    );
    assert_eq!(d.wait_step(&run, &steps[0])["status"], "passed");
    let arts = d.get(&format!("/v1/runs/{run}/artifacts")).json();
    let arts = arts["artifacts"].as_array().unwrap().clone();
    let find = |kind: &str| arts.iter().find(|a| a["kind"] == kind).unwrap().clone();
    let blob_file = |a: &serde_json::Value| {
        let sha = a["sha256"].as_str().unwrap().to_owned();
        d.sb.state().join("blobs/sha256").join(&sha[..2]).join(&sha)
    };

    let diff = find("diff");
    assert!(!blob_file(&diff).exists(), "a small blob is not a file");
    let content = d.get(&format!(
        "/v1/artifacts/{}/content",
        diff["id"].as_str().unwrap()
    ));
    assert_eq!(content.status, 200);
    assert!(content.body.contains("small.txt"), "{}", content.body);

    let stdout = find("executor_stdout");
    assert_eq!(stdout["bytes"], 100_000);
    assert!(blob_file(&stdout).is_file(), "a large blob is a file");
    let path = format!("/v1/artifacts/{}/content", stdout["id"].as_str().unwrap());
    let content = d.get(&path);
    assert_eq!(content.status, 200);
    assert_eq!(content.body.len(), 100_000);
    assert!(content.body.bytes().all(|b| b == b'x'));

    std::fs::remove_file(blob_file(&stdout)).unwrap();
    let lost = d.get(&path);
    assert_eq!(
        (lost.status, lost.json()["code"].clone()),
        (410, json!("blob_missing"))
    );
}
