//! The chaos suite: many short runs, with workers, executors, validators and whole
//! supervisors killed (SIGKILL) at seeded moments; after each run (and its resumes) the
//! record must be complete, consistent and verifiable, and no write may be lost.
//!
//! `CHAOS_SEED` (default 1) fixes the kill schedule, `CHAOS_KILLS` (default 200) the number
//! of kills, `CHAOS_LANES` (default 3) how many runs go on at once. A soak:
//! `CHAOS_SEED=$RANDOM CHAOS_KILLS=5000 cargo test -p codencer-tests --test chaos -- --nocapture`.
#![forbid(unsafe_code)]
#![allow(clippy::expect_used, clippy::unwrap_used, clippy::print_stderr)]

mod checks;
mod lane;
mod procs;
mod rng;

use std::sync::Arc;
use std::sync::atomic::AtomicI64;
use std::time::Instant;

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn chaos() {
    let seed = env_u64("CHAOS_SEED", 1);
    let kills = env_u64("CHAOS_KILLS", 200);
    let lanes = env_u64("CHAOS_LANES", 3).max(1);
    let worker = codencer_tests::bin("codencer-worker");
    let started = Instant::now();
    let budget = Arc::new(AtomicI64::new(kills as i64));
    let handles: Vec<_> = (0..lanes)
        .map(|lane| {
            let budget = budget.clone();
            std::thread::spawn(move || lane::run(lane, seed, &budget))
        })
        .collect();
    let mut total = lane::Tally::default();
    for handle in handles {
        let tally = handle.join().expect("lane panicked");
        for (sum, k) in total.kills.iter_mut().zip(tally.kills) {
            *sum += k;
        }
        total.runs += tally.runs;
        total.findings.absorb(tally.findings);
    }
    let left = procs::running(&worker);
    if !left.is_empty() {
        total
            .findings
            .inconsistent
            .push(format!("codencer-worker processes left running: {left:?}"));
    }
    let f = &total.findings;
    let done: u64 = total.kills.iter().sum();
    eprintln!(
        "chaos: {done} kills, {} runs, {} lost, {} inconsistent",
        total.runs,
        f.lost.len(),
        f.inconsistent.len()
    );
    eprintln!(
        "chaos: seed {seed}; kills: {} worker, {} executor, {} validator, {} supervisor; {} write(s) recorded lost-by-kill; {:.1}s",
        total.kills[0],
        total.kills[1],
        total.kills[2],
        total.kills[3],
        f.recorded_lost,
        started.elapsed().as_secs_f64()
    );
    for problem in f.lost.iter().chain(&f.inconsistent).take(30) {
        eprintln!("  {problem}");
    }
    assert!(
        f.lost.is_empty() && f.inconsistent.is_empty(),
        "chaos found problems (seed {seed})"
    );
    assert!(done >= kills, "only {done} of {kills} kills happened");
}
