//! Service limits, each with its unit in the name (spec §2, §5).

/// Largest `SecretString` (UTF-8 bytes) or `SecretBinary` (decoded bytes).
pub const SECRET_VALUE_BYTES_MAX: usize = 65_536;
pub const NAME_CHARS_MAX: usize = 512;
pub const SECRET_ID_CHARS_MAX: usize = 2048;
pub const TOKEN_CHARS_MIN: usize = 32;
pub const TOKEN_CHARS_MAX: usize = 64;
pub const LABEL_CHARS_MAX: usize = 256;
/// Distinct staging labels attached across all versions of one secret.
pub const LABELS_PER_SECRET_MAX: usize = 20;
/// Versions a secret may hold before deprecated ones are pruned.
pub const VERSIONS_PER_SECRET_MAX: usize = 100;
/// A deprecated version younger than this is never pruned (AWS's grace period).
pub const PRUNE_GRACE_MS: i64 = 24 * 60 * 60 * 1000;
pub const DESCRIPTION_CHARS_MAX: usize = 2048;
pub const KMS_KEY_ID_CHARS_MAX: usize = 2048;
pub const TYPE_CHARS_MAX: usize = 256;
pub const TAG_KEY_CHARS_MAX: usize = 128;
pub const TAG_VALUE_CHARS_MAX: usize = 256;
pub const TAGS_PER_SECRET_MAX: usize = 50;
pub const RECOVERY_WINDOW_DAYS_MIN: i64 = 7;
pub const RECOVERY_WINDOW_DAYS_MAX: i64 = 30;
pub const RECOVERY_WINDOW_DAYS_DEFAULT: i64 = 30;
pub const LIST_PAGE_MAX: usize = 100;
pub const BATCH_PAGE_MAX: usize = 20;
pub const BATCH_IDS_MAX: usize = 20;
pub const FILTERS_MAX: usize = 10;
pub const FILTER_VALUES_MAX: usize = 10;
pub const FILTER_VALUE_CHARS_MAX: usize = 512;
pub const NEXT_TOKEN_CHARS_MAX: usize = 4096;
pub const PASSWORD_LENGTH_MAX: i64 = 4096;
pub const PASSWORD_LENGTH_DEFAULT: i64 = 32;
/// Longest `ExcludeCharacters` of GetRandomPassword.
pub const EXCLUDE_CHARACTERS_CHARS_MAX: usize = 4096;
pub const DAY_MS: i64 = 24 * 60 * 60 * 1000;
/// Longest resource policy document, in characters.
pub const POLICY_CHARS_MAX: usize = 20_480;
/// Longest `RotationLambdaARN`.
pub const ROTATION_LAMBDA_ARN_CHARS_MAX: usize = 2048;
