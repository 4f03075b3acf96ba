//! The replay loop: records applied to a projection in seq order, each checked on the way by
//! verify's first stage ([`Checker`]: seq continuity, encoding, its own hash, the link to its
//! predecessor, time order), then the rules ([`evolve`]). Open, point-in-time reads and rebuild
//! all replay through it; verify runs the same checks on two threads and adds what only a full
//! pass can check.

use ledger_core::codec;
use ledger_core::{evolve, Record, State};

use crate::error::StoreError;
use crate::store::{Head, LogStore};
use crate::verify::Checker;

/// A projection being brought forward record by record.
#[derive(Debug)]
pub(crate) struct Replay {
    checker: Checker,
    pub(crate) state: State,
}

impl Replay {
    /// From the start of the log.
    pub(crate) fn from_genesis() -> Replay {
        Replay { checker: Checker::default(), state: State::default() }
    }

    /// Continues after the record at `seq` of `store` (0: from the start), with the projection
    /// `state` as it stood after it.
    pub(crate) fn after(store: &dyn LogStore, seq: u64, state: State) -> Result<Replay, StoreError> {
        if seq == 0 {
            return Ok(Replay { state, ..Replay::from_genesis() });
        }
        let bytes = store.existing_record(seq)?;
        let corrupt = |e: codec::DecodeError| StoreError::Corrupt { seq, reason: e.to_string() };
        let (header, _) = codec::decode_header(&bytes).map_err(corrupt)?;
        let time = codec::record_time(&bytes).map_err(corrupt)?;
        Ok(Replay { checker: Checker::after(seq, header.hash, time), state })
    }

    /// Checks and applies the record stored under `seq`; returns it decoded.
    pub(crate) fn apply(&mut self, seq: u64, bytes: &[u8]) -> Result<Record, StoreError> {
        let record = self
            .checker
            .check(seq, bytes)
            .map_err(|failure| StoreError::Corrupt { seq: failure.seq, reason: failure.reason.to_string() })?;
        evolve(&mut self.state, seq, record.recorded_at_ms, &record.event)
            .map_err(|e| StoreError::Corrupt { seq, reason: e.to_string() })?;
        Ok(record)
    }

    /// Applies every record up to `head` and checks that the log ends exactly there.
    pub(crate) fn run_to(mut self, store: &dyn LogStore, head: Head) -> Result<State, StoreError> {
        for item in store.records(self.checker.expected, head.0) {
            let (seq, bytes) = item?;
            self.apply(seq, &bytes)?;
        }
        self.check_ends_at(head)?;
        Ok(self.state)
    }

    /// Checks that the records applied end exactly at `head`.
    pub(crate) fn check_ends_at(&self, head: Head) -> Result<(), StoreError> {
        if self.checker.expected != head.0 + 1 || self.checker.prev_hash != head.1 {
            return Err(StoreError::Corrupt { seq: self.checker.expected, reason: "log ends before its head".into() });
        }
        Ok(())
    }
}
/// The whole projection as it stood after `seq`: the newest snapshot at or below it, then the
/// records after the snapshot, each checked.
pub fn state_at(store: &dyn LogStore, seq: u64) -> Result<State, StoreError> {
    let (from, state) = newest_snapshot_at_or_below(store, seq)?;
    let mut replay = Replay::after(store, from, state)?;
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
