//! `soak`: a bounded soak test of `secret-ledger serve` on loopback.
//!
//! Starts the release binary as a child (`serve --listen 127.0.0.1:0`, a temporary data dir,
//! its own credentials file), runs mixed traffic through the AWS SDK for `--seconds` (default
//! 180): puts, gets, describes, listings, batch gets, rotations (put `AWSPENDING` then move
//! `AWSCURRENT`), deletes with restore, and force deletes with re-creation. Each client task
//! owns its own secrets, so no error comes from races between clients. The server's `VmRSS` is
//! read from `/proc/<pid>/status` every second.
//!
//! Fails (exit 1) when any call fails with a code other than `LimitExceededException` (a
//! secret with 100 versions younger than the prune grace: the task then force-deletes and
//! re-creates it), or when memory grows after warm-up. The server's memory is dominated by
//! sled's page cache (256 MiB by default), which fills as the log grows (several MB/s here):
//! RSS climbs for about the first 100 s, then stays flat. So the first half of the run
//! (`--warmup-seconds`) is warm-up, and the mean RSS of the last quarter must stay within
//! `--rss-growth-max-pct` (default 10 %) of the mean of the third quarter; the slope over the
//! second half is reported too. Finally the data dir is checked with `secret-ledger verify`.
//!
//! Not run in CI. Run: `cargo build --release -p secret-ledger -p ledger-soak &&
//! target/release/soak --seconds 180`.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, ExitCode, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
use aws_sdk_secretsmanager::Client;
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "Soak test of `secret-ledger serve` (loopback only): mixed traffic, RSS sampled every second")]
struct Cli {
    /// Length of the run.
    #[arg(long, default_value_t = 180)]
    seconds: u64,
    /// Concurrent client tasks.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Secrets per client task.
    #[arg(long, default_value_t = 8)]
    secrets_per_client: usize,
    /// Warm-up excluded from the RSS criterion; default: half the run (sled's page cache,
    /// 256 MiB, fills during it at this write rate).
    #[arg(long)]
    warmup_seconds: Option<u64>,
    /// Largest allowed growth of the mean RSS of the last half after warm-up over the first
    /// half after warm-up, in percent.
    #[arg(long, default_value_t = 10.0)]
    rss_growth_max_pct: f64,
    /// The server binary; default: `secret-ledger` next to this executable.
    #[arg(long)]
    server_bin: Option<PathBuf>,
}

/// The only error code the workload expects.
const EXPECTED: &str = "LimitExceededException";

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(&cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("soak: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// The server child; stopped by its pid with SIGTERM (graceful), SIGKILL after 10 s.
struct Server {
    child: Child,
    endpoint: String,
    _stdout: BufReader<ChildStdout>,
}

impl Server {
    fn spawn(bin: &Path, data_dir: &Path, credentials: &Path) -> anyhow::Result<Server> {
        let mut child = Command::new(bin)
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--listen")
            .arg("127.0.0.1:0")
            .arg("--credentials")
            .arg(credentials)
            .env("SECRET_LEDGER_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let mut stdout = BufReader::new(child.stdout.take().context("no stdout pipe")?);
        let mut line = String::new();
        stdout.read_line(&mut line).context("reading the server's first line")?;
        let Some(endpoint) = line.trim().strip_prefix("listening on ").map(str::to_string) else {
            let _ = child.kill();
            let _ = child.wait();
            anyhow::bail!("the server did not print 'listening on ...' (got {line:?})");
        };
        Ok(Server { child, endpoint, _stdout: stdout })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn stop(mut self) -> anyhow::Result<()> {
        let _ = Command::new("kill").arg("-TERM").arg(self.pid().to_string()).status();
        for _ in 0..100 {
            if let Some(status) = self.child.try_wait()? {
                anyhow::ensure!(status.success(), "the server exited with {status}");
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.child.kill()?;
        self.child.wait()?;
        anyhow::bail!("the server did not stop within 10 s of SIGTERM")
    }
}

fn server_bin(explicit: Option<&Path>) -> anyhow::Result<PathBuf> {
    if let Some(path) = explicit {
        return Ok(path.to_path_buf());
    }
    let bin = std::env::current_exe().context("cannot find this executable")?.with_file_name("secret-ledger");
    anyhow::ensure!(
        bin.exists(),
        "{} does not exist: cargo build --release -p secret-ledger, or pass --server-bin",
        bin.display()
    );
    Ok(bin)
}

/// `VmRSS` of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn client(endpoint: &str, akid: &str, secret: &str) -> Client {
    ledger_sdk_client::client(&ledger_sdk_client::Target {
        endpoint,
        access_key_id: akid,
        secret_access_key: secret,
        region: "us-east-1",
        operation_timeout: Duration::from_secs(30),
        provider: "soak",
    })
}

fn error_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> String {
    if let Some(code) = error.code() {
        return code.to_string();
    }
    match error {
        SdkError::ConstructionFailure(_) => "ConstructionFailure",
        SdkError::TimeoutError(_) => "Timeout",
        SdkError::DispatchFailure(_) => "DispatchFailure",
        SdkError::ResponseError(_) => "ResponseError",
        _ => "Unknown",
    }
    .to_string()
}

/// Calls and failures of one task, by operation and by error code.
#[derive(Default)]
struct Stats {
    calls: BTreeMap<&'static str, u64>,
    errors: BTreeMap<String, u64>,
    /// First few unexpected failures, for the report.
    samples: Vec<String>,
}

impl Stats {
    /// Counts a call; `Err(code)` if it failed.
    fn count<T, E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
        &mut self,
        op: &'static str,
        result: Result<T, SdkError<E, R>>,
    ) -> Result<T, String> {
        *self.calls.entry(op).or_default() += 1;
        result.map_err(|e| {
            let code = error_code(&e);
            *self.errors.entry(code.clone()).or_default() += 1;
            if code != EXPECTED && self.samples.len() < 5 {
                self.samples.push(format!("{op}: {code}: {e:?}"));
            }
            code
        })
    }

    fn merge(&mut self, other: Stats) {
        for (k, v) in other.calls {
            *self.calls.entry(k).or_default() += v;
        }
        for (k, v) in other.errors {
            *self.errors.entry(k).or_default() += v;
        }
        self.samples.extend(other.samples);
    }
}

/// xorshift64*.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        let x = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d);
        usize::try_from(x % u64::try_from(n.max(1)).unwrap_or(1)).unwrap_or(0)
    }

    fn value(&mut self) -> String {
        let len = 32 + self.below(480);
        (0..len).map(|_| char::from(b'a' + u8::try_from(self.below(26)).unwrap_or(0))).collect()
    }
}

async fn recreate(c: &Client, s: &mut Stats, rng: &mut Rng, name: &str) {
    let _ = s.count("DeleteSecret", c.delete_secret().secret_id(name).force_delete_without_recovery(true).send().await);
    let _ = s.count("CreateSecret", c.create_secret().name(name).secret_string(rng.value()).send().await);
}

/// One task: its own secrets, a weighted mix of operations until the deadline.
async fn task(c: Client, prefix: String, names: Vec<String>, deadline: Instant, seed: u64) -> Stats {
    let mut s = Stats::default();
    let mut rng = Rng(seed | 1);
    for name in &names {
        let _ = s.count("CreateSecret", c.create_secret().name(name).secret_string(rng.value()).send().await);
    }
    while Instant::now() < deadline {
        let name = names[rng.below(names.len())].as_str();
        match rng.below(100) {
            0..=27 => {
                let put = c.put_secret_value().secret_id(name).secret_string(rng.value()).send().await;
                if s.count("PutSecretValue", put).is_err_and(|code| code == EXPECTED) {
                    recreate(&c, &mut s, &mut rng, name).await;
                }
            }
            28..=57 => {
                let _ = s.count("GetSecretValue", c.get_secret_value().secret_id(name).send().await);
            }
            58..=67 => {
                let _ = s.count("DescribeSecret", c.describe_secret().secret_id(name).send().await);
            }
            68..=71 => {
                let filter = Filter::builder().key(FilterNameStringType::Name).values(&prefix).build();
                let _ = s.count("ListSecrets", c.list_secrets().filters(filter).max_results(20).send().await);
            }
            72..=75 => {
                let mut batch = c.batch_get_secret_value();
                for _ in 0..4 {
                    batch = batch.secret_id_list(names[rng.below(names.len())].as_str());
                }
                let _ = s.count("BatchGetSecretValue", batch.send().await);
            }
            76..=78 => {
                let _ = s.count("ListSecretVersionIds", c.list_secret_version_ids().secret_id(name).send().await);
            }
            79..=92 => rotate(&c, &mut s, &mut rng, name).await,
            93..=96 => {
                let del = c.delete_secret().secret_id(name).recovery_window_in_days(7).send().await;
                if s.count("DeleteSecret", del).is_ok() {
                    let _ = s.count("RestoreSecret", c.restore_secret().secret_id(name).send().await);
                }
            }
            _ => recreate(&c, &mut s, &mut rng, name).await,
        }
    }
    s
}

/// Rotation: a pending version, then AWSCURRENT moves to it.
async fn rotate(c: &Client, s: &mut Stats, rng: &mut Rng, name: &str) {
    let put = c.put_secret_value().secret_id(name).secret_string(rng.value()).version_stages("AWSPENDING");
    let pending = match s.count("PutSecretValue", put.send().await) {
        Ok(out) => out.version_id().map(str::to_string),
        Err(code) => {
            if code == EXPECTED {
                recreate(c, s, rng, name).await;
            }
            return;
        }
    };
    let Ok(d) = s.count("DescribeSecret", c.describe_secret().secret_id(name).send().await) else {
        return;
    };
    let current = d.version_ids_to_stages().and_then(|m| {
        m.iter().find(|(_, stages)| stages.iter().any(|st| st == "AWSCURRENT")).map(|(id, _)| id.clone())
    });
    let mv = c
        .update_secret_version_stage()
        .secret_id(name)
        .version_stage("AWSCURRENT")
        .set_move_to_version_id(pending)
        .set_remove_from_version_id(current)
        .send()
        .await;
    let _ = s.count("UpdateSecretVersionStage", mv);
}

fn mean(samples: &[(f64, u64)], from: f64, to: f64) -> Option<f64> {
    let window: Vec<u64> = samples.iter().filter(|(t, _)| *t >= from && *t < to).map(|(_, r)| *r).collect();
    (!window.is_empty()).then(|| window.iter().sum::<u64>() as f64 / window.len() as f64)
}

/// Least-squares slope of RSS over the samples from `from` on, in MiB per minute.
fn slope_mib_per_min(samples: &[(f64, u64)], from: f64) -> f64 {
    let points: Vec<(f64, f64)> =
        samples.iter().filter(|(t, _)| *t >= from).map(|(t, r)| (*t, *r as f64 / 1024.0)).collect();
    let k = points.len() as f64;
    if k < 2.0 {
        return 0.0;
    }
    let (mt, mr) = (points.iter().map(|p| p.0).sum::<f64>() / k, points.iter().map(|p| p.1).sum::<f64>() / k);
    let cov: f64 = points.iter().map(|(t, r)| (t - mt) * (r - mr)).sum();
    let var: f64 = points.iter().map(|(t, _)| (t - mt) * (t - mt)).sum();
    if var == 0.0 {
        0.0
    } else {
        cov / var * 60.0
    }
}

/// Starts the server, runs the traffic while sampling RSS, stops and verifies, and reports.
fn run(cli: &Cli) -> anyhow::Result<bool> {
    anyhow::ensure!(cli.seconds >= 6 && cli.clients > 0 && cli.secrets_per_client > 0, "nothing to run");
    let bin = server_bin(cli.server_bin.as_deref())?;
    let dir = tempfile::tempdir().context("cannot create a temporary dir")?;
    let (akid, secret) = ("AKIASOAKTEST00000001", uuid::Uuid::new_v4().simple().to_string());
    let credentials = dir.path().join("credentials");
    std::fs::write(&credentials, format!("{akid}:{secret}\n")).context("cannot write the credentials")?;
    let data_dir = dir.path().join("data");
    let server = Server::spawn(&bin, &data_dir, &credentials)?;
    let pid = server.pid();
    let endpoint = server.endpoint.clone();
    println!("soak: {} (pid {pid}) at {endpoint}, {} s, {} clients", bin.display(), cli.seconds, cli.clients);

    let started = Instant::now();
    let sampler = Sampler::start(pid, started);
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let deadline = started + Duration::from_secs(cli.seconds);
    let stats = runtime.block_on(traffic(cli, &endpoint, akid, &secret, deadline))?;
    let elapsed = started.elapsed().as_secs_f64();
    let samples = sampler.finish();
    let data_bytes = dir_bytes(&data_dir);
    server.stop()?;
    let verify = Command::new(&bin)
        .arg("verify")
        .arg("--data-dir")
        .arg(&data_dir)
        .stdout(Stdio::null())
        .status()
        .context("cannot run secret-ledger verify")?;
    Ok(report(cli, &stats, &samples, elapsed, data_bytes, verify))
}

/// The server's RSS, sampled every second as (seconds since the start, KiB).
struct Sampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<(f64, u64)>>>,
    thread: std::thread::JoinHandle<()>,
}

impl Sampler {
    /// RSS every second from a plain thread, so a busy runtime does not delay the samples.
    fn start(pid: u32, started: Instant) -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
        let thread = {
            let (stop, samples) = (stop.clone(), samples.clone());
            std::thread::spawn(move || {
                let mut next = Instant::now();
                while !stop.load(Ordering::Relaxed) {
                    if let Some(rss) = rss_kib(pid) {
                        samples.lock().unwrap_or_else(|e| e.into_inner()).push((started.elapsed().as_secs_f64(), rss));
                    }
                    next += Duration::from_secs(1);
                    std::thread::sleep(next.saturating_duration_since(Instant::now()));
                }
            })
        };
        Sampler { stop, samples, thread }
    }

    /// Stops the sampling thread and returns the samples.
    fn finish(self) -> Vec<(f64, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.join();
        let samples = self.samples.lock().unwrap_or_else(|e| e.into_inner()).clone();
        samples
    }
}

/// Runs the client tasks, each on its own secrets, until `deadline`, and merges their stats.
async fn traffic(cli: &Cli, endpoint: &str, akid: &str, secret: &str, deadline: Instant) -> anyhow::Result<Stats> {
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    let c = client(endpoint, akid, secret);
    let mut handles = Vec::new();
    for t in 0..cli.clients {
        let prefix = format!("soak/{}/{t}/", &run_id[..8]);
        let names = (0..cli.secrets_per_client).map(|i| format!("{prefix}{i}")).collect();
        let seed = u64::from_le_bytes(uuid::Uuid::new_v4().as_bytes()[..8].try_into().unwrap_or([7; 8]));
        handles.push(tokio::spawn(task(c.clone(), prefix, names, deadline, seed)));
    }
    let mut total = Stats::default();
    for h in handles {
        total.merge(h.await.context("a client task panicked")?);
    }
    Ok(total)
}

/// The RSS figures of a run, in KiB, over the windows after warm-up.
struct Rss {
    n: f64,
    warm: f64,
    mid: f64,
    early: Option<f64>,
    late: Option<f64>,
    slope: f64,
    first: u64,
    last: u64,
    max: u64,
    growth: Option<f64>,
}

impl Rss {
    /// Splits the time after warm-up in two halves and compares their mean RSS.
    fn new(cli: &Cli, samples: &[(f64, u64)]) -> Rss {
        let n = cli.seconds as f64;
        let warm = cli.warmup_seconds.map_or(n / 2.0, |w| w as f64).min(n - 4.0);
        let mid = warm + (n - warm) / 2.0;
        let early = mean(samples, warm, mid);
        let late = mean(samples, mid, n + 1.0);
        let slope = slope_mib_per_min(samples, warm);
        let first = samples.first().map_or(0, |s| s.1);
        let last = samples.last().map_or(0, |s| s.1);
        let max = samples.iter().map(|s| s.1).max().unwrap_or(0);
        let growth = match (early, late) {
            (Some(e), Some(l)) if e > 0.0 => Some((l / e - 1.0) * 100.0),
            _ => None,
        };
        Rss { n, warm, mid, early, late, slope, first, last, max, growth }
    }
}

/// Prints the calls, errors, RSS and data dir of the run; `true` when it passed.
fn report(cli: &Cli, stats: &Stats, samples: &[(f64, u64)], elapsed: f64, data_bytes: u64, verify: ExitStatus) -> bool {
    let Rss { n, warm, mid, early, late, slope, first, last, max, growth } = Rss::new(cli, samples);
    let ops: u64 = stats.calls.values().sum();
    let unexpected: u64 = stats.errors.iter().filter(|(code, _)| code.as_str() != EXPECTED).map(|(_, n)| n).sum();

    println!("duration: {elapsed:.1} s, {ops} calls ({:.0}/s)", ops as f64 / elapsed);
    for (op, count) in &stats.calls {
        println!("  {op}: {count}");
    }
    println!("errors by code: {:?}", stats.errors);
    for sample in &stats.samples {
        println!("  unexpected: {sample}");
    }
    println!(
        "RSS (KiB): first {first}, last {last}, max {max}; mean {:.0} over [{warm:.0}, {mid:.0}) s, {:.0} over [{mid:.0}, {n:.0}] s: {}; slope after warm-up {slope:+.2} MiB/min",
        early.unwrap_or(0.0),
        late.unwrap_or(0.0),
        growth.map_or("n/a".to_string(), |g| format!("{g:+.1} %"))
    );
    let timeline: Vec<String> = samples.iter().step_by(10).map(|(t, rss)| format!("{t:.0}s:{}", rss / 1024)).collect();
    println!("RSS timeline (MiB, every 10 s): {}", timeline.join(" "));
    println!("data dir: {:.1} MiB; verify: {verify}", data_bytes as f64 / (1024.0 * 1024.0));
    verdict(cli, unexpected, growth, verify)
}

/// Prints each failed criterion, then PASS or FAIL; `true` when none failed.
fn verdict(cli: &Cli, unexpected: u64, growth: Option<f64>, verify: ExitStatus) -> bool {
    let mut ok = true;
    if unexpected > 0 {
        println!("FAIL: {unexpected} unexpected errors");
        ok = false;
    }
    match growth {
        Some(g) if g <= cli.rss_growth_max_pct => {}
        Some(g) => {
            println!("FAIL: RSS grew {g:.1} % (limit {} %)", cli.rss_growth_max_pct);
            ok = false;
        }
        None => {
            println!("FAIL: too few RSS samples");
            ok = false;
        }
    }
    if !verify.success() {
        println!("FAIL: secret-ledger verify: {verify}");
        ok = false;
    }
    println!("{}", if ok { "PASS" } else { "FAIL" });
    ok
}

fn dir_bytes(path: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(path) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}
