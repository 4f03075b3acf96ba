//! The two secret files `serve` reads: the master key (64 hex characters, key id 1) and the
//! credentials file (`ACCESS_KEY_ID:SECRET_ACCESS_KEY[:OPTION…]` per line, `#` comments; options
//! in [`crate::access`]). When their paths are not given, both live in the data dir and are
//! generated with mode 0600 on first start.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ledger_core::crypto::MasterKey;
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::access::Access;
use crate::sigv4::CredentialStore;

/// The master key's id when the server generates it.
pub const GENERATED_MASTER_KEY_ID: u32 = 1;
pub const MASTER_KEY_FILE: &str = "master.key";
pub const CREDENTIALS_FILE: &str = "credentials";

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("cannot create {path}: {source}")]
    Create { path: PathBuf, source: std::io::Error },
    #[error("{path}: the master key must be 64 hexadecimal characters")]
    BadMasterKey { path: PathBuf },
    #[error("{path} line {line}: expected ACCESS_KEY_ID:SECRET_ACCESS_KEY[:OPTION...]")]
    BadCredentialLine { path: PathBuf, line: usize },
    #[error("{path} line {line}: {reason}")]
    BadCredentialOption { path: PathBuf, line: usize, reason: crate::access::OptionError },
    #[error("{path}: no credentials in the file")]
    NoCredentials { path: PathBuf },
    #[error(
        "{path} line {line}: access key id {access_key_id} appears twice (line {first}); each key must be listed once"
    )]
    DuplicateAccessKey { path: PathBuf, line: usize, first: usize, access_key_id: String },
}

/// A file that appeared on this start, so `serve` can say where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    MasterKey(PathBuf),
    Credentials(PathBuf),
}

fn read_secret(path: &Path) -> Result<Zeroizing<String>, FileError> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|source| FileError::Read { path: path.to_path_buf(), source })
}

/// Writes a new file readable by its owner only; never overwrites.
pub(crate) fn create_private(path: &Path, contents: &[u8]) -> Result<(), FileError> {
    let create = |source| FileError::Create { path: path.to_path_buf(), source };
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
pub fn parse_master_key(text: &str, path: &Path) -> Result<MasterKey, FileError> {
    let bad = || FileError::BadMasterKey { path: path.to_path_buf() };
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
/// was interrupted after its commit point (see [`crate::rekey`]).
pub fn master_key(
    explicit: Option<&Path>,
    data_dir: &Path,
    created: &mut Vec<Created>,
) -> Result<MasterKey, FileError> {
    let path = master_key_path(explicit, data_dir);
    if !path.exists() && !data_dir.join(ledger_store::keyfile::KEYS_FILE).exists() && !next_key_path(&path).exists() {
        let (_, text) = new_master_key(GENERATED_MASTER_KEY_ID);
        create_private(&path, text.as_bytes())?;
        created.push(Created::MasterKey(path.clone()));
    }
    let key = parse_master_key(&read_secret(&path)?, &path)?;
    crate::rekey::finish_interrupted(&path, data_dir, key)
}

/// Parses a credentials file: one `ACCESS_KEY_ID:SECRET_ACCESS_KEY[:OPTION[:OPTION…]]` per line;
/// blank lines and lines starting with `#` are skipped.
///
/// The access key id ends at the first `:`. Options are the trailing `:`-separated segments
/// spelled like one (`ro`, `noaudit`, `prefix=…`, see [`crate::access`]), taken from the end;
/// the rest is the secret key, so existing lines whose secret contains `:` keep their meaning
/// (AWS secret keys contain none). A secret key that itself ends in `:ro` or similar must not
/// be used: its line would be read as a shorter key with an option, which then fails to verify
/// (fails closed).
pub fn parse_credentials(text: &str, path: &Path) -> Result<CredentialStore, FileError> {
    let mut store = CredentialStore::default();
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for (idx, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let bad = || FileError::BadCredentialLine { path: path.to_path_buf(), line: idx + 1 };
        let (access_key_id, mut secret) = line.split_once(':').ok_or_else(bad)?;
        let mut options = Vec::new();
        while let Some((rest, last)) = secret.rsplit_once(':') {
            if !Access::is_option(last.trim()) {
                break;
            }
            options.push(last.trim());
            secret = rest;
        }
        let (access_key_id, secret) = (access_key_id.trim(), secret.trim());
        if access_key_id.is_empty() || secret.is_empty() || access_key_id.contains('/') {
            return Err(bad());
        }
        // A second line for a key would silently replace the first (and its scope).
        if let Some(&first) = seen.get(access_key_id) {
            return Err(FileError::DuplicateAccessKey {
                path: path.to_path_buf(),
                line: idx + 1,
                first,
                access_key_id: access_key_id.chars().filter(char::is_ascii_alphanumeric).take(128).collect(),
            });
        }
        seen.insert(access_key_id.to_string(), idx + 1);
        let mut access = Access::full();
        for option in options.into_iter().rev() {
            access.apply_option(option).map_err(|reason| FileError::BadCredentialOption {
                path: path.to_path_buf(),
                line: idx + 1,
                reason,
            })?;
        }
        store.insert_with_access(access_key_id, secret, access);
    }
    if store.is_empty() {
        return Err(FileError::NoCredentials { path: path.to_path_buf() });
    }
    Ok(store)
}

fn random_text(alphabet: &[u8], n: usize) -> String {
    let zone = 256 - 256 % alphabet.len();
    let mut out = String::with_capacity(n);
    while out.len() < n {
        let mut b = [0u8; 1];
        OsRng.fill_bytes(&mut b);
        if usize::from(b[0]) < zone {
            out.push(char::from(alphabet[usize::from(b[0]) % alphabet.len()]));
        }
    }
    out
}

/// Reads `explicit`, or `<data_dir>/credentials`, generating one key pair into the latter if
/// it does not exist.
pub fn credentials(
    explicit: Option<&Path>,
    data_dir: &Path,
    created: &mut Vec<Created>,
) -> Result<CredentialStore, FileError> {
    if let Some(path) = explicit {
        return parse_credentials(&read_secret(path)?, path);
    }
    let path = data_dir.join(CREDENTIALS_FILE);
    if !path.exists() {
        let access_key_id = format!("AKIA{}", random_text(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16));
        let secret =
            Zeroizing::new(random_text(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/", 40));
        let line = Zeroizing::new(format!("{access_key_id}:{}\n", secret.as_str()));
        create_private(&path, line.as_bytes())?;
        created.push(Created::Credentials(path.clone()));
    }
    parse_credentials(&read_secret(&path)?, &path)
}

#[cfg(test)]
mod tests;
