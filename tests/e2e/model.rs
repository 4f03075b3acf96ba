//! Model-based property test: random sequences of every write (with reused tokens, clock jumps
//! and restarts), of reads and of failed rotation steps run against the real sled-backed ledger
//! and against a plain reference model written from the spec. After every step the store equals
//! the model (labels, values, tags, rotation rules and dates, LastAccessedDate of every secret and
//! version), no label sits on two versions, and verify passes. The check's own reads of every
//! label are reads too: the model counts them.

use std::collections::BTreeMap;

use ledger_core::query::GetSecretValue;
use ledger_core::*;
use proptest::prelude::*;

use crate::fixture::{tok, Fixture};

const NAMES: [&str; 3] = ["a", "b/c", "d-e"];
const LABELS: [&str; 5] = ["AWSCURRENT", "AWSPREVIOUS", "AWSPENDING", "L1", "L2"];
const N_TOKENS: usize = 8;
const HOUR_MS: i64 = 3600 * 1000;
const DAY_MS: i64 = 24 * HOUR_MS;

fn value(i: usize) -> SecretValue {
    match i {
        0 => SecretValue::string("alpha"),
        1 => SecretValue::string("beta"),
        2 => SecretValue::binary(vec![0u8, 255, 7]),
        _ => SecretValue::binary(b"alpha".to_vec()),
    }
}

#[derive(Clone, Debug)]
enum Op {
    Create {
        name: usize,
        token: usize,
        value: Option<usize>,
    },
    Put {
        name: usize,
        token: usize,
        value: usize,
        stages: Option<Vec<usize>>,
    },
    Update {
        name: usize,
        token: usize,
        value: usize,
    },
    Stage {
        name: usize,
        label: usize,
        move_to: Option<usize>,
        remove_from: Option<usize>,
        right_remove: bool,
    },
    Delete {
        name: usize,
        force: bool,
        days: Option<i64>,
    },
    Restore {
        name: usize,
    },
    Tag {
        name: usize,
        key: usize,
    },
    Untag {
        name: usize,
        key: usize,
    },
    /// RotateSecret with a function ARN given (or not), reserving now (or not), with rules
    /// (`AutomaticallyAfterDays`) given (or not).
    Rotate {
        name: usize,
        token: usize,
        lambda: bool,
        immediately: bool,
        days: Option<i64>,
    },
    /// A rotation step failed on a version (`None`: the one holding AWSPENDING), as the rotation
    /// runner records it (`RecordRotationFailure`).
    FailRotation {
        name: usize,
        token: Option<usize>,
    },
    /// GetSecretValue through the ledger, by version id and/or label (neither: AWSCURRENT).
    Read {
        name: usize,
        token: Option<usize>,
        label: Option<usize>,
    },
    CancelRotate {
        name: usize,
    },
    /// PutResourcePolicy (`set`) or DeleteResourcePolicy.
    Policy {
        name: usize,
        set: bool,
    },
    Advance {
        hours: i64,
    },
    Restart,
}

fn op() -> impl Strategy<Value = Op> {
    let name = 0..NAMES.len();
    let token = 0..N_TOKENS;
    prop_oneof![
        2 => (name.clone(), token.clone(), proptest::option::weighted(0.8, 0..4usize))
            .prop_map(|(name, token, value)| Op::Create { name, token, value }),
        6 => (name.clone(), token.clone(), 0..4usize, proptest::option::weighted(0.4, proptest::collection::vec(0..LABELS.len(), 1..3)))
            .prop_map(|(name, token, value, stages)| Op::Put { name, token, value, stages }),
        1 => (name.clone(), token.clone(), 0..4usize).prop_map(|(name, token, value)| Op::Update { name, token, value }),
        3 => (name.clone(), 0..LABELS.len(), proptest::option::of(token.clone()), proptest::option::of(token.clone()), any::<bool>())
            .prop_map(|(name, label, move_to, remove_from, right_remove)| Op::Stage { name, label, move_to, remove_from, right_remove }),
        1 => (name.clone(), any::<bool>(), proptest::option::weighted(0.5, 5..32i64))
            .prop_map(|(name, force, days)| Op::Delete { name, force, days }),
        1 => name.clone().prop_map(|name| Op::Restore { name }),
        1 => (name.clone(), 0..3usize).prop_map(|(name, key)| Op::Tag { name, key }),
        1 => (name.clone(), 0..3usize).prop_map(|(name, key)| Op::Untag { name, key }),
        2 => (name.clone(), token.clone(), proptest::bool::weighted(0.5), proptest::bool::weighted(0.6), proptest::option::of(prop_oneof![Just(7i64), Just(30)]))
            .prop_map(|(name, token, lambda, immediately, days)| Op::Rotate { name, token, lambda, immediately, days }),
        1 => (name.clone(), proptest::option::weighted(0.3, token.clone()))
            .prop_map(|(name, token)| Op::FailRotation { name, token }),
        2 => (name.clone(), proptest::option::weighted(0.4, token.clone()), proptest::option::weighted(0.5, 0..LABELS.len()))
            .prop_map(|(name, token, label)| Op::Read { name, token, label }),
        1 => name.clone().prop_map(|name| Op::CancelRotate { name }),
        1 => (name.clone(), any::<bool>()).prop_map(|(name, set)| Op::Policy { name, set }),
        1 => prop_oneof![Just(1i64), Just(25), Just(24 * 8)].prop_map(|hours| Op::Advance { hours }),
        1 => Just(Op::Restart),
    ]
}

#[derive(Clone, Debug)]
struct MVersion {
    id: String,
    /// `None` for a version RotateSecret reserved and nobody filled yet.
    value: Option<SecretValue>,
    created_ms: i64,
    by_rotation: bool,
    /// Midnight (UTC) of the day it was last read.
    accessed_day: Option<i64>,
}

#[derive(Clone, Debug, Default)]
struct MSecret {
    versions: Vec<MVersion>,
    labels: BTreeMap<String, String>,
    pruned: BTreeMap<String, Option<SecretValue>>,
    deletion_date: Option<i64>,
    tags: Option<Vec<(String, String)>>,
    rotation_enabled: bool,
    lambda: Option<String>,
    policy: Option<String>,
    /// `AutomaticallyAfterDays` of the rotation rules last given.
    days: Option<i64>,
    /// When rotation was last configured, a rotation step last failed, `AWSCURRENT` last moved,
    /// and `AWSCURRENT` last moved onto a version RotateSecret reserved.
    configured_ms: Option<i64>,
    failed_ms: Option<i64>,
    current_moved_ms: Option<i64>,
    last_rotated_ms: Option<i64>,
    /// Midnight (UTC) of the last day any of its versions was read.
    accessed_day: Option<i64>,
}

impl MSecret {
    /// The value of a version, live or pruned: `Some(None)` for one without a value.
    fn find(&self, id: &str) -> Option<Option<&SecretValue>> {
        self.versions
            .iter()
            .find(|v| v.id == id)
            .map(|v| v.value.as_ref())
            .or_else(|| self.pruned.get(id).map(Option::as_ref))
    }

    fn rotation_in_progress(&self) -> bool {
        self.labels.get(AWSPENDING).is_some_and(|p| self.labels.get(AWSCURRENT) != Some(p))
    }

    /// Drops the oldest unlabelled versions older than a day while over the quota.
    fn prune(
        versions: &mut Vec<MVersion>,
        labels: &BTreeMap<String, String>,
        pruned: &mut BTreeMap<String, Option<SecretValue>>,
        now: i64,
    ) -> Result<(), ErrorCode> {
        while versions.len() > 100 {
            let victim = versions
                .iter()
                .position(|v| !labels.values().any(|l| *l == v.id) && v.created_ms <= now - 24 * HOUR_MS)
                .ok_or(ErrorCode::LimitExceededException)?;
            let v = versions.remove(victim);
            pruned.insert(v.id, v.value);
        }
        Ok(())
    }

    fn has_version(&self, id: &str) -> bool {
        self.versions.iter().any(|v| v.id == id)
    }

    fn labels_of(&self, id: &str) -> Vec<String> {
        self.labels.iter().filter(|(_, v)| *v == id).map(|(l, _)| l.clone()).collect()
    }

    /// Spec §4.2–4.4: a new version, its labels, the AWSPREVIOUS shuffle, pruning.
    fn add_version(
        &mut self,
        id: &str,
        value: &SecretValue,
        stages: Option<&[String]>,
        now: i64,
    ) -> Result<(), ErrorCode> {
        let filling = match self.find(id) {
            // A reserved version being given its value (PutSecretValue only; never pruned ones).
            Some(None) if self.has_version(id) => true,
            Some(existing) => {
                return if existing == Some(value) { Ok(()) } else { Err(ErrorCode::ResourceExistsException) };
            }
            None => false,
        };
        let mut wanted: Vec<String> = stages.map(<[String]>::to_vec).unwrap_or_else(|| vec![AWSCURRENT.into()]);
        if self.versions.is_empty() && !wanted.iter().any(|l| l == AWSCURRENT) {
            wanted.push(AWSCURRENT.into());
        }
        let mut labels = self.labels.clone();
        // Trace F: a default promotion takes AWSPENDING off the old current version too.
        if stages.is_none() && labels.contains_key(AWSCURRENT) && labels.get(AWSCURRENT) == labels.get(AWSPENDING) {
            labels.remove(AWSPENDING);
        }
        if wanted.iter().any(|l| l == AWSCURRENT) && !wanted.iter().any(|l| l == AWSPREVIOUS) {
            if let Some(current) = labels.get(AWSCURRENT).cloned() {
                labels.insert(AWSPREVIOUS.into(), current);
            }
        }
        for l in &wanted {
            labels.insert(l.clone(), id.to_string());
        }
        if labels.len() > 20 {
            return Err(ErrorCode::LimitExceededException);
        }
        let mut versions = self.versions.clone();
        let mut pruned = self.pruned.clone();
        if filling {
            let v = versions.iter_mut().find(|v| v.id == id).expect("found above");
            v.value = Some(value.clone());
        } else {
            versions.push(MVersion {
                id: id.to_string(),
                value: Some(value.clone()),
                created_ms: now,
                by_rotation: false,
                accessed_day: None,
            });
            MSecret::prune(&mut versions, &labels, &mut pruned, now)?;
        }
        self.versions = versions;
        self.labels = labels;
        self.pruned = pruned;
        Ok(())
    }

    /// UpdateSecretVersionStage (spec §4.3 rule 5), `remove_from` as sent.
    fn stage(&mut self, label: &str, move_to: Option<String>, remove_from: Option<String>) -> Result<(), ErrorCode> {
        let holder = self.labels.get(label).cloned();
        for id in [&remove_from, &move_to].into_iter().flatten() {
            if !self.has_version(id) {
                return Err(ErrorCode::InvalidParameterException);
            }
        }
        if remove_from.is_some() && remove_from != holder {
            return Err(ErrorCode::InvalidParameterException);
        }
        let Some(move_to) = move_to else {
            if remove_from.is_none() || label == AWSCURRENT {
                return Err(ErrorCode::InvalidParameterException);
            }
            self.labels.remove(label);
            return Ok(());
        };
        if holder.as_deref() == Some(move_to.as_str()) {
            return Ok(());
        }
        if label == AWSCURRENT && self.find(&move_to) == Some(None) {
            return Err(ErrorCode::InvalidRequestException);
        }
        match &holder {
            Some(_) if remove_from.is_none() => return Err(ErrorCode::InvalidParameterException),
            None if self.labels.len() >= 20 => return Err(ErrorCode::LimitExceededException),
            _ => {}
        }
        if label == AWSCURRENT {
            if let Some(h) = &holder {
                self.labels.insert(AWSPREVIOUS.into(), h.clone());
            }
        }
        self.labels.insert(label.into(), move_to);
        Ok(())
    }

    /// Spec §3.15: `AutomaticallyAfterDays` counts from the latest of the configuration, a
    /// failed step and any move of `AWSCURRENT`; nothing while rotation is off or without rules.
    fn next_rotation(&self) -> Option<i64> {
        if !self.rotation_enabled {
            return None;
        }
        let base = self.configured_ms.max(self.failed_ms).max(self.current_moved_ms)?;
        Some(base + self.days? * DAY_MS)
    }

    /// GetSecretValue (spec §3.3): the version read and its value.
    fn read(&self, version_id: Option<String>, stage: Option<&str>) -> Result<(String, SecretValue), ErrorCode> {
        if self.deletion_date.is_some() {
            return Err(ErrorCode::InvalidRequestException);
        }
        let id = match version_id {
            Some(id) if !self.has_version(&id) => return Err(ErrorCode::ResourceNotFoundException),
            Some(id) if stage.is_some_and(|l| self.labels.get(l) != Some(&id)) => {
                return Err(ErrorCode::InvalidRequestException)
            }
            Some(id) => id,
            None => {
                self.labels.get(stage.unwrap_or(AWSCURRENT)).cloned().ok_or(ErrorCode::ResourceNotFoundException)?
            }
        };
        let value = self.versions.iter().find(|v| v.id == id).and_then(|v| v.value.clone());
        // A reserved version without a value is not readable.
        value.map(|value| (id, value)).ok_or(ErrorCode::ResourceNotFoundException)
    }

    /// Spec §3.15, RotateSecret: a retry is answered again; otherwise the configuration (when
    /// the request changes it) and, `immediately`, an `AWSPENDING` version without a value.
    fn rotate(
        &mut self,
        token: String,
        lambda: bool,
        immediately: bool,
        days: Option<i64>,
        now: i64,
    ) -> Result<(), ErrorCode> {
        if !lambda && self.lambda.is_none() {
            return Err(ErrorCode::InvalidRequestException);
        }
        // A retry (same token) that asks for no other function or rules is answered again.
        let retry =
            (!lambda || self.lambda.as_deref() == Some(MODEL_LAMBDA)) && days.is_none_or(|d| self.days == Some(d));
        if self.rotation_in_progress() {
            return match retry && self.labels.get(AWSPENDING) == Some(&token) {
                true => Ok(()),
                false => Err(ErrorCode::InvalidRequestException),
            };
        }
        match self.versions.iter().find(|v| v.id == token) {
            Some(v) if v.by_rotation && retry => return Ok(()),
            Some(_) => return Err(ErrorCode::ResourceExistsException),
            None if self.pruned.contains_key(&token) => return Err(ErrorCode::ResourceExistsException),
            None => {}
        }
        if immediately {
            let mut versions = self.versions.clone();
            let mut pruned = self.pruned.clone();
            let mut labels = self.labels.clone();
            let reserved =
                MVersion { id: token.clone(), value: None, created_ms: now, by_rotation: true, accessed_day: None };
            versions.push(reserved);
            labels.insert(AWSPENDING.into(), token);
            MSecret::prune(&mut versions, &labels, &mut pruned, now)?;
            (self.versions, self.labels, self.pruned) = (versions, labels, pruned);
        }
        // The configuration is recorded only when the request changes it.
        if lambda || days.is_some() || !self.rotation_enabled {
            self.configured_ms = Some(now);
            self.days = days.or(self.days);
        }
        self.rotation_enabled = true;
        if lambda {
            self.lambda = Some(MODEL_LAMBDA.into());
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Model {
    secrets: BTreeMap<String, MSecret>,
    now: i64,
}

impl Model {
    fn live(&mut self, name: &str) -> Result<&mut MSecret, ErrorCode> {
        let s = self.secrets.get_mut(name).ok_or(ErrorCode::ResourceNotFoundException)?;
        if s.deletion_date.is_some() {
            return Err(ErrorCode::InvalidRequestException);
        }
        Ok(s)
    }

    fn purge_due(&mut self) {
        let now = self.now;
        self.secrets.retain(|_, s| s.deletion_date.is_none_or(|d| d > now));
    }

    /// CreateSecret: an existing name is taken, unless this is a retry with the same value.
    fn create(&mut self, name: &str, token: String, value: Option<SecretValue>) -> Result<(), ErrorCode> {
        if let Some(s) = self.secrets.get(name) {
            if s.deletion_date.is_some() {
                return Err(ErrorCode::InvalidRequestException);
            }
            if let Some(v) = &value {
                match s.find(&token) {
                    Some(existing) if existing == Some(v) => return Ok(()),
                    Some(_) => return Err(ErrorCode::ResourceExistsException),
                    None => {}
                }
            }
            return Err(ErrorCode::ResourceExistsException);
        }
        let mut s = MSecret::default();
        if let Some(v) = value {
            s.add_version(&token, &v, None, self.now)?;
        }
        self.secrets.insert(name.to_string(), s);
        Ok(())
    }

    /// DeleteSecret: scheduled after the recovery window, or at once when forced.
    fn delete(&mut self, name: &str, force: bool, days: Option<i64>) -> Result<(), ErrorCode> {
        if days.is_some_and(|d| !(7..=30).contains(&d)) || (days.is_some() && force) {
            return Err(ErrorCode::InvalidParameterException);
        }
        let Some(s) = self.secrets.get_mut(name) else {
            return if force { Ok(()) } else { Err(ErrorCode::ResourceNotFoundException) };
        };
        if force {
            self.secrets.remove(name);
            return Ok(());
        }
        if s.deletion_date.is_some() {
            return Err(ErrorCode::InvalidRequestException);
        }
        s.deletion_date = Some(self.now + days.unwrap_or(30) * 24 * HOUR_MS);
        Ok(())
    }

    /// A failed rotation step, recorded for a version the secret still has (even while it is
    /// scheduled for deletion): the next rotation waits a period from now.
    fn fail_rotation(&mut self, name: &str, version_id: Option<String>) {
        let now = self.now;
        if let Some(s) = self.secrets.get_mut(name) {
            let id = version_id.or_else(|| s.labels.get(AWSPENDING).cloned());
            if id.is_some_and(|id| s.has_version(&id)) {
                s.failed_ms = Some(now);
            }
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), ErrorCode> {
        let now = self.now;
        match op {
            Op::Create { name, token, value } => self.create(NAMES[*name], tok(*token), value.map(self::value)),
            Op::Put { name, token, value, stages } => {
                let stages: Option<Vec<String>> =
                    stages.as_ref().map(|s| s.iter().map(|&i| LABELS[i].to_string()).collect());
                self.live(NAMES[*name])?.add_version(&tok(*token), &self::value(*value), stages.as_deref(), now)
            }
            Op::Update { name, token, value } => {
                let s = self.live(NAMES[*name])?;
                // Only PutSecretValue fills a reserved version; to UpdateSecret its token is taken.
                if s.find(&tok(*token)) == Some(None) {
                    return Err(ErrorCode::ResourceExistsException);
                }
                s.add_version(&tok(*token), &self::value(*value), None, now)
            }
            Op::Stage { name, label, move_to, remove_from, right_remove } => {
                let s = self.live(NAMES[*name])?;
                let holder = s.labels.get(LABELS[*label]).cloned();
                let remove_from = if *right_remove { holder } else { remove_from.map(tok) };
                s.stage(LABELS[*label], move_to.map(tok), remove_from)
            }
            Op::Delete { name, force, days } => self.delete(NAMES[*name], *force, *days),
            Op::Restore { name } => {
                let s = self.secrets.get_mut(NAMES[*name]).ok_or(ErrorCode::ResourceNotFoundException)?;
                s.deletion_date = None;
                Ok(())
            }
            Op::Tag { name, key } => {
                let s = self.live(NAMES[*name])?;
                let tags = s.tags.get_or_insert_with(Vec::new);
                let key = format!("k{key}");
                // An existing key keeps its place and gets the new value.
                match tags.iter_mut().find(|(k, _)| *k == key) {
                    Some(tag) => tag.1 = "v".into(),
                    None => tags.push((key, "v".into())),
                }
                Ok(())
            }
            Op::Untag { name, key } => {
                let s = self.live(NAMES[*name])?;
                let key = format!("k{key}");
                if let Some(tags) = &mut s.tags {
                    tags.retain(|(k, _)| *k != key);
                }
                Ok(())
            }
            Op::Rotate { name, token, lambda, immediately, days } => {
                self.live(NAMES[*name])?.rotate(tok(*token), *lambda, *immediately, *days, now)
            }
            Op::FailRotation { name, token } => {
                self.fail_rotation(NAMES[*name], token.map(tok));
                Ok(())
            }
            Op::CancelRotate { name } => {
                self.live(NAMES[*name])?.rotation_enabled = false;
                Ok(())
            }
            Op::Policy { name, set } => {
                self.live(NAMES[*name])?.policy = set.then(|| MODEL_POLICY.to_string());
                Ok(())
            }
            Op::Read { .. } | Op::Advance { .. } | Op::Restart => Ok(()),
        }
    }

    /// [`Model::apply`], then what a move of `AWSCURRENT` changes: the base of the next
    /// rotation, and the last rotation if it moved onto a version RotateSecret reserved.
    fn step(&mut self, op: &Op) -> Result<(), ErrorCode> {
        let before: BTreeMap<String, Option<String>> =
            self.secrets.iter().map(|(n, s)| (n.clone(), s.labels.get(AWSCURRENT).cloned())).collect();
        let result = self.apply(op);
        let now = self.now;
        for (name, s) in &mut self.secrets {
            let Some(current) = s.labels.get(AWSCURRENT) else { continue };
            if before.get(name) != Some(&Some(current.clone())) {
                s.current_moved_ms = Some(now);
                if s.versions.iter().any(|v| v.id == *current && v.by_rotation) {
                    s.last_rotated_ms = Some(now);
                }
            }
        }
        result
    }

    fn read(
        &self,
        name: &str,
        version_id: Option<String>,
        stage: Option<&str>,
    ) -> Result<(String, SecretValue), ErrorCode> {
        self.secrets.get(name).ok_or(ErrorCode::ResourceNotFoundException)?.read(version_id, stage)
    }

    /// A successful read: the version's and the secret's LastAccessedDate become today.
    fn note_read(&mut self, name: &str, version_id: &str) {
        let day = self.now.div_euclid(DAY_MS) * DAY_MS;
        let Some(s) = self.secrets.get_mut(name) else { return };
        if let Some(v) = s.versions.iter_mut().find(|v| v.id == version_id) {
            v.accessed_day = Some(day);
        }
        s.accessed_day = s.accessed_day.max(Some(day));
    }
}

const MODEL_LAMBDA: &str = "arn:aws:lambda:us-east-1:123456789012:function:rotate";
const MODEL_POLICY: &str =
    r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::123456789012:root"},"Action":"*"}]}"#;

fn command(op: &Op) -> Option<Command> {
    let id = |name: &usize| NAMES[*name].to_string();
    Some(match op {
        Op::Create { name, token, value } => Command::CreateSecret(CreateSecret {
            name: id(name),
            client_request_token: Some(tok(*token)),
            value: value.map(self::value),
            ..CreateSecret::default()
        }),
        Op::Put { name, token, value, stages } => Command::PutSecretValue(PutSecretValue {
            secret_id: id(name),
            client_request_token: Some(tok(*token)),
            value: Some(self::value(*value)),
            version_stages: stages.as_ref().map(|s| s.iter().map(|&i| LABELS[i].to_string()).collect()),
        }),
        Op::Update { name, token, value } => Command::UpdateSecret(UpdateSecret {
            secret_id: id(name),
            client_request_token: Some(tok(*token)),
            value: Some(self::value(*value)),
            ..UpdateSecret::default()
        }),
        Op::Stage { .. } => return None, // needs the store's current holder; built in `run`
        Op::Delete { name, force, days } => Command::DeleteSecret(DeleteSecret {
            secret_id: id(name),
            recovery_window_in_days: *days,
            force_delete_without_recovery: force.then_some(true),
        }),
        Op::Restore { name } => Command::RestoreSecret(RestoreSecret { secret_id: id(name) }),
        Op::Tag { name, key } => Command::TagResource(TagResource {
            secret_id: id(name),
            tags: vec![Tag { key: format!("k{key}"), value: "v".into() }],
        }),
        Op::Untag { name, key } => {
            Command::UntagResource(UntagResource { secret_id: id(name), tag_keys: vec![format!("k{key}")] })
        }
        Op::Rotate { name, token, lambda, immediately, days } => Command::RotateSecret(RotateSecret {
            secret_id: id(name),
            client_request_token: Some(tok(*token)),
            rotation_lambda_arn: lambda.then(|| MODEL_LAMBDA.to_string()),
            rotation_rules: days
                .map(|d| RotationRules { automatically_after_days: Some(d), ..RotationRules::default() }),
            rotate_immediately: Some(*immediately),
            by_runner: false,
        }),
        Op::CancelRotate { name } => Command::CancelRotateSecret(CancelRotateSecret { secret_id: id(name) }),
        Op::Policy { name, set: true } => Command::PutResourcePolicy(PutResourcePolicy {
            secret_id: id(name),
            resource_policy: MODEL_POLICY.into(),
            block_public_policy: Some(true),
        }),
        Op::Policy { name, set: false } => Command::DeleteResourcePolicy(DeleteResourcePolicy { secret_id: id(name) }),
        // These need the store's current state; built in `store_command`. Reads are not commands.
        Op::FailRotation { .. } | Op::Read { .. } | Op::Advance { .. } | Op::Restart => return None,
    })
}

/// The command of a write, with what it takes from the store: the label holder of a right
/// `RemoveFromVersionId`, the uid and AWSPENDING holder of a failed rotation step.
fn store_command(f: &Fixture, op: &Op) -> Command {
    if let Some(cmd) = command(op) {
        return cmd;
    }
    let secret = |name: usize, label: &str| {
        f.ledger().with_state(|s| {
            let secret = s.by_name("us-east-1", NAMES[name]);
            (secret.map(|s| s.uid), secret.and_then(|s| s.holder(label).map(String::from)))
        })
    };
    match op {
        Op::Stage { name, label, move_to, remove_from, right_remove } => {
            let (_, holder) = secret(*name, LABELS[*label]);
            Command::UpdateSecretVersionStage(UpdateSecretVersionStage {
                secret_id: NAMES[*name].into(),
                version_stage: LABELS[*label].into(),
                move_to_version_id: move_to.map(tok),
                remove_from_version_id: if *right_remove { holder } else { remove_from.map(tok) },
            })
        }
        Op::FailRotation { name, token } => {
            let (uid, pending) = secret(*name, AWSPENDING);
            Command::RecordRotationFailure {
                // No such secret, or no such version: nothing is recorded.
                secret: uid.unwrap_or(SecretUid(u64::MAX)),
                version_id: token.map(tok).or(pending).unwrap_or_default(),
                step: "testSecret".into(),
                error: "the model's rotation function failed".into(),
            }
        }
        _ => unreachable!("{op:?} is no write"),
    }
}

fn snapshot(f: &Fixture) -> BTreeMap<String, SecretState> {
    f.ledger().with_state(|s| s.secrets().map(|s| (s.name.clone(), s.clone())).collect())
}

/// Compares the store with the model: secrets, versions, labels, tags, rotation and policy;
/// then reads every label back (the model counts these reads) and, once the writer has recorded
/// them, compares the dates.
fn check_equal(f: &mut Fixture, model: &mut Model) -> Result<(), TestCaseError> {
    let store = snapshot(f);
    prop_assert_eq!(store.keys().collect::<Vec<_>>(), model.secrets.keys().collect::<Vec<_>>());
    for (name, m) in &model.secrets {
        check_secret(name, &store[name], m)?;
    }
    for (name, version_id) in read_back(f, model)? {
        model.note_read(&name, &version_id);
    }
    // The reads queued their `SecretAccessed` without waiting; a write behind them settles them.
    let _ = f.exec(Command::RestoreSecret(RestoreSecret { secret_id: "no-such-secret".into() }));
    check_dates(&snapshot(f), model)
}

fn check_secret(name: &str, s: &SecretState, m: &MSecret) -> Result<(), TestCaseError> {
    prop_assert_eq!(&s.labels, &m.labels, "labels of {}", name);
    let ids: Vec<&String> = s.versions.keys().collect();
    let mut model_ids: Vec<&String> = m.versions.iter().map(|v| &v.id).collect();
    model_ids.sort();
    prop_assert_eq!(ids, model_ids, "versions of {}", name);
    // No label on two versions: the label map and the versions' label sets agree.
    for (id, v) in &s.versions {
        prop_assert_eq!(v.labels.iter().cloned().collect::<Vec<_>>(), m.labels_of(id));
    }
    prop_assert_eq!(s.deletion.map(|d| d.deletion_date_ms), m.deletion_date);
    let tags = s.tags.as_ref().map(|t| t.iter().map(|t| (t.key.clone(), t.value.clone())).collect::<Vec<_>>());
    prop_assert_eq!(tags, m.tags.clone());
    prop_assert_eq!(s.rotation.enabled, m.rotation_enabled, "rotation of {}", name);
    prop_assert_eq!(s.rotation.lambda_arn.as_deref(), m.lambda.as_deref());
    prop_assert_eq!(s.resource_policy.as_deref(), m.policy.as_deref());
    Ok(())
}

/// Every label of every live secret reads back the model's value (or its error); returns the
/// versions read.
fn read_back(f: &Fixture, model: &Model) -> Result<Vec<(String, String)>, TestCaseError> {
    let mut read = Vec::new();
    for (name, m) in model.secrets.iter().filter(|(_, m)| m.deletion_date.is_none()) {
        for label in m.labels.keys() {
            let q =
                GetSecretValue { secret_id: name.clone(), version_stage: Some(label.clone()), ..Default::default() };
            let got = f.ledger().get_secret_value(&f.scope, &q).unwrap();
            let got = got.map(|out| (out.location.version_id, out.value)).map_err(|e| e.code());
            prop_assert_eq!(&got, &m.read(None, Some(label)), "{} {}", name, label);
            if let Ok((version_id, _)) = got {
                read.push((name.clone(), version_id));
            }
        }
    }
    Ok(read)
}

/// LastAccessedDate of every secret (DescribeSecret's) and version, the rotation rules, the last
/// and the next rotation date.
fn check_dates(store: &BTreeMap<String, SecretState>, model: &Model) -> Result<(), TestCaseError> {
    for (name, m) in &model.secrets {
        let s = &store[name];
        let d = ledger_core::query::describe(s);
        prop_assert_eq!(d.last_accessed_ms, m.accessed_day, "LastAccessedDate of {}", name);
        for v in &m.versions {
            prop_assert_eq!(
                s.versions[&v.id].last_accessed_day_ms,
                v.accessed_day,
                "LastAccessedDate of {} {}",
                name,
                v.id
            );
        }
        let days = d.rotation_rules.as_ref().and_then(|r| r.automatically_after_days);
        prop_assert_eq!(days, m.days, "RotationRules of {}", name);
        prop_assert_eq!(d.last_rotated_ms, m.last_rotated_ms, "LastRotatedDate of {}", name);
        prop_assert_eq!(d.next_rotation_ms, m.next_rotation(), "NextRotationDate of {}", name);
    }
    Ok(())
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    run_on(Fixture::new(), ops)
}

fn run_on(mut f: Fixture, ops: Vec<Op>) -> Result<(), TestCaseError> {
    let mut model = Model { now: crate::fixture::T0, ..Model::default() };
    for (step, op) in ops.iter().enumerate() {
        match op {
            Op::Restart => f.reopen(),
            Op::Advance { hours } => {
                f.clock.advance(hours * HOUR_MS);
                model.now += hours * HOUR_MS;
                model.purge_due();
                // Any write wakes the writer, whose sweep purges due secrets first.
                let _ = f.exec(Command::RestoreSecret(RestoreSecret { secret_id: "no-such-secret".into() }));
            }
            Op::Read { name, token, label } => read(&f, &mut model, step, (*name, *token, *label))?,
            _ => {
                let cmd = store_command(&f, op);
                let expected = model.step(op);
                let actual = f.exec(cmd).map(|_| ()).map_err(|e| e.code());
                if std::env::var_os("MODEL_TRACE").is_some() {
                    eprintln!("{op:?} -> {actual:?}");
                }
                prop_assert_eq!(actual, expected, "step {}: {:?}", step, op);
            }
        }
        check_equal(&mut f, &mut model)?;
        if let Err(failure) = f.ledger().verify(&mut |_, _| {}).unwrap() {
            return Err(TestCaseError::fail(format!("verify failed after step {step}: {failure}")));
        }
    }
    Ok(())
}

/// `Op::Read`: GetSecretValue through the ledger answers as the model does, which then counts
/// the read.
fn read(
    f: &Fixture,
    model: &mut Model,
    step: usize,
    op: (usize, Option<usize>, Option<usize>),
) -> Result<(), TestCaseError> {
    let (name, token, label) = op;
    let q = GetSecretValue {
        secret_id: NAMES[name].into(),
        version_id: token.map(tok),
        version_stage: label.map(|l| LABELS[l].to_string()),
    };
    let actual = f.ledger().get_secret_value(&f.scope, &q).unwrap();
    let actual = actual.map(|out| (out.location.version_id, out.value)).map_err(|e| e.code());
    let expected = model.read(NAMES[name], token.map(tok), label.map(|l| LABELS[l]));
    if std::env::var_os("MODEL_TRACE").is_some() {
        eprintln!("Read {q:?} -> {actual:?}");
    }
    prop_assert_eq!(&actual, &expected, "step {}: {:?}", step, q);
    if let Ok((version_id, _)) = actual {
        model.note_read(NAMES[name], &version_id);
    }
    Ok(())
}

/// One fixed sequence through the rotation dates: a RotateSecret that changes nothing (no
/// function, no rules, rotation on) starts a rotation without reconfiguring it, so
/// NextRotationDate keeps counting from the configuration; the external rotator's promotion sets
/// LastRotatedDate and restarts the count; a failed step delays it; reads on later days move
/// LastAccessedDate of the versions read only.
#[test]
fn rotation_and_access_dates_trace() {
    let ops = vec![
        Op::Create { name: 0, token: 0, value: Some(0) },
        Op::Rotate { name: 0, token: 1, lambda: true, immediately: false, days: Some(7) },
        Op::Advance { hours: 25 },
        Op::Rotate { name: 0, token: 2, lambda: false, immediately: true, days: None },
        Op::Advance { hours: 25 },
        Op::Put { name: 0, token: 2, value: 1, stages: Some(vec![2]) },
        Op::Stage { name: 0, label: 0, move_to: Some(2), remove_from: None, right_remove: true },
        Op::Advance { hours: 25 },
        Op::FailRotation { name: 0, token: Some(2) },
        Op::Advance { hours: 25 },
        Op::Read { name: 0, token: Some(0), label: Some(1) },
        Op::Put { name: 0, token: 3, value: 2, stages: None },
        Op::Advance { hours: 25 },
        Op::Read { name: 0, token: Some(0), label: None },
    ];
    run(ops).unwrap();
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 200, ..ProptestConfig::default() })]

    #[test]
    fn store_equals_model(ops in proptest::collection::vec(op(), 1..60)) {
        // Most sequences start from existing secrets, so writes meet something to act on.
        let mut all: Vec<Op> = (0..NAMES.len()).map(|name| Op::Create { name, token: name, value: Some(name) }).collect();
        all.extend(ops);
        run(all)?;
    }
}

/// The same model test with the ledger in PostgreSQL: fewer cases (each gets a fresh database).
#[test]
fn store_equals_model_on_postgres() {
    let Some(pg) = crate::pg::PgCluster::start("store_equals_model_on_postgres") else { return };
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 24,
        max_shrink_iters: 50,
        ..ProptestConfig::default()
    });
    let case = std::cell::Cell::new(0u32);
    let strategy = proptest::collection::vec(op(), 1..40);
    let result = runner.run(&strategy, |ops| {
        case.set(case.get() + 1);
        let url = pg.database(&format!("model_{}", case.get()));
        let mut all: Vec<Op> =
            (0..NAMES.len()).map(|name| Op::Create { name, token: name, value: Some(name) }).collect();
        all.extend(ops);
        run_on(Fixture::on_postgres(&url), all)
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}
