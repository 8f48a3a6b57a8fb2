//! Other processes: ptrace, /proc, signals, terminals, leftovers.

use std::time::Duration;

use crate::harness::{self, Fixture, survivors};

#[test]
fn ptrace_the_worker() {
    let fx = Fixture::new();
    fx.run("probe ptrace_parent; probe ptrace_pid 1; probe fork")
        .ok()
        .expect(&["DENIED EPERM\nDENIED EPERM\nOK"]);
}

#[test]
fn ptrace_a_sibling() {
    let fx = Fixture::new();
    fx.run("probe ptrace_child; probe ptrace_traceme; sleep 0.1 & wait && echo SIBLING-RAN")
        .ok()
        .expect(&["DENIED EPERM\nDENIED EPERM", "SIBLING-RAN"]);
}

#[test]
fn process_vm_readv_a_sibling() {
    let fx = Fixture::new();
    fx.run("probe vm_read; cat /proc/self/status | grep -c ^Pid")
        .ok()
        .expect(&["DENIED EPERM", "1"]);
}

#[test]
fn read_proc_1_environ() {
    let fx = Fixture::new();
    fx.run("cat /proc/1/environ && echo ENVIRON-READ; readlink /proc/1/root && echo ROOT-READ; cat /proc/self/environ | tr '\\0' '\\n' | grep -c PATH")
        .ok()
        .never("ENVIRON-READ")
        .never("ROOT-READ")
        .expect(&["1"]);
}

#[test]
fn host_processes_invisible() {
    let fx = Fixture::new();
    let me = std::process::id();
    let out = fx.run(&format!(
        "test -e /proc/{me} && echo SUPERVISOR-VISIBLE; ps -e --no-headers | wc -l; ps -e -o pid= -o comm="
    ));
    out.ok().never("SUPERVISOR-VISIBLE");
    let count: usize = out
        .stdout
        .lines()
        .find_map(|l| l.trim().parse().ok())
        .unwrap();
    assert!(count <= 4, "only sandbox processes are visible:\n{out}");
}

#[test]
fn kill_the_supervisor_or_host_pids() {
    let fx = Fixture::new();
    let me = std::process::id();
    let out = fx.run(&format!(
        "probe kill {me} 9; kill -9 {me} && echo HOST-PID-SIGNALLED; sleep 0.2 & kill $! && echo OWN-KILLED"
    ));
    out.ok()
        .never("HOST-PID-SIGNALLED")
        .expect(&["DENIED ESRCH", "OWN-KILLED"]);
}

#[test]
fn tiocsti_into_a_terminal() {
    let fx = Fixture::new();
    fx.run("probe tiocsti; probe tiocsti_high; probe tiocgwinsz")
        .ok()
        .expect(&["DENIED EPERM\nDENIED EPERM\nOK"]);
}

#[test]
fn io_uring_setup() {
    let fx = Fixture::new();
    fx.run("probe io_uring; probe fork")
        .ok()
        .expect(&["DENIED EPERM\nOK"]);
}

#[test]
fn new_user_namespace() {
    let fx = Fixture::new();
    fx.run("probe unshare_user; probe clone_user; probe clone3; unshare -U true && echo UNSHARED; probe fork")
        .ok()
        .never("UNSHARED")
        .expect(&["DENIED EPERM\nDENIED EPERM\nDENIED ENOSYS", "OK"]);
}

#[test]
fn mount_anything() {
    let fx = Fixture::new();
    fx.run("probe mount; probe unshare_mount; probe chroot; probe setns; mount -t tmpfs none /tmp && echo MOUNTED; mkdir -p d && echo DIR-OK")
        .ok()
        .never("MOUNTED")
        .expect(&["DENIED EPERM\nDENIED EPERM\nDENIED EPERM\nDENIED", "DIR-OK"]);
}

#[test]
fn kernel_keyring_bpf_perf() {
    let fx = Fixture::new();
    fx.run("probe keyctl; probe add_key; probe bpf; probe perf; probe open_by_handle; echo after")
        .ok()
        .expect(&["DENIED EPERM\nDENIED EPERM\nDENIED EPERM\nDENIED EPERM\nDENIED EPERM\nafter"]);
}

#[test]
fn background_process_gone_after_attempt() {
    let fx = Fixture::new();
    let out = fx.run(
        "(sleep 987651 &) ; nohup sleep 987652 >/dev/null 2>&1 & setsid sleep 987653 & echo LEFT",
    );
    out.ok().expect(&["LEFT"]);
    for marker in ["987651", "987652", "987653"] {
        assert!(survivors(marker).is_empty(), "{:?}", survivors(marker));
    }
}

#[test]
fn env_has_no_operator_secrets() {
    // The test process's own environment stands for the supervisor's.
    let fx = Fixture::new();
    let out = fx.run("env; cat /proc/1/environ 2>/dev/null | tr '\\0' '\\n'");
    out.ok().expect(&["PATH=", "HOME=/home/codencer"]);
    for (key, _) in std::env::vars() {
        if ["PATH", "HOME", "LANG", "PWD", "SHLVL", "_", "OLDPWD"].contains(&key.as_str()) {
            continue;
        }
        assert!(
            !out.stdout.contains(&format!("{key}=")),
            "{key} leaked:\n{out}"
        );
    }
    assert!(!out.stdout.contains("SSH_AUTH_SOCK"));
}

#[test]
fn sleeper_stopped_by_wall_time_kill() {
    let fx = Fixture::new();
    let spec = fx.spec("echo started; sleep 987654; echo NEVER");
    let out = harness::run(&spec, Some(Duration::from_millis(700)));
    assert!(out.report.worker_killed(), "{out}");
    assert!(out.elapsed < Duration::from_secs(5));
    out.expect(&["started"]).never("NEVER");
    assert!(survivors("987654").is_empty());
}

#[test]
fn idle_killer_kills_the_whole_tree() {
    let fx = Fixture::new();
    let spec = fx.spec("sleep 987655 & sleep 987656 & (sleep 987657 &); wait");
    let out = harness::run(&spec, Some(Duration::from_millis(500)));
    assert!(out.report.worker_killed(), "{out}");
    for marker in ["987655", "987656", "987657"] {
        assert!(
            survivors(marker).is_empty(),
            "{marker}: {:?}",
            survivors(marker)
        );
    }
}

#[test]
fn sigterm_forwarded_to_executor() {
    let fx = Fixture::new();
    let spec = fx.spec(
        "trap 'echo GOT-TERM; exit 7' TERM; echo ready; for i in $(seq 100); do sleep 0.05; done",
    );
    let out = harness::run_with(&spec, None, |pid| {
        std::thread::sleep(Duration::from_millis(400));
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    });
    out.expect(&["ready", "GOT-TERM"]);
    assert_eq!(out.code(), 7, "{out}");
}

#[test]
fn held_sandbox_starts_nothing_before_its_go() {
    let fx = Fixture::new();
    let mut spec = fx.spec("echo ran > held.txt; echo HELD-RAN");
    spec.hold = true;
    let mut handle = harness::spawn(&spec, std::process::Stdio::piped());
    // Built and waiting: nothing of the process has happened yet.
    std::thread::sleep(Duration::from_millis(500));
    assert!(!fx.wt().join("held.txt").exists());
    handle.take_go().expect("a held worker has a go").release();
    let report = handle.wait().unwrap();
    assert!(report.setup_error.is_none(), "{report:?}");
    assert_eq!(
        report.exit,
        Some(codencer_sandbox::ExitStatus::Exited { code: 0 })
    );
    assert_eq!(
        std::fs::read_to_string(fx.wt().join("held.txt")).unwrap(),
        "ran\n"
    );
}

#[test]
fn held_sandbox_withdrawn_runs_nothing() {
    let fx = Fixture::new();
    let mut spec = fx.spec("echo ran > held.txt");
    spec.hold = true;
    let mut handle = harness::spawn(&spec, std::process::Stdio::null());
    drop(handle.take_go());
    let report = handle.wait().unwrap();
    assert!(
        report
            .setup_error
            .as_deref()
            .is_some_and(|e| e.contains("withdrawn")),
        "{report:?}"
    );
    assert_eq!(report.exit, None);
    assert!(!fx.wt().join("held.txt").exists());
}

/// The supervisor builds the executor's sandbox while git checks the worktree out: the
/// worktree is registered (`git worktree add --detach --no-checkout`) and the branch's ref
/// directories made first, the checkout runs after the sandbox is built. The sandbox must
/// see every checked-out file and commit on the branch the checkout made.
#[test]
fn held_sandbox_sees_a_checkout_made_after_it_was_built() {
    let fx = Fixture::new();
    let repo = fx.path("repo");
    let wt = fx.path("late-wt");
    let branch = "codencer/late/1/1";
    codencer_tests::git(
        &repo,
        &[
            "worktree",
            "add",
            "-q",
            "--detach",
            "--no-checkout",
            wt.to_str().unwrap(),
            "HEAD",
        ],
    );
    for refs in ["refs/heads", "logs/refs/heads"] {
        std::fs::create_dir_all(repo.join(".git").join(refs).join("codencer/late/1")).unwrap();
    }
    let mut spec = fx.spec(
        "{ cat app.txt; git status --porcelain --untracked-files=no | wc -l; \
         echo change >> app.txt && git commit -qam change 2>/dev/null && echo COMMITTED; } > out.txt 2>&1",
    );
    spec.cwd = wt.clone();
    spec.sandbox.worktree = wt.clone();
    spec.sandbox.git_branch = Some(branch.to_owned());
    spec.hold = true;
    let mut handle = harness::spawn(&spec, std::process::Stdio::null());
    // Built and waiting (the held test above shows it runs nothing meanwhile).
    std::thread::sleep(Duration::from_millis(300));
    assert!(!wt.join("app.txt").exists());
    codencer_tests::git(&wt, &["checkout", "-q", "-f", "-b", branch]);
    handle.take_go().expect("a held worker has a go").release();
    let report = handle.wait().unwrap();
    assert!(report.setup_error.is_none(), "{report:?}");
    let out = std::fs::read_to_string(wt.join("out.txt")).unwrap();
    assert_eq!(out, "line 1\n0\nCOMMITTED\n", "{out}");
    let log = codencer_tests::git(&repo, &["log", "--format=%s", branch]);
    assert_eq!(log.lines().next(), Some("change"), "{log}");
}

/// Runs `cmd` as a kept sandbox's next command: its exit, then its stdout and stderr, each
/// read to the end (they end with the command).
fn run_next(
    handle: &mut codencer_sandbox::WorkerHandle,
    cmd: &codencer_sandbox::NextCommand,
) -> (Option<codencer_sandbox::ExitStatus>, String, String) {
    use std::io::Read;
    use std::os::fd::AsFd;
    let (mut out, out_w) = std::io::pipe().unwrap();
    let (mut err, err_w) = std::io::pipe().unwrap();
    handle.run_next(cmd, out_w.as_fd(), err_w.as_fd()).unwrap();
    drop((out_w, err_w));
    let report = handle.wait_exit().unwrap().expect("the sandbox is kept");
    let (mut text, mut errors) = (String::new(), String::new());
    out.read_to_string(&mut text).unwrap();
    err.read_to_string(&mut errors).unwrap();
    (report.exit, text, errors)
}

/// A kept sandbox (`more`): after the first process, further commands run one at a time in
/// the same confinement, each with its own output, and nothing of an earlier one is left.
#[test]
fn kept_sandbox_runs_further_commands_alone_with_their_own_output() {
    use std::io::Read;
    let fx = Fixture::new();
    let mut spec = fx.spec("sleep 30 & echo $! > /tmp/sleeper; echo first; exit 3");
    spec.hold = true;
    spec.more = true;
    let (mut first_out, first_w) = std::io::pipe().unwrap();
    let mut handle = harness::spawn(&spec, std::process::Stdio::from(first_w));
    handle.take_go().expect("a held worker has a go").release();
    let first = handle.wait_exit().unwrap().expect("the sandbox is kept");
    assert_eq!(
        first.exit,
        Some(codencer_sandbox::ExitStatus::Exited { code: 3 })
    );
    // The first command's output ends with it: nothing else holds its pipe.
    let mut text = String::new();
    first_out.read_to_string(&mut text).unwrap();
    assert_eq!(text, "first\n");

    let script = format!(
        "kill -0 $(cat /tmp/sleeper) 2>/dev/null && echo SLEEPER-ALIVE || echo sleeper-gone; \
         cat {}/home/.ssh/id_rsa 2>/dev/null || echo no-key; pwd; echo to-stderr >&2",
        fx.root().display()
    );
    let next = codencer_sandbox::NextCommand {
        argv: vec!["/bin/bash".into(), "-c".into(), script],
        cwd: fx.wt(),
        env: spec.env.clone(),
    };
    let (exit, text, errors) = run_next(&mut handle, &next);
    assert_eq!(exit, Some(codencer_sandbox::ExitStatus::Exited { code: 0 }));
    assert_eq!(
        text,
        format!("sleeper-gone\nno-key\n{}\n", fx.wt().display())
    );
    assert_eq!(errors, "to-stderr\n");

    // A command that cannot start ends with 127 and says why; the sandbox stays.
    let missing = codencer_sandbox::NextCommand {
        argv: vec!["no-such-program".into()],
        ..next.clone()
    };
    let (exit, _, errors) = run_next(&mut handle, &missing);
    assert_eq!(
        exit,
        Some(codencer_sandbox::ExitStatus::Exited { code: 127 })
    );
    assert!(errors.contains("no-such-program: not found"), "{errors}");
    let last = codencer_sandbox::NextCommand {
        argv: vec!["/bin/sh".into(), "-c".into(), "echo still-here".into()],
        ..next
    };
    let (exit, text, _) = run_next(&mut handle, &last);
    assert!(exit.is_some());
    assert_eq!(text, "still-here\n");

    // No more commands: the sandbox ends, reporting the last one.
    handle.end_commands();
    let last = handle.wait().unwrap();
    assert_eq!(
        last.exit,
        Some(codencer_sandbox::ExitStatus::Exited { code: 0 })
    );
    assert!(last.setup_error.is_none(), "{last:?}");
}
