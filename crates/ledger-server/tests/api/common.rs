//! Test harness: start a server, build SDK clients and signed raw requests against it.

use std::net::SocketAddr;
use std::time::SystemTime;

use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_secretsmanager::Client;
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use ledger_server::{start, RunningServer, ServeConfig};
use serde_json::Value;

pub(crate) const AKID: &str = "AKIATESTLEDGER000001";
pub(crate) const SECRET: &str = "test/secret+key:with-colon";

pub(crate) struct TestServer {
    pub server: RunningServer,
    pub dir: tempfile::TempDir,
}

impl TestServer {
    pub(crate) async fn start() -> TestServer {
        Self::start_with_credentials(&format!("# test credentials\n{AKID}:{SECRET}\n")).await
    }

    /// A server whose credentials file holds exactly `credentials`.
    pub(crate) async fn start_with_credentials(credentials: &str) -> TestServer {
        Self::start_configured(credentials, |_| {}).await
    }

    /// A server whose config `tweak` adjusts (clock, rotation functions, …).
    pub(crate) async fn start_configured(credentials: &str, tweak: impl FnOnce(&mut ServeConfig)) -> TestServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("credentials.txt"), credentials).unwrap();
        let mut config = Self::config(&dir);
        tweak(&mut config);
        let server = start(config).await.unwrap();
        TestServer { server, dir }
    }

    fn config(dir: &tempfile::TempDir) -> ServeConfig {
        let mut config = ServeConfig::new(dir.path().join("data"));
        config.listen = "127.0.0.1:0".into();
        config.credentials_file = Some(dir.path().join("credentials.txt"));
        config
    }

    /// Shuts down and starts again on the same data dir (on a new port).
    pub(crate) async fn restart(self) -> TestServer {
        self.restart_configured(|_| {}).await
    }

    /// [`TestServer::restart`] with the config adjusted as for [`TestServer::start_configured`].
    pub(crate) async fn restart_configured(self, tweak: impl FnOnce(&mut ServeConfig)) -> TestServer {
        let TestServer { server, dir } = self;
        server.shutdown().await.unwrap();
        let mut config = Self::config(&dir);
        tweak(&mut config);
        let server = start(config).await.unwrap();
        TestServer { server, dir }
    }

    pub(crate) fn addr(&self) -> SocketAddr {
        self.server.local_addr()
    }

    pub(crate) fn endpoint(&self) -> String {
        format!("http://{}", self.addr())
    }

    pub(crate) fn client(&self, region: &str) -> Client {
        self.client_with(region, AKID, SECRET)
    }

    pub(crate) fn client_with(&self, region: &str, akid: &str, secret: &str) -> Client {
        // Plain-HTTP hyper client of the SDK's own HTTP stack (no TLS needed for loopback).
        let http_client = aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, _| {
            let mut builder = aws_smithy_http_client::Connector::builder();
            if let Some(settings) = settings {
                builder = builder.connector_settings(settings.clone());
            }
            builder.build_http()
        });
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(self.endpoint())
            .region(Region::new(region.to_string()))
            .credentials_provider(Credentials::new(akid, secret, None, None, "test"))
            .http_client(http_client)
            .build();
        Client::from_conf(config)
    }

    /// Head of the log: refused requests must leave it unchanged.
    pub(crate) fn head(&self) -> u64 {
        self.server.ledger().head().0
    }

    pub(crate) async fn stop(self) {
        self.server.shutdown().await.unwrap();
    }
}

/// A hand-made request; `sign_with` = (access key id, secret, time) or `None` for unsigned.
pub(crate) struct Raw<'a> {
    pub target: Option<&'a str>,
    pub body: Vec<u8>,
    pub region: &'a str,
    pub sign_with: Option<(&'a str, &'a str, SystemTime)>,
    pub extra_headers: Vec<(&'a str, String)>,
}

impl<'a> Raw<'a> {
    pub(crate) fn new(target: &'a str, body: impl Into<Vec<u8>>) -> Raw<'a> {
        Raw {
            target: Some(target),
            body: body.into(),
            region: "us-east-1",
            sign_with: Some((AKID, SECRET, SystemTime::now())),
            extra_headers: Vec::new(),
        }
    }
}

pub(crate) struct RawResponse {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub(crate) fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(&self.body)))
    }

    /// Asserts a 400 with this `__type` and the protocol's headers; returns the message.
    pub(crate) fn expect_error(&self, code: &str) -> String {
        let json = self.json();
        assert_eq!(json["__type"], code, "body {json}");
        assert_eq!(self.status, 400, "body {json}");
        self.expect_protocol_headers();
        json["Message"].as_str().unwrap().to_string()
    }

    pub(crate) fn expect_ok(&self) -> Value {
        assert_eq!(self.status, 200, "body {}", String::from_utf8_lossy(&self.body));
        self.expect_protocol_headers();
        self.json()
    }

    fn expect_protocol_headers(&self) {
        assert_eq!(self.headers["content-type"], "application/x-amz-json-1.1");
        let id = self.headers["x-amzn-requestid"].to_str().unwrap();
        assert_eq!(id.len(), 36, "request id {id}");
    }
}

/// Builds the request the way an SDK would (headers, SigV4) and sends it with hyper.
pub(crate) async fn send(addr: SocketAddr, raw: Raw<'_>) -> RawResponse {
    let mut headers: Vec<(String, String)> =
        vec![("host".into(), addr.to_string()), ("content-type".into(), "application/x-amz-json-1.1".into())];
    if let Some(target) = raw.target {
        headers.push(("x-amz-target".into(), target.into()));
    }
    for (k, v) in &raw.extra_headers {
        headers.push((k.to_string(), v.clone()));
    }
    if let Some(key) = raw.sign_with {
        sign_headers(&mut headers, &raw.body, key, raw.region);
    }
    send_prepared(addr, headers, raw.body).await
}

/// Sends exactly these headers and body (after any tampering by the caller).
pub(crate) async fn send_prepared(addr: SocketAddr, headers: Vec<(String, String)>, body: Vec<u8>) -> RawResponse {
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let io = hyper_util::rt::TokioIo::new(stream);
    let (mut sender, conn) = hyper::client::conn::http1::handshake(io).await.unwrap();
    tokio::spawn(conn);
    let mut builder = hyper::Request::builder().method("POST").uri("/");
    for (k, v) in &headers {
        builder = builder.header(k.as_str(), v.as_str());
    }
    let request = builder.body(Full::new(Bytes::from(body))).unwrap();
    let response = sender.send_request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await.unwrap().to_bytes().to_vec();
    RawResponse { status, headers, body }
}

/// A fresh 36-character client request token.
pub(crate) fn token() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Headers (including the signature) and body of a request signed now for us-east-1.
pub(crate) fn signed_parts(addr: SocketAddr, target: &str, body: &[u8]) -> (Vec<(String, String)>, Vec<u8>) {
    let mut headers: Vec<(String, String)> = vec![
        ("host".into(), addr.to_string()),
        ("content-type".into(), "application/x-amz-json-1.1".into()),
        ("x-amz-target".into(), target.into()),
    ];
    sign_headers(&mut headers, body, (AKID, SECRET, SystemTime::now()), "us-east-1");
    (headers, body.to_vec())
}

/// Appends `x-amz-date` and `authorization` computed by `aws-sigv4` as the SDK does.
pub(crate) fn sign_headers(
    headers: &mut Vec<(String, String)>,
    body: &[u8],
    key: (&str, &str, SystemTime),
    region: &str,
) {
    let (akid, secret, time) = key;
    let identity = Credentials::new(akid, secret, None, None, "raw").into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name("secretsmanager")
        .time(time)
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let signable = SignableRequest::new(
        "POST",
        "/",
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    for (name, value) in instructions.headers() {
        headers.push((name.to_string(), value.to_string()));
    }
}
