//! Why an audit question has no answer.

use ledger_store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// No secret of that id in the whole log.
    #[error("{0}")]
    NotFound(String),
    /// A member (or CLI argument) has an unusable value.
    #[error("{0}")]
    Invalid(String),
    /// A name with no region, used in several regions: the message lists them with their ARNs.
    #[error("{0}")]
    Ambiguous(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// At most 64 characters of `text`, for messages that quote what a caller sent.
pub(crate) fn short(text: &str) -> String {
    text.chars().take(64).collect()
}
