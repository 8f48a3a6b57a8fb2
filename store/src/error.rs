//! The store's error type.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A filesystem operation on the state directory failed.
    #[error("I/O error on {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// The database file could not be opened or configured.
    #[error("cannot open database {path}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    /// A schema migration failed.
    #[error("migration to schema version {version} failed")]
    Migration {
        version: u32,
        #[source]
        source: rusqlite::Error,
    },
    /// The database was written by a newer codencer.
    #[error("database schema version {found} is newer than this build supports ({supported})")]
    SchemaTooNew { found: u32, supported: u32 },
    /// Any other SQLite failure.
    #[error("database error")]
    Sqlite(#[from] rusqlite::Error),
    /// An event payload could not be encoded as JSON.
    #[error("cannot encode the payload of a {kind} event")]
    Encode {
        kind: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// A stored event could not be decoded (unknown kind or malformed payload).
    #[error("cannot decode event {seq} ({kind})")]
    Decode {
        seq: u64,
        kind: String,
        #[source]
        source: serde_json::Error,
    },
    /// An event lacks an id its kind requires (e.g. `step.created` without a step id).
    #[error("a {kind} event needs a {field}")]
    MissingId {
        kind: &'static str,
        field: &'static str,
    },
    /// An event refers to a node of the run tree that does not exist.
    #[error("a {kind} event refers to unknown {node} {id}")]
    UnknownNode {
        kind: &'static str,
        node: &'static str,
        id: String,
    },
    /// An event creates a node of the run tree that already exists.
    #[error("a {kind} event creates {node} {id}, which already exists")]
    DuplicateNode {
        kind: &'static str,
        node: &'static str,
        id: String,
    },
    /// No run id starts with the given prefix.
    #[error("no run id starts with {prefix:?}")]
    RunNotFound { prefix: String },
    /// More than one run id starts with the given prefix.
    #[error("run id prefix {prefix:?} is ambiguous: {}", candidates.join(", "))]
    AmbiguousRunId {
        prefix: String,
        /// A few of the matching ids.
        candidates: Vec<String>,
    },
    /// A blob name is not 64 lowercase hex digits.
    #[error("{sha256:?} is not a sha256 hex digest")]
    InvalidSha256 { sha256: String },
    /// No blob with this digest is stored.
    #[error("no blob {sha256}")]
    BlobNotFound { sha256: String },
}

impl StoreError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> StoreError {
        let path = path.into();
        move |source| StoreError::Io { path, source }
    }
}
