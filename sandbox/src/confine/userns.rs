//! User namespace and the other namespaces.

use nix::sched::{CloneFlags, unshare};
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

/// Creates the pid, ipc, uts (and net unless `host_net`) namespaces for the children.
pub fn unshare_namespaces(host_net: bool) -> Result<(), SandboxError> {
    let mut flags = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
    if !host_net {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags).map_err(|e| SandboxError::sys("unshare(pid, ipc, uts, net)", e))
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
