//! What the records imply besides the projection: per-secret index runs, the name index and the
//! Merkle chunk roots. Computed the same way by the writer (with each group) and by a rebuild.

use ledger_core::codec;
use ledger_core::merkle::MerkleBuilder;
use ledger_core::{Event, Record};

use crate::error::StoreError;
use crate::layout::MERKLE_CHUNK;
use crate::store::{Derived, IndexRun, LogStore};

/// Follows the log record by record, collecting derived entries into a [`Derived`].
#[derive(Clone, Debug, Default)]
pub(crate) struct Deriver {
    /// The index run in progress (one entry per request, not per event).
    run: Option<IndexRun>,
    /// Leaves of the Merkle chunk in progress.
    pub chunk: MerkleBuilder,
}

impl Deriver {
    /// Continues from a chunk in progress.
    pub(crate) fn with_chunk(chunk: MerkleBuilder) -> Deriver {
        Deriver { run: None, chunk }
    }

    /// Notes the record `record` (seq `record.seq`).
    pub(crate) fn push(&mut self, out: &mut Derived, record: &Record) {
        let (seq, uid) = (record.seq, record.event.secret().0);
        match &mut self.run {
            Some(run) if run.uid == uid && run.first + u64::from(run.len) == seq && run.len < u32::MAX => run.len += 1,
            _ => {
                self.end_run(out);
                self.run = Some(IndexRun { uid, first: seq, len: 1 });
            }
        }
        self.chunk.push_chain_hash(&record.hash);
        if self.chunk.len() == MERKLE_CHUNK {
            out.merkle_roots.push(((seq - 1) / MERKLE_CHUNK, self.chunk.root()));
            self.chunk = MerkleBuilder::new();
        }
        if let Event::SecretCreated { name, region, .. } = &record.event {
            out.names.push((name.clone(), uid, region.clone()));
        }
    }

    /// Closes the index run in progress (at the end of a group).
    pub(crate) fn end_run(&mut self, out: &mut Derived) {
        out.index_runs.extend(self.run.take());
    }
}

/// The Merkle chunk of leaves in progress at `head`, for a writer to continue it.
pub(crate) fn chunk_in_progress(store: &dyn LogStore, head: u64) -> Result<MerkleBuilder, StoreError> {
    let mut builder = MerkleBuilder::new();
    for item in store.records(head - head % MERKLE_CHUNK + 1, head) {
        let (seq, bytes) = item?;
        let header = codec::decode_header(&bytes).map_err(|e| StoreError::Corrupt { seq, reason: e.to_string() })?;
        builder.push_chain_hash(&header.0.hash);
    }
    Ok(builder)
}
