//! The hash chain: each record's hash covers the previous hash, its seq and its encoded body
//! (ciphertext, never plaintext), so anyone can check the chain without keys.

use crate::ids::ChainHash;

/// blake3 key-derivation context: the domain tag that keeps chain hashes apart from any other
/// blake3 use.
pub const CHAIN_CONTEXT: &str = "secret-ledger 2026-11-27 event chain v1";

/// `hash = blake3_derive(CHAIN_CONTEXT; format_version ‖ prev_hash ‖ seq_be ‖ body)`.
pub fn chain_hash(format_version: u8, prev_hash: &ChainHash, seq: u64, body: &[u8]) -> ChainHash {
    // Deriving the context key costs a compression per call; clone a hasher that has it.
    static TEMPLATE: std::sync::OnceLock<blake3::Hasher> = std::sync::OnceLock::new();
    let mut hasher = TEMPLATE.get_or_init(|| blake3::Hasher::new_derive_key(CHAIN_CONTEXT)).clone();
    hasher.update(&[format_version]);
    hasher.update(&prev_hash.0);
    hasher.update(&seq.to_be_bytes());
    hasher.update(body);
    ChainHash(*hasher.finalize().as_bytes())
}

/// Domain tag of projection-snapshot digests.
pub const SNAPSHOT_CONTEXT: &str = "secret-ledger 2026-11-27 projection snapshot v1";
/// The derive-key context of the data-key file's checksum.
pub const KEY_FILE_CONTEXT: &str = "secret-ledger 2026-11-29 data key file v1";

/// Checksum of the body of the data-key file (catches a damaged file; the wrapping itself is
/// authenticated per key).
pub fn key_file_digest(body: &[u8]) -> [u8; 32] {
    blake3::derive_key(KEY_FILE_CONTEXT, body)
}

/// Digest of an encoded projection snapshot.
pub fn snapshot_digest(encoded_state: &[u8]) -> [u8; 32] {
    blake3::derive_key(SNAPSHOT_CONTEXT, encoded_state)
}

/// [`snapshot_digest`] computed piece by piece: feed it the encoded snapshot in order.
#[derive(Clone)]
pub struct SnapshotDigest(blake3::Hasher);

impl SnapshotDigest {
    pub fn new() -> SnapshotDigest {
        SnapshotDigest(blake3::Hasher::new_derive_key(SNAPSHOT_CONTEXT))
    }

    pub fn update(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    pub fn finish(&self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

impl Default for SnapshotDigest {
    fn default() -> SnapshotDigest {
        SnapshotDigest::new()
    }
}
