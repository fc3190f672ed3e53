//! Database connections: the config database and one connection pool per shard.

use std::time::Duration;

use std::str::FromStr as _;

use sea_orm::sqlx::ConnectOptions as _;
use sea_orm::sqlx::mysql::{MySqlConnectOptions, MySqlPoolOptions};
use sea_orm::{DatabaseConnection, DbErr, SqlxMySqlConnector};

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
}

/// Run on every new connection: the isolation level of all its transactions.
pub const SESSION_ISOLATION: &str = "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED";

/// Open pools to the config database and every shard, with the router over them.
#[derive(Debug, Clone)]
pub struct Databases {
    /// The config database.
    pub config: DatabaseConnection,
    /// Shard databases, indexed by [`Route::db`].
    pub shards: Vec<DatabaseConnection>,
    /// The user-id router.
    pub router: ShardRouter,
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
        Ok(Self { config, shards, router })
    }

    async fn open(s: &DatabaseSettings, url: &str) -> Result<DatabaseConnection, DbErr> {
        let options = MySqlConnectOptions::from_str(url)
            .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e)))?
            .disable_statement_logging();
        let lock_wait = s.lock_wait_timeout.as_secs().max(1);
        let statement_ms = s.statement_timeout.as_millis();
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
            .connect_with(options)
            .await
            .map_err(|e| DbErr::Conn(sea_orm::RuntimeErr::SqlxError(e)))?;
        Ok(SqlxMySqlConnector::from_sqlx_mysql_pool(pool))
    }

    /// The shard connection and split table of a user.
    pub fn shard_of(&self, user_id: &str) -> (&DatabaseConnection, Route) {
        let route = self.router.route(user_id);
        // The router never yields an index beyond the configured shards.
        (&self.shards[route.db], route)
    }
}

/// Maps a database error to the domain's opaque port error.
pub(crate) fn port_err(e: DbErr) -> domain::ports::PortError {
    domain::ports::PortError::new("mysql", e)
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
