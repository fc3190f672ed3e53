//! RabbitMQ: a channel to the test broker and deleting a test's queues.

use lapin::options::QueueDeleteOptions;
use lapin::{Channel, Connection, ConnectionProperties};

use crate::services::START_RABBITMQ;

/// A fresh queue-name prefix `bmt_<pid>_<nanos>_<n>.`.
pub fn unique_prefix() -> String {
    format!("{}.", crate::unique_name())
}

/// A channel to the broker at `url`; the error says which broker is missing and how to start it.
pub async fn channel(url: &str) -> anyhow::Result<Channel> {
    let conn = Connection::connect(url, ConnectionProperties::default())
        .await
        .map_err(|error| {
            anyhow::anyhow!("the tests need a real RabbitMQ, but {url} is not reachable ({error}). Start the local one ({START_RABBITMQ})")
        })?;
    Ok(conn.create_channel().await?)
}

/// Deletes the queues `names` on the broker at `url`; errors of single deletions (e.g. a queue
/// that does not exist) are ignored, a missing broker is not.
pub async fn delete_queues(url: &str, names: impl IntoIterator<Item = String>) -> anyhow::Result<()> {
    let channel = channel(url).await?;
    for name in names {
        let _ = channel
            .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
            .await;
    }
    Ok(())
}
