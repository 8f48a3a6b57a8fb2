//! Integration suite of codencer-store (one binary).

// Test helpers (fixtures) are not `#[test]` functions, so clippy's allow-in-tests misses them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod blobs;
mod chain;
mod fixtures;
mod nodes;
mod projections;
mod queries;
mod wal;
