//! Shared helpers for the end-to-end suites.
#![forbid(unsafe_code)]
