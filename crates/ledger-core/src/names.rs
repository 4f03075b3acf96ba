//! Secret names, ARNs and `SecretId` resolution (spec §4.8).

use rand_core::RngCore;

use crate::error::SmError;
use crate::ids::Scope;
use crate::limits::{NAME_CHARS_MAX, SECRET_ID_CHARS_MAX};
use crate::state::{SecretState, State};

const SUFFIX_ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '=' | '.' | '@' | '-')
}

/// Checks a CreateSecret `Name`: 1–512 characters from letters, digits and `/_+=.@-`.
pub fn check_name(name: &str) -> Result<(), SmError> {
    crate::validate::check_len("name", name, 1, NAME_CHARS_MAX)?;
    if !name.chars().all(is_name_char) {
        return Err(SmError::InvalidName);
    }
    Ok(())
}

/// Six random letters and digits, as AWS appends to a secret's ARN.
pub fn arn_suffix(rng: &mut dyn RngCore) -> String {
    (0..6)
        .map(|_| {
            // 62 symbols: rejection-sample a byte so every symbol is equally likely.
            loop {
                let mut b = [0u8; 1];
                rng.fill_bytes(&mut b);
                if usize::from(b[0]) < 248 {
                    return char::from(SUFFIX_ALPHABET[usize::from(b[0]) % 62]);
                }
            }
        })
        .collect()
}

pub fn secret_arn(scope: &Scope, name: &str, suffix: &str) -> String {
    format!("arn:{}:secretsmanager:{}:{}:secret:{}-{}", scope.partition, scope.region, scope.account, name, suffix)
}

/// How a `SecretId` names a secret.
#[derive(Debug, PartialEq, Eq)]
pub enum SecretRef<'a> {
    Name(&'a str),
    /// The resource part ends in `-` plus six characters: must equal a stored ARN exactly.
    FullArn(&'a str),
    /// Any other ARN in this scope: the resource part is a name.
    PartialArn(&'a str),
    /// An ARN of another partition, service, region or account, or not an ARN at all.
    Foreign,
}

/// Classifies a `SecretId`, checking its length and, for names, its characters.
pub fn parse_secret_id<'a>(scope: &Scope, secret_id: &'a str) -> Result<SecretRef<'a>, SmError> {
    crate::validate::check_len("secretId", secret_id, 1, SECRET_ID_CHARS_MAX)?;
    let Some(rest) = secret_id.strip_prefix("arn:") else {
        if !secret_id.chars().all(is_name_char) {
            return Err(SmError::InvalidName);
        }
        return Ok(SecretRef::Name(secret_id));
    };
    // partition:service:region:account:secret:resource
    let mut parts = rest.splitn(6, ':');
    let (Some(partition), Some(service), Some(region), Some(account), Some(kind), Some(resource)) =
        (parts.next(), parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Ok(SecretRef::Foreign);
    };
    if partition != scope.partition
        || service != "secretsmanager"
        || region != scope.region
        || account != scope.account
        || kind != "secret"
        || resource.is_empty()
    {
        return Ok(SecretRef::Foreign);
    }
    let bytes = resource.as_bytes();
    let looks_complete = bytes.len() >= 8 && bytes[bytes.len() - 7] == b'-';
    Ok(if looks_complete { SecretRef::FullArn(secret_id) } else { SecretRef::PartialArn(resource) })
}

/// Resolves a `SecretId` to a secret of this scope (live or scheduled for deletion).
pub fn resolve<'s>(state: &'s State, scope: &Scope, secret_id: &str) -> Result<&'s SecretState, SmError> {
    let found = match parse_secret_id(scope, secret_id)? {
        SecretRef::Name(name) | SecretRef::PartialArn(name) => state.by_name(&scope.region, name),
        SecretRef::FullArn(arn) => state.by_arn(arn),
        SecretRef::Foreign => None,
    };
    found.ok_or(SmError::SecretNotFound)
}
