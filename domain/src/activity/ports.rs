//! Ports of the activity context.

use std::time::Duration;

use rust_decimal::Decimal;

use chrono::{DateTime, Utc};

use super::account::{Partake, QuotaAccount};
use super::model::{Activity, ActivityConfig, ActivityCount};
use crate::ids::{ActivityId, OrderId, Sku, StrategyId};
use crate::outbox::OutboxMessage;
use crate::ports::{PortError, StockTake};
use crate::strategy::RaffleAward;

/// Reads activity configuration from the config database.
#[async_trait::async_trait]
pub trait ActivityRepository: Send + Sync {
    /// The activity with its SKUs and packages; `None` when no such activity exists.
    ///
    /// # Errors
    /// [`PortError`] when the database cannot be read.
    async fn load_activity(&self, activity_id: ActivityId) -> Result<Option<ActivityConfig>, PortError>;

    /// The activity a SKU belongs to; `None` for an unknown SKU.
    ///
    /// # Errors
    /// [`PortError`] when the database cannot be read.
    async fn activity_of_sku(&self, sku: Sku) -> Result<Option<ActivityId>, PortError>;
}

/// SKU stock counters (Redis in production).
#[async_trait::async_trait]
pub trait SkuStockCounter: Send + Sync {
    /// Takes one unit; [`StockTake::Missing`] when the counter was never armed.
    ///
    /// # Errors
    /// [`PortError`] when the store cannot be reached.
    async fn take(&self, sku: Sku, lock_ttl: Option<Duration>) -> Result<StockTake, PortError>;

    /// Returns a unit whose order was not saved.
    ///
    /// # Errors
    /// [`PortError`] when the store cannot be reached.
    async fn give_back(&self, sku: Sku) -> Result<(), PortError>;

    /// Sets the counter to `units` unless it exists; returns whether it was set.
    ///
    /// # Errors
    /// [`PortError`] when the store cannot be reached.
    async fn arm(&self, sku: Sku, units: i64) -> Result<bool, PortError>;

    /// Adds `units` to the counter if it exists (see [`crate::ports::AwardStockCounter::add`]);
    /// the count after, or `None` when there is no counter.
    ///
    /// # Errors
    /// [`PortError`] when the store cannot be reached.
    async fn add(&self, sku: Sku, units: i64) -> Result<Option<i64>, PortError>;
}

/// A quota recharge order to save (`raffle_activity_order`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RechargeOrder {
    /// Buyer.
    pub user_id: String,
    /// SKU bought.
    pub sku: Sku,
    /// Its activity.
    pub activity_id: ActivityId,
    /// Activity name (denormalised, as the original).
    pub activity_name: String,
    /// Activity strategy.
    pub strategy_id: StrategyId,
    /// New order id.
    pub order_id: OrderId,
    /// Order time (UTC).
    pub order_time: chrono::NaiveDateTime,
    /// Package granted.
    pub count: ActivityCount,
    /// Credits paid (0 for the no-pay path).
    pub pay_amount: Decimal,
    /// `completed` for the no-pay path.
    pub state: &'static str,
    /// Idempotency key.
    pub out_business_no: String,
}

/// An order found by its `out_business_no`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExistingRecharge {
    /// Buyer.
    pub user_id: String,
    /// SKU.
    pub sku: Sku,
    /// Order id.
    pub order_id: OrderId,
    /// Idempotency key.
    pub out_business_no: String,
    /// Credits paid (0 for the no-pay path).
    pub pay_amount: Decimal,
}

/// User quota on the shards: recharge and draw transactions.
#[async_trait::async_trait]
pub trait QuotaRepository: Send + Sync {
    /// The order with this `out_business_no` in the user's split table, if any.
    ///
    /// # Errors
    /// [`PortError`] when the shard cannot be read.
    async fn find_recharge(&self, user_id: &str, out_business_no: &str) -> Result<Option<ExistingRecharge>, PortError>;

    /// Saves a decided recharge in one transaction on the user's shard: the order, the
    /// account as credited (inserted when [`RechargeSave::expected_version`] is 0, else updated
    /// only if still at that version), the current day / month rows it credits, and the
    /// outbox rows. Nothing is written unless everything is.
    ///
    /// # Errors
    /// [`SaveFailure`] for a lost deadlock or a store failure.
    async fn save_recharge(&self, save: &RechargeSave<'_>) -> Result<RechargeSaved, SaveFailure>;

    /// The user's quota in an activity with the `day` / `month` rows and the oldest unused
    /// ticket, in one plain read (no lock); `None` when the user has no account.
    ///
    /// # Errors
    /// [`PortError`] when the shard cannot be read.
    async fn load_quota(
        &self,
        user_id: &str,
        activity_id: ActivityId,
        day: &str,
        month: &str,
    ) -> Result<Option<QuotaAccount>, PortError>;

    /// Saves a decided draw in one transaction on the user's shard: the ticket (reused or new,
    /// born used) with the quota it spent, the award record and the outbox rows. The save
    /// checks, under the account row's lock, that the account is still at
    /// [`Partake::expected_version`] and a reused ticket still unused; otherwise it writes
    /// nothing and answers [`DrawSaved::Moved`].
    ///
    /// # Errors
    /// [`SaveFailure`]: the award record exists already, a lost deadlock, or a store failure;
    /// nothing is written.
    async fn save_draw(&self, save: &DrawSave<'_>) -> Result<DrawSaved, SaveFailure>;

    /// Units of `sku` sold according to durable orders on every shard.
    ///
    /// # Errors
    /// [`PortError`] when a shard cannot be read.
    async fn sku_units_sold(&self, sku: Sku) -> Result<i64, PortError>;
}

/// A decided draw, to be saved as one transaction.
#[derive(Debug, Clone, Copy)]
pub struct DrawSave<'a> {
    /// The drawing user (validated).
    pub user_id: &'a str,
    /// The activity (its name and strategy are denormalised into the ticket).
    pub activity: &'a Activity,
    /// How the ticket is paid, and the account version the decision was made on.
    pub partake: &'a Partake,
    /// The award won.
    pub award: &'a RaffleAward,
    /// When the draw happened (ticket and award time).
    pub at: DateTime<Utc>,
    /// Events to write with the rows.
    pub outbox: &'a [OutboxMessage],
}

/// What a draw save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrawSaved {
    /// Committed.
    Saved,
    /// The account (or the reused ticket) changed since it was read: nothing was written;
    /// decide again on a fresh read.
    Moved,
}

/// Why a save wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum SaveFailure {
    /// An award record for this ticket exists already (`ERR_BIZ_009`).
    #[error("an award record for this ticket exists already")]
    AwardRecorded,
    /// The transaction lost a deadlock or a lock wait and was rolled back; retrying may work.
    #[error("transaction conflict")]
    Conflict(#[source] PortError),
    /// The store failed.
    #[error(transparent)]
    Port(#[from] PortError),
    /// The save was sent but its answer never came (past the store's response deadline, or the
    /// connection broke meanwhile): it may or may not be applied. Nothing taken for it is given
    /// back, so an outcome that turns out applied never oversells.
    #[error("outcome unknown: {0}")]
    Unknown(#[source] PortError),
}

/// A decided recharge, to be saved as one transaction.
#[derive(Debug, Clone, Copy)]
pub struct RechargeSave<'a> {
    /// The order.
    pub order: &'a RechargeOrder,
    /// The account version the credit was decided on; 0 when the user had no account.
    pub expected_version: i64,
    /// The account after the credit (its day / month rows are the current ones that exist).
    pub after: &'a QuotaAccount,
    /// For a credit-paid order: the debit (credit order and credit account), saved in the
    /// same transaction; its version guard failing means [`RechargeSaved::Moved`].
    pub payment: Option<crate::credit::ports::CreditChange<'a>>,
    /// Events to write with the rows.
    pub outbox: &'a [OutboxMessage],
}

/// What a recharge save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RechargeSaved {
    /// Committed.
    Saved,
    /// The account changed since it was read: nothing was written; decide again.
    Moved,
    /// An order with this `out_business_no` exists already: nothing was written.
    OutBusinessNoUsed,
}
