//! `crashloop`: SIGKILL `secret-ledger serve` under concurrent SDK traffic, restart it, and check
//! that no acknowledged write was lost. Exit status 0 when every check passed, 1 otherwise.

// A test tool for 64-bit machines: counts, indexes and nanosecond clocks fit `usize` and `u64`.
#![allow(clippy::cast_possible_truncation)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use ledger_crashloop::{run, Options};

#[derive(Parser)]
#[command(name = "crashloop", about = "Crash-loop harness for `secret-ledger serve`")]
struct Cli {
    /// The `secret-ledger` binary.
    #[arg(long, default_value = "target/debug/secret-ledger")]
    bin: PathBuf,
    #[arg(long, default_value_t = 100)]
    iterations: u32,
    /// Seeds every random choice; default: drawn from the clock (printed, so it can be replayed).
    #[arg(long)]
    seed: Option<u64>,
    /// Concurrent SDK clients.
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// The data dir (must be empty or absent); default: a temporary dir, kept on failure.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Stop with SIGTERM and run `secret-ledger verify` every this many iterations.
    #[arg(long, default_value_t = 10)]
    verify_every: u32,
    /// Shortest traffic before the SIGKILL, in milliseconds.
    #[arg(long, default_value_t = 50)]
    min_traffic_ms: u64,
    /// Longest traffic before the SIGKILL, in milliseconds.
    #[arg(long, default_value_t = 500)]
    max_traffic_ms: u64,
    /// Share of iterations killed during start-up, in percent.
    #[arg(long, default_value_t = 10)]
    startup_kill_percent: u64,
    /// Print one line per iteration.
    #[arg(long, short)]
    verbose: bool,
    /// Keep the log in this (empty) PostgreSQL database instead of the data dir's sled files.
    #[arg(long, env = "SECRET_LEDGER_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// With --database-url: run a second server on the same database that is never killed; it
    /// must keep serving through every kill of the first and hold every acknowledged write.
    #[arg(long, requires = "database_url")]
    second_node: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let seed = cli.seed.unwrap_or_else(|| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        now.as_nanos() as u64 ^ u64::from(std::process::id())
    });
    println!(
        "crashloop: seed {seed}, {} iterations, {} clients, bin {}",
        cli.iterations,
        cli.clients,
        cli.bin.display()
    );
    let mut options = Options::new(cli.bin, cli.iterations, seed);
    options.clients = cli.clients.max(1);
    options.data_dir = cli.data_dir;
    options.verify_every = cli.verify_every.max(1);
    options.traffic_ms = (cli.min_traffic_ms, cli.max_traffic_ms.max(cli.min_traffic_ms));
    options.startup_kill_percent = cli.startup_kill_percent.min(100);
    options.verbose = cli.verbose;
    options.database_url = cli.database_url;
    options.second_node = cli.second_node;
    match run(&options) {
        Ok(summary) => {
            println!("crashloop: ok, seed {seed}: {summary}");
            ExitCode::SUCCESS
        }
        Err(failure) => {
            eprintln!("crashloop: {failure}");
            println!("crashloop: FAILED, seed {seed}, iteration {}", failure.iteration);
            ExitCode::FAILURE
        }
    }
}
