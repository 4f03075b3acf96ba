//! The audit operations online (`SecretLedger.<Operation>`): a rotation written through the
//! SDK, then History, State, Checkpoint, Prove, Export and Verify by signed raw requests; each
//! answer checked against the log, and that audit calls are authenticated and append nothing.

use ledger_core::checkpoint::Checkpoint;
use ledger_core::merkle;
use serde_json::{json, Value};

use ledger_server::RunningServer;

use crate::common::{send, token, Raw, RawResponse, TestServer, AKID};

async fn audit_call(t: &TestServer, op: &str, body: Value) -> RawResponse {
    let target = format!("SecretLedger.{op}");
    send(t.addr(), Raw::new(&target, body.to_string())).await
}

fn hash(v: &Value) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(v.as_str().unwrap(), &mut out).unwrap();
    out
}

#[tokio::test]
async fn audit_operations_online() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    let name = "audit/db";
    let (v1, v2) = (token(), token());
    c.create_secret().name(name).client_request_token(&v1).secret_string("first-value").send().await.unwrap();
    c.put_secret_value()
        .secret_id(name)
        .client_request_token(&v2)
        .secret_string("second-value")
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    let before_rotation = t.head();
    c.update_secret_version_stage()
        .secret_id(name)
        .version_stage("AWSCURRENT")
        .move_to_version_id(&v2)
        .remove_from_version_id(&v1)
        .send()
        .await
        .unwrap();
    let head = t.head();
    assert!(head > before_rotation);

    // History: every event, the rotation's LabelMoved signed by our access key.
    let history = audit_call(&t, "History", json!({"SecretId": name})).await.expect_ok();
    assert_eq!(history["secret_id"], name);
    let events = history["secrets"][0]["events"].as_array().unwrap();
    let moved = events
        .iter()
        .find(|e| e["event"] == "LabelMoved" && e["label_move"]["label"] == "AWSCURRENT" && e["label_move"]["to"] == v2)
        .unwrap_or_else(|| panic!("no AWSCURRENT move to v2 in {history}"));
    assert_eq!(moved["actor"], AKID);
    // Each event names the operation that appended it.
    assert_eq!(moved["operation"], "UpdateSecretVersionStage");
    let operations: Vec<&str> = events.iter().map(|e| e["operation"].as_str().unwrap()).collect();
    assert_eq!(&operations[..2], ["CreateSecret", "CreateSecret"], "{history}");
    assert!(operations.contains(&"PutSecretValue"), "{operations:?}");
    assert_eq!(moved["label_move"]["from"], v1);
    assert_eq!(moved["change"], format!("AWSCURRENT: {v1} → {v2}"));
    assert!(!history.to_string().contains("first-value") && !history.to_string().contains("second-value"));
    audit_call(&t, "History", json!({"SecretId": "no/such"})).await.expect_error("ResourceNotFoundException");
    // Without SecretId: the whole ledger, here filtered to the rotation.
    let all = audit_call(&t, "History", json!({"Operation": "UpdateSecretVersionStage"})).await.expect_ok();
    let seqs: Vec<u64> = all["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [head - 1, head], "{all}");
    audit_call(&t, "History", json!({"Since": "soon"})).await.expect_error("ValidationException");

    // State as of before the rotation: v1 held AWSCURRENT; now v2 does. No value online.
    for as_of in [json!(before_rotation), json!(before_rotation.to_string())] {
        let state =
            audit_call(&t, "State", json!({"AsOf": as_of, "SecretId": name, "Label": "AWSCURRENT"})).await.expect_ok();
        assert_eq!(state["as_of_seq"], before_rotation);
        assert_eq!(state["label"]["version_id"], v1, "{state}");
        assert!(state["label"]["value"].is_null());
        assert_eq!(state["secrets"][0]["name"], name);
    }
    let now = audit_call(&t, "State", json!({"AsOf": "2999-01-01T00:00:00Z", "SecretId": name, "Label": "AWSCURRENT"}))
        .await
        .expect_ok();
    assert_eq!(now["as_of_seq"], head);
    assert_eq!(now["label"]["version_id"], v2);
    let all = audit_call(&t, "State", json!({"AsOf": 1})).await.expect_ok();
    assert_eq!(all["secrets"].as_array().unwrap().len(), 1);
    audit_call(&t, "State", json!({"AsOf": "yesterday"})).await.expect_error("ValidationException");
    audit_call(&t, "State", json!({"AsOf": -1})).await.expect_error("ValidationException");
    audit_call(&t, "State", json!({"AsOf": 1, "SecretId": "no/such"})).await.expect_error("ResourceNotFoundException");

    // Verify the live log; the checkpoint's root is the report's.
    let report = audit_call(&t, "Verify", json!({})).await.expect_ok();
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["events"], head);
    let cp_json = audit_call(&t, "Checkpoint", json!({"Origin": "audit-test"})).await.expect_ok();
    let checkpoint = Checkpoint::from_json(&cp_json.to_string()).unwrap();
    assert_eq!(checkpoint.origin, "audit-test");
    assert_eq!(checkpoint.size, head);
    assert!(checkpoint.signature.is_none());
    assert_eq!(cp_json["merkle_root"], report["merkle_root"]);
    assert_eq!(cp_json["head_hash"], report["head_hash"]);
    let against = audit_call(&t, "Verify", json!({"Checkpoint": cp_json})).await.expect_ok();
    assert_eq!(against["ok"], true);

    // Inclusion proof of the rotation's event, checked here.
    let seq = moved["seq"].as_u64().unwrap();
    let proof = audit_call(&t, "Prove", json!({"Seq": seq})).await.expect_ok();
    assert_eq!((proof["type"].as_str(), proof["tree_size"].as_u64()), (Some("inclusion"), Some(head)));
    assert_eq!(proof["merkle_root"], cp_json["merkle_root"]);
    let path: Vec<[u8; 32]> = proof["proof"].as_array().unwrap().iter().map(hash).collect();
    let leaf = merkle::leaf_hash(&ledger_core::ChainHash(hash(&proof["record_hash"])));
    assert!(merkle::verify_inclusion(&leaf, seq - 1, head, &path, &checkpoint.merkle_root));
    audit_call(&t, "Prove", json!({"Seq": head + 1})).await.expect_error("ValidationException");
    audit_call(&t, "Prove", json!({})).await.expect_error("ValidationException");

    // Export: JSON Lines that verify offline and close with the same root.
    let export = audit_call(&t, "Export", json!({"Origin": "audit-test"})).await;
    assert_eq!(export.status, 200);
    assert_eq!(export.headers["content-type"], "application/x-ndjson");
    let text = String::from_utf8(export.body.clone()).unwrap();
    assert!(!text.contains("first-value") && !text.contains("second-value"));
    assert_eq!(text.lines().count() as u64, head + 2);
    let verified =
        ledger_audit::export::verify_export(&mut text.as_bytes(), Some(&checkpoint), &mut |_, _| {}).unwrap().unwrap();
    assert_eq!(verified.merkle_root, checkpoint.merkle_root);

    // A consistency proof from the checkpoint to a later one.
    c.put_secret_value().secret_id(name).secret_string("third-value").send().await.unwrap();
    let later = audit_call(&t, "Checkpoint", json!({})).await.expect_ok();
    assert_eq!(later["size"], t.head());
    let consistency =
        audit_call(&t, "Prove", json!({"FromCheckpoint": cp_json, "ToCheckpoint": later})).await.expect_ok();
    assert_eq!(consistency["type"], "consistency");
    assert_eq!(consistency["verified"], true, "{consistency}");
    let later_cp = Checkpoint::from_json(&later.to_string()).unwrap();
    let path: Vec<[u8; 32]> = consistency["proof"].as_array().unwrap().iter().map(hash).collect();
    assert!(merkle::verify_consistency(
        checkpoint.size,
        later_cp.size,
        &checkpoint.merkle_root,
        &later_cp.merkle_root,
        &path
    ));
    t.stop().await;
}

#[tokio::test]
async fn audit_calls_are_signed_and_append_nothing() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    c.create_secret().name("quiet").secret_string("v").send().await.unwrap();
    let head = t.head();

    let mut raw = Raw::new("SecretLedger.History", json!({"SecretId": "quiet"}).to_string());
    raw.sign_with = None;
    let msg = send(t.addr(), raw).await.expect_error("MissingAuthenticationTokenException");
    assert_eq!(msg, "Missing Authentication Token");
    let mut raw = Raw::new("SecretLedger.Export", "{}");
    raw.sign_with = Some((AKID, "not-the-secret", std::time::SystemTime::now()));
    send(t.addr(), raw).await.expect_error("InvalidSignatureException");
    audit_call(&t, "Frobnicate", json!({})).await.expect_error("UnknownOperationException");
    audit_call(&t, "History", json!({"SecretId": 7})).await.expect_error("SerializationException");

    for (op, body) in [
        ("History", json!({"SecretId": "quiet"})),
        ("State", json!({"AsOf": 1, "SecretId": "quiet", "Label": "AWSCURRENT"})),
        ("Checkpoint", json!({})),
        ("Prove", json!({"Seq": 1})),
        ("Verify", json!({})),
    ] {
        audit_call(&t, op, body).await.expect_ok();
    }
    assert_eq!(audit_call(&t, "Export", json!({})).await.status, 200);
    assert_eq!(t.head(), head, "an audit call appended to the log");
    t.stop().await;
}

/// One name in two regions is two secrets: History and State resolve the name in the signing
/// region, an ARN only in its own; the whole-ledger State lists both, ordered by region.
#[tokio::test]
async fn audit_names_resolve_in_the_signing_region() {
    let t = TestServer::start().await;
    let name = "shared/name";
    let mut arns = Vec::new();
    for region in ["us-east-1", "eu-west-1"] {
        let c = t.client(region);
        let created = c.create_secret().name(name).secret_string(format!("value-{region}")).send().await.unwrap();
        arns.push(created.arn.unwrap());
    }
    let call = |op: &'static str, region: &'static str, body: Value| {
        let target = format!("SecretLedger.{op}");
        let addr = t.addr();
        async move {
            let mut raw = Raw::new(&target, body.to_string());
            raw.region = region;
            send(addr, raw).await
        }
    };
    for (region, arn) in [("us-east-1", &arns[0]), ("eu-west-1", &arns[1])] {
        let history = call("History", region, json!({"SecretId": name})).await.expect_ok();
        assert_eq!(history["region"], region);
        let secrets = history["secrets"].as_array().unwrap();
        assert_eq!(secrets.len(), 1, "{history}");
        assert_eq!((&secrets[0]["region"], &secrets[0]["arn"]), (&json!(region), &json!(arn)));
        let by_arn = call("History", region, json!({"SecretId": arn})).await.expect_ok();
        assert_eq!(by_arn, json!({"secret_id": arn, "region": region, "secrets": history["secrets"]}));
        let state =
            call("State", region, json!({"AsOf": "999", "SecretId": name, "Label": "AWSCURRENT"})).await.expect_ok();
        assert_eq!((&state["region"], &state["label"]["arn"]), (&json!(region), &json!(arn)), "{state}");
        assert_eq!(state["secrets"].as_array().unwrap().len(), 1);
        assert_eq!(state["secrets"][0]["arn"], *arn);
    }
    // An ARN of another region names nothing here, as in every Secrets Manager call.
    let message =
        call("History", "eu-west-1", json!({"SecretId": &arns[0]})).await.expect_error("ResourceNotFoundException");
    assert!(!message.contains("value-"), "{message}");
    call("History", "ap-south-1", json!({"SecretId": name})).await.expect_error("ResourceNotFoundException");
    let all = call("State", "ap-south-1", json!({"AsOf": "999"})).await.expect_ok();
    let regions: Vec<&str> = all["secrets"].as_array().unwrap().iter().map(|s| s["region"].as_str().unwrap()).collect();
    assert_eq!(regions, ["eu-west-1", "us-east-1"]);
    t.stop().await;
}

/// A data dir whose log holds `secrets` secrets of 8 KB each (written directly, without
/// fsync), with the test credentials beside it.
async fn bulk_log(dir: &std::path::Path, secrets: usize) -> std::path::PathBuf {
    let data = dir.join("data");
    let setup = data.clone();
    tokio::task::spawn_blocking(move || {
        let data = setup;
        let options = ledger_store::LedgerOptions { unsafe_no_sync: true, ..ledger_store::LedgerOptions::default() };
        let master = ledger_core::crypto::MasterKey::from_bytes(1, [9; 32]);
        std::fs::create_dir_all(&data).unwrap();
        std::fs::write(data.join("master.key"), hex::encode([9u8; 32])).unwrap();
        let ledger = ledger_store::Ledger::open(&data, master, options).unwrap();
        let scope = ledger_core::Scope::new("us-east-1", "000000000000");
        for i in 0..secrets {
            let cmd = ledger_core::Command::CreateSecret(ledger_core::CreateSecret {
                name: format!("bulk/{i}"),
                client_request_token: Some(format!("{i:0>36}")),
                value: Some(ledger_core::SecretValue::string("x".repeat(8000))),
                ..Default::default()
            });
            ledger.execute(cmd, &ledger_store::RequestMeta::local(scope.clone())).unwrap().unwrap();
        }
        ledger.close().unwrap();
    })
    .await
    .unwrap();
    std::fs::write(dir.join("credentials.txt"), format!("{AKID}:{}\n", crate::common::SECRET)).unwrap();
    data
}

/// A server on `data` (made by [`bulk_log`]), its config adjusted by `tweak`.
async fn serve_bulk(data: &std::path::Path, tweak: impl FnOnce(&mut ledger_server::ServeConfig)) -> RunningServer {
    let mut config = ledger_server::ServeConfig::new(data);
    config.listen = "127.0.0.1:0".into();
    config.credentials_file = Some(data.parent().unwrap().join("credentials.txt"));
    tweak(&mut config);
    ledger_server::start(config).await.unwrap()
}

/// An Export request sent whole on a connection of its own, whose answer is never read (the
/// client's receive buffer kept small, so the server's sends stall soon).
async fn stalled_export(addr: std::net::SocketAddr) -> tokio::net::TcpStream {
    use tokio::io::AsyncWriteExt;
    let (headers, body) = crate::common::signed_parts(addr, "SecretLedger.Export", b"{}");
    let mut head = format!("POST / HTTP/1.1\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut s = socket.connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    s.write_all(&body).await.unwrap();
    s
}

/// At most two whole-log reads run at once: two exports whose readers take nothing hold their
/// slots, and a third is refused with ThrottlingException instead of piling up work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whole_log_reads_are_limited() {
    // A log whose export far outgrows the queue and the socket buffers.
    let dir = tempfile::tempdir().unwrap();
    let data = bulk_log(dir.path(), 2500).await;
    let server = serve_bulk(&data, |_| {}).await;
    let addr = server.local_addr();
    let mut stalled = Vec::new();
    for _ in 0..2 {
        stalled.push(stalled_export(addr).await); // never read
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let refused = send(addr, Raw::new("SecretLedger.Export", "{}")).await;
    refused.expect_error("ThrottlingException");
    send(addr, Raw::new("SecretLedger.Verify", "{}")).await.expect_error("ThrottlingException");
    send(addr, Raw::new("SecretLedger.History", "{}")).await.expect_error("ThrottlingException");
    // Other requests are unaffected.
    send(addr, Raw::new("SecretLedger.Checkpoint", "{}")).await.expect_ok();
    drop(stalled);
    // The slots come back once the readers are gone.
    let mut ok = false;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        if send(addr, Raw::new("SecretLedger.Verify", "{}")).await.status == 200 {
            ok = true;
            break;
        }
    }
    assert!(ok, "the export slots were not released after the readers went away");
    server.shutdown().await.unwrap();
}

/// Readers that connect, ask for an export and then take nothing are given up on after the
/// send timeout (1 s here): their connections are closed with the export cut short, and their
/// whole-log slots come back, so a later Export is answered whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_export_is_given_up_after_the_send_timeout() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let data = bulk_log(dir.path(), 800).await;
    let server = serve_bulk(&data, |c| c.limits.send_timeout = std::time::Duration::from_secs(1)).await;
    let addr = server.local_addr();
    let mut stalled = vec![stalled_export(addr).await, stalled_export(addr).await];
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    // Both slots are held by the stalled readers.
    send(addr, Raw::new("SecretLedger.Export", "{}")).await.expect_error("ThrottlingException");
    let started = std::time::Instant::now();
    let export = loop {
        let answer = send(addr, Raw::new("SecretLedger.Export", "{}")).await;
        if answer.status == 200 || started.elapsed() > std::time::Duration::from_secs(20) {
            break answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert_eq!(export.status, 200, "no slot came back: {}", String::from_utf8_lossy(&export.body));
    let waited = started.elapsed();
    assert!(waited >= std::time::Duration::from_millis(500), "slots back after only {waited:?}");
    let report = ledger_audit::export::verify_export(&mut export.body.as_slice(), None, &mut |_, _| {}).unwrap();
    assert!(report.is_ok(), "the later export does not verify: {report:?}");
    // The stalled connections were closed by the server, their exports cut short.
    for s in &mut stalled {
        let mut got = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut got)).await;
        assert!(read.is_ok(), "a stalled connection was left open");
        assert!(got.starts_with(b"HTTP/1.1 200"), "{}", String::from_utf8_lossy(&got[..got.len().min(200)]));
        assert!(got.len() < export.body.len(), "the whole export reached a stalled reader");
        assert!(!got.ends_with(b"\r\n0\r\n\r\n"), "a stalled export ended as if complete");
    }
    server.shutdown().await.unwrap();
}

/// A burst of State, Prove, Checkpoint and per-secret History requests, far more than the
/// server's audit slots (2 here): every one is answered (they queue for a slot, none is refused
/// and none deadlocks), and at most 2 ever run at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_audit_reads_queues_for_the_audit_slots() {
    const BURST: usize = 64;
    let dir = tempfile::tempdir().unwrap();
    let data = bulk_log(dir.path(), 300).await;
    let server = serve_bulk(&data, |c| c.work.audit = 2).await;
    let addr = server.local_addr();
    let head = server.ledger().head_seq();
    let requests = (0..BURST).map(|i| {
        let (op, body) = match i % 5 {
            0 => ("State", json!({"AsOf": head})),
            1 => ("State", json!({"AsOf": head, "SecretId": format!("bulk/{i}"), "Label": "AWSCURRENT"})),
            2 => ("Prove", json!({"Seq": i + 1})),
            3 => ("Checkpoint", json!({})),
            _ => ("History", json!({"SecretId": format!("bulk/{i}")})),
        };
        let target = format!("SecretLedger.{op}");
        async move { (op, send(addr, Raw::new(&target, body.to_string())).await) }
    });
    let all = futures_util::future::join_all(requests);
    let answers = tokio::time::timeout(std::time::Duration::from_secs(120), all).await.expect("the burst hung");
    for (op, answer) in &answers {
        assert_eq!(answer.status, 200, "{op}: {}", String::from_utf8_lossy(&answer.body));
    }
    let text = server.metrics_text();
    let sample = |prefix: &str| -> f64 {
        let line = text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in {text}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert_eq!(sample("secret_ledger_work_slots{work=\"audit\"}"), 2.0);
    let peak = sample("secret_ledger_work_slots_peak{work=\"audit\"}");
    assert!((1.0..=2.0).contains(&peak), "{peak} audit reads at once");
    assert!(sample("secret_ledger_work_waits_total{work=\"audit\"}") >= 1.0, "no audit read ever waited");
    // The whole-log slots were not touched, and are free.
    assert_eq!(sample("secret_ledger_work_slots_peak{work=\"whole_log\"}"), 0.0);
    send(addr, Raw::new("SecretLedger.Verify", "{}")).await.expect_ok();
    server.shutdown().await.unwrap();
}
