//! Secrets at rest: XChaCha20-Poly1305 sealing under per-secret data keys, data keys wrapped by
//! a master key, and the keyed value digest that decides token retries.
//!
//! Subkeys come from `blake3::derive_key`, one context string per purpose, so the data key itself
//! never touches two algorithms.

use std::collections::HashMap;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{Key, XChaCha20Poly1305, XNonce};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::event::SealedValue;
use crate::ids::SecretUid;
use crate::value::{SecretValue, ValueKind};

const SEAL_CONTEXT: &str = "secret-ledger 2026-11-27 value seal v1";
const DIGEST_CONTEXT: &str = "secret-ledger 2026-11-27 value digest v1";
const WRAP_CONTEXT: &str = "secret-ledger 2026-11-27 data key wrap v1";

/// A 256-bit key. `Debug` prints `[redacted]`; memory is wiped on drop.
#[derive(Clone)]
pub struct DataKey {
    key: Zeroizing<[u8; 32]>,
    /// The subkeys of [`SEAL_CONTEXT`] and [`DIGEST_CONTEXT`], derived once: every read and
    /// write used to derive them again (a BLAKE3 key derivation each).
    seal: Zeroizing<[u8; 32]>,
    digest: Zeroizing<[u8; 32]>,
}

/// The key that wraps data keys; lives outside the data dir's log.
#[derive(Clone)]
pub struct MasterKey {
    pub id: u32,
    key: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([redacted])")
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey {{ id: {}, key: [redacted] }}", self.id)
    }
}

impl DataKey {
    pub fn from_bytes(bytes: [u8; 32]) -> DataKey {
        let seal = Zeroizing::new(blake3::derive_key(SEAL_CONTEXT, &bytes));
        let digest = Zeroizing::new(blake3::derive_key(DIGEST_CONTEXT, &bytes));
        DataKey { key: Zeroizing::new(bytes), seal, digest }
    }

    /// The raw key bytes, for tools that must look for them (the shredding tests scan the
    /// data dir for them). Never write them anywhere.
    pub fn expose_bytes(&self) -> &[u8; 32] {
        &self.key
    }
}

impl MasterKey {
    pub fn from_bytes(id: u32, bytes: [u8; 32]) -> MasterKey {
        MasterKey { id, key: Zeroizing::new(bytes) }
    }

    fn cipher(&self) -> XChaCha20Poly1305 {
        let subkey = Zeroizing::new(blake3::derive_key(WRAP_CONTEXT, &self.key[..]));
        XChaCha20Poly1305::new(Key::from_slice(&subkey[..]))
    }
}

/// Looks up the data key of a secret; `None` once the secret was purged (crypto-shredded).
pub trait KeyLookup {
    fn data_key(&self, secret: SecretUid) -> Option<&DataKey>;
}

/// An in-memory key ring of unwrapped data keys.
#[derive(Clone, Default, Debug)]
pub struct DataKeys(HashMap<SecretUid, DataKey>);

impl DataKeys {
    pub fn insert(&mut self, secret: SecretUid, key: DataKey) {
        self.0.insert(secret, key);
    }

    pub fn remove(&mut self, secret: SecretUid) {
        self.0.remove(&secret);
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl KeyLookup for DataKeys {
    fn data_key(&self, secret: SecretUid) -> Option<&DataKey> {
        self.0.get(&secret)
    }
}

/// Associated data: binds a ciphertext to its secret, version id and value kind.
fn value_aad(secret: SecretUid, version_id: &str, kind: ValueKind) -> Vec<u8> {
    let mut aad = Vec::with_capacity(8 + 2 + version_id.len() + 1);
    aad.extend_from_slice(&secret.0.to_be_bytes());
    aad.extend_from_slice(&u16::try_from(version_id.len()).unwrap_or(u16::MAX).to_be_bytes());
    aad.extend_from_slice(version_id.as_bytes());
    aad.push(kind.tag());
    aad
}

pub fn seal_value(
    key: &DataKey,
    secret: SecretUid,
    version_id: &str,
    value: &SecretValue,
    nonce: [u8; 24],
) -> SealedValue {
    let subkey = &key.seal;
    let cipher = XChaCha20Poly1305::new(Key::from_slice(&subkey[..]));
    let aad = value_aad(secret, version_id, value.kind());
    let ciphertext = cipher
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: value.as_bytes(), aad: &aad })
        .expect("XChaCha20-Poly1305 encrypts any message below 256 GiB");
    SealedValue { kind: value.kind(), nonce, ciphertext }
}

/// Opens a sealed value; `None` if the key, the binding or the ciphertext does not match.
pub fn open_value(key: &DataKey, secret: SecretUid, version_id: &str, sealed: &SealedValue) -> Option<SecretValue> {
    let subkey = &key.seal;
    let cipher = XChaCha20Poly1305::new(Key::from_slice(&subkey[..]));
    let aad = value_aad(secret, version_id, sealed.kind);
    let plaintext =
        cipher.decrypt(XNonce::from_slice(&sealed.nonce), Payload { msg: &sealed.ciphertext, aad: &aad }).ok()?;
    SecretValue::from_plaintext(sealed.kind, Zeroizing::new(plaintext))
}

/// Keyed blake3 of kind and plaintext, under a subkey of the secret's data key.
pub fn value_digest(key: &DataKey, value: &SecretValue) -> [u8; 32] {
    let subkey = &key.digest;
    let mut hasher = blake3::Hasher::new_keyed(subkey);
    hasher.update(&[value.kind().tag()]);
    hasher.update(value.as_bytes());
    *hasher.finalize().as_bytes()
}

/// A data key wrapped by a master key, as stored in the key tree.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    pub master_key_id: u32,
    pub nonce: [u8; 24],
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

pub fn wrap_key(master: &MasterKey, secret: SecretUid, key: &DataKey, nonce: [u8; 24]) -> WrappedKey {
    let aad = secret.0.to_be_bytes();
    let ciphertext = master
        .cipher()
        .encrypt(XNonce::from_slice(&nonce), Payload { msg: &key.key[..], aad: &aad })
        .expect("XChaCha20-Poly1305 encrypts any message below 256 GiB");
    WrappedKey { master_key_id: master.id, nonce, ciphertext }
}

pub fn unwrap_key(master: &MasterKey, secret: SecretUid, wrapped: &WrappedKey) -> Option<DataKey> {
    if wrapped.master_key_id != master.id {
        return None;
    }
    let aad = secret.0.to_be_bytes();
    let plaintext = Zeroizing::new(
        master
            .cipher()
            .decrypt(XNonce::from_slice(&wrapped.nonce), Payload { msg: &wrapped.ciphertext, aad: &aad })
            .ok()?,
    );
    let bytes: [u8; 32] = plaintext.as_slice().try_into().ok()?;
    Some(DataKey::from_bytes(bytes))
}
