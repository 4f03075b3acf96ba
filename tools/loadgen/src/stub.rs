//! The zero-work stub: the same HTTP stack as `secret-ledger serve` (axum on hyper, HTTP/1,
//! `TCP_NODELAY`, a multi-threaded tokio runtime), answering every POST with a canned, valid
//! AWS JSON 1.1 response chosen by `X-Amz-Target`. It reads the body but checks no signature and
//! stores nothing, so the load generator's rate against it is the ceiling on this machine.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::Router;
use tokio::task::JoinHandle;

const CONTENT_TYPE: HeaderValue = HeaderValue::from_static("application/x-amz-json-1.1");
const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-amzn-requestid");
const REQUEST_ID: HeaderValue = HeaderValue::from_static("00000000-0000-4000-8000-000000000000");
const BODY_BYTES_MAX: usize = 1024 * 1024;
const ARN: &str = "arn:aws:secretsmanager:us-east-1:000000000000:secret:stub-AbCdEf";
const NAME: &str = "stub";
const VERSION_ID: &str = "11111111-1111-4111-8111-111111111111";
const DATE: f64 = 1_700_000_000.0;

/// Response bodies, serialized once.
pub(crate) struct Canned {
    create: Bytes,
    put: Bytes,
    get: Bytes,
    describe: Bytes,
    empty: Bytes,
    unknown: Bytes,
}

impl Canned {
    /// `value_bytes`: length of the `SecretString` GetSecretValue returns.
    pub(crate) fn new(value_bytes: usize) -> Canned {
        let body = |v: serde_json::Value| Bytes::from(v.to_string());
        Canned {
            create: body(serde_json::json!({ "ARN": ARN, "Name": NAME, "VersionId": VERSION_ID })),
            put: body(serde_json::json!({
                "ARN": ARN, "Name": NAME, "VersionId": VERSION_ID, "VersionStages": ["AWSCURRENT"],
            })),
            get: body(serde_json::json!({
                "ARN": ARN,
                "Name": NAME,
                "VersionId": VERSION_ID,
                "SecretString": "v".repeat(value_bytes),
                "VersionStages": ["AWSCURRENT"],
                "CreatedDate": DATE,
            })),
            describe: body(serde_json::json!({
                "ARN": ARN,
                "Name": NAME,
                "CreatedDate": DATE,
                "LastChangedDate": DATE,
                "VersionIdsToStages": { VERSION_ID: ["AWSCURRENT"] },
            })),
            empty: Bytes::from_static(b"{}"),
            unknown: body(serde_json::json!({
                "__type": "UnknownOperationException",
                "Message": "The stub answers secretsmanager.* targets only.",
            })),
        }
    }
}

/// A running stub.
pub(crate) struct Stub {
    pub addr: SocketAddr,
    pub task: JoinHandle<std::io::Result<()>>,
}

/// Binds `listen` and serves in a background task.
pub(crate) async fn start(listen: &str, value_bytes: usize) -> anyhow::Result<Stub> {
    let listener = tokio::net::TcpListener::bind(listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let app = Router::new().fallback(handle).with_state(Arc::new(Canned::new(value_bytes)));
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(Stub { addr, task })
}

fn reply(status: StatusCode, body: Bytes) -> Response {
    (status, [(header::CONTENT_TYPE, CONTENT_TYPE), (REQUEST_ID_HEADER, REQUEST_ID)], body).into_response()
}

async fn handle(State(canned): State<Arc<Canned>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    // Read the body as the real server does (it needs it for SigV4), then discard it.
    if axum::body::to_bytes(body, BODY_BYTES_MAX).await.is_err() || parts.method != Method::POST {
        return reply(StatusCode::BAD_REQUEST, canned.unknown.clone());
    }
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or("");
    let body = match target.strip_prefix("secretsmanager.") {
        Some("CreateSecret") => canned.create.clone(),
        Some("PutSecretValue") => canned.put.clone(),
        Some("GetSecretValue") => canned.get.clone(),
        Some("DescribeSecret") => canned.describe.clone(),
        Some(_) => canned.empty.clone(),
        None => return reply(StatusCode::BAD_REQUEST, canned.unknown.clone()),
    };
    reply(StatusCode::OK, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workload::{sdk_client, ClientTarget};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_sdk_accepts_every_canned_answer() -> anyhow::Result<()> {
        let stub = start("127.0.0.1:0", 8).await?;
        let client = sdk_client(&ClientTarget {
            endpoint: format!("http://{}", stub.addr),
            access_key_id: "AKIDSTUB".into(),
            secret_access_key: "stub-secret".into(),
            region: "us-east-1".into(),
        });
        let created = client.create_secret().name("a").secret_string("x").send().await?;
        assert_eq!(created.name(), Some(NAME));
        let put = client.put_secret_value().secret_id("a").secret_string("y").send().await?;
        assert_eq!(put.version_stages(), ["AWSCURRENT".to_string()]);
        let got = client.get_secret_value().secret_id("a").send().await?;
        assert_eq!(got.secret_string(), Some("vvvvvvvv"));
        let described = client.describe_secret().secret_id("a").send().await?;
        assert_eq!(described.arn(), Some(ARN));
        client.tag_resource().secret_id("a").send().await?;
        stub.task.abort();
        Ok(())
    }
}
