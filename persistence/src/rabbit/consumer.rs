//! Consumers: manual acks, bounded retries, dead-lettering — a message is never dropped.
//!
//! A handler's failure is retried by republishing the message (with an attempt counter header)
//! after a backoff, and the original is acknowledged only once the copy is confirmed. After
//! `max_attempts`, or at once for a poison message, the message goes to `{queue}.dead` with the
//! error attached. If even that publish fails the delivery is nacked back to the queue.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use lapin::Confirmation;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use tokio::sync::watch;

use super::{Topology, connect};

/// Header counting delivery attempts.
pub const ATTEMPTS_HEADER: &str = "x-bm-attempts";
/// Header carrying the last error of a dead-lettered message.
pub const ERROR_HEADER: &str = "x-bm-error";

/// Why a handler failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HandleError {
    /// May succeed later (database down, lock timeout): retry.
    Transient(String),
    /// Can never succeed (malformed, unknown award): dead-letter at once.
    Poison(String),
}

/// Applies one message of a topic. Must be idempotent: a message can arrive more than once.
#[async_trait::async_trait]
pub trait Handler: Send + Sync {
    /// The topic consumed.
    fn topic(&self) -> &'static str;
    /// Applies `payload`.
    ///
    /// # Errors
    /// [`HandleError`] deciding retry or dead-letter.
    async fn handle(&self, payload: &[u8]) -> Result<(), HandleError>;
}

/// Tuning of a consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerSettings {
    /// Unacknowledged deliveries in flight.
    pub prefetch: u16,
    /// Attempts before dead-lettering.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub retry_delay: Duration,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            prefetch: 32,
            max_attempts: 5,
            retry_delay: Duration::from_millis(200),
        }
    }
}

/// Consumes `handler.topic()` from `url` until `shutdown` turns true, reconnecting on errors.
pub async fn run(
    url: String,
    topology: Topology,
    handler: Arc<dyn Handler>,
    settings: ConsumerSettings,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pause = Duration::from_millis(200);
    while !*shutdown.borrow() {
        match consume(&url, &topology, handler.as_ref(), &settings, &mut shutdown).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(topic = handler.topic(), error = %e, "consumer disconnected; reconnecting");
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = shutdown.changed() => {}
                }
                pause = (pause * 2).min(Duration::from_secs(10));
            }
        }
    }
}

async fn consume(
    url: &str,
    topology: &Topology,
    handler: &dyn Handler,
    settings: &ConsumerSettings,
    shutdown: &mut watch::Receiver<bool>,
) -> lapin::Result<()> {
    let conn = connect(url).await?;
    let channel = conn.create_channel().await?;
    let republish = conn.create_channel().await?;
    republish.confirm_select(ConfirmSelectOptions::default()).await?;
    topology.declare(&channel).await?;
    channel.basic_qos(settings.prefetch, BasicQosOptions::default()).await?;
    let queue = topology.queue(handler.topic());
    let tag = format!("big-market-{}-{}", handler.topic(), std::process::id());
    let mut deliveries = channel
        .basic_consume(
            queue.as_str().into(),
            tag.as_str().into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await?;
    loop {
        tokio::select! {
            next = deliveries.next() => match next {
                Some(Ok(d)) => settle(d, &queue, topology, handler, settings, &republish).await?,
                Some(Err(e)) => return Err(e),
                None => return Err(lapin::Error::from(lapin::ErrorKind::IOError(Arc::new(std::io::Error::other("consumer stream ended"))))),
            },
            _ = shutdown.changed() => {
                let _ = conn.close(0, "shutdown".into()).await;
                return Ok(());
            }
        }
    }
}

fn attempts_of(d: &Delivery) -> u32 {
    d.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(ATTEMPTS_HEADER))
        .and_then(|v| match v {
            AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
            _ => None,
        })
        .unwrap_or(0)
}

#[tracing::instrument(name = "consume", skip_all, fields(topic = handler.topic(), message.id = ?d.properties.message_id(), attempts))]
async fn settle(
    d: Delivery,
    queue: &str,
    topology: &Topology,
    handler: &dyn Handler,
    settings: &ConsumerSettings,
    republish: &Channel,
) -> lapin::Result<()> {
    let attempts = attempts_of(&d) + 1;
    tracing::Span::current().record("attempts", attempts);
    let (target, error) = match handler.handle(&d.data).await {
        Ok(()) => return d.ack(BasicAckOptions::default()).await.map(drop),
        Err(HandleError::Transient(e)) if attempts < settings.max_attempts => {
            tracing::warn!(error = %e, "handler failed; retrying");
            tokio::time::sleep(settings.retry_delay.saturating_mul(1 << (attempts - 1).min(10))).await;
            (queue.to_owned(), e)
        }
        Err(HandleError::Transient(e) | HandleError::Poison(e)) => {
            tracing::error!(error = %e, "message dead-lettered");
            (topology.dead_queue(handler.topic()), e)
        }
    };
    let mut headers = d.properties.headers().clone().unwrap_or_default();
    headers.insert(
        ATTEMPTS_HEADER.into(),
        AMQPValue::LongInt(i32::try_from(attempts).unwrap_or(i32::MAX)),
    );
    headers.insert(
        ERROR_HEADER.into(),
        AMQPValue::LongString(error.chars().take(500).collect::<String>().into()),
    );
    let props = d.properties.clone().with_headers(headers).with_delivery_mode(2);
    let copied = republish
        .basic_publish(
            "".into(),
            target.as_str().into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            &d.data,
            props,
        )
        .await?
        .await;
    match copied {
        Ok(Confirmation::Ack(None)) => d.ack(BasicAckOptions::default()).await.map(drop),
        other => {
            tracing::error!(outcome = ?other.map(|c| c.is_ack()), "could not re-queue the message; returning it to the broker");
            d.nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .map(drop)
        }
    }
}

/// Builds `BasicProperties` used by tests and tools to publish like the relay does.
pub fn persistent_json() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
}
