//! The topic handlers: award delivery and stock-zero convergence.

use std::sync::Arc;

use domain::award::DeliverAward;
use domain::events::{AwardStockZero, SkuStockZero, decode};
use domain::outbox::TaskState;
use domain::outbox::{TOPIC_AWARD_STOCK_ZERO, TOPIC_SEND_AWARD, TOPIC_SKU_STOCK_ZERO};
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection};

use super::consumer::{HandleError, Handler};
use crate::redis::views::CreditView;
use crate::redis::{TaskEvent, TaskStream, UserViews};

/// `send_award` → [`DeliverAward`]; a delivery is appended to the task-status stream.
pub struct SendAwardHandler {
    /// The use case.
    pub deliver: Arc<DeliverAward>,
    /// Where `DELIVERED` is announced, if anywhere.
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
            Ok(Some((d, credit))) => {
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
                if let Some(stream) = &self.events {
                    let event = TaskEvent {
                        cursor: String::new(),
                        message_id: d.message_id,
                        user_id: d.user_id,
                        topic: TOPIC_SEND_AWARD.into(),
                        state: TaskState::Delivered,
                        attempts: 0,
                        occurred_at_ms: self.clock.now().timestamp_millis(),
                    };
                    if let Err(e) = stream.append(&[event]).await {
                        tracing::warn!(error = %e, "could not append the delivered event (read model; rebuildable)");
                    }
                }
                Ok(())
            }
            Ok(None) => {
                tracing::info!("send_award already delivered; duplicate ignored");
                Ok(())
            }
            Err(e) if e.is_transient() => Err(HandleError::Transient(e.to_string())),
            Err(e) => Err(HandleError::Poison(e.to_string())),
        }
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
    config: DatabaseConnection,
}

impl StockZeroHandler {
    /// Handler of `strategy_award_stock_zero`.
    pub fn award(config: DatabaseConnection) -> Self {
        Self {
            topic: TOPIC_AWARD_STOCK_ZERO,
            config,
        }
    }

    /// Handler of `activity_sku_stock_zero`.
    pub fn sku(config: DatabaseConnection) -> Self {
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
