//! `history`: which secrets a `SecretId` names in a region, and their events; or the events of
//! the whole ledger that a filter keeps.

use std::collections::{BTreeSet, HashMap};

use ledger_core::time::{format_rfc3339_ms, parse_rfc3339};
use ledger_store::LogStore;
use serde::{Deserialize, Serialize};

use crate::error::{short, AuditError};
use crate::events::{self, HistoryEntry, SecretIdentity};

/// The secrets `secret_id` names within `region`, created by `head`, in creation order (more
/// than one when the name was re-created after a purge). A name resolves within one region, as
/// every Secrets Manager call does; an ARN within its own. With no region, a name used in
/// several regions is [`AuditError::Ambiguous`].
pub fn resolve_secret(
    store: &dyn LogStore,
    head: u64,
    secret_id: &str,
    region: Option<&str>,
) -> Result<Vec<SecretIdentity>, AuditError> {
    let mut found = events::secret_identities(store, secret_id)?;
    found.retain(|s| s.created_seq <= head);
    let regions: BTreeSet<&str> = found.iter().map(|s| s.region.as_str()).collect();
    if found.is_empty() {
        return Err(AuditError::NotFound(format!("no secret {} in this ledger", short(secret_id))));
    }
    match region {
        Some(region) if !regions.contains(region) => {
            let elsewhere: Vec<&str> = regions.into_iter().collect();
            Err(AuditError::NotFound(format!(
                "no secret {} in region {}; it exists in {}",
                short(secret_id),
                short(region),
                elsewhere.join(", ")
            )))
        }
        Some(region) => {
            found.retain(|s| s.region == region);
            Ok(found)
        }
        None if regions.len() > 1 => {
            let mut message = format!(
                "{} names secrets in {} regions; choose one with a region or a full ARN:",
                short(secret_id),
                regions.len()
            );
            for s in &found {
                message.push_str(&format!("\n  {}  {}", s.region, s.arn));
            }
            Err(AuditError::Ambiguous(message))
        }
        None => Ok(found),
    }
}

/// The filters of `history`: who, which operation, and a range of seqs or times (inclusive);
/// for the ledger-wide history also a region.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryFilter {
    pub actor: Option<String>,
    pub operation: Option<String>,
    /// A seq, or an RFC 3339 time: events from then on.
    pub since: Option<String>,
    /// A seq, or an RFC 3339 time: events up to then.
    pub until: Option<String>,
    /// The ledger-wide history only: just the events of secrets in this region (events that
    /// concern no secret, such as a master key rotation, are left out too). One secret's
    /// history ignores it: its `SecretId` resolves in a region of its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

impl HistoryFilter {
    /// The seqs the filter spans, within the first `head` records.
    fn range(&self, store: &dyn LogStore, head: u64) -> Result<(u64, u64), AuditError> {
        let from = match &self.since {
            None => 1,
            Some(since) => match since.parse::<u64>() {
                Ok(seq) => seq,
                // The first record at or after the time.
                Err(_) => events::seq_at_time_upto(store, time_of(since, "--since")?.saturating_sub(1), head)? + 1,
            },
        };
        let to = match &self.until {
            None => head,
            Some(until) => match until.parse::<u64>() {
                Ok(seq) => seq.min(head),
                Err(_) => events::seq_at_time_upto(store, time_of(until, "--until")?, head)?,
            },
        };
        Ok((from.max(1), to))
    }

    fn keeps(&self, actor: &str, operation: &str) -> bool {
        self.actor.as_deref().is_none_or(|a| a == actor) && self.operation.as_deref().is_none_or(|o| o == operation)
    }
}

fn time_of(text: &str, what: &str) -> Result<i64, AuditError> {
    parse_rfc3339(text).ok_or_else(|| {
        AuditError::Invalid(format!(
            "{what} takes a seq (such as 42) or an RFC 3339 time (such as 2026-11-27T03:00:00Z), not {:?}",
            short(text)
        ))
    })
}

/// A label move: `label` went from version `from` to version `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelMove {
    pub label: String,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// One event in a history document. Never a value: `change` names versions, labels and tags.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventDoc {
    pub seq: u64,
    /// RFC 3339, milliseconds, UTC.
    pub recorded_at: String,
    pub actor: String,
    pub request_id: String,
    /// The operation that appended it; empty for records of the first format.
    pub operation: String,
    /// The uid of the secret it concerns (0: the ledger itself).
    pub secret: u64,
    pub event: String,
    pub change: String,
    /// On `LabelMoved` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_move: Option<LabelMove>,
    /// In the ledger-wide history: the secret's name, region and ARN.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arn: Option<String>,
}

impl EventDoc {
    fn new(e: &HistoryEntry) -> EventDoc {
        EventDoc {
            seq: e.seq,
            recorded_at: format_rfc3339_ms(e.recorded_at_ms),
            actor: e.actor.clone(),
            request_id: e.request_id.clone(),
            operation: e.operation.clone(),
            secret: e.secret.0,
            event: e.event.to_string(),
            change: e.change.clone(),
            label_move: e.label_move.as_ref().map(|(label, from, to)| LabelMove {
                label: label.clone(),
                from: from.clone(),
                to: to.clone(),
            }),
            name: None,
            region: None,
            arn: None,
        }
    }
}

/// One secret of a history document: who it is, and its events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretHistoryDoc {
    pub uid: u64,
    pub name: String,
    pub region: String,
    pub arn: String,
    pub events: Vec<EventDoc>,
}

/// `history --secret-id`: the region the id resolved in, then each secret it named there (a
/// re-created name is a second secret) with its ARN and events.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistoryDoc {
    pub secret_id: String,
    pub region: Option<String>,
    pub secrets: Vec<SecretHistoryDoc>,
}

/// `history` without a secret: every event of the ledger the filter kept, with its secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerHistoryDoc {
    pub filters: HistoryFilter,
    pub from_seq: u64,
    pub to_seq: u64,
    pub events: Vec<EventDoc>,
}

/// The history of each secret `secret_id` names within `region` (see [`resolve_secret`]), in
/// the first `head` records.
pub fn history(
    store: &dyn LogStore,
    head: u64,
    secret_id: &str,
    region: Option<&str>,
    filter: &HistoryFilter,
) -> Result<HistoryDoc, AuditError> {
    let (from, to) = filter.range(store, head)?;
    let secrets = resolve_secret(store, head, secret_id, region)?
        .into_iter()
        .map(|secret| {
            let events = events::secret_history(store, secret.uid)?
                .iter()
                .filter(|e| (from..=to).contains(&e.seq) && filter.keeps(&e.actor, &e.operation))
                .map(EventDoc::new)
                .collect();
            Ok(SecretHistoryDoc {
                uid: secret.uid.0,
                name: secret.name,
                region: secret.region,
                arn: secret.arn,
                events,
            })
        })
        .collect::<Result<Vec<_>, AuditError>>()?;
    let region = secrets.first().map(|s| s.region.clone());
    Ok(HistoryDoc { secret_id: secret_id.to_string(), region, secrets })
}

/// The ledger-wide history in the first `head` records: every event the filter keeps, each
/// with the secret it concerns (with a region in the filter, only the events of that region's
/// secrets).
pub fn ledger_history(store: &dyn LogStore, head: u64, filter: &HistoryFilter) -> Result<LedgerHistoryDoc, AuditError> {
    let (from, to) = filter.range(store, head)?;
    let entries = events::log_history(store, from, to, &|r| filter.keeps(&r.actor, &r.operation))?;
    let mut identities: HashMap<u64, Option<SecretIdentity>> = HashMap::new();
    let mut docs = Vec::with_capacity(entries.len());
    for e in &entries {
        let identity = match identities.entry(e.secret.0) {
            std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
            std::collections::hash_map::Entry::Vacant(new) => new.insert(events::secret_identity(store, e.secret)?),
        };
        if let Some(region) = &filter.region {
            if identity.as_ref().is_none_or(|id| &id.region != region) {
                continue;
            }
        }
        let mut doc = EventDoc::new(e);
        if let Some(id) = identity {
            doc.name = Some(id.name.clone());
            doc.region = Some(id.region.clone());
            doc.arn = Some(id.arn.clone());
        }
        docs.push(doc);
    }
    Ok(LedgerHistoryDoc { filters: filter.clone(), from_seq: from, to_seq: to, events: docs })
}
