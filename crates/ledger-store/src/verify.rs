//! Replay and verify: streams the log from seq 1 and re-proves chain, encoding, time order and
//! every rule; compares each stored projection snapshot with the replayed state. Memory holds
//! the projection being rebuilt, never the log.

use std::path::Path;

use ledger_core::codec;
use ledger_core::merkle::MerkleBuilder;
use ledger_core::{evolve, ChainHash, Event, Record, RuleViolation, State};

use crate::error::StoreError;
use crate::layout;
use crate::sled_store::SledStore;
use crate::store::{Head, LogStore};

/// Why verification stopped.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FailureReason {
    #[error("gap in the log: expected seq {expected}, found seq {found}")]
    Gap { expected: u64, found: u64 },
    #[error("record stored under seq {key} claims seq {claimed}")]
    SeqMismatch { key: u64, claimed: u64 },
    #[error("undecodable record: {0}")]
    Undecodable(String),
    #[error("record hash does not match its contents")]
    BadHash,
    #[error("prev_hash does not link to the previous record")]
    BrokenLink,
    #[error("time goes backwards: {recorded_at_ms} ms after {previous_ms} ms")]
    TimeBackwards { recorded_at_ms: i64, previous_ms: i64 },
    #[error("rule broken: {0}")]
    Rule(RuleViolation),
    #[error("stored projection snapshot differs from the replayed state")]
    SnapshotMismatch,
    #[error("the export line's readable {0} differs from its record")]
    EnvelopeMismatch(String),
    #[error("a stored Merkle chunk root differs from the records it covers")]
    MerkleChunkMismatch,
    #[error("the acknowledged-head watermark ledger.head is missing or malformed")]
    WatermarkMissing,
    #[error("the log differs from the checkpoint (head hash or Merkle root)")]
    CheckpointMismatch,
    #[error("truncated: the checkpoint covers {expected} records, only {found} are present")]
    Truncated { expected: u64, found: u64 },
    #[error(
        "truncated: the export ends after {found} records without its closing checkpoint (its header announced {announced})"
    )]
    NoClosingCheckpoint { announced: u64, found: u64 },
    #[error("stored head (seq {head_seq}) does not match the log (last seq {last_seq})")]
    HeadMismatch { head_seq: u64, last_seq: u64 },
}

/// The first bad record and why.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("verification failed at seq {seq}: {reason}")]
pub struct VerifyFailure {
    pub seq: u64,
    pub reason: FailureReason,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifyReport {
    pub events: u64,
    pub head_hash: ChainHash,
    pub merkle_root: [u8; 32],
    pub snapshots_checked: u64,
    pub secrets: usize,
    /// The master-key rotations the log records, oldest first: (seq, from key id, to key id).
    pub master_key_rotations: Vec<(u64, u32, u32)>,
}

/// Opens a data dir (it must not be in use) and verifies it. Needs no keys.
pub fn verify_dir(
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Result<VerifyReport, VerifyFailure>, StoreError> {
    let store = SledStore::open_existing(path)?;
    crate::sled_store::guard_engine(|| verify_store(&store, progress))
}

/// Verifies a store that no writer is appending to: the log, then the acknowledged head kept
/// apart from it, then that nothing sits beyond the head.
pub fn verify_store(
    store: &dyn LogStore,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Result<VerifyReport, VerifyFailure>, StoreError> {
    let report = match verify_store_upto(store, store.head()?, progress)? {
        Ok(report) => report,
        Err(failure) => return Ok(Err(failure)),
    };
    let events = report.events;
    match store.acknowledged_head().ok().flatten() {
        None if events > 0 => return Ok(Err(VerifyFailure { seq: events, reason: FailureReason::WatermarkMissing })),
        None => {}
        Some((seq, _)) if seq > events => {
            let reason = FailureReason::Truncated { expected: seq, found: events };
            return Ok(Err(VerifyFailure { seq: events + 1, reason }));
        }
        Some((seq, hash)) if seq > 0 && store.record_hash(seq).ok() != Some(hash) => {
            return Ok(Err(VerifyFailure { seq, reason: FailureReason::CheckpointMismatch }));
        }
        Some(_) => {}
    }
    // Offline nothing may sit beyond the head: a record there was never acknowledged as part
    // of the log, or the head was rolled back. (On a shared store another server may have
    // appended since the head was read, and the head commits with its records.)
    if let Some(seq) = store.first_record_above(events)?.filter(|_| !store.shared()) {
        return Ok(Err(VerifyFailure { seq, reason: FailureReason::HeadMismatch { head_seq: events, last_seq: seq } }));
    }
    Ok(Ok(report))
}

/// Stage one of verification: what a record needs only its predecessor for (seq continuity,
/// link, hash, encoding, time order). Stateless about secrets, so it can run ahead of stage two
/// on another core.
#[derive(Clone, Debug)]
pub struct Checker {
    pub(crate) prev_hash: ChainHash,
    prev_time: i64,
    pub(crate) expected: u64,
}

impl Default for Checker {
    fn default() -> Checker {
        Checker { prev_hash: ChainHash::GENESIS, prev_time: i64::MIN, expected: 1 }
    }
}

impl Checker {
    /// Continues after record `seq` (0: from the start), whose hash is `prev_hash` and time
    /// `prev_time`.
    pub(crate) fn after(seq: u64, prev_hash: ChainHash, prev_time: i64) -> Checker {
        Checker { prev_hash, prev_time, expected: seq + 1 }
    }

    /// Records checked so far.
    pub fn checked(&self) -> u64 {
        self.expected - 1
    }

    /// The chain hash of the last record checked (genesis before the first).
    pub fn last_hash(&self) -> ChainHash {
        self.prev_hash
    }

    /// Checks and decodes the record stored under `seq`.
    pub fn check(&mut self, seq: u64, bytes: &[u8]) -> Result<Record, VerifyFailure> {
        let expected = self.expected;
        let fail = |seq, reason| Err(VerifyFailure { seq, reason });
        if seq != expected {
            return fail(expected, FailureReason::Gap { expected, found: seq });
        }
        let (header, _) = match codec::decode_header(bytes) {
            Ok(h) => h,
            Err(e) => return fail(seq, FailureReason::Undecodable(e.to_string())),
        };
        if header.seq != seq {
            return fail(seq, FailureReason::SeqMismatch { key: seq, claimed: header.seq });
        }
        if header.prev_hash != self.prev_hash {
            return fail(seq, FailureReason::BrokenLink);
        }
        match codec::verify_record_hash(bytes) {
            Ok(true) => {}
            Ok(false) => return fail(seq, FailureReason::BadHash),
            Err(e) => return fail(seq, FailureReason::Undecodable(e.to_string())),
        }
        let record = match codec::decode_record(bytes) {
            Ok(r) => r,
            Err(e) => return fail(seq, FailureReason::Undecodable(e.to_string())),
        };
        if record.recorded_at_ms < self.prev_time {
            return fail(
                seq,
                FailureReason::TimeBackwards { recorded_at_ms: record.recorded_at_ms, previous_ms: self.prev_time },
            );
        }
        self.prev_hash = header.hash;
        self.prev_time = record.recorded_at_ms;
        self.expected += 1;
        Ok(record)
    }
}

/// Verify's second stage: the rules, applied to records a [`Checker`] accepted, in order; the
/// Merkle tree of those records is built by the first stage and handed over at the end. Used
/// for data dirs and for export files alike.
#[derive(Default)]
pub struct Verifier {
    state: State,
    merkle: MerkleBuilder,
    applied: u64,
    last_hash: ChainHash,
    /// `MasterKeyRotated` events seen: (seq, from key id, to key id).
    rotations: Vec<(u64, u32, u32)>,
}

impl Verifier {
    /// The rules (evolve) for the next record.
    pub fn apply(&mut self, record: Record) -> Result<(), VerifyFailure> {
        if let Err(violation) = evolve(&mut self.state, record.seq, record.recorded_at_ms, &record.event) {
            return Err(VerifyFailure { seq: record.seq, reason: FailureReason::Rule(violation) });
        }
        if let Event::MasterKeyRotated { from_key_id, to_key_id } = record.event {
            self.rotations.push((record.seq, from_key_id, to_key_id));
        }
        self.applied = record.seq;
        self.last_hash = record.hash;
        Ok(())
    }

    /// The Merkle tree of the records applied, built by the first stage.
    pub fn set_merkle(&mut self, merkle: MerkleBuilder) {
        self.merkle = merkle;
    }

    /// Records verified so far.
    pub fn len(&self) -> u64 {
        self.applied
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn head_hash(&self) -> ChainHash {
        self.last_hash
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    pub fn report(&self, snapshots_checked: u64) -> VerifyReport {
        VerifyReport {
            events: self.len(),
            head_hash: self.last_hash,
            merkle_root: self.merkle.root(),
            snapshots_checked,
            secrets: self.state.len(),
            master_key_rotations: self.rotations.clone(),
        }
    }
}

/// Verifies the log of `store` up to `head` (a live ledger passes its durable head: the store
/// may already hold a group whose flush is still running). `progress(done, total)` is called
/// every few thousand records.
pub fn verify_store_upto(
    store: &dyn LogStore,
    head: Head,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Result<VerifyReport, VerifyFailure>, StoreError> {
    let (head_seq, head_hash) = head;
    let snapshots: Vec<u64> = store.snapshot_seqs()?.into_iter().filter(|&seq| seq <= head_seq).collect();
    if snapshots.first() == Some(&0) {
        return Ok(Err(VerifyFailure { seq: 0, reason: FailureReason::SnapshotMismatch }));
    }
    let mut stage = StageTwo {
        store,
        next_snapshot: snapshots.into_iter().peekable(),
        verifier: Verifier::default(),
        snapshots_checked: 0,
    };
    // Two stages on two cores: a reader thread reads the store, checks each record against its
    // predecessor and builds the Merkle tree; this thread applies the rules and the snapshot
    // checks.
    let outcome: Result<Option<VerifyFailure>, StoreError> = std::thread::scope(|scope| {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Result<Batch, StoreError>>(BATCHES_IN_FLIGHT);
        let reader = scope.spawn(move || stage_one(store, head_seq, &tx));
        let outcome = stage_two(&mut stage, rx, head_seq, progress);
        let merkle = reader.join().map_err(|_| StoreError::Engine("verify's reader thread panicked".into()))?;
        stage.verifier.set_merkle(merkle);
        outcome
    });
    if let Some(failure) = outcome? {
        return Ok(Err(failure));
    }
    let last_seq = stage.verifier.len();
    if last_seq != head_seq || stage.verifier.head_hash() != head_hash {
        let seq = last_seq.min(head_seq) + 1;
        return Ok(Err(VerifyFailure { seq, reason: FailureReason::HeadMismatch { head_seq, last_seq } }));
    }
    if let Some(&orphan) = stage.next_snapshot.peek() {
        return Ok(Err(VerifyFailure { seq: orphan, reason: FailureReason::SnapshotMismatch }));
    }
    progress(last_seq, head_seq);
    Ok(Ok(stage.verifier.report(stage.snapshots_checked)))
}

/// Records checked by stage one, sent to stage two in batches.
type Batch = Vec<Result<Record, VerifyFailure>>;

/// Records per batch: enough to make a channel send rare.
const BATCH_RECORDS: usize = 256;

/// Batches the channel holds while stage two is busy: stage one may run this far ahead.
const BATCHES_IN_FLIGHT: usize = 4;

/// Stage one, on a thread of its own: reads records `0..=head_seq`, checks each against its
/// predecessor, builds the Merkle tree and checks the stored chunk roots against it; stops at
/// the first failure. Returns the Merkle tree of the records it passed on.
fn stage_one(
    store: &dyn LogStore,
    head_seq: u64,
    tx: &std::sync::mpsc::SyncSender<Result<Batch, StoreError>>,
) -> MerkleBuilder {
    let mut checker = Checker::default();
    let (mut merkle, mut chunk) = (MerkleBuilder::new(), MerkleBuilder::new());
    let mut batch: Batch = Vec::with_capacity(BATCH_RECORDS);
    for item in store.records(0, head_seq) {
        let checked = match check_one(store, &mut checker, (&mut merkle, &mut chunk), item) {
            Ok(checked) => checked,
            Err(e) => {
                // What was checked before goes first: an earlier failure wins over this error.
                let _ = tx.send(Ok(std::mem::take(&mut batch)));
                let _ = tx.send(Err(e));
                return merkle;
            }
        };
        let stop = checked.is_err();
        batch.push(checked);
        if stop || batch.len() == BATCH_RECORDS {
            let sent = tx.send(Ok(std::mem::replace(&mut batch, Vec::with_capacity(BATCH_RECORDS))));
            if sent.is_err() || stop {
                return merkle;
            }
        }
    }
    let _ = tx.send(Ok(batch));
    merkle
}

/// Stage one for one stored record: checked against its predecessor, then added to the Merkle
/// tree and its chunk. A store that fails to read is an error; a record that fails, a failure.
fn check_one(
    store: &dyn LogStore,
    checker: &mut Checker,
    (merkle, chunk): (&mut MerkleBuilder, &mut MerkleBuilder),
    item: Result<(u64, crate::store::RecordBytes), StoreError>,
) -> Result<Result<Record, VerifyFailure>, StoreError> {
    let record = match item {
        Ok((seq, bytes)) => checker.check(seq, &bytes),
        Err(StoreError::Corrupt { reason, .. }) => {
            Err(VerifyFailure { seq: checker.expected, reason: FailureReason::Undecodable(reason) })
        }
        Err(e) => return Err(e),
    };
    Ok(match record {
        Ok(record) => chunk_checked(store, merkle, chunk, &record)?.map(|()| record),
        Err(failure) => Err(failure),
    })
}

/// Adds `record` to the Merkle tree and to its chunk; a completed chunk's stored root (derived,
/// what proofs and checkpoints are built from) must match the records. A missing one only makes
/// proofs slower.
fn chunk_checked(
    store: &dyn LogStore,
    merkle: &mut MerkleBuilder,
    chunk: &mut MerkleBuilder,
    record: &Record,
) -> Result<Result<(), VerifyFailure>, StoreError> {
    let leaf = ledger_core::merkle::leaf_hash(&record.hash);
    merkle.push(leaf);
    chunk.push(leaf);
    if chunk.len() == layout::MERKLE_CHUNK {
        let stored = store.merkle_root((record.seq - 1) / layout::MERKLE_CHUNK)?;
        if stored.is_some_and(|root| root[..] != chunk.root()) {
            return Ok(Err(VerifyFailure { seq: record.seq, reason: FailureReason::MerkleChunkMismatch }));
        }
        *chunk = MerkleBuilder::new();
    }
    Ok(Ok(()))
}

/// Stage two's loop: applies what stage one sends until the end or the first failure.
fn stage_two(
    stage: &mut StageTwo<'_>,
    rx: std::sync::mpsc::Receiver<Result<Batch, StoreError>>,
    head_seq: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Option<VerifyFailure>, StoreError> {
    for batch in rx {
        for checked in batch? {
            let record = match checked {
                Ok(record) => record,
                Err(failure) => return Ok(Some(failure)),
            };
            let seq = record.seq;
            if let Err(failure) = stage.apply(record)? {
                return Ok(Some(failure));
            }
            if seq.is_multiple_of(4096) {
                progress(seq, head_seq);
            }
        }
    }
    Ok(None)
}

/// Stage two: the rules, and the stored projection snapshots checked against them.
struct StageTwo<'a> {
    store: &'a dyn LogStore,
    next_snapshot: std::iter::Peekable<std::vec::IntoIter<u64>>,
    verifier: Verifier,
    snapshots_checked: u64,
}

impl StageTwo<'_> {
    fn apply(&mut self, record: Record) -> Result<Result<(), VerifyFailure>, StoreError> {
        let seq = record.seq;
        if let Err(failure) = self.verifier.apply(record) {
            return Ok(Err(failure));
        }
        while self.next_snapshot.peek().is_some_and(|&s| s < seq) {
            self.next_snapshot.next();
        }
        if self.next_snapshot.peek() == Some(&seq) {
            self.next_snapshot.next();
            let stored = self.store.snapshot_stream(seq)?;
            // A damaged snapshot is a mismatch; a store that cannot be read is an error.
            let matches = match stored {
                Ok(mut bytes) => codec::encodes_as(self.verifier.state(), &mut bytes)?,
                Err(_) => false,
            };
            if !matches {
                return Ok(Err(VerifyFailure { seq, reason: FailureReason::SnapshotMismatch }));
            }
            self.snapshots_checked += 1;
        }
        Ok(Ok(()))
    }
}
