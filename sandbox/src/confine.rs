//! Confinement mechanics, called by `codencer-worker` in a single-threaded process.
//!
//! The order matters and is the worker's: [`userns`] (outside), cgroups and namespaces,
//! then in the sandbox's PID 1 [`fs`], [`privs`], [`limits`], [`lock`], [`seccomp`].

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
