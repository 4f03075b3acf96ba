//! The `Ledger` handle: open, reads, writes through the writer thread, close.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use ledger_core::codec::{self, decode_record};
use ledger_core::crypto::{open_value, DataKeys, KeyLookup, MasterKey};
use ledger_core::limits::DAY_MS;
use ledger_core::query::{self, ValueLocation};
use ledger_core::{evolve, ChainHash, Command, Reply, Scope, SecretValue, SmError, State};

use crate::error::StoreError;
use crate::layout;
use crate::writer::{Job, Writer};

/// Milliseconds since the Unix epoch. Injected so tests decide time.
pub trait Clock: Send + Sync {
    fn now_ms(&self) -> i64;
}

#[derive(Debug, Default)]
pub struct SystemClock;

impl SystemClock {
    /// Milliseconds since the Unix epoch now (0 before 1970, saturating far ahead).
    pub fn now_ms() -> i64 {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        i64::try_from(now.as_millis()).unwrap_or(i64::MAX)
    }
}

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        SystemClock::now_ms()
    }
}

/// A clock tests move by hand.
#[derive(Debug, Default)]
pub struct ManualClock(AtomicI64);

impl ManualClock {
    pub fn new(now_ms: i64) -> ManualClock {
        ManualClock(AtomicI64::new(now_ms))
    }

    pub fn set(&self, now_ms: i64) {
        self.0.store(now_ms, Ordering::SeqCst);
    }

    pub fn advance(&self, delta_ms: i64) {
        self.0.fetch_add(delta_ms, Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

#[derive(Clone)]
pub struct LedgerOptions {
    pub clock: Arc<dyn Clock>,
    /// Seeds the writer's RNG (nonces, data keys, ARN suffixes) for reproducible tests; `None`
    /// seeds from the OS. Honoured only with the `test-rng` feature: otherwise `open` refuses
    /// a seed, so no service build can run on a predictable RNG.
    pub rng_seed: Option<[u8; 32]>,
    /// A projection snapshot is written each time the head crosses a multiple of this.
    pub snapshot_every: u64,
    /// Most requests one group commit takes.
    pub group_max: usize,
    /// sled's page cache. Reads of values go to the log's records, so this bounds memory, not
    /// correctness.
    pub cache_bytes: u64,
    /// Injected storage failures, for tests of the failure paths (`None` in service).
    pub faults: Option<Arc<crate::faults::FaultPlan>>,
    /// Skip `flush` + `fdatasync` (benchmarks of the non-durable path only; never in service).
    pub unsafe_no_sync: bool,
    /// Told about every durable group commit (the server's metrics).
    pub observer: Option<Arc<dyn CommitObserver>>,
}

/// Sees every group commit that became durable, on the writer thread: keep it cheap.
pub trait CommitObserver: Send + Sync {
    /// `requests` requests appending `events` events were made durable; `sync` is the time the
    /// durable write took (sled's batch, flush and `fdatasync`).
    fn group_committed(&self, requests: usize, events: usize, sync: std::time::Duration);
}

impl Default for LedgerOptions {
    fn default() -> LedgerOptions {
        LedgerOptions {
            clock: Arc::new(SystemClock),
            rng_seed: None,
            snapshot_every: 100_000,
            group_max: 512,
            cache_bytes: 256 << 20,
            faults: None,
            unsafe_no_sync: false,
            observer: None,
        }
    }
}

impl std::fmt::Debug for LedgerOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LedgerOptions")
            .field("snapshot_every", &self.snapshot_every)
            .field("group_max", &self.group_max)
            .finish_non_exhaustive()
    }
}

/// Who asks, where, under which request id.
#[derive(Clone, Debug)]
pub struct RequestMeta {
    pub scope: Scope,
    pub actor: String,
    pub request_id: String,
}

impl RequestMeta {
    /// An in-process caller: actor `local`, a fresh request id.
    pub fn local(scope: Scope) -> RequestMeta {
        RequestMeta { scope, actor: "local".to_string(), request_id: uuid::Uuid::new_v4().to_string() }
    }
}

/// What the readers see: only durable state.
pub(crate) struct ReadView {
    pub state: State,
    pub keys: DataKeys,
    pub head_seq: u64,
    pub head_hash: ChainHash,
}

pub(crate) struct Shared {
    pub tree: sled::Tree,
    pub read: RwLock<ReadView>,
    pub path: PathBuf,
    /// Why writes stopped (a failed group commit), if they did.
    pub stopped: std::sync::Mutex<Option<String>>,
}

/// A value read back: where it lives and its plaintext.
#[derive(Debug)]
pub struct SecretValueOut {
    pub location: ValueLocation,
    pub value: SecretValue,
}

/// BatchGetSecretValue's answer: the values that opened, per-secret errors, the next page.
#[derive(Debug)]
pub struct BatchValues {
    pub values: Vec<SecretValueOut>,
    pub errors: Vec<query::BatchError>,
    pub next_token: Option<String>,
}

pub struct Ledger {
    shared: Arc<Shared>,
    db: sled::Db,
    jobs: Option<mpsc::Sender<Job>>,
    writer: Option<JoinHandle<()>>,
    clock: Arc<dyn Clock>,
    /// The UTC day and the (secret, version) reads already sent to the writer for it, so a
    /// version read a thousand times a day asks for its `SecretAccessed` once.
    accessed: std::sync::Mutex<(i64, std::collections::HashSet<(u64, String)>)>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("path", &self.shared.path).finish_non_exhaustive()
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

/// sled page cache for offline readers (verify, audit commands): they stream, so a small cache
/// keeps memory flat as the log grows.
pub(crate) const STREAMING_CACHE_BYTES: u64 = 32 << 20;

/// Opens sled. sled's background I/O threads may hold the file lock for a moment after the
/// previous handle in this process was dropped, so a lock conflict is retried for up to three
/// seconds before it is reported as "in use".
pub(crate) fn open_db(path: &Path, cache_bytes: u64) -> Result<sled::Db, StoreError> {
    std::fs::create_dir_all(path)?;
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

pub(crate) fn read_head(tree: &sled::Tree) -> Result<(u64, ChainHash), StoreError> {
    match tree.get([layout::HEAD])? {
        None => Ok((0, ChainHash::GENESIS)),
        Some(v) if v.len() == 40 => {
            let seq = u64::from_be_bytes(v[..8].try_into().expect("8 bytes"));
            Ok((seq, ChainHash(v[8..].try_into().expect("32 bytes"))))
        }
        Some(_) => Err(StoreError::Corrupt { seq: 0, reason: "head record has the wrong length".into() }),
    }
}

/// Digest of a projection: blake3 of its canonical encoding.
pub(crate) fn state_digest(encoded: &[u8]) -> [u8; 32] {
    ledger_core::chain::snapshot_digest(encoded)
}

/// Rebuilds the projection: newest snapshot, then the records after it, each checked against
/// the chain and the rules.
pub(crate) fn load_state(tree: &sled::Tree) -> Result<(State, u64, ChainHash), StoreError> {
    let (head_seq, head_hash) = read_head(tree)?;
    let (snap_seq, mut state) = crate::snapshots::newest_at_or_below(tree, head_seq)?;
    let mut prev_hash = if snap_seq == 0 {
        ChainHash::GENESIS
    } else {
        let bytes = tree
            .get(layout::event_key(snap_seq))?
            .ok_or(StoreError::Corrupt { seq: snap_seq, reason: "record missing".into() })?;
        codec::decode_header(&bytes).map_err(|e| StoreError::Corrupt { seq: snap_seq, reason: e.to_string() })?.0.hash
    };
    let mut expected = snap_seq + 1;
    for item in tree.range(layout::event_key(expected)..=layout::event_key(head_seq)) {
        let (k, v) = item?;
        let seq = layout::seq_of(&k).unwrap_or(0);
        let corrupt = |reason: String| StoreError::Corrupt { seq: expected, reason };
        if seq != expected {
            return Err(corrupt(format!("gap: found seq {seq}")));
        }
        if !codec::verify_record_hash(&v).map_err(|e| corrupt(e.to_string()))? {
            return Err(corrupt("hash does not match the record".into()));
        }
        let record = decode_record(&v).map_err(|e| corrupt(e.to_string()))?;
        if record.prev_hash != prev_hash || record.seq != seq {
            return Err(corrupt("chain link broken".into()));
        }
        evolve(&mut state, seq, record.recorded_at_ms, &record.event).map_err(|e| corrupt(e.to_string()))?;
        prev_hash = record.hash;
        expected += 1;
    }
    if expected != head_seq + 1 || prev_hash != head_hash {
        return Err(StoreError::Corrupt { seq: expected, reason: "log ends before its head".into() });
    }
    if tree.get(layout::event_key(head_seq + 1))?.is_some() {
        return Err(StoreError::Corrupt { seq: head_seq + 1, reason: "record beyond the head".into() });
    }
    Ok((state, head_seq, head_hash))
}

impl Ledger {
    /// Opens (or creates) the ledger in `path`. Rebuilds the projection from the newest snapshot
    /// and the log after it, checking chain and rules on the way.
    pub fn open(path: &Path, master: MasterKey, options: LedgerOptions) -> Result<Ledger, StoreError> {
        // sled 0.34 panics on some damaged files instead of returning an error; a damaged data
        // dir must be a typed error here, never a crash of the embedding process.
        guard_engine(|| Ledger::open_unguarded(path, master, options))
    }

    fn open_unguarded(path: &Path, master: MasterKey, options: LedgerOptions) -> Result<Ledger, StoreError> {
        let db = open_db(path, options.cache_bytes)?;
        let tree: sled::Tree = (*db).clone();
        match tree.get([layout::META])? {
            None => {
                tree.insert([layout::META], &[layout::PROJECTION_FORMAT])?;
            }
            Some(format) if format[..] != [layout::PROJECTION_FORMAT] => {
                // Written by an older build: its snapshots encode an older projection.
                tracing::info!(path = %path.display(), "upgrading the derived data to this build's projection format");
                crate::audit::rebuild_derived(&tree, options.snapshot_every, &mut |_, _| {})?;
            }
            Some(_) => {}
        }
        let (state, head_seq, head_hash) = load_state(&tree)?;
        crate::watermark::check(path, &tree, head_seq)?;
        let (key_file, keys) = crate::keyfile::load(path, &tree, &master, &state)?;
        let writer_keys = keys.clone();
        // The key file unwraps under `master`; if the log last recorded an older key, a
        // rotation finished on disk and is recorded below, once the writer runs.
        let master_id = master.id;
        let rotated_from = match tree.get([layout::MASTER_KEY_ID])? {
            None => {
                tree.insert([layout::MASTER_KEY_ID], &master_id.to_be_bytes())?;
                None
            }
            Some(v) => {
                let recorded = <[u8; 4]>::try_from(&v[..])
                    .map(u32::from_be_bytes)
                    .map_err(|_| StoreError::Corrupt { seq: 0, reason: "bad master key id entry".into() })?;
                match recorded.cmp(&master_id) {
                    std::cmp::Ordering::Equal => None,
                    std::cmp::Ordering::Less => Some(recorded),
                    std::cmp::Ordering::Greater => {
                        return Err(StoreError::Corrupt {
                            seq: 0,
                            reason: format!(
                                "the log recorded master key {recorded}, but the data keys are wrapped by the older key {master_id}: the key file is from an older backup"
                            ),
                        })
                    }
                }
            }
        };
        let shared = Arc::new(Shared {
            tree: tree.clone(),
            read: RwLock::new(ReadView { state: state.clone(), keys, head_seq, head_hash }),
            path: path.to_path_buf(),
            stopped: std::sync::Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel();
        let clock = options.clock.clone();
        let writer = Writer::new(
            shared.clone(),
            db.clone(),
            master,
            options,
            state,
            (writer_keys, key_file),
            head_seq,
            head_hash,
        )?;
        let handle = std::thread::Builder::new().name("ledger-writer".into()).spawn(move || writer.run(rx))?;
        let ledger = Ledger {
            shared,
            db,
            jobs: Some(tx),
            writer: Some(handle),
            clock,
            accessed: std::sync::Mutex::new((i64::MIN, Default::default())),
        };
        if let Some(from_key_id) = rotated_from {
            let cmd = Command::RecordMasterKeyRotation { from_key_id, to_key_id: master_id };
            let meta = RequestMeta::local(Scope::new("", ""));
            let reply = ledger.submit(cmd, &meta)?;
            // Waited for on a thread of its own: open may run inside an async runtime.
            let outcome = std::thread::scope(|s| s.spawn(|| reply.blocking_recv()).join())
                .map_err(|_| StoreError::Closed)?
                .map_err(|_| StoreError::Closed)??;
            if let Err(e) = outcome {
                return Err(StoreError::Corrupt { seq: 0, reason: format!("recording the master key rotation: {e}") });
            }
            tracing::info!(from_key_id, to_key_id = master_id, "master key rotation recorded");
        }
        Ok(ledger)
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// Why writes are stopped (a group commit failed: a full disk, an I/O error), or `None`
    /// while the log is writable. Reads keep working either way.
    pub fn writes_stopped(&self) -> Option<String> {
        self.shared.stopped.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The durable head: seq of the last acknowledged event.
    pub fn head_seq(&self) -> u64 {
        self.shared.read.read().unwrap_or_else(|e| e.into_inner()).head_seq
    }

    /// The ledger's clock (the time its events are recorded at).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    fn submit(
        &self,
        cmd: Command,
        meta: &RequestMeta,
    ) -> Result<tokio::sync::oneshot::Receiver<crate::writer::Outcome>, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let job = Job { cmd, meta: meta.clone(), reply: Some(tx) };
        self.jobs.as_ref().ok_or(StoreError::Closed)?.send(job).map_err(|_| StoreError::Closed)?;
        Ok(rx)
    }

    /// Decides and appends a write; returns once its events are durable (or it was refused).
    pub fn execute(&self, cmd: Command, meta: &RequestMeta) -> Result<Result<Reply, SmError>, StoreError> {
        self.submit(cmd, meta)?.blocking_recv().map_err(|_| StoreError::Closed)?
    }

    /// [`Ledger::execute`] for async callers.
    pub async fn execute_async(&self, cmd: Command, meta: &RequestMeta) -> Result<Result<Reply, SmError>, StoreError> {
        self.submit(cmd, meta)?.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on the durable projection.
    pub fn with_state<T>(&self, f: impl FnOnce(&State) -> T) -> T {
        let view = self.shared.read.read().unwrap_or_else(|e| e.into_inner());
        f(&view.state)
    }

    /// Head of the durable log: (seq, hash).
    pub fn head(&self) -> (u64, ChainHash) {
        let view = self.shared.read.read().unwrap_or_else(|e| e.into_inner());
        (view.head_seq, view.head_hash)
    }

    /// GetSecretValue by an in-process caller (actor `local`); see [`Ledger::get_secret_value_for`].
    pub fn get_secret_value(
        &self,
        scope: &Scope,
        q: &query::GetSecretValue,
    ) -> Result<Result<SecretValueOut, SmError>, StoreError> {
        self.get_secret_value_for(&RequestMeta::local(scope.clone()), q)
    }

    /// GetSecretValue: locates the version in the projection, then reads and opens its record.
    /// The first read of a version on a UTC day also asks the writer for a `SecretAccessed`
    /// event (by `meta`'s actor), without waiting for it.
    pub fn get_secret_value_for(
        &self,
        meta: &RequestMeta,
        q: &query::GetSecretValue,
    ) -> Result<Result<SecretValueOut, SmError>, StoreError> {
        let (location, key, last_day) = {
            let view = self.shared.read.read().unwrap_or_else(|e| e.into_inner());
            match query::get_secret_value(&view.state, &meta.scope, q) {
                Ok(loc) => {
                    let key = view.keys.data_key(loc.secret).cloned();
                    let last_day = last_access(&view.state, &loc);
                    (loc, key, last_day)
                }
                Err(e) => return Ok(Err(e)),
            }
        };
        let out = self.open_location(location, key)?;
        if let Ok(read) = &out {
            self.note_access(meta, &read.location, last_day);
        }
        Ok(out)
    }

    /// Sends a `RecordAccess` to the writer unless this version's read of today was recorded
    /// or already sent. Never blocks and never fails the read: a lost one costs a date.
    fn note_access(&self, meta: &RequestMeta, location: &ValueLocation, last_day: Option<i64>) {
        let day = self.clock.now_ms().div_euclid(DAY_MS) * DAY_MS;
        if last_day.is_some_and(|d| d >= day) {
            return;
        }
        let mut sent = self.accessed.lock().unwrap_or_else(|e| e.into_inner());
        if sent.0 != day {
            *sent = (day, Default::default());
        }
        if !sent.1.insert((location.secret.0, location.version_id.clone())) {
            return;
        }
        drop(sent);
        let cmd =
            Command::RecordAccess { secret: location.secret, version_id: location.version_id.clone(), day_ms: day };
        if let Some(jobs) = &self.jobs {
            let _ = jobs.send(Job { cmd, meta: meta.clone(), reply: None });
        }
    }

    fn open_location(
        &self,
        location: ValueLocation,
        key: Option<ledger_core::crypto::DataKey>,
    ) -> Result<Result<SecretValueOut, SmError>, StoreError> {
        let Some(key) = key else { return Ok(Err(SmError::Decryption)) };
        let bytes = self
            .shared
            .tree
            .get(layout::event_key(location.seq))?
            .ok_or(StoreError::Corrupt { seq: location.seq, reason: "record of a live version is missing".into() })?;
        let record =
            decode_record(&bytes).map_err(|e| StoreError::Corrupt { seq: location.seq, reason: e.to_string() })?;
        let Some(value) = record.event.sealed_value() else {
            return Err(StoreError::Corrupt { seq: location.seq, reason: "not a record with a value".into() });
        };
        match open_value(&key, location.secret, &location.version_id, value) {
            Some(value) => Ok(Ok(SecretValueOut { location, value })),
            None => Ok(Err(SmError::Decryption)),
        }
    }

    /// BatchGetSecretValue by an in-process caller; see [`Ledger::batch_get_secret_value_for`].
    pub fn batch_get_secret_value(
        &self,
        scope: &Scope,
        q: &query::BatchGetSecretValue,
    ) -> Result<Result<BatchValues, SmError>, StoreError> {
        self.batch_get_secret_value_for(&RequestMeta::local(scope.clone()), q)
    }

    /// BatchGetSecretValue: values that open, and per-secret errors; reads are noted as by
    /// [`Ledger::get_secret_value_for`].
    pub fn batch_get_secret_value_for(
        &self,
        meta: &RequestMeta,
        q: &query::BatchGetSecretValue,
    ) -> Result<Result<BatchValues, SmError>, StoreError> {
        let (located, keys, last_days) = {
            let view = self.shared.read.read().unwrap_or_else(|e| e.into_inner());
            match query::batch_get_secret_value(&view.state, &meta.scope, q) {
                Ok(b) => {
                    let keys: Vec<_> = b.values.iter().map(|l| view.keys.data_key(l.secret).cloned()).collect();
                    let days: Vec<_> = b.values.iter().map(|l| last_access(&view.state, l)).collect();
                    (b, keys, days)
                }
                Err(e) => return Ok(Err(e)),
            }
        };
        let mut values = Vec::new();
        let mut errors = located.errors;
        for ((location, key), last_day) in located.values.into_iter().zip(keys).zip(last_days) {
            let secret_id = location.arn.clone();
            match self.open_location(location, key)? {
                Ok(v) => {
                    self.note_access(meta, &v.location, last_day);
                    values.push(v);
                }
                Err(error) => errors.push(query::BatchError { secret_id, error }),
            }
        }
        Ok(Ok(BatchValues { values, errors, next_token: located.next_token }))
    }

    pub fn describe_secret(&self, scope: &Scope, secret_id: &str) -> Result<query::SecretDescription, SmError> {
        self.with_state(|s| query::describe_secret(s, scope, secret_id))
    }

    pub fn list_secret_version_ids(
        &self,
        scope: &Scope,
        q: &query::ListSecretVersionIds,
    ) -> Result<query::VersionList, SmError> {
        self.with_state(|s| query::list_secret_version_ids(s, scope, q))
    }

    pub fn list_secrets(&self, scope: &Scope, q: &query::ListSecrets) -> Result<query::SecretList, SmError> {
        self.with_state(|s| query::list_secrets(s, scope, q))
    }

    /// Verifies the whole log of this open ledger (see [`crate::verify_dir`]).
    pub fn verify(
        &self,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<Result<crate::VerifyReport, crate::VerifyFailure>, StoreError> {
        crate::verify::verify_tree_upto(&self.shared.tree, self.head(), progress)
    }

    /// Stops the writer after the requests already queued, flushes and closes the database.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StoreError> {
        drop(self.jobs.take());
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
        self.db.flush()?;
        Ok(())
    }

    /// The raw sled tree, for tools and tests that work below the ledger (tampering tests).
    pub fn raw_tree(&self) -> &sled::Tree {
        &self.shared.tree
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The last day a located version was read, as the projection knows it.
fn last_access(state: &State, location: &ValueLocation) -> Option<i64> {
    state.secret(location.secret)?.versions.get(&location.version_id)?.last_accessed_day_ms
}
