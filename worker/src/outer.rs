//! The worker outside the sandbox: reads the spec, creates the namespaces, forks the
//! sandbox's PID 1, then (while PID 1 builds the view) the ipc/net namespaces and cgroups
//! PID 1 joins; relays its reports, forwards signals, cleans up.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::process::ExitCode;

use codencer_sandbox::confine::limits::Cgroup;
use codencer_sandbox::confine::{layer, net, privs, userns};
use codencer_sandbox::{
    Denial, DenialKind, Enforcement, ExecSpec, ExitStatus, Layer, NetworkSpec, SandboxSpec,
    WorkerReport, signaled,
};
use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::sys::socket::{AddressFamily, SockFlag, SockType, socketpair};
use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid, fork, pipe2};

use crate::bridge::Bridge;
use crate::init::{self, Init};
use crate::proto::{chain, fail, refused, report_fd, send, send_handoff};

/// Signals the worker and PID 1 handle synchronously (blocked, read via signalfd/sigwait).
pub fn handled_signals() -> SigSet {
    let mut set = SigSet::empty();
    for sig in [
        Signal::SIGCHLD,
        Signal::SIGTERM,
        Signal::SIGINT,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        set.add(sig);
    }
    set
}

pub fn run() -> ExitCode {
    match read_spec().and_then(start) {
        Ok(code) => code,
        Err(err) => {
            send(report_fd(), &refused(err, None));
            ExitCode::from(125)
        }
    }
}

fn read_spec() -> Result<ExecSpec, String> {
    let mut raw = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut raw)
        .map_err(|e| format!("reading the spec on stdin: {e}"))?;
    let exec: ExecSpec =
        serde_json::from_slice(&raw).map_err(|e| format!("parsing the spec: {e}"))?;
    if exec.argv.is_empty() {
        return Err("argv is empty".to_owned());
    }
    if exec.sandbox.uid == 0 {
        return Err("the executor must not be uid 0 inside the sandbox".to_owned());
    }
    if exec.more && !exec.hold {
        return Err("`more` needs `hold`".to_owned());
    }
    if matches!(exec.sandbox.network, NetworkSpec::Host) && !exec.sandbox.forwards.is_empty() {
        return Err("forwards need a network namespace; with the host network the services are reachable directly".to_owned());
    }
    if let Some(bad) = exec
        .sandbox
        .forwards
        .iter()
        .find(|f| !f.addr.ip().is_loopback())
    {
        return Err(format!("forward {} is not a loopback address", bad.addr));
    }
    // The executor's stdin is /dev/null; the spec pipe is done.
    let null = std::fs::File::open("/dev/null").map_err(|e| format!("opening /dev/null: {e}"))?;
    nix::unistd::dup2_stdin(null.as_fd()).map_err(|e| format!("dup2 stdin: {e}"))?;
    Ok(exec)
}

fn start(exec: ExecSpec) -> Result<ExitCode, String> {
    // Anything the supervisor leaked stays outside; a held sandbox keeps its go pipe, a
    // kept one its command socket (PID 1 reads them, the executor never sees them).
    let first_leaked = if exec.more {
        codencer_sandbox::CMD_FD + 1
    } else if exec.hold {
        codencer_sandbox::GO_FD + 1
    } else {
        codencer_sandbox::GO_FD
    };
    privs::close_fds_from(first_leaked as u32).map_err(|e| fail("closing inherited fds", &e))?;
    fcntl(report_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
        .map_err(|e| fail("fcntl report fd", &e))?;
    if exec.hold {
        // SAFETY: GO_FD is the go pipe the supervisor passed; it stays open for PID 1.
        let go = unsafe { BorrowedFd::borrow_raw(codencer_sandbox::GO_FD) };
        fcntl(go, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
            .map_err(|e| fail("the go pipe (fd 4) of a held sandbox", &e))?;
    }
    if exec.more {
        // SAFETY: CMD_FD is the command socket the supervisor passed; it stays open for PID 1.
        let commands = unsafe { BorrowedFd::borrow_raw(codencer_sandbox::CMD_FD) };
        fcntl(commands, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))
            .map_err(|e| fail("the command socket (fd 5) of a kept sandbox", &e))?;
    }
    let signals = handled_signals();
    signals
        .thread_block()
        .map_err(|e| fail("blocking signals", &e))?;
    let spec = &exec.sandbox;
    let outside_root = nix::unistd::getuid().is_root();
    let host_net = matches!(spec.network, NetworkSpec::Host);
    let mut layers = Vec::new();
    let userns = match userns::enter_user_namespace(spec).and_then(|()| userns::unshare_pid_uts()) {
        Ok(()) => true,
        Err(err) => {
            if let Some(refusal) = refusal_without(
                spec,
                &[Layer::Namespaces, Layer::Filesystem, Layer::Network],
                &err,
            ) {
                return Err(refusal);
            }
            layers.push(layer(
                Layer::Namespaces,
                Enforcement::NotEnforced,
                format!("unavailable: {}", chain(&err)),
            ));
            false
        }
    };
    if userns {
        let _ = nix::unistd::sethostname(&spec.hostname);
        layers.push(layer(
            Layer::Namespaces,
            if host_net {
                Enforcement::Partial
            } else {
                Enforcement::Enforced
            },
            if host_net {
                "user, mount, pid, ipc, uts, cgroup (host network: no net namespace)"
            } else {
                "user, mount, pid, net, ipc, uts, cgroup"
            },
        ));
    }
    let (status_r, status_w) = pipe2(OFlag::O_CLOEXEC).map_err(|e| fail("pipe", &e))?;
    let (handoff, handoff_init) = socketpair(
        AddressFamily::Unix,
        SockType::Stream,
        None,
        SockFlag::SOCK_CLOEXEC,
    )
    .map_err(|e| fail("socketpair", &e))?;
    let init = Init {
        exec,
        userns,
        outside_root,
        layers,
        status: status_w,
        handoff: handoff_init,
    };
    // SAFETY: the worker is single-threaded, so the child may do anything after fork.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => init::run(init),
        Ok(ForkResult::Parent { child }) => {
            let Init {
                exec,
                status,
                handoff: handoff_init,
                ..
            } = init;
            drop((status, handoff_init));
            if exec.more {
                // PID 1 reads the commands; each command's output pipes are its own, so
                // the first one's must not stay open here (nor in the bridges forked later).
                let _ = nix::unistd::close(codencer_sandbox::CMD_FD);
                init::quiet_std_fds();
            }
            // PID 1 is building the view (1-2 ms, on the other core if there is one):
            // meanwhile the slow namespaces and the cgroups, which it joins afterwards.
            let mut namespaces = Vec::new();
            let mut bridges = Vec::new();
            let mut cgroup = Cgroup::default();
            let outcome = late_namespaces(&exec.sandbox, userns, &mut namespaces, &mut bridges)
                .and_then(|note| {
                    cgroup = Cgroup::create(&exec.sandbox.limits, &std::process::id().to_string());
                    cgroup
                        .attach(child.as_raw() as u32)
                        .map_err(|e| fail("moving the sandbox into its cgroup", &e))?;
                    Ok(note)
                });
            send_handoff(
                handoff.as_fd(),
                &cgroup,
                &namespaces,
                outcome
                    .as_ref()
                    .map(Option::as_deref)
                    .map_err(String::as_str),
            );
            drop(namespaces);
            // Hygiene while the sandbox runs, not before.
            cgroup.reap_stale();
            if let Ok(pidfd) = codencer_sandbox::pidfd_open(child.as_raw() as u32) {
                crate::proto::send_pidfd(report_fd(), &pidfd);
            }
            Ok(supervise(
                child, status_r, handoff, cgroup, &signals, bridges, exec.more,
            ))
        }
        Err(err) => Err(fail("fork", &err)),
    }
}

fn bridged(spec: &SandboxSpec) -> bool {
    matches!(spec.network, NetworkSpec::Proxy { .. }) || !spec.forwards.is_empty()
}

/// The refusal when namespaces could not be made (`err`) and something needs them: one of
/// `layers` is required, or the proxy or a forward needs a network namespace to bridge into.
fn refusal_without(
    spec: &SandboxSpec,
    layers: &[Layer],
    err: &dyn std::error::Error,
) -> Option<String> {
    let needed: Vec<&str> = layers
        .iter()
        .filter(|l| spec.requires(**l))
        .map(|l| l.name())
        .collect();
    let host_net = matches!(spec.network, NetworkSpec::Host);
    (!needed.is_empty() || !host_net && bridged(spec)).then(|| namespaces_refusal(err, &needed))
}

fn namespaces_refusal(err: &dyn std::error::Error, needed: &[&str]) -> String {
    format!(
        "namespaces unavailable ({}), required by: {}. Fix: enable unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, user.max_user_namespaces>0; on Ubuntu kernel.apparmor_restrict_unprivileged_userns=0); see `codencer doctor`",
        chain(err),
        if needed.is_empty() {
            "the network proxy and forwards".to_owned()
        } else {
            needed.join(", ")
        }
    )
}

/// The ipc and net namespaces (loopback up, the bridges listening inside), made after the
/// fork for PID 1 to join. `Ok(Some(why))`: they could not be made and nothing requires
/// them (PID 1 reports the namespaces layer partial and the network not enforced).
fn late_namespaces(
    spec: &SandboxSpec,
    userns: bool,
    namespaces: &mut Vec<OwnedFd>,
    bridges: &mut Vec<Bridge>,
) -> Result<Option<String>, String> {
    if !userns {
        return Ok(None);
    }
    let host_net = matches!(spec.network, NetworkSpec::Host);
    match userns::unshare_ipc_net(host_net) {
        Ok(fds) => *namespaces = fds,
        Err(err) => {
            if let Some(refusal) = refusal_without(spec, &[Layer::Namespaces, Layer::Network], &err)
            {
                return Err(refusal);
            }
            return Ok(Some(chain(&err)));
        }
    }
    if !host_net {
        net::loopback_up().map_err(|e| fail("bringing loopback up", &e))?;
    }
    if let NetworkSpec::Proxy { unix_socket, port } = &spec.network {
        let addr = (std::net::Ipv4Addr::LOCALHOST, *port).into();
        bridges.push(Bridge::listen(unix_socket, addr).map_err(|e| fail("proxy bridge", &e))?);
    }
    for forward in &spec.forwards {
        let bridge = Bridge::listen(&forward.unix_socket, forward.addr)
            .map_err(|e| fail(&format!("forward {}", forward.addr), &e))?;
        bridges.push(bridge);
    }
    Ok(None)
}

/// Relays PID 1's reports, forwards signals, bridges proxy connections, and writes the
/// final report.
fn supervise(
    init_pid: Pid,
    status: OwnedFd,
    _handoff: OwnedFd,
    mut cgroup: Cgroup,
    signals: &SigSet,
    bridges: Vec<Bridge>,
    more: bool,
) -> ExitCode {
    let mut latest: Option<WorkerReport> = None;
    // A kept sandbox reports each command's end: with the cgroup's denials new since the
    // previous one (its counters only grow).
    let mut told: Vec<String> = Vec::new();
    let mut buf = Vec::new();
    let mut status_open = true;
    let sfd = SignalFd::with_flags(signals, SfdFlags::SFD_CLOEXEC | SfdFlags::SFD_NONBLOCK).ok();
    let mut init_status: Option<WaitStatus> = None;
    while init_status.is_none() || status_open {
        // Slots: the status pipe while open, the signalfd, the bridge listeners (last).
        let mut fds = Vec::with_capacity(2 + bridges.len());
        if status_open {
            fds.push(PollFd::new(status.as_fd(), PollFlags::POLLIN));
        }
        if let Some(sfd) = &sfd {
            fds.push(PollFd::new(sfd.as_fd(), PollFlags::POLLIN));
        }
        for bridge in &bridges {
            fds.push(PollFd::new(bridge.listener.as_fd(), PollFlags::POLLIN));
        }
        // Without a signalfd, fall back to polling for the child's exit.
        let timeout = if sfd.is_none() {
            PollTimeout::from(100u16)
        } else {
            PollTimeout::NONE
        };
        if let Err(nix::errno::Errno::EINTR) = poll(&mut fds, timeout) {
            continue;
        }
        let ready = |fd: &PollFd| {
            fd.revents()
                .is_some_and(|r| r.intersects(PollFlags::POLLIN | PollFlags::POLLHUP))
        };
        let status_ready = status_open && ready(&fds[0]);
        let first_bridge = fds.len() - bridges.len();
        if status_ready {
            let mut chunk = [0u8; 8192];
            match nix::unistd::read(&status, &mut chunk) {
                Ok(0) | Err(_) => status_open = false,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                if let Ok(mut report) = serde_json::from_slice::<WorkerReport>(&line) {
                    if more && report.exit.is_some() {
                        for denial in cgroup.denials() {
                            if !told.contains(&denial.detail) {
                                told.push(denial.detail.clone());
                                report.denials.push(denial);
                            }
                        }
                    }
                    send(report_fd(), &report);
                    latest = Some(report);
                }
            }
        }
        for (bridge, fd) in bridges.iter().zip(&fds[first_bridge..]) {
            if ready(fd) {
                bridge.accept();
            }
        }
        if let Some(sfd) = &sfd {
            while let Ok(Some(info)) = sfd.read_signal() {
                let Ok(sig) = Signal::try_from(info.ssi_signo as i32) else {
                    continue;
                };
                if sig != Signal::SIGCHLD {
                    let _ = kill(init_pid, sig);
                }
            }
        }
        // Reap PID 1 and any finished bridge relays.
        while let Ok(ws) = waitpid(None, Some(WaitPidFlag::WNOHANG)) {
            match ws.pid() {
                None => break,
                Some(pid) if pid == init_pid => init_status = Some(ws),
                Some(_) => {}
            }
        }
    }
    let mut report = latest.unwrap_or_default();
    match init_status {
        Some(WaitStatus::Signaled(_, sig, _)) => {
            // PID 1 only dies by a signal from outside (the caller's kill): the whole
            // sandbox went with it.
            report.worker_exit = Some(signaled(sig as i32));
            report.denials.push(Denial {
                kind: DenialKind::Killed,
                detail: format!("sandbox killed by {}", sig.as_str()),
            });
            if report.exit.is_none() && report.setup_error.is_none() {
                report.exit = Some(signaled(sig as i32));
            }
        }
        Some(WaitStatus::Exited(_, code))
            if report.exit.is_none() && report.setup_error.is_none() =>
        {
            report.setup_error = Some(format!("sandbox init exited with {code} without a report"));
        }
        _ => {}
    }
    report.denials.extend(
        cgroup
            .denials()
            .into_iter()
            .filter(|d| !told.contains(&d.detail)),
    );
    cgroup.remove();
    send(report_fd(), &report);
    match report.exit {
        Some(ExitStatus::Exited { code }) => ExitCode::from(code.clamp(0, 255) as u8),
        Some(ExitStatus::Signaled { signal, .. }) => {
            ExitCode::from((128 + signal).clamp(0, 255) as u8)
        }
        None => ExitCode::from(125),
    }
}
