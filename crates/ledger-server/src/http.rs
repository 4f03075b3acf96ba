//! The HTTP front: one handler for every request. It authenticates (SigV4) before anything
//! else, so a refused request never reaches the ledger, then selects the operation by
//! `X-Amz-Target` and answers `200` with the output shape or an [`ApiError`], always with
//! `Content-Type: application/x-amz-json-1.1` and an `x-amzn-RequestId` header. Targets under
//! `SecretLedger.` are the audit operations ([`audit_ops`]), authenticated the same way. The
//! signing key's [`Access`](crate::access::Access) scope is checked before any operation runs.

use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use ledger_core::Scope;
use ledger_store::RequestMeta;

use crate::app::{json_response, App};
use crate::audit_ops;
use crate::error::ApiError;
use crate::operation::{Kind, Operation};
use crate::ops;
use crate::sigv4::{self, AuthError};
use crate::wire::Input;

/// Largest request body accepted. A 64 KiB binary value is about 88 KiB of base64, so this
/// leaves ample room for every legitimate request.
pub const BODY_BYTES_MAX: usize = 1024 * 1024;

pub fn router(app: Arc<App>) -> Router {
    Router::new().fallback(handle).with_state(app)
}

/// The `--metrics-listen` address: `GET /metrics` and nothing else.
pub fn metrics_router(app: Arc<App>) -> Router {
    Router::new()
        .route("/metrics", axum::routing::get(|State(app): State<Arc<App>>| async move { metrics(&app) }))
        .with_state(app)
}

/// `GET /metrics`: the Prometheus text format.
fn metrics(app: &App) -> Response {
    let mut response = (StatusCode::OK, app.metrics_text()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    response
}

/// Codes of a request refused before a known access key was proven.
const UNAUTHENTICATED: [&str; 4] = [
    "MissingAuthenticationTokenException",
    "IncompleteSignatureException",
    "UnrecognizedClientException",
    "InvalidSignatureException",
];

/// The access key id a request claims (`Credential=AKID/…`), letters and digits only, for the
/// security log: never the signature.
fn claimed_key_id(headers: &axum::http::HeaderMap) -> String {
    let auth = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
    let claimed = auth.split("Credential=").nth(1).and_then(|c| c.split('/').next()).unwrap_or("");
    if claimed.len() <= 128 && claimed.bytes().all(|b| b.is_ascii_alphanumeric()) {
        // Every SDK's key id: copied as it is instead of char by char.
        return claimed.to_string();
    }
    claimed.chars().filter(char::is_ascii_alphanumeric).take(128).collect()
}

/// `GET /health`, unsigned: 200 while the log takes writes, 503 with the reason once writes
/// have stopped (a failed group commit: a full disk, an I/O error), so a load balancer can take
/// the node out. Says nothing about secrets.
fn health(app: &App) -> Response {
    let (status, body) = match app.ledger.writes_stopped() {
        None => (StatusCode::OK, serde_json::json!({ "status": "ok", "head_seq": app.ledger.head_seq() })),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({ "status": "unavailable", "reason": format!("writes stopped: {reason}") }),
        ),
    };
    let mut response = (status, body.to_string()).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A request id: a random (version 4) UUID from a generator per thread seeded once from the
/// OS, instead of a `getrandom` call per request. Ids only need to be unique; nothing secret is
/// drawn from this generator.
fn new_request_id() -> String {
    use rand_core::{RngCore, SeedableRng};
    thread_local! {
        static IDS: std::cell::RefCell<rand_chacha::ChaCha12Rng> =
            std::cell::RefCell::new(rand_chacha::ChaCha12Rng::from_entropy());
    }
    let mut bytes = [0u8; 16];
    IDS.with(|ids| ids.borrow_mut().fill_bytes(&mut bytes));
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

async fn handle(State(app): State<Arc<App>>, request: Request) -> Response {
    if request.method() == Method::GET && request.uri().path() == "/health" {
        return health(&app);
    }
    if app.metrics_on_main && request.method() == Method::GET && request.uri().path() == "/metrics" {
        return metrics(&app);
    }
    let started = std::time::Instant::now();
    let request_id = new_request_id();
    // Formatted only for a security line.
    let peer = request.extensions().get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|c| c.0);
    let claimed = claimed_key_id(request.headers());
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .chars()
        .take(96)
        .collect::<String>();
    let outcome = answer(&app, request, &request_id).await;
    // One line per request: what was asked, by which key, how it ended and how long it took.
    // Never a value, a signature or a secret key (the leak test reads these lines).
    let (status, code) = match &outcome {
        Ok(response) => (response.status().as_u16(), "ok"),
        Err(error) => (error.status.as_u16(), error.code),
    };
    app.metrics.request(&target, code, started.elapsed());
    if UNAUTHENTICATED.contains(&code) {
        app.metrics.auth_refused(code);
    }
    tracing::info!(
        target: "request",
        request_id,
        operation = target,
        outcome = code,
        status,
        latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
        access_key_id = claimed,
        "request"
    );
    let mut response = match outcome {
        Ok(response) => response,
        Err(error) => {
            if UNAUTHENTICATED.contains(&error.code) {
                // Never in the chain (nobody proved who they are), always in the log.
                let peer = peer.map_or_else(|| "unknown".to_string(), |p| p.to_string());
                tracing::warn!(
                    target: "security",
                    request_id,
                    peer,
                    access_key_id = claimed,
                    reason = error.code,
                    "unauthenticated request refused"
                );
            } else {
                tracing::debug!(request_id, operation = target, code, status, "refused");
            }
            error.into_response()
        }
    };
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert("x-amzn-requestid", value);
    }
    response
}

/// An audit operation, once the request verified: the key's scope first (a refusal is recorded
/// with `--audit-reads`), then the operation.
async fn answer_audit(
    app: &Arc<App>,
    operation: Operation,
    verified: sigv4::Verified,
    access: &crate::access::Access,
    body: &[u8],
    request_id: &str,
) -> Result<Response, ApiError> {
    if let Err(refusal) = access.check_audit(&verified.access_key_id, operation) {
        if app.trail.audit_reads {
            let meta = RequestMeta {
                scope: Scope::new(&verified.region, &app.account_id),
                actor: verified.access_key_id.clone(),
                request_id: request_id.to_string(),
            };
            let cmd =
                ledger_core::Command::RecordDenied { resources: vec![operation.action()], operation: operation.name() };
            ops::record(&app.ledger, cmd, &meta).await?;
        }
        return Err(refusal);
    }
    let result = audit_ops::dispatch(app, operation, body, &verified.region, request_id).await;
    let actor = verified.access_key_id;
    tracing::debug!(request_id, operation = operation.name(), actor, ok = result.is_ok(), "audit request");
    result
}

/// The request's length-limit error, told apart from other body errors.
fn body_error(error: axum::Error, limit: usize) -> ApiError {
    let inner = error.into_inner();
    if inner.downcast_ref::<http_body_util::LengthLimitError>().is_some() {
        ApiError::too_large(limit)
    } else {
        ApiError::serialization("The request body could not be read.")
    }
}

async fn answer(app: &Arc<App>, request: Request, request_id: &str) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    // Refuse what the headers alone condemn (unsigned, unknown key, stale date, target not
    // signed) before reading the body.
    let checked = sigv4::precheck(&parts.headers, &app.credentials, SystemTime::now())?;
    let body = match tokio::time::timeout(app.body_timeout, axum::body::to_bytes(body, app.body_bytes_max)).await {
        Ok(body) => body.map_err(|e| body_error(e, app.body_bytes_max))?,
        Err(_) => {
            return Err(ApiError::new(
                "RequestTimeoutException",
                StatusCode::REQUEST_TIMEOUT,
                format!("The request body did not arrive within {} s.", app.body_timeout.as_secs()),
            ))
        }
    };
    let path_and_query = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    // The headers were checked before the body was read (the date's skew against the clock
    // then); what is left is the signature over the body.
    let verified =
        sigv4::verify_checked(checked, parts.method.as_str(), path_and_query, &parts.headers, &body, &app.credentials)?;
    // A verified key is in the store; fail closed if it somehow is not.
    let access = app.credentials.access(&verified.access_key_id).ok_or(AuthError::UnknownAccessKey)?;
    if parts.method != Method::POST {
        return Err(ApiError::unknown_operation("Only POST requests are served."));
    }
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let Some(operation) = Operation::from_target(target) else {
        return Err(ApiError::unknown_operation(format!(
            "Unknown operation: X-Amz-Target '{}'.",
            target.chars().take(96).collect::<String>()
        )));
    };
    if operation.kind() == Kind::Audit {
        return answer_audit(app, operation, verified, access, &body, request_id).await;
    }
    let input = Input::parse(&body)?;
    let meta = RequestMeta {
        scope: Scope::new(&verified.region, &app.account_id),
        actor: verified.access_key_id,
        request_id: request_id.to_string(),
    };
    let result =
        ops::dispatch_with(&app.ledger, operation, input, &meta, access, app.trail, &app.filtering_slots).await;
    if let (Ok(response), Some(rotator), Operation::RotateSecret) = (&result, &app.rotator, operation) {
        let host: Arc<dyn crate::rotation::Host> = app.clone();
        rotator.after_rotate_secret(&host, response);
    }
    tracing::debug!(
        request_id,
        operation = operation.name(),
        actor = %meta.actor,
        region = %meta.scope.region,
        ok = result.is_ok(),
        "request"
    );
    result.map(json_response)
}

#[cfg(test)]
mod tests {
    #[test]
    fn request_ids_are_distinct_version_4_uuids() {
        let ids: std::collections::HashSet<String> = (0..1000).map(|_| super::new_request_id()).collect();
        assert_eq!(ids.len(), 1000);
        for id in ids.iter().take(10) {
            let parsed = uuid::Uuid::parse_str(id).unwrap();
            assert_eq!(parsed.get_version_num(), 4, "{id}");
        }
    }
}
