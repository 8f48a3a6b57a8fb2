//! Closing attempts that their supervisor (or their StepActor) left unfinished.

use std::path::Path;
use std::time::SystemTime;

use codencer_store::{ArtifactKind, AttemptRow, AttemptStatus, EventBody};

use crate::git;
use crate::record::{Ids, NewArtifact, Recorder};
use crate::supervisor_error::SupervisorError;

/// Ends an unfinished attempt by appending `attempt.completed` with `status` (never an
/// update). A worker that survived its supervisor is found and killed first, so nothing
/// writes to the worktree any more; then whatever the executor had written is committed to
/// the attempt branch and recorded as a diff, so no write made before the crash is lost.
/// When that is impossible, the reason says `lost-by-kill` and why. The worktree is kept.
pub(crate) async fn close(
    rec: &Recorder,
    repo: &Path,
    attempt: &AttemptRow,
    status: AttemptStatus,
    why: &str,
) -> Result<(), SupervisorError> {
    let ids = Ids::attempt(&attempt.run_id, &attempt.step_id, &attempt.id);
    let events: Vec<EventBody> = rec
        .store()
        .events_for_run(&attempt.run_id)?
        .into_iter()
        .filter(|e| e.attempt_id.as_deref() == Some(attempt.id.as_str()))
        .map(|e| e.body)
        .collect();
    let killed = kill_survivor(&events, attempt).await?;
    record_partial_output(rec, &ids, &events, attempt)?;
    let worktree = Path::new(&attempt.worktree);
    let message = format!(
        "codencer: run {} attempt {} ({})",
        attempt.run_id,
        attempt.number,
        status.as_str()
    );
    let (capture, lost) = if worktree.join(".git").exists() {
        clear_stale_index_lock(worktree);
        let captured = match git::AttemptTree::find(repo, worktree, &attempt.branch).await {
            // The branch is made by the checkout, and the executor is started only after
            // it: without the branch nothing ran, and the half-written worktree is not a
            // change.
            Ok(tree) if !tree.branch_exists().await => Ok(None),
            Ok(tree) => git::capture(&tree, &attempt.base_commit, &message)
                .await
                .map(Some),
            Err(err) => Err(err),
        };
        match captured {
            Ok(Some(capture)) => (Some(capture), None),
            Ok(None) => (
                None,
                Some(
                    "it ended while its worktree was being checked out, before the executor started (nothing to capture)"
                        .to_string(),
                ),
            ),
            Err(err) => (
                None,
                Some(format!(
                    "lost-by-kill: its changes could not be captured: {err}"
                )),
            ),
        }
    } else {
        (
            None,
            Some("its worktree was never created or is gone (nothing to capture)".to_string()),
        )
    };
    if let Some(capture) = &capture {
        rec.capture_artifacts(&ids, capture)?;
    }
    let survivor = if killed {
        "; its worker had survived and was killed"
    } else {
        ""
    };
    let reason = match &lost {
        None => format!(
            "{why}{survivor}; its changes so far are committed to its branch and its worktree is kept"
        ),
        Some(lost) => format!("{why}{survivor}; {lost}"),
    };
    rec.append(
        &ids,
        EventBody::AttemptCompleted {
            status,
            exit: None,
            reason: Some(reason),
            commit: capture.as_ref().and_then(|c| c.commit.clone()),
            files_changed: capture
                .as_ref()
                .map(|c| c.files.clone())
                .unwrap_or_default(),
            insertions: capture.as_ref().map_or(0, |c| c.insertions),
            deletions: capture.as_ref().map_or(0, |c| c.deletions),
            duration_ms: 0,
            summary: None,
            usage: None,
        },
    )?;
    Ok(())
}

/// Kills the attempt's worker if it is still alive (its pid is in `attempt.running`).
/// Returns whether one was killed.
async fn kill_survivor(
    events: &[EventBody],
    attempt: &AttemptRow,
) -> Result<bool, SupervisorError> {
    let pids: Vec<u32> = events
        .iter()
        .filter_map(|e| match e {
            EventBody::AttemptRunning { pid } => *pid,
            _ => None,
        })
        .collect();
    if pids.is_empty() {
        return Ok(false);
    }
    let started = parse_ts(&attempt.started_at);
    let killed = tokio::task::spawn_blocking(move || {
        let mut killed = false;
        for pid in pids {
            match codencer_sandbox::kill_stale_worker(pid, started) {
                Ok(codencer_sandbox::StaleWorker::Killed) => killed = true,
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(pid, cause = %err, "could not kill a stale worker");
                }
            }
        }
        killed
    })
    .await
    .map_err(|e| SupervisorError::Infrastructure(format!("stale worker check failed: {e}")))?;
    if killed {
        tracing::warn!(attempt_id = %attempt.id, "killed a worker that outlived its supervisor");
    }
    Ok(killed)
}

/// The executor's output so far (its files in the attempt's scratch directory), unless the
/// dead supervisor recorded it already.
fn record_partial_output(
    rec: &Recorder,
    ids: &Ids,
    events: &[EventBody],
    attempt: &AttemptRow,
) -> Result<(), SupervisorError> {
    let scratch = rec.store().root().join("attempts").join(&attempt.id);
    for (kind, file) in [
        (ArtifactKind::ExecutorStdout, "executor.stdout"),
        (ArtifactKind::ExecutorStderr, "executor.stderr"),
    ] {
        let recorded = events
            .iter()
            .any(|e| matches!(e, EventBody::ArtifactRecorded { kind: k, .. } if *k == kind));
        let path = scratch.join(file);
        if !recorded && path.exists() {
            rec.record(ids, &[NewArtifact::file(kind, None, &path)], |_| Vec::new())?;
        }
    }
    Ok(())
}

/// An RFC 3339 timestamp of the record; the epoch when unparsable (then any worker with
/// the pid counts as the attempt's; the name check still applies).
fn parse_ts(ts: &str) -> SystemTime {
    time::OffsetDateTime::parse(ts, &time::format_description::well_known::Rfc3339)
        .map(SystemTime::from)
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

/// A git process killed with the supervisor leaves `index.lock` behind, and every later
/// git command in the worktree would fail on it. Its holder is dead: the run lock is ours.
fn clear_stale_index_lock(worktree: &Path) {
    let Ok(link) = std::fs::read_to_string(worktree.join(".git")) else {
        return;
    };
    let Some(git_dir) = link.trim().strip_prefix("gitdir:") else {
        return;
    };
    let lock = Path::new(git_dir.trim()).join("index.lock");
    if lock.exists() {
        tracing::warn!(path = %lock.display(), "removing a stale git index lock");
        let _ = std::fs::remove_file(&lock);
    }
}
