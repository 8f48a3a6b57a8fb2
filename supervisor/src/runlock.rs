//! One driver per run: a process that executes or resumes a run holds an advisory lock on
//! `<state>/locks/<run>.lock` until it is done. A second process pointed at the same state
//! directory refuses that run instead of marking live attempts `interrupted` or starting
//! attempts twice. The kernel drops the lock when its holder dies, SIGKILL included, so a
//! crash never leaves a run locked.

use std::fs::{File, TryLockError};
use std::path::Path;

use crate::supervisor_error::SupervisorError;

/// A held run lock; released on drop.
#[derive(Debug)]
pub(crate) struct RunLock {
    _file: File,
}

impl RunLock {
    /// Takes run `run_id`'s lock, or fails at once with [`SupervisorError::RunBusy`].
    pub(crate) fn take(state_dir: &Path, run_id: &str) -> Result<RunLock, SupervisorError> {
        let dir = state_dir.join("locks");
        std::fs::create_dir_all(&dir)
            .map_err(|e| SupervisorError::io("create the run locks directory", &dir, e))?;
        let path = dir.join(format!("{run_id}.lock"));
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| SupervisorError::io("open a run lock", &path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(RunLock { _file: file }),
            Err(TryLockError::WouldBlock) => Err(SupervisorError::RunBusy {
                run_id: run_id.to_string(),
            }),
            Err(TryLockError::Error(e)) => Err(SupervisorError::io("lock a run", &path, e)),
        }
    }
}
