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
    /// `GET /metrics`: the registry's metrics, then the work slots'.
    pub fn metrics_text(&self) -> String {
        let mut text = self.metrics.render(self.ledger.head_seq());
        let slots = [&self.filtering_slots, &self.audit_slots, &self.whole_log_slots];
        let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
        let families = [
            (
                "secret_ledger_work_slots",
                "gauge",
                "Requests of a kind that run at once: filtering (ListSecrets, BatchGetSecretValue), audit (State, \
                 Prove, Checkpoint, one secret's History), whole_log (Export, Verify, ledger-wide History).",
                slots.map(|s| count(s.max())),
            ),
            (
                "secret_ledger_work_slots_peak",
                "gauge",
                "The most slots taken at once since start.",
                slots.map(|s| count(s.peak())),
            ),
            (
                "secret_ledger_work_waits_total",
                "counter",
                "Requests that found every slot taken: they waited (filtering, audit) or were refused (whole_log).",
                slots.map(|s| s.waits()),
            ),
        ];
        for (name, kind, help, values) in families {
            text.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
            for (s, value) in slots.iter().zip(values) {
                text.push_str(&format!("{name}{{work=\"{}\"}} {value}\n", s.name));
            }
        }
        text
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
