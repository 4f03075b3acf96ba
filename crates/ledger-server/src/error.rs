//! The one error type of the server: an AWS error shape name, an HTTP status and a public
//! message. Internal details (storage failures) are logged, never sent; secret values never
//! appear in either.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_core::SmError;
use ledger_store::StoreError;

/// The content type of every request and response of the protocol.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// A refused request, as the client will see it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiError {
    /// The bare shape name sent as `__type`.
    pub code: &'static str,
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(code: &'static str, status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { code, status, message: message.into() }
    }

    /// 400 `SerializationException`: the body is not JSON, or a member has the wrong JSON type.
    pub fn serialization(message: impl Into<String>) -> ApiError {
        ApiError::new("SerializationException", StatusCode::BAD_REQUEST, message)
    }

    /// 400 `UnknownOperationException`: the `X-Amz-Target` names nothing this server serves.
    pub fn unknown_operation(message: impl Into<String>) -> ApiError {
        ApiError::new("UnknownOperationException", StatusCode::BAD_REQUEST, message)
    }

    /// `ValidationException` (400): a member with an unusable value.
    pub fn validation(message: impl Into<String>) -> ApiError {
        ApiError::new("ValidationException", StatusCode::BAD_REQUEST, message)
    }

    /// 400 `ValidationException` for a required member that is absent (Coral wording).
    pub fn missing_member(member: &str) -> ApiError {
        ApiError::validation(format!(
            "1 validation error detected: Value null at '{member}' failed to satisfy constraint: Member must not be null"
        ))
    }

    /// 400 for a body over the size limit.
    pub fn too_large(limit: usize) -> ApiError {
        ApiError::new(
            "RequestEntityTooLargeException",
            StatusCode::BAD_REQUEST,
            format!("The request body is larger than {limit} bytes."),
        )
    }

    /// 500 `InternalServiceError` with a generic message; the cause goes to the log only.
    pub fn internal() -> ApiError {
        ApiError::new(
            "InternalServiceError",
            StatusCode::INTERNAL_SERVER_ERROR,
            "An error occurred on the server side.",
        )
    }

    /// A storage failure: logged with the request id, answered with a generic 500.
    pub fn store(error: &StoreError, request_id: &str) -> ApiError {
        tracing::error!(request_id, error = %error, "storage failure");
        ApiError::internal()
    }
}

impl From<SmError> for ApiError {
    fn from(e: SmError) -> ApiError {
        let code = e.code();
        // 400 for every client error, 500 for faults, as Secrets Manager answers.
        let status = match code {
            ledger_core::ErrorCode::InternalServiceError => StatusCode::INTERNAL_SERVER_ERROR,
            _ => StatusCode::BAD_REQUEST,
        };
        ApiError { code: code.as_str(), status, message: e.to_string() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "__type": self.code, "Message": self.message }).to_string();
        let mut response = (self.status, body).into_response();
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        response
    }
}
