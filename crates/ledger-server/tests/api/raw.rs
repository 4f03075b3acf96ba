//! Hand-made HTTP requests: refusals (unsigned, mis-signed, stale, unknown key, unknown
//! target, malformed JSON, wrong types, oversized body) each answer 400 with the right `__type`
//! and append nothing; and the exact JSON shapes of responses (absent keys, numbers, base64).

use std::time::{Duration, SystemTime};

use serde_json::{json, Value};

use crate::common::{send, send_prepared, signed_parts, token, Raw, TestServer, AKID, SECRET};

const MISMATCH: &str = "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.";

async fn call(t: &TestServer, op: &str, body: Value) -> Value {
    let target = format!("secretsmanager.{op}");
    send(t.addr(), Raw::new(&target, body.to_string())).await.expect_ok()
}

/// The secret count seen by ListSecrets, a second witness besides the log head.
async fn n_secrets(t: &TestServer) -> usize {
    call(t, "ListSecrets", json!({"IncludePlannedDeletion": true})).await["SecretList"].as_array().unwrap().len()
}

#[tokio::test]
async fn refused_requests_append_nothing() {
    let t = TestServer::start().await;
    call(&t, "CreateSecret", json!({"Name": "seed", "SecretString": "s", "ClientRequestToken": token()})).await;
    let head = t.head();
    let n = n_secrets(&t).await;
    let create = |name: &str| json!({"Name": name, "SecretString": "v", "ClientRequestToken": token()}).to_string();

    // Unsigned.
    let mut raw = Raw::new("secretsmanager.CreateSecret", create("unsigned"));
    raw.sign_with = None;
    let msg = send(t.addr(), raw).await.expect_error("MissingAuthenticationTokenException");
    assert_eq!(msg, "Missing Authentication Token");

    // Signed with the wrong secret key.
    let mut raw = Raw::new("secretsmanager.CreateSecret", create("wrong-key"));
    raw.sign_with = Some((AKID, "not-the-secret", SystemTime::now()));
    assert_eq!(send(t.addr(), raw).await.expect_error("InvalidSignatureException"), MISMATCH);

    // Unknown access key.
    let mut raw = Raw::new("secretsmanager.CreateSecret", create("stranger"));
    raw.sign_with = Some(("AKIANOBODY0000000000", SECRET, SystemTime::now()));
    assert_eq!(
        send(t.addr(), raw).await.expect_error("UnrecognizedClientException"),
        "The security token included in the request is invalid."
    );

    // Stale and future dates.
    let mut raw = Raw::new("secretsmanager.CreateSecret", create("stale"));
    raw.sign_with = Some((AKID, SECRET, SystemTime::now() - Duration::from_secs(10 * 60)));
    let msg = send(t.addr(), raw).await.expect_error("InvalidSignatureException");
    assert!(msg.starts_with("Signature expired: ") && msg.ends_with(" - 5 min.)"), "{msg}");
    let mut raw = Raw::new("secretsmanager.CreateSecret", create("future"));
    raw.sign_with = Some((AKID, SECRET, SystemTime::now() + Duration::from_secs(10 * 60)));
    let msg = send(t.addr(), raw).await.expect_error("InvalidSignatureException");
    assert!(msg.starts_with("Signature not yet current: "), "{msg}");

    // A correctly signed request whose body is changed afterwards.
    let signed = signed_parts(t.addr(), "secretsmanager.CreateSecret", create("tampered").as_bytes());
    let tampered = create("tampered2").into_bytes();
    let mut headers = signed.0.clone();
    headers.retain(|(k, _)| k != "content-length");
    let msg = send_prepared(t.addr(), headers, tampered).await.expect_error("InvalidSignatureException");
    assert_eq!(msg, MISMATCH);
    // …or whose signed target header is changed.
    let mut headers = signed.0.clone();
    for (k, v) in headers.iter_mut() {
        if k == "x-amz-target" {
            *v = "secretsmanager.DeleteSecret".into();
        }
    }
    send_prepared(t.addr(), headers, signed.1.clone()).await.expect_error("InvalidSignatureException");

    // Malformed Authorization header.
    let mut raw = Raw::new("secretsmanager.CreateSecret", create("malformed"));
    raw.sign_with = None;
    raw.extra_headers.push((
        "authorization",
        "AWS4-HMAC-SHA256 Credential=AKID/20250101/us-east-1/secretsmanager/aws4_request".into(),
    ));
    send(t.addr(), raw).await.expect_error("IncompleteSignatureException");

    // Unknown target, missing target (signed).
    let raw = Raw::new("secretsmanager.RotateTheMoon", create("unknown-op"));
    send(t.addr(), raw).await.expect_error("UnknownOperationException");
    // Without X-Amz-Target nothing names the operation under the signature.
    let mut raw = Raw::new("ignored", create("no-target"));
    raw.target = None;
    send(t.addr(), raw).await.expect_error("IncompleteSignatureException");
    // A target outside the signature: a captured request could be replayed as another
    // operation, so it is refused (stricter than AWS), whatever the operation.
    for target in ["secretsmanager.GetSecretValue", "secretsmanager.DeleteSecret"] {
        let body = br#"{"SecretId": "x"}"#.to_vec();
        let mut headers = vec![("host".to_string(), t.addr().to_string())];
        crate::common::sign_headers(&mut headers, &body, (AKID, SECRET, SystemTime::now()), "us-east-1");
        headers.push(("content-type".into(), "application/x-amz-json-1.1".into()));
        headers.push(("x-amz-target".into(), target.into()));
        let msg = send_prepared(t.addr(), headers, body).await.expect_error("IncompleteSignatureException");
        assert_eq!(msg, "SignedHeaders must include 'x-amz-target'.");
    }
    let raw = Raw::new("kms.CreateSecret", create("other-service"));
    send(t.addr(), raw).await.expect_error("UnknownOperationException");

    // Malformed JSON, a non-object body, wrong member types (signed).
    for body in [
        r#"{"Name": "x", "#,
        "[1,2]",
        "\"str\"",
        r#"{"Name": 5, "SecretString": "v"}"#,
        r#"{"Name": "ok", "SecretString": ["v"]}"#,
        r#"{"Name": "ok", "SecretBinary": "not base64!"}"#,
        r#"{"Name": "ok", "Tags": {"Key": "a"}}"#,
    ] {
        let response = send(t.addr(), Raw::new("secretsmanager.CreateSecret", body)).await;
        let msg = response.expect_error("SerializationException");
        assert!(!msg.contains("not base64!") && !msg.contains("\"v\""), "messages never echo values: {msg}");
    }

    // Missing required member; missing token with a value (raw HTTP: no SDK fills it).
    send(t.addr(), Raw::new("secretsmanager.CreateSecret", r#"{"SecretString": "v"}"#))
        .await
        .expect_error("ValidationException");
    let msg = send(t.addr(), Raw::new("secretsmanager.CreateSecret", r#"{"Name": "no-token", "SecretString": "v"}"#))
        .await
        .expect_error("InvalidRequestException");
    assert_eq!(msg, "You must provide a ClientRequestToken value. We recommend a UUID-type value.");
    // Request-shape errors come before the lookup, also for secrets that do not exist.
    for (target, body) in [
        ("secretsmanager.PutSecretValue", r#"{"SecretId": "no/such/secret", "SecretString": "v"}"#),
        ("secretsmanager.UpdateSecret", r#"{"SecretId": "no/such/secret", "SecretString": "v"}"#),
    ] {
        let msg = send(t.addr(), Raw::new(target, body)).await.expect_error("InvalidRequestException");
        assert_eq!(msg, "You must provide a ClientRequestToken value. We recommend a UUID-type value.", "{target}");
    }
    let body = format!(r#"{{"SecretId": "no/such/secret", "ClientRequestToken": "{}"}}"#, crate::common::token());
    let msg =
        send(t.addr(), Raw::new("secretsmanager.PutSecretValue", body)).await.expect_error("InvalidRequestException");
    assert_eq!(msg, "You must provide either SecretString or SecretBinary.");

    // Oversized body.
    let big = format!(r#"{{"Name": "big", "SecretString": "{}"}}"#, "x".repeat(1024 * 1024 + 10));
    send(t.addr(), Raw::new("secretsmanager.CreateSecret", big)).await.expect_error("RequestEntityTooLargeException");

    assert_eq!(t.head(), head, "no refused request appended anything");
    assert_eq!(n_secrets(&t).await, n);

    // Finally the untampered signed request is accepted: the refusals were not flukes.
    send_prepared(t.addr(), signed.0, signed.1).await.expect_ok();
    assert_eq!(n_secrets(&t).await, n + 1);
    t.stop().await;
}

#[tokio::test]
async fn empty_body_and_json_shapes() {
    let t = TestServer::start().await;

    // An empty body is `{}`.
    let list = send(t.addr(), Raw::new("secretsmanager.ListSecrets", "")).await.expect_ok();
    assert_eq!(list, json!({"SecretList": []}));
    // Unknown members are ignored.
    let list = call(&t, "ListSecrets", json!({"SomeFutureMember": {"x": 1}})).await;
    assert_eq!(list["SecretList"], json!([]));

    // CreateSecret without a value: ARN and Name only.
    let created = call(&t, "CreateSecret", json!({"Name": "shape/empty", "ClientRequestToken": token()})).await;
    let keys: Vec<&str> = created.as_object().unwrap().keys().map(String::as_str).collect();
    assert_eq!(keys, ["ARN", "Name"]);
    let described = call(&t, "DescribeSecret", json!({"SecretId": "shape/empty"})).await;
    for absent in ["Tags", "VersionIdsToStages", "Description", "KmsKeyId", "DeletedDate", "LastAccessedDate"] {
        assert!(described.get(absent).is_none(), "{absent} in {described}");
    }
    assert!(described["CreatedDate"].is_number() && described["LastChangedDate"].is_number(), "{described}");

    // Binary values travel as base64 exactly once: `footest` is "Zm9vdGVzdA==".
    let t1 = token();
    let created = call(
        &t,
        "CreateSecret",
        json!({"Name": "shape/bin", "SecretBinary": "Zm9vdGVzdA==", "ClientRequestToken": t1, "Description": ""}),
    )
    .await;
    assert_eq!(created["VersionId"], t1);
    let got = call(&t, "GetSecretValue", json!({"SecretId": "shape/bin"})).await;
    assert_eq!(got["SecretBinary"], "Zm9vdGVzdA==");
    assert!(got.get("SecretString").is_none());
    assert_eq!(got["VersionStages"], json!(["AWSCURRENT"]));
    let created_date = got["CreatedDate"].as_f64().unwrap();
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - created_date).abs() < 60.0, "{created_date} vs {now}");
    let described = call(&t, "DescribeSecret", json!({"SecretId": "shape/bin"})).await;
    assert!(described.get("Description").is_none(), "an empty description is absent: {described}");
    assert_eq!(described["VersionIdsToStages"], json!({ t1.clone(): ["AWSCURRENT"] }));

    // Deprecated versions in ListSecretVersionIds have no VersionStages key.
    for _ in 0..2 {
        call(
            &t,
            "PutSecretValue",
            json!({"SecretId": "shape/bin", "SecretString": "s", "ClientRequestToken": token()}),
        )
        .await;
    }
    let versions = call(&t, "ListSecretVersionIds", json!({"SecretId": "shape/bin", "IncludeDeprecated": true})).await;
    let first = &versions["Versions"][0];
    assert_eq!(first["VersionId"], t1);
    assert!(first.get("VersionStages").is_none(), "{first}");
    assert_eq!(first["KmsKeyIds"], json!(["DefaultEncryptionKey"]));
    assert!(versions.get("NextToken").is_none());
    assert_eq!(versions["Versions"].as_array().unwrap().len(), 3);

    // ListSecrets entries use SecretVersionsToStages.
    let list = call(&t, "ListSecrets", json!({"Filters": [{"Key": "name", "Values": ["shape/bin"]}]})).await;
    let entry = &list["SecretList"][0];
    assert!(entry.get("SecretVersionsToStages").is_some() && entry.get("VersionIdsToStages").is_none(), "{entry}");

    // Tags: [] after the last one is removed; Tag/Untag answer {}.
    assert_eq!(
        call(&t, "TagResource", json!({"SecretId": "shape/bin", "Tags": [{"Key": "k", "Value": "v"}]})).await,
        json!({})
    );
    assert_eq!(call(&t, "UntagResource", json!({"SecretId": "shape/bin", "TagKeys": ["k"]})).await, json!({}));
    assert_eq!(call(&t, "DescribeSecret", json!({"SecretId": "shape/bin"})).await["Tags"], json!([]));

    // DeleteSecret answers a numeric DeletionDate.
    let deleted = call(&t, "DeleteSecret", json!({"SecretId": "shape/bin"})).await;
    let deletion = deleted["DeletionDate"].as_f64().unwrap();
    assert!((deletion - (now + 30.0 * 86_400.0)).abs() < 120.0, "{deleted}");
    let described = call(&t, "DescribeSecret", json!({"SecretId": "shape/bin"})).await;
    assert!(described["DeletedDate"].is_number());

    // Errors from the core carry their AWS shape.
    let response = send(t.addr(), Raw::new("secretsmanager.GetSecretValue", r#"{"SecretId":"missing"}"#)).await;
    assert_eq!(response.expect_error("ResourceNotFoundException"), "Secrets Manager can't find the specified secret.");

    // GetRandomPassword answers RandomPassword.
    let pw = call(&t, "GetRandomPassword", json!({"PasswordLength": 12})).await;
    assert_eq!(pw["RandomPassword"].as_str().unwrap().len(), 12);
    t.stop().await;
}

#[tokio::test]
async fn a_second_server_on_the_same_data_dir_is_refused() {
    let t = TestServer::start().await;
    let mut config = ledger_server::ServeConfig::new(t.dir.path().join("data"));
    config.listen = "127.0.0.1:0".into();
    config.credentials_file = Some(t.dir.path().join("credentials.txt"));
    let err = match ledger_server::start(config).await {
        Ok(_) => panic!("a second server opened the same data dir"),
        Err(e) => e,
    };
    let in_use = err
        .chain()
        .any(|e| matches!(e.downcast_ref::<ledger_store::StoreError>(), Some(ledger_store::StoreError::InUse { .. })));
    assert!(in_use, "{err:#}");
    assert!(format!("{err:#}").contains("in use"), "{err:#}");
    t.stop().await;
}

#[tokio::test]
async fn shutdown_finishes_in_flight_writes_and_they_survive_a_restart() {
    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    let mut tasks = Vec::new();
    for i in 0..24 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.create_secret().name(format!("inflight/{i}")).secret_string("v").send().await.is_ok()
        }));
    }
    // Shut down as soon as the first write is durable, with the others still in flight.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while t.head() == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let t = t.restart().await;
    let mut answered = 0;
    for task in tasks {
        if task.await.unwrap() {
            answered += 1;
        }
    }
    // Every write that was answered 200 is in the reopened ledger, and nothing else is.
    let listed = call(&t, "ListSecrets", json!({})).await["SecretList"].as_array().unwrap().len();
    assert_eq!(listed, answered);
    assert!(answered > 0, "some writes completed before the shutdown");
    t.stop().await;
}

/// A filter without `Key` or without `Values` is `InvalidParameterException`, as on AWS, for
/// ListSecrets and BatchGetSecretValue alike.
#[tokio::test]
async fn filters_without_key_or_values() {
    let t = TestServer::start().await;
    for target in ["secretsmanager.ListSecrets", "secretsmanager.BatchGetSecretValue"] {
        let msg = send(t.addr(), Raw::new(target, json!({"Filters": [{"Values": ["a"]}]}).to_string()))
            .await
            .expect_error("InvalidParameterException");
        assert_eq!(msg, "Invalid filter key", "{target}");
        for filter in [json!({"Key": "name"}), json!({"Key": "name", "Values": []})] {
            let msg = send(t.addr(), Raw::new(target, json!({"Filters": [filter]}).to_string()))
                .await
                .expect_error("InvalidParameterException");
            assert_eq!(msg, "Invalid filter values for key: name", "{target}");
        }
    }
    t.stop().await;
}

/// What the headers alone condemn is answered before the body is read: an unknown key, a stale
/// date or an unsigned target, with a large Content-Length and no body sent at all.
#[tokio::test]
async fn refused_on_the_headers_before_the_body() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let t = TestServer::start().await;
    let stale = SystemTime::now() - Duration::from_secs(3600);
    for (what, key) in [
        ("unknown key", ("AKIAUNKNOWN000000001", "whatever", SystemTime::now())),
        ("stale date", (AKID, SECRET, stale)),
    ] {
        let mut headers = vec![
            ("host".to_string(), t.addr().to_string()),
            ("x-amz-target".to_string(), "secretsmanager.ListSecrets".to_string()),
        ];
        crate::common::sign_headers(&mut headers, b"{}", key, "us-east-1");
        let mut head = String::from("POST / HTTP/1.1\r\ncontent-length: 1000000\r\n");
        for (k, v) in &headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        let mut stream = tokio::net::TcpStream::connect(t.addr()).await.unwrap();
        stream.write_all(head.as_bytes()).await.unwrap();
        // No body: the answer must come anyway.
        let mut answer = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
            .await
            .unwrap_or_else(|_| panic!("{what}: no answer before the body"))
            .unwrap();
        let text = String::from_utf8_lossy(&answer[..n]);
        assert!(text.starts_with("HTTP/1.1 400"), "{what}: {text}");
        let code = if what == "unknown key" { "UnrecognizedClientException" } else { "InvalidSignatureException" };
        assert!(text.contains(code), "{what}: {text}");
    }
    t.stop().await;
}

/// A data dir `serve` creates is its owner's only, whatever the umask.
#[tokio::test]
async fn a_new_data_dir_is_private() {
    use std::os::unix::fs::PermissionsExt;
    let t = TestServer::start().await;
    let mode = std::fs::metadata(t.dir.path().join("data")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o700);
    t.stop().await;
}

/// The tags DescribeSecret shows, as `(key, value)` in its order.
async fn described_tags(t: &TestServer, id: &str) -> Vec<(String, String)> {
    let d = call(t, "DescribeSecret", json!({"SecretId": id})).await;
    let tags = d["Tags"].as_array().cloned().unwrap_or_default();
    tags.iter().map(|t| (t["Key"].as_str().unwrap().to_string(), t["Value"].as_str().unwrap().to_string())).collect()
}

/// A key repeated within one TagResource: the last value wins (the spec: no duplicate keys, an
/// existing key gets the new value), and the quota counts keys, not entries.
#[tokio::test]
async fn tag_resource_with_a_repeated_key_keeps_its_last_value() {
    let t = TestServer::start().await;
    let create = json!({"Name": "tagged", "SecretString": "v", "ClientRequestToken": token(), "Tags": [{"Key": "a", "Value": "1"}]});
    call(&t, "CreateSecret", create).await;
    let tags = json!([
        {"Key": "k", "Value": "first"}, {"Key": "x", "Value": "1"}, {"Key": "k", "Value": "second"},
        {"Key": "a", "Value": "2"}, {"Key": "K", "Value": "other key"}, {"Key": "k", "Value": "last"},
    ]);
    assert_eq!(call(&t, "TagResource", json!({"SecretId": "tagged", "Tags": tags})).await, json!({}));
    let mut got = described_tags(&t, "tagged").await;
    got.sort();
    let want = [("K", "other key"), ("a", "2"), ("k", "last"), ("x", "1")];
    assert_eq!(got, want.map(|(k, v)| (k.to_string(), v.to_string())));

    // 4 keys + 46 new ones, two of them repeated: exactly the 50-tag quota, accepted.
    let mut fill: Vec<Value> = (0..46).map(|i| json!({"Key": format!("f{i}"), "Value": "v"})).collect();
    fill.extend([json!({"Key": "f0", "Value": "again"}), json!({"Key": "f1", "Value": "again"})]);
    call(&t, "TagResource", json!({"SecretId": "tagged", "Tags": fill})).await;
    let got = described_tags(&t, "tagged").await;
    assert_eq!(got.len(), 50);
    assert!(got.contains(&("f0".to_string(), "again".to_string())), "{got:?}");
    // One more key, even sent twice, is over the quota: refused, nothing appended.
    let head = t.head();
    let over = json!({"SecretId": "tagged", "Tags": [{"Key": "n", "Value": "1"}, {"Key": "n", "Value": "2"}]});
    let refused = send(t.addr(), Raw::new("secretsmanager.TagResource", over.to_string())).await;
    let message = refused.expect_error("LimitExceededException");
    assert!(message.contains("quota of 50 tags"), "{message}");
    assert_eq!(t.head(), head);
    t.stop().await;
}

/// About 60,000 tags in one TagResource, all on ten keys (so ten tags once the repeats are
/// folded): refused by their count, before any per-tag work, with the tag-limit error, and
/// nothing is appended.
#[tokio::test]
async fn sixty_thousand_tags_are_refused_by_their_count() {
    // About 1.8 MB of tags: over the default 1 MiB body limit, so this server takes 4 MiB.
    let credentials = format!("{AKID}:{SECRET}\n");
    let t = TestServer::start_configured(&credentials, |c| c.body_bytes_max = 4 << 20).await;
    call(&t, "CreateSecret", json!({"Name": "seed", "SecretString": "v", "ClientRequestToken": token()})).await;
    let head = t.head();
    let tags: Vec<Value> =
        (0..60_000).map(|i| json!({"Key": format!("k{}", i % 10), "Value": format!("v{i}")})).collect();
    let body = json!({"SecretId": "seed", "Tags": tags}).to_string();
    assert!(body.len() > 1 << 20, "{} bytes", body.len());
    let refused = send(t.addr(), Raw::new("secretsmanager.TagResource", body)).await;
    let message = refused.expect_error("LimitExceededException");
    assert_eq!(message, "The secret seed has reached the quota of 50 tags.");
    assert_eq!(t.head(), head, "a refused TagResource appended");
    assert!(described_tags(&t, "seed").await.is_empty());
    t.stop().await;
}

/// The value of the `/metrics` sample line that starts with `prefix`.
fn metric(t: &TestServer, prefix: &str) -> f64 {
    let text = t.server.metrics_text();
    let line = text.lines().find(|l| l.starts_with(prefix)).unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
    line.rsplit(' ').next().unwrap().parse().unwrap()
}

/// Many filtered ListSecrets and BatchGetSecretValue at once: every one is answered in full,
/// while at most the server's filtering slots (2 here) ever filter at once; the rest wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_filtered_listings_all_complete_within_the_filtering_slots() {
    const SECRETS: usize = 400;
    const LISTINGS: usize = 48;
    let credentials = format!("{AKID}:{SECRET}\n");
    let t = TestServer::start_configured(&credentials, |c| c.work.filtering = 2).await;
    for chunk in (0..SECRETS).collect::<Vec<_>>().chunks(50) {
        futures_util::future::join_all(chunk.iter().map(|i| {
            let body = json!({"Name": format!("bulk/{i:03}"), "Description": format!("number {i}"),
                "SecretString": "v", "ClientRequestToken": token()});
            send(t.addr(), Raw::new("secretsmanager.CreateSecret", body.to_string()))
        }))
        .await
        .iter()
        .for_each(|r| assert_eq!(r.status, 200));
    }
    let filters = json!([{"Key": "name", "Values": ["bulk/"]}, {"Key": "description", "Values": ["number 1"]}]);
    let answers = futures_util::future::join_all((0..LISTINGS).map(|i| {
        let (op, body) = if i % 4 == 3 {
            ("secretsmanager.BatchGetSecretValue", json!({"Filters": filters, "MaxResults": 20}))
        } else {
            ("secretsmanager.ListSecrets", json!({"Filters": filters, "MaxResults": 100}))
        };
        send(t.addr(), Raw::new(op, body.to_string()))
    }))
    .await;
    for (i, answer) in answers.iter().enumerate() {
        let json = answer.expect_ok();
        let listed = json.get("SecretList").or_else(|| json.get("SecretValues")).unwrap().as_array().unwrap();
        // "number 1", "number 1x", "number 1xx": 111 secrets, in pages.
        assert_eq!(listed.len(), if i % 4 == 3 { 20 } else { 100 }, "{json}");
        assert!(json["NextToken"].is_string());
    }
    assert_eq!(metric(&t, "secret_ledger_work_slots{work=\"filtering\"}"), 2.0);
    let peak = metric(&t, "secret_ledger_work_slots_peak{work=\"filtering\"}");
    assert!((1.0..=2.0).contains(&peak), "{peak} filterings at once");
    assert!(metric(&t, "secret_ledger_work_waits_total{work=\"filtering\"}") >= 1.0, "no listing ever waited");
    t.stop().await;
}
