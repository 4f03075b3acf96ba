//! A small client for a running server's audit operations (`X-Amz-Target:
//! SecretLedger.<Operation>`): AWS JSON 1.1 over HTTP or HTTPS (rustls; the system's roots, or
//! `--ca-file` / `AWS_CA_BUNDLE` for a private CA), SigV4-signed with the `aws-sigv4` crate,
//! sent with hyper on a private current-thread runtime.

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
pub(crate) struct EndpointConfig {
    pub url: String,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub region: Option<String>,
    /// PEM certificates to trust for an https:// endpoint instead of the system's.
    pub ca_file: Option<std::path::PathBuf>,
}

/// The server refused the request (an AWS error shape).
#[derive(Debug, thiserror::Error)]
#[error("the server refused the request: {code}: {message}")]
pub(crate) struct RemoteError {
    pub code: String,
    pub message: String,
}

pub(crate) struct Remote {
    /// `host[:port]` as written in the URL: the `Host` header, which is signed.
    authority: String,
    /// Where to connect (`authority` with the default port added when absent).
    connect_to: String,
    path: String,
    access_key_id: String,
    secret_access_key: zeroize::Zeroizing<String>,
    region: String,
    runtime: tokio::runtime::Runtime,
    /// For https:// endpoints: the connector and the name the certificate must carry.
    tls: Option<(tokio_rustls::TlsConnector, rustls::pki_types::ServerName<'static>)>,
}

/// A TLS connector trusting `ca_file`'s certificates, or the system's roots.
fn tls_connector(ca_file: Option<&std::path::Path>) -> anyhow::Result<tokio_rustls::TlsConnector> {
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match ca_file {
        Some(path) => {
            let certs = rustls::pki_types::CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .with_context(|| format!("cannot read the CA certificates in {}", path.display()))?;
            let (added, _) = roots.add_parsable_certificates(certs);
            if added == 0 {
                bail!("{}: no usable CA certificate", path.display());
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS setup")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(std::sync::Arc::new(config)))
}

impl Remote {
    pub(crate) fn new(config: EndpointConfig) -> anyhow::Result<Remote> {
        let url = config.url.trim();
        let (rest, https) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (rest, false),
            (_, Some(rest)) => (rest, true),
            _ => bail!(
                "--endpoint takes a URL such as http://127.0.0.1:4590 or https://ledger.example:4590, not {url:?}"
            ),
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
        let default_port = if https { 443 } else { 80 };
        let connect_to = if has_port { authority.to_string() } else { format!("{authority}:{default_port}") };
        let tls = if https {
            let host = match authority.rfind(']') {
                Some(bracket) => authority[..bracket].trim_start_matches('['),
                None => authority.rsplit_once(':').map_or(authority, |(host, _)| host),
            };
            let name = rustls::pki_types::ServerName::try_from(host.to_string())
                .with_context(|| format!("--endpoint: {host:?} is not a host name for TLS"))?;
            Some((tls_connector(config.ca_file.as_deref())?, name))
        } else {
            None
        };
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
            tls,
        })
    }

    /// Calls `SecretLedger.<operation>` and returns its JSON document.
    pub(crate) fn call(&self, operation: &str, input: &Value) -> anyhow::Result<Value> {
        self.runtime.block_on(async {
            let response = self.send(operation, input).await?;
            let body = response.into_body().collect().await.context("cannot read the response")?.to_bytes();
            serde_json::from_slice(&body).with_context(|| format!("the answer to {operation} is not JSON"))
        })
    }

    /// Calls `SecretLedger.<operation>` and reads its answer as the typed document `T`.
    pub(crate) fn doc<T: serde::de::DeserializeOwned>(&self, operation: &str, input: &Value) -> anyhow::Result<T> {
        let value = self.call(operation, input)?;
        serde_json::from_value(value).with_context(|| format!("the answer to {operation} is not its document"))
    }

    /// Calls `SecretLedger.<operation>` and copies the response body to `out` as it arrives.
    pub(crate) fn call_to_writer(&self, operation: &str, input: &Value, out: &mut dyn Write) -> anyhow::Result<u64> {
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
        let mut sender = match &self.tls {
            None => handshake(stream).await?,
            Some((connector, name)) => {
                let stream = connector
                    .connect(name.clone(), stream)
                    .await
                    .with_context(|| format!("TLS handshake with {} failed", self.connect_to))?;
                handshake(stream).await?
            }
        };
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

/// HTTP/1.1 over `stream`; the connection runs on its own task, and a broken one surfaces as
/// the request's or the body's error.
async fn handshake<S>(stream: S) -> anyhow::Result<hyper::client::conn::http1::SendRequest<http_body_util::Full<Bytes>>>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (sender, conn) = hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
        .await
        .context("HTTP handshake with the server failed")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}
