//! The `RechargeQuota` command (spec §5.2, no-payment path).

/// Recharge a user's quota by one purchase of a SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RechargeQuota {
    /// Buyer (validated by the service).
    pub user_id: String,
    /// SKU to buy.
    pub sku: i64,
    /// Caller's idempotency key (at most 64 characters).
    pub out_business_no: String,
}

/// The recharge order, new or replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRecharged {
    /// Order id.
    pub order_id: String,
    /// Idempotency key.
    pub out_business_no: String,
    /// `false` when this was a replay of an earlier request: nothing more was credited.
    pub created: bool,
}

/// Longest accepted `outBusinessNo` (the column is `varchar(64)`).
pub const MAX_OUT_BUSINESS_NO: usize = 64;
