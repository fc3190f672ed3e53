//! Ports of the credit context: the credit account with its orders, and behaviour rebates.

use rust_decimal::Decimal;

use crate::activity::ports::SaveFailure;
use crate::award::CreditBalance;
use crate::ids::OrderId;
use crate::outbox::OutboxMessage;
use crate::ports::PortError;

/// Direction of a credit trade (`user_credit_order.trade_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TradeType {
    /// Credits in (`forward`): rebates.
    Forward,
    /// Credits out (`reverse`): paying for a SKU.
    Reverse,
}

impl TradeType {
    /// The stored value.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Forward => "forward",
            Self::Reverse => "reverse",
        }
    }

    /// Reads a stored value (`reverse`, anything else is `forward`).
    pub fn parse(s: &str) -> Self {
        if s == "reverse" { Self::Reverse } else { Self::Forward }
    }
}

/// Trade name of rebate credits (`行为返利`).
pub const TRADE_REBATE: &str = "行为返利";
/// Trade name of a credit-paid SKU (`兑换抽奖`).
pub const TRADE_CONVERT_SKU: &str = "兑换抽奖";

/// A credit order (`user_credit_order_XXX`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditOrder {
    /// The user.
    pub user_id: String,
    /// Order id.
    pub order_id: OrderId,
    /// `行为返利`, `兑换抽奖`.
    pub trade_name: String,
    /// Direction.
    pub trade_type: TradeType,
    /// Signed amount (negative for [`TradeType::Reverse`]).
    pub amount: Decimal,
    /// Idempotency key, unique per user.
    pub out_business_no: String,
    /// When (UTC, whole seconds are stored).
    pub order_time: chrono::NaiveDateTime,
}

/// A decided credit change: the order, and the account as it will be.
#[derive(Debug, Clone, Copy)]
pub struct CreditChange<'a> {
    /// The order to insert.
    pub order: &'a CreditOrder,
    /// The account version the decision was made on; `None` when the user had no account
    /// (the save then inserts it).
    pub expected_version: Option<i64>,
    /// The account after the change.
    pub after: CreditBalance,
}

/// What a credit save did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CreditSaved {
    /// Committed.
    Saved,
    /// The account changed since it was read: nothing was written; decide again.
    Moved,
    /// An order with this `out_business_no` exists already: nothing was written.
    OutBusinessNoUsed,
}

/// The user's credit account and orders on the shards.
#[async_trait::async_trait]
pub trait CreditRepository: Send + Sync {
    /// The user's credit account in one plain read; `None` when the user has none.
    ///
    /// # Errors
    /// [`PortError`] when the shard cannot be read.
    async fn load_credit(&self, user_id: &str) -> Result<Option<CreditBalance>, PortError>;

    /// The credit order with this `out_business_no` in the user's split table, if any.
    ///
    /// # Errors
    /// [`PortError`] when the shard cannot be read.
    async fn find_credit_order(&self, user_id: &str, out_business_no: &str) -> Result<Option<CreditOrder>, PortError>;

    /// Saves a decided trade in one transaction on the user's shard: the order, the account
    /// (inserted when the expected version is 0, else updated only if still at it and never
    /// below zero) and the outbox rows.
    ///
    /// # Errors
    /// [`SaveFailure`] for a lost deadlock or a store failure.
    async fn save_trade(&self, change: &CreditChange<'_>, outbox: &[OutboxMessage])
    -> Result<CreditSaved, SaveFailure>;
}

/// A rebate configuration row (`daily_behavior_rebate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebateConfig {
    /// `sign`, `openai_pay`.
    pub behavior_type: String,
    /// Description.
    pub rebate_desc: String,
    /// `sku` or `integral`.
    pub rebate_type: String,
    /// A SKU or a credit amount.
    pub rebate_config: String,
}

/// A behaviour rebate order (`user_behavior_rebate_order_XXX`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RebateOrder {
    /// The user.
    pub user_id: String,
    /// Order id.
    pub order_id: OrderId,
    /// `sign`.
    pub behavior_type: String,
    /// Description.
    pub rebate_desc: String,
    /// `sku` or `integral`.
    pub rebate_type: String,
    /// A SKU or a credit amount.
    pub rebate_config: String,
    /// The behaviour's key (the business day `yyyyMMdd` for a sign-in).
    pub out_business_no: String,
    /// `{userId}_{rebateType}_{outBusinessNo}`, unique.
    pub biz_id: String,
    /// The `send_rebate` message id (empty for orders read back from the table: the message
    /// is then found by the order's task).
    pub message_id: String,
}

/// Rebate configuration and orders.
#[async_trait::async_trait]
pub trait RebateRepository: Send + Sync {
    /// The open rebate rows of a behaviour, by id.
    ///
    /// # Errors
    /// [`PortError`] when the config database cannot be read.
    async fn open_rebates(&self, behavior_type: &str) -> Result<Vec<RebateConfig>, PortError>;

    /// The user's rebate orders of one behaviour key (a sign-in day), by id.
    ///
    /// # Errors
    /// [`PortError`] when the shard cannot be read.
    async fn find_rebates(&self, user_id: &str, out_business_no: &str) -> Result<Vec<RebateOrder>, PortError>;

    /// Saves the orders and their outbox rows in one transaction on the user's shard;
    /// `false` (nothing written) when one of the `biz_id`s exists already.
    ///
    /// # Errors
    /// [`SaveFailure`] for a lost deadlock or a store failure.
    async fn save_rebates(&self, orders: &[RebateOrder], outbox: &[OutboxMessage]) -> Result<bool, SaveFailure>;
}
