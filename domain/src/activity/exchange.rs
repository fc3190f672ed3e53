//! The `ExchangeSku` command (`credit_pay_exchange_sku`, spec §7.3 / latest §2): a SKU paid
//! with credits. Activity open and in date, SKU stock taken in Redis, then **one transaction**
//! on the user's shard: the reverse credit order and the debit (never below zero), the activity
//! order as paid (`completed`, `pay_amount`), the quota credited to account / day / month, and
//! the events (`credit_adjust_success`, the credit and account snapshots). The original does
//! this in three steps and can deliver an unpaid SKU; here a SKU is credited exactly when it
//! is paid. Idempotent on `(user, outBusinessNo)`.

use rust_decimal::Decimal;

use super::error::ActivityError;
use super::ports::{RechargeOrder, RechargeSaved};
use super::service::ActivityService;
use crate::credit::ports::{CreditOrder, TRADE_CONVERT_SKU, TradeType};
use crate::credit::trade::{apply_trade, check_out_business_no, whole_seconds};
use crate::ids::{OrderId, Sku, UserId};
use crate::outbox::OutboxMessage;

/// Exchange credits for one SKU package of draw quota.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExchangeSku {
    /// The buyer.
    pub user_id: String,
    /// The SKU.
    pub sku: Sku,
    /// The caller's idempotency key (per user, byte for byte).
    pub out_business_no: String,
}

/// A paid exchange, new or replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkuExchanged {
    /// The activity order id.
    pub order_id: OrderId,
    /// Credits paid.
    pub pay_amount: Decimal,
    /// The idempotency key.
    pub out_business_no: String,
    /// `false` for a replay: nothing more was charged or credited.
    pub created: bool,
    /// The events this request's save wrote (empty for a replay).
    pub events: Vec<OutboxMessage>,
}

impl ActivityService {
    /// Pays `product_amount` credits for one SKU package of quota, in one transaction.
    ///
    /// # Errors
    /// `0002` bad arguments / unknown SKU, `ERR_BIZ_003/004` activity closed or out of date,
    /// `ERR_BIZ_005` sold out, `ERR_CREDIT_001` not enough credits (nothing written, stock
    /// given back), `0003` the `outBusinessNo` was used for another order.
    pub async fn exchange(&self, cmd: ExchangeSku) -> Result<SkuExchanged, ActivityError> {
        let user = UserId::parse(&cmd.user_id)?;
        let obn = cmd.out_business_no.as_str();
        check_out_business_no(obn)?;
        if let Some(done) = self.exchanged(&user, cmd.sku, obn).await? {
            return Ok(done);
        }
        let now = self.clock.now();
        let (cfg, sku) = self.sku_on_sale(cmd.sku, now).await?;
        let price = sku.product_amount.round_dp(2);
        if price <= Decimal::ZERO {
            return Err(ActivityError::InvalidArgument(format!(
                "SKU {} has no price in credits (product_amount {})",
                sku.sku, sku.product_amount
            )));
        }
        // Fail fast on a balance that cannot pay, before taking stock (the save decides again).
        let credit = self.credit.load_credit(user.as_str()).await?;
        apply_trade(user.as_str(), credit, TradeType::Reverse, price)?;
        let remaining = self.take_sku_unit(&cfg, sku.sku, now).await?;
        let order = RechargeOrder::new(&user, &cfg, &sku, self.ids.next_order_id(), now, price, obn);
        let payment = CreditOrder {
            user_id: user.as_str().to_owned(),
            order_id: self.ids.next_order_id(),
            trade_name: TRADE_CONVERT_SKU.to_owned(),
            trade_type: TradeType::Reverse,
            amount: -price,
            out_business_no: obn.to_owned(),
            order_time: whole_seconds(now),
        };
        match self
            .save_recharge(&user, &order, remaining == 0, now, Some(&payment))
            .await
        {
            Ok((RechargeSaved::Saved, events)) => {
                self.quotas.forget(user.as_str(), order.activity_id);
                self.notifier.committed(user.as_str());
                Ok(SkuExchanged {
                    order_id: order.order_id,
                    pay_amount: price,
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
                        .exchanged(&user, cmd.sku, obn)
                        .await?
                        .ok_or_else(|| ActivityError::Duplicate(format!("outBusinessNo {obn} was already used"))),
                    Err(e) => Err(e),
                }
            }
        }
    }

    async fn exchanged(&self, user: &UserId, sku: Sku, obn: &str) -> Result<Option<SkuExchanged>, ActivityError> {
        let Some(found) = self.quota.find_recharge(user.as_str(), obn).await? else {
            return Ok(None);
        };
        if found.user_id != user.as_str() || found.sku != sku || found.pay_amount <= Decimal::ZERO {
            return Err(ActivityError::Duplicate(format!(
                "outBusinessNo {obn} was already used for another order (SKU {})",
                found.sku
            )));
        }
        Ok(Some(SkuExchanged {
            order_id: found.order_id,
            pay_amount: found.pay_amount,
            out_business_no: found.out_business_no,
            created: false,
            events: Vec::new(),
        }))
    }
}
