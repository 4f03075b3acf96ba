//! The replay loop: records applied to a projection in seq order, each checked on the way (seq
//! continuity, its own hash, the link to its predecessor, the rules). Open, point-in-time
//! reads and rebuild all replay through it; verify adds the checks only a full pass can make.

use ledger_core::codec::{self, decode_record};
use ledger_core::{evolve, ChainHash, Record, State};

use crate::error::StoreError;
use crate::store::{Head, LogStore};

/// A projection being brought forward record by record.
#[derive(Debug)]
pub(crate) struct Replay {
    expected: u64,
    prev_hash: ChainHash,
    pub state: State,
}

impl Replay {
    /// Continues after record `seq` (0: from the start), whose hash is `prev_hash`, with the
    /// projection `state` as it stood after it.
    pub(crate) fn after(seq: u64, prev_hash: ChainHash, state: State) -> Replay {
        Replay { expected: seq + 1, prev_hash, state }
    }

    /// Checks and applies the record stored under `seq`; returns it decoded.
    pub(crate) fn apply(&mut self, seq: u64, bytes: &[u8]) -> Result<Record, StoreError> {
        let corrupt = |reason: String| StoreError::Corrupt { seq: self.expected, reason };
        if seq != self.expected {
            return Err(corrupt(format!("gap: found seq {seq}")));
        }
        if !codec::verify_record_hash(bytes).map_err(|e| corrupt(e.to_string()))? {
            return Err(corrupt("hash does not match the record".into()));
        }
        let record = decode_record(bytes).map_err(|e| corrupt(e.to_string()))?;
        if record.prev_hash != self.prev_hash || record.seq != seq {
            return Err(corrupt("chain link broken".into()));
        }
        evolve(&mut self.state, seq, record.recorded_at_ms, &record.event).map_err(|e| corrupt(e.to_string()))?;
        self.prev_hash = record.hash;
        self.expected += 1;
        Ok(record)
    }

    /// Applies every record up to `head` and checks that the log ends exactly there.
    pub(crate) fn run_to(mut self, store: &dyn LogStore, head: Head) -> Result<State, StoreError> {
        for item in store.records(self.expected, head.0) {
            let (seq, bytes) = item?;
            self.apply(seq, &bytes)?;
        }
        self.check_ends_at(head)?;
        Ok(self.state)
    }

    /// Checks that the records applied end exactly at `head`.
    pub(crate) fn check_ends_at(&self, head: Head) -> Result<(), StoreError> {
        if self.expected != head.0 + 1 || self.prev_hash != head.1 {
            return Err(StoreError::Corrupt { seq: self.expected, reason: "log ends before its head".into() });
        }
        Ok(())
    }
}

/// The whole projection as it stood after `seq`: the newest snapshot at or below it, then the
/// records after the snapshot, each checked.
pub fn state_at(store: &dyn LogStore, seq: u64) -> Result<State, StoreError> {
    let (from, state) = newest_snapshot_at_or_below(store, seq)?;
    let prev_hash = if from == 0 { ChainHash::GENESIS } else { store.record_hash(from)? };
    let mut replay = Replay::after(from, prev_hash, state);
    for item in store.records(from + 1, seq) {
        let (s, bytes) = item?;
        replay.apply(s, &bytes)?;
    }
    Ok(replay.state)
}

/// The newest intact snapshot at or below `seq`, decoded: `(snapshot seq, state)`, or
/// `(0, empty)` when there is none. Damaged ones are skipped (they are derived data; `verify`
/// reports them).
pub(crate) fn newest_snapshot_at_or_below(store: &dyn LogStore, seq: u64) -> Result<(u64, State), StoreError> {
    // No snapshot is ever written at seq 0 (there is nothing to snapshot); one there is forged.
    for snap in store.snapshot_seqs()?.into_iter().rev().filter(|&s| s > 0 && s <= seq) {
        match store.snapshot(snap)? {
            Ok(encoded) => match codec::decode::<State>(&encoded) {
                Ok(mut state) => {
                    state.rebuild_indexes();
                    return Ok((snap, state));
                }
                Err(e) => {
                    tracing::warn!(seq = snap, error = %e, "projection snapshot undecodable; replaying further back")
                }
            },
            Err(why) => tracing::warn!(seq = snap, why, "projection snapshot damaged; replaying further back"),
        }
    }
    Ok((0, State::default()))
}
