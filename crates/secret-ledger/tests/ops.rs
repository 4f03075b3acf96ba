//! The binary's operator-facing paths end to end: `verify` reporting master-key rotations, a
//! master key kept outside the data dir (`serve --master-key-file`, `SECRET_LEDGER_MASTER_KEY_FILE`),
//! and `serve --log-format json` at the most verbose level (every log line JSON, one request line
//! per API request, no value, secret key, signature or master key in the output).

#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command as Process, Output, Stdio};
use std::time::{Duration, SystemTime};

use ledger_core::crypto::MasterKey;
use ledger_core::{Command, CreateSecret, PutSecretValue, Scope, SecretValue};
use ledger_store::{Ledger, LedgerOptions, RequestMeta};
use serde_json::{json, Value};

use common::command;

mod common;

const KEY: [u8; 32] = [0x5a; 32];
const REGION: &str = "us-east-1";

fn bin(args: &[&str], env: &[(&str, &str)]) -> Output {
    command(args, env).output().unwrap()
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}{}", stdout(out), stderr(out)))
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A data dir (master key in it) holding `db/prod` with two values.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("master.key"), hex::encode(KEY)).unwrap();
    let ledger = Ledger::open(dir.path(), MasterKey::from_bytes(1, KEY), LedgerOptions::default()).unwrap();
    let meta = RequestMeta::local(Scope::new(REGION, "000000000000"));
    let create = CreateSecret {
        name: "db/prod".into(),
        client_request_token: Some(format!("{:0>36}", 1)),
        value: Some(SecretValue::string("first-password")),
        ..CreateSecret::default()
    };
    ledger.execute(Command::CreateSecret(create), &meta).unwrap().unwrap();
    let put = PutSecretValue {
        secret_id: "db/prod".into(),
        client_request_token: Some(format!("{:0>36}", 2)),
        value: Some(SecretValue::string("second-password")),
        version_stages: None,
    };
    ledger.execute(Command::PutSecretValue(put), &meta).unwrap().unwrap();
    ledger.close().unwrap();
    dir
}

/// `verify --data-dir D` (text, JSON) and `verify --export` of D: the rotations they report.
fn verify_rotations(d: &str) -> (String, Value) {
    let text = bin(&["verify", "--data-dir", d], &[]);
    assert!(text.status.success(), "{}{}", stdout(&text), stderr(&text));
    let doc = bin(&["verify", "--data-dir", d, "--json"], &[]);
    assert!(doc.status.success(), "{}", stdout(&doc));
    let doc = json(&doc);
    assert_eq!(doc["ok"], true);
    assert!(doc["master_key_rotations"].is_array(), "a verified log always lists its rotations: {doc}");
    (stdout(&text), doc["master_key_rotations"].clone())
}

/// The seq of every `RotateMasterKey` event, from the ledger-wide history.
fn rotation_seqs_in_history(d: &str) -> Vec<u64> {
    let out = bin(&["history", "--data-dir", d, "--operation", "RotateMasterKey", "--json"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    json(&out)["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect()
}

/// Gap 1: `verify` shows the master-key rotations that history and export show.
#[test]
fn verify_reports_master_key_rotations() {
    let dir = data_dir();
    let d = path(dir.path());
    let (text, rotations) = verify_rotations(d);
    assert_eq!(rotations, json!([]));
    assert!(text.starts_with("ok: ") && !text.contains("master key rotated"), "{text}");

    for _ in 0..2 {
        let out = bin(&["rotate-master-key", "--data-dir", d, "--json"], &[]);
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let seqs = rotation_seqs_in_history(d);
    assert_eq!(seqs.len(), 2, "history shows both rotations");
    let (text, rotations) = verify_rotations(d);
    assert_eq!(
        rotations,
        json!([
            {"seq": seqs[0], "from_key_id": 1, "to_key_id": 2},
            {"seq": seqs[1], "from_key_id": 2, "to_key_id": 3},
        ])
    );
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines[0].starts_with("ok: "), "{text}");
    assert_eq!(
        lines[1..],
        [
            format!("master key rotated from key 1 to key 2 at seq {}", seqs[0]),
            format!("master key rotated from key 2 to key 3 at seq {}", seqs[1]),
        ],
        "{text}"
    );

    // The export verifies to the same document, rotations included.
    let work = tempfile::tempdir().unwrap();
    let export = work.path().join("log.jsonl");
    assert!(bin(&["export", "--data-dir", d, "--out", path(&export)], &[]).status.success());
    let out = bin(&["verify", "--export", path(&export), "--json"], &[]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(json(&out)["master_key_rotations"], rotations);
    let out = bin(&["verify", "--export", path(&export)], &[]);
    assert!(stdout(&out).contains(&format!("master key rotated from key 2 to key 3 at seq {}", seqs[1])));
}

/// A `secret-ledger serve` child on a free loopback port; killed if still running when dropped.
struct Server {
    child: Child,
    addr: String,
    stdout: Option<std::thread::JoinHandle<Vec<String>>>,
    stderr: Option<std::thread::JoinHandle<Vec<String>>>,
}

/// Every line `from` gives, sending each to `tx` as it comes.
fn read_lines(
    from: impl Read + Send + 'static,
    tx: std::sync::mpsc::Sender<String>,
) -> std::thread::JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut lines = Vec::new();
        for line in BufReader::new(from).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line.clone());
            lines.push(line);
        }
        lines
    })
}

impl Server {
    /// `serve --listen 127.0.0.1:0 --data-dir DATA ARGS…` with `env`; waits for `listening on`.
    fn start(data: &Path, args: &[&str], env: &[(&str, &str)]) -> Server {
        let base = ["serve", "--listen", "127.0.0.1:0", "--data-dir", path(data)];
        let mut child =
            command(&[&base[..], args].concat(), env).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = read_lines(child.stdout.take().unwrap(), tx);
        let stderr = read_lines(child.stderr.take().unwrap(), std::sync::mpsc::channel().0);
        let mut server = Server { child, addr: String::new(), stdout: Some(stdout), stderr: Some(stderr) };
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        while server.addr.is_empty() {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(endpoint) = line.strip_prefix("listening on http://") {
                        server.addr = endpoint.trim().to_string();
                    }
                }
                Err(e) => {
                    let _ = server.child.kill();
                    let _ = server.child.wait();
                    let err = server.stderr.take().unwrap().join().unwrap();
                    panic!("serve did not start ({e}): {}", err.join("\n"));
                }
            }
        }
        server
    }

    /// SIGTERM; the server must exit 0. Returns its stdout and stderr lines.
    fn stop(mut self) -> (Vec<String>, Vec<String>) {
        // `kill(1)`: the workspace forbids the unsafe a direct libc call needs.
        let pid = self.child.id().to_string();
        assert!(Process::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(std::time::Instant::now() < deadline, "serve did not stop within 60 s of SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        };
        let out = self.stdout.take().unwrap().join().unwrap();
        let err = self.stderr.take().unwrap().join().unwrap();
        assert!(status.success(), "serve exited with {status}: {}", err.join("\n"));
        (out, err)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An HTTP response: status, header lines (lowercase names), body.
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&self.body)))
    }
}

/// A chunked body, decoded.
fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(end) = raw.windows(2).position(|w| w == b"\r\n") {
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        body.extend_from_slice(&raw[end + 2..end + 2 + size]);
        raw = &raw[end + 4 + size..];
    }
    body
}

/// One HTTP/1.1 exchange on a connection of its own (closed after it).
fn http(addr: &str, method: &str, path: &str, headers: &[(String, String)], body: &[u8]) -> Response {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str(&format!("content-length: {}\r\nconnection: close\r\n\r\n", body.len()));
    stream.write_all(request.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.contains("chunked"));
    Response { status, headers, body: if chunked { dechunk(rest) } else { rest.to_vec() } }
}

/// `x-amz-date` and `authorization` for a Secrets Manager request, signed with `key`
/// (access key id, secret access key) as the AWS SDKs sign.
fn sign(key: (&str, &str), headers: &[(String, String)], body: &[u8]) -> Vec<(String, String)> {
    use aws_sigv4::http_request::{sign, SignableBody, SignableRequest, SigningSettings};
    let identity = aws_credential_types::Credentials::new(key.0, key.1, None, None, "ops-test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name("secretsmanager")
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let pairs = headers.iter().map(|(k, v)| (k.as_str(), v.as_str()));
    let signable = SignableRequest::new("POST", "/", pairs, SignableBody::Bytes(body)).unwrap();
    let (instructions, _) = sign(signable, &params).unwrap().into_parts();
    instructions.headers().map(|(n, v)| (n.to_string(), v.to_string())).collect()
}

/// A signed Secrets Manager call. Returns the response and the request's signature (hex).
fn call(addr: &str, key: (&str, &str), operation: &str, input: &Value) -> (Response, String) {
    let body = input.to_string().into_bytes();
    let mut headers = vec![
        ("host".to_string(), addr.to_string()),
        ("content-type".to_string(), "application/x-amz-json-1.1".to_string()),
        ("x-amz-target".to_string(), format!("secretsmanager.{operation}")),
    ];
    headers.extend(sign(key, &headers, &body));
    let authorization = &headers.iter().find(|(n, _)| n == "authorization").unwrap().1;
    let signature = authorization.split("Signature=").nth(1).unwrap().trim().to_string();
    assert_eq!(signature.len(), 64, "{authorization}");
    (http(addr, "POST", "/", &headers, &body), signature)
}

/// The first `ACCESS_KEY_ID:SECRET_ACCESS_KEY` line of a credentials file.
fn first_credentials(file: &Path) -> (String, String) {
    let text = std::fs::read_to_string(file).unwrap();
    let line = text.lines().map(str::trim).find(|l| !l.is_empty() && !l.starts_with('#')).unwrap();
    let (akid, secret) = line.split_once(':').unwrap();
    (akid.to_string(), secret.to_string())
}

/// Gap 2: a master key outside the data dir, named by `--master-key-file` on the first start and
/// by `SECRET_LEDGER_MASTER_KEY_FILE` afterwards (serve, `state --reveal-value`, `history`).
#[test]
fn master_key_file_outside_the_data_dir() {
    use std::os::unix::fs::PermissionsExt;
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir(work.path().join("keys")).unwrap();
    let key_file = work.path().join("keys").join("ledger.key");
    let server = Server::start(&data, &["--master-key-file", path(&key_file)], &[]);
    let mode = std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the generated key file is owner-only");
    let key_text = std::fs::read_to_string(&key_file).unwrap();
    assert!(key_text.trim().len() == 64 && hex::decode(key_text.trim()).is_ok(), "{key_text:?}");
    assert!(!data.join("master.key").exists(), "no master key in the data dir");
    let (akid, secret) = first_credentials(&data.join("credentials"));
    let key = (akid.as_str(), secret.as_str());
    let input = json!({
        "Name": "app/outside",
        "SecretString": "kept-under-an-outside-key",
        "ClientRequestToken": "00000000-0000-4000-8000-000000000001",
    });
    let (created, _) = call(&server.addr, key, "CreateSecret", &input);
    assert_eq!(created.status, 200, "{}", String::from_utf8_lossy(&created.body));
    let (_, err) = server.stop();
    assert!(err.iter().any(|l| l.contains(&format!("created master key {}", key_file.display()))), "{err:?}");

    // Restarted with the environment variable instead of the flag: the same key opens the value.
    let env = [("SECRET_LEDGER_MASTER_KEY_FILE", path(&key_file))];
    let server = Server::start(&data, &[], &env);
    let (read, _) = call(&server.addr, key, "GetSecretValue", &json!({"SecretId": "app/outside"}));
    assert_eq!(read.status, 200, "{}", String::from_utf8_lossy(&read.body));
    assert_eq!(read.json()["SecretString"], "kept-under-an-outside-key");
    let (_, err) = server.stop();
    assert!(!err.iter().any(|l| l.contains("created master key")), "{err:?}");
    assert!(!data.join("master.key").exists(), "the restart generated no key in the data dir");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key_text, "the key file is unchanged");

    // Offline, with the environment variable: the value opens, the history reads.
    let d = path(&data);
    let reveal = ["state", "--data-dir", d, "--as-of", "999", "--secret-id", "app/outside", "--region", REGION];
    let reveal = [&reveal[..], &["--label", "AWSCURRENT", "--reveal-value", "--json"]].concat();
    let out = bin(&reveal, &env);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["label"]["value"]["SecretString"], "kept-under-an-outside-key");
    let out = bin(&["history", "--data-dir", d, "--secret-id", "app/outside", "--region", REGION, "--json"], &env);
    assert!(out.status.success(), "{}", stderr(&out));
    let events = json(&out)["secrets"][0]["events"].as_array().unwrap().clone();
    assert!(events.iter().any(|e| e["operation"] == "CreateSecret"), "{events:?}");
    // Without it the data dir holds no key to open the value with: a clear error, exit 2.
    let out = bin(&reveal, &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("master"), "{}", stderr(&out));
    assert!(!stdout(&out).contains("kept-under-an-outside-key"));
}

/// The top-level keys of a JSON object in order, duplicates kept (`serde_json::Value` keeps only
/// the last of a duplicated key, which hides a field that a log pipeline may then read wrongly).
struct Keys(Vec<String>);

impl<'de> serde::Deserialize<'de> for Keys {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Keys, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Keys;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some((key, _)) = map.next_entry::<String, serde::de::IgnoredAny>()? {
                    keys.push(key);
                }
                Ok(Keys(keys))
            }
        }
        deserializer.deserialize_map(Visit)
    }
}

/// The JSON log lines of a server's output; every line but `listening on` must be one object,
/// each key once.
fn log_lines(out: &[String], err: &[String]) -> Vec<Value> {
    let mut logs = Vec::new();
    for line in out.iter().chain(err).filter(|l| !l.trim().is_empty()) {
        if line.starts_with("listening on ") {
            continue;
        }
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
        let Keys(keys) = serde_json::from_str(line).unwrap();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        // An event field named `target` collides with the line's own `target` (JSON lines are
        // flattened): name it otherwise, e.g. `operation = target`.
        assert_eq!(unique.len(), keys.len(), "a log line with a duplicated key: {line}");
        for field in ["timestamp", "level", "target"] {
            assert!(value[field].is_string(), "a log line without {field}: {line}");
        }
        logs.push(value);
    }
    logs
}

/// A signed request made: its request id, operation, expected outcome and status.
type Made = (String, &'static str, &'static str, u16);

/// The requests of the log test, made against `addr`: returns each signed request made and
/// every signature sent.
fn log_test_requests(addr: &str, key: (&str, &str)) -> (Vec<Made>, Vec<String>) {
    let create = json!({
        "Name": "ops/logged",
        "SecretString": "VALUE-must-not-be-logged-8c1e",
        "ClientRequestToken": "00000000-0000-4000-8000-000000000002",
    });
    let read = json!({"SecretId": "ops/logged"});
    let requests = [
        (key, "CreateSecret", &create, "ok", 200),
        (key, "GetSecretValue", &read, "ok", 200),
        ((key.0, "not-the-secret-access-key"), "GetSecretValue", &read, "InvalidSignatureException", 400),
        (key, "GetSecretValue", &json!({"SecretId": "ops/missing"}), "ResourceNotFoundException", 400),
    ];
    let (mut expected, mut signatures) = (Vec::new(), Vec::new());
    for (key, operation, input, outcome, status) in requests {
        let (response, signature) = call(addr, key, operation, input);
        assert_eq!(response.status, status, "{operation}: {}", String::from_utf8_lossy(&response.body));
        if outcome == "ok" && operation == "GetSecretValue" {
            assert_eq!(response.json()["SecretString"], create["SecretString"]);
        }
        let request_id = response.header("x-amzn-requestid").unwrap().to_string();
        expected.push((request_id, operation, outcome, status));
        signatures.push(signature);
    }
    let health = http(addr, "GET", "/health", &[("host".into(), addr.into())], b"");
    assert_eq!((health.status, &health.json()["status"]), (200, &json!("ok")));
    let metrics = http(addr, "GET", "/metrics", &[("host".into(), addr.into())], b"");
    assert_eq!(metrics.status, 200, "{}", String::from_utf8_lossy(&metrics.body));
    (expected, signatures)
}

/// Gap 3: `serve --log-format json` at trace level: every log line is JSON, each API request
/// has one `request` line with its fields, and nothing secret is in the output.
#[test]
fn json_logs_end_to_end() {
    const AKID: &str = "AKIAOPSLOGTEST000001";
    const SECRET_KEY: &str = "ops/SECRET+access+key+9d2f";
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    // Keys given, so no "created …" notice (plain text, not a log line) is printed.
    let key_file = work.path().join("master.key");
    std::fs::write(&key_file, hex::encode(KEY)).unwrap();
    let credentials = work.path().join("credentials");
    std::fs::write(&credentials, format!("{AKID}:{SECRET_KEY}\n")).unwrap();
    let args = ["--log-format", "json", "--master-key-file", path(&key_file), "--credentials", path(&credentials)];
    let server = Server::start(&data, &args, &[("SECRET_LEDGER_LOG", "trace")]);
    let (expected, signatures) = log_test_requests(&server.addr, (AKID, SECRET_KEY));
    let (out, err) = server.stop();
    assert_eq!(out.len(), 1, "stdout holds the listening line only: {out:?}");

    let logs = log_lines(&out, &err);
    // The most verbose level is on: the debug line of a refused request is there.
    assert!(logs.iter().any(|l| l["level"] == "DEBUG" && l["message"] == "refused"), "{err:#?}");
    let requests: Vec<&Value> = logs.iter().filter(|l| l["target"] == "request").collect();
    // One line per signed API request; `/health` and `/metrics` answer before the request log.
    assert_eq!(requests.len(), expected.len(), "{requests:#?}");
    for (request_id, operation, outcome, status) in &expected {
        let line = requests.iter().find(|l| l["request_id"] == request_id.as_str());
        let line = line.unwrap_or_else(|| panic!("no request line for {request_id}: {requests:#?}"));
        assert_eq!(line["operation"], format!("secretsmanager.{operation}"), "{line}");
        assert_eq!((&line["outcome"], &line["status"]), (&json!(outcome), &json!(status)), "{line}");
        assert_eq!(line["access_key_id"], AKID, "{line}");
        assert!(line["latency_us"].is_u64(), "{line}");
    }
    let security: Vec<&Value> = logs.iter().filter(|l| l["target"] == "security").collect();
    assert_eq!(security.len(), 1, "{security:#?}");
    assert_eq!((&security[0]["request_id"], &security[0]["access_key_id"]), (&json!(expected[2].0), &json!(AKID)));

    let everything = [out, err].concat().join("\n");
    let mut secrets = vec!["VALUE-must-not-be-logged-8c1e".to_string(), SECRET_KEY.to_string(), hex::encode(KEY)];
    secrets.extend(signatures);
    for secret in &secrets {
        assert!(!everything.contains(secret.as_str()), "{secret} is in the server's output");
        assert!(!everything.to_ascii_lowercase().contains(&secret.to_ascii_lowercase()), "{secret} (any case)");
    }
}

/// With JSON logs, the first start's notices about the files it created are JSON log lines
/// too, so a pipeline that reads stderr as JSON is not broken by them.
#[test]
fn first_start_notices_are_json_lines_with_json_logs() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let server = Server::start(&data, &["--log-format", "json"], &[]);
    let (_, err) = server.stop();
    let mut notices = Vec::new();
    for line in err.iter().filter(|l| !l.trim().is_empty()) {
        let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        if let Some(message) = value["message"].as_str().filter(|m| m.starts_with("created ")) {
            notices.push(message.to_string());
        }
    }
    assert_eq!(notices.len(), 2, "{err:#?}");
    assert!(notices.iter().any(|m| m.starts_with("created master key") && m.contains("back it up")), "{notices:?}");
    assert!(notices.iter().any(|m| m.starts_with("created credentials")), "{notices:?}");
    // Without --lambda-endpoint, serve says at start that rotation functions will not run.
    assert!(err.iter().any(|l| l.contains("rotation functions will not be invoked")), "{err:#?}");
}

/// A master key given in place of its file's path (`HEX` or `ID:HEX`) is never echoed by the
/// error that refuses it.
#[test]
fn a_master_key_given_as_a_path_is_not_echoed() {
    let dir = data_dir();
    let d = path(dir.path());
    let key = hex::encode(KEY);
    for given in [key.clone(), format!("2:{key}")] {
        let out = bin(
            &[
                "state",
                "--data-dir",
                d,
                "--as-of",
                "999",
                "--secret-id",
                "db/prod",
                "--label",
                "AWSCURRENT",
                "--region",
                REGION,
                "--reveal-value",
            ],
            &[("SECRET_LEDGER_MASTER_KEY_FILE", given.as_str())],
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let said = format!("{}{}", stdout(&out), stderr(&out));
        assert!(!said.contains(&key), "{said}");
        assert!(said.contains("a key given in place of a file path"), "{said}");
    }
}
