//! Resource limits: each bomb is bounded, fast, and reported.

use std::process::Stdio;
use std::time::Duration;

use codencer_sandbox::{DenialKind, LimitKind, LimitMechanism};

use crate::harness::{self, Fixture, is_root, survivors};

#[test]
fn fork_bomb_stopped_by_pid_limit() {
    let fx = Fixture::new();
    let mut spec = fx.spec("exec -a forks987660 probe forks 200");
    spec.sandbox.limits.pids = Some(24);
    let out = harness::run(&spec, Some(Duration::from_secs(20)));
    out.ok();
    let forked: usize = out
        .stdout
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        (5..24).contains(&forked),
        "the limit was reached and held:\n{out}"
    );
    assert!(
        out.stdout.contains("FAILED") && !out.stdout.contains("FAILED 0"),
        "{out}"
    );
    let limit = out.report.limit(LimitKind::Pids).unwrap();
    assert_ne!(limit.mechanism, LimitMechanism::NotEnforced, "{out}");
    if limit.mechanism == LimitMechanism::CgroupV1 {
        assert!(
            out.report
                .denials
                .iter()
                .any(|d| d.kind == DenialKind::PidsLimit),
            "{out}"
        );
    }
    assert!(survivors("987660").is_empty());
}

#[test]
fn classic_fork_bomb_bounded_and_killed() {
    let fx = Fixture::new();
    let mut spec = fx.spec("bomb987661() { bomb987661 | bomb987661 & }; bomb987661; sleep 30");
    spec.sandbox.limits.pids = Some(32);
    let out = harness::run(&spec, Some(Duration::from_secs(2)));
    assert!(out.elapsed < Duration::from_secs(10), "{out}");
    assert!(survivors("bomb987661").is_empty());
    // The host is still fine and the same sandbox works again.
    fx.run("echo alive").ok().expect(&["alive"]);
}

#[test]
fn memory_bomb_stopped() {
    let fx = Fixture::new();
    let mut spec = fx.spec("probe alloc 16; probe alloc 2048; echo exit=$?");
    spec.sandbox.limits.memory_bytes = Some(256 << 20);
    let out = harness::run(&spec, Some(Duration::from_secs(20)));
    out.ok()
        .expect(&["ALLOCATED 16 MiB"])
        .never("ALLOCATED 2048");
    let limit = out.report.limit(LimitKind::MemoryBytes).unwrap();
    match limit.mechanism {
        LimitMechanism::CgroupV1 | LimitMechanism::CgroupV2 => {
            assert!(
                out.report
                    .denials
                    .iter()
                    .any(|d| d.kind == DenialKind::MemoryLimit),
                "{out}"
            );
            out.expect(&["exit=137"]);
        }
        LimitMechanism::Rlimit => {
            out.expect(&["ALLOC_FAILED"]);
        }
        LimitMechanism::NotEnforced => panic!("memory limit not enforced:\n{out}"),
    }
}

#[test]
fn cpu_spinner_stopped_by_cpu_limit() {
    let fx = Fixture::new();
    let mut spec = fx.spec("probe spin; echo rc=$?");
    spec.sandbox.limits.cpu_seconds = Some(1);
    harness::run(&spec, Some(Duration::from_secs(20)))
        .ok()
        .expect(&["rc=152"]);
    let mut spec = fx.spec("exec probe spin");
    spec.sandbox.limits.cpu_seconds = Some(1);
    let out = harness::run(&spec, Some(Duration::from_secs(20)));
    assert!(
        out.report
            .denials
            .iter()
            .any(|d| d.kind == DenialKind::CpuLimit),
        "{out}"
    );
    assert!(out.elapsed < Duration::from_secs(10));
}

#[test]
fn cpu_spinner_stopped_by_wall_time_kill() {
    let fx = Fixture::new();
    let spec = fx.spec("exec -a spin987662 probe spin");
    let out = harness::run(&spec, Some(Duration::from_millis(800)));
    assert!(out.report.worker_killed(), "{out}");
    assert!(
        out.report
            .denials
            .iter()
            .any(|d| d.kind == DenialKind::Killed)
    );
    let left = survivors("spin987662");
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn output_flood_capped() {
    let fx = Fixture::new();
    let mut spec = fx.spec("yes flood");
    spec.sandbox.limits.file_size_bytes = Some(1 << 20);
    let out_file = tempfile::NamedTempFile::new().unwrap();
    let handle = harness::spawn(&spec, Stdio::from(out_file.reopen().unwrap()));
    let report = handle.wait().unwrap();
    let size = std::fs::metadata(out_file.path()).unwrap().len();
    assert!(size <= 1 << 20, "output capped at 1 MiB, got {size}");
    assert!(size > 0);
    assert!(
        report
            .denials
            .iter()
            .any(|d| d.kind == DenialKind::FileSizeLimit),
        "{report:?}"
    );
}

#[test]
fn big_file_in_worktree_capped_but_small_ones_fine() {
    let fx = Fixture::new();
    let mut spec = fx.spec("head -c 100000 /dev/zero > small && echo SMALL-OK; head -c 5000000 /dev/zero > big; echo big=$?");
    spec.sandbox.limits.file_size_bytes = Some(1 << 20);
    let out = harness::run(&spec, None);
    out.ok().expect(&["SMALL-OK", "big=153"]);
    assert!(std::fs::metadata(fx.path("wt/big")).unwrap().len() <= 1 << 20);
}

#[test]
fn open_files_limited() {
    let fx = Fixture::new();
    let mut spec = fx.spec("ulimit -n; for i in $(seq 3 40); do eval \"exec $i</dev/null\" || { echo OPEN-FAILED-AT $i; break; }; done 2>/dev/null");
    spec.sandbox.limits.open_files = Some(32);
    harness::run(&spec, None)
        .ok()
        .expect(&["32", "OPEN-FAILED-AT 32"]);
}

#[test]
fn pid_limit_reports_its_mechanism() {
    let fx = Fixture::new();
    let mut spec = fx.spec("true");
    spec.sandbox.limits.pids = Some(50);
    spec.sandbox.limits.memory_bytes = Some(512 << 20);
    let out = harness::run(&spec, None);
    out.ok();
    let pids = out.report.limit(LimitKind::Pids).unwrap().mechanism;
    if is_root() {
        assert!(
            matches!(
                pids,
                LimitMechanism::CgroupV1 | LimitMechanism::CgroupV2 | LimitMechanism::NotEnforced
            ),
            "{out}"
        );
    } else {
        assert!(
            matches!(pids, LimitMechanism::Rlimit | LimitMechanism::CgroupV2),
            "{out}"
        );
    }
}
