//! The supervision tree: root -> run -> step, and the policy actor they consult.

pub mod policy;
pub mod root;
pub mod run;
pub mod step;
