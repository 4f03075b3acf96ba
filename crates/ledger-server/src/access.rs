//! Access scopes of credentials: what one access key may do.
//!
//! A credentials line is `ACCESS_KEY_ID:SECRET_ACCESS_KEY[:OPTION[:OPTION…]]` (see
//! [`crate::credentials::parse_credentials`]); the options build an [`Access`]:
//!
//! * `ro`: read-only; only the operations of [`Kind::Read`] are allowed, and the
//!   `SecretLedger.*` audit operations, which only read (an `ro` key can read every secret
//!   anyway); `noaudit` removes those.
//! * `prefix=P`: only secrets whose name starts with `P` (a plain string prefix, so write
//!   `prefix=app/` to mean "under `app/`"); repeatable, a name matching any prefix is in scope.
//! * `noaudit`: no `SecretLedger.*` audit operation.
//!
//! A key with no option has full access. A key with at least one `prefix=` never gets the
//! audit operations either: history, state and export describe every secret of the log.
//!
//! The decision is made from the request alone, before the ledger is asked, so it never
//! depends on (and never reveals) whether a secret exists: a `SecretId` is in scope when the
//! name it spells is (a name; the resource part of a partial ARN; the resource part minus its
//! `-XXXXXX` suffix for a complete ARN, the only names that ARN can resolve to); an ARN of
//! another region or account is out of scope. Listings are narrowed, not refused: a `name`
//! filter with the prefixes is added to `ListSecrets` and `BatchGetSecretValue`'s `Filters`,
//! so pages and their `NextToken`s only ever contain secrets in scope. A refusal is
//! `AccessDeniedException` (400), logged at `warn` with the actor, operation and the id as
//! given, and appends nothing.

use axum::http::StatusCode;
use ledger_core::limits::{FILTER_VALUES_MAX, FILTER_VALUE_CHARS_MAX};
use ledger_core::names::{parse_secret_id, SecretRef};
use ledger_core::query::Filter;
use ledger_core::Scope;

use crate::error::ApiError;
use crate::operation::{Kind, Operation};
use crate::wire::Input;

/// The error code of a refused call.
pub const ACCESS_DENIED: &str = "AccessDeniedException";

/// What one access key may do. [`Access::default`] is full access.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Access {
    /// Only [`Kind::Read`] operations.
    pub read_only: bool,
    /// Name prefixes in scope; empty means every name.
    pub prefixes: Vec<String>,
    /// No audit operation (`SecretLedger.*`).
    pub no_audit: bool,
}

/// Why a credentials option was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum OptionError {
    #[error("prefix= needs 1 to {FILTER_VALUE_CHARS_MAX} characters from letters, digits and /_+=.@-")]
    BadPrefix,
    #[error("at most {FILTER_VALUES_MAX} prefix= options per key")]
    TooManyPrefixes,
}

fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '/' | '_' | '+' | '=' | '.' | '@' | '-')
}

impl Access {
    /// Full access: every operation on every secret, audit included.
    pub fn full() -> Access {
        Access::default()
    }

    pub fn is_full(&self) -> bool {
        !self.read_only && self.prefixes.is_empty() && !self.no_audit
    }

    /// Whether `segment` is spelled like an option (`ro`, `noaudit`, `prefix=…`); only such
    /// trailing segments of a credentials line are options, anything else belongs to the key.
    pub fn is_option(segment: &str) -> bool {
        matches!(segment, "ro" | "noaudit") || segment.starts_with("prefix=")
    }

    /// Applies one option (a segment for which [`Access::is_option`] holds).
    pub fn apply_option(&mut self, segment: &str) -> Result<(), OptionError> {
        match segment {
            "ro" => self.read_only = true,
            "noaudit" => self.no_audit = true,
            _ => {
                let prefix = segment.strip_prefix("prefix=").ok_or(OptionError::BadPrefix)?;
                if prefix.is_empty()
                    || prefix.chars().count() > FILTER_VALUE_CHARS_MAX
                    || !prefix.chars().all(is_name_char)
                {
                    return Err(OptionError::BadPrefix);
                }
                if !self.prefixes.iter().any(|p| p == prefix) {
                    if self.prefixes.len() == FILTER_VALUES_MAX {
                        return Err(OptionError::TooManyPrefixes);
                    }
                    self.prefixes.push(prefix.to_string());
                }
            }
        }
        Ok(())
    }

    /// Whether a secret of this name is in scope.
    pub fn covers_name(&self, name: &str) -> bool {
        self.prefixes.is_empty() || self.prefixes.iter().any(|p| name.starts_with(p.as_str()))
    }

    /// Whether a `SecretId` is in scope: `None` when it is malformed (the ledger refuses it
    /// with a validation error, which says nothing about any secret).
    pub fn covers_secret_id(&self, scope: &Scope, secret_id: &str) -> Option<bool> {
        if self.prefixes.is_empty() {
            return Some(true);
        }
        let name = match parse_secret_id(scope, secret_id).ok()? {
            SecretRef::Name(name) | SecretRef::PartialArn(name) => name,
            SecretRef::FullArn(arn) => {
                // `arn:partition:service:region:account:secret:` then `name-XXXXXX`; anything
                // else (never produced by the parser) is out of scope.
                let name =
                    arn.splitn(7, ':').nth(6).and_then(|resource| resource.get(..resource.len().checked_sub(7)?));
                let Some(name) = name else { return Some(false) };
                name
            }
            SecretRef::Foreign => return Some(false),
        };
        Some(self.covers_name(name))
    }

    /// The filter that narrows a listing to the scope, if the key has prefixes.
    pub fn name_filter(&self) -> Option<Filter> {
        (!self.prefixes.is_empty()).then(|| Filter { key: "name".to_string(), values: self.prefixes.clone() })
    }

    /// Checks a Secrets Manager operation before it runs. Listings pass (they are narrowed by
    /// [`Access::name_filter`]); `BatchGetSecretValue`'s ids are checked one by one by the caller.
    pub fn check(&self, actor: &str, operation: Operation, input: &Input, scope: &Scope) -> Result<(), ApiError> {
        if self.is_full() {
            return Ok(());
        }
        // The resource as the caller named it, for the message; `*` when it did not.
        let given = input.string(operation.secret_member()).ok().flatten();
        let resource = given.as_deref().unwrap_or("*");
        if self.read_only && operation.kind() != Kind::Read {
            return Err(denied(actor, &operation.action(), resource));
        }
        if self.prefixes.is_empty() {
            return Ok(());
        }
        let in_scope = match (operation, given.as_deref()) {
            (Operation::ListSecrets | Operation::BatchGetSecretValue | Operation::GetRandomPassword, _) => true,
            // A missing or mistyped member: the operation refuses it without reading anything.
            (_, None) => true,
            (Operation::CreateSecret, Some(name)) => self.covers_name(name),
            (_, Some(secret_id)) => self.covers_secret_id(scope, secret_id).unwrap_or(true),
        };
        if in_scope {
            Ok(())
        } else {
            Err(denied(actor, &operation.action(), resource))
        }
    }

    /// Checks a `SecretLedger.*` audit operation: refused to `noaudit` and prefix-scoped keys.
    pub fn check_audit(&self, actor: &str, operation: Operation) -> Result<(), ApiError> {
        if self.no_audit || !self.prefixes.is_empty() {
            return Err(denied(actor, &operation.action(), "*"));
        }
        Ok(())
    }
}

/// The message of a refusal: says what was asked, never whether the secret exists.
pub fn denied_message(actor: &str, action: &str, resource: &str) -> String {
    let resource: String = resource.chars().take(2048).collect();
    format!("User: {actor} is not authorized to perform: {action} on resource: {resource}")
}

/// A refused call: logged, answered `AccessDeniedException`.
pub fn denied(actor: &str, action: &str, resource: &str) -> ApiError {
    let message = denied_message(actor, action, resource);
    // `?`: quoted and escaped, so a SecretId with a line break cannot forge a log line.
    tracing::warn!(actor, action, resource = ?resource.chars().take(256).collect::<String>(), "access denied");
    ApiError::new(ACCESS_DENIED, StatusCode::BAD_REQUEST, message)
}

#[cfg(test)]
impl Access {
    /// Full access limited to names under `prefixes` (as `prefix=` options would give).
    pub(crate) fn with_prefixes(prefixes: &[&str]) -> Access {
        let mut access = Access::default();
        for prefix in prefixes {
            access.apply_option(&format!("prefix={prefix}")).unwrap();
        }
        access
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scoped(prefixes: &[&str]) -> Access {
        Access::with_prefixes(prefixes)
    }

    #[test]
    fn secret_ids_resolve_to_the_name_they_can_reach() {
        let scope = Scope::new("us-east-1", "000000000000");
        let a = scoped(&["app/"]);
        let arn = |resource: &str| format!("arn:aws:secretsmanager:us-east-1:000000000000:secret:{resource}");
        assert_eq!(a.covers_secret_id(&scope, "app/x"), Some(true));
        assert_eq!(a.covers_secret_id(&scope, "other/x"), Some(false));
        assert_eq!(a.covers_secret_id(&scope, "ap"), Some(false));
        assert_eq!(a.covers_secret_id(&scope, &arn("app/x-AbCdEf")), Some(true));
        assert_eq!(a.covers_secret_id(&scope, &arn("app/x")), Some(true));
        assert_eq!(a.covers_secret_id(&scope, &arn("other/x-AbCdEf")), Some(false));
        assert_eq!(a.covers_secret_id(&scope, &arn("other/x")), Some(false));
        // A complete ARN is checked on its name, the resource without `-XXXXXX`.
        assert_eq!(a.covers_secret_id(&scope, &arn("app/-AbCdEf")), Some(true));
        assert_eq!(a.covers_secret_id(&scope, &arn("appxx-AbCdEf")), Some(false));
        let foreign = "arn:aws:secretsmanager:eu-west-1:000000000000:secret:app/x-AbCdEf";
        assert_eq!(a.covers_secret_id(&scope, foreign), Some(false));
        assert_eq!(a.covers_secret_id(&scope, ""), None);
        assert_eq!(Access::full().covers_secret_id(&scope, "other/x"), Some(true));
    }

    #[test]
    fn options() {
        let mut a = Access::default();
        assert!(a.is_full());
        for bad in ["prefix=", "prefix=a:b", "prefix=a b", "prefix=é"] {
            assert_eq!(a.apply_option(bad), Err(OptionError::BadPrefix), "{bad}");
        }
        for i in 0..FILTER_VALUES_MAX {
            a.apply_option(&format!("prefix=p{i}/")).unwrap();
        }
        a.apply_option("prefix=p0/").unwrap();
        assert_eq!(a.apply_option("prefix=more/"), Err(OptionError::TooManyPrefixes));
        assert!(Access::is_option("ro") && Access::is_option("noaudit") && Access::is_option("prefix=x"));
        assert!(!Access::is_option("colons") && !Access::is_option("RO"));
    }
}
