//! Consumers: manual acks, retries that back off over minutes, parking that heals by itself,
//! dead-lettering of poison — a message is never dropped.
//!
//! * A **transient** failure (the database is down, a lock timed out) is retried: a copy with an
//!   attempt counter goes to the topic's delay queue `{queue}.retry` with an `expiration` of
//!   `retry_delay × 2^(attempts−1)` (at most `max_retry_delay`), and the broker puts it back
//!   into the queue when it expires — no consumer holds it meanwhile. The original is
//!   acknowledged only once the copy is confirmed.
//! * After `max_attempts` the message is **parked** in `{queue}.parked` with its error. The
//!   [`redrive`] pass moves parked messages back into their queue (attempts reset) whenever the
//!   consumers' database answers, so an outage longer than the retries heals without an
//!   operator; a message re-driven `max_redrives` times goes to `.dead`.
//! * A **poison** message (malformed, unknown award) goes to `{queue}.dead` at once, with its
//!   reason, and stays there until an operator moves it back.
//!
//! If a copy cannot be published, the delivery is nacked back to the queue.

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
use tracing::Instrument;

use super::{Topology, connect};
use crate::metrics::{ConsumerMetrics, TopicCounters};

/// Header counting delivery attempts.
pub const ATTEMPTS_HEADER: &str = "x-bm-attempts";
/// Header carrying the last error of a dead-lettered message.
pub const ERROR_HEADER: &str = "x-bm-error";
/// Header counting how often a parked message was re-driven.
pub const REDRIVEN_HEADER: &str = "x-bm-redriven";

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
    /// Attempts before a transiently failing message is parked.
    pub max_attempts: u32,
    /// First retry delay; doubles per attempt.
    pub retry_delay: Duration,
    /// Longest retry delay.
    pub max_retry_delay: Duration,
    /// Re-drives of a parked message before it is dead-lettered for good.
    pub max_redrives: u32,
}

impl Default for ConsumerSettings {
    /// 8 attempts over about two minutes (1 s, 2 s, 4 s, … capped at 60 s), then parked.
    fn default() -> Self {
        Self {
            prefetch: 32,
            max_attempts: 8,
            retry_delay: Duration::from_secs(1),
            max_retry_delay: Duration::from_secs(60),
            max_redrives: 10,
        }
    }
}

/// Consumes `handler.topic()` from `url` until `shutdown` turns true, reconnecting on errors;
/// counts what it does with each delivery in `metrics` when given.
pub async fn run(
    url: String,
    topology: Topology,
    handler: Arc<dyn Handler>,
    settings: ConsumerSettings,
    metrics: Option<Arc<crate::metrics::ConsumerMetrics>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut pause = Duration::from_millis(200);
    // Resolved once: counting a delivery is an atomic add.
    let counters = metrics.and_then(|m| m.topic(handler.topic()).ok());
    while !*shutdown.borrow() {
        match consume(
            &url,
            &topology,
            handler.as_ref(),
            &settings,
            counters.as_ref(),
            &mut shutdown,
        )
        .await
        {
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
    counters: Option<&crate::metrics::TopicCounters>,
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
                Some(Ok(d)) => {
                    // The span continues the trace of the message's `traceparent` header.
                    let span = crate::trace::consume_span(
                        handler.topic(),
                        d.properties.message_id().as_ref().map(|id| id.as_str()),
                        crate::trace::traceparent_header(d.properties.headers().as_ref()),
                    );
                    settle(d, topology, handler, settings, &republish, counters).instrument(span).await?
                }
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

/// Applies one delivery and acks it, or moves it to its retry, parked or dead queue; runs in
/// the span `consume` ([`crate::trace::consume_span`]).
async fn settle(
    d: Delivery,
    topology: &Topology,
    handler: &dyn Handler,
    settings: &ConsumerSettings,
    republish: &Channel,
    counters: Option<&crate::metrics::TopicCounters>,
) -> lapin::Result<()> {
    let attempts = attempts_of(&d) + 1;
    tracing::Span::current().record("attempts", attempts);
    let (target, error, expiration, counted) = match handler.handle(&d.data).await {
        Ok(()) => {
            tracing::debug!("message handled");
            if let Some(c) = counters {
                c.ok.inc();
            }
            return d.ack(BasicAckOptions::default()).await.map(drop);
        }
        Err(HandleError::Transient(e)) if attempts < settings.max_attempts => {
            let delay = settings
                .retry_delay
                .saturating_mul(1 << (attempts - 1).min(20))
                .min(settings.max_retry_delay);
            tracing::warn!(error = %e, delay_ms = delay.as_millis() as u64, "handler failed; retrying later");
            (
                topology.retry_queue(handler.topic()),
                e,
                Some(delay),
                counters.map(|c| &c.retried),
            )
        }
        Err(HandleError::Transient(e)) => {
            tracing::error!(error = %e, "message parked after its attempts; re-driven when the database answers");
            (
                topology.parked_queue(handler.topic()),
                e,
                None,
                counters.map(|c| &c.parked),
            )
        }
        Err(HandleError::Poison(e)) => {
            tracing::error!(error = %e, "poison message dead-lettered");
            (topology.dead_queue(handler.topic()), e, None, counters.map(|c| &c.dead))
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
    let mut props = d.properties.clone().with_headers(headers).with_delivery_mode(2);
    if let Some(delay) = expiration {
        props = props.with_expiration(delay.as_millis().max(1).to_string().into());
    }
    let moved = move_delivery(republish, d, &target, props).await?;
    if let (Some(c), Some(kind)) = (counters, counted) {
        if moved { kind } else { &c.returned }.inc();
    }
    Ok(())
}

/// Publishes a copy of `d` to `target` with `props` (persistent, mandatory, confirmed), then
/// acks `d`; when the copy is not confirmed, nacks `d` back to its queue. Answers whether it
/// moved.
async fn move_delivery(channel: &Channel, d: Delivery, target: &str, props: BasicProperties) -> lapin::Result<bool> {
    let copied = channel
        .basic_publish(
            "".into(),
            target.into(),
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
        Ok(Confirmation::Ack(None)) => d.ack(BasicAckOptions::default()).await.map(|_| true),
        other => {
            tracing::error!(target, outcome = ?other.map(|c| c.is_ack()), "could not move the message; returning it to the broker");
            d.nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .map(|_| false)
        }
    }
}

/// Builds `BasicProperties` used by tests and tools to publish like the relay does.
pub fn persistent_json() -> BasicProperties {
    BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
}

/// Moves every message parked for `topic` back into its queue (attempts reset, re-drive
/// counted), or to `.dead` once it was re-driven `max_redrives` times; returns how many moved.
/// Each move is counted in `counters` (`redriven` or `dead`), when given.
/// Call it only when the consumers' dependency answers again.
///
/// # Errors
/// The broker's error (messages not yet moved stay parked).
pub async fn redrive(
    url: &str,
    topology: &Topology,
    topic: &str,
    max_redrives: u32,
    counters: Option<&TopicCounters>,
) -> lapin::Result<u64> {
    use lapin::options::BasicGetOptions;
    let conn = connect(url).await?;
    let channel = conn.create_channel().await?;
    channel.confirm_select(ConfirmSelectOptions::default()).await?;
    topology.declare(&channel).await?;
    let parked = topology.parked_queue(topic);
    let mut moved = 0;
    while let Some(msg) = channel
        .basic_get(parked.as_str().into(), BasicGetOptions::default())
        .await?
    {
        let d = msg.delivery;
        let mut headers = d.properties.headers().clone().unwrap_or_default();
        let redriven = headers
            .inner()
            .get(REDRIVEN_HEADER)
            .and_then(|v| match v {
                AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
                _ => None,
            })
            .unwrap_or(0)
            + 1;
        let to_dead = redriven > max_redrives;
        let target = if to_dead {
            topology.dead_queue(topic)
        } else {
            topology.queue(topic)
        };
        headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongInt(0));
        headers.insert(
            REDRIVEN_HEADER.into(),
            AMQPValue::LongInt(i32::try_from(redriven).unwrap_or(i32::MAX)),
        );
        let props = d.properties.clone().with_headers(headers).with_delivery_mode(2);
        if !move_delivery(&channel, d, &target, props).await? {
            break;
        }
        moved += 1;
        if let Some(c) = counters {
            if to_dead { &c.dead } else { &c.redriven }.inc();
        }
    }
    let _ = conn.close(0, "redrive done".into()).await;
    if moved > 0 {
        tracing::info!(topic, moved, "parked messages re-driven");
    }
    Ok(moved)
}

/// Every `every`, while `healthy` answers `true`, re-drives the parked messages of `topics`
/// (see [`redrive`]), counting the moves in `metrics` when given, until `shutdown`.
#[allow(clippy::too_many_arguments)]
pub async fn heal<F, Fut>(
    url: String,
    topology: Topology,
    topics: Vec<&'static str>,
    max_redrives: u32,
    every: Duration,
    healthy: F,
    metrics: Option<Arc<ConsumerMetrics>>,
    mut shutdown: watch::Receiver<bool>,
) where
    F: Fn() -> Fut + Send + Sync,
    Fut: std::future::Future<Output = bool> + Send,
{
    // Resolved once: counting a move allocates nothing.
    let counters: Vec<Option<TopicCounters>> = topics
        .iter()
        .map(|t| metrics.as_ref().and_then(|m| m.topic(t).ok()))
        .collect();
    while !*shutdown.borrow() {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = shutdown.changed() => return,
        }
        if !healthy().await {
            continue;
        }
        for (topic, counters) in topics.iter().zip(&counters) {
            if let Err(e) = redrive(&url, &topology, topic, max_redrives, counters.as_ref()).await {
                tracing::warn!(topic, error = %e, "re-driving parked messages failed; next pass retries");
            }
        }
    }
}
