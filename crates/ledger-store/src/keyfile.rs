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
//! New keys are appended to a journal beside it, `<data-dir>/keys.log`, so that creating a
//! secret costs one appended entry and one `fdatasync`, not a rewrite of every key:
//! `JOURNAL_MAGIC (8)`, then entries `len (u32 LE) ‖ key_file_digest(entry) (32) ‖ entry`,
//! `entry = bincode((uid, WrappedKey))`. Reading applies the journal over the file; a torn last
//! entry (a crash during an append, before its group was durable) is ignored. Every removal
//! (a purge, a master-key rotation) and a journal grown past [`JOURNAL_BYTES_MAX`] rewrite the
//! file whole with the journal's keys merged in, then delete the journal, so that a purged key
//! is on no file once the purge is answered.
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
/// The journal of keys added since the file was last written whole.
pub const JOURNAL_FILE: &str = "keys.log";
const JOURNAL_MAGIC: &[u8; 8] = b"SLKEYJ\x00\x01";
/// A journal larger than this is merged into the file on the next append.
pub const JOURNAL_BYTES_MAX: u64 = 1 << 20;

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
    /// The keys in `dir` (the file with its journal applied), or `None` if there are none.
    pub fn read(dir: &Path) -> Result<Option<KeyFile>, StoreError> {
        let (journal, _) = read_journal(dir)?;
        match KeyFile::read_file(dir)? {
            Some(mut file) => {
                // Entries wrapped by another master key are left over from a master-key
                // rotation stopped after it renamed the re-wrapped file, before it deleted the
                // journal: the file already holds those keys, re-wrapped.
                let current = file.master_key_id;
                file.keys.extend(journal.into_iter().filter(|(_, w)| w.master_key_id == current));
                Ok(Some(file))
            }
            None if journal.is_empty() => Ok(None),
            None => Err(damaged(format!("{JOURNAL_FILE} holds keys but {KEYS_FILE} is missing"))),
        }
    }

    /// The file alone, without its journal.
    fn read_file(dir: &Path) -> Result<Option<KeyFile>, StoreError> {
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
        // Every key of the journal is in the file now.
        match std::fs::remove_file(dir.join(JOURNAL_FILE)) {
            Ok(()) => std::fs::File::open(dir)?.sync_all()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e.into()),
        }
        Ok(())
    }

    /// Makes `added`, already in `self`, durable in `dir`: appended to the journal, or `self`
    /// written whole when there is no file yet or the journal has grown past
    /// [`JOURNAL_BYTES_MAX`].
    pub fn add(&self, dir: &Path, added: &[(u64, WrappedKey)]) -> Result<(), StoreError> {
        let journal_bytes = match std::fs::metadata(dir.join(JOURNAL_FILE)) {
            Ok(meta) => meta.len(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e.into()),
        };
        if journal_bytes > JOURNAL_BYTES_MAX || !dir.join(KEYS_FILE).exists() {
            return self.write(dir);
        }
        let mut bytes = Vec::new();
        if journal_bytes < JOURNAL_MAGIC.len() as u64 {
            bytes.extend_from_slice(JOURNAL_MAGIC);
        }
        for entry in added {
            let body = codec::encode(entry);
            let len = u32::try_from(body.len()).map_err(|_| damaged("a journal entry over 4 GiB"))?;
            bytes.extend_from_slice(&len.to_le_bytes());
            bytes.extend_from_slice(&ledger_core::chain::key_file_digest(&body));
            bytes.extend_from_slice(&body);
        }
        let mut journal =
            std::fs::OpenOptions::new().append(true).create(true).mode(0o600).open(dir.join(JOURNAL_FILE))?;
        if journal_bytes > 0 && journal_bytes < JOURNAL_MAGIC.len() as u64 {
            // A journal torn inside its magic holds no key: start it again.
            journal.set_len(0)?;
        }
        journal.write_all(&bytes)?;
        journal.sync_data()?;
        if journal_bytes == 0 {
            std::fs::File::open(dir)?.sync_all()?;
        }
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
/// Whether `dir` holds any data key file (the file or its journal).
pub fn exists(dir: &Path) -> bool {
    dir.join(KEYS_FILE).exists() || dir.join(JOURNAL_FILE).exists()
}

/// Cuts a torn tail off the journal in `dir` (an append stopped by a crash or a failed write):
/// the next append must follow the last whole entry, or reading would stop at the tear and
/// never reach it. Called before a store first appends.
pub fn repair_journal(dir: &Path) -> Result<(), StoreError> {
    let path = dir.join(JOURNAL_FILE);
    let len = match std::fs::metadata(&path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let (_, valid) = read_journal(dir)?;
    if valid < len {
        tracing::warn!(torn_bytes = len - valid, "cutting the torn end of {JOURNAL_FILE}");
        let file = std::fs::OpenOptions::new().write(true).open(&path)?;
        file.set_len(valid)?;
        file.sync_all()?;
    }
    Ok(())
}

/// The entries of the journal in `dir`, up to a last one that is incomplete or does not match
/// its digest (a torn append), and the length of that valid part; a bad entry with whole
/// entries after it is damage.
fn read_journal(dir: &Path) -> Result<(Vec<(u64, WrappedKey)>, u64), StoreError> {
    let bytes = match std::fs::read(dir.join(JOURNAL_FILE)) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok((Vec::new(), 0)),
        Err(e) => return Err(e.into()),
    };
    let Some(mut rest) = bytes.strip_prefix(JOURNAL_MAGIC) else {
        // Torn inside its magic (an append's first write) or not a journal at all.
        return if JOURNAL_MAGIC.starts_with(&bytes) { Ok((Vec::new(), 0)) } else { Err(damaged("not a key journal")) };
    };
    let mut entries = Vec::new();
    while rest.len() >= 36 {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        let Some(body) = rest.get(36..36 + len) else { break };
        if ledger_core::chain::key_file_digest(body)[..] != rest[4..36] {
            // A torn append is the last entry (a later append cuts it first); whole entries
            // after a bad one mean the file was damaged, and cutting there would drop them.
            if rest[36 + len..].iter().any(|&b| b != 0) {
                return Err(damaged("a key journal entry before its end does not match its digest"));
            }
            break;
        }
        entries.push(codec::decode(body).map_err(|e| damaged(format!("journal entry: {e}")))?);
        rest = &rest[36 + len..];
    }
    Ok((entries, (bytes.len() - rest.len()) as u64))
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

#[cfg(test)]
mod tests {
    use super::*;
    use ledger_core::crypto::{wrap_key, DataKey};

    fn wrapped(uid: u64) -> (u64, WrappedKey) {
        let master = MasterKey::from_bytes(1, [3; 32]);
        let key = DataKey::from_bytes([u8::try_from(uid % 200).unwrap(); 32]);
        (uid, wrap_key(&master, SecretUid(uid), &key, [5; 24]))
    }

    /// Adds `uids` one at a time as the store does: the whole set in memory, the new ones made
    /// durable.
    fn add_all(dir: &Path, file: &mut KeyFile, uids: std::ops::Range<u64>) {
        for uid in uids {
            let entry = [wrapped(uid)];
            file.keys.extend(entry.iter().cloned());
            file.add(dir, &entry).unwrap();
        }
    }

    #[test]
    fn keys_are_journaled_until_a_removal_rewrites_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = KeyFile { master_key_id: 1, keys: BTreeMap::new() };
        // The first key writes the file itself; later ones go to the journal.
        add_all(dir.path(), &mut file, 1..2);
        assert!(!dir.path().join(JOURNAL_FILE).exists());
        add_all(dir.path(), &mut file, 2..6);
        assert!(dir.path().join(JOURNAL_FILE).exists());
        assert_eq!(KeyFile::read(dir.path()).unwrap().unwrap(), file);
        // A removal writes the file whole and deletes the journal.
        file.keys.remove(&3);
        file.write(dir.path()).unwrap();
        assert!(!dir.path().join(JOURNAL_FILE).exists());
        assert_eq!(KeyFile::read(dir.path()).unwrap().unwrap(), file);
    }

    #[test]
    fn a_torn_last_entry_is_ignored_and_the_next_append_follows_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = KeyFile { master_key_id: 1, keys: BTreeMap::new() };
        add_all(dir.path(), &mut file, 1..4);
        let journal = dir.path().join(JOURNAL_FILE);
        let whole = std::fs::read(&journal).unwrap();
        // A crash in the middle of the last append: its entry is not read back.
        std::fs::write(&journal, &whole[..whole.len() - 10]).unwrap();
        let read = KeyFile::read(dir.path()).unwrap().unwrap();
        assert_eq!(read.keys.keys().copied().collect::<Vec<_>>(), [1, 2]);
        // A flipped byte inside an entry ends the journal there too.
        let mut flipped = whole.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        std::fs::write(&journal, &flipped).unwrap();
        assert_eq!(KeyFile::read(dir.path()).unwrap().unwrap().keys.len(), 2);
        // A flipped byte in an entry that others follow is damage, not a tear.
        let mut flipped = whole.clone();
        flipped[JOURNAL_MAGIC.len() + 40] ^= 1;
        std::fs::write(&journal, &flipped).unwrap();
        assert!(KeyFile::read(dir.path()).unwrap_err().to_string().contains("does not match its digest"));
        // The next append follows the last whole entry once the tail is cut, so it is read back.
        std::fs::write(&journal, &whole[..whole.len() - 10]).unwrap();
        repair_journal(dir.path()).unwrap();
        let mut file = KeyFile::read(dir.path()).unwrap().unwrap();
        add_all(dir.path(), &mut file, 3..4);
        assert_eq!(KeyFile::read(dir.path()).unwrap().unwrap(), file);
        // Torn inside its magic: no key, and the next append starts it again.
        std::fs::write(&journal, &whole[..3]).unwrap();
        assert_eq!(KeyFile::read(dir.path()).unwrap().unwrap().keys.len(), 1);
        repair_journal(dir.path()).unwrap();
        let mut file = KeyFile::read(dir.path()).unwrap().unwrap();
        add_all(dir.path(), &mut file, 7..8);
        assert_eq!(KeyFile::read(dir.path()).unwrap().unwrap().keys.keys().copied().collect::<Vec<_>>(), [1, 7]);
    }

    /// A master-key rotation stopped after it renamed the re-wrapped file, before it deleted the
    /// journal: the journal's entries under the old key are not read over the re-wrapped keys.
    #[test]
    fn journal_entries_of_a_retired_master_key_are_not_read() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = KeyFile { master_key_id: 1, keys: BTreeMap::new() };
        add_all(dir.path(), &mut file, 1..4);
        let journal = std::fs::read(dir.path().join(JOURNAL_FILE)).unwrap();
        let (old, new) = (MasterKey::from_bytes(1, [3; 32]), MasterKey::from_bytes(2, [4; 32]));
        let rewrapped = rewrapped(Some(file), &old, &new).unwrap();
        rewrapped.write(dir.path()).unwrap();
        // The crash: the journal is back as it was before the rotation deleted it.
        std::fs::write(dir.path().join(JOURNAL_FILE), journal).unwrap();
        let read = KeyFile::read(dir.path()).unwrap().unwrap();
        assert_eq!(read, rewrapped);
        assert!(read.unwrap_all(&new).is_ok());
    }

    #[test]
    fn a_journal_past_its_bound_is_merged_into_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = KeyFile { master_key_id: 1, keys: BTreeMap::new() };
        let entry_bytes = 36 + codec::encode(&wrapped(1)).len() as u64;
        let past_bound = JOURNAL_BYTES_MAX / entry_bytes + 6;
        add_all(dir.path(), &mut file, 1..past_bound);
        // Merged once it passed the bound, then started again with the keys after.
        let journal = std::fs::metadata(dir.path().join(JOURNAL_FILE)).map_or(0, |m| m.len());
        assert!(journal < 8 * entry_bytes, "journal of {journal} bytes");
        assert_eq!(KeyFile::read(dir.path()).unwrap().unwrap(), file);
    }

    #[test]
    fn a_journal_without_its_file_is_damage() {
        let dir = tempfile::tempdir().unwrap();
        let mut file = KeyFile { master_key_id: 1, keys: BTreeMap::new() };
        add_all(dir.path(), &mut file, 1..3);
        std::fs::remove_file(dir.path().join(KEYS_FILE)).unwrap();
        assert!(exists(dir.path()));
        let err = KeyFile::read(dir.path()).unwrap_err();
        assert!(err.to_string().contains("keys.log holds keys but keys is missing"), "{err}");
    }
}
