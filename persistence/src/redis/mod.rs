//! Redis adapters: key catalogue, award stock counters, and the armory store.

pub mod armory;
pub mod keys;
pub mod stock;
pub mod task_stream;
pub mod views;

pub use armory::RedisArmoryStore;
pub use keys::Keys;
pub use stock::{RedisAwardStock, RedisCounters, RedisSkuStock};
pub use task_stream::{TaskEvent, TaskStream};
pub use views::UserViews;

use domain::ports::PortError;

/// The Redis connection the adapters share: multiplexed and auto-reconnecting (cheap to clone).
pub type Connection = redis::aio::ConnectionManager;

/// Connects a multiplexed, auto-reconnecting Redis connection.
///
/// # Errors
/// The Redis error when the URL is invalid or the server does not answer.
pub async fn connect(url: &str) -> redis::RedisResult<Connection> {
    let client = redis::Client::open(url)?;
    redis::aio::ConnectionManager::new(client).await
}

/// Whether Redis answers `PING` on `conn`.
pub async fn ping(conn: &Connection) -> bool {
    redis::cmd("PING")
        .query_async::<String>(&mut conn.clone())
        .await
        .is_ok()
}

pub(crate) fn port_err(e: redis::RedisError) -> PortError {
    PortError::new("redis", e)
}
