//! Human output: live progress from the event stream, result summaries, the run tree, gc.

use std::process::ExitCode;

use codencer_store::{Event, EventBody, RunTree};
use tokio::sync::broadcast;

use super::common::*;
use crate::result::RunResult;
use crate::text::serde_name as name;

/// Prints one line per meaningful event to stderr until the channel closes.
pub async fn progress(mut events: broadcast::Receiver<Event>, step_ids: Vec<String>) {
    loop {
        match events.recv().await {
            Ok(event) => {
                if let Some(line) = progress_line(&event, &step_ids) {
                    eprintln!("{line}");
                }
            }
            Err(broadcast::error::RecvError::Lagged(n)) => eprintln!("  ({n} events not shown)"),
            Err(broadcast::error::RecvError::Closed) => break,
        }
    }
}

pub(super) fn progress_line(event: &Event, steps: &[String]) -> Option<String> {
    Some(match &event.body {
        EventBody::StepStarted { base_commit, .. } => format!(
            "step {} started from {}",
            step_of(event, steps),
            short(base_commit)
        ),
        EventBody::AttemptStarted {
            number,
            executor,
            branch,
            ..
        } => format!("  attempt {number} · {executor} · branch {branch}"),
        EventBody::AttemptCompleted {
            status,
            reason,
            files_changed,
            insertions,
            deletions,
            duration_ms,
            ..
        } => format!(
            "  attempt {}: {} files changed (+{insertions} -{deletions}) in {} ms{}",
            status.as_str(),
            files_changed.len(),
            duration_ms,
            reason
                .as_ref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        ),
        EventBody::ValidationCompleted {
            name,
            status,
            exit_code,
            duration_ms,
            ..
        } => format!(
            "    validator {name}: {}{} ({duration_ms} ms)",
            serde_json::to_value(status).ok()?.as_str()?,
            exit_code.map(|c| format!(", exit {c}")).unwrap_or_default()
        ),
        EventBody::GateOpened { name, reason, .. } => {
            format!("    gate {name}: pending — {reason}")
        }
        EventBody::StepCompleted { status, reason, .. } => format!(
            "step {}: {}{}",
            step_of(event, steps),
            status.as_str(),
            reason
                .as_ref()
                .map(|r| format!(" — {r}"))
                .unwrap_or_default()
        ),
        EventBody::StepAwaitingApproval { reason, .. } => format!(
            "step {}: awaiting approval — {reason}",
            step_of(event, steps)
        ),
        EventBody::SupervisorFailure { actor, error } => format!("  ! {actor} failed: {error}"),
        _ => return None,
    })
}

fn step_of(event: &Event, steps: &[String]) -> String {
    let index = event
        .step_id
        .as_ref()
        .and_then(|id| steps.iter().position(|s| s == id));
    match index {
        Some(i) => format!("{}/{}", i + 1, steps.len()),
        None => "?".to_string(),
    }
}

fn short(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// The closing lines of `codencer run` without `--json`.
pub fn result_summary(result: &RunResult) {
    println!("run {} {}", result.run_id, result.status.as_str());
    for step in &result.steps {
        println!(
            "  step {} {} after {} attempt(s): {} file(s) changed (+{} -{}) on {}",
            step.step,
            step.status.as_str(),
            step.attempts,
            step.files_changed.len(),
            step.diff.insertions,
            step.diff.deletions,
            step.branch.as_deref().unwrap_or("-"),
        );
        for v in &step.validations {
            println!("    validator {}: {}", v.name, name(&v.status));
        }
        if let Some(reason) = &step.reason {
            println!("    reason: {reason}");
        }
    }
}

/// `orchestratorctl runs tree`: the whole record of a run, drawn.
pub fn draw_tree(tree: &RunTree) -> String {
    let mut out = format!(
        "run {} {} [{}] executor={} workspace={}\n",
        tree.run.id,
        tree.run.name,
        tree.run.status.as_str(),
        tree.run.executor,
        tree.run.workspace
    );
    for a in &tree.artifacts {
        out.push_str(&format!(
            "├─ artifact {} {} {} bytes\n",
            a.id,
            name(&a.kind),
            a.bytes
        ));
    }
    let steps = tree.steps.len();
    for (si, s) in tree.steps.iter().enumerate() {
        let last_step = si + 1 == steps;
        let (branch, pad) = if last_step {
            ("└─", "   ")
        } else {
            ("├─", "│  ")
        };
        out.push_str(&format!(
            "{branch} step {} [{}] {}\n",
            s.step.index,
            s.step.status.as_str(),
            first_line(&s.step.goal)
        ));
        for a in &s.artifacts {
            out.push_str(&format!(
                "{pad}├─ artifact {} {} {} bytes\n",
                a.id,
                name(&a.kind),
                a.bytes
            ));
        }
        let attempts = s.attempts.len();
        for (ai, at) in s.attempts.iter().enumerate() {
            let last = ai + 1 == attempts;
            let (b2, p2) = if last {
                ("└─", "   ")
            } else {
                ("├─", "│  ")
            };
            out.push_str(&format!(
                "{pad}{b2} attempt {} [{}] {} files (+{} -{}){}\n",
                at.attempt.number,
                at.attempt.status.as_str(),
                at.attempt.files_changed.len(),
                at.attempt.insertions,
                at.attempt.deletions,
                at.attempt
                    .reason
                    .as_ref()
                    .map(|r| format!(" — {r}"))
                    .unwrap_or_default()
            ));
            for a in &at.artifacts {
                out.push_str(&format!(
                    "{pad}{p2}├─ artifact {} {}{} {} bytes\n",
                    a.id,
                    name(&a.kind),
                    a.name
                        .as_ref()
                        .map(|n| format!(" ({n})"))
                        .unwrap_or_default(),
                    a.bytes
                ));
            }
            for v in &at.validations {
                out.push_str(&format!(
                    "{pad}{p2}├─ validation {} [{}] exit={}\n",
                    v.name,
                    name(&v.status),
                    v.exit_code
                        .map_or_else(|| "-".to_string(), |c| c.to_string())
                ));
            }
            for g in &at.gates {
                out.push_str(&format!(
                    "{pad}{p2}└─ gate {} [{}] {}\n",
                    g.name,
                    name(&g.status),
                    g.reason.clone().unwrap_or_default()
                ));
            }
        }
    }
    out
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or("")
}

/// `codencer gc`: removes the worktrees (and scratch dirs) of finished runs.
pub fn gc(state: &std::path::Path, branches: bool, json: bool) -> ExitCode {
    let store = match open_store(state) {
        Ok(store) => store,
        Err(err) => {
            eprintln!("error: {err}");
            return exit(EXIT_INFRASTRUCTURE);
        }
    };
    block_on(async {
        match crate::engine::gc(&store, state, branches).await {
            Ok(report) => {
                super::client::print_json_or(json, &report, || {
                    println!(
                        "removed {} worktree(s), {} branch(es), kept {} unfinished run(s)",
                        report.worktrees_removed, report.branches_deleted, report.runs_kept
                    );
                });
                exit(EXIT_PASSED)
            }
            Err(err) => {
                eprintln!("error: gc failed: {}", error_chain(&err));
                exit(EXIT_INFRASTRUCTURE)
            }
        }
    })
}
