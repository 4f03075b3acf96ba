//! The projection: secrets, versions and label maps as the log says they are.
//!
//! Invariant: the projection is only changed by [`evolve`]. `evolve` checks every rule an event
//! must obey against the state before it, so replaying a log re-proves the rules.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

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
    /// Shared until changed ([`Arc::make_mut`]): a copy of the state for a snapshot costs a
    /// pointer per secret, not a deep copy (which took longer than encoding it).
    secrets: BTreeMap<SecretUid, Arc<SecretState>>,
    next_uid: u64,
    /// Region, then name: looked up by the request's own strings, without allocating.
    #[serde(skip)]
    by_name: HashMap<String, HashMap<String, SecretUid>>,
    #[serde(skip)]
    by_arn: HashMap<String, SecretUid>,
    /// (deletion date, secret) of every secret scheduled for deletion.
    #[serde(skip)]
    due: BTreeSet<(i64, SecretUid)>,
}

/// The part of a [`State`] a projection snapshot holds, taken by [`State::snapshot`]; it
/// encodes exactly as the state does.
#[derive(Clone, Debug, Serialize)]
pub struct StateSnapshot {
    secrets: BTreeMap<SecretUid, Arc<SecretState>>,
    next_uid: u64,
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
        self.secrets.get(&uid).map(|s| &**s)
    }

    pub fn secrets(&self) -> impl Iterator<Item = &SecretState> {
        self.secrets.values().map(|s| &**s)
    }

    pub fn by_name(&self, region: &str, name: &str) -> Option<&SecretState> {
        self.secret(*self.by_name.get(region)?.get(name)?)
    }

    pub fn by_arn(&self, arn: &str) -> Option<&SecretState> {
        self.secret(*self.by_arn.get(arn)?)
    }

    /// What a projection snapshot stores of the state (its secrets and next uid, encoded exactly
    /// as the state is), copied in a pointer per secret.
    pub fn snapshot(&self) -> StateSnapshot {
        StateSnapshot { secrets: self.secrets.clone(), next_uid: self.next_uid }
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
            self.by_name.entry(secret.region.clone()).or_default().insert(secret.name.clone(), secret.uid);
            self.by_arn.insert(secret.arn.clone(), secret.uid);
            if let Some(deletion) = secret.deletion {
                self.due.insert((deletion.deletion_date_ms, secret.uid));
            }
        }
    }

    /// A secret that exists, scheduled for deletion or not.
    fn any_mut(&mut self, uid: SecretUid) -> Result<&mut SecretState, RuleViolation> {
        self.secrets.get_mut(&uid).map(Arc::make_mut).ok_or(RuleViolation::MissingSecret { uid: uid.0 })
    }

    /// A secret that exists and is not scheduled for deletion: the only kind most events change.
    fn live_mut(&mut self, uid: SecretUid) -> Result<&mut SecretState, RuleViolation> {
        let secret = self.any_mut(uid)?;
        if secret.is_scheduled() {
            return Err(RuleViolation::ScheduledSecretChanged { uid: uid.0 });
        }
        Ok(secret)
    }
}

/// Applies one event to the state, after checking every rule it must obey.
/// On error the state is unchanged.
pub fn evolve(state: &mut State, seq: u64, recorded_at_ms: i64, event: &Event) -> Result<(), RuleViolation> {
    let at = recorded_at_ms;
    match event {
        Event::SecretCreated { .. } => secret_created(state, at, event),
        Event::VersionCreated { secret, version_id, value, value_digest } => {
            state.live_mut(*secret)?.add_version(version_id, seq, at, Some((value.kind, *value_digest)))
        }
        Event::VersionReserved { secret, version_id } => {
            state.live_mut(*secret)?.add_version(version_id, seq, at, None)
        }
        Event::VersionValueSet { secret, version_id, value, value_digest } => {
            state.live_mut(*secret)?.set_value(version_id, seq, (value.kind, *value_digest), at)
        }
        Event::RotationConfigured { secret, lambda_arn, rules } => {
            state.live_mut(*secret)?.configure_rotation(lambda_arn, rules, at)
        }
        Event::RotationCancelled { secret } => {
            let s = state.live_mut(*secret)?;
            s.rotation.enabled = false;
            s.last_changed_at_ms = at;
            Ok(())
        }
        Event::RotationFailed { secret, version_id, .. } => {
            let s = state.any_mut(*secret)?;
            s.version_mut(version_id)?;
            s.rotation.failed_at_ms = Some(at);
            Ok(())
        }
        Event::SecretAccessed { secret, version_id, day_ms } => {
            state.any_mut(*secret)?.accessed(version_id, *day_ms, at)
        }
        Event::ResourcePolicySet { secret, policy } => state.live_mut(*secret)?.set_policy(Some(policy), at),
        Event::ResourcePolicyDeleted { secret } => state.live_mut(*secret)?.set_policy(None, at),
        Event::SecretRead { .. } | Event::AccessDenied { .. } | Event::MasterKeyRotated { .. } => {
            check_record_only(state, event)
        }
        Event::LabelMoved { secret, label, from, to } => state.live_mut(*secret)?.move_label(label, from, to, at),
        Event::SecretUpdated { secret, description, kms_key_id, secret_type } => {
            state.live_mut(*secret)?.update(description, kms_key_id, secret_type, at);
            Ok(())
        }
        Event::TagsChanged { secret, set, removed } => {
            state.live_mut(*secret)?.change_tags(set, removed, at);
            Ok(())
        }
        Event::DeletionScheduled { secret, deletion_date_ms } => {
            schedule_deletion(state, *secret, *deletion_date_ms, at)
        }
        Event::DeletionCancelled { secret } => cancel_deletion(state, *secret, at),
        Event::SecretPurged { secret } => purge(state, *secret),
        Event::VersionPruned { secret, version_id } => state.live_mut(*secret)?.prune(version_id, at),
    }
}

/// `SecretCreated`: the next uid, an ARN that names the secret, a name free in its region.
fn secret_created(state: &mut State, at: i64, event: &Event) -> Result<(), RuleViolation> {
    let Event::SecretCreated { secret, region, name, arn, description, kms_key_id, secret_type, tags } = event else {
        unreachable!("called for SecretCreated only")
    };
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
    let taken = state.by_name.get(region).is_some_and(|names| names.contains_key(name));
    if taken || state.by_arn.contains_key(arn) {
        return Err(RuleViolation::NameTaken { name: name.clone(), region: region.clone() });
    }
    state.by_name.entry(region.clone()).or_default().insert(name.clone(), *secret);
    state.by_arn.insert(arn.clone(), *secret);
    state.next_uid = secret.0 + 1;
    let created = SecretState {
        uid: *secret,
        region: region.clone(),
        name: name.clone(),
        arn: arn.clone(),
        description: description.clone().filter(|d| !d.is_empty()),
        kms_key_id: kms_key_id.clone().filter(|k| !k.is_empty()),
        secret_type: secret_type.clone(),
        tags: tags.clone(),
        created_at_ms: at,
        last_changed_at_ms: at,
        deletion: None,
        versions: BTreeMap::new(),
        labels: BTreeMap::new(),
        retired: BTreeMap::new(),
        rotation: RotationState::default(),
        current_moved_at_ms: None,
        resource_policy: None,
        last_accessed_day_ms: None,
    };
    state.secrets.insert(*secret, Arc::new(created));
    Ok(())
}

/// Events that change no state, only checked: a read of a version with a value, a refusal of a
/// resource id of API length, a master key rotation to a newer key.
fn check_record_only(state: &State, event: &Event) -> Result<(), RuleViolation> {
    match event {
        Event::SecretRead { secret, version_id } => {
            let s = state.secrets.get(secret).ok_or(RuleViolation::MissingSecret { uid: secret.0 })?;
            if !s.versions.get(version_id).is_some_and(|v| v.has_value) {
                return Err(RuleViolation::MissingVersion { uid: secret.0, version_id: version_id.clone() });
            }
        }
        Event::AccessDenied { resource } if resource.chars().count() > crate::limits::SECRET_ID_CHARS_MAX => {
            return Err(RuleViolation::LongResource);
        }
        Event::MasterKeyRotated { from_key_id, to_key_id } if to_key_id <= from_key_id => {
            return Err(RuleViolation::MasterKeyNotNewer { from: *from_key_id, to: *to_key_id });
        }
        _ => {}
    }
    Ok(())
}

/// `DeletionCancelled`: only of a secret scheduled for deletion.
fn cancel_deletion(state: &mut State, secret: SecretUid, at: i64) -> Result<(), RuleViolation> {
    let s = state.any_mut(secret)?;
    let deletion = s.deletion.take().ok_or(RuleViolation::NotScheduled { uid: secret.0 })?;
    s.last_changed_at_ms = at;
    state.due.remove(&(deletion.deletion_date_ms, secret));
    Ok(())
}

/// `SecretPurged`: the secret and its name leave the state.
fn purge(state: &mut State, secret: SecretUid) -> Result<(), RuleViolation> {
    let removed = state.secrets.remove(&secret).ok_or(RuleViolation::MissingSecret { uid: secret.0 })?;
    // Read in place: a copy shared with a snapshot being written is not deep-copied to be dropped.
    let s = &*removed;
    if let Some(names) = state.by_name.get_mut(&s.region) {
        names.remove(&s.name);
        // No empty region left behind: a state replayed without this secret compares equal.
        if names.is_empty() {
            state.by_name.remove(&s.region);
        }
    }
    state.by_arn.remove(&s.arn);
    if let Some(deletion) = &s.deletion {
        state.due.remove(&(deletion.deletion_date_ms, secret));
    }
    Ok(())
}

/// `DeletionScheduled`: a recovery window of whole days within the limits.
fn schedule_deletion(
    state: &mut State,
    secret: SecretUid,
    deletion_date_ms: i64,
    at: i64,
) -> Result<(), RuleViolation> {
    let window = deletion_date_ms.checked_sub(at);
    let whole_days = window.filter(|w| w % DAY_MS == 0).map(|w| w / DAY_MS);
    if !whole_days.is_some_and(|d| (RECOVERY_WINDOW_DAYS_MIN..=RECOVERY_WINDOW_DAYS_MAX).contains(&d)) {
        return Err(RuleViolation::BadDeletionDate { uid: secret.0 });
    }
    let s = state.live_mut(secret)?;
    s.deletion = Some(Deletion { scheduled_at_ms: at, deletion_date_ms });
    s.last_changed_at_ms = at;
    state.due.insert((deletion_date_ms, secret));
    Ok(())
}

impl SecretState {
    fn version_mut(&mut self, version_id: &str) -> Result<&mut VersionState, RuleViolation> {
        let uid = self.uid.0;
        self.versions
            .get_mut(version_id)
            .ok_or_else(|| RuleViolation::MissingVersion { uid, version_id: version_id.to_string() })
    }

    /// `VersionValueSet`: the value of a reserved version, set once.
    fn set_value(
        &mut self,
        version_id: &str,
        seq: u64,
        (kind, digest): (crate::ValueKind, [u8; 32]),
        at: i64,
    ) -> Result<(), RuleViolation> {
        let uid = self.uid.0;
        let v = self.version_mut(version_id)?;
        if v.has_value {
            return Err(RuleViolation::ValueSetTwice { uid, version_id: version_id.to_string() });
        }
        (v.seq, v.kind, v.digest, v.has_value) = (seq, kind, digest, true);
        self.last_changed_at_ms = at;
        Ok(())
    }

    /// `ResourcePolicySet` (a non-empty policy) or `ResourcePolicyDeleted` (of a policy there).
    fn set_policy(&mut self, policy: Option<&String>, at: i64) -> Result<(), RuleViolation> {
        let uid = self.uid.0;
        match policy {
            Some(p) if p.is_empty() => return Err(RuleViolation::EmptyPolicy { uid }),
            Some(p) => self.resource_policy = Some(p.clone()),
            None if self.resource_policy.take().is_none() => return Err(RuleViolation::NoPolicy { uid }),
            None => {}
        }
        self.last_changed_at_ms = at;
        Ok(())
    }

    /// `RotationConfigured`: a function given now or before; rules kept unless new ones come.
    fn configure_rotation(
        &mut self,
        lambda_arn: &Option<String>,
        rules: &Option<RotationRules>,
        at: i64,
    ) -> Result<(), RuleViolation> {
        if lambda_arn.is_none() && self.rotation.lambda_arn.is_none() {
            return Err(RuleViolation::RotationWithoutFunction { uid: self.uid.0 });
        }
        let r = &mut self.rotation;
        r.enabled = true;
        if lambda_arn.is_some() {
            r.lambda_arn.clone_from(lambda_arn);
        }
        if rules.is_some() {
            r.rules.clone_from(rules);
        }
        r.configured_at_ms = Some(at);
        self.last_changed_at_ms = at;
        Ok(())
    }

    /// `SecretAccessed`: a whole UTC day, not after the record, and at most one event per
    /// version and day.
    fn accessed(&mut self, version_id: &str, day_ms: i64, at: i64) -> Result<(), RuleViolation> {
        let uid = self.uid.0;
        let v = self.version_mut(version_id)?;
        if day_ms % DAY_MS != 0 || day_ms > at || v.last_accessed_day_ms.is_some_and(|d| d >= day_ms) {
            return Err(RuleViolation::BadAccess { uid, version_id: version_id.to_string() });
        }
        v.last_accessed_day_ms = Some(day_ms);
        self.last_accessed_day_ms = self.last_accessed_day_ms.max(Some(day_ms));
        Ok(())
    }

    /// `LabelMoved`: from the label's actual holder to an existing version (AWSCURRENT only to
    /// one with a value, and never detached), within the label quota.
    fn move_label(
        &mut self,
        label: &str,
        from: &Option<String>,
        to: &Option<String>,
        at: i64,
    ) -> Result<(), RuleViolation> {
        self.check_label_move(label, from, to)?;
        if let Some(from) = from {
            if let Some(v) = self.versions.get_mut(from) {
                v.labels.remove(label);
                if v.labels.is_empty() {
                    // An emptied set keeps its node (~280 bytes); most versions lose their last
                    // label (AWSPREVIOUS) and then live unlabelled until pruned: 28 MB over
                    // 100k versions. A new set allocates nothing.
                    v.labels = BTreeSet::new();
                }
            }
            self.labels.remove(label);
        }
        if let Some(to) = to {
            let target = self.versions.get_mut(to).expect("checked above");
            target.labels.insert(label.to_string());
            if label == crate::AWSCURRENT {
                self.current_moved_at_ms = Some(at);
                if target.by_rotation {
                    self.rotation.last_rotated_at_ms = Some(at);
                }
            }
            self.labels.insert(label.to_string(), to.clone());
        }
        self.last_changed_at_ms = at;
        Ok(())
    }

    fn check_label_move(&self, label: &str, from: &Option<String>, to: &Option<String>) -> Result<(), RuleViolation> {
        let uid = self.uid.0;
        if from == to {
            return Err(RuleViolation::EmptyMove { label: label.to_string() });
        }
        if to.is_none() && label == crate::AWSCURRENT {
            return Err(RuleViolation::CurrentDetached { uid });
        }
        let actual = self.labels.get(label);
        if actual != from.as_ref() {
            return Err(RuleViolation::WrongLabelHolder {
                label: label.to_string(),
                claimed: from.clone(),
                actual: actual.cloned(),
            });
        }
        let Some(to) = to else { return Ok(()) };
        let Some(target) = self.versions.get(to) else {
            return Err(RuleViolation::MissingVersion { uid, version_id: to.clone() });
        };
        if label == crate::AWSCURRENT && !target.has_value {
            return Err(RuleViolation::CurrentWithoutValue { uid, version_id: to.clone() });
        }
        if actual.is_none() && self.labels.len() >= LABELS_PER_SECRET_MAX {
            return Err(RuleViolation::TooManyLabels { uid });
        }
        Ok(())
    }

    /// `SecretUpdated`: each member given replaces the old one (an empty one clears it).
    fn update(
        &mut self,
        description: &Option<String>,
        kms_key_id: &Option<String>,
        secret_type: &Option<String>,
        at: i64,
    ) {
        if let Some(d) = description {
            self.description = Some(d.clone()).filter(|d| !d.is_empty());
        }
        if let Some(k) = kms_key_id {
            self.kms_key_id = Some(k.clone()).filter(|k| !k.is_empty());
        }
        if let Some(t) = secret_type {
            self.secret_type = Some(t.clone());
        }
        self.last_changed_at_ms = at;
    }

    /// `TagsChanged`: set tags replace those of their key, then removed keys go.
    fn change_tags(&mut self, set: &[Tag], removed: &[String], at: i64) {
        let tags = self.tags.get_or_insert_with(Vec::new);
        for tag in set {
            match tags.iter_mut().find(|t| t.key == tag.key) {
                Some(existing) => existing.value = tag.value.clone(),
                None => tags.push(tag.clone()),
            }
        }
        tags.retain(|t| !removed.contains(&t.key));
        self.last_changed_at_ms = at;
    }

    /// `VersionPruned`: only a version without labels, older than the grace period; its digest
    /// is kept so the id is never reused for another value.
    fn prune(&mut self, version_id: &str, at: i64) -> Result<(), RuleViolation> {
        let bad = || RuleViolation::BadPrune { uid: self.uid.0, version_id: version_id.to_string() };
        let version = self.versions.get(version_id).ok_or_else(bad)?;
        if !version.labels.is_empty() || version.created_at_ms > at - PRUNE_GRACE_MS {
            return Err(bad());
        }
        let digest = version.digest;
        self.versions.remove(version_id);
        self.retired.insert(version_id.to_string(), digest);
        Ok(())
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn created(uid: u64, region: &str, name: &str) -> Event {
        Event::SecretCreated {
            secret: SecretUid(uid),
            region: region.into(),
            name: name.into(),
            arn: format!("arn:aws:secretsmanager:{region}:123456789012:secret:{name}-AbCdEf"),
            description: None,
            kms_key_id: None,
            secret_type: None,
            tags: None,
        }
    }

    /// The name index after the purge of a region's last secret: the name is free again, and the
    /// state equals one decoded from a snapshot (whose indexes are rebuilt from the secrets).
    #[test]
    fn purging_a_regions_last_secret_leaves_the_same_state_as_a_rebuild() {
        let mut state = State::default();
        evolve(&mut state, 1, 0, &created(1, "eu-west-1", "solo")).unwrap();
        evolve(&mut state, 2, 0, &created(2, "us-east-1", "other")).unwrap();
        evolve(&mut state, 3, 0, &Event::SecretPurged { secret: SecretUid(1) }).unwrap();
        assert!(state.by_name("eu-west-1", "solo").is_none());
        assert_eq!(state.by_name("us-east-1", "other").map(|s| s.uid), Some(SecretUid(2)));
        let mut rebuilt: State = crate::codec::decode(&crate::codec::encode(&state)).unwrap();
        rebuilt.rebuild_indexes();
        assert_eq!(rebuilt, state);
        evolve(&mut state, 4, 0, &created(3, "eu-west-1", "solo")).unwrap();
        assert_eq!(state.by_name("eu-west-1", "solo").map(|s| s.uid), Some(SecretUid(3)));
    }

    /// A snapshot is written from [`State::snapshot`] and compared with the encoding of the
    /// whole state: the two must stay the same bytes (a field added to one and not the other
    /// would fail every verify).
    #[test]
    fn a_snapshot_encodes_exactly_as_its_state() {
        let mut state = State::default();
        evolve(&mut state, 1, 0, &created(1, "eu-west-1", "solo")).unwrap();
        evolve(&mut state, 2, 0, &created(2, "us-east-1", "other")).unwrap();
        assert_eq!(crate::codec::encode(&state.snapshot()), crate::codec::encode(&state));
    }
}
