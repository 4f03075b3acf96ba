//! Storage errors: everything that can go wrong below the rules.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "data dir {path} is in use by another process (a running server holds it: audit it with --endpoint URL, or stop it)"
    )]
    InUse { path: PathBuf },
    #[error("{path} does not exist")]
    NoDataDir { path: PathBuf },
    #[error("{path} is not a secret-ledger data dir (it has no db file)")]
    NotADataDir { path: PathBuf },
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

impl StoreError {
    /// `Ok` if `path` looks like a data dir (it holds sled's `db` file).
    pub fn check_data_dir(path: &std::path::Path) -> Result<(), StoreError> {
        if !path.exists() {
            return Err(StoreError::NoDataDir { path: path.to_path_buf() });
        }
        if !path.join("db").exists() {
            return Err(StoreError::NotADataDir { path: path.to_path_buf() });
        }
        Ok(())
    }
}

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> StoreError {
        match e {
            sled::Error::Io(io) => StoreError::Io(io),
            other => StoreError::Engine(other.to_string()),
        }
    }
}
