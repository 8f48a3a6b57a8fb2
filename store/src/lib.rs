//! codencer-store: the record of every run.
//!
//! An append-only, hash-chained event log in SQLite, the run tree folded from it when read,
//! and content-addressed blobs for artifacts (small ones in the database, large ones in
//! files). See `docs/store.md`.
#![forbid(unsafe_code)]

mod blobs;
mod chain;
mod error;
mod fold;
mod inline;
mod model;
mod nodes;
mod project;
mod queries;
mod rebuild;
mod rows;
mod schema;
mod sqltypes;
mod store;
mod tokens;
mod verify;

pub use blobs::BlobProblem;
pub use chain::GENESIS_HASH;
pub use error::StoreError;
pub use inline::{BlobContent, INLINE_BLOB_MAX_BYTES, StagedBlob};
pub use model::*;
pub use rebuild::{ColumnDiff, ProjectionDiff, ProjectionReport, RowDifference, TableCount};
pub use store::{Store, new_id};
pub use verify::{BlobIssue, BrokenLink, LinkProblem, VerifyReport};
