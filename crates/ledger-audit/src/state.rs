//! `state`: the secrets as they stood at a seq or a time, and which version held a label.

use ledger_core::time::{format_rfc3339_ms, parse_rfc3339};
use ledger_core::SecretState;
use ledger_store::LogStore;
use serde::{Deserialize, Serialize};

use crate::error::{short, AuditError};
use crate::events;
use crate::history::resolve_secret;

/// A seq, or the last seq recorded at or before an RFC 3339 time, within the first `head`.
pub fn parse_as_of(store: &dyn LogStore, head: u64, as_of: &str) -> Result<u64, AuditError> {
    if let Ok(seq) = as_of.parse::<u64>() {
        return Ok(seq);
    }
    let Some(ms) = parse_rfc3339(as_of) else {
        let hint = if as_of.contains('T') && !as_of.ends_with('Z') && !as_of.contains('+') {
            " (a time needs its zone: end it with Z for UTC, or an offset such as +01:00)"
        } else {
            ""
        };
        return Err(AuditError::Invalid(format!(
            "--as-of takes a seq (such as 42) or an RFC 3339 time (such as 2026-11-27T03:12:00Z), not {:?}{hint}",
            short(as_of)
        )));
    };
    Ok(events::seq_at_time_upto(store, ms, head)?)
}

/// Secrets as they stood at one seq.
#[derive(Clone, Debug)]
pub struct StateAt {
    pub seq: u64,
    pub time_ms: Option<i64>,
    /// The seq asked for, when it is not the one shown (inside a request, or past the head).
    pub requested_seq: Option<u64>,
    /// Why the seq shown differs from the one asked for.
    pub note: Option<String>,
    /// The region a `SecretId` was resolved in; for the whole ledger, the region it was
    /// narrowed to, or `None` for every region.
    pub region: Option<String>,
    /// Ordered by region, then name.
    pub secrets: Vec<SecretState>,
}

impl StateAt {
    /// The version holding `label` in the first secret, if a label was asked for and a secret
    /// found.
    pub fn label_holder(&self, label: Option<&str>) -> Option<(&SecretState, Option<String>)> {
        let (label, secret) = (label?, self.secrets.first()?);
        Some((secret, secret.holder(label).map(str::to_string)))
    }
}

/// The seq shown for the seq `asked`, and why it differs if it does: past the head shows the
/// head; inside a request (a state no client saw) the state after it, unless `exact`.
fn seq_shown(store: &dyn LogStore, head: u64, asked: u64, exact: bool) -> Result<(u64, Option<String>), AuditError> {
    if asked > head {
        return Ok((head, Some(format!("seq {asked} is past the head of the log: showing the head, seq {head}"))));
    }
    if asked == 0 {
        return Ok((0, None));
    }
    Ok(match events::request_span(store, asked, head)? {
        (first, last) if last != asked && !exact => (
            last,
            Some(format!(
                "seq {asked} is inside one request (seqs {first} to {last}), a state no client saw: showing the \
                 state after that request, seq {last} (--exact shows seq {asked})"
            )),
        ),
        (first, last) if last != asked => (
            asked,
            Some(format!("seq {asked} is inside one request (seqs {first} to {last}): shown as asked (--exact)")),
        ),
        _ => (asked, None),
    })
}

/// The state as of `as_of` in the first `head` records: of the secret `secret_id` named then
/// within `region` (see [`resolve_secret`]); without `secret_id`, of every secret in `region`,
/// or in every region when `region` is `None`.
pub fn state_at(
    store: &dyn LogStore,
    head: u64,
    as_of: &str,
    exact: bool,
    secret_id: Option<&str>,
    region: Option<&str>,
) -> Result<StateAt, AuditError> {
    let asked = parse_as_of(store, head, as_of)?;
    let (seq, note) = seq_shown(store, head, asked, exact)?;
    let requested_seq = (seq != asked || note.is_some()).then_some(asked);
    let time_ms = if seq == 0 { None } else { Some(store.record_time(seq)?) };
    let (region, mut secrets): (Option<String>, Vec<SecretState>) = match secret_id {
        Some(id) => {
            let candidates = resolve_secret(store, head, id, region)?;
            let region = candidates.first().map(|c| c.region.clone());
            (region, events::resolve_at(store, &candidates, seq)?.into_iter().collect())
        }
        None => {
            let all = ledger_store::state_at(store, seq)?;
            let kept = all.secrets().filter(|s| region.is_none_or(|r| s.region == r)).cloned().collect();
            (region.map(str::to_string), kept)
        }
    };
    secrets.sort_by(|a, b| (&a.region, &a.name, a.uid).cmp(&(&b.region, &b.name, b.uid)));
    Ok(StateAt { seq, time_ms, requested_seq, note, region, secrets })
}

/// A secret's rotation, as of the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationDoc {
    pub enabled: bool,
    pub lambda_arn: Option<String>,
    pub last_rotated: Option<String>,
    pub next_rotation: Option<String>,
}

/// One version of a secret, as of the state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionDoc {
    pub version_id: String,
    pub created_at: String,
    pub labels: Vec<String>,
    pub has_value: bool,
    pub last_accessed: Option<String>,
    pub seq: u64,
}

/// One secret of a state document: versions and labels, never values.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecretDoc {
    pub name: String,
    pub region: String,
    pub arn: String,
    pub created_at: String,
    pub deletion_scheduled_for: Option<String>,
    pub last_accessed: Option<String>,
    pub rotation: RotationDoc,
    /// Whether a resource policy was attached (not the policy).
    pub resource_policy: bool,
    pub versions: Vec<VersionDoc>,
}

impl SecretDoc {
    pub fn new(s: &SecretState) -> SecretDoc {
        SecretDoc {
            name: s.name.clone(),
            region: s.region.clone(),
            arn: s.arn.clone(),
            created_at: format_rfc3339_ms(s.created_at_ms),
            deletion_scheduled_for: s.deletion.map(|d| format_rfc3339_ms(d.deletion_date_ms)),
            last_accessed: s.last_accessed_day_ms.map(format_rfc3339_ms),
            rotation: RotationDoc {
                enabled: s.rotation.enabled,
                lambda_arn: s.rotation.lambda_arn.clone(),
                last_rotated: s.rotation.last_rotated_at_ms.map(format_rfc3339_ms),
                next_rotation: ledger_core::rotation::next_rotation(s).map(format_rfc3339_ms),
            },
            resource_policy: s.resource_policy.is_some(),
            versions: s
                .versions
                .iter()
                .map(|(id, v)| VersionDoc {
                    version_id: id.clone(),
                    created_at: format_rfc3339_ms(v.created_at_ms),
                    labels: v.labels.iter().cloned().collect(),
                    has_value: v.has_value,
                    last_accessed: v.last_accessed_day_ms.map(format_rfc3339_ms),
                    seq: v.seq,
                })
                .collect(),
        }
    }
}

/// A revealed value (offline only, with the master key). Its `Debug` never shows the value.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum RevealedValue {
    SecretString(String),
    SecretBinaryHex(String),
    /// Why there is no value: the secret was purged (its data key destroyed), or it cannot be
    /// opened.
    #[serde(rename = "unavailable")]
    Unavailable(String),
}

impl std::fmt::Debug for RevealedValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RevealedValue::SecretString(_) => f.write_str("SecretString(<redacted>)"),
            RevealedValue::SecretBinaryHex(_) => f.write_str("SecretBinaryHex(<redacted>)"),
            RevealedValue::Unavailable(why) => f.debug_tuple("Unavailable").field(why).finish(),
        }
    }
}

/// Which version held a label, of which secret.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelDoc {
    pub label: String,
    pub region: String,
    pub arn: String,
    pub version_id: Option<String>,
    /// Offline with `--reveal-value` only; always `null` online.
    pub value: Option<RevealedValue>,
}

/// The `state` document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateDoc {
    pub as_of_seq: u64,
    pub as_of_time: Option<String>,
    pub requested_seq: Option<u64>,
    pub note: Option<String>,
    pub region: Option<String>,
    pub secrets: Vec<SecretDoc>,
    pub label: Option<LabelDoc>,
}

impl StateDoc {
    /// The document of `state`; `value` is the opened value of the label's holder (offline with
    /// the master key only).
    pub fn new(state: &StateAt, label: Option<&str>, value: Option<RevealedValue>) -> StateDoc {
        let label_doc = match (label, state.label_holder(label)) {
            (Some(label), Some((secret, holder))) => Some(LabelDoc {
                label: label.to_string(),
                region: secret.region.clone(),
                arn: secret.arn.clone(),
                version_id: holder,
                value,
            }),
            _ => None,
        };
        StateDoc {
            as_of_seq: state.seq,
            as_of_time: state.time_ms.map(format_rfc3339_ms),
            requested_seq: state.requested_seq,
            note: state.note.clone(),
            region: state.region.clone(),
            secrets: state.secrets.iter().map(SecretDoc::new).collect(),
            label: label_doc,
        }
    }
}
