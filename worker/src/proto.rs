//! Messages on the report pipe (to the supervisor), the status pipe (PID 1 to worker) and
//! the hand-off socket (worker to PID 1).

use std::io::{IoSlice, IoSliceMut, Write};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use codencer_sandbox::confine::limits::Cgroup;
use codencer_sandbox::{REPORT_FD, WorkerReport};
use nix::sys::socket::{ControlMessage, ControlMessageOwned, MsgFlags, recvmsg, sendmsg};

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
pub fn send_pidfd(fd: BorrowedFd<'_>, pidfd: &OwnedFd) {
    let _ = send_with_fds(fd, b"\n", &[pidfd.as_fd()]);
}

/// What the worker tells the sandbox's PID 1 once the cgroups and the namespaces it made
/// after the fork are ready, on the socket PID 1 also watches for the worker's death.
#[derive(Debug)]
pub enum Handoff {
    /// Join these, then carry on.
    Ready {
        cgroup: Cgroup,
        /// ipc, and unless the network is the host's, net; empty if they could not be made.
        namespaces: Vec<OwnedFd>,
        /// Why the ipc and net namespaces could not be made (nothing required them).
        namespaces_error: Option<String>,
    },
    /// Refuse to start the executor, with this setup error.
    Refused(String),
}

/// The worker's side: one message, the descriptors passed with `SCM_RIGHTS`. `outcome`:
/// `Ok(why the ipc/net namespaces are missing)` or `Err(the refusal)`.
pub fn send_handoff(
    fd: BorrowedFd<'_>,
    cgroup: &Cgroup,
    namespaces: &[OwnedFd],
    outcome: Result<Option<&str>, &str>,
) {
    let (code, tasks) = cgroup.handoff();
    let (tag, text) = match outcome {
        Ok(namespaces_error) => (b'G', namespaces_error.unwrap_or_default()),
        Err(refusal) => (b'E', refusal),
    };
    let mut msg = vec![tag, code[0], code[1], namespaces.len() as u8];
    msg.extend_from_slice(text.as_bytes());
    let mut fds: Vec<BorrowedFd<'_>> = namespaces.iter().map(AsFd::as_fd).collect();
    fds.extend(tasks);
    let _ = send_with_fds(fd, &msg, &fds);
}

/// PID 1's side; `None` when the worker is gone.
pub fn recv_handoff(fd: BorrowedFd<'_>) -> Option<Handoff> {
    let mut buf = [0u8; 4096];
    let mut space = nix::cmsg_space!([RawFd; 8]);
    let (len, mut fds) = loop {
        let mut iov = [IoSliceMut::new(&mut buf)];
        match recvmsg::<()>(
            fd.as_raw_fd(),
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
            Ok(msg) => {
                let mut fds = Vec::new();
                for cmsg in msg.cmsgs().ok()? {
                    if let ControlMessageOwned::ScmRights(raw) = cmsg {
                        // SAFETY: SCM_RIGHTS installed these descriptors in this process
                        // for us alone.
                        fds.extend(raw.into_iter().map(|r| unsafe { OwnedFd::from_raw_fd(r) }));
                    }
                }
                break (msg.bytes, fds);
            }
        }
    };
    let (head, text) = buf[..len].split_at_checked(4)?;
    let text = String::from_utf8_lossy(text).into_owned();
    let n_ns = usize::from(head[3]).min(fds.len());
    match head[0] {
        b'G' => {
            let tasks = fds.split_off(n_ns);
            Some(Handoff::Ready {
                cgroup: Cgroup::joiner([head[1], head[2]], tasks),
                namespaces: fds,
                namespaces_error: (!text.is_empty()).then_some(text),
            })
        }
        _ => Some(Handoff::Refused(text)),
    }
}

fn send_with_fds(fd: BorrowedFd<'_>, bytes: &[u8], fds: &[BorrowedFd<'_>]) -> nix::Result<usize> {
    let raw: Vec<RawFd> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let iov = [IoSlice::new(bytes)];
    let cmsgs = [ControlMessage::ScmRights(&raw)];
    let cmsgs: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &cmsgs };
    sendmsg::<()>(fd.as_raw_fd(), &iov, cmsgs, MsgFlags::empty(), None)
}
