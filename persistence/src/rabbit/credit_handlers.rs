//! The handlers of the credit topics: `send_rebate` (apply a sign-in rebate) and
//! `credit_adjust_success` (the trade committed with its effect; acknowledge it as delivered).
//!
//! A consumed message's `task` row is stamped on the user's shard: `delivered_at` once its
//! effect is committed, or `dead` with the reason when it can never apply as it stands (a
//! rebate whose activity ended). Either is announced on the task-status stream, so clients see
//! `DELIVERED` or `DEAD` (with `lastError`), and `replayTask` sends a dead one again.

use std::sync::Arc;

use domain::award::DeadMark;
use domain::credit::rebate::{RebateError, RebateSettlement};
use domain::events::{Envelope, decode};
use domain::outbox::{TOPIC_CREDIT_ADJUST_SUCCESS, TOPIC_SEND_REBATE, TaskState};
use domain::ports::Clock;
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Expr, Query};

use super::consumer::{HandleError, Handler};
use crate::mysql::db::Databases;
use crate::redis::TaskStream;

/// The routing fields every payload of these topics has.
#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Routed {
    user_id: String,
}

/// How a consumed message ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    /// Its effect is committed.
    Delivered,
    /// It can never apply as it stands: recorded with the reason, not retried.
    NotApplied(String),
}

/// Stamps the message's `task` row (on the user's shard) and announces the state:
/// `delivered_at` for [`Consumed::Delivered`]; `dead` with the reason for
/// [`Consumed::NotApplied`], once the relay has recorded the publish (before that the message is
/// retried shortly, see [`crate::outbox::store::mark_consumed_dead`]).
///
/// # Errors
/// [`HandleError::Transient`] when the row cannot be stamped yet or the database fails.
pub async fn record_consumed(
    db: &Databases,
    events: Option<&TaskStream>,
    clock: &dyn Clock,
    topic: &str,
    user_id: &str,
    message_id: &str,
    outcome: &Consumed,
) -> Result<(), HandleError> {
    let (shard, _) = db.shard_of(user_id);
    let now = clock.now();
    let transient = |e: sea_orm::DbErr| HandleError::Transient(e.to_string());
    let states: Vec<(TaskState, i32)> = match outcome {
        Consumed::Delivered => {
            let q = Query::update()
                .table(Alias::new("task"))
                .value(Alias::new("delivered_at"), now.naive_utc())
                .and_where(Expr::col(Alias::new("message_id")).eq(message_id))
                .and_where(Expr::col(Alias::new("delivered_at")).is_null())
                .to_owned();
            shard
                .execute(shard.get_database_backend().build(&q))
                .await
                .map_err(transient)?;
            vec![(TaskState::Delivered, 0)]
        }
        Consumed::NotApplied(reason) => {
            match crate::outbox::store::mark_consumed_dead(shard, message_id, reason)
                .await
                .map_err(transient)?
            {
                // The stream shows the publish before DEAD even when the relay has not
                // announced it yet.
                DeadMark::Marked { attempts } => vec![
                    (TaskState::Created, 0),
                    (TaskState::Published, attempts),
                    (TaskState::Dead, attempts),
                ],
                DeadMark::NoTask | DeadMark::Delivered => Vec::new(),
                DeadMark::NotPublished => {
                    return Err(HandleError::Transient(
                        "the relay has not recorded the publish yet; retrying".into(),
                    ));
                }
            }
        }
    };
    super::handlers::announce(events, topic, message_id, user_id, &states, now.timestamp_millis()).await;
    Ok(())
}

fn routed(payload: &[u8]) -> Result<Envelope<Routed>, HandleError> {
    decode::<Routed>(payload).map_err(|e| HandleError::Poison(e.to_string()))
}

/// `send_rebate` → [`RebateSettlement`].
pub struct SendRebateHandler {
    /// The use case.
    pub settle: Arc<RebateSettlement>,
    /// The shards (task rows).
    pub db: Databases,
    /// Where states are announced, if anywhere.
    pub events: Option<TaskStream>,
    /// Time of the stamps.
    pub clock: Arc<dyn Clock>,
}

#[async_trait::async_trait]
impl Handler for SendRebateHandler {
    fn topic(&self) -> &'static str {
        TOPIC_SEND_REBATE
    }

    async fn handle(&self, payload: &[u8]) -> Result<(), HandleError> {
        let env = routed(payload)?;
        let outcome = match self.settle.apply(payload).await {
            Ok(applied) => {
                tracing::info!(?applied, "rebate applied");
                Consumed::Delivered
            }
            Err(RebateError::NotApplicable(reason)) => {
                tracing::warn!(%reason, message.id = %env.id, "rebate not applied; recorded as dead (replayTask sends it again)");
                Consumed::NotApplied(format!("not applied: {reason}"))
            }
            Err(RebateError::Malformed(e)) => return Err(HandleError::Poison(e)),
            Err(RebateError::Transient(e)) => return Err(HandleError::Transient(e)),
        };
        record_consumed(
            &self.db,
            self.events.as_ref(),
            self.clock.as_ref(),
            TOPIC_SEND_REBATE,
            &env.data.user_id,
            &env.id,
            &outcome,
        )
        .await
    }
}

/// `credit_adjust_success`: the trade and everything it pays for committed in one transaction
/// before the event existed, so consuming it only records it as delivered.
pub struct CreditAdjustHandler {
    /// The shards (task rows).
    pub db: Databases,
    /// Where states are announced, if anywhere.
    pub events: Option<TaskStream>,
    /// Time of the stamps.
    pub clock: Arc<dyn Clock>,
}

#[async_trait::async_trait]
impl Handler for CreditAdjustHandler {
    fn topic(&self) -> &'static str {
        TOPIC_CREDIT_ADJUST_SUCCESS
    }

    async fn handle(&self, payload: &[u8]) -> Result<(), HandleError> {
        let env = routed(payload)?;
        record_consumed(
            &self.db,
            self.events.as_ref(),
            self.clock.as_ref(),
            TOPIC_CREDIT_ADJUST_SUCCESS,
            &env.data.user_id,
            &env.id,
            &Consumed::Delivered,
        )
        .await
    }
}
