//! Audit and forensics over a log: history of one secret, state as of a seq or a time,
//! export to a self-describing JSON Lines file and its offline verification, checkpoints and
//! Merkle proofs. Everything here reads; nothing appends.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};

use base64::Engine;
use ledger_core::checkpoint::Checkpoint;
use ledger_core::codec::{self, decode_record};
use ledger_core::merkle::{self, LeafSource};
use ledger_core::names::{parse_secret_id, SecretRef};
use ledger_core::time::format_rfc3339_ms;
use ledger_core::{evolve, Event, Record, Scope, SecretState, SecretUid, State};

use crate::derive::Deriver;
use crate::error::StoreError;
use crate::layout;
use crate::replay::Replay;
use crate::store::{Derived, LogStore};
use crate::verify::{FailureReason, Verifier, VerifyFailure, VerifyReport};

/// One event of a secret's history, with what it changed in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    pub seq: u64,
    pub recorded_at_ms: i64,
    pub actor: String,
    pub request_id: String,
    /// The operation that appended it; empty for format-1 records.
    pub operation: String,
    pub secret: SecretUid,
    pub event: &'static str,
    /// What changed, e.g. `AWSCURRENT: 0000…01 → 0000…02`; never a value.
    pub change: String,
    /// For `LabelMoved`: (label, from, to).
    pub label_move: Option<(String, Option<String>, Option<String>)>,
}

/// What an event changed, for people. Names versions, labels and tags; never values.
pub fn describe(event: &Event) -> String {
    let opt = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_string());
    match event {
        Event::SecretCreated { name, arn, .. } => format!("created {name} ({arn})"),
        Event::VersionCreated { version_id, value, .. } => {
            format!("version {version_id} created ({:?}, {} ciphertext bytes)", value.kind, value.ciphertext.len())
        }
        Event::LabelMoved { label, from, to, .. } => format!("{label}: {} → {}", opt(from), opt(to)),
        Event::SecretUpdated { description, kms_key_id, secret_type, .. } => {
            let mut parts = Vec::new();
            if let Some(d) = description {
                parts.push(format!("description = {d:?}"));
            }
            if let Some(k) = kms_key_id {
                parts.push(format!("kms key = {k:?}"));
            }
            if let Some(t) = secret_type {
                parts.push(format!("type = {t:?}"));
            }
            format!("updated {}", parts.join(", "))
        }
        Event::TagsChanged { set, removed, .. } => {
            let set: Vec<String> = set.iter().map(|t| format!("{}={}", t.key, t.value)).collect();
            format!("tags set [{}] removed [{}]", set.join(", "), removed.join(", "))
        }
        Event::DeletionScheduled { deletion_date_ms, .. } => {
            format!("deletion scheduled for {}", format_rfc3339_ms(*deletion_date_ms))
        }
        Event::DeletionCancelled { .. } => "deletion cancelled (restored)".to_string(),
        Event::SecretPurged { .. } => "purged; data key destroyed".to_string(),
        Event::VersionPruned { version_id, .. } => format!("version {version_id} pruned"),
        Event::RotationConfigured { lambda_arn, rules, .. } => {
            let mut parts = vec!["rotation on".to_string()];
            if let Some(arn) = lambda_arn {
                parts.push(format!("function {arn}"));
            }
            if let Some(r) = rules {
                if let Some(days) = r.automatically_after_days {
                    parts.push(format!("every {days} days"));
                }
                if let Some(e) = &r.schedule_expression {
                    parts.push(format!("schedule {e}"));
                }
                if let Some(d) = &r.duration {
                    parts.push(format!("window {d}"));
                }
            }
            parts.join(", ")
        }
        Event::RotationCancelled { .. } => "rotation off".to_string(),
        Event::VersionReserved { version_id, .. } => {
            format!("version {version_id} reserved for a rotation (no value yet)")
        }
        Event::VersionValueSet { version_id, value, .. } => {
            format!("version {version_id} value set ({:?}, {} ciphertext bytes)", value.kind, value.ciphertext.len())
        }
        Event::RotationFailed { version_id, step, error, .. } => {
            format!("rotation to {version_id} failed at {step}: {error}")
        }
        Event::SecretAccessed { version_id, day_ms, .. } => {
            let day = format_rfc3339_ms(*day_ms);
            format!("version {version_id} read on {}", day.get(..10).unwrap_or(&day))
        }
        Event::ResourcePolicySet { policy, .. } => format!("resource policy set ({} bytes)", policy.len()),
        Event::ResourcePolicyDeleted { .. } => "resource policy deleted".to_string(),
        Event::SecretRead { version_id, .. } => format!("version {version_id} read"),
        Event::AccessDenied { resource } => format!("access denied to {resource:?}"),
        Event::MasterKeyRotated { from_key_id, to_key_id } => {
            format!("master key rotated from key {from_key_id} to key {to_key_id}")
        }
    }
}

fn read_record(store: &dyn LogStore, seq: u64) -> Result<Record, StoreError> {
    decode_record(&record_bytes(store, seq)?).map_err(|e| StoreError::Corrupt { seq, reason: e.to_string() })
}

/// The stored bytes of the record at `seq`, which must exist.
fn record_bytes(store: &dyn LogStore, seq: u64) -> Result<crate::store::RecordBytes, StoreError> {
    store.record(seq)?.ok_or(StoreError::Corrupt { seq, reason: "record missing".into() })
}

/// A secret as its `SecretCreated` record named it: what every audit document names it by.
/// Two secrets of one name (in two regions, or one re-created after a purge) are two identities.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretIdentity {
    pub uid: SecretUid,
    pub region: String,
    pub name: String,
    pub arn: String,
    /// Seq of the `SecretCreated` record.
    pub created_seq: u64,
}

/// Every secret a `SecretId` (name, partial or full ARN) may have named over the log's life, in
/// every region, in creation order. A partial or full ARN selects its own region (and a full ARN
/// its one secret); a name selects every region: callers resolve it within one, as the API does.
/// Names are looked up in the name index, never by scanning the log.
pub fn secret_identities(store: &dyn LogStore, secret_id: &str) -> Result<Vec<SecretIdentity>, StoreError> {
    // For an ARN: its region, and the ARN prefix (partition, region, account) or whole ARN
    // the secret's own ARN must have.
    let (name, region, arn_match) = if let Some(rest) = secret_id.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(6, ':').collect();
        let [partition, _, region, account, _, resource] = parts[..] else { return Ok(Vec::new()) };
        let scope = Scope { partition: partition.into(), region: region.into(), account: account.into() };
        let prefix = format!("arn:{partition}:secretsmanager:{region}:{account}:secret:");
        match parse_secret_id(&scope, secret_id) {
            Ok(SecretRef::FullArn(arn)) => {
                (resource[..resource.len() - 7].to_string(), Some(region), Some((arn.to_string(), true)))
            }
            Ok(SecretRef::PartialArn(name)) => (name.to_string(), Some(region), Some((prefix, false))),
            _ => return Ok(Vec::new()),
        }
    } else {
        (secret_id.to_string(), None, None)
    };
    let mut found = Vec::new();
    for (uid, stored_region) in store.names(&name)? {
        if region.is_some_and(|r| r != stored_region) {
            continue;
        }
        let Some(identity) = identity(store, SecretUid(uid))? else { continue };
        match &arn_match {
            Some((arn, true)) if *arn != identity.arn => continue,
            Some((prefix, false)) if !identity.arn.starts_with(prefix.as_str()) => continue,
            _ => {}
        }
        found.push(identity);
    }
    found.sort_by_key(|s| s.uid);
    Ok(found)
}

/// The identity of `uid`, from its first record (its `SecretCreated`).
fn identity(store: &dyn LogStore, uid: SecretUid) -> Result<Option<SecretIdentity>, StoreError> {
    let Some(&(seq, _)) = store.index_runs(uid.0)?.first() else { return Ok(None) };
    Ok(match read_record(store, seq)?.event {
        Event::SecretCreated { secret, region, name, arn, .. } if secret == uid => {
            Some(SecretIdentity { uid, region, name, arn, created_seq: seq })
        }
        _ => None,
    })
}

/// Seqs of every event of one secret, in order, from the per-secret index.
fn secret_seqs(store: &dyn LogStore, uid: SecretUid) -> Result<Vec<u64>, StoreError> {
    Ok(store.index_runs(uid.0)?.into_iter().flat_map(|(first, len)| first..first + len).collect())
}

/// Every event of one secret, in log order, from the per-secret index.
pub fn secret_history(store: &dyn LogStore, uid: SecretUid) -> Result<Vec<HistoryEntry>, StoreError> {
    secret_seqs(store, uid)?.into_iter().map(|seq| Ok(history_entry(seq, read_record(store, seq)?))).collect()
}

fn history_entry(seq: u64, r: Record) -> HistoryEntry {
    HistoryEntry {
        seq,
        recorded_at_ms: r.recorded_at_ms,
        label_move: match &r.event {
            Event::LabelMoved { label, from, to, .. } => Some((label.clone(), from.clone(), to.clone())),
            _ => None,
        },
        change: describe(&r.event),
        event: r.event.name(),
        secret: r.event.secret(),
        actor: r.actor,
        request_id: r.request_id,
        operation: r.operation,
    }
}

/// Every event with a seq in `from..=to` that `keep` accepts, in log order: the ledger-wide
/// history (a scan of that range of the log).
pub fn log_history(
    store: &dyn LogStore,
    from: u64,
    to: u64,
    keep: &dyn Fn(&Record) -> bool,
) -> Result<Vec<HistoryEntry>, StoreError> {
    let mut out = Vec::new();
    if from > to {
        return Ok(out);
    }
    for item in store.records(from.max(1), to) {
        let (seq, v) = item?;
        let r = decode_record(&v).map_err(|e| StoreError::Corrupt { seq, reason: e.to_string() })?;
        if keep(&r) {
            out.push(history_entry(seq, r));
        }
    }
    Ok(out)
}

/// The identity of the secret `uid`, from its `SecretCreated`.
pub fn secret_identity(store: &dyn LogStore, uid: SecretUid) -> Result<Option<SecretIdentity>, StoreError> {
    identity(store, uid)
}

/// Most records one request may span for [`request_span`]: more means the request ids are not
/// per request (a library caller reusing one), and `seq` is taken as it is.
const REQUEST_SPAN_MAX: u64 = 10_000;

/// The seqs `first..=last` of the request whose events include `seq` (a request's events are
/// consecutive and share its request id), looking no further than `head`; `(seq, seq)` when
/// the run is longer than any request's.
pub fn request_span(store: &dyn LogStore, seq: u64, head: u64) -> Result<(u64, u64), StoreError> {
    let request_id = read_record(store, seq)?.request_id;
    let (mut first, mut last) = (seq, seq);
    while first > 1 && read_record(store, first - 1)?.request_id == request_id {
        first -= 1;
        if seq - first > REQUEST_SPAN_MAX {
            return Ok((seq, seq));
        }
    }
    while last < head && read_record(store, last + 1)?.request_id == request_id {
        last += 1;
        if last - first > REQUEST_SPAN_MAX {
            return Ok((seq, seq));
        }
    }
    Ok((first, last))
}

/// The last seq recorded at or before `time_ms` (0 if none), by binary search on `recorded_at`.
pub fn seq_at_time(store: &dyn LogStore, time_ms: i64) -> Result<u64, StoreError> {
    seq_at_time_upto(store, time_ms, store.head()?.0)
}

/// [`seq_at_time`] within the first `head` records (a live server passes its durable head:
/// sled already holds the records of a group whose flush is still running).
pub fn seq_at_time_upto(store: &dyn LogStore, time_ms: i64, head: u64) -> Result<u64, StoreError> {
    let (mut lo, mut hi) = (0u64, head); // invariant: time(lo) <= t (or lo = 0), time(hi+1) > t
    while lo < hi {
        let mid = lo + (hi - lo).div_ceil(2);
        let bytes = record_bytes(store, mid)?;
        let t = codec::record_time(&bytes).map_err(|e| StoreError::Corrupt { seq: mid, reason: e.to_string() })?;
        if t <= time_ms {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo)
}

/// The whole projection as it stood after `seq`: the newest snapshot at or below it, then the
/// records after the snapshot.
pub fn state_at(store: &dyn LogStore, seq: u64) -> Result<State, StoreError> {
    let (from, state) = crate::ledger::newest_snapshot_at_or_below(store, seq)?;
    let prev_hash = if from == 0 { ledger_core::ChainHash::GENESIS } else { record_hash(store, from)? };
    let mut replay = Replay::after(from, prev_hash, state);
    for item in store.records(from + 1, seq) {
        let (s, bytes) = item?;
        replay.apply(s, &bytes)?;
    }
    Ok(replay.state)
}

/// One secret as it stood after `seq`, replayed from its own events only (the per-secret
/// index): cost grows with that secret's history, not with the log.
pub fn secret_state_at(store: &dyn LogStore, uid: SecretUid, seq: u64) -> Result<Option<SecretState>, StoreError> {
    let mut state = State::default();
    state.expect_uid(uid);
    for s in secret_seqs(store, uid)?.into_iter().take_while(|&s| s <= seq) {
        let r = read_record(store, s)?;
        evolve(&mut state, s, r.recorded_at_ms, &r.event)
            .map_err(|e| StoreError::Corrupt { seq: s, reason: e.to_string() })?;
    }
    Ok(state.secret(uid).cloned())
}

/// Which of `candidates` (identities of one name in one region, in creation order) the name
/// meant at `seq`: the newest created by then and not yet purged.
pub fn resolve_at(
    store: &dyn LogStore,
    candidates: &[SecretIdentity],
    seq: u64,
) -> Result<Option<SecretState>, StoreError> {
    for candidate in candidates.iter().rev().filter(|c| c.created_seq <= seq) {
        if let Some(secret) = secret_state_at(store, candidate.uid, seq)? {
            return Ok(Some(secret));
        }
    }
    Ok(None)
}

/// Leaf hashes read from the log: leaf `m` is the record at seq `m + 1`.
pub struct LogLeaves<'a> {
    pub store: &'a dyn LogStore,
    pub size: u64,
}

impl LeafSource for LogLeaves<'_> {
    type Error = StoreError;

    fn leaf_count(&self) -> u64 {
        self.size
    }

    fn leaf_hash(&self, index: u64) -> Result<[u8; 32], StoreError> {
        let seq = index + 1;
        Ok(merkle::leaf_hash(&record_hash(self.store, seq)?))
    }

    /// Ranges of at least two chunks are combined from the stored chunk roots (`r`), so a
    /// proof or root costs O(n / 1024 + 1024 log n) reads instead of O(n).
    fn subtree_root(&self, start: u64, end: u64) -> Result<Option<[u8; 32]>, StoreError> {
        if end - start < 2 * layout::MERKLE_CHUNK {
            return Ok(None);
        }
        self.mth(start, end).map(Some)
    }
}

impl LogLeaves<'_> {
    /// MTH of `[start, end)` per RFC 9162, using stored chunk roots for aligned perfect
    /// subtrees and the leaves for the rest.
    fn mth(&self, start: u64, end: u64) -> Result<[u8; 32], StoreError> {
        let n = end - start;
        let chunk = layout::MERKLE_CHUNK;
        if n.is_power_of_two() && n >= chunk && start.is_multiple_of(n) {
            if let Some(root) = self.chunk_roots(start / chunk, end / chunk)? {
                return Ok(root);
            }
        }
        if n <= chunk {
            let mut builder = merkle::MerkleBuilder::new();
            for index in start..end {
                builder.push(self.leaf_hash(index)?);
            }
            return Ok(builder.root());
        }
        let k = merkle::split_point(n);
        Ok(merkle::node_hash(&self.mth(start, start + k)?, &self.mth(start + k, end)?))
    }

    /// The perfect tree over chunk roots `[first, last)`, or `None` if one is not stored.
    fn chunk_roots(&self, first: u64, last: u64) -> Result<Option<[u8; 32]>, StoreError> {
        let mut builder = merkle::MerkleBuilder::new();
        for root in self.store.merkle_roots(first, last)? {
            // A chunk root is the root of a perfect subtree: pushed as is, the builder combines
            // 2^j of them exactly as the tree above them does.
            builder.push(root);
        }
        Ok((builder.len() == last - first).then(|| builder.root()))
    }
}

/// The root of the chunk of leaves in progress at `head`, for the writer to continue it.
pub(crate) fn chunk_in_progress(store: &dyn LogStore, head: u64) -> Result<merkle::MerkleBuilder, StoreError> {
    let start = head - head % layout::MERKLE_CHUNK;
    let leaves = LogLeaves { store, size: head };
    let mut builder = merkle::MerkleBuilder::new();
    for index in start..head {
        builder.push(leaves.leaf_hash(index)?);
    }
    Ok(builder)
}

/// An inclusion proof for the record at `seq` in the tree of the first `size` records.
pub fn inclusion_proof(store: &dyn LogStore, seq: u64, size: u64) -> Result<Vec<[u8; 32]>, StoreError> {
    let leaves = LogLeaves { store, size };
    merkle::inclusion_proof(&leaves, seq.saturating_sub(1), size).map_err(merkle_error)
}

/// A consistency proof between the trees of the first `old_size` and `new_size` records.
pub fn consistency_proof(store: &dyn LogStore, old_size: u64, new_size: u64) -> Result<Vec<[u8; 32]>, StoreError> {
    let leaves = LogLeaves { store, size: new_size };
    merkle::consistency_proof(&leaves, old_size, new_size).map_err(merkle_error)
}

fn merkle_error(e: merkle::MerkleError<StoreError>) -> StoreError {
    match e {
        merkle::MerkleError::Source(inner) => inner,
        other => StoreError::Engine(other.to_string()),
    }
}

/// Merkle root over the first `size` records.
pub fn merkle_root(store: &dyn LogStore, size: u64) -> Result<[u8; 32], StoreError> {
    let (head, _) = store.head()?;
    if size > head {
        return Err(StoreError::Corrupt { seq: head + 1, reason: "log shorter than the checkpoint".into() });
    }
    merkle::tree_root(&LogLeaves { store, size }, size).map_err(merkle_error)
}

/// A checkpoint of the log's current head.
pub fn checkpoint(store: &dyn LogStore, origin: &str, time_ms: i64) -> Result<Checkpoint, StoreError> {
    checkpoint_upto(store, store.head()?, origin, time_ms)
}

/// A checkpoint of the first `head.0` records, whose last hash is `head.1`.
pub fn checkpoint_upto(
    store: &dyn LogStore,
    head: (u64, ledger_core::ChainHash),
    origin: &str,
    time_ms: i64,
) -> Result<Checkpoint, StoreError> {
    let (size, head_hash) = head;
    let merkle_root = merkle_root(store, size)?;
    Ok(Checkpoint { origin: origin.to_string(), size, head_hash, merkle_root, time_ms, signature: None })
}

pub const EXPORT_FORMAT: &str = "secret-ledger-export";
pub const EXPORT_FORMAT_VERSION: u64 = 1;

/// Writes the whole log as JSON Lines: a header, one line per record (its exact stored bytes
/// in base64, plus the envelope decoded for people), and a closing checkpoint.
pub fn export(
    store: &dyn LogStore,
    out: &mut dyn Write,
    origin: &str,
    time_ms: i64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Checkpoint, StoreError> {
    export_upto(store, store.head()?, out, origin, time_ms, progress)
}

/// [`export`] of the first `head.0` records, whose last hash is `head.1`.
pub fn export_upto(
    store: &dyn LogStore,
    head: (u64, ledger_core::ChainHash),
    out: &mut dyn Write,
    origin: &str,
    time_ms: i64,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Checkpoint, StoreError> {
    let (head, head_hash) = head;
    let mut key_ids = BTreeSet::new();
    key_ids.extend(store.master_key_id().ok().flatten());
    // A data dir not yet opened by this build keeps its keys in sled.
    key_ids.extend(store.legacy_keys().unwrap_or_default().into_iter().map(|(_, w)| w.master_key_id));
    let header = serde_json::json!({
        "type": "header",
        "format": EXPORT_FORMAT,
        "format_version": EXPORT_FORMAT_VERSION,
        "record_format_version": codec::FORMAT_VERSION,
        "origin": origin,
        "events": head,
        "exported_at": format_rfc3339_ms(time_ms),
        "master_key_ids": key_ids,
    });
    writeln!(out, "{header}")?;
    let mut builder = merkle::MerkleBuilder::new();
    for item in store.records(1, head) {
        let (seq, v) = item?;
        let r = decode_record(&v).map_err(|e| StoreError::Corrupt { seq, reason: e.to_string() })?;
        builder.push_chain_hash(&r.hash);
        let line = serde_json::json!({
            "type": "event",
            "seq": seq,
            "hash": r.hash.to_hex(),
            "prev_hash": r.prev_hash.to_hex(),
            "recorded_at": format_rfc3339_ms(r.recorded_at_ms),
            "actor": r.actor,
            "request_id": r.request_id,
            "operation": r.operation,
            "event": r.event.name(),
            "secret": r.event.secret().0,
            "change": describe(&r.event),
            "record": base64::engine::general_purpose::STANDARD.encode(&*v),
        });
        writeln!(out, "{line}")?;
        if seq.is_multiple_of(4096) {
            progress(seq, head);
        }
    }
    let checkpoint = Checkpoint {
        origin: origin.to_string(),
        size: head,
        head_hash,
        merkle_root: builder.root(),
        time_ms,
        signature: None,
    };
    let mut closing: serde_json::Value = serde_json::from_str(&checkpoint.to_json())
        .map_err(|e| StoreError::Engine(format!("checkpoint encoding: {e}")))?;
    closing["type"] = serde_json::Value::from("checkpoint");
    writeln!(out, "{closing}")?;
    out.flush()?;
    progress(head, head);
    Ok(checkpoint)
}

/// The members of an export line that verification reads.
#[derive(serde::Deserialize)]
struct ExportLine<'a> {
    #[serde(rename = "type", borrow)]
    kind: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    format: Option<std::borrow::Cow<'a, str>>,
    events: Option<u64>,
    seq: Option<u64>,
    #[serde(borrow)]
    record: Option<std::borrow::Cow<'a, str>>,
    // The envelope decoded for people: must say what the record says.
    #[serde(borrow)]
    hash: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    prev_hash: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    recorded_at: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    actor: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    request_id: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    operation: Option<std::borrow::Cow<'a, str>>,
    #[serde(borrow)]
    event: Option<std::borrow::Cow<'a, str>>,
    secret: Option<u64>,
    #[serde(borrow)]
    change: Option<std::borrow::Cow<'a, str>>,
}

impl ExportLine<'_> {
    /// The first readable field that differs from the record, if any.
    fn matches(&self, r: &Record) -> Result<(), String> {
        let same =
            |field: &Option<std::borrow::Cow<'_, str>>, actual: &str| field.as_deref().is_none_or(|f| f == actual);
        let checks = [
            ("hash", same(&self.hash, &r.hash.to_hex())),
            ("prev_hash", same(&self.prev_hash, &r.prev_hash.to_hex())),
            ("recorded_at", same(&self.recorded_at, &format_rfc3339_ms(r.recorded_at_ms))),
            ("actor", same(&self.actor, &r.actor)),
            ("request_id", same(&self.request_id, &r.request_id)),
            ("operation", same(&self.operation, &r.operation)),
            ("event", same(&self.event, r.event.name())),
            ("secret", self.secret.is_none_or(|s| s == r.event.secret().0)),
            ("change", same(&self.change, &describe(&r.event))),
        ];
        match checks.iter().find(|(_, ok)| !ok) {
            Some((field, _)) => Err((*field).to_string()),
            None => Ok(()),
        }
    }
}

/// Verifies an export file with no keys and no sled: every record as `verify` does, the
/// closing checkpoint against the records, and, given a checkpoint kept elsewhere, that the
/// file holds the log it describes (a truncated tail is caught there).
pub fn verify_export(
    input: &mut dyn BufRead,
    trusted: Option<&Checkpoint>,
    progress: &mut dyn FnMut(u64, u64),
) -> Result<Result<VerifyReport, VerifyFailure>, StoreError> {
    let mut verifier = Verifier::default();
    let mut trusted_root_seen = false;
    let mut closing: Option<Checkpoint> = None;
    let mut declared = 0u64;
    let bad = |seq: u64, why: String| Ok(Err(VerifyFailure { seq, reason: FailureReason::Undecodable(why) }));
    for (line_no, line) in input.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let next = verifier.len() + 1;
        // Only the members verification needs, borrowed from the line; the rest (the decoded
        // envelope for people) is skipped, not built.
        let value: ExportLine<'_> = match serde_json::from_str(&line) {
            Ok(v) => v,
            Err(e) => return bad(next, format!("line {}: not an export line: {e}", line_no + 1)),
        };
        if closing.is_some() {
            return bad(next, format!("line {}: data after the closing checkpoint", line_no + 1));
        }
        match value.kind.as_deref() {
            Some("header") if line_no == 0 => {
                if value.format.as_deref() != Some(EXPORT_FORMAT) {
                    return bad(0, "not a secret-ledger export".into());
                }
                declared = value.events.unwrap_or(0);
            }
            Some("event") if line_no > 0 => {
                let seq = value.seq.unwrap_or(0);
                let Some(record) = value.record.as_deref() else {
                    return bad(next, format!("line {}: event without record", line_no + 1));
                };
                let bytes = match base64::engine::general_purpose::STANDARD.decode(record) {
                    Ok(b) => b,
                    Err(e) => return bad(next, format!("line {}: record is not base64: {e}", line_no + 1)),
                };
                if let Err(failure) = verifier.push_checked(seq, &bytes, |r| value.matches(r)) {
                    return Ok(Err(failure));
                }
                if let Some(t) = trusted.filter(|t| t.size == verifier.len()) {
                    if verifier.merkle_root() != t.merkle_root || verifier.head_hash() != t.head_hash {
                        return Ok(Err(VerifyFailure { seq: t.size, reason: FailureReason::CheckpointMismatch }));
                    }
                    trusted_root_seen = true;
                }
                if seq.is_multiple_of(4096) {
                    progress(seq, declared);
                }
            }
            Some("checkpoint") if line_no > 0 => match Checkpoint::from_json(&line) {
                Ok(c) => closing = Some(c),
                Err(e) => return bad(next, format!("line {}: closing checkpoint: {e}", line_no + 1)),
            },
            _ => return bad(next, format!("line {}: unexpected line", line_no + 1)),
        }
    }
    let n = verifier.len();
    if let Some(t) = trusted {
        if t.size > n {
            return Ok(Err(VerifyFailure {
                seq: n + 1,
                reason: FailureReason::Truncated { expected: t.size, found: n },
            }));
        }
        if !trusted_root_seen && t.size > 0 {
            return Ok(Err(VerifyFailure { seq: t.size, reason: FailureReason::CheckpointMismatch }));
        }
    }
    let Some(closing) = closing else {
        return Ok(Err(VerifyFailure {
            seq: n + 1,
            reason: FailureReason::NoClosingCheckpoint { announced: declared, found: n },
        }));
    };
    if closing.size != n || closing.merkle_root != verifier.merkle_root() || closing.head_hash != verifier.head_hash() {
        return Ok(Err(VerifyFailure { seq: closing.size.min(n) + 1, reason: FailureReason::CheckpointMismatch }));
    }
    progress(n, n);
    Ok(Ok(verifier.report(0)))
}

/// Opens the value of `version_id` of `secret` with the master key, if its data key still
/// exists (it is destroyed when the secret is purged) and the version was not pruned.
pub fn open_version_value(
    store: &dyn LogStore,
    master: &ledger_core::crypto::MasterKey,
    secret: &SecretState,
    version_id: &str,
) -> Result<Option<ledger_core::SecretValue>, StoreError> {
    let Some(version) = secret.versions.get(version_id).filter(|v| v.has_value) else { return Ok(None) };
    // The data-key file (or, in a data dir not yet opened by this build, sled's key space).
    let wrapped = match store.key_file()? {
        Some(file) => file.keys.get(&secret.uid.0).cloned(),
        None => store.legacy_keys()?.into_iter().find(|(uid, _)| *uid == secret.uid.0).map(|(_, w)| w),
    };
    let Some(wrapped) = wrapped else { return Ok(None) };
    let key = ledger_core::crypto::unwrap_key(master, secret.uid, &wrapped).ok_or(StoreError::WrongMasterKey)?;
    let record = read_record(store, version.seq)?;
    let Some(value) = record.event.sealed_value() else {
        return Err(StoreError::Corrupt { seq: version.seq, reason: "not a record with a value".into() });
    };
    Ok(ledger_core::crypto::open_value(&key, secret.uid, version_id, value))
}

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
    let mut replay = Replay::after(0, ledger_core::ChainHash::GENESIS, State::default());
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

/// Head of the log: (seq, hash).
pub fn head(store: &dyn LogStore) -> Result<(u64, ledger_core::ChainHash), StoreError> {
    store.head()
}

/// The chain hash of the record at `seq`.
pub fn record_hash(store: &dyn LogStore, seq: u64) -> Result<ledger_core::ChainHash, StoreError> {
    let bytes = record_bytes(store, seq)?;
    Ok(codec::decode_header(&bytes).map_err(|e| StoreError::Corrupt { seq, reason: e.to_string() })?.0.hash)
}

/// `recorded_at_ms` of the record at `seq`.
pub fn record_time(store: &dyn LogStore, seq: u64) -> Result<i64, StoreError> {
    let bytes = record_bytes(store, seq)?;
    codec::record_time(&bytes).map_err(|e| StoreError::Corrupt { seq, reason: e.to_string() })
}
