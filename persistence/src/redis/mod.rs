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

/// Connects a multiplexed, auto-reconnecting Redis connection.
///
/// # Errors
/// The Redis error when the URL is invalid or the server does not answer.
pub async fn connect(url: &str) -> redis::RedisResult<redis::aio::ConnectionManager> {
    let client = redis::Client::open(url)?;
    redis::aio::ConnectionManager::new(client).await
}

pub(crate) fn port_err(e: redis::RedisError) -> PortError {
    PortError::new("redis", e)
}
