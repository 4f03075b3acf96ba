//! The audit operations online: `X-Amz-Target: SecretLedger.<Operation>`, SigV4-signed and
//! refused exactly like the Secrets Manager operations, answered from the live log.
//!
//! | target | input | output |
//! |---|---|---|
//! | `SecretLedger.History` | `SecretId`? (without it: the whole ledger), `Actor`?, `Operation`?, `Since`?, `Until`? (seq or RFC 3339 time), `Region`? (without `SecretId` only: the events of that region's secrets) | `{"secret_id", "region", "secrets": [{uid, name, region, arn, "events": [{seq, recorded_at, actor, request_id, operation, secret, event, change, label_move?}]}]}`; without `SecretId`: `{"filters", "from_seq", "to_seq", "events": [{…, name, region, arn}]}` |
//! | `SecretLedger.State` | `AsOf` (seq number, or a string: seq or RFC 3339 time), `Exact`?, `SecretId`?, `Label`?, `Region`? (without `SecretId` only: that region's secrets) | `{"as_of_seq", "as_of_time", "requested_seq", "note", "region", "secrets", "label"}` |
//! | `SecretLedger.Export` | `Origin`? | the export file itself, JSON Lines, `Content-Type: application/x-ndjson` |
//! | `SecretLedger.Checkpoint` | `Origin`? | the unsigned checkpoint JSON |
//! | `SecretLedger.Prove` | `Seq` (and `TreeSize`, a kept checkpoint's size), or `FromCheckpoint` + `ToCheckpoint` (checkpoint JSON objects) | the inclusion or consistency proof JSON, with the log's head hashes at the sizes |
//! | `SecretLedger.Verify` | `Checkpoint`? (checkpoint JSON object) | the verify report, `{"ok": true, …}`, or the first failure, `{"ok": false, "seq", "reason"}` |
//!
//! The documents are `ledger-audit`'s, serialized: the CLI's `--json` output of the same command
//! is the same document built by the same function offline, so `secret-ledger <command>
//! --endpoint URL` prints the same thing as `--data-dir DIR`.
//!
//! A `SecretId` resolves within the request's signing region, as in every Secrets Manager call:
//! a name used in two regions names two different secrets, and an ARN of another region names
//! none. `History` and `State` without a `SecretId` cover every region (`State` ordered by
//! region), or only the one named by a `Region` member: the signing region alone never narrows
//! them. `Region` with a `SecretId` is a `ValidationException`.
//!
//! Values are never returned: `State` with a `Label` names the version that held the label
//! (`label.value` is always `null` online; open values offline with the master key).
//!
//! Every operation reads the head first and bounds its reads by it (sled reads are consistent
//! per key; the log below the head never changes), runs on a blocking thread and appends
//! nothing. `Export` streams: memory holds one chunk (64 KiB) and a few queued chunks, never
//! the log; if the client goes away the export stops, and an error midway aborts the body, so
//! the file lacks its closing checkpoint and does not verify. A client that takes nothing for
//! the send timeout (`ConnLimits::send_timeout`, 60 s by default) is given up on: the export
//! stops and the connection is closed.
//!
//! Every operation runs in a slot of the server's: `Export`, `Verify` and the ledger-wide
//! `History` (each reads the whole log) in one of [`WHOLE_LOG_READS_MAX`] whole-log slots, and
//! beyond them are refused with `ThrottlingException` (retry later) rather than piling up
//! scans; `State`, `Prove`, `Checkpoint` and one secret's `History` in one of the audit slots
//! ([`default_audit_slots`]: 4 × the CPUs, at least 4; `ServeConfig::work`), and beyond them
//! wait for a slot, in arrival order, so a burst is answered, never refused, while the
//! blocking threads it takes stay bounded.
//!
//! Errors: an unknown secret is `ResourceNotFoundException`, a bad member value
//! `ValidationException`, a member of the wrong JSON type `SerializationException` (all 400).

use std::io::Write;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ledger_audit::history::{self, HistoryFilter};
use ledger_audit::{export, proofs, state, AuditError};
use ledger_store::{LogStore, SystemClock};

use crate::app::{json_response, App};
use crate::error::ApiError;
use crate::operation::Operation;
use crate::ops::{self, WorkSlot};
use crate::wire::Input;

/// Content type of the `Export` response.
pub const EXPORT_CONTENT_TYPE: &str = "application/x-ndjson";

/// Size of one chunk of the streamed export.
const EXPORT_CHUNK_BYTES: usize = 64 * 1024;
/// Chunks queued between the exporting thread and the connection.
const EXPORT_CHUNKS_QUEUED: usize = 8;
/// Exports, verifications and ledger-wide histories (each reads the whole log) running at once;
/// more are refused.
pub const WHOLE_LOG_READS_MAX: usize = 2;

/// The default number of `State`, `Prove`, `Checkpoint` and one secret's `History` that run at
/// once: 4 × the CPUs, at least 4. More wait for a slot.
pub fn default_audit_slots() -> usize {
    (4 * ops::cpus()).max(4)
}

/// A whole-log slot, or `ThrottlingException`.
fn whole_log_slot(app: &App) -> Result<WorkSlot, ApiError> {
    app.whole_log_slots.try_take().ok_or_else(|| {
        ApiError::new(
            "ThrottlingException",
            StatusCode::BAD_REQUEST,
            format!("At most {WHOLE_LOG_READS_MAX} whole-log reads (exports, verifications, ledger-wide histories) run at once; retry later."),
        )
    })
}

fn into_api(e: AuditError, request_id: &str) -> ApiError {
    match e {
        AuditError::NotFound(m) => ApiError::new("ResourceNotFoundException", StatusCode::BAD_REQUEST, m),
        AuditError::Invalid(m) | AuditError::Ambiguous(m) => ApiError::validation(m),
        AuditError::Store(e) => ApiError::store(&e, request_id),
    }
}

// ---------------------------------------------------------------------------------------------
// The operations.

/// `Origin`, or where the store is: the name a checkpoint or export carries.
fn origin(input: &Input, app: &App) -> Result<String, ApiError> {
    let origin = input.string("Origin")?.unwrap_or_else(|| app.ledger.store().location());
    if origin.is_empty() || origin.chars().any(char::is_control) {
        return Err(ApiError::validation("Origin must be non-empty and free of control characters."));
    }
    Ok(origin)
}

/// A document as the response body.
fn document(doc: &impl serde::Serialize) -> Response {
    match serde_json::to_string(doc) {
        Ok(body) => json_response(body),
        Err(e) => {
            tracing::error!(error = %e, "audit document not serializable");
            ApiError::internal().into_response()
        }
    }
}

/// Runs `f` on a blocking thread, holding `slot` until it returns (even if the request is
/// dropped meanwhile); a panic there is a 500.
async fn blocking<T: Send + 'static>(
    request_id: &str,
    slot: WorkSlot,
    f: impl FnOnce() -> Result<T, AuditError> + Send + 'static,
) -> Result<T, ApiError> {
    let run = move || {
        let _slot = slot;
        f()
    };
    match tokio::task::spawn_blocking(run).await {
        Ok(result) => result.map_err(|e| into_api(e, request_id)),
        Err(e) => {
            tracing::error!(request_id, error = %e, "audit task failed");
            Err(ApiError::internal())
        }
    }
}

/// One audit request: its members, the log it reads and the durable head it is bounded by.
struct Request<'a> {
    app: &'a Arc<App>,
    input: Input,
    store: Arc<dyn LogStore>,
    /// The durable head: the store may already hold the records of a group whose flush is
    /// running; nothing past what was acknowledged is read or published.
    head: (u64, ledger_core::ChainHash),
    region: String,
    request_id: &'a str,
}

/// Runs one audit operation. `region` is the request's signing region: a `SecretId` resolves
/// within it, as in every Secrets Manager call.
pub async fn dispatch(
    app: &Arc<App>,
    operation: Operation,
    body: &[u8],
    region: &str,
    request_id: &str,
) -> Result<Response, ApiError> {
    let input = Input::parse(body)?;
    let store = app.ledger.store_handle();
    let head = app.ledger.head();
    let r = Request { app, input, store, head, region: region.to_string(), request_id };
    match operation {
        Operation::History => r.history().await,
        Operation::State => r.state().await,
        Operation::Checkpoint => r.checkpoint().await,
        Operation::Prove => r.prove().await,
        Operation::Verify => r.verify().await,
        Operation::Export => {
            let origin = origin(&r.input, app)?;
            let slot = whole_log_slot(app)?;
            Ok(export(r.store, r.head, origin, request_id.to_string(), (slot, app.send_timeout)))
        }
        other => Err(ApiError::unknown_operation(format!("Operation {} is not an audit operation.", other.name()))),
    }
}

/// `Region`: the region a ledger-wide view is narrowed to; refused with a `SecretId`, which
/// resolves in the signing region.
fn only_region(input: &Input, secret_id: Option<&str>) -> Result<Option<String>, ApiError> {
    let region = input.string("Region")?;
    if region.is_some() && secret_id.is_some() {
        return Err(ApiError::validation(
            "Region narrows the whole ledger only; a SecretId resolves in the signing region.",
        ));
    }
    Ok(region)
}

impl Request<'_> {
    async fn history(self) -> Result<Response, ApiError> {
        let input = &self.input;
        let secret_id = input.string("SecretId")?;
        let filter = HistoryFilter {
            actor: input.string("Actor")?,
            operation: input.string("Operation")?,
            since: input.seq_or_time("Since")?,
            until: input.seq_or_time("Until")?,
            region: only_region(input, secret_id.as_deref())?,
        };
        // The ledger-wide history scans the log: it takes a whole-log slot, as exports do.
        let slot = match secret_id {
            None => whole_log_slot(self.app)?,
            Some(_) => self.app.audit_slots.take().await,
        };
        let (store, head, region) = (self.store, self.head.0, self.region);
        blocking(self.request_id, slot, move || match &secret_id {
            Some(id) => Ok(document(&history::history(&*store, head, id, Some(&region), &filter)?)),
            None => Ok(document(&history::ledger_history(&*store, head, &filter)?)),
        })
        .await
    }

    async fn state(self) -> Result<Response, ApiError> {
        let input = &self.input;
        let as_of = input.seq_or_time("AsOf")?.ok_or_else(|| ApiError::missing_member("AsOf"))?;
        let exact = input.bool("Exact")?.unwrap_or(false);
        let secret_id = input.string("SecretId")?;
        let label = input.string("Label")?;
        if label.is_some() && secret_id.is_none() {
            return Err(ApiError::validation("Label requires SecretId."));
        }
        // A SecretId resolves in the signing region; without one, only `Region` narrows.
        let only = only_region(input, secret_id.as_deref())?;
        let region = if secret_id.is_some() { Some(self.region) } else { only };
        let (store, head) = (self.store, self.head.0);
        let slot = self.app.audit_slots.take().await;
        let doc = blocking(self.request_id, slot, move || {
            let state = state::state_at(&*store, head, &as_of, exact, secret_id.as_deref(), region.as_deref())?;
            Ok(state::StateDoc::new(&state, label.as_deref(), None))
        })
        .await?;
        Ok(document(&doc))
    }

    async fn checkpoint(self) -> Result<Response, ApiError> {
        let origin = origin(&self.input, self.app)?;
        let (store, head) = (self.store, self.head);
        let slot = self.app.audit_slots.take().await;
        let checkpoint = blocking(self.request_id, slot, move || {
            Ok(proofs::checkpoint_upto(&*store, head, &origin, SystemClock::now_ms())?)
        })
        .await?;
        Ok(json_response(checkpoint.to_json()))
    }

    async fn prove(self) -> Result<Response, ApiError> {
        let input = &self.input;
        let seq = input.seq("Seq")?;
        let from = input.checkpoint("FromCheckpoint")?;
        let to = input.checkpoint("ToCheckpoint")?;
        let (store, head) = (self.store, self.head.0);
        match (seq, from, to) {
            (Some(seq), None, None) => {
                let size = input.seq("TreeSize")?.unwrap_or(head);
                if size > head {
                    return Err(ApiError::validation(format!("TreeSize {size} is past the head of the log ({head})")));
                }
                let slot = self.app.audit_slots.take().await;
                Ok(document(&blocking(self.request_id, slot, move || proofs::inclusion(&*store, size, seq)).await?))
            }
            (None, Some(a), Some(b)) => {
                let slot = self.app.audit_slots.take().await;
                let proof = blocking(self.request_id, slot, move || proofs::consistency(&*store, head, &a, &b));
                Ok(document(&proof.await?))
            }
            _ => Err(ApiError::validation("Prove takes Seq, or FromCheckpoint and ToCheckpoint.")),
        }
    }

    async fn verify(self) -> Result<Response, ApiError> {
        let trusted = self.input.checkpoint("Checkpoint")?;
        let app = self.app.clone();
        let slot = whole_log_slot(self.app)?;
        let doc = blocking(self.request_id, slot, move || {
            let started = Instant::now();
            let mut outcome = app.ledger.verify(&mut |_, _| {})?;
            if let (Ok(report), Some(t)) = (&outcome, &trusted) {
                outcome = proofs::check_against(app.ledger.store(), report, t)?;
            }
            Ok(proofs::VerifyDoc::new(&outcome, started.elapsed().as_secs_f64()))
        })
        .await?;
        Ok(document(&doc))
    }
}

/// Starts the export on a blocking thread, holding its whole-log slot, and answers with its
/// streamed output; a reader that takes nothing for `stall` is given up on.
fn export(
    store: Arc<dyn LogStore>,
    head: (u64, ledger_core::ChainHash),
    origin: String,
    request_id: String,
    (slot, stall): (WorkSlot, std::time::Duration),
) -> Response {
    let (tx, rx) = tokio::sync::mpsc::channel(EXPORT_CHUNKS_QUEUED);
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let _slot = slot;
        let mut out = ChunkWriter { tx, buf: Vec::with_capacity(EXPORT_CHUNK_BYTES), runtime, stall };
        if let Err(e) = export::export_upto(&*store, head, &mut out, &origin, SystemClock::now_ms(), &mut |_, _| {}) {
            // The body is cut short: the file has no closing checkpoint and will not verify.
            tracing::warn!(request_id, error = %e, "export stopped");
            let _ = out.tx.try_send(Err(std::io::Error::other("export stopped")));
        }
    });
    let chunks = futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|chunk| (chunk, rx)) });
    let mut response = (StatusCode::OK, Body::from_stream(chunks)).into_response();
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(EXPORT_CONTENT_TYPE));
    response
}

type Chunk = Result<Bytes, std::io::Error>;

/// Writes into fixed-size chunks sent to the response body; blocks while the queue is full.
struct ChunkWriter {
    tx: tokio::sync::mpsc::Sender<Chunk>,
    buf: Vec<u8>,
    /// The server's runtime, to wait for the reader with a timer from the export thread.
    runtime: tokio::runtime::Handle,
    /// How long a chunk waits for the reader to take one before the export stops.
    stall: std::time::Duration,
}

impl ChunkWriter {
    fn send(&mut self) -> std::io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::replace(&mut self.buf, Vec::with_capacity(EXPORT_CHUNK_BYTES)));
        // A reader that takes nothing for `stall` is given up on: the export stops (and the
        // connection's own send timeout closes it).
        match self.runtime.block_on(tokio::time::timeout(self.stall, self.tx.send(Ok(chunk)))) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(_)) => Err(std::io::Error::new(std::io::ErrorKind::BrokenPipe, "the client went away")),
            Err(_) => Err(std::io::Error::new(std::io::ErrorKind::TimedOut, "the client stopped reading")),
        }
    }
}

impl Write for ChunkWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= EXPORT_CHUNK_BYTES {
            self.send()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.send()
    }
}
