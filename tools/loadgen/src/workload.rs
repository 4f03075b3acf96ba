//! The closed-loop workload: N tokio tasks, each sending its next request as soon as the previous
//! one answered, through the AWS SDK for Rust (retries off, so every failure is counted).
//!
//! Puts are spread round-robin over the pre-created secrets and stop at [`VERSIONS_PER_SECRET`]
//! versions each (AWS allows about 100 versions a secret a day, and the server enforces that
//! quota); once the pool is used up a put becomes a `CreateSecret` of a fresh secret with a value,
//! which is the same kind of durable write, and is counted in `fresh_secrets`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_secretsmanager::Client;
use serde::Serialize;
use tokio::time::Instant;

use crate::cpu;

/// Most versions a pre-created secret gets (its first one included).
pub(crate) const VERSIONS_PER_SECRET: u64 = 90;
/// Share of puts in the mixed workload, in percent.
pub(crate) const MIXED_PUT_PERCENT: u64 = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Workload {
    /// PutSecretValue (durable write).
    Put,
    /// GetSecretValue of AWSCURRENT.
    Get,
    /// 90% GetSecretValue, 10% PutSecretValue.
    Mixed,
}

impl Workload {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Workload::Put => "put",
            Workload::Get => "get",
            Workload::Mixed => "mixed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum ClientMode {
    /// One SDK client per task (own connection pool, own connection).
    PerTask,
    /// One SDK client shared by all tasks (one pool, one connection per in-flight request).
    Shared,
}

/// Where and as whom to connect.
#[derive(Clone, Debug)]
pub(crate) struct ClientTarget {
    pub endpoint: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    pub region: String,
}

/// An SDK client for plain HTTP, retries off (see `ledger-sdk-client`).
pub(crate) fn sdk_client(target: &ClientTarget) -> Client {
    ledger_sdk_client::client(&ledger_sdk_client::Target {
        endpoint: &target.endpoint,
        access_key_id: &target.access_key_id,
        secret_access_key: &target.secret_access_key,
        region: &target.region,
        operation_timeout: Duration::from_secs(30),
        provider: "loadgen",
    })
}

/// One run's parameters.
#[derive(Clone, Debug)]
pub(crate) struct RunConfig {
    pub workload: Workload,
    pub clients: usize,
    pub seconds: f64,
    pub warmup_seconds: f64,
    pub secrets: usize,
    pub value_bytes: usize,
    pub client_mode: ClientMode,
    /// Also report this process's CPU time over the measured window (the server's pid).
    pub server_pid: Option<u32>,
}

/// What a run measured (only requests started inside the measured window count).
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RunReport {
    pub endpoint: String,
    pub workload: Workload,
    pub clients: usize,
    pub client_mode: ClientMode,
    pub warmup_seconds: f64,
    pub seconds: f64,
    pub ops: u64,
    pub ops_per_sec: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub mean_ms: f64,
    pub errors: BTreeMap<String, u64>,
    pub error_count: u64,
    pub secrets: usize,
    pub fresh_secrets: u64,
    pub value_bytes: usize,
    pub loadgen_cpu_seconds: f64,
    /// Percent of one core.
    pub loadgen_cpu_percent: f64,
    pub loadgen_cpu_us_per_op: f64,
    pub server_cpu_seconds: Option<f64>,
    pub server_cpu_percent: Option<f64>,
    pub server_cpu_us_per_op: Option<f64>,
    /// Busy CPU of the whole machine over the measured window, in percent of one core (200 is
    /// all of a 2-core machine).
    pub machine_busy_percent: Option<f64>,
    /// What of it neither the load generator nor the server used: other work on the machine.
    pub other_cpu_percent: Option<f64>,
}

/// Everything the tasks share.
struct Pool {
    run_id: String,
    names: Vec<String>,
    next_put: AtomicU64,
    fresh: AtomicU64,
    value: String,
}

impl Pool {
    /// The next put: `Ok(name)` for a PutSecretValue, `Err(name)` for a CreateSecret.
    fn next_put(&self) -> Result<&str, String> {
        let k = self.next_put.fetch_add(1, Ordering::Relaxed);
        let n = self.names.len() as u64;
        // Each pre-created secret starts with one version.
        if n > 0 && k / n < VERSIONS_PER_SECRET - 1 {
            Ok(&self.names[(k % n) as usize])
        } else {
            self.fresh.fetch_add(1, Ordering::Relaxed);
            Err(format!("lg-{}-x{k}", self.run_id))
        }
    }
}

/// What one task measured.
#[derive(Default)]
struct TaskStats {
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
    last_done: Option<Instant>,
}

/// The error's AWS code, or the kind of SDK failure when there is none.
fn error_code<E: ProvideErrorMetadata, R>(error: &SdkError<E, R>) -> String {
    if let Some(code) = error.code() {
        return code.to_string();
    }
    match error {
        SdkError::ConstructionFailure(_) => "ConstructionFailure",
        SdkError::TimeoutError(_) => "Timeout",
        SdkError::DispatchFailure(_) => "DispatchFailure",
        SdkError::ResponseError(_) => "ResponseError",
        SdkError::ServiceError(_) => "ServiceError",
        _ => "Unknown",
    }
    .to_string()
}

/// xorshift64*: a per-task generator for picking secrets, no dependency needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

async fn put(client: &Client, pool: &Pool) -> Result<(), String> {
    match pool.next_put() {
        Ok(name) => client
            .put_secret_value()
            .secret_id(name)
            .secret_string(&pool.value)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| error_code(&e)),
        Err(fresh) => client
            .create_secret()
            .name(fresh)
            .secret_string(&pool.value)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| error_code(&e)),
    }
}

async fn get(client: &Client, pool: &Pool, rng: &mut Rng) -> Result<(), String> {
    let name = &pool.names[(rng.next() % pool.names.len() as u64) as usize];
    match client.get_secret_value().secret_id(name).send().await {
        Ok(out) if out.secret_string().map(str::len) == Some(pool.value.len()) => Ok(()),
        Ok(_) => Err("WrongValue".to_string()),
        Err(e) => Err(error_code(&e)),
    }
}

/// Creates `count` secrets named `lg-RUN-I` with `concurrency` tasks.
async fn precreate(clients: &[Client], run_id: &str, count: usize, value: &str) -> anyhow::Result<Vec<String>> {
    let names: Vec<String> = (0..count).map(|i| format!("lg-{run_id}-{i}")).collect();
    let next = Arc::new(AtomicU64::new(0));
    let names_shared = Arc::new(names.clone());
    let mut tasks = Vec::new();
    for client in clients.iter().take(64) {
        let (client, next, names, value) = (client.clone(), next.clone(), names_shared.clone(), value.to_string());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some(name) = names.get(i) else { return anyhow::Ok(()) };
                client
                    .create_secret()
                    .name(name)
                    .secret_string(&value)
                    .send()
                    .await
                    .map_err(|e| anyhow::anyhow!("creating {name}: {} ({e:?})", error_code(&e)))?;
            }
        }));
    }
    for task in tasks {
        task.await.context("a pre-create task panicked")??;
    }
    Ok(names)
}

fn percentile(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    // Nearest rank.
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    f64::from(sorted[rank.min(sorted.len()) - 1]) / 1000.0
}

/// Pre-creates the secrets, warms up, runs for `config.seconds` and reports.
pub(crate) async fn run(target: &ClientTarget, config: &RunConfig) -> anyhow::Result<RunReport> {
    anyhow::ensure!(config.clients > 0, "--clients must be at least 1");
    anyhow::ensure!(config.seconds > 0.0, "--seconds must be positive");
    let clients: Vec<Client> = match config.client_mode {
        ClientMode::PerTask => (0..config.clients).map(|_| sdk_client(target)).collect(),
        ClientMode::Shared => vec![sdk_client(target); config.clients],
    };
    let run_id = uuid::Uuid::new_v4().simple().to_string()[..8].to_string();
    let value = "s".repeat(config.value_bytes);
    let secrets = if config.workload == Workload::Put { config.secrets } else { config.secrets.max(1) };
    let names = precreate(&clients, &run_id, secrets, &value).await?;
    let pool = Arc::new(Pool { run_id, names, next_put: AtomicU64::new(0), fresh: AtomicU64::new(0), value });

    let window = Window::new(config);
    let mut tasks = Vec::with_capacity(config.clients);
    for (i, client) in clients.into_iter().enumerate() {
        tasks.push(tokio::spawn(load_task(client, pool.clone(), config.workload, i, window)));
    }
    // CPU over the measured window.
    let sampler = tokio::spawn(cpu_window(config.server_pid, window));
    let totals = collect(tasks, window.end).await?;
    let cpu = sampler.await.context("the CPU sampler panicked")?;
    Ok(report(target, config, &pool, window, totals, cpu))
}

/// The warm-up and the measured window of a run.
#[derive(Clone, Copy)]
struct Window {
    warmup: Duration,
    measured: Duration,
    /// Requests started from here on are measured.
    start: Instant,
    /// No request starts from here on.
    end: Instant,
}

impl Window {
    /// The window of `config`: the measured part starts after the warm-up from now.
    fn new(config: &RunConfig) -> Window {
        let warmup = Duration::from_secs_f64(config.warmup_seconds.max(0.0));
        let measured = Duration::from_secs_f64(config.seconds);
        let start = Instant::now() + warmup;
        Window { warmup, measured, start, end: start + measured }
    }
}

/// One closed-loop task: its next request as soon as the previous one answered, until the end.
async fn load_task(client: Client, pool: Arc<Pool>, workload: Workload, i: usize, window: Window) -> TaskStats {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ ((i as u64 + 1) << 17));
    let mut stats = TaskStats::default();
    loop {
        let started = Instant::now();
        if started >= window.end {
            break;
        }
        let outcome = match workload {
            Workload::Put => put(&client, &pool).await,
            Workload::Get => get(&client, &pool, &mut rng).await,
            Workload::Mixed if rng.next() % 100 < MIXED_PUT_PERCENT => put(&client, &pool).await,
            Workload::Mixed => get(&client, &pool, &mut rng).await,
        };
        let done = Instant::now();
        if started < window.start {
            continue;
        }
        stats.last_done = Some(done);
        match outcome {
            Ok(()) => {
                stats.latencies_us.push(u32::try_from(done.duration_since(started).as_micros()).unwrap_or(u32::MAX))
            }
            Err(code) => *stats.errors.entry(code).or_default() += 1,
        }
    }
    stats
}

/// CPU times at one instant: this process, the server (if its pid is known), the whole machine busy.
type CpuTimes = (Option<Duration>, Option<Duration>, Option<Duration>);

/// The CPU times at the start and at the end of the measured window.
async fn cpu_window(server_pid: Option<u32>, window: Window) -> (CpuTimes, CpuTimes) {
    tokio::time::sleep_until(window.start).await;
    let before = (cpu::cpu_time(None), server_pid.and_then(|p| cpu::cpu_time(Some(p))), cpu::machine_busy());
    tokio::time::sleep_until(window.end).await;
    let after = (cpu::cpu_time(None), server_pid.and_then(|p| cpu::cpu_time(Some(p))), cpu::machine_busy());
    (before, after)
}

/// What all tasks measured together.
struct Totals {
    latencies_us: Vec<u32>,
    errors: BTreeMap<String, u64>,
    /// When the last measured request answered (the end of the window at the earliest).
    last_done: Instant,
}

/// Waits for the tasks and merges what they measured.
async fn collect(tasks: Vec<tokio::task::JoinHandle<TaskStats>>, end: Instant) -> anyhow::Result<Totals> {
    let mut latencies = Vec::new();
    let mut errors: BTreeMap<String, u64> = BTreeMap::new();
    let mut last_done = end;
    for task in tasks {
        let stats = task.await.context("a load task panicked")?;
        latencies.extend(stats.latencies_us);
        for (code, n) in stats.errors {
            *errors.entry(code).or_default() += n;
        }
        last_done = last_done.max(stats.last_done.unwrap_or(end));
    }
    Ok(Totals { latencies_us: latencies, errors, last_done })
}

/// The report of a run from what its tasks and the CPU sampler measured.
fn report(
    target: &ClientTarget,
    config: &RunConfig,
    pool: &Pool,
    window: Window,
    totals: Totals,
    cpu: (CpuTimes, CpuTimes),
) -> RunReport {
    let Totals { latencies_us: mut latencies, errors, last_done } = totals;
    let ((self_before, server_before, machine_before), (self_after, server_after, machine_after)) = cpu;
    latencies.sort_unstable();
    let seconds = last_done.duration_since(window.start).as_secs_f64();
    let ops = latencies.len() as u64;
    let error_count: u64 = errors.values().sum();
    let measured = window.measured.as_secs_f64();
    let cpu_delta = |before: Option<Duration>, after: Option<Duration>| match (before, after) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b).as_secs_f64()),
        _ => None,
    };
    let per_op = |cpu: f64| if ops > 0 { cpu * 1e6 / ops as f64 } else { 0.0 };
    let loadgen_cpu = cpu_delta(self_before, self_after).unwrap_or(0.0);
    let server_cpu = cpu_delta(server_before, server_after);
    let machine_busy = cpu_delta(machine_before, machine_after);
    let other = machine_busy.map(|m| (m - loadgen_cpu - server_cpu.unwrap_or(0.0)).max(0.0));
    let mean_ms =
        if ops > 0 { latencies.iter().map(|&l| f64::from(l)).sum::<f64>() / ops as f64 / 1000.0 } else { 0.0 };
    RunReport {
        endpoint: target.endpoint.clone(),
        workload: config.workload,
        clients: config.clients,
        client_mode: config.client_mode,
        warmup_seconds: window.warmup.as_secs_f64(),
        seconds,
        ops,
        ops_per_sec: ops as f64 / seconds,
        p50_ms: percentile(&latencies, 50.0),
        p99_ms: percentile(&latencies, 99.0),
        max_ms: latencies.last().map_or(0.0, |&l| f64::from(l) / 1000.0),
        mean_ms,
        errors,
        error_count,
        secrets: pool.names.len(),
        fresh_secrets: pool.fresh.load(Ordering::Relaxed),
        value_bytes: config.value_bytes,
        loadgen_cpu_seconds: loadgen_cpu,
        loadgen_cpu_percent: loadgen_cpu * 100.0 / measured,
        loadgen_cpu_us_per_op: per_op(loadgen_cpu),
        server_cpu_seconds: server_cpu,
        server_cpu_percent: server_cpu.map(|c| c * 100.0 / measured),
        server_cpu_us_per_op: server_cpu.map(per_op),
        machine_busy_percent: machine_busy.map(|c| c * 100.0 / measured),
        other_cpu_percent: other.map(|c| c * 100.0 / measured),
    }
}

impl RunReport {
    /// The human-readable report.
    pub(crate) fn text(&self) -> String {
        let mut out = format!(
            "{} against {}: {} clients ({}), {:.1} s measured after {:.1} s warm-up, {} secrets ({} created fresh), {}-byte values\n",
            self.workload.name(),
            self.endpoint,
            self.clients,
            match self.client_mode {
                ClientMode::PerTask => "one SDK client per task",
                ClientMode::Shared => "one shared SDK client",
            },
            self.seconds,
            self.warmup_seconds,
            self.secrets,
            self.fresh_secrets,
            self.value_bytes,
        );
        out.push_str(&format!("  ops:      {} ({:.0} ops/s)\n", self.ops, self.ops_per_sec));
        out.push_str(&format!(
            "  latency:  p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms, mean {:.2} ms\n",
            self.p50_ms, self.p99_ms, self.max_ms, self.mean_ms
        ));
        if self.errors.is_empty() {
            out.push_str("  errors:   0\n");
        } else {
            let list: Vec<String> = self.errors.iter().map(|(code, n)| format!("{code} {n}")).collect();
            out.push_str(&format!("  errors:   {} ({})\n", self.error_count, list.join(", ")));
        }
        out.push_str(&format!(
            "  loadgen CPU: {:.2} s user+sys ({:.0}% of one core, {:.0} us/op)\n",
            self.loadgen_cpu_seconds, self.loadgen_cpu_percent, self.loadgen_cpu_us_per_op
        ));
        if let (Some(s), Some(p), Some(u)) =
            (self.server_cpu_seconds, self.server_cpu_percent, self.server_cpu_us_per_op)
        {
            out.push_str(&format!("  server CPU:  {s:.2} s user+sys ({p:.0}% of one core, {u:.0} us/op)\n"));
        }
        if let (Some(busy), Some(other)) = (self.machine_busy_percent, self.other_cpu_percent) {
            out.push_str(&format!(
                "  machine:     {busy:.0}% of one core busy, {other:.0}% of it by other processes\n"
            ));
        }
        out
    }
}
