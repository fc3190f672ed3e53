//! Redis adapters: key catalogue, award stock counters, and the armory store.

pub mod armory;
pub mod keys;
pub mod persisted;
pub mod rate_limit;
pub mod stock;
pub mod task_fanout;
pub mod task_stream;
pub mod views;

pub use armory::RedisArmoryStore;
pub use keys::Keys;
pub use persisted::PersistedDocuments;
pub use stock::{RedisAwardStock, RedisCounters, RedisSkuStock};
pub use task_fanout::TaskFanout;
pub use task_stream::{TaskEvent, TaskStream};
pub use views::UserViews;

use domain::ports::PortError;

/// The Redis connection the adapters share: multiplexed and auto-reconnecting (cheap to clone).
pub type Connection = redis::aio::ConnectionManager;

/// How long the shared Redis connection waits, so that no caller waits on Redis for long:
/// every command fails after `response`, and while Redis is away the connection tries to
/// come back `reconnect_retries` times (each attempt bounded by `connect`, pauses up to
/// `max_reconnect_delay`) and then fails commands at once until the next attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RedisDeadlines {
    /// One connection attempt.
    pub connect: std::time::Duration,
    /// One command's answer.
    pub response: std::time::Duration,
    /// Reconnection attempts after a failure.
    pub reconnect_retries: usize,
    /// Longest pause between reconnection attempts.
    pub max_reconnect_delay: std::time::Duration,
}

impl Default for RedisDeadlines {
    /// Half a second per attempt and per command, two quick reconnection attempts.
    fn default() -> Self {
        Self {
            connect: std::time::Duration::from_millis(500),
            response: std::time::Duration::from_millis(500),
            reconnect_retries: 2,
            max_reconnect_delay: std::time::Duration::from_millis(200),
        }
    }
}

/// Connects a multiplexed, auto-reconnecting Redis connection with the default
/// [`RedisDeadlines`].
///
/// # Errors
/// The Redis error when the URL is invalid or the server does not answer in time.
pub async fn connect(url: &str) -> redis::RedisResult<Connection> {
    connect_with(url, &RedisDeadlines::default()).await
}

/// Connects a multiplexed, auto-reconnecting Redis connection bounded by `deadlines`.
///
/// # Errors
/// The Redis error when the URL is invalid or the server does not answer in time.
pub async fn connect_with(url: &str, deadlines: &RedisDeadlines) -> redis::RedisResult<Connection> {
    let client = redis::Client::open(url)?;
    let config = redis::aio::ConnectionManagerConfig::new()
        .set_connection_timeout(Some(deadlines.connect))
        .set_response_timeout(Some(deadlines.response))
        .set_number_of_retries(deadlines.reconnect_retries)
        .set_max_delay(deadlines.max_reconnect_delay);
    redis::aio::ConnectionManager::new_with_config(client, config).await
}

/// Whether Redis answers `PING` on `conn`.
pub async fn ping(conn: &Connection) -> bool {
    redis::cmd("PING")
        .query_async::<String>(&mut conn.clone())
        .await
        .is_ok()
}

/// One `SCAN` step over the keys matching `pattern` from `cursor`: the next cursor (0 when the
/// scan is complete) and a batch of keys.
pub(crate) async fn scan_step(
    conn: &mut Connection,
    cursor: u64,
    pattern: &str,
) -> redis::RedisResult<(u64, Vec<String>)> {
    redis::cmd("SCAN")
        .arg(cursor)
        .arg("MATCH")
        .arg(pattern)
        .arg("COUNT")
        .arg(1000)
        .query_async(conn)
        .await
}

pub(crate) fn port_err(e: redis::RedisError) -> PortError {
    if e.is_timeout() || e.is_io_error() || e.is_connection_dropped() || e.is_connection_refusal() {
        PortError::unavailable("redis", e)
    } else {
        PortError::new("redis", e)
    }
}
