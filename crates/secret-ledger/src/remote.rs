//! A small client for a running server's audit operations (`X-Amz-Target:
//! SecretLedger.<Operation>`): AWS JSON 1.1 over plain HTTP, SigV4-signed with the `aws-sigv4`
//! crate, sent with hyper on a private current-thread runtime.

use std::io::Write;
use std::time::SystemTime;

use anyhow::{bail, Context};
use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
use aws_sigv4::sign::v4;
use http_body_util::BodyExt;
use hyper::body::{Bytes, Incoming};
use serde_json::Value;

/// The signing name the server expects in the credential scope.
const SERVICE: &str = "secretsmanager";
const TARGET_PREFIX: &str = "SecretLedger.";

/// Where and as whom to call.
#[derive(Clone)]
pub struct EndpointConfig {
    pub url: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub region: Option<String>,
}

/// The server refused the request (an AWS error shape).
#[derive(Debug, thiserror::Error)]
#[error("the server refused the request: {code}: {message}")]
pub struct RemoteError {
    pub code: String,
    pub message: String,
}

pub struct Remote {
    /// `host[:port]` as written in the URL: the `Host` header, which is signed.
    authority: String,
    /// Where to connect (`authority` with the default port added when absent).
    connect_to: String,
    path: String,
    access_key_id: String,
    secret_access_key: zeroize::Zeroizing<String>,
    region: String,
    runtime: tokio::runtime::Runtime,
}

impl Remote {
    pub fn new(config: EndpointConfig) -> anyhow::Result<Remote> {
        let url = config.url.trim();
        let Some(rest) = url.strip_prefix("http://") else {
            if url.starts_with("https://") {
                bail!("--endpoint: only plain http:// endpoints are supported (use a local TLS terminator)");
            }
            bail!("--endpoint takes a URL such as http://127.0.0.1:4590, not {url:?}");
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        if authority.is_empty() || authority.contains('@') {
            bail!("--endpoint: {url:?} has no usable host");
        }
        let has_port = match authority.rfind(']') {
            Some(bracket) => authority[bracket..].contains(':'),
            None => authority.contains(':'),
        };
        let connect_to = if has_port { authority.to_string() } else { format!("{authority}:80") };
        let access_key_id = config
            .access_key_id
            .filter(|s| !s.is_empty())
            .context("--endpoint needs an access key id (--access-key-id or AWS_ACCESS_KEY_ID)")?;
        let secret_access_key = config
            .secret_access_key
            .filter(|s| !s.is_empty())
            .context("--endpoint needs a secret access key (--secret-access-key or AWS_SECRET_ACCESS_KEY)")?;
        let region = config
            .region
            .filter(|s| !s.is_empty())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok().filter(|s| !s.is_empty()))
            .unwrap_or_else(|| "us-east-1".to_string());
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .context("cannot start the HTTP client runtime")?;
        Ok(Remote {
            authority: authority.to_string(),
            connect_to,
            path: path.to_string(),
            access_key_id,
            secret_access_key: zeroize::Zeroizing::new(secret_access_key),
            region,
            runtime,
        })
    }

    /// Calls `SecretLedger.<operation>` and returns its JSON document.
    pub fn call(&self, operation: &str, input: &Value) -> anyhow::Result<Value> {
        self.runtime.block_on(async {
            let response = self.send(operation, input).await?;
            let body = response.into_body().collect().await.context("cannot read the response")?.to_bytes();
            serde_json::from_slice(&body).with_context(|| format!("the answer to {operation} is not JSON"))
        })
    }

    /// Calls `SecretLedger.<operation>` and copies the response body to `out` as it arrives.
    pub fn call_to_writer(&self, operation: &str, input: &Value, out: &mut dyn Write) -> anyhow::Result<u64> {
        self.runtime.block_on(async {
            let mut body = self.send(operation, input).await?.into_body();
            let mut written = 0u64;
            while let Some(frame) = body.frame().await {
                let frame = frame.context("the server stopped sending midway")?;
                if let Ok(data) = frame.into_data() {
                    out.write_all(&data)?;
                    written += data.len() as u64;
                }
            }
            Ok(written)
        })
    }

    /// Sends the signed request; a non-200 answer becomes a [`RemoteError`].
    async fn send(&self, operation: &str, input: &Value) -> anyhow::Result<hyper::Response<Incoming>> {
        let body = input.to_string().into_bytes();
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), self.authority.clone()),
            ("content-type".into(), "application/x-amz-json-1.1".into()),
            ("x-amz-target".into(), format!("{TARGET_PREFIX}{operation}")),
        ];
        self.sign(&mut headers, &body)?;
        let stream = tokio::net::TcpStream::connect(&self.connect_to)
            .await
            .with_context(|| format!("cannot connect to {}", self.connect_to))?;
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(io).await.context("HTTP handshake with the server failed")?;
        // A broken connection surfaces as the request's or the body's error.
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut builder = hyper::Request::builder().method("POST").uri(self.path.as_str());
        for (k, v) in &headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let request = builder.body(http_body_util::Full::new(Bytes::from(body))).context("cannot build the request")?;
        let response = sender.send_request(request).await.context("the request failed")?;
        if response.status() == hyper::StatusCode::OK {
            return Ok(response);
        }
        let status = response.status();
        let body = response.into_body().collect().await.map(|b| b.to_bytes()).unwrap_or_default();
        let error: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        Err(RemoteError {
            code: error["__type"].as_str().map_or_else(|| format!("HTTP {status}"), str::to_string),
            message: error["Message"].as_str().unwrap_or("").to_string(),
        }
        .into())
    }

    /// Appends `x-amz-date` and `authorization` (SigV4, as the AWS SDKs sign).
    fn sign(&self, headers: &mut Vec<(String, String)>, body: &[u8]) -> anyhow::Result<()> {
        let identity = aws_credential_types::Credentials::new(
            self.access_key_id.as_str(),
            self.secret_access_key.as_str(),
            None,
            None,
            "secret-ledger-cli",
        )
        .into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region(self.region.as_str())
            .name(SERVICE)
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .context("cannot build the signing parameters")?
            .into();
        let signable = SignableRequest::new(
            "POST",
            self.path.as_str(),
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body),
        )
        .context("cannot sign the request")?;
        let (instructions, _) = sign(signable, &params).context("cannot sign the request")?.into_parts();
        for (name, value) in instructions.headers() {
            headers.push((name.to_string(), value.to_string()));
        }
        Ok(())
    }
}
