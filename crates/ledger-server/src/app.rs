//! What every request handler shares ([`App`]), and the JSON 1.1 response they answer with.

use std::sync::Arc;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_store::Ledger;

use crate::credentials::CredentialStore;
use crate::error::CONTENT_TYPE;
use crate::ops;

/// What every request handler shares.
pub struct App {
    pub ledger: Ledger,
    pub credentials: CredentialStore,
    pub account_id: String,
    pub body_bytes_max: usize,
    /// A body not received whole within this is refused.
    pub body_timeout: std::time::Duration,
    /// Runs rotation functions (`--lambda-endpoint`); `None`: an external rotator does.
    pub rotator: Option<Arc<crate::rotation::Rotator>>,
    /// What is recorded beyond writes (`--audit-reads`).
    pub trail: ops::Trail,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// `GET /metrics` on the main listener (no `--metrics-listen`).
    pub metrics_on_main: bool,
}

impl crate::rotation::Host for App {
    fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    fn metrics(&self) -> &crate::metrics::Metrics {
        &self.metrics
    }

    fn account_id(&self) -> &str {
        &self.account_id
    }
}

/// `200` with a JSON 1.1 body.
pub fn json_response(body: String) -> Response {
    let mut response = (StatusCode::OK, body).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
    response
}
