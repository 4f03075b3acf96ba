//! The projection: secrets, versions and label maps as the log says they are.
//!
//! Invariant: the projection is only changed by [`evolve`]. `evolve` checks every rule an event
//! must obey against the state before it, so replaying a log re-proves the rules.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::error::RuleViolation;
use crate::event::{Event, RotationRules, Tag};
use crate::ids::SecretUid;
use crate::limits::{
    DAY_MS, LABELS_PER_SECRET_MAX, PRUNE_GRACE_MS, RECOVERY_WINDOW_DAYS_MAX, RECOVERY_WINDOW_DAYS_MIN,
    VERSIONS_PER_SECRET_MAX,
};
use crate::value::ValueKind;

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    secrets: BTreeMap<SecretUid, SecretState>,
    next_uid: u64,
    #[serde(skip)]
    by_name: HashMap<(String, String), SecretUid>,
    #[serde(skip)]
    by_arn: HashMap<String, SecretUid>,
    /// (deletion date, secret) of every secret scheduled for deletion.
    #[serde(skip)]
    due: BTreeSet<(i64, SecretUid)>,
}

/// When a scheduled deletion was asked for and when it comes due.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deletion {
    pub scheduled_at_ms: i64,
    pub deletion_date_ms: i64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretState {
    pub uid: SecretUid,
    pub region: String,
    pub name: String,
    pub arn: String,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub secret_type: Option<String>,
    /// `None` until first tagged; `Some(vec![])` once every tag was removed.
    pub tags: Option<Vec<Tag>>,
    pub created_at_ms: i64,
    pub last_changed_at_ms: i64,
    pub deletion: Option<Deletion>,
    pub versions: BTreeMap<String, VersionState>,
    /// label → version id; a label is on at most one version.
    pub labels: BTreeMap<String, String>,
    /// Pruned versions: id → value digest, so their tokens stay idempotent for the secret's life.
    pub retired: BTreeMap<String, [u8; 32]>,
    /// Rotation configuration (RotateSecret / CancelRotateSecret).
    pub rotation: RotationState,
    /// When `AWSCURRENT` last moved (a rotation, by a function or by hand).
    pub current_moved_at_ms: Option<i64>,
    pub resource_policy: Option<String>,
    /// Midnight (UTC) of the last day any version was read.
    pub last_accessed_day_ms: Option<i64>,
}

/// A secret's rotation: whether it is on, with which function and rules, and when it last
/// completed.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationState {
    pub enabled: bool,
    pub lambda_arn: Option<String>,
    pub rules: Option<RotationRules>,
    /// When rotation was last configured.
    pub configured_at_ms: Option<i64>,
    /// When `AWSCURRENT` last moved onto a version a rotation reserved.
    pub last_rotated_at_ms: Option<i64>,
    /// When a rotation step last failed: the reattempt waits a rotation period from then.
    pub failed_at_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionState {
    pub created_at_ms: i64,
    /// Seq of the record that holds the sealed value (`VersionCreated` or `VersionValueSet`;
    /// for a reserved version not yet filled, its `VersionReserved`).
    pub seq: u64,
    pub kind: ValueKind,
    pub digest: [u8; 32],
    pub labels: BTreeSet<String>,
    /// `false` while a version reserved by RotateSecret has no value yet.
    pub has_value: bool,
    /// Reserved by RotateSecret: `AWSCURRENT` moving onto it completes a rotation.
    pub by_rotation: bool,
    /// Midnight (UTC) of the last day this version was read.
    pub last_accessed_day_ms: Option<i64>,
}

impl SecretState {
    pub fn is_scheduled(&self) -> bool {
        self.deletion.is_some()
    }

    /// Adds a version created (`value`: kind and digest) or reserved (`None`) by the record at
    /// `seq`.
    fn add_version(
        &mut self,
        version_id: &str,
        seq: u64,
        recorded_at_ms: i64,
        value: Option<(ValueKind, [u8; 32])>,
    ) -> Result<(), RuleViolation> {
        if self.versions.contains_key(version_id) || self.retired.contains_key(version_id) {
            return Err(RuleViolation::VersionReused { uid: self.uid.0, version_id: version_id.to_string() });
        }
        // A request may exceed the quota by the one version it then prunes.
        if self.versions.len() > VERSIONS_PER_SECRET_MAX {
            return Err(RuleViolation::TooManyVersions { uid: self.uid.0 });
        }
        let (kind, digest) = value.unwrap_or((ValueKind::String, [0; 32]));
        self.versions.insert(
            version_id.to_string(),
            VersionState {
                created_at_ms: recorded_at_ms,
                seq,
                kind,
                digest,
                labels: BTreeSet::new(),
                has_value: value.is_some(),
                by_rotation: value.is_none(),
                last_accessed_day_ms: None,
            },
        );
        self.last_changed_at_ms = recorded_at_ms;
        Ok(())
    }

    /// Whether a rotation is under way: `AWSPENDING` on a version other than `AWSCURRENT`'s.
    pub fn rotation_in_progress(&self) -> bool {
        self.holder(crate::AWSPENDING).is_some_and(|pending| self.holder(crate::AWSCURRENT) != Some(pending))
    }

    /// A rotation under way on a version RotateSecret reserved, with no failure recorded since:
    /// its runner was stopped (a shutdown, a crash) and it should resume at once.
    pub fn rotation_interrupted(&self) -> bool {
        let Some(pending) = self.holder(crate::AWSPENDING).and_then(|p| self.versions.get(p)) else { return false };
        self.rotation_in_progress()
            && pending.by_rotation
            && self.rotation.failed_at_ms.is_none_or(|failed| failed < pending.created_at_ms)
    }

    /// Labels of a version, sorted.
    pub fn labels_of(&self, version_id: &str) -> Vec<String> {
        self.versions.get(version_id).map(|v| v.labels.iter().cloned().collect()).unwrap_or_default()
    }

    pub fn holder(&self, label: &str) -> Option<&str> {
        self.labels.get(label).map(String::as_str)
    }
}

impl State {
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    pub fn next_uid(&self) -> SecretUid {
        SecretUid(self.next_uid.max(1))
    }

    pub fn secret(&self, uid: SecretUid) -> Option<&SecretState> {
        self.secrets.get(&uid)
    }

    pub fn secrets(&self) -> impl Iterator<Item = &SecretState> {
        self.secrets.values()
    }

    pub fn by_name(&self, region: &str, name: &str) -> Option<&SecretState> {
        // The key is owned; a lookup allocates two short strings, far below a sled read.
        let uid = self.by_name.get(&(region.to_string(), name.to_string()))?;
        self.secrets.get(uid)
    }

    /// Secrets whose rotation is due at `now_ms` (rotation on, a function configured, not
    /// scheduled for deletion, next rotation date reached, or a rotation interrupted before it
    /// failed or finished), with the version of the rotation under way if one is (to be
    /// resumed or reattempted with its token).
    pub fn due_rotations(&self, now_ms: i64) -> Vec<(SecretUid, Option<String>)> {
        self.secrets
            .values()
            .filter(|s| !s.is_scheduled() && s.rotation.enabled && s.rotation.lambda_arn.is_some())
            .filter(|s| {
                s.rotation_interrupted() || crate::rotation::next_rotation(s).is_some_and(|next| next <= now_ms)
            })
            .map(|s| {
                (s.uid, s.rotation_in_progress().then(|| s.holder(crate::AWSPENDING).map(str::to_string)).flatten())
            })
            .collect()
    }

    pub fn by_arn(&self, arn: &str) -> Option<&SecretState> {
        self.secrets.get(self.by_arn.get(arn)?)
    }

    /// Secrets whose recovery window ended at or before `now_ms`.
    pub fn due_for_purge(&self, now_ms: i64) -> impl Iterator<Item = SecretUid> + '_ {
        self.due.iter().take_while(move |(date, _)| *date <= now_ms).map(|(_, uid)| *uid)
    }

    /// Prepares an empty state to replay the events of one secret alone (point-in-time reads
    /// from the per-secret index): its `SecretCreated` becomes the next expected uid.
    pub fn expect_uid(&mut self, uid: SecretUid) {
        if self.secrets.is_empty() {
            self.next_uid = uid.0;
        }
    }

    /// Rebuilds the lookup indexes after a snapshot was decoded.
    pub fn rebuild_indexes(&mut self) {
        self.by_name.clear();
        self.by_arn.clear();
        self.due.clear();
        for secret in self.secrets.values() {
            self.by_name.insert((secret.region.clone(), secret.name.clone()), secret.uid);
            self.by_arn.insert(secret.arn.clone(), secret.uid);
            if let Some(deletion) = secret.deletion {
                self.due.insert((deletion.deletion_date_ms, secret.uid));
            }
        }
    }

    fn live_mut(&mut self, uid: SecretUid) -> Result<&mut SecretState, RuleViolation> {
        let secret = self.secrets.get_mut(&uid).ok_or(RuleViolation::MissingSecret { uid: uid.0 })?;
        if secret.is_scheduled() {
            return Err(RuleViolation::ScheduledSecretChanged { uid: uid.0 });
        }
        Ok(secret)
    }
}

/// Applies one event to the state, after checking every rule it must obey.
/// On error the state is unchanged.
pub fn evolve(state: &mut State, seq: u64, recorded_at_ms: i64, event: &Event) -> Result<(), RuleViolation> {
    match event {
        Event::SecretCreated { secret, region, name, arn, description, kms_key_id, secret_type, tags } => {
            let expected = state.next_uid();
            if *secret != expected {
                return Err(RuleViolation::UidOutOfOrder { uid: secret.0, expected: expected.0 });
            }
            if !arn_names(arn, region, name) {
                return Err(RuleViolation::BadArn {
                    uid: secret.0,
                    arn: arn.clone(),
                    name: name.clone(),
                    region: region.clone(),
                });
            }
            let key = (region.clone(), name.clone());
            if state.by_name.contains_key(&key) || state.by_arn.contains_key(arn) {
                return Err(RuleViolation::NameTaken { name: name.clone(), region: region.clone() });
            }
            state.by_name.insert(key, *secret);
            state.by_arn.insert(arn.clone(), *secret);
            state.next_uid = secret.0 + 1;
            state.secrets.insert(
                *secret,
                SecretState {
                    uid: *secret,
                    region: region.clone(),
                    name: name.clone(),
                    arn: arn.clone(),
                    description: description.clone().filter(|d| !d.is_empty()),
                    kms_key_id: kms_key_id.clone().filter(|k| !k.is_empty()),
                    secret_type: secret_type.clone(),
                    tags: tags.clone(),
                    created_at_ms: recorded_at_ms,
                    last_changed_at_ms: recorded_at_ms,
                    deletion: None,
                    versions: BTreeMap::new(),
                    labels: BTreeMap::new(),
                    retired: BTreeMap::new(),
                    rotation: RotationState::default(),
                    current_moved_at_ms: None,
                    resource_policy: None,
                    last_accessed_day_ms: None,
                },
            );
        }
        Event::VersionCreated { secret, version_id, value, value_digest } => {
            let s = state.live_mut(*secret)?;
            s.add_version(version_id, seq, recorded_at_ms, Some((value.kind, *value_digest)))?;
        }
        Event::VersionReserved { secret, version_id } => {
            let s = state.live_mut(*secret)?;
            s.add_version(version_id, seq, recorded_at_ms, None)?;
        }
        Event::VersionValueSet { secret, version_id, value, value_digest } => {
            let s = state.live_mut(*secret)?;
            let v = s
                .versions
                .get_mut(version_id)
                .ok_or_else(|| RuleViolation::MissingVersion { uid: secret.0, version_id: version_id.clone() })?;
            if v.has_value {
                return Err(RuleViolation::ValueSetTwice { uid: secret.0, version_id: version_id.clone() });
            }
            (v.seq, v.kind, v.digest, v.has_value) = (seq, value.kind, *value_digest, true);
            s.last_changed_at_ms = recorded_at_ms;
        }
        Event::RotationConfigured { secret, lambda_arn, rules } => {
            let s = state.live_mut(*secret)?;
            if lambda_arn.is_none() && s.rotation.lambda_arn.is_none() {
                return Err(RuleViolation::RotationWithoutFunction { uid: secret.0 });
            }
            let r = &mut s.rotation;
            r.enabled = true;
            if lambda_arn.is_some() {
                r.lambda_arn.clone_from(lambda_arn);
            }
            if rules.is_some() {
                r.rules.clone_from(rules);
            }
            r.configured_at_ms = Some(recorded_at_ms);
            s.last_changed_at_ms = recorded_at_ms;
        }
        Event::RotationCancelled { secret } => {
            let s = state.live_mut(*secret)?;
            s.rotation.enabled = false;
            s.last_changed_at_ms = recorded_at_ms;
        }
        Event::RotationFailed { secret, version_id, .. } => {
            let s = state.secrets.get_mut(secret).ok_or(RuleViolation::MissingSecret { uid: secret.0 })?;
            if !s.versions.contains_key(version_id) {
                return Err(RuleViolation::MissingVersion { uid: secret.0, version_id: version_id.clone() });
            }
            s.rotation.failed_at_ms = Some(recorded_at_ms);
        }
        Event::SecretAccessed { secret, version_id, day_ms } => {
            let s = state.secrets.get_mut(secret).ok_or(RuleViolation::MissingSecret { uid: secret.0 })?;
            let bad = || RuleViolation::BadAccess { uid: secret.0, version_id: version_id.clone() };
            let v = s
                .versions
                .get_mut(version_id)
                .ok_or_else(|| RuleViolation::MissingVersion { uid: secret.0, version_id: version_id.clone() })?;
            // A whole UTC day, not after the record, and at most one event per version and day.
            if day_ms % DAY_MS != 0 || *day_ms > recorded_at_ms || v.last_accessed_day_ms.is_some_and(|d| d >= *day_ms)
            {
                return Err(bad());
            }
            v.last_accessed_day_ms = Some(*day_ms);
            s.last_accessed_day_ms = s.last_accessed_day_ms.max(Some(*day_ms));
        }
        Event::ResourcePolicySet { secret, policy } => {
            let s = state.live_mut(*secret)?;
            if policy.is_empty() {
                return Err(RuleViolation::EmptyPolicy { uid: secret.0 });
            }
            s.resource_policy = Some(policy.clone());
            s.last_changed_at_ms = recorded_at_ms;
        }
        Event::SecretRead { secret, version_id } => {
            let s = state.secrets.get(secret).ok_or(RuleViolation::MissingSecret { uid: secret.0 })?;
            if !s.versions.get(version_id).is_some_and(|v| v.has_value) {
                return Err(RuleViolation::MissingVersion { uid: secret.0, version_id: version_id.clone() });
            }
        }
        Event::AccessDenied { resource } => {
            if resource.chars().count() > crate::limits::SECRET_ID_CHARS_MAX {
                return Err(RuleViolation::LongResource);
            }
        }
        Event::MasterKeyRotated { from_key_id, to_key_id } => {
            if to_key_id <= from_key_id {
                return Err(RuleViolation::MasterKeyNotNewer { from: *from_key_id, to: *to_key_id });
            }
        }
        Event::ResourcePolicyDeleted { secret } => {
            let s = state.live_mut(*secret)?;
            if s.resource_policy.take().is_none() {
                return Err(RuleViolation::NoPolicy { uid: secret.0 });
            }
            s.last_changed_at_ms = recorded_at_ms;
        }
        Event::LabelMoved { secret, label, from, to } => {
            let s = state.live_mut(*secret)?;
            if from == to {
                return Err(RuleViolation::EmptyMove { label: label.clone() });
            }
            if to.is_none() && label == crate::AWSCURRENT {
                return Err(RuleViolation::CurrentDetached { uid: secret.0 });
            }
            let actual = s.labels.get(label);
            if actual != from.as_ref() {
                return Err(RuleViolation::WrongLabelHolder {
                    label: label.clone(),
                    claimed: from.clone(),
                    actual: actual.cloned(),
                });
            }
            if let Some(to) = to {
                let Some(target) = s.versions.get(to) else {
                    return Err(RuleViolation::MissingVersion { uid: secret.0, version_id: to.clone() });
                };
                if label == crate::AWSCURRENT && !target.has_value {
                    return Err(RuleViolation::CurrentWithoutValue { uid: secret.0, version_id: to.clone() });
                }
                if actual.is_none() && s.labels.len() >= LABELS_PER_SECRET_MAX {
                    return Err(RuleViolation::TooManyLabels { uid: secret.0 });
                }
            }
            if let Some(from) = from {
                if let Some(v) = s.versions.get_mut(from) {
                    v.labels.remove(label);
                }
                s.labels.remove(label);
            }
            if let Some(to) = to {
                let target = s.versions.get_mut(to).expect("checked above");
                target.labels.insert(label.clone());
                if label == crate::AWSCURRENT {
                    s.current_moved_at_ms = Some(recorded_at_ms);
                    if target.by_rotation {
                        s.rotation.last_rotated_at_ms = Some(recorded_at_ms);
                    }
                }
                s.labels.insert(label.clone(), to.clone());
            }
            s.last_changed_at_ms = recorded_at_ms;
        }
        Event::SecretUpdated { secret, description, kms_key_id, secret_type } => {
            let s = state.live_mut(*secret)?;
            if let Some(d) = description {
                s.description = Some(d.clone()).filter(|d| !d.is_empty());
            }
            if let Some(k) = kms_key_id {
                s.kms_key_id = Some(k.clone()).filter(|k| !k.is_empty());
            }
            if let Some(t) = secret_type {
                s.secret_type = Some(t.clone());
            }
            s.last_changed_at_ms = recorded_at_ms;
        }
        Event::TagsChanged { secret, set, removed } => {
            let s = state.live_mut(*secret)?;
            let tags = s.tags.get_or_insert_with(Vec::new);
            for tag in set {
                match tags.iter_mut().find(|t| t.key == tag.key) {
                    Some(existing) => existing.value = tag.value.clone(),
                    None => tags.push(tag.clone()),
                }
            }
            tags.retain(|t| !removed.contains(&t.key));
            s.last_changed_at_ms = recorded_at_ms;
        }
        Event::DeletionScheduled { secret, deletion_date_ms } => {
            let window = deletion_date_ms.checked_sub(recorded_at_ms);
            let whole_days = window.filter(|w| w % DAY_MS == 0).map(|w| w / DAY_MS);
            if !whole_days.is_some_and(|d| (RECOVERY_WINDOW_DAYS_MIN..=RECOVERY_WINDOW_DAYS_MAX).contains(&d)) {
                return Err(RuleViolation::BadDeletionDate { uid: secret.0 });
            }
            let s = state.live_mut(*secret)?;
            s.deletion = Some(Deletion { scheduled_at_ms: recorded_at_ms, deletion_date_ms: *deletion_date_ms });
            s.last_changed_at_ms = recorded_at_ms;
            state.due.insert((*deletion_date_ms, *secret));
        }
        Event::DeletionCancelled { secret } => {
            let s = state.secrets.get_mut(secret).ok_or(RuleViolation::MissingSecret { uid: secret.0 })?;
            let deletion = s.deletion.take().ok_or(RuleViolation::NotScheduled { uid: secret.0 })?;
            s.last_changed_at_ms = recorded_at_ms;
            state.due.remove(&(deletion.deletion_date_ms, *secret));
        }
        Event::SecretPurged { secret } => {
            let s = state.secrets.remove(secret).ok_or(RuleViolation::MissingSecret { uid: secret.0 })?;
            state.by_name.remove(&(s.region, s.name));
            state.by_arn.remove(&s.arn);
            if let Some(deletion) = s.deletion {
                state.due.remove(&(deletion.deletion_date_ms, *secret));
            }
        }
        Event::VersionPruned { secret, version_id } => {
            let s = state.live_mut(*secret)?;
            let bad = || RuleViolation::BadPrune { uid: secret.0, version_id: version_id.clone() };
            let version = s.versions.get(version_id).ok_or_else(bad)?;
            if !version.labels.is_empty() || version.created_at_ms > recorded_at_ms - PRUNE_GRACE_MS {
                return Err(bad());
            }
            let digest = version.digest;
            s.versions.remove(version_id);
            s.retired.insert(version_id.clone(), digest);
        }
    }
    Ok(())
}

/// Whether `arn` is `arn:<partition>:secretsmanager:<region>:<account>:secret:<name>-<6 letters
/// or digits>`, as `decide` builds it.
fn arn_names(arn: &str, region: &str, name: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(7, ':').collect();
    let [scheme, _partition, service, arn_region, _account, kind, resource] = parts[..] else { return false };
    let Some(suffix) = resource.strip_prefix(name).and_then(|rest| rest.strip_prefix('-')) else { return false };
    scheme == "arn"
        && service == "secretsmanager"
        && arn_region == region
        && kind == "secret"
        && suffix.len() == 6
        && suffix.bytes().all(|b| b.is_ascii_alphanumeric())
}
