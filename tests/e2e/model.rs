//! Model-based property test: random sequences of every write (with reused tokens, clock jumps
//! and restarts) run against the real sled-backed ledger and against a plain reference model
//! written from the spec. After every step the store equals the model, no label sits on two
//! versions, and verify passes.

use std::collections::BTreeMap;

use ledger_core::query::GetSecretValue;
use ledger_core::*;
use proptest::prelude::*;

use crate::fixture::{tok, Fixture};

const NAMES: [&str; 3] = ["a", "b/c", "d-e"];
const LABELS: [&str; 5] = ["AWSCURRENT", "AWSPREVIOUS", "AWSPENDING", "L1", "L2"];
const N_TOKENS: usize = 8;
const HOUR_MS: i64 = 3600 * 1000;

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
    /// RotateSecret with a function ARN given (or not), reserving now (or not).
    Rotate {
        name: usize,
        token: usize,
        lambda: bool,
        immediately: bool,
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
        1 => (name.clone(), token.clone(), proptest::bool::weighted(0.7), proptest::bool::weighted(0.8))
            .prop_map(|(name, token, lambda, immediately)| Op::Rotate { name, token, lambda, immediately }),
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
            });
            MSecret::prune(&mut versions, &labels, &mut pruned, now)?;
        }
        self.versions = versions;
        self.labels = labels;
        self.pruned = pruned;
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

    fn apply(&mut self, op: &Op) -> Result<(), ErrorCode> {
        let now = self.now;
        match op {
            Op::Create { name, token, value } => {
                let name = NAMES[*name];
                if let Some(s) = self.secrets.get(name) {
                    if s.deletion_date.is_some() {
                        return Err(ErrorCode::InvalidRequestException);
                    }
                    if let Some(v) = value {
                        match s.find(&tok(*token)) {
                            Some(existing) if existing == Some(&self::value(*v)) => return Ok(()),
                            Some(_) => return Err(ErrorCode::ResourceExistsException),
                            None => {}
                        }
                    }
                    return Err(ErrorCode::ResourceExistsException);
                }
                let mut s = MSecret::default();
                if let Some(v) = value {
                    s.add_version(&tok(*token), &self::value(*v), None, now)?;
                }
                self.secrets.insert(name.to_string(), s);
                Ok(())
            }
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
                let label = LABELS[*label];
                let holder = s.labels.get(label).cloned();
                let remove_from = if *right_remove { holder.clone() } else { remove_from.map(tok) };
                let move_to = move_to.map(tok);
                for id in [&remove_from, &move_to].into_iter().flatten() {
                    if !s.has_version(id) {
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
                    s.labels.remove(label);
                    return Ok(());
                };
                if holder.as_deref() == Some(move_to.as_str()) {
                    return Ok(());
                }
                if label == AWSCURRENT && s.find(&move_to) == Some(None) {
                    return Err(ErrorCode::InvalidRequestException);
                }
                match &holder {
                    Some(_) if remove_from.is_none() => return Err(ErrorCode::InvalidParameterException),
                    None if s.labels.len() >= 20 => return Err(ErrorCode::LimitExceededException),
                    _ => {}
                }
                if label == AWSCURRENT {
                    if let Some(h) = &holder {
                        s.labels.insert(AWSPREVIOUS.into(), h.clone());
                    }
                }
                s.labels.insert(label.into(), move_to);
                Ok(())
            }
            Op::Delete { name, force, days } => {
                let name = NAMES[*name];
                if days.is_some_and(|d| !(7..=30).contains(&d)) || (days.is_some() && *force) {
                    return Err(ErrorCode::InvalidParameterException);
                }
                let Some(s) = self.secrets.get_mut(name) else {
                    return if *force { Ok(()) } else { Err(ErrorCode::ResourceNotFoundException) };
                };
                if *force {
                    self.secrets.remove(name);
                    return Ok(());
                }
                if s.deletion_date.is_some() {
                    return Err(ErrorCode::InvalidRequestException);
                }
                s.deletion_date = Some(now + days.unwrap_or(30) * 24 * HOUR_MS);
                Ok(())
            }
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
            Op::Rotate { name, token, lambda, immediately } => {
                let s = self.live(NAMES[*name])?;
                if !lambda && s.lambda.is_none() {
                    return Err(ErrorCode::InvalidRequestException);
                }
                let token = tok(*token);
                // A retry (same token) that asks for no other function is answered again.
                let retry = !lambda || s.lambda.as_deref() == Some(MODEL_LAMBDA);
                if s.rotation_in_progress() {
                    return match retry && s.labels.get(AWSPENDING) == Some(&token) {
                        true => Ok(()),
                        false => Err(ErrorCode::InvalidRequestException),
                    };
                }
                match s.versions.iter().find(|v| v.id == token) {
                    Some(v) if v.by_rotation && retry => return Ok(()),
                    Some(_) => return Err(ErrorCode::ResourceExistsException),
                    None if s.pruned.contains_key(&token) => return Err(ErrorCode::ResourceExistsException),
                    None => {}
                }
                if *immediately {
                    let mut versions = s.versions.clone();
                    let mut pruned = s.pruned.clone();
                    let mut labels = s.labels.clone();
                    versions.push(MVersion { id: token.clone(), value: None, created_ms: now, by_rotation: true });
                    labels.insert(AWSPENDING.into(), token);
                    MSecret::prune(&mut versions, &labels, &mut pruned, now)?;
                    (s.versions, s.labels, s.pruned) = (versions, labels, pruned);
                }
                s.rotation_enabled = true;
                if *lambda {
                    s.lambda = Some(MODEL_LAMBDA.into());
                }
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
            Op::Advance { .. } | Op::Restart => Ok(()),
        }
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
        Op::Rotate { name, token, lambda, immediately } => Command::RotateSecret(RotateSecret {
            secret_id: id(name),
            client_request_token: Some(tok(*token)),
            rotation_lambda_arn: lambda.then(|| MODEL_LAMBDA.to_string()),
            rotation_rules: None,
            rotate_immediately: Some(*immediately),
        }),
        Op::CancelRotate { name } => Command::CancelRotateSecret(CancelRotateSecret { secret_id: id(name) }),
        Op::Policy { name, set: true } => Command::PutResourcePolicy(PutResourcePolicy {
            secret_id: id(name),
            resource_policy: MODEL_POLICY.into(),
            block_public_policy: Some(true),
        }),
        Op::Policy { name, set: false } => Command::DeleteResourcePolicy(DeleteResourcePolicy { secret_id: id(name) }),
        Op::Advance { .. } | Op::Restart => return None,
    })
}

/// Compares the store with the model: secrets, versions, labels, values, tags.
fn check_equal(f: &Fixture, model: &Model) -> Result<(), TestCaseError> {
    let store: BTreeMap<String, SecretState> =
        f.ledger().with_state(|s| s.secrets().map(|s| (s.name.clone(), s.clone())).collect());
    prop_assert_eq!(store.keys().collect::<Vec<_>>(), model.secrets.keys().collect::<Vec<_>>());
    for (name, m) in &model.secrets {
        let s = &store[name];
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
        // Values: every label reads back the model's value (live secrets only).
        if m.deletion_date.is_none() {
            for (label, id) in &m.labels {
                let q = GetSecretValue {
                    secret_id: name.clone(),
                    version_stage: Some(label.clone()),
                    ..Default::default()
                };
                match (f.ledger().get_secret_value(&f.scope, &q).unwrap(), m.find(id)) {
                    (Ok(out), Some(Some(value))) => {
                        prop_assert_eq!(&out.location.version_id, id);
                        prop_assert_eq!(&out.value, value);
                    }
                    // A reserved version without a value is not readable.
                    (Err(e), Some(None)) => prop_assert_eq!(e.code(), ErrorCode::ResourceNotFoundException),
                    (got, want) => return Err(TestCaseError::fail(format!("{name} {label}: {got:?} vs {want:?}"))),
                }
            }
        }
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
            _ => {
                let cmd = match (op, command(op)) {
                    (_, Some(cmd)) => cmd,
                    (Op::Stage { name, label, move_to, remove_from, right_remove }, None) => {
                        let holder = f.ledger().with_state(|s| {
                            s.by_name("us-east-1", NAMES[*name])
                                .and_then(|s| s.holder(LABELS[*label]).map(String::from))
                        });
                        Command::UpdateSecretVersionStage(UpdateSecretVersionStage {
                            secret_id: NAMES[*name].into(),
                            version_stage: LABELS[*label].into(),
                            move_to_version_id: move_to.map(tok),
                            remove_from_version_id: if *right_remove { holder } else { remove_from.map(tok) },
                        })
                    }
                    _ => unreachable!(),
                };
                let expected = model.apply(op);
                let actual = f.exec(cmd).map(|_| ()).map_err(|e| e.code());
                if std::env::var_os("MODEL_TRACE").is_some() {
                    eprintln!("{op:?} -> {actual:?}");
                }
                prop_assert_eq!(actual, expected, "step {}: {:?}", step, op);
            }
        }
        check_equal(&f, &model)?;
        if let Err(failure) = f.ledger().verify(&mut |_, _| {}).unwrap() {
            return Err(TestCaseError::fail(format!("verify failed after step {step}: {failure}")));
        }
    }
    Ok(())
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
