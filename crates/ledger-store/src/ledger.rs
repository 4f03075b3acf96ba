//! The `Ledger` handle: open, reads, writes through the writer thread, close.

use std::path::Path;
use std::sync::mpsc;
use std::sync::{Arc, RwLock};
use std::thread::JoinHandle;

use ledger_core::codec::decode_record;
use ledger_core::crypto::{open_value, DataKeys, KeyLookup, MasterKey};
use ledger_core::limits::DAY_MS;
use ledger_core::query::{self, ValueLocation};
use ledger_core::{ChainHash, Command, Reply, Scope, SecretUid, SecretValue, SmError, State};

use crate::error::StoreError;
use crate::keyfile::KeyFile;
use crate::options::{Clock, LedgerOptions, RequestMeta};
use crate::replay::newest_snapshot_at_or_below;
use crate::sled_store::{guard_engine, SledOptions, SledStore};
use crate::store::{Head, LogStore};
use crate::view::{ReadView, Shared};
use crate::writer::{Job, Msg, Writer};

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
    /// To the writer; taken (closing the channel) on close. The store's wake-ups hold it weakly.
    jobs: Arc<RwLock<Option<mpsc::Sender<Msg>>>>,
    writer: Option<JoinHandle<()>>,
    clock: Arc<dyn Clock>,
    /// The UTC day and the (secret, version) reads already sent to the writer for it, so a
    /// version read a thousand times a day asks for its `SecretAccessed` once.
    accessed: std::sync::Mutex<(i64, std::collections::HashSet<(u64, String)>)>,
    /// Sealed values of recently read versions, so a hot secret is not read and decoded again.
    sealed: crate::sealed_cache::SealedCache,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger").field("store", &self.shared.store).finish_non_exhaustive()
    }
}

/// Rebuilds the projection: newest snapshot, then the records after it, each checked against
/// the chain and the rules.
pub(crate) fn load_state(store: &dyn LogStore) -> Result<(State, Head), StoreError> {
    let head = store.head()?;
    let (snap_seq, state) = newest_snapshot_at_or_below(store, head.0)?;
    let state = crate::replay::Replay::after(store, snap_seq, state)?.run_to(store, head)?;
    // Other writers of a shared store may have appended since the head was read: records
    // beyond it are theirs, not damage (the head commits with its records there).
    if !store.shared() {
        if let Some(seq) = store.first_record_above(head.0)? {
            return Err(StoreError::Corrupt { seq, reason: "record beyond the head".into() });
        }
    }
    Ok((state, head))
}

impl Ledger {
    /// Opens (or creates) the ledger in the sled data dir `path`. Rebuilds the projection from
    /// the newest snapshot and the log after it, checking chain and rules on the way.
    pub fn open(path: &Path, master: MasterKey, options: LedgerOptions) -> Result<Ledger, StoreError> {
        let sled_options = SledOptions {
            cache_bytes: options.cache_bytes,
            faults: options.faults.clone(),
            unsafe_no_sync: options.unsafe_no_sync,
        };
        let store = SledStore::open(path, sled_options)?;
        Ledger::open_store(Arc::new(store), master, options)
    }

    /// Opens the ledger on any [`LogStore`].
    pub fn open_store(
        store: Arc<dyn LogStore>,
        master: MasterKey,
        options: LedgerOptions,
    ) -> Result<Ledger, StoreError> {
        // sled 0.34 panics on some damaged files instead of returning an error; a damaged data
        // dir must be a typed error here, never a crash of the embedding process.
        guard_engine(|| Ledger::open_unguarded(store, master, options))
    }

    fn open_unguarded(
        store: Arc<dyn LogStore>,
        master: MasterKey,
        options: LedgerOptions,
    ) -> Result<Ledger, StoreError> {
        match store.projection_format()? {
            None => store.init_projection_format()?,
            Some(format) if format != crate::layout::PROJECTION_FORMAT && store.shared() => {
                return Err(StoreError::Engine(format!(
                    "the derived data in {} is of projection format {format}, this build writes {}: stop every \
                     server, run `secret-ledger rebuild --database-url …`, then start them with this build",
                    store.location(),
                    crate::layout::PROJECTION_FORMAT
                )));
            }
            Some(format) if format != crate::layout::PROJECTION_FORMAT => {
                // Written by an older build: its snapshots encode an older projection.
                tracing::info!(store = ?store, "upgrading the derived data to this build's projection format");
                crate::rebuild::rebuild_derived(&*store, options.snapshot_every, &mut |_, _| {})?;
            }
            Some(_) => {}
        }
        let (state, head) = load_state(&*store)?;
        if !store.shared() {
            crate::watermark::check(&*store, head.0)?;
        }
        let keys = load_keys(&*store, &master, &state)?;
        let writer_keys = keys.clone();
        // The key file unwraps under `master`; if the log last recorded an older key, a
        // rotation finished on disk and is recorded below, once the writer runs.
        let rotated_from = rotated_from(&*store, master.id)?;
        let master_id = master.id;
        let shared = Arc::new(Shared {
            store,
            read: RwLock::new(ReadView { state: state.clone(), keys, head_seq: head.0, head_hash: head.1 }),
            stopped: std::sync::Mutex::new(None),
        });
        let (tx, rx) = mpsc::channel();
        let clock = options.clock.clone();
        let writer = Writer::new(shared.clone(), master, options, state, writer_keys, head)?;
        let handle = std::thread::Builder::new().name("ledger-writer".into()).spawn(move || writer.run(rx))?;
        let jobs = Arc::new(RwLock::new(Some(tx)));
        let weak = Arc::downgrade(&jobs);
        shared.store.on_append(Box::new(move || {
            if let Some(jobs) = weak.upgrade() {
                if let Some(tx) = &*jobs.read().unwrap_or_else(|e| e.into_inner()) {
                    let _ = tx.send(Msg::Follow);
                }
            }
        }));
        let ledger = Ledger {
            shared,
            jobs,
            writer: Some(handle),
            clock,
            accessed: std::sync::Mutex::new((i64::MIN, Default::default())),
            sealed: Default::default(),
        };
        if let Some(from_key_id) = rotated_from {
            ledger.record_rotation(from_key_id, master_id)?;
        }
        Ok(ledger)
    }

    fn record_rotation(&self, from_key_id: u32, to_key_id: u32) -> Result<(), StoreError> {
        let cmd = Command::RecordMasterKeyRotation { from_key_id, to_key_id };
        let meta = RequestMeta::local(Scope::new("", ""));
        let reply = self.submit(cmd, &meta)?;
        // Waited for on a thread of its own: open may run inside an async runtime.
        let outcome = std::thread::scope(|s| s.spawn(|| reply.blocking_recv()).join())
            .map_err(|_| StoreError::Closed)?
            .map_err(|_| StoreError::Closed)??;
        if let Err(e) = outcome {
            return Err(StoreError::Corrupt { seq: 0, reason: format!("recording the master key rotation: {e}") });
        }
        tracing::info!(from_key_id, to_key_id, "master key rotation recorded");
        Ok(())
    }

    /// Whether this ledger runs background work (see [`LogStore::is_leader`]).
    pub fn is_leader(&self) -> bool {
        self.shared.store.is_leader()
    }

    /// The store the ledger reads and appends through.
    pub fn store(&self) -> &dyn LogStore {
        &*self.shared.store
    }

    /// [`Ledger::store`] to keep, e.g. for a blocking task.
    pub fn store_handle(&self) -> Arc<dyn LogStore> {
        self.shared.store.clone()
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
        let jobs = self.jobs.read().unwrap_or_else(|e| e.into_inner());
        jobs.as_ref().ok_or(StoreError::Closed)?.send(Msg::Job(job)).map_err(|_| StoreError::Closed)?;
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
        if let Some(jobs) = &*self.jobs.read().unwrap_or_else(|e| e.into_inner()) {
            let _ = jobs.send(Msg::Job(Job { cmd, meta: meta.clone(), reply: None }));
        }
    }

    fn open_location(
        &self,
        location: ValueLocation,
        key: Option<ledger_core::crypto::DataKey>,
    ) -> Result<Result<SecretValueOut, SmError>, StoreError> {
        let Some(key) = key else { return Ok(Err(SmError::Decryption)) };
        let value = match self.sealed.get(location.seq) {
            Some(value) => value,
            None => {
                let value = Arc::new(self.read_sealed(location.seq)?);
                self.sealed.insert(location.seq, value.clone());
                value
            }
        };
        match open_value(&key, location.secret, &location.version_id, &value) {
            Some(value) => Ok(Ok(SecretValueOut { location, value })),
            None => Ok(Err(SmError::Decryption)),
        }
    }

    /// The sealed value in the record at `seq`.
    fn read_sealed(&self, seq: u64) -> Result<ledger_core::SealedValue, StoreError> {
        let missing = || StoreError::Corrupt { seq, reason: "record of a live version is missing".into() };
        let bytes = self.shared.store.record(seq)?.ok_or_else(missing)?;
        let record = decode_record(&bytes).map_err(|e| StoreError::Corrupt { seq, reason: e.to_string() })?;
        record
            .event
            .into_sealed_value()
            .ok_or_else(|| StoreError::Corrupt { seq, reason: "not a record with a value".into() })
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
        self.wait_for_snapshot();
        crate::verify::verify_store_upto(&*self.shared.store, self.head(), progress)
    }

    /// Waits until the projection snapshot the writer is storing in the background, if any, is
    /// stored, so that a verify right after a write checks it too.
    fn wait_for_snapshot(&self) {
        let (done, wait) = mpsc::sync_channel(1);
        let sent = match &*self.jobs.read().unwrap_or_else(|e| e.into_inner()) {
            Some(jobs) => jobs.send(Msg::Snapshots(done)).is_ok(),
            None => false,
        };
        if sent {
            let _ = wait.recv_timeout(std::time::Duration::from_secs(60));
        }
    }

    /// Stops the writer after the requests already queued, flushes and closes the database.
    pub fn close(mut self) -> Result<(), StoreError> {
        self.shutdown()
    }

    fn shutdown(&mut self) -> Result<(), StoreError> {
        drop(self.jobs.write().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(handle) = self.writer.take() {
            let _ = handle.join();
        }
        self.shared.store.flush()
    }
}

impl Drop for Ledger {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

/// The master key id the log last recorded, if it is older than `master_id` (a rotation finished
/// on disk and is yet to be recorded). Creates the entry in a new store; refuses a key file older
/// than the log.
fn rotated_from(store: &dyn LogStore, master_id: u32) -> Result<Option<u32>, StoreError> {
    let Some(recorded) = store.master_key_id()? else {
        store.init_master_key_id(master_id)?;
        return Ok(None);
    };
    match recorded.cmp(&master_id) {
        std::cmp::Ordering::Equal => Ok(None),
        std::cmp::Ordering::Less => Ok(Some(recorded)),
        std::cmp::Ordering::Greater => Err(StoreError::Corrupt {
            seq: 0,
            reason: format!(
                "the log recorded master key {recorded}, but the data keys are wrapped by the older key {master_id}: the key file is from an older backup"
            ),
        }),
    }
}

/// The last day a located version was read, as the projection knows it.
fn last_access(state: &State, location: &ValueLocation) -> Option<i64> {
    state.secret(location.secret)?.versions.get(&location.version_id)?.last_accessed_day_ms
}
/// The data keys of a ledger whose projection is `state`, unwrapped. Keys of an older data dir
/// move out of sled first (they lived in its `k` key space). A live secret without a key (a
/// deleted or replaced key file) is refused before anything changes: its values could never be
/// read again, and carrying on would hide that. Keys of secrets that are gone (below the next
/// uid and not live: purged, or never durably created) are destroyed; a key above the next uid
/// belongs to a secret another writer of a shared store is creating, and is kept.
fn load_keys(store: &dyn LogStore, master: &MasterKey, state: &State) -> Result<DataKeys, StoreError> {
    let legacy = store.legacy_keys()?;
    let stored = store.key_file()?;
    let had_file = stored.is_some();
    let file = stored.unwrap_or_else(|| KeyFile { master_key_id: master.id, keys: legacy.iter().cloned().collect() });
    let missing = state.secrets().filter(|s| !file.keys.contains_key(&s.uid.0)).count();
    if missing > 0 && store.shared() {
        // Purged by another writer since the state was read, most likely; a key that is truly
        // gone shows as a decryption error on read.
        tracing::warn!(missing, "live secrets without a data key at open; another server may have purged them");
    } else if missing > 0 {
        let reason = format!(
            "data key file: {missing} live secret(s) have no data key in the key file of {}; restore it from the same \
             backup as the log",
            store.location()
        );
        return Err(StoreError::Corrupt { seq: 0, reason });
    }
    // Unwrapped before anything changes: a wrong master key changes nothing.
    let mut keys = file.unwrap_all(master)?;
    if !legacy.is_empty() && !had_file {
        tracing::info!(store = %store.location(), keys = legacy.len(), "moving the data keys out of sled into their own file");
        store.put_data_keys(&legacy)?;
    }
    let next = state.next_uid().0;
    let gone: Vec<u64> =
        file.keys.keys().copied().filter(|&uid| uid < next && state.secret(SecretUid(uid)).is_none()).collect();
    if !gone.is_empty() {
        tracing::info!(dropped = gone.len(), "data keys of secrets that are gone removed");
        store.delete_data_keys(&gone)?;
        for uid in &gone {
            keys.remove(SecretUid(*uid));
        }
    }
    if !legacy.is_empty() {
        store.drop_legacy_keys(&legacy.iter().map(|(uid, _)| *uid).collect::<Vec<_>>())?;
        tracing::warn!(
            store = %store.location(),
            "this data dir was written by the first layout, which kept the data keys inside sled's files: sled may \
             keep old copies of them (keys of secrets purged before this upgrade included) until it reclaims those \
             pages. For a data dir where a purge destroys the key on disk, copy it with the server stopped: \
             secret-ledger migrate --from-data-dir OLD --to-data-dir NEW, then use NEW"
        );
    }
    Ok(keys)
}
