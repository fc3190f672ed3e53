//! Stock administration: an operator adds units of an award's or a SKU's stock.
//!
//! The live counter (Redis) is raised first, then the durable count and surplus (MySQL). In
//! that order the stock sync, which only ever lowers the durable surplus to the live counter,
//! cannot undo the change; and if the durable write fails after the live one, the counter
//! holds units the durable rows do not — a re-arm after a Redis loss would then undersell,
//! never oversell. Units freed this way never collide with the unit locks of earlier sales:
//! the live counter's add clears the locks of the units it creates.

use std::sync::Arc;

use crate::activity::ports::SkuStockCounter;
use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::{AwardId, Sku, StrategyId};
use crate::ports::{AwardStockCounter, PortError};

/// Most units one call may add (each clears one unit lock in Redis).
pub const MAX_UNITS: i64 = 100_000;

/// The durable side of stock: `strategy_award` / `raffle_activity_sku` counts and surpluses.
#[async_trait::async_trait]
pub trait DurableStock: Send + Sync {
    /// Adds `units` to the award's `award_count` and `award_count_surplus`; the values after,
    /// or `None` when the strategy has no such award.
    ///
    /// # Errors
    /// [`PortError`] when the database cannot be written.
    async fn add_award_stock(
        &self,
        strategy_id: StrategyId,
        award_id: AwardId,
        units: i64,
    ) -> Result<Option<(i64, i64)>, PortError>;

    /// Adds `units` to the SKU's `stock_count` and `stock_count_surplus`; the values after, or
    /// `None` for an unknown SKU.
    ///
    /// # Errors
    /// [`PortError`] when the database cannot be written.
    async fn add_sku_stock(&self, sku: Sku, units: i64) -> Result<Option<(i64, i64)>, PortError>;
}

/// What an addition left behind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StockAdded {
    /// Total stock (durable).
    pub count: i64,
    /// Durable surplus.
    pub surplus: i64,
    /// The live counter after the addition; `None` when it was never armed (arming derives it
    /// from the durable surplus).
    pub live: Option<i64>,
}

/// Why stock could not be added.
#[derive(Debug, thiserror::Error)]
pub enum StockError {
    /// Bad units, or no such award / SKU (`0002`).
    #[error("{0}")]
    InvalidArgument(String),
    /// A store failed (`0001`).
    #[error(transparent)]
    Port(#[from] PortError),
}

impl HasErrorCode for StockError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::InvalidArgument(_) => ErrorCode::IllegalParameter,
            Self::Port(_) => ErrorCode::Unknown,
        }
    }

    fn message_is_public(&self) -> bool {
        match self {
            Self::Port(p) => p.is_unavailable(),
            Self::InvalidArgument(_) => true,
        }
    }
}

/// Adds stock: live counter first, then the durable rows.
pub struct StockAdmin {
    durable: Arc<dyn DurableStock>,
    awards: Arc<dyn AwardStockCounter>,
    skus: Arc<dyn SkuStockCounter>,
}

fn check_units(units: i64) -> Result<(), StockError> {
    if (1..=MAX_UNITS).contains(&units) {
        Ok(())
    } else {
        Err(StockError::InvalidArgument(format!(
            "units must be between 1 and {MAX_UNITS}, got {units}"
        )))
    }
}

impl StockAdmin {
    /// Stock administration over its ports.
    pub fn new(
        durable: Arc<dyn DurableStock>,
        awards: Arc<dyn AwardStockCounter>,
        skus: Arc<dyn SkuStockCounter>,
    ) -> Self {
        Self { durable, awards, skus }
    }

    /// Adds `units` of stock to an award of a strategy.
    ///
    /// # Errors
    /// `0002` for bad units or an unknown award; `0001` when a store fails.
    pub async fn add_award_stock(
        &self,
        strategy_id: StrategyId,
        award_id: AwardId,
        units: i64,
    ) -> Result<StockAdded, StockError> {
        check_units(units)?;
        let live = self.awards.add(strategy_id, award_id, units).await?;
        let (count, surplus) = self
            .durable
            .add_award_stock(strategy_id, award_id, units)
            .await?
            .ok_or_else(|| StockError::InvalidArgument(format!("strategy {strategy_id} has no award {award_id}")))?;
        tracing::info!(
            strategy.id = strategy_id.get(),
            award.id = award_id.get(),
            units,
            count,
            surplus,
            ?live,
            "award stock added"
        );
        Ok(StockAdded { count, surplus, live })
    }

    /// Adds `units` of stock to a SKU.
    ///
    /// # Errors
    /// `0002` for bad units or an unknown SKU; `0001` when a store fails.
    pub async fn add_sku_stock(&self, sku: Sku, units: i64) -> Result<StockAdded, StockError> {
        check_units(units)?;
        let live = self.skus.add(sku, units).await?;
        let (count, surplus) = self
            .durable
            .add_sku_stock(sku, units)
            .await?
            .ok_or_else(|| StockError::InvalidArgument(format!("SKU {sku} does not exist")))?;
        tracing::info!(sku = sku.get(), units, count, surplus, ?live, "SKU stock added");
        Ok(StockAdded { count, surplus, live })
    }
}
