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
use ledger_store::{Checker, FailureReason, LogStore, StoreError, Verifier, VerifyFailure, VerifyReport};
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
    let root = export_lines(store, head, out, progress)?;
    let checkpoint =
        Checkpoint { origin: origin.to_string(), size: head, head_hash, merkle_root: root, time_ms, signature: None };
    let mut closing: serde_json::Value = serde_json::from_str(&checkpoint.to_json())
        .map_err(|e| StoreError::Engine(format!("checkpoint encoding: {e}")))?;
    closing["type"] = serde_json::Value::from("checkpoint");
    writeln!(out, "{closing}")?;
    out.flush()?;
    progress(head, head);
    Ok(checkpoint)
}

/// A batch of stored records, `(seq, bytes)`, on their way to be formatted.
type Raw = Vec<(u64, ledger_store::RecordBytes)>;

/// Bytes of event lines handed to the writing thread at a time.
const LINES_CHUNK_BYTES: usize = 256 << 10;

/// Writes the event lines of records `1..=head` to `out` and returns their Merkle root. Three
/// threads: one reads the store, one decodes and formats (and builds the Merkle tree), and the
/// caller's writes `out`, so that the two cores share the work.
fn export_lines(
    store: &dyn LogStore,
    head: u64,
    out: &mut dyn Write,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<[u8; 32], StoreError> {
    std::thread::scope(|scope| {
        let (raw_tx, raw_rx) = std::sync::mpsc::sync_channel::<Result<Raw, StoreError>>(4);
        let (lines_tx, lines_rx) = std::sync::mpsc::sync_channel::<Result<(u64, Vec<u8>), StoreError>>(4);
        scope.spawn(move || {
            let mut batch = Vec::with_capacity(1024);
            for item in store.records(1, head) {
                match item {
                    Ok((seq, bytes)) => batch.push((seq, bytes)),
                    Err(e) => {
                        let _ = raw_tx.send(Err(e));
                        return;
                    }
                }
                if batch.len() == 1024 && raw_tx.send(Ok(std::mem::take(&mut batch))).is_err() {
                    return;
                }
            }
            let _ = raw_tx.send(Ok(batch));
        });
        let formatter = scope.spawn(move || format_lines(raw_rx, &lines_tx));
        for chunk in lines_rx {
            let (seq, bytes) = chunk?;
            out.write_all(&bytes)?;
            progress(seq, head);
        }
        formatter.join().map_err(|_| StoreError::Engine("the export's formatting thread panicked".into()))?
    })
}

/// The formatting stage of [`export_lines`]: event lines in chunks of about
/// [`LINES_CHUNK_BYTES`], each with the last seq it holds; returns the Merkle root.
fn format_lines(
    raw: std::sync::mpsc::Receiver<Result<Raw, StoreError>>,
    lines: &std::sync::mpsc::SyncSender<Result<(u64, Vec<u8>), StoreError>>,
) -> Result<[u8; 32], StoreError> {
    let mut builder = merkle::MerkleBuilder::new();
    let mut chunk = Vec::with_capacity(LINES_CHUNK_BYTES + 4096);
    let mut last = 0;
    for batch in raw {
        let batch = match batch {
            Ok(batch) => batch,
            Err(e) => {
                let _ = lines.send(Err(e));
                return Err(StoreError::Engine("export stopped".into()));
            }
        };
        for (seq, bytes) in batch {
            let r = decode_record(&bytes).map_err(|e| StoreError::Corrupt { seq, reason: e.to_string() })?;
            builder.push_chain_hash(&r.hash);
            write_line(&mut chunk, &ExportEvent::new(seq, &r, &bytes))?;
            last = seq;
            if chunk.len() >= LINES_CHUNK_BYTES {
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(LINES_CHUNK_BYTES + 4096));
                if lines.send(Ok((last, full))).is_err() {
                    return Err(StoreError::Engine("export stopped".into()));
                }
            }
        }
    }
    if !chunk.is_empty() && lines.send(Ok((last, chunk))).is_err() {
        return Err(StoreError::Engine("export stopped".into()));
    }
    Ok(builder.root())
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
    // Two stages on two cores: this thread reads and parses the lines and checks each record
    // against its predecessor and the Merkle tree (verify's first stage); the other applies the
    // rules, the projection being rebuilt.
    let (outcome, rules) = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Vec<Record>>(8);
        let rules = scope.spawn(move || apply_rules(rx));
        let mut check = ExportCheck {
            checker: Checker::default(),
            merkle: merkle::MerkleBuilder::new(),
            batch: Vec::with_capacity(1024),
            tx,
            trusted,
            trusted_root_seen: false,
            closing: None,
            declared: 0,
        };
        let outcome = match check.lines(input, progress) {
            Ok(Ok(())) => Ok(check.finish_checks()),
            Ok(Err(failure)) => Ok(Err(failure)),
            Err(e) => Err(e),
        };
        // The last records, then the end of the stream for the rules.
        let ExportCheck { tx, batch, .. } = check;
        let _ = tx.send(batch);
        drop(tx);
        (outcome, rules.join())
    });
    let (mut verifier, broken) = rules.map_err(|_| StoreError::Engine("the rules thread panicked".into()))?;
    // The rules broke at an earlier seq than any later failure of the first stage.
    if let Some(failure) = broken {
        return Ok(Err(failure));
    }
    let (merkle, count) = match outcome? {
        Ok(done) => done,
        Err(failure) => return Ok(Err(failure)),
    };
    // The rules applied every record the first stage passed (they did not break).
    debug_assert_eq!(verifier.len(), count);
    verifier.set_merkle(merkle);
    let report = verifier.report(0);
    progress(report.events, report.events);
    Ok(Ok(report))
}

/// The second stage of [`verify_export`]: the rules, until the first break.
fn apply_rules(rx: std::sync::mpsc::Receiver<Vec<Record>>) -> (Verifier, Option<VerifyFailure>) {
    let mut verifier = Verifier::default();
    for batch in rx {
        for record in batch {
            if let Err(failure) = verifier.apply(record) {
                return (verifier, Some(failure));
            }
        }
    }
    (verifier, None)
}

/// An export being verified line by line (the first stage of [`verify_export`]).
struct ExportCheck<'a> {
    checker: Checker,
    merkle: merkle::MerkleBuilder,
    /// Checked records not yet sent to the rules.
    batch: Vec<Record>,
    tx: std::sync::mpsc::SyncSender<Vec<Record>>,
    /// A checkpoint kept elsewhere: the file must hold the log it describes.
    trusted: Option<&'a Checkpoint>,
    trusted_root_seen: bool,
    closing: Option<Checkpoint>,
    /// The number of events the header announced.
    declared: u64,
}

/// A line that is not what an export holds there.
fn undecodable(seq: u64, why: String) -> VerifyFailure {
    VerifyFailure { seq, reason: FailureReason::Undecodable(why) }
}

impl ExportCheck<'_> {
    /// Every line of `input`, until the end or the first failure.
    fn lines(
        &mut self,
        input: &mut dyn BufRead,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Result<(), VerifyFailure>, StoreError> {
        for (line_no, line) in input.lines().enumerate() {
            let line = line?;
            if line.trim().is_empty() {
                continue;
            }
            if let Err(failure) = self.line(line_no + 1, &line, progress) {
                return Ok(Err(failure));
            }
        }
        Ok(Ok(()))
    }

    /// Records checked so far.
    fn len(&self) -> u64 {
        self.checker.checked()
    }

    /// Checks line `n` (1-based): the header first, then events, then the closing checkpoint.
    fn line(&mut self, n: usize, line: &str, progress: &mut dyn FnMut(u64, u64)) -> Result<(), VerifyFailure> {
        let next = self.len() + 1;
        // Only the members verification needs, borrowed from the line; the rest (the decoded
        // envelope for people) is skipped, not built.
        let value: ExportLine<'_> =
            serde_json::from_str(line).map_err(|e| undecodable(next, format!("line {n}: not an export line: {e}")))?;
        if self.closing.is_some() {
            return Err(undecodable(next, format!("line {n}: data after the closing checkpoint")));
        }
        match value.kind.as_deref() {
            Some("header") if n == 1 => {
                if value.format.as_deref() != Some(EXPORT_FORMAT) {
                    return Err(undecodable(0, "not a secret-ledger export".into()));
                }
                self.declared = value.events.unwrap_or(0);
            }
            Some("event") if n > 1 => self.event(n, &value, progress)?,
            Some("checkpoint") if n > 1 => match Checkpoint::from_json(line) {
                Ok(c) => self.closing = Some(c),
                Err(e) => return Err(undecodable(next, format!("line {n}: closing checkpoint: {e}"))),
            },
            _ => return Err(undecodable(next, format!("line {n}: unexpected line"))),
        }
        Ok(())
    }

    /// An event line: its record checked as `verify`'s first stage does, its readable envelope
    /// against the record, and the kept checkpoint when the log reaches its size; then sent to
    /// the rules.
    fn event(
        &mut self,
        n: usize,
        value: &ExportLine<'_>,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<(), VerifyFailure> {
        let next = self.len() + 1;
        let seq = value.seq.unwrap_or(0);
        let record =
            value.record.as_deref().ok_or_else(|| undecodable(next, format!("line {n}: event without record")))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(record)
            .map_err(|e| undecodable(next, format!("line {n}: record is not base64: {e}")))?;
        let record = self.checker.check(seq, &bytes)?;
        if let Err(field) = value.matches(&record) {
            return Err(VerifyFailure { seq, reason: FailureReason::EnvelopeMismatch(field) });
        }
        self.merkle.push_chain_hash(&record.hash);
        if let Some(t) = self.trusted.filter(|t| t.size == seq) {
            if self.merkle.root() != t.merkle_root || self.checker.last_hash() != t.head_hash {
                return Err(VerifyFailure { seq: t.size, reason: FailureReason::CheckpointMismatch });
            }
            self.trusted_root_seen = true;
        }
        self.batch.push(record);
        if self.batch.len() == 1024 {
            // A closed channel means the rules broke: stop reading; what they say is reported.
            if self.tx.send(std::mem::replace(&mut self.batch, Vec::with_capacity(1024))).is_err() {
                return Err(undecodable(seq, "the rules stopped".into()));
            }
        }
        if seq.is_multiple_of(4096) {
            progress(seq, self.declared);
        }
        Ok(())
    }

    /// After the last line: the kept checkpoint was reached, and the closing checkpoint matches
    /// the records. Returns the Merkle tree and the number of records.
    fn finish_checks(&mut self) -> Result<(merkle::MerkleBuilder, u64), VerifyFailure> {
        let n = self.len();
        if let Some(t) = self.trusted {
            if t.size > n {
                return Err(VerifyFailure {
                    seq: n + 1,
                    reason: FailureReason::Truncated { expected: t.size, found: n },
                });
            }
            if !self.trusted_root_seen && t.size > 0 {
                return Err(VerifyFailure { seq: t.size, reason: FailureReason::CheckpointMismatch });
            }
        }
        let Some(closing) = &self.closing else {
            let reason = FailureReason::NoClosingCheckpoint { announced: self.declared, found: n };
            return Err(VerifyFailure { seq: n + 1, reason });
        };
        let root = self.merkle.root();
        if closing.size != n || closing.merkle_root != root || closing.head_hash != self.checker.last_hash() {
            return Err(VerifyFailure { seq: closing.size.min(n) + 1, reason: FailureReason::CheckpointMismatch });
        }
        Ok((std::mem::take(&mut self.merkle), n))
    }
}
