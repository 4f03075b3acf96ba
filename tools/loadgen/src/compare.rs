//! `loadgen compare`: starts `secret-ledger serve` (its release binary, on a fresh data dir with
//! generated credentials) and the stub as two child processes, runs every workload at every
//! client count against both, one after the other, and prints a table.
//!
//! Separate processes keep the server, the stub and the load generator apart, as in service, and
//! let the load generator read each server's CPU time from `/proc/PID/stat`.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use anyhow::Context;
use serde::Serialize;

use crate::workload::{self, ClientMode, ClientTarget, RunConfig, RunReport, Workload};

/// What `compare` was asked for.
#[derive(Clone, Debug)]
pub(crate) struct CompareConfig {
    pub clients: Vec<usize>,
    pub workloads: Vec<Workload>,
    pub seconds: f64,
    pub warmup_seconds: f64,
    pub secrets: usize,
    pub value_bytes: usize,
    pub client_mode: ClientMode,
    pub server_bin: Option<PathBuf>,
    pub work_dir: Option<PathBuf>,
}

/// One row: the same workload and client count against the ledger and the stub.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct Row {
    pub workload: Workload,
    pub clients: usize,
    pub ledger: RunReport,
    pub stub: RunReport,
    pub ledger_percent_of_stub: f64,
}

/// A child process that prints `listening on http://HOST:PORT` first.
struct Process {
    child: Child,
    endpoint: String,
    // Held so the child never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Process {
    fn spawn(mut command: Command, what: &str) -> anyhow::Result<Process> {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {what} ({command:?})"))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let mut stdout = BufReader::new(stdout);
        let mut line = String::new();
        stdout.read_line(&mut line).with_context(|| format!("reading {what}'s first line"))?;
        let Some(endpoint) = line.trim().strip_prefix("listening on ").map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("{what} did not print 'listening on ...' (got {line:?})");
        };
        Ok(Process { child, endpoint, _stdout: stdout })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (graceful for the server), then SIGKILL after 10 s.
    fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        for _ in 0..100 {
            if self.child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child.kill()?;
        self.child.wait()?;
        Ok(())
    }
}

/// `target/release/secret-ledger` next to this binary unless given.
fn server_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let me = std::env::current_exe().context("cannot find this executable")?;
    let bin = me.with_file_name("secret-ledger");
    anyhow::ensure!(
        bin.exists(),
        "{} does not exist: build it (cargo build --release -p secret-ledger) or pass --server-bin",
        bin.display()
    );
    Ok(bin)
}

/// Runs the comparison; progress goes to stderr, the result is returned.
pub(crate) fn compare(runtime: &tokio::runtime::Runtime, config: &CompareConfig) -> anyhow::Result<Vec<Row>> {
    let dir = match &config.work_dir {
        Some(parent) => tempfile::Builder::new().prefix("loadgen-").tempdir_in(parent),
        None => tempfile::Builder::new().prefix("loadgen-").tempdir(),
    }
    .context("cannot create the work dir")?;
    let access_key_id = "AKIALOADGEN000000001".to_string();
    let secret_access_key = uuid::Uuid::new_v4().simple().to_string();
    let credentials = dir.path().join("credentials");
    std::fs::write(&credentials, format!("{access_key_id}:{secret_access_key}\n"))
        .context("cannot write the credentials file")?;
    let data_dir = dir.path().join("data");

    let mut server = Command::new(server_bin(config.server_bin.as_deref())?);
    server
        .arg("serve")
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--credentials")
        .arg(&credentials)
        .env("SECRET_LEDGER_LOG", "warn");
    let server = Process::spawn(server, "secret-ledger serve")?;
    let mut stub = Command::new(std::env::current_exe().context("cannot find this executable")?);
    stub.arg("stub").arg("--listen").arg("127.0.0.1:0").arg("--value-bytes").arg(config.value_bytes.to_string());
    let stub = match Process::spawn(stub, "loadgen stub") {
        Ok(stub) => stub,
        Err(e) => {
            let _ = server.stop();
            return Err(e);
        }
    };
    eprintln!("ledger: {} (pid {}, data dir {})", server.endpoint, server.pid(), data_dir.display());
    eprintln!("stub:   {} (pid {})", stub.endpoint, stub.pid());

    let result = run_all(runtime, config, &server, &stub, &access_key_id, &secret_access_key);
    let stopped = (server.stop(), stub.stop());
    let rows = result?;
    stopped.0.context("stopping the server")?;
    stopped.1.context("stopping the stub")?;
    Ok(rows)
}

fn run_all(
    runtime: &tokio::runtime::Runtime,
    config: &CompareConfig,
    server: &Process,
    stub: &Process,
    access_key_id: &str,
    secret_access_key: &str,
) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for &workload in &config.workloads {
        for &clients in &config.clients {
            let mut reports = Vec::new();
            for (name, child) in [("ledger", server), ("stub", stub)] {
                let target = ClientTarget {
                    endpoint: child.endpoint.clone(),
                    access_key_id: access_key_id.to_string(),
                    secret_access_key: secret_access_key.to_string(),
                    region: "us-east-1".into(),
                };
                let run = RunConfig {
                    workload,
                    clients,
                    seconds: config.seconds,
                    warmup_seconds: config.warmup_seconds,
                    secrets: config.secrets,
                    value_bytes: config.value_bytes,
                    client_mode: config.client_mode,
                    server_pid: Some(child.pid()),
                };
                eprintln!("{} x {clients} against {name} ...", workload.name());
                let report = runtime.block_on(workload::run(&target, &run))?;
                eprint!("{}", report.text());
                reports.push(report);
            }
            let stub_report = reports.pop().context("no stub report")?;
            let ledger_report = reports.pop().context("no ledger report")?;
            let percent = if stub_report.ops_per_sec > 0.0 {
                ledger_report.ops_per_sec * 100.0 / stub_report.ops_per_sec
            } else {
                0.0
            };
            rows.push(Row {
                workload,
                clients,
                ledger: ledger_report,
                stub: stub_report,
                ledger_percent_of_stub: percent,
            });
        }
    }
    Ok(rows)
}

fn cpu(us_per_op: Option<f64>) -> String {
    us_per_op.map_or_else(|| "-".to_string(), |u| format!("{u:.0}"))
}

/// The table `compare` prints.
pub(crate) fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| workload | clients | ledger ops/s | p50 ms | p99 ms | max ms | errors | stub ops/s | stub p50 ms | stub p99 ms | ledger % of stub | server CPU us/op (ledger / stub) | loadgen CPU us/op (ledger / stub) | other CPU % (ledger / stub) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let (l, s) = (&row.ledger, &row.stub);
        out.push_str(&format!(
            "| {} | {} | {:.0} | {:.2} | {:.2} | {:.2} | {} | {:.0} | {:.2} | {:.2} | {:.0}% | {} / {} | {:.0} / {:.0} | {} / {} |\n",
            row.workload.name(),
            row.clients,
            l.ops_per_sec,
            l.p50_ms,
            l.p99_ms,
            l.max_ms,
            l.error_count + s.error_count,
            s.ops_per_sec,
            s.p50_ms,
            s.p99_ms,
            row.ledger_percent_of_stub,
            cpu(l.server_cpu_us_per_op),
            cpu(s.server_cpu_us_per_op),
            l.loadgen_cpu_us_per_op,
            s.loadgen_cpu_us_per_op,
            cpu(l.other_cpu_percent),
            cpu(s.other_cpu_percent),
        ));
    }
    out
}
