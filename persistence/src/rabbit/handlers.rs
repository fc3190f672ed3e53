//! The topic handlers: award delivery and stock-zero convergence.

use std::sync::Arc;

use domain::award::{DeliverAward, Delivered};
use domain::events::{AwardStockZero, SkuStockZero, decode};
use domain::outbox::TaskState;
use domain::outbox::{TOPIC_AWARD_STOCK_ZERO, TOPIC_SEND_AWARD, TOPIC_SKU_STOCK_ZERO};
use sea_orm::ConnectionTrait;
use sea_orm::sea_query::{Alias, Expr, Query};

use crate::mysql::db::Db;

use super::consumer::{HandleError, Handler};
use crate::redis::views::CreditView;
use crate::redis::{TaskEvent, TaskStream, UserViews};

/// `send_award` → [`DeliverAward`]; a delivery is appended to the task-status stream.
///
/// An award that can never be delivered as configured (no distributor for its key, …) has
/// its task row marked dead by the use case; the handler announces `DEAD` on the stream and
/// dead-letters the message with the reason.
pub struct SendAwardHandler {
    /// The use case.
    pub deliver: Arc<DeliverAward>,
    /// Where `DELIVERED` / `DEAD` are announced, if anywhere.
    pub events: Option<TaskStream>,
    /// The award-history and credit views, if maintained.
    pub views: Option<UserViews>,
    /// Time of the `DELIVERED` announcement.
    pub clock: Arc<dyn domain::ports::Clock>,
}

#[async_trait::async_trait]
impl Handler for SendAwardHandler {
    fn topic(&self) -> &'static str {
        TOPIC_SEND_AWARD
    }

    async fn handle(&self, payload: &[u8]) -> Result<(), HandleError> {
        match self.deliver.deliver(payload).await {
            Ok(Delivered::Applied { delivery: d, credit }) => {
                if let Some(views) = &self.views {
                    let credit = credit.map(|c| CreditView {
                        total_amount: c.total_amount,
                        available_amount: c.available_amount,
                        version: c.version,
                    });
                    let applied = async {
                        views.award_delivered(&d.user_id, &d.order_id).await?;
                        if let Some(c) = &credit {
                            views.apply_credit(&d.user_id, c).await?;
                        }
                        Ok::<_, redis::RedisError>(())
                    };
                    if let Err(e) = applied.await {
                        tracing::warn!(error = %e, "could not update the award / credit views (rebuildable)");
                    }
                }
                self.announce(&d.message_id, &d.user_id, &[(TaskState::Delivered, 0)])
                    .await;
                Ok(())
            }
            Ok(Delivered::AlreadyApplied) => {
                tracing::info!("send_award already delivered; duplicate ignored");
                Ok(())
            }
            Ok(Delivered::Dead(dead)) => {
                let reason = dead.error.to_string();
                tracing::error!(
                    message_id = %dead.message_id,
                    user_id = %dead.user_id,
                    reason = %reason,
                    "award not deliverable as configured; its task is dead until replayed"
                );
                if let Some(attempts) = dead.task_attempts {
                    // The message was published (it is here): when the relay has not announced
                    // that yet, the stream still shows it before DEAD.
                    let states = [
                        (TaskState::Created, 0),
                        (TaskState::Published, attempts),
                        (TaskState::Dead, attempts),
                    ];
                    self.announce(&dead.message_id, &dead.user_id, &states).await;
                }
                Err(HandleError::Poison(reason))
            }
            Err(e) if e.is_transient() => Err(HandleError::Transient(e.to_string())),
            Err(e) => Err(HandleError::Poison(e.to_string())),
        }
    }
}

impl SendAwardHandler {
    /// Appends `send_award` state changes to the task-status stream, each only if it moves the
    /// message's status forward (a rebuildable read model: a failure is only logged).
    async fn announce(&self, message_id: &str, user_id: &str, states: &[(TaskState, i32)]) {
        let at = self.clock.now().timestamp_millis();
        announce(self.events.as_ref(), TOPIC_SEND_AWARD, message_id, user_id, states, at).await;
    }
}

/// Appends a consumed message's state changes (`(state, attempts)`, in order) to the user's
/// task-status stream, if one is maintained; each applies only if it moves the message's
/// status forward. A read model: a failure is only logged.
pub(crate) async fn announce(
    events: Option<&TaskStream>,
    topic: &str,
    message_id: &str,
    user_id: &str,
    states: &[(TaskState, i32)],
    at_ms: i64,
) {
    let Some(stream) = events else { return };
    if states.is_empty() {
        return;
    }
    let batch: Vec<TaskEvent> = states
        .iter()
        .map(|&(state, attempts)| TaskEvent {
            cursor: String::new(),
            message_id: message_id.to_owned(),
            user_id: user_id.to_owned(),
            topic: topic.to_owned(),
            state,
            attempts,
            occurred_at_ms: at_ms,
        })
        .collect();
    if let Err(e) = stream.append(&batch).await {
        tracing::warn!(error = %e, "could not append the task events (read model; rebuildable)");
    }
}

fn parse<'a, T: serde::Deserialize<'a>>(payload: &'a [u8]) -> Result<T, HandleError> {
    decode::<T>(payload)
        .map(|e| e.data)
        .map_err(|e| HandleError::Poison(e.to_string()))
}

/// `strategy_award_stock_zero` / `activity_sku_stock_zero` → durable surplus set to 0.
/// Idempotent by nature.
pub struct StockZeroHandler {
    topic: &'static str,
    config: Db,
}

impl StockZeroHandler {
    /// Handler of `strategy_award_stock_zero`.
    pub fn award(config: Db) -> Self {
        Self {
            topic: TOPIC_AWARD_STOCK_ZERO,
            config,
        }
    }

    /// Handler of `activity_sku_stock_zero`.
    pub fn sku(config: Db) -> Self {
        Self {
            topic: TOPIC_SKU_STOCK_ZERO,
            config,
        }
    }
}

#[async_trait::async_trait]
impl Handler for StockZeroHandler {
    fn topic(&self) -> &'static str {
        self.topic
    }

    async fn handle(&self, payload: &[u8]) -> Result<(), HandleError> {
        let q = if self.topic == TOPIC_AWARD_STOCK_ZERO {
            let z: AwardStockZero = parse(payload)?;
            Query::update()
                .table(Alias::new("strategy_award"))
                .value(Alias::new("award_count_surplus"), 0)
                .and_where(Expr::col(Alias::new("strategy_id")).eq(z.strategy_id.get()))
                .and_where(Expr::col(Alias::new("award_id")).eq(z.award_id.get()))
                .to_owned()
        } else {
            let SkuStockZero(sku) = parse(payload)?;
            Query::update()
                .table(Alias::new("raffle_activity_sku"))
                .value(Alias::new("stock_count_surplus"), 0)
                .and_where(Expr::col(Alias::new("sku")).eq(sku.get()))
                .to_owned()
        };
        self.config
            .execute(self.config.get_database_backend().build(&q))
            .await
            .map(|_| ())
            .map_err(|e| HandleError::Transient(e.to_string()))
    }
}
