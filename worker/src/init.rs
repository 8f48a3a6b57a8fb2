//! The sandbox's PID 1: builds the view, drops privileges, forks the executor, reaps,
//! forwards signals, and reports to the worker.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use codencer_sandbox::confine::fs::{Plan, View, host_view};
use codencer_sandbox::confine::limits::{self, Cgroup};
use codencer_sandbox::confine::{layer, lock, privs, seccomp, userns};
use codencer_sandbox::{
    Denial, DenialKind, Enforcement, ExecSpec, ExitStatus, Layer, LayerReport, LimitMechanism,
    NetworkSpec, SandboxSpec, WorkerReport, signal_name, signaled,
};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::prctl;
use nix::sys::signal::{Signal, kill};
use nix::unistd::{ForkResult, Pid, fork};

use crate::exec::{self, Prepared};
use crate::outer::handled_signals;
use crate::proto::{Handoff, chain, fail, recv_handoff, refused, send};

/// Everything PID 1 inherits from the worker.
#[derive(Debug)]
pub struct Init {
    pub exec: ExecSpec,
    pub userns: bool,
    pub outside_root: bool,
    pub layers: Vec<LayerReport>,
    pub status: OwnedFd,
    /// The worker's hand-off (see [`Handoff`]); its hang-up means the worker died.
    pub handoff: OwnedFd,
}

/// Runs PID 1; never returns.
pub fn run(mut init: Init) -> ! {
    // Die with the worker. The pipe check closes the race with a worker that died before
    // the prctl.
    let _ = prctl::set_pdeathsig(Signal::SIGKILL);
    let mut fds = [PollFd::new(init.handoff.as_fd(), PollFlags::empty())];
    let _ = poll(&mut fds, PollTimeout::ZERO);
    if fds[0]
        .revents()
        .is_some_and(|r| r.contains(PollFlags::POLLHUP))
    {
        std::process::exit(1);
    }
    // The report fd is the worker's; the executor must not inherit it.
    let _ = nix::unistd::close(codencer_sandbox::REPORT_FD);
    let mut report = WorkerReport::default();
    match setup(&mut init, &mut report) {
        Ok(prepared) => supervise(init, report, prepared),
        Err(err) => {
            send(init.status.as_fd(), &refused(err, Some(report)));
            std::process::exit(125)
        }
    }
}

fn setup(init: &mut Init, report: &mut WorkerReport) -> Result<Prepared, String> {
    let spec = &init.exec.sandbox;
    report.layers = std::mem::take(&mut init.layers);
    let view = if init.userns {
        userns::unshare_mount().map_err(|e| fail("namespaces", &e))?;
        let view = Plan::new(spec)
            .and_then(Plan::enter)
            .map_err(|e| fail("building the filesystem view", &e))?;
        report.layers.push(layer(
            Layer::Filesystem,
            Enforcement::Enforced,
            format!(
                "{} mounts, pivot_root, fresh /proc, minimal /dev",
                view.mounts
            ),
        ));
        view
    } else {
        report.layers.push(layer(
            Layer::Filesystem,
            Enforcement::NotEnforced,
            "no mount namespace; Landlock only",
        ));
        let _ = prctl::set_child_subreaper(true);
        host_view(spec)
    };
    nix::unistd::chdir(&init.exec.cwd)
        .map_err(|e| fail(&format!("chdir {}", init.exec.cwd.display()), &e))?;
    let _ = nix::unistd::setsid();
    let (cgroup, namespaces_error) = join_worker_setup(&init.handoff, init.userns)?;
    // Without the late namespaces the sandbox has no network namespace of its own.
    let netns = init.userns && namespaces_error.is_none();
    if let Some(why) = namespaces_error {
        for l in report
            .layers
            .iter_mut()
            .filter(|l| l.layer == Layer::Namespaces)
        {
            *l = layer(
                Layer::Namespaces,
                Enforcement::Partial,
                format!("user, mount, pid, uts, cgroup; no ipc or net namespace: {why}"),
            );
        }
    }
    if init.userns {
        privs::lock_down().map_err(|e| fail("privileges", &e))?;
    } else {
        prctl::set_no_new_privs().map_err(|e| fail("no_new_privs", &e))?;
        let _ = prctl::set_dumpable(false);
    }
    report.limits = limits::apply_rlimits(&spec.limits, &cgroup, init.outside_root)
        .map_err(|e| fail("limits", &e))?;
    let program = seccomp::build().map_err(|e| fail("seccomp", &e))?;
    let privileges = privs::drop_remaining_caps().map_err(|e| fail("capabilities", &e))?;
    report.layers.push(restrict(&view, spec, netns));
    report
        .layers
        .push(seccomp::apply(&program).map_err(|e| fail("seccomp", &e))?);
    report.layers.push(privileges);
    report.layers.push(limits_layer(report));
    report.layers.push(network_layer(init, netns));
    report
        .layers
        .sort_by_key(|l| Layer::ALL.iter().position(|x| *x == l.layer));
    let missing: Vec<String> = report
        .layers
        .iter()
        .filter(|l| spec.requires(l.layer) && l.status != Enforcement::Enforced)
        .map(|l| format!("{} ({})", l.layer.name(), l.detail))
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "required layers not enforced on this host: {}. Fix: run `codencer doctor` for what to change, or relax `required`/`strict`",
            missing.join("; ")
        ));
    }
    exec::prepare(&init.exec)
}

/// Waits for the worker's hand-off (the cgroups made, PID 1 moved into the v2 ones, the
/// ipc and net namespaces made), moves ourselves into the v1 cgroups, joins the
/// namespaces, then roots a cgroup namespace there. Returns the cgroups (for the limits)
/// and why the ipc/net namespaces are missing, if they are. EOF means the worker died.
fn join_worker_setup(handoff: &OwnedFd, userns: bool) -> Result<(Cgroup, Option<String>), String> {
    let Some(handoff) = recv_handoff(handoff.as_fd()) else {
        std::process::exit(1)
    };
    let (mut cgroup, namespaces, namespaces_error) = match handoff {
        Handoff::Refused(err) => return Err(err),
        Handoff::Ready {
            cgroup,
            namespaces,
            namespaces_error,
        } => (cgroup, namespaces, namespaces_error),
    };
    cgroup
        .join_self()
        .map_err(|e| fail("joining the sandbox's cgroups", &e))?;
    userns::join(&namespaces).map_err(|e| fail("joining the sandbox's namespaces", &e))?;
    if userns {
        let _ = userns::unshare_cgroup();
    }
    Ok((cgroup, namespaces_error))
}

fn restrict(view: &View, spec: &SandboxSpec, netns: bool) -> LayerReport {
    let forward_ports: Vec<u16> = spec.forwards.iter().map(|f| f.addr.port()).collect();
    lock::restrict(view, &spec.network, &forward_ports, netns)
        .unwrap_or_else(|e| layer(Layer::Landlock, Enforcement::NotEnforced, chain(&e)))
}

fn limits_layer(report: &WorkerReport) -> LayerReport {
    let missing: Vec<_> = report
        .limits
        .iter()
        .filter(|l| l.mechanism == LimitMechanism::NotEnforced)
        .map(|l| format!("{:?}: {}", l.kind, l.detail))
        .collect();
    if report.limits.is_empty() {
        layer(Layer::Limits, Enforcement::Enforced, "no limits requested")
    } else if missing.is_empty() {
        layer(
            Layer::Limits,
            Enforcement::Enforced,
            "every requested limit has a mechanism",
        )
    } else {
        layer(Layer::Limits, Enforcement::Partial, missing.join("; "))
    }
}

fn network_layer(init: &Init, netns: bool) -> LayerReport {
    match (&init.exec.sandbox.network, netns) {
        (_, false) => layer(
            Layer::Network,
            Enforcement::NotEnforced,
            "no network namespace",
        ),
        (NetworkSpec::Host, true) => layer(
            Layer::Network,
            Enforcement::NotEnforced,
            "host network requested",
        ),
        (NetworkSpec::None, true) => layer(
            Layer::Network,
            Enforcement::Enforced,
            format!(
                "empty network namespace, loopback only{}",
                forwards_detail(&init.exec.sandbox)
            ),
        ),
        (NetworkSpec::Proxy { port, .. }, true) => layer(
            Layer::Network,
            Enforcement::Enforced,
            format!(
                "empty network namespace; 127.0.0.1:{port} bridged to the proxy{}",
                forwards_detail(&init.exec.sandbox)
            ),
        ),
    }
}

fn forwards_detail(spec: &SandboxSpec) -> String {
    if spec.forwards.is_empty() {
        return String::new();
    }
    let list: Vec<String> = spec.forwards.iter().map(|f| f.addr.to_string()).collect();
    format!("; forwarded: {}", list.join(", "))
}

/// Forks the executor and reaps until it and every other process are gone; in a kept
/// sandbox ([`ExecSpec::more`]), then runs each further command the same way.
fn supervise(init: Init, mut report: WorkerReport, prepared: Prepared) -> ! {
    send(init.status.as_fd(), &report);
    if init.exec.hold && !released() {
        send(
            init.status.as_fd(),
            &refused(
                "withdrawn: the caller closed the go pipe of this held sandbox without a go".into(),
                Some(report),
            ),
        );
        std::process::exit(125);
    }
    let mut child = match fork_command(&prepared, None) {
        Ok(child) => child,
        Err(err) => {
            send(
                init.status.as_fd(),
                &refused(format!("fork: {err}"), Some(report)),
            );
            std::process::exit(125);
        }
    };
    if init.exec.more {
        // Each command's output pipes are its own: ours must not keep the first one's open.
        quiet_std_fds();
    }
    let signals = handled_signals();
    let cpu_limit = init.exec.sandbox.limits.cpu_seconds;
    let mut exit: Option<ExitStatus> = None;
    loop {
        let Ok(sig) = signals.wait() else { continue };
        if sig != Signal::SIGCHLD {
            if exit.is_none() {
                let _ = kill(Pid::from_raw(-child.as_raw()), sig);
            }
            continue;
        }
        loop {
            match reap() {
                Reaped::Pid(pid, status, cpu) => {
                    if exit.is_none() {
                        note_denial(&mut report, &status, cpu, cpu_limit);
                    }
                    if pid == child {
                        exit = Some(status);
                        // The process is over: nothing it started may outlive it.
                        let target = if init.userns {
                            Pid::from_raw(-1)
                        } else {
                            Pid::from_raw(-child.as_raw())
                        };
                        let _ = kill(target, Signal::SIGKILL);
                    }
                }
                Reaped::None => break,
                Reaped::NoChildren => {
                    report.exit = exit.take();
                    send(init.status.as_fd(), &report);
                    if !init.exec.more {
                        std::process::exit(0);
                    }
                    // Nothing of the last command is left: the next one, or the end.
                    report.denials.clear();
                    let Some(next) = start_next(&init, &mut report) else {
                        std::process::exit(0)
                    };
                    child = next;
                    break;
                }
            }
        }
    }
}

/// Waits for a kept sandbox's next command and starts it; `None` once the caller ends the
/// commands. A command that cannot start (not found, not executable, no fork) ends like
/// one whose exec failed: its reason on its stderr, exit 127 (125 for the fork), and the
/// sandbox waits for the next.
fn start_next(init: &Init, report: &mut WorkerReport) -> Option<Pid> {
    loop {
        let (next, out, err) = next_command()?;
        report.exit = None;
        let (why, code) = match exec::prepare_command(&next.argv, &next.env) {
            Ok(prepared) => match fork_command(&prepared, Some((&next.cwd, &out, &err))) {
                // Our copies of its output close here: the command holds its own.
                Ok(child) => return Some(child),
                Err(why) => (why, 125),
            },
            Err(why) => (why, 127),
        };
        let _ = std::io::Write::write_all(
            &mut std::fs::File::from(err),
            format!("codencer-worker: {why}\n").as_bytes(),
        );
        report.exit = Some(ExitStatus::Exited { code });
        send(init.status.as_fd(), report);
    }
}

/// Forks a command: the first one (`None`) with our own stdout and stderr, a further one
/// with its working directory and output descriptors.
fn fork_command(
    prepared: &Prepared,
    next: Option<(&std::path::Path, &OwnedFd, &OwnedFd)>,
) -> Result<Pid, String> {
    // SAFETY: PID 1 is single-threaded.
    match unsafe { fork() } {
        Ok(ForkResult::Child) => {
            if let Some((cwd, out, err)) = next {
                let placed = nix::unistd::dup2_stdout(out)
                    .and_then(|()| nix::unistd::dup2_stderr(err))
                    .map_err(|e| e.to_string())
                    .and_then(|()| {
                        nix::unistd::chdir(cwd).map_err(|e| format!("chdir {}: {e}", cwd.display()))
                    });
                if let Err(why) = placed {
                    let _ = std::io::Write::write_all(
                        &mut std::io::stderr(),
                        format!("codencer-worker: {why}\n").as_bytes(),
                    );
                    std::process::exit(127);
                }
            }
            exec::exec(prepared)
        }
        Ok(ForkResult::Parent { child }) => Ok(child),
        Err(err) => Err(err.to_string()),
    }
}

/// Points our stdout and stderr at /dev/null (closes them if it cannot).
pub(crate) fn quiet_std_fds() {
    match std::fs::File::options()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        Ok(null) => {
            let _ = nix::unistd::dup2_stdout(&null);
            let _ = nix::unistd::dup2_stderr(&null);
        }
        Err(_) => {
            let _ = nix::unistd::close(1);
            let _ = nix::unistd::close(2);
        }
    }
}

/// The next command of a kept sandbox, with its stdout and stderr; `None` at end of file
/// (or anything unreadable): the sandbox ends.
fn next_command() -> Option<(codencer_sandbox::NextCommand, OwnedFd, OwnedFd)> {
    use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg};
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        let mut iov = [std::io::IoSliceMut::new(&mut buf)];
        let mut space = nix::cmsg_space!([std::os::fd::RawFd; 2]);
        let msg = match recvmsg::<()>(
            codencer_sandbox::CMD_FD,
            &mut iov,
            Some(&mut space),
            MsgFlags::MSG_CMSG_CLOEXEC,
        ) {
            Ok(msg) => msg,
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => return None,
        };
        let mut fds = Vec::new();
        if let Ok(cmsgs) = msg.cmsgs() {
            for cmsg in cmsgs {
                if let ControlMessageOwned::ScmRights(raw) = cmsg {
                    // SAFETY: the kernel just installed these descriptors for us.
                    fds.extend(
                        raw.into_iter()
                            .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) }),
                    );
                }
            }
        }
        let n = msg.bytes;
        if n == 0 {
            return None;
        }
        let next = serde_json::from_slice(&buf[..n]).ok()?;
        let mut fds = fds.into_iter();
        let (out, err) = (fds.next()?, fds.next()?);
        return Some((next, out, err));
    }
}

/// A held sandbox waits here, built, for the caller's go byte; `false` on end of file.
fn released() -> bool {
    // SAFETY: GO_FD stays open in PID 1 for a held sandbox (see outer::start).
    let go = unsafe { std::os::fd::BorrowedFd::borrow_raw(codencer_sandbox::GO_FD) };
    let mut byte = [0u8; 1];
    loop {
        match nix::unistd::read(go, &mut byte) {
            Err(nix::errno::Errno::EINTR) => continue,
            Ok(1) => return byte[0] == b'G',
            _ => return false,
        }
    }
}

enum Reaped {
    Pid(Pid, ExitStatus, f64),
    None,
    NoChildren,
}

fn reap() -> Reaped {
    let mut status = 0;
    // SAFETY: rusage is plain data; all-zero is valid.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: wait4 writes into the two locals we pass.
    let pid = unsafe { libc::wait4(-1, &mut status, libc::WNOHANG, &mut usage) };
    if pid == 0 {
        return Reaped::None;
    }
    if pid < 0 {
        return if std::io::Error::last_os_error().raw_os_error() == Some(libc::EINTR) {
            Reaped::None
        } else {
            Reaped::NoChildren
        };
    }
    let cpu = usage.ru_utime.tv_sec as f64
        + usage.ru_stime.tv_sec as f64
        + (usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) as f64 / 1e6;
    let exit = if libc::WIFSIGNALED(status) {
        signaled(libc::WTERMSIG(status))
    } else {
        ExitStatus::Exited {
            code: libc::WEXITSTATUS(status),
        }
    };
    Reaped::Pid(Pid::from_raw(pid), exit, cpu)
}

fn note_denial(report: &mut WorkerReport, status: &ExitStatus, cpu: f64, cpu_limit: Option<u64>) {
    let ExitStatus::Signaled { signal, .. } = status else {
        return;
    };
    let kind = match *signal {
        libc::SIGXCPU => DenialKind::CpuLimit,
        libc::SIGXFSZ => DenialKind::FileSizeLimit,
        libc::SIGSYS => DenialKind::Seccomp,
        libc::SIGKILL if cpu_limit.is_some_and(|l| cpu >= l as f64) => DenialKind::CpuLimit,
        _ => return,
    };
    if report.denials.len() < 32 {
        report.denials.push(Denial {
            kind,
            detail: format!(
                "a process was killed by {} after {cpu:.1}s of CPU",
                signal_name(*signal)
            ),
        });
    }
}
