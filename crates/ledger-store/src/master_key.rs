//! The master key file: `HEX` (64 hexadecimal characters, key id 1, as the first start writes
//! it) or `ID:HEX` (a key written by `rotate-master-key`). When no path is given it lives in the
//! data dir as `master.key`, generated with mode 0600 on the first start. Also the careful way
//! every secret file is created ([`create_private`]).

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ledger_core::crypto::MasterKey;

use crate::keyfile::KeyFile;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

/// The master key's id when the server generates it.
pub const GENERATED_MASTER_KEY_ID: u32 = 1;
pub const MASTER_KEY_FILE: &str = "master.key";

/// `path` as an error may name it: a master key given in place of a file path (`HEX` or
/// `ID:HEX`) is never echoed.
pub fn shown(path: &Path) -> PathBuf {
    let text = path.to_string_lossy();
    // Pasted keys often carry a stray space or newline: still a key, still not echoed.
    let text = text.trim();
    let hex = text.split_once(':').map_or(text, |(_, hex)| hex.trim());
    if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        PathBuf::from("<a key given in place of a file path>")
    } else {
        path.to_path_buf()
    }
}

/// A secret file (master key, credentials) that cannot be read, created or parsed.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("{path}: the master key must be 64 hexadecimal characters")]
    BadMasterKey { path: PathBuf },
}

pub fn read_secret(path: &Path) -> Result<Zeroizing<String>, SecretFileError> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|source| SecretFileError::Read { path: shown(path), source })
}

/// Writes a new file readable by its owner only; never overwrites.
pub fn create_private(path: &Path, contents: &[u8]) -> Result<(), SecretFileError> {
    let create = |source| SecretFileError::Create { path: shown(path), source };
    // Written whole under a temporary name, synced, then linked into place: a kill at any point
    // leaves either no file or the complete one, never an empty master key (found by the crash
    // loop). `hard_link` fails if the target exists, so nothing is ever overwritten.
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}.partial"));
    // A stale partial from a crash is removed, then the new one created exclusively: with
    // O_CREAT|O_EXCL open never follows a symlink, so a planted link cannot redirect the key.
    let _ = std::fs::remove_file(&partial);
    let mut file = OpenOptions::new().write(true).create_new(true).mode(0o600).open(&partial).map_err(create)?;
    file.write_all(contents).map_err(create)?;
    file.sync_all().map_err(create)?;
    drop(file);
    let linked = std::fs::hard_link(&partial, path);
    let _ = std::fs::remove_file(&partial);
    linked.map_err(create)?;
    // The new directory entry must be durable too, or a crash could lose the master key while
    // data keys wrapped under it survive in sled.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(create)?;
    }
    Ok(())
}

/// Parses a master key file: `HEX` (64 hexadecimal characters, key id 1, as `serve` first
/// writes it) or `ID:HEX` (a key written by `rotate-master-key`).
pub fn parse_master_key(text: &str, path: &Path) -> Result<MasterKey, SecretFileError> {
    let bad = || SecretFileError::BadMasterKey { path: shown(path) };
    let text = text.trim();
    let (id, hex_text) = match text.split_once(':') {
        Some((id, rest)) => (id.parse::<u32>().ok().filter(|id| *id >= 1).ok_or_else(bad)?, rest),
        None => (GENERATED_MASTER_KEY_ID, text),
    };
    let mut bytes = Zeroizing::new([0u8; 32]);
    if hex_text.len() != 64 || hex::decode_to_slice(hex_text, &mut bytes[..]).is_err() {
        return Err(bad());
    }
    Ok(MasterKey::from_bytes(id, *bytes))
}

/// A new random master key with id `id`, and its file text.
pub(crate) fn new_master_key(id: u32) -> (MasterKey, Zeroizing<String>) {
    let mut bytes = Zeroizing::new([0u8; 32]);
    OsRng.fill_bytes(&mut bytes[..]);
    let mut text = Zeroizing::new(if id == GENERATED_MASTER_KEY_ID {
        hex::encode(&bytes[..])
    } else {
        format!("{id}:{}", hex::encode(&bytes[..]))
    });
    text.push('\n');
    (MasterKey::from_bytes(id, *bytes), text)
}

/// Where a rotation keeps the next master key until it replaces the current one:
/// `.NAME.next` beside the key file.
pub(crate) fn next_key_path(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    path.with_file_name(format!(".{name}.next"))
}

/// The path of the master key: `explicit` or `<data_dir>/master.key`.
pub fn master_key_path(explicit: Option<&Path>, data_dir: &Path) -> PathBuf {
    explicit.map(Path::to_path_buf).unwrap_or_else(|| data_dir.join(MASTER_KEY_FILE))
}

/// Reads the master key at `explicit` (or `<data_dir>/master.key`), generating it if neither
/// it nor any data key exists yet (the first start), and finishes a master-key rotation that
/// was interrupted after its commit point (see [`crate::rekey`]). Returns the key, and the path
/// of the file when this call created it.
pub fn master_key(explicit: Option<&Path>, data_dir: &Path) -> Result<(MasterKey, Option<PathBuf>), SecretFileError> {
    let keys_exist = crate::keyfile::exists(data_dir);
    let wrapped_by = KeyFile::read(data_dir).ok().flatten().map(|f| f.master_key_id);
    master_key_for(explicit, data_dir, keys_exist, wrapped_by)
}

/// [`master_key`] for a store whose data keys are elsewhere (a database): `keys_exist` says
/// whether it holds any, `wrapped_by` which master key wraps them.
pub fn master_key_for(
    explicit: Option<&Path>,
    data_dir: &Path,
    keys_exist: bool,
    wrapped_by: Option<u32>,
) -> Result<(MasterKey, Option<PathBuf>), SecretFileError> {
    let path = master_key_path(explicit, data_dir);
    let mut created = None;
    if !path.exists() && !keys_exist && !next_key_path(&path).exists() {
        let (_, text) = new_master_key(GENERATED_MASTER_KEY_ID);
        create_private(&path, text.as_bytes())?;
        created = Some(path.clone());
    }
    let key = parse_master_key(&read_secret(&path)?, &path)?;
    Ok((finish_interrupted(&path, wrapped_by, key)?, created))
}

/// After a start-up read `key` from `path`: if a rotation passed its commit point (the data-key
/// file is wrapped by the next key waiting beside `path`), moves the next key into place and
/// returns it; if a rotation stopped before it, removes the stale next key. Anything it cannot
/// read is left for the ledger's open to report.
pub(crate) fn finish_interrupted(
    path: &Path,
    wrapped_by: Option<u32>,
    key: MasterKey,
) -> Result<MasterKey, SecretFileError> {
    let next_path = next_key_path(path);
    if !next_path.exists() {
        return Ok(key);
    }
    let Some(wrapped_by) = wrapped_by else { return Ok(key) };
    let next = parse_master_key(&read_secret(&next_path)?, &next_path)?;
    if wrapped_by == next.id && key.id != next.id {
        tracing::info!(path = %path.display(), key_id = next.id, "finishing an interrupted master key rotation");
        replace_key(&next_path, path).map_err(|source| SecretFileError::Create { path: shown(path), source })?;
        return Ok(next);
    }
    if wrapped_by == key.id {
        tracing::info!(path = %next_path.display(), "removing the next master key of a rotation that did not finish");
        let _ = std::fs::remove_file(&next_path);
    }
    Ok(key)
}

/// Renames the next key over the key file, durably (the directory is synced).
pub(crate) fn replace_key(next_path: &Path, path: &Path) -> std::io::Result<()> {
    std::fs::rename(next_path, path)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir).and_then(|d| d.sync_all())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_in_place_of_a_path_is_never_shown() {
        let key = "ab".repeat(32);
        for given in [key.clone(), format!("2:{key}"), format!(" {key}\n"), format!("2: {key} ")] {
            let shown = super::shown(std::path::Path::new(&given));
            assert!(!shown.to_string_lossy().contains(&key), "{given:?} shown as {shown:?}");
        }
        let path = std::path::Path::new("/etc/secret-ledger/master.key");
        assert_eq!(super::shown(path), path);
    }
}
