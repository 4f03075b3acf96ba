//! Reads: GetSecretValue, BatchGetSecretValue, DescribeSecret, ListSecretVersionIds and
//! ListSecrets, answered from the projection. They append nothing. Values are located here
//! (the seq of their `VersionCreated` record) and opened by the store.

use base64::Engine;

use crate::error::SmError;
use crate::event::Tag;
use crate::ids::{Scope, SecretUid};
use crate::limits::*;
use crate::names::resolve;
use crate::state::{SecretState, State};
use crate::validate::check_len;
use crate::value::ValueKind;
use crate::AWSCURRENT;

#[derive(Clone, Debug, Default)]
pub struct GetSecretValue {
    pub secret_id: String,
    pub version_id: Option<String>,
    pub version_stage: Option<String>,
}

/// Where a requested value lives; the store reads the record at `seq` and opens it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValueLocation {
    pub secret: SecretUid,
    pub arn: String,
    pub name: String,
    pub version_id: String,
    pub version_stages: Vec<String>,
    pub created_at_ms: i64,
    pub kind: ValueKind,
    pub seq: u64,
}

pub fn get_secret_value(state: &State, scope: &Scope, q: &GetSecretValue) -> Result<ValueLocation, SmError> {
    if let Some(id) = &q.version_id {
        check_len("versionId", id, TOKEN_CHARS_MIN, TOKEN_CHARS_MAX)?;
    }
    if let Some(stage) = &q.version_stage {
        check_len("versionStage", stage, 1, LABEL_CHARS_MAX)?;
    }
    let secret = resolve(state, scope, &q.secret_id)?;
    if secret.is_scheduled() {
        return Err(SmError::MarkedForDeletion);
    }
    current_value(secret, q.version_id.as_deref(), q.version_stage.as_deref())
}

fn current_value(
    secret: &SecretState,
    version_id: Option<&str>,
    stage: Option<&str>,
) -> Result<ValueLocation, SmError> {
    let by_id = version_id.is_some();
    let version_id = match (version_id, stage) {
        (Some(id), stage) => {
            let version =
                secret.versions.get(id).ok_or_else(|| SmError::VersionNotFound { version_id: id.to_string() })?;
            if let Some(stage) = stage {
                if !version.labels.contains(stage) {
                    return Err(SmError::StageNotOnVersion);
                }
            }
            id
        }
        (None, stage) => {
            let label = stage.unwrap_or(AWSCURRENT);
            secret.holder(label).ok_or_else(|| SmError::LabelNotFound { label: label.to_string() })?
        }
    };
    let version = secret.versions.get(version_id).ok_or(SmError::Internal)?;
    // A version reserved by RotateSecret has no value until the rotation sets one.
    if !version.has_value {
        return Err(match by_id {
            true => SmError::VersionNotFound { version_id: version_id.to_string() },
            false => SmError::LabelNotFound { label: stage.unwrap_or(AWSCURRENT).to_string() },
        });
    }
    Ok(ValueLocation {
        secret: secret.uid,
        arn: secret.arn.clone(),
        name: secret.name.clone(),
        version_id: version_id.to_string(),
        version_stages: version.labels.iter().cloned().collect(),
        created_at_ms: version.created_at_ms,
        kind: version.kind,
        seq: version.seq,
    })
}

/// DescribeSecret / ListSecrets entry, in domain terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretDescription {
    pub arn: String,
    pub name: String,
    pub description: Option<String>,
    pub kms_key_id: Option<String>,
    pub secret_type: Option<String>,
    pub tags: Option<Vec<Tag>>,
    pub created_at_ms: i64,
    pub last_changed_at_ms: i64,
    /// When DeleteSecret was called, while the secret is scheduled for deletion.
    pub deleted_at_ms: Option<i64>,
    /// Version id → its labels, for every version with at least one label.
    pub versions_to_stages: Vec<(String, Vec<String>)>,
    pub rotation_enabled: bool,
    pub rotation_lambda_arn: Option<String>,
    pub rotation_rules: Option<crate::event::RotationRules>,
    pub last_rotated_ms: Option<i64>,
    /// Only while rotation is on and its schedule has a next date.
    pub next_rotation_ms: Option<i64>,
    /// Midnight (UTC) of the day of the last read.
    pub last_accessed_ms: Option<i64>,
}

pub fn describe(secret: &SecretState) -> SecretDescription {
    SecretDescription {
        arn: secret.arn.clone(),
        name: secret.name.clone(),
        description: secret.description.clone(),
        kms_key_id: secret.kms_key_id.clone(),
        secret_type: secret.secret_type.clone(),
        tags: secret.tags.clone(),
        created_at_ms: secret.created_at_ms,
        last_changed_at_ms: secret.last_changed_at_ms,
        deleted_at_ms: secret.deletion.map(|d| d.scheduled_at_ms),
        versions_to_stages: secret
            .versions
            .iter()
            .filter(|(_, v)| !v.labels.is_empty())
            .map(|(id, v)| (id.clone(), v.labels.iter().cloned().collect()))
            .collect(),
        rotation_enabled: secret.rotation.enabled,
        rotation_lambda_arn: secret.rotation.lambda_arn.clone(),
        rotation_rules: secret.rotation.rules.clone(),
        last_rotated_ms: secret.rotation.last_rotated_at_ms,
        next_rotation_ms: crate::rotation::next_rotation(secret),
        last_accessed_ms: secret.last_accessed_day_ms,
    }
}

pub fn describe_secret(state: &State, scope: &Scope, secret_id: &str) -> Result<SecretDescription, SmError> {
    Ok(describe(resolve(state, scope, secret_id)?))
}

#[derive(Clone, Debug, Default)]
pub struct ListSecretVersionIds {
    pub secret_id: String,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub include_deprecated: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionEntry {
    pub version_id: String,
    /// Empty for a deprecated version (the wire omits the key).
    pub version_stages: Vec<String>,
    pub created_at_ms: i64,
    pub last_accessed_ms: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionList {
    pub arn: String,
    pub name: String,
    pub versions: Vec<VersionEntry>,
    pub next_token: Option<String>,
}

fn page_size(max_results: Option<i64>, max: usize) -> Result<usize, SmError> {
    match max_results {
        None => Ok(max),
        Some(n) if n < 1 => Err(SmError::validation("maxResults", "Member must have value greater than or equal to 1")),
        Some(n) if n > max as i64 => {
            Err(SmError::validation("maxResults", &format!("Member must have value less than or equal to {max}")))
        }
        Some(n) => Ok(usize::try_from(n).unwrap_or(max)),
    }
}

/// Pagination cursors: `kind ‖ secret-or-query binding ‖ position`, base64url. Opaque to
/// clients; a token from another listing or a forged one is `InvalidNextTokenException`.
fn encode_cursor(kind: u8, binding: u64, position: &str) -> String {
    let mut raw = vec![kind];
    raw.extend_from_slice(&binding.to_be_bytes());
    raw.extend_from_slice(position.as_bytes());
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_cursor(token: &str, kind: u8, binding: u64) -> Result<String, SmError> {
    if token.is_empty() || token.len() > NEXT_TOKEN_CHARS_MAX {
        return Err(SmError::InvalidNextToken);
    }
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(token).map_err(|_| SmError::InvalidNextToken)?;
    if raw.len() < 9 || raw[0] != kind || raw[1..9] != binding.to_be_bytes() {
        return Err(SmError::InvalidNextToken);
    }
    String::from_utf8(raw[9..].to_vec()).map_err(|_| SmError::InvalidNextToken)
}

const CURSOR_VERSIONS: u8 = 1;
const CURSOR_SECRETS: u8 = 2;

/// Versions in creation order (by the seq of their `VersionCreated`).
pub fn list_secret_version_ids(state: &State, scope: &Scope, q: &ListSecretVersionIds) -> Result<VersionList, SmError> {
    let limit = page_size(q.max_results, LIST_PAGE_MAX)?;
    let secret = resolve(state, scope, &q.secret_id)?;
    let after: u64 = match &q.next_token {
        None => 0,
        Some(t) => decode_cursor(t, CURSOR_VERSIONS, secret.uid.0)?.parse().map_err(|_| SmError::InvalidNextToken)?,
    };
    let include_deprecated = q.include_deprecated.unwrap_or(false);
    let mut all: Vec<(&String, &crate::state::VersionState)> =
        // A version reserved by a rotation is listed once it has a value.
        secret
            .versions
            .iter()
            .filter(|(_, v)| v.has_value && v.seq > after && (include_deprecated || !v.labels.is_empty()))
            .collect();
    all.sort_by_key(|(_, v)| v.seq);
    let next_token =
        (all.len() > limit).then(|| encode_cursor(CURSOR_VERSIONS, secret.uid.0, &all[limit - 1].1.seq.to_string()));
    let versions = all
        .into_iter()
        .take(limit)
        .map(|(id, v)| VersionEntry {
            version_id: id.clone(),
            version_stages: v.labels.iter().cloned().collect(),
            created_at_ms: v.created_at_ms,
            last_accessed_ms: v.last_accessed_day_ms,
        })
        .collect();
    Ok(VersionList { arn: secret.arn.clone(), name: secret.name.clone(), versions, next_token })
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Filter {
    pub key: String,
    pub values: Vec<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SortBy {
    #[default]
    CreatedDate,
    LastChangedDate,
    LastAccessedDate,
    Name,
}

#[derive(Clone, Debug, Default)]
pub struct ListSecrets {
    pub include_planned_deletion: Option<bool>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
    pub filters: Vec<Filter>,
    pub sort_by: Option<String>,
    pub sort_order: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretList {
    pub secrets: Vec<SecretDescription>,
    pub next_token: Option<String>,
}

const FILTER_KEYS: [&str; 7] =
    ["description", "name", "tag-key", "tag-value", "primary-region", "owning-service", "all"];

pub fn check_filters(filters: &[Filter]) -> Result<(), SmError> {
    crate::validate::check_count("filters", filters.len(), 0, FILTERS_MAX)?;
    for (i, f) in filters.iter().enumerate() {
        if !FILTER_KEYS.contains(&f.key.as_str()) {
            return Err(SmError::Validation(format!(
                "1 validation error detected: Value '{}' at 'filters.{}.member.key' failed to satisfy constraint: Member must satisfy enum value set: [all, name, tag-key, description, tag-value, primary-region, owning-service]",
                f.key.chars().take(64).collect::<String>(),
                i + 1
            )));
        }
        if f.values.is_empty() || f.values.len() > FILTER_VALUES_MAX {
            return Err(SmError::validation(
                &format!("filters.{}.member.values", i + 1),
                &format!("Member must have length between 1 and {FILTER_VALUES_MAX}"),
            ));
        }
        for v in &f.values {
            let ok = v.chars().count() <= FILTER_VALUE_CHARS_MAX
                && v.chars().all(|c| c.is_ascii_alphanumeric() || " :_@/+=.-!".contains(c));
            if !ok {
                return Err(SmError::validation(
                    &format!("filters.{}.member.values", i + 1),
                    "Member must satisfy regular expression pattern: ^\\!?[a-zA-Z0-9 :_@\\/\\+\\=\\.\\-\\!]*$",
                ));
            }
        }
    }
    Ok(())
}

/// The word separators of the `description` and `all` filters.
const SEPARATORS: [char; 7] = ['/', '-', '_', '+', '=', '.', '@'];

/// Splits text into words as AWS does for the `description` and `all` filters (observed on
/// AWS): at white space; then each term at the separators when exactly one kind of separator
/// occurs in it (a term with two kinds is one word, and a separator alone is none), then each
/// part at every run of lower-case ASCII letters led by another character (`MyTest` → `My`,
/// `Test`; `COMPANYthings` → `COMPAN`, `Ythings`). Words are lower-cased.
fn words(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    for term in text.split_whitespace() {
        let mut present = SEPARATORS.iter().filter(|&&c| term.contains(c));
        match (present.next(), present.next()) {
            _ if term.chars().count() == 1 && term.starts_with(SEPARATORS) => {}
            (Some(&sep), None) => term.split(sep).for_each(|part| split_case(part, &mut out)),
            (Some(_), Some(_)) => out.push(term.to_lowercase()),
            (None, _) => split_case(term, &mut out),
        }
    }
    out.retain(|w| !w.is_empty());
    out
}

/// Splits `text` before every character that is not a lower-case ASCII letter and is followed
/// by one, and after the run of lower-case letters that follows it.
fn split_case(text: &str, out: &mut Vec<String>) {
    let chars: Vec<char> = text.chars().collect();
    let mut push = |piece: &[char]| out.push(piece.iter().collect::<String>().trim().to_lowercase());
    let (mut start, mut i) = (0, 0);
    while i < chars.len() {
        if !chars[i].is_ascii_lowercase() && chars.get(i + 1).is_some_and(char::is_ascii_lowercase) {
            let mut end = i + 1;
            while chars.get(end).is_some_and(char::is_ascii_lowercase) {
                end += 1;
            }
            push(&chars[start..i]);
            push(&chars[i..end]);
            (start, i) = (end, end);
        } else {
            i += 1;
        }
    }
    push(&chars[start..]);
}

/// Every word of `query` starts a word of `text` (case-insensitive); a query without words
/// matches nothing.
fn word_match(text: &str, query: &str) -> bool {
    let query_words = words(query);
    if query_words.is_empty() {
        return false;
    }
    let text_words = words(text);
    query_words.iter().all(|q| text_words.iter().any(|w| w.starts_with(q.as_str())))
}

fn filter_matches(secret: &SecretState, filter: &Filter) -> bool {
    let tags = secret.tags.as_deref().unwrap_or_default();
    filter.values.iter().any(|raw| {
        let (negate, value) = match raw.strip_prefix('!') {
            Some(v) => (true, v),
            None => (false, raw.as_str()),
        };
        let hit = match filter.key.as_str() {
            "name" => secret.name.starts_with(value),
            "tag-key" => tags.iter().any(|t| t.key.starts_with(value)),
            "tag-value" => tags.iter().any(|t| t.value.starts_with(value)),
            "description" => secret.description.as_deref().is_some_and(|d| word_match(d, value)),
            "primary-region" | "owning-service" => false,
            _ => {
                word_match(&secret.name, value)
                    || secret.description.as_deref().is_some_and(|d| word_match(d, value))
                    || tags.iter().any(|t| word_match(&t.key, value) || word_match(&t.value, value))
            }
        };
        hit != negate
    })
}

fn sort_key(secret: &SecretState, by: SortBy) -> String {
    match by {
        SortBy::Name => secret.name.clone(),
        SortBy::CreatedDate => format!("{:020}", secret.created_at_ms),
        // Never read sorts first; ties by creation.
        SortBy::LastAccessedDate => {
            format!("{:020}|{:020}", secret.last_accessed_day_ms.unwrap_or(0), secret.created_at_ms)
        }
        SortBy::LastChangedDate => format!("{:020}", secret.last_changed_at_ms),
    }
}

pub fn list_secrets(state: &State, scope: &Scope, q: &ListSecrets) -> Result<SecretList, SmError> {
    let limit = page_size(q.max_results, LIST_PAGE_MAX)?;
    check_filters(&q.filters)?;
    let sort_by = match q.sort_by.as_deref() {
        None | Some("created-date") => SortBy::CreatedDate,
        Some("last-changed-date") => SortBy::LastChangedDate,
        Some("last-accessed-date") => SortBy::LastAccessedDate,
        Some("name") => SortBy::Name,
        Some(_) => {
            return Err(SmError::validation(
                "sortBy",
                "Member must satisfy enum value set: [created-date, last-accessed-date, last-changed-date, name]",
            ))
        }
    };
    let descending = match q.sort_order.as_deref() {
        None | Some("asc") => false,
        Some("desc") => true,
        Some(_) => return Err(SmError::validation("sortOrder", "Member must satisfy enum value set: [asc, desc]")),
    };
    let binding = u64::from(descending) << 8 | sort_by as u64;
    let include_planned = q.include_planned_deletion.unwrap_or(false);
    let mut matching: Vec<(String, u64, &SecretState)> = state
        .secrets()
        .filter(|s| s.region == scope.region)
        .filter(|s| include_planned || !s.is_scheduled())
        .filter(|s| q.filters.iter().all(|f| filter_matches(s, f)))
        .map(|s| (sort_key(s, sort_by), s.uid.0, s))
        .collect();
    matching.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    if descending {
        matching.reverse();
    }
    let start = match &q.next_token {
        None => 0,
        Some(t) => {
            let pos = decode_cursor(t, CURSOR_SECRETS, binding)?;
            let (uid, key) = pos.split_once('|').ok_or(SmError::InvalidNextToken)?;
            let uid: u64 = uid.parse().map_err(|_| SmError::InvalidNextToken)?;
            let cursor = (key.to_string(), uid);
            matching.partition_point(|m| {
                let here = (m.0.clone(), m.1);
                if descending {
                    here >= cursor
                } else {
                    here <= cursor
                }
            })
        }
    };
    let page: Vec<&(String, u64, &SecretState)> = matching[start.min(matching.len())..].iter().take(limit).collect();
    let next_token = (start + limit < matching.len())
        .then(|| page.last().map(|last| encode_cursor(CURSOR_SECRETS, binding, &format!("{}|{}", last.1, last.0))))
        .flatten();
    Ok(SecretList { secrets: page.iter().map(|(_, _, s)| describe(s)).collect(), next_token })
}

#[derive(Clone, Debug, Default)]
pub struct BatchGetSecretValue {
    pub secret_id_list: Option<Vec<String>>,
    pub filters: Option<Vec<Filter>>,
    pub max_results: Option<i64>,
    pub next_token: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchError {
    pub secret_id: String,
    pub error: SmError,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BatchLocations {
    pub values: Vec<ValueLocation>,
    pub errors: Vec<BatchError>,
    pub next_token: Option<String>,
}

pub fn batch_get_secret_value(
    state: &State,
    scope: &Scope,
    q: &BatchGetSecretValue,
) -> Result<BatchLocations, SmError> {
    match (&q.secret_id_list, &q.filters) {
        (Some(_), Some(_)) | (None, None) => {
            Err(SmError::InvalidParameter("Either 'SecretIdList' or 'Filters' must be provided, but not both.".into()))
        }
        (Some(ids), None) => {
            if q.max_results.is_some() || q.next_token.is_some() {
                return Err(SmError::InvalidParameter(
                    "'Filters' not specified. 'Filters' must also be specified when 'MaxResults' is provided.".into(),
                ));
            }
            if ids.is_empty() || ids.len() > BATCH_IDS_MAX {
                let message = format!("Member must have length between 1 and {BATCH_IDS_MAX}");
                return Err(SmError::validation("secretIdList", &message));
            }
            let mut values = Vec::new();
            let mut errors = Vec::new();
            for id in ids {
                let q = GetSecretValue { secret_id: id.clone(), ..GetSecretValue::default() };
                match get_secret_value(state, scope, &q) {
                    Ok(loc) => values.push(loc),
                    Err(error) => errors.push(BatchError { secret_id: id.clone(), error }),
                }
            }
            Ok(BatchLocations { values, errors, next_token: None })
        }
        (None, Some(filters)) => {
            let limit = page_size(q.max_results, BATCH_PAGE_MAX)?;
            let list = list_secrets(
                state,
                scope,
                &ListSecrets {
                    max_results: Some(limit as i64),
                    next_token: q.next_token.clone(),
                    filters: filters.clone(),
                    ..ListSecrets::default()
                },
            )?;
            let mut values = Vec::new();
            let mut errors = Vec::new();
            for entry in list.secrets {
                let q = GetSecretValue { secret_id: entry.arn.clone(), ..GetSecretValue::default() };
                match get_secret_value(state, scope, &q) {
                    Ok(loc) => values.push(loc),
                    Err(error) => errors.push(BatchError { secret_id: entry.arn, error }),
                }
            }
            Ok(BatchLocations { values, errors, next_token: list.next_token })
        }
    }
}

/// GetResourcePolicy: the secret and its policy text, if it has one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResourcePolicyOut {
    pub arn: String,
    pub name: String,
    pub policy: Option<String>,
}

pub fn get_resource_policy(state: &State, scope: &Scope, secret_id: &str) -> Result<ResourcePolicyOut, SmError> {
    let secret = resolve(state, scope, secret_id)?;
    Ok(ResourcePolicyOut { arn: secret.arn.clone(), name: secret.name.clone(), policy: secret.resource_policy.clone() })
}

/// ValidateResourcePolicy: checks a policy (and that the secret, if named, exists); appends
/// nothing. A document that is not JSON is `MalformedPolicyDocumentException`.
pub fn validate_resource_policy(
    state: &State,
    scope: &Scope,
    secret_id: Option<&str>,
    policy: &str,
) -> Result<Vec<crate::policy::Finding>, SmError> {
    crate::policy::check_len(policy)?;
    let doc = crate::policy::parse(policy)?;
    if let Some(id) = secret_id {
        resolve(state, scope, id)?;
    }
    Ok(crate::policy::findings(&doc))
}
