//! The single writer: decide, append a group atomically, make it durable, publish, answer.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use ledger_core::codec::{self, seal_record};
use ledger_core::crypto::{wrap_key, DataKeys, MasterKey};
use ledger_core::{decide, evolve, ChainHash, Command, Ctx, Event, Record, Reply, SmError, State};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::derive::Deriver;
use crate::error::StoreError;
use crate::options::{LedgerOptions, RequestMeta};
use crate::store::{Appended, Derived, Group, Head};
use crate::view::Shared;

pub(crate) type Outcome = Result<Result<Reply, SmError>, StoreError>;

pub(crate) struct Job {
    pub cmd: Command,
    pub meta: RequestMeta,
    pub reply: Option<tokio::sync::oneshot::Sender<Outcome>>,
}

pub(crate) struct Writer {
    shared: Arc<Shared>,
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
    /// Index runs and the Merkle chunk in progress; a completed chunk's root goes into the group.
    deriver: Deriver,
    /// Why writes stopped, after a failed group commit.
    poisoned: Option<String>,
}

/// What a group has decided so far.
#[derive(Default)]
struct Draft {
    records: Vec<Record>,
    /// `(seq, sealed bytes)` of `records`.
    bytes: Vec<(u64, Vec<u8>)>,
    derived: Derived,
    master_key_id: Option<u32>,
    new_keys: Vec<(ledger_core::SecretUid, ledger_core::crypto::DataKey)>,
    shredded: Vec<ledger_core::SecretUid>,
    pending: Vec<Pending>,
}

/// A group given up: a decided event broke a rule.
struct Abandon;

/// One decided request of a group, waiting for the group's flush.
struct Pending {
    reply: Option<tokio::sync::oneshot::Sender<Outcome>>,
    answer: Result<Reply, SmError>,
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        master: MasterKey,
        options: LedgerOptions,
        state: State,
        (keys, key_file): (DataKeys, crate::keyfile::KeyFile),
        (head_seq, head_hash): Head,
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
        let last_time_ms = match shared.store.record(head_seq)? {
            Some(bytes) if head_seq > 0 => codec::record_time(&bytes).unwrap_or(i64::MIN),
            _ => i64::MIN,
        };
        let deriver = Deriver::with_chunk(crate::derive::chunk_in_progress(&*shared.store, head_seq)?);
        shared.store.begin_writing(&(head_seq, head_hash))?;
        Ok(Writer {
            shared,
            master,
            options,
            state,
            keys,
            key_file,
            head_seq,
            head_hash,
            last_time_ms,
            rng,
            deriver,
            poisoned: None,
        })
    }

    pub(crate) fn run(mut self, jobs: mpsc::Receiver<Job>) {
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
        let start = (self.head_seq, self.head_hash);
        let mut draft = Draft::default();
        let mut jobs = group.into_iter();
        for job in jobs.by_ref() {
            if let Err(Abandon) = self.decide_one(job, &mut draft) {
                self.reset_from_read_view(start);
                let unanswered = draft.pending.into_iter().map(|p| p.reply).chain(jobs.map(|job| job.reply));
                for tx in unanswered.flatten() {
                    let _ = tx.send(Ok(Err(SmError::Internal)));
                }
                return;
            }
        }
        self.deriver.end_run(&mut draft.derived);
        if !draft.records.is_empty() {
            let started = std::time::Instant::now();
            if let Err(e) = self.write_group(start, &mut draft) {
                // Nothing of this group is acknowledged. Its records may or may not reach the
                // disk (the append is atomic either way), so the writer's projection can no
                // longer be trusted to match it: stop writing, keep serving durable reads.
                tracing::error!(error = %e, "group commit failed; writes disabled until restart");
                let reason = e.to_string();
                self.poison(reason.clone());
                for tx in draft.pending.into_iter().filter_map(|p| p.reply) {
                    let _ = tx.send(Err(StoreError::Poisoned { reason: reason.clone() }));
                }
                return;
            }
            if let Some(observer) = &self.options.observer {
                observer.group_committed(draft.pending.len(), draft.records.len(), started.elapsed());
            }
            self.publish(&draft.records, std::mem::take(&mut draft.new_keys), &draft.shredded);
            self.maybe_snapshot(start.0);
        }
        for p in draft.pending {
            if let Some(tx) = p.reply {
                let _ = tx.send(Ok(p.answer));
            }
        }
    }

    /// Decides one request and adds its events to the group. `Err(Abandon)` when a decided event
    /// breaks a rule (a bug): the whole group is given up.
    fn decide_one(&mut self, job: Job, draft: &mut Draft) -> Result<(), Abandon> {
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
                draft.pending.push(Pending { reply: job.reply, answer: Err(e) });
                return Ok(());
            }
            Err(_) => {
                tracing::error!(command = job.cmd.name(), "decide panicked; request refused");
                draft.pending.push(Pending { reply: job.reply, answer: Err(SmError::Internal) });
                return Ok(());
            }
        };
        for event in decision.events {
            let seq = self.head_seq + 1;
            let m = &job.meta;
            let (record, bytes) =
                seal_record(seq, self.head_hash, now_ms, &m.actor, &m.request_id, job.cmd.name(), event);
            if let Err(violation) = evolve(&mut self.state, seq, now_ms, &record.event) {
                // decide produced an event its own rules refuse: a bug. Give up the group.
                tracing::error!(seq, %violation, "decided event breaks a rule; group abandoned");
                draft.pending.push(Pending { reply: job.reply, answer: Err(SmError::Internal) });
                return Err(Abandon);
            }
            self.deriver.push(&mut draft.derived, &record);
            if let Event::MasterKeyRotated { to_key_id, .. } = &record.event {
                draft.master_key_id = Some(*to_key_id);
            }
            self.head_seq = seq;
            self.head_hash = record.hash;
            draft.bytes.push((seq, bytes));
            draft.records.push(record);
        }
        if let Some((uid, key)) = decision.new_data_key {
            let mut nonce = [0u8; 24];
            self.rng.fill_bytes(&mut nonce);
            let wrapped = wrap_key(&self.master, uid, &key, nonce);
            self.key_file.keys.insert(uid.0, wrapped);
            self.keys.insert(uid, key.clone());
            draft.new_keys.push((uid, key));
        }
        for uid in decision.shredded {
            self.keys.remove(uid);
            draft.shredded.push(uid);
        }
        draft.pending.push(Pending { reply: job.reply, answer: Ok(decision.reply) });
        Ok(())
    }

    /// Makes the group durable: new data keys first (on disk before the events that use them),
    /// then the append, then the key file without the purged keys (they leave the disk after
    /// their purge is durable, and before it is answered).
    fn write_group(&mut self, start: Head, draft: &mut Draft) -> Result<(), StoreError> {
        if !draft.new_keys.is_empty() {
            self.shared.store.write_key_file(&self.key_file)?;
        }
        let group = Group {
            expected: start,
            records: std::mem::take(&mut draft.bytes),
            head: (self.head_seq, self.head_hash),
            derived: std::mem::take(&mut draft.derived),
            master_key_id: draft.master_key_id,
        };
        match self.shared.store.append(group)? {
            Appended::Durable => {}
            Appended::Conflict { head } => {
                return Err(StoreError::Engine(format!(
                    "another writer moved the head to seq {} while this one decided on seq {}",
                    head.0, start.0
                )))
            }
        }
        if !draft.shredded.is_empty() {
            for uid in &draft.shredded {
                self.key_file.keys.remove(&uid.0);
            }
            self.shared.store.write_key_file(&self.key_file)?;
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

    fn reset_from_read_view(&mut self, (head_seq, head_hash): Head) {
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
        match crate::derive::chunk_in_progress(&*self.shared.store, head_seq) {
            Ok(chunk) => self.deriver = Deriver::with_chunk(chunk),
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
        if let Err(e) = self.shared.store.put_snapshot(self.head_seq, &codec::encode(&self.state)) {
            // A snapshot is derived data: losing one only costs replay time.
            tracing::warn!(error = %e, "projection snapshot not written");
        }
    }
}
