//! The single writer: decide, append a group atomically, make it durable, publish, answer.

use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use ledger_core::codec::{self, seal_record};
use ledger_core::crypto::{unwrap_key, wrap_key, DataKey, DataKeys, MasterKey};
use ledger_core::{decide, evolve, ChainHash, Command, Ctx, Event, Record, Reply, SecretUid, SmError, State};
use rand_chacha::ChaCha20Rng;
use rand_core::{RngCore, SeedableRng};

use crate::derive::Deriver;
use crate::error::StoreError;
use crate::options::{LedgerOptions, RequestMeta};
use crate::store::{Appended, Derived, Group, Head};
use crate::view::Shared;

pub(crate) type Outcome = Result<Result<Reply, SmError>, StoreError>;

/// What the writer is sent: a request, or word that another writer appended.
// A request moves through the channel once: boxing it would cost an allocation per request.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Msg {
    Job(Job),
    Follow,
    /// Answer once the projection snapshot being written, if any, is stored.
    Snapshots(mpsc::SyncSender<()>),
}

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
    head_seq: u64,
    head_hash: ChainHash,
    last_time_ms: i64,
    rng: ChaCha20Rng,
    /// Index runs and the Merkle chunk in progress; a completed chunk's root goes into the group.
    deriver: Deriver,
    /// Why writes stopped, after a failed group commit.
    poisoned: Option<String>,
    /// The Merkle chunk in progress could not be reloaded: reload it before the next group.
    chunk_stale: bool,
    /// The projection snapshot being encoded and stored off this thread, if any.
    snapshotting: Option<std::thread::JoinHandle<()>>,
}

/// What a group has decided so far.
#[derive(Default)]
struct Draft {
    records: Vec<Record>,
    /// `(seq, sealed bytes)` of `records`.
    bytes: Vec<(u64, Vec<u8>)>,
    derived: Derived,
    master_key_id: Option<u32>,
    new_keys: Vec<(SecretUid, DataKey)>,
    /// `new_keys` wrapped under the master key, for the store.
    wrapped: Vec<(u64, ledger_core::crypto::WrappedKey)>,
    shredded: Vec<SecretUid>,
    /// One answer per request of the group, in order, sent once the group is durable.
    answers: Vec<Result<Reply, SmError>>,
}

/// A group given up: a decided event broke a rule.
struct Abandon;

/// How often an idle writer looks for appends of other writers (and due purges).
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Appends that lost the race to another writer before a group is refused.
const CONFLICT_RETRIES: u32 = 64;

/// Answers every request of a group with `outcome`.
fn answer_all(group: Vec<Job>, outcome: impl Fn(&Job) -> Outcome) {
    for job in group {
        let out = outcome(&job);
        if let Some(tx) = job.reply {
            let _ = tx.send(out);
        }
    }
}

/// Answers each request of a group with its own answer.
fn answer_each(group: Vec<Job>, answers: Vec<Result<Reply, SmError>>) {
    for (job, answer) in group.into_iter().zip(answers) {
        if let Some(tx) = job.reply {
            let _ = tx.send(Ok(answer));
        }
    }
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        master: MasterKey,
        options: LedgerOptions,
        state: State,
        keys: DataKeys,
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
            head_seq,
            head_hash,
            last_time_ms,
            rng,
            deriver,
            poisoned: None,
            chunk_stale: false,
            snapshotting: None,
        })
    }

    pub(crate) fn run(mut self, jobs: mpsc::Receiver<Msg>) {
        loop {
            let first = match jobs.recv_timeout(FOLLOW_EVERY) {
                Ok(Msg::Job(job)) => Some(job),
                Ok(Msg::Follow) | Err(RecvTimeoutError::Timeout) => {
                    self.follow();
                    None
                }
                Ok(Msg::Snapshots(done)) => {
                    self.finish_snapshot();
                    let _ = done.send(());
                    None
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.finish_snapshot();
                    break;
                }
            };
            let mut group = Vec::new();
            if self.state.due_for_purge(self.options.clock.now_ms()).next().is_some() && self.shared.store.is_leader() {
                let scope = ledger_core::Scope::new("", "");
                let meta = RequestMeta { scope, actor: "system".into(), request_id: uuid::Uuid::new_v4().to_string() };
                group.push(Job { cmd: Command::PurgeDue, meta, reply: None });
            }
            group.extend(first);
            while group.len() < self.options.group_max {
                match jobs.try_recv() {
                    Ok(Msg::Job(job)) => group.push(job),
                    // The group catches up first anyway (see `commit_group`).
                    Ok(Msg::Follow) => {}
                    Ok(Msg::Snapshots(done)) => {
                        self.finish_snapshot();
                        let _ = done.send(());
                    }
                    Err(_) => break,
                }
            }
            if !group.is_empty() {
                self.commit_group(group);
            }
        }
    }

    /// On a shared store, while idle: applies what other writers appended, so this node's
    /// readers see it within [`FOLLOW_EVERY`].
    fn follow(&mut self) {
        if !self.shared.store.shared() || self.poisoned.is_some() {
            return;
        }
        if let Err(e) = self.catch_up() {
            tracing::debug!(error = %e, "cannot follow the shared store; trying again");
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
            let reason = reason.clone();
            answer_all(group, |_| Err(StoreError::Poisoned { reason: reason.clone() }));
            return;
        }
        let store = self.shared.store.clone();
        if store.shared() {
            // Take the turn, then read what the others appended while we waited.
            let ready = store.begin_group().and_then(|()| self.catch_up());
            if let Err(e) = ready {
                // The shared store is out of reach: fail fast, try again with the next group.
                store.end_group();
                let reason = e.to_string();
                answer_all(group, |_| Err(StoreError::Engine(reason.clone())));
                return;
            }
            self.decide_and_append(group);
            store.end_group();
        } else {
            self.decide_and_append(group);
        }
    }

    /// Decides the group and appends it, deciding again after losing a race to another writer.
    fn decide_and_append(&mut self, group: Vec<Job>) {
        for attempt in 1.. {
            let start = (self.head_seq, self.head_hash);
            // Restored after a lost race instead of re-read from the store.
            let deriver = self.deriver.clone();
            let mut draft = Draft::default();
            for job in &group {
                if let Err(Abandon) = self.decide_one(job, &mut draft) {
                    self.reset_from_read_view(start);
                    answer_all(group, |_| Ok(Err(SmError::Internal)));
                    return;
                }
            }
            self.deriver.end_run(&mut draft.derived);
            if draft.records.is_empty() {
                return answer_each(group, draft.answers);
            }
            let started = std::time::Instant::now();
            match self.write_group(start, &mut draft) {
                Ok(Appended::Durable) => {
                    if let Some(observer) = &self.options.observer {
                        observer.group_committed(group.len(), draft.records.len(), started.elapsed());
                    }
                    self.publish(&draft.records, std::mem::take(&mut draft.new_keys), &draft.shredded);
                    self.maybe_snapshot(start.0);
                    return answer_each(group, draft.answers);
                }
                // Another writer appended first: follow it, then decide the group again. After
                // the first loss, wait a random while growing with the losses, so that two busy
                // writers do not keep colliding.
                Ok(Appended::Conflict { .. }) if attempt < CONFLICT_RETRIES => {
                    if attempt > 1 {
                        // Out of turn while waiting, so the other writer can go.
                        let most_us = 500u32 << attempt.min(6);
                        self.shared.store.end_group();
                        std::thread::sleep(Duration::from_micros(u64::from(rand_core::OsRng.next_u32() % most_us)));
                        let _ = self.shared.store.begin_group();
                    }
                    self.reset_state_from_read_view(start);
                    self.deriver = deriver;
                    if let Err(e) = self.catch_up() {
                        return self.failed(group, start, e);
                    }
                }
                Ok(Appended::Conflict { head }) => {
                    let e = StoreError::Engine(format!("the head kept moving (now seq {}); try again", head.0));
                    return self.failed(group, start, e);
                }
                Err(e) => return self.failed(group, start, e),
            }
        }
    }

    /// A group whose append failed: nothing of it is acknowledged. On a shared store the
    /// writer re-reads the store before the next group (the append may or may not have
    /// committed; reading tells). Alone, its records may or may not reach the disk, so the
    /// writer's projection can no longer be trusted to match it: stop writing, keep serving
    /// durable reads.
    fn failed(&mut self, group: Vec<Job>, start: Head, e: StoreError) {
        let reason = e.to_string();
        if self.shared.store.shared() {
            tracing::warn!(error = %e, "group commit failed; the next group re-reads the store");
            self.reset_from_read_view(start);
            self.set_unavailable(Some(reason.clone()));
            answer_all(group, |_| Err(StoreError::Engine(reason.clone())));
        } else {
            tracing::error!(error = %e, "group commit failed; writes disabled until restart");
            self.poison(reason.clone());
            answer_all(group, |_| Err(StoreError::Poisoned { reason: reason.clone() }));
        }
    }

    /// Decides one request and adds its events to the group. `Err(Abandon)` when a decided event
    /// breaks a rule (a bug): the whole group is given up.
    fn decide_one(&mut self, job: &Job, draft: &mut Draft) -> Result<(), Abandon> {
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
                draft.answers.push(Err(e));
                return Ok(());
            }
            Err(_) => {
                tracing::error!(command = job.cmd.name(), "decide panicked; request refused");
                draft.answers.push(Err(SmError::Internal));
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
            draft.wrapped.push((uid.0, wrap_key(&self.master, uid, &key, nonce)));
            self.keys.insert(uid, key.clone());
            draft.new_keys.push((uid, key));
        }
        for uid in decision.shredded {
            self.keys.remove(uid);
            draft.shredded.push(uid);
        }
        draft.answers.push(Ok(decision.reply));
        Ok(())
    }

    /// Appends the group with its new data keys and the keys its purges destroy (the store
    /// orders them around the records, see [`Group`]).
    fn write_group(&mut self, start: Head, draft: &mut Draft) -> Result<Appended, StoreError> {
        let group = Group {
            expected: start,
            records: std::mem::take(&mut draft.bytes),
            head: (self.head_seq, self.head_hash),
            derived: std::mem::take(&mut draft.derived),
            master_key_id: draft.master_key_id,
            new_keys: std::mem::take(&mut draft.wrapped),
            destroyed_keys: draft.shredded.iter().map(|uid| uid.0).collect(),
        };
        self.shared.store.append(group)
    }

    /// Follows the store to its head: records other writers appended are checked (as verify's
    /// first stage does) and applied to the writer's projection and the readers', with the data
    /// keys of the secrets they create.
    fn catch_up(&mut self) -> Result<(), StoreError> {
        match self.follow_to_head() {
            Ok(()) => {
                self.set_unavailable(None);
                Ok(())
            }
            Err(e) => {
                // Nothing half-applied stays: the next try starts from the durable view.
                let view = self.shared.read.read().unwrap_or_else(|e| e.into_inner());
                let head = (view.head_seq, view.head_hash);
                drop(view);
                self.reset_from_read_view(head);
                self.set_unavailable(Some(e.to_string()));
                Err(e)
            }
        }
    }

    /// On a shared store, tells `/health` that writes fail (`Some(why)`) or work again.
    fn set_unavailable(&self, why: Option<String>) {
        if self.shared.store.shared() {
            *self.shared.stopped.lock().unwrap_or_else(|e| e.into_inner()) = why;
        }
    }

    fn follow_to_head(&mut self) -> Result<(), StoreError> {
        let store = self.shared.store.clone();
        let target = store.head()?;
        if target == (self.head_seq, self.head_hash) && !self.chunk_stale {
            return Ok(());
        }
        let head_time = if self.head_seq == 0 { i64::MIN } else { store.record_time(self.head_seq)? };
        let mut checker = crate::verify::Checker::after(self.head_seq, self.head_hash, head_time);
        let mut records = Vec::new();
        // The other writers stored the derived entries; only the chunk in progress is kept.
        let mut stored_elsewhere = Derived::default();
        for item in store.records(self.head_seq + 1, target.0) {
            let (seq, bytes) = item?;
            let corrupt = |reason: String| StoreError::Corrupt { seq, reason };
            let record = checker.check(seq, &bytes).map_err(|f| corrupt(f.reason.to_string()))?;
            evolve(&mut self.state, seq, record.recorded_at_ms, &record.event).map_err(|e| corrupt(e.to_string()))?;
            self.last_time_ms = self.last_time_ms.max(record.recorded_at_ms);
            self.deriver.push(&mut stored_elsewhere, &record);
            records.push(record);
        }
        self.deriver.end_run(&mut stored_elsewhere);
        if checker.expected != target.0 + 1 || checker.prev_hash != target.1 {
            return Err(StoreError::Corrupt { seq: checker.expected, reason: "the log ends before its head".into() });
        }
        let (new_keys, purged) = self.follow_keys(&*store, &records)?;
        (self.head_seq, self.head_hash) = target;
        if self.chunk_stale {
            self.deriver = Deriver::with_chunk(crate::derive::chunk_in_progress(&*store, target.0)?);
            self.chunk_stale = false;
        }
        self.publish(&records, new_keys, &purged);
        Ok(())
    }

    /// The data keys of the secrets `records` create (unwrapped from the store) and the uids
    /// they purge.
    #[allow(clippy::type_complexity)]
    fn follow_keys(
        &mut self,
        store: &dyn crate::store::LogStore,
        records: &[Record],
    ) -> Result<(Vec<(SecretUid, DataKey)>, Vec<SecretUid>), StoreError> {
        let created: Vec<SecretUid> = records
            .iter()
            .filter(|r| matches!(r.event, Event::SecretCreated { .. }))
            .map(|r| r.event.secret())
            .collect();
        let purged: Vec<SecretUid> = records
            .iter()
            .filter(|r| matches!(r.event, Event::SecretPurged { .. }))
            .map(|r| r.event.secret())
            .collect();
        // A secret created and purged within the range has no key left, and needs none.
        let live: Vec<SecretUid> = created.into_iter().filter(|uid| !purged.contains(uid)).collect();
        let mut new_keys = Vec::new();
        if !live.is_empty() {
            let file = store.key_file()?.unwrap_or_default();
            for uid in live {
                let missing =
                    || StoreError::Corrupt { seq: 0, reason: format!("no data key for secret uid {}", uid.0) };
                let wrapped = file.keys.get(&uid.0).ok_or_else(missing)?;
                let key = unwrap_key(&self.master, uid, wrapped).ok_or(StoreError::WrongMasterKey)?;
                self.keys.insert(uid, key.clone());
                new_keys.push((uid, key));
            }
        }
        for uid in &purged {
            self.keys.remove(*uid);
        }
        Ok((new_keys, purged))
    }

    /// Makes durable events visible to readers.
    fn publish(&mut self, records: &[Record], new_keys: Vec<(SecretUid, DataKey)>, shredded: &[SecretUid]) {
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

    /// The writer's projection, keys and head back to the durable view's.
    fn reset_state_from_read_view(&mut self, (head_seq, head_hash): Head) {
        let view = self.shared.read.read().unwrap_or_else(|e| e.into_inner());
        self.state = view.state.clone();
        self.keys = view.keys.clone();
        drop(view);
        self.head_seq = head_seq;
        self.head_hash = head_hash;
    }

    /// [`Writer::reset_state_from_read_view`], and the Merkle chunk in progress re-read from
    /// the store.
    fn reset_from_read_view(&mut self, head: Head) {
        self.reset_state_from_read_view(head);
        match crate::derive::chunk_in_progress(&*self.shared.store, head.0) {
            Ok(chunk) => self.deriver = Deriver::with_chunk(chunk),
            Err(e) if self.shared.store.shared() => {
                tracing::warn!(error = %e, "cannot reload the Merkle chunk; the next group re-reads the store");
                self.chunk_stale = true;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot reload the Merkle chunk; writes disabled");
                self.poison(e.to_string());
            }
        }
    }

    /// Writes a projection snapshot when the head crossed a multiple of `snapshot_every`: the
    /// projection is copied here (a pointer per secret, [`State::snapshot`]) and encoded and
    /// stored on a thread of its own, so the groups behind this one do not wait for the encoding
    /// (tens of milliseconds for 20,000 secrets).
    fn maybe_snapshot(&mut self, before_seq: u64) {
        let every = self.options.snapshot_every.max(1);
        if before_seq / every == self.head_seq / every {
            return;
        }
        self.finish_snapshot();
        let (state, seq, store) = (self.state.snapshot(), self.head_seq, self.shared.store.clone());
        let write = move || {
            if let Err(e) = store.put_snapshot(seq, &codec::encode(&state)) {
                // A snapshot is derived data: losing one only costs replay time.
                tracing::warn!(error = %e, "projection snapshot not written");
            }
        };
        match std::thread::Builder::new().name("ledger-snapshot".into()).spawn(write) {
            Ok(handle) => self.snapshotting = Some(handle),
            Err(e) => tracing::warn!(error = %e, "projection snapshot not written: no thread"),
        }
    }

    /// Waits for the snapshot being written, if any.
    fn finish_snapshot(&mut self) {
        if let Some(handle) = self.snapshotting.take() {
            let _ = handle.join();
        }
    }
}

#[cfg(test)]
mod tests {
    /// A seeded RNG would make data keys and nonces guessable: without the `test-rng` feature
    /// the open refuses a seed. (`.ci/run` runs this crate's tests alone, without the feature
    /// the workspace's test crate turns on.)
    #[cfg(not(feature = "test-rng"))]
    #[test]
    fn a_seed_is_refused_without_the_test_rng_feature() {
        let dir = tempfile::tempdir().unwrap();
        let options = crate::LedgerOptions { rng_seed: Some([7; 32]), ..crate::LedgerOptions::default() };
        let master = ledger_core::crypto::MasterKey::from_bytes(1, [9; 32]);
        let Err(refused) = crate::Ledger::open(dir.path(), master, options) else {
            panic!("a seed was accepted without the test-rng feature");
        };
        assert!(refused.to_string().contains("seeded RNG is for tests only"), "{refused}");
    }
}
