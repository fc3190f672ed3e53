//! RabbitMQ: the topology, the publisher the outbox relay sends through, and the consumers.
//!
//! Transport as in the original: the default exchange with routing key = queue name = topic
//! (optionally prefixed, so test runs and tenants never share queues). Queues are durable and
//! declared by whoever starts first, so a published event is never unroutable because its
//! consumer is not running yet.

pub mod consumer;
pub mod handlers;
pub mod publisher;

use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties};

/// Queue naming.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    /// Queues named `{prefix}{topic}`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    /// The queue of a topic.
    pub fn queue(&self, topic: &str) -> String {
        format!("{}{topic}", self.prefix)
    }

    /// The dead-letter queue of a topic's consumer.
    pub fn dead_queue(&self, topic: &str) -> String {
        format!("{}{topic}.dead", self.prefix)
    }

    /// Declares the durable queue (and dead-letter queue) of every topic on `channel`.
    ///
    /// # Errors
    /// The broker's error.
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        for topic in domain::outbox::TOPICS {
            for q in [self.queue(topic), self.dead_queue(topic)] {
                channel
                    .queue_declare(q.as_str().into(), QueueDeclareOptions::durable(), FieldTable::default())
                    .await?;
            }
        }
        Ok(())
    }
}

/// Opens a connection to `url` (`amqp://guest:guest@127.0.0.1:5672/%2f`).
///
/// # Errors
/// The broker's error when it cannot be reached or refuses the credentials.
pub async fn connect(url: &str) -> lapin::Result<Connection> {
    Connection::connect(
        url,
        ConnectionProperties::default().with_connection_name("big-market".into()),
    )
    .await
}
