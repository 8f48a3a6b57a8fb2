//! `PolicyError`: every way a policy can be unreadable, malformed, or too loose.
//!
//! Messages name the file, the line and the key, and say how to fix the problem.

use std::path::PathBuf;

/// Why a policy could not be loaded, validated or narrowed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// A policy file could not be read.
    #[error("{}: cannot read policy file", .path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A policy directory could not be listed.
    #[error("{}: cannot list policy directory", .dir.display())]
    ReadDir {
        /// The directory.
        dir: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML.
    #[error("{file}:{line}: invalid TOML: {message}")]
    Syntax {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// The parser's message.
        message: String,
    },
    /// A key the policy schema does not know.
    #[error("{file}:{line}: {}: unknown key (known here: {known})", display_key(.key))]
    UnknownKey {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Dotted key.
        key: String,
        /// The keys allowed at that place.
        known: String,
    },
    /// A value of the wrong TOML type.
    #[error("{file}:{line}: {}: expected {expected}, found {found}", display_key(.key))]
    WrongType {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Dotted key.
        key: String,
        /// What the schema wants.
        expected: &'static str,
        /// What the file has.
        found: &'static str,
    },
    /// A value of the right type that does not make sense (bad duration, bad host, ...).
    #[error("{file}:{line}: {} = {value}: {problem}", display_key(.key))]
    InvalidValue {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// Dotted key.
        key: String,
        /// The value as written.
        value: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// An operator value looser than the organisation-wide floor.
    #[error("{0}")]
    WidensFloor(Box<FloorViolation>),
    /// Two values of the same layer and rank disagree.
    #[error(
        "{first} and {second} both set {} but disagree ({values}); files of the same layer that apply to the same executor must agree (remove one)",
        display_key(.key)
    )]
    Conflict {
        /// Dotted key.
        key: String,
        /// `file:line` of the first value.
        first: String,
        /// `file:line` of the second value.
        second: String,
        /// The two values, `first vs second`.
        values: String,
    },
    /// Two effective values contradict each other.
    #[error("{first} contradicts {second}: {problem}")]
    Contradiction {
        /// `file:line: key` of the first value.
        first: String,
        /// `file:line: key` of the second value.
        second: String,
        /// What contradicts and how to fix it.
        problem: String,
    },
    /// A TaskSpec asked for more than the policy allows.
    #[error(
        "{source_name}: {} = {value} would widen the policy ({current}); a TaskSpec may only narrow",
        display_key(.key)
    )]
    TaskWidens {
        /// The TaskSpec (file name or id) as passed by the caller.
        source_name: String,
        /// Dotted key.
        key: String,
        /// The requested value.
        value: String,
        /// The effective value and where it was set.
        current: String,
    },
    /// A TaskSpec value that is malformed.
    #[error("{source_name}: {} = {value}: {problem}", display_key(.key))]
    TaskInvalid {
        /// The TaskSpec (file name or id).
        source_name: String,
        /// Dotted key.
        key: String,
        /// The requested value.
        value: String,
        /// What is wrong.
        problem: String,
    },
    /// The TaskSpec named a profile no file defines.
    #[error(
        "unknown policy profile `{profile}` (known: {known}); define it with `profile = \"{profile}\"` in a policy file"
    )]
    UnknownProfile {
        /// The requested profile.
        profile: String,
        /// Profiles that exist.
        known: String,
    },
}

/// `limits.wall` -> `[limits] wall`; `strict` stays `strict`.
pub(crate) fn display_key(key: &str) -> String {
    match key.rsplit_once('.') {
        Some((section, leaf)) => format!("[{section}] {leaf}"),
        None => key.to_owned(),
    }
}

/// An operator value that would loosen the floor; names both files.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{file}:{line}: {} = {value} widens the floor set at {floor_file}:{floor_line} ({floor_value}); {hint}",
    display_key(.key)
)]
pub struct FloorViolation {
    /// The operator file.
    pub file: String,
    /// 1-based line in the operator file.
    pub line: usize,
    /// Dotted key.
    pub key: String,
    /// The operator's value.
    pub value: String,
    /// The floor file.
    pub floor_file: String,
    /// 1-based line in the floor file.
    pub floor_line: usize,
    /// The floor's value.
    pub floor_value: String,
    /// How to fix it.
    pub hint: String,
}
