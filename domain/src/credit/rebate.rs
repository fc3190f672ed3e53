//! The daily sign-in rebate (spec §7.2, `calendar_sign_rebate`): for every open rebate row of
//! behaviour `sign`, a rebate order with `biz_id = {userId}_{rebateType}_{yyyyMMdd}` and its
//! `send_rebate` event, all in one transaction on the user's shard. Signing again the same
//! business day returns that day's orders and writes nothing.

use super::CreditError;
use super::CreditService;
use super::ports::RebateOrder;
use crate::activity::ports::SaveFailure;
use crate::events::{RebateOrderSnapshot, RebateSnapshot, SendRebate};
use crate::ids::UserId;
use crate::outbox::{OutboxMessage, TOPIC_REBATE_RECORDED, TOPIC_SEND_REBATE};

/// Behaviour type of the daily sign-in.
pub const BEHAVIOR_SIGN: &str = "sign";
/// Rebate type paid as a SKU recharge.
pub const REBATE_SKU: &str = "sku";
/// Rebate type paid as credits.
pub const REBATE_INTEGRAL: &str = "integral";

/// The rebate orders of a sign-in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIn {
    /// The business day signed, `yyyyMMdd`.
    pub day: String,
    /// That day's rebate orders (empty when no rebate is configured).
    pub orders: Vec<RebateOrder>,
    /// `false` when the user had signed in that day already: nothing was written.
    pub created: bool,
}

/// `{userId}_{rebateType}_{outBusinessNo}` (the original's; a second open rebate of the same type
/// gets `_2`, a third `_3`, …).
pub fn biz_id(user: &str, rebate_type: &str, out_business_no: &str) -> String {
    format!("{user}_{rebate_type}_{out_business_no}")
}

impl CreditService {
    /// Signs the user in for today's business day (`business.utc_offset_minutes`).
    ///
    /// # Errors
    /// `0002` bad user id, `0001` store failures.
    pub async fn sign_in(&self, user_id: &str) -> Result<SignedIn, CreditError> {
        let user = UserId::parse(user_id)?;
        let now = self.clock.now();
        let day = self.business_day(now);
        let done = self.rebates.find_rebates(user.as_str(), &day).await?;
        if !done.is_empty() {
            return Ok(SignedIn {
                day,
                orders: done,
                created: false,
            });
        }
        let configs = self.rebates.open_rebates(BEHAVIOR_SIGN).await?;
        if configs.is_empty() {
            return Ok(SignedIn {
                day,
                orders: Vec::new(),
                created: false,
            });
        }
        let ts = now.timestamp_millis();
        let mut orders = Vec::with_capacity(configs.len());
        let mut outbox = Vec::with_capacity(configs.len() + 1);
        let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
        for c in configs {
            // A second open row of the same rebate type would repeat the original's `biz_id`
            // (and make every sign-in look done): later rows of a type get a suffix.
            let nth = seen.entry(c.rebate_type.clone()).or_insert(0);
            *nth += 1;
            let biz_id = match *nth {
                1 => biz_id(user.as_str(), &c.rebate_type, &day),
                n => format!("{}_{n}", biz_id(user.as_str(), &c.rebate_type, &day)),
            };
            let message_id = self.ids.next_message_id();
            outbox.push(OutboxMessage::new(
                user.as_str(),
                TOPIC_SEND_REBATE,
                message_id.clone(),
                ts,
                &SendRebate {
                    biz_id: biz_id.clone(),
                    rebate_config: c.rebate_config.clone(),
                    rebate_desc: c.rebate_desc.clone(),
                    rebate_type: c.rebate_type.clone(),
                    user_id: user.as_str().to_owned(),
                },
            ));
            orders.push(RebateOrder {
                user_id: user.as_str().to_owned(),
                order_id: self.ids.next_order_id(),
                behavior_type: c.behavior_type,
                rebate_desc: c.rebate_desc,
                rebate_type: c.rebate_type,
                rebate_config: c.rebate_config,
                out_business_no: day.clone(),
                biz_id,
                message_id: message_id.into_string(),
            });
        }
        outbox.push(OutboxMessage::new(
            user.as_str(),
            TOPIC_REBATE_RECORDED,
            self.ids.next_message_id(),
            ts,
            &RebateSnapshot {
                behavior_type: BEHAVIOR_SIGN.to_owned(),
                orders: orders.iter().map(RebateOrderSnapshot::from).collect(),
                out_business_no: day.clone(),
                user_id: user.as_str().to_owned(),
            },
        ));
        let mut conflicts = 0;
        loop {
            match self.rebates.save_rebates(&orders, &outbox).await {
                Ok(true) => {
                    self.notifier.committed(user.as_str());
                    return Ok(SignedIn {
                        day,
                        orders,
                        created: true,
                    });
                }
                Ok(false) => {
                    // A concurrent sign-in of the same day committed first.
                    let orders = self.rebates.find_rebates(user.as_str(), &day).await?;
                    return Ok(SignedIn {
                        day,
                        orders,
                        created: false,
                    });
                }
                Err(SaveFailure::Conflict(_)) if conflicts + 1 < crate::activity::service::MAX_ATTEMPTS => {
                    conflicts += 1;
                }
                Err(SaveFailure::Conflict(e)) => return Err(CreditError::Conflict(e.to_string())),
                Err(SaveFailure::Port(e)) => return Err(e.into()),
                Err(SaveFailure::Unknown(e)) => {
                    return Err(CreditError::OutcomeUnknown(format!(
                        "the sign-in of {user} may or may not be saved ({e}); sign in again: a day's sign-in is applied once"
                    )));
                }
                Err(e @ SaveFailure::AwardRecorded) => return Err(CreditError::Conflict(e.to_string())),
            }
        }
    }
}

impl From<&RebateOrder> for RebateOrderSnapshot {
    fn from(o: &RebateOrder) -> Self {
        Self {
            biz_id: o.biz_id.clone(),
            order_id: o.order_id.as_str().to_owned(),
            message_id: o.message_id.clone(),
            rebate_config: o.rebate_config.clone(),
            rebate_type: o.rebate_type.clone(),
        }
    }
}

/// What applying one `send_rebate` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RebateApplied {
    /// The SKU was recharged (`created: false` when an earlier delivery had done it).
    Sku {
        /// The user.
        user_id: String,
        /// Whether this delivery made the recharge.
        created: bool,
    },
    /// The credits were traded in (`created: false` when an earlier delivery had done it).
    Credits {
        /// The user.
        user_id: String,
        /// Whether this delivery made the trade.
        created: bool,
        /// The account after the trade, for a new trade.
        balance: Option<crate::award::CreditBalance>,
        /// The credit order.
        order: super::ports::CreditOrder,
    },
}

/// Why a `send_rebate` was not applied.
#[derive(Debug, thiserror::Error)]
pub enum RebateError {
    /// The body is not a `send_rebate` envelope.
    #[error("malformed send_rebate message: {0}")]
    Malformed(String),
    /// The rebate can never apply as it stands (activity closed or ended, unknown SKU, bad
    /// configuration): record it as not applied, with this reason; an operator may replay it.
    #[error("rebate not applied: {0}")]
    NotApplicable(String),
    /// A store failed or the SKU is not armed yet: retry later.
    #[error("{0}")]
    Transient(String),
}

/// Applies `send_rebate` messages: `sku` → the SKU recharge (out business no = `bizId`),
/// `integral` → a forward credit trade of `rebateConfig` credits named `行为返利`. Both are
/// idempotent on `bizId`, so a redelivered message has one effect.
pub struct RebateSettlement {
    activity: std::sync::Arc<crate::activity::ActivityService>,
    credit: std::sync::Arc<CreditService>,
}

impl RebateSettlement {
    /// The use case over the two services.
    pub fn new(
        activity: std::sync::Arc<crate::activity::ActivityService>,
        credit: std::sync::Arc<CreditService>,
    ) -> Self {
        Self { activity, credit }
    }

    /// Applies one message.
    ///
    /// # Errors
    /// [`RebateError`]: malformed, not applicable for good, or transient.
    pub async fn apply(&self, body: &[u8]) -> Result<RebateApplied, RebateError> {
        use crate::activity::ActivityError as A;
        let env = crate::events::decode::<SendRebate>(body).map_err(|e| RebateError::Malformed(e.to_string()))?;
        let r = env.data;
        match r.rebate_type.as_str() {
            REBATE_SKU => {
                let sku: i64 = r.rebate_config.trim().parse().map_err(|_| {
                    RebateError::NotApplicable(format!("rebate config {:?} is not a SKU", r.rebate_config))
                })?;
                let sku = crate::ids::Sku::parse(sku).map_err(|e| RebateError::NotApplicable(e.0))?;
                let done = self
                    .activity
                    .recharge(crate::activity::recharge::RechargeQuota {
                        user_id: r.user_id.clone(),
                        sku,
                        out_business_no: r.biz_id.clone(),
                    })
                    .await
                    .map_err(|e| match e {
                        A::SkuNotArmed(_) | A::Port(_) | A::Conflict(_) | A::Strategy(_) | A::DeadlineExceeded(..) => {
                            RebateError::Transient(e.to_string())
                        }
                        other => RebateError::NotApplicable(other.to_string()),
                    })?;
                Ok(RebateApplied::Sku {
                    user_id: r.user_id,
                    created: done.created,
                })
            }
            REBATE_INTEGRAL => {
                let amount: rust_decimal::Decimal = r.rebate_config.trim().parse().map_err(|_| {
                    RebateError::NotApplicable(format!("rebate config {:?} is not a credit amount", r.rebate_config))
                })?;
                let done = self
                    .credit
                    .trade(super::trade::CreditTrade {
                        user_id: r.user_id.clone(),
                        trade_name: super::ports::TRADE_REBATE.to_owned(),
                        trade_type: super::ports::TradeType::Forward,
                        amount,
                        out_business_no: r.biz_id.clone(),
                    })
                    .await
                    .map_err(|e| match e {
                        CreditError::Port(_) | CreditError::Conflict(_) => RebateError::Transient(e.to_string()),
                        other => RebateError::NotApplicable(other.to_string()),
                    })?;
                Ok(RebateApplied::Credits {
                    user_id: r.user_id,
                    created: done.created,
                    balance: done.balance,
                    order: done.order,
                })
            }
            other => Err(RebateError::NotApplicable(format!("unknown rebate type {other:?}"))),
        }
    }
}
