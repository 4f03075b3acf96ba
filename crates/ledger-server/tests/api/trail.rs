//! `serve --audit-reads`: every value released is recorded (a durable `SecretRead`, with the
//! reader, version and request id) before it leaves; every refusal of a known key by its scope
//! is recorded too (`AccessDenied`); without the flag reads append at most their day's access
//! date.

use aws_sdk_secretsmanager::operation::RequestId;
use ledger_audit::events;

use crate::common::{send, Raw, TestServer, AKID, SECRET};

const APP_AKID: &str = "AKIATESTAPPTRAIL0001";
const APP_SECRET: &str = "app/trail+key";

async fn server(audit_reads: bool) -> TestServer {
    let credentials = format!("{AKID}:{SECRET}\n{APP_AKID}:{APP_SECRET}:ro:prefix=app/\n");
    TestServer::start_configured(&credentials, move |config| config.audit_reads = audit_reads).await
}

/// Every event of the ledger: (event, actor, operation, request id, change).
fn trail(t: &TestServer) -> Vec<(String, String, String, String, String)> {
    let tree = t.server.ledger().store();
    let head = t.server.ledger().head().0;
    events::log_history(tree, 1, head, &|_| true)
        .unwrap()
        .into_iter()
        .map(|e| (e.event.to_string(), e.actor, e.operation, e.request_id, e.change))
        .collect()
}

#[tokio::test]
async fn every_released_value_is_recorded_first() {
    let t = server(true).await;
    let c = t.client("us-east-1");
    let app = t.client_with("us-east-1", APP_AKID, APP_SECRET);
    c.create_secret().name("app/db").secret_string("v1").send().await.unwrap();
    c.create_secret().name("ops/root").secret_string("r1").send().await.unwrap();

    // GetSecretValue: its SecretRead is in the log when the answer arrives (no waiting).
    let got = app.get_secret_value().secret_id("app/db").send().await.unwrap();
    let reads: Vec<_> = trail(&t).into_iter().filter(|e| e.0 == "SecretRead").collect();
    assert_eq!(reads.len(), 1, "{reads:?}");
    let (_, actor, operation, request_id, change) = &reads[0];
    assert_eq!((actor.as_str(), operation.as_str()), (APP_AKID, "GetSecretValue"));
    assert_eq!(Some(request_id.as_str()), got.request_id(), "the read's own request id");
    assert!(change.contains(got.version_id().unwrap()), "{change}");
    // A second read of the same version is recorded again (this is the access trail, not the
    // day's access date).
    app.get_secret_value().secret_id("app/db").send().await.unwrap();
    assert_eq!(trail(&t).iter().filter(|e| e.0 == "SecretRead").count(), 2);

    // BatchGetSecretValue: one SecretRead per value, one AccessDenied per id out of scope.
    let batch = app.batch_get_secret_value().secret_id_list("app/db").secret_id_list("ops/root").send().await.unwrap();
    assert_eq!(batch.secret_values().len(), 1);
    assert_eq!(batch.errors()[0].error_code(), Some("AccessDeniedException"));
    let events = trail(&t);
    assert_eq!(events.iter().filter(|e| e.0 == "SecretRead").count(), 3);
    let batch_read = events.iter().rfind(|e| e.0 == "SecretRead").unwrap();
    assert_eq!(batch_read.2, "BatchGetSecretValue", "{batch_read:?}");
    let denied: Vec<_> = events.iter().filter(|e| e.0 == "AccessDenied").collect();
    assert_eq!(denied.len(), 1);
    assert!(denied[0].1 == APP_AKID && denied[0].4.contains("ops/root"), "{denied:?}");

    // A refused call by a known key is recorded with what it asked for.
    let refused = app.get_secret_value().secret_id("ops/root").send().await;
    assert!(refused.is_err());
    let events = trail(&t);
    let last = events.last().unwrap();
    assert_eq!((last.0.as_str(), last.1.as_str(), last.2.as_str()), ("AccessDenied", APP_AKID, "GetSecretValue"));
    assert!(last.4.contains(r#""ops/root""#), "{last:?}");
    // So is a refused audit operation (a prefix-scoped key has none).
    let mut raw = Raw::new("SecretLedger.History", "{}");
    raw.sign_with = Some((APP_AKID, APP_SECRET, std::time::SystemTime::now()));
    send(t.addr(), raw).await.expect_error("AccessDeniedException");
    let last = trail(&t).pop().unwrap();
    assert_eq!((last.0.as_str(), last.1.as_str(), last.2.as_str()), ("AccessDenied", APP_AKID, "History"));
    assert!(last.4.contains("secretledger:History"), "{last:?}");
    // Unauthenticated failures (an unknown key, a bad signature, a stale date) are never written
    // to the chain.
    let before = trail(&t).len();
    let now = std::time::SystemTime::now();
    let stale = now - std::time::Duration::from_secs(3600);
    for (key, secret, at) in
        [("AKIAUNKNOWNKEY000001", "x", now), (APP_AKID, "wrong", now), (APP_AKID, APP_SECRET, stale)]
    {
        let mut raw = Raw::new("secretsmanager.GetSecretValue", r#"{"SecretId":"app/db"}"#);
        raw.sign_with = Some((key, secret, at));
        let answer = send(t.addr(), raw).await;
        assert!(answer.status >= 400, "{key} {secret}: {}", answer.status);
    }
    assert_eq!(trail(&t).len(), before, "unauthenticated requests appended events");
    // The trail verifies like every other event.
    assert!(t.server.ledger().verify(&mut |_, _| {}).unwrap().is_ok());
    t.stop().await;
}

#[tokio::test]
async fn without_the_flag_reads_record_no_trail() {
    let t = server(false).await;
    let c = t.client("us-east-1");
    c.create_secret().name("app/db").secret_string("v1").send().await.unwrap();
    for _ in 0..3 {
        c.get_secret_value().secret_id("app/db").send().await.unwrap();
    }
    let app = t.client_with("us-east-1", APP_AKID, APP_SECRET);
    assert!(app.get_secret_value().secret_id("ops/none").send().await.is_err());
    // A write settles the queued access date.
    c.tag_resource()
        .secret_id("app/db")
        .tags(aws_sdk_secretsmanager::types::Tag::builder().key("k").value("v").build())
        .send()
        .await
        .unwrap();
    let events: Vec<String> = trail(&t).into_iter().map(|e| e.0).collect();
    assert!(!events.iter().any(|e| e == "SecretRead" || e == "AccessDenied"), "{events:?}");
    assert_eq!(events.iter().filter(|e| *e == "SecretAccessed").count(), 1, "{events:?}");
    t.stop().await;
}
