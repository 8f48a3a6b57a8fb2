//! Closing attempts that a dead supervisor left unfinished.

use std::path::Path;

use codencer_store::{ArtifactKind, AttemptRow, AttemptStatus, EventBody};

use crate::git;
use crate::record::{Ids, Recorder};
use crate::supervisor_error::SupervisorError;

/// Ends an attempt the supervisor left unfinished, by appending `attempt.completed` with
/// status `interrupted` (never an update). Whatever the executor had written to the
/// worktree is first committed to the attempt branch and recorded as a diff, so no write
/// made before the crash is lost; the worktree itself is kept for evidence.
pub(crate) async fn close(
    rec: &Recorder,
    repo: &Path,
    attempt: &AttemptRow,
) -> Result<(), SupervisorError> {
    let ids = Ids::attempt(&attempt.run_id, &attempt.step_id, &attempt.id);
    let worktree = Path::new(&attempt.worktree);
    let message = format!(
        "codencer: run {} attempt {} (interrupted)",
        attempt.run_id, attempt.number
    );
    let (capture, lost) = if worktree.join(".git").exists() {
        match git::capture(worktree, repo, &attempt.base_commit, &message).await {
            Ok(capture) => (Some(capture), None),
            Err(err) => (
                None,
                Some(format!("its changes could not be captured: {err}")),
            ),
        }
    } else {
        (
            None,
            Some("its worktree was never created or is gone".to_string()),
        )
    };
    if let Some(capture) = &capture {
        rec.artifact(&ids, ArtifactKind::Diff, None, &capture.diff)?;
        rec.artifact(
            &ids,
            ArtifactKind::ChangedFiles,
            None,
            &serde_json::to_vec(&capture.files).unwrap_or_default(),
        )?;
    }
    let reason = match &lost {
        None => "the supervisor stopped before the attempt ended; its changes so far are committed to its branch and its worktree is kept".to_string(),
        Some(why) => format!("the supervisor stopped before the attempt ended; {why}"),
    };
    rec.append(
        &ids,
        EventBody::AttemptCompleted {
            status: AttemptStatus::Interrupted,
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
