//! Storage errors: everything that can go wrong below the rules.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("data dir {path} is in use by another process")]
    InUse { path: PathBuf },
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("storage engine error: {0}")]
    Engine(String),
    #[error("the log is corrupt at seq {seq}: {reason}")]
    Corrupt { seq: u64, reason: String },
    #[error("the storage engine's files are damaged: {reason}")]
    Damaged { reason: String },
    #[error("a data key cannot be unwrapped with this master key (wrong key for this data dir?)")]
    WrongMasterKey,
    #[error("writes are disabled after a storage failure ({reason}); reads still work; restart to recover")]
    Poisoned { reason: String },
    #[error("the ledger is closed")]
    Closed,
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> StoreError {
        match e {
            sled::Error::Io(io) => StoreError::Io(io),
            other => StoreError::Engine(other.to_string()),
        }
    }
}
