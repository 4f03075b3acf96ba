//! The credentials file `serve` reads: `ACCESS_KEY_ID:SECRET_ACCESS_KEY[:OPTION…]` per line,
//! `#` comments; options in [`crate::access`]. When no path is given it lives in the data dir
//! and is generated with mode 0600 on the first start. Also the store of credentials SigV4
//! checks requests against ([`CredentialStore`]).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ledger_store::master_key::{create_private, read_secret, SecretFileError};
use rand_core::{OsRng, RngCore};
use zeroize::Zeroizing;

use crate::access::Access;

pub const CREDENTIALS_FILE: &str = "credentials";

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error(transparent)]
    File(#[from] SecretFileError),
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

/// Access key id → secret access key and [`Access`] scope. `Debug` never prints the secrets.
#[derive(Clone, Default)]
pub struct CredentialStore {
    keys: HashMap<String, (Zeroizing<String>, Access)>,
    /// Signing keys derived from `keys`; replaced (not shared with clones) whenever a key is added.
    signing_keys: Arc<SigningKeys>,
}

impl std::fmt::Debug for CredentialStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("CredentialStore").field("access_key_ids", &ids).finish_non_exhaustive()
    }
}

impl CredentialStore {
    /// Adds a key with full access.
    pub fn insert(&mut self, access_key_id: impl Into<String>, secret_access_key: impl Into<String>) {
        self.insert_with_access(access_key_id, secret_access_key, Access::full());
    }

    /// Adds a key limited to `access`.
    pub fn insert_with_access(
        &mut self,
        access_key_id: impl Into<String>,
        secret_access_key: impl Into<String>,
        access: Access,
    ) {
        self.keys.insert(access_key_id.into(), (Zeroizing::new(secret_access_key.into()), access));
        self.signing_keys = Arc::default();
    }

    /// The scope of a known key (after [`crate::sigv4::verify`] accepted a request signed with it).
    pub fn access(&self, access_key_id: &str) -> Option<&Access> {
        self.keys.get(access_key_id).map(|(_, access)| access)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub(crate) fn secret(&self, access_key_id: &str) -> Option<&str> {
        self.keys.get(access_key_id).map(|(s, _)| s.as_str())
    }

    #[cfg(test)]
    pub(crate) fn signing_keys_held(&self) -> usize {
        self.signing_keys.keys.lock().map_or(0, |keys| keys.values().map(Vec::len).sum())
    }

    /// The remembered SigV4 signing key of a key for a day (`YYYYMMDD`) and region, if a
    /// request signed with it verified (see [`CredentialStore::remember_signing_key`]).
    pub(crate) fn signing_key(&self, access_key_id: &str, day: &str, region: &str) -> Option<Zeroizing<[u8; 32]>> {
        let keys = self.signing_keys.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Looked up without allocating: a request's own strings are compared in place.
        let scopes = keys.get(access_key_id)?;
        scopes.iter().find(|s| s.day == day && s.region == region).map(|scope| scope.key.clone())
    }

    /// Remembers a signing key that verified a request. Only verified keys: an unsigned
    /// request naming a known key id and made-up regions must not fill the cache or push out
    /// the keys in use. At most [`SigningKeys::PER_KEY`] scopes per key id and
    /// [`SigningKeys::CAPACITY`] in all (emptied when full).
    pub(crate) fn remember_signing_key(&self, access_key_id: &str, day: &str, region: &str, key: &Zeroizing<[u8; 32]>) {
        let mut keys = self.signing_keys.keys.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if keys.values().map(Vec::len).sum::<usize>() >= SigningKeys::CAPACITY {
            keys.clear();
        }
        let scopes = keys.entry(access_key_id.to_string()).or_default();
        if scopes.iter().any(|s| s.day == day && s.region == region) {
            return;
        }
        if scopes.len() >= SigningKeys::PER_KEY {
            scopes.clear();
        }
        scopes.push(SigningScope { day: day.to_string(), region: region.to_string(), key: key.clone() });
    }
}

/// SigV4 signing keys by access key id, then day and region: each saves the four HMAC-SHA256
/// passes of a derivation per request. Bounded: emptied when it holds
/// [`SigningKeys::CAPACITY`] keys, so a known key signing for many regions cannot grow it.
#[derive(Default)]
struct SigningKeys {
    keys: Mutex<HashMap<String, Vec<SigningScope>>>,
}

/// One day (`YYYYMMDD`) and region of an access key, and its signing key.
struct SigningScope {
    day: String,
    region: String,
    key: Zeroizing<[u8; 32]>,
}

impl SigningKeys {
    const CAPACITY: usize = 1024;
    /// A key signs for one day (two around midnight) and a few regions.
    const PER_KEY: usize = 8;
}

/// A file that appeared on this start, so `serve` can say where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Created {
    MasterKey(PathBuf),
    Credentials(PathBuf),
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
