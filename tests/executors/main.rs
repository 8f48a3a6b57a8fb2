//! The real executor CLIs (installed by `scripts/install-executors.sh` into
//! `.tools/npm`), confined by the real sandbox, driven end to end through `codencer run`
//! against the scripted mock model server (`tests/mock_model`), reached through the
//! policy's `forward` rule. Slow: each case starts a real CLI.

// Helpers of tests panic on unexpected shapes, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod cases;
mod harness;
