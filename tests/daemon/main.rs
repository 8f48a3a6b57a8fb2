//! The daemon end to end: the real `orchestratord` on a free loopback port, driven over
//! HTTP, through MCP (the Python SDK's client) and with `orchestratorctl`.

// Helpers of tests panic on unexpected shapes, like the tests themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod api;
mod auth;
mod harness;
mod mcp;
mod runs;
