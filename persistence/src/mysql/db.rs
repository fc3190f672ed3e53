//! Database connections: the config database and one connection pool per shard.
//!
//! Every statement sent through a [`Db`] (and every statement and the commit of a [`Tx`] it
//! begins) waits at most the **response deadline** (`database.response_timeout_ms`) for its
//! answer, after at most the pool's acquire timeout for a connection: a database that stops answering mid-statement — a blackholed connection, a frozen
//! server — fails the caller within the deadline instead of holding it until TCP gives up. A
//! write whose statement or commit got no answer may still be applied: the error says so
//! ([`outcome_unknown`]) and the write paths answer it as an unknown outcome (they keep any
//! stock they took, and the client retries with the same business number). A connection whose
//! answer was not awaited is tested with a bounded ping when it goes back to the pool and
//! closed when that ping gets no answer either, so a dead connection never holds a pool slot.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use std::str::FromStr as _;

use sea_orm::sqlx::ConnectOptions as _;
use sea_orm::sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr, ExecResult, QueryResult, RuntimeErr,
    SqlxMySqlConnector, Statement, TransactionTrait,
};

use crate::mysql::router::{Route, ShardRouter};

/// How to reach the databases.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// URL of the config database (`mysql://root@127.0.0.1:3306/big_market`).
    pub config_url: String,
    /// One URL per shard database, in shard order (`big_market_01`, `big_market_02`, …).
    pub shard_urls: Vec<String>,
    /// Split tables per shard (`_000.._003` → 4).
    pub tables_per_shard: usize,
    /// Pool size per database.
    pub max_connections: u32,
    /// Connection / acquire timeout.
    pub connect_timeout: Duration,
    /// How long a statement waits for a row lock before it fails with 1205 and its
    /// transaction is rolled back (`innodb_lock_wait_timeout`, whole seconds, at least 1).
    pub lock_wait_timeout: Duration,
    /// Longest a statement may run on the server before it is interrupted (MariaDB
    /// `max_statement_time`; MySQL `max_execution_time`, which bounds `SELECT`s); zero: no
    /// limit.
    pub statement_timeout: Duration,
    /// Longest a caller waits for the answer to one statement (or commit) once it was sent:
    /// past it the statement fails as unanswered ([`outcome_unknown`]); zero: no limit.
    pub response_timeout: Duration,
}

/// Run on every new connection: the isolation level of all its transactions.
pub const SESSION_ISOLATION: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// Open pools to the config database and every shard, with the router over them.
#[derive(Debug, Clone)]
pub struct Databases {
    /// The config database.
    pub config: Db,
    /// Shard databases, indexed by [`Route::db`].
    pub shards: Vec<Db>,
    /// The user-id router.
    pub router: ShardRouter,
    /// The server-side statement limit (see [`DatabaseSettings::statement_timeout`]).
    statement_timeout: Duration,
}

impl Databases {
    /// Connects every pool. Every connection runs `READ COMMITTED` (set once when it is
    /// opened): the write paths rely on it (locking reads of absent rows take no gap locks,
    /// so users sharing a split table do not deadlock, and `SKIP LOCKED` claims see the
    /// latest commits), and a plain `begin()` then costs one round trip, not two.
    ///
    /// # Errors
    /// [`DbErr`] when a database cannot be reached or the shard layout is invalid.
    pub async fn connect(s: &DatabaseSettings) -> Result<Self, DbErr> {
        let router =
            ShardRouter::new(s.shard_urls.len(), s.tables_per_shard).map_err(|e| DbErr::Custom(e.to_string()))?;
        let config = Self::open(s, &s.config_url).await?;
        let mut shards = Vec::with_capacity(s.shard_urls.len());
        for url in &s.shard_urls {
            shards.push(Self::open(s, url).await?);
        }
        Ok(Self {
            config,
            shards,
            router,
            statement_timeout: s.statement_timeout,
        })
    }

    async fn open(s: &DatabaseSettings, url: &str) -> Result<Db, DbErr> {
        let options = MySqlConnectOptions::from_str(url)
            .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e)))?
            .disable_statement_logging();
        let lock_wait = s.lock_wait_timeout.as_secs().max(1);
        let statement_ms = s.statement_timeout.as_millis();
        let deadline = ResponseDeadline::new(s.response_timeout).with_acquire(s.connect_timeout);
        let pool = MySqlPoolOptions::new()
            .max_connections(s.max_connections)
            .min_connections(1)
            .acquire_timeout(s.connect_timeout)
            .after_connect(move |conn, _| {
                Box::pin(async move {
                    sea_orm::sqlx::query(SESSION_ISOLATION).execute(&mut *conn).await?;
                    sea_orm::sqlx::query(&format!("SET SESSION innodb_lock_wait_timeout = {lock_wait}"))
                        .execute(&mut *conn)
                        .await?;
                    if statement_ms > 0 {
                        let mariadb = format!("SET SESSION max_statement_time = {}", statement_ms as f64 / 1000.0);
                        if sea_orm::sqlx::query(&mariadb).execute(&mut *conn).await.is_err() {
                            // MySQL: the same limit for SELECTs, in milliseconds.
                            sea_orm::sqlx::query(&format!("SET SESSION max_execution_time = {statement_ms}"))
                                .execute(&mut *conn)
                                .await?;
                        }
                    }
                    Ok(())
                })
            })
            // sqlx pings every released connection without a deadline (that ping also drains
            // the answer of a statement nobody awaited). While this pool has recently missed a
            // deadline, ping first within the deadline, and close a connection that does not
            // answer instead of letting it keep its pool slot; otherwise add nothing to the
            // release.
            .after_release({
                let deadline = deadline.clone();
                move |conn, _| {
                    let deadline = deadline.clone();
                    Box::pin(async move {
                        use sea_orm::sqlx::Connection as _;
                        let Some(limit) = deadline.limit().filter(|_| deadline.missed_recently()) else {
                            return Ok(true);
                        };
                        match tokio::time::timeout(limit, conn.ping()).await {
                            Ok(Ok(())) => Ok(true),
                            Ok(Err(e)) => Err(e),
                            Err(_) => Err(sea_orm::sqlx::Error::Io(std::io::Error::new(
                                std::io::ErrorKind::TimedOut,
                                "released connection did not answer a ping",
                            ))),
                        }
                    })
                }
            })
            .connect_with(options)
            .await
            .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e)))?;
        Ok(Db {
            conn: SqlxMySqlConnector::from_sqlx_mysql_pool(pool),
            deadline,
        })
    }

    /// The same pools with another response deadline for every statement (e.g. a longer one
    /// for maintenance scans such as `rebuildProjections`).
    pub fn with_response_timeout(&self, limit: Duration) -> Self {
        Self {
            config: self.config.with_response_timeout(limit),
            shards: self.shards.iter().map(|s| s.with_response_timeout(limit)).collect(),
            router: self.router,
            statement_timeout: self.statement_timeout,
        }
    }

    /// The same pools for maintenance scans (`rebuildProjections`): a statement may run as
    /// long as the server lets it (`statement_timeout`), and its answer is awaited two
    /// seconds longer; without a server limit, the response deadline stays.
    pub fn for_maintenance(&self) -> Self {
        if self.statement_timeout.is_zero() {
            return self.clone();
        }
        self.with_response_timeout(self.statement_timeout + Duration::from_secs(2))
    }

    /// The shard connection and split table of a user.
    pub fn shard_of(&self, user_id: &str) -> (&Db, Route) {
        let route = self.router.route(user_id);
        // The router never yields an index beyond the configured shards.
        (&self.shards[route.db], route)
    }
}

/// How long a caller waits for a database's answer to one statement, and when a wait of the
/// pool last went unanswered (shared by the clones of one pool's handles).
#[derive(Debug, Clone, Default)]
pub struct ResponseDeadline {
    limit: Option<Duration>,
    /// The pool's acquire timeout: a statement sent without a held connection first waits for
    /// one that long at most.
    acquire: Duration,
    /// Milliseconds since [`epoch`] when an answer was last abandoned or a connection broke
    /// (0: never).
    missed_at: Arc<AtomicU64>,
}

/// How long after a missed answer released connections are pinged within the deadline.
const TROUBLE_WINDOW: Duration = Duration::from_secs(60);

fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}

fn since_epoch_ms() -> u64 {
    // Never 0, so 0 can mean "never".
    epoch().elapsed().as_millis() as u64 + 1
}

impl ResponseDeadline {
    /// A deadline of `limit`; zero: none.
    pub fn new(limit: Duration) -> Self {
        Self {
            limit: (!limit.is_zero()).then_some(limit),
            acquire: Duration::ZERO,
            missed_at: Arc::default(),
        }
    }

    /// Statements sent through the pool may first wait `acquire` for a connection.
    #[must_use]
    pub fn with_acquire(mut self, acquire: Duration) -> Self {
        self.acquire = acquire;
        self
    }

    /// The same tracker of missed answers with another limit.
    fn with_limit(&self, limit: Duration) -> Self {
        Self {
            limit: (!limit.is_zero()).then_some(limit),
            acquire: self.acquire,
            missed_at: self.missed_at.clone(),
        }
    }

    /// The limit, if any.
    pub fn limit(&self) -> Option<Duration> {
        self.limit
    }

    /// Records that an answer of this pool was abandoned (or its connection broke): for a
    /// while, released connections are pinged within the deadline before they are reused.
    pub fn note_missed(&self) {
        self.missed_at.store(since_epoch_ms(), Ordering::Relaxed);
    }

    /// Whether an answer was abandoned within the last minute.
    pub fn missed_recently(&self) -> bool {
        let at = self.missed_at.load(Ordering::Relaxed);
        at != 0 && since_epoch_ms().saturating_sub(at) < TROUBLE_WINDOW.as_millis() as u64
    }

    /// Awaits `work` at most the deadline; past it, an [`outcome_unknown`] error (the
    /// statement was sent and may still be applied).
    ///
    /// # Errors
    /// `work`'s error, or the unanswered error.
    pub async fn run<T>(&self, work: impl Future<Output = Result<T, DbErr>>) -> Result<T, DbErr> {
        self.bounded(work, Duration::ZERO, unanswered).await
    }

    /// [`ResponseDeadline::run`] for a statement that first takes a connection from the pool:
    /// the acquire timeout is added to the deadline.
    ///
    /// # Errors
    /// `work`'s error, or the unanswered error.
    pub async fn run_pooled<T>(&self, work: impl Future<Output = Result<T, DbErr>>) -> Result<T, DbErr> {
        self.bounded(work, self.acquire, unanswered).await
    }

    /// Bounds a `BEGIN` (a connection, then its answer): past the deadline it failed with
    /// nothing written ([`unreachable`], not [`outcome_unknown`]).
    ///
    /// # Errors
    /// `work`'s error, or the not-begun error.
    pub async fn run_begin<T>(&self, work: impl Future<Output = Result<T, DbErr>>) -> Result<T, DbErr> {
        self.bounded(work, self.acquire, not_begun).await
    }

    async fn bounded<T>(
        &self,
        work: impl Future<Output = Result<T, DbErr>>,
        extra: Duration,
        elapsed: fn(Duration) -> DbErr,
    ) -> Result<T, DbErr> {
        let answer = match self.limit {
            None => work.await,
            Some(limit) => tokio::time::timeout(limit + extra, work)
                .await
                .unwrap_or_else(|_| Err(elapsed(limit + extra))),
        };
        if let Err(e) = &answer
            && (outcome_unknown(e) || is_not_begun(e))
        {
            self.note_missed();
        }
        answer
    }
}

/// Start of the message of an unanswered statement (see [`outcome_unknown`]).
const UNANSWERED: &str = "no answer from the database within";

fn unanswered(limit: Duration) -> DbErr {
    DbErr::Conn(RuntimeErr::Internal(format!(
        "{UNANSWERED} {} ms (database.response_timeout_ms)",
        limit.as_millis()
    )))
}

/// Start of the message of a transaction that could not begin in time.
const NOT_BEGUN: &str = "no transaction begun within";

fn not_begun(limit: Duration) -> DbErr {
    DbErr::Conn(RuntimeErr::Internal(format!(
        "{NOT_BEGUN} {} ms (database.connect_timeout_ms + database.response_timeout_ms); nothing was written",
        limit.as_millis()
    )))
}

fn is_not_begun(e: &DbErr) -> bool {
    matches!(e, DbErr::Conn(RuntimeErr::Internal(m)) if m.starts_with(NOT_BEGUN))
}

/// Whether `e` leaves a write's outcome unknown: its statement or commit got no answer within
/// the response deadline, or the connection broke while the answer was awaited.
pub fn outcome_unknown(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    match e {
        DbErr::Conn(RuntimeErr::Internal(m)) => m.starts_with(UNANSWERED),
        DbErr::Exec(RuntimeErr::SqlxError(s))
        | DbErr::Query(RuntimeErr::SqlxError(s))
        | DbErr::Conn(RuntimeErr::SqlxError(s)) => {
            matches!(s, Sqlx::Io(_) | Sqlx::Protocol(_) | Sqlx::WorkerCrashed)
        }
        _ => false,
    }
}

/// Whether `e` says the database could not be reached or did not answer: no connection within
/// the acquire timeout, or [`outcome_unknown`].
pub fn unreachable(e: &DbErr) -> bool {
    use sea_orm::sqlx::Error as Sqlx;
    matches!(
        e,
        DbErr::ConnectionAcquire(_) | DbErr::Conn(RuntimeErr::SqlxError(Sqlx::PoolTimedOut | Sqlx::PoolClosed))
    ) || outcome_unknown(e)
        || is_not_begun(e)
}

/// One database's connection pool whose every statement waits at most the response deadline
/// (see the module documentation). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Db {
    conn: DatabaseConnection,
    deadline: ResponseDeadline,
}

impl Db {
    /// Wraps an open connection with `deadline` (zero: none); for tools and tests.
    pub fn new(conn: DatabaseConnection, deadline: Duration) -> Self {
        Self {
            conn,
            deadline: ResponseDeadline::new(deadline),
        }
    }

    /// The same pool with another response deadline.
    pub fn with_response_timeout(&self, limit: Duration) -> Self {
        Self {
            conn: self.conn.clone(),
            deadline: self.deadline.with_limit(limit),
        }
    }

    /// The response deadline of this handle.
    pub fn deadline(&self) -> &ResponseDeadline {
        &self.deadline
    }

    /// The pool underneath (no deadline of its own).
    pub fn connection(&self) -> &DatabaseConnection {
        &self.conn
    }

    /// Begins a transaction (`READ COMMITTED`, as every connection of the pool); getting a
    /// connection is bounded by the pool's acquire timeout, the `BEGIN` by the deadline.
    ///
    /// # Errors
    /// No connection, or no answer.
    pub async fn begin(&self) -> Result<Tx, DbErr> {
        let tx = self.deadline.run_begin(self.conn.begin()).await?;
        Ok(Tx {
            tx,
            deadline: self.deadline.clone(),
        })
    }

    /// Pings the database within the deadline.
    ///
    /// # Errors
    /// No connection, or no answer.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.deadline.run_pooled(self.conn.ping()).await
    }
}

/// `ConnectionTrait` for a wrapper whose field `$inner` runs the statements, each awaited
/// through its deadline's `$bound` (`run_pooled` without a held connection, `run` with one).
macro_rules! bounded_connection {
    ($wrapper:ty, $inner:ident, $bound:ident) => {
        #[async_trait::async_trait]
        impl ConnectionTrait for $wrapper {
            fn get_database_backend(&self) -> DbBackend {
                self.$inner.get_database_backend()
            }

            async fn execute(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
                self.deadline.$bound(self.$inner.execute(stmt)).await
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
                self.deadline.$bound(self.$inner.execute_unprepared(sql)).await
            }

            async fn query_one(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                self.deadline.$bound(self.$inner.query_one(stmt)).await
            }

            async fn query_all(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                self.deadline.$bound(self.$inner.query_all(stmt)).await
            }
        }
    };
}

bounded_connection!(Db, conn, run_pooled);

/// A transaction of a [`Db`]: each statement and the commit wait at most the deadline.
/// Dropped without [`Tx::commit`], it rolls back (the `ROLLBACK` is sent when its connection
/// is next used or released).
#[derive(Debug)]
pub struct Tx {
    tx: DatabaseTransaction,
    deadline: ResponseDeadline,
}

impl Tx {
    /// Commits.
    ///
    /// # Errors
    /// The commit failed, or got no answer: then [`outcome_unknown`] holds and the
    /// transaction may have been applied.
    pub async fn commit(self) -> Result<(), DbErr> {
        self.deadline.run(self.tx.commit()).await
    }

    /// Rolls back.
    ///
    /// # Errors
    /// No answer, or the connection failed.
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.deadline.run(self.tx.rollback()).await
    }
}

bounded_connection!(Tx, tx, run);

/// Maps a failed write to the domain's save failure: an unknown outcome
/// ([`outcome_unknown`]), a lost lock (deadlock or lock wait timeout: retry), or a port error.
pub(crate) fn save_failure(e: DbErr) -> domain::activity::ports::SaveFailure {
    use domain::activity::ports::SaveFailure;
    if outcome_unknown(&e) {
        SaveFailure::Unknown(port_err(e))
    } else if is_conflict(&e) {
        SaveFailure::Conflict(port_err(e))
    } else {
        SaveFailure::Port(port_err(e))
    }
}

/// Maps a database error to the domain's opaque port error.
pub(crate) fn port_err(e: DbErr) -> domain::ports::PortError {
    if unreachable(&e) {
        domain::ports::PortError::unavailable("mysql", e)
    } else {
        domain::ports::PortError::new("mysql", e)
    }
}

/// The MySQL / MariaDB error number of a server error, if `e` is one.
pub fn mysql_error_number(e: &DbErr) -> Option<u16> {
    use sea_orm::RuntimeErr;
    use sea_orm::sqlx::mysql::MySqlDatabaseError;
    let runtime = match e {
        DbErr::Exec(r) | DbErr::Query(r) | DbErr::Conn(r) => r,
        _ => return None,
    };
    match runtime {
        RuntimeErr::SqlxError(sea_orm::sqlx::Error::Database(d)) => d
            .try_downcast_ref::<MySqlDatabaseError>()
            .map(MySqlDatabaseError::number),
        _ => None,
    }
}

/// `ER_DUP_ENTRY`: a unique key refused a row.
pub const ER_DUP_ENTRY: u16 = 1062;
/// `ER_LOCK_WAIT_TIMEOUT`.
pub const ER_LOCK_WAIT_TIMEOUT: u16 = 1205;
/// `ER_LOCK_DEADLOCK`.
pub const ER_LOCK_DEADLOCK: u16 = 1213;

/// Whether `e` is a unique-key violation (MySQL 1062).
pub(crate) fn is_duplicate(e: &DbErr) -> bool {
    mysql_error_number(e) == Some(ER_DUP_ENTRY)
}

/// Whether `e` is a deadlock (1213) or lock wait timeout (1205): the transaction was rolled
/// back and may be retried.
pub(crate) fn is_conflict(e: &DbErr) -> bool {
    matches!(mysql_error_number(e), Some(ER_LOCK_DEADLOCK | ER_LOCK_WAIT_TIMEOUT))
}
