//! Typed errors: every refusal of a request is one [`SmError`] variant that knows its AWS
//! `__type` ([`ErrorCode`]) and its AWS message; every rule a log can break is one
//! [`RuleViolation`]. Messages carry names, ids and labels, never secret values.

/// The AWS error shape names this ledger can answer with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    ResourceNotFoundException,
    InvalidParameterException,
    InvalidRequestException,
    ResourceExistsException,
    LimitExceededException,
    InvalidNextTokenException,
    ValidationException,
    DecryptionFailure,
    MalformedPolicyDocumentException,
    PublicPolicyException,
    InternalServiceError,
}

impl ErrorCode {
    /// The bare shape name sent as `__type`.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::ResourceNotFoundException => "ResourceNotFoundException",
            ErrorCode::InvalidParameterException => "InvalidParameterException",
            ErrorCode::InvalidRequestException => "InvalidRequestException",
            ErrorCode::ResourceExistsException => "ResourceExistsException",
            ErrorCode::LimitExceededException => "LimitExceededException",
            ErrorCode::InvalidNextTokenException => "InvalidNextTokenException",
            ErrorCode::ValidationException => "ValidationException",
            ErrorCode::DecryptionFailure => "DecryptionFailure",
            ErrorCode::MalformedPolicyDocumentException => "MalformedPolicyDocumentException",
            ErrorCode::PublicPolicyException => "PublicPolicyException",
            ErrorCode::InternalServiceError => "InternalServiceError",
        }
    }
}

/// Why a Secrets Manager request was refused. `Display` is the AWS message.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SmError {
    #[error("Secrets Manager can't find the specified secret.")]
    SecretNotFound,
    #[error("Secrets Manager can't find the specified secret value for VersionId: {version_id}")]
    VersionNotFound { version_id: String },
    #[error("Secrets Manager can't find the specified secret value for staging label: {label}")]
    LabelNotFound { label: String },
    #[error("You provided a VersionStage that is not associated to the provided VersionId.")]
    StageNotOnVersion,
    #[error("You can't specify both a binary secret value and a string secret value in the same secret.")]
    BothValues,
    #[error("You must provide either SecretString or SecretBinary.")]
    NoValue,
    #[error("You must provide a ClientRequestToken value. We recommend a UUID-type value.")]
    TokenMissing,
    #[error(
        "You can't use ClientRequestToken {token} because that value is already in use for a version of secret {arn}."
    )]
    TokenReused { token: String, arn: String },
    #[error("The operation failed because the secret {name} already exists.")]
    NameExists { name: String },
    #[error("You can't create this secret because a secret with this name is already scheduled for deletion.")]
    NameScheduledForDeletion,
    #[error("You can't perform this operation on the secret because it was marked for deletion.")]
    MarkedForDeletion,
    #[error("You tried to perform the operation on a secret that's currently marked deleted.")]
    AlreadyScheduled,
    #[error(
        "The RecoveryWindowInDays value must be between {} and {} days (inclusive).",
        crate::limits::RECOVERY_WINDOW_DAYS_MIN,
        crate::limits::RECOVERY_WINDOW_DAYS_MAX
    )]
    RecoveryWindowOutOfRange,
    #[error("You can't use ForceDeleteWithoutRecovery in conjunction with RecoveryWindowInDays.")]
    ForceWithWindow,
    #[error("The parameter RemoveFromVersionId can't be empty. Staging label {label} is currently attached to version {holder}, so you must explicitly reference that version in RemoveFromVersionId.")]
    RemoveFromMissing { label: String, holder: String },
    #[error("When you move staging label {label}, if you specify RemoveFromVersionId, it must be set to the version that currently has the staging label {label}.")]
    RemoveFromMismatch { label: String },
    #[error("You must specify MoveToVersionId or RemoveFromVersionId.")]
    NoStageTarget,
    #[error("Secrets Manager can't find the specified version {version_id}.")]
    StageVersionNotFound { version_id: String },
    #[error("You can't remove the staging label AWSCURRENT from a version without moving it to another version.")]
    DetachCurrent,
    #[error("The secret {name} has reached the quota of {max} staging labels.")]
    TooManyLabels { name: String, max: usize },
    #[error("The secret {name} has reached the quota of {max} versions and none of its deprecated versions is old enough to be removed.")]
    TooManyVersions { name: String, max: usize },
    #[error("The secret {name} has reached the quota of {max} tags.")]
    TooManyTags { name: String, max: usize },
    #[error("Tag keys beginning with aws: are reserved.")]
    ReservedTagKey,
    #[error(
        "Invalid name. Must be a valid name containing alphanumeric characters, or any of the following: -/_+=.@!"
    )]
    InvalidName,
    #[error("{0}")]
    Validation(String),
    #[error("{0}")]
    InvalidParameter(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("The NextToken value is not valid.")]
    InvalidNextToken,
    #[error("{0}")]
    MalformedPolicy(String),
    #[error("You can't attach a resource-based policy that allows public access to your secret.")]
    PublicPolicy,
    #[error("No Lambda rotation function ARN is associated with this secret.")]
    NoRotationFunction,
    #[error("A previous rotation isn't complete. That rotation will be reattempted.")]
    RotationInProgress,
    #[error("You must provide a ClientRequestToken value. We recommend a UUID-type value.")]
    RotationTokenMissing,
    #[error("Version {version_id} has no value yet, so it can't carry AWSCURRENT.")]
    CurrentWithoutValue { version_id: String },
    #[error("Secrets Manager can't decrypt the protected secret text.")]
    Decryption,
    #[error("An error occurred on the server side.")]
    Internal,
}

impl SmError {
    /// A Coral-style constraint violation; never includes the offending value.
    pub fn validation(member: &str, constraint: &str) -> SmError {
        SmError::Validation(format!(
            "1 validation error detected: Value at '{member}' failed to satisfy constraint: {constraint}"
        ))
    }

    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            SmError::SecretNotFound | SmError::VersionNotFound { .. } | SmError::LabelNotFound { .. } => {
                C::ResourceNotFoundException
            }
            SmError::StageNotOnVersion
            | SmError::NoValue
            | SmError::TokenMissing
            | SmError::NameScheduledForDeletion
            | SmError::MarkedForDeletion
            | SmError::AlreadyScheduled
            | SmError::NoRotationFunction
            | SmError::RotationInProgress
            | SmError::CurrentWithoutValue { .. }
            | SmError::InvalidRequest(_) => C::InvalidRequestException,
            SmError::BothValues
            | SmError::RecoveryWindowOutOfRange
            | SmError::ForceWithWindow
            | SmError::RemoveFromMissing { .. }
            | SmError::RemoveFromMismatch { .. }
            | SmError::NoStageTarget
            | SmError::StageVersionNotFound { .. }
            | SmError::DetachCurrent
            | SmError::ReservedTagKey
            | SmError::RotationTokenMissing
            | SmError::InvalidParameter(_) => C::InvalidParameterException,
            SmError::TokenReused { .. } | SmError::NameExists { .. } => C::ResourceExistsException,
            SmError::TooManyLabels { .. } | SmError::TooManyVersions { .. } | SmError::TooManyTags { .. } => {
                C::LimitExceededException
            }
            SmError::InvalidName | SmError::Validation(_) => C::ValidationException,
            SmError::InvalidNextToken => C::InvalidNextTokenException,
            SmError::Decryption => C::DecryptionFailure,
            SmError::MalformedPolicy(_) => C::MalformedPolicyDocumentException,
            SmError::PublicPolicy => C::PublicPolicyException,
            SmError::Internal => C::InternalServiceError,
        }
    }
}

/// A rule an event breaks when evolved onto the state before it: what replay reports.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RuleViolation {
    #[error("event for secret uid {uid}, which does not exist")]
    MissingSecret { uid: u64 },
    #[error("secret uid {uid} created twice, or out of order (next uid is {expected})")]
    UidOutOfOrder { uid: u64, expected: u64 },
    #[error("secret name {name} is already taken in region {region}")]
    NameTaken { name: String, region: String },
    #[error("version id {version_id} of secret uid {uid} reused (a token used twice)")]
    VersionReused { uid: u64, version_id: String },
    #[error("version {version_id} of secret uid {uid} does not exist")]
    MissingVersion { uid: u64, version_id: String },
    #[error(
        "label {label} moved from {claimed:?}, but its holder is {actual:?} (a label on two versions or a forged move)"
    )]
    WrongLabelHolder { label: String, claimed: Option<String>, actual: Option<String> },
    #[error("label {label} move is empty (from and to both absent or equal)")]
    EmptyMove { label: String },
    #[error("secret uid {uid} would carry more than {} labels", crate::limits::LABELS_PER_SECRET_MAX)]
    TooManyLabels { uid: u64 },
    #[error("version {version_id} of secret uid {uid} pruned while it still carries labels or is too young")]
    BadPrune { uid: u64, version_id: String },
    #[error("secret uid {uid} is scheduled for deletion and cannot change this way")]
    ScheduledSecretChanged { uid: u64 },
    #[error("secret uid {uid} is not scheduled for deletion")]
    NotScheduled { uid: u64 },
    #[error("secret uid {uid} would hold more than the version quota")]
    TooManyVersions { uid: u64 },
    #[error("secret uid {uid}: deletion date is not 7 to 30 whole days after the request")]
    BadDeletionDate { uid: u64 },
    #[error("secret uid {uid}: AWSCURRENT detached without moving it")]
    CurrentDetached { uid: u64 },
    #[error("secret uid {uid}: ARN {arn} does not name secret {name} in region {region}")]
    BadArn { uid: u64, arn: String, name: String, region: String },
    #[error("version {version_id} of secret uid {uid} was given a value twice")]
    ValueSetTwice { uid: u64, version_id: String },
    #[error("secret uid {uid}: rotation configured without a rotation function")]
    RotationWithoutFunction { uid: u64 },
    #[error(
        "secret uid {uid}: access of version {version_id} not on a whole UTC day, in the future, or twice on one day"
    )]
    BadAccess { uid: u64, version_id: String },
    #[error("secret uid {uid}: an empty resource policy")]
    EmptyPolicy { uid: u64 },
    #[error("secret uid {uid}: resource policy deleted, but there was none")]
    NoPolicy { uid: u64 },
    #[error("a master key rotation from key {from} to key {to} does not move to a newer key")]
    MasterKeyNotNewer { from: u32, to: u32 },
    #[error("an AccessDenied names a resource longer than a SecretId may be")]
    LongResource,
    #[error("secret uid {uid}: AWSCURRENT moved to version {version_id}, which has no value")]
    CurrentWithoutValue { uid: u64, version_id: String },
}
