//! Master-key rotation (`secret-ledger rotate-master-key`), with the server stopped.
//!
//! 1. Open the ledger under the current key (every check of an open: the chain, the key file).
//! 2. Write a new random key, id + 1, to `.NAME.next` beside the key file (exclusive, synced).
//! 3. Re-wrap every data key (live and scheduled for deletion) under the new key and replace
//!    the data-key file (rename): the commit point. From here the old key opens nothing.
//! 4. Rename `.NAME.next` over the key file.
//! 5. Open the ledger under the new key: the open sees the log's last recorded key is older and
//!    appends `MasterKeyRotated`.
//!
//! A kill before 3 leaves the old key in charge (the stale next key is removed on the next
//! start); a kill after 3 leaves the new key in `.NAME.next`, which the next start moves into
//! place ([`finish_interrupted`]); a kill before 5 finishes leaves the event to the next open.

use std::path::Path;
use std::sync::Arc;

use crate::master_key::{self as files, SecretFileError as FileError};
use crate::{Ledger, LedgerOptions, LogStore, StoreError};

/// The points a rotation passes, for fault-injection tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Checked,
    NextKeyWritten,
    KeysRewrapped,
    KeyReplaced,
    Recorded,
}

#[derive(Debug, thiserror::Error)]
pub enum RekeyError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot replace {path}: {source}")]
    Replace { path: std::path::PathBuf, source: std::io::Error },
    #[error("{0}: no master key to rotate")]
    NoKey(std::path::PathBuf),
    #[error("stopped after {0:?}")]
    Stopped(Step),
}

/// Rotates the master key at `explicit` (or `<data_dir>/master.key`); `at` is called after each
/// step and stops the rotation there when it returns false (as a kill would). Returns the old
/// and the new key id.
pub fn rotate_master_key(
    explicit: Option<&Path>,
    data_dir: &Path,
    at: &mut dyn FnMut(Step) -> bool,
) -> Result<(u32, u32), RekeyError> {
    let open = || -> Result<Arc<dyn LogStore>, StoreError> {
        Ok(Arc::new(crate::SledStore::open(data_dir, crate::SledOptions::streaming())?))
    };
    rotate_master_key_of(&open, explicit, data_dir, at)
}

/// [`rotate_master_key`] of the log in the store `open` opens (every server stopped); the
/// master key file is `explicit` or `<data_dir>/master.key`.
pub fn rotate_master_key_of(
    open: &dyn Fn() -> Result<Arc<dyn LogStore>, StoreError>,
    explicit: Option<&Path>,
    data_dir: &Path,
    at: &mut dyn FnMut(Step) -> bool,
) -> Result<(u32, u32), RekeyError> {
    let path = files::master_key_path(explicit, data_dir);
    if !path.exists() {
        return Err(RekeyError::NoKey(path));
    }
    let store = open()?;
    let wrapped_by = store.key_file()?.map(|f| f.master_key_id);
    let (old, _) = files::master_key_for(explicit, data_dir, wrapped_by.is_some(), wrapped_by)?;
    Ledger::open_store(store.clone(), old.clone(), LedgerOptions::default())?.close()?;
    let stop = |step| Err(RekeyError::Stopped(step));
    if !at(Step::Checked) {
        return stop(Step::Checked);
    }
    let next_path = files::next_key_path(&path);
    let new_id = old.id.checked_add(1).ok_or(StoreError::WrongMasterKey)?;
    let (new, text) = files::new_master_key(new_id);
    let _ = std::fs::remove_file(&next_path);
    files::create_private(&next_path, text.as_bytes())?;
    if !at(Step::NextKeyWritten) {
        return stop(Step::NextKeyWritten);
    }
    store.replace_data_keys(&crate::keyfile::rewrapped(store.key_file()?, &old, &new)?)?;
    if !at(Step::KeysRewrapped) {
        return stop(Step::KeysRewrapped);
    }
    files::replace_key(&next_path, &path).map_err(|source| RekeyError::Replace { path: path.clone(), source })?;
    if !at(Step::KeyReplaced) {
        return stop(Step::KeyReplaced);
    }
    Ledger::open_store(store, new, LedgerOptions::default())?.close()?;
    if !at(Step::Recorded) {
        return stop(Step::Recorded);
    }
    Ok((old.id, new_id))
}
