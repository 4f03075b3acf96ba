//! `serve --tls-cert --tls-key`: HTTPS with a test CA made here (rcgen). A client that trusts the
//! CA is served, over TLS 1.2 or 1.3; one that does not is refused in the handshake; plain HTTP
//! to the TLS port gets no answer; SIGHUP's reload gives new connections the new certificate.
//! Plain HTTP on an address other than loopback is refused unless `--insecure-http`.

use std::sync::Arc;

use ledger_server::tls::TlsFiles;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{TestServer, AKID, SECRET};

/// A CA and a certificate for localhost / 127.0.0.1 signed by it, written to `dir`.
fn make_ca(dir: &std::path::Path, name: &str) -> (TlsFiles, rcgen::Certificate) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, format!("secret-ledger test CA {name}"));
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let files = TlsFiles { cert: dir.join(format!("{name}.crt")), key: dir.join(format!("{name}.key")) };
    // The chain: the server certificate, then the CA's.
    std::fs::write(&files.cert, format!("{}{}", cert.pem(), ca.pem())).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    (files, ca)
}

fn connector(ca: &rcgen::Certificate) -> tokio_rustls::TlsConnector {
    connector_for(ca, rustls::DEFAULT_VERSIONS)
}

/// A client trusting `ca` that offers only `versions`.
fn connector_for(
    ca: &rcgen::Certificate,
    versions: &[&'static rustls::SupportedProtocolVersion],
) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(ca.der().to_vec())).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

/// `GET /health` over TLS: the response text, or the handshake's error.
async fn health_over_tls(t: &TestServer, ca: &rcgen::Certificate) -> Result<String, std::io::Error> {
    let tcp = TcpStream::connect(t.addr()).await?;
    let mut tls = connector(ca).connect(ServerName::try_from("localhost").unwrap(), tcp).await?;
    tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await?;
    let mut text = String::new();
    tls.read_to_string(&mut text).await?;
    Ok(text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca_and_reload() {
    let dir = tempfile::tempdir().unwrap();
    let (files, ca) = make_ca(dir.path(), "one");
    let credentials = format!("{AKID}:{SECRET}\n");
    let tls = files.clone();
    let t = TestServer::start_configured(&credentials, move |c| c.tls = Some(tls)).await;
    assert_eq!(t.server.scheme(), "https");

    let text = health_over_tls(&t, &ca).await.unwrap();
    assert!(text.starts_with("HTTP/1.1 200") && text.contains("\"status\":\"ok\""), "{text}");

    // A client that does not trust the CA is refused in the handshake.
    let (_, stranger) = make_ca(dir.path(), "stranger");
    let refused = health_over_tls(&t, &stranger).await.unwrap_err();
    assert!(refused.to_string().contains("certificate"), "{refused}");

    // Plain HTTP to the TLS port: no HTTP answer, the connection is closed.
    let mut plain = TcpStream::connect(t.addr()).await.unwrap();
    plain.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), plain.read_to_end(&mut answer)).await.unwrap();
    assert!(!String::from_utf8_lossy(&answer).contains("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));

    // A kept-alive connection opened before the reload.
    let tcp = TcpStream::connect(t.addr()).await.unwrap();
    let mut kept = connector(&ca).connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();
    let request = b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n";
    kept.write_all(request).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));

    // New files, reloaded (what SIGHUP does): new connections get the new certificate.
    let (two, ca_two) = make_ca(dir.path(), "two");
    std::fs::copy(&two.cert, &files.cert).unwrap();
    std::fs::copy(&two.key, &files.key).unwrap();
    t.server.reload_tls().unwrap();
    // The open connection is not dropped: it is still served.
    kept.write_all(request).await.unwrap();
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&buf[..n]));
    assert!(health_over_tls(&t, &ca_two).await.unwrap().starts_with("HTTP/1.1 200"));
    assert!(health_over_tls(&t, &ca).await.is_err(), "the old certificate is still served");
    // A broken file on reload keeps the certificate in use.
    std::fs::write(&files.key, "not a key").unwrap();
    assert!(t.server.reload_tls().is_err());
    assert!(health_over_tls(&t, &ca_two).await.unwrap().starts_with("HTTP/1.1 200"));
}

/// aws-sdk-secretsmanager over HTTPS, trusting the private CA (as `AWS_CA_BUNDLE` would).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rust_sdk_over_https() {
    use aws_sdk_secretsmanager::config::{BehaviorVersion, Credentials, Region};
    use aws_smithy_http_client::tls;
    let dir = tempfile::tempdir().unwrap();
    let (files, ca) = make_ca(dir.path(), "sdk");
    let credentials = format!("{AKID}:{SECRET}\n");
    let t = TestServer::start_configured(&credentials, move |c| c.tls = Some(files)).await;
    let sdk = |ca: &rcgen::Certificate| {
        let trust = tls::TrustStore::empty().with_native_roots(false).with_pem_certificate(ca.pem().into_bytes());
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(tls::rustls_provider::CryptoMode::Ring))
            .tls_context(tls::TlsContext::builder().with_trust_store(trust).build().unwrap())
            .build_https();
        let config = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .endpoint_url(format!("https://localhost:{}", t.addr().port()))
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new(AKID, SECRET, None, None, "test"))
            .http_client(http_client)
            .build();
        aws_sdk_secretsmanager::Client::from_conf(config)
    };
    let c = sdk(&ca);
    c.create_secret().name("tls/sdk").secret_string("over-https").send().await.unwrap();
    let value = c.get_secret_value().secret_id("tls/sdk").send().await.unwrap();
    assert_eq!(value.secret_string(), Some("over-https"));
    let (_, stranger) = make_ca(dir.path(), "stranger");
    assert!(sdk(&stranger).list_secrets().send().await.is_err(), "a client without the CA was served");
}

/// A client that speaks only TLS 1.2 is served (over TLS 1.2), and so is one that speaks only
/// TLS 1.3: a signed API call and `GET /health` on each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_1_2_only_and_tls_1_3_only_clients_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let (files, ca) = make_ca(dir.path(), "versions");
    let t = TestServer::start_configured(&format!("{AKID}:{SECRET}\n"), move |c| c.tls = Some(files)).await;
    for (version, wanted) in [
        (&rustls::version::TLS12, rustls::ProtocolVersion::TLSv1_2),
        (&rustls::version::TLS13, rustls::ProtocolVersion::TLSv1_3),
    ] {
        let tcp = TcpStream::connect(t.addr()).await.unwrap();
        let mut tls = connector_for(&ca, &[version])
            .connect(ServerName::try_from("localhost").unwrap(), tcp)
            .await
            .unwrap_or_else(|e| panic!("{wanted:?} handshake: {e}"));
        assert_eq!(tls.get_ref().1.protocol_version(), Some(wanted));
        assert_eq!(tls.get_ref().1.alpn_protocol(), None, "no ALPN offered, none chosen");
        // A signed ListSecrets, then /health, on the one connection.
        let (headers, body) = crate::common::signed_parts(t.addr(), "secretsmanager.ListSecrets", b"{}");
        let mut request = format!("POST / HTTP/1.1\r\ncontent-length: {}\r\n", body.len());
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        tls.write_all(request.as_bytes()).await.unwrap();
        tls.write_all(&body).await.unwrap();
        tls.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").await.unwrap();
        let mut text = String::new();
        tls.read_to_string(&mut text).await.unwrap();
        assert!(text.starts_with("HTTP/1.1 200") && text.contains("\"SecretList\":[]"), "{wanted:?}: {text}");
        assert_eq!(text.matches("HTTP/1.1 200").count(), 2, "{wanted:?}: {text}");
        assert!(text.contains("\"status\":\"ok\""), "{wanted:?}: {text}");
    }
    t.stop().await;
}

#[tokio::test]
async fn plain_http_beyond_loopback_needs_insecure_http() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ledger_server::ServeConfig::new(dir.path().join("data"));
    config.listen = "0.0.0.0:0".into();
    let err = ledger_server::start(config).await.err().expect("refused");
    assert!(err.to_string().contains("--insecure-http"), "{err}");
    assert!(!dir.path().join("data").exists(), "a refused start creates nothing");

    let mut config = ledger_server::ServeConfig::new(dir.path().join("data"));
    config.listen = "0.0.0.0:0".into();
    config.insecure_http = true;
    ledger_server::start(config).await.unwrap().shutdown().await.unwrap();
}
