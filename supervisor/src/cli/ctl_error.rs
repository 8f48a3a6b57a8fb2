//! How `orchestratorctl` fails: bad input (exit 2) or a broken store (exit 4).

use codencer_store::StoreError;

use crate::text::error_chain;

#[derive(Debug)]
pub enum CtlError {
    /// Something the user asked for does not exist or is malformed.
    Invalid(String),
    /// The store could not be read or written.
    Infrastructure(String),
}

impl From<String> for CtlError {
    fn from(message: String) -> CtlError {
        CtlError::Invalid(message)
    }
}

/// Unknown or ambiguous ids are the user's to fix; anything else is the store's failure.
pub fn store_error(err: StoreError) -> CtlError {
    match err {
        StoreError::RunNotFound { .. } | StoreError::AmbiguousRunId { .. } => {
            CtlError::Invalid(error_chain(&err))
        }
        other => CtlError::Infrastructure(error_chain(&other)),
    }
}
