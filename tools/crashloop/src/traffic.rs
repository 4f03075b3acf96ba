//! Concurrent SDK traffic: each worker loops over a seeded schedule of PutSecretValue (fresh
//! token, string or binary, default or AWSPENDING stage), AWSPENDING → AWSCURRENT promotions,
//! AWSPENDING removals, DeleteSecret/RestoreSecret pairs and reads, recording each write in the
//! model before it is sent and its outcome when the answer (or the failure) comes back.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_secretsmanager::config::http::HttpResponse;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::Client;
use rand_chacha::ChaCha8Rng;
use rand_core::RngCore;

use crate::model::{CurrentMove, Deletion, Model, Outcome, Value, VersionRec};

pub const AWSCURRENT: &str = "AWSCURRENT";
pub const AWSPENDING: &str = "AWSPENDING";

/// An SDK client for a plain-http endpoint; retries off (a retry would blur what was
/// acknowledged), 10 s operation timeout.
pub fn client(endpoint: &str, creds: &(String, String)) -> Client {
    ledger_sdk_client::client(&ledger_sdk_client::Target {
        endpoint,
        access_key_id: &creds.0,
        secret_access_key: &creds.1,
        region: "us-east-1",
        operation_timeout: Duration::from_secs(10),
        provider: "crashloop",
    })
}

/// Sorts a failed call: a 4xx answer means nothing was written; anything else (no answer, 5xx)
/// may or may not have been.
pub fn classify<E: ProvideErrorMetadata>(err: &SdkError<E, HttpResponse>) -> (Outcome, String) {
    match err {
        SdkError::ServiceError(se) => {
            let code = se.err().code().unwrap_or("<no code>").to_string();
            let status = se.raw().status().as_u16();
            if (400..500).contains(&status) {
                (Outcome::Refused, code)
            } else {
                (Outcome::Unknown, code)
            }
        }
        _ => (Outcome::Unknown, String::new()),
    }
}

/// A token of 32 hex characters drawn from the schedule.
pub fn token(rng: &mut ChaCha8Rng) -> String {
    format!("{:016x}{:016x}", rng.next_u64(), rng.next_u64())
}

pub fn below(rng: &mut ChaCha8Rng, n: u64) -> u64 {
    rng.next_u64() % n.max(1)
}

/// Version ids and their labels (deprecated versions included).
pub async fn list_versions(client: &Client, name: &str) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut out = BTreeMap::new();
    let mut next: Option<String> = None;
    loop {
        let page = client
            .list_secret_version_ids()
            .secret_id(name)
            .include_deprecated(true)
            .max_results(100)
            .set_next_token(next.take())
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("ListSecretVersionIds {name}: {}", describe(&e)))?;
        for v in page.versions() {
            if let Some(id) = v.version_id() {
                out.insert(id.to_string(), v.version_stages().to_vec());
            }
        }
        match page.next_token() {
            Some(t) => next = Some(t.to_string()),
            None => return Ok(out),
        }
    }
}

/// An SDK error in one line.
pub fn describe<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(err: &SdkError<E, R>) -> String {
    match err {
        SdkError::ServiceError(se) => {
            format!("{}: {}", se.err().code().unwrap_or("<no code>"), se.err().message().unwrap_or(""))
        }
        other => format!("{other:?}"),
    }
}

/// Which label holds what, from a version listing.
pub fn holder(versions: &BTreeMap<String, Vec<String>>, label: &str) -> Option<String> {
    versions.iter().find(|(_, labels)| labels.iter().any(|l| l == label)).map(|(id, _)| id.clone())
}

/// Sends PutSecretValue for a version the model knows.
pub async fn put(
    client: &Client,
    name: &str,
    token: &str,
    rec: &VersionRec,
) -> Result<aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueOutput, PutError> {
    let mut req = client.put_secret_value().secret_id(name).client_request_token(token);
    req = match rec.value() {
        Value::String(s) => req.secret_string(s),
        Value::Binary(b) => req.secret_binary(Blob::new(b)),
    };
    if rec.pending {
        req = req.version_stages(AWSPENDING);
    }
    req.send().await
}

pub type PutError = SdkError<aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError, HttpResponse>;

pub struct Worker {
    pub id: usize,
    pub iteration: u32,
    pub client: Client,
    pub rng: ChaCha8Rng,
    pub model: Arc<Mutex<Model>>,
    pub stop: Arc<AtomicBool>,
    /// Secrets this iteration's traffic uses.
    pub active: Vec<usize>,
}

fn lock(model: &Mutex<Model>) -> std::sync::MutexGuard<'_, Model> {
    model.lock().unwrap_or_else(|e| e.into_inner())
}

impl Worker {
    pub async fn run(mut self) {
        while !self.stop.load(Ordering::SeqCst) && !self.active.is_empty() {
            let secret = self.active[below(&mut self.rng, self.active.len() as u64) as usize];
            let dice = below(&mut self.rng, 100);
            match dice {
                0..=59 => self.put(secret).await,
                60..=81 => self.promote(secret).await,
                82..=86 => self.clear_pending(secret).await,
                87..=89 => self.delete_restore(secret).await,
                _ => self.read(secret).await,
            }
        }
    }

    fn refused(&self, code: String) {
        *lock(&self.model).counters.refused.entry(code).or_default() += 1;
    }

    fn name(&self, secret: usize) -> String {
        lock(&self.model).secrets[secret].name.clone()
    }

    async fn put(&mut self, secret: usize) {
        let token = token(&mut self.rng);
        let value_seed = self.rng.next_u64();
        let binary = below(&mut self.rng, 2) == 0;
        let pending = below(&mut self.rng, 3) == 0;
        let rec = VersionRec {
            value_seed,
            binary,
            pending,
            by_create: false,
            outcome: Outcome::InFlight,
            presence: crate::model::Presence::Unchecked,
            iteration: self.iteration,
            value_checked: false,
        };
        let (name, move_idx) = {
            let mut m = lock(&self.model);
            let s = &mut m.secrets[secret];
            if s.budget == 0 {
                return;
            }
            s.budget -= 1;
            s.versions.insert(token.clone(), rec.clone());
            let move_idx = (!pending).then(|| {
                s.current_moves.push(CurrentMove {
                    version: token.clone(),
                    start: Instant::now(),
                    end: None,
                    outcome: Outcome::InFlight,
                });
                s.current_moves.len() - 1
            });
            (s.name.clone(), move_idx)
        };
        let result = put(&self.client, &name, &token, &rec).await;
        let end = Instant::now();
        let (outcome, code) = match &result {
            Ok(out) if out.version_id() == Some(token.as_str()) => (Outcome::Acked, String::new()),
            // A success that names another version: record it as unknown and let the check
            // decide (it will find the token's version or report it lost).
            Ok(_) => (Outcome::Unknown, "wrong VersionId".to_string()),
            Err(e) => classify(e),
        };
        let mut m = lock(&self.model);
        if outcome == Outcome::Acked {
            m.counters.acked_writes += 1;
            m.counters.acked_puts += 1;
        }
        if outcome == Outcome::Refused {
            *m.counters.refused.entry(code).or_default() += 1;
        }
        let s = &mut m.secrets[secret];
        if let Some(v) = s.versions.get_mut(&token) {
            v.outcome = outcome;
        }
        if let Some(i) = move_idx {
            s.current_moves[i].end = Some(end);
            s.current_moves[i].outcome = outcome;
        }
    }

    /// AWSPENDING → AWSCURRENT, as a rotation's last step does.
    async fn promote(&mut self, secret: usize) {
        let name = self.name(secret);
        let Ok(versions) = list_versions(&self.client, &name).await else { return };
        let (Some(pending), Some(current)) = (holder(&versions, AWSPENDING), holder(&versions, AWSCURRENT)) else {
            return;
        };
        if pending == current {
            return;
        }
        let idx = {
            let mut m = lock(&self.model);
            let s = &mut m.secrets[secret];
            s.current_moves.push(CurrentMove {
                version: pending.clone(),
                start: Instant::now(),
                end: None,
                outcome: Outcome::InFlight,
            });
            s.current_moves.len() - 1
        };
        let result = self
            .client
            .update_secret_version_stage()
            .secret_id(&name)
            .version_stage(AWSCURRENT)
            .move_to_version_id(&pending)
            .remove_from_version_id(&current)
            .send()
            .await;
        let end = Instant::now();
        let (outcome, code) = match &result {
            Ok(_) => (Outcome::Acked, String::new()),
            Err(e) => classify(e),
        };
        let mut m = lock(&self.model);
        if outcome == Outcome::Acked {
            m.counters.acked_writes += 1;
            m.counters.acked_promotions += 1;
        }
        if outcome == Outcome::Refused {
            *m.counters.refused.entry(code).or_default() += 1;
        }
        let mv = &mut m.secrets[secret].current_moves[idx];
        mv.end = Some(end);
        mv.outcome = outcome;
    }

    /// Takes AWSPENDING off its holder (AWSCURRENT is not affected).
    async fn clear_pending(&mut self, secret: usize) {
        let name = self.name(secret);
        let Ok(versions) = list_versions(&self.client, &name).await else { return };
        let Some(pending) = holder(&versions, AWSPENDING) else { return };
        let result = self
            .client
            .update_secret_version_stage()
            .secret_id(&name)
            .version_stage(AWSPENDING)
            .remove_from_version_id(&pending)
            .send()
            .await;
        match &result {
            Ok(_) => lock(&self.model).counters.acked_writes += 1,
            Err(e) => {
                let (outcome, code) = classify(e);
                if outcome == Outcome::Refused {
                    self.refused(code);
                }
            }
        }
    }

    /// DeleteSecret (7-day window) then RestoreSecret, one worker per secret at a time.
    async fn delete_restore(&mut self, secret: usize) {
        let name = {
            let mut m = lock(&self.model);
            let s = &mut m.secrets[secret];
            if s.delete_busy || s.deletion != Deletion::Live {
                return;
            }
            s.delete_busy = true;
            s.deletion = Deletion::Unknown;
            s.name.clone()
        };
        let deleted = self.client.delete_secret().secret_id(&name).recovery_window_in_days(7).send().await;
        let outcome = match &deleted {
            Ok(_) => Outcome::Acked,
            Err(e) => classify(e).0,
        };
        {
            let mut m = lock(&self.model);
            if outcome == Outcome::Acked {
                m.counters.acked_writes += 1;
                m.counters.acked_delete_restore += 1;
            }
            let s = &mut m.secrets[secret];
            s.deletion = match outcome {
                Outcome::Acked => Deletion::Deleted,
                Outcome::Refused => Deletion::Live,
                _ => Deletion::Unknown,
            };
            if outcome != Outcome::Acked {
                s.delete_busy = outcome == Outcome::Unknown;
                return;
            }
        }
        // Let the other workers meet the deleted secret for a moment.
        tokio::time::sleep(Duration::from_millis(below(&mut self.rng, 20))).await;
        lock(&self.model).secrets[secret].deletion = Deletion::Unknown;
        let restored = self.client.restore_secret().secret_id(&name).send().await;
        let outcome = match &restored {
            Ok(_) => Outcome::Acked,
            Err(e) => classify(e).0,
        };
        let mut m = lock(&self.model);
        if outcome == Outcome::Acked {
            m.counters.acked_writes += 1;
            m.counters.acked_delete_restore += 1;
        }
        let s = &mut m.secrets[secret];
        s.deletion = match outcome {
            Outcome::Acked => Deletion::Live,
            Outcome::Refused => Deletion::Deleted,
            _ => Deletion::Unknown,
        };
        s.delete_busy = outcome == Outcome::Unknown;
    }

    async fn read(&mut self, secret: usize) {
        let name = self.name(secret);
        let _ = self.client.get_secret_value().secret_id(&name).send().await;
    }
}
