//! What must hold after every recovery: the record complete, consistent and verifiable,
//! and every executor write either on its attempt branch or recorded as lost with a reason.

use std::path::Path;
use std::process::Command;

use codencer_tests::Sandbox;
use rusqlite::{Connection, OpenFlags};

/// Files the scripted executor appends numbered lines to.
pub const FILES: [&str; 2] = ["chaos-a.txt", "chaos-b.txt"];

/// Problems found, by kind.
#[derive(Debug, Default)]
pub struct Findings {
    /// Executor writes missing from the attempt branch without a recorded reason.
    pub lost: Vec<String>,
    /// Writes missing, with `lost-by-kill` and the reason in the attempt's record.
    pub recorded_lost: u64,
    /// Anything else wrong with the record, the processes or the mounts.
    pub inconsistent: Vec<String>,
}

impl Findings {
    pub fn absorb(&mut self, other: Findings) {
        self.lost.extend(other.lost);
        self.recorded_lost += other.recorded_lost;
        self.inconsistent.extend(other.inconsistent);
    }
}

fn db(sb: &Sandbox) -> Connection {
    Connection::open_with_flags(
        sb.state().join("codencer.db"),
        OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .expect("open the store read-only")
}

/// The record as a whole: chain and blobs (`store verify`), no attempt left unfinished.
pub fn record(sb: &Sandbox, when: &str) -> Findings {
    let mut f = Findings::default();
    let verify = sb.codencer(&["store", "verify", "--json"]);
    if verify.code != Some(0) {
        f.inconsistent
            .push(format!("{when}: store verify failed: {verify}"));
    }
    let conn = db(sb);
    // Attempts started and never completed, straight from the events.
    let unfinished: i64 = conn
        .query_row(
            "SELECT count(*) FROM events AS s
             WHERE s.kind = 'attempt.started'
               AND NOT EXISTS (SELECT 1 FROM events AS c
                               WHERE c.kind = 'attempt.completed'
                                 AND c.attempt_id = s.attempt_id)",
            [],
            |r| r.get(0),
        )
        .expect("count");
    if unfinished != 0 {
        f.inconsistent
            .push(format!("{when}: {unfinished} attempt(s) left non-terminal"));
    }
    // Every artifact's blob is there with its recorded size and digest, wherever the store
    // keeps it (database or file): `store verify` checks exactly that, once per distinct blob.
    let distinct: i64 = conn
        .query_row(
            "SELECT count(*) FROM (
                 SELECT DISTINCT json_extract(payload, '$.sha256'),
                                 json_extract(payload, '$.bytes')
                 FROM events WHERE kind = 'artifact.recorded')",
            [],
            |r| r.get(0),
        )
        .expect("count artifacts");
    match serde_json::from_str::<serde_json::Value>(&verify.stdout) {
        Ok(report) => {
            if report["blobs_checked"].as_i64() != Some(distinct) {
                f.inconsistent.push(format!(
                    "{when}: store verify checked {} blob(s) of {distinct}",
                    report["blobs_checked"]
                ));
            }
            for problem in report["blob_problems"].as_array().into_iter().flatten() {
                f.inconsistent.push(format!(
                    "{when}: blob {} of artifact {}: {}",
                    problem["sha256"], problem["artifact_id"], problem["problem"]
                ));
            }
        }
        Err(err) => f.inconsistent.push(format!(
            "{when}: store verify printed no JSON ({err}): {verify}"
        )),
    }
    f
}

/// Projections rebuilt from the events equal the live ones.
pub fn projections(sb: &Sandbox, when: &str) -> Findings {
    let mut f = Findings::default();
    let out = sb.codencer(&["store", "rebuild", "--json"]);
    let ok = serde_json::from_str::<serde_json::Value>(&out.stdout)
        .ok()
        .and_then(|v| v["ok"].as_bool());
    if ok != Some(true) {
        f.inconsistent
            .push(format!("{when}: projections differ from the events: {out}"));
    }
    f
}

/// One finished run: terminal; its killed attempts carry the signal; every write found in
/// an attempt's worktree is in the attempt's commit (or recorded lost); nothing left running.
pub fn run(sb: &Sandbox, run_id: &str, markers: &[String]) -> Findings {
    let mut f = Findings::default();
    let tree = sb.tree(run_id);
    let status = tree["run"]["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    if !matches!(status.as_str(), "passed" | "failed" | "cancelled") {
        f.inconsistent
            .push(format!("run {run_id} ended non-terminal: {status}"));
    }
    let rows = tree["steps"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|step| step["attempts"].as_array().into_iter().flatten())
        .map(|a| {
            let text = |key: &str| a[key].as_str().map(str::to_owned);
            (
                a["number"].as_i64().unwrap_or_default(),
                text("status").unwrap_or_default(),
                a["signal"].as_i64(),
                text("reason"),
                text("worktree").unwrap_or_default(),
                text("commit"),
            )
        });
    for (number, status, signal, reason, worktree, commit) in rows {
        let reason = reason.unwrap_or_default();
        let at = format!("run {run_id} attempt {number} ({status}: {reason})");
        if status == "killed" && signal.is_none() && !reason.contains("cancelled") {
            f.inconsistent
                .push(format!("{at}: killed without a signal"));
        }
        for file in FILES {
            let path = Path::new(&worktree).join(file);
            let Ok(found) = std::fs::read(&path) else {
                continue;
            };
            let committed = commit.as_deref().and_then(|c| show(&sb.repo(), c, file));
            if committed.as_deref() == Some(found.as_slice()) {
                continue;
            }
            if reason.contains("lost-by-kill") {
                f.recorded_lost += 1;
            } else {
                f.lost.push(format!(
                    "{at}: {file} has {} bytes in the worktree, {} on the branch",
                    found.len(),
                    committed.map_or("none".to_string(), |c| c.len().to_string())
                ));
            }
        }
    }
    for marker in markers {
        let left = crate::procs::with_marker(marker);
        if !left.is_empty() {
            f.inconsistent
                .push(format!("run {run_id}: processes left behind: {left:?}"));
        }
    }
    f
}

/// `git show COMMIT:FILE`, if the commit has the file.
fn show(repo: &Path, commit: &str, file: &str) -> Option<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(repo)
        .args(["show", &format!("{commit}:{file}")])
        .output()
        .ok()?;
    out.status.success().then_some(out.stdout)
}

/// Mounts mentioning `dir` in this (the host's) mount namespace.
pub fn mounts_under(dir: &Path) -> Vec<String> {
    let needle = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(&needle))
        .map(str::to_owned)
        .collect()
}
