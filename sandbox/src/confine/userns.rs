//! User namespace and the other namespaces.

use std::os::fd::OwnedFd;

use nix::fcntl::{OFlag, open};
use nix::sched::{CloneFlags, setns, unshare};
use nix::sys::stat::Mode;
use nix::unistd::{getgid, getuid, setgroups};

use crate::error::SandboxError;
use crate::spec::SandboxSpec;

/// Enters a new user namespace where the caller's uid/gid appear as `spec.uid`/`spec.gid`.
/// The process keeps a full capability set inside the namespace until it execs.
pub fn enter_user_namespace(spec: &SandboxSpec) -> Result<(), SandboxError> {
    let (uid, gid) = (getuid(), getgid());
    if uid.is_root() {
        // Root's supplementary groups would survive into the namespace; drop them while
        // we still can (unprivileged callers cannot, and the kernel maps them to nogroup).
        setgroups(&[]).map_err(|e| SandboxError::sys("setgroups", e))?;
    }
    unshare(CloneFlags::CLONE_NEWUSER).map_err(|e| SandboxError::sys("unshare(user)", e))?;
    write_proc("/proc/self/setgroups", "deny")?;
    write_proc("/proc/self/uid_map", &format!("{} {} 1\n", spec.uid, uid))?;
    write_proc("/proc/self/gid_map", &format!("{} {} 1\n", spec.gid, gid))?;
    Ok(())
}

/// Creates the pid and uts namespaces for the children (before forking the sandbox's
/// PID 1: a pid namespace only applies to children forked afterwards).
pub fn unshare_pid_uts() -> Result<(), SandboxError> {
    unshare(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS)
        .map_err(|e| SandboxError::sys("unshare(pid, uts)", e))
}

/// Creates the ipc (and unless `host_net` the net) namespace in the calling process and
/// returns descriptors of them for the sandbox's PID 1 to join with [`join`]. Creating a
/// network namespace is the slowest step of the set-up (0.6-0.8 ms), so the worker does it
/// after forking PID 1, while PID 1 builds the filesystem view.
pub fn unshare_ipc_net(host_net: bool) -> Result<Vec<OwnedFd>, SandboxError> {
    let mut flags = CloneFlags::CLONE_NEWIPC;
    if !host_net {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags).map_err(|e| SandboxError::sys("unshare(ipc, net)", e))?;
    let mut fds = Vec::with_capacity(2);
    for ns in ["ipc", "net"].iter().take(if host_net { 1 } else { 2 }) {
        let path = format!("/proc/self/ns/{ns}");
        let fd = open(
            path.as_str(),
            OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| SandboxError::sys(format!("opening {path}"), e))?;
        fds.push(fd);
    }
    Ok(fds)
}

/// Called by the sandbox's PID 1 (still holding its namespace capabilities): joins the
/// namespaces made by [`unshare_ipc_net`].
pub fn join(namespaces: &[OwnedFd]) -> Result<(), SandboxError> {
    for fd in namespaces {
        setns(fd, CloneFlags::empty()).map_err(|e| SandboxError::sys("setns", e))?;
    }
    Ok(())
}

/// Called by the sandbox's PID 1: a mount namespace of its own.
pub fn unshare_mount() -> Result<(), SandboxError> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| SandboxError::sys("unshare(mount)", e))
}

/// Called by the sandbox's PID 1 once it is in its cgroup: a cgroup namespace rooted there.
/// Defence in depth only; hosts without it still run (returns false).
pub fn unshare_cgroup() -> bool {
    unshare(CloneFlags::CLONE_NEWCGROUP).is_ok()
}

fn write_proc(path: &str, content: &str) -> Result<(), SandboxError> {
    std::fs::write(path, content).map_err(|e| SandboxError::sys(format!("writing {path}"), e))
}
