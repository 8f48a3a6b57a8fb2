//! Confinement mechanics, called by `codencer-worker` in a single-threaded process.
//!
//! The order matters and is the worker's: [`userns`] (user, pid, uts) outside, then fork;
//! the sandbox's PID 1 builds the view ([`fs`]) while the worker makes the ipc and net
//! namespaces ([`net`]) and the cgroups ([`limits`]) and hands them over; PID 1 joins them,
//! then [`privs`], [`limits`] (rlimits), [`lock`], [`seccomp`].

pub mod fs;
pub mod limits;
pub mod lock;
mod mount;
pub mod net;
pub mod privs;
pub mod seccomp;
pub mod userns;

use crate::report::{Enforcement, LayerReport};
use crate::spec::Layer;

/// A layer report.
pub fn layer(layer: Layer, status: Enforcement, detail: impl Into<String>) -> LayerReport {
    LayerReport {
        layer,
        status,
        detail: detail.into(),
    }
}
