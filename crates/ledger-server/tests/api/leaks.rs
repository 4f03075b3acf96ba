//! No secret leaks: a whole workload with distinctive canary values (strings, binary, a random
//! password), then no canary may appear in the logs (every `tracing` event at TRACE, from every
//! thread), in any error body, in the `Debug` output of the domain values, or in a panic message.
//!
//! A test binary of its own (`[[test]] name = "leaks"`): the subscriber is installed with
//! `set_global_default` and the panic hook with `std::panic::set_hook`, both process-wide, so
//! they see the server's tokio workers, its blocking threads and the ledger's writer thread,
//! and would catch other tests' output (or panics) if they shared the binary. `set_default`
//! would only cover the test's own thread.

// Helpers outside `#[test]` functions unwrap too: a failure there is a failed test.
#![allow(clippy::unwrap_used)]

#[allow(dead_code)]
mod common;

use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use aws_sdk_secretsmanager::error::ProvideErrorMetadata;
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType, Tag};
use base64::Engine;
use ledger_core::crypto::{DataKey, MasterKey};
use ledger_core::query::GetSecretValue;
use ledger_core::{Command, PutSecretValue, Scope, SecretValue};
use serde_json::json;
use tracing_subscriber::fmt::MakeWriter;

use common::{send, token, Raw, RawResponse, TestServer, AKID, SECRET};

/// The captured log: every formatted event.
#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buffer {
    type Writer = Buffer;

    fn make_writer(&'a self) -> Buffer {
        self.clone()
    }
}

/// A distinctive value and the shapes it could take in a log or a message.
struct Canary {
    what: String,
    forms: Vec<Vec<u8>>,
}

impl Canary {
    fn new(what: &str, bytes: &[u8], fragments: &[&[u8]]) -> Canary {
        let b64 = base64::engine::general_purpose::STANDARD;
        let url = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let debug = format!("{bytes:?}");
        let mut forms = vec![
            bytes.to_vec(),
            b64.encode(bytes).into_bytes(),
            url.encode(bytes).into_bytes(),
            hex::encode(bytes).into_bytes(),
            hex::encode_upper(bytes).into_bytes(),
            debug.trim_matches(|c| c == '[' || c == ']').as_bytes().to_vec(),
            String::from_utf8_lossy(bytes).escape_debug().to_string().into_bytes(),
        ];
        forms.extend(fragments.iter().map(|f| f.to_vec()));
        Canary { what: what.to_string(), forms }
    }

    fn text(what: &str, text: &str) -> Canary {
        // The unique part alone too, in case a message truncates or re-quotes the value.
        let unique = text.rsplit('-').next().unwrap_or(text);
        Canary::new(what, text.as_bytes(), &[unique.as_bytes()])
    }

    fn found_in(&self, haystack: &[u8]) -> bool {
        self.forms.iter().any(|f| !f.is_empty() && haystack.windows(f.len()).any(|w| w == f.as_slice()))
    }
}

fn assert_clean(canaries: &[Canary], haystack: &[u8], place: &str) {
    for c in canaries {
        assert!(!c.found_in(haystack), "{} leaked into {place}: {}", c.what, String::from_utf8_lossy(haystack));
    }
}

fn string_canary() -> String {
    format!("LEAK-CANARY-{}", uuid::Uuid::new_v4().simple())
}

fn binary_canary() -> (Vec<u8>, String) {
    let unique = uuid::Uuid::new_v4();
    let mut bytes = vec![0x00, 0xff, 0xfe, 0x80];
    bytes.extend_from_slice(unique.as_bytes());
    bytes.extend_from_slice(format!("BIN-CANARY-{}", unique.simple()).as_bytes());
    bytes.push(0xc3);
    (bytes, unique.simple().to_string())
}

/// Held by each test for its whole run: the panic hook one installs is process-wide, and would
/// count the other's panics as its own.
static ALONE: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The process's log, captured: every event twice, as `serve --log-format text` writes it and as
/// `--log-format json` does. Installed once, for every test of this binary.
fn captured() -> &'static (Buffer, Buffer) {
    static LOGS: OnceLock<(Buffer, Buffer)> = OnceLock::new();
    LOGS.get_or_init(|| {
        use tracing_subscriber::layer::SubscriberExt;
        let (logs, json_logs) = (Buffer::default(), Buffer::default());
        let subscriber = tracing_subscriber::registry()
            .with(tracing_subscriber::fmt::layer().with_writer(logs.clone()).with_thread_names(true))
            .with(tracing_subscriber::fmt::layer().json().flatten_event(true).with_writer(json_logs.clone()));
        tracing::subscriber::set_global_default(subscriber).unwrap();
        (logs, json_logs)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_value_reaches_logs_errors_debug_or_panics() {
    let _alone = ALONE.lock().await;
    let (logs, json_logs) = captured().clone();
    let panics: Arc<Mutex<Vec<String>>> = Arc::default();
    let seen = panics.clone();
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        // Recorded for the check below, and printed, so a failing assertion still says why.
        eprintln!("panic: {info}");
        seen.lock().unwrap_or_else(|e| e.into_inner()).push(info.to_string());
    }));

    let t = TestServer::start().await;
    let c = t.client("us-east-1");
    let (s1, s2, s3, s4, s5, s6) =
        (string_canary(), string_canary(), string_canary(), string_canary(), string_canary(), string_canary());
    let (b1, b1_unique) = binary_canary();
    let (b2, b2_unique) = binary_canary();
    let mut canaries = vec![
        Canary::text("s1 (CreateSecret)", &s1),
        Canary::text("s2 (PutSecretValue)", &s2),
        Canary::text("s3 (UpdateSecret)", &s3),
        Canary::text("s4 (token reuse)", &s4),
        Canary::text("s5 (oversize)", &s5),
        Canary::text("s6 (bad bodies)", &s6),
        Canary::new("b1 (binary CreateSecret)", &b1, &[b1_unique.as_bytes()]),
        Canary::new("b2 (binary PutSecretValue)", &b2, &[b2_unique.as_bytes()]),
    ];
    let mut error_bodies: Vec<(String, RawResponse)> = Vec::new();

    // The workload, through the SDK.
    let (v1, v2, v3) = (token(), token(), token());
    let created = c.create_secret().name("leak/str").client_request_token(&v1).secret_string(&s1).send().await.unwrap();
    let arn = created.arn().unwrap().to_string();
    c.create_secret().name("leak/bin").secret_binary(Blob::new(b1.clone())).send().await.unwrap();
    c.put_secret_value()
        .secret_id("leak/str")
        .client_request_token(&v2)
        .secret_string(&s2)
        .version_stages("AWSPENDING")
        .send()
        .await
        .unwrap();
    c.put_secret_value().secret_id("leak/bin").secret_binary(Blob::new(b2.clone())).send().await.unwrap();
    assert_eq!(c.get_secret_value().secret_id("leak/str").send().await.unwrap().secret_string(), Some(s1.as_str()));
    let pending = c.get_secret_value().secret_id(&arn).version_stage("AWSPENDING").send().await.unwrap();
    assert_eq!(pending.secret_string(), Some(s2.as_str()));
    let bin = c.get_secret_value().secret_id("leak/bin").send().await.unwrap();
    assert_eq!(bin.secret_binary().map(|b| b.as_ref().to_vec()), Some(b2.clone()));
    let batch = c
        .batch_get_secret_value()
        .secret_id_list("leak/str")
        .secret_id_list("leak/bin")
        .secret_id_list("leak/missing")
        .send()
        .await
        .unwrap();
    assert_eq!((batch.secret_values().len(), batch.errors().len()), (2, 1));
    let by_name = Filter::builder().key(FilterNameStringType::Name).values("leak/").build();
    assert_eq!(c.batch_get_secret_value().filters(by_name).send().await.unwrap().secret_values().len(), 2);
    c.update_secret().secret_id("leak/str").client_request_token(&v3).secret_string(&s3).send().await.unwrap();
    c.update_secret_version_stage()
        .secret_id("leak/str")
        .version_stage("AWSCURRENT")
        .move_to_version_id(&v2)
        .remove_from_version_id(&v3)
        .send()
        .await
        .unwrap();
    c.update_secret_version_stage()
        .secret_id("leak/str")
        .version_stage("AWSPENDING")
        .remove_from_version_id(&v2)
        .send()
        .await
        .unwrap();
    c.tag_resource().secret_id("leak/str").tags(Tag::builder().key("k").value("v").build()).send().await.unwrap();
    c.untag_resource().secret_id("leak/str").tag_keys("k").send().await.unwrap();
    assert_eq!(c.list_secrets().send().await.unwrap().secret_list().len(), 2);
    c.list_secret_version_ids().secret_id("leak/str").include_deprecated(true).send().await.unwrap();
    c.describe_secret().secret_id("leak/bin").send().await.unwrap();
    let password = c.get_random_password().password_length(40).send().await.unwrap();
    let password = password.random_password().unwrap().to_string();
    canaries.push(Canary::new("random password", password.as_bytes(), &[]));
    c.delete_secret().secret_id("leak/bin").send().await.unwrap();
    c.restore_secret().secret_id("leak/bin").send().await.unwrap();
    c.delete_secret().secret_id("leak/bin").force_delete_without_recovery(true).send().await.unwrap();

    // Failing requests, raw, so the exact error bodies are kept.
    let put = "secretsmanager.PutSecretValue";
    let reuse = json!({"SecretId": "leak/str", "ClientRequestToken": v2, "SecretString": s4}).to_string();
    error_bodies.push(("token reuse".into(), send(t.addr(), Raw::new(put, reuse)).await));
    let oversize = s5.repeat(65_536 / s5.len() + 1);
    let body = json!({"SecretId": "leak/str", "SecretString": oversize}).to_string();
    error_bodies.push(("oversize string".into(), send(t.addr(), Raw::new(put, body)).await));
    let body = json!({"SecretId": "leak/str", "SecretBinary": base64::engine::general_purpose::STANDARD.encode(
        [b1.as_slice(); 2000].concat()
    )})
    .to_string();
    error_bodies.push(("oversize binary".into(), send(t.addr(), Raw::new(put, body)).await));
    let bad_bodies: Vec<(&str, Vec<u8>)> = vec![
        ("truncated JSON", format!(r#"{{"SecretId":"leak/str","SecretString":"{s6}""#).into_bytes()),
        ("trailing comma", format!(r#"{{"SecretId":"leak/str","SecretString":"{s6}",}}"#).into_bytes()),
        ("unquoted value", format!(r#"{{"SecretId":"leak/str","SecretString":{s6}}}"#).into_bytes()),
        ("wrong type", format!(r#"{{"SecretId":"leak/str","SecretString":["{s6}"]}}"#).into_bytes()),
        (
            "both values",
            format!(r#"{{"SecretId":"leak/str","SecretString":"{s6}","SecretBinary":"AAAA"}}"#).into_bytes(),
        ),
        ("bad base64", format!(r#"{{"SecretId":"leak/str","SecretBinary":"{s6}!"}}"#).into_bytes()),
        ("not an object", format!(r#"["{s6}"]"#).into_bytes()),
        ("missing id", format!(r#"{{"SecretString":"{s6}"}}"#).into_bytes()),
        ("unknown id", format!(r#"{{"SecretId":"leak/none","SecretString":"{s6}"}}"#).into_bytes()),
        (
            "bad token",
            format!(r#"{{"SecretId":"leak/str","ClientRequestToken":"x","SecretString":"{s6}"}}"#).into_bytes(),
        ),
        ("bad stages", format!(r#"{{"SecretId":"leak/str","VersionStages":[],"SecretString":"{s6}"}}"#).into_bytes()),
        (
            "invalid UTF-8",
            [format!(r#"{{"SecretId":"leak/str","SecretString":"{s6}"#).as_bytes(), b"\xff\xfe\"}"].concat(),
        ),
        ("over the body limit", format!(r#"{{"SecretString":"{}"}}"#, s6.repeat(30_000)).into_bytes()),
    ];
    for (what, body) in bad_bodies {
        error_bodies.push((what.into(), send(t.addr(), Raw::new(put, body.clone())).await));
        let create = format!(r#"{{"Name":"leak/new","SecretString":"{s6}","Tags":"{s6}"}}"#);
        error_bodies
            .push((format!("{what} (create)"), send(t.addr(), Raw::new("secretsmanager.CreateSecret", create)).await));
        let mut unsigned = Raw::new(put, body.clone());
        unsigned.sign_with = None;
        error_bodies.push((format!("{what} (unsigned)"), send(t.addr(), unsigned).await));
        let mut wrong_key = Raw::new(put, body.clone());
        wrong_key.sign_with = Some((AKID, "not-the-key", SystemTime::now()));
        error_bodies.push((format!("{what} (bad signature)"), send(t.addr(), wrong_key).await));
        error_bodies
            .push((format!("{what} (unknown target)"), send(t.addr(), Raw::new("secretsmanager.Nope", body)).await));
    }
    // The SDK's own error for a reused token carries nothing either.
    let reused = c.put_secret_value().secret_id("leak/str").client_request_token(&v1).secret_string(&s4).send().await;
    let err = reused.expect_err("a reused token with another value is refused");
    assert_clean(&canaries, err.message().unwrap_or("").as_bytes(), "the SDK error message");

    // The ledger's domain values print no plaintext and no key.
    let scope = Scope::new("us-east-1", "000000000000");
    let q = GetSecretValue { secret_id: "leak/str".into(), version_id: Some(v1.clone()), version_stage: None };
    let out = t.server.ledger().get_secret_value(&scope, &q).unwrap().unwrap();
    assert_eq!(out.value.as_bytes(), s1.as_bytes());
    let master_bytes = *b"MASTER-KEY-CANARY-0123456789abcd";
    let data_bytes = *b"DATA-KEY-CANARY-0123456789abcdef";
    let key_canaries = [Canary::new("master key", &master_bytes, &[]), Canary::new("data key", &data_bytes, &[])];
    let debug = [
        format!("{:?}", SecretValue::string(s1.clone())),
        format!("{:?}", SecretValue::binary(b1.clone())),
        format!(
            "{:?}",
            Command::PutSecretValue(PutSecretValue {
                secret_id: "leak/str".into(),
                client_request_token: Some(v2.clone()),
                value: Some(SecretValue::string(s2.clone())),
                version_stages: None,
            })
        ),
        format!("{out:?}"),
        format!("{:?}", ledger_server::wire::Input::parse(format!(r#"{{"SecretString":"{s6}"}}"#).as_bytes())),
        format!("{:?}", MasterKey::from_bytes(7, master_bytes)),
        format!("{:?}", DataKey::from_bytes(data_bytes)),
    ];
    for text in &debug {
        assert_clean(&canaries, text.as_bytes(), "a Debug output");
        assert_clean(&key_canaries, text.as_bytes(), "a Debug output");
    }
    assert!(debug[3].contains("leak/str"), "the Debug of SecretValueOut still shows its location: {}", debug[3]);

    // Positive control: the detector finds a canary where it is.
    let current = send(t.addr(), Raw::new("secretsmanager.GetSecretValue", r#"{"SecretId":"leak/str"}"#)).await;
    assert!(canaries[1].found_in(&current.body), "{}", String::from_utf8_lossy(&current.body));
    assert!(canaries[6].found_in(format!("{b1:?}").as_bytes()));

    t.stop().await;

    // Every failing request failed, and said nothing of the values.
    assert!(error_bodies.len() > 60);
    for (what, response) in &error_bodies {
        assert!(response.status >= 400, "{what}: {} {}", response.status, String::from_utf8_lossy(&response.body));
        assert_clean(&canaries, &response.body, &format!("the error body of '{what}'"));
        for (name, value) in &response.headers {
            assert_clean(&canaries, value.as_bytes(), &format!("the {name} header of '{what}'"));
        }
    }
    std::panic::set_hook(previous_hook);
    // Positive control for the logs: an event at TRACE from another thread is captured.
    let control = string_canary();
    let logged = control.clone();
    std::thread::spawn(move || tracing::trace!(target: "leaks_control", "{logged}")).join().unwrap();
    let logs = logs.0.lock().unwrap().clone();
    assert!(Canary::text("control", &control).found_in(&logs), "the subscriber missed a TRACE event");
    assert!(String::from_utf8_lossy(&logs).contains("ledger_server::http"), "the subscriber captured no server event");
    assert_clean(&canaries, &logs, "the logs");
    // Unauthenticated refusals are logged as security lines: who claimed to be whom, from where,
    // why; never the signature or the secret key tried.
    let text = String::from_utf8_lossy(&logs);
    let line = text
        .lines()
        .find(|l| l.contains("unauthenticated request refused") && l.contains("InvalidSignatureException"))
        .unwrap_or_else(|| panic!("no security line for a bad signature"));
    assert!(line.contains(&format!("access_key_id=\"{AKID}\"")) && line.contains("peer=\"127.0.0.1:"), "{line}");
    assert!(
        text.contains("reason=\"MissingAuthenticationTokenException\"")
            || text.contains("reason=MissingAuthenticationTokenException"),
        "no line for an unsigned request"
    );
    assert!(!text.contains("Signature=") && !text.contains("not-the-key"), "a signature or a tried key in the logs");
    // The JSON lines: each one an object, no canary, no signature, and one `request` line per
    // request with what an operator needs.
    let json_logs = json_logs.0.lock().unwrap().clone();
    assert!(Canary::text("control", &control).found_in(&json_logs), "the JSON layer missed a TRACE event");
    assert_clean(&canaries, &json_logs, "the JSON logs");
    let json_text = String::from_utf8_lossy(&json_logs);
    assert!(!json_text.contains("Signature=") && !json_text.contains("not-the-key"), "a signature in the JSON logs");
    let lines: Vec<serde_json::Value> = json_text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}")))
        .collect();
    let requests: Vec<_> = lines.iter().filter(|l| l["target"] == "request").collect();
    assert!(requests.len() > 20, "{} request lines", requests.len());
    for r in &requests {
        for field in ["request_id", "operation", "outcome", "status", "latency_us", "access_key_id"] {
            assert!(!r[field].is_null(), "request line without {field}: {r}");
        }
    }
    assert!(requests.iter().any(|r| r["operation"] == "secretsmanager.GetSecretValue"
        && r["outcome"] == "ok"
        && r["access_key_id"] == AKID));
    assert!(requests.iter().any(|r| r["outcome"] == "InvalidSignatureException" && r["status"] == 400));
    let panics = panics.lock().unwrap();
    assert!(panics.is_empty(), "panics during the workload: {panics:?}");
}

/// A refused SecretId (or Name) is logged (`access denied`, at warn) quoted and escaped: a line
/// break and other control characters in it cannot forge a second log line or reach a terminal
/// raw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denied_secret_id_is_logged_escaped() {
    let _alone = ALONE.lock().await;
    let (logs, json_logs) = captured().clone();
    const READ_ONLY: &str = "AKIATESTLEAKREADONLY";
    const SCOPED: &str = "AKIATESTLEAKSCOPED01";
    let credentials = format!("{AKID}:{SECRET}\n{READ_ONLY}:ro-secret:ro\n{SCOPED}:scoped-secret:prefix=app/\n");
    let t = TestServer::start_with_credentials(&credentials).await;
    let forged = "2031-01-01T00:00:00.000000Z  INFO forged-by-secret-id: access granted";
    let id = format!("other/x\n{forged}\r\u{1b}[2K\u{7}\u{0}\u{85}end");
    // A write by a read-only key, and a name out of a scoped key's prefix: both refused on the
    // id as given, before anything checks its spelling.
    for (key, op, body) in [
        ((READ_ONLY, "ro-secret"), "DeleteSecret", json!({ "SecretId": id })),
        (
            (SCOPED, "scoped-secret"),
            "CreateSecret",
            json!({ "Name": id, "SecretString": "v", "ClientRequestToken": token() }),
        ),
    ] {
        let target = format!("secretsmanager.{op}");
        let mut raw = Raw::new(&target, body.to_string());
        raw.sign_with = Some((key.0, key.1, SystemTime::now()));
        send(t.addr(), raw).await.expect_error("AccessDeniedException");
    }
    t.stop().await;
    let text = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    let denied: Vec<&str> = text.lines().filter(|l| l.contains("forged-by-secret-id")).collect();
    assert_eq!(denied.len(), 2, "{text}");
    for line in denied {
        // One line per refusal, the id on it escaped: `\n`, `\r`, `\u{1b}`, … as text.
        assert!(line.contains("access denied"), "a line forged by the id: {line}");
        assert!(line.contains(&format!("other/x\\n{forged}\\r\\u{{1b}}[2K\\u{{7}}\\0\\u{{85}}end\"")), "{line}");
        assert!(!line.chars().any(char::is_control), "a raw control character: {line:?}");
    }
    let json_text = String::from_utf8(json_logs.0.lock().unwrap().clone()).unwrap();
    let denied: Vec<serde_json::Value> = json_text
        .lines()
        .filter(|l| l.contains("forged-by-secret-id"))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("a forged or broken JSON line ({e}): {l}")))
        .collect();
    assert_eq!(denied.len(), 2, "{json_text}");
    for line in &denied {
        assert!(line["message"] == "access denied" && [READ_ONLY, SCOPED].contains(&line["actor"].as_str().unwrap()));
    }
}
