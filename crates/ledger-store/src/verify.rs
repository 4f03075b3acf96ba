//! Replay and verify: streams the log from seq 1 and re-proves chain, encoding, time order and
//! every rule; compares each stored projection snapshot with the replayed state. Memory holds
//! the projection being rebuilt, never the log.

use std::path::Path;

use ledger_core::codec;
use ledger_core::{evolve, ChainHash, RuleViolation, State};

use crate::error::StoreError;
use crate::layout;
use crate::ledger::{open_db, read_head, state_digest};

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
    pub snapshots_checked: u64,
    pub secrets: usize,
}

/// Opens a data dir (it must not be in use) and verifies it. Needs no keys.
pub fn verify_dir(
    path: &Path,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Result<VerifyReport, VerifyFailure>, StoreError> {
    if !path.join("db").exists() {
        return Err(StoreError::Io(std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!("{} is not a secret-ledger data dir", path.display()),
        )));
    }
    let db = open_db(path)?;
    let tree: sled::Tree = (*db).clone();
    verify_tree(&tree, progress)
}

/// Verifies the log in `tree`. `progress(done, total)` is called every few thousand records.
pub fn verify_tree(
    tree: &sled::Tree,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Result<VerifyReport, VerifyFailure>, StoreError> {
    let (head_seq, head_hash) = read_head(tree)?;
    let mut snapshots: Vec<u64> = Vec::new();
    for item in tree.scan_prefix([layout::SNAPSHOT]).keys() {
        if let Some(seq) = layout::seq_of(&item?) {
            snapshots.push(seq);
        }
    }
    let mut next_snapshot = snapshots.iter().copied().peekable();
    let mut state = State::default();
    let mut prev_hash = ChainHash::GENESIS;
    let mut prev_time = i64::MIN;
    let mut expected: u64 = 1;
    let mut snapshots_checked = 0;
    let fail = |seq, reason| Ok(Err(VerifyFailure { seq, reason }));
    for item in tree.scan_prefix([layout::EVENT]) {
        let (k, v) = item?;
        let Some(seq) = layout::seq_of(&k).filter(|_| k.len() == 9) else {
            return fail(expected, FailureReason::Undecodable("malformed event key".into()));
        };
        if seq != expected {
            return fail(expected, FailureReason::Gap { expected, found: seq });
        }
        let (header, _) = match codec::decode_header(&v) {
            Ok(h) => h,
            Err(e) => return fail(seq, FailureReason::Undecodable(e.to_string())),
        };
        if header.seq != seq {
            return fail(seq, FailureReason::SeqMismatch { key: seq, claimed: header.seq });
        }
        if header.prev_hash != prev_hash {
            return fail(seq, FailureReason::BrokenLink);
        }
        match codec::verify_record_hash(&v) {
            Ok(true) => {}
            Ok(false) => return fail(seq, FailureReason::BadHash),
            Err(e) => return fail(seq, FailureReason::Undecodable(e.to_string())),
        }
        let record = match codec::decode_record(&v) {
            Ok(r) => r,
            Err(e) => return fail(seq, FailureReason::Undecodable(e.to_string())),
        };
        if record.recorded_at_ms < prev_time {
            return fail(
                seq,
                FailureReason::TimeBackwards { recorded_at_ms: record.recorded_at_ms, previous_ms: prev_time },
            );
        }
        if let Err(violation) = evolve(&mut state, seq, record.recorded_at_ms, &record.event) {
            return fail(seq, FailureReason::Rule(violation));
        }
        while next_snapshot.peek().is_some_and(|&s| s < seq) {
            next_snapshot.next();
        }
        if next_snapshot.peek() == Some(&seq) {
            next_snapshot.next();
            let stored = tree.get(layout::snapshot_key(seq))?.unwrap_or_default();
            let encoded = codec::encode(&state);
            if stored.len() < 32 || stored[..32] != state_digest(&encoded) || stored[32..] != encoded[..] {
                return fail(seq, FailureReason::SnapshotMismatch);
            }
            snapshots_checked += 1;
        }
        prev_hash = header.hash;
        prev_time = record.recorded_at_ms;
        if seq % 4096 == 0 {
            progress(seq, head_seq);
        }
        expected += 1;
    }
    let last_seq = expected - 1;
    if last_seq != head_seq || prev_hash != head_hash {
        return fail(last_seq.min(head_seq) + 1, FailureReason::HeadMismatch { head_seq, last_seq });
    }
    if let Some(&orphan) = next_snapshot.peek() {
        return fail(orphan, FailureReason::SnapshotMismatch);
    }
    progress(last_seq, head_seq);
    Ok(Ok(VerifyReport { events: last_seq, head_hash, snapshots_checked, secrets: state.len() }))
}
