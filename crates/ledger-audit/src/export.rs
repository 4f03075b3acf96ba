//! The export file: the log as JSON Lines (a header, one line per record, a closing
//! checkpoint), and its verification with nothing but the file.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};

use base64::Engine;
use ledger_core::checkpoint::Checkpoint;
use ledger_core::codec::{self, decode_record};
use ledger_core::merkle;
use ledger_core::time::format_rfc3339_ms;
use ledger_core::Record;
use ledger_store::{FailureReason, LogStore, StoreError, Verifier, VerifyFailure, VerifyReport};
use serde::Serialize;

use crate::events::describe;

pub const EXPORT_FORMAT: &str = "secret-ledger-export";
pub const EXPORT_FORMAT_VERSION: u64 = 1;

/// Writes the whole log as JSON Lines: a header, one line per record (its exact stored bytes
/// in base64, plus the envelope decoded for people), and a closing checkpoint.
pub fn export(
    store: &dyn LogStore,
    out: &mut dyn Write,
    origin: &str,
    time_ms: i64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Checkpoint, StoreError> {
    export_upto(store, store.head()?, out, origin, time_ms, progress)
}

/// [`export`] of the first `head.0` records, whose last hash is `head.1`.
pub fn export_upto(
    store: &dyn LogStore,
    head: (u64, ledger_core::ChainHash),
    out: &mut dyn Write,
    origin: &str,
    time_ms: i64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Checkpoint, StoreError> {
    let (head, head_hash) = head;
    let mut key_ids = BTreeSet::new();
    key_ids.extend(store.master_key_id().ok().flatten());
    // A data dir not yet opened by this build keeps its keys in sled.
    key_ids.extend(store.legacy_keys().unwrap_or_default().into_iter().map(|(_, w)| w.master_key_id));
    let header = ExportHeader {
        kind: "header",
        format: EXPORT_FORMAT,
        format_version: EXPORT_FORMAT_VERSION,
        record_format_version: codec::FORMAT_VERSION,
        origin,
        events: head,
        exported_at: format_rfc3339_ms(time_ms),
        master_key_ids: key_ids,
    };
    write_line(out, &header)?;
    let mut builder = merkle::MerkleBuilder::new();
    for item in store.records(1, head) {
        let (seq, v) = item?;
        let r = decode_record(&v).map_err(|e| StoreError::Corrupt { seq, reason: e.to_string() })?;
        builder.push_chain_hash(&r.hash);
        write_line(out, &ExportEvent::new(seq, &r, &v))?;
        if seq.is_multiple_of(4096) {
            progress(seq, head);
        }
    }
    let checkpoint = Checkpoint {
        origin: origin.to_string(),
        size: head,
        head_hash,
        merkle_root: builder.root(),
        time_ms,
        signature: None,
    };
    let mut closing: serde_json::Value = serde_json::from_str(&checkpoint.to_json())
        .map_err(|e| StoreError::Engine(format!("checkpoint encoding: {e}")))?;
    closing["type"] = serde_json::Value::from("checkpoint");
    writeln!(out, "{closing}")?;
    out.flush()?;
    progress(head, head);
    Ok(checkpoint)
}

fn write_line(out: &mut dyn Write, line: &impl Serialize) -> Result<(), StoreError> {
    serde_json::to_writer(&mut *out, line).map_err(|e| StoreError::Engine(format!("export encoding: {e}")))?;
    out.write_all(b"\n")?;
    Ok(())
}

/// The first line of an export.
#[derive(Serialize)]
struct ExportHeader<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    format: &'static str,
    format_version: u64,
    record_format_version: u8,
    origin: &'a str,
    events: u64,
    exported_at: String,
    master_key_ids: BTreeSet<u32>,
}

/// One record of an export: its exact stored bytes, and the envelope decoded for people.
#[derive(Serialize)]
struct ExportEvent<'a> {
    #[serde(rename = "type")]
    kind: &'static str,
    seq: u64,
    hash: String,
    prev_hash: String,
    recorded_at: String,
    actor: &'a str,
    request_id: &'a str,
    operation: &'a str,
    event: &'static str,
    secret: u64,
    change: String,
    record: String,
}

impl<'a> ExportEvent<'a> {
    /// The record stored under `seq`.
    fn new(seq: u64, r: &'a Record, bytes: &[u8]) -> ExportEvent<'a> {
        ExportEvent {
            kind: "event",
            seq,
            hash: r.hash.to_hex(),
            prev_hash: r.prev_hash.to_hex(),
            recorded_at: format_rfc3339_ms(r.recorded_at_ms),
            actor: &r.actor,
            request_id: &r.request_id,
            operation: &r.operation,
            event: r.event.name(),
            secret: r.event.secret().0,
            change: describe(&r.event),
            record: base64::engine::general_purpose::STANDARD.encode(bytes),
        }
    }
}

/// The members of an export line that verification reads.
#[derive(serde::Deserialize)]
struct ExportLine<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    format: Option<std::borrow::Cow<'a, str>>,
    events: Option<u64>,
    seq: Option<u64>,
    #[serde(borrow)]
    record: Option<std::borrow::Cow<'a, str>>,
    // The envelope decoded for people: must say what the record says.
    #[serde(borrow)]
    hash: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    prev_hash: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    recorded_at: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    actor: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    request_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    operation: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    event: Option<std::borrow::Cow<'a, str>>,
    secret: Option<u64>,
    #[serde(borrow)]
    change: Option<std::borrow::Cow<'a, str>>,
}

impl ExportLine<'_> {
    /// The first readable field that differs from the record, if any.
    fn matches(&self, r: &Record) -> Result<(), String> {
        let same =
            |field: &Option<std::borrow::Cow<'_, str>>, actual: &str| field.as_deref().is_none_or(|f| f == actual);
        let checks = [
            ("hash", same(&self.hash, &r.hash.to_hex())),
            ("prev_hash", same(&self.prev_hash, &r.prev_hash.to_hex())),
            ("recorded_at", same(&self.recorded_at, &format_rfc3339_ms(r.recorded_at_ms))),
            ("actor", same(&self.actor, &r.actor)),
            ("request_id", same(&self.request_id, &r.request_id)),
            ("operation", same(&self.operation, &r.operation)),
            ("event", same(&self.event, r.event.name())),
            ("secret", self.secret.is_none_or(|s| s == r.event.secret().0)),
            ("change", same(&self.change, &describe(&r.event))),
        ];
        match checks.iter().find(|(_, ok)| !ok) {
            Some((field, _)) => Err((*field).to_string()),
            None => Ok(()),
        }
    }
}

/// Verifies an export file with no keys and no sled: every record as `verify` does, the
/// closing checkpoint against the records, and, given a checkpoint kept elsewhere, that the
/// file holds the log it describes (a truncated tail is caught there).
pub fn verify_export(
    input: &mut dyn BufRead,
    trusted: Option<&Checkpoint>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Result<VerifyReport, VerifyFailure>, StoreError> {
    let mut verifier = Verifier::default();
    let mut trusted_root_seen = false;
    let mut closing: Option<Checkpoint> = None;
    let mut declared = 0u64;
    let bad = |seq: u64, why: String| Ok(Err(VerifyFailure { seq, reason: FailureReason::Undecodable(why) }));
    for (line_no, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let next = verifier.len() + 1;
        // Only the members verification needs, borrowed from the line; the rest (the decoded
        // envelope for people) is skipped, not built.
        let value: ExportLine<'_> = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => return bad(next, format!("line {}: not an export line: {e}", line_no + 1)),
        };
        if closing.is_some() {
            return bad(next, format!("line {}: data after the closing checkpoint", line_no + 1));
        }
        match value.kind.as_deref() {
            Some("header") if line_no == 0 => {
                if value.format.as_deref() != Some(EXPORT_FORMAT) {
                    return bad(0, "not a secret-ledger export".into());
                }
                declared = value.events.unwrap_or(0);
            }
            Some("event") if line_no > 0 => {
                let seq = value.seq.unwrap_or(0);
                let Some(record) = value.record.as_deref() else {
                    return bad(next, format!("line {}: event without record", line_no + 1));
                };
                let bytes = match base64::engine::general_purpose::STANDARD.decode(record) {
                    Ok(b) => b,
                    Err(e) => return bad(next, format!("line {}: record is not base64: {e}", line_no + 1)),
                };
                if let Err(failure) = verifier.push_checked(seq, &bytes, |r| value.matches(r)) {
                    return Ok(Err(failure));
                }
                if let Some(t) = trusted.filter(|t| t.size == verifier.len()) {
                    if verifier.merkle_root() != t.merkle_root || verifier.head_hash() != t.head_hash {
                        return Ok(Err(VerifyFailure { seq: t.size, reason: FailureReason::CheckpointMismatch }));
                    }
                    trusted_root_seen = true;
                }
                if seq.is_multiple_of(4096) {
                    progress(seq, declared);
                }
            }
            Some("checkpoint") if line_no > 0 => match Checkpoint::from_json(&line) {
                Ok(c) => closing = Some(c),
                Err(e) => return bad(next, format!("line {}: closing checkpoint: {e}", line_no + 1)),
            },
            _ => return bad(next, format!("line {}: unexpected line", line_no + 1)),
        }
    }
    let n = verifier.len();
    if let Some(t) = trusted {
        if t.size > n {
            return Ok(Err(VerifyFailure {
                seq: n + 1,
                reason: FailureReason::Truncated { expected: t.size, found: n },
            }));
        }
        if !trusted_root_seen && t.size > 0 {
            return Ok(Err(VerifyFailure { seq: t.size, reason: FailureReason::CheckpointMismatch }));
        }
    }
    let Some(closing) = closing else {
        return Ok(Err(VerifyFailure {
            seq: n + 1,
            reason: FailureReason::NoClosingCheckpoint { announced: declared, found: n },
        }));
    };
    if closing.size != n || closing.merkle_root != verifier.merkle_root() || closing.head_hash != verifier.head_hash() {
        return Ok(Err(VerifyFailure { seq: closing.size.min(n) + 1, reason: FailureReason::CheckpointMismatch }));
    }
    progress(n, n);
    Ok(Ok(verifier.report(0)))
}
