//! Publishing with confirms: persistent, mandatory messages, a window of confirms in flight.

use lapin::Confirmation;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::Mutex;

use super::{Topology, connect};

/// How one publish ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Published {
    /// The broker confirmed: the message is stored in a durable queue.
    Confirmed,
    /// Not confirmed (returned as unroutable, nacked, or the channel failed): retry later.
    Failed(String),
    /// Not sent: the broker could not be reached; the row waits without counting an attempt.
    Deferred,
}

/// One message to publish.
#[derive(Debug, Clone)]
pub struct Outgoing<'a> {
    /// Topic (the queue is derived from it).
    pub topic: &'a str,
    /// Message id (AMQP `message_id` property).
    pub message_id: &'a str,
    /// Body.
    pub payload: &'a [u8],
    /// The trace context its outbox row stored: the message is published in a producer span
    /// under it, whose context goes out as the header `traceparent` ([`crate::trace`]).
    pub traceparent: Option<&'a str>,
}

/// A lazily (re)connected confirm-mode channel.
pub struct Publisher {
    url: String,
    topology: Topology,
    link: Mutex<Option<(Connection, Channel)>>,
    deadline: std::time::Duration,
}

/// How long a publish waits for the broker by default: to connect, and for a batch's confirms.
pub const DEFAULT_CONFIRM_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

impl Publisher {
    /// A publisher to `url`; nothing is connected until the first publish.
    pub fn new(url: impl Into<String>, topology: Topology) -> Self {
        Self {
            url: url.into(),
            topology,
            link: Mutex::new(None),
            deadline: DEFAULT_CONFIRM_TIMEOUT,
        }
    }

    /// Waits at most `deadline` for the broker: to (re)connect, and for a batch's confirms.
    /// A confirm not received by then counts as a failed attempt (retried later, possibly
    /// published twice: consumers are idempotent), and the connection is dropped.
    pub fn with_confirm_timeout(mut self, deadline: std::time::Duration) -> Self {
        self.deadline = deadline;
        self
    }

    /// The queue naming.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// The current channel, reconnecting (and re-declaring the queues) when needed.
    ///
    /// # Errors
    /// The broker's error when it cannot be reached.
    pub async fn channel(&self) -> lapin::Result<Channel> {
        let mut link = self.link.lock().await;
        if let Some((conn, ch)) = link.as_ref()
            && conn.status().connected()
            && ch.status().connected()
        {
            return Ok(ch.clone());
        }
        let open = async {
            let conn = connect(&self.url).await?;
            let ch = conn.create_channel().await?;
            ch.confirm_select(ConfirmSelectOptions::default()).await?;
            self.topology.declare(&ch).await?;
            Ok::<_, lapin::Error>((conn, ch))
        };
        let (conn, ch) = tokio::time::timeout(self.deadline, open).await.map_err(|_| {
            lapin::Error::from(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("RabbitMQ did not answer within {} ms", self.deadline.as_millis()),
            ))
        })??;
        *link = Some((conn, ch.clone()));
        Ok(ch)
    }

    /// Forgets the current connection (after an error) so the next call reconnects.
    pub async fn reset(&self) {
        if let Some((conn, _)) = self.link.lock().await.take() {
            let _ = conn.close(0, "reset".into()).await;
        }
    }

    /// Publishes every message, then waits for all their confirms (a window, not one at a
    /// time). The result has one entry per message, in order.
    ///
    /// # Errors
    /// When no channel can be had; individual failures are reported per message.
    pub async fn publish_all(&self, messages: &[Outgoing<'_>]) -> lapin::Result<Vec<Published>> {
        let channel = self.channel().await?;
        let mut pending = Vec::with_capacity(messages.len());
        // The producer spans end once the batch's confirms are in.
        let mut spans = Vec::new();
        for m in messages {
            let mut props = BasicProperties::default()
                .with_delivery_mode(2)
                .with_content_type("application/json".into())
                .with_message_id(m.message_id.into());
            if let Some(stored) = m.traceparent {
                let span = crate::trace::publish_span(m.topic, m.message_id, stored);
                let mut headers = FieldTable::default();
                headers.insert(
                    crate::trace::TRACEPARENT.into(),
                    AMQPValue::LongString(crate::trace::header_value(&span, stored).into()),
                );
                props = props.with_headers(headers);
                spans.push(span);
            }
            let queue = self.topology.queue(m.topic);
            let sent = channel
                .basic_publish(
                    "".into(),
                    queue.as_str().into(),
                    BasicPublishOptions {
                        mandatory: true,
                        ..Default::default()
                    },
                    m.payload,
                    props,
                )
                .await;
            pending.push(sent);
        }
        let mut out = Vec::with_capacity(pending.len());
        let mut broken = false;
        let deadline = tokio::time::Instant::now() + self.deadline;
        for p in pending {
            let outcome = match p {
                Err(e) => {
                    broken = true;
                    Published::Failed(format!("publish: {e}"))
                }
                Ok(confirm) => match tokio::time::timeout_at(deadline, confirm).await.unwrap_or_else(|_| {
                    Err(lapin::Error::from(std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        "no confirm before the deadline",
                    )))
                }) {
                    Ok(Confirmation::Ack(None)) => Published::Confirmed,
                    Ok(Confirmation::Ack(Some(r))) | Ok(Confirmation::Nack(Some(r))) => {
                        Published::Failed(format!("returned by the broker: {} {}", r.reply_code, r.reply_text))
                    }
                    Ok(Confirmation::Nack(None)) => Published::Failed("nacked by the broker".into()),
                    Ok(Confirmation::NotRequested) => Published::Failed("confirms not enabled".into()),
                    Err(e) => {
                        broken = true;
                        Published::Failed(format!("confirm: {e}"))
                    }
                },
            };
            out.push(outcome);
        }
        drop(spans);
        if broken {
            self.reset().await;
        }
        Ok(out)
    }
}
