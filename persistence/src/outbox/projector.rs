//! What a relayed batch changes on the read side.
//!
//! * Projection-only events (`activity_account_changed`, `credit_account_changed`,
//!   `behavior_rebate_recorded`) are applied to the user views instead
//!   of being published ([`Projector::apply_internal`]).
//! * After the batch is settled, confirmed `send_award` events enter the award history
//!   ([`Projector::record_awards`]) and every state change is appended to the task-status
//!   streams ([`Projector::announce`]).
//!
//! Read-model writes are best effort: a failure is logged and the view is rebuildable
//! (`rebuildProjections`); the `task` table stays the source of truth.

use std::sync::Arc;

use domain::events::{AccountSnapshot, CreditSnapshot, RebateSnapshot, SendAward, decode};
use domain::outbox::{INTERNAL_TOPICS, TOPIC_CREDIT_CHANGED, TOPIC_REBATE_RECORDED, TOPIC_SEND_AWARD, TaskState};
use domain::ports::Clock;

use super::store::Claimed;
use crate::rabbit::publisher::Published;
use crate::redis::views::AwardEntry;
use crate::redis::{TaskEvent, TaskStream, UserViews};

/// The relay's read-side writes; each part is optional (a relay without views or streams
/// only publishes).
pub struct Projector {
    /// The task-status streams, if maintained.
    pub events: Option<TaskStream>,
    /// The user views, if maintained.
    pub views: Option<UserViews>,
    /// Publish attempts after which a failed row is dead (to announce `DEAD`).
    pub max_attempts: u32,
    /// Time of the announcements.
    pub clock: Arc<dyn Clock>,
    /// Where the read-model lag of each applied event is observed, if anywhere.
    pub metrics: Option<Arc<crate::metrics::ProjectionMetrics>>,
}

impl Projector {
    /// Applies a projection-only event to the user views; `Failed` when it cannot (the row is
    /// then retried like a failed publish).
    pub async fn apply_internal(&self, row: &Claimed) -> Published {
        let Some(views) = &self.views else {
            return Published::Confirmed;
        };
        let body = row.message.as_bytes();
        // Each arm answers the write and the event's creation time (epoch ms).
        let (applied, created_ms) = match row.topic.as_str() {
            TOPIC_CREDIT_CHANGED => match decode::<CreditSnapshot>(body) {
                Ok(env) => (views.apply_credit_trade(&env.data).await.map(drop), env.timestamp),
                Err(e) => return Published::Failed(format!("malformed {}: {e}", row.topic)),
            },
            TOPIC_REBATE_RECORDED => match decode::<RebateSnapshot>(body) {
                Ok(env) => (views.apply_rebate(&env.data).await, env.timestamp),
                Err(e) => return Published::Failed(format!("malformed {}: {e}", row.topic)),
            },
            _ => match decode::<AccountSnapshot>(body) {
                Ok(env) => (views.apply_account(&env.data).await.map(drop), env.timestamp),
                Err(e) => return Published::Failed(format!("malformed {}: {e}", row.topic)),
            },
        };
        match applied {
            Ok(()) => {
                self.observe_lag(&row.topic, created_ms);
                Published::Confirmed
            }
            Err(e) => Published::Failed(format!("read model: {e}")),
        }
    }

    /// Adds the confirmed `send_award` events of a batch to their users' award history.
    pub async fn record_awards(&self, rows: &[Claimed], results: &[Published]) {
        let Some(views) = &self.views else { return };
        let mut won: Vec<(String, AwardEntry)> = Vec::new();
        // When each event was created (epoch ms), for the read-model lag.
        let mut created: Vec<i64> = Vec::new();
        for (row, result) in rows.iter().zip(results) {
            if row.topic != TOPIC_SEND_AWARD || *result != Published::Confirmed {
                continue;
            }
            let Ok(env) = decode::<SendAward>(row.message.as_bytes()) else {
                continue;
            };
            let entry = AwardEntry {
                order_id: env.data.order_id,
                award_id: env.data.award_id,
                award_title: env.data.award_title,
                // The record's `award_time` has whole seconds.
                award_time_ms: env.timestamp - env.timestamp.rem_euclid(1000),
                delivered: false,
            };
            created.push(env.timestamp);
            won.push((env.data.user_id, entry));
        }
        if won.is_empty() {
            return;
        }
        let batch: Vec<(&str, &AwardEntry)> = won.iter().map(|(u, e)| (u.as_str(), e)).collect();
        match views.add_awards(&batch).await {
            Ok(()) => {
                for created_ms in created {
                    self.observe_lag(TOPIC_SEND_AWARD, created_ms);
                }
            }
            Err(e) => tracing::warn!(error = %e, "could not record awards in the history view (rebuildable)"),
        }
    }

    /// Observes the read-model lag of an event of `topic` created at `created_ms`, applied now.
    fn observe_lag(&self, topic: &str, created_ms: i64) {
        if let Some(m) = &self.metrics {
            m.observe(topic, created_ms, self.clock.now().timestamp_millis());
        }
    }

    /// Appends the batch's state changes to the task-status streams: `CREATED` for rows
    /// claimed for the first time, then `PUBLISHED`, `FAIL` or `DEAD` with the attempt count.
    pub async fn announce(&self, rows: &[Claimed], results: &[Published]) {
        let Some(stream) = &self.events else { return };
        let at = self.clock.now().timestamp_millis();
        let mut events = Vec::with_capacity(rows.len() * 2);
        for (row, result) in rows
            .iter()
            .zip(results)
            .filter(|(r, _)| !INTERNAL_TOPICS.contains(&r.topic.as_str()))
        {
            let event = |state, attempts| TaskEvent {
                cursor: String::new(),
                message_id: row.message_id.clone(),
                user_id: row.user_id.clone(),
                topic: row.topic.clone(),
                state,
                attempts,
                occurred_at_ms: at,
            };
            // A deferred row was not tried: its events come when it is.
            if *result == Published::Deferred {
                continue;
            }
            if row.fresh {
                events.push(event(TaskState::Created, 0));
            }
            let attempts = i32::try_from(row.attempts + 1).unwrap_or(i32::MAX);
            events.push(match result {
                Published::Confirmed => event(TaskState::Published, attempts),
                Published::Failed(_) if row.attempts + 1 >= self.max_attempts => event(TaskState::Dead, attempts),
                Published::Failed(_) => event(TaskState::Failed, attempts),
                Published::Deferred => continue,
            });
        }
        if events.is_empty() {
            return;
        }
        if let Err(e) = stream.append(&events).await {
            tracing::warn!(error = %e, "could not append task-status events (read model; rebuildable)");
        }
    }
}
