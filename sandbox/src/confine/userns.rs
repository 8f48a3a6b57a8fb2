//! User namespace and the other namespaces.

use nix::sched::{CloneFlags, unshare};
use nix::unistd::{Gid, Uid, getgid, getuid, setgroups};

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

/// The caller's real ids (outside the namespace).
pub fn outside_ids() -> (Uid, Gid) {
    (getuid(), getgid())
}

/// Creates the pid, ipc, uts (and net unless `host_net`) namespaces for the children.
pub fn unshare_namespaces(host_net: bool) -> Result<(), SandboxError> {
    let mut flags = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWIPC | CloneFlags::CLONE_NEWUTS;
    if !host_net {
        flags |= CloneFlags::CLONE_NEWNET;
    }
    unshare(flags).map_err(|e| SandboxError::sys("unshare(pid, ipc, uts, net)", e))
}

/// Called by the sandbox's PID 1 after joining its cgroup: mount and cgroup namespaces.
pub fn unshare_mount_and_cgroup() -> Result<bool, SandboxError> {
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| SandboxError::sys("unshare(mount)", e))?;
    // The cgroup namespace is defence in depth only; hosts without it still run.
    Ok(unshare(CloneFlags::CLONE_NEWCGROUP).is_ok())
}

fn write_proc(path: &str, content: &str) -> Result<(), SandboxError> {
    std::fs::write(path, content).map_err(|e| SandboxError::sys(format!("writing {path}"), e))
}
