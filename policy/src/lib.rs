//! codencer-policy: the policy model, layered loading with origin tracking, `strict`,
//! TaskSpec narrowing, and evaluation (admission, post-exec checks, gates, retries).
//!
//! Pure apart from reading policy files: the supervisor resolves the environment, probes
//! the host, reads secrets and records the decisions returned here as events.
//! See `docs/policy.md` for the file format and the layering rules.
#![forbid(unsafe_code)]

mod builtin;
mod check;
mod effective;
mod error;
mod evaluate;
mod explain;
mod model;
mod narrow;
mod network;
mod parse;
mod resolve;
mod schema;
mod units;
mod value;

pub use builtin::EXECUTORS as BUILTIN_EXECUTORS;
pub use check::{CheckedFile, check_dir};
pub use effective::{
    EffectivePolicy, EnvPolicy, FilesystemPolicy, GatePolicy, Limits, NetworkPolicy, PolicyValues,
    RetryPolicy,
};
pub use error::{FloorViolation, PolicyError};
pub use evaluate::{
    ChangeSummary, Decision, Enforcement, Evaluation, HostLayers, ValidationSummary, Verdict,
    admit, check_changes, gate_verdicts, retry_allowed,
};
pub use explain::{ExplainedValue, Explanation, explain};
pub use model::{
    ApprovalMode, FailureKind, Layer, NetworkMode, Origin, SandboxLayer, SecretSource,
    ViolationAction,
};
pub use narrow::TaskNarrowing;
pub use network::{Forward, HostRule, NetworkRules};
pub use resolve::{PolicySources, load};
