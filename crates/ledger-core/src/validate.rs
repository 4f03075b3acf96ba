//! Request validation that needs no state: lengths and counts of members, with AWS's messages
//! built from the limits in [`crate::limits`]. Every `ValidationException` about a member's
//! length comes from here.

use crate::error::SmError;
use crate::limits::{
    DESCRIPTION_CHARS_MAX, KMS_KEY_ID_CHARS_MAX, LABEL_CHARS_MAX, TAG_KEY_CHARS_MAX, TAG_VALUE_CHARS_MAX,
    TOKEN_CHARS_MAX, TOKEN_CHARS_MIN, TYPE_CHARS_MAX,
};

/// A member of `min..=max` characters.
pub fn check_len(member: &str, value: &str, min: usize, max: usize) -> Result<(), SmError> {
    check_count(member, value.chars().count(), min, max)
}

/// A member whose length (characters, bytes or items, as the member counts) is `n`, within
/// `min..=max`.
pub fn check_count(member: &str, n: usize, min: usize, max: usize) -> Result<(), SmError> {
    if n < min {
        return Err(SmError::validation(member, &format!("Member must have length greater than or equal to {min}")));
    }
    if n > max {
        return Err(SmError::validation(member, &format!("Member must have length less than or equal to {max}")));
    }
    Ok(())
}

pub(crate) fn check_token(token: &Option<String>) -> Result<(), SmError> {
    match token {
        Some(t) => check_len("clientRequestToken", t, TOKEN_CHARS_MIN, TOKEN_CHARS_MAX),
        None => Ok(()),
    }
}

pub(crate) fn check_metadata(
    description: &Option<String>,
    kms_key_id: &Option<String>,
    secret_type: &Option<String>,
) -> Result<(), SmError> {
    if let Some(d) = description {
        check_len("description", d, 0, DESCRIPTION_CHARS_MAX)?;
    }
    if let Some(k) = kms_key_id {
        check_len("kmsKeyId", k, 0, KMS_KEY_ID_CHARS_MAX)?;
    }
    if let Some(t) = secret_type {
        check_len("type", t, 0, TYPE_CHARS_MAX)?;
    }
    Ok(())
}

/// Tags as `(key, value)`: keys of 1 or more characters, not in the reserved `aws:` space.
pub(crate) fn check_tags<'a>(tags: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<(), SmError> {
    for (i, (key, value)) in tags.into_iter().enumerate() {
        check_len(&format!("tags.{}.member.key", i + 1), key, 1, TAG_KEY_CHARS_MAX)?;
        check_len(&format!("tags.{}.member.value", i + 1), value, 0, TAG_VALUE_CHARS_MAX)?;
        if key.starts_with("aws:") {
            return Err(SmError::ReservedTagKey);
        }
    }
    Ok(())
}

pub(crate) fn check_label(member: &str, label: &str) -> Result<(), SmError> {
    check_len(member, label, 1, LABEL_CHARS_MAX)
}
