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
    /// ListSecrets and BatchGetSecretValue filterings running at once; more wait.
    pub filtering_slots: Arc<ops::WorkSlots>,
    /// `State`, `Prove`, `Checkpoint` and one secret's `History` running at once; more wait.
    pub audit_slots: Arc<ops::WorkSlots>,
    /// `Export`, `Verify` and the ledger-wide `History` running at once; more are refused.
    pub whole_log_slots: Arc<ops::WorkSlots>,
    /// An export whose client takes nothing for this long stops.
    pub send_timeout: std::time::Duration,
}

impl App {
    /// `GET /metrics`: the registry's metrics, the work slots' as they are now among them.
    pub fn metrics_text(&self) -> String {
        for slots in [&self.filtering_slots, &self.audit_slots, &self.whole_log_slots] {
            self.metrics.work_slots(slots.name, slots.max(), slots.peak(), slots.waits());
        }
        self.metrics.render(self.ledger.head_seq())
    }
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
