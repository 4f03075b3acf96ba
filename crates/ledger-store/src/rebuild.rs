//! Rebuilding derived data (indexes, Merkle chunk roots, snapshots) from the log: after an
//! upgrade of the projection's encoding, or by `secret-ledger rebuild`.

use ledger_core::codec;

use crate::derive::Deriver;
use crate::error::StoreError;
use crate::replay::Replay;
use crate::store::{Derived, LogStore};

/// Drops the derived entries (snapshots, per-secret and name indexes, Merkle chunk roots) and
/// rebuilds them from the log. `snapshot_every` as in `LedgerOptions`.
pub fn rebuild_derived(
    store: &dyn LogStore,
    snapshot_every: u64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<u64, StoreError> {
    store.clear_derived()?;
    let (head, head_hash) = store.head()?;
    let every = snapshot_every.max(1);
    let mut replay = Replay::from_genesis();
    let mut deriver = Deriver::default();
    let (mut derived, mut snapshots) = (Derived::default(), Vec::new());
    for item in store.records(1, head) {
        let (seq, bytes) = item?;
        let record = replay.apply(seq, &bytes)?;
        deriver.push(&mut derived, &record);
        if seq.is_multiple_of(every) {
            snapshots.push((seq, codec::encode(&replay.state)));
        }
        if seq.is_multiple_of(4096) {
            deriver.end_run(&mut derived);
            store.put_derived(std::mem::take(&mut derived), std::mem::take(&mut snapshots), false)?;
            progress(seq, head);
        }
    }
    replay.check_ends_at((head, head_hash))?;
    deriver.end_run(&mut derived);
    store.put_derived(derived, snapshots, true)?;
    progress(head, head);
    Ok(head)
}
