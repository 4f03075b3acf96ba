//! SigV4 verification of every request (spec §1.5).
//!
//! The server parses the `Authorization` header itself (so it can answer each malformation with
//! the right AWS error), then recomputes the signature with the `aws-sigv4` crate from exactly
//! what was received: method, path and query, the headers named in `SignedHeaders` with their
//! received values (`host` verbatim, port included), the exact body bytes, the time of
//! `X-Amz-Date`, the region of the credential scope and the stored secret key. The two signature
//! strings are compared in constant time.
//!
//! Every SDK request to this service is a `POST /` with no query and a sorted, single-valued
//! `SignedHeaders` list; for those the canonical request and string to sign are written here
//! (the same bytes the crate writes, checked against it by a property test) and signed with a
//! signing key derived once per access key, day and region (kept by [`CredentialStore`]). Anything else
//! (a path, a query, a repeated or unsorted header) goes through the crate's full signer.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use axum::http::HeaderMap;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::credentials::CredentialStore;

/// The signing name of Secrets Manager in the credential scope.
pub const SERVICE: &str = "secretsmanager";
/// Requests whose `X-Amz-Date` is further than this from the server's clock are refused.
pub const CLOCK_SKEW_MAX: Duration = Duration::from_secs(5 * 60);

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

/// Who signed a request that verified, and for which region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    pub access_key_id: String,
    pub region: String,
}

/// Why a request's signature was refused; each variant is one AWS error shape.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Missing Authentication Token")]
    Missing,
    #[error("{0}")]
    Incomplete(String),
    #[error("The security token included in the request is invalid.")]
    UnknownAccessKey,
    #[error("{0}")]
    Invalid(String),
}

impl From<AuthError> for crate::error::ApiError {
    fn from(e: AuthError) -> crate::error::ApiError {
        crate::error::ApiError { code: e.code(), status: axum::http::StatusCode::BAD_REQUEST, message: e.to_string() }
    }
}

impl AuthError {
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::Missing => "MissingAuthenticationTokenException",
            AuthError::Incomplete(_) => "IncompleteSignatureException",
            AuthError::UnknownAccessKey => "UnrecognizedClientException",
            AuthError::Invalid(_) => "InvalidSignatureException",
        }
    }

    fn mismatch() -> AuthError {
        AuthError::Invalid(MISMATCH.to_string())
    }
}

/// The three parameters of an `Authorization: AWS4-HMAC-SHA256 …` header.
#[derive(Debug, PartialEq, Eq)]
pub struct AuthorizationHeader<'a> {
    pub access_key_id: &'a str,
    pub date: &'a str,
    pub region: &'a str,
    pub service: &'a str,
    pub signed_headers: Vec<&'a str>,
    pub signature: &'a str,
}

/// Parses the header value; tolerates missing or extra spaces after the commas.
pub fn parse_authorization(value: &str) -> Result<AuthorizationHeader<'_>, AuthError> {
    let value = value.trim();
    let rest = match value.split_once(' ') {
        Some((algorithm, rest)) if algorithm == ALGORITHM => rest,
        _ => {
            return Err(AuthError::Incomplete(format!(
                "Authorization header must use the {ALGORITHM} algorithm and carry Credential, SignedHeaders and Signature."
            )))
        }
    };
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let part = part.trim();
        if part.is_empty() {
            continue;
        }
        let Some((name, v)) = part.split_once('=') else {
            return Err(AuthError::Incomplete(format!(
                "Authorization header parameter '{}' has no value.",
                truncate(part)
            )));
        };
        match name.trim() {
            "Credential" => credential = Some(v.trim()),
            "SignedHeaders" => signed_headers = Some(v.trim()),
            "Signature" => signature = Some(v.trim()),
            _ => {}
        }
    }
    let mut missing = Vec::new();
    for (name, found) in [("Credential", &credential), ("Signature", &signature), ("SignedHeaders", &signed_headers)] {
        if !matches!(found, Some(v) if !v.is_empty()) {
            missing.push(format!("Authorization header requires '{name}' parameter."));
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature), true) =
        (credential, signed_headers, signature, missing.is_empty())
    else {
        return Err(AuthError::Incomplete(missing.join(" ")));
    };
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key_id, date, region, service, terminator] = parts[..] else {
        return Err(AuthError::Incomplete(
            "Credential must have the form <AccessKeyId>/<YYYYMMDD>/<region>/secretsmanager/aws4_request.".to_string(),
        ));
    };
    if terminator != "aws4_request" {
        return Err(AuthError::Incomplete(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{}'. ",
            truncate(terminator)
        )));
    }
    if access_key_id.is_empty() || date.is_empty() || region.is_empty() || service.is_empty() {
        return Err(AuthError::Incomplete(
            "Credential must have the form <AccessKeyId>/<YYYYMMDD>/<region>/secretsmanager/aws4_request.".to_string(),
        ));
    }
    Ok(AuthorizationHeader {
        access_key_id,
        date,
        region,
        service,
        signed_headers: signed_headers.split(';').collect(),
        signature,
    })
}

/// Keeps client-supplied text short in error messages.
fn truncate(s: &str) -> String {
    s.chars().take(64).collect()
}

/// A region we accept in a credential scope: lower-case letters, digits and `-`, as AWS names them.
fn valid_region(region: &str) -> bool {
    (1..=64).contains(&region.len())
        && region.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !region.starts_with('-')
        && !region.ends_with('-')
}

/// What the headers alone prove: a well-formed `Authorization` for a known key, a date within
/// the allowed skew, `host` and `x-amz-target` among the signed headers.
pub struct Checked<'a> {
    auth: AuthorizationHeader<'a>,
    signed_at: SystemTime,
    secret: &'a str,
}

/// Checks everything that needs no body, so a request from an unknown key or with a stale date
/// is refused before its body is read.
pub fn precheck<'a>(
    headers: &'a HeaderMap,
    credentials: &'a CredentialStore,
    now: SystemTime,
) -> Result<Checked<'a>, AuthError> {
    let Some(authorization) = headers.get("authorization") else {
        return Err(AuthError::Missing);
    };
    let authorization = authorization
        .to_str()
        .map_err(|_| AuthError::Incomplete("Authorization header is not valid ASCII.".to_string()))?;
    let auth = parse_authorization(authorization)?;
    if auth.service != SERVICE {
        return Err(AuthError::Incomplete(format!("Credential should be scoped to correct service: '{SERVICE}'. ")));
    }
    if !valid_region(auth.region) {
        return Err(AuthError::Incomplete(format!(
            "Credential should be scoped to a valid region, not '{}'. ",
            truncate(auth.region)
        )));
    }
    let amz_date = match headers.get("x-amz-date").map(|v| v.to_str()) {
        Some(Ok(v)) => v,
        Some(Err(_)) | None => {
            return Err(AuthError::Incomplete(
                "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.".to_string(),
            ))
        }
    };
    let signed_at = parse_amz_date_cached(amz_date).ok_or_else(|| {
        AuthError::Incomplete(format!(
            "X-Amz-Date must be an ISO-8601 basic date-time (YYYYMMDDTHHMMSSZ), not '{}'.",
            truncate(amz_date)
        ))
    })?;
    if auth.date != &amz_date[..8] {
        return Err(AuthError::Invalid(format!(
            "Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '{}' != '{}', from '{}'.",
            truncate(auth.date),
            &amz_date[..8],
            amz_date
        )));
    }
    let Some(secret) = credentials.secret(auth.access_key_id) else {
        return Err(AuthError::UnknownAccessKey);
    };
    check_skew(signed_at, now)?;
    if !auth.signed_headers.contains(&"host") {
        return Err(AuthError::Incomplete("SignedHeaders must include 'host'.".to_string()));
    }
    // Stricter than AWS on purpose: an unsigned target would let a captured request be replayed
    // as another operation (a GetSecretValue body is a valid DeleteSecret body).
    if !auth.signed_headers.contains(&"x-amz-target") {
        return Err(AuthError::Incomplete("SignedHeaders must include 'x-amz-target'.".to_string()));
    }
    Ok(Checked { auth, signed_at, secret })
}

/// Verifies a received request. `path_and_query` is the request target as received; `now` is
/// the server's clock.
pub fn verify(
    method: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
    credentials: &CredentialStore,
    now: SystemTime,
) -> Result<Verified, AuthError> {
    let checked = precheck(headers, credentials, now)?;
    verify_checked(checked, method, path_and_query, headers, body, credentials)
}

/// [`verify`] of a request whose headers [`precheck`] accepted: the signature over the body.
pub fn verify_checked(
    Checked { auth, signed_at, secret }: Checked<'_>,
    method: &str,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[u8],
    credentials: &CredentialStore,
) -> Result<Verified, AuthError> {
    // Exactly the headers the client signed, in its order, with every received value.
    let mut signed: Vec<(&str, &str)> = Vec::new();
    for name in &auth.signed_headers {
        if name.is_empty() || *name != name.to_ascii_lowercase() {
            return Err(AuthError::mismatch());
        }
        let mut found = false;
        for value in headers.get_all(*name) {
            let value = value.to_str().map_err(|_| AuthError::mismatch())?;
            signed.push((name, value));
            found = true;
        }
        if !found {
            return Err(AuthError::mismatch());
        }
    }
    let input = SignInput {
        method,
        path_and_query,
        headers: &signed,
        body,
        access_key_id: auth.access_key_id,
        secret_access_key: secret,
        region: auth.region,
        service: SERVICE,
    };
    let fast = fast_sign(credentials, &input, signed_at);
    let slow;
    let expected: &[u8] = match &fast {
        Some(signed) => &signed.hex,
        None => {
            slow = expected_signature(&input, signed_at).map_err(|_| AuthError::mismatch())?;
            slow.as_bytes()
        }
    };
    if bool::from(expected.ct_eq(auth.signature.as_bytes())) {
        if let Some(signed) = &fast {
            signed.remember(credentials, &input);
        }
        Ok(Verified { access_key_id: auth.access_key_id.to_string(), region: auth.region.to_string() })
    } else {
        Err(AuthError::mismatch())
    }
}

fn check_skew(signed_at: SystemTime, now: SystemTime) -> Result<(), AuthError> {
    // The dates are formatted for the refusal's message only: a request in time formats none.
    let (signed, now_text) = (|| format_amz_date(signed_at), || format_amz_date(now));
    if signed_at + CLOCK_SKEW_MAX < now {
        let (signed, now_text) = (signed(), now_text());
        let bound = format_amz_date(now - CLOCK_SKEW_MAX);
        return Err(AuthError::Invalid(format!(
            "Signature expired: {signed} is now earlier than {bound} ({now_text} - 5 min.)"
        )));
    }
    if signed_at > now + CLOCK_SKEW_MAX {
        let (signed, now_text) = (signed(), now_text());
        let bound = format_amz_date(now + CLOCK_SKEW_MAX);
        return Err(AuthError::Invalid(format!(
            "Signature not yet current: {signed} is still later than {bound} ({now_text} + 5 min.)"
        )));
    }
    Ok(())
}

/// What the signature is computed over.
pub struct SignInput<'a> {
    pub method: &'a str,
    pub path_and_query: &'a str,
    /// Lower-case names of the signed headers with their values as received.
    pub headers: &'a [(&'a str, &'a str)],
    pub body: &'a [u8],
    pub access_key_id: &'a str,
    pub secret_access_key: &'a str,
    pub region: &'a str,
    pub service: &'a str,
}

/// The request could not be canonicalised (e.g. an unparsable path); it cannot verify.
#[derive(Debug, thiserror::Error)]
#[error("cannot compute the signature: {0}")]
pub struct SignError(String);

/// The signature a client holding the secret key would have computed (lower-case hex).
pub fn expected_signature(input: &SignInput<'_>, time: SystemTime) -> Result<String, SignError> {
    let identity = aws_credential_types::Credentials::new(
        input.access_key_id,
        input.secret_access_key,
        None,
        None,
        "secret-ledger",
    )
    .into();
    let mut settings = SigningSettings::default();
    // Sign what the client signed: it may have signed `user-agent` (botocore does not, the Rust
    // SDK does not, but nothing forbids it), so nothing is excluded.
    settings.excluded_headers = None;
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(input.region)
        .name(input.service)
        .time(time)
        .settings(settings)
        .build()
        .map_err(|e| SignError(e.to_string()))?
        .into();
    let request = SignableRequest::new(
        input.method,
        input.path_and_query,
        input.headers.iter().copied(),
        SignableBody::Bytes(input.body),
    )
    .map_err(|e| SignError(e.to_string()))?;
    let output = sign(request, &params).map_err(|e| SignError(e.to_string()))?;
    Ok(output.signature().to_string())
}

/// The signature of a request of the shape every SDK sends (see [`fast_string_to_sign`]), as a
/// verified request leaves it: its signing key remembered. Tests compare it with the crate's.
#[cfg(test)]
pub(crate) fn fast_signature(credentials: &CredentialStore, input: &SignInput<'_>, time: SystemTime) -> Option<String> {
    let signed = fast_sign(credentials, input, time)?;
    signed.remember(credentials, input);
    Some(std::str::from_utf8(&signed.hex).expect("hex digits are ASCII").to_string())
}

/// What the fast path computed: the signature in hex, and the signing key it used if that was
/// derived for this request (to remember once the request verified).
struct FastSigned {
    hex: [u8; 64],
    fresh: Option<(String, Zeroizing<[u8; 32]>)>,
}

impl FastSigned {
    /// Remembers a freshly derived signing key: call once the request verified.
    fn remember(&self, credentials: &CredentialStore, input: &SignInput<'_>) {
        if let Some((day, key)) = &self.fresh {
            credentials.remember_signing_key(input.access_key_id, day, input.region, key);
        }
    }
}

/// The fast path's signature: `None` for a request of another shape or an unknown key.
fn fast_sign(credentials: &CredentialStore, input: &SignInput<'_>, time: SystemTime) -> Option<FastSigned> {
    AMZ_DATE.with(|cached| {
        let mut cached = cached.borrow_mut();
        let secs = time.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        if cached.0 != secs || cached.1.is_empty() {
            *cached = (secs, format_amz_date(time));
        }
        let amz_date = cached.1.as_str();
        let string_to_sign = fast_string_to_sign(input, amz_date)?;
        let day = &amz_date[..8];
        let (key, fresh) = match credentials.signing_key(input.access_key_id, day, input.region) {
            Some(key) => (key, false),
            None => {
                // Derived only for a key the store knows (and from its stored secret).
                let secret = credentials.secret(input.access_key_id)?;
                let derived = v4::generate_signing_key(secret, time, input.region, input.service);
                let derived = Zeroizing::new(derived.as_ref().to_vec());
                (Zeroizing::new(<[u8; 32]>::try_from(derived.as_slice()).ok()?), true)
            }
        };
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key.as_slice()).ok()?;
        mac.update(string_to_sign.as_bytes());
        let mut hex = [0u8; 64];
        hex::encode_to_slice(mac.finalize().into_bytes(), &mut hex).ok()?;
        Some(FastSigned { hex, fresh: fresh.then(|| (day.to_string(), key)) })
    })
}

thread_local! {
    /// The last signing time formatted as `X-Amz-Date` (seconds since the epoch, text): requests
    /// signed within the same second need no formatting.
    static AMZ_DATE: std::cell::RefCell<(u64, String)> = const { std::cell::RefCell::new((0, String::new())) };
}

/// A SHA-256 digest in lower-case hex, appended to `out`.
fn push_sha256_hex(out: &mut String, data: &[u8]) {
    let mut hex = [0u8; 64];
    hex::encode_to_slice(Sha256::digest(data), &mut hex).expect("64 hex digits for 32 bytes");
    out.push_str(std::str::from_utf8(&hex).expect("hex digits are ASCII"));
}

/// The string to sign of a `POST /` with sorted, single-valued signed headers, or `None`.
fn fast_string_to_sign(input: &SignInput<'_>, amz_date: &str) -> Option<String> {
    // The crate's signer puts `x-amz-date` in the canonical request even when the client did
    // not sign it; such a request takes the crate's path.
    let dated = input.headers.iter().any(|(name, _)| *name == "x-amz-date");
    if input.method != "POST" || input.path_and_query != "/" || !dated {
        return None;
    }
    let mut canonical = String::with_capacity(512);
    canonical.push_str("POST\n/\n\n");
    let mut previous = "";
    for (name, value) in input.headers {
        // Strictly ascending: sorted and no name twice. The crate adds or drops these itself.
        if *name <= previous || matches!(*name, "x-amz-content-sha256" | "x-amz-security-token" | "authorization") {
            return None;
        }
        previous = name;
        canonical.push_str(name);
        canonical.push(':');
        push_trimmed(&mut canonical, value);
        canonical.push('\n');
    }
    canonical.push('\n');
    for (i, (name, _)) in input.headers.iter().enumerate() {
        if i > 0 {
            canonical.push(';');
        }
        canonical.push_str(name);
    }
    canonical.push('\n');
    push_sha256_hex(&mut canonical, input.body);
    let mut string_to_sign = String::with_capacity(256);
    let _ = write!(
        string_to_sign,
        "{ALGORITHM}\n{amz_date}\n{}/{}/{}/aws4_request\n",
        &amz_date[..8],
        input.region,
        input.service,
    );
    push_sha256_hex(&mut string_to_sign, canonical.as_bytes());
    Some(string_to_sign)
}

/// A header value as SigV4 canonicalises it: spaces trimmed at both ends, runs of spaces made one.
fn push_trimmed(out: &mut String, value: &str) {
    let mut last_space = false;
    for c in value.trim_matches(' ').chars() {
        if c == ' ' && last_space {
            continue;
        }
        last_space = c == ' ';
        out.push(c);
    }
}

/// [`parse_amz_date`], remembering the last text parsed on this thread: requests signed within
/// the same second carry the same text.
fn parse_amz_date_cached(text: &str) -> Option<SystemTime> {
    thread_local! {
        static LAST: std::cell::RefCell<(String, Option<SystemTime>)> = const { std::cell::RefCell::new((String::new(), None)) };
    }
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != text {
            *last = (text.to_string(), parse_amz_date(text));
        }
        last.1
    })
}

/// Parses `YYYYMMDDTHHMMSSZ`.
pub fn parse_amz_date(text: &str) -> Option<SystemTime> {
    let b = text.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' || !text.is_ascii() {
        return None;
    }
    // The same instant in RFC 3339, parsed by the one calendar implementation of the project.
    let rfc3339 = format!(
        "{}-{}-{}T{}:{}:{}Z",
        &text[0..4],
        &text[4..6],
        &text[6..8],
        &text[9..11],
        &text[11..13],
        &text[13..15]
    );
    let ms = ledger_core::time::parse_rfc3339(&rfc3339)?;
    let secs = u64::try_from(ms / 1000).ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(secs))
}

/// Formats as `YYYYMMDDTHHMMSSZ` (times before the epoch print as the epoch).
pub fn format_amz_date(time: SystemTime) -> String {
    let ms = i64::try_from(time.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis()).unwrap_or(i64::MAX);
    // `2026-11-27T03:12:00.000Z` → `20261127T031200Z`.
    let rfc3339 = ledger_core::time::format_rfc3339_ms(ms - ms % 1000);
    rfc3339.chars().filter(|c| c.is_ascii_digit() || *c == 'T').take(15).collect::<String>() + "Z"
}

#[cfg(test)]
mod tests;
