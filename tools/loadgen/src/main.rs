//! `loadgen`: load generator for `secret-ledger serve` through the AWS SDK for Rust, a zero-work
//! stub server with the same HTTP stack (the ceiling this machine can reach), and `compare`,
//! which runs both side by side. See `docs/PERFORMANCE.md` ("Server throughput").
//!
//! ```text
//! loadgen run --endpoint http://127.0.0.1:4590 --access-key-id ID --secret-access-key KEY \
//!     --workload put --clients 64 --seconds 10 [--json]
//! loadgen stub --listen 127.0.0.1:0
//! loadgen compare --clients 1,16,64 --seconds 10 --workload put,get
//! ```

// A test tool for 64-bit machines: counts, indexes and nanosecond clocks fit `usize` and `u64`.
#![allow(clippy::cast_possible_truncation)]

mod compare;
mod cpu;
mod stub;
mod workload;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};

use crate::workload::{ClientMode, ClientTarget, RunConfig, Workload};

/// The same allocator as `secret-ledger`, for the load generator and the stub alike: the less
/// CPU the generator spends, the closer the stub's rate is to what the SDK itself allows.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(name = "loadgen", about = "Load generator and stub server for secret-ledger serve")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Args, Clone)]
struct Shape {
    /// Warm-up before measuring, in seconds (not counted).
    #[arg(long, default_value_t = 2.0)]
    warmup: f64,
    /// Secrets pre-created (get/mixed read them; puts are spread over them, at most 90 versions
    /// each, then go to freshly created secrets).
    #[arg(long, default_value_t = 1000)]
    secrets: usize,
    /// Length of each secret value (SecretString).
    #[arg(long, default_value_t = 64)]
    value_bytes: usize,
    /// One SDK client shared by all tasks (its pool opens one connection per task), or one per
    /// task. Shared costs the load generator less CPU, so it measures the server better.
    #[arg(long, value_enum, default_value_t = ClientMode::Shared)]
    client_mode: ClientMode,
    /// Print one JSON document instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Subcommand)]
enum Cmd {
    /// Run one workload against an endpoint and report ops/s, latency, errors and CPU.
    Run {
        /// http://HOST:PORT of the server.
        #[arg(long)]
        endpoint: String,
        #[arg(long, env = "AWS_ACCESS_KEY_ID")]
        access_key_id: String,
        #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
        secret_access_key: String,
        #[arg(long, default_value = "us-east-1")]
        region: String,
        #[arg(long, value_enum)]
        workload: Workload,
        /// Concurrent closed-loop tasks.
        #[arg(long)]
        clients: usize,
        /// Measured duration, after the warm-up.
        #[arg(long)]
        seconds: f64,
        /// Also report the CPU time of this process (the server) over the measured window.
        #[arg(long)]
        server_pid: Option<u32>,
        #[command(flatten)]
        shape: Shape,
    },
    /// Serve canned AWS JSON 1.1 answers without any work (no SigV4 check, no storage).
    Stub {
        #[arg(long, default_value = "127.0.0.1:0")]
        listen: String,
        /// Length of the SecretString that GetSecretValue returns.
        #[arg(long, default_value_t = 64)]
        value_bytes: usize,
    },
    /// Start secret-ledger serve and the stub, run each workload at each client count against
    /// both and print a table.
    Compare {
        /// Client counts, comma-separated.
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        clients: Vec<usize>,
        /// Measured seconds per run.
        #[arg(long, default_value_t = 10.0)]
        seconds: f64,
        /// Workloads, comma-separated.
        #[arg(long, value_enum, value_delimiter = ',', default_value = "put,get")]
        workload: Vec<Workload>,
        /// The secret-ledger binary (default: next to this one, i.e. target/release/secret-ledger).
        #[arg(long)]
        server_bin: Option<PathBuf>,
        /// Parent of the temporary data dir (default: the system temp dir). Use a real disk:
        /// on tmpfs fdatasync costs nothing.
        #[arg(long)]
        work_dir: Option<PathBuf>,
        #[command(flatten)]
        shape: Shape,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Same runtime as the server: multi-threaded, one worker per core.
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start tokio")?;
    match cli.command {
        Cmd::Run {
            endpoint,
            access_key_id,
            secret_access_key,
            region,
            workload,
            clients,
            seconds,
            server_pid,
            shape,
        } => {
            let target = ClientTarget { endpoint, access_key_id, secret_access_key, region };
            let config = RunConfig {
                workload,
                clients,
                seconds,
                warmup_seconds: shape.warmup,
                secrets: shape.secrets,
                value_bytes: shape.value_bytes,
                client_mode: shape.client_mode,
                server_pid,
            };
            let report = runtime.block_on(workload::run(&target, &config))?;
            if shape.json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print!("{}", report.text());
            }
            Ok(())
        }
        Cmd::Stub { listen, value_bytes } => runtime.block_on(async {
            let stub = stub::start(&listen, value_bytes).await?;
            {
                let mut out = std::io::stdout().lock();
                writeln!(out, "listening on http://{}", stub.addr).context("cannot write to stdout")?;
                out.flush().context("cannot flush stdout")?;
            }
            stub.task.await.context("the stub task failed")?.context("serving failed")
        }),
        Cmd::Compare { clients, seconds, workload, server_bin, work_dir, shape } => {
            let config = compare::CompareConfig {
                clients,
                workloads: workload,
                seconds,
                warmup_seconds: shape.warmup,
                secrets: shape.secrets,
                value_bytes: shape.value_bytes,
                client_mode: shape.client_mode,
                server_bin,
                work_dir,
            };
            let rows = compare::compare(&runtime, &config)?;
            if shape.json {
                println!("{}", serde_json::to_string(&rows)?);
            } else {
                print!("{}", compare::table(&rows));
            }
            Ok(())
        }
    }
}
