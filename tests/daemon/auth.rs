//! Authentication and authorization: no token, unknown token, wrong scope, revoked token;
//! every denial recorded; events carry the token's name as actor.

use serde_json::json;

use crate::harness::{Daemon, create_token};

#[test]
fn missing_unknown_and_revoked_tokens_get_401_and_an_audit_event() {
    let d = Daemon::start();
    let a = d.request("GET", "/v1/runs", None, None);
    assert_eq!(a.status, 401);
    assert_eq!(a.json()["code"], "unauthorized");
    assert!(
        a.head
            .to_ascii_lowercase()
            .contains("www-authenticate: bearer")
    );
    let a = d.request("GET", "/v1/runs", Some("cdt_nonsense"), None);
    assert_eq!(a.status, 401);
    let a = d.request("POST", "/mcp", None, Some(&json!({})));
    assert_eq!(a.status, 401, "the MCP endpoint needs a token too");

    let reader = create_token(&d.sb, "reader", &["runs:read"]);
    assert_eq!(
        d.request("GET", "/v1/runs", Some(&reader), None).status,
        200
    );
    let out = d.sb.ctl(&["tokens", "revoke", "reader"]);
    assert_eq!(out.code, Some(0), "{out}");
    let a = d.request("GET", "/v1/runs", Some(&reader), None);
    assert_eq!(a.status, 401);
    assert!(a.json()["message"].as_str().unwrap().contains("revoked"));

    let denied: Vec<_> = d
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "audit.denied")
        .collect();
    assert_eq!(denied.len(), 4, "{denied:?}");
    assert!(denied.iter().all(|e| e["actor"] == "anonymous"));
    assert_eq!(denied[0]["result"]["route"], "GET /v1/runs");
    assert_eq!(denied[2]["result"]["route"], "POST /mcp");
}

#[test]
fn a_token_without_the_scope_gets_403_recorded() {
    let d = Daemon::start();
    let reader = create_token(&d.sb, "reader", &["runs:read"]);
    let spec = d.spec("t", "  goal: g\n  command: 'true'\n");
    let a = d.request(
        "POST",
        "/v1/runs",
        Some(&reader),
        Some(&json!({ "taskspec": spec })),
    );
    assert_eq!(a.status, 403, "{a:?}");
    assert_eq!(a.json()["code"], "forbidden");
    assert!(a.json()["message"].as_str().unwrap().contains("runs:write"));
    assert_eq!(
        d.request("GET", "/v1/tokens", Some(&reader), None).status,
        403
    );
    let artifacts_only = create_token(&d.sb, "art", &["artifacts:read"]);
    assert_eq!(
        d.request("GET", "/v1/runs", Some(&artifacts_only), None)
            .status,
        403
    );
    let denied: Vec<_> = d
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "audit.denied")
        .collect();
    assert_eq!(denied.len(), 3);
    assert_eq!(denied[0]["actor"], "reader");
    assert!(
        d.get("/v1/runs").json()["runs"]
            .as_array()
            .unwrap()
            .is_empty()
    );
}

#[test]
fn events_a_token_causes_carry_its_name() {
    let d = Daemon::start();
    let planner = create_token(&d.sb, "planner-7", &["runs:write", "runs:read"]);
    let spec = d.spec("t", "  goal: g\n  command: 'echo x > x.txt'\n");
    let a = d.request(
        "POST",
        "/v1/runs",
        Some(&planner),
        Some(&json!({ "taskspec": spec })),
    );
    assert_eq!(a.status, 201, "{a:?}");
    let run = a.json()["run_id"].as_str().unwrap().to_string();
    d.wait_run(&run, 60);
    let events: Vec<_> = d
        .audit()
        .into_iter()
        .filter(|e| e["run_id"] == run.as_str())
        .collect();
    let actors: std::collections::BTreeSet<_> = events
        .iter()
        // The policy actor records its own decisions (and the policy it resolved).
        .filter(|e| e["event"] != "policy.decided" && e["result"]["kind"] != "policy")
        .map(|e| e["actor"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        actors.into_iter().collect::<Vec<_>>(),
        vec!["planner-7".to_string()],
        "{events:?}"
    );
    let tokens = d
        .audit()
        .into_iter()
        .filter(|e| e["event"] == "token.created")
        .count();
    assert_eq!(tokens, 2);
}
