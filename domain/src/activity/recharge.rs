//! The `RechargeQuota` command (spec §5.2, no-payment path): SKU stock in Redis → one
//! transaction with the order, the account credit and its events. Idempotent on
//! `(user, outBusinessNo)`.

use super::account::QuotaAccount;
use super::draw::lock_ttl;
use super::error::ActivityError;
use super::ports::{RechargeOrder, RechargeSave, RechargeSaved, SaveFailure};
use super::service::{ActivityService, MAX_ATTEMPTS, MAX_MOVED_RETRIES};
use crate::events::SkuStockZero;
use crate::ids::{OrderId, Sku, UserId};
use crate::outbox::{OutboxMessage, TOPIC_ACCOUNT_CHANGED, TOPIC_SKU_STOCK_ZERO};
use crate::ports::StockTake;

/// Recharge a user's quota by one purchase of a SKU.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RechargeQuota {
    /// Buyer (validated by the service).
    pub user_id: String,
    /// SKU to buy.
    pub sku: Sku,
    /// Caller's idempotency key (at most 64 characters).
    pub out_business_no: String,
}

/// The recharge order, new or replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaRecharged {
    /// Order id.
    pub order_id: OrderId,
    /// Idempotency key.
    pub out_business_no: String,
    /// `false` when this was a replay of an earlier request: nothing more was credited.
    pub created: bool,
    /// The events this request's save wrote (the account snapshot, and
    /// `activity_sku_stock_zero` when it bought the last unit); empty for a replay.
    pub events: Vec<OutboxMessage>,
}

/// Longest accepted `outBusinessNo` (the column is `varchar(64)`).
pub const MAX_OUT_BUSINESS_NO: usize = 64;

impl ActivityService {
    /// Recharges quota by one SKU purchase (no payment). Idempotent on
    /// `(user, outBusinessNo)`: a replay returns the first order and credits nothing.
    ///
    /// # Errors
    /// `0002` bad arguments / unknown SKU, `ERR_BIZ_003/004/005`, `0003` when the
    /// `outBusinessNo` was used for another SKU (or user in the same table).
    pub async fn recharge(&self, cmd: RechargeQuota) -> Result<QuotaRecharged, ActivityError> {
        let user = UserId::parse(&cmd.user_id)?;
        let obn = cmd.out_business_no.trim();
        if obn.is_empty() || obn.len() != cmd.out_business_no.len() || obn.chars().count() > MAX_OUT_BUSINESS_NO {
            return Err(ActivityError::InvalidArgument(format!(
                "outBusinessNo must be 1..{MAX_OUT_BUSINESS_NO} characters without surrounding whitespace"
            )));
        }
        if let Some(done) = self.replayed(&user, cmd.sku, obn).await? {
            return Ok(done);
        }
        let activity_id = self
            .activities
            .activity_of_sku(cmd.sku)
            .await?
            .ok_or_else(|| ActivityError::InvalidArgument(format!("SKU {} does not exist", cmd.sku)))?;
        let cfg = self.config(activity_id).await?;
        let sku = cfg
            .skus
            .iter()
            .find(|s| s.sku == cmd.sku)
            .ok_or_else(|| ActivityError::InvalidArgument(format!("SKU {} does not exist", cmd.sku)))?;
        let now = self.clock.now();
        self.check_running(&cfg.activity, now)?;
        let remaining = match self.sku_stock.take(sku.sku, lock_ttl(&cfg.activity, now)).await? {
            StockTake::Taken { remaining } => remaining,
            StockTake::Exhausted => return Err(ActivityError::SkuStockEmpty(sku.sku)),
            StockTake::Missing => return Err(ActivityError::SkuNotArmed(sku.sku)),
        };
        let order = RechargeOrder {
            user_id: user.as_str().to_owned(),
            sku: sku.sku,
            activity_id,
            activity_name: cfg.activity.activity_name.clone(),
            strategy_id: cfg.activity.strategy_id,
            order_id: self.ids.next_order_id(),
            order_time: now.naive_utc(),
            count: sku.count,
            pay_amount: rust_decimal::Decimal::ZERO,
            state: "completed",
            out_business_no: obn.to_owned(),
        };
        match self.save_recharge(&user, &order, remaining == 0, now).await {
            Ok((RechargeSaved::Saved, events)) => {
                self.quotas.forget(user.as_str(), activity_id);
                self.notifier.committed(user.as_str());
                Ok(QuotaRecharged {
                    order_id: order.order_id,
                    out_business_no: order.out_business_no,
                    created: true,
                    events,
                })
            }
            other => {
                self.give_back_sku(sku.sku).await;
                match other {
                    // A concurrent twin committed first: answer as its replay.
                    Ok(_) => self
                        .replayed(&user, cmd.sku, obn)
                        .await?
                        .ok_or_else(|| ActivityError::Duplicate(format!("outBusinessNo {obn} was already used"))),
                    Err(e) => Err(e),
                }
            }
        }
    }

    /// Load → credit (pure) → save, again on a fresh read while the account moves under it.
    async fn save_recharge(
        &self,
        user: &UserId,
        order: &RechargeOrder,
        sold_out: bool,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(RechargeSaved, Vec<OutboxMessage>), ActivityError> {
        let (day, month) = (self.calendar.day(now), self.calendar.month(now));
        let (mut moved, mut conflicts) = (0, 0);
        loop {
            let before = self
                .quota
                .load_quota(user.as_str(), order.activity_id, &day, &month)
                .await?
                .unwrap_or_else(|| QuotaAccount::empty(user.as_str(), order.activity_id));
            let after = before.credit(&order.count, &day, &month);
            let ts = now.timestamp_millis();
            let mut outbox = Vec::with_capacity(2);
            if sold_out {
                outbox.push(OutboxMessage::new(
                    user.as_str(),
                    TOPIC_SKU_STOCK_ZERO,
                    self.ids.next_message_id(),
                    ts,
                    &SkuStockZero(order.sku),
                ));
            }
            outbox.push(OutboxMessage::new(
                user.as_str(),
                TOPIC_ACCOUNT_CHANGED,
                self.ids.next_message_id(),
                ts,
                &after.snapshot(),
            ));
            let save = RechargeSave {
                order,
                expected_version: before.version,
                after: &after,
                outbox: &outbox,
            };
            match self.quota.save_recharge(&save).await {
                Ok(RechargeSaved::Moved) if moved < MAX_MOVED_RETRIES => moved += 1,
                Ok(RechargeSaved::Moved) => {
                    return Err(ActivityError::Conflict(format!(
                        "the quota of {user} moved under {moved} recharges in a row"
                    )));
                }
                Err(SaveFailure::Conflict(_)) if conflicts + 1 < MAX_ATTEMPTS => conflicts += 1,
                Err(SaveFailure::Conflict(e)) => return Err(ActivityError::Conflict(e.to_string())),
                Err(SaveFailure::Port(e)) => return Err(e.into()),
                Err(e @ SaveFailure::AwardRecorded) => return Err(ActivityError::Conflict(e.to_string())),
                Ok(done) => return Ok((done, outbox)),
            }
        }
    }

    async fn replayed(&self, user: &UserId, sku: Sku, obn: &str) -> Result<Option<QuotaRecharged>, ActivityError> {
        let Some(found) = self.quota.find_recharge(user.as_str(), obn).await? else {
            return Ok(None);
        };
        if found.user_id != user.as_str() || found.sku != sku {
            return Err(ActivityError::Duplicate(format!(
                "outBusinessNo {obn} was already used for another order (SKU {})",
                found.sku
            )));
        }
        Ok(Some(QuotaRecharged {
            order_id: found.order_id,
            out_business_no: found.out_business_no,
            created: false,
            events: Vec::new(),
        }))
    }

    async fn give_back_sku(&self, sku: Sku) {
        if let Err(e) = self.sku_stock.give_back(sku).await {
            tracing::error!(sku = sku.get(), error = %e, "could not give back SKU stock: the unit stays unsold until the counter is re-derived (delete it, then armActivity)");
        }
    }
}
