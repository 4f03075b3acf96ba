//! The binary's audit commands against a data dir written through the library: exit codes,
//! JSON output, export and offline verify, checkpoints (signed), proofs, tampering.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command as Process, Output};

use ledger_core::crypto::MasterKey;
use ledger_core::{Command, CreateSecret, PutSecretValue, Scope, SecretValue, UpdateSecretVersionStage};
use ledger_store::{Ledger, LedgerOptions, RequestMeta};

const KEY: [u8; 32] = [0x24; 32];

mod common;

fn bin(args: &[&str]) -> Output {
    common::command(args, &[]).output().unwrap()
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&out.stdout)))
}

fn token(n: u32) -> String {
    format!("{n:0>36}")
}

/// A data dir with a rotation of `db/prod` and a master key file.
fn data_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("master.key"), hex::encode(KEY)).unwrap();
    let ledger = Ledger::open(dir.path(), MasterKey::from_bytes(1, KEY), LedgerOptions::default()).unwrap();
    // One request id per request, as a server gives.
    let run = |cmd| ledger.execute(cmd, &RequestMeta::local(Scope::new("us-east-1", "000000000000"))).unwrap().unwrap();
    run(Command::CreateSecret(CreateSecret {
        name: "db/prod".into(),
        client_request_token: Some(token(1)),
        value: Some(SecretValue::string("first-password")),
        ..CreateSecret::default()
    }));
    std::thread::sleep(std::time::Duration::from_millis(20));
    run(Command::PutSecretValue(PutSecretValue {
        secret_id: "db/prod".into(),
        client_request_token: Some(token(2)),
        value: Some(SecretValue::string("second-password")),
        version_stages: Some(vec!["AWSPENDING".into()]),
    }));
    run(Command::UpdateSecretVersionStage(UpdateSecretVersionStage {
        secret_id: "db/prod".into(),
        version_stage: "AWSCURRENT".into(),
        move_to_version_id: Some(token(2)),
        remove_from_version_id: Some(token(1)),
    }));
    ledger.close().unwrap();
    dir
}

fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn verify_history_state_and_exit_codes() {
    let dir = data_dir();
    let d = path(dir.path());
    let out = bin(&["verify", "--data-dir", d, "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report = json(&out);
    assert_eq!(report["ok"], true);
    let events = report["events"].as_u64().unwrap();
    assert!(events >= 6);

    let html = dir.path().join("history.html");
    let out = bin(&["history", "--data-dir", d, "--secret-id", "db/prod", "--json", "--html", path(&html)]);
    assert!(out.status.success());
    let history = json(&out);
    let changes: Vec<&str> =
        history["secrets"][0]["events"].as_array().unwrap().iter().map(|e| e["change"].as_str().unwrap()).collect();
    assert!(changes.contains(&format!("AWSCURRENT: {} → {}", token(1), token(2)).as_str()), "{changes:?}");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("AWSCURRENT") && !page.contains("http://") && !page.contains("https://"));
    assert!(!page.contains("first-password") && !String::from_utf8_lossy(&out.stdout).contains("password\""));

    // Which value was AWSCURRENT before the rotation, and after; the value only on request.
    let label = ["--secret-id", "db/prod", "--label", "AWSCURRENT"];
    let out = bin(&[&["state", "--data-dir", d, "--as-of", "3", "--json"], &label[..]].concat());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let state = json(&out);
    assert_eq!(state["label"]["version_id"], token(1));
    assert!(state["label"]["value"].is_null(), "no value without --reveal-value");
    let out = bin(&[&["state", "--data-dir", d, "--as-of", "3", "--json", "--reveal-value"], &label[..]].concat());
    assert_eq!(json(&out)["label"]["value"]["SecretString"], "first-password");
    // Text: the holder in words; the value as text, only when revealed.
    let text =
        String::from_utf8(bin(&[&["state", "--data-dir", d, "--as-of", "3"], &label[..]].concat()).stdout).unwrap();
    assert!(
        text.contains(&format!("AWSCURRENT was on version {}", token(1))) && !text.contains("first-password"),
        "{text}"
    );
    let out = bin(&[&["state", "--data-dir", d, "--as-of", "3", "--reveal-value"], &label[..]].concat());
    assert!(String::from_utf8(out.stdout).unwrap().contains("\nvalue: first-password\n"));
    // A seq inside a request shows the state after it, and says so; --exact keeps it.
    let out = bin(&["state", "--data-dir", d, "--as-of", "2", "--json"]);
    let inside = json(&out);
    assert_eq!((inside["as_of_seq"].as_u64(), inside["requested_seq"].as_u64()), (Some(3), Some(2)));
    assert!(inside["note"].as_str().unwrap().contains("inside one request (seqs 1 to 3)"), "{inside}");
    let out = bin(&["state", "--data-dir", d, "--as-of", "2", "--exact", "--json"]);
    assert_eq!(json(&out)["as_of_seq"].as_u64(), Some(2));
    let text = String::from_utf8(bin(&["state", "--data-dir", d, "--as-of", "2"]).stdout).unwrap();
    assert!(text.starts_with("note: seq 2 is inside one request"), "{text}");
    // Past the head: the head, said.
    let out = bin(&["state", "--data-dir", d, "--as-of", "999", "--json"]);
    let past = json(&out);
    assert_eq!(past["as_of_seq"].as_u64(), Some(events));
    assert!(past["note"]
        .as_str()
        .unwrap()
        .contains(&format!("past the head of the log: showing the head, seq {events}")));
    // A time without its zone gets a hint.
    let out = bin(&["state", "--data-dir", d, "--as-of", "2026-01-01T00:00:00"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("end it with Z"), "{}", String::from_utf8_lossy(&out.stderr));
    let out = bin(&[
        "state",
        "--data-dir",
        d,
        "--as-of",
        &events.to_string(),
        "--secret-id",
        "db/prod",
        "--label",
        "AWSCURRENT",
        "--json",
        "--reveal-value",
    ]);
    assert_eq!(json(&out)["label"]["value"]["SecretString"], "second-password");
    let out = bin(&["state", "--data-dir", d, "--as-of", "2999-01-01T00:00:00Z", "--json"]);
    assert_eq!(json(&out)["as_of_seq"].as_u64(), Some(events));

    // Usage and I/O errors are exit 2.
    assert_eq!(bin(&["verify", "--data-dir", "/nonexistent/dir"]).status.code(), Some(2));
    assert_eq!(bin(&["state", "--data-dir", d, "--as-of", "yesterday"]).status.code(), Some(2));
    assert_eq!(bin(&["frobnicate"]).status.code(), Some(2));
}

#[test]
fn export_checkpoint_prove_and_tampering() {
    let dir = data_dir();
    let d = path(dir.path());
    let work = tempfile::tempdir().unwrap();
    let cp = work.path().join("cp.json");
    let signing_key = work.path().join("signing.key");
    std::fs::write(&signing_key, hex::encode([7u8; 32])).unwrap();
    let out = bin(&["checkpoint", "--data-dir", d, "--out", path(&cp), "--signing-key", path(&signing_key)]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let checkpoint: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&cp).unwrap()).unwrap();
    assert!(checkpoint["signature"].is_object());

    let export = work.path().join("log.jsonl");
    assert!(bin(&["export", "--data-dir", d, "--out", path(&export)]).status.success());
    let out = bin(&["verify", "--export", path(&export), "--checkpoint", path(&cp), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(json(&out)["merkle_root"], checkpoint["merkle_root"]);
    assert!(bin(&["verify", "--data-dir", d, "--checkpoint", path(&cp)]).status.success());

    let out = bin(&["prove", "--data-dir", d, "--seq", "2", "--json"]);
    assert!(out.status.success());
    assert_eq!(json(&out)["verified"], true);

    // Truncate the export's tail (and its closing checkpoint): caught against the checkpoint.
    let text = std::fs::read_to_string(&export).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    let cut = work.path().join("cut.jsonl");
    std::fs::write(&cut, lines[..lines.len() - 2].join("\n")).unwrap();
    let out = bin(&["verify", "--export", path(&cut), "--checkpoint", path(&cp), "--json"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(json(&out)["ok"], false);

    // A tampered checkpoint signature is a verification failure (exit 1), not a usage error.
    let mut forged = checkpoint.clone();
    forged["size"] = serde_json::Value::from(1);
    let forged_path = work.path().join("forged.json");
    std::fs::write(&forged_path, forged.to_string()).unwrap();
    let out = bin(&["verify", "--export", path(&export), "--checkpoint", path(&forged_path)]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("does not verify"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // A consistency proof between an older and a newer checkpoint.
    let ledger = Ledger::open(dir.path(), MasterKey::from_bytes(1, KEY), LedgerOptions::default()).unwrap();
    let meta = RequestMeta::local(Scope::new("us-east-1", "000000000000"));
    ledger
        .execute(
            Command::PutSecretValue(PutSecretValue {
                secret_id: "db/prod".into(),
                client_request_token: Some(token(3)),
                value: Some(SecretValue::string("third")),
                version_stages: None,
            }),
            &meta,
        )
        .unwrap()
        .unwrap();
    ledger.close().unwrap();
    let cp2 = work.path().join("cp2.json");
    assert!(bin(&["checkpoint", "--data-dir", d, "--out", path(&cp2)]).status.success());
    let out = bin(&["prove", "--data-dir", d, "--from-checkpoint", path(&cp), "--to-checkpoint", path(&cp2), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(json(&out)["verified"], true);

    // Rebuild the derived data; verify still passes.
    assert!(bin(&["rebuild", "--data-dir", d]).status.success());
    assert!(bin(&["verify", "--data-dir", d]).status.success());
}

/// A server on a free loopback port over `dir`, with one access key, on a runtime of its own.
fn running_server(
    dir: &Path,
    akid: &str,
    secret_key: &str,
    tweak: impl FnOnce(&mut ledger_server::ServeConfig),
) -> (tokio::runtime::Runtime, ledger_server::RunningServer) {
    let credentials = dir.join("credentials.txt");
    std::fs::write(&credentials, format!("{akid}:{secret_key}\n")).unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let mut config = ledger_server::ServeConfig::new(dir);
    config.listen = "127.0.0.1:0".into();
    config.credentials_file = Some(credentials);
    tweak(&mut config);
    let server = runtime.block_on(ledger_server::start(config)).unwrap();
    (runtime, server)
}

/// `--endpoint`: the audit commands against a running server print what they print for the
/// stopped data dir.
#[test]
fn audit_commands_against_a_running_server() {
    const AKID: &str = "AKIACLITEST000000001";
    const SECRET_KEY: &str = "cli/secret+key";
    let dir = data_dir();
    let (runtime, server) = running_server(dir.path(), AKID, SECRET_KEY, |_| {});
    let endpoint = format!("http://{}", server.local_addr());
    let remote = |args: &[&str]| {
        Process::new(env!("CARGO_BIN_EXE_secret-ledger"))
            .args(args)
            .args(["--endpoint", &endpoint])
            .env("AWS_ACCESS_KEY_ID", AKID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_REGION")
            .env_remove("SECRET_LEDGER_DATA_DIR")
            .output()
            .unwrap()
    };

    let online_history = remote(&["history", "--secret-id", "db/prod", "--json"]);
    let online_ledger = remote(&["history", "--operation", "PutSecretValue", "--since", "2", "--json"]);
    assert!(online_history.status.success(), "{}", String::from_utf8_lossy(&online_history.stderr));
    let online_verify = remote(&["verify", "--json"]);
    assert!(online_verify.status.success(), "{}", String::from_utf8_lossy(&online_verify.stderr));
    let online_text = remote(&["verify"]);
    assert!(online_text.status.success());
    assert!(String::from_utf8_lossy(&online_text.stdout).starts_with("ok: "));
    let online_state = remote(&["state", "--as-of", "3", "--secret-id", "db/prod", "--label", "AWSCURRENT", "--json"]);
    assert!(online_state.status.success(), "{}", String::from_utf8_lossy(&online_state.stderr));
    let proof = remote(&["prove", "--seq", "2", "--json"]);
    assert!(proof.status.success(), "{}", String::from_utf8_lossy(&proof.stderr));
    assert_eq!(json(&proof)["verified"], true);
    let work = tempfile::tempdir().unwrap();
    let export = work.path().join("online.jsonl");
    assert!(remote(&["export", "--out", path(&export)]).status.success());
    assert_eq!(remote(&["history", "--secret-id", "no/such"]).status.code(), Some(2));
    // Wrong credentials, and --endpoint with --data-dir, are usage errors.
    let refused = Process::new(env!("CARGO_BIN_EXE_secret-ledger"))
        .args(["verify", "--endpoint", &endpoint, "--access-key-id", AKID, "--secret-access-key", "wrong"])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("InvalidSignatureException"));
    assert_eq!(remote(&["verify", "--data-dir", path(dir.path())]).status.code(), Some(2));
    // The data dir of a running server: in use, and the message says how to audit it instead.
    let in_use = bin(&["verify", "--data-dir", path(dir.path())]);
    assert_eq!(in_use.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&in_use.stderr).contains("--endpoint"),
        "{}",
        String::from_utf8_lossy(&in_use.stderr)
    );
    runtime.block_on(server.shutdown()).unwrap();

    // The same commands on the stopped data dir print the same documents.
    let d = path(dir.path());
    let offline_history = bin(&["history", "--data-dir", d, "--secret-id", "db/prod", "--json"]);
    assert_eq!(json(&online_history), json(&offline_history));
    let offline_ledger = bin(&["history", "--data-dir", d, "--operation", "PutSecretValue", "--since", "2", "--json"]);
    assert_eq!(json(&online_ledger), json(&offline_ledger));
    assert_eq!(json(&online_ledger)["events"].as_array().unwrap().len(), 2);
    let history = json(&online_history);
    assert!(history["secrets"][0]["events"].as_array().unwrap().iter().any(|e| e["change"]
        == format!("AWSCURRENT: {} → {}", token(1), token(2))
        && e["label_move"]["to"] == token(2)));
    let offline_verify = json(&bin(&["verify", "--data-dir", d, "--json"]));
    let (online, offline) = (json(&online_verify), offline_verify.clone());
    let keys = |v: &serde_json::Value| v.as_object().unwrap().keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&online), keys(&offline));
    for field in ["ok", "events", "head_hash", "merkle_root", "secrets"] {
        assert_eq!(online[field], offline[field], "{field}");
    }
    // Online the label's holder is named, its value is not served.
    let offline_state = bin(&[
        "state",
        "--data-dir",
        d,
        "--as-of",
        "3",
        "--secret-id",
        "db/prod",
        "--label",
        "AWSCURRENT",
        "--json",
        "--reveal-value",
    ]);
    let (mut online, offline) = (json(&online_state), json(&offline_state));
    assert!(online["label"]["value"].is_null());
    assert_eq!(offline["label"]["value"]["SecretString"], "first-password");
    online["label"]["value"] = offline["label"]["value"].clone();
    assert_eq!(online, offline);
    let out = bin(&["verify", "--export", path(&export), "--json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(json(&out)["merkle_root"], offline_verify["merkle_root"]);
}

/// `db/prod` in us-east-1 (created, rotated, purged, created again) and in eu-west-1, with
/// values that name their region. Returns the dir and the ARNs: us-east-1's two, eu-west-1's.
fn two_regions() -> (tempfile::TempDir, Vec<String>) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("master.key"), hex::encode(KEY)).unwrap();
    let ledger = Ledger::open(dir.path(), MasterKey::from_bytes(1, KEY), LedgerOptions::default()).unwrap();
    let mut arns = Vec::new();
    let create = |region: &str, value: &str, n: u32| {
        let meta = RequestMeta::local(Scope::new(region, "000000000000"));
        let reply = ledger
            .execute(
                Command::CreateSecret(CreateSecret {
                    name: "db/prod".into(),
                    client_request_token: Some(token(n)),
                    value: Some(SecretValue::string(value)),
                    ..CreateSecret::default()
                }),
                &meta,
            )
            .unwrap()
            .unwrap();
        let ledger_core::Reply::Secret { arn, .. } = reply else { panic!("CreateSecret answered {reply:?}") };
        arn
    };
    arns.push(create("us-east-1", "us-old-value", 1));
    let us = RequestMeta::local(Scope::new("us-east-1", "000000000000"));
    ledger
        .execute(
            Command::DeleteSecret(ledger_core::DeleteSecret {
                secret_id: "db/prod".into(),
                force_delete_without_recovery: Some(true),
                ..ledger_core::DeleteSecret::default()
            }),
            &us,
        )
        .unwrap()
        .unwrap();
    arns.push(create("us-east-1", "us-value", 2));
    arns.push(create("eu-west-1", "eu-value", 3));
    ledger.close().unwrap();
    (dir, arns)
}

/// The binary with no region in its environment, plus `env`.
fn bin_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    common::command(args, env).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Checks `history --json` and `state --json` answers for `db/prod` in `region`.
fn check_region_answers(history: &Output, state: &Output, region: &str, arns: &[&str]) {
    assert!(history.status.success(), "{}", stderr(history));
    let doc = json(history);
    assert_eq!(doc["region"], region);
    let secrets = doc["secrets"].as_array().unwrap();
    let found: Vec<&str> = secrets.iter().map(|s| s["arn"].as_str().unwrap()).collect();
    assert_eq!(found, arns, "{doc}");
    assert!(secrets.iter().all(|s| s["region"] == region && !s["events"].as_array().unwrap().is_empty()));
    assert!(state.status.success(), "{}", stderr(state));
    let doc = json(state);
    assert_eq!(doc["region"], region, "{doc}");
    assert_eq!(doc["label"]["arn"], *arns.last().unwrap());
    assert_eq!(doc["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(doc["secrets"][0]["arn"], *arns.last().unwrap());
}

/// Issue 8: a name resolves within one region offline (--region, AWS_REGION, AWS_DEFAULT_REGION,
/// else the ARN's own); with no region, a name used in two regions is a usage error that lists
/// them; every output names the region and ARN.
#[test]
fn offline_names_resolve_within_one_region() {
    let (dir, arns) = two_regions();
    let d = path(dir.path());
    let history = |extra: &[&str], env: &[(&str, &str)]| {
        bin_env(&[&["history", "--data-dir", d, "--secret-id"], extra, &["--json"]].concat(), env)
    };
    let state = |extra: &[&str], env: &[(&str, &str)]| {
        bin_env(
            &[
                &[
                    "state",
                    "--data-dir",
                    d,
                    "--as-of",
                    "999",
                    "--label",
                    "AWSCURRENT",
                    "--reveal-value",
                    "--json",
                    "--secret-id",
                ],
                extra,
            ]
            .concat(),
            env,
        )
    };
    let us = [arns[0].as_str(), arns[1].as_str()];
    let eu = [arns[2].as_str()];
    // A region from the flag, or the environment in AWS's order.
    check_region_answers(
        &history(&["db/prod", "--region", "eu-west-1"], &[]),
        &state(&["db/prod", "--region", "eu-west-1"], &[]),
        "eu-west-1",
        &eu,
    );
    let env = [("AWS_DEFAULT_REGION", "us-east-1")];
    check_region_answers(&history(&["db/prod"], &env), &state(&["db/prod"], &env), "us-east-1", &us);
    let env = [("AWS_REGION", "eu-west-1"), ("AWS_DEFAULT_REGION", "us-east-1")];
    check_region_answers(&history(&["db/prod"], &env), &state(&["db/prod"], &env), "eu-west-1", &eu);
    // The value opened offline is the one of the region asked about.
    let out = state(&["db/prod"], &[("AWS_DEFAULT_REGION", "us-east-1")]);
    assert_eq!(json(&out)["label"]["value"]["SecretString"], "us-value");
    let out = state(&["db/prod", "--region", "eu-west-1"], &[("AWS_DEFAULT_REGION", "us-east-1")]);
    assert_eq!(json(&out)["label"]["value"]["SecretString"], "eu-value");
    // By full ARN, with no region anywhere: the ARN's region.
    check_region_answers(&history(&[&arns[2]], &[]), &state(&[&arns[2]], &[]), "eu-west-1", &eu);
    let out = history(&[&arns[0]], &[]);
    assert_eq!(json(&out)["secrets"].as_array().unwrap().len(), 1, "a full ARN names one secret");
    // An ARN's region wins over the AWS_DEFAULT_REGION default; against --region or AWS_REGION
    // it is a usage error that says so.
    check_region_answers(
        &history(&[&arns[2]], &[("AWS_DEFAULT_REGION", "us-east-1")]),
        &state(&[&arns[2]], &[("AWS_DEFAULT_REGION", "us-east-1")]),
        "eu-west-1",
        &eu,
    );
    for out in
        [history(&[&arns[2], "--region", "us-east-1"], &[]), history(&[&arns[2]], &[("AWS_REGION", "us-east-1")])]
    {
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("eu-west-1") && stderr(&out).contains("us-east-1"), "{}", stderr(&out));
    }
    // A partial ARN of another account names nothing here.
    let foreign = arns[2].replace(":000000000000:", ":999999999999:");
    let partial = &foreign[..foreign.len() - 7];
    assert_eq!(history(&[partial], &[]).status.code(), Some(2));
    // No region anywhere: exit 2, listing the regions and ARNs to choose from; nothing on stdout.
    for out in [history(&["db/prod"], &[]), state(&["db/prod"], &[])] {
        assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stdout));
        assert!(out.stdout.is_empty());
        let message = stderr(&out);
        for arn in &arns {
            assert!(message.contains(arn.as_str()), "{message}");
        }
    }
    // A region where the name was never used.
    let out = history(&["db/prod", "--region", "ap-south-1"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("ap-south-1"));

    // Text: a heading per secret naming region and ARN; the re-created name is a second secret.
    let out = bin_env(&["history", "--data-dir", d, "--secret-id", "db/prod", "--region", "us-east-1"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("db/prod in us-east-1: {}\n", arns[0])), "{text}");
    assert!(text.contains(&format!("db/prod in us-east-1: {} (re-created", arns[1])), "{text}");
    assert!(!text.contains("eu-west-1"), "{text}");
    // The HTML names one region only, and both secrets of the name there.
    let html = dir.path().join("eu.html");
    let out = bin_env(
        &["history", "--data-dir", d, "--secret-id", "db/prod", "--region", "eu-west-1", "--html", path(&html)],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("eu-west-1") && page.contains(&arns[2]));
    assert!(!page.contains("us-east-1"), "the page names one region only");
    let html = dir.path().join("us.html");
    bin_env(
        &["history", "--data-dir", d, "--secret-id", "db/prod", "--region", "us-east-1", "--html", path(&html)],
        &[],
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains(&arns[0]) && page.contains(&arns[1]) && !page.contains("eu-west-1"));

    // State without --secret-id: every secret, grouped by region.
    let out = bin_env(&["state", "--data-dir", d, "--as-of", "999", "--json"], &[]);
    let regions: Vec<String> =
        json(&out)["secrets"].as_array().unwrap().iter().map(|s| s["region"].as_str().unwrap().to_string()).collect();
    assert_eq!(regions, ["eu-west-1", "us-east-1"]);
    let out = bin_env(&["state", "--data-dir", d, "--as-of", "999"], &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    let (eu_at, us_at) = (text.find("region eu-west-1\n").unwrap(), text.find("region us-east-1\n").unwrap());
    assert!(eu_at < us_at && text.find(&arns[2]).unwrap() < us_at, "{text}");
}

/// Issue 8 online: the server resolves a name in the signing region; the CLI needs a region
/// (or an ARN) for a name, as the AWS CLI does; answers match the offline ones.
#[test]
fn online_names_resolve_in_the_signing_region() {
    const AKID: &str = "AKIACLITEST000000002";
    const SECRET_KEY: &str = "cli/region+key";
    let (dir, arns) = two_regions();
    let (runtime, server) = running_server(dir.path(), AKID, SECRET_KEY, |_| {});
    let endpoint = format!("http://{}", server.local_addr());
    let auth = [("AWS_ACCESS_KEY_ID", AKID), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY)];
    let remote = |args: &[&str], env: &[(&str, &str)]| {
        bin_env(&[args, &["--endpoint", &endpoint, "--json"]].concat(), &[&auth[..], env].concat())
    };
    let history = |id: &str, env: &[(&str, &str)]| remote(&["history", "--secret-id", id], env);
    let state = |id: &str, env: &[(&str, &str)]| {
        remote(&["state", "--as-of", "999", "--label", "AWSCURRENT", "--secret-id", id], env)
    };
    let us = [arns[0].as_str(), arns[1].as_str()];
    let eu = [arns[2].as_str()];
    let env = [("AWS_DEFAULT_REGION", "eu-west-1")];
    check_region_answers(&history("db/prod", &env), &state("db/prod", &env), "eu-west-1", &eu);
    let env = [("AWS_REGION", "us-east-1")];
    let online_us = history("db/prod", &env);
    check_region_answers(&online_us, &state("db/prod", &env), "us-east-1", &us);
    // By full ARN the request is signed for the ARN's region.
    check_region_answers(&history(&arns[2], &[]), &state(&arns[2], &[]), "eu-west-1", &eu);
    // A name with no region anywhere: usage error, as the AWS CLI.
    for out in [history("db/prod", &[]), state("db/prod", &[])] {
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("--region"), "{}", stderr(&out));
    }
    // A region where the name is not used: not found, exit 2.
    assert_eq!(history("db/prod", &[("AWS_REGION", "ap-south-1")]).status.code(), Some(2));
    runtime.block_on(server.shutdown()).unwrap();

    let d = path(dir.path());
    let offline_us =
        bin_env(&["history", "--data-dir", d, "--secret-id", "db/prod", "--json"], &[("AWS_REGION", "us-east-1")]);
    assert_eq!(json(&online_us), json(&offline_us));
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Issue 10: keygen, signed checkpoints verified against trusted keys (exit 1 for a forged,
/// unsigned or untrusted one), proofs that check head hashes, inclusion proofs against a kept
/// checkpoint, and check-proof with nothing but the checkpoints.
#[test]
fn trusted_checkpoints_and_proofs() {
    use std::os::unix::fs::PermissionsExt;
    let dir = data_dir();
    let d = path(dir.path());
    let work = tempfile::tempdir().unwrap();
    let p = |name: &str| work.path().join(name);

    // keygen: FILE (0600) and FILE.pub; prints the public key; never overwrites.
    let out = bin(&["keygen", "--out", path(&p("ops.key"))]);
    assert!(out.status.success(), "{}", stderr(&out));
    let public = stdout(&out).trim().to_string();
    assert_eq!(public.len(), 64);
    assert_eq!(std::fs::read_to_string(p("ops.key.pub")).unwrap().trim(), public);
    assert_eq!(std::fs::metadata(p("ops.key")).unwrap().permissions().mode() & 0o777, 0o600);
    assert_eq!(bin(&["keygen", "--out", path(&p("ops.key"))]).status.code(), Some(2));
    assert!(bin(&["keygen", "--out", path(&p("other.key"))]).status.success());

    // A key given in place of its file is refused without echoing it.
    let seed = std::fs::read_to_string(p("ops.key")).unwrap().trim().to_string();
    let out = bin(&["checkpoint", "--data-dir", d, "--out", path(&p("x.json")), "--signing-key", &seed]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("not the key itself") && !stderr(&out).contains(&seed), "{}", stderr(&out));

    let cp = p("cp.json");
    let out = bin(&["checkpoint", "--data-dir", d, "--out", path(&cp), "--signing-key", path(&p("ops.key"))]);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = bin(&["verify", "--data-dir", d, "--checkpoint", path(&cp), "--trusted-key", path(&p("ops.key.pub"))]);
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(stdout(&out).contains(&format!("signed by trusted key {public}: signature verified")), "{}", stdout(&out));
    let out = bin(&["verify", "--data-dir", d, "--checkpoint", path(&cp), "--json"]);
    let report = json(&out);
    assert_eq!(report["checkpoint"], serde_json::json!({"signature": "verified", "key": public, "trusted": false}));
    let out = bin(&["verify", "--data-dir", d, "--checkpoint", path(&cp)]);
    assert!(stdout(&out).contains("key not pinned"), "{}", stdout(&out));
    // Another trusted key, or an unsigned checkpoint where a signature is asked for: exit 1.
    let out = bin(&["verify", "--data-dir", d, "--checkpoint", path(&cp), "--trusted-key", path(&p("other.key.pub"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("not a trusted key"), "{}", stdout(&out));
    let unsigned = p("unsigned.json");
    assert!(bin(&["checkpoint", "--data-dir", d, "--out", path(&unsigned)]).status.success());
    let out =
        bin(&["verify", "--data-dir", d, "--checkpoint", path(&unsigned), "--trusted-key", path(&p("ops.key.pub"))]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("unsigned"), "{}", stdout(&out));
    let out = bin(&["verify", "--data-dir", d, "--checkpoint", path(&unsigned)]);
    assert!(out.status.success() && stdout(&out).contains("checkpoint unsigned: no signature checked"));

    // An inclusion proof against the kept checkpoint, checked offline with nothing else.
    let out = bin(&["prove", "--data-dir", d, "--seq", "2", "--checkpoint", path(&cp), "--json"]);
    assert!(out.status.success(), "{}", stdout(&out));
    std::fs::write(p("inclusion.json"), stdout(&out)).unwrap();
    let check = |args: &[&str]| bin(&[&["check-proof", "--proof"], args].concat());
    let out = check(&[path(&p("inclusion.json")), "--checkpoint", path(&cp), "--trusted-key", path(&p("ops.key.pub"))]);
    assert!(out.status.success(), "{}", stdout(&out));
    // The same proof against a checkpoint with another root does not check.
    let mut other: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&unsigned).unwrap()).unwrap();
    other["merkle_root"] = serde_json::Value::from("11".repeat(32));
    std::fs::write(p("other-root.json"), other.to_string()).unwrap();
    assert_eq!(
        check(&[path(&p("inclusion.json")), "--checkpoint", path(&p("other-root.json"))]).status.code(),
        Some(1)
    );
    // Nor against one with the right root but a forged head hash.
    let mut forged_head: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&unsigned).unwrap()).unwrap();
    forged_head["head_hash"] = serde_json::Value::from("33".repeat(32));
    std::fs::write(p("forged-head-1.json"), forged_head.to_string()).unwrap();
    let out = check(&[path(&p("inclusion.json")), "--checkpoint", path(&p("forged-head-1.json"))]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    // What an ok says: which seq, and what was checked about the checkpoint.
    let out = check(&[path(&p("inclusion.json")), "--checkpoint", path(&cp)]);
    assert!(stdout(&out).contains("seq 2 (record hash") && stdout(&out).contains("not pinned"), "{}", stdout(&out));
    // The public key is refused as a signing key, and the message says which file to give.
    let out =
        bin(&["checkpoint", "--data-dir", d, "--out", path(&p("y.json")), "--signing-key", path(&p("ops.key.pub"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("--signing-key takes the secret key file made by `secret-ledger keygen`, not its .pub"),
        "{}",
        stderr(&out)
    );
    assert!(!p("y.json").exists());

    // A later checkpoint; a consistency proof between the two, and one whose head hash is forged.
    let ledger = Ledger::open(dir.path(), MasterKey::from_bytes(1, KEY), LedgerOptions::default()).unwrap();
    let put = Command::PutSecretValue(PutSecretValue {
        secret_id: "db/prod".into(),
        client_request_token: Some(token(9)),
        value: Some(SecretValue::string("later")),
        version_stages: None,
    });
    ledger.execute(put, &RequestMeta::local(Scope::new("us-east-1", "000000000000"))).unwrap().unwrap();
    ledger.close().unwrap();
    let later = p("later.json");
    assert!(bin(&["checkpoint", "--data-dir", d, "--out", path(&later)]).status.success());
    let out =
        bin(&["prove", "--data-dir", d, "--from-checkpoint", path(&cp), "--to-checkpoint", path(&later), "--json"]);
    assert!(out.status.success(), "{}", stdout(&out));
    std::fs::write(p("consistency.json"), stdout(&out)).unwrap();
    let out = check(&[path(&p("consistency.json")), "--checkpoint", path(&cp), "--checkpoint", path(&later)]);
    assert!(out.status.success(), "{}", stdout(&out));
    let mut forged: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&later).unwrap()).unwrap();
    forged["head_hash"] = serde_json::Value::from("22".repeat(32));
    std::fs::write(p("forged-head.json"), forged.to_string()).unwrap();
    let out = bin(&[
        "prove",
        "--data-dir",
        d,
        "--from-checkpoint",
        path(&cp),
        "--to-checkpoint",
        path(&p("forged-head.json")),
    ]);
    assert_eq!(out.status.code(), Some(1), "a forged head hash must not verify: {}", stdout(&out));
    let out =
        check(&[path(&p("consistency.json")), "--checkpoint", path(&cp), "--checkpoint", path(&p("forged-head.json"))]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
}

/// Issue 10: the ledger-wide history, filtered by actor, operation and a seq or time range;
/// online the same document as offline.
#[test]
fn ledger_wide_history_with_filters() {
    let dir = data_dir();
    let d = path(dir.path());
    let all = json(&bin(&["history", "--data-dir", d, "--json"]));
    let events = all["events"].as_array().unwrap();
    assert_eq!(events.len(), 7, "{all}");
    assert!(events.iter().all(|e| e["name"] == "db/prod" && e["region"] == "us-east-1" && e["arn"].is_string()));
    let ops: Vec<&str> = events.iter().map(|e| e["operation"].as_str().unwrap()).collect();
    assert_eq!(
        ops,
        [
            "CreateSecret",
            "CreateSecret",
            "CreateSecret",
            "PutSecretValue",
            "PutSecretValue",
            "UpdateSecretVersionStage",
            "UpdateSecretVersionStage"
        ]
    );
    let filtered = |args: &[&str]| json(&bin(&[&["history", "--data-dir", d, "--json"], args].concat()));
    let seqs = |doc: &serde_json::Value| -> Vec<u64> {
        doc["events"].as_array().unwrap().iter().map(|e| e["seq"].as_u64().unwrap()).collect()
    };
    assert_eq!(seqs(&filtered(&["--operation", "UpdateSecretVersionStage"])), [6, 7]);
    assert_eq!(seqs(&filtered(&["--actor", "local"])).len(), 7);
    assert!(seqs(&filtered(&["--actor", "AKIANOBODY"])).is_empty());
    assert_eq!(seqs(&filtered(&["--since", "4", "--until", "5"])), [4, 5]);
    // A time range: from the put's time on.
    let put_time = events[3]["recorded_at"].as_str().unwrap();
    assert_eq!(seqs(&filtered(&["--since", put_time]))[0], 4);
    assert_eq!(
        *seqs(&filtered(&["--until", put_time])).last().unwrap(),
        seqs(&filtered(&["--until", put_time])).len() as u64
    );
    // The same filters narrow one secret's history.
    let one =
        json(&bin(&["history", "--data-dir", d, "--secret-id", "db/prod", "--operation", "PutSecretValue", "--json"]));
    assert_eq!(one["secrets"][0]["events"].as_array().unwrap().len(), 2);
    // Text: one line per event with the secret's name and region.
    let text = stdout(&bin(&["history", "--data-dir", d, "--operation", "PutSecretValue"]));
    assert!(text.starts_with("2 events from seq 1 to 7") && text.contains("db/prod [us-east-1]"), "{text}");
    let out = bin(&["history", "--data-dir", d, "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--since takes a seq"), "{}", stderr(&out));
    // --html needs a secret.
    assert_eq!(bin(&["history", "--data-dir", d, "--html", "x.html"]).status.code(), Some(2));
    let html = bin(&["history", "--data-dir", d, "--secret-id", "db/prod", "--actor", "local", "--html", "x.html"]);
    assert_eq!(html.status.code(), Some(2));
}

/// Issue 10's papercuts: messages that name a path once and say what to do, outputs that are
/// not overwritten silently, conflicting flags refused, exit codes in --help.
#[test]
fn clear_messages_and_no_silent_overwrites() {
    let dir = data_dir();
    let d = path(dir.path());
    let work = tempfile::tempdir().unwrap();
    // A path that does not exist, and a directory that is not a data dir.
    let missing = work.path().join("nowhere");
    let out = bin(&["verify", "--data-dir", path(&missing)]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).matches(path(&missing)).count(), 1, "{}", stderr(&out));
    assert!(stderr(&out).contains("does not exist"), "{}", stderr(&out));
    let out = bin(&["history", "--data-dir", path(work.path())]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("is not a secret-ledger data dir (it has no db file)"), "{}", stderr(&out));
    assert_eq!(stderr(&out).matches(path(work.path())).count(), 1, "{}", stderr(&out));
    // Counts in words.
    let text = stdout(&bin(&["verify", "--data-dir", d]));
    assert!(text.contains(", 1 secret (") && text.contains("7 events"), "{text}");
    // --out is never overwritten silently.
    let cp = work.path().join("cp.json");
    assert!(bin(&["checkpoint", "--data-dir", d, "--out", path(&cp)]).status.success());
    let out = bin(&["checkpoint", "--data-dir", d, "--out", path(&cp)]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("give --force"), "{}", stderr(&out));
    assert!(bin(&["checkpoint", "--data-dir", d, "--out", path(&cp), "--force"]).status.success());
    let export = work.path().join("log.jsonl");
    assert!(bin(&["export", "--data-dir", d, "--out", path(&export)]).status.success());
    assert_eq!(bin(&["export", "--data-dir", d, "--out", path(&export)]).status.code(), Some(2));
    // --export and --data-dir together: refused, not one of them ignored.
    let out = bin(&["verify", "--export", path(&export), "--data-dir", d]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("'--export' cannot be used with '--data-dir"), "{}", stderr(&out));
    // So are --endpoint or --export with a --database-url (it would be ignored), but not one
    // from the environment.
    let url = "host=/nonexistent dbname=x";
    for args in [
        &["verify", "--endpoint", "http://127.0.0.1:9", "--database-url", url][..],
        &["verify", "--export", path(&export), "--database-url", url],
    ] {
        let out = bin(args);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("cannot be used with '--database-url"), "{}", stderr(&out));
    }
    let out = Process::new(env!("CARGO_BIN_EXE_secret-ledger"))
        .args(["verify", "--export", path(&export)])
        .env("SECRET_LEDGER_DATABASE_URL", url)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // The exit codes are in --help, and in that of each command that verifies.
    for args in [&["--help"][..], &["verify", "--help"], &["prove", "--help"], &["check-proof", "--help"]] {
        let text = stdout(&bin(args));
        assert!(
            text.contains("Exit codes: 0 ok, 1 verification failed") && text.contains("2 usage or I/O error"),
            "{text}"
        );
    }
    // Every command's --data-dir says what it is.
    for command in ["verify", "history", "state", "export", "checkpoint", "prove", "rebuild", "rotate-master-key"] {
        let text = stdout(&bin(&[command, "--help"]));
        let help = text.split("--data-dir <DATA_DIR>").nth(1).unwrap_or_default().trim_start();
        assert!(help.starts_with("The data dir"), "{command}: {text}");
    }
}

/// Tag values, labels and tokens reach the terminal escaped: an escape sequence or a line break
/// in them cannot rewrite what an auditor sees.
#[test]
fn control_characters_are_escaped_in_text_output() {
    let dir = data_dir();
    let ledger = Ledger::open(dir.path(), MasterKey::from_bytes(1, KEY), LedgerOptions::default()).unwrap();
    let tag = ledger_core::Tag { key: "team".into(), value: "ops\u{1b}[2J\nseq 1 forged line".into() };
    let cmd = Command::TagResource(ledger_core::TagResource { secret_id: "db/prod".into(), tags: vec![tag] });
    ledger.execute(cmd, &RequestMeta::local(Scope::new("us-east-1", "000000000000"))).unwrap().unwrap();
    ledger.close().unwrap();
    let d = path(dir.path());
    for args in [vec!["history", "--data-dir", d, "--secret-id", "db/prod"], vec!["history", "--data-dir", d]] {
        let text = stdout(&bin(&args));
        assert!(!text.contains('\u{1b}') && text.contains("ops\\u{1b}[2J\\nseq 1 forged line"), "{text}");
    }
    // JSON keeps the value exact (escaped by JSON itself).
    let doc = json(&bin(&["history", "--data-dir", d, "--json"]));
    assert!(doc.to_string().contains("\\u001b[2J\\nseq 1"), "{doc}");
}

#[test]
fn rotate_master_key_shows_in_history_export_and_verify() {
    let dir = data_dir();
    let d = path(dir.path());
    let out = bin(&["rotate-master-key", "--data-dir", d, "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json(&out);
    assert_eq!((report["from_key_id"].as_u64(), report["to_key_id"].as_u64()), (Some(1), Some(2)));

    // The value still opens (with the rotated key file), the log shows the rotation.
    let label = ["--secret-id", "db/prod", "--label", "AWSCURRENT", "--reveal-value", "--json"];
    let out = bin(&[&["state", "--data-dir", d, "--as-of", "3"], &label[..]].concat());
    assert_eq!(json(&out)["label"]["value"]["SecretString"], "first-password", "{}", stderr(&out));
    let out = bin(&["history", "--data-dir", d, "--operation", "RotateMasterKey"]);
    assert!(stdout(&out).contains("master key rotated from key 1 to key 2"), "{}", stdout(&out));
    let work = tempfile::tempdir().unwrap();
    let export = work.path().join("log.jsonl");
    assert!(bin(&["export", "--data-dir", d, "--out", path(&export)]).status.success());
    assert!(std::fs::read_to_string(&export).unwrap().contains("MasterKeyRotated"));
    assert!(bin(&["verify", "--export", path(&export)]).status.success());
    let out = bin(&["verify", "--data-dir", d, "--json"]);
    assert!(out.status.success(), "{}", stdout(&out));

    // The old key no longer opens the value; a missing key file is a clear error, exit 2.
    let old = work.path().join("old.key");
    std::fs::write(&old, hex::encode(KEY)).unwrap();
    let out = bin(&[&["state", "--data-dir", d, "--as-of", "3", "--master-key-file", path(&old)], &label[..]].concat());
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("master key") && !stdout(&out).contains("password"), "{}", stderr(&out));
    let out = bin(&["rotate-master-key", "--data-dir", d, "--master-key-file", path(&work.path().join("none"))]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("no master key to rotate"), "{}", stderr(&out));
}

/// `--endpoint https://…`: trusted through `--ca-file` or `AWS_CA_BUNDLE`; without the private
/// CA the handshake fails with a clear message and exit 2.
#[test]
fn audit_commands_over_https_with_a_private_ca() {
    const AKID: &str = "AKIACLITEST000000003";
    const SECRET_KEY: &str = "cli/tls+key";
    let dir = data_dir();
    let work = tempfile::tempdir().unwrap();
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let params = rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
    let cert = params.signed_by(&key, &ca, &ca_key).unwrap();
    let (cert_file, key_file, ca_file) =
        (work.path().join("server.crt"), work.path().join("server.key"), work.path().join("ca.pem"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let tls = ledger_server::tls::TlsFiles { cert: cert_file, key: key_file };
    let (runtime, server) = running_server(dir.path(), AKID, SECRET_KEY, |c| c.tls = Some(tls));
    let run = |endpoint: String, env: &[(&str, &str)]| {
        let mut command = Process::new(env!("CARGO_BIN_EXE_secret-ledger"));
        command
            .args(["verify", "--json", "--endpoint", &endpoint])
            .env("AWS_ACCESS_KEY_ID", AKID)
            .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env_remove("AWS_CA_BUNDLE")
            .env_remove("SECRET_LEDGER_DATA_DIR");
        for (k, v) in env {
            command.env(k, v);
        }
        command.output().unwrap()
    };
    let port = server.local_addr().port();
    let ca = path(&ca_file).to_string();
    for (endpoint, env) in [
        (format!("https://127.0.0.1:{port}"), vec![("AWS_CA_BUNDLE", ca.as_str())]),
        (format!("https://localhost:{port}"), vec![("AWS_CA_BUNDLE", ca.as_str())]),
    ] {
        let out = run(endpoint.clone(), &env);
        assert!(out.status.success(), "{endpoint}: {}", stderr(&out));
        assert_eq!(json(&out)["ok"], true);
    }
    let mut with_flag = Process::new(env!("CARGO_BIN_EXE_secret-ledger"));
    let out = with_flag
        .args(["history", "--json", "--endpoint", &format!("https://127.0.0.1:{port}"), "--ca-file", &ca])
        .env("AWS_ACCESS_KEY_ID", AKID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
        .env_remove("AWS_CA_BUNDLE")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    // Not trusting the CA: refused in the handshake, said plainly.
    let out = run(format!("https://127.0.0.1:{port}"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("TLS handshake"), "{}", stderr(&out));
    // Plain HTTP to the TLS port fails too, without a hang.
    let out = run(format!("http://127.0.0.1:{port}"), &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    runtime.block_on(server.shutdown()).unwrap();
}

/// `migrate` both ways and `--database-url` on the reading commands, through the binary,
/// against a throwaway PostgreSQL cluster.
#[test]
fn migrate_and_read_a_log_in_postgres_through_the_binary() {
    let Some(pg) = ledger_tests::pg::PgCluster::start("migrate_and_read_a_log_in_postgres_through_the_binary") else {
        return;
    };
    let url = pg.database("cli");
    let dir = data_dir();
    // A reader pointed at a database without a log is refused (it used to create the schema
    // and verify an empty log).
    let empty = bin(&["verify", "--data-dir", path(dir.path()), "--database-url", &url]);
    assert_eq!(empty.status.code(), Some(2), "{}", String::from_utf8_lossy(&empty.stdout));
    assert!(String::from_utf8_lossy(&empty.stderr).contains("holds no secret-ledger log"), "{empty:?}");
    let copied = bin(&["migrate", "--from-data-dir", path(dir.path()), "--to-database-url", &url, "--json"]);
    assert!(copied.status.success(), "{}", String::from_utf8_lossy(&copied.stderr));
    assert_eq!(json(&copied)["ok"], true);
    let on_sled = json(&bin(&["verify", "--data-dir", path(dir.path()), "--json"]));
    let on_pg = json(&bin(&["verify", "--data-dir", path(dir.path()), "--database-url", &url, "--json"]));
    assert_eq!(on_pg["ok"], true, "{on_pg}");
    assert_eq!((&on_pg["head_hash"], &on_pg["merkle_root"]), (&on_sled["head_hash"], &on_sled["merkle_root"]));
    let state = json(&bin(&[
        "state",
        "--data-dir",
        path(dir.path()),
        "--database-url",
        &url,
        "--as-of",
        "999",
        "--secret-id",
        "db/prod",
        "--label",
        "AWSCURRENT",
        "--reveal-value",
        "--region",
        "us-east-1",
        "--json",
    ]));
    assert_eq!(state["label"]["value"]["SecretString"], "second-password", "{state}");
    // Back into a new data dir: the same log again.
    let back = tempfile::tempdir().unwrap();
    let to = back.path().join("data");
    let returned = bin(&["migrate", "--from-database-url", &url, "--to-data-dir", path(&to)]);
    assert!(returned.status.success(), "{}", String::from_utf8_lossy(&returned.stderr));
    let again = json(&bin(&["verify", "--data-dir", path(&to), "--json"]));
    assert_eq!(again["head_hash"], on_sled["head_hash"]);
    // A destination that holds a log is refused.
    let refused = bin(&["migrate", "--from-data-dir", path(dir.path()), "--to-database-url", &url]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("already holds a log"));
}

/// Without --secret-id, `history` and `state` cover every region unless --region or AWS_REGION
/// (never AWS_DEFAULT_REGION) narrows them, offline and online alike; the text of the
/// ledger-wide history names each event's secret by ARN.
#[test]
fn ledger_wide_views_narrow_to_an_explicit_region() {
    let (dir, arns) = two_regions();
    let d = path(dir.path());
    let regions = |doc: &serde_json::Value, list: &str| -> Vec<String> {
        let mut found: Vec<String> =
            doc[list].as_array().unwrap().iter().map(|e| e["region"].as_str().unwrap().to_string()).collect();
        found.dedup();
        found
    };
    let history =
        |extra: &[&str], env: &[(&str, &str)]| bin_env(&[&["history", "--data-dir", d, "--json"], extra].concat(), env);
    let state = |extra: &[&str], env: &[(&str, &str)]| {
        bin_env(&[&["state", "--data-dir", d, "--as-of", "999", "--json"], extra].concat(), env)
    };
    let all = json(&history(&[], &[]));
    assert_eq!(regions(&all, "events"), ["us-east-1", "eu-west-1"], "{all}");
    let eu = json(&history(&["--region", "eu-west-1"], &[]));
    assert_eq!(regions(&eu, "events"), ["eu-west-1"], "{eu}");
    assert!(eu["events"].as_array().unwrap().iter().all(|e| e["arn"] == arns[2]), "{eu}");
    assert_eq!(eu["filters"]["region"], "eu-west-1");
    assert_eq!(json(&history(&[], &[("AWS_REGION", "eu-west-1")])), eu);
    assert_eq!(json(&history(&[], &[("AWS_DEFAULT_REGION", "eu-west-1")])), all, "the default region narrows nothing");
    let all_state = json(&state(&[], &[("AWS_DEFAULT_REGION", "eu-west-1")]));
    assert_eq!(regions(&all_state, "secrets"), ["eu-west-1", "us-east-1"], "{all_state}");
    let us_state = json(&state(&["--region", "us-east-1"], &[]));
    assert_eq!(regions(&us_state, "secrets"), ["us-east-1"], "{us_state}");
    assert_eq!(us_state["region"], "us-east-1");
    assert_eq!(us_state["secrets"].as_array().unwrap().len(), 1);
    assert_eq!(us_state["secrets"][0]["arn"], arns[1].as_str());
    assert_eq!(json(&state(&[], &[("AWS_REGION", "us-east-1")])), us_state);

    // Text: the region in the heading, each event's ARN; a region without secrets says so.
    let text = stdout(&bin_env(&["history", "--data-dir", d, "--region", "eu-west-1"], &[]));
    assert!(text.starts_with(&format!("{} events from seq 1 to", eu["events"].as_array().unwrap().len())), "{text}");
    assert!(text.lines().next().unwrap().ends_with("of secrets in region eu-west-1"), "{text}");
    assert!(text.contains(&format!("db/prod [eu-west-1] {}", arns[2])) && !text.contains("us-east-1"), "{text}");
    let text = stdout(&bin_env(&["history", "--data-dir", d], &[]));
    assert!(arns.iter().all(|arn| text.contains(&format!("] {arn}  "))), "{text}");
    let out = bin_env(&["state", "--data-dir", d, "--as-of", "999", "--region", "ap-south-1"], &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("(no secret in region ap-south-1 at that point)"), "{}", stdout(&out));

    // Online: the same documents; the signing region alone narrows nothing.
    const AKID: &str = "AKIACLITEST000000004";
    const SECRET_KEY: &str = "cli/wide+key";
    let (runtime, server) = running_server(dir.path(), AKID, SECRET_KEY, |_| {});
    let endpoint = format!("http://{}", server.local_addr());
    let auth = [("AWS_ACCESS_KEY_ID", AKID), ("AWS_SECRET_ACCESS_KEY", SECRET_KEY)];
    let remote = |args: &[&str], env: &[(&str, &str)]| {
        let out = bin_env(&[args, &["--endpoint", &endpoint, "--json"]].concat(), &[&auth[..], env].concat());
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        json(&out)
    };
    assert_eq!(remote(&["history", "--region", "eu-west-1"], &[]), eu);
    assert_eq!(remote(&["history"], &[("AWS_DEFAULT_REGION", "eu-west-1")]), all);
    assert_eq!(remote(&["state", "--as-of", "999", "--region", "us-east-1"], &[]), us_state);
    assert_eq!(remote(&["state", "--as-of", "999"], &[("AWS_DEFAULT_REGION", "eu-west-1")]), all_state);
    runtime.block_on(server.shutdown()).unwrap();
}

/// What the commands say on stderr (and, for a verification, on stdout) when they write a file,
/// refuse a key or a proof's checkpoints, or are given a value they cannot use.
#[test]
fn messages_for_written_files_and_refused_inputs() {
    let dir = data_dir();
    let d = path(dir.path());
    let work = tempfile::tempdir().unwrap();
    let p = |name: &str| work.path().join(name);

    // keygen names both files it wrote.
    let out = bin(&["keygen", "--out", path(&p("ops.key"))]);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = format!(
        "wrote the signing key {} (keep it secret) and the public key {}\n",
        path(&p("ops.key")),
        path(&p("ops.key.pub"))
    );
    assert_eq!(stderr(&out), said);
    // history --html names the page it wrote.
    let out = bin(&["history", "--data-dir", d, "--secret-id", "db/prod", "--html", path(&p("t.html"))]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stderr(&out), format!("wrote the timeline to {}\n", path(&p("t.html"))));

    // An export cut before its closing checkpoint does not verify, and says why.
    assert!(bin(&["export", "--data-dir", d, "--out", path(&p("log.jsonl"))]).status.success());
    let text = std::fs::read_to_string(p("log.jsonl")).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    std::fs::write(p("cut.jsonl"), lines[..lines.len() - 1].join("\n") + "\n").unwrap();
    let out = bin(&["verify", "--export", path(&p("cut.jsonl"))]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let events = lines.len() - 2;
    let reason = format!(
        "truncated: the export ends after {events} records without its closing checkpoint (its header announced {events})"
    );
    assert!(stdout(&out).starts_with("FAILED at seq ") && stdout(&out).contains(&reason), "{}", stdout(&out));

    // --reveal-value without the master key; and online, where values are never served.
    let label = ["state", "--as-of", "3", "--secret-id", "db/prod", "--label", "AWSCURRENT", "--reveal-value"];
    let out = bin(&[&label[..], &["--data-dir", d, "--master-key-file", path(&p("none.key"))]].concat());
    assert_eq!(out.status.code(), Some(2));
    let message = format!(
        "--reveal-value needs the master key: {} does not exist (give --master-key-file)",
        path(&p("none.key"))
    );
    assert!(stderr(&out).contains(&message) && stdout(&out).is_empty(), "{}", stderr(&out));
    let env = [("AWS_ACCESS_KEY_ID", "AKIANOBODY"), ("AWS_SECRET_ACCESS_KEY", "x"), ("AWS_REGION", "us-east-1")];
    let out = bin_env(&[&label[..], &["--endpoint", "http://127.0.0.1:9"]].concat(), &env);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("values are never served online: --reveal-value needs --data-dir and the master key"),
        "{}",
        stderr(&out)
    );

    // A bad --as-of says what it takes.
    let out = bin(&["state", "--data-dir", d, "--as-of", "yesterday"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains(
            "--as-of takes a seq (such as 42) or an RFC 3339 time (such as 2026-11-27T03:12:00Z), not \"yesterday\""
        ),
        "{}",
        stderr(&out)
    );

    // check-proof with the wrong number of checkpoints for the proof.
    let cp = p("cp.json");
    assert!(bin(&["checkpoint", "--data-dir", d, "--out", path(&cp)]).status.success());
    let inclusion = bin(&["prove", "--data-dir", d, "--seq", "2", "--json"]);
    std::fs::write(p("inclusion.json"), stdout(&inclusion)).unwrap();
    let consistency =
        bin(&["prove", "--data-dir", d, "--from-checkpoint", path(&cp), "--to-checkpoint", path(&cp), "--json"]);
    assert!(consistency.status.success(), "{}", stdout(&consistency));
    std::fs::write(p("consistency.json"), stdout(&consistency)).unwrap();
    for (proof, checkpoints, message) in [
        ("inclusion.json", 2, "an inclusion proof is checked against one --checkpoint"),
        ("consistency.json", 1, "a consistency proof is checked against two --checkpoint (older, newer)"),
    ] {
        let proof = p(proof);
        let mut args = vec!["check-proof", "--proof", path(&proof)];
        args.extend(std::iter::repeat_n(["--checkpoint", path(&cp)], checkpoints).flatten());
        let out = bin(&args);
        assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
        assert!(stderr(&out).contains(message), "{}", stderr(&out));
    }
}

/// `serve` binds before it writes anything: on a port already taken it exits non-zero, names
/// the address, and leaves no master key or credentials behind.
#[test]
fn serve_on_a_taken_port_creates_no_keys() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    let mut child = Process::new(env!("CARGO_BIN_EXE_secret-ledger"))
        .args(["serve", "--data-dir", path(&data), "--listen", &addr])
        .env_remove("SECRET_LEDGER_MASTER_KEY_FILE")
        .env_remove("SECRET_LEDGER_DATABASE_URL")
        .env_remove("SECRET_LEDGER_METRICS_LISTEN")
        .env_remove("SECRET_LEDGER_LAMBDA_ENDPOINT")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            child.kill().unwrap();
            panic!("serve kept running on the taken address {addr}");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains(&format!("cannot listen on {addr}")), "{}", stderr(&out));
    for file in ["master.key", "credentials"] {
        assert!(!data.join(file).exists(), "{file} was created: {}", stderr(&out));
    }
    drop(taken);
}
