//! Crash-loop harness for `secret-ledger serve`.
//!
//! Each iteration starts the server binary on the same data dir, checks what the previous
//! iterations' acknowledged writes left (see [`check`]), drives concurrent AWS SDK traffic (see
//! [`traffic`]) and SIGKILLs the server at a moment drawn from the seed; one start in ten is
//! killed during start-up instead. Every `verify_every` iterations, and at the end, the server is
//! also stopped with SIGTERM and `secret-ledger verify` must pass (on the crashed data dir, and
//! after the clean stop).
//!
//! Every random choice (kill moment, operation mix, tokens, values, samples) comes from a
//! ChaCha8 stream derived from the seed and the iteration, so a seed replays the same schedule;
//! thread and I/O timing still differ between runs, so a replay is likely, not certain, to hit
//! the same interleaving.

// A test tool for 64-bit machines: counts, indexes and nanosecond clocks fit `usize` and `u64`.
#![allow(clippy::cast_possible_truncation)]

pub mod check;
pub mod model;
pub mod server;
pub mod traffic;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_secretsmanager::Client;
use rand_chacha::ChaCha8Rng;
use rand_core::{RngCore, SeedableRng};

use crate::check::Findings;
use crate::model::{Deletion, Model, Outcome, Presence, SecretTrack, Value, VersionRec, VERSIONS_PER_SECRET};
use crate::server::Server;
use crate::traffic::{below, describe, Worker};

/// Secrets that take traffic at a time (more are created as these fill up).
const ACTIVE_SECRETS: usize = 4;
/// A secret with less budget than this is not counted as active when deciding to create more.
const LOW_BUDGET: u32 = 10;

#[derive(Clone, Debug)]
pub struct Options {
    /// The `secret-ledger` binary.
    pub bin: PathBuf,
    pub iterations: u32,
    pub seed: u64,
    /// Concurrent SDK clients.
    pub clients: usize,
    /// `None`: a fresh temporary dir (kept on failure).
    pub data_dir: Option<PathBuf>,
    /// SIGTERM + verify every this many iterations (and at the end).
    pub verify_every: u32,
    /// Traffic runs this long (milliseconds, drawn uniformly) before the SIGKILL.
    pub traffic_ms: (u64, u64),
    /// Share of iterations killed during start-up, in percent.
    pub startup_kill_percent: u64,
    /// One line per iteration on stderr.
    pub verbose: bool,
    /// Keep the log in this (empty) PostgreSQL database instead of the data dir.
    pub database_url: Option<String>,
    /// With `database_url`: a second server on the same database, never killed, which must keep
    /// serving through every kill of the first and pass the same checks.
    pub second_node: bool,
}

impl Options {
    pub fn new(bin: impl Into<PathBuf>, iterations: u32, seed: u64) -> Options {
        Options {
            bin: bin.into(),
            iterations,
            seed,
            clients: 8,
            data_dir: None,
            verify_every: 10,
            traffic_ms: (50, 500),
            startup_kill_percent: 10,
            verbose: false,
            database_url: None,
            second_node: false,
        }
    }
}

#[derive(Clone, Debug, Default)]
pub struct Summary {
    pub iterations: u32,
    pub startup_kills: u32,
    pub traffic_kills: u32,
    pub counters: model::Counters,
    pub lost_writes: u64,
    pub verify_runs: u32,
    pub secrets: usize,
    pub log_events: u64,
    pub elapsed: Duration,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counters;
        write!(
            f,
            "iterations {} (kills: {} under traffic, {} during start-up), acknowledged writes {} \
             (puts {}, promotions {}, delete/restore {}), lost writes {}, unanswered but durable {}, \
             unanswered and absent {}, values checked {}, retries checked {}, verify runs {}, secrets {}, \
             log events {}, refused {:?}, {:.1} s",
            self.iterations,
            self.traffic_kills,
            self.startup_kills,
            c.acked_writes,
            c.acked_puts,
            c.acked_promotions,
            c.acked_delete_restore,
            self.lost_writes,
            c.durable_unacked,
            c.absent_unacked,
            c.values_checked,
            c.retries_checked,
            self.verify_runs,
            self.secrets,
            self.log_events,
            c.refused,
            self.elapsed.as_secs_f64()
        )
    }
}

/// A failed run: enough to replay it.
#[derive(Debug)]
pub struct Failure {
    pub seed: u64,
    pub iteration: u32,
    pub message: String,
    pub data_dir: PathBuf,
    pub summary: Summary,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "FAILED at iteration {} with seed {} (replay: --seed {} --iterations {}; data dir kept at {}): {}\n{}",
            self.iteration,
            self.seed,
            self.seed,
            self.iteration,
            self.data_dir.display(),
            self.message,
            self.summary
        )
    }
}

impl std::error::Error for Failure {}

/// Runs the crash loop; `Err` on the first failed check (lost write, bad label map, failed
/// verify, server that would not start or stop cleanly).
pub fn run(options: &Options) -> Result<Summary, Box<Failure>> {
    let (tmp, data_dir) = match &options.data_dir {
        Some(dir) => (None, dir.clone()),
        None => match tempfile::Builder::new().prefix("crashloop-").tempdir() {
            Ok(t) => {
                let dir = t.path().join("data");
                (Some(t), dir)
            }
            Err(e) => {
                return Err(Box::new(Failure {
                    seed: options.seed,
                    iteration: 0,
                    message: format!("cannot create a temporary dir: {e}"),
                    data_dir: PathBuf::new(),
                    summary: Summary::default(),
                }))
            }
        },
    };
    let mut harness = Harness {
        options: options.clone(),
        data_dir: data_dir.clone(),
        log: data_dir.with_extension("server.log"),
        model: Arc::new(Mutex::new(Model::default())),
        creds: None,
        summary: Summary::default(),
        iteration: 0,
        second: None,
    };
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
    let result = match runtime {
        Ok(rt) => rt.block_on(harness.run_all()),
        Err(e) => Err(anyhow::anyhow!("cannot start the tokio runtime: {e}")),
    };
    harness.summary.elapsed = started.elapsed();
    harness.summary.counters = lock(&harness.model).counters.clone();
    harness.summary.secrets = lock(&harness.model).secrets.len();
    match result {
        Ok(()) => Ok(harness.summary),
        Err(e) => {
            // Keep the evidence.
            let data_dir = match tmp {
                Some(t) => t.keep().join("data"),
                None => data_dir,
            };
            Err(Box::new(Failure {
                seed: options.seed,
                iteration: harness.iteration,
                message: format!("{e:#}"),
                data_dir,
                summary: harness.summary,
            }))
        }
    }
}

fn lock(model: &Mutex<Model>) -> std::sync::MutexGuard<'_, Model> {
    model.lock().unwrap_or_else(|e| e.into_inner())
}

/// The random choices of one iteration, all drawn up front.
struct Plan {
    startup_kill: bool,
    /// Start-up kill: `Some(ms)` after spawning, `None` right after the `listening on` line.
    startup_delay_ms: Option<u64>,
    traffic_ms: u64,
}

struct Harness {
    options: Options,
    data_dir: PathBuf,
    log: PathBuf,
    model: Arc<Mutex<Model>>,
    creds: Option<(String, String)>,
    summary: Summary,
    iteration: u32,
    /// The second node, once started, and a client of it.
    second: Option<(Server, Client)>,
}

impl Harness {
    /// The stream for `(iteration, purpose)`: 0 plan, 1..=clients workers, 1000 checks, 1001 setup.
    fn rng(&self, purpose: u64) -> ChaCha8Rng {
        let mut rng = ChaCha8Rng::seed_from_u64(self.options.seed);
        rng.set_stream((u64::from(self.iteration) << 16) | purpose);
        rng
    }

    fn plan(&self) -> Plan {
        let mut rng = self.rng(0);
        let startup_kill = below(&mut rng, 100) < self.options.startup_kill_percent;
        let delay = below(&mut rng, 60);
        let startup_delay_ms = (below(&mut rng, 2) == 0).then_some(delay);
        let (lo, hi) = self.options.traffic_ms;
        let traffic_ms = lo + below(&mut rng, hi.saturating_sub(lo) + 1);
        Plan { startup_kill, startup_delay_ms, traffic_ms }
    }

    fn say(&self, msg: &str) {
        if self.options.verbose {
            eprintln!("[crashloop {}/{}] {msg}", self.iteration, self.options.iterations);
        }
    }

    async fn run_all(&mut self) -> anyhow::Result<()> {
        if self.data_dir.exists() && std::fs::read_dir(&self.data_dir)?.next().is_some() {
            bail!("data dir {} is not empty: the harness must know the whole history", self.data_dir.display());
        }
        for iteration in 1..=self.options.iterations {
            self.iteration = iteration;
            self.one_iteration().await?;
            self.summary.iterations = iteration;
            if iteration % self.options.verify_every.max(1) == 0 && iteration != self.options.iterations {
                self.verify_round(false).await?;
            }
        }
        self.verify_round(true).await?;
        if let Some((server, _)) = self.second.take() {
            server.terminate().context("the second node did not stop cleanly")?;
        }
        Ok(())
    }

    /// Starts the second node once the first wrote the key files.
    fn start_second(&mut self) -> anyhow::Result<()> {
        if !self.options.second_node || self.second.is_some() {
            return Ok(());
        }
        let dir = self.data_dir.with_extension("node2");
        let log = self.data_dir.with_extension("node2.log");
        let url = self.options.database_url.as_deref();
        let mut server = Server::spawn_with(&self.options.bin, &dir, url, Some(&self.data_dir), &log)?;
        let endpoint = server.wait_listening()?;
        let client = self.clients(&endpoint, 1)?.pop().context("no client")?;
        self.say(&format!("second node listening on {endpoint}"));
        self.second = Some((server, client));
        Ok(())
    }

    /// The second node, with the first one dead: it must answer, and hold every acknowledged
    /// write (it follows the database).
    async fn check_second(&mut self) -> anyhow::Result<()> {
        let Some((server, client)) = self.second.take() else { return Ok(()) };
        // It hears of each commit at once; give the last one a moment to arrive.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let checked = self.check(&client, false).await.context("the second node, after the first was killed");
        self.second = Some((server, client));
        checked
    }

    fn spawn(&self) -> anyhow::Result<Server> {
        Server::spawn(&self.options.bin, &self.data_dir, self.options.database_url.as_deref(), &self.log)
    }

    fn clients(&mut self, endpoint: &str, n: usize) -> anyhow::Result<Vec<Client>> {
        if self.creds.is_none() {
            self.creds = Some(server::credentials(&self.data_dir)?);
        }
        let creds = self.creds.clone().context("no credentials")?;
        Ok((0..n).map(|_| traffic::client(endpoint, &creds)).collect())
    }

    async fn one_iteration(&mut self) -> anyhow::Result<()> {
        let plan = self.plan();
        let mut server = self.spawn()?;
        if plan.startup_kill {
            match plan.startup_delay_ms {
                Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
                None => {
                    server.wait_listening()?;
                }
            }
            server.kill()?;
            self.summary.startup_kills += 1;
            self.say(&match plan.startup_delay_ms {
                Some(ms) => format!("killed during start-up, {ms} ms after spawning"),
                None => "killed during start-up, right after the listening line".to_string(),
            });
            return Ok(());
        }
        let endpoint = server.wait_listening()?;
        let mut clients = self.clients(&endpoint, self.options.clients + 1)?;
        let checker = clients.pop().context("no client")?;
        self.check(&checker, false).await?;
        self.ensure_secrets(&checker).await?;
        self.start_second()?;

        // Traffic, then SIGKILL at the planned moment.
        let stop = Arc::new(AtomicBool::new(false));
        let active = {
            let mut m = lock(&self.model);
            let active = m.active();
            for i in &active {
                m.secrets[*i].dirty = true;
            }
            active
        };
        let mut tasks = Vec::new();
        for (id, client) in clients.into_iter().enumerate() {
            let worker = Worker {
                id,
                iteration: self.iteration,
                client,
                rng: self.rng(1 + id as u64),
                model: self.model.clone(),
                stop: stop.clone(),
                active: active.clone(),
            };
            tasks.push(tokio::spawn(worker.run()));
        }
        tokio::time::sleep(Duration::from_millis(plan.traffic_ms)).await;
        stop.store(true, Ordering::SeqCst);
        server.kill()?;
        self.summary.traffic_kills += 1;
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .context("a worker did not stop within 30 s of the kill")?
                .context("a worker panicked")?;
        }
        let acked = lock(&self.model).counters.acked_writes;
        self.say(&format!("killed after {} ms of traffic; {acked} acknowledged writes so far", plan.traffic_ms));
        self.check_second().await
    }

    /// Start, check, SIGTERM, verify; `full` re-reads every value. Before starting, verify
    /// must already pass on the data dir the SIGKILL left.
    async fn verify_round(&mut self, full: bool) -> anyhow::Result<()> {
        if self.data_dir.join("db").exists() || (self.options.database_url.is_some() && self.data_dir.exists()) {
            let url = self.options.database_url.as_deref();
            self.summary.log_events =
                server::verify(&self.options.bin, &self.data_dir, url).context("verify after SIGKILL")?;
            self.summary.verify_runs += 1;
        }
        let mut server = self.spawn()?;
        let endpoint = server.wait_listening()?;
        let checker = self.clients(&endpoint, 1)?.pop().context("no client")?;
        self.check(&checker, full).await?;
        server.terminate()?;
        let url = self.options.database_url.as_deref();
        self.summary.log_events =
            server::verify(&self.options.bin, &self.data_dir, url).context("verify after SIGTERM")?;
        self.summary.verify_runs += 1;
        self.say(&format!("SIGTERM + verify ok ({} events)", self.summary.log_events));
        Ok(())
    }

    async fn check(&mut self, client: &Client, full: bool) -> anyhow::Result<()> {
        let mut rng = self.rng(1000);
        let mut model = std::mem::take(&mut *lock(&self.model));
        let mut findings = Findings::default();
        let result = check::check(client, &mut model, &mut rng, full, &mut findings).await;
        *lock(&self.model) = model;
        self.summary.lost_writes += findings.lost;
        result?;
        if !findings.problems.is_empty() {
            bail!("{} lost acknowledged writes; problems:\n{}", findings.lost, findings.problems.join("\n"));
        }
        Ok(())
    }

    /// Creates secrets (sequentially, each acknowledged) until enough have budget left.
    async fn ensure_secrets(&mut self, client: &Client) -> anyhow::Result<()> {
        let mut rng = self.rng(1001);
        loop {
            let (n, roomy) = {
                let m = lock(&self.model);
                (m.secrets.len(), m.secrets.iter().filter(|s| s.budget >= LOW_BUDGET).count())
            };
            if roomy >= ACTIVE_SECRETS {
                return Ok(());
            }
            let name = format!("crashloop/{:x}/{n}", self.options.seed);
            let token = traffic::token(&mut rng);
            let rec = VersionRec {
                value_seed: rng.next_u64(),
                binary: below(&mut rng, 2) == 0,
                pending: false,
                by_create: true,
                outcome: Outcome::Acked,
                presence: Presence::Unchecked,
                iteration: self.iteration,
                value_checked: false,
            };
            let req = client.create_secret().name(&name).client_request_token(&token);
            let req = match rec.value() {
                Value::String(s) => req.secret_string(s),
                Value::Binary(b) => req.secret_binary(Blob::new(b)),
            };
            let out = req.send().await.map_err(|e| anyhow::anyhow!("CreateSecret {name}: {}", describe(&e)))?;
            if out.version_id() != Some(token.as_str()) {
                bail!("CreateSecret {name} answered VersionId {:?}, sent token {token}", out.version_id());
            }
            let mut track = SecretTrack {
                name,
                versions: Default::default(),
                budget: VERSIONS_PER_SECRET - 1,
                current_moves: Vec::new(),
                deletion: Deletion::Live,
                delete_busy: false,
                dirty: true,
            };
            track.versions.insert(token.clone(), rec);
            track.observe_current(&token, Instant::now());
            let mut m = lock(&self.model);
            m.secrets.push(track);
            m.counters.acked_writes += 1;
        }
    }
}

/// `target/debug/secret-ledger` next to this crate's workspace, if built.
pub fn default_bin() -> Option<PathBuf> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/debug/secret-ledger");
    p.exists().then_some(p)
}
