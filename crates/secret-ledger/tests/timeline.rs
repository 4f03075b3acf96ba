//! `history --html` in a real browser: headless Chromium (Debian's `chromium`, which `.ci/run`
//! installs) renders the page, and the page's own measurement (`#layout-report`) says what is
//! on screen: the current AWSCURRENT span inside its lane with a width, every version id in
//! full, and at a thousand events no span narrower than a few pixels. Without Chromium the test
//! says loudly that it skipped.

#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command as Process;
use std::sync::Arc;

use ledger_core::crypto::MasterKey;
use ledger_core::{Command, CreateSecret, PutSecretValue, Scope, SecretValue, UpdateSecretVersionStage};
use ledger_store::{Ledger, LedgerOptions, ManualClock, RequestMeta};

const KEY: [u8; 32] = [0x24; 32];
/// Narrowest span accepted in the default view, in CSS pixels.
const SPAN_PX_MIN: f64 = 4.0;

fn chromium() -> Option<&'static str> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| Path::new(p).exists())
}

fn token(n: u32) -> String {
    format!("{n:0>36}")
}

/// `db/prod` rotated `rotations` times (put to AWSPENDING, then promote), a day apart, so old
/// versions can be pruned under the version quota.
fn history(rotations: u32) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let clock = Arc::new(ManualClock::new(1_767_225_600_000));
    let options = LedgerOptions { clock: clock.clone(), ..LedgerOptions::default() };
    let ledger = Ledger::open(dir.path(), MasterKey::from_bytes(1, KEY), options).unwrap();
    let run = |cmd| ledger.execute(cmd, &RequestMeta::local(Scope::new("us-east-1", "000000000000"))).unwrap().unwrap();
    run(Command::CreateSecret(CreateSecret {
        name: "db/prod".into(),
        client_request_token: Some(token(0)),
        value: Some(SecretValue::string("v0")),
        ..CreateSecret::default()
    }));
    for n in 1..=rotations {
        clock.advance(25 * 3_600_000);
        run(Command::PutSecretValue(PutSecretValue {
            secret_id: "db/prod".into(),
            client_request_token: Some(token(n)),
            value: Some(SecretValue::string(format!("v{n}"))),
            version_stages: Some(vec!["AWSPENDING".into()]),
        }));
        run(Command::UpdateSecretVersionStage(UpdateSecretVersionStage {
            secret_id: "db/prod".into(),
            version_stage: "AWSCURRENT".into(),
            move_to_version_id: Some(token(n)),
            remove_from_version_id: Some(token(n - 1)),
        }));
    }
    ledger.close().unwrap();
    dir
}

/// The page for `dir`, rendered: (the DOM after scripts, the layout report).
fn render(dir: &Path, browser: &str) -> (String, serde_json::Value) {
    let html = dir.join("history.html");
    let out = Process::new(env!("CARGO_BIN_EXE_secret-ledger"))
        .args(["history", "--data-dir", dir.to_str().unwrap(), "--secret-id", "db/prod", "--region", "us-east-1"])
        .args(["--html", html.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let profile = tempfile::tempdir().unwrap();
    let out = Process::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1280,900",
            "--virtual-time-budget=3000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg("--dump-dom")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    let dom = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && dom.contains("layout-report"),
        "chromium: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let start = dom.find("id=\"layout-report\"").unwrap();
    let text = &dom[start..];
    let text = &text[text.find('>').unwrap() + 1..text.find("</pre>").unwrap()];
    let json = text.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", "\"").replace("&amp;", "&");
    (dom, serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}: {json}")))
}

fn lane<'a>(report: &'a serde_json::Value, label: &str) -> &'a serde_json::Value {
    report["lanes"].as_array().unwrap().iter().find(|l| l["label"] == label).unwrap()
}

fn check(rotations: u32) {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: Chromium is not installed (apt-get install chromium); the timeline was not rendered");
        return;
    };
    let dir = history(rotations);
    let (dom, report) = render(dir.path(), browser);
    // The current AWSCURRENT span is inside its lane, with a width.
    let current = lane(&report, "AWSCURRENT");
    let (lane_x, lane_w) = (current["x"].as_f64().unwrap(), current["width"].as_f64().unwrap());
    let spans = current["spans"].as_array().unwrap();
    let now: Vec<&serde_json::Value> = spans.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(now.len(), 1, "{current}");
    let (x, w) = (now[0]["x"].as_f64().unwrap(), now[0]["width"].as_f64().unwrap());
    assert_eq!(now[0]["version"], token(rotations));
    assert!(
        w >= SPAN_PX_MIN && x >= lane_x - 0.5 && x + w <= lane_x + lane_w + 0.5,
        "span {x}+{w} in lane {lane_x}+{lane_w}"
    );
    // No span too narrow to read, in any lane.
    for l in report["lanes"].as_array().unwrap() {
        for s in l["spans"].as_array().unwrap() {
            assert!(s["width"].as_f64().unwrap() >= SPAN_PX_MIN, "a span of {} px in {}", s["width"], l["label"]);
        }
    }
    // Every version id appears in full.
    for n in 0..=rotations {
        assert!(dom.contains(&token(n)), "version {} missing", token(n));
    }
    // The page names the region, the ARN and the verification.
    assert!(dom.contains("us-east-1") && dom.contains("arn:aws:secretsmanager:us-east-1:000000000000:secret:db/prod-"));
    assert!(dom.contains("class=\"ok\">verified</span>"));
}

#[test]
fn a_short_history_shows_the_current_span() {
    check(3);
}

#[test]
fn a_thousand_events_stay_readable() {
    // 1 + 200 × 5 events (a put with its AWSPENDING move and pruning, a promotion of two moves).
    check(200);
}
