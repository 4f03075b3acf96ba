//! Checkpoints: a ledger's size, head chain hash, Merkle root and time, optionally signed with
//! Ed25519, for users to keep outside the ledger (the tail of a hash chain can be cut without a
//! trace; a checkpoint kept elsewhere catches that).
//!
//! # Signed text
//!
//! The signature is a plain (not pre-hashed) Ed25519 signature over the UTF-8 bytes of
//! [`Checkpoint::signed_text`]:
//!
//! ```text
//! secret-ledger checkpoint v1\n
//! <origin>\n
//! <size, decimal>\n
//! <head chain hash, 64 lowercase hex digits>\n
//! <Merkle root, 64 lowercase hex digits>\n
//! <time_ms, decimal, may be negative>\n
//! ```
//!
//! The first line is the domain tag: no other signed message of this project starts with it.
//! The origin names the ledger; it must be non-empty and free of control characters (so the
//! text stays one field per line).
//!
//! # JSON
//!
//! [`Checkpoint::to_json`] writes one object, hashes as lowercase hex, the signature omitted
//! when absent:
//!
//! ```text
//! {"format":"secret-ledger checkpoint v1","origin":"…","size":3,"head_hash":"<hex>",
//!  "merkle_root":"<hex>","time_ms":1700000000000,
//!  "signature":{"public_key":"<64 hex>","sig":"<128 hex>"}}
//! ```
//!
//! `Checkpoint` also implements `Serialize`/`Deserialize` in that shape, so it can be embedded
//! in other documents (e.g. the last line of an export).
//!
//! # Trust
//!
//! [`Checkpoint::verify_signature`] only shows that the checkpoint was signed by the key it
//! names. Whether that key is the ledger's is for the caller to decide: use
//! [`Checkpoint::verify_signature_by`] with the public key it trusts.

use ed25519_dalek::{Signature, Signer};
use serde::{Deserialize, Serialize};

pub use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::ids::ChainHash;
use crate::merkle::{empty_root, Hash};

/// The first line of the signed text, and the `format` field of the JSON form.
pub const CHECKPOINT_FORMAT: &str = "secret-ledger checkpoint v1";

/// A ledger's state at one size: `size` records, the last one's chain hash and the Merkle root
/// over all of them (see [`crate::merkle`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "CheckpointJson", try_from = "CheckpointJson")]
pub struct Checkpoint {
    /// Which ledger this is (e.g. a host name or a configured ledger name).
    pub origin: String,
    /// Number of records covered (seq `1..=size`).
    pub size: u64,
    /// Chain hash of record `size` ([`ChainHash::GENESIS`] when `size == 0`).
    pub head_hash: ChainHash,
    /// Merkle root over the first `size` records ([`empty_root`] when `size == 0`).
    pub merkle_root: Hash,
    /// When the checkpoint was made, in milliseconds since the Unix epoch.
    pub time_ms: i64,
    /// Ed25519 signature over [`Checkpoint::signed_text`], if signed.
    pub signature: Option<CheckpointSignature>,
}

/// An Ed25519 signature and the public key that made it (the key is its own id).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CheckpointSignature {
    /// Ed25519 public key (compressed Edwards point).
    pub public_key: [u8; 32],
    /// Ed25519 signature.
    pub sig: [u8; 64],
}

/// Why a checkpoint was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CheckpointError {
    #[error("checkpoint JSON is malformed: {0}")]
    Json(String),
    #[error("unknown checkpoint format {0:?} (expected {CHECKPOINT_FORMAT:?})")]
    UnknownFormat(String),
    #[error("checkpoint field {field} is not {len} bytes of lowercase hex")]
    BadHex { field: &'static str, len: usize },
    #[error("checkpoint origin must be non-empty and free of control characters")]
    BadOrigin,
    #[error("a checkpoint of size 0 must have the genesis head hash and the empty Merkle root")]
    BadEmpty,
    #[error("checkpoint is not signed")]
    Unsigned,
    #[error("checkpoint is signed by a key other than the trusted one")]
    UntrustedKey,
    #[error("checkpoint signer's public key is not a valid Ed25519 key")]
    BadPublicKey,
    #[error("checkpoint signature does not verify")]
    BadSignature,
}

impl Checkpoint {
    /// An unsigned checkpoint.
    pub fn new(origin: impl Into<String>, size: u64, head_hash: ChainHash, merkle_root: Hash, time_ms: i64) -> Self {
        Checkpoint { origin: origin.into(), size, head_hash, merkle_root, time_ms, signature: None }
    }

    /// Checks the fields that do not need a key: the origin is non-empty and free of control
    /// characters; a size-0 checkpoint has the genesis head and the empty root.
    pub fn validate(&self) -> Result<(), CheckpointError> {
        if self.origin.is_empty() || self.origin.chars().any(char::is_control) {
            return Err(CheckpointError::BadOrigin);
        }
        if self.size == 0 && (self.head_hash != ChainHash::GENESIS || self.merkle_root != empty_root()) {
            return Err(CheckpointError::BadEmpty);
        }
        Ok(())
    }

    /// The canonical text that is signed (see the module docs). Fails if [`validate`](Self::validate) does.
    pub fn signed_text(&self) -> Result<String, CheckpointError> {
        self.validate()?;
        Ok(format!(
            "{CHECKPOINT_FORMAT}\n{}\n{}\n{}\n{}\n{}\n",
            self.origin,
            self.size,
            self.head_hash.to_hex(),
            hex::encode(self.merkle_root),
            self.time_ms
        ))
    }

    /// Signs the checkpoint with `key`, replacing any previous signature.
    pub fn sign(&mut self, key: &SigningKey) -> Result<(), CheckpointError> {
        let text = self.signed_text()?;
        let sig = key.sign(text.as_bytes());
        self.signature = Some(CheckpointSignature { public_key: key.verifying_key().to_bytes(), sig: sig.to_bytes() });
        Ok(())
    }

    /// Checks the signature against the public key the checkpoint itself names (strict Ed25519
    /// verification: no small-order keys, no malleable signatures). This proves integrity, not
    /// who signed: see [`verify_signature_by`](Self::verify_signature_by).
    pub fn verify_signature(&self) -> Result<(), CheckpointError> {
        let signature = self.signature.as_ref().ok_or(CheckpointError::Unsigned)?;
        let text = self.signed_text()?;
        let key = VerifyingKey::from_bytes(&signature.public_key).map_err(|_| CheckpointError::BadPublicKey)?;
        key.verify_strict(text.as_bytes(), &Signature::from_bytes(&signature.sig))
            .map_err(|_| CheckpointError::BadSignature)
    }

    /// Checks the signature and that it was made by `trusted`.
    pub fn verify_signature_by(&self, trusted: &VerifyingKey) -> Result<(), CheckpointError> {
        let signature = self.signature.as_ref().ok_or(CheckpointError::Unsigned)?;
        if signature.public_key != trusted.to_bytes() {
            return Err(CheckpointError::UntrustedKey);
        }
        self.verify_signature()
    }

    /// The JSON form (see the module docs).
    pub fn to_json(&self) -> String {
        serde_json::to_string(&CheckpointJson::from(self.clone())).expect("a checkpoint always serializes")
    }

    /// Parses the JSON form and [`validate`](Self::validate)s it. The signature is not checked.
    /// Unknown fields are ignored.
    pub fn from_json(json: &str) -> Result<Self, CheckpointError> {
        let wire: CheckpointJson = serde_json::from_str(json).map_err(|e| CheckpointError::Json(e.to_string()))?;
        Checkpoint::try_from(wire)
    }
}

/// The JSON wire shape.
#[derive(Clone, Serialize, Deserialize)]
struct CheckpointJson {
    format: String,
    origin: String,
    size: u64,
    head_hash: String,
    merkle_root: String,
    time_ms: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    signature: Option<SignatureJson>,
}

#[derive(Clone, Serialize, Deserialize)]
struct SignatureJson {
    public_key: String,
    sig: String,
}

impl From<Checkpoint> for CheckpointJson {
    fn from(c: Checkpoint) -> Self {
        CheckpointJson {
            format: CHECKPOINT_FORMAT.to_string(),
            origin: c.origin,
            size: c.size,
            head_hash: c.head_hash.to_hex(),
            merkle_root: hex::encode(c.merkle_root),
            time_ms: c.time_ms,
            signature: c
                .signature
                .map(|s| SignatureJson { public_key: hex::encode(s.public_key), sig: hex::encode(s.sig) }),
        }
    }
}

impl TryFrom<CheckpointJson> for Checkpoint {
    type Error = CheckpointError;

    fn try_from(w: CheckpointJson) -> Result<Self, CheckpointError> {
        if w.format != CHECKPOINT_FORMAT {
            return Err(CheckpointError::UnknownFormat(w.format));
        }
        let signature = match w.signature {
            None => None,
            Some(s) => Some(CheckpointSignature {
                public_key: hex_decode(&s.public_key, "signature.public_key")?,
                sig: hex_decode(&s.sig, "signature.sig")?,
            }),
        };
        let checkpoint = Checkpoint {
            origin: w.origin,
            size: w.size,
            head_hash: ChainHash(hex_decode(&w.head_hash, "head_hash")?),
            merkle_root: hex_decode(&w.merkle_root, "merkle_root")?,
            time_ms: w.time_ms,
            signature,
        };
        checkpoint.validate()?;
        Ok(checkpoint)
    }
}

/// Decodes exactly `N` bytes of lowercase hex (the one canonical spelling).
fn hex_decode<const N: usize>(text: &str, field: &'static str) -> Result<[u8; N], CheckpointError> {
    let err = || CheckpointError::BadHex { field, len: N };
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return Err(err());
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (byte, pair) in out.iter_mut().zip(digits.chunks_exact(2)) {
        *byte = (nibble(pair[0]).ok_or_else(err)? << 4) | nibble(pair[1]).ok_or_else(err)?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
