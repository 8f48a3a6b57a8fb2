//! Fault injection for the reliability tests. Compiled in always, inert unless the
//! environment asks: `CODENCER_TEST_PANIC=step:<n>` makes the StepActor panic once, just
//! before it starts attempt `n`, `run:<n>` the RunActor before it starts step `n` (their
//! supervisors must record the failure and restart them from the store).
//! Documented in docs/reliability.md as a test hook, not a feature.

use std::sync::atomic::{AtomicBool, Ordering};

static FIRED: AtomicBool = AtomicBool::new(false);

/// Panics once per process when `CODENCER_TEST_PANIC` is `<site>:<n>`.
pub(crate) fn maybe_panic(site: &str, n: u32) {
    let Ok(wanted) = std::env::var("CODENCER_TEST_PANIC") else {
        return;
    };
    if wanted != format!("{site}:{n}") || FIRED.swap(true, Ordering::SeqCst) {
        return;
    }
    // Deliberate: this hook exists to exercise the actor supervision.
    #[allow(clippy::panic)]
    {
        panic!("CODENCER_TEST_PANIC: injected panic at {site} {n}");
    }
}
