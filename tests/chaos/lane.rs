//! One lane: runs after runs in its own repository and state directory, killing a worker,
//! an executor, a validator or the whole supervisor at seeded moments, resuming after
//! supervisor kills, and checking each run once it ended.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use codencer_tests::Sandbox;

use crate::checks::{self, Findings};
use crate::procs;
use crate::rng::Rng;

/// What gets killed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    Worker,
    Executor,
    Validator,
    Supervisor,
}

pub const TARGETS: [Target; 4] = [
    Target::Worker,
    Target::Executor,
    Target::Validator,
    Target::Supervisor,
];

/// What a lane did and found.
#[derive(Debug, Default)]
pub struct Tally {
    pub kills: [u64; 4],
    pub runs: u64,
    pub findings: Findings,
}

/// How long one run (with its kills and resumes) may take before it counts as hung.
const RUN_LIMIT: Duration = Duration::from_secs(120);

pub fn run(lane: u64, seed: u64, budget: &AtomicI64) -> Tally {
    let sb = Sandbox::new();
    // Room for several kills per run: the retry policy decides, and allows 8 attempts.
    sb.policy("default.toml", "[retry]\nmax_attempts = 8\n");
    let mut rng = Rng::new(seed.wrapping_mul(1_000_003).wrapping_add(lane));
    let mut tally = Tally::default();
    let mut seen: HashSet<String> = HashSet::new();
    let mut n = 0u64;
    while budget.load(Ordering::SeqCst) > 0 {
        n += 1;
        let exe = format!("cxe-{lane}-{n}-");
        let val = format!("cxv-{lane}-{n}-");
        let spec = sb.spec(&format!("chaos-{n}.yaml"), &spec_text(&sb, &exe, &val));
        let mut child = start(&sb, &["run", "--json", path(&spec)], n, 0);
        let mut run_id: Option<String> = None;
        let kills = 2 + rng.below(4);
        let deadline = Instant::now() + RUN_LIMIT;
        for k in 0..kills {
            if budget.load(Ordering::SeqCst) <= 0 {
                break;
            }
            let target = TARGETS[rng.below(4) as usize];
            let supervisor = child.id();
            let victim = match target {
                Target::Supervisor => {
                    let delay = Duration::from_millis(rng.below(2500));
                    let until = Instant::now() + delay;
                    while Instant::now() < until && running(&mut child) {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    running(&mut child).then_some(supervisor)
                }
                Target::Executor => find(&mut child, || first(procs::with_marker(&exe))),
                Target::Validator => find(&mut child, || first(procs::with_marker(&val))),
                Target::Worker => find(&mut child, || first(procs::workers_of(supervisor))),
            };
            let Some(pid) = victim else {
                break; // the run ended before the moment came
            };
            if target != Target::Supervisor {
                let delay = match target {
                    Target::Validator => rng.below(400),
                    _ => rng.below(900),
                };
                std::thread::sleep(Duration::from_millis(delay));
            }
            if !procs::kill(pid) {
                continue;
            }
            budget.fetch_sub(1, Ordering::SeqCst);
            tally.kills[target as usize] += 1;
            if target == Target::Supervisor {
                let _ = child.wait();
                run_id = run_id.or_else(|| newest_unseen(&sb, &seen));
                tally
                    .findings
                    .absorb(verify_only(&sb, &format!("after supervisor kill {n}.{k}")));
                child = match &run_id {
                    Some(id) => start(&sb, &["resume", "--json", id], n, k + 1),
                    // Killed before the run was recorded: nothing to resume.
                    None => start(&sb, &["run", "--json", path(&spec)], n, k + 1),
                };
            }
        }
        while running(&mut child) {
            if Instant::now() > deadline {
                let _ = child.kill();
                tally
                    .findings
                    .inconsistent
                    .push(format!("lane {lane} run {n}: hung for {RUN_LIMIT:?}"));
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.wait();
        let Some(id) = run_id.or_else(|| newest_unseen(&sb, &seen)) else {
            tally
                .findings
                .inconsistent
                .push(format!("lane {lane} run {n}: never recorded"));
            continue;
        };
        seen.insert(id.clone());
        tally.runs += 1;
        let when = format!("lane {lane} run {n} ({id})");
        tally.findings.absorb(checks::record(&sb, &when));
        tally.findings.absorb(checks::projections(&sb, &when));
        tally.findings.absorb(checks::run(&sb, &id, &[exe, val]));
    }
    let mounts = checks::mounts_under(sb.dir.path());
    if !mounts.is_empty() {
        tally
            .findings
            .inconsistent
            .push(format!("lane {lane}: mounts left behind: {mounts:?}"));
    }
    tally
}

/// A step whose executor appends numbered lines to two files (flushed by every `echo`),
/// with a slow validator; both carry a marker in their command line.
fn spec_text(sb: &Sandbox, exe: &str, val: &str) -> String {
    format!(
        "task:
  name: chaos
  workspace: {}
  executor: shell
  command: ': {exe}; i=0; while [ $i -lt 12 ]; do i=$((i+1)); echo \"a $i\" >> chaos-a.txt; echo \"b $i\" >> chaos-b.txt; sleep 0.06; done'
  goal: write numbered lines
  max_attempts: 8
  validators: [': {val}; sleep 0.3; test -s chaos-a.txt']
",
        sb.repo().display()
    )
}

fn start(sb: &Sandbox, args: &[&str], n: u64, k: u64) -> Child {
    let log = |what: &str| -> Stdio {
        let file = std::fs::File::create(sb.dir.path().join(format!("log-{n}-{k}.{what}")))
            .expect("log file");
        Stdio::from(file)
    };
    let mut cmd: Command = sb.command("codencer");
    cmd.args(args)
        .arg("--grace")
        .arg("1")
        .stdout(log("out"))
        .stderr(log("err"))
        .spawn()
        .expect("spawn codencer")
}

fn find(child: &mut Child, mut pick: impl FnMut() -> Option<u32>) -> Option<u32> {
    procs::wait_for(&mut pick, || running(child), Duration::from_secs(30))
}

fn running(child: &mut Child) -> bool {
    matches!(child.try_wait(), Ok(None))
}

fn first(pids: Vec<u32>) -> Option<u32> {
    pids.into_iter().next()
}

fn path(p: &std::path::Path) -> &str {
    p.to_str().expect("utf-8 path")
}

/// The run this lane started last, unless already checked.
fn newest_unseen(sb: &Sandbox, seen: &HashSet<String>) -> Option<String> {
    let db: PathBuf = sb.state().join("codencer.db");
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .ok()?;
    let id: String = conn
        .query_row(
            "SELECT run_id FROM events WHERE kind = 'run.created' ORDER BY seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .ok()?;
    (!seen.contains(&id)).then_some(id)
}

/// Right after a supervisor kill, before any recovery: the chain and blobs verify.
fn verify_only(sb: &Sandbox, when: &str) -> Findings {
    let mut f = Findings::default();
    if !sb.state().join("codencer.db").exists() {
        return f;
    }
    let out = sb.codencer(&["store", "verify", "--json"]);
    if out.code != Some(0) {
        f.inconsistent
            .push(format!("{when}: store verify failed: {out}"));
    }
    f
}
