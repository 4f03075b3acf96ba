//! `GET /metrics`: unsigned Prometheus text with requests by operation and outcome, latency
//! histograms, group commits, the head, refused authentications, the work slots; no secret name
//! or value in it.
//! With `--metrics-listen` it moves to its own address and leaves the API.

use std::io::{Read, Write};

use crate::common::{send, Raw, TestServer, AKID, SECRET};

fn get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    (text[9..12].parse().unwrap(), text.split_once("\r\n\r\n").unwrap().1.to_string())
}

/// The value of the sample line that starts with `prefix`.
fn sample(text: &str, prefix: &str) -> f64 {
    let line = text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_commits_and_refusals() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    c.create_secret().name("metrics/secret-name").secret_string("metrics-value-canary").send().await.unwrap();
    for i in 0..3 {
        c.put_secret_value().secret_id("metrics/secret-name").secret_string(format!("v{i}")).send().await.unwrap();
    }
    c.get_secret_value().secret_id("metrics/secret-name").send().await.unwrap();
    assert!(c.get_secret_value().secret_id("metrics/missing").send().await.is_err());
    // Unsigned, and an invented target: counted as refused and as `unknown`, not by its name.
    let mut unsigned = Raw::new("secretsmanager.GetSecretValue", "{}");
    unsigned.sign_with = None;
    send(t.addr(), unsigned).await;
    send(t.addr(), Raw::new("secretsmanager.MadeUpOperation", "{}")).await;

    let (status, text) = tokio::task::block_in_place(|| get(t.addr(), "/metrics"));
    assert_eq!(status, 200, "{text}");
    let ops = "secret_ledger_requests_total{operation=\"secretsmanager.";
    assert_eq!(sample(&text, &format!("{ops}PutSecretValue\",outcome=\"ok\"}}")), 3.0);
    assert_eq!(sample(&text, &format!("{ops}GetSecretValue\",outcome=\"ok\"}}")), 1.0);
    assert_eq!(sample(&text, &format!("{ops}GetSecretValue\",outcome=\"ResourceNotFoundException\"}}")), 1.0);
    assert_eq!(
        sample(&text, "secret_ledger_requests_total{operation=\"unknown\",outcome=\"UnknownOperationException\"}"),
        1.0
    );
    assert_eq!(sample(&text, "secret_ledger_auth_refused_total{reason=\"MissingAuthenticationTokenException\"}"), 1.0);
    assert_eq!(
        sample(&text, "secret_ledger_request_duration_seconds_count{operation=\"secretsmanager.PutSecretValue\"}"),
        3.0
    );
    let head = t.server.ledger().head_seq() as f64;
    assert_eq!(sample(&text, "secret_ledger_log_head_seq"), head);
    assert!(sample(&text, "secret_ledger_events_appended_total") >= 4.0);
    assert!(sample(&text, "secret_ledger_group_commit_requests_count") >= 4.0);
    assert!(sample(&text, "secret_ledger_group_commit_sync_seconds_count") >= 4.0);
    assert!(text.contains("secret_ledger_rotations_started_total 0"));
    // The work slots, by default: filtering 2 × the CPUs (at least 2), audit 4 × (at least 4),
    // whole-log reads 2.
    let slots = |work: &str| sample(&text, &format!("secret_ledger_work_slots{{work=\"{work}\"}}"));
    assert_eq!(slots("filtering"), ledger_server::ops::default_filtering_slots() as f64);
    assert_eq!(slots("audit"), ledger_server::audit_ops::default_audit_slots() as f64);
    assert_eq!(slots("whole_log"), 2.0);
    assert!(ledger_server::ops::default_filtering_slots() >= 2 && ledger_server::audit_ops::default_audit_slots() >= 4);
    assert!(!text.contains("metrics/") && !text.contains("canary") && !text.contains(AKID), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_listen_moves_metrics_off_the_api() {
    let credentials = format!("{AKID}:{SECRET}\n");
    let t = TestServer::start_configured(&credentials, |c| c.metrics_listen = Some("127.0.0.1:0".into())).await;
    let addr = t.server.metrics_addr().expect("a metrics address");
    let (status, text) = tokio::task::block_in_place(|| get(addr, "/metrics"));
    assert_eq!(status, 200);
    assert!(text.contains("secret_ledger_log_head_seq"), "{text}");
    // On the API it is an unsigned request like any other.
    let (status, text) = tokio::task::block_in_place(|| get(t.addr(), "/metrics"));
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("MissingAuthenticationTokenException"));
}
