//! The single writer: decide, append a group atomically, make it durable, publish, answer.

use std::collections::HashSet;
use std::fs::File;
use std::path::PathBuf;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use ledger_core::codec::{self, seal_record};
use ledger_core::crypto::{wrap_key, DataKeys, MasterKey};
use ledger_core::{decide, evolve, ChainHash, Command, Ctx, Event, Record, Reply, SmError, State};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::error::StoreError;
use crate::faults::FaultStep;
use crate::layout;
use crate::ledger::{LedgerOptions, RequestMeta, Shared};

pub(crate) type Outcome = Result<Result<Reply, SmError>, StoreError>;

pub(crate) struct Job {
    pub cmd: Command,
    pub meta: RequestMeta,
    pub reply: Option<tokio::sync::oneshot::Sender<Outcome>>,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
    db: sled::Db,
    master: MasterKey,
    options: LedgerOptions,
    state: State,
    keys: DataKeys,
    /// The wrapped keys, as in the data-key file (see [`crate::keyfile`]).
    key_file: crate::keyfile::KeyFile,
    head_seq: u64,
    head_hash: ChainHash,
    last_time_ms: i64,
    rng: ChaCha20Rng,
    data_file: File,
    blobs_dir: PathBuf,
    synced_blobs: HashSet<std::ffi::OsString>,
    watermark: crate::watermark::Watermark,
    /// Leaves of the Merkle chunk in progress; a completed chunk's root goes into the batch.
    chunk: ledger_core::merkle::MerkleBuilder,
    /// Why writes stopped, after a failed group commit.
    poisoned: Option<String>,
}

/// One decided request of a group, waiting for the group's flush.
struct Pending {
    reply: Option<tokio::sync::oneshot::Sender<Outcome>>,
    answer: Result<Reply, SmError>,
}

impl Writer {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        shared: Arc<Shared>,
        db: sled::Db,
        master: MasterKey,
        options: LedgerOptions,
        state: State,
        (keys, key_file): (DataKeys, crate::keyfile::KeyFile),
        head_seq: u64,
        head_hash: ChainHash,
    ) -> Result<Writer, StoreError> {
        let rng = match options.rng_seed {
            #[cfg(feature = "test-rng")]
            Some(seed) => ChaCha20Rng::from_seed(seed),
            // A predictable RNG would make data keys and nonces guessable: tests only.
            #[cfg(not(feature = "test-rng"))]
            Some(_) => {
                return Err(StoreError::Engine("a seeded RNG is for tests only (ledger-store feature test-rng)".into()))
            }
            None => ChaCha20Rng::from_entropy(),
        };
        let last_time_ms = match shared.tree.get(layout::event_key(head_seq))? {
            Some(bytes) if head_seq > 0 => codec::decode_record(&bytes).map(|r| r.recorded_at_ms).unwrap_or(i64::MIN),
            _ => i64::MIN,
        };
        let data_file = File::open(shared.path.join("db"))?;
        let watermark = crate::watermark::Watermark::open(&shared.path)?;
        let chunk = crate::audit::chunk_in_progress(&shared.tree, head_seq)?;
        watermark.write(head_seq, &head_hash)?;
        let blobs_dir = shared.path.join("blobs");
        Ok(Writer {
            shared,
            db,
            master,
            options,
            state,
            keys,
            key_file,
            head_seq,
            head_hash,
            last_time_ms,
            rng,
            data_file,
            blobs_dir,
            synced_blobs: HashSet::new(),
            watermark,
            chunk,
            poisoned: None,
        })
    }

    pub fn run(mut self, jobs: mpsc::Receiver<Job>) {
        loop {
            let first = match jobs.recv_timeout(Duration::from_millis(500)) {
                Ok(job) => Some(job),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break,
            };
            let mut group = Vec::new();
            if self.state.due_for_purge(self.options.clock.now_ms()).next().is_some() {
                let scope = ledger_core::Scope::new("", "");
                let meta = RequestMeta { scope, actor: "system".into(), request_id: uuid::Uuid::new_v4().to_string() };
                group.push(Job { cmd: Command::PurgeDue, meta, reply: None });
            }
            group.extend(first);
            while group.len() < self.options.group_max {
                match jobs.try_recv() {
                    Ok(job) => group.push(job),
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
        }
    }

    fn now_ms(&mut self) -> i64 {
        let now = self.options.clock.now_ms().max(self.last_time_ms);
        self.last_time_ms = now;
        now
    }

    /// Stops writes until restart; readers and `/health` see why.
    fn poison(&mut self, reason: String) {
        *self.shared.stopped.lock().unwrap_or_else(|e| e.into_inner()) = Some(reason.clone());
        self.poisoned = Some(reason);
    }

    fn commit_group(&mut self, group: Vec<Job>) {
        if let Some(reason) = &self.poisoned {
            for job in group {
                if let Some(tx) = job.reply {
                    let _ = tx.send(Err(StoreError::Poisoned { reason: reason.clone() }));
                }
            }
            return;
        }
        let mut batch = sled::Batch::default();
        let mut records: Vec<Record> = Vec::new();
        let mut new_keys = Vec::new();
        let mut shredded: Vec<ledger_core::SecretUid> = Vec::new();
        let mut pending = Vec::with_capacity(group.len());
        let start_seq = self.head_seq;
        let start_hash = self.head_hash;
        let mut broken = false;
        let mut runs = layout::IndexRuns::default();
        let mut jobs = group.into_iter();
        for job in jobs.by_ref() {
            let now_ms = self.now_ms();
            let mut ctx = Ctx { scope: &job.meta.scope, now_ms, rng: &mut self.rng };
            // decide is pure, so a panic in it (a bug) leaves nothing half-done: refuse this one
            // request and keep the writer alive for everyone else.
            let decided = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                decide(&self.state, &self.keys, &job.cmd, &mut ctx)
            }));
            let decision = match decided {
                Ok(Ok(d)) => d,
                Ok(Err(e)) => {
                    pending.push(Pending { reply: job.reply, answer: Err(e) });
                    continue;
                }
                Err(_) => {
                    tracing::error!(command = job.cmd.name(), "decide panicked; request refused");
                    pending.push(Pending { reply: job.reply, answer: Err(SmError::Internal) });
                    continue;
                }
            };
            for event in decision.events {
                let seq = self.head_seq + 1;
                let uid = event.secret().0;
                let (record, bytes) = seal_record(
                    seq,
                    self.head_hash,
                    now_ms,
                    &job.meta.actor,
                    &job.meta.request_id,
                    job.cmd.name(),
                    event,
                );
                if let Err(violation) = evolve(&mut self.state, seq, now_ms, &record.event) {
                    // decide produced an event its own rules refuse: a bug. Give up the group.
                    tracing::error!(seq, %violation, "decided event breaks a rule; group abandoned");
                    broken = true;
                    break;
                }
                batch.insert(&layout::event_key(seq), bytes);
                runs.push(&mut batch, uid, seq);
                self.chunk.push_chain_hash(&record.hash);
                if self.chunk.len() == layout::MERKLE_CHUNK {
                    batch.insert(&layout::merkle_key((seq - 1) / layout::MERKLE_CHUNK), &self.chunk.root());
                    self.chunk = ledger_core::merkle::MerkleBuilder::new();
                }
                match &record.event {
                    Event::SecretCreated { name, region, .. } => {
                        batch.insert(layout::name_key(name, uid), region.as_bytes());
                    }
                    Event::MasterKeyRotated { to_key_id, .. } => {
                        batch.insert(&[layout::MASTER_KEY_ID], &to_key_id.to_be_bytes());
                    }
                    _ => {}
                }
                self.head_seq = seq;
                self.head_hash = record.hash;
                records.push(record);
            }
            if broken {
                pending.push(Pending { reply: job.reply, answer: Err(SmError::Internal) });
                break;
            }
            if let Some((uid, key)) = decision.new_data_key {
                let mut nonce = [0u8; 24];
                self.rng.fill_bytes(&mut nonce);
                let wrapped = wrap_key(&self.master, uid, &key, nonce);
                self.key_file.keys.insert(uid.0, wrapped);
                self.keys.insert(uid, key.clone());
                new_keys.push((uid, key));
            }
            for uid in decision.shredded {
                self.keys.remove(uid);
                shredded.push(uid);
            }
            pending.push(Pending { reply: job.reply, answer: Ok(decision.reply) });
        }
        if broken {
            self.reset_from_read_view(start_seq, start_hash);
            let unanswered = pending.into_iter().map(|p| p.reply).chain(jobs.map(|job| job.reply));
            for tx in unanswered.flatten() {
                let _ = tx.send(Ok(Err(SmError::Internal)));
            }
            return;
        }
        runs.flush(&mut batch);
        if !records.is_empty() {
            let mut head = Vec::with_capacity(40);
            head.extend_from_slice(&self.head_seq.to_be_bytes());
            head.extend_from_slice(&self.head_hash.0);
            batch.insert(&[layout::HEAD], head);
            // New data keys are on disk before the events that use them; a purged one leaves
            // the disk after its purge is durable, and before the purge is answered.
            let added = !new_keys.is_empty();
            let mut sync = std::time::Duration::ZERO;
            let written = (if added { self.key_file.write(&self.shared.path) } else { Ok(()) })
                .and_then(|()| {
                    let started = std::time::Instant::now();
                    let written = self.write_durably(batch);
                    sync = started.elapsed();
                    written
                })
                .and_then(|()| {
                    if shredded.is_empty() {
                        return Ok(());
                    }
                    for uid in &shredded {
                        self.key_file.keys.remove(&uid.0);
                    }
                    self.key_file.write(&self.shared.path)
                });
            if let Err(e) = written {
                // Nothing of this group is acknowledged. Its records may or may not reach the
                // disk (the batch is atomic either way), so the writer's projection can no
                // longer be trusted to match it: stop writing, keep serving durable reads.
                tracing::error!(error = %e, "group commit failed; writes disabled until restart");
                let reason = e.to_string();
                self.poison(reason.clone());
                for p in pending {
                    if let Some(tx) = p.reply {
                        let _ = tx.send(Err(StoreError::Poisoned { reason: reason.clone() }));
                    }
                }
                return;
            }
            if let Some(observer) = &self.options.observer {
                observer.group_committed(pending.len(), records.len(), sync);
            }
            self.publish(&records, new_keys, &shredded);
            self.maybe_snapshot(start_seq);
        }
        for p in pending {
            if let Some(tx) = p.reply {
                let _ = tx.send(Ok(p.answer));
            }
        }
    }

    /// Applies the batch and makes it durable: sled's flush writes and `sync_file_range`s its
    /// log; `fdatasync` of the data file (and of any new blob file) makes it survive power loss.
    fn write_durably(&mut self, batch: sled::Batch) -> Result<(), StoreError> {
        let faults = self.options.faults.clone();
        let inject = |step: FaultStep| faults.as_ref().map_or(Ok(()), |f| f.check(step));
        inject(FaultStep::ApplyBatch)?;
        self.shared.tree.apply_batch(batch)?;
        if self.options.unsafe_no_sync {
            return Ok(());
        }
        inject(FaultStep::Flush)?;
        self.db.flush()?;
        self.sync_blobs()?;
        inject(FaultStep::Fsync)?;
        self.data_file.sync_data()?;
        self.watermark.write(self.head_seq, &self.head_hash)?;
        Ok(())
    }

    /// sled writes values larger than a quarter segment to blob files without syncing them.
    fn sync_blobs(&mut self) -> Result<(), StoreError> {
        let entries = match std::fs::read_dir(&self.blobs_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        let mut new = false;
        for entry in entries {
            let entry = entry?;
            if self.synced_blobs.insert(entry.file_name()) {
                File::open(entry.path())?.sync_data()?;
                new = true;
            }
        }
        if new {
            File::open(&self.blobs_dir)?.sync_all()?;
        }
        Ok(())
    }

    /// Makes durable events visible to readers.
    fn publish(
        &mut self,
        records: &[Record],
        new_keys: Vec<(ledger_core::SecretUid, ledger_core::crypto::DataKey)>,
        shredded: &[ledger_core::SecretUid],
    ) {
        let mut view = self.shared.read.write().unwrap_or_else(|e| e.into_inner());
        for record in records {
            evolve(&mut view.state, record.seq, record.recorded_at_ms, &record.event)
                .expect("the writer's projection accepted this event");
        }
        for (uid, key) in new_keys {
            view.keys.insert(uid, key);
        }
        for uid in shredded {
            view.keys.remove(*uid);
        }
        view.head_seq = self.head_seq;
        view.head_hash = self.head_hash;
    }

    fn reset_from_read_view(&mut self, head_seq: u64, head_hash: ChainHash) {
        let view = self.shared.read.read().unwrap_or_else(|e| e.into_inner());
        self.state = view.state.clone();
        // The durable keys; a key the abandoned group added to the file goes with the file's
        // next rewrite (or the next open).
        self.keys = view.keys.clone();
        drop(view);
        let keys = &self.keys;
        self.key_file
            .keys
            .retain(|uid, _| ledger_core::crypto::KeyLookup::data_key(keys, ledger_core::SecretUid(*uid)).is_some());
        self.head_seq = head_seq;
        self.head_hash = head_hash;
        match crate::audit::chunk_in_progress(&self.shared.tree, head_seq) {
            Ok(chunk) => self.chunk = chunk,
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the Merkle chunk; writes disabled");
                self.poison(e.to_string());
            }
        }
    }

    /// Writes a projection snapshot when the head crossed a multiple of `snapshot_every`.
    fn maybe_snapshot(&mut self, before_seq: u64) {
        let every = self.options.snapshot_every.max(1);
        if before_seq / every == self.head_seq / every {
            return;
        }
        if let Err(e) = crate::snapshots::write(&self.shared.tree, self.head_seq, &self.state) {
            // A snapshot is derived data: losing one only costs replay time.
            tracing::warn!(error = %e, "projection snapshot not written");
        }
    }
}
