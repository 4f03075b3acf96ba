//! The storage seam: what the ledger needs from a log store, whatever keeps the bytes.
//!
//! Everything above this trait (the writer, open, verify, audit) speaks only [`LogStore`]; the
//! first implementation is [`crate::SledStore`], an embedded sled data dir. The invariants an
//! implementation keeps:
//!
//! - **One chain.** Records are stored under seqs `1..=head`, without gaps, each exactly the
//!   bytes it was appended with. Nothing is ever rewritten or removed below the head.
//! - **Compare-and-set appends.** [`LogStore::append`] writes a whole group (records, head,
//!   derived entries) atomically, and only if the stored head is still the one the writer decided
//!   against; otherwise it writes nothing and answers [`Appended::Conflict`] with the head it
//!   found, so a writer that lost a race to another writer catches up and decides again.
//! - **Durable before answered.** `append` returns [`Appended::Durable`] only once the group would
//!   survive a power loss, and then also records it as the acknowledged head.
//! - **The acknowledged head lives apart from the log** ([`LogStore::acknowledged_head`]), so
//!   that open can tell a log that lost acknowledged records from a short one.
//! - **Derived data may be lost, never wrong.** Per-secret index, name index, Merkle chunk roots
//!   and projection snapshots can be rebuilt from the records; verify checks them against the
//!   records.
//! - **Data keys are mutable and deletable** (purge destroys them): they live outside the log, and
//!   are added and destroyed key by key, so writers that share a store never undo each other.

use std::fmt::Debug;
use std::ops::Deref;

use ledger_core::crypto::WrappedKey;
use ledger_core::{codec, ChainHash};

use crate::error::StoreError;
use crate::keyfile::KeyFile;

/// The head of a log: the seq of its last record and that record's chain hash. `(0, GENESIS)`
/// for an empty log.
pub type Head = (u64, ChainHash);

/// The stored bytes of one record, as the backend hands them out (without a copy where it can).
pub struct RecordBytes(pub(crate) Bytes);

pub(crate) enum Bytes {
    Sled(sled::IVec),
    Owned(Vec<u8>),
}

impl RecordBytes {
    /// Bytes a backend read into a buffer of its own.
    pub fn owned(bytes: Vec<u8>) -> RecordBytes {
        RecordBytes(Bytes::Owned(bytes))
    }
}

impl Deref for RecordBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match &self.0 {
            Bytes::Sled(v) => v,
            Bytes::Owned(v) => v,
        }
    }
}

impl Debug for RecordBytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RecordBytes({} bytes)", self.len())
    }
}

/// A run of consecutive records of one secret: the per-secret index's entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IndexRun {
    pub uid: u64,
    pub first: u64,
    pub len: u32,
}

/// Entries derived from records, written with them (or by a rebuild).
#[derive(Debug, Default)]
pub struct Derived {
    /// Per-secret index runs.
    pub index_runs: Vec<IndexRun>,
    /// `(name, uid, region)` of every secret created.
    pub names: Vec<(String, u64, String)>,
    /// `(chunk, root)` of every completed chunk of `MERKLE_CHUNK` leaves.
    pub merkle_roots: Vec<(u64, [u8; 32])>,
}

impl Derived {
    pub fn is_empty(&self) -> bool {
        self.index_runs.is_empty() && self.names.is_empty() && self.merkle_roots.is_empty()
    }
}

/// One group commit: everything it writes, atomically.
#[derive(Debug)]
pub struct Group {
    /// The head the writer decided against; the append happens only if it is still the head.
    pub expected: Head,
    /// `(seq, record bytes)`, seqs `expected.0 + 1 ..` in order.
    pub records: Vec<(u64, Vec<u8>)>,
    /// The head after the group.
    pub head: Head,
    pub derived: Derived,
    /// A `MasterKeyRotated` in the group: the key id the log now records.
    pub master_key_id: Option<u32>,
    /// Wrapped data keys of secrets the group creates: stored before the records are durable,
    /// or atomically with them.
    pub new_keys: Vec<(u64, WrappedKey)>,
    /// Secrets the group purges: their data keys are destroyed once the records are durable,
    /// or atomically with them, and before the append returns.
    pub destroyed_keys: Vec<u64>,
}

/// What became of an append.
#[derive(Debug, PartialEq, Eq)]
pub enum Appended {
    /// Written and durable.
    Durable,
    /// Another writer moved the head first; nothing was written.
    Conflict { head: Head },
}

/// Records `first..=last` as stored: `(seq, bytes)` in seq order. A gap shows as a jump in seq.
pub type Records<'a> = Box<dyn Iterator<Item = Result<(u64, RecordBytes), StoreError>> + Send + 'a>;

/// A log store. See the module documentation for the invariants.
pub trait LogStore: Send + Sync + Debug {
    /// Where the store is, for people: a data dir's path, a database without its password. The
    /// default origin of checkpoints and exports.
    fn location(&self) -> String;

    /// The stored head.
    fn head(&self) -> Result<Head, StoreError>;

    /// The record at `seq`, if stored.
    fn record(&self, seq: u64) -> Result<Option<RecordBytes>, StoreError>;

    /// The records stored with seqs in `first..=last`, in order.
    fn records(&self, first: u64, last: u64) -> Records<'_>;

    /// Whether any record is stored above `seq` (one there was never acknowledged).
    fn first_record_above(&self, seq: u64) -> Result<Option<u64>, StoreError>;

    /// Called once before a writer's first append, with the head it starts from (the sled store
    /// writes its watermark, so that a new data dir has one from the start).
    fn begin_writing(&self, head: &Head) -> Result<(), StoreError>;

    /// Whether other writers may append to this store (a database several servers share): a
    /// writer then follows their appends, and after a failed append re-reads the store instead
    /// of stopping.
    fn shared(&self) -> bool;

    /// Before a writer decides a group: on a shared store, waits until no other writer is
    /// between its own `begin_group` and `end_group`, so that busy writers take turns instead of
    /// losing the compare-and-set to each other. Only for throughput: the compare-and-set keeps
    /// the chain whole whatever happens to this lock.
    fn begin_group(&self) -> Result<(), StoreError>;

    /// After a writer's group is appended, or given up.
    fn end_group(&self);

    /// Has `wake` called when another writer may have appended (a shared store: as soon as it
    /// hears of a commit, and after losing and regaining the database); a store with one
    /// writer never calls it.
    fn on_append(&self, wake: Box<dyn Fn() + Send + Sync>);

    /// Whether this holder of the store may run background work (purge sweeps, scheduled
    /// rotations): always with one writer; on a shared store, only the one node holding the
    /// leadership (taken over when that node dies).
    fn is_leader(&self) -> bool;

    /// Appends a group if the head is still `group.expected` (see [`Appended`]), durably, with
    /// its data keys.
    fn append(&self, group: Group) -> Result<Appended, StoreError>;

    /// The head last acknowledged as durable, kept apart from the log; `None` if never written.
    fn acknowledged_head(&self) -> Result<Option<Head>, StoreError>;

    /// Per-secret index: the runs of records of secret `uid`, in seq order, as `(first, len)`.
    fn index_runs(&self, uid: u64) -> Result<Vec<(u64, u64)>, StoreError>;

    /// Every secret ever created under `name`: `(uid, region)`.
    fn names(&self, name: &str) -> Result<Vec<(u64, String)>, StoreError>;

    /// The stored Merkle roots of chunks `first..last`, in order, stopping at the first missing.
    fn merkle_roots(&self, first: u64, last: u64) -> Result<Vec<[u8; 32]>, StoreError>;

    /// The stored root of Merkle chunk `chunk`.
    fn merkle_root(&self, chunk: u64) -> Result<Option<Vec<u8>>, StoreError>;

    /// Seqs of the stored projection snapshots of this build's encoding, ascending.
    fn snapshot_seqs(&self) -> Result<Vec<u64>, StoreError>;

    /// The encoded projection of the snapshot after `seq`: `Ok(Err(why))` when it is damaged.
    fn snapshot(&self, seq: u64) -> Result<Result<Vec<u8>, String>, StoreError>;

    /// [`LogStore::snapshot`] as a stream, for comparing a snapshot without holding it whole; a
    /// damaged snapshot fails a read (`InvalidData`) by the time the stream ends. The default
    /// reads it whole.
    fn snapshot_stream(&self, seq: u64) -> Result<Result<Box<dyn std::io::Read + '_>, String>, StoreError> {
        Ok(self.snapshot(seq)?.map(|bytes| Box::new(std::io::Cursor::new(bytes)) as Box<dyn std::io::Read>))
    }

    /// Stores a snapshot (derived: a lost one only costs replay time).
    fn put_snapshot(&self, seq: u64, encoded: &[u8]) -> Result<(), StoreError>;

    /// The projection encoding the snapshots were written in (`None`: a new store).
    fn projection_format(&self) -> Result<Option<u8>, StoreError>;

    /// Marks a new store as of this build's projection encoding.
    fn init_projection_format(&self) -> Result<(), StoreError>;

    /// Drops every derived entry (indexes, chunk roots, snapshots) before a rebuild.
    fn clear_derived(&self) -> Result<(), StoreError>;

    /// Writes rebuilt derived entries and snapshots; `done` marks the rebuild complete (the
    /// projection format is set and everything made durable).
    fn put_derived(&self, derived: Derived, snapshots: Vec<(u64, Vec<u8>)>, done: bool) -> Result<(), StoreError>;

    /// The id of the master key the log last recorded.
    fn master_key_id(&self) -> Result<Option<u32>, StoreError>;

    /// Records the master key id of a new store.
    fn init_master_key_id(&self, id: u32) -> Result<(), StoreError>;

    /// The data keys, if any were ever stored.
    fn key_file(&self) -> Result<Option<KeyFile>, StoreError>;

    /// Adds (or replaces) wrapped data keys, atomically and durably, outside an append (moving
    /// keys of an older layout).
    fn put_data_keys(&self, keys: &[(u64, WrappedKey)]) -> Result<(), StoreError>;

    /// Replaces every data key at once, atomically and durably: the commit point of a master
    /// key rotation (`file` holds every key, wrapped under the new master key).
    fn replace_data_keys(&self, file: &KeyFile) -> Result<(), StoreError>;

    /// Destroys the data keys of `uids` (a purge's crypto-shredding), atomically and durably.
    fn delete_data_keys(&self, uids: &[u64]) -> Result<(), StoreError>;

    /// Data keys of an older layout kept beside the log, to move into the key file.
    fn legacy_keys(&self) -> Result<Vec<(u64, WrappedKey)>, StoreError>;

    /// Removes the legacy keys once the key file holds them.
    fn drop_legacy_keys(&self, uids: &[u64]) -> Result<(), StoreError>;

    /// Makes everything written durable (on close).
    fn flush(&self) -> Result<(), StoreError>;

    /// The store as `Any`, for callers that know its backend (tests that forge damaged logs).
    fn as_any(&self) -> &dyn std::any::Any;
}

impl dyn LogStore + '_ {
    /// The record at `seq`, which must exist (a missing one is corruption).
    pub fn existing_record(&self, seq: u64) -> Result<RecordBytes, StoreError> {
        self.record(seq)?.ok_or(StoreError::Corrupt { seq, reason: "record missing".into() })
    }

    /// The chain hash of the record at `seq`.
    pub fn record_hash(&self, seq: u64) -> Result<ChainHash, StoreError> {
        let bytes = self.existing_record(seq)?;
        Ok(codec::decode_header(&bytes).map_err(|e| StoreError::Corrupt { seq, reason: e.to_string() })?.0.hash)
    }

    /// `recorded_at_ms` of the record at `seq`.
    pub fn record_time(&self, seq: u64) -> Result<i64, StoreError> {
        let bytes = self.existing_record(seq)?;
        codec::record_time(&bytes).map_err(|e| StoreError::Corrupt { seq, reason: e.to_string() })
    }
}
