//! `taskStatus`: live, resumable task-status events over graphql-transport-ws.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_graphql::{Context, ID, Result, SimpleObject, Subscription};
use domain::ErrorCode;
use domain::ids::UserId;
use futures::{Stream, StreamExt};
use persistence::redis::TaskEvent;
use persistence::redis::task_stream::is_cursor;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::access::acting_user;
use super::error::{EdgeCode, edge, with_code};
use super::scalars::DateTime;
use super::tasks::TaskState;
use crate::state::AppState;

/// One state change of an outbox event.
#[derive(SimpleObject, Debug, Clone)]
pub struct TaskStatusEvent {
    /// Resume cursor: reconnect with `after: cursor` to continue after this event.
    pub cursor: String,
    /// The event's message id.
    pub message_id: ID,
    /// Topic.
    pub topic: String,
    /// New state.
    pub state: TaskState,
    /// Publish attempts at that point.
    pub attempts: i32,
    /// When it happened.
    pub occurred_at: DateTime,
}

impl From<TaskEvent> for TaskStatusEvent {
    fn from(e: TaskEvent) -> Self {
        Self {
            cursor: e.cursor,
            message_id: ID(e.message_id),
            topic: e.topic,
            state: e.state.into(),
            attempts: e.attempts,
            occurred_at: DateTime::from_millis(e.occurred_at_ms),
        }
    }
}

/// All subscriptions.
#[derive(Default)]
pub struct SubscriptionRoot;

/// All subscriptions, over `/graphql/ws` (the graphql-transport-ws protocol, or the legacy
/// graphql-ws one).
#[Subscription(name = "Subscription")]
impl SubscriptionRoot {
    /// Task-status events of a user's outbox events (optionally one `messageId`):
    /// CREATED → PUBLISHED → DELIVERED (or FAIL / DEAD). Without `after`, the user's retained
    /// history is replayed first, then live events follow; with `after` (a previous event's
    /// `cursor`) only what came later. Works across API instances (Redis Streams).
    /// A user token subscribes to its own events only; service and admin tokens name the user.
    /// Errors: `UNAUTHENTICATED`, `FORBIDDEN`, `0002` bad user id or cursor,
    /// `TOO_MANY_SUBSCRIPTIONS` past the per-connection, per-user or per-instance cap.
    async fn task_status(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user; defaults to the token's user (service and admin tokens must name one).")]
        user_id: Option<String>,
        #[graphql(desc = "Only this event's changes.")] message_id: Option<ID>,
        #[graphql(desc = "Resume after this event `cursor`.")] after: Option<String>,
    ) -> Result<impl Stream<Item = TaskStatusEvent> + use<>> {
        let user: UserId = acting_user(ctx, user_id.as_deref())?;
        let state = ctx.data::<Arc<AppState>>()?.clone();
        let cursor = match after {
            Some(a) if is_cursor(&a) => a,
            Some(a) => return Err(with_code(ErrorCode::IllegalParameter, format!("invalid cursor {a:?}"))),
            None => "0".to_owned(),
        };
        let permit = state
            .subscription_slots
            .acquire(ctx.data_opt::<ConnectionSlots>(), user.as_str())
            .map_err(|why| edge(EdgeCode::TooManySubscriptions, why))?;
        // One reader per process serves every subscription (no Redis connection of its own).
        let events = state.task_fanout.follow(user.as_str(), &cursor);
        Ok(events.filter_map(move |e| {
            let keep = message_id.as_ref().is_none_or(|m| m.as_str() == e.message_id);
            // The permit lives as long as the stream: dropping the subscription frees its slots.
            let _held = &permit;
            futures::future::ready(keep.then(|| TaskStatusEvent::from(e)))
        }))
    }
}

/// The subscriptions one WebSocket connection holds (its cap is `http.max_subscriptions_per_connection`).
#[derive(Debug, Clone)]
pub struct ConnectionSlots {
    open: Arc<AtomicUsize>,
    max: usize,
}

impl ConnectionSlots {
    /// A new connection's counter.
    pub fn new(max: usize) -> Self {
        Self {
            open: Arc::new(AtomicUsize::new(0)),
            max,
        }
    }
}

/// The caps on open subscriptions: per instance, per user (this instance), and per connection.
#[derive(Debug)]
pub struct SubscriptionSlots {
    instance: Arc<Semaphore>,
    per_user: Arc<Mutex<HashMap<String, usize>>>,
    max_per_user: usize,
}

/// One open subscription's share of every cap, given back when the subscription ends.
#[derive(Debug)]
pub struct SubscriptionPermit {
    _instance: OwnedSemaphorePermit,
    connection: Option<Arc<AtomicUsize>>,
    user: String,
    per_user: Arc<Mutex<HashMap<String, usize>>>,
}

impl Drop for SubscriptionPermit {
    fn drop(&mut self) {
        if let Some(c) = &self.connection {
            c.fetch_sub(1, Ordering::AcqRel);
        }
        let mut map = self.per_user.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.user);
            }
        }
    }
}

impl SubscriptionSlots {
    /// Caps of `max_instance` subscriptions in all and `max_per_user` per user.
    pub fn new(max_instance: usize, max_per_user: usize) -> Self {
        Self {
            instance: Arc::new(Semaphore::new(max_instance)),
            per_user: Arc::new(Mutex::new(HashMap::new())),
            max_per_user,
        }
    }

    /// Takes one slot of each cap for `user` on `connection`.
    ///
    /// # Errors
    /// Which cap is full, as a message for the client.
    pub fn acquire(&self, connection: Option<&ConnectionSlots>, user: &str) -> Result<SubscriptionPermit, String> {
        let connection = match connection {
            Some(c) => {
                if c.open.fetch_add(1, Ordering::AcqRel) >= c.max {
                    c.open.fetch_sub(1, Ordering::AcqRel);
                    return Err(format!("at most {} subscriptions per connection", c.max));
                }
                Some(c.open.clone())
            }
            None => None,
        };
        let release_connection = |c: &Option<Arc<AtomicUsize>>| {
            if let Some(c) = c {
                c.fetch_sub(1, Ordering::AcqRel);
            }
        };
        {
            let mut map = self.per_user.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = map.entry(user.to_owned()).or_insert(0);
            if *n >= self.max_per_user {
                release_connection(&connection);
                return Err(format!("at most {} subscriptions per user", self.max_per_user));
            }
            *n += 1;
        }
        match self.instance.clone().try_acquire_owned() {
            Ok(permit) => Ok(SubscriptionPermit {
                _instance: permit,
                connection,
                user: user.to_owned(),
                per_user: self.per_user.clone(),
            }),
            Err(_) => {
                // Give back the user's and the connection's slot: dropping a permit-less guard.
                release_connection(&connection);
                let mut map = self.per_user.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                if let Some(n) = map.get_mut(user) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        map.remove(user);
                    }
                }
                Err("too many open subscriptions on this instance; try again later".into())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_cap_refuses_past_its_size_and_a_dropped_subscription_frees_its_slots() {
        let slots = SubscriptionSlots::new(3, 2);
        let conn = ConnectionSlots::new(2);
        let a = slots.acquire(Some(&conn), "u1").unwrap();
        let _b = slots.acquire(Some(&conn), "u2").unwrap();
        assert_eq!(
            slots.acquire(Some(&conn), "u3").unwrap_err(),
            "at most 2 subscriptions per connection"
        );
        let _c = slots.acquire(None, "u1").unwrap();
        assert_eq!(
            slots.acquire(None, "u1").unwrap_err(),
            "at most 2 subscriptions per user"
        );
        assert!(slots.acquire(None, "u4").unwrap_err().contains("on this instance"));
        drop(a);
        let _d = slots.acquire(Some(&conn), "u1").unwrap();
        assert_eq!(conn.open.load(Ordering::Acquire), 2);
    }
}
