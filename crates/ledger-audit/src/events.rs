//! Reading events: one secret's history, the ledger-wide history, the secrets a name has
//! meant, times to seqs, and one secret replayed to a point in time.

use ledger_core::codec::{self, decode_record};
use ledger_core::crypto::MasterKey;
use ledger_core::names::{parse_secret_id, SecretRef};
use ledger_core::time::format_rfc3339_ms;
use ledger_core::{evolve, Event, Record, Scope, SecretState, SecretUid, SecretValue, State};
use ledger_store::{LogStore, StoreError};

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
            let parts = [("description", description), ("kms key", kms_key_id), ("type", secret_type)];
            let parts: Vec<String> =
                parts.iter().filter_map(|(what, v)| v.as_ref().map(|v| format!("{what} = {v:?}"))).collect();
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
        Event::RotationConfigured { lambda_arn, rules, .. } => describe_rotation(lambda_arn.as_deref(), rules.as_ref()),
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

/// `RotationConfigured` in words: the function and the rules given.
fn describe_rotation(lambda_arn: Option<&str>, rules: Option<&ledger_core::RotationRules>) -> String {
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

fn read_record(store: &dyn LogStore, seq: u64) -> Result<Record, StoreError> {
    decode_record(&store.existing_record(seq)?).map_err(|e| StoreError::Corrupt { seq, reason: e.to_string() })
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
        let bytes = store.existing_record(mid)?;
        let t = codec::record_time(&bytes).map_err(|e| StoreError::Corrupt { seq: mid, reason: e.to_string() })?;
        if t <= time_ms {
            lo = mid;
        } else {
            hi = mid - 1;
        }
    }
    Ok(lo)
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

/// Opens the value of `version_id` of `secret` with the master key, if its data key still
/// exists (it is destroyed when the secret is purged) and the version was not pruned.
pub fn open_version_value(
    store: &dyn LogStore,
    master: &MasterKey,
    secret: &SecretState,
    version_id: &str,
) -> Result<Option<SecretValue>, StoreError> {
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
