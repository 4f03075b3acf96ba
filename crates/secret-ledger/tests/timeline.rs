//! `history --html` in a real browser: headless Chromium (Debian's `chromium`, which `.ci/run`
//! installs) renders the page, and the page's own measurement (`#layout-report`) says what is
//! on screen: the current AWSCURRENT span inside its lane with a width and inside the visible
//! part of the scrolling lanes (the default view shows the recent end, even at a thousand
//! events), every version id in full, no span narrower than a few pixels, one colour per
//! version (lanes and legend agree, versions differ), the span and event tables shown, and no
//! network URL. The print rules are checked the same way (a copy of the page whose print rules
//! apply on screen, in a page-sized window: the lanes squeezed onto the page with their
//! colours), and Chromium prints the page to a PDF. Without Chromium the test says loudly, on
//! the process's stderr, that it skipped; with `SECRET_LEDGER_REQUIRE_CHROMIUM` set (as CI
//! does) that is a failure.

#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command as Process;
use std::sync::Arc;

use ledger_core::crypto::MasterKey;
use ledger_core::{Command, CreateSecret, PutSecretValue, Scope, SecretValue, UpdateSecretVersionStage};
use ledger_store::{Ledger, LedgerOptions, ManualClock, RequestMeta};
use serde_json::Value;

const KEY: [u8; 32] = [0x24; 32];
/// Narrowest span accepted in the default view, in CSS pixels.
const SPAN_PX_MIN: f64 = 4.0;
/// The window of the screen view: a laptop.
const SCREEN: (u32, u32) = (1280, 900);
/// The window of the print emulation: an A4 page at 96 dpi.
const PAGE: (u32, u32) = (794, 1123);

/// Chromium, or `None` after saying so on the process's stderr (the test harness captures
/// `eprintln!` of tests that pass, and a skip must be seen); a failure instead when
/// `SECRET_LEDGER_REQUIRE_CHROMIUM` is set.
fn chromium(test: &str) -> Option<&'static str> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].into_iter().find(|p| Path::new(p).exists());
    if found.is_none() {
        assert!(
            std::env::var_os("SECRET_LEDGER_REQUIRE_CHROMIUM").is_none(),
            "SECRET_LEDGER_REQUIRE_CHROMIUM is set but Chromium is not installed (apt-get install chromium)"
        );
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED {test}: Chromium is not installed (apt-get install chromium); the timeline was not rendered"
        );
    }
    found
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

/// Writes the page of `db/prod` in `dir` with `history --html`; its path.
fn write_page(dir: &Path) -> PathBuf {
    let html = dir.join("history.html");
    let out = Process::new(env!("CARGO_BIN_EXE_secret-ledger"))
        .args(["history", "--data-dir", dir.to_str().unwrap(), "--secret-id", "db/prod", "--region", "us-east-1"])
        .args(["--html", html.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    html
}

/// Headless Chromium with a window of `size`, a fresh profile and nothing that goes online.
fn headless(browser: &str, profile: &Path, size: (u32, u32)) -> Process {
    let mut cmd = Process::new(browser);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--virtual-time-budget=3000",
    ])
    .arg(format!("--window-size={},{}", size.0, size.1))
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

/// The page `html` rendered in a window of `size`: (the DOM after scripts, the layout report).
fn render(html: &Path, browser: &str, size: (u32, u32)) -> (String, Value) {
    let profile = tempfile::tempdir().unwrap();
    let out = headless(browser, profile.path(), size)
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

/// The rules of the page's `@media print` block.
fn print_rules(page: &str) -> &str {
    let start = page.find("@media print{").expect("no print stylesheet") + "@media print{".len();
    let mut depth = 1;
    for (i, c) in page[start..].char_indices() {
        depth += match c {
            '{' => 1,
            '}' => -1,
            _ => 0,
        };
        if depth == 0 {
            return &page[start..start + i];
        }
    }
    panic!("unterminated print stylesheet")
}

/// The layout report of the page as printed: a copy whose print rules apply on screen as well
/// (in the same place of the cascade), rendered in a window the size of a page.
fn render_print(html: &Path, browser: &str) -> Value {
    let page = std::fs::read_to_string(html).unwrap();
    let rules = print_rules(&page);
    for rule in rules.split('}').filter(|r| r.contains("display:none")) {
        let selectors = rule.split('{').next().unwrap();
        let hidden =
            selectors.split(',').map(str::trim).find(|s| [".scroll", ".lanes", ".lane", ".span", ".axis"].contains(s));
        assert!(hidden.is_none(), "print hides the timeline: {rule}}}");
    }
    assert!(rules.contains("print-color-adjust:exact"), "print drops the colours: {rules}");
    let copy = html.with_file_name("history-print.html");
    std::fs::write(&copy, page.replacen("@media print{", "@media all{", 1)).unwrap();
    render(&copy, browser, PAGE).1
}

/// Chromium prints the page: a PDF of a page or more.
fn check_pdf(html: &Path, browser: &str) {
    let profile = tempfile::tempdir().unwrap();
    let pdf = html.with_file_name("history.pdf");
    let out = headless(browser, profile.path(), SCREEN)
        .arg("--no-pdf-header-footer")
        .arg(format!("--print-to-pdf={}", pdf.display()))
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium: {}", String::from_utf8_lossy(&out.stderr));
    let bytes = std::fs::read(&pdf).unwrap();
    assert!(bytes.starts_with(b"%PDF-") && bytes.len() > 10_000, "a PDF of {} bytes", bytes.len());
}

fn lane<'a>(report: &'a Value, label: &str) -> &'a Value {
    report["lanes"].as_array().unwrap().iter().find(|l| l["label"] == label).unwrap()
}

fn f(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("no {key} in {v}"))
}

/// How far two rectangles of the report overlap: (width, height); negative if not at all.
fn overlap(a: &Value, b: &Value) -> (f64, f64) {
    let across = (f(a, "x") + f(a, "width")).min(f(b, "x") + f(b, "width")) - f(a, "x").max(f(b, "x"));
    let down = (f(a, "y") + f(a, "height")).min(f(b, "y") + f(b, "height")) - f(a, "y").max(f(b, "y"));
    (across, down)
}

/// The current AWSCURRENT span: the newest version, inside its lane, at least `min_px` wide,
/// and at least that much of it in the visible part of the scroll box and in the window; and
/// the lane's name visible too.
fn check_current_in_view(report: &Value, rotations: u32, min_px: f64) {
    let current = lane(report, "AWSCURRENT");
    let (lane_x, lane_w) = (f(current, "x"), f(current, "width"));
    let spans = current["spans"].as_array().unwrap();
    let now: Vec<&Value> = spans.iter().filter(|s| s["current"] == true).collect();
    assert_eq!(now.len(), 1, "{current}");
    let span = now[0];
    let (x, w) = (f(span, "x"), f(span, "width"));
    assert_eq!(span["version"], token(rotations));
    assert!(
        w >= min_px && x >= lane_x - 0.5 && x + w <= lane_x + lane_w + 0.5,
        "span {x}+{w} in lane {lane_x}+{lane_w}"
    );
    let view = &current["view"];
    for (what, rect) in [("the scroll box's visible part", view), ("the window", &report["viewport"])] {
        let (across, down) = overlap(span, rect);
        assert!(across >= min_px && down > 0.0, "current span {span} is not in {what} {rect}");
        let (across, down) = overlap(&current["name"], rect);
        assert!(across > 0.0 && down > 0.0, "the lane's name {} is not in {what} {rect}", current["name"]);
    }
}

/// One colour per version: its spans in every lane and its legend entry alike, and no two
/// versions alike.
fn check_colours(report: &Value) {
    let mut legend: BTreeMap<&str, &str> = BTreeMap::new();
    for entry in report["legend"].as_array().unwrap() {
        let before = legend.insert(entry["version"].as_str().unwrap(), entry["colour"].as_str().unwrap());
        assert!(before.is_none(), "{} twice in the legend", entry["version"]);
    }
    for l in report["lanes"].as_array().unwrap() {
        for s in l["spans"].as_array().unwrap() {
            let version = s["version"].as_str().unwrap();
            assert_eq!(Some(&s["colour"].as_str().unwrap()), legend.get(version), "{version} in {}", l["label"]);
        }
    }
    let distinct: BTreeSet<&str> = legend.values().copied().collect();
    assert_eq!(distinct.len(), legend.len(), "two versions share a colour: {legend:?}");
}

/// The details readable without hovering: the span and event tables shown, a row per span of
/// the lanes (same label and version, in the same order), the current AWSCURRENT held `now`,
/// and a row per event of the secret.
fn check_details(dom: &str, report: &Value, rotations: u32) {
    assert_eq!(report["tablesShown"], true, "the span or event table is missing or hidden");
    let rows = report["spanRows"].as_array().unwrap();
    let cell = |row: &Value, i: usize| row[i].as_str().unwrap().to_string();
    let in_table: Vec<(String, String)> = rows.iter().map(|r| (cell(r, 0), cell(r, 1))).collect();
    let mut in_lanes = Vec::new();
    for l in report["lanes"].as_array().unwrap() {
        for s in l["spans"].as_array().unwrap() {
            in_lanes.push((l["label"].as_str().unwrap().to_string(), s["version"].as_str().unwrap().to_string()));
        }
    }
    assert_eq!(in_table, in_lanes, "the span table and the lanes differ");
    let held: Vec<String> =
        rows.iter().filter(|r| r[0] == "AWSCURRENT" && r[3] == "now (still held)").map(|r| cell(r, 1)).collect();
    assert_eq!(held, [token(rotations)]);
    let count = dom.find(" events, ").map(|end| &dom[..end]).unwrap();
    let count = &count[count.rfind(|c: char| !c.is_ascii_digit()).unwrap() + 1..];
    assert_eq!(report["eventRows"].as_u64(), Some(count.parse().unwrap()), "a row per event");
}

/// Nothing from the network: no URL attribute names a remote resource, and no stylesheet loads
/// one.
fn check_offline(page: &str, report: &Value) {
    for url in report["urls"].as_array().unwrap() {
        let url = url.as_str().unwrap().trim().to_ascii_lowercase();
        assert!(!url.starts_with("http://") && !url.starts_with("https://") && !url.starts_with("//"), "{url}");
    }
    assert!(!page.contains("url(") && !page.contains("@import"), "the stylesheet loads something");
}

/// Printed: the whole timeline on the page (nothing to scroll), every span drawn inside its
/// lane, with its colour kept, and the current AWSCURRENT span on the page.
fn check_print(report: &Value, rotations: u32) {
    check_current_in_view(report, rotations, 1.0);
    let page_w = f(&report["viewport"], "width");
    for l in report["lanes"].as_array().unwrap() {
        assert!(
            f(l, "overflow") <= 1.0 && f(l, "width") <= page_w,
            "printed lane {} is wider than the page ({page_w} px): width {}, overflow {}",
            l["label"],
            l["width"],
            l["overflow"]
        );
        for s in l["spans"].as_array().unwrap() {
            let (x, w) = (f(s, "x"), f(s, "width"));
            assert!(w > 0.0 && x >= f(l, "x") - 0.5 && x + w <= f(l, "x") + f(l, "width") + 0.5, "printed span {s}");
            assert_eq!(s["adjust"], "exact", "printed span {s} may lose its colour");
        }
    }
}

/// The page of `rotations` rotations, on screen and printed; `test` names the test in a skip.
fn check(test: &str, rotations: u32) {
    let Some(browser) = chromium(test) else { return };
    let dir = history(rotations);
    let html = write_page(dir.path());
    let page = std::fs::read_to_string(&html).unwrap();
    let (dom, report) = render(&html, browser, SCREEN);
    check_current_in_view(&report, rotations, SPAN_PX_MIN);
    // No span too narrow to read, in any lane.
    for l in report["lanes"].as_array().unwrap() {
        for s in l["spans"].as_array().unwrap() {
            assert!(f(s, "width") >= SPAN_PX_MIN, "a span of {} px in {}", s["width"], l["label"]);
        }
    }
    check_colours(&report);
    check_details(&dom, &report, rotations);
    check_offline(&page, &report);
    // Every version id appears in full.
    for n in 0..=rotations {
        assert!(dom.contains(&token(n)), "version {} missing", token(n));
    }
    // The page names the region, the ARN and the verification.
    assert!(dom.contains("us-east-1") && dom.contains("arn:aws:secretsmanager:us-east-1:000000000000:secret:db/prod-"));
    assert!(dom.contains("class=\"ok\">verified</span>"));
    check_print(&render_print(&html, browser), rotations);
    check_pdf(&html, browser);
}

#[test]
fn a_short_history_shows_the_current_span() {
    check("a_short_history_shows_the_current_span", 3);
}

#[test]
fn a_thousand_events_stay_readable() {
    // 904 events, 601 label changes (a put with its AWSPENDING move and pruning, a promotion of
    // two moves).
    check("a_thousand_events_stay_readable", 200);
}
