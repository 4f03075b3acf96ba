//! Events: the past-tense facts the log is made of, and the record envelope around each.
//!
//! The enum is append-only: bincode tags variants by position, so a new event goes at the end
//! and an existing variant never changes shape without a new `format_version`.

use serde::{Deserialize, Serialize};

use crate::ids::{ChainHash, SecretUid};
use crate::value::ValueKind;

/// A secret-level tag. Neither part is secret.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tag {
    pub key: String,
    pub value: String,
}

/// A value sealed with XChaCha20-Poly1305 under its secret's data key.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedValue {
    pub kind: ValueKind,
    pub nonce: [u8; 24],
    #[serde(with = "serde_bytes")]
    pub ciphertext: Vec<u8>,
}

impl std::fmt::Debug for SealedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SealedValue")
            .field("kind", &self.kind)
            .field("ciphertext_len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// CreateSecret. The ARN's random suffix was chosen when the request was decided.
    SecretCreated {
        secret: SecretUid,
        region: String,
        name: String,
        arn: String,
        description: Option<String>,
        kms_key_id: Option<String>,
        secret_type: Option<String>,
        tags: Option<Vec<Tag>>,
    },
    /// A new version with its sealed value; `version_id` is the request's ClientRequestToken.
    VersionCreated {
        secret: SecretUid,
        version_id: String,
        value: SealedValue,
        /// Keyed blake3 of kind and plaintext; decides whether a retried token carries the
        /// same value without decrypting anything.
        value_digest: [u8; 32],
    },
    /// A staging label attached (`from: None`), detached (`to: None`) or moved.
    LabelMoved { secret: SecretUid, label: String, from: Option<String>, to: Option<String> },
    /// UpdateSecret metadata. `Some("")` clears a field, `None` leaves it.
    SecretUpdated {
        secret: SecretUid,
        description: Option<String>,
        kms_key_id: Option<String>,
        secret_type: Option<String>,
    },
    /// TagResource / UntagResource: `set` overwrites or appends by key, `removed` deletes keys.
    TagsChanged { secret: SecretUid, set: Vec<Tag>, removed: Vec<String> },
    /// DeleteSecret with a recovery window.
    DeletionScheduled { secret: SecretUid, deletion_date_ms: i64 },
    /// RestoreSecret.
    DeletionCancelled { secret: SecretUid },
    /// The secret is gone for good: its data key is destroyed with this event.
    SecretPurged { secret: SecretUid },
    /// A deprecated version removed to stay within the version quota.
    VersionPruned { secret: SecretUid, version_id: String },
}

impl Event {
    pub fn secret(&self) -> SecretUid {
        match self {
            Event::SecretCreated { secret, .. }
            | Event::VersionCreated { secret, .. }
            | Event::LabelMoved { secret, .. }
            | Event::SecretUpdated { secret, .. }
            | Event::TagsChanged { secret, .. }
            | Event::DeletionScheduled { secret, .. }
            | Event::DeletionCancelled { secret }
            | Event::SecretPurged { secret }
            | Event::VersionPruned { secret, .. } => *secret,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Event::SecretCreated { .. } => "SecretCreated",
            Event::VersionCreated { .. } => "VersionCreated",
            Event::LabelMoved { .. } => "LabelMoved",
            Event::SecretUpdated { .. } => "SecretUpdated",
            Event::TagsChanged { .. } => "TagsChanged",
            Event::DeletionScheduled { .. } => "DeletionScheduled",
            Event::DeletionCancelled { .. } => "DeletionCancelled",
            Event::SecretPurged { .. } => "SecretPurged",
            Event::VersionPruned { .. } => "VersionPruned",
        }
    }
}

/// One log record: an event in its envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    pub seq: u64,
    pub recorded_at_ms: i64,
    /// Access key id of the caller, or `local` for in-process callers.
    pub actor: String,
    pub request_id: String,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
    pub event: Event,
}
