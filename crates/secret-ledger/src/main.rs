//! `secret-ledger`: the one binary. `serve` answers the Secrets Manager API; `verify` checks a data dir.
//! The audit commands read a stopped data dir, or a running server with `--endpoint URL`.
//!
//! Exit codes: 0 ok, 1 verification failed, 2 usage or I/O error.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

mod audit;
mod remote;
mod timeline;
mod trust;

use anyhow::Context;

/// mimalloc instead of the C library's allocator: 15–30 % less CPU for a GetSecretValue and for
/// verify's two stages, which free on one thread what the other allocated (docs/PERFORMANCE.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The exit codes, in the top-level `--help` and in that of the commands that verify.
const EXIT_CODES: &str = "Exit codes: 0 ok, 1 verification failed (a broken chain, a forged or untrusted checkpoint, \
                          a proof that does not check), 2 usage or I/O error.";

#[derive(Parser)]
#[command(
    name = "secret-ledger",
    version,
    about = "An event-sourced, verifiable secret store with AWS Secrets Manager semantics",
    after_help = EXIT_CODES
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

/// `--endpoint` and its credentials: audit a running server instead of a data dir.
#[derive(Args, Clone, Debug)]
struct RemoteArgs {
    /// Audit the server at this URL (http://HOST:PORT or https://HOST:PORT) instead of a data dir
    /// (not with --data-dir).
    #[arg(long)]
    endpoint: Option<String>,
    /// With --endpoint: the access key id to sign with.
    #[arg(long, env = "AWS_ACCESS_KEY_ID")]
    access_key_id: Option<String>,
    /// With --endpoint: the secret access key to sign with.
    #[arg(long, env = "AWS_SECRET_ACCESS_KEY", hide_env_values = true)]
    secret_access_key: Option<String>,
    /// The region a --secret-id name resolves in: this (or AWS_REGION), else a --secret-id ARN's
    /// own region, else AWS_DEFAULT_REGION (an ARN of another region than --region or AWS_REGION
    /// is refused). Without --secret-id, `history` and `state` show only the secrets of the
    /// region given here or in AWS_REGION (not AWS_DEFAULT_REGION). With --endpoint, the region
    /// requests are signed for (last resort us-east-1).
    #[arg(long, env = "AWS_REGION")]
    region: Option<String>,
    /// With an https:// --endpoint: trust the CA certificates in this PEM file instead of the
    /// system's (as AWS_CA_BUNDLE does for the AWS tools).
    #[arg(long, env = "AWS_CA_BUNDLE")]
    ca_file: Option<PathBuf>,
    /// Read the log from this PostgreSQL database (postgres://… or key=value form) instead of
    /// the data dir's sled files; the data dir then only holds the master key.
    #[arg(long, env = "SECRET_LEDGER_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
}

impl RemoteArgs {
    /// The region given: `--region`, else `AWS_REGION`, else `AWS_DEFAULT_REGION`.
    fn region_given(&self) -> Option<String> {
        self.region_explicit().or_else(|| {
            std::env::var("AWS_DEFAULT_REGION").ok().filter(|r| !r.trim().is_empty()).map(|r| r.trim().to_string())
        })
    }

    /// The region given explicitly: `--region`, else `AWS_REGION` (never the
    /// `AWS_DEFAULT_REGION` default). It alone narrows the ledger-wide `history` and `state`.
    fn region_explicit(&self) -> Option<String> {
        self.region.clone().filter(|r| !r.trim().is_empty()).map(|r| r.trim().to_string())
    }

    /// The region `secret_id` resolves in: the one given, else an ARN's own. `None` leaves a
    /// name unresolved until it proves to be in one region only. An ARN's region wins over the
    /// `AWS_DEFAULT_REGION` default; an ARN of another region than `--region` or `AWS_REGION` is
    /// a usage error (it could only answer "not found").
    fn region_for(&self, secret_id: Option<&str>) -> anyhow::Result<Option<String>> {
        let arn_region = secret_id.and_then(|id| id.strip_prefix("arn:")).and_then(|rest| rest.split(':').nth(2));
        let explicit = self.region_explicit();
        match (self.region_given(), arn_region) {
            (Some(given), Some(arn)) if given != arn && explicit.is_some() => anyhow::bail!(
                "--secret-id is an ARN in region {arn}, but the region given (--region or AWS_REGION) is {given}: \
                 give --region {arn}"
            ),
            (Some(_), Some(arn)) => Ok(Some(arn.to_string())),
            (Some(given), _) => Ok(Some(given)),
            (None, Some(arn)) => Ok(Some(arn.to_string())),
            // Online a name resolves in the signing region, so there must be one, as the AWS
            // CLI insists; offline the ledger can tell whether the name is in one region only.
            (None, None) if secret_id.is_some() && self.endpoint.is_some() => anyhow::bail!(
                "with --endpoint a secret name resolves within the signing region: give --region \
                 (or AWS_REGION, AWS_DEFAULT_REGION), or a full ARN"
            ),
            (None, None) => Ok(None),
        }
    }

    /// The data dir, or the server when --endpoint is given (signing for `region`).
    fn source(self, data_dir: PathBuf, region: Option<String>) -> anyhow::Result<audit::Source> {
        Ok(match self.endpoint {
            None => audit::Source::Dir(audit::Local { data_dir, database_url: self.database_url }),
            Some(url) => audit::Source::Remote(Box::new(remote::Remote::new(remote::EndpointConfig {
                url,
                access_key_id: self.access_key_id,
                secret_access_key: self.secret_access_key,
                region,
                ca_file: self.ca_file,
            })?)),
        })
    }

    /// [`RemoteArgs::source`] for a command that names no secret.
    fn any_source(self, data_dir: PathBuf) -> anyhow::Result<audit::Source> {
        let region = self.region_given();
        self.source(data_dir, region)
    }
}

/// The options of `serve`.
#[derive(Args)]
struct ServeArgs {
    /// The data dir; created on first start, with a master key and credentials unless given.
    #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
    data_dir: PathBuf,
    /// HOST:PORT to listen on; port 0 picks a free port.
    #[arg(long, default_value = ledger_server::serve::DEFAULT_LISTEN)]
    listen: String,
    /// ACCESS_KEY_ID:SECRET_ACCESS_KEY lines (default: <data-dir>/credentials, generated).
    #[arg(long)]
    credentials: Option<PathBuf>,
    /// The account id in ARNs.
    #[arg(long, default_value = ledger_server::serve::DEFAULT_ACCOUNT_ID)]
    account_id: String,
    /// 64 hex characters (default: <data-dir>/master.key, generated).
    #[arg(long, env = "SECRET_LEDGER_MASTER_KEY_FILE")]
    master_key_file: Option<PathBuf>,
    /// Run rotation functions: the AWS Lambda Invoke API at this http:// URL (signed with
    /// AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY). Without it an external rotator drives
    /// rotations.
    #[arg(long, env = "SECRET_LEDGER_LAMBDA_ENDPOINT")]
    lambda_endpoint: Option<String>,
    /// Seconds one rotation step may take before it counts as failed.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=900))]
    lambda_timeout: u64,
    /// Record every value released (a SecretRead event, durable before the value leaves)
    /// and every refusal of a known access key (AccessDenied). Reads then cost a write.
    #[arg(long)]
    audit_reads: bool,
    /// Connections served at once; more wait in the kernel's backlog.
    #[arg(long, default_value_t = 4096, value_parser = clap::value_parser!(u64).range(1..=1_000_000))]
    max_connections: u64,
    /// Seconds a client has to send a request's headers (also between requests on a kept-alive
    /// connection) before the connection is closed.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout: u64,
    /// Seconds a client has to send a request's body before it is refused.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_timeout: u64,
    /// Log lines on stderr as `text` or as one JSON object per line (`json`); each request
    /// gets one line (target `request`) with operation, outcome, status, latency, access key
    /// id and request id. `SECRET_LEDGER_LOG` sets the level.
    #[arg(long, env = "SECRET_LEDGER_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
    /// Serve the Prometheus metrics (`GET /metrics`) on this HOST:PORT only, instead of on
    /// the main listener.
    #[arg(long, env = "SECRET_LEDGER_METRICS_LISTEN")]
    metrics_listen: Option<String>,
    /// Serve HTTPS with this PEM certificate (the file may hold the chain); needs --tls-key.
    /// SIGHUP reloads both files.
    #[arg(long, requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Allow plain HTTP on an address other than loopback (when something else, a proxy or a
    /// private link, encrypts the traffic).
    #[arg(long)]
    insecure_http: bool,
    /// Keep the log in this PostgreSQL database (postgres://… or key=value form) instead of
    /// sled files in the data dir, which then holds only the master key and credentials.
    #[arg(long, env = "SECRET_LEDGER_DATABASE_URL", hide_env_values = true)]
    database_url: Option<String>,
    /// With --database-url: the longest a statement may run, in seconds.
    #[arg(long, default_value_t = 5)]
    statement_timeout: u64,
}

impl ServeArgs {
    /// The server's configuration: these options, and the Lambda credentials from the environment.
    fn config(self) -> anyhow::Result<ledger_server::ServeConfig> {
        let mut config = ledger_server::ServeConfig::new(self.data_dir);
        config.listen = self.listen;
        config.credentials_file = self.credentials;
        config.account_id = self.account_id;
        config.master_key_file = self.master_key_file;
        config.audit_reads = self.audit_reads;
        config.log_format = self.log_format.parse().map_err(anyhow::Error::msg)?;
        config.metrics_listen = self.metrics_listen;
        config.insecure_http = self.insecure_http;
        config.database = self.database_url.map(|url| ledger_server::serve::Database {
            url,
            statement_timeout: std::time::Duration::from_secs(self.statement_timeout.max(1)),
        });
        if let (Some(cert), Some(key)) = (self.tls_cert, self.tls_key) {
            config.tls = Some(ledger_server::tls::TlsFiles { cert, key });
        }
        config.limits = ledger_server::serve::ConnLimits {
            max_connections: usize::try_from(self.max_connections).unwrap_or(usize::MAX),
            header_timeout: std::time::Duration::from_secs(self.header_timeout),
            body_timeout: std::time::Duration::from_secs(self.body_timeout),
            ..ledger_server::serve::ConnLimits::default()
        };
        if let Some(endpoint) = self.lambda_endpoint {
            let timeout = std::time::Duration::from_secs(self.lambda_timeout);
            config.lambda = Some(ledger_server::rotation::LambdaConfig::from_env(&endpoint, timeout)?);
        }
        Ok(config)
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the AWS Secrets Manager API (JSON 1.1, SigV4) until SIGINT or SIGTERM.
    Serve(ServeArgs),
    /// Replay the whole log (data dir or export file): chain, encoding, time order, every label
    /// rule, stored projection, Merkle root; optionally against a checkpoint kept elsewhere.
    #[command(after_help = EXIT_CODES)]
    Verify {
        /// The data dir to verify (must not be in use by a running server; not with --endpoint or
        /// --export).
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
        /// Verify an export file instead of a data dir (no keys, no sled needed).
        #[arg(long, conflicts_with = "endpoint")]
        export: Option<PathBuf>,
        /// A checkpoint the log must extend (catches a truncated tail).
        #[arg(long)]
        checkpoint: Option<PathBuf>,
        /// A public key file (keygen's FILE.pub) the checkpoint must be signed by; repeatable.
        /// An unsigned checkpoint, a forged signature or another key then fail (exit 1).
        #[arg(long, requires = "checkpoint")]
        trusted_key: Vec<PathBuf>,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Every event of a secret, in order, with seq, time, actor, operation, request id and what
    /// changed, headed by the secret's region and ARN (a name re-created after a purge is a
    /// second secret); without --secret-id, every event of the ledger (with --region or
    /// AWS_REGION: of that region's secrets), each with its secret's ARN. Filters narrow either.
    History {
        /// Name, partial or full ARN. A name resolves within one region (--region, AWS_REGION,
        /// AWS_DEFAULT_REGION); with none given it must be used in one region only.
        #[arg(long)]
        secret_id: Option<String>,
        /// Only events appended by this access key id (or `rotation`, `system`, `local`).
        #[arg(long)]
        actor: Option<String>,
        /// Only events appended by this operation (PutSecretValue, RotateSecret, PurgeDue, …).
        #[arg(long)]
        operation: Option<String>,
        /// Only events from this seq or RFC 3339 time on.
        #[arg(long)]
        since: Option<String>,
        /// Only events up to this seq or RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// The data dir to read (must not be in use by a running server; not with --endpoint).
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
        /// With --secret-id: also write a self-contained HTML timeline of the labels to this file
        /// (of the whole history: not with the filters, which would cut spans short).
        #[arg(long, requires = "secret_id", conflicts_with_all = ["actor", "operation", "since", "until"])]
        html: Option<PathBuf>,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Secrets, versions and labels as they stood at a seq or an RFC 3339 time.
    State {
        /// A seq, or an RFC 3339 time such as 2026-11-27T03:12:00Z.
        #[arg(long)]
        as_of: String,
        /// Only this secret (name, partial or full ARN), replayed from its own events. A name
        /// resolves within one region, as for `history`. Without it: every secret, by region (only
        /// those of --region or AWS_REGION when given).
        #[arg(long)]
        secret_id: Option<String>,
        /// With --secret-id: which version held this label then.
        #[arg(long, requires = "secret_id")]
        label: Option<String>,
        /// With --label: also print the value that version holds (offline, with the master key).
        #[arg(long, requires = "label")]
        reveal_value: bool,
        /// Show a seq inside a request as asked, instead of the state after that request.
        #[arg(long)]
        exact: bool,
        /// Master key to open the value with --reveal-value (default: <data-dir>/master.key).
        #[arg(long, env = "SECRET_LEDGER_MASTER_KEY_FILE")]
        master_key_file: Option<PathBuf>,
        /// The data dir to read (must not be in use by a running server; not with --endpoint).
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the log as self-describing JSON Lines: header, one line per event, checkpoint.
    Export {
        /// The file to write (refused if it exists, unless --force).
        #[arg(long)]
        out: PathBuf,
        /// Overwrite --out if it exists.
        #[arg(long)]
        force: bool,
        /// Name of this ledger in the header and checkpoint (default: the data dir path).
        #[arg(long)]
        origin: Option<String>,
        /// The data dir to read (must not be in use by a running server; not with --endpoint).
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write a checkpoint (size, head hash, Merkle root, time), optionally ed25519-signed.
    Checkpoint {
        /// The file to write (refused if it exists, unless --force).
        #[arg(long)]
        out: PathBuf,
        /// Overwrite --out if it exists.
        #[arg(long)]
        force: bool,
        /// Name of this ledger in the checkpoint (default: the data dir path).
        #[arg(long)]
        origin: Option<String>,
        /// Sign with the ed25519 key in this file (made by `secret-ledger keygen`).
        #[arg(long)]
        signing_key: Option<PathBuf>,
        /// The data dir to read (must not be in use by a running server; not with --endpoint).
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// An inclusion proof for one event, or a consistency proof between two checkpoints.
    #[command(after_help = EXIT_CODES)]
    Prove {
        /// The seq of the event to prove included.
        #[arg(long, conflicts_with_all = ["from_checkpoint", "to_checkpoint"])]
        seq: Option<u64>,
        /// With --seq: prove it included in this kept checkpoint's tree (its root and head).
        #[arg(long, requires = "seq")]
        checkpoint: Option<PathBuf>,
        /// The older of two kept checkpoints: prove the newer extends it.
        #[arg(long, requires = "to_checkpoint")]
        from_checkpoint: Option<PathBuf>,
        /// The newer of two kept checkpoints.
        #[arg(long, requires = "from_checkpoint")]
        to_checkpoint: Option<PathBuf>,
        /// The data dir to read (must not be in use by a running server; not with --endpoint).
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        #[command(flatten)]
        remote: RemoteArgs,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Make an ed25519 key for signing checkpoints: FILE (the secret seed, mode 0600) and
    /// FILE.pub (the public key, for `verify --trusted-key`); prints the public key.
    Keygen {
        /// Where to write the signing key; never overwritten.
        #[arg(long)]
        out: PathBuf,
    },
    /// Check a proof (`prove --json` output) against kept checkpoints alone: one checkpoint for
    /// an inclusion proof, two (older, newer) for a consistency proof.
    #[command(after_help = EXIT_CODES)]
    CheckProof {
        /// The proof document.
        #[arg(long)]
        proof: PathBuf,
        /// A kept checkpoint; give it twice for a consistency proof.
        #[arg(long, required = true, num_args = 1)]
        checkpoint: Vec<PathBuf>,
        /// A public key the checkpoints must be signed by; repeatable.
        #[arg(long)]
        trusted_key: Vec<PathBuf>,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Drop and rebuild the derived data (snapshots, indexes) from the log.
    Rebuild {
        /// The data dir whose derived data is rebuilt (the server must be stopped).
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        /// Rebuild in this PostgreSQL database instead of the data dir.
        #[arg(long, env = "SECRET_LEDGER_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Copy a log verbatim, with its data keys, from a data dir to a PostgreSQL database or back
    /// (both stopped, the destination empty): `verify` on both ends then reports the same head
    /// hash and Merkle root. The master key file stays where it is; copy it yourself.
    Migrate {
        /// The sled data dir to copy from.
        #[arg(long, required_unless_present = "from_database_url", conflicts_with = "from_database_url")]
        from_data_dir: Option<PathBuf>,
        /// The PostgreSQL database to copy from.
        #[arg(long, env = "SECRET_LEDGER_FROM_DATABASE_URL", hide_env_values = true)]
        from_database_url: Option<String>,
        /// The sled data dir to copy to (created).
        #[arg(long, required_unless_present = "to_database_url", conflicts_with = "to_database_url")]
        to_data_dir: Option<PathBuf>,
        /// The PostgreSQL database to copy to (its tables are created).
        #[arg(long, env = "SECRET_LEDGER_TO_DATABASE_URL", hide_env_values = true)]
        to_database_url: Option<String>,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Replace the master key (the server must be stopped): a new key with the next id, every
    /// data key re-wrapped under it, a MasterKeyRotated event in the log. Afterwards the old key
    /// opens nothing in the data dir. Safe to kill at any point: the data dir then opens with the
    /// old or the new key, and the next start finishes the job.
    RotateMasterKey {
        /// The data dir whose master key is rotated (the server must be stopped).
        #[arg(long, env = "SECRET_LEDGER_DATA_DIR", default_value = "./secret-ledger-data")]
        data_dir: PathBuf,
        /// The master key file to rotate (default: <data-dir>/master.key); rewritten in place.
        #[arg(long, env = "SECRET_LEDGER_MASTER_KEY_FILE")]
        master_key_file: Option<PathBuf>,
        /// Rotate the data keys in this PostgreSQL database (every server stopped; give each the
        /// new key file afterwards).
        #[arg(long, env = "SECRET_LEDGER_DATABASE_URL", hide_env_values = true)]
        database_url: Option<String>,
        /// Print one JSON document instead of text.
        #[arg(long)]
        json: bool,
    },
}

fn main() -> ExitCode {
    without_huge_pages();
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { ExitCode::from(2) } else { ExitCode::SUCCESS };
        }
    };
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Turns off transparent huge pages for this process, whatever the command. mimalloc reserves one
/// large arena up front; where the kernel backs anonymous memory with huge pages ("always"), a
/// partly used 2 MiB page is resident whole (a 1M-event verify peaked at ~275 MB RSS with them and
/// ~229 MB without, at the same CPU time), and a page faulted in on the writer thread is zeroed
/// whole, 2 MiB at a time, while a group of puts waits. A kernel without the switch keeps its pages.
#[cfg(target_os = "linux")]
fn without_huge_pages() {
    let _ = rustix::thread::disable_transparent_huge_pages(true);
}

#[cfg(not(target_os = "linux"))]
fn without_huge_pages() {}

/// Parses the command line. `--endpoint` and `--export` conflict with a `--data-dir` or a
/// `--database-url` given on the command line (either would be ignored); one from
/// `SECRET_LEDGER_DATA_DIR` or `SECRET_LEDGER_DATABASE_URL` is simply not used then (clap would
/// count the environment as a conflict too).
fn parse() -> Result<Cli, clap::Error> {
    use clap::parser::ValueSource;
    use clap::{CommandFactory, FromArgMatches};
    let matches = Cli::command().try_get_matches()?;
    if let Some((_, sub)) = matches.subcommand() {
        let given = |id: &str| sub.try_get_raw(id).ok().flatten().is_some();
        for (local, shown) in [("data_dir", "--data-dir <DATA_DIR>"), ("database_url", "--database-url <DATABASE_URL>")]
        {
            let local_given = given(local) && sub.value_source(local) == Some(ValueSource::CommandLine);
            for other in ["endpoint", "export"] {
                if given(other) && local_given {
                    return Err(Cli::command().error(
                        clap::error::ErrorKind::ArgumentConflict,
                        format!("the argument '--{other}' cannot be used with '{shown}'"),
                    ));
                }
            }
        }
    }
    Cli::from_arg_matches(&matches)
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Cmd::Verify { data_dir, remote, export, checkpoint, trusted_key, json } => {
            audit::verify(&remote.any_source(data_dir)?, export.as_deref(), checkpoint.as_deref(), &trusted_key, json)
        }
        Cmd::Keygen { out } => trust::keygen(&out),
        Cmd::CheckProof { proof, checkpoint, trusted_key, json } => {
            trust::check_proof(&proof, &checkpoint, &trusted_key, json)
        }
        Cmd::History { secret_id, actor, operation, since, until, data_dir, remote, html, json } => {
            // The ledger-wide history is narrowed by an explicit region only.
            let region = if secret_id.is_none() { remote.region_explicit() } else { None };
            let filter = ledger_audit::history::HistoryFilter { actor, operation, since, until, region };
            match secret_id {
                Some(secret_id) => {
                    let region = remote.region_for(Some(&secret_id))?;
                    let source = remote.source(data_dir, region.clone())?;
                    audit::history(&source, &secret_id, region.as_deref(), &filter, json, html.as_deref())
                }
                None => audit::ledger_history(&remote.any_source(data_dir)?, &filter, json),
            }
        }
        Cmd::State { as_of, secret_id, label, reveal_value, exact, master_key_file, data_dir, remote, json } => {
            let signing = remote.region_for(secret_id.as_deref())?;
            // A secret resolves in its region; the whole ledger is narrowed by an explicit one only.
            let region = if secret_id.is_some() { signing.clone() } else { remote.region_explicit() };
            audit::state(audit::StateArgs {
                source: &remote.source(data_dir, signing)?,
                as_of: &as_of,
                secret_id: secret_id.as_deref(),
                region: region.as_deref(),
                label: label.as_deref(),
                reveal_value,
                exact,
                master_key_file,
                json,
            })
        }
        Cmd::Export { out, force, origin, data_dir, remote, json } => {
            audit::check_out(&out, force)?;
            audit::export(&remote.any_source(data_dir)?, &out, origin, json)
        }
        Cmd::Checkpoint { out, force, origin, signing_key, data_dir, remote } => {
            audit::check_out(&out, force)?;
            audit::checkpoint(&remote.any_source(data_dir)?, &out, origin, signing_key.as_deref())
        }
        Cmd::Prove { seq, checkpoint, from_checkpoint, to_checkpoint, data_dir, remote, json } => {
            let source = remote.any_source(data_dir)?;
            match (seq, from_checkpoint, to_checkpoint) {
                (Some(seq), None, None) => audit::prove_inclusion(&source, seq, checkpoint.as_deref(), json),
                (None, Some(a), Some(b)) => audit::prove_consistency(&source, &a, &b, json),
                _ => anyhow::bail!("prove takes --seq N, or --from-checkpoint A --to-checkpoint B"),
            }
        }
        Cmd::Rebuild { data_dir, database_url, json } => audit::rebuild(&audit::Local { data_dir, database_url }, json),
        Cmd::Migrate { from_data_dir, from_database_url, to_data_dir, to_database_url, json } => {
            let from = audit::Local { data_dir: from_data_dir.unwrap_or_default(), database_url: from_database_url };
            let to = audit::Local { data_dir: to_data_dir.unwrap_or_default(), database_url: to_database_url };
            audit::migrate(&from, &to, json)
        }
        Cmd::RotateMasterKey { data_dir, master_key_file, database_url, json } => {
            audit::rotate_master_key(&audit::Local { data_dir, database_url }, master_key_file.as_deref(), json)
        }
        Cmd::Serve(args) => serve(args),
    }
}

/// Serves until SIGINT or SIGTERM.
fn serve(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let config = args.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start tokio")?;
    runtime.block_on(ledger_server::serve(config))?;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// The arguments and subcommands below `cmd` (clap's own help and version aside) that say
    /// nothing in `--help`, named by their path.
    fn without_help(cmd: &clap::Command, path: &str, missing: &mut Vec<String>, seen: &mut usize) {
        let said = |text: Option<&clap::builder::StyledStr>| text.is_some_and(|t| !t.to_string().trim().is_empty());
        for arg in cmd.get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            *seen += 1;
            if !said(arg.get_help()) && !said(arg.get_long_help()) {
                missing.push(format!("{path} --{}", arg.get_long().unwrap_or(id)));
            }
        }
        for sub in cmd.get_subcommands().filter(|sub| sub.get_name() != "help") {
            let sub_path = format!("{path} {}", sub.get_name());
            *seen += 1;
            if !said(sub.get_about()) && !said(sub.get_long_about()) {
                missing.push(sub_path.clone());
            }
            without_help(sub, &sub_path, missing, seen);
        }
    }

    #[test]
    fn every_argument_and_subcommand_has_help() {
        let mut cmd = Cli::command();
        cmd.build();
        let (mut missing, mut seen) = (Vec::new(), 0);
        without_help(&cmd, "secret-ledger", &mut missing, &mut seen);
        assert!(seen > 50, "only {seen} arguments and subcommands found: the walk missed some");
        assert!(missing.is_empty(), "without help text: {missing:#?}");
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
