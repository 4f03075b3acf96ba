//! Data keys on disk, outside sled: `<data-dir>/keys`.
//!
//! sled is log-structured: a value it deletes stays in its files until it reclaims the pages, so
//! a data key wrapped in sled could outlive its secret's purge in any copy of the data dir. The
//! wrapped data keys therefore live in a file of their own, rewritten whole on every change: a
//! new file (`keys.partial`, created exclusively, synced), renamed over the old one, the
//! directory synced. After a purge the file that held the key is gone (its blocks freed, which
//! a filesystem or SSD may still keep; see the README).
//!
//! `MAGIC (8) ‖ key_file_digest(body) (32) ‖ body`, `body = bincode(KeyFile)`.
//!
//! Crash safety: the writer writes the file with a new key *before* the group that creates the
//! secret is durable, and the file without a purged key *after* the group that purges it is
//! durable (both before answering). A crash in between leaves a key for a uid that is not (or
//! no longer) live; [`reconcile`] on open drops it.

use std::collections::BTreeMap;
use std::io::Write;

use rand_core::RngCore;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use ledger_core::codec;
use ledger_core::crypto::{unwrap_key, DataKeys, MasterKey, WrappedKey};
use ledger_core::SecretUid;
use serde::{Deserialize, Serialize};

use crate::error::StoreError;

/// The file's name in the data dir.
pub const KEYS_FILE: &str = "keys";
const PARTIAL: &str = ".keys.partial";
const MAGIC: &[u8; 8] = b"SLKEYS\x00\x01";

/// Every live secret's data key, wrapped by the master key `master_key_id`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyFile {
    pub master_key_id: u32,
    pub keys: BTreeMap<u64, WrappedKey>,
}

fn damaged(reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt { seq: 0, reason: format!("data key file: {}", reason.into()) }
}

impl KeyFile {
    /// The file in `dir`, or `None` if there is none.
    pub fn read(dir: &Path) -> Result<Option<KeyFile>, StoreError> {
        let bytes = match std::fs::read(dir.join(KEYS_FILE)) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        if bytes.len() < 40 || &bytes[..8] != MAGIC {
            return Err(damaged("not a secret-ledger key file"));
        }
        let body = &bytes[40..];
        if ledger_core::chain::key_file_digest(body)[..] != bytes[8..40] {
            return Err(damaged("checksum mismatch"));
        }
        codec::decode(body).map(Some).map_err(|e| damaged(e.to_string()))
    }

    /// Replaces the file in `dir` atomically and durably.
    pub fn write(&self, dir: &Path) -> Result<(), StoreError> {
        let body = codec::encode(self);
        let mut bytes = Vec::with_capacity(40 + body.len());
        bytes.extend_from_slice(MAGIC);
        bytes.extend_from_slice(&ledger_core::chain::key_file_digest(&body));
        bytes.extend_from_slice(&body);
        let partial = dir.join(PARTIAL);
        // A partial left by a crash is stale; a new one is created exclusively (never through a
        // planted symlink).
        let _ = std::fs::remove_file(&partial);
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial)?;
        file.write_all(&bytes)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&partial, dir.join(KEYS_FILE))?;
        std::fs::File::open(dir)?.sync_all()?;
        Ok(())
    }

    /// The keys unwrapped with `master`: `WrongMasterKey` if the file was wrapped by another.
    pub fn unwrap_all(&self, master: &MasterKey) -> Result<DataKeys, StoreError> {
        if self.master_key_id != master.id {
            return Err(StoreError::WrongMasterKey);
        }
        let mut keys = DataKeys::default();
        for (uid, wrapped) in &self.keys {
            let key = unwrap_key(master, SecretUid(*uid), wrapped).ok_or(StoreError::WrongMasterKey)?;
            keys.insert(SecretUid(*uid), key);
        }
        Ok(keys)
    }
}
/// Every data key of `file` (none: an empty file wrapped by `old`) re-wrapped from `old` to
/// `new`: the new key set of a master-key rotation. Refused unless `file` is wrapped by `old`
/// and `new` is a newer key id.
pub fn rewrapped(file: Option<KeyFile>, old: &MasterKey, new: &MasterKey) -> Result<KeyFile, StoreError> {
    let file = file.unwrap_or(KeyFile { master_key_id: old.id, keys: BTreeMap::new() });
    if new.id <= old.id {
        return Err(damaged(format!("the new master key id {} is not above the current {}", new.id, old.id)));
    }
    if !file.keys.is_empty() && file.master_key_id != old.id {
        return Err(StoreError::WrongMasterKey);
    }
    let mut rewrapped = KeyFile { master_key_id: new.id, keys: BTreeMap::new() };
    for (uid, wrapped) in &file.keys {
        let key = unwrap_key(old, SecretUid(*uid), wrapped).ok_or(StoreError::WrongMasterKey)?;
        let mut nonce = [0u8; 24];
        rand_core::OsRng.fill_bytes(&mut nonce);
        rewrapped.keys.insert(*uid, ledger_core::crypto::wrap_key(new, SecretUid(*uid), &key, nonce));
    }
    Ok(rewrapped)
}
