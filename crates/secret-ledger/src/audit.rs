//! The audit commands: history, state, export, checkpoint, prove, verify, rebuild. Each reads a
//! stopped data dir (or an export file), or asks a running server (`--endpoint`), and prints
//! text, or one JSON document with `--json`. Both sources give the same typed documents (built
//! by `ledger-audit`, offline here or online by the server), so the output does not depend on
//! where it came from.

use std::io::{BufReader, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use ledger_audit::history::{self, HistoryDoc, HistoryFilter, LedgerHistoryDoc};
use ledger_audit::proofs::{self, ConsistencyDoc, InclusionDoc, VerifyDoc};
use ledger_audit::state::{self, RevealedValue, StateAt, StateDoc};
use ledger_audit::AuditError;
use ledger_core::checkpoint::Checkpoint;
use ledger_core::time::{format_rfc3339_ms, parse_rfc3339};
use ledger_core::SecretValue;
use ledger_store::{LogStore, SledStore, SystemClock};
use serde_json::{json, Value};

use crate::remote::{Remote, RemoteError};
use crate::timeline::{self, PageFacts, Row, SecretRows};
use crate::trust;

/// A progress bar on a terminal; nothing when stderr is piped or JSON is asked for.
pub(crate) struct Progress {
    bar: Option<indicatif::ProgressBar>,
}

impl Progress {
    pub(crate) fn new(what: &str, quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            // Hidden until the first update knows the total (no `0/0` frame).
            let bar = indicatif::ProgressBar::with_draw_target(Some(0), indicatif::ProgressDrawTarget::hidden());
            let style =
                indicatif::ProgressStyle::with_template("{msg} [{bar:40}] {human_pos}/{human_len} events (eta {eta})")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                    .progress_chars("=> ");
            bar.set_style(style);
            bar.set_message(what.to_string());
            bar
        });
        Progress { bar }
    }

    pub(crate) fn update(&self, done: u64, total: u64) {
        if let Some(bar) = &self.bar {
            bar.set_length(total.max(done));
            bar.set_position(done);
            if bar.is_hidden() && total > 0 {
                bar.set_draw_target(indicatif::ProgressDrawTarget::stderr());
            }
        }
    }

    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// Where the log is read: a stopped data dir or a PostgreSQL database, or a running server.
pub(crate) enum Source {
    Dir(Local),
    Remote(Box<Remote>),
}

/// A log read directly: the sled data dir, or the PostgreSQL database given with
/// `--database-url` (the data dir then only holds the master key).
pub(crate) struct Local {
    pub(crate) data_dir: PathBuf,
    pub(crate) database_url: Option<String>,
}

impl Local {
    /// The store, opened for reading: it must hold a log already (nothing is created) and a sled
    /// data dir must not be in use.
    fn open(&self) -> anyhow::Result<Box<dyn LogStore>> {
        // The store's errors name the data dir or database themselves.
        Ok(match &self.database_url {
            Some(url) => Box::new(ledger_pg::PgStore::open_existing(url, ledger_pg::PgOptions::default())?),
            None => Box::new(SledStore::open_existing(&self.data_dir)?),
        })
    }

    /// Verifies the whole log, with the acknowledged head.
    fn verify(
        &self,
        progress: &mut dyn FnMut(u64, u64),
    ) -> anyhow::Result<Result<ledger_store::VerifyReport, ledger_store::VerifyFailure>> {
        Ok(match &self.database_url {
            Some(_) => ledger_store::verify_store(&*self.open()?, progress)?,
            None => ledger_store::verify_dir(&self.data_dir, progress)?,
        })
    }
}

/// Text for a terminal: control characters (escape sequences, line breaks in a tag value, a
/// label or a token) shown escaped, never sent raw.
fn clean(text: &str) -> String {
    if !text.chars().any(char::is_control) {
        return text.to_string();
    }
    text.chars().map(|c| if c.is_control() { c.escape_default().collect() } else { c.to_string() }).collect()
}

/// Refuses to overwrite an existing `--out` unless `--force`.
pub(crate) fn check_out(out: &Path, force: bool) -> anyhow::Result<()> {
    if out.exists() && !force {
        bail!("{} exists: give --force to overwrite it", out.display());
    }
    Ok(())
}

/// `1 secret`, `2 secrets`.
fn count(n: Option<u64>, noun: &str) -> String {
    let n = n.unwrap_or(0);
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

fn print_verify(doc: &VerifyDoc, json: bool) -> anyhow::Result<ExitCode> {
    let ok = doc.ok;
    if json {
        println!("{}", serde_json::to_string(doc)?);
    } else if ok {
        println!(
            "ok: {}, head {}, merkle root {}, {} checked, {} ({:.2}s)",
            count(doc.events, "event"),
            doc.head_hash.as_deref().unwrap_or(""),
            doc.merkle_root.as_deref().unwrap_or(""),
            count(doc.snapshots_checked, "snapshot"),
            count(doc.secrets, "secret"),
            doc.seconds.unwrap_or(0.0)
        );
        for r in doc.master_key_rotations.iter().flatten() {
            println!("master key rotated from key {} to key {} at seq {}", r.from_key_id, r.to_key_id, r.seq);
        }
    } else {
        let seq = doc.seq.map_or_else(|| "?".to_string(), |s| s.to_string());
        println!("FAILED at seq {seq}: {}", clean(doc.reason.as_deref().unwrap_or("")));
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// A kept checkpoint whose signature does not pass (`trust::judge`): a verification failure.
fn untrusted(path: &Path, why: &str, json_out: bool) -> ExitCode {
    let reason = format!("{}: {why}", path.display());
    if json_out {
        println!("{}", json!({ "ok": false, "verified": false, "seq": null, "reason": reason }));
    } else {
        println!("FAILED: {reason}");
    }
    ExitCode::from(1)
}

fn checkpoint_value(checkpoint: &Checkpoint) -> anyhow::Result<Value> {
    Ok(serde_json::from_str(&checkpoint.to_json())?)
}

fn outcome_doc(
    outcome: Result<ledger_store::VerifyReport, ledger_store::VerifyFailure>,
    started: std::time::Instant,
) -> VerifyDoc {
    VerifyDoc::new(&outcome, started.elapsed().as_secs_f64())
}

/// `verify --data-dir`, `verify --endpoint` or `verify --export`, optionally against a trusted
/// checkpoint.
pub(crate) fn verify(
    source: &Source,
    export: Option<&Path>,
    checkpoint: Option<&Path>,
    trusted_keys: &[PathBuf],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let keys = trust::read_trusted_keys(trusted_keys)?;
    let trusted = checkpoint.map(trust::read_checkpoint).transpose()?;
    let judgement = match (&trusted, checkpoint) {
        (Some(c), Some(path)) => match trust::judge(c, &keys) {
            Ok(j) => Some(j),
            Err(why) => return Ok(untrusted(path, &why, json)),
        },
        _ => None,
    };
    // The server reports no progress: no bar for it.
    let remote = export.is_none() && matches!(source, Source::Remote(_));
    let progress = Progress::new("verifying", json || remote);
    let doc = match (export, source) {
        (Some(file), _) => {
            let f = std::fs::File::open(file).with_context(|| format!("cannot open {}", file.display()))?;
            let outcome =
                ledger_audit::export::verify_export(&mut BufReader::new(f), trusted.as_ref(), &mut |d, t| {
                    progress.update(d, t)
                })?;
            outcome_doc(outcome, started)
        }
        (None, Source::Dir(local)) => {
            let outcome = local.verify(&mut |d, t| progress.update(d, t))?;
            let outcome = match (outcome, &trusted) {
                (Ok(report), Some(t)) => {
                    let log = local.open()?;
                    proofs::check_against(&*log, &report, t)?
                }
                (outcome, _) => outcome,
            };
            outcome_doc(outcome, started)
        }
        (None, Source::Remote(remote)) => {
            let input = match &trusted {
                Some(t) => json!({ "Checkpoint": checkpoint_value(t)? }),
                None => json!({}),
            };
            remote.doc("Verify", &input)?
        }
    };
    progress.finish();
    let mut doc = doc;
    if let Some(j) = &judgement {
        doc.checkpoint = Some(j.json());
    }
    let code = print_verify(&doc, json)?;
    if let (Some(j), false) = (&judgement, json) {
        println!("{}", j.describe());
    }
    Ok(code)
}

/// The timeline's rows of a history document, cleaned for display.
fn secret_rows(doc: &HistoryDoc) -> anyhow::Result<Vec<SecretRows>> {
    let row = |e: &history::EventDoc| -> anyhow::Result<Row> {
        Ok(Row {
            seq: e.seq,
            recorded_at_ms: parse_rfc3339(&e.recorded_at).context("an event without a time")?,
            actor: clean(&e.actor),
            request_id: clean(&e.request_id),
            operation: clean(&e.operation),
            event: clean(&e.event),
            change: clean(&e.change),
            label_move: e
                .label_move
                .as_ref()
                .map(|m| (clean(&m.label), m.from.as_deref().map(clean), m.to.as_deref().map(clean))),
        })
    };
    doc.secrets
        .iter()
        .map(|secret| {
            Ok(SecretRows {
                name: clean(&secret.name),
                region: clean(&secret.region),
                arn: clean(&secret.arn),
                rows: secret.events.iter().map(row).collect::<anyhow::Result<_>>()?,
            })
        })
        .collect()
}

/// The head and a verification of the whole log, for the timeline page.
fn page_facts(source: &Source) -> anyhow::Result<PageFacts> {
    let (head_seq, head_hash, verified) = match source {
        Source::Dir(local) => {
            let log = local.open()?;
            let (seq, hash) = log.head()?;
            let verified = match ledger_store::verify_store_upto(&*log, (seq, hash), &mut |_, _| {})? {
                Ok(report) => Ok(report.events),
                Err(failure) => Err(failure.to_string()),
            };
            (seq, hash.to_hex(), verified)
        }
        Source::Remote(remote) => {
            let doc: VerifyDoc = remote.doc("Verify", &json!({}))?;
            let events = doc.events.unwrap_or(0);
            let verified = match doc.ok {
                true => Ok(events),
                false => Err(format!("at seq {}: {}", doc.seq.unwrap_or(0), doc.reason.as_deref().unwrap_or(""))),
            };
            (events, doc.head_hash.unwrap_or_default(), verified)
        }
    };
    Ok(PageFacts { head_seq, head_hash, verified, generated_at_ms: SystemClock::now_ms() })
}

/// The members of a `SecretLedger.History` request for `filter`.
fn filter_input(filter: &HistoryFilter) -> Value {
    let mut input = json!({});
    let members = [
        ("Actor", &filter.actor),
        ("Operation", &filter.operation),
        ("Since", &filter.since),
        ("Until", &filter.until),
        ("Region", &filter.region),
    ];
    for (name, value) in members {
        if let Some(v) = value {
            input[name] = Value::from(v.as_str());
        }
    }
    input
}

/// `history` without `--secret-id`: every event of the ledger the filter keeps (with a region,
/// of that region's secrets only), each with its secret's name, region and ARN.
pub(crate) fn ledger_history(source: &Source, filter: &HistoryFilter, json_out: bool) -> anyhow::Result<ExitCode> {
    let doc: LedgerHistoryDoc = match source {
        Source::Dir(local) => {
            let log = local.open()?;
            history::ledger_history(&*log, log.head()?.0, filter)?
        }
        Source::Remote(remote) => remote.doc("History", &filter_input(filter))?,
    };
    if json_out {
        println!("{}", serde_json::to_string(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    let within = doc.filters.region.as_deref().map(|r| format!(" of secrets in region {}", clean(r)));
    println!("{} events from seq {} to {}{}", doc.events.len(), doc.from_seq, doc.to_seq, within.unwrap_or_default());
    for e in &doc.events {
        let operation = if e.operation.is_empty() { "-".to_string() } else { clean(&e.operation) };
        // The secret an event concerns; events of the ledger itself (a master key rotation) have none.
        let secret = match (&e.name, &e.region, &e.arn) {
            (Some(name), Some(region), Some(arn)) => format!("{} [{}] {}", clean(name), clean(region), clean(arn)),
            _ => "(the ledger)".to_string(),
        };
        println!(
            "{:>8}  {}  {:<20} {:<24} {:<18} {secret}  {}  (request {})",
            e.seq,
            clean(&e.recorded_at),
            clean(&e.actor),
            operation,
            clean(&e.event),
            clean(&e.change),
            clean(&e.request_id)
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `history`: the secrets `secret_id` names in `region` (offline, `None` accepts a name used in
/// one region only; online the server resolves in the signing region).
pub(crate) fn history(
    source: &Source,
    secret_id: &str,
    region: Option<&str>,
    filter: &HistoryFilter,
    json_out: bool,
    html: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let found = match source {
        Source::Dir(local) => {
            let log = local.open()?;
            match history::history(&*log, log.head()?.0, secret_id, region, filter) {
                Ok(doc) => Ok(doc),
                Err(AuditError::NotFound(message)) => Err(message),
                Err(e) => return Err(e.into()),
            }
        }
        Source::Remote(remote) => match remote.doc::<HistoryDoc>("History", &{
            let mut input = filter_input(filter);
            input["SecretId"] = Value::from(secret_id);
            input
        }) {
            Ok(doc) => Ok(doc),
            Err(e) => match e.downcast::<RemoteError>() {
                Ok(r) if r.code == "ResourceNotFoundException" => Err(r.message),
                Ok(r) => return Err(r.into()),
                Err(e) => return Err(e),
            },
        },
    };
    let doc = match found {
        Ok(doc) => doc,
        Err(message) => {
            eprintln!("{message}");
            return Ok(ExitCode::from(2));
        }
    };
    let secrets = secret_rows(&doc)?;
    if let Some(path) = html {
        let facts = page_facts(source)?;
        std::fs::write(path, timeline::page(secret_id, &secrets, &facts))
            .with_context(|| format!("cannot write {}", path.display()))?;
        eprintln!("wrote the timeline to {}", path.display());
    }
    if json_out {
        println!("{}", serde_json::to_string(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    for (i, secret) in secrets.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let again = if i > 0 { " (re-created after a purge: another secret)" } else { "" };
        println!("{} in {}: {}{again}", secret.name, secret.region, secret.arn);
        for e in &secret.rows {
            let operation = if e.operation.is_empty() { "-" } else { e.operation.as_str() };
            println!(
                "{:>8}  {}  {:<20} {:<24} {:<18} {}  (request {})",
                e.seq,
                format_rfc3339_ms(e.recorded_at_ms),
                e.actor,
                operation,
                e.event,
                e.change,
                e.request_id
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) struct StateArgs<'a> {
    pub source: &'a Source,
    pub as_of: &'a str,
    pub secret_id: Option<&'a str>,
    /// The region `secret_id` resolves in (offline; online the signing region decides); without
    /// `secret_id`, the region the whole ledger is narrowed to.
    pub region: Option<&'a str>,
    pub label: Option<&'a str>,
    /// Open and print the label holder's value (offline only).
    pub reveal_value: bool,
    /// Show a seq inside a request as asked.
    pub exact: bool,
    pub master_key_file: Option<PathBuf>,
    pub json: bool,
}

/// The opened value of the label's holder, offline only, given the master key.
fn open_label_value(
    store: &dyn LogStore,
    key_file: &Path,
    state: &StateAt,
    label: Option<&str>,
) -> anyhow::Result<Option<RevealedValue>> {
    let Some((secret, Some(version))) = state.label_holder(label) else { return Ok(None) };
    if !key_file.exists() {
        let shown = ledger_store::master_key::shown(key_file);
        bail!("--reveal-value needs the master key: {} does not exist (give --master-key-file)", shown.display());
    }
    let text = ledger_store::master_key::read_secret(key_file)?;
    let master = ledger_store::master_key::parse_master_key(&text, key_file)?;
    Ok(Some(match ledger_audit::events::open_version_value(store, &master, secret, &version)? {
        Some(SecretValue::String(s)) => RevealedValue::SecretString(s.as_str().to_string()),
        Some(SecretValue::Binary(b)) => RevealedValue::SecretBinaryHex(hex::encode(&b[..])),
        None => RevealedValue::Unavailable(
            "the secret was purged (data key destroyed) or the value cannot be opened".to_string(),
        ),
    }))
}

pub(crate) fn state(args: StateArgs<'_>) -> anyhow::Result<ExitCode> {
    let doc = match args.source {
        Source::Dir(local) => {
            let log = local.open()?;
            let state = state::state_at(&*log, log.head()?.0, args.as_of, args.exact, args.secret_id, args.region)?;
            let value = match args.reveal_value {
                true => {
                    let key_file =
                        ledger_store::master_key::master_key_path(args.master_key_file.as_deref(), &local.data_dir);
                    open_label_value(&*log, &key_file, &state, args.label)?
                }
                false => None,
            };
            StateDoc::new(&state, args.label, value)
        }
        Source::Remote(remote) => {
            if args.reveal_value {
                bail!("values are never served online: --reveal-value needs --data-dir and the master key");
            }
            let mut input = json!({ "AsOf": args.as_of, "Exact": args.exact });
            if let Some(id) = args.secret_id {
                input["SecretId"] = Value::from(id);
            }
            if let Some(label) = args.label {
                input["Label"] = Value::from(label);
            }
            // Online a SecretId resolves in the signing region; `Region` narrows the whole ledger.
            if let (None, Some(region)) = (args.secret_id, args.region) {
                input["Region"] = Value::from(region);
            }
            remote.doc::<StateDoc>("State", &input)?
        }
    };
    if args.json {
        println!("{}", serde_json::to_string(&doc)?);
        return Ok(ExitCode::SUCCESS);
    }
    print_state(&doc);
    match (args.secret_id, &doc.region) {
        (Some(_), _) if doc.secrets.is_empty() => println!("(no such secret at that point)"),
        (None, Some(region)) if doc.secrets.is_empty() => {
            println!("(no secret in region {} at that point)", clean(region))
        }
        _ => {}
    }
    Ok(ExitCode::SUCCESS)
}

fn print_state(doc: &StateDoc) {
    if let Some(note) = &doc.note {
        println!("note: {}", clean(note));
    }
    let time = doc.as_of_time.as_deref().unwrap_or("before the first event");
    println!("state as of seq {} ({})", doc.as_of_seq, clean(time));
    let mut region = None;
    for s in &doc.secrets {
        // Grouped by region (the document is ordered by region, then name).
        if region != Some(&s.region) {
            region = Some(&s.region);
            println!("region {}", clean(&s.region));
        }
        let deleted = s.deletion_scheduled_for.as_ref().map(|d| format!(" (scheduled for deletion on {})", clean(d)));
        println!("{} [{}] {}{}", clean(&s.name), clean(&s.region), clean(&s.arn), deleted.unwrap_or_default());
        for v in &s.versions {
            let labels: Vec<String> = v.labels.iter().map(|l| clean(l)).collect();
            println!("  {}  created {}  [{}]", clean(&v.version_id), clean(&v.created_at), labels.join(","));
        }
    }
    if let Some(label) = &doc.label {
        let (name, arn) = (clean(&label.label), clean(&label.arn));
        match &label.version_id {
            Some(version) => println!("{name} was on version {} of {arn}", clean(version)),
            None => println!("{name} was on no version of {arn}"),
        }
        match &label.value {
            Some(RevealedValue::SecretString(s)) => println!("value: {s}"),
            Some(RevealedValue::SecretBinaryHex(h)) => println!("value (binary, hex): {h}"),
            Some(RevealedValue::Unavailable(why)) => println!("value: unavailable ({why})"),
            None => {}
        }
    }
}

/// Remembers the last non-empty line written through it (an export's closing checkpoint).
struct LastLine<W: Write> {
    inner: W,
    current: Vec<u8>,
    last: Vec<u8>,
}

impl<W: Write> Write for LastLine<W> {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(data)?;
        for &b in &data[..n] {
            if b == b'\n' {
                if !self.current.iter().all(u8::is_ascii_whitespace) {
                    self.last = std::mem::take(&mut self.current);
                }
                self.current.clear();
            } else {
                self.current.push(b);
            }
        }
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

pub(crate) fn export(source: &Source, out: &Path, origin: Option<String>, json_out: bool) -> anyhow::Result<ExitCode> {
    let file = std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    let mut writer = std::io::BufWriter::new(file);
    let checkpoint = match source {
        Source::Dir(local) => {
            let log = local.open()?;
            let origin = origin.unwrap_or_else(|| log.location());
            let progress = Progress::new("exporting", json_out);
            let checkpoint =
                ledger_audit::export::export(&*log, &mut writer, &origin, SystemClock::now_ms(), &mut |d, t| {
                    progress.update(d, t)
                })?;
            progress.finish();
            checkpoint
        }
        Source::Remote(remote) => {
            let input = match &origin {
                Some(o) => json!({ "Origin": o }),
                None => json!({}),
            };
            let mut tee = LastLine { inner: &mut writer, current: Vec::new(), last: Vec::new() };
            remote.call_to_writer("Export", &input, &mut tee)?;
            let last = String::from_utf8_lossy(&tee.last).into_owned();
            let closing: Option<Value> = serde_json::from_str(&last).ok();
            match closing.filter(|c| c["type"] == "checkpoint").map(|_| Checkpoint::from_json(&last)) {
                Some(Ok(checkpoint)) => checkpoint,
                _ => bail!(
                    "the export from the server is incomplete (no closing checkpoint); {} is unusable",
                    out.display()
                ),
            }
        }
    };
    writer.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    if json_out {
        println!("{}", checkpoint.to_json());
    } else {
        println!(
            "exported {} events to {}; merkle root {}",
            checkpoint.size,
            out.display(),
            hex::encode(checkpoint.merkle_root)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn checkpoint(
    source: &Source,
    out: &Path,
    origin: Option<String>,
    signing_key: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let mut checkpoint = match source {
        Source::Dir(local) => {
            let log = local.open()?;
            let origin = origin.unwrap_or_else(|| log.location());
            proofs::checkpoint(&*log, &origin, SystemClock::now_ms())?
        }
        Source::Remote(remote) => {
            let input = match &origin {
                Some(o) => json!({ "Origin": o }),
                None => json!({}),
            };
            let doc = remote.call("Checkpoint", &input)?;
            Checkpoint::from_json(&doc.to_string()).context("the server's checkpoint is malformed")?
        }
    };
    if let Some(path) = signing_key {
        checkpoint.sign(&trust::read_signing_key(path)?).context("cannot sign the checkpoint")?;
    }
    let mut file = std::fs::File::create(out).with_context(|| format!("cannot create {}", out.display()))?;
    writeln!(file, "{}", checkpoint.to_json())?;
    file.sync_all()?;
    println!("{}", checkpoint.to_json());
    Ok(ExitCode::SUCCESS)
}

fn print_proof(doc: &impl serde::Serialize, verified: bool, json_out: bool) -> anyhow::Result<ExitCode> {
    if json_out {
        println!("{}", serde_json::to_string(doc)?);
    } else {
        println!("{}", serde_json::to_string_pretty(doc)?);
    }
    Ok(if verified { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `prove --seq N [--checkpoint C]`: an inclusion proof in the whole log, or in the tree of a
/// kept checkpoint (checked against its root and head hash).
pub(crate) fn prove_inclusion(
    source: &Source,
    seq: u64,
    kept: Option<&Path>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let kept = match kept {
        Some(path) => {
            let c = trust::read_checkpoint(path)?;
            if let Err(why) = trust::judge(&c, &[]) {
                return Ok(untrusted(path, &why, json_out));
            }
            Some(c)
        }
        None => None,
    };
    let mut doc: InclusionDoc = match source {
        Source::Dir(local) => {
            let log = local.open()?;
            let head = log.head()?.0;
            let size = kept.as_ref().map_or(head, |c| c.size);
            if size > head {
                bail!("the checkpoint covers {size} records; the log has {head}: the log was cut short");
            }
            proofs::inclusion(&*log, size, seq)?
        }
        Source::Remote(remote) => {
            let mut input = json!({ "Seq": seq });
            if let Some(c) = &kept {
                input["TreeSize"] = Value::from(c.size);
            }
            let mut doc: InclusionDoc = remote.doc("Prove", &input)?;
            // Not the server's word: the proof is checked here.
            doc.verified = doc.seq == seq && doc.check();
            doc
        }
    };
    if let Some(c) = &kept {
        doc.verified = doc.verified && doc.check_against(c);
    }
    print_proof(&doc, doc.verified, json_out)
}

pub(crate) fn prove_consistency(source: &Source, from: &Path, to: &Path, json_out: bool) -> anyhow::Result<ExitCode> {
    let (a, b) = (trust::read_checkpoint(from)?, trust::read_checkpoint(to)?);
    for (c, path) in [(&a, from), (&b, to)] {
        if let Err(why) = trust::judge(c, &[]) {
            return Ok(untrusted(path, &why, json_out));
        }
    }
    if a.size > b.size {
        bail!("the first checkpoint ({}) is larger than the second ({})", a.size, b.size);
    }
    let doc: ConsistencyDoc = match source {
        Source::Dir(local) => {
            let log = local.open()?;
            proofs::consistency(&*log, log.head()?.0, &a, &b)?
        }
        Source::Remote(remote) => {
            let input = json!({ "FromCheckpoint": checkpoint_value(&a)?, "ToCheckpoint": checkpoint_value(&b)? });
            let mut doc: ConsistencyDoc = remote.doc("Prove", &input)?;
            // Checked here against the two checkpoints read from files, not taken from the server.
            doc.verified = doc.check(&a, &b);
            doc
        }
    };
    print_proof(&doc, doc.verified, json_out)
}

pub(crate) fn rebuild(local: &Local, json_out: bool) -> anyhow::Result<ExitCode> {
    let log = local.open()?;
    let progress = Progress::new("rebuilding", json_out);
    let n = ledger_store::rebuild_derived(&*log, 100_000, &mut |d, t| progress.update(d, t))?;
    progress.finish();
    if json_out {
        println!("{}", json!({ "ok": true, "events": n }));
    } else {
        println!("rebuilt snapshots and indexes from {n} events");
    }
    Ok(ExitCode::SUCCESS)
}

/// `migrate`: the log of `from` copied verbatim into the empty `to`.
pub(crate) fn migrate(from: &Local, to: &Local, json_out: bool) -> anyhow::Result<ExitCode> {
    let source = from.open()?;
    let destination: Box<dyn LogStore> = match &to.database_url {
        Some(url) => Box::new(ledger_pg::PgStore::connect(url, ledger_pg::PgOptions::default())?),
        None => Box::new(SledStore::open(&to.data_dir, ledger_store::SledOptions::streaming())?),
    };
    let progress = Progress::new("copying", json_out);
    let (events, hash) = ledger_store::copy_log(&*source, &*destination, &mut |d, t| progress.update(d, t))?;
    progress.finish();
    if json_out {
        let doc = json!({ "ok": true, "events": events, "head_hash": hash.to_hex(), "to": destination.location() });
        println!("{doc}");
    } else {
        println!("copied {events} events to {}; head {}", destination.location(), hash.to_hex());
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) fn rotate_master_key(
    local: &Local,
    master_key_file: Option<&Path>,
    json_out: bool,
) -> anyhow::Result<ExitCode> {
    let data_dir = local.data_dir.as_path();
    let (from, to) = match &local.database_url {
        Some(url) => {
            let open = || -> Result<std::sync::Arc<dyn LogStore>, ledger_store::StoreError> {
                Ok(std::sync::Arc::new(ledger_pg::PgStore::connect(url, ledger_pg::PgOptions::default())?))
            };
            ledger_store::rekey::rotate_master_key_of(&open, master_key_file, data_dir, &mut |_| true)?
        }
        None => ledger_store::rekey::rotate_master_key(master_key_file, data_dir, &mut |_| true)?,
    };
    let path = ledger_store::master_key::master_key_path(master_key_file, data_dir);
    if json_out {
        println!("{}", json!({ "ok": true, "from_key_id": from, "to_key_id": to, "master_key_file": path }));
    } else {
        println!("master key {from} replaced by key {to} in {}; every data key is re-wrapped", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
