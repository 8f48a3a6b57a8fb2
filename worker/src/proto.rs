//! Messages on the report pipe (to the supervisor) and the status pipe (PID 1 to worker).

use std::io::Write;
use std::os::fd::BorrowedFd;

use codencer_sandbox::{REPORT_FD, WorkerReport};

/// Writes `report` as one JSON line on `fd`. Errors are ignored: nobody is left to tell.
pub fn send(fd: BorrowedFd<'_>, report: &WorkerReport) {
    let Ok(mut line) = serde_json::to_vec(report) else {
        return;
    };
    line.push(b'\n');
    let Ok(owned) = fd.try_clone_to_owned() else {
        return;
    };
    let _ = std::fs::File::from(owned).write_all(&line);
}

/// The report descriptor inherited from the supervisor.
pub fn report_fd() -> BorrowedFd<'static> {
    // SAFETY: REPORT_FD is set up by `spawn_worker` and stays open for the worker's life;
    // only the outer worker process uses it.
    unsafe { BorrowedFd::borrow_raw(REPORT_FD) }
}

/// A report that only carries a setup error.
pub fn refused(error: String, partial: Option<WorkerReport>) -> WorkerReport {
    let mut report = partial.unwrap_or_default();
    report.setup_error = Some(error);
    report
}

/// Renders an error with its causes.
pub fn chain(err: &dyn std::error::Error) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        out.push_str(": ");
        out.push_str(&cause.to_string());
        source = cause.source();
    }
    out
}

/// `what: cause: cause...`, for setup errors.
pub fn fail(what: &str, err: &dyn std::error::Error) -> String {
    format!("{what}: {}", chain(err))
}

/// Sends `pidfd` (the sandbox's PID 1) to the supervisor with one marker byte.
pub fn send_pidfd(fd: BorrowedFd<'_>, pidfd: &std::os::fd::OwnedFd) {
    use nix::sys::socket::{ControlMessage, MsgFlags, sendmsg};
    use std::os::fd::AsRawFd;
    let fds = [pidfd.as_raw_fd()];
    let iov = [std::io::IoSlice::new(b"\n")];
    let _ = sendmsg::<()>(
        fd.as_raw_fd(),
        &iov,
        &[ControlMessage::ScmRights(&fds)],
        MsgFlags::empty(),
        None,
    );
}
