//! The AWS JSON 1.1 shapes, converted by hand to and from the domain types of `ledger-core`.
//!
//! Requests are read member by member from the JSON object ([`Input`]): unknown members are
//! ignored, `null` counts as absent, a member of the wrong JSON type is a
//! `SerializationException` naming the member (never echoing its value), a missing required
//! member is a `ValidationException`. Blobs are standard base64 with padding, decoded exactly
//! once. Responses are structs whose absent members are omitted; timestamps are JSON numbers of
//! epoch seconds with millisecond fraction.

use base64::Engine;
use ledger_core::checkpoint::Checkpoint;
use ledger_core::query::{self, BatchError, Filter, SecretDescription, SecretList, VersionList};
use ledger_core::{SecretValue, SmError, Tag};
use ledger_store::SecretValueOut;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::ApiError;

const BASE64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The members of one request body. `Debug` prints the member names only: the values
/// include `SecretString` and `SecretBinary`.
#[derive(Default)]
pub struct Input {
    members: Map<String, Value>,
}

impl std::fmt::Debug for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Input").field("members", &self.members.keys().collect::<Vec<_>>()).finish()
    }
}

fn wrong_type(member: &str, expected: &str) -> ApiError {
    ApiError::serialization(format!("Value of member '{member}' must be {expected}."))
}

impl Input {
    /// Parses a body; an empty (or all-whitespace) body is `{}`.
    pub fn parse(body: &[u8]) -> Result<Input, ApiError> {
        if body.iter().all(|b| b.is_ascii_whitespace()) {
            return Ok(Input::default());
        }
        match serde_json::from_slice::<Value>(body) {
            Ok(Value::Object(members)) => Ok(Input { members }),
            Ok(_) => Err(ApiError::serialization("The request body must be a JSON object.")),
            // serde_json's syntax errors name a position, never the offending text.
            Err(e) => Err(ApiError::serialization(format!(
                "The request body is not valid JSON (line {}, column {}).",
                e.line(),
                e.column()
            ))),
        }
    }

    /// A seq: a JSON number, or a string of digits.
    pub(crate) fn seq(&self, name: &str) -> Result<Option<u64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(Some)
                .ok_or_else(|| ApiError::validation(format!("{name} must be a non-negative integer."))),
            Some(Value::String(s)) => {
                s.parse().map(Some).map_err(|_| ApiError::validation(format!("{name} must be a non-negative integer.")))
            }
            Some(_) => Err(wrong_type(name, "an integer")),
        }
    }

    /// A seq number, or a string (a seq or an RFC 3339 time).
    pub(crate) fn seq_or_time(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(Value::Number(n)) if n.is_u64() => Ok(Some(n.to_string())),
            Some(_) => {
                Err(ApiError::validation(format!("{name} takes a seq (a number) or an RFC 3339 time (a string).")))
            }
        }
    }

    /// A checkpoint JSON object (a JSON string holding one is accepted too); a signed one must
    /// verify against the key it names.
    pub(crate) fn checkpoint(&self, name: &str) -> Result<Option<Checkpoint>, ApiError> {
        let text = match self.get(name) {
            None => return Ok(None),
            Some(Value::String(s)) => s.clone(),
            Some(v @ Value::Object(_)) => v.to_string(),
            Some(_) => return Err(wrong_type(name, "an object")),
        };
        let checkpoint = Checkpoint::from_json(&text).map_err(|e| ApiError::validation(format!("{name}: {e}")))?;
        if checkpoint.signature.is_some() {
            checkpoint.verify_signature().map_err(|e| ApiError::validation(format!("{name}: {e}")))?;
        }
        Ok(Some(checkpoint))
    }

    /// A member that is present and not `null`.
    pub(crate) fn get(&self, name: &str) -> Option<&Value> {
        self.members.get(name).filter(|v| !v.is_null())
    }

    pub fn string(&self, name: &str) -> Result<Option<String>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(wrong_type(name, "a string")),
        }
    }

    /// A required string member; `member_path` is the Coral (camelCase) name for the message.
    pub fn required_string(&self, name: &str, member_path: &str) -> Result<String, ApiError> {
        self.string(name)?.ok_or_else(|| ApiError::missing_member(member_path))
    }

    pub fn bool(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Bool(b)) => Ok(Some(*b)),
            Some(_) => Err(wrong_type(name, "a boolean")),
        }
    }

    pub fn integer(&self, name: &str) -> Result<Option<i64>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| wrong_type(name, "an integer")),
            Some(_) => Err(wrong_type(name, "an integer")),
        }
    }

    /// A blob: standard base64 with padding, decoded here and nowhere else.
    pub fn blob(&self, name: &str) -> Result<Option<Vec<u8>>, ApiError> {
        match self.string(name)? {
            None => Ok(None),
            Some(text) => BASE64
                .decode(text.as_bytes())
                .map(Some)
                .map_err(|_| ApiError::serialization(format!("Value of member '{name}' is not valid base64."))),
        }
    }

    pub fn string_list(&self, name: &str) -> Result<Option<Vec<String>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => Ok(s.clone()),
                    _ => Err(wrong_type(name, "a list of strings")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(wrong_type(name, "a list of strings")),
        }
    }

    /// An object member (a structure).
    pub fn object(&self, name: &str) -> Result<Option<Input>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Object(members)) => Ok(Some(Input { members: members.clone() })),
            Some(_) => Err(wrong_type(name, "an object")),
        }
    }

    /// `RotationRulesType`.
    pub fn rotation_rules(&self, name: &str) -> Result<Option<ledger_core::RotationRules>, ApiError> {
        let Some(rules) = self.object(name)? else { return Ok(None) };
        Ok(Some(ledger_core::RotationRules {
            automatically_after_days: rules.integer("AutomaticallyAfterDays")?,
            duration: rules.string("Duration")?,
            schedule_expression: rules.string("ScheduleExpression")?,
        }))
    }

    /// How many items a list member holds (0 when absent); its items are not inspected.
    pub fn object_list_len(&self, name: &str) -> Result<usize, ApiError> {
        match self.get(name) {
            None => Ok(0),
            Some(Value::Array(items)) => Ok(items.len()),
            Some(_) => Err(wrong_type(name, "a list")),
        }
    }

    fn object_list(&self, name: &str) -> Result<Option<Vec<Input>>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some(Value::Array(items)) => items
                .iter()
                .map(|item| match item {
                    Value::Object(members) => Ok(Input { members: members.clone() }),
                    _ => Err(wrong_type(name, "a list of objects")),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => Err(wrong_type(name, "a list of objects")),
        }
    }

    /// `list<Tag>`; a tag without `Key` is a validation error, without `Value` an empty value.
    pub fn tags(&self, name: &str) -> Result<Option<Vec<Tag>>, ApiError> {
        let Some(items) = self.object_list(name)? else { return Ok(None) };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| {
                let key = item.required_string("Key", &format!("tags.{}.member.key", i + 1))?;
                let value = item.string("Value")?.unwrap_or_default();
                Ok(Tag { key, value })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// `list<Filter>` of ListSecrets and BatchGetSecretValue.
    pub fn filters(&self, name: &str) -> Result<Option<Vec<Filter>>, ApiError> {
        let Some(items) = self.object_list(name)? else { return Ok(None) };
        items
            .iter()
            .map(|item| {
                // AWS answers these two with InvalidParameterException, not a validation error.
                let Some(key) = item.string("Key")? else {
                    return Err(SmError::InvalidParameter("Invalid filter key".into()).into());
                };
                let values = item.string_list("Values")?.unwrap_or_default();
                if values.is_empty() {
                    let key = key.chars().take(64).collect::<String>();
                    return Err(SmError::InvalidParameter(format!("Invalid filter values for key: {key}")).into());
                }
                Ok(Filter { key, values })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    /// `SecretString` / `SecretBinary` as one domain value (the both/empty/size checks are the core's).
    pub fn secret_value(&self) -> Result<Result<Option<SecretValue>, SmError>, ApiError> {
        let string = self.string("SecretString")?;
        let binary = self.blob("SecretBinary")?;
        Ok(SecretValue::from_fields(string, binary))
    }
}

/// Epoch milliseconds as the wire's epoch seconds. Timestamps stay far below 2^53 ms, where
/// the conversion is exact.
#[allow(clippy::cast_precision_loss)]
pub fn epoch_seconds(ms: i64) -> f64 {
    ms as f64 / 1000.0
}

/// `{"Key": …, "Value": …}`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct TagOut {
    pub key: String,
    pub value: String,
}

fn tags_out(tags: Option<Vec<Tag>>) -> Option<Vec<TagOut>> {
    tags.map(|tags| tags.into_iter().map(|t| TagOut { key: t.key, value: t.value }).collect())
}

fn stages_map(versions: Vec<(String, Vec<String>)>) -> Option<Map<String, Value>> {
    if versions.is_empty() {
        return None;
    }
    Some(
        versions
            .into_iter()
            .map(|(id, stages)| (id, Value::Array(stages.into_iter().map(Value::String).collect())))
            .collect(),
    )
}

/// CreateSecret, UpdateSecret, PutSecretValue, UpdateSecretVersionStage, DeleteSecret,
/// RestoreSecret: `ARN`, `Name` and whichever of the rest the operation returns.
#[derive(Serialize, Default)]
#[serde(rename_all = "PascalCase")]
pub struct SecretRefOut {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_stages: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deletion_date: Option<f64>,
}

/// One secret value: GetSecretValueResponse and BatchGetSecretValue's `SecretValueEntry`.
/// Never logged; `SecretString`/`SecretBinary` carry plaintext.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct SecretValueOutWire {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    pub version_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_binary: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_string: Option<String>,
    pub version_stages: Vec<String>,
    pub created_date: f64,
}

impl From<SecretValueOut> for SecretValueOutWire {
    fn from(out: SecretValueOut) -> SecretValueOutWire {
        let (secret_string, secret_binary) = match &out.value {
            SecretValue::String(s) => (Some(s.as_str().to_string()), None),
            SecretValue::Binary(b) => (None, Some(BASE64.encode(b.as_slice()))),
        };
        let loc = out.location;
        SecretValueOutWire {
            arn: loc.arn,
            name: loc.name,
            version_id: loc.version_id,
            secret_binary,
            secret_string,
            version_stages: loc.version_stages,
            created_date: epoch_seconds(loc.created_at_ms),
        }
    }
}

/// BatchGetSecretValue's `APIErrorType`.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ApiErrorEntry {
    pub secret_id: String,
    pub error_code: String,
    pub message: String,
}

impl From<BatchError> for ApiErrorEntry {
    fn from(e: BatchError) -> ApiErrorEntry {
        ApiErrorEntry {
            secret_id: e.secret_id,
            error_code: e.error.code().as_str().to_string(),
            message: e.error.to_string(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct BatchGetSecretValueOut {
    pub secret_values: Vec<SecretValueOutWire>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    pub errors: Vec<ApiErrorEntry>,
}

/// DescribeSecretResponse (`VersionIdsToStages`) and ListSecrets' `SecretListEntry`
/// (`SecretVersionsToStages`): the same members but for the name of the label map.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct DescriptionOut {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r#type: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    pub last_changed_date: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deleted_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tags: Option<Vec<TagOut>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_ids_to_stages: Option<Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret_versions_to_stages: Option<Map<String, Value>>,
    pub created_date: f64,
    /// Present once rotation was ever configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_enabled: Option<bool>,
    #[serde(rename = "RotationLambdaARN", skip_serializing_if = "Option::is_none")]
    pub rotation_lambda_arn: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rotation_rules: Option<RotationRulesWire>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_rotated_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_rotation_date: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<f64>,
}

/// `RotationRulesType`, both directions.
#[derive(Serialize, Clone, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "PascalCase")]
pub struct RotationRulesWire {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub automatically_after_days: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub duration: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schedule_expression: Option<String>,
}

impl From<ledger_core::RotationRules> for RotationRulesWire {
    fn from(r: ledger_core::RotationRules) -> RotationRulesWire {
        RotationRulesWire {
            automatically_after_days: r.automatically_after_days,
            duration: r.duration,
            schedule_expression: r.schedule_expression,
        }
    }
}

impl DescriptionOut {
    /// `list_entry` selects the ListSecrets key name for the label map.
    pub fn new(d: SecretDescription, list_entry: bool) -> DescriptionOut {
        let stages = stages_map(d.versions_to_stages);
        let (version_ids_to_stages, secret_versions_to_stages) =
            if list_entry { (None, stages) } else { (stages, None) };
        DescriptionOut {
            arn: d.arn,
            name: d.name,
            r#type: d.secret_type.filter(|t| !t.is_empty()),
            description: d.description.filter(|t| !t.is_empty()),
            kms_key_id: d.kms_key_id.filter(|t| !t.is_empty()),
            last_changed_date: epoch_seconds(d.last_changed_at_ms),
            deleted_date: d.deleted_at_ms.map(epoch_seconds),
            tags: tags_out(d.tags),
            version_ids_to_stages,
            secret_versions_to_stages,
            created_date: epoch_seconds(d.created_at_ms),
            rotation_enabled: d.rotation_lambda_arn.is_some().then_some(d.rotation_enabled),
            rotation_lambda_arn: d.rotation_lambda_arn,
            rotation_rules: d.rotation_rules.map(RotationRulesWire::from),
            last_rotated_date: d.last_rotated_ms.map(epoch_seconds),
            next_rotation_date: d.next_rotation_ms.map(epoch_seconds),
            last_accessed_date: d.last_accessed_ms.map(epoch_seconds),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretsOut {
    pub secret_list: Vec<DescriptionOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
}

impl From<SecretList> for ListSecretsOut {
    fn from(list: SecretList) -> ListSecretsOut {
        ListSecretsOut {
            secret_list: list.secrets.into_iter().map(|d| DescriptionOut::new(d, true)).collect(),
            next_token: list.next_token,
        }
    }
}

/// ListSecretVersionIds' `SecretVersionsListEntry`; deprecated versions have no `VersionStages` key.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct VersionEntryOut {
    pub version_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub version_stages: Option<Vec<String>>,
    pub created_date: f64,
    pub kms_key_ids: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_accessed_date: Option<f64>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ListSecretVersionIdsOut {
    pub versions: Vec<VersionEntryOut>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next_token: Option<String>,
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
}

impl ListSecretVersionIdsOut {
    /// `kms_key_id` of the secret; `None` (the AWS managed key) lists as `DefaultEncryptionKey`.
    pub fn new(list: VersionList, kms_key_id: Option<String>) -> ListSecretVersionIdsOut {
        let kms_key_ids =
            vec![kms_key_id.filter(|k| !k.is_empty()).unwrap_or_else(|| "DefaultEncryptionKey".to_string())];
        ListSecretVersionIdsOut {
            versions: list
                .versions
                .into_iter()
                .map(|v| VersionEntryOut {
                    version_id: v.version_id,
                    version_stages: (!v.version_stages.is_empty()).then_some(v.version_stages),
                    created_date: epoch_seconds(v.created_at_ms),
                    kms_key_ids: kms_key_ids.clone(),
                    last_accessed_date: v.last_accessed_ms.map(epoch_seconds),
                })
                .collect(),
            next_token: list.next_token,
            arn: list.arn,
            name: list.name,
        }
    }
}

/// GetResourcePolicyResponse.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ResourcePolicyOutWire {
    #[serde(rename = "ARN")]
    pub arn: String,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resource_policy: Option<String>,
}

/// ValidateResourcePolicyResponse.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidationOut {
    pub policy_validation_passed: bool,
    pub validation_errors: Vec<ValidationErrorOut>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct ValidationErrorOut {
    pub check_name: String,
    pub error_message: String,
}

/// GetRandomPasswordResponse. Never logged.
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
pub struct RandomPasswordOut {
    pub random_password: String,
}

/// Input of ListSecrets.
pub fn list_secrets(input: &Input) -> Result<query::ListSecrets, ApiError> {
    Ok(query::ListSecrets {
        include_planned_deletion: input.bool("IncludePlannedDeletion")?,
        max_results: input.integer("MaxResults")?,
        next_token: input.string("NextToken")?,
        filters: input.filters("Filters")?.unwrap_or_default(),
        sort_by: input.string("SortBy")?,
        sort_order: input.string("SortOrder")?,
    })
}

#[cfg(test)]
mod tests;
