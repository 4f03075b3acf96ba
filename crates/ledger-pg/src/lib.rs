//! [`PgStore`]: the ledger's log in PostgreSQL, a second [`LogStore`] beside the embedded sled
//! one. The same record bytes, so the same hashes: a log verifies, exports and proves exactly as
//! it does in sled.
//!
//! Tables (schema version [`SCHEMA_VERSION`], created and checked by [`PgStore::connect`]):
//!
//! | table | rows |
//! |---|---|
//! | `ledger_schema` | one: `version` |
//! | `ledger_head` | one: `seq`, `hash`: the head, moved by every append |
//! | `ledger_records` | `seq` → `bytes`, the log |
//! | `ledger_index` | `(uid, first_seq)` → `len`: per-secret index runs |
//! | `ledger_names` | `(name, uid)` → `region` |
//! | `ledger_merkle` | `chunk` → `root` |
//! | `ledger_snapshots` | `seq` → `digest`, `encoded` (projection snapshots) |
//! | `ledger_meta` | `projection_format`, `master_key_id` |
//! | `ledger_data_keys` | `uid` → `wrapped`: each live secret's data key, wrapped |
//!
//! An append is one transaction: the head row is locked (`SELECT … FOR UPDATE`), compared with
//! the head the writer decided against (a conflict writes nothing), then records, derived rows
//! the data keys of secrets the group creates (and the deletion of those it purges) and the new
//! head are written, and the transaction commits with `synchronous_commit` on (every
//! connection sets it, whatever the server's default, so every other commit waits too). The acknowledged head is the head row itself: PostgreSQL
//! commits it with the records or not at all.
//!
//! The trait is synchronous and the ledger calls it from its writer thread and from request
//! handlers alike, so each call runs on the store's own small tokio runtime and the caller waits
//! on a channel (never `block_on` inside another runtime). Every statement has a timeout
//! (`statement_timeout`, [`PgOptions::statement_timeout`]).

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use ledger_core::chain::snapshot_digest;
use ledger_core::codec;
use ledger_core::crypto::WrappedKey;
use ledger_core::ChainHash;
use ledger_store::keyfile::KeyFile;
use ledger_store::{Appended, Derived, Group, Head, LogStore, RecordBytes, Records, StoreError};
use tokio_postgres::{Client, NoTls};

/// The schema this build writes; a database with a newer one is refused.
pub const SCHEMA_VERSION: i32 = 1;

/// Rows fetched per round trip when streaming records.
const PAGE_ROWS: i64 = 2048;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS ledger_schema (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_head (id int PRIMARY KEY CHECK (id = 1), seq bigint NOT NULL, hash bytea NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_records (seq bigint PRIMARY KEY, bytes bytea NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_index (uid bigint NOT NULL, first_seq bigint NOT NULL, len bigint NOT NULL,
    PRIMARY KEY (uid, first_seq));
CREATE TABLE IF NOT EXISTS ledger_names (name text NOT NULL, uid bigint NOT NULL, region text NOT NULL,
    PRIMARY KEY (name, uid));
CREATE TABLE IF NOT EXISTS ledger_merkle (chunk bigint PRIMARY KEY, root bytea NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_snapshots (seq bigint PRIMARY KEY, digest bytea NOT NULL, encoded bytea NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_meta (key text PRIMARY KEY, value bigint NOT NULL);
CREATE TABLE IF NOT EXISTS ledger_data_keys (uid bigint PRIMARY KEY, wrapped bytea NOT NULL);
INSERT INTO ledger_head (id, seq, hash) VALUES (1, 0, '\\x0000000000000000000000000000000000000000000000000000000000000000')
    ON CONFLICT (id) DO NOTHING;
";

/// How a [`PgStore`] connects.
#[derive(Clone, Debug)]
pub struct PgOptions {
    /// Longest a statement may run before the server cancels it.
    pub statement_timeout: Duration,
    /// Connections kept open (the writer and readers share them).
    pub connections: usize,
}

impl Default for PgOptions {
    fn default() -> PgOptions {
        PgOptions { statement_timeout: Duration::from_secs(5), connections: 4 }
    }
}

/// The ledger's log in a PostgreSQL database.
pub struct PgStore {
    /// Taken on drop and shut down without waiting: dropping a runtime inside another
    /// runtime's thread would panic.
    runtime: Option<tokio::runtime::Runtime>,
    db: Arc<Db>,
    location: String,
    /// The writers' turn lock (see [`LogStore::begin_group`]).
    turn: Arc<LockSession>,
    /// The leadership lock (see [`LogStore::is_leader`]).
    leader: Arc<LockSession>,
}

/// The notification channel every append notifies on commit.
const CHANNEL: &str = "ledger_append";

/// The session advisory lock writers take turns with.
const TURN_LOCK: i64 = 7_361_827_366;

/// How long a writer tries for the turn before it writes without it.
const TURN_WAIT: Duration = Duration::from_secs(1);

/// The session advisory lock whose holder runs background work.
const LEADER_LOCK: i64 = 7_361_827_365;

struct Db {
    config: tokio_postgres::Config,
    /// The statement timeout, also the client's deadline for a COMMIT.
    timeout: Duration,
    clients: Vec<tokio::sync::Mutex<Option<Client>>>,
    next: AtomicUsize,
}

impl Drop for PgStore {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").field("location", &self.location).finish_non_exhaustive()
    }
}

/// A PostgreSQL error as a storage error: the server's message (never a parameter value), or
/// the client's error and its cause.
fn engine(e: tokio_postgres::Error) -> StoreError {
    let reason = match (e.as_db_error(), std::error::Error::source(&e)) {
        (Some(db), _) => format!("{} ({})", db.message(), db.code().code()),
        (None, Some(cause)) => format!("{e}: {cause}"),
        (None, None) => e.to_string(),
    };
    StoreError::Engine(format!("postgres: {reason}"))
}

fn corrupt(reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt { seq: 0, reason: reason.into() }
}

fn seq_i64(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| corrupt(format!("seq {seq} does not fit PostgreSQL's bigint")))
}

fn seq_u64(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| corrupt(format!("negative seq {seq} in the database")))
}

fn hash_of(bytes: &[u8]) -> Result<ChainHash, StoreError> {
    <[u8; 32]>::try_from(bytes).map(ChainHash).map_err(|_| corrupt("a stored hash is not 32 bytes"))
}

/// Where the database is, for people: host, port and database, never the password.
fn describe(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_string(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("postgres://{host}:{port}/{}", config.get_dbname().unwrap_or(""))
}

/// A connection on its own session, whose driver runs on the store's runtime.
async fn connect(config: &tokio_postgres::Config) -> Result<Client, StoreError> {
    let (client, connection) = config.connect(NoTls).await.map_err(engine)?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "PostgreSQL connection ended");
        }
    });
    // The startup options ask for it, but a pooler or proxy may drop them without an error:
    // a commit must not return before it is durable, so check what the session really has.
    let level: String = client.query_one("SHOW synchronous_commit", &[]).await.map_err(engine)?.get(0);
    if !matches!(level.as_str(), "on" | "remote_apply") {
        return Err(StoreError::Engine(format!(
            "postgres: the session has synchronous_commit = {level}, not on (a pooler dropped the startup options?)"
        )));
    }
    Ok(client)
}

/// A connection of its own holding a session advisory lock, and whether it holds it.
type LockSession = tokio::sync::Mutex<(Option<Client>, bool)>;

/// Tries once to hold `lock` on `session`'s connection (reconnected if it closed, which
/// released the lock); whether it is held.
async fn try_hold(
    config: &tokio_postgres::Config,
    session: &mut (Option<Client>, bool),
    lock: i64,
) -> Result<bool, StoreError> {
    let (client, holds) = session;
    if client.as_ref().is_none_or(Client::is_closed) {
        (*client, *holds) = (Some(connect(config).await?), false);
    }
    if !*holds {
        let c = client.as_ref().expect("connected above");
        *holds = c.query_one("SELECT pg_try_advisory_lock($1)", &[&lock]).await.map_err(engine)?.get(0);
    }
    Ok(*holds)
}

impl Db {
    /// A connection, reconnecting one the server closed.
    async fn client(&self) -> Result<tokio::sync::MutexGuard<'_, Option<Client>>, StoreError> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.clients.len();
        let mut guard = self.clients[i].lock().await;
        if guard.as_ref().is_none_or(Client::is_closed) {
            *guard = Some(connect(&self.config).await?);
        }
        Ok(guard)
    }
}

impl PgStore {
    /// Connects to `url` (`postgres://…` or a libpq key-value string), creates the schema if the
    /// database has none, and refuses a schema newer than this build's.
    pub fn connect(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let store = PgStore::without_schema_check(url, options)?;
        store.migrate()?;
        Ok(store)
    }

    /// Connects to a database that already holds a log (for readers: nothing is created), and
    /// refuses one without the schema, or with a newer one.
    pub fn open_existing(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let store = PgStore::without_schema_check(url, options)?;
        let version = store.run(|db| async move {
            let guard = db.client().await?;
            let client = guard.as_ref().expect("connected");
            let exists: bool =
                client.query_one("SELECT to_regclass('ledger_schema') IS NOT NULL", &[]).await.map_err(engine)?.get(0);
            if !exists {
                return Ok(None);
            }
            let row = client.query_opt("SELECT version FROM ledger_schema WHERE id = 1", &[]).await.map_err(engine)?;
            Ok(row.map(|r| r.get::<_, i32>(0)))
        })?;
        match version {
            None => Err(StoreError::Engine(format!("{} holds no secret-ledger log", store.location))),
            Some(v) if v > SCHEMA_VERSION => Err(newer_schema(v)),
            Some(_) => Ok(store),
        }
    }

    /// The store of `url`, connected lazily, its schema not looked at.
    fn without_schema_check(url: &str, options: PgOptions) -> Result<PgStore, StoreError> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Engine(format!("bad database URL: {e}")))?;
        let timeout_ms = options.statement_timeout.as_millis();
        // Every commit (appends, data keys, a master-key rotation's) waits for the WAL flush,
        // whatever the server's default: a write is acknowledged only once it is durable.
        config.options(format!("-c statement_timeout={timeout_ms} -c synchronous_commit=on"));
        config.connect_timeout(options.statement_timeout);
        // A peer that vanished without closing (a cut cable) is noticed within about 20 s, so
        // the locks its session held (the writers' turn, the leadership) are released.
        config.keepalives(true).keepalives_idle(Duration::from_secs(5)).keepalives_interval(Duration::from_secs(5));
        config.keepalives_retries(3);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("ledger-pg")
            .enable_all()
            .build()?;
        let clients = (0..options.connections.max(1)).map(|_| tokio::sync::Mutex::new(None)).collect();
        let location = describe(&config);
        let db = Arc::new(Db { config, timeout: options.statement_timeout, clients, next: AtomicUsize::new(0) });
        let store = PgStore {
            runtime: Some(runtime),
            db,
            location,
            leader: Arc::new(tokio::sync::Mutex::new((None, false))),
            turn: Arc::new(tokio::sync::Mutex::new((None, false))),
        };
        Ok(store)
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("the runtime lives until the store is dropped")
    }

    /// Runs `f` with a connection on the store's runtime and waits for it, from any thread.
    fn run<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(Arc<Db>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send,
    {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let db = self.db.clone();
        self.runtime().spawn(async move {
            let _ = tx.send(f(db).await);
        });
        rx.recv().map_err(|_| StoreError::Engine("the PostgreSQL runtime stopped".into()))?
    }

    fn migrate(&self) -> Result<(), StoreError> {
        self.run(|db| async move {
            let guard = db.client().await?;
            let client = guard.as_ref().expect("connected");
            // One migration at a time, even when several nodes start together.
            client.batch_execute("SELECT pg_advisory_lock(7361827364)").await.map_err(engine)?;
            let result = migrate_locked(client).await;
            client.batch_execute("SELECT pg_advisory_unlock(7361827364)").await.map_err(engine)?;
            result
        })
    }

    /// One statement's rows, with parameters that own their data.
    fn query(
        &self,
        sql: &'static str,
        params: Vec<Box<dyn tokio_postgres::types::ToSql + Send + Sync>>,
    ) -> Result<Vec<tokio_postgres::Row>, StoreError> {
        self.run(move |db| async move {
            let guard = db.client().await?;
            let client = guard.as_ref().expect("connected");
            let refs: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> =
                params.iter().map(|p| p.as_ref() as &(dyn tokio_postgres::types::ToSql + Sync)).collect();
            client.query(sql, &refs).await.map_err(engine)
        })
    }

    /// One transaction on the data keys: all rows deleted first if `replace`, then `put`
    /// written and `delete` removed.
    fn change_keys(&self, replace: bool, put: Vec<(u64, WrappedKey)>, delete: Vec<u64>) -> Result<(), StoreError> {
        self.run(move |db| async move {
            let mut guard = db.client().await?;
            let tx = guard.as_mut().expect("connected").transaction().await.map_err(engine)?;
            if replace {
                tx.batch_execute("DELETE FROM ledger_data_keys").await.map_err(engine)?;
            }
            write_keys(&tx, &put, &delete).await?;
            tx.commit().await.map_err(engine)
        })
    }

    fn meta(&self, key: &'static str) -> Result<Option<i64>, StoreError> {
        let rows = self.query("SELECT value FROM ledger_meta WHERE key = $1", vec![Box::new(key)])?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn set_meta(&self, key: &'static str, value: i64) -> Result<(), StoreError> {
        self.query(SET_META, vec![Box::new(key), Box::new(value)])?;
        Ok(())
    }
}

/// Sets a `ledger_meta` value: `$1` key, `$2` value.
const SET_META: &str =
    "INSERT INTO ledger_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = $2";

/// Stores a projection snapshot: `$1` seq, `$2` digest, `$3` encoded.
const PUT_SNAPSHOT: &str = "INSERT INTO ledger_snapshots (seq, digest, encoded) VALUES ($1, $2, $3) \
     ON CONFLICT (seq) DO UPDATE SET digest = $2, encoded = $3";

fn newer_schema(version: i32) -> StoreError {
    StoreError::Engine(format!(
        "the database has schema version {version}, newer than this build's {SCHEMA_VERSION}: upgrade secret-ledger"
    ))
}

async fn migrate_locked(client: &Client) -> Result<(), StoreError> {
    client
        .batch_execute(
            "CREATE TABLE IF NOT EXISTS ledger_schema (id int PRIMARY KEY CHECK (id = 1), version int NOT NULL)",
        )
        .await
        .map_err(engine)?;
    let found: Option<i32> = client
        .query_opt("SELECT version FROM ledger_schema WHERE id = 1", &[])
        .await
        .map_err(engine)?
        .map(|r| r.get(0));
    match found {
        Some(v) if v > SCHEMA_VERSION => Err(newer_schema(v)),
        Some(_) => Ok(()),
        None => {
            client.batch_execute(SCHEMA).await.map_err(engine)?;
            client
                .execute("INSERT INTO ledger_schema (id, version) VALUES (1, $1)", &[&SCHEMA_VERSION])
                .await
                .map_err(engine)?;
            Ok(())
        }
    }
}

/// Listens for appends until the store is dropped (its runtime with it), reconnecting after a
/// second when the connection is lost.
async fn listen(config: tokio_postgres::Config, wake: Box<dyn Fn() + Send + Sync>) {
    use futures_util::StreamExt;
    loop {
        if let Ok((client, mut connection)) = config.connect(NoTls).await {
            // Polled here, not by `connect`'s driver: its notifications are the point.
            let (tx, mut heard) = tokio::sync::mpsc::unbounded_channel();
            let driver = tokio::spawn(async move {
                let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(Ok(message)) = messages.next().await {
                    if let tokio_postgres::AsyncMessage::Notification(_) = message {
                        let _ = tx.send(());
                    }
                }
            });
            if client.batch_execute(&format!("LISTEN {CHANNEL}")).await.is_ok() {
                wake();
                while heard.recv().await.is_some() {
                    wake();
                }
            }
            driver.abort();
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Writes a group in one transaction, if the head is still the expected one.
async fn append_group(client: &mut Client, group: Group, timeout: Duration) -> Result<Appended, StoreError> {
    let tx = client.transaction().await.map_err(engine)?;
    let row = tx.query_one("SELECT seq, hash FROM ledger_head WHERE id = 1 FOR UPDATE", &[]).await.map_err(engine)?;
    let stored: Head = (seq_u64(row.get(0))?, hash_of(row.get(1))?);
    if stored != group.expected {
        tx.rollback().await.map_err(engine)?;
        return Ok(Appended::Conflict { head: stored });
    }
    let mut seqs = Vec::with_capacity(group.records.len());
    let mut bytes = Vec::with_capacity(group.records.len());
    for (seq, b) in group.records {
        seqs.push(seq_i64(seq)?);
        bytes.push(b);
    }
    tx.execute(
        "INSERT INTO ledger_records (seq, bytes) SELECT * FROM unnest($1::bigint[], $2::bytea[])",
        &[&seqs, &bytes],
    )
    .await
    .map_err(engine)?;
    write_derived(&tx, &group.derived).await?;
    write_keys(&tx, &group.new_keys, &group.destroyed_keys).await?;
    if let Some(id) = group.master_key_id {
        tx.execute(SET_META, &[&"master_key_id", &i64::from(id)]).await.map_err(engine)?;
    }
    let (seq, hash) = group.head;
    // One round trip for both; the notice is delivered to the listeners when (and only if) the
    // transaction commits.
    tx.execute(
        "UPDATE ledger_head SET seq = $1, hash = $2 WHERE id = 1 RETURNING pg_notify($3, $4)",
        &[&seq_i64(seq)?, &&hash.0[..], &CHANNEL, &seq.to_string()],
    )
    .await
    .map_err(engine)?;
    // A statement timeout during COMMIT would cancel only the wait for a synchronous standby
    // and commit locally anyway, reported as success: no server-side timeout on the COMMIT,
    // a client-side deadline instead, whose expiry leaves the outcome for the next read to tell.
    tx.batch_execute("SET LOCAL statement_timeout = 0").await.map_err(engine)?;
    match tokio::time::timeout(timeout, tx.commit()).await {
        Ok(committed) => committed.map_err(engine)?,
        Err(_) => return Err(StoreError::Engine("postgres: COMMIT did not finish in time; outcome unknown".into())),
    }
    Ok(Appended::Durable)
}

/// Data keys added and destroyed with a group (or on their own), in its transaction.
async fn write_keys(
    tx: &tokio_postgres::Transaction<'_>,
    new_keys: &[(u64, WrappedKey)],
    destroyed: &[u64],
) -> Result<(), StoreError> {
    if !new_keys.is_empty() {
        // One statement for all of them (a row at a time cost a round trip per created secret
        // inside the append). A uid twice would make the upsert fail: the last wrapping wins.
        let mut last: std::collections::BTreeMap<i64, Vec<u8>> = std::collections::BTreeMap::new();
        for (uid, wrapped) in new_keys {
            last.insert(seq_i64(*uid)?, codec::encode(wrapped));
        }
        let (uids, wrapped): (Vec<i64>, Vec<Vec<u8>>) = last.into_iter().unzip();
        tx.execute(
            "INSERT INTO ledger_data_keys (uid, wrapped) SELECT * FROM unnest($1::bigint[], $2::bytea[])
             ON CONFLICT (uid) DO UPDATE SET wrapped = EXCLUDED.wrapped",
            &[&uids, &wrapped],
        )
        .await
        .map_err(engine)?;
    }
    if !destroyed.is_empty() {
        let uids: Vec<i64> = destroyed.iter().map(|u| seq_i64(*u)).collect::<Result<_, _>>()?;
        tx.execute("DELETE FROM ledger_data_keys WHERE uid = ANY($1)", &[&uids]).await.map_err(engine)?;
    }
    Ok(())
}

async fn write_derived(tx: &tokio_postgres::Transaction<'_>, derived: &Derived) -> Result<(), StoreError> {
    if !derived.index_runs.is_empty() {
        let uids: Vec<i64> = derived.index_runs.iter().map(|r| seq_i64(r.uid)).collect::<Result<_, _>>()?;
        let firsts: Vec<i64> = derived.index_runs.iter().map(|r| seq_i64(r.first)).collect::<Result<_, _>>()?;
        let lens: Vec<i64> = derived.index_runs.iter().map(|r| i64::from(r.len)).collect();
        tx.execute(
            "INSERT INTO ledger_index (uid, first_seq, len) SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])
             ON CONFLICT (uid, first_seq) DO UPDATE SET len = EXCLUDED.len",
            &[&uids, &firsts, &lens],
        )
        .await
        .map_err(engine)?;
    }
    if !derived.names.is_empty() {
        let names: Vec<&str> = derived.names.iter().map(|(name, _, _)| name.as_str()).collect();
        let uids: Vec<i64> = derived.names.iter().map(|(_, uid, _)| seq_i64(*uid)).collect::<Result<_, _>>()?;
        let regions: Vec<&str> = derived.names.iter().map(|(_, _, region)| region.as_str()).collect();
        tx.execute(
            "INSERT INTO ledger_names (name, uid, region) SELECT * FROM unnest($1::text[], $2::bigint[], $3::text[])
             ON CONFLICT (name, uid) DO NOTHING",
            &[&names, &uids, &regions],
        )
        .await
        .map_err(engine)?;
    }
    if !derived.merkle_roots.is_empty() {
        let chunks: Vec<i64> = derived.merkle_roots.iter().map(|(c, _)| seq_i64(*c)).collect::<Result<_, _>>()?;
        let roots: Vec<&[u8]> = derived.merkle_roots.iter().map(|(_, root)| &root[..]).collect();
        tx.execute(
            "INSERT INTO ledger_merkle (chunk, root) SELECT * FROM unnest($1::bigint[], $2::bytea[])
             ON CONFLICT (chunk) DO UPDATE SET root = EXCLUDED.root",
            &[&chunks, &roots],
        )
        .await
        .map_err(engine)?;
    }
    Ok(())
}

impl LogStore for PgStore {
    fn location(&self) -> String {
        self.location.clone()
    }

    fn head(&self) -> Result<Head, StoreError> {
        let rows = self.query("SELECT seq, hash FROM ledger_head WHERE id = 1", vec![])?;
        let row = rows.first().ok_or_else(|| corrupt("the head row is missing"))?;
        Ok((seq_u64(row.get(0))?, hash_of(row.get(1))?))
    }

    fn record(&self, seq: u64) -> Result<Option<RecordBytes>, StoreError> {
        let rows = self.query("SELECT bytes FROM ledger_records WHERE seq = $1", vec![Box::new(seq_i64(seq)?)])?;
        Ok(rows.first().map(|r| RecordBytes::owned(r.get(0))))
    }

    fn records(&self, first: u64, last: u64) -> Records<'_> {
        Box::new(RecordPages {
            store: self,
            next: first,
            last,
            page: std::collections::VecDeque::new(),
            done: first > last,
        })
    }

    fn first_record_above(&self, seq: u64) -> Result<Option<u64>, StoreError> {
        let rows = self.query("SELECT min(seq) FROM ledger_records WHERE seq > $1", vec![Box::new(seq_i64(seq)?)])?;
        rows.first().and_then(|r| r.get::<_, Option<i64>>(0)).map(seq_u64).transpose()
    }

    fn begin_writing(&self, _head: &Head) -> Result<(), StoreError> {
        Ok(())
    }

    fn shared(&self) -> bool {
        true
    }

    /// A session advisory lock on a connection of its own, tried for up to [`TURN_WAIT`]: a
    /// writer that cannot get the turn (its holder hung, or the lock connection is down) goes
    /// ahead without it, since the compare-and-set keeps the chain whole anyway.
    fn begin_group(&self) -> Result<(), StoreError> {
        let turn = self.turn.clone();
        let took = self.run(move |db| async move {
            let mut session = turn.lock().await;
            let deadline = tokio::time::Instant::now() + TURN_WAIT;
            while !try_hold(&db.config, &mut session, TURN_LOCK).await? && tokio::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            Ok(session.1)
        });
        if let Ok(false) | Err(_) = took {
            tracing::debug!("writing without the writers' turn");
        }
        Ok(())
    }

    fn end_group(&self) {
        let turn = self.turn.clone();
        let released = self.run(move |_| async move {
            let mut guard = turn.lock().await;
            let (client, holds) = &mut *guard;
            if let (Some(c), true) = (client.as_ref(), *holds) {
                *holds = false;
                c.execute("SELECT pg_advisory_unlock($1)", &[&TURN_LOCK]).await.map_err(engine)?;
            }
            Ok(())
        });
        if let Err(e) = released {
            // A lost connection released the lock with it.
            tracing::debug!(error = %e, "writer turn not released");
        }
    }

    /// `LISTEN` on a connection of its own, outside the pool: `wake` on every notification, and
    /// after every (re)connection, since appends while it was away were not heard.
    fn on_append(&self, wake: Box<dyn Fn() + Send + Sync>) {
        self.runtime().spawn(listen(self.db.config.clone(), wake));
    }

    /// The holder of a session advisory lock on a connection of its own: when the node dies,
    /// its connection closes, the lock is released and another node takes it on its next try.
    fn is_leader(&self) -> bool {
        let leader = self.leader.clone();
        let held =
            self.run(move |db| async move { try_hold(&db.config, &mut *leader.lock().await, LEADER_LOCK).await });
        held.unwrap_or(false)
    }

    fn append(&self, group: Group) -> Result<Appended, StoreError> {
        self.run(move |db| async move {
            let mut guard = db.client().await?;
            let client = guard.as_mut().expect("connected");
            append_group(client, group, db.timeout).await
        })
    }

    fn acknowledged_head(&self) -> Result<Option<Head>, StoreError> {
        // Committed with the records in one transaction: the head row is the acknowledged head.
        self.head().map(Some)
    }

    fn index_runs(&self, uid: u64) -> Result<Vec<(u64, u64)>, StoreError> {
        let rows = self.query(
            "SELECT first_seq, len FROM ledger_index WHERE uid = $1 ORDER BY first_seq",
            vec![Box::new(seq_i64(uid)?)],
        )?;
        rows.iter().map(|r| Ok((seq_u64(r.get(0))?, seq_u64(r.get(1))?))).collect()
    }

    fn names(&self, name: &str) -> Result<Vec<(u64, String)>, StoreError> {
        let rows = self.query(
            "SELECT uid, region FROM ledger_names WHERE name = $1 ORDER BY uid",
            vec![Box::new(name.to_string())],
        )?;
        rows.iter().map(|r| Ok((seq_u64(r.get(0))?, r.get(1)))).collect()
    }

    fn merkle_roots(&self, first: u64, last: u64) -> Result<Vec<[u8; 32]>, StoreError> {
        let rows = self.query(
            "SELECT chunk, root FROM ledger_merkle WHERE chunk >= $1 AND chunk < $2 ORDER BY chunk",
            vec![Box::new(seq_i64(first)?), Box::new(seq_i64(last)?)],
        )?;
        let mut out = Vec::new();
        for row in &rows {
            let expected = first + out.len() as u64;
            match <[u8; 32]>::try_from(row.get::<_, &[u8]>(1)) {
                Ok(root) if seq_u64(row.get(0))? == expected => out.push(root),
                _ => break,
            }
        }
        Ok(out)
    }

    fn merkle_root(&self, chunk: u64) -> Result<Option<Vec<u8>>, StoreError> {
        let rows = self.query("SELECT root FROM ledger_merkle WHERE chunk = $1", vec![Box::new(seq_i64(chunk)?)])?;
        Ok(rows.first().map(|r| r.get(0)))
    }

    fn snapshot_seqs(&self) -> Result<Vec<u64>, StoreError> {
        if self.projection_format()? != Some(ledger_store::PROJECTION_FORMAT) {
            return Ok(Vec::new());
        }
        let rows = self.query("SELECT seq FROM ledger_snapshots ORDER BY seq", vec![])?;
        rows.iter().map(|r| seq_u64(r.get(0))).collect()
    }

    fn snapshot(&self, seq: u64) -> Result<Result<Vec<u8>, String>, StoreError> {
        let rows =
            self.query("SELECT digest, encoded FROM ledger_snapshots WHERE seq = $1", vec![Box::new(seq_i64(seq)?)])?;
        let Some(row) = rows.first() else { return Ok(Err("missing".into())) };
        let (digest, encoded): (&[u8], Vec<u8>) = (row.get(0), row.get(1));
        if snapshot_digest(&encoded)[..] != *digest {
            return Ok(Err("digest mismatch".into()));
        }
        Ok(Ok(encoded))
    }

    fn put_snapshot(&self, seq: u64, encoded: &[u8]) -> Result<(), StoreError> {
        self.query(
            PUT_SNAPSHOT,
            vec![Box::new(seq_i64(seq)?), Box::new(snapshot_digest(encoded).to_vec()), Box::new(encoded.to_vec())],
        )?;
        Ok(())
    }

    fn projection_format(&self) -> Result<Option<u8>, StoreError> {
        Ok(self.meta("projection_format")?.map(|v| u8::try_from(v).unwrap_or(0)))
    }

    fn init_projection_format(&self) -> Result<(), StoreError> {
        self.set_meta("projection_format", i64::from(ledger_store::PROJECTION_FORMAT))
    }

    fn clear_derived(&self) -> Result<(), StoreError> {
        self.run(|db| async move {
            let guard = db.client().await?;
            let client = guard.as_ref().expect("connected");
            client
                .batch_execute(
                    "DELETE FROM ledger_index; DELETE FROM ledger_names; DELETE FROM ledger_merkle; \
                     DELETE FROM ledger_snapshots;",
                )
                .await
                .map_err(engine)
        })
    }

    fn put_derived(&self, derived: Derived, snapshots: Vec<(u64, Vec<u8>)>, done: bool) -> Result<(), StoreError> {
        self.run(move |db| async move {
            let mut guard = db.client().await?;
            let client = guard.as_mut().expect("connected");
            let tx = client.transaction().await.map_err(engine)?;
            write_derived(&tx, &derived).await?;
            for (seq, encoded) in &snapshots {
                let digest = snapshot_digest(encoded).to_vec();
                tx.execute(PUT_SNAPSHOT, &[&seq_i64(*seq)?, &digest, encoded]).await.map_err(engine)?;
            }
            if done {
                tx.execute(SET_META, &[&"projection_format", &i64::from(ledger_store::PROJECTION_FORMAT)])
                    .await
                    .map_err(engine)?;
            }
            tx.commit().await.map_err(engine)
        })
    }

    fn master_key_id(&self) -> Result<Option<u32>, StoreError> {
        self.meta("master_key_id")?
            .map(|v| u32::try_from(v).map_err(|_| corrupt("bad master key id entry")))
            .transpose()
    }

    fn init_master_key_id(&self, id: u32) -> Result<(), StoreError> {
        self.set_meta("master_key_id", i64::from(id))
    }

    fn key_file(&self) -> Result<Option<KeyFile>, StoreError> {
        let rows = self.query("SELECT uid, wrapped FROM ledger_data_keys ORDER BY uid", vec![])?;
        let mut keys = std::collections::BTreeMap::new();
        for row in &rows {
            let wrapped: WrappedKey =
                codec::decode(row.get::<_, &[u8]>(1)).map_err(|e| corrupt(format!("data key row: {e}")))?;
            keys.insert(seq_u64(row.get(0))?, wrapped);
        }
        let Some(master_key_id) = keys.values().next().map(|w| w.master_key_id) else { return Ok(None) };
        Ok(Some(KeyFile { master_key_id, keys }))
    }

    fn put_data_keys(&self, keys: &[(u64, WrappedKey)]) -> Result<(), StoreError> {
        self.change_keys(false, keys.to_vec(), Vec::new())
    }

    /// One transaction: every row deleted and the new ones inserted.
    fn replace_data_keys(&self, file: &KeyFile) -> Result<(), StoreError> {
        self.change_keys(true, file.keys.iter().map(|(u, w)| (*u, w.clone())).collect(), Vec::new())
    }

    fn delete_data_keys(&self, uids: &[u64]) -> Result<(), StoreError> {
        self.change_keys(false, Vec::new(), uids.to_vec())
    }

    fn legacy_keys(&self) -> Result<Vec<(u64, WrappedKey)>, StoreError> {
        Ok(Vec::new())
    }

    fn drop_legacy_keys(&self, _uids: &[u64]) -> Result<(), StoreError> {
        Ok(())
    }

    fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Records streamed a page at a time.
struct RecordPages<'a> {
    store: &'a PgStore,
    next: u64,
    last: u64,
    page: std::collections::VecDeque<(u64, Vec<u8>)>,
    done: bool,
}

impl RecordPages<'_> {
    fn fetch(&mut self) -> Result<(), StoreError> {
        let rows = self.store.query(
            "SELECT seq, bytes FROM ledger_records WHERE seq >= $1 AND seq <= $2 ORDER BY seq LIMIT $3",
            vec![Box::new(seq_i64(self.next)?), Box::new(seq_i64(self.last)?), Box::new(PAGE_ROWS)],
        )?;
        if (rows.len() as i64) < PAGE_ROWS {
            self.done = true;
        }
        for row in rows {
            self.page.push_back((seq_u64(row.get(0))?, row.get(1)));
        }
        match self.page.back() {
            Some(&(seq, _)) if seq < self.last => self.next = seq + 1,
            _ => self.done = true,
        }
        Ok(())
    }
}

impl Iterator for RecordPages<'_> {
    type Item = Result<(u64, RecordBytes), StoreError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.page.is_empty() && !self.done {
            if let Err(e) = self.fetch() {
                self.done = true;
                return Some(Err(e));
            }
        }
        self.page.pop_front().map(|(seq, bytes)| Ok((seq, RecordBytes::owned(bytes))))
    }
}
