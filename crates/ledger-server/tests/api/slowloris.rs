//! Bounded work per client: hundreds of connections that trickle their headers, or send whole
//! headers with a large `Content-Length` and no body (an unknown key; a known key with a bad
//! signature), cannot stall the server: a well-behaved SDK client is still served within a
//! second, the unknown keys are answered before any body, the trickling connections are closed
//! by the server, and its resident memory stays bounded. A kept-alive connection left idle is
//! closed once the header timeout runs out.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod common;

use std::time::{Duration, Instant, SystemTime};

use ledger_server::serve::ConnLimits;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{TestServer, AKID, SECRET};

const TRICKLING: usize = 600;
const SILENT_BODIES: usize = 100;

fn vm_rss_kb() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// A request head signed by `key`, claiming a megabyte of body.
fn head(t: &TestServer, key: (&str, &str, SystemTime)) -> String {
    let mut headers = vec![
        ("host".to_string(), t.addr().to_string()),
        ("x-amz-target".to_string(), "secretsmanager.ListSecrets".to_string()),
    ];
    crate::common::sign_headers(&mut headers, b"{}", key, "us-east-1");
    let mut head =
        String::from("POST / HTTP/1.1\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: 1000000\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// Whether the server closed the connection (a read returns end-of-file or an error).
async fn closed_by_server(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        match tokio::time::timeout(deadline - Instant::now(), stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            Err(_) => return false,
        }
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connections_do_not_stall_the_server() {
    let limits = ConnLimits {
        max_connections: 4096,
        header_timeout: Duration::from_secs(2),
        body_timeout: Duration::from_secs(2),
        ..ConnLimits::default()
    };
    let t = TestServer::start_configured(&format!("{AKID}:{SECRET}\n"), move |c| c.limits = limits).await;
    let sdk = t.client("us-east-1");
    sdk.create_secret().name("still/served").secret_string("v").send().await.unwrap();
    let rss_before = vm_rss_kb();

    // Connections that trickle a header, a byte at a time, never finishing it.
    let mut trickling = Vec::new();
    for _ in 0..TRICKLING {
        let mut s = TcpStream::connect(t.addr()).await.unwrap();
        s.write_all(b"POST / HTTP/1.1\r\nhost: x\r\nx-amz-tar").await.unwrap();
        trickling.push(s);
    }
    // Whole headers, a large Content-Length, no body: an unknown key, and a known key with a
    // bad signature.
    let mut silent = Vec::new();
    for i in 0..SILENT_BODIES {
        let key = if i % 2 == 0 {
            ("AKIAUNKNOWN000000001", "whatever", SystemTime::now())
        } else {
            (AKID, "not-the-secret", SystemTime::now())
        };
        let mut s = TcpStream::connect(t.addr()).await.unwrap();
        s.write_all(head(&t, key).as_bytes()).await.unwrap();
        silent.push((i % 2 == 0, s));
    }
    // A well-behaved client is still served promptly.
    let started = Instant::now();
    let value = sdk.get_secret_value().secret_id("still/served").send().await.unwrap();
    assert_eq!(value.secret_string(), Some("v"));
    assert!(started.elapsed() < Duration::from_secs(1), "served in {:?}", started.elapsed());
    // The unknown keys were answered on their headers, before any body.
    for (unknown, s) in silent.iter_mut().filter(|(unknown, _)| *unknown) {
        let mut buf = vec![0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(2), s.read(&mut buf)).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(*unknown && text.contains("UnrecognizedClientException"), "{text}");
    }
    // The trickling connections are closed by the server (header timeout).
    for s in trickling.iter_mut().take(20) {
        let _ = s.write_all(b"g").await;
    }
    let mut closed = 0;
    for s in trickling.iter_mut() {
        if closed_by_server(s, Duration::from_secs(5)).await {
            closed += 1;
        }
    }
    assert_eq!(closed, TRICKLING, "trickling connections left open");
    // A known key's body that never comes is refused when the body timeout runs out.
    for (_, s) in silent.iter_mut().filter(|(unknown, _)| !*unknown) {
        let mut buf = vec![0u8; 2048];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf)).await.unwrap().unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 408") && text.contains("RequestTimeoutException"), "{text}");
    }
    let rss_after = vm_rss_kb();
    assert!(rss_after < rss_before + 64 * 1024, "resident memory grew from {rss_before} kB to {rss_after} kB");
    // And the server still serves.
    sdk.get_secret_value().secret_id("still/served").send().await.unwrap();
    t.stop().await;
}

/// The connection cap: with `--max-connections 2` held by two idle connections, a third is not
/// served until one of them goes; then it is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_beyond_the_cap_wait_until_one_closes() {
    let credentials = format!("{AKID}:{SECRET}\n");
    let limits = ConnLimits {
        max_connections: 2,
        header_timeout: Duration::from_secs(30),
        body_timeout: Duration::from_secs(30),
        ..ConnLimits::default()
    };
    let t = TestServer::start_configured(&credentials, |c| c.limits = limits).await;
    let mut idle = Vec::new();
    for _ in 0..2 {
        let mut s = TcpStream::connect(t.addr()).await.unwrap();
        s.write_all(b"GET /health HTTP/1.1\r\n").await.unwrap(); // headers never finished
        idle.push(s);
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut third = TcpStream::connect(t.addr()).await.unwrap();
    third.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut answer = Vec::new();
    let waited = tokio::time::timeout(Duration::from_millis(500), third.read_to_end(&mut answer)).await;
    assert!(waited.is_err(), "served beyond the cap: {}", String::from_utf8_lossy(&answer));
    drop(idle.pop());
    tokio::time::timeout(Duration::from_secs(5), third.read_to_end(&mut answer)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"), "{}", String::from_utf8_lossy(&answer));
}

/// One whole response read from `stream` (headers, then `Content-Length` bytes of body).
async fn read_response(stream: &mut TcpStream) -> String {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&buf).to_string();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().to_string()))
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return text;
            }
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk)).await.unwrap().unwrap();
        assert!(n > 0, "closed mid-response: {}", String::from_utf8_lossy(&buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// A kept-alive connection is served again while it is used, and closed by the server once it
/// has been idle (no next request's headers) for the header timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_kept_alive_connection_is_closed_after_the_header_timeout() {
    let limits = ConnLimits { header_timeout: Duration::from_secs(1), ..ConnLimits::default() };
    let t = TestServer::start_configured(&format!("{AKID}:{SECRET}\n"), |c| c.limits = limits).await;
    let mut s = TcpStream::connect(t.addr()).await.unwrap();
    let request = b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n";
    for i in 0..3 {
        if i > 0 {
            // Idle for less than the timeout: still open, and served.
            tokio::time::sleep(Duration::from_millis(400)).await;
        }
        s.write_all(request).await.unwrap();
        let answer = read_response(&mut s).await;
        assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("\"status\":\"ok\""), "{answer}");
    }
    // Now idle: the server, not the client, ends it, and not before the timeout.
    let idle = Instant::now();
    assert!(closed_by_server(&mut s, Duration::from_secs(10)).await, "the idle connection was left open");
    let waited = idle.elapsed();
    assert!(waited >= Duration::from_millis(700), "closed after only {waited:?}");
    assert!(waited < Duration::from_secs(5), "closed only after {waited:?}");
    t.stop().await;
}
