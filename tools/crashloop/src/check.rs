//! The checks after a restart, against what the model says must (and must not) be there:
//!
//! - (a) every acknowledged version (and every unanswered one seen since) is listed and
//!   GetSecretValue by VersionId returns exactly its value; nothing the harness did not send,
//!   and nothing that was refused, is there;
//! - (b) each label sits on at most one version, AWSCURRENT on exactly one, and that one is a
//!   version some acknowledged-or-unanswered AWSCURRENT move could have left there last;
//! - (c) retrying acknowledged puts with their token and value returns the same VersionId and
//!   changes no version or label, while the same token with another value is refused;
//! - deletion: a secret whose last DeleteSecret/RestoreSecret was acknowledged is in that state.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Context;
use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::Client;
use rand_chacha::ChaCha8Rng;

use crate::model::{Counters, Deletion, Model, Outcome, Presence, SecretTrack, Value};
use crate::traffic::{below, classify, describe, list_versions, put, AWSCURRENT};

/// Retries of acknowledged puts per checked secret (newest first, plus one older at random).
const RETRIES_PER_SECRET: usize = 2;
/// Already-checked values read again per secret on an ordinary check.
const RECHECKS_PER_SECRET: usize = 2;

/// What one check found wrong; `lost` counts acknowledged writes that are gone.
#[derive(Debug, Default)]
pub struct Findings {
    pub lost: u64,
    pub problems: Vec<String>,
}

/// Checks the secrets marked dirty (all of them when `full`) and clears their marks.
pub async fn check(
    client: &Client,
    model: &mut Model,
    rng: &mut ChaCha8Rng,
    full: bool,
    findings: &mut Findings,
) -> anyhow::Result<()> {
    for idx in 0..model.secrets.len() {
        if !full && !model.secrets[idx].dirty {
            continue;
        }
        check_secret(client, model, idx, rng, full, findings).await?;
        model.secrets[idx].dirty = false;
    }
    Ok(())
}

/// Version ids and their labels, as `list_versions` returns them.
type Listed = BTreeMap<String, Vec<String>>;

/// Checks one secret: deletion state, (a) presence and values, (b) labels, (c) retries.
async fn check_secret(
    client: &Client,
    model: &mut Model,
    idx: usize,
    rng: &mut ChaCha8Rng,
    full: bool,
    findings: &mut Findings,
) -> anyhow::Result<()> {
    let name = model.secrets[idx].name.clone();
    let Model { secrets, counters } = model;
    let mut check = SecretCheck { client, name: &name, s: &mut secrets[idx], counters, rng, full, findings };
    check.deletion().await?;
    let listed = list_versions(client, &name).await?;
    check.presence(&listed);
    check.labels(&listed);
    check.values().await?;
    check.retries(&listed).await
}

/// One secret under check, with the state its checks share.
struct SecretCheck<'a> {
    client: &'a Client,
    name: &'a str,
    s: &'a mut SecretTrack,
    counters: &'a mut Counters,
    rng: &'a mut ChaCha8Rng,
    full: bool,
    findings: &'a mut Findings,
}

impl SecretCheck<'_> {
    /// Deletion state, then brings the secret back so it can be read and retried.
    async fn deletion(&mut self) -> anyhow::Result<()> {
        let (client, name) = (self.client, self.name);
        let described = client
            .describe_secret()
            .secret_id(name)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("DescribeSecret {name}: {}", describe(&e)))?;
        let deleted = described.deleted_date().is_some();
        // An acknowledged DeleteSecret or RestoreSecret undone by a crash is a lost write too.
        let lost = match (self.s.deletion, deleted) {
            (Deletion::Live, true) => Some("scheduled for deletion, but its last RestoreSecret was acknowledged"),
            (Deletion::Deleted, false) => Some("live, but its last DeleteSecret was acknowledged"),
            _ => None,
        };
        if let Some(lost) = lost {
            self.findings.lost += 1;
            self.findings.problems.push(format!("{name}: LOST write: {lost}"));
        }
        if deleted {
            client
                .restore_secret()
                .secret_id(name)
                .send()
                .await
                .map_err(|e| anyhow::anyhow!("RestoreSecret {name}: {}", describe(&e)))?;
        }
        self.s.deletion = Deletion::Live;
        self.s.delete_busy = false;
        Ok(())
    }

    /// (a) presence, phantoms.
    fn presence(&mut self, listed: &Listed) {
        let name = self.name;
        for (id, rec) in self.s.versions.iter_mut() {
            let present = listed.contains_key(id);
            if rec.must_exist() && !present {
                if rec.outcome == Outcome::Acked {
                    self.findings.lost += 1;
                    self.findings.problems.push(format!(
                        "{name}: LOST acknowledged version {id} (iteration {}, {})",
                        rec.iteration,
                        if rec.by_create { "CreateSecret" } else { "PutSecretValue" }
                    ));
                } else {
                    self.findings
                        .problems
                        .push(format!("{name}: version {id} was seen after a restart and is gone now"));
                }
            } else if rec.must_not_exist() && present {
                self.findings.problems.push(format!(
                    "{name}: version {id} exists, but its request was {}",
                    if rec.outcome == Outcome::Refused { "refused" } else { "unanswered and absent after a restart" }
                ));
            } else if present {
                if rec.presence == Presence::Unchecked && rec.outcome != Outcome::Acked {
                    self.counters.durable_unacked += 1;
                }
                rec.presence = Presence::Present;
            } else if rec.presence == Presence::Unchecked {
                rec.presence = Presence::Absent;
                self.counters.absent_unacked += 1;
            }
        }
        for id in listed.keys() {
            if !self.s.versions.contains_key(id) {
                self.findings.problems.push(format!("{name}: version {id} was never sent by the harness"));
            }
        }
    }

    /// (b) labels.
    fn labels(&mut self, listed: &Listed) {
        let name = self.name;
        let mut holders: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (id, labels) in listed {
            for label in labels {
                holders.entry(label.as_str()).or_default().push(id.as_str());
            }
        }
        for (label, ids) in &holders {
            if ids.len() > 1 {
                self.findings.problems.push(format!("{name}: label {label} on {} versions: {ids:?}", ids.len()));
            }
        }
        match holders.get(AWSCURRENT).map(Vec::as_slice) {
            Some([current]) => {
                let candidates = self.s.current_candidates();
                if !candidates.contains(current) {
                    self.findings.problems.push(format!(
                        "{name}: AWSCURRENT is on {current}, but the acknowledged history allows only {candidates:?}"
                    ));
                }
                let current = current.to_string();
                self.s.observe_current(&current, Instant::now());
            }
            _ => self.findings.problems.push(format!("{name}: AWSCURRENT is not on exactly one version")),
        }
    }

    /// (a) values: the new ones, a few old ones (all of them when `full`).
    async fn values(&mut self) -> anyhow::Result<()> {
        let to_read = self.values_to_read();
        for id in &to_read {
            self.check_value(id).await?;
        }
        for id in &to_read {
            if let Some(r) = self.s.versions.get_mut(id) {
                r.value_checked = true;
            }
        }
        Ok(())
    }

    /// The present versions whose values to read, with a few random rechecks of checked ones.
    fn values_to_read(&mut self) -> Vec<String> {
        let (s, full) = (&*self.s, self.full);
        let present: Vec<String> =
            s.versions.iter().filter(|(_, r)| r.presence == Presence::Present).map(|(id, _)| id.clone()).collect();
        let checked: Vec<&String> = present.iter().filter(|id| s.versions[*id].value_checked).collect();
        let mut to_read: Vec<String> =
            present.iter().filter(|id| full || !s.versions[*id].value_checked).cloned().collect();
        if !full && !checked.is_empty() {
            for _ in 0..RECHECKS_PER_SECRET {
                to_read.push(checked[below(self.rng, checked.len() as u64) as usize].clone());
            }
        }
        to_read
    }

    /// Reads one version by VersionId and compares it with the value that was written.
    async fn check_value(&mut self, id: &str) -> anyhow::Result<()> {
        let name = self.name;
        let rec = &self.s.versions[id];
        let got = self
            .client
            .get_secret_value()
            .secret_id(name)
            .version_id(id)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("GetSecretValue {name} {id}: {}", describe(&e)))?;
        let got = match (got.secret_string(), got.secret_binary()) {
            (Some(s), None) => Some(Value::String(s.to_string())),
            (None, Some(b)) => Some(Value::Binary(b.as_ref().to_vec())),
            _ => None,
        };
        if got.as_ref().map(Value::digest) != Some(rec.value().digest()) {
            if rec.outcome == Outcome::Acked {
                self.findings.lost += 1;
            }
            self.findings.problems.push(format!("{name}: version {id} does not return the value that was written"));
        }
        self.counters.values_checked += 1;
        Ok(())
    }

    /// (c) retries of acknowledged puts: same VersionId, nothing appended or moved.
    async fn retries(&mut self, listed: &Listed) -> anyhow::Result<()> {
        let Some(retry) = self.retry_ids() else {
            return Ok(());
        };
        for id in &retry {
            self.retry_put(id, listed).await?;
        }
        self.other_value(&retry[0]).await;
        let name = self.name;
        let after = list_versions(self.client, name).await.context("listing after the retries")?;
        if after != *listed {
            self.findings.problems.push(format!(
                "{name}: retries changed the versions or labels ({} versions before, {} after)",
                listed.len(),
                after.len()
            ));
        }
        Ok(())
    }

    /// The acknowledged puts to retry (the newest, plus one at random); `None` to skip the retries.
    fn retry_ids(&mut self) -> Option<Vec<String>> {
        let s = &*self.s;
        let acked: Vec<&String> =
            s.versions.iter().filter(|(_, r)| r.outcome == Outcome::Acked && !r.by_create).map(|(id, _)| id).collect();
        if acked.is_empty() || !self.findings.problems.is_empty() {
            return None;
        }
        let newest = acked.iter().map(|id| s.versions[*id].iteration).max().unwrap_or(0);
        let mut retry: Vec<String> = acked
            .iter()
            .filter(|id| s.versions[**id].iteration == newest)
            .take(RETRIES_PER_SECRET)
            .map(|id| (*id).clone())
            .collect();
        retry.push(acked[below(self.rng, acked.len() as u64) as usize].clone());
        Some(retry)
    }

    /// Retries one acknowledged put with its token and value: same VersionId, listed stages.
    async fn retry_put(&mut self, id: &str, listed: &Listed) -> anyhow::Result<()> {
        let name = self.name;
        let rec = &self.s.versions[id];
        let out = put(self.client, name, id, rec)
            .await
            .map_err(|e| anyhow::anyhow!("{name}: retry of acknowledged put {id} failed: {}", describe(&e)))?;
        if out.version_id() != Some(id) {
            self.findings.problems.push(format!("{name}: retry of {id} answered VersionId {:?}", out.version_id()));
        }
        let mut stages = out.version_stages().to_vec();
        stages.sort();
        let mut expected = listed.get(id).cloned().unwrap_or_default();
        expected.sort();
        if stages != expected {
            self.findings
                .problems
                .push(format!("{name}: retry of {id} answered stages {stages:?}, listed {expected:?}"));
        }
        self.counters.retries_checked += 1;
        Ok(())
    }

    /// The same token with another value is refused.
    async fn other_value(&mut self, id: &str) {
        let (client, name) = (self.client, self.name);
        let other = match self.s.versions[id].value() {
            Value::String(v) => client.put_secret_value().secret_string(format!("{v}-other")),
            Value::Binary(mut v) => {
                v.push(0);
                client.put_secret_value().secret_binary(Blob::new(v))
            }
        };
        match other.secret_id(name).client_request_token(id).send().await {
            Err(e) if classify(&e).0 == Outcome::Refused && e.code() == Some("ResourceExistsException") => {}
            Err(e) => self.findings.problems.push(format!("{name}: token {id} with another value: {}", describe(&e))),
            Ok(_) => self.findings.problems.push(format!("{name}: token {id} with another value was accepted")),
        }
    }
}
