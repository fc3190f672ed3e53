//! RabbitMQ: the topology, the publisher the outbox relay sends through, and the consumers.
//!
//! Transport as in the original: the default exchange with routing key = queue name = topic
//! (optionally prefixed, so test runs and tenants never share queues). Queues are durable and
//! declared by whoever starts first, so a published event is never unroutable because its
//! consumer is not running yet.

pub mod consumer;
pub mod credit_handlers;
pub mod handlers;
pub mod publisher;

use lapin::options::QueueDeclareOptions;
use lapin::types::{AMQPValue, FieldTable};
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

    /// The dead-letter queue of a topic's consumer: poison messages, parked for good (an
    /// operator moves them back by hand).
    pub fn dead_queue(&self, topic: &str) -> String {
        format!("{}{topic}.dead", self.prefix)
    }

    /// The delay queue of a topic: a retried message waits there for its `expiration`, then the
    /// broker dead-letters it back into the topic's queue.
    pub fn retry_queue(&self, topic: &str) -> String {
        format!("{}{topic}.retry", self.prefix)
    }

    /// The parking queue of a topic: messages whose transient failures outlasted their
    /// attempts, re-driven automatically once the consumers' database answers again.
    pub fn parked_queue(&self, topic: &str) -> String {
        format!("{}{topic}.parked", self.prefix)
    }

    /// Every queue of a topic.
    pub fn queues_of(&self, topic: &str) -> [String; 4] {
        [
            self.queue(topic),
            self.dead_queue(topic),
            self.retry_queue(topic),
            self.parked_queue(topic),
        ]
    }

    /// Declares the durable queues of every topic on `channel`: the topic's, its dead-letter
    /// and parking queues, and its delay queue (dead-lettering into the topic's queue).
    ///
    /// # Errors
    /// The broker's error.
    pub async fn declare(&self, channel: &Channel) -> lapin::Result<()> {
        for topic in domain::outbox::TOPICS {
            for q in [self.queue(topic), self.dead_queue(topic), self.parked_queue(topic)] {
                channel
                    .queue_declare(q.as_str().into(), QueueDeclareOptions::durable(), FieldTable::default())
                    .await?;
            }
            let mut args = FieldTable::default();
            args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(self.queue(topic).into()),
            );
            channel
                .queue_declare(
                    self.retry_queue(topic).as_str().into(),
                    QueueDeclareOptions::durable(),
                    args,
                )
                .await?;
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
