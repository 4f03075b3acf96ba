//! One function per Secrets Manager operation: wire input → domain command or query → ledger →
//! wire output. Writes go through the ledger's writer and answer only once durable; reads are
//! answered from the durable projection.
//!
//! Every operation is first checked against the caller's [`Access`] scope; a refusal never
//! reaches the ledger. Listings of a prefix-scoped key carry an extra `name` filter.
//!
//! ListSecrets and BatchGetSecretValue filter every secret off the async workers, each in one
//! of a bounded number of [`WorkSlots`]: by default [`default_filtering_slots`] (2 × the CPUs,
//! at least 2; `ServeConfig::work`). Callers beyond it wait for a slot, in arrival order.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use ledger_core::password::{self, GetRandomPassword};
use ledger_core::query;
use ledger_core::{
    CancelRotateSecret, Command, CreateSecret, DeleteResourcePolicy, DeleteSecret, PutResourcePolicy, PutSecretValue,
    Reply, RestoreSecret, RotateSecret, SmError, TagResource, UntagResource, UpdateSecret, UpdateSecretVersionStage,
};
use ledger_store::{Ledger, RequestMeta};
use serde::Serialize;

use crate::access::{self, Access};
use crate::error::ApiError;
use crate::operation::Operation;
use crate::wire::{self, epoch_seconds, Input, SecretRefOut};

fn json(out: &impl Serialize) -> Result<String, ApiError> {
    serde_json::to_string(out).map_err(|e| {
        tracing::error!(error = %e, "cannot serialize a response");
        ApiError::internal()
    })
}

/// What the server records beyond writes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Trail {
    /// `serve --audit-reads`: a `SecretRead` per value released (durable before it leaves), an
    /// `AccessDenied` per refusal of a known key.
    pub audit_reads: bool,
}

/// CPUs the process may use (1 when unknown): the default work slots scale with it.
pub fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
}

/// The default number of ListSecrets and BatchGetSecretValue filterings that run at once: 2 ×
/// the CPUs, at least 2. Each holds a thread (and the projection's read lock) while it filters;
/// more wait for a slot, so a burst of listings cannot take every thread of the process.
pub fn default_filtering_slots() -> usize {
    (2 * cpus()).max(2)
}

/// Work of one kind of which at most `max` run at once: callers beyond it wait for a slot
/// ([`WorkSlots::take`], in arrival order) or are refused ([`WorkSlots::try_take`]). It keeps
/// what `/metrics` shows: the slots, the most ever taken at once, and how often every slot
/// was taken when a caller came.
#[derive(Debug)]
pub struct WorkSlots {
    /// The `work` label in `/metrics`.
    pub name: &'static str,
    max: usize,
    semaphore: Arc<tokio::sync::Semaphore>,
    peak: AtomicUsize,
    waits: AtomicU64,
}

/// A slot of [`WorkSlots`], given back when dropped.
#[derive(Debug)]
pub struct WorkSlot {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl WorkSlots {
    /// `max` slots (at least 1).
    pub fn new(name: &'static str, max: usize) -> Arc<WorkSlots> {
        let max = max.max(1);
        Arc::new(WorkSlots {
            name,
            max,
            semaphore: Arc::new(tokio::sync::Semaphore::new(max)),
            peak: AtomicUsize::new(0),
            waits: AtomicU64::new(0),
        })
    }

    /// A slot, once one is free (waiters are served in arrival order).
    pub async fn take(&self) -> WorkSlot {
        let permit = match self.semaphore.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                self.waits.fetch_add(1, Ordering::Relaxed);
                self.semaphore.clone().acquire_owned().await.expect("the slots' semaphore is never closed")
            }
        };
        self.entered(permit)
    }

    /// A slot if one is free now.
    pub fn try_take(&self) -> Option<WorkSlot> {
        match self.semaphore.clone().try_acquire_owned() {
            Ok(permit) => Some(self.entered(permit)),
            Err(_) => {
                self.waits.fetch_add(1, Ordering::Relaxed);
                None
            }
        }
    }

    fn entered(&self, permit: tokio::sync::OwnedSemaphorePermit) -> WorkSlot {
        self.peak.fetch_max(self.max - self.semaphore.available_permits(), Ordering::AcqRel);
        WorkSlot { _permit: permit }
    }

    pub fn max(&self) -> usize {
        self.max
    }

    /// The most slots ever taken at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Acquire)
    }

    /// Callers that found every slot taken (and waited, or were refused).
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }
}

/// Filtering slots of in-process callers of [`dispatch`] (the server has its own).
fn in_process_filtering() -> &'static Arc<WorkSlots> {
    static SLOTS: OnceLock<Arc<WorkSlots>> = OnceLock::new();
    SLOTS.get_or_init(|| WorkSlots::new("filtering", default_filtering_slots()))
}

/// Runs one Secrets Manager operation for a caller limited to `access`.
pub async fn dispatch(
    ledger: &Ledger,
    operation: Operation,
    input: Input,
    meta: &RequestMeta,
    access: &Access,
) -> Result<String, ApiError> {
    dispatch_with(ledger, operation, input, meta, access, Trail::default(), in_process_filtering()).await
}

/// [`dispatch`] recording what `trail` asks for, filtering listings in one of `filtering`'s
/// slots.
pub async fn dispatch_with(
    ledger: &Ledger,
    operation: Operation,
    input: Input,
    meta: &RequestMeta,
    access: &Access,
    trail: Trail,
    filtering: &Arc<WorkSlots>,
) -> Result<String, ApiError> {
    if let Err(refusal) = access.check(&meta.actor, operation, &input, &meta.scope) {
        if trail.audit_reads {
            let resource = input.string(operation.secret_member()).ok().flatten().unwrap_or_else(|| "*".to_string());
            record(ledger, Command::RecordDenied { resources: vec![resource], operation: operation.name() }, meta)
                .await?;
        }
        return Err(refusal);
    }
    match operation {
        Operation::CreateSecret => create_secret(ledger, &input, meta).await,
        Operation::PutSecretValue => put_secret_value(ledger, &input, meta).await,
        Operation::UpdateSecret => update_secret(ledger, &input, meta).await,
        Operation::UpdateSecretVersionStage => update_secret_version_stage(ledger, &input, meta).await,
        Operation::DeleteSecret => delete_secret(ledger, &input, meta).await,
        Operation::RestoreSecret => restore_secret(ledger, &input, meta).await,
        Operation::TagResource => tag_resource(ledger, &input, meta).await,
        Operation::UntagResource => untag_resource(ledger, &input, meta).await,
        Operation::GetSecretValue => get_secret_value(ledger, &input, meta, trail).await,
        Operation::BatchGetSecretValue => batch_get_secret_value(ledger, &input, meta, access, trail, filtering).await,
        Operation::DescribeSecret => describe_secret(ledger, &input, meta),
        Operation::ListSecretVersionIds => list_secret_version_ids(ledger, &input, meta),
        Operation::ListSecrets => list_secrets(ledger, &input, meta, access, filtering).await,
        Operation::GetRandomPassword => get_random_password(&input),
        Operation::RotateSecret => rotate_secret(ledger, &input, meta).await,
        Operation::CancelRotateSecret => cancel_rotate_secret(ledger, &input, meta).await,
        Operation::PutResourcePolicy => put_resource_policy(ledger, &input, meta).await,
        Operation::DeleteResourcePolicy => delete_resource_policy(ledger, &input, meta).await,
        Operation::GetResourcePolicy => get_resource_policy(ledger, &input, meta),
        Operation::ValidateResourcePolicy => validate_resource_policy(ledger, &input, meta),
        Operation::History
        | Operation::State
        | Operation::Export
        | Operation::Checkpoint
        | Operation::Prove
        | Operation::Verify => Err(ApiError::unknown_operation(format!(
            "Operation {} is not a Secrets Manager operation.",
            operation.name()
        ))),
    }
}

async fn cancel_rotate_secret(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let secret_id = input.required_string("SecretId", "secretId")?;
    let reply = execute(ledger, Command::CancelRotateSecret(CancelRotateSecret { secret_id }), meta).await?;
    json(&secret_ref(reply, meta)?)
}

async fn put_resource_policy(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let cmd = Command::PutResourcePolicy(PutResourcePolicy {
        secret_id: input.required_string("SecretId", "secretId")?,
        resource_policy: input.required_string("ResourcePolicy", "resourcePolicy")?,
        block_public_policy: input.bool("BlockPublicPolicy")?,
    });
    let _policy_name = input.string("PolicyName")?;
    json(&secret_ref(execute(ledger, cmd, meta).await?, meta)?)
}

async fn delete_resource_policy(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let secret_id = input.required_string("SecretId", "secretId")?;
    let _policy_name = input.string("PolicyName")?;
    let cmd = Command::DeleteResourcePolicy(DeleteResourcePolicy { secret_id });
    json(&secret_ref(execute(ledger, cmd, meta).await?, meta)?)
}

fn get_resource_policy(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let secret_id = input.required_string("SecretId", "secretId")?;
    let _policy_name = input.string("PolicyName")?;
    let out = ledger.with_state(|s| query::get_resource_policy(s, &meta.scope, &secret_id))?;
    json(&wire::ResourcePolicyOutWire { arn: out.arn, name: out.name, resource_policy: out.policy })
}

fn validate_resource_policy(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let secret_id = input.string("SecretId")?;
    let policy = input.required_string("ResourcePolicy", "resourcePolicy")?;
    let findings =
        ledger.with_state(|s| query::validate_resource_policy(s, &meta.scope, secret_id.as_deref(), &policy))?;
    json(&wire::ValidationOut {
        policy_validation_passed: findings.is_empty(),
        validation_errors: findings
            .into_iter()
            .map(|f| wire::ValidationErrorOut { check_name: f.check_name.to_string(), error_message: f.error_message })
            .collect(),
    })
}

/// Appends a command; a refusal is the client's error, a storage failure a 500.
async fn execute(ledger: &Ledger, cmd: Command, meta: &RequestMeta) -> Result<Reply, ApiError> {
    match ledger.execute_async(cmd, meta).await {
        Ok(Ok(reply)) => Ok(reply),
        Ok(Err(refusal)) => Err(refusal.into()),
        Err(store) => Err(ApiError::store(&store, &meta.request_id)),
    }
}

fn unexpected(reply: &Reply, meta: &RequestMeta) -> ApiError {
    tracing::error!(request_id = %meta.request_id, reply = ?std::mem::discriminant(reply), "unexpected reply kind");
    ApiError::internal()
}

/// `Reply::Secret` / `Reply::Named` / `Reply::Version` / `Reply::Deleted` as the wire's `ARN`+`Name`+….
fn secret_ref(reply: Reply, meta: &RequestMeta) -> Result<SecretRefOut, ApiError> {
    match reply {
        Reply::Secret { arn, name, version_id } => {
            Ok(SecretRefOut { arn, name, version_id, ..SecretRefOut::default() })
        }
        Reply::Named { arn, name } => Ok(SecretRefOut { arn, name, ..SecretRefOut::default() }),
        Reply::Version { arn, name, version_id, version_stages } => Ok(SecretRefOut {
            arn,
            name,
            version_id: Some(version_id),
            version_stages: Some(version_stages),
            ..SecretRefOut::default()
        }),
        Reply::Deleted { arn, name, deletion_date_ms } => Ok(SecretRefOut {
            arn,
            name,
            deletion_date: Some(epoch_seconds(deletion_date_ms)),
            ..SecretRefOut::default()
        }),
        other => Err(unexpected(&other, meta)),
    }
}

async fn create_secret(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let name = input.required_string("Name", "name")?;
    let client_request_token = input.string("ClientRequestToken")?;
    let description = input.string("Description")?;
    let kms_key_id = input.string("KmsKeyId")?;
    let tags = input.tags("Tags")?;
    let secret_type = input.string("Type")?;
    // Replication and cross-account primaries are out of scope: refused, never silently dropped.
    let replicas = input.object_list_len("AddReplicaRegions")?;
    let _ = input.bool("ForceOverwriteReplicaSecret")?;
    if replicas > 0 || input.string("CrossAccountPrimaryARN")?.is_some() {
        return Err(SmError::InvalidParameter("Replication is not supported by this ledger.".into()).into());
    }
    let value = input.secret_value()??;
    let cmd = Command::CreateSecret(CreateSecret {
        name,
        client_request_token,
        description,
        kms_key_id,
        value,
        tags,
        secret_type,
    });
    let reply = execute(ledger, cmd, meta).await?;
    json(&secret_ref(reply, meta)?)
}

async fn put_secret_value(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let secret_id = input.required_string("SecretId", "secretId")?;
    let client_request_token = input.string("ClientRequestToken")?;
    let version_stages = input.string_list("VersionStages")?;
    let _rotation_token = input.string("RotationToken")?;
    let value = input.secret_value()??;
    let cmd = Command::PutSecretValue(PutSecretValue { secret_id, client_request_token, value, version_stages });
    let reply = execute(ledger, cmd, meta).await?;
    json(&secret_ref(reply, meta)?)
}

async fn rotate_secret(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let secret_id = input.required_string("SecretId", "secretId")?;
    // Managed external secrets are out of scope: refused, never silently dropped.
    if input.object_list_len("ExternalSecretRotationMetadata")? > 0
        || input.string("ExternalSecretRotationRoleArn")?.is_some()
    {
        return Err(
            SmError::InvalidParameter("External secret rotation is not supported by this ledger.".into()).into()
        );
    }
    let cmd = Command::RotateSecret(RotateSecret {
        secret_id,
        client_request_token: input.string("ClientRequestToken")?,
        rotation_lambda_arn: input.string("RotationLambdaARN")?,
        rotation_rules: input.rotation_rules("RotationRules")?,
        rotate_immediately: input.bool("RotateImmediately")?,
        by_runner: false,
    });
    let reply = execute(ledger, cmd, meta).await?;
    json(&secret_ref(reply, meta)?)
}

async fn update_secret(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let secret_id = input.required_string("SecretId", "secretId")?;
    let client_request_token = input.string("ClientRequestToken")?;
    let description = input.string("Description")?;
    let kms_key_id = input.string("KmsKeyId")?;
    let secret_type = input.string("Type")?;
    let value = input.secret_value()??;
    let cmd = Command::UpdateSecret(UpdateSecret {
        secret_id,
        client_request_token,
        description,
        kms_key_id,
        value,
        secret_type,
    });
    let reply = execute(ledger, cmd, meta).await?;
    json(&secret_ref(reply, meta)?)
}

async fn update_secret_version_stage(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let cmd = Command::UpdateSecretVersionStage(UpdateSecretVersionStage {
        secret_id: input.required_string("SecretId", "secretId")?,
        version_stage: input.required_string("VersionStage", "versionStage")?,
        remove_from_version_id: input.string("RemoveFromVersionId")?,
        move_to_version_id: input.string("MoveToVersionId")?,
    });
    let reply = execute(ledger, cmd, meta).await?;
    json(&secret_ref(reply, meta)?)
}

async fn delete_secret(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let cmd = Command::DeleteSecret(DeleteSecret {
        secret_id: input.required_string("SecretId", "secretId")?,
        recovery_window_in_days: input.integer("RecoveryWindowInDays")?,
        force_delete_without_recovery: input.bool("ForceDeleteWithoutRecovery")?,
    });
    let reply = execute(ledger, cmd, meta).await?;
    json(&secret_ref(reply, meta)?)
}

async fn restore_secret(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let cmd = Command::RestoreSecret(RestoreSecret { secret_id: input.required_string("SecretId", "secretId")? });
    let reply = execute(ledger, cmd, meta).await?;
    json(&secret_ref(reply, meta)?)
}

async fn tag_resource(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let secret_id = input.required_string("SecretId", "secretId")?;
    let tags = input.tags("Tags")?.ok_or_else(|| ApiError::missing_member("tags"))?;
    match execute(ledger, Command::TagResource(TagResource { secret_id, tags }), meta).await? {
        Reply::Empty => Ok("{}".to_string()),
        other => Err(unexpected(&other, meta)),
    }
}

async fn untag_resource(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let secret_id = input.required_string("SecretId", "secretId")?;
    let tag_keys = input.string_list("TagKeys")?.ok_or_else(|| ApiError::missing_member("tagKeys"))?;
    match execute(ledger, Command::UntagResource(UntagResource { secret_id, tag_keys }), meta).await? {
        Reply::Empty => Ok("{}".to_string()),
        other => Err(unexpected(&other, meta)),
    }
}

/// Appends an audit-trail command and waits until it is durable.
pub(crate) async fn record(ledger: &Ledger, cmd: Command, meta: &RequestMeta) -> Result<(), ApiError> {
    execute(ledger, cmd, meta).await.map(|_| ())
}

async fn get_secret_value(
    ledger: &Ledger,
    input: &Input,
    meta: &RequestMeta,
    trail: Trail,
) -> Result<String, ApiError> {
    let q = query::GetSecretValue {
        secret_id: input.required_string("SecretId", "secretId")?,
        version_id: input.string("VersionId")?,
        version_stage: input.string("VersionStage")?,
    };
    // A sled read is a page-cache lookup; a read from a shared database is a round trip, which
    // must not hold a worker.
    let read = if ledger.store().shared() {
        off_the_worker(|| ledger.get_secret_value_for(meta, &q))
    } else {
        ledger.get_secret_value_for(meta, &q)
    };
    match read {
        Ok(Ok(out)) => {
            if trail.audit_reads {
                // The value leaves only once its SecretRead is durable.
                let read = (out.location.secret, out.location.version_id.clone());
                record(
                    ledger,
                    Command::RecordReads {
                        reads: vec![read],
                        denied: Vec::new(),
                        operation: Operation::GetSecretValue.name(),
                    },
                    meta,
                )
                .await?;
            }
            json(&wire::SecretValueOutWire::from(out))
        }
        Ok(Err(refusal)) => Err(refusal.into()),
        Err(store) => Err(ApiError::store(&store, &meta.request_id)),
    }
}

/// Stands in for an id out of the caller's scope: a malformed ARN, which the ledger answers
/// "not found" without looking anything up; its error entry is then replaced by a refusal.
fn denied_placeholder(position: usize) -> String {
    format!("arn:secret-ledger:access-denied:{position}")
}

async fn batch_get_secret_value(
    ledger: &Ledger,
    input: &Input,
    meta: &RequestMeta,
    access: &Access,
    trail: Trail,
    filtering: &Arc<WorkSlots>,
) -> Result<String, ApiError> {
    let mut q = query::BatchGetSecretValue {
        secret_id_list: input.string_list("SecretIdList")?,
        filters: input.filters("Filters")?,
        max_results: input.integer("MaxResults")?,
        next_token: input.string("NextToken")?,
    };
    // Out-of-scope ids become placeholders, so the ledger still checks the request as a whole
    // (list length, Filters and MaxResults) but never looks them up.
    let mut denied: Vec<(String, String)> = Vec::new();
    if let Some(ids) = q.secret_id_list.as_mut() {
        for (position, id) in ids.iter_mut().enumerate() {
            if access.covers_secret_id(&meta.scope, id) == Some(false) {
                let placeholder = denied_placeholder(position);
                denied.push((placeholder.clone(), std::mem::replace(id, placeholder)));
            }
        }
    }
    if let (Some(filters), Some(scope_filter)) = (q.filters.as_mut(), access.name_filter()) {
        query::check_filters(filters)?;
        filters.push(scope_filter);
    }
    let read = {
        // The slot is held while filtering only, not while the reads are recorded.
        let _slot = filtering.take().await;
        off_the_worker(|| ledger.batch_get_secret_value_for(meta, &q))
    };
    match read {
        Ok(Ok(batch)) => {
            if trail.audit_reads {
                // Every value, and every refusal of an id out of scope, is recorded first.
                let reads: Vec<_> =
                    batch.values.iter().map(|v| (v.location.secret, v.location.version_id.clone())).collect();
                if !reads.is_empty() || !denied.is_empty() {
                    let denied = denied.iter().map(|(_, given)| given.clone()).collect();
                    record(
                        ledger,
                        Command::RecordReads { reads, denied, operation: Operation::BatchGetSecretValue.name() },
                        meta,
                    )
                    .await?;
                }
            }
            batch_answer(batch, &denied, meta)
        }
        Ok(Err(refusal)) => Err(refusal.into()),
        Err(store) => Err(ApiError::store(&store, &meta.request_id)),
    }
}

/// BatchGetSecretValue's answer; ids out of scope are answered as refused.
fn batch_answer(
    batch: ledger_store::BatchValues,
    denied: &[(String, String)],
    meta: &RequestMeta,
) -> Result<String, ApiError> {
    json(&wire::BatchGetSecretValueOut {
        secret_values: batch.values.into_iter().map(wire::SecretValueOutWire::from).collect(),
        next_token: batch.next_token,
        errors: batch
            .errors
            .into_iter()
            .map(|e| match denied.iter().find(|(placeholder, _)| *placeholder == e.secret_id) {
                Some((_, given)) => {
                    let refusal = access::denied(&meta.actor, "secretsmanager:GetSecretValue", given);
                    wire::ApiErrorEntry {
                        secret_id: given.clone(),
                        error_code: refusal.code.to_string(),
                        message: refusal.message,
                    }
                }
                None => wire::ApiErrorEntry::from(e),
            })
            .collect(),
    })
}

fn describe_secret(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let secret_id = input.required_string("SecretId", "secretId")?;
    let description = ledger.describe_secret(&meta.scope, &secret_id)?;
    json(&wire::DescriptionOut::new(description, false))
}

fn list_secret_version_ids(ledger: &Ledger, input: &Input, meta: &RequestMeta) -> Result<String, ApiError> {
    let q = query::ListSecretVersionIds {
        secret_id: input.required_string("SecretId", "secretId")?,
        max_results: input.integer("MaxResults")?,
        next_token: input.string("NextToken")?,
        include_deprecated: input.bool("IncludeDeprecated")?,
    };
    let list = ledger.list_secret_version_ids(&meta.scope, &q)?;
    // The listing names the secret by ARN, so this finds the same secret.
    let kms_key_id = ledger.describe_secret(&meta.scope, &list.arn).ok().and_then(|d| d.kms_key_id);
    json(&wire::ListSecretVersionIdsOut::new(list, kms_key_id))
}

async fn list_secrets(
    ledger: &Ledger,
    input: &Input,
    meta: &RequestMeta,
    access: &Access,
    filtering: &Arc<WorkSlots>,
) -> Result<String, ApiError> {
    let mut q = wire::list_secrets(input)?;
    if let Some(scope_filter) = access.name_filter() {
        // The caller's own filters are checked (and refused) as they were sent.
        query::check_filters(&q.filters)?;
        q.filters.push(scope_filter);
    }
    // Filtering every secret holds the projection's read lock and takes CPU: off the async
    // worker, so other connections keep being served, and in a filtering slot, so a burst of
    // listings cannot take every thread.
    let list = {
        // Held while filtering only, not while the answer is serialised.
        let _slot = filtering.take().await;
        off_the_worker(|| ledger.list_secrets(&meta.scope, &q))?
    };
    json(&wire::ListSecretsOut::from(list))
}

/// Runs `f` where it may block: `block_in_place` on a multi-threaded runtime (the worker's other
/// tasks move elsewhere meanwhile), in place otherwise.
fn off_the_worker<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

fn get_random_password(input: &Input) -> Result<String, ApiError> {
    let q = GetRandomPassword {
        password_length: input.integer("PasswordLength")?,
        exclude_characters: input.string("ExcludeCharacters")?,
        exclude_numbers: input.bool("ExcludeNumbers")?,
        exclude_punctuation: input.bool("ExcludePunctuation")?,
        exclude_uppercase: input.bool("ExcludeUppercase")?,
        exclude_lowercase: input.bool("ExcludeLowercase")?,
        include_space: input.bool("IncludeSpace")?,
        require_each_included_type: input.bool("RequireEachIncludedType")?,
    };
    let password = password::get_random_password(&q, &mut rand_core::OsRng)?;
    json(&wire::RandomPasswordOut { random_password: password.as_str().to_string() })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_slots_make_callers_beyond_the_limit_wait() {
        let slots = WorkSlots::new("test", 2);
        let (a, b) = (slots.take().await, slots.take().await);
        assert!(slots.try_take().is_none(), "a third slot out of two");
        let waiting = tokio::spawn({
            let slots = slots.clone();
            async move { slots.take().await }
        });
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a caller beyond the limit did not wait");
        drop(a);
        let c = tokio::time::timeout(std::time::Duration::from_secs(5), waiting).await.unwrap().unwrap();
        assert_eq!((slots.max(), slots.peak(), slots.waits()), (2, 2, 2));
        drop((b, c));
        let again: Vec<_> = (0..2).map(|_| slots.try_take()).collect();
        assert!(again.iter().all(Option::is_some), "slots not given back");
        assert_eq!(WorkSlots::new("zero", 0).max(), 1);
        assert!(default_filtering_slots() >= 2 && default_filtering_slots() == (2 * cpus()).max(2));
    }
}
