//! Secret plaintext, kept in zeroizing buffers and never printed.

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::error::SmError;
use crate::limits::SECRET_VALUE_BYTES_MAX;

/// Which field a version was stored with; bound into the ciphertext's associated data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ValueKind {
    String,
    Binary,
}

impl ValueKind {
    pub fn tag(self) -> u8 {
        match self {
            ValueKind::String => 1,
            ValueKind::Binary => 2,
        }
    }
}

/// A secret value in plaintext. `Debug` prints `[redacted]`; memory is wiped on drop.
#[derive(Clone, PartialEq, Eq)]
pub enum SecretValue {
    String(Zeroizing<String>),
    Binary(Zeroizing<Vec<u8>>),
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretValue::String(_) => f.write_str("SecretString([redacted])"),
            SecretValue::Binary(_) => f.write_str("SecretBinary([redacted])"),
        }
    }
}

impl SecretValue {
    pub fn string(s: impl Into<String>) -> SecretValue {
        SecretValue::String(Zeroizing::new(s.into()))
    }

    pub fn binary(b: impl Into<Vec<u8>>) -> SecretValue {
        SecretValue::Binary(Zeroizing::new(b.into()))
    }

    pub fn kind(&self) -> ValueKind {
        match self {
            SecretValue::String(_) => ValueKind::String,
            SecretValue::Binary(_) => ValueKind::Binary,
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            SecretValue::String(s) => s.as_bytes(),
            SecretValue::Binary(b) => b,
        }
    }

    /// Rebuilds a value from decrypted bytes of the given kind.
    pub fn from_plaintext(kind: ValueKind, bytes: Zeroizing<Vec<u8>>) -> Option<SecretValue> {
        match kind {
            ValueKind::Binary => Some(SecretValue::Binary(bytes)),
            ValueKind::String => {
                let s = std::str::from_utf8(&bytes).ok()?.to_string();
                Some(SecretValue::String(Zeroizing::new(s)))
            }
        }
    }

    /// Builds the value of a request from its two optional fields: at most one may be given,
    /// and it must hold 1 to 65,536 bytes (UTF-8 bytes for strings, decoded bytes for binary).
    pub fn from_fields(string: Option<String>, binary: Option<Vec<u8>>) -> Result<Option<SecretValue>, SmError> {
        let value = match (string, binary) {
            (Some(_), Some(_)) => return Err(SmError::BothValues),
            (Some(s), None) => SecretValue::string(s),
            (None, Some(b)) => SecretValue::binary(b),
            (None, None) => return Ok(None),
        };
        let len = value.as_bytes().len();
        let field = match value.kind() {
            ValueKind::String => "secretString",
            ValueKind::Binary => "secretBinary",
        };
        crate::validate::check_count(field, len, 1, SECRET_VALUE_BYTES_MAX)?;
        Ok(Some(value))
    }
}
