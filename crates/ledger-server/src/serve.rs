//! The `serve` command: open the ledger, bind, answer until SIGINT/SIGTERM, close cleanly.
//!
//! [`start`] is the in-process entry point (tests use it on `127.0.0.1:0`); [`serve`] is what
//! the binary runs: it also prints `listening on http://HOST:PORT` once the socket accepts, and
//! waits for a signal.

use std::future::Future;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use anyhow::Context;
use ledger_store::{Ledger, LedgerOptions};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::app::App;
use crate::credentials::{self, Created};
use crate::http::{router, BODY_BYTES_MAX};

/// Everything `serve` needs; [`ServeConfig::new`] gives the CLI's defaults for a data dir.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    /// `HOST:PORT`; port 0 picks a free port.
    pub listen: String,
    /// `None`: `<data_dir>/credentials`, generated on first start.
    pub credentials_file: Option<PathBuf>,
    pub account_id: String,
    /// `None`: `<data_dir>/master.key`, generated on first start.
    pub master_key_file: Option<PathBuf>,
    pub ledger_options: LedgerOptions,
    pub body_bytes_max: usize,
    /// Invoke rotation functions there (`--lambda-endpoint`); `None`: an external rotator
    /// drives the rotation steps.
    pub lambda: Option<crate::rotation::LambdaConfig>,
    /// `--audit-reads`: record every value released and every refusal of a known key.
    pub audit_reads: bool,
    /// Connection cap and timeouts.
    pub limits: ConnLimits,
    /// How much heavy work (filtering listings, audit reads) runs at once.
    pub work: WorkLimits,
    /// How log lines are written (`--log-format`).
    pub log_format: LogFormat,
    /// Serve `GET /metrics` here only (`--metrics-listen`); `None`: on the main listener.
    pub metrics_listen: Option<String>,
    /// `--tls-cert` and `--tls-key`: serve HTTPS.
    pub tls: Option<crate::tls::TlsFiles>,
    /// `--insecure-http`: allow plain HTTP on an address other than loopback.
    pub insecure_http: bool,
    /// Keep the log in PostgreSQL instead of sled files in the data dir.
    pub database: Option<Database>,
}

/// `--log-format`: human-readable lines, or one JSON object per line for log pipelines.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<LogFormat, String> {
        match s {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {s:?}: expected json or text")),
        }
    }
}

/// A PostgreSQL database holding the log (`--database-url`).
#[derive(Clone)]
pub struct Database {
    pub url: String,
    /// The longest a statement may run.
    pub statement_timeout: std::time::Duration,
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("Database").field("statement_timeout", &self.statement_timeout).finish_non_exhaustive()
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:4590";
pub const DEFAULT_ACCOUNT_ID: &str = "000000000000";

impl ServeConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> ServeConfig {
        ServeConfig {
            data_dir: data_dir.into(),
            listen: DEFAULT_LISTEN.to_string(),
            credentials_file: None,
            account_id: DEFAULT_ACCOUNT_ID.to_string(),
            master_key_file: None,
            ledger_options: LedgerOptions::default(),
            body_bytes_max: BODY_BYTES_MAX,
            lambda: None,
            audit_reads: false,
            limits: ConnLimits::default(),
            work: WorkLimits::default(),
            log_format: LogFormat::Text,
            metrics_listen: None,
            tls: None,
            insecure_http: false,
            database: None,
        }
    }
}

/// A server accepting connections; [`RunningServer::shutdown`] stops it and closes the ledger.
pub struct RunningServer {
    addr: SocketAddr,
    app: Arc<App>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
    created: Vec<Created>,
    /// The `--metrics-listen` address and its server.
    metrics: Option<(SocketAddr, JoinHandle<std::io::Result<()>>)>,
    tls: Option<Arc<crate::tls::Tls>>,
}

impl RunningServer {
    /// The bound address (the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `https` with TLS, else `http`.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// Loads the TLS certificate and key again (SIGHUP): new connections get them, open ones
    /// keep theirs. Without TLS, nothing to do.
    pub fn reload_tls(&self) -> Result<(), crate::tls::TlsError> {
        self.tls.as_ref().map_or(Ok(()), |tls| tls.reload())
    }

    /// The metrics text as `GET /metrics` would answer it now.
    pub fn metrics_text(&self) -> String {
        self.app.metrics_text()
    }

    /// The `--metrics-listen` address, if metrics have one of their own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(|(addr, _)| *addr)
    }

    /// The ledger behind the server (tests check that refused requests append nothing).
    pub fn ledger(&self) -> &Ledger {
        &self.app.ledger
    }

    /// Files generated on this start (master key, credentials).
    pub fn created_files(&self) -> &[Created] {
        &self.created
    }

    /// Stops accepting, lets in-flight requests finish, then closes the ledger.
    pub async fn shutdown(mut self) -> anyhow::Result<()> {
        if let Some(rotator) = &self.app.rotator {
            // First, while the server still answers the functions' calls back: running
            // rotations stop here and resume after the next start.
            rotator.stop().await;
        }
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some((_, task)) = self.metrics.take() {
            task.abort();
        }
        let served = (&mut self.task).await.context("the server task failed")?;
        let RunningServer { app, .. } = self;
        let closed = match Arc::try_unwrap(app) {
            Ok(app) => tokio::task::spawn_blocking(move || app.ledger.close()).await.context("closing the ledger")?,
            Err(_) => {
                // Someone still holds the app; the ledger closes when the last holder drops it.
                tracing::warn!("ledger still referenced at shutdown; it will close on drop");
                Ok(())
            }
        };
        served.context("serving failed")?;
        closed.context("closing the ledger failed")?;
        Ok(())
    }
}

/// Opens the ledger in `config.data_dir` (creating the dir, master key and credentials as
/// needed), binds `config.listen` and starts answering in a background task.
pub async fn start(config: ServeConfig) -> anyhow::Result<RunningServer> {
    // Bind first: a server that cannot listen creates no master key or credentials.
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.listen))?;
    let bound = listener.local_addr()?;
    if config.tls.is_none() && !config.insecure_http && !bound.ip().is_loopback() {
        anyhow::bail!(
            "refusing to serve plain HTTP on {bound}: secret values would cross the network in clear text. \
             Give --tls-cert and --tls-key, or --insecure-http if something else encrypts the traffic"
        );
    }
    let tls = match &config.tls {
        Some(files) => Some(Arc::new(crate::tls::Tls::load(files.clone())?)),
        None => None,
    };
    let metrics_listener = match &config.metrics_listen {
        Some(addr) => Some(
            tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("cannot listen on {addr} for metrics"))?,
        ),
        None => None,
    };
    let mut created = Vec::new();
    let metrics = Arc::new(crate::metrics::Metrics::new());
    let (ledger, credentials) = open_data_dir(&config, metrics.clone(), &mut created).await?;
    let addr = listener.local_addr()?;
    let app = Arc::new(App {
        ledger,
        credentials,
        account_id: config.account_id.clone(),
        body_bytes_max: config.body_bytes_max,
        body_timeout: config.limits.body_timeout,
        rotator: config.lambda.clone().map(|lambda| Arc::new(crate::rotation::Rotator::new(lambda))),
        trail: crate::ops::Trail { audit_reads: config.audit_reads },
        metrics,
        metrics_on_main: metrics_listener.is_none(),
        filtering_slots: crate::ops::WorkSlots::new("filtering", config.work.filtering),
        audit_slots: crate::ops::WorkSlots::new("audit", config.work.audit),
        whole_log_slots: crate::ops::WorkSlots::new("whole_log", crate::audit_ops::WHOLE_LOG_READS_MAX),
        send_timeout: config.limits.send_timeout,
    });
    match &app.rotator {
        Some(rotator) => rotator.start_scheduler(app.clone()),
        None => tracing::info!(
            "no --lambda-endpoint: rotation functions will not be invoked; RotateSecret records the rotation \
             and reserves AWSPENDING for an external rotator"
        ),
    }
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(accept_loop(listener, router(app.clone()), config.limits, tls.clone(), stopped));
    let metrics = match metrics_listener {
        Some(listener) => Some(serve_metrics(listener, &app, config.limits)?),
        None => None,
    };
    Ok(RunningServer { addr, app, stop: Some(stop), task, created, metrics, tls })
}

/// Serves one accepted connection (through TLS when `acceptor` is given) until it closes, then
/// gives back its `slot` among the connections allowed at once.
async fn serve_connection(
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
    router: axum::Router,
    limits: ConnLimits,
    acceptor: Option<tokio_rustls::TlsAcceptor>,
    watcher: hyper_util::server::graceful::Watcher,
    slot: tokio::sync::OwnedSemaphorePermit,
) {
    // The peer address reaches the handler for the security log.
    let service = hyper::service::service_fn(move |mut request: hyper::Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        let mut router = router.clone();
        async move { tower_service::Service::call(&mut router, request.map(axum::body::Body::new)).await }
    });
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_timeout);
    // A client that takes nothing of a response for the send timeout loses its connection.
    let tcp = SendStall::new(tcp, limits.send_timeout);
    let served = match acceptor {
        None => watcher.watch(http.serve_connection(hyper_util::rt::TokioIo::new(tcp), service)).await,
        // The handshake gets the header timeout too: a silent client is closed.
        Some(acceptor) => match tokio::time::timeout(limits.header_timeout, acceptor.accept(tcp)).await {
            Ok(Ok(stream)) => watcher.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service)).await,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, %peer, "TLS handshake failed");
                Ok(())
            }
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                Ok(())
            }
        },
    };
    if let Err(e) = served {
        tracing::debug!(error = %e, %peer, "connection ended with an error");
    }
    drop(slot);
}

/// Creates the data dir if needed (owner only), reads or generates the master key and the
/// credentials, and opens the ledger (on a blocking thread: it replays the log).
async fn open_data_dir(
    config: &ServeConfig,
    metrics: Arc<crate::metrics::Metrics>,
    created: &mut Vec<Created>,
) -> anyhow::Result<(Ledger, crate::credentials::CredentialStore)> {
    let data_dir = config.data_dir.clone();
    // Owner only, whatever the umask: the dir holds the log and, by default, the master key.
    if !data_dir.exists() {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&data_dir)
            .with_context(|| format!("cannot create data dir {}", data_dir.display()))?;
    }
    // With a database, the data keys (and so whether a master key may be generated, and which
    // key wraps them after an interrupted rotation) are in the database.
    let store = match config.database.clone() {
        Some(db) => {
            let pg = ledger_pg::PgOptions { statement_timeout: db.statement_timeout, ..Default::default() };
            let connected = tokio::task::spawn_blocking(move || ledger_pg::PgStore::connect(&db.url, pg))
                .await
                .context("connecting to the database panicked")?
                .context("cannot open the ledger in the database")?;
            Some(Arc::new(connected) as Arc<dyn ledger_store::LogStore>)
        }
        None => None,
    };
    let explicit = config.master_key_file.as_deref();
    let (master, new_key) = match &store {
        Some(store) => {
            let wrapped_by = store.key_file()?.map(|f| f.master_key_id);
            ledger_store::master_key::master_key_for(explicit, &data_dir, wrapped_by.is_some(), wrapped_by)?
        }
        None => ledger_store::master_key::master_key(explicit, &data_dir)?,
    };
    created.extend(new_key.map(Created::MasterKey));
    let credentials = credentials::credentials(config.credentials_file.as_deref(), &data_dir, created)?;
    let mut options = config.ledger_options.clone();
    options.observer = Some(metrics);
    let open_dir = data_dir.clone();
    let location = match &store {
        Some(store) => store.location(),
        None => data_dir.display().to_string(),
    };
    let ledger = tokio::task::spawn_blocking(move || match store {
        Some(store) => Ledger::open_store(store, master, options),
        None => Ledger::open(&open_dir, master, options),
    })
    .await
    .context("opening the ledger panicked")?
    .with_context(|| format!("cannot open the ledger in {location}"))?;
    Ok((ledger, credentials))
}

/// Serves `/metrics` on a listener of its own; stopped by `shutdown` (aborted): it holds no
/// ledger state of its own.
fn serve_metrics(
    listener: tokio::net::TcpListener,
    app: &Arc<App>,
    limits: ConnLimits,
) -> anyhow::Result<(SocketAddr, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let metrics_addr = listener.local_addr()?;
    let (_keep, never) = oneshot::channel::<()>();
    let router = crate::http::metrics_router(app.clone());
    let task = tokio::spawn(async move {
        let _keep = _keep;
        accept_loop(listener, router, limits, None, never).await
    });
    Ok((metrics_addr, task))
}

/// What one client can hold: connections, time to send headers and a body, and time to take
/// a response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Connections served at once; the next one waits in the kernel's backlog.
    pub max_connections: usize,
    /// A connection whose request headers (also the next request's, on a kept-alive
    /// connection) do not arrive whole within this is closed.
    pub header_timeout: std::time::Duration,
    /// A request body not received whole within this is refused (`RequestTimeoutException`).
    pub body_timeout: std::time::Duration,
    /// A connection whose client takes nothing of a response for this long is closed, and an
    /// export it was reading stops (its whole-log slot is given back). Default 60 s.
    pub send_timeout: std::time::Duration,
}

impl Default for ConnLimits {
    fn default() -> ConnLimits {
        ConnLimits {
            max_connections: 4096,
            header_timeout: std::time::Duration::from_secs(30),
            body_timeout: std::time::Duration::from_secs(30),
            send_timeout: std::time::Duration::from_secs(60),
        }
    }
}

/// How much heavy work runs at once (`ServeConfig::work`); callers beyond a limit wait for a
/// slot, in arrival order. `/metrics` shows each limit (`secret_ledger_work_slots`), the most
/// slots taken at once and how often a caller found none free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorkLimits {
    /// ListSecrets and BatchGetSecretValue filterings, each holding a thread while it filters
    /// every secret. Default [`crate::ops::default_filtering_slots`]: 2 × the CPUs, at least 2.
    pub filtering: usize,
    /// The audit reads `State`, `Prove`, `Checkpoint` and one secret's `History`, each on a
    /// blocking thread. Default [`crate::audit_ops::default_audit_slots`]: 4 × the CPUs, at
    /// least 4. (Whole-log reads have their own 2 slots, and beyond them are refused.)
    pub audit: usize,
}

impl Default for WorkLimits {
    fn default() -> WorkLimits {
        WorkLimits { filtering: crate::ops::default_filtering_slots(), audit: crate::audit_ops::default_audit_slots() }
    }
}

/// A connection's stream whose writes may not stall: once a write (or flush) has waited
/// `limit` for the client to take data, it fails with `TimedOut` and hyper closes the
/// connection. Any progress restarts the wait. Reads pass through (the header and body timeouts
/// bound them).
struct SendStall<S> {
    inner: S,
    limit: std::time::Duration,
    /// Since when a write has been waiting; `None` while writes go through.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<S> SendStall<S> {
    fn new(inner: S, limit: std::time::Duration) -> SendStall<S> {
        SendStall { inner, limit, stalled: None }
    }

    /// A write's outcome: progress clears the wait; waiting past `limit` is an error.
    fn check<T>(
        &mut self,
        cx: &mut std::task::Context<'_>,
        outcome: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if outcome.is_ready() {
            self.stalled = None;
            return outcome;
        }
        let limit = self.limit;
        let stalled = self.stalled.get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match stalled.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client took nothing of the response within the send timeout",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for SendStall<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for SendStall<S> {
    fn poll_write(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, outcome)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, outcome)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, outcome)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let outcome = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.check(cx, outcome)
    }
}

/// Accepts connections (at most `limits.max_connections` at once) and serves each with hyper's
/// HTTP/1 server, with a header timeout; on `stopped`, stops accepting and lets the requests in
/// flight finish (for at most 30 s).
async fn accept_loop(
    listener: tokio::net::TcpListener,
    router: axum::Router,
    limits: ConnLimits,
    tls: Option<Arc<crate::tls::Tls>>,
    stopped: oneshot::Receiver<()>,
) -> std::io::Result<()> {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    tokio::pin!(stopped);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = &mut stopped => break,
        };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors and the like: wait a little rather than spin.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stopped => break,
        };
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
        let acceptor = tls.as_ref().map(|tls| tls.acceptor());
        tokio::spawn(serve_connection(tcp, peer, router.clone(), limits, acceptor, graceful.watcher(), slot));
    }
    drop(listener);
    if tokio::time::timeout(std::time::Duration::from_secs(30), graceful.shutdown()).await.is_err() {
        tracing::warn!("requests still running 30 s after the shutdown began; stopping anyway");
    }
    Ok(())
}

/// Log lines go to stderr through a writer thread that takes what was logged every 25 ms (a line
/// per request would otherwise cost a `write` and a thread wake-up each, see [`crate::log_sink`]);
/// `SECRET_LEDGER_LOG` (error, warn, info, debug, trace) sets the level. Never lossy: when the
/// writer falls behind, logging waits. Keep the guard until exit: it writes what is gathered.
fn init_logging(format: LogFormat) -> Option<crate::log_sink::SinkGuard> {
    let level = std::env::var("SECRET_LEDGER_LOG")
        .ok()
        .and_then(|v| v.parse::<tracing::Level>().ok())
        .unwrap_or(tracing::Level::INFO);
    match crate::log_sink::to(std::io::stderr()) {
        Ok((writer, guard)) => install_logging(format, level, writer).then_some(guard),
        Err(e) => {
            // No thread for the log: every line written by its worker then, never none.
            eprintln!("cannot start the log writer thread ({e}); logging straight to stderr");
            install_logging(format, level, std::io::stderr);
            None
        }
    }
}

/// Installs the global subscriber writing to `writer`; false if one was installed already.
fn install_logging<W>(format: LogFormat, level: tracing::Level, writer: W) -> bool
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let builder = tracing_subscriber::fmt().with_writer(writer).with_max_level(level);
    let installed = match format {
        LogFormat::Text => builder.with_target(false).try_init(),
        // JSON keeps the target: `security` and `request` lines are told apart by it.
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
    installed.is_ok()
}

/// The `serve` command: runs until SIGINT or SIGTERM, then shuts down gracefully.
pub async fn serve(config: ServeConfig) -> anyhow::Result<()> {
    let _log_guard = init_logging(config.log_format);
    // Handlers first, so a signal right after the "listening" line is not lost.
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .context("cannot install the SIGTERM handler")?;
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .context("cannot install the SIGINT handler")?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .context("cannot install the SIGHUP handler")?;
    let json_logs = matches!(config.log_format, LogFormat::Json);
    let server = start(config).await?;
    for file in server.created_files() {
        let line = match file {
            Created::MasterKey(path) => format!(
                "created master key {} (key id 1): back it up; without it the data cannot be decrypted",
                path.display()
            ),
            Created::Credentials(path) => {
                format!("created credentials {} (ACCESS_KEY_ID:SECRET_ACCESS_KEY)", path.display())
            }
        };
        // A JSON log pipeline reads every line of stderr as JSON.
        if json_logs {
            tracing::warn!(target: "startup", "{line}");
        } else {
            eprintln!("{line}");
        }
    }
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on {}://{}", server.scheme(), server.local_addr())
            .context("cannot write to stdout")?;
        out.flush().context("cannot flush stdout")?;
    }
    loop {
        tokio::select! {
            _ = terminate.recv() => { tracing::info!("SIGTERM: shutting down"); break }
            _ = interrupt.recv() => { tracing::info!("SIGINT: shutting down"); break }
            _ = hangup.recv() => match server.reload_tls() {
                Ok(()) => tracing::info!("SIGHUP: TLS certificate and key reloaded"),
                Err(e) => tracing::error!(error = %e, "SIGHUP: cannot reload TLS; keeping the certificate in use"),
            },
        }
    }
    server.shutdown().await
}
