//! The audit operations online: `X-Amz-Target: SecretLedger.<Operation>`, SigV4-signed and
//! refused exactly like the Secrets Manager operations, answered from the live log.
//!
//! | target | input | output |
//! |---|---|---|
//! | `SecretLedger.History` | `SecretId`? (without it: the whole ledger), `Actor`?, `Operation`?, `Since`?, `Until`? (seq or RFC 3339 time) | `{"secret_id", "region", "secrets": [{uid, name, region, arn, "events": [{seq, recorded_at, actor, request_id, operation, secret, event, change, label_move?}]}]}`; without `SecretId`: `{"filters", "from_seq", "to_seq", "events": [{…, name, region, arn}]}` |
//! | `SecretLedger.State` | `AsOf` (seq number, or a string: seq or RFC 3339 time), `Exact`?, `SecretId`?, `Label`? | `{"as_of_seq", "as_of_time", "requested_seq", "note", "region", "secrets", "label"}` |
//! | `SecretLedger.Export` | `Origin`? | the export file itself, JSON Lines, `Content-Type: application/x-ndjson` |
//! | `SecretLedger.Checkpoint` | `Origin`? | the unsigned checkpoint JSON |
//! | `SecretLedger.Prove` | `Seq` (and `TreeSize`, a kept checkpoint's size), or `FromCheckpoint` + `ToCheckpoint` (checkpoint JSON objects) | the inclusion or consistency proof JSON, with the log's head hashes at the sizes |
//! | `SecretLedger.Verify` | `Checkpoint`? (checkpoint JSON object) | the verify report, `{"ok": true, …}`, or the first failure, `{"ok": false, "seq", "reason"}` |
//!
//! The documents are those of the CLI's `--json` output of the same command (the CLI builds
//! its own with the functions of this module), so `secret-ledger <command> --endpoint URL`
//! prints the same thing as `--data-dir DIR`.
//!
//! A `SecretId` resolves within the request's signing region, as in every Secrets Manager call:
//! a name used in two regions names two different secrets, and an ARN of another region names
//! none. `State` without a `SecretId` covers every region, ordered by region.
//!
//! Values are never returned: `State` with a `Label` names the version that held the label
//! (`label.value` is always `null` online; open values offline with the master key).
//!
//! Every operation reads the head first and bounds its reads by it (sled reads are consistent
//! per key; the log below the head never changes), runs on a blocking thread and appends
//! nothing. `Export` streams: memory holds one chunk (64 KiB) and a few queued chunks, never
//! the log; if the client goes away the export stops, and an error midway aborts the body, so
//! the file lacks its closing checkpoint and does not verify.
//!
//! Errors: an unknown secret is `ResourceNotFoundException`, a bad member value
//! `ValidationException`, a member of the wrong JSON type `SerializationException` (all 400).

use std::collections::BTreeSet;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_core::checkpoint::Checkpoint;
use ledger_core::merkle;
use ledger_core::time::{format_rfc3339_ms, parse_rfc3339};
use ledger_core::SecretState;
use ledger_store::audit::{self, HistoryEntry, SecretIdentity};
use ledger_store::{FailureReason, LogStore, StoreError, VerifyFailure, VerifyReport};
use serde_json::{json, Value};

use crate::error::ApiError;
use crate::http::{json_response, App};
use crate::wire::Input;

/// The target prefix of the audit operations.
pub const TARGET_PREFIX: &str = "SecretLedger.";

/// Every operation answered under [`TARGET_PREFIX`].
pub const OPERATIONS: [&str; 6] = ["History", "State", "Export", "Checkpoint", "Prove", "Verify"];

/// Content type of the `Export` response.
pub const EXPORT_CONTENT_TYPE: &str = "application/x-ndjson";

/// Size of one chunk of the streamed export.
const EXPORT_CHUNK_BYTES: usize = 64 * 1024;
/// Chunks queued between the exporting thread and the connection.
const EXPORT_CHUNKS_QUEUED: usize = 8;
/// How long an export waits for a reader that takes nothing before it gives up.
const EXPORT_STALL: std::time::Duration = std::time::Duration::from_secs(60);
/// Exports, verifications and ledger-wide histories (each reads the whole log) running at once;
/// more are refused.
const WHOLE_LOG_READS_MAX: usize = 2;

/// Permits for [`WHOLE_LOG_READS_MAX`].
static WHOLE_LOG_READS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(WHOLE_LOG_READS_MAX);

/// A permit to read the whole log, or `ThrottlingException`.
fn whole_log_permit() -> Result<tokio::sync::SemaphorePermit<'static>, ApiError> {
    WHOLE_LOG_READS.try_acquire().map_err(|_| {
        ApiError::new(
            "ThrottlingException",
            StatusCode::BAD_REQUEST,
            format!("At most {WHOLE_LOG_READS_MAX} whole-log reads (exports, verifications, ledger-wide histories) run at once; retry later."),
        )
    })
}

/// Why an audit question has no answer.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// No secret of that id in the whole log.
    #[error("{0}")]
    NotFound(String),
    /// A member (or CLI argument) has an unusable value.
    #[error("{0}")]
    Invalid(String),
    /// A name with no region, used in several regions: the message lists them with their ARNs.
    #[error("{0}")]
    Ambiguous(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl AuditError {
    fn into_api(self, request_id: &str) -> ApiError {
        match self {
            AuditError::NotFound(m) => ApiError::new("ResourceNotFoundException", StatusCode::BAD_REQUEST, m),
            AuditError::Invalid(m) | AuditError::Ambiguous(m) => validation(m),
            AuditError::Store(e) => ApiError::store(&e, request_id),
        }
    }
}

fn validation(message: impl Into<String>) -> ApiError {
    ApiError::new("ValidationException", StatusCode::BAD_REQUEST, message)
}

fn short(text: &str) -> String {
    text.chars().take(64).collect()
}

// ---------------------------------------------------------------------------------------------
// The documents, shared with the CLI.

/// One history entry as JSON; `label_move` (`{label, from, to}`) only on `LabelMoved`.
pub fn entry_json(e: &HistoryEntry) -> Value {
    let mut out = json!({
        "seq": e.seq,
        "recorded_at": format_rfc3339_ms(e.recorded_at_ms),
        "actor": e.actor,
        "request_id": e.request_id,
        "operation": e.operation,
        "secret": e.secret.0,
        "event": e.event,
        "change": e.change,
    });
    if let Some((label, from, to)) = &e.label_move {
        out["label_move"] = json!({ "label": label, "from": from, "to": to });
    }
    out
}

/// The secrets `secret_id` names within `region`, created by `head`, in creation order (more
/// than one when the name was re-created after a purge). A name resolves within one region, as
/// every Secrets Manager call does; an ARN within its own. With no region, a name used in
/// several regions is [`AuditError::Ambiguous`].
pub fn resolve_secret(
    store: &dyn LogStore,
    head: u64,
    secret_id: &str,
    region: Option<&str>,
) -> Result<Vec<SecretIdentity>, AuditError> {
    let mut found = audit::secret_identities(store, secret_id)?;
    found.retain(|s| s.created_seq <= head);
    let regions: BTreeSet<&str> = found.iter().map(|s| s.region.as_str()).collect();
    if found.is_empty() {
        return Err(AuditError::NotFound(format!("no secret {} in this ledger", short(secret_id))));
    }
    match region {
        Some(region) if !regions.contains(region) => {
            let elsewhere: Vec<&str> = regions.into_iter().collect();
            Err(AuditError::NotFound(format!(
                "no secret {} in region {}; it exists in {}",
                short(secret_id),
                short(region),
                elsewhere.join(", ")
            )))
        }
        Some(region) => {
            found.retain(|s| s.region == region);
            Ok(found)
        }
        None if regions.len() > 1 => {
            let mut message = format!(
                "{} names secrets in {} regions; choose one with a region or a full ARN:",
                short(secret_id),
                regions.len()
            );
            for s in &found {
                message.push_str(&format!("\n  {}  {}", s.region, s.arn));
            }
            Err(AuditError::Ambiguous(message))
        }
        None => Ok(found),
    }
}

/// The filters of `history`: who, which operation, and a range of seqs or times (inclusive).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryFilter {
    pub actor: Option<String>,
    pub operation: Option<String>,
    /// A seq, or an RFC 3339 time: events from then on.
    pub since: Option<String>,
    /// A seq, or an RFC 3339 time: events up to then.
    pub until: Option<String>,
}

impl HistoryFilter {
    /// The seqs the filter spans, within the first `head` records.
    fn range(&self, store: &dyn LogStore, head: u64) -> Result<(u64, u64), AuditError> {
        let from = match &self.since {
            None => 1,
            Some(since) => match since.parse::<u64>() {
                Ok(seq) => seq,
                // The first record at or after the time.
                Err(_) => audit::seq_at_time_upto(store, time_of(since, "--since")?.saturating_sub(1), head)? + 1,
            },
        };
        let to = match &self.until {
            None => head,
            Some(until) => match until.parse::<u64>() {
                Ok(seq) => seq.min(head),
                Err(_) => audit::seq_at_time_upto(store, time_of(until, "--until")?, head)?,
            },
        };
        Ok((from.max(1), to))
    }

    fn keeps(&self, actor: &str, operation: &str) -> bool {
        self.actor.as_deref().is_none_or(|a| a == actor) && self.operation.as_deref().is_none_or(|o| o == operation)
    }

    fn json(&self) -> Value {
        json!({ "actor": self.actor, "operation": self.operation, "since": self.since, "until": self.until })
    }
}

fn time_of(text: &str, what: &str) -> Result<i64, AuditError> {
    parse_rfc3339(text).ok_or_else(|| {
        AuditError::Invalid(format!(
            "{what} takes a seq (such as 42) or an RFC 3339 time (such as 2026-11-27T03:00:00Z), not {:?}",
            short(text)
        ))
    })
}

/// The ledger-wide history: every event the filter keeps, each with the secret it concerns.
pub fn ledger_history_json(store: &dyn LogStore, head: u64, filter: &HistoryFilter) -> Result<Value, AuditError> {
    let (from, to) = filter.range(store, head)?;
    let entries = audit::log_history(store, from, to, &|r| filter.keeps(&r.actor, &r.operation))?;
    let mut names: std::collections::HashMap<u64, Option<SecretIdentity>> = std::collections::HashMap::new();
    let mut events = Vec::with_capacity(entries.len());
    for e in &entries {
        let id = match names.entry(e.secret.0) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(new) => new.insert(audit::secret_identity(store, e.secret)?),
        };
        let mut doc = entry_json(e);
        if let Some(id) = id {
            doc["name"] = Value::from(id.name.as_str());
            doc["region"] = Value::from(id.region.as_str());
            doc["arn"] = Value::from(id.arn.as_str());
        }
        events.push(doc);
    }
    Ok(json!({ "filters": filter.json(), "from_seq": from, "to_seq": to, "events": events }))
}

/// One secret's history: who it is and every event of it up to the head.
#[derive(Clone, Debug)]
pub struct SecretHistory {
    pub secret: SecretIdentity,
    pub entries: Vec<HistoryEntry>,
}

/// The history of each secret `secret_id` names within `region` (see [`resolve_secret`]).
pub fn history_entries(
    store: &dyn LogStore,
    head: u64,
    secret_id: &str,
    region: Option<&str>,
    filter: &HistoryFilter,
) -> Result<Vec<SecretHistory>, AuditError> {
    let (from, to) = filter.range(store, head)?;
    resolve_secret(store, head, secret_id, region)?
        .into_iter()
        .map(|secret| {
            let mut entries = audit::secret_history(store, secret.uid)?;
            entries.retain(|e| (from..=to).contains(&e.seq) && filter.keeps(&e.actor, &e.operation));
            Ok(SecretHistory { secret, entries })
        })
        .collect()
}

/// The `history --json` document: the region the id was resolved in, then each secret it
/// named there (a re-created name is a second secret) with its ARN and events.
pub fn history_json(secret_id: &str, histories: &[SecretHistory]) -> Value {
    json!({
        "secret_id": secret_id,
        "region": histories.first().map(|h| h.secret.region.as_str()),
        "secrets": histories.iter().map(|h| json!({
            "uid": h.secret.uid.0,
            "name": h.secret.name,
            "region": h.secret.region,
            "arn": h.secret.arn,
            "events": h.entries.iter().map(entry_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })
}

/// A seq, or the last seq recorded at or before an RFC 3339 time.
pub fn parse_as_of(store: &dyn LogStore, head: u64, as_of: &str) -> Result<u64, AuditError> {
    if let Ok(seq) = as_of.parse::<u64>() {
        return Ok(seq);
    }
    let Some(ms) = parse_rfc3339(as_of) else {
        let hint = if as_of.contains('T') && !as_of.ends_with('Z') && !as_of.contains('+') {
            " (a time needs its zone: end it with Z for UTC, or an offset such as +01:00)"
        } else {
            ""
        };
        return Err(AuditError::Invalid(format!(
            "--as-of takes a seq (such as 42) or an RFC 3339 time (such as 2026-11-27T03:12:00Z), not {:?}{hint}",
            short(as_of)
        )));
    };
    Ok(audit::seq_at_time_upto(store, ms, head)?)
}

/// Secrets as they stood at one seq.
#[derive(Clone, Debug)]
pub struct StateAt {
    pub seq: u64,
    pub time_ms: Option<i64>,
    /// The seq asked for, when it is not the one shown (inside a request, or past the head).
    pub requested_seq: Option<u64>,
    /// Why the seq shown differs from the one asked for.
    pub note: Option<String>,
    /// The region a `SecretId` was resolved in; `None` for the whole ledger.
    pub region: Option<String>,
    /// Ordered by region, then name.
    pub secrets: Vec<SecretState>,
}

/// The state as of `as_of`: of the secret `secret_id` named then within `region` (see
/// [`resolve_secret`]), or of every secret in every region. A seq past the head shows the head;
/// a seq inside a request (a state no client ever saw) shows the state after that request,
/// unless `exact`; either way the state says so.
pub fn state_at(
    store: &dyn LogStore,
    head: u64,
    as_of: &str,
    exact: bool,
    secret_id: Option<&str>,
    region: Option<&str>,
) -> Result<StateAt, AuditError> {
    let asked = parse_as_of(store, head, as_of)?;
    let (seq, note) = if asked > head {
        (head, Some(format!("seq {asked} is past the head of the log: showing the head, seq {head}")))
    } else if asked == 0 {
        (0, None)
    } else {
        match audit::request_span(store, asked, head)? {
            (first, last) if last != asked && !exact => (
                last,
                Some(format!(
                    "seq {asked} is inside one request (seqs {first} to {last}), a state no client saw: showing the \
                     state after that request, seq {last} (--exact shows seq {asked})"
                )),
            ),
            (first, last) if last != asked => (
                asked,
                Some(format!("seq {asked} is inside one request (seqs {first} to {last}): shown as asked (--exact)")),
            ),
            _ => (asked, None),
        }
    };
    let requested_seq = (seq != asked || note.is_some()).then_some(asked);
    let time_ms = if seq == 0 { None } else { Some(audit::record_time(store, seq)?) };
    let (region, mut secrets): (Option<String>, Vec<SecretState>) = match secret_id {
        Some(id) => {
            let candidates = resolve_secret(store, head, id, region)?;
            let region = candidates.first().map(|c| c.region.clone());
            (region, audit::resolve_at(store, &candidates, seq)?.into_iter().collect())
        }
        None => (None, audit::state_at(store, seq)?.secrets().cloned().collect()),
    };
    secrets.sort_by(|a, b| (&a.region, &a.name, a.uid).cmp(&(&b.region, &b.name, b.uid)));
    Ok(StateAt { seq, time_ms, requested_seq, note, region, secrets })
}

/// One secret of a `state --json` document (versions and labels; never values).
pub fn secret_json(s: &SecretState) -> Value {
    json!({
        "name": s.name,
        "region": s.region,
        "arn": s.arn,
        "created_at": format_rfc3339_ms(s.created_at_ms),
        "deletion_scheduled_for": s.deletion.map(|d| format_rfc3339_ms(d.deletion_date_ms)),
        "last_accessed": s.last_accessed_day_ms.map(format_rfc3339_ms),
        "rotation": json!({
            "enabled": s.rotation.enabled,
            "lambda_arn": s.rotation.lambda_arn,
            "last_rotated": s.rotation.last_rotated_at_ms.map(format_rfc3339_ms),
            "next_rotation": ledger_core::rotation::next_rotation(s).map(format_rfc3339_ms),
        }),
        "resource_policy": s.resource_policy.is_some(),
        "versions": s.versions.iter().map(|(id, v)| json!({
            "version_id": id,
            "created_at": format_rfc3339_ms(v.created_at_ms),
            "labels": v.labels,
            "has_value": v.has_value,
            "last_accessed": v.last_accessed_day_ms.map(format_rfc3339_ms),
            "seq": v.seq,
        })).collect::<Vec<_>>(),
    })
}

/// The version holding `label` in the first secret, if a label was asked for and a secret found.
pub fn label_holder<'a>(state: &'a StateAt, label: Option<&str>) -> Option<(&'a SecretState, Option<String>)> {
    let (label, secret) = (label?, state.secrets.first()?);
    Some((secret, secret.holder(label).map(str::to_string)))
}

/// The `state --json` document. `value` is the opened value of the label's holder, given only
/// offline with the master key; online it is always `None` (`null`).
pub fn state_json(state: &StateAt, label: Option<&str>, value: Option<Value>) -> Value {
    let label_out = match (label, label_holder(state, label)) {
        (Some(label), Some((secret, holder))) => json!({
            "label": label,
            "region": secret.region,
            "arn": secret.arn,
            "version_id": holder,
            "value": value,
        }),
        _ => Value::Null,
    };
    json!({
        "as_of_seq": state.seq,
        "as_of_time": state.time_ms.map(format_rfc3339_ms),
        "requested_seq": state.requested_seq,
        "note": state.note,
        "region": state.region,
        "secrets": state.secrets.iter().map(secret_json).collect::<Vec<_>>(),
        "label": label_out,
    })
}

/// The `verify --json` document of a log that verified.
pub fn report_json(report: &VerifyReport, seconds: f64) -> Value {
    json!({
        "ok": true,
        "events": report.events,
        "head_hash": report.head_hash.to_hex(),
        "merkle_root": hex::encode(report.merkle_root),
        "snapshots_checked": report.snapshots_checked,
        "secrets": report.secrets,
        "seconds": seconds,
        "events_per_second": report.events as f64 / seconds.max(1e-9),
    })
}

/// The `verify --json` document of a log that did not.
pub fn failure_json(failure: &VerifyFailure) -> Value {
    json!({ "ok": false, "seq": failure.seq, "reason": failure.reason.to_string() })
}

/// A verified log against a checkpoint kept elsewhere: the log must extend it.
pub fn check_against(
    store: &dyn LogStore,
    report: &VerifyReport,
    t: &Checkpoint,
) -> Result<Result<VerifyReport, VerifyFailure>, StoreError> {
    if t.size > report.events {
        return Ok(Err(VerifyFailure {
            seq: report.events + 1,
            reason: FailureReason::Truncated { expected: t.size, found: report.events },
        }));
    }
    let root = audit::merkle_root(store, t.size)?;
    let head = if t.size == 0 { ledger_core::ChainHash::GENESIS } else { audit::record_hash(store, t.size)? };
    if root != t.merkle_root || head != t.head_hash {
        return Ok(Err(VerifyFailure { seq: t.size, reason: FailureReason::CheckpointMismatch }));
    }
    Ok(Ok(report.clone()))
}

/// The chain hash of the record at `size` (the genesis hash for 0): a checkpoint's head.
fn head_at(store: &dyn LogStore, size: u64) -> Result<ledger_core::ChainHash, StoreError> {
    if size == 0 {
        Ok(ledger_core::ChainHash::GENESIS)
    } else {
        audit::record_hash(store, size)
    }
}

/// An inclusion proof of the last leaf of the tree of `size` records (whose leaf is the head
/// hash): with it a checkpoint's head hash is checked against its root alone.
fn head_proof(store: &dyn LogStore, size: u64) -> Result<Vec<String>, StoreError> {
    if size == 0 {
        return Ok(Vec::new());
    }
    Ok(audit::inclusion_proof(store, size, size)?.iter().map(hex::encode).collect())
}

/// Whether `doc[field]` proves `c.head_hash` the last leaf of `c`'s tree.
fn head_proven(doc: &Value, field: &str, c: &Checkpoint) -> bool {
    if c.size == 0 {
        return c.head_hash == ledger_core::ChainHash::GENESIS;
    }
    let Some(proof) = doc.get(field).and_then(|p| proof_field(&json!({ "proof": p }))) else { return false };
    merkle::verify_inclusion(&merkle::leaf_hash(&c.head_hash), c.size - 1, c.size, &proof, &c.merkle_root)
}

/// The `prove --seq N --json` document: an inclusion proof in the tree of the first `size`
/// records (the whole log, or a kept checkpoint's size), with that tree's head hash.
pub fn inclusion_json(store: &dyn LogStore, size: u64, seq: u64) -> Result<Value, AuditError> {
    let started = Instant::now();
    if seq == 0 || seq > size {
        return Err(AuditError::Invalid(format!("seq {seq} is not in the log (1..={size})")));
    }
    let proof = audit::inclusion_proof(store, seq, size)?;
    let root = audit::merkle_root(store, size)?;
    let record_hash = audit::record_hash(store, seq)?;
    let ok = merkle::verify_inclusion(&merkle::leaf_hash(&record_hash), seq - 1, size, &proof, &root);
    Ok(json!({
        "type": "inclusion",
        "seq": seq,
        "leaf_index": seq - 1,
        "record_hash": record_hash.to_hex(),
        "tree_size": size,
        "head_hash": head_at(store, size)?.to_hex(),
        "head_proof": head_proof(store, size)?,
        "merkle_root": hex::encode(root),
        "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
        "verified": ok,
        "seconds": started.elapsed().as_secs_f64(),
    }))
}

/// The `prove --from-checkpoint A --to-checkpoint B --json` document.
pub fn consistency_json(store: &dyn LogStore, head: u64, a: &Checkpoint, b: &Checkpoint) -> Result<Value, AuditError> {
    if a.size > b.size {
        return Err(AuditError::Invalid(format!(
            "the first checkpoint ({}) is larger than the second ({})",
            a.size, b.size
        )));
    }
    if b.size > head {
        return Err(AuditError::Invalid(format!(
            "the second checkpoint covers {} records; the log has {head}",
            b.size
        )));
    }
    let proof = audit::consistency_proof(store, a.size, b.size)?;
    // The roots must be consistent and each checkpoint's head hash the log's at its size: a
    // checkpoint with a forged head hash does not verify.
    let (old_head, new_head) = (head_at(store, a.size)?, head_at(store, b.size)?);
    let ok = merkle::verify_consistency(a.size, b.size, &a.merkle_root, &b.merkle_root, &proof)
        && old_head == a.head_hash
        && new_head == b.head_hash;
    Ok(json!({
        "type": "consistency",
        "old_size": a.size,
        "new_size": b.size,
        "old_root": hex::encode(a.merkle_root),
        "new_root": hex::encode(b.merkle_root),
        "old_head_hash": old_head.to_hex(),
        "new_head_hash": new_head.to_hex(),
        "old_head_proof": head_proof(store, a.size)?,
        "new_head_proof": head_proof(store, b.size)?,
        "proof": proof.iter().map(hex::encode).collect::<Vec<_>>(),
        "verified": ok,
    }))
}

fn hash_field(doc: &Value, field: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(doc.get(field)?.as_str()?, &mut out).ok()?;
    Some(out)
}

fn proof_field(doc: &Value) -> Option<Vec<[u8; 32]>> {
    doc.get("proof")?
        .as_array()?
        .iter()
        .map(|h| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(h.as_str()?, &mut out).ok()?;
            Some(out)
        })
        .collect()
}

/// Re-checks an inclusion document received from elsewhere (its `verified` is ignored): the
/// proof takes the record hash at `seq` to `merkle_root` for `tree_size`.
pub fn check_inclusion_doc(doc: &Value) -> bool {
    let check = || -> Option<bool> {
        let seq = doc.get("seq")?.as_u64()?;
        let size = doc.get("tree_size")?.as_u64()?;
        let record = ledger_core::ChainHash(hash_field(doc, "record_hash")?);
        let root = hash_field(doc, "merkle_root")?;
        let proof = proof_field(doc)?;
        Some(seq >= 1 && merkle::verify_inclusion(&merkle::leaf_hash(&record), seq - 1, size, &proof, &root))
    };
    check().unwrap_or(false)
}

/// Re-checks a consistency document against the two checkpoints the caller keeps: the roots
/// are consistent, and each checkpoint's head hash is the last leaf of its tree (so a
/// checkpoint with a forged head hash fails, with nothing but the checkpoints to go on).
pub fn check_consistency_doc(doc: &Value, a: &Checkpoint, b: &Checkpoint) -> bool {
    proof_field(doc)
        .is_some_and(|proof| merkle::verify_consistency(a.size, b.size, &a.merkle_root, &b.merkle_root, &proof))
        && head_proven(doc, "old_head_proof", a)
        && head_proven(doc, "new_head_proof", b)
}

/// Re-checks an inclusion document against a kept checkpoint: the proof leads to the
/// checkpoint's root at its size, and the checkpoint's head hash is that tree's last leaf.
pub fn check_inclusion_against(doc: &Value, c: &Checkpoint) -> bool {
    let mut against = doc.clone();
    against["merkle_root"] = Value::from(hex::encode(c.merkle_root));
    doc.get("tree_size").and_then(Value::as_u64) == Some(c.size)
        && head_proven(doc, "head_proof", c)
        && check_inclusion_doc(&against)
}

// ---------------------------------------------------------------------------------------------
// The operations.

/// The members of an audit request, parsed as every other request is (an empty body is `{}`).
struct Members(Input);

impl Members {
    fn parse(body: &[u8]) -> Result<Members, ApiError> {
        Input::parse(body).map(Members)
    }

    fn get(&self, name: &str) -> Option<&Value> {
        self.0.get(name)
    }

    fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        self.0.string(name)
    }

    /// A seq: a JSON number, or a string of digits.
    fn seq(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => {
                n.as_u64().map(Some).ok_or_else(|| validation(format!("{name} must be a non-negative integer.")))
            }
            Some(Value::String(s)) => {
                s.parse().map(Some).map_err(|_| validation(format!("{name} must be a non-negative integer.")))
            }
            Some(_) => Err(ApiError::serialization(format!("Value of member '{name}' must be an integer."))),
        }
    }

    /// A seq number, or a string (a seq or an RFC 3339 time).
    fn seq_or_time(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
            Some(_) => Err(validation(format!("{name} takes a seq (a number) or an RFC 3339 time (a string)."))),
        }
    }

    /// `AsOf`: a seq number, or a string (a seq or an RFC 3339 time).
    fn as_of(&self) -> Result<String, ApiError> {
        self.seq_or_time("AsOf")?.ok_or_else(|| ApiError::missing_member("AsOf"))
    }

    /// A checkpoint JSON object (a JSON string holding one is accepted too); a signed one must
    /// verify against the key it names.
    fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, ApiError> {
        let text = match self.get(name) {
            None => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Object(_)) => v.to_string(),
            Some(_) => return Err(ApiError::serialization(format!("Value of member '{name}' must be an object."))),
        };
        let checkpoint = Checkpoint::from_json(&text).map_err(|e| validation(format!("{name}: {e}")))?;
        if checkpoint.signature.is_some() {
            checkpoint.verify_signature().map_err(|e| validation(format!("{name}: {e}")))?;
        }
        Ok(Some(checkpoint))
    }

    fn origin(&self, app: &App) -> Result<String, ApiError> {
        let origin = self.string("Origin")?.unwrap_or_else(|| app.ledger.store().location());
        if origin.is_empty() || origin.chars().any(char::is_control) {
            return Err(validation("Origin must be non-empty and free of control characters."));
        }
        Ok(origin)
    }
}

fn document(value: &Value) -> Response {
    json_response(value.to_string())
}

/// Runs `f` on a blocking thread; a panic there is a 500.
async fn blocking<T: Send + 'static>(
    request_id: &str,
    f: impl FnOnce() -> Result<T, AuditError> + Send + 'static,
) -> Result<T, ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(|e| e.into_api(request_id)),
        Err(e) => {
            tracing::error!(request_id, error = %e, "audit task failed");
            Err(ApiError::internal())
        }
    }
}

fn now_ms() -> i64 {
    ledger_store::SystemClock::now_ms()
}

/// Runs one audit operation; `operation` is the name after `SecretLedger.`. `region` is the
/// request's signing region: a `SecretId` resolves within it, as in every Secrets Manager call.
pub async fn dispatch(
    app: &Arc<App>,
    operation: &str,
    body: &[u8],
    region: &str,
    request_id: &str,
) -> Result<Response, ApiError> {
    if !OPERATIONS.contains(&operation) {
        return Err(ApiError::unknown_operation(format!(
            "Unknown operation: X-Amz-Target '{TARGET_PREFIX}{}'.",
            short(operation)
        )));
    }
    let input = Members::parse(body)?;
    let store = app.ledger.store_handle();
    // The durable head: sled may already hold the records of a group whose flush is running;
    // nothing past what was acknowledged is read or published.
    let head = app.ledger.head();
    let region = region.to_string();
    match operation {
        "History" => {
            let secret_id = input.string("SecretId")?;
            let filter = HistoryFilter {
                actor: input.string("Actor")?,
                operation: input.string("Operation")?,
                since: input.seq_or_time("Since")?,
                until: input.seq_or_time("Until")?,
            };
            // The ledger-wide history scans the log: it takes a whole-log slot, as exports do.
            let permit = if secret_id.is_none() { Some(whole_log_permit()?) } else { None };
            let doc = blocking(request_id, move || match &secret_id {
                Some(id) => {
                    let histories = history_entries(&*store, head.0, id, Some(&region), &filter)?;
                    Ok(history_json(id, &histories))
                }
                None => ledger_history_json(&*store, head.0, &filter),
            })
            .await?;
            drop(permit);
            Ok(document(&doc))
        }
        "State" => {
            let as_of = input.as_of()?;
            let exact = input.0.bool("Exact")?.unwrap_or(false);
            let secret_id = input.string("SecretId")?;
            let label = input.string("Label")?;
            if label.is_some() && secret_id.is_none() {
                return Err(validation("Label requires SecretId."));
            }
            let doc = blocking(request_id, move || {
                let state = state_at(&*store, head.0, &as_of, exact, secret_id.as_deref(), Some(&region))?;
                Ok(state_json(&state, label.as_deref(), None))
            })
            .await?;
            Ok(document(&doc))
        }
        "Checkpoint" => {
            let origin = input.origin(app)?;
            let checkpoint =
                blocking(request_id, move || Ok(audit::checkpoint_upto(&*store, head, &origin, now_ms())?)).await?;
            Ok(json_response(checkpoint.to_json()))
        }
        "Prove" => {
            let seq = input.seq("Seq")?;
            let from = input.checkpoint("FromCheckpoint")?;
            let to = input.checkpoint("ToCheckpoint")?;
            let doc = match (seq, from, to) {
                (Some(seq), None, None) => {
                    let size = input.seq("TreeSize")?.unwrap_or(head.0);
                    if size > head.0 {
                        return Err(validation(format!("TreeSize {size} is past the head of the log ({})", head.0)));
                    }
                    blocking(request_id, move || inclusion_json(&*store, size, seq)).await?
                }
                (None, Some(a), Some(b)) => {
                    blocking(request_id, move || consistency_json(&*store, head.0, &a, &b)).await?
                }
                _ => return Err(validation("Prove takes Seq, or FromCheckpoint and ToCheckpoint.")),
            };
            Ok(document(&doc))
        }
        "Verify" => {
            let trusted = input.checkpoint("Checkpoint")?;
            let app = app.clone();
            let permit = whole_log_permit()?;
            let doc = blocking(request_id, move || {
                let _permit = permit;
                let started = Instant::now();
                let mut outcome = app.ledger.verify(&mut |_, _| {})?;
                if let (Ok(report), Some(t)) = (&outcome, &trusted) {
                    outcome = check_against(app.ledger.store(), report, t)?;
                }
                Ok(match outcome {
                    Ok(report) => report_json(&report, started.elapsed().as_secs_f64()),
                    Err(failure) => failure_json(&failure),
                })
            })
            .await?;
            Ok(document(&doc))
        }
        "Export" => {
            let origin = input.origin(app)?;
            let permit = whole_log_permit()?;
            Ok(export(store, head, origin, request_id.to_string(), permit))
        }
        _ => Err(ApiError::unknown_operation(format!("Operation {} is not supported.", short(operation)))),
    }
}

/// Starts the export on a blocking thread and answers with its streamed output.
fn export(
    store: Arc<dyn LogStore>,
    head: (u64, ledger_core::ChainHash),
    origin: String,
    request_id: String,
    permit: tokio::sync::SemaphorePermit<'static>,
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_CHUNKS_QUEUED);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _permit = permit;
        let mut out = ChunkWriter { tx, buf: Vec::with_capacity(EXPORT_CHUNK_BYTES), runtime };
        if let Err(e) = audit::export_upto(&*store, head, &mut out, &origin, now_ms(), &mut |_, _| {}) {
            // The body is cut short: the file has no closing checkpoint and will not verify.
            tracing::warn!(request_id, error = %e, "export stopped");
            let _ = out.tx.try_send(Err(std::io::Error::other("export stopped")));
        }
    });
    let mut response = (StatusCode::OK, Body::new(ChunkBody(rx))).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(EXPORT_CONTENT_TYPE));
    response
}

type Chunk = Result<Bytes, std::io::Error>;

/// Writes into fixed-size chunks sent to the response body; blocks while the queue is full.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Chunk>,
    buf: Vec<u8>,
    /// The server's runtime, to wait for the reader with a timer from the export thread.
    runtime: tokio::runtime::Handle,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(EXPORT_CHUNK_BYTES)));
        // A reader that takes nothing for EXPORT_STALL is given up on: the export stops.
        match self.runtime.block_on(tokio::time::timeout(EXPORT_STALL, self.tx.send(Ok(chunk)))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")),
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading")),
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= EXPORT_CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}

/// The receiving end as an HTTP body.
struct ChunkBody(tokio::sync::mpsc::Receiver<Chunk>);

impl HttpBody for ChunkBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, std::io::Error>>> {
        self.0.poll_recv(cx).map(|chunk| chunk.map(|c| c.map(http_body::Frame::data)))
    }
}
