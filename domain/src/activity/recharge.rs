//! The `RechargeQuota` command (spec §5.2, no-payment path): SKU stock in Redis → one
//! transaction with the order, the account credit and its events. Idempotent on
//! `(user, outBusinessNo)`.

use std::sync::Arc;

use rust_decimal::Decimal;

use super::account::QuotaAccount;
use super::draw::lock_ttl;
use super::error::ActivityError;
use super::model::{ActivityConfig, ActivitySku};
use super::ports::{RechargeOrder, RechargeSave, RechargeSaved, SaveFailure};
use super::service::{ActivityService, MAX_ATTEMPTS, MAX_MOVED_RETRIES};
use crate::credit::ports::{CreditChange, CreditOrder, TradeType};
use crate::credit::trade::{apply_trade, check_out_business_no, credit_events};
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

impl RechargeOrder {
    /// The `completed` order of one unit of `sku` (of `cfg`'s activity) paid `pay_amount`.
    pub(super) fn new(
        user: &UserId,
        cfg: &ActivityConfig,
        sku: &ActivitySku,
        order_id: OrderId,
        now: chrono::DateTime<chrono::Utc>,
        pay_amount: Decimal,
        out_business_no: &str,
    ) -> Self {
        Self {
            user_id: user.as_str().to_owned(),
            sku: sku.sku,
            activity_id: cfg.activity.activity_id,
            activity_name: cfg.activity.activity_name.clone(),
            strategy_id: cfg.activity.strategy_id,
            order_id,
            order_time: now.naive_utc(),
            count: sku.count,
            pay_amount,
            state: "completed",
            out_business_no: out_business_no.to_owned(),
        }
    }
}

impl ActivityService {
    /// A SKU on sale at `now`: its activity's configuration and the SKU.
    ///
    /// # Errors
    /// `0002` unknown SKU, `ERR_BIZ_003` / `ERR_BIZ_004` activity closed or out of date.
    pub(super) async fn sku_on_sale(
        &self,
        sku: Sku,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<(Arc<ActivityConfig>, ActivitySku), ActivityError> {
        let unknown = || ActivityError::InvalidArgument(format!("SKU {sku} does not exist"));
        let activity_id = self.activities.activity_of_sku(sku).await?.ok_or_else(unknown)?;
        let cfg = self.config(activity_id).await?;
        let found = cfg.skus.iter().find(|s| s.sku == sku).cloned().ok_or_else(unknown)?;
        self.check_running(&cfg.activity, now)?;
        Ok((cfg, found))
    }

    /// Takes one unit of `sku` in Redis; the units left after it.
    ///
    /// # Errors
    /// `ERR_BIZ_005` sold out or never armed, store failures.
    pub(super) async fn take_sku_unit(
        &self,
        cfg: &ActivityConfig,
        sku: Sku,
        now: chrono::DateTime<chrono::Utc>,
    ) -> Result<i64, ActivityError> {
        match self.sku_stock.take(sku, lock_ttl(&cfg.activity, now)).await? {
            StockTake::Taken { remaining } => Ok(remaining),
            StockTake::Exhausted => Err(ActivityError::SkuStockEmpty(sku)),
            StockTake::Missing => Err(ActivityError::SkuNotArmed(sku)),
        }
    }

    /// Recharges quota by one SKU purchase (no payment). Idempotent on
    /// `(user, outBusinessNo)`: a replay returns the first order and credits nothing.
    ///
    /// # Errors
    /// `0002` bad arguments / unknown SKU, `ERR_BIZ_003/004/005`, `0003` when the
    /// `outBusinessNo` was used for another SKU (or user in the same table).
    pub async fn recharge(&self, cmd: RechargeQuota) -> Result<QuotaRecharged, ActivityError> {
        let user = UserId::parse(&cmd.user_id)?;
        let obn = cmd.out_business_no.as_str();
        check_out_business_no(obn)?;
        if let Some(done) = self.replayed(&user, cmd.sku, obn).await? {
            return Ok(done);
        }
        let now = self.clock.now();
        let (cfg, sku) = self.sku_on_sale(cmd.sku, now).await?;
        let remaining = self.take_sku_unit(&cfg, sku.sku, now).await?;
        let order = RechargeOrder::new(&user, &cfg, &sku, self.ids.next_order_id(), now, Decimal::ZERO, obn);
        match self.save_recharge(&user, &order, remaining == 0, now, None).await {
            Ok((RechargeSaved::Saved, events)) => {
                self.quotas.forget(user.as_str(), order.activity_id);
                self.notifier.committed(user.as_str());
                Ok(QuotaRecharged {
                    order_id: order.order_id,
                    out_business_no: order.out_business_no,
                    created: true,
                    events,
                })
            }
            other => {
                // A save of unknown outcome may still commit: its unit stays taken.
                if !matches!(other, Err(ActivityError::OutcomeUnknown(_))) {
                    self.give_back_sku(sku.sku).await;
                }
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
    pub(super) async fn save_recharge(
        &self,
        user: &UserId,
        order: &RechargeOrder,
        sold_out: bool,
        now: chrono::DateTime<chrono::Utc>,
        payment: Option<&CreditOrder>,
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
            let mut outbox = Vec::with_capacity(5);
            // A credit-paid order debits the credits in the same transaction, decided on a
            // fresh read of the credit account (never below zero).
            let debit = match payment {
                None => None,
                Some(p) => {
                    let before = self.credit.load_credit(user.as_str()).await?;
                    let after = apply_trade(user.as_str(), before, TradeType::Reverse, -p.amount)
                        .map_err(ActivityError::from)?;
                    outbox.extend(credit_events(self.ids.as_ref(), p, &after, ts));
                    Some(CreditChange {
                        order: p,
                        expected_version: before.map(|b| b.version),
                        after,
                    })
                }
            };
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
                payment: debit,
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
                Err(SaveFailure::Unknown(e)) => {
                    return Err(ActivityError::OutcomeUnknown(format!(
                        "the order {} may or may not be saved ({e}); retry with the same outBusinessNo: it is applied at most once",
                        order.out_business_no
                    )));
                }
                Err(e @ SaveFailure::AwardRecorded) => return Err(ActivityError::Conflict(e.to_string())),
                Ok(done) => return Ok((done, outbox)),
            }
        }
    }

    pub(super) async fn replayed(
        &self,
        user: &UserId,
        sku: Sku,
        obn: &str,
    ) -> Result<Option<QuotaRecharged>, ActivityError> {
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

    pub(super) async fn give_back_sku(&self, sku: Sku) {
        if let Err(e) = self.sku_stock.give_back(sku).await {
            tracing::error!(sku = sku.get(), error = %e, "could not give back SKU stock: the unit stays unsold until the counter is re-derived (delete it, then armActivity)");
        }
    }
}
