//! Ports: what the domain needs from the outside world, as traits.
//!
//! Adapters live in `persistence` (Redis, MySQL) and in tests (seeded randomness).

use std::time::Duration;

use crate::ids::{AwardId, StrategyId};

/// Uniform randomness. Production uses an OS-seeded generator; tests use a seeded one.
pub trait RandomSource: Send + Sync {
    /// A uniformly distributed integer in `0..bound`. `bound` is at least 1.
    fn below(&self, bound: usize) -> usize;
}

/// Opaque failure of an adapter (connection lost, timeout, corrupt data, ...), with what was
/// being done and the driver's error as its cause. Maps to `0001`.
#[derive(Debug, thiserror::Error)]
#[error("{context}: {source}")]
pub struct PortError {
    context: String,
    #[source]
    source: Box<dyn std::error::Error + Send + Sync>,
    unavailable: bool,
}

impl PortError {
    /// A failure of `context` (e.g. `mysql`, `redis`, `strategy 100006 view`) caused by `source`.
    pub fn new(context: impl Into<String>, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            context: context.into(),
            source: source.into(),
            unavailable: false,
        }
    }

    /// The dependency `context` (`mysql`, `redis`, …) did not answer within its deadline or
    /// could not be reached. Such an error's message names the dependency and the deadline,
    /// and may reach the client (still code `0001`).
    pub fn unavailable(
        context: impl Into<String>,
        source: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        Self {
            unavailable: true,
            ..Self::new(context, source)
        }
    }

    /// Whether a dependency was unavailable (see [`PortError::unavailable`]).
    pub fn is_unavailable(&self) -> bool {
        self.unavailable
    }
}

/// The result of taking one unit of award stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StockTake {
    /// One unit was taken; `remaining` units are left (0 means this was the last one).
    Taken {
        /// Units left after this one.
        remaining: i64,
    },
    /// No unit was available (or the unit's lock was already held).
    Exhausted,
    /// The counter does not exist: never armed, or lost with the store.
    Missing,
}

/// Award stock counters (Redis in production): one atomic decrement per draw.
#[async_trait::async_trait]
pub trait AwardStockCounter: Send + Sync {
    /// Atomically takes one unit of `award_id`'s stock in `strategy_id`, guarding the unit with
    /// a lock key that lives for `lock_ttl` (forever when `None`).
    ///
    /// # Errors
    /// [`PortError`] when the store cannot be reached; the unit is then not taken.
    async fn take(
        &self,
        strategy_id: StrategyId,
        award_id: AwardId,
        lock_ttl: Option<Duration>,
    ) -> Result<StockTake, PortError>;

    /// Gives back a unit taken by [`AwardStockCounter::take`] whose draw was not recorded.
    ///
    /// # Errors
    /// [`PortError`] when the store cannot be reached.
    async fn give_back(&self, strategy_id: StrategyId, award_id: AwardId) -> Result<(), PortError>;

    /// Adds `units` to the counter if it exists, making the new units sellable even where
    /// earlier sales left unit locks; the count after, or `None` when there is no counter.
    ///
    /// # Errors
    /// [`PortError`] when the store cannot be reached.
    async fn add(&self, strategy_id: StrategyId, award_id: AwardId, units: i64) -> Result<Option<i64>, PortError>;
}

/// Loads strategy configuration from the config database.
#[async_trait::async_trait]
pub trait StrategyRepository: Send + Sync {
    /// The full configuration of a strategy, `None` when no `strategy` row exists.
    ///
    /// # Errors
    /// [`PortError`] when the database cannot be read.
    async fn load_strategy(
        &self,
        strategy_id: StrategyId,
    ) -> Result<Option<crate::strategy::StrategyConfig>, PortError>;
}

/// Where armed strategies are published for other instances, tools and the read side.
#[async_trait::async_trait]
pub trait ArmoryStore: Send + Sync {
    /// Writes the rate tables of `strategy` and sets each award's stock counter to
    /// `initial_stock[award]` **only if the counter does not exist yet** (a live counter is
    /// authoritative).
    ///
    /// # Errors
    /// [`PortError`] when the store cannot be written.
    async fn publish(
        &self,
        strategy: &crate::strategy::ArmedStrategy,
        initial_stock: &std::collections::HashMap<AwardId, i64>,
    ) -> Result<(), PortError>;

    /// Whether some instance armed `strategy_id` (its default rate table exists).
    ///
    /// # Errors
    /// [`PortError`] when the store cannot be read.
    async fn is_armed(&self, strategy_id: StrategyId) -> Result<bool, PortError>;

    /// The strategy's read model, `None` when it was never written.
    ///
    /// # Errors
    /// [`PortError`] when the store cannot be read.
    async fn view(&self, strategy_id: StrategyId) -> Result<Option<crate::strategy::StrategyView>, PortError>;

    /// Writes the strategy's read model (used to rebuild a missing view).
    ///
    /// # Errors
    /// [`PortError`] when the store cannot be written.
    async fn put_view(&self, view: &crate::strategy::StrategyView) -> Result<(), PortError>;
}

/// Unique ids for orders and messages. Ids never collide across processes (no random digits).
pub trait IdGenerator: Send + Sync {
    /// A new order / ticket id (decimal digits).
    fn next_id(&self) -> String;

    /// A new order / ticket id.
    fn next_order_id(&self) -> crate::ids::OrderId {
        crate::ids::OrderId::new(self.next_id())
    }

    /// A new outbox message id.
    fn next_message_id(&self) -> crate::ids::MessageId {
        crate::ids::MessageId::new(self.next_id())
    }
}

/// Wall-clock time (UTC).
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> chrono::DateTime<chrono::Utc>;
}

/// How many units of each award durable records show as already won (for re-arming stock
/// after a Redis loss).
#[async_trait::async_trait]
pub trait AwardLedger: Send + Sync {
    /// `award_id → records` over every shard for `strategy_id`.
    ///
    /// # Errors
    /// [`PortError`] when a shard cannot be read.
    async fn awarded_units(
        &self,
        strategy_id: StrategyId,
    ) -> Result<std::collections::HashMap<AwardId, i64>, PortError>;
}

/// Told after a transaction with outbox rows commits, so the relay publishes them at once.
pub trait OutboxNotifier: Send + Sync {
    /// Rows for `user_id`'s shard were committed.
    fn committed(&self, user_id: &str);
}
