//! What this host can enforce, per layer.

use landlock::{ABI, Access, AccessFs, CompatLevel, Compatible, Ruleset, RulesetAttr};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{AccessFlags, ForkResult, access, fork};

use crate::confine::lock::TARGET_ABI;
use crate::report::{Enforcement, HostLayer, HostReport, LimitKind, LimitMechanism, LimitReport};
use crate::spec::Layer;

/// Probes the host: namespaces (in a short-lived child), Landlock, seccomp, cgroups.
/// Safe to call from a multithreaded process.
pub fn probe_host() -> HostReport {
    let root = nix::unistd::geteuid().is_root();
    let ns = probe_namespaces();
    let mut layers = Vec::new();
    let ns_fix = "enable unprivileged user namespaces: sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces>0, and on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0";
    layers.push(match &ns {
        Ok(()) => host(
            Layer::Namespaces,
            Enforcement::Enforced,
            "user, mount, pid, net, ipc, uts, cgroup",
            None,
        ),
        Err(e) => host(
            Layer::Namespaces,
            Enforcement::NotEnforced,
            &format!("cannot create namespaces: {e}"),
            Some(ns_fix),
        ),
    });
    layers.push(match &ns {
        Ok(()) => host(
            Layer::Filesystem,
            Enforcement::Enforced,
            "bind mounts + pivot_root in a user namespace",
            None,
        ),
        Err(_) => host(
            Layer::Filesystem,
            Enforcement::NotEnforced,
            "needs user and mount namespaces",
            Some(ns_fix),
        ),
    });
    layers.push(probe_landlock());
    let seccomp_ok = nix::sys::prctl::get_no_new_privs().is_ok()
        && std::path::Path::new("/proc/sys/kernel/seccomp/actions_avail").exists();
    layers.push(if seccomp_ok {
        host(
            Layer::Seccomp,
            Enforcement::Enforced,
            "seccomp filters available",
            None,
        )
    } else {
        host(
            Layer::Seccomp,
            Enforcement::NotEnforced,
            "kernel without CONFIG_SECCOMP_FILTER",
            Some("use a kernel built with CONFIG_SECCOMP_FILTER=y"),
        )
    });
    layers.push(host(
        Layer::Privileges,
        Enforcement::Enforced,
        "no_new_privs, capability sets, securebits",
        None,
    ));
    let limits = probe_limits(root);
    let all = limits
        .iter()
        .all(|l| l.mechanism != LimitMechanism::NotEnforced);
    layers.push(if all {
        host(Layer::Limits, Enforcement::Enforced, "see limits", None)
    } else {
        host(Layer::Limits, Enforcement::Partial, "pids limit needs a writable pids cgroup when running as root", Some("run as a non-root user, or give Codencer a writable cgroup (v1 pids/memory, or a delegated v2 subtree)"))
    });
    layers.push(match &ns {
        Ok(()) => host(
            Layer::Network,
            Enforcement::Enforced,
            "empty network namespace, loopback only",
            None,
        ),
        Err(_) => host(
            Layer::Network,
            Enforcement::NotEnforced,
            "needs network namespaces",
            Some(ns_fix),
        ),
    });
    HostReport {
        kernel: nix::sys::utsname::uname()
            .map(|u| u.release().to_string_lossy().into_owned())
            .unwrap_or_default(),
        root,
        landlock_abi: landlock_abi(),
        layers,
        limits,
    }
}

fn host(layer: Layer, status: Enforcement, detail: &str, fix: Option<&str>) -> HostLayer {
    HostLayer {
        layer,
        status,
        detail: detail.to_owned(),
        fix: fix.map(str::to_owned),
    }
}

fn probe_namespaces() -> Result<(), String> {
    let flags = libc::CLONE_NEWUSER
        | libc::CLONE_NEWNS
        | libc::CLONE_NEWPID
        | libc::CLONE_NEWNET
        | libc::CLONE_NEWIPC
        | libc::CLONE_NEWUTS;
    // SAFETY: the child only makes raw syscalls (unshare, _exit), which are
    // async-signal-safe, so forking a multithreaded process is sound.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            // SAFETY: unshare takes flags only.
            let rc = unsafe { libc::unshare(flags) };
            let code = if rc == 0 {
                0
            } else {
                std::io::Error::last_os_error().raw_os_error().unwrap_or(1)
            };
            // SAFETY: _exit never returns and runs no destructors.
            unsafe { libc::_exit(code) }
        }
        Ok(ForkResult::Parent { child }) => match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, 0)) => Ok(()),
            Ok(WaitStatus::Exited(_, errno)) => {
                Err(std::io::Error::from_raw_os_error(errno).to_string())
            }
            other => Err(format!("probe child ended unexpectedly: {other:?}")),
        },
        Err(e) => Err(format!("fork: {e}")),
    }
}

fn probe_landlock() -> HostLayer {
    let hard = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(TARGET_ABI))
        .and_then(|r| r.create());
    if hard.is_ok() {
        return host(
            Layer::Landlock,
            Enforcement::Enforced,
            &format!("ABI {:?} features available", TARGET_ABI),
            None,
        );
    }
    let some = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(AccessFs::from_all(ABI::V1))
        .and_then(|r| r.create());
    let fix =
        Some("boot a kernel >= 6.12 with landlock in the lsm= list (CONFIG_SECURITY_LANDLOCK=y)");
    if some.is_ok() {
        host(
            Layer::Landlock,
            Enforcement::Partial,
            "Landlock available but older than the target ABI (no network or scope rules)",
            fix,
        )
    } else {
        host(
            Layer::Landlock,
            Enforcement::NotEnforced,
            "Landlock not available",
            fix,
        )
    }
}

fn landlock_abi() -> Option<i32> {
    const LANDLOCK_CREATE_RULESET_VERSION: u32 = 1;
    // SAFETY: with a null attr and size 0 this syscall only returns the ABI version.
    let v = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (v > 0).then_some(v as i32)
}

fn probe_limits(root: bool) -> Vec<LimitReport> {
    let writable = |p: &str| access(p, AccessFlags::W_OK).is_ok();
    let cg = |ctrl: &str| {
        let dir = format!("/sys/fs/cgroup/{ctrl}");
        if writable(&dir) && !std::path::Path::new(&format!("{dir}/cgroup.controllers")).exists() {
            Some(LimitMechanism::CgroupV1)
        } else {
            None
        }
    };
    let lim = |kind, mechanism, detail: &str| LimitReport {
        kind,
        value: 0,
        mechanism,
        detail: detail.to_owned(),
    };
    vec![
        lim(LimitKind::CpuSeconds, LimitMechanism::Rlimit, "RLIMIT_CPU"),
        match cg("memory") {
            Some(m) => lim(LimitKind::MemoryBytes, m, "memory cgroup"),
            None => lim(
                LimitKind::MemoryBytes,
                LimitMechanism::Rlimit,
                "RLIMIT_AS (address space per process)",
            ),
        },
        match (cg("pids"), root) {
            (Some(m), _) => lim(LimitKind::Pids, m, "pids cgroup"),
            (None, false) => lim(
                LimitKind::Pids,
                LimitMechanism::Rlimit,
                "RLIMIT_NPROC in the sandbox's user namespace",
            ),
            (None, true) => lim(
                LimitKind::Pids,
                LimitMechanism::NotEnforced,
                "no writable pids cgroup; RLIMIT_NPROC ignored for root",
            ),
        },
        lim(
            LimitKind::OpenFiles,
            LimitMechanism::Rlimit,
            "RLIMIT_NOFILE",
        ),
        lim(
            LimitKind::FileSizeBytes,
            LimitMechanism::Rlimit,
            "RLIMIT_FSIZE",
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_reports_every_layer_in_order() {
        let report = probe_host();
        let layers: Vec<Layer> = report.layers.iter().map(|l| l.layer).collect();
        assert_eq!(layers, Layer::ALL);
        assert!(
            report
                .layers
                .iter()
                .all(|l| l.status == Enforcement::Enforced || l.fix.is_some())
        );
        assert_eq!(report.limits.len(), 5);
    }
}
