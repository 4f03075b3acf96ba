//! [`SledStore`]: the embedded [`LogStore`], one sled tree in a data dir, plus two files beside
//! it: the data-key file (`keys`, see [`crate::keyfile`]) and the acknowledged-head watermark
//! (`ledger.head`, see [`crate::watermark`]). The key spaces of the tree are in
//! [`crate::layout`]; one `sled::Batch` makes a group atomic across the log, the head and the
//! derived indexes. sled is named nowhere else in the production crates.

use std::collections::HashSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use ledger_core::codec;
use ledger_core::crypto::WrappedKey;
use ledger_core::ChainHash;

use crate::error::StoreError;
use crate::faults::{FaultPlan, FaultStep};
use crate::keyfile::KeyFile;
use crate::layout;
use crate::store::{Appended, Bytes, Derived, Group, Head, LogStore, RecordBytes, Records};

/// sled page cache for offline readers (verify, audit commands): they stream, so a small cache
/// keeps memory flat as the log grows.
pub(crate) const STREAMING_CACHE_BYTES: u64 = 8 << 20;

/// How a [`SledStore`] is opened.
#[derive(Clone, Debug)]
pub struct SledOptions {
    /// sled's page cache.
    pub cache_bytes: u64,
    /// Injected storage failures, for tests of the failure paths (`None` in service).
    pub faults: Option<Arc<FaultPlan>>,
    /// Skip `flush` + `fdatasync` (benchmarks of the non-durable path only; never in service).
    pub unsafe_no_sync: bool,
}

impl SledOptions {
    /// For offline readers: a small cache, no faults.
    pub fn streaming() -> SledOptions {
        SledOptions { cache_bytes: STREAMING_CACHE_BYTES, faults: None, unsafe_no_sync: false }
    }
}

/// A sled data dir. Appends come from one writer thread at a time (the CAS is checked under a
/// lock, and sled is one process per database).
pub struct SledStore {
    db: sled::Db,
    tree: sled::Tree,
    path: PathBuf,
    options: SledOptions,
    /// Opened by the first append: the watermark file and sled's data file to `fdatasync`.
    durable: Mutex<Option<Durability>>,
    /// The data-key file as this store last read or wrote it (`Some(None)`: there is none). One
    /// process per data dir, so the disk cannot change under it: a group that creates a secret
    /// does not read the file again before rewriting it.
    keys: Mutex<Option<Option<KeyFile>>>,
}

struct Durability {
    data_file: File,
    watermark: crate::watermark::Watermark,
    synced_blobs: HashSet<std::ffi::OsString>,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore").field("path", &self.path).finish_non_exhaustive()
    }
}

/// Runs `f`, turning a panic inside the storage engine into [`StoreError::Damaged`].
pub(crate) fn guard_engine<T>(f: impl FnOnce() -> Result<T, StoreError>) -> Result<T, StoreError> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        Ok(result) => result,
        Err(panic) => {
            let reason = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "storage engine panicked".to_string());
            Err(StoreError::Damaged { reason })
        }
    }
}

/// sled 0.34 writes its page-table snapshot to `snap.<lsn>.generating` and renames it when
/// complete; a process killed in between leaves the partial file, and sled then refuses to open
/// ("Read corrupted data", spacejam/sled#1527). The partial file holds nothing the log lacks, so
/// it is removed before opening. The data dir's lock is not held yet, so this only touches files
/// that a running sled would never read again either.
fn remove_unfinished_snapshots(path: &Path) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(path)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with("snap.") && name.ends_with(".generating") {
            tracing::warn!(file = %name, "removing sled's unfinished snapshot left by a crash");
            std::fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// Opens sled. sled's background I/O threads may hold the file lock for a moment after the
/// previous handle in this process was dropped, so a lock conflict is retried for up to three
/// seconds before it is reported as "in use".
fn open_db(path: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    // Owner only, whatever the umask: the dir holds the log and, by default, the master key.
    std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700).create(path)?;
    remove_unfinished_snapshots(path)?;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
    loop {
        match sled::Config::new().path(path).cache_capacity(cache_bytes).open() {
            Ok(db) => return Ok(db),
            Err(sled::Error::Io(io)) if io.to_string().contains("could not acquire lock") => {
                if std::time::Instant::now() >= deadline {
                    return Err(StoreError::InUse { path: path.to_path_buf() });
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            Err(other) => return Err(StoreError::from(other)),
        }
    }
}

fn corrupt(seq: u64, reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt { seq, reason: reason.into() }
}

impl SledStore {
    /// Opens (or creates) the data dir at `path`. A panic of sled on damaged files is a typed
    /// error here.
    pub fn open(path: &Path, options: SledOptions) -> Result<SledStore, StoreError> {
        let db = guard_engine(|| open_db(path, options.cache_bytes))?;
        let tree: sled::Tree = (*db).clone();
        Ok(SledStore { db, tree, path: path.to_path_buf(), options, durable: Mutex::new(None), keys: Mutex::new(None) })
    }

    /// Opens an existing data dir for reading offline (the server must not be running).
    pub fn open_existing(path: &Path) -> Result<SledStore, StoreError> {
        StoreError::check_data_dir(path)?;
        SledStore::open(path, SledOptions::streaming())
    }

    /// The data dir.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The sled tree itself, for tests that forge damaged logs. Not for production code: every
    /// read and write of the ledger goes through [`LogStore`].
    #[doc(hidden)]
    pub fn raw_tree(&self) -> &sled::Tree {
        &self.tree
    }

    fn inject(&self, step: FaultStep) -> Result<(), StoreError> {
        self.options.faults.as_ref().map_or(Ok(()), |f| f.check(step))
    }

    fn durability(&self) -> Result<std::sync::MutexGuard<'_, Option<Durability>>, StoreError> {
        let mut guard = self.durable.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_none() {
            *guard = Some(Durability {
                data_file: File::open(self.path.join("db"))?,
                watermark: crate::watermark::Watermark::open(&self.path)?,
                synced_blobs: HashSet::new(),
            });
        }
        Ok(guard)
    }

    fn batch_derived(batch: &mut sled::Batch, derived: &Derived) {
        for run in &derived.index_runs {
            batch.insert(&layout::index_key(run.uid, run.first), &run.len.to_be_bytes());
        }
        for (name, uid, region) in &derived.names {
            batch.insert(layout::name_key(name, *uid), region.as_bytes());
        }
        for (chunk, root) in &derived.merkle_roots {
            batch.insert(&layout::merkle_key(*chunk), root);
        }
    }

    /// sled's flush writes and `sync_file_range`s its log; `fdatasync` of the data file (and of
    /// any new blob file) makes it survive power loss.
    fn sync(&self, head: &Head) -> Result<(), StoreError> {
        if self.options.unsafe_no_sync {
            return Ok(());
        }
        self.inject(FaultStep::Flush)?;
        self.db.flush()?;
        let mut guard = self.durability()?;
        let durable = guard.as_mut().expect("opened above");
        sync_blobs(&self.path.join("blobs"), &mut durable.synced_blobs)?;
        self.inject(FaultStep::Fsync)?;
        durable.data_file.sync_data()?;
        durable.watermark.write(head.0, &head.1)?;
        Ok(())
    }
}

impl SledStore {
    /// Rewrites the data-key file as `change` leaves `file`, and remembers it once it is on disk.
    fn write_keys(&self, mut file: KeyFile, change: impl FnOnce(&mut KeyFile)) -> Result<(), StoreError> {
        change(&mut file);
        let written = file.write(&self.path);
        // After a failure what is on disk is not known: read it again next time.
        *self.keys.lock().unwrap_or_else(|e| e.into_inner()) = written.is_ok().then_some(Some(file));
        written
    }
}

/// sled writes values larger than a quarter segment to blob files without syncing them.
fn sync_blobs(blobs_dir: &Path, synced: &mut HashSet<std::ffi::OsString>) -> Result<(), StoreError> {
    let entries = match std::fs::read_dir(blobs_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    let mut new = false;
    for entry in entries {
        let entry = entry?;
        if synced.insert(entry.file_name()) {
            File::open(entry.path())?.sync_data()?;
            new = true;
        }
    }
    if new {
        File::open(blobs_dir)?.sync_all()?;
    }
    Ok(())
}

pub(crate) fn read_head(tree: &sled::Tree) -> Result<Head, StoreError> {
    match tree.get([layout::HEAD])? {
        None => Ok((0, ChainHash::GENESIS)),
        Some(v) if v.len() == 40 => {
            let seq = u64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
            Ok((seq, ChainHash(v[8..].try_into().expect("32 bytes"))))
        }
        Some(_) => Err(corrupt(0, "head record has the wrong length")),
    }
}

fn head_bytes(head: &Head) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(40);
    bytes.extend_from_slice(&head.0.to_be_bytes());
    bytes.extend_from_slice(&head.1 .0);
    bytes
}

impl LogStore for SledStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn head(&self) -> Result<Head, StoreError> {
        read_head(&self.tree)
    }

    fn record(&self, seq: u64) -> Result<Option<RecordBytes>, StoreError> {
        Ok(self.tree.get(layout::event_key(seq))?.map(|v| RecordBytes(Bytes::Sled(v))))
    }

    fn records(&self, first: u64, last: u64) -> Records<'_> {
        if first > last {
            return Box::new(std::iter::empty());
        }
        let range = self.tree.range(layout::event_key(first)..=layout::event_key(last));
        Box::new(range.map(|item| {
            let (k, v) = item?;
            match layout::seq_of(&k).filter(|_| k.len() == 9) {
                Some(seq) => Ok((seq, RecordBytes(Bytes::Sled(v)))),
                None => Err(corrupt(0, "malformed event key")),
            }
        }))
    }

    fn first_record_above(&self, seq: u64) -> Result<Option<u64>, StoreError> {
        let Some(first) = seq.checked_add(1) else { return Ok(None) };
        match self.tree.range(layout::event_key(first)..=layout::event_key(u64::MAX)).next() {
            Some(item) => Ok(Some(layout::seq_of(&item?.0).unwrap_or(first))),
            None => Ok(None),
        }
    }

    /// Before the first append: writes the watermark of the current head (a log whose
    /// watermark is missing was damaged, so a new data dir gets one at once) and cuts a torn
    /// tail off the key journal (appends follow the last whole entry). A failed append stops
    /// this store's writes until restart, so once per writer is enough.
    fn begin_writing(&self, head: &Head) -> Result<(), StoreError> {
        let guard = self.durability()?;
        let durable = guard.as_ref().expect("opened above");
        durable.watermark.write(head.0, &head.1)?;
        crate::keyfile::repair_journal(&self.path)
    }

    fn shared(&self) -> bool {
        false
    }

    fn is_leader(&self) -> bool {
        true
    }

    fn on_append(&self, _wake: Box<dyn Fn() + Send + Sync>) {}

    fn begin_group(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn end_group(&self) {}

    /// The key file gets new keys before the batch is durable and loses destroyed ones after.
    fn append(&self, group: Group) -> Result<Appended, StoreError> {
        let stored = read_head(&self.tree)?;
        if stored != group.expected {
            return Ok(Appended::Conflict { head: stored });
        }
        self.put_data_keys(&group.new_keys)?;
        let mut batch = sled::Batch::default();
        for (seq, bytes) in group.records {
            batch.insert(&layout::event_key(seq), bytes);
        }
        SledStore::batch_derived(&mut batch, &group.derived);
        if let Some(id) = group.master_key_id {
            batch.insert(&[layout::MASTER_KEY_ID], &id.to_be_bytes());
        }
        batch.insert(&[layout::HEAD], head_bytes(&group.head));
        self.inject(FaultStep::ApplyBatch)?;
        self.tree.apply_batch(batch)?;
        self.sync(&group.head)?;
        if !group.destroyed_keys.is_empty() {
            self.delete_data_keys(&group.destroyed_keys)?;
        }
        Ok(Appended::Durable)
    }

    fn acknowledged_head(&self) -> Result<Option<Head>, StoreError> {
        crate::watermark::read(&self.path)
            .map_err(|e| StoreError::Damaged { reason: format!("{}: {e}", crate::watermark::FILE_NAME) })
    }

    fn index_runs(&self, uid: u64) -> Result<Vec<(u64, u64)>, StoreError> {
        let mut runs = Vec::new();
        for item in self.tree.scan_prefix(layout::index_prefix(uid)) {
            let (key, value) = item?;
            let first = layout::seq_of(&key[8..]).ok_or_else(|| corrupt(0, "malformed index key"))?;
            runs.push((first, layout::index_run_len(&value)));
        }
        Ok(runs)
    }

    fn names(&self, name: &str) -> Result<Vec<(u64, String)>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree.scan_prefix(layout::name_prefix(name)) {
            let (k, v) = item?;
            let uid = k.len().checked_sub(8).and_then(|at| k[at..].try_into().ok()).map(u64::from_be_bytes);
            let uid = uid.ok_or_else(|| corrupt(0, "malformed name key"))?;
            out.push((uid, String::from_utf8_lossy(&v).into_owned()));
        }
        Ok(out)
    }

    fn merkle_roots(&self, first: u64, last: u64) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut out = Vec::new();
        for item in self.tree.range(layout::merkle_key(first)..layout::merkle_key(last)) {
            let (k, v) = item?;
            let expected = first + out.len() as u64;
            match <[u8; 32]>::try_from(&v[..]) {
                Ok(root) if layout::seq_of(&k) == Some(expected) => out.push(root),
                _ => break,
            }
        }
        Ok(out)
    }

    fn merkle_root(&self, chunk: u64) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(layout::merkle_key(chunk))?.map(|v| v.to_vec()))
    }

    fn snapshot_seqs(&self) -> Result<Vec<u64>, StoreError> {
        crate::snapshots::seqs(&self.tree)
    }

    fn snapshot(&self, seq: u64) -> Result<Result<Vec<u8>, String>, StoreError> {
        crate::snapshots::read(&self.tree, seq)
    }

    fn snapshot_stream(&self, seq: u64) -> Result<Result<Box<dyn std::io::Read + '_>, String>, StoreError> {
        Ok(crate::snapshots::stream(&self.tree, seq)?.map(|s| Box::new(s) as Box<dyn std::io::Read>))
    }

    fn put_snapshot(&self, seq: u64, encoded: &[u8]) -> Result<(), StoreError> {
        // Pieces a crash or a failed write left without their piece 0 go first: finding them
        // reads one key per stored snapshot.
        crate::snapshots::remove_orphans(&self.tree)?;
        for batch in crate::snapshots::batches(seq, encoded) {
            self.tree.apply_batch(batch)?;
        }
        Ok(())
    }

    fn projection_format(&self) -> Result<Option<u8>, StoreError> {
        Ok(self.tree.get([layout::META])?.map(|v| if v.len() == 1 { v[0] } else { 0 }))
    }

    fn init_projection_format(&self) -> Result<(), StoreError> {
        self.tree.insert([layout::META], &[layout::PROJECTION_FORMAT])?;
        Ok(())
    }

    fn clear_derived(&self) -> Result<(), StoreError> {
        for prefix in [layout::SNAPSHOT, layout::OLD_SNAPSHOT, layout::INDEX, layout::NAME, layout::MERKLE] {
            for key in self.tree.scan_prefix([prefix]).keys() {
                self.tree.remove(key?)?;
            }
        }
        Ok(())
    }

    fn put_derived(&self, derived: Derived, snapshots: Vec<(u64, Vec<u8>)>, done: bool) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        SledStore::batch_derived(&mut batch, &derived);
        for (seq, encoded) in &snapshots {
            crate::snapshots::add_to_batch(&mut batch, *seq, encoded);
        }
        if done {
            batch.insert(&[layout::META], &[layout::PROJECTION_FORMAT]);
        }
        self.tree.apply_batch(batch)?;
        if done {
            self.tree.flush()?;
        }
        Ok(())
    }

    fn master_key_id(&self) -> Result<Option<u32>, StoreError> {
        match self.tree.get([layout::MASTER_KEY_ID])? {
            None => Ok(None),
            Some(v) => <[u8; 4]>::try_from(&v[..])
                .map(|id| Some(u32::from_be_bytes(id)))
                .map_err(|_| corrupt(0, "bad master key id entry")),
        }
    }

    fn init_master_key_id(&self, id: u32) -> Result<(), StoreError> {
        self.tree.insert([layout::MASTER_KEY_ID], &id.to_be_bytes())?;
        Ok(())
    }

    fn key_file(&self) -> Result<Option<KeyFile>, StoreError> {
        let mut cached = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if cached.is_none() {
            *cached = Some(KeyFile::read(&self.path)?);
        }
        Ok(cached.clone().flatten())
    }

    fn put_data_keys(&self, keys: &[(u64, WrappedKey)]) -> Result<(), StoreError> {
        let Some((_, first)) = keys.first() else { return Ok(()) };
        let mut cached = self.keys.lock().unwrap_or_else(|e| e.into_inner());
        if cached.is_none() {
            *cached = Some(KeyFile::read(&self.path)?);
        }
        let file = cached
            .as_mut()
            .expect("read above")
            .get_or_insert_with(|| KeyFile { master_key_id: first.master_key_id, keys: Default::default() });
        file.keys.extend(keys.iter().cloned());
        if let Err(e) = file.add(&self.path, keys) {
            // What is on disk is not known now (perhaps a torn entry): read again when asked.
            // The failed append stops writes; the next start cuts a torn entry off.
            *cached = None;
            return Err(e);
        }
        Ok(())
    }

    fn replace_data_keys(&self, file: &KeyFile) -> Result<(), StoreError> {
        self.write_keys(file.clone(), |_| {})
    }

    fn delete_data_keys(&self, uids: &[u64]) -> Result<(), StoreError> {
        let Some(file) = self.key_file()? else { return Ok(()) };
        self.write_keys(file, |f| {
            for uid in uids {
                f.keys.remove(uid);
            }
        })
    }

    fn legacy_keys(&self) -> Result<Vec<(u64, WrappedKey)>, StoreError> {
        let damaged = |reason: String| StoreError::Damaged { reason };
        self.tree
            .scan_prefix([layout::KEY])
            .map(|item| {
                let (k, v) = item?;
                let uid = layout::seq_of(&k).ok_or_else(|| damaged("bad key-store key in sled".into()))?;
                let wrapped = codec::decode(&v).map_err(|e| damaged(format!("key store entry {uid}: {e}")))?;
                Ok((uid, wrapped))
            })
            .collect()
    }

    fn drop_legacy_keys(&self, uids: &[u64]) -> Result<(), StoreError> {
        let mut batch = sled::Batch::default();
        for uid in uids {
            batch.remove(&layout::key_key(*uid));
        }
        self.tree.apply_batch(batch)?;
        self.tree.flush()?;
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
