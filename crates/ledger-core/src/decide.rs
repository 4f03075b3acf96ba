//! `decide`: a write request against the current state becomes the events to append, or a typed
//! refusal. Pure: time, randomness and keys come in through [`Ctx`] and [`KeyLookup`].
//!
//! An idempotent retry decides to no events and the original answer.

use std::collections::BTreeMap;

use rand_core::RngCore;

use crate::crypto::{seal_value, value_digest, DataKey, KeyLookup};
use crate::error::SmError;
use crate::event::{Event, RotationRules, Tag};
use crate::ids::{Scope, SecretUid};
use crate::limits::*;
use crate::names::{arn_suffix, check_name, parse_secret_id, resolve, secret_arn, SecretRef};
use crate::state::{SecretState, State};
use crate::validate::{check_count, check_label, check_len, check_metadata, check_tags, check_token};
use crate::value::SecretValue;
use crate::{AWSCURRENT, AWSPENDING, AWSPREVIOUS};

/// What a decision may read besides the state: the clock, an RNG and the request's scope.
pub struct Ctx<'a> {
    pub scope: &'a Scope,
    pub now_ms: i64,
    pub rng: &'a mut dyn RngCore,
}

#[derive(Clone, Debug, Default)]
pub struct CreateSecret {
    pub name: String,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub value: Option<SecretValue>,
    pub tags: Option<Vec<Tag>>,
    pub secret_type: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct PutSecretValue {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    pub value: Option<SecretValue>,
    pub version_stages: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default)]
pub struct UpdateSecret {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub value: Option<SecretValue>,
    pub secret_type: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct UpdateSecretVersionStage {
    pub secret_id: String,
    pub version_stage: String,
    pub remove_from_version_id: Option<String>,
    pub move_to_version_id: Option<String>,
}

#[derive(Clone, Debug, Default)]
pub struct DeleteSecret {
    pub secret_id: String,
    pub recovery_window_in_days: Option<i64>,
    pub force_delete_without_recovery: Option<bool>,
}

#[derive(Clone, Debug, Default)]
pub struct RestoreSecret {
    pub secret_id: String,
}

#[derive(Clone, Debug, Default)]
pub struct TagResource {
    pub secret_id: String,
    pub tags: Vec<Tag>,
}

#[derive(Clone, Debug, Default)]
pub struct UntagResource {
    pub secret_id: String,
    pub tag_keys: Vec<String>,
}

#[derive(Clone, Debug, Default)]
pub struct RotateSecret {
    pub secret_id: String,
    pub client_request_token: Option<String>,
    pub rotation_lambda_arn: Option<String>,
    pub rotation_rules: Option<RotationRules>,
    /// Defaults to true: reserve the `AWSPENDING` version now.
    pub rotate_immediately: Option<bool>,
    /// A rotation runner's own start of a rotation already configured (a due one, or a
    /// `RotateImmediately=false` test): refused once rotation is off, so that a cancel that
    /// came first is never undone. Not on the wire.
    pub by_runner: bool,
}

#[derive(Clone, Debug, Default)]
pub struct CancelRotateSecret {
    pub secret_id: String,
}

#[derive(Clone, Debug, Default)]
pub struct PutResourcePolicy {
    pub secret_id: String,
    pub resource_policy: String,
    pub block_public_policy: Option<bool>,
}

#[derive(Clone, Debug, Default)]
pub struct DeleteResourcePolicy {
    pub secret_id: String,
}

/// Every request that may append events.
#[derive(Clone, Debug)]
pub enum Command {
    CreateSecret(CreateSecret),
    PutSecretValue(PutSecretValue),
    UpdateSecret(UpdateSecret),
    UpdateSecretVersionStage(UpdateSecretVersionStage),
    DeleteSecret(DeleteSecret),
    RestoreSecret(RestoreSecret),
    TagResource(TagResource),
    UntagResource(UntagResource),
    RotateSecret(RotateSecret),
    CancelRotateSecret(CancelRotateSecret),
    PutResourcePolicy(PutResourcePolicy),
    DeleteResourcePolicy(DeleteResourcePolicy),
    /// Purges every secret whose recovery window has ended; issued by the writer, not clients.
    PurgeDue,
    /// The first read of a version on the UTC day starting at `day_ms`; issued by the store
    /// after a read, off the read's response path. Appends nothing if already recorded.
    RecordAccess {
        secret: SecretUid,
        version_id: String,
        day_ms: i64,
    },
    /// A rotation step failed; issued by the rotation runner. Appends nothing if the secret or
    /// the version is gone.
    RecordRotationFailure {
        secret: SecretUid,
        version_id: String,
        step: String,
        error: String,
    },
    /// Values about to be released to a reader (`serve --audit-reads`): one `SecretRead` each,
    /// and an `AccessDenied` for each id of the same request out of the reader's scope. Refused
    /// (and the values withheld) if a version is gone by now.
    RecordReads {
        reads: Vec<(SecretUid, String)>,
        denied: Vec<String>,
        /// The request's operation (`GetSecretValue`, `BatchGetSecretValue`), which the
        /// records name.
        operation: &'static str,
    },
    /// Resources a request was refused by the caller's scope (`serve --audit-reads`).
    RecordDenied {
        resources: Vec<String>,
        /// The refused request's operation, which the records name.
        operation: &'static str,
    },
    /// The data keys are wrapped by a newer master key (`rotate-master-key`, recorded by the
    /// first open under the new key).
    RecordMasterKeyRotation {
        from_key_id: u32,
        to_key_id: u32,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::CreateSecret(_) => "CreateSecret",
            Command::PutSecretValue(_) => "PutSecretValue",
            Command::UpdateSecret(_) => "UpdateSecret",
            Command::UpdateSecretVersionStage(_) => "UpdateSecretVersionStage",
            Command::DeleteSecret(_) => "DeleteSecret",
            Command::RestoreSecret(_) => "RestoreSecret",
            Command::TagResource(_) => "TagResource",
            Command::UntagResource(_) => "UntagResource",
            Command::RotateSecret(_) => "RotateSecret",
            Command::CancelRotateSecret(_) => "CancelRotateSecret",
            Command::PutResourcePolicy(_) => "PutResourcePolicy",
            Command::DeleteResourcePolicy(_) => "DeleteResourcePolicy",
            Command::PurgeDue => "PurgeDue",
            Command::RecordAccess { .. } => "RecordAccess",
            Command::RecordRotationFailure { .. } => "RecordRotationFailure",
            Command::RecordReads { operation, .. } | Command::RecordDenied { operation, .. } => operation,
            Command::RecordMasterKeyRotation { .. } => "RotateMasterKey",
        }
    }
}

/// The answer to a write, in domain terms; the server turns it into the AWS shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// CreateSecret, UpdateSecret: `version_id` only when a value was given.
    Secret {
        arn: String,
        name: String,
        version_id: Option<String>,
    },
    /// PutSecretValue.
    Version {
        arn: String,
        name: String,
        version_id: String,
        version_stages: Vec<String>,
    },
    /// DeleteSecret.
    Deleted {
        arn: String,
        name: String,
        deletion_date_ms: i64,
    },
    /// UpdateSecretVersionStage, RestoreSecret.
    Named {
        arn: String,
        name: String,
    },
    /// TagResource, UntagResource.
    Empty,
    Purged {
        secrets: usize,
    },
}

/// What `decide` returns: the events to append atomically and the answer to send once they are
/// durable. A fresh data key for a new secret, and the secrets whose keys must be destroyed, ride
/// along: they go to the key tree in the same atomic batch, never into the log.
#[derive(Debug)]
pub struct Decision {
    pub events: Vec<Event>,
    pub reply: Reply,
    pub new_data_key: Option<(SecretUid, DataKey)>,
    pub shredded: Vec<SecretUid>,
}

impl Decision {
    fn answer(reply: Reply) -> Decision {
        Decision { events: Vec::new(), reply, new_data_key: None, shredded: Vec::new() }
    }

    fn with(events: Vec<Event>, reply: Reply) -> Decision {
        Decision { events, reply, new_data_key: None, shredded: Vec::new() }
    }
}

/// Decides a write. Never mutates anything; an `Err` means nothing may be appended.
pub fn decide(state: &State, keys: &dyn KeyLookup, cmd: &Command, ctx: &mut Ctx<'_>) -> Result<Decision, SmError> {
    match cmd {
        Command::CreateSecret(c) => create_secret(state, keys, c, ctx),
        Command::PutSecretValue(c) => put_secret_value(state, keys, c, ctx),
        Command::UpdateSecret(c) => update_secret(state, keys, c, ctx),
        Command::UpdateSecretVersionStage(c) => update_version_stage(state, c, ctx),
        Command::DeleteSecret(c) => delete_secret(state, c, ctx),
        Command::RestoreSecret(c) => restore_secret(state, c, ctx),
        Command::TagResource(c) => tag_resource(state, c, ctx),
        Command::UntagResource(c) => untag_resource(state, c, ctx),
        Command::RotateSecret(c) => rotate_secret(state, c, ctx),
        Command::CancelRotateSecret(c) => cancel_rotate_secret(state, c, ctx),
        Command::PutResourcePolicy(c) => put_resource_policy(state, c, ctx),
        Command::DeleteResourcePolicy(c) => delete_resource_policy(state, c, ctx),
        Command::RecordAccess { .. }
        | Command::RecordRotationFailure { .. }
        | Command::RecordReads { .. }
        | Command::RecordDenied { .. }
        | Command::RecordMasterKeyRotation { .. } => Ok(Decision::with(record(state, cmd, ctx)?, Reply::Empty)),
        Command::PurgeDue => {
            let due: Vec<SecretUid> = state.due_for_purge(ctx.now_ms).collect();
            let events = due.iter().map(|&secret| Event::SecretPurged { secret }).collect();
            Ok(Decision { events, reply: Reply::Purged { secrets: due.len() }, new_data_key: None, shredded: due })
        }
    }
}

/// The events of a command that only records (an access, a failed rotation step, released reads
/// and refusals, a master key rotation): no reply of its own.
fn record(state: &State, cmd: &Command, ctx: &Ctx<'_>) -> Result<Vec<Event>, SmError> {
    match cmd {
        Command::RecordAccess { secret, version_id, day_ms } => {
            let fresh = state
                .secret(*secret)
                .and_then(|s| s.versions.get(version_id))
                .is_some_and(|v| v.has_value && v.last_accessed_day_ms.is_none_or(|d| d < *day_ms));
            let ok = day_ms % crate::limits::DAY_MS == 0 && *day_ms <= ctx.now_ms;
            let events = if fresh && ok {
                vec![Event::SecretAccessed { secret: *secret, version_id: version_id.clone(), day_ms: *day_ms }]
            } else {
                Vec::new()
            };
            Ok(events)
        }
        Command::RecordRotationFailure { secret, version_id, step, error } => {
            let exists = state.secret(*secret).is_some_and(|s| s.versions.contains_key(version_id));
            let events = match exists {
                true => vec![Event::RotationFailed {
                    secret: *secret,
                    version_id: version_id.clone(),
                    step: step.clone(),
                    error: error.clone(),
                }],
                false => Vec::new(),
            };
            Ok(events)
        }
        Command::RecordReads { reads, denied, .. } => {
            let mut events = Vec::with_capacity(reads.len() + denied.len());
            for (secret, version_id) in reads {
                let readable =
                    state.secret(*secret).and_then(|s| s.versions.get(version_id)).is_some_and(|v| v.has_value);
                if !readable {
                    // Pruned or purged since it was read: not released.
                    return Err(SmError::VersionNotFound { version_id: version_id.clone() });
                }
                events.push(Event::SecretRead { secret: *secret, version_id: version_id.clone() });
            }
            events.extend(denied.iter().map(|r| Event::AccessDenied {
                resource: r.chars().take(crate::limits::SECRET_ID_CHARS_MAX).collect(),
            }));
            Ok(events)
        }
        Command::RecordDenied { resources, .. } => {
            let events = resources
                .iter()
                .map(|r| Event::AccessDenied { resource: r.chars().take(crate::limits::SECRET_ID_CHARS_MAX).collect() })
                .collect();
            Ok(events)
        }
        Command::RecordMasterKeyRotation { from_key_id, to_key_id } => {
            Ok(vec![Event::MasterKeyRotated { from_key_id: *from_key_id, to_key_id: *to_key_id }])
        }
        _ => Ok(Vec::new()),
    }
}

/// A secret that may be changed: resolved and not scheduled for deletion.
fn live<'s>(state: &'s State, scope: &Scope, secret_id: &str) -> Result<&'s SecretState, SmError> {
    let secret = resolve(state, scope, secret_id)?;
    if secret.is_scheduled() {
        return Err(SmError::MarkedForDeletion);
    }
    Ok(secret)
}

fn fill<const N: usize>(rng: &mut dyn RngCore) -> [u8; N] {
    let mut out = [0u8; N];
    rng.fill_bytes(&mut out);
    out
}

/// If `token` names a version of `secret` (live or pruned), the retry's verdict:
/// `Ok(true)` same value (idempotent), `Err` different value.
fn token_retry(secret: &SecretState, key: Option<&DataKey>, token: &str, value: &SecretValue) -> Result<bool, SmError> {
    let stored = match (secret.versions.get(token), secret.retired.get(token)) {
        (Some(v), _) => v.digest,
        (None, Some(d)) => *d,
        (None, None) => return Ok(false),
    };
    let key = key.ok_or(SmError::Internal)?;
    if value_digest(key, value) == stored {
        Ok(true)
    } else {
        Err(SmError::TokenReused { token: token.to_string(), arn: secret.arn.clone() })
    }
}

/// When AWSCURRENT leaves `old_current`, AWSPREVIOUS follows it there from whoever held it: the
/// move, or none when `old_current` already holds AWSPREVIOUS. The one place this rule lives.
fn previous_follows(uid: SecretUid, old_current: &str, old_previous: Option<&str>) -> Option<Event> {
    (old_previous != Some(old_current)).then(|| Event::LabelMoved {
        secret: uid,
        label: AWSPREVIOUS.to_string(),
        from: old_previous.map(str::to_string),
        to: Some(old_current.to_string()),
    })
}

/// Plans the label moves that give `version_id` the labels `stages` (or, with `None`, the
/// default AWSCURRENT promotion), as AWS does (spec §4.3 rules 2–4). Returns the events and the
/// labels the version ends with.
///
/// A default promotion that takes AWSCURRENT from a version also holding AWSPENDING (a
/// rotation-style promotion left it there) detaches AWSPENDING from it too, as AWS does: the
/// old version ends as `[AWSPREVIOUS]` (recorded AWS trace F).
fn plan_new_version_labels(
    secret: &SecretState,
    version_id: &str,
    stages: Option<&[String]>,
) -> Result<(Vec<Event>, Vec<String>), SmError> {
    let mut wanted: Vec<String> = match stages {
        None => vec![AWSCURRENT.to_string()],
        Some(s) => s.to_vec(),
    };
    if secret.versions.is_empty() && !wanted.iter().any(|l| l == AWSCURRENT) {
        wanted.push(AWSCURRENT.to_string());
    }
    wanted.sort();
    wanted.dedup();
    let mut labels: BTreeMap<String, String> = secret.labels.clone();
    let mut events = Vec::new();
    let uid = secret.uid;
    let explicit_previous = wanted.iter().any(|l| l == AWSPREVIOUS);
    // AWSCURRENT first: its AWSPREVIOUS shuffle must see the old holders.
    wanted.sort_by_key(|l| l != AWSCURRENT);
    for label in &wanted {
        let from = labels.get(label).cloned();
        if from.as_deref() == Some(version_id) {
            // A reserved version being filled may already hold the label.
            continue;
        }
        if label == AWSCURRENT && stages.is_none() {
            if let Some(old_current) = from.as_ref().filter(|c| labels.get(AWSPENDING) == Some(*c)) {
                events.push(Event::LabelMoved {
                    secret: uid,
                    label: AWSPENDING.to_string(),
                    from: Some(old_current.clone()),
                    to: None,
                });
                labels.remove(AWSPENDING);
            }
        }
        if label == AWSCURRENT && !explicit_previous {
            if let Some(old_current) = &from {
                if let Some(event) = previous_follows(uid, old_current, labels.get(AWSPREVIOUS).map(String::as_str)) {
                    events.push(event);
                    labels.insert(AWSPREVIOUS.to_string(), old_current.clone());
                }
            }
        }
        events.push(Event::LabelMoved { secret: uid, label: label.clone(), from, to: Some(version_id.to_string()) });
        labels.insert(label.clone(), version_id.to_string());
    }
    if labels.len() > LABELS_PER_SECRET_MAX {
        return Err(SmError::TooManyLabels { name: secret.name.clone(), max: LABELS_PER_SECRET_MAX });
    }
    wanted.sort();
    Ok((events, wanted))
}

/// Oldest deprecated versions that must go so the secret stays within the version quota once
/// `adding` versions were added and the label moves `moves` were applied.
fn plan_pruning(secret: &SecretState, moves: &[Event], now_ms: i64) -> Result<Vec<Event>, SmError> {
    let after = secret.versions.len() + 1;
    if after <= VERSIONS_PER_SECRET_MAX {
        return Ok(Vec::new());
    }
    let excess = after - VERSIONS_PER_SECRET_MAX;
    // Labels each old version holds after the moves.
    let mut label_count: BTreeMap<&str, usize> =
        secret.versions.iter().map(|(id, v)| (id.as_str(), v.labels.len())).collect();
    for event in moves {
        if let Event::LabelMoved { from, to, .. } = event {
            if let Some(n) = from.as_deref().and_then(|f| label_count.get_mut(f)) {
                *n -= 1;
            }
            if let Some(n) = to.as_deref().and_then(|t| label_count.get_mut(t)) {
                *n += 1;
            }
        }
    }
    let mut candidates: Vec<(i64, u64, &str)> = secret
        .versions
        .iter()
        .filter(|(id, v)| label_count.get(id.as_str()) == Some(&0) && v.created_at_ms <= now_ms - PRUNE_GRACE_MS)
        .map(|(id, v)| (v.created_at_ms, v.seq, id.as_str()))
        .collect();
    if candidates.len() < excess {
        return Err(SmError::TooManyVersions { name: secret.name.clone(), max: VERSIONS_PER_SECRET_MAX });
    }
    candidates.sort();
    Ok(candidates
        .into_iter()
        .take(excess)
        .map(|(_, _, id)| Event::VersionPruned { secret: secret.uid, version_id: id.to_string() })
        .collect())
}

/// `VersionCreated` of `value` sealed under the secret's data key as version `token`.
fn version_created(uid: SecretUid, key: &DataKey, token: &str, value: &SecretValue, ctx: &mut Ctx<'_>) -> Event {
    Event::VersionCreated {
        secret: uid,
        version_id: token.to_string(),
        value: seal_value(key, uid, token, value, fill(ctx.rng)),
        value_digest: value_digest(key, value),
    }
}

/// The events of a new version on an existing secret, or the idempotent answer.
struct NewVersion {
    events: Vec<Event>,
    version_id: String,
    stages: Vec<String>,
}

fn new_version(
    secret: &SecretState,
    key: Option<&DataKey>,
    token: &str,
    value: &SecretValue,
    stages: Option<&[String]>,
    ctx: &mut Ctx<'_>,
) -> Result<Option<NewVersion>, SmError> {
    if token_retry(secret, key, token, value)? {
        return Ok(None);
    }
    let key = key.ok_or(SmError::Internal)?;
    let mut events = vec![version_created(secret.uid, key, token, value, ctx)];
    let (moves, labels) = plan_new_version_labels(secret, token, stages)?;
    let prunes = plan_pruning(secret, &moves, ctx.now_ms)?;
    events.extend(moves);
    events.extend(prunes);
    Ok(Some(NewVersion { events, version_id: token.to_string(), stages: labels }))
}

/// The checks of a `CreateSecret` request that need no state.
fn check_create(c: &CreateSecret) -> Result<(), SmError> {
    check_name(&c.name)?;
    check_token(&c.client_request_token)?;
    check_metadata(&c.description, &c.kms_key_id, &c.secret_type)?;
    if let Some(tags) = &c.tags {
        check_tags(tags.iter().map(|t| (t.key.as_str(), t.value.as_str())))?;
        if tags.len() > TAGS_PER_SECRET_MAX {
            return Err(SmError::TooManyTags { name: c.name.clone(), max: TAGS_PER_SECRET_MAX });
        }
    }
    if c.value.is_some() && c.client_request_token.is_none() {
        return Err(SmError::TokenMissing);
    }
    Ok(())
}

/// A `CreateSecret` of a name that exists: the idempotent answer to a retry of the request that
/// created it, else the error.
fn create_existing(existing: &SecretState, keys: &dyn KeyLookup, c: &CreateSecret) -> Result<Decision, SmError> {
    if existing.is_scheduled() {
        return Err(SmError::NameScheduledForDeletion);
    }
    if let (Some(token), Some(value)) = (&c.client_request_token, &c.value) {
        if token_retry(existing, keys.data_key(existing.uid), token, value)? {
            return Ok(Decision::answer(Reply::Secret {
                arn: existing.arn.clone(),
                name: existing.name.clone(),
                version_id: Some(token.clone()),
            }));
        }
    }
    Err(SmError::NameExists { name: c.name.clone() })
}

fn create_secret(
    state: &State,
    keys: &dyn KeyLookup,
    c: &CreateSecret,
    ctx: &mut Ctx<'_>,
) -> Result<Decision, SmError> {
    check_create(c)?;
    if let Some(existing) = state.by_name(&ctx.scope.region, &c.name) {
        return create_existing(existing, keys, c);
    }
    let uid = state.next_uid();
    let arn = loop {
        let arn = secret_arn(ctx.scope, &c.name, &arn_suffix(ctx.rng));
        if state.by_arn(&arn).is_none() {
            break arn;
        }
    };
    let data_key = DataKey::from_bytes(fill(ctx.rng));
    let mut events = vec![Event::SecretCreated {
        secret: uid,
        region: ctx.scope.region.clone(),
        name: c.name.clone(),
        arn: arn.clone(),
        description: c.description.clone(),
        kms_key_id: c.kms_key_id.clone(),
        secret_type: c.secret_type.clone(),
        tags: c.tags.clone(),
    }];
    let mut version_id = None;
    if let (Some(token), Some(value)) = (&c.client_request_token, &c.value) {
        // The first version of a new secret: the same event as every new version, and
        // AWSCURRENT, which no version held before.
        events.push(version_created(uid, &data_key, token, value, ctx));
        events.push(Event::LabelMoved {
            secret: uid,
            label: AWSCURRENT.to_string(),
            from: None,
            to: Some(token.clone()),
        });
        version_id = Some(token.clone());
    }
    Ok(Decision {
        events,
        reply: Reply::Secret { arn, name: c.name.clone(), version_id },
        new_data_key: Some((uid, data_key)),
        shredded: Vec::new(),
    })
}

fn put_secret_value(
    state: &State,
    keys: &dyn KeyLookup,
    c: &PutSecretValue,
    ctx: &mut Ctx<'_>,
) -> Result<Decision, SmError> {
    check_token(&c.client_request_token)?;
    if let Some(stages) = &c.version_stages {
        check_count("versionStages", stages.len(), 1, LABELS_PER_SECRET_MAX)?;
        for stage in stages {
            check_label("versionStages.member", stage)?;
        }
    }
    // Request-shape errors come before the lookup, also for a secret that does not exist.
    let value = c.value.as_ref().ok_or(SmError::NoValue)?;
    let token = c.client_request_token.as_ref().ok_or(SmError::TokenMissing)?;
    let secret = live(state, ctx.scope, &c.secret_id)?;
    if secret.versions.get(token).is_some_and(|v| !v.has_value) {
        return fill_reserved(secret, keys.data_key(secret.uid), token, value, c.version_stages.as_deref(), ctx);
    }
    match new_version(secret, keys.data_key(secret.uid), token, value, c.version_stages.as_deref(), ctx)? {
        None => Ok(Decision::answer(Reply::Version {
            arn: secret.arn.clone(),
            name: secret.name.clone(),
            version_id: token.clone(),
            version_stages: secret.labels_of(token),
        })),
        Some(v) => Ok(Decision::with(
            v.events,
            Reply::Version {
                arn: secret.arn.clone(),
                name: secret.name.clone(),
                version_id: v.version_id,
                version_stages: v.stages,
            },
        )),
    }
}

fn update_secret(
    state: &State,
    keys: &dyn KeyLookup,
    c: &UpdateSecret,
    ctx: &mut Ctx<'_>,
) -> Result<Decision, SmError> {
    check_token(&c.client_request_token)?;
    check_metadata(&c.description, &c.kms_key_id, &c.secret_type)?;
    if c.value.is_some() && c.client_request_token.is_none() {
        return Err(SmError::TokenMissing);
    }
    let secret = live(state, ctx.scope, &c.secret_id)?;
    let mut events = Vec::new();
    let changes = |new: &Option<String>, old: &Option<String>| match new {
        Some(n) if Some(n.as_str()).filter(|n| !n.is_empty()) != old.as_deref() => Some(n.clone()),
        _ => None,
    };
    let description = changes(&c.description, &secret.description);
    let kms_key_id = changes(&c.kms_key_id, &secret.kms_key_id);
    let secret_type = match &c.secret_type {
        Some(t) if Some(t) != secret.secret_type.as_ref() => Some(t.clone()),
        _ => None,
    };
    if description.is_some() || kms_key_id.is_some() || secret_type.is_some() {
        events.push(Event::SecretUpdated { secret: secret.uid, description, kms_key_id, secret_type });
    }
    let mut version_id = None;
    if let Some(value) = &c.value {
        let token = c.client_request_token.as_ref().ok_or(SmError::TokenMissing)?;
        if let Some(v) = new_version(secret, keys.data_key(secret.uid), token, value, None, ctx)? {
            events.extend(v.events);
        }
        version_id = Some(token.clone());
    }
    Ok(Decision::with(events, Reply::Secret { arn: secret.arn.clone(), name: secret.name.clone(), version_id }))
}

fn update_version_stage(state: &State, c: &UpdateSecretVersionStage, ctx: &mut Ctx<'_>) -> Result<Decision, SmError> {
    check_label("versionStage", &c.version_stage)?;
    for id in [&c.remove_from_version_id, &c.move_to_version_id].into_iter().flatten() {
        check_len("versionId", id, TOKEN_CHARS_MIN, TOKEN_CHARS_MAX)?;
    }
    let secret = live(state, ctx.scope, &c.secret_id)?;
    let label = c.version_stage.as_str();
    let reply = Reply::Named { arn: secret.arn.clone(), name: secret.name.clone() };
    for id in [&c.remove_from_version_id, &c.move_to_version_id].into_iter().flatten() {
        if !secret.versions.contains_key(id) {
            return Err(SmError::StageVersionNotFound { version_id: id.clone() });
        }
    }
    let holder = secret.holder(label);
    let remove_from = c.remove_from_version_id.as_deref();
    if let Some(r) = remove_from {
        if holder != Some(r) {
            return Err(SmError::RemoveFromMismatch { label: label.to_string() });
        }
    }
    let uid = secret.uid;
    let Some(move_to) = c.move_to_version_id.as_deref() else {
        let Some(r) = remove_from else { return Err(SmError::NoStageTarget) };
        if label == AWSCURRENT {
            return Err(SmError::DetachCurrent);
        }
        let event = Event::LabelMoved { secret: uid, label: label.to_string(), from: Some(r.to_string()), to: None };
        return Ok(Decision::with(vec![event], reply));
    };
    if holder == Some(move_to) {
        return Ok(Decision::answer(reply));
    }
    if label == AWSCURRENT && secret.versions.get(move_to).is_some_and(|v| !v.has_value) {
        return Err(SmError::CurrentWithoutValue { version_id: move_to.to_string() });
    }
    if let Some(h) = holder {
        if remove_from.is_none() {
            return Err(SmError::RemoveFromMissing { label: label.to_string(), holder: h.to_string() });
        }
    }
    // Labels after the move: the moved one, plus AWSPREVIOUS when AWSCURRENT leaves a version.
    let adds_label = holder.is_none();
    let adds_previous = label == AWSCURRENT && holder.is_some() && secret.holder(AWSPREVIOUS).is_none();
    if secret.labels.len() + usize::from(adds_label) + usize::from(adds_previous) > LABELS_PER_SECRET_MAX {
        return Err(SmError::TooManyLabels { name: secret.name.clone(), max: LABELS_PER_SECRET_MAX });
    }
    let mut events = Vec::new();
    if label == AWSCURRENT {
        if let Some(old_current) = holder {
            // The old current becomes AWSPREVIOUS; whoever had it (maybe `move_to`) loses it.
            events.extend(previous_follows(uid, old_current, secret.holder(AWSPREVIOUS)));
        }
    }
    events.push(Event::LabelMoved {
        secret: uid,
        label: label.to_string(),
        from: holder.map(str::to_string),
        to: Some(move_to.to_string()),
    });
    Ok(Decision::with(events, reply))
}

fn delete_secret(state: &State, c: &DeleteSecret, ctx: &mut Ctx<'_>) -> Result<Decision, SmError> {
    let force = c.force_delete_without_recovery.unwrap_or(false);
    if let Some(days) = c.recovery_window_in_days {
        if !(RECOVERY_WINDOW_DAYS_MIN..=RECOVERY_WINDOW_DAYS_MAX).contains(&days) {
            return Err(SmError::RecoveryWindowOutOfRange);
        }
        if force {
            return Err(SmError::ForceWithWindow);
        }
    }
    let secret = match resolve(state, ctx.scope, &c.secret_id) {
        Ok(secret) => secret,
        Err(SmError::SecretNotFound) if force => {
            // AWS answers a forced delete of a missing secret with success and an ARN.
            let name = match parse_secret_id(ctx.scope, &c.secret_id)? {
                SecretRef::Name(n) | SecretRef::PartialArn(n) => n.to_string(),
                SecretRef::FullArn(arn) => {
                    // The resource is everything after the sixth `:` (it may contain `:` itself);
                    // parse_secret_id saw it end in `-` plus six characters.
                    let resource = arn.splitn(7, ':').nth(6).unwrap_or_default();
                    resource.get(..resource.len().saturating_sub(7)).unwrap_or_default().to_string()
                }
                SecretRef::Foreign => c.secret_id.clone(),
            };
            let arn = secret_arn(ctx.scope, &name, &arn_suffix(ctx.rng));
            return Ok(Decision::answer(Reply::Deleted { arn, name, deletion_date_ms: ctx.now_ms }));
        }
        Err(e) => return Err(e),
    };
    let uid = secret.uid;
    if force {
        return Ok(Decision {
            events: vec![Event::SecretPurged { secret: uid }],
            reply: Reply::Deleted { arn: secret.arn.clone(), name: secret.name.clone(), deletion_date_ms: ctx.now_ms },
            new_data_key: None,
            shredded: vec![uid],
        });
    }
    if secret.is_scheduled() {
        return Err(SmError::AlreadyScheduled);
    }
    let days = c.recovery_window_in_days.unwrap_or(RECOVERY_WINDOW_DAYS_DEFAULT);
    let deletion_date_ms = ctx.now_ms + days * DAY_MS;
    Ok(Decision::with(
        vec![Event::DeletionScheduled { secret: uid, deletion_date_ms }],
        Reply::Deleted { arn: secret.arn.clone(), name: secret.name.clone(), deletion_date_ms },
    ))
}

fn restore_secret(state: &State, c: &RestoreSecret, ctx: &mut Ctx<'_>) -> Result<Decision, SmError> {
    let secret = resolve(state, ctx.scope, &c.secret_id)?;
    let reply = Reply::Named { arn: secret.arn.clone(), name: secret.name.clone() };
    if !secret.is_scheduled() {
        return Ok(Decision::answer(reply));
    }
    Ok(Decision::with(vec![Event::DeletionCancelled { secret: secret.uid }], reply))
}

fn tag_resource(state: &State, c: &TagResource, ctx: &mut Ctx<'_>) -> Result<Decision, SmError> {
    // The count first: no per-tag work for a request that cannot fit a secret's quota.
    if c.tags.len() > TAGS_PER_SECRET_MAX {
        let secret = live(state, ctx.scope, &c.secret_id)?;
        return Err(SmError::TooManyTags { name: secret.name.clone(), max: TAGS_PER_SECRET_MAX });
    }
    check_tags(c.tags.iter().map(|t| (t.key.as_str(), t.value.as_str())))?;
    let secret = live(state, ctx.scope, &c.secret_id)?;
    let current = secret.tags.clone().unwrap_or_default();
    // Last value wins for a key repeated within one request, at its last position: O(n log n).
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, tag) in c.tags.iter().enumerate() {
        last.insert(tag.key.as_str(), i);
    }
    let mut keep: Vec<usize> = last.into_values().collect();
    keep.sort_unstable();
    let mut set: Vec<Tag> = keep.into_iter().map(|i| c.tags[i].clone()).collect();
    set.retain(|tag| !current.iter().any(|t| t.key == tag.key && t.value == tag.value));
    let n_new_keys = set.iter().filter(|tag| !current.iter().any(|t| t.key == tag.key)).count();
    if current.len() + n_new_keys > TAGS_PER_SECRET_MAX {
        return Err(SmError::TooManyTags { name: secret.name.clone(), max: TAGS_PER_SECRET_MAX });
    }
    if set.is_empty() {
        return Ok(Decision::answer(Reply::Empty));
    }
    Ok(Decision::with(vec![Event::TagsChanged { secret: secret.uid, set, removed: Vec::new() }], Reply::Empty))
}

fn untag_resource(state: &State, c: &UntagResource, ctx: &mut Ctx<'_>) -> Result<Decision, SmError> {
    for (i, key) in c.tag_keys.iter().enumerate() {
        check_len(&format!("tagKeys.{}.member", i + 1), key, 1, TAG_KEY_CHARS_MAX)?;
    }
    let secret = live(state, ctx.scope, &c.secret_id)?;
    let current = secret.tags.as_deref().unwrap_or_default();
    let mut removed: Vec<String> =
        c.tag_keys.iter().filter(|k| current.iter().any(|t| &t.key == *k)).cloned().collect();
    removed.sort();
    removed.dedup();
    if removed.is_empty() {
        return Ok(Decision::answer(Reply::Empty));
    }
    Ok(Decision::with(vec![Event::TagsChanged { secret: secret.uid, set: Vec::new(), removed }], Reply::Empty))
}

/// PutSecretValue with the token of a version RotateSecret reserved: the rotation function
/// giving it its value. Labels as for a new version; those it already holds stay.
fn fill_reserved(
    secret: &SecretState,
    key: Option<&DataKey>,
    token: &str,
    value: &SecretValue,
    stages: Option<&[String]>,
    ctx: &mut Ctx<'_>,
) -> Result<Decision, SmError> {
    let key = key.ok_or(SmError::Internal)?;
    let sealed = seal_value(key, secret.uid, token, value, fill(ctx.rng));
    let mut events = vec![Event::VersionValueSet {
        secret: secret.uid,
        version_id: token.to_string(),
        value: sealed,
        value_digest: value_digest(key, value),
    }];
    let (moves, _) = plan_new_version_labels(secret, token, stages)?;
    events.extend(moves);
    // The version's labels afterwards: the ones it held plus the ones moved to it.
    let mut labels: Vec<String> = secret.labels_of(token);
    for event in &events {
        if let Event::LabelMoved { label, to: Some(to), .. } = event {
            if to == token && !labels.contains(label) {
                labels.push(label.clone());
            }
        }
    }
    labels.sort();
    let reply = Reply::Version {
        arn: secret.arn.clone(),
        name: secret.name.clone(),
        version_id: token.to_string(),
        version_stages: labels,
    };
    Ok(Decision::with(events, reply))
}

/// RotateSecret. `RotateImmediately` true (the default): records the configuration if the
/// request changes it and reserves `AWSPENDING` on a new version for the token, for the rotation
/// to fill and promote. False: records the configuration only, since a decision cannot know
/// whether a rotation runner exists. Without one (no `--lambda-endpoint`) that is all: an
/// external rotator rotates at the schedule. With one, the runner then tests the configuration
/// as AWS does (ledger-server's `rotation` module): it reserves the version with a RotateSecret
/// of its own, invokes `testSecret` only, and takes `AWSPENDING` off the version again.
fn rotate_secret(state: &State, c: &RotateSecret, ctx: &mut Ctx<'_>) -> Result<Decision, SmError> {
    // Request shape first, before the secret is looked up.
    check_token(&c.client_request_token)?;
    let token = c.client_request_token.as_ref().ok_or(SmError::RotationTokenMissing)?;
    if let Some(arn) = &c.rotation_lambda_arn {
        check_len("rotationLambdaARN", arn, 0, ROTATION_LAMBDA_ARN_CHARS_MAX)?;
    }
    if let Some(rules) = &c.rotation_rules {
        crate::rotation::check_rules(rules, ctx.now_ms)?;
    }
    let secret = live(state, ctx.scope, &c.secret_id)?;
    if c.by_runner && !secret.rotation.enabled {
        return Err(SmError::InvalidRequest("Rotation of this secret was cancelled.".into()));
    }
    let lambda_arn = c.rotation_lambda_arn.clone().filter(|a| !a.is_empty());
    if lambda_arn.is_none() && secret.rotation.lambda_arn.is_none() {
        return Err(SmError::NoRotationFunction);
    }
    let reply = Reply::Secret { arn: secret.arn.clone(), name: secret.name.clone(), version_id: Some(token.clone()) };
    // A retry asks for nothing the configuration does not already say.
    let retry = lambda_arn.as_ref().is_none_or(|a| secret.rotation.lambda_arn.as_ref() == Some(a))
        && c.rotation_rules.as_ref().is_none_or(|r| secret.rotation.rules.as_ref() == Some(r));
    if secret.rotation_in_progress() {
        // A retry of the request that started this rotation gets its answer again.
        if retry && secret.holder(AWSPENDING) == Some(token.as_str()) {
            return Ok(Decision::answer(reply));
        }
        return Err(SmError::RotationInProgress);
    }
    match secret.versions.get(token) {
        // A retry of a rotation that already finished.
        Some(v) if v.by_rotation && retry => return Ok(Decision::answer(reply)),
        Some(_) => return Err(SmError::TokenReused { token: token.clone(), arn: secret.arn.clone() }),
        None if secret.retired.contains_key(token) => {
            return Err(SmError::TokenReused { token: token.clone(), arn: secret.arn.clone() })
        }
        None => {}
    }
    let uid = secret.uid;
    // Configuration only when the request changes it (a start of a due rotation does not).
    let mut events = Vec::new();
    if lambda_arn.is_some() || c.rotation_rules.is_some() || !secret.rotation.enabled {
        events.push(Event::RotationConfigured { secret: uid, lambda_arn, rules: c.rotation_rules.clone() });
    }
    if c.rotate_immediately.unwrap_or(true) {
        let take_pending = Event::LabelMoved {
            secret: uid,
            label: AWSPENDING.to_string(),
            from: secret.holder(AWSPENDING).map(str::to_string),
            to: Some(token.clone()),
        };
        if secret.holder(AWSPENDING).is_none() && secret.labels.len() >= LABELS_PER_SECRET_MAX {
            return Err(SmError::TooManyLabels { name: secret.name.clone(), max: LABELS_PER_SECRET_MAX });
        }
        let prunes = plan_pruning(secret, std::slice::from_ref(&take_pending), ctx.now_ms)?;
        events.push(Event::VersionReserved { secret: uid, version_id: token.clone() });
        events.push(take_pending);
        events.extend(prunes);
    }
    Ok(Decision::with(events, reply))
}

/// CancelRotateSecret: rotation off. `AWSPENDING` stays where it is, as on AWS; a runner
/// running the rotation stops before its next step.
fn cancel_rotate_secret(state: &State, c: &CancelRotateSecret, ctx: &mut Ctx<'_>) -> Result<Decision, SmError> {
    let secret = live(state, ctx.scope, &c.secret_id)?;
    // The interrupted rotation's version, if one is under way; its AWSPENDING stays.
    let version_id = secret.rotation_in_progress().then(|| secret.holder(AWSPENDING).map(str::to_string)).flatten();
    let reply = Reply::Secret { arn: secret.arn.clone(), name: secret.name.clone(), version_id };
    if !secret.rotation.enabled {
        return Ok(Decision::answer(reply));
    }
    Ok(Decision::with(vec![Event::RotationCancelled { secret: secret.uid }], reply))
}

fn put_resource_policy(state: &State, c: &PutResourcePolicy, ctx: &mut Ctx<'_>) -> Result<Decision, SmError> {
    crate::policy::check_len(&c.resource_policy)?;
    let doc = crate::policy::parse(&c.resource_policy)?;
    if c.block_public_policy.unwrap_or(false) && crate::policy::is_public(&doc) {
        return Err(SmError::PublicPolicy);
    }
    let secret = live(state, ctx.scope, &c.secret_id)?;
    let reply = Reply::Named { arn: secret.arn.clone(), name: secret.name.clone() };
    if secret.resource_policy.as_deref() == Some(c.resource_policy.as_str()) {
        return Ok(Decision::answer(reply));
    }
    Ok(Decision::with(vec![Event::ResourcePolicySet { secret: secret.uid, policy: c.resource_policy.clone() }], reply))
}

fn delete_resource_policy(state: &State, c: &DeleteResourcePolicy, ctx: &mut Ctx<'_>) -> Result<Decision, SmError> {
    let secret = live(state, ctx.scope, &c.secret_id)?;
    let reply = Reply::Named { arn: secret.arn.clone(), name: secret.name.clone() };
    if secret.resource_policy.is_none() {
        return Ok(Decision::answer(reply));
    }
    Ok(Decision::with(vec![Event::ResourcePolicyDeleted { secret: secret.uid }], reply))
}
