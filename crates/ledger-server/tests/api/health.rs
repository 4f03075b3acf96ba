//! `GET /health`: unsigned, 200 with the head while the log takes writes, 503 with the reason
//! once a group commit has failed (here a disk that fills up), while reads go on.

use std::io::{Read, Write};
use std::sync::Arc;

use ledger_store::faults::{FaultPlan, FaultStep};

use crate::common::{TestServer, AKID, SECRET};

/// A plain GET over a fresh connection: status and body.
fn get(t: &TestServer, path: &str) -> (u16, serde_json::Value) {
    let mut stream = std::net::TcpStream::connect(t.addr()).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text[9..12].parse().unwrap();
    let body = text.split_once("\r\n\r\n").unwrap().1;
    assert!(text.to_ascii_lowercase().contains("content-type: application/"), "{text}");
    (status, serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {text}")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_says_when_writes_have_stopped() {
    let credentials = format!("{AKID}:{SECRET}\n");
    // The third group commit fails at fsync, and every one after it: a full disk.
    let plan = Arc::new(FaultPlan::disk_full(FaultStep::Fsync, 3));
    let t = TestServer::start_configured(&credentials, |c| c.ledger_options.faults = Some(plan)).await;
    let c = t.client("us-east-1");
    let health = tokio::task::block_in_place(|| get(&t, "/health"));
    assert_eq!(health, (200, serde_json::json!({ "status": "ok", "head_seq": 0 })));

    c.create_secret().name("app/db").secret_string("v1").send().await.unwrap();
    let (status, body) = tokio::task::block_in_place(|| get(&t, "/health"));
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    assert!(body["head_seq"].as_u64().unwrap() > 0);

    // Writes fail until one group hits the full disk; from then on the node is unhealthy.
    for i in 0..3 {
        let _ = c.put_secret_value().secret_id("app/db").secret_string(format!("v{}", i + 2)).send().await;
    }
    let (status, body) = tokio::task::block_in_place(|| get(&t, "/health"));
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["status"], "unavailable");
    assert!(body["reason"].as_str().unwrap().starts_with("writes stopped"), "{body}");
    // Reads go on.
    let value = c.get_secret_value().secret_id("app/db").send().await.unwrap();
    assert!(value.secret_string().is_some());
    // Only GET /health is unsigned: anything else still needs a signature.
    let (status, body) = tokio::task::block_in_place(|| get(&t, "/healthz"));
    assert_eq!((status, body["__type"].as_str()), (400, Some("MissingAuthenticationTokenException")));
}
