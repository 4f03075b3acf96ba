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

/// RotateSecret's `RotationRules`, as given: `AutomaticallyAfterDays` or `ScheduleExpression`
/// (`rate(…)` or AWS's six-field `cron(…)`), and the `Duration` window.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RotationRules {
    pub automatically_after_days: Option<i64>,
    pub duration: Option<String>,
    pub schedule_expression: Option<String>,
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
    // ----- Record format 2 from here on (see `Event::format_version`).
    /// RotateSecret: rotation is on, with this function and these rules (`None` keeps the ones
    /// configured before).
    RotationConfigured { secret: SecretUid, lambda_arn: Option<String>, rules: Option<RotationRules> },
    /// CancelRotateSecret: rotation is off (function and rules are kept, as on AWS).
    RotationCancelled { secret: SecretUid },
    /// RotateSecret: a version with no value yet, for the rotation to fill; `AWSPENDING` moves
    /// to it in a `LabelMoved` of the same request.
    VersionReserved { secret: SecretUid, version_id: String },
    /// PutSecretValue filling a reserved version with its value.
    VersionValueSet { secret: SecretUid, version_id: String, value: SealedValue, value_digest: [u8; 32] },
    /// A rotation step failed: which step and the error text (never secret material).
    RotationFailed { secret: SecretUid, version_id: String, step: String, error: String },
    /// The first read of a version on a UTC day (`day_ms` is that day's midnight).
    SecretAccessed { secret: SecretUid, version_id: String, day_ms: i64 },
    /// PutResourcePolicy: the policy document as given.
    ResourcePolicySet { secret: SecretUid, policy: String },
    /// DeleteResourcePolicy.
    ResourcePolicyDeleted { secret: SecretUid },
    /// A value released to a reader (`serve --audit-reads`): GetSecretValue, or one entry of
    /// BatchGetSecretValue. Appended, and durable, before the value leaves.
    SecretRead { secret: SecretUid, version_id: String },
    /// A request by a known access key refused by its scope (`serve --audit-reads`); `resource`
    /// is the `SecretId` (or name) as given, or `*`. Concerns no secret: uid 0.
    AccessDenied { resource: String },
    /// `secret-ledger rotate-master-key`: every data key is now wrapped by master key
    /// `to_key_id`, and key `from_key_id` opens nothing in the data dir. Concerns no secret: uid 0.
    MasterKeyRotated { from_key_id: u32, to_key_id: u32 },
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
            | Event::VersionPruned { secret, .. }
            | Event::RotationConfigured { secret, .. }
            | Event::RotationCancelled { secret }
            | Event::VersionReserved { secret, .. }
            | Event::VersionValueSet { secret, .. }
            | Event::RotationFailed { secret, .. }
            | Event::SecretAccessed { secret, .. }
            | Event::ResourcePolicySet { secret, .. }
            | Event::ResourcePolicyDeleted { secret }
            | Event::SecretRead { secret, .. } => *secret,
            Event::AccessDenied { .. } | Event::MasterKeyRotated { .. } => SecretUid::LEDGER,
        }
    }

    /// The sealed value a `VersionCreated` or `VersionValueSet` carries.
    pub fn sealed_value(&self) -> Option<&SealedValue> {
        match self {
            Event::VersionCreated { value, .. } | Event::VersionValueSet { value, .. } => Some(value),
            _ => None,
        }
    }

    /// [`Event::sealed_value`], taken out of the event.
    pub fn into_sealed_value(self) -> Option<SealedValue> {
        match self {
            Event::VersionCreated { value, .. } | Event::VersionValueSet { value, .. } => Some(value),
            _ => None,
        }
    }

    /// The record format that introduced this event: a record of an older format holding it
    /// is refused.
    pub fn format_version(&self) -> u8 {
        match self {
            Event::SecretCreated { .. }
            | Event::VersionCreated { .. }
            | Event::LabelMoved { .. }
            | Event::SecretUpdated { .. }
            | Event::TagsChanged { .. }
            | Event::DeletionScheduled { .. }
            | Event::DeletionCancelled { .. }
            | Event::SecretPurged { .. }
            | Event::VersionPruned { .. } => 1,
            Event::RotationConfigured { .. }
            | Event::RotationCancelled { .. }
            | Event::VersionReserved { .. }
            | Event::VersionValueSet { .. }
            | Event::RotationFailed { .. }
            | Event::SecretAccessed { .. }
            | Event::ResourcePolicySet { .. }
            | Event::ResourcePolicyDeleted { .. }
            | Event::SecretRead { .. }
            | Event::AccessDenied { .. }
            | Event::MasterKeyRotated { .. } => 2,
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
            Event::RotationConfigured { .. } => "RotationConfigured",
            Event::RotationCancelled { .. } => "RotationCancelled",
            Event::VersionReserved { .. } => "VersionReserved",
            Event::VersionValueSet { .. } => "VersionValueSet",
            Event::RotationFailed { .. } => "RotationFailed",
            Event::SecretAccessed { .. } => "SecretAccessed",
            Event::ResourcePolicySet { .. } => "ResourcePolicySet",
            Event::ResourcePolicyDeleted { .. } => "ResourcePolicyDeleted",
            Event::SecretRead { .. } => "SecretRead",
            Event::AccessDenied { .. } => "AccessDenied",
            Event::MasterKeyRotated { .. } => "MasterKeyRotated",
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
    /// The operation that appended it (`PutSecretValue`, `RotateSecret`, `PurgeDue`, …); empty
    /// in format-1 records, which did not say.
    pub operation: String,
    pub prev_hash: ChainHash,
    pub hash: ChainHash,
    pub event: Event,
}
