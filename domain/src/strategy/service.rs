//! The strategy application service: arm, draw, and read a strategy, over ports only.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use super::armed::{ArmedStrategy, RaffleAward, RaffleInput};
use super::error::{ArmError, RaffleError};
use super::view::StrategyView;
use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::StrategyId;
use crate::ports::{ArmoryStore, AwardLedger, AwardStockCounter, PortError, RandomSource, StrategyRepository};

/// Everything that can go wrong in the strategy service.
#[derive(Debug, thiserror::Error)]
pub enum StrategyError {
    /// No such strategy (`0002`).
    #[error("strategy {0} does not exist")]
    NotFound(StrategyId),
    /// Draw before arming (`ERR_BIZ_002`).
    #[error("strategy {0} is not armed; call armStrategy first")]
    NotArmed(StrategyId),
    /// The configuration cannot be armed.
    #[error(transparent)]
    Arm(#[from] ArmError),
    /// The draw failed.
    #[error(transparent)]
    Raffle(#[from] RaffleError),
    /// A store failed (`0001`).
    #[error(transparent)]
    Port(#[from] PortError),
}

impl HasErrorCode for StrategyError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::NotFound(_) => ErrorCode::IllegalParameter,
            Self::NotArmed(_) => ErrorCode::StrategyNotArmed,
            Self::Arm(e) => e.error_code(),
            Self::Raffle(e) => e.error_code(),
            Self::Port(_) => ErrorCode::Unknown,
        }
    }

    fn message_is_public(&self) -> bool {
        match self {
            Self::Port(p) => p.is_unavailable(),
            _ => self.error_code() != ErrorCode::Unknown,
        }
    }
}

/// Arms strategies, keeps their immutable armed form in process, and draws from it.
pub struct StrategyService {
    repo: Arc<dyn StrategyRepository>,
    store: Arc<dyn ArmoryStore>,
    stock: Arc<dyn AwardStockCounter>,
    ledger: Arc<dyn AwardLedger>,
    random: Arc<dyn RandomSource>,
    armed: RwLock<HashMap<StrategyId, Arc<ArmedStrategy>>>,
}

impl StrategyService {
    /// A service over the given ports.
    pub fn new(
        repo: Arc<dyn StrategyRepository>,
        store: Arc<dyn ArmoryStore>,
        stock: Arc<dyn AwardStockCounter>,
        ledger: Arc<dyn AwardLedger>,
        random: Arc<dyn RandomSource>,
    ) -> Self {
        Self {
            repo,
            store,
            stock,
            ledger,
            random,
            armed: RwLock::new(HashMap::new()),
        }
    }

    /// The stock counters (shared with other services that take or return award stock).
    pub fn stock(&self) -> &Arc<dyn AwardStockCounter> {
        &self.stock
    }

    /// The randomness source.
    pub fn random(&self) -> &Arc<dyn RandomSource> {
        &self.random
    }

    /// Loads, validates and arms a strategy; publishes its tables and arms missing stock
    /// counters from durable records: `min(surplus, count − awards recorded)`, so a Redis loss
    /// never causes oversell. Re-arming picks up configuration changes.
    ///
    /// # Errors
    /// [`StrategyError::NotFound`], [`StrategyError::Arm`], or a store failure.
    pub async fn arm(&self, strategy_id: StrategyId) -> Result<Arc<ArmedStrategy>, StrategyError> {
        let armed = Arc::new(self.arm_locally(strategy_id).await?);
        let awarded = self.ledger.awarded_units(strategy_id).await?;
        let initial = armed
            .awards()
            .iter()
            .map(|a| {
                let won = awarded.get(&a.award_id).copied().unwrap_or(0);
                (
                    a.award_id,
                    i64::from(a.award_count_surplus)
                        .min(i64::from(a.award_count) - won)
                        .max(0),
                )
            })
            .collect();
        self.store.publish(&armed, &initial).await?;
        self.store.put_view(&StrategyView::of(&armed)).await?;
        Ok(armed)
    }

    async fn arm_locally(&self, strategy_id: StrategyId) -> Result<ArmedStrategy, StrategyError> {
        let cfg = self
            .repo
            .load_strategy(strategy_id)
            .await?
            .ok_or(StrategyError::NotFound(strategy_id))?;
        let armed = ArmedStrategy::arm(cfg, self.random.as_ref())?;
        self.cache().insert(strategy_id, Arc::new(armed.clone()));
        Ok(armed)
    }

    fn cache(&self) -> std::sync::RwLockWriteGuard<'_, HashMap<StrategyId, Arc<ArmedStrategy>>> {
        // A poisoned lock only means a panic elsewhere while inserting: the map is still valid.
        self.armed.write().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Drops every in-process armed copy (another instance re-armed configuration): the next
    /// draw of each strategy arms it again here from the configuration.
    pub fn forget_armed(&self) {
        self.cache().clear();
    }

    /// The armed strategy: the in-process copy, or — when another instance armed it — a copy
    /// armed here from the same configuration.
    ///
    /// # Errors
    /// [`StrategyError::NotArmed`] when no instance armed it.
    pub async fn armed(&self, strategy_id: StrategyId) -> Result<Arc<ArmedStrategy>, StrategyError> {
        let hit = self
            .armed
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(&strategy_id)
            .cloned();
        if let Some(s) = hit {
            return Ok(s);
        }
        if !self.store.is_armed(strategy_id).await? {
            return Err(StrategyError::NotArmed(strategy_id));
        }
        Ok(Arc::new(self.arm_locally(strategy_id).await?))
    }

    /// Draws once from an armed strategy.
    ///
    /// # Errors
    /// [`StrategyError::NotArmed`], or a stock store failure.
    pub async fn raffle(&self, strategy_id: StrategyId, input: &RaffleInput<'_>) -> Result<RaffleAward, StrategyError> {
        let armed = self.armed(strategy_id).await?;
        Ok(armed.raffle(input, self.random.as_ref(), self.stock.as_ref()).await?)
    }

    /// The strategy's read model; a missing view is rebuilt from the configuration.
    ///
    /// # Errors
    /// [`StrategyError::NotFound`] for an unknown strategy, or a store failure.
    pub async fn view(&self, strategy_id: StrategyId) -> Result<StrategyView, StrategyError> {
        if let Some(v) = self.store.view(strategy_id).await? {
            return Ok(v);
        }
        let cfg = self
            .repo
            .load_strategy(strategy_id)
            .await?
            .ok_or(StrategyError::NotFound(strategy_id))?;
        // Validating the configuration yields lock counts and weight groups for the view; the
        // pools are discarded (arming is `arm`'s job).
        let view = StrategyView::of(&ArmedStrategy::arm(cfg, self.random.as_ref())?);
        self.store.put_view(&view).await?;
        Ok(view)
    }
}
