//! `taskStatus`: live, resumable task-status events over graphql-transport-ws.

use std::collections::VecDeque;
use std::sync::Arc;

use async_graphql::{Context, Result, SimpleObject, Subscription};
use chrono::{DateTime, Utc};
use domain::ErrorCode;
use domain::ids::UserId;
use futures::Stream;
use persistence::redis::TaskEvent;
use persistence::redis::task_stream::is_cursor;

use super::error::{invalid_argument, with_code};
use super::tasks::TaskState;
use crate::state::AppState;

/// How long one blocking read waits before looping (keeps the reader responsive to drops).
const BLOCK_MS: usize = 5_000;

/// One state change of an outbox event.
#[derive(SimpleObject, Debug, Clone)]
pub struct TaskStatusEvent {
    /// Resume cursor: reconnect with `after: cursor` to continue after this event.
    pub cursor: String,
    /// The event's message id.
    pub message_id: String,
    /// Topic.
    pub topic: String,
    /// New state.
    pub state: TaskState,
    /// Publish attempts at that point.
    pub attempts: i32,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
}

impl From<TaskEvent> for TaskStatusEvent {
    fn from(e: TaskEvent) -> Self {
        Self {
            cursor: e.cursor,
            message_id: e.message_id,
            topic: e.topic,
            state: e.state.into(),
            attempts: e.attempts,
            occurred_at: DateTime::from_timestamp_millis(e.occurred_at_ms).unwrap_or_default(),
        }
    }
}

/// All subscriptions.
#[derive(Default)]
pub struct SubscriptionRoot;

#[Subscription]
impl SubscriptionRoot {
    /// Task-status events of a user's outbox events (optionally one `messageId`):
    /// CREATED → PUBLISHED → DELIVERED (or FAIL / DEAD). Without `after`, the user's retained
    /// history is replayed first, then live events follow; with `after` (a previous event's
    /// `cursor`) only what came later. Works across API instances (Redis Streams).
    /// Errors: `0002` bad user id or cursor, `0005` too many open subscriptions.
    async fn task_status(
        &self,
        ctx: &Context<'_>,
        user_id: String,
        message_id: Option<String>,
        after: Option<String>,
    ) -> Result<impl Stream<Item = TaskStatusEvent> + use<>> {
        let state = ctx.data::<Arc<AppState>>()?.clone();
        let user = UserId::parse(&user_id).map_err(invalid_argument)?;
        let cursor = match after {
            Some(a) if is_cursor(&a) => a,
            Some(a) => return Err(with_code(ErrorCode::IllegalParameter, format!("invalid cursor {a:?}"))),
            None => "0".to_owned(),
        };
        let permit = state
            .subscriptions
            .clone()
            .try_acquire_owned()
            .map_err(|_| with_code(ErrorCode::RateLimited, "too many open subscriptions; try again later"))?;
        let conn = state.task_stream.reader().await.map_err(|e| {
            tracing::error!(error = %e, "task-status reader could not connect to Redis");
            with_code(ErrorCode::Unknown, "internal error")
        })?;
        let init = (state, conn, cursor, VecDeque::<TaskStatusEvent>::new(), permit);
        Ok(futures::stream::unfold(
            init,
            move |(state, mut conn, mut cursor, mut buf, permit)| {
                let user = user.clone();
                let wanted = message_id.clone();
                async move {
                    loop {
                        if let Some(e) = buf.pop_front() {
                            return Some((e, (state, conn, cursor, buf, permit)));
                        }
                        match state
                            .task_stream
                            .read(&mut conn, user.as_str(), &cursor, BLOCK_MS, 100)
                            .await
                        {
                            Ok(events) => {
                                for e in events {
                                    cursor.clone_from(&e.cursor);
                                    if wanted.as_deref().is_none_or(|m| m == e.message_id) {
                                        buf.push_back(e.into());
                                    }
                                }
                            }
                            Err(e) => {
                                // The client reconnects with its last cursor and misses nothing.
                                tracing::warn!(error = %e, "task-status stream read failed; closing the subscription");
                                return None;
                            }
                        }
                    }
                }
            },
        ))
    }
}
