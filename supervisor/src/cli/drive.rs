//! Driving a run in the foreground: progress, SIGINT/SIGTERM drain (tokio's `signal`
//! module), the result and the documented exit code.

use std::process::ExitCode;
use std::time::Duration;

use codencer_store::RunStatus;

use super::common::*;
use super::render;
use crate::RunOutcome;
use crate::engine::Engine;
use crate::result::RunResult;
use crate::supervisor_error::SupervisorError;

/// Runs `execution` to its end with progress and signal handling (tokio's `signal`
/// module), then prints the result and turns the outcome into the documented exit code.
///
/// The first SIGINT or SIGTERM drains: no new attempt or step starts, and a running
/// attempt has `grace` to end on its own before it is killed; a second signal kills at once.
pub(super) async fn drive(
    engine: &Engine,
    run_id: String,
    step_ids: Vec<String>,
    json: bool,
    grace: Duration,
    execution: impl std::future::Future<Output = Result<RunOutcome, SupervisorError>>,
) -> ExitCode {
    let progress =
        (!json).then(|| tokio::spawn(render::progress(engine.recorder().subscribe(), step_ids)));
    tokio::pin!(execution);
    let mut signals = 0u32;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok();
    let deadline = tokio::time::sleep(Duration::MAX / 4);
    tokio::pin!(deadline);
    let outcome = loop {
        let name = tokio::select! {
            outcome = &mut execution => break outcome,
            Some(()) = recv(&mut int), if signals < 2 => "interrupted",
            Some(()) = recv(&mut term), if signals < 2 => "terminated",
            () = &mut deadline, if signals == 1 => {
                eprintln!("grace period over: killing the running attempt (its worktree and record are kept)");
                signals = 2;
                engine.cancel();
                continue;
            }
        };
        signals += 1;
        if signals == 1 {
            eprintln!(
                "{name}: no new attempt starts; the running one has {}s to finish, then it is stopped (its worktree and record are kept)",
                grace.as_secs()
            );
            engine.drain();
            deadline.as_mut().reset(tokio::time::Instant::now() + grace);
        } else {
            eprintln!("{name} again: stopping the attempt now (its worktree and record are kept)");
            engine.cancel();
        }
    };
    let interrupted = signals > 0;
    if let Some(progress) = progress {
        progress.abort();
    }
    let tree = engine.recorder().store().run_tree(&run_id);
    let result = match tree {
        Ok(Some(tree)) => RunResult::from_tree(&tree),
        Ok(None) => {
            eprintln!("error: run {run_id} is missing from the store");
            return exit(EXIT_INFRASTRUCTURE);
        }
        Err(err) => {
            eprintln!("error: cannot read run {run_id}: {}", error_chain(&err));
            return exit(EXIT_INFRASTRUCTURE);
        }
    };
    if json {
        match serde_json::to_string_pretty(&result) {
            Ok(text) => println!("{text}"),
            Err(err) => eprintln!("error: cannot encode the result: {err}"),
        }
    } else {
        render::result_summary(&result);
    }
    // The process exits next, its runtime and store handles not dropped.
    engine.recorder().store().checkpoint_before_exit();
    match outcome {
        Err(err) => {
            eprintln!("error: {}", error_chain(&err));
            exit(EXIT_INFRASTRUCTURE)
        }
        Ok(outcome) if outcome.infrastructure.is_some() => {
            eprintln!(
                "error: infrastructure failure: {}",
                outcome.infrastructure.unwrap_or_default()
            );
            exit(EXIT_INFRASTRUCTURE)
        }
        Ok(outcome) => match outcome.status {
            RunStatus::Passed => exit(EXIT_PASSED),
            RunStatus::AwaitingApproval => exit(EXIT_AWAITING_APPROVAL),
            RunStatus::Cancelled => exit(EXIT_INTERRUPTED),
            _ if interrupted => exit(EXIT_INTERRUPTED),
            _ => exit(EXIT_FAILED),
        },
    }
}

/// The next delivery of `signal`, or never when it could not be installed.
async fn recv(signal: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match signal.as_mut() {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}
