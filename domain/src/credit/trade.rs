//! The `CreditTrade` command (spec §7.3 with the §8.4 fixes): a forward or reverse change of a
//! user's credits with its order and `credit_adjust_success` event, in one transaction.
//! Idempotent on `(user, outBusinessNo)`; a debit never takes the balance below zero.

use rust_decimal::Decimal;

use super::ports::{CreditChange, CreditOrder, CreditSaved, TradeType};
use super::{CreditError, CreditService};
use crate::activity::ports::SaveFailure;
use crate::award::CreditBalance;
use crate::events::{CreditAdjustSuccess, CreditOrderSnapshot, CreditSnapshot};
use crate::ids::UserId;
use crate::outbox::{OutboxMessage, TOPIC_CREDIT_ADJUST_SUCCESS, TOPIC_CREDIT_CHANGED};
use crate::ports::IdGenerator;

/// Largest amount a `decimal(10,2)` credit column holds.
pub const MAX_CREDITS: Decimal = Decimal::from_parts(999_999_999, 0, 0, false, 2);

/// Longest `outBusinessNo` of a credit trade (the column's width).
pub const MAX_OUT_BUSINESS_NO: usize = 192;

/// A credit trade to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditTrade {
    /// The user (validated by the service).
    pub user_id: String,
    /// `行为返利`, `兑换抽奖`, …
    pub trade_name: String,
    /// Direction.
    pub trade_type: TradeType,
    /// Credits moved: positive, at most two decimals.
    pub amount: Decimal,
    /// Idempotency key, unique per user.
    pub out_business_no: String,
}

/// The trade's order, new or replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditTraded {
    /// The credit order.
    pub order: CreditOrder,
    /// `false` when this replayed an earlier trade: nothing more moved.
    pub created: bool,
    /// The account after this trade (for a new trade).
    pub balance: Option<CreditBalance>,
}

/// Checks a trade amount: positive, two decimals at most, within the column.
///
/// # Errors
/// [`CreditError::InvalidArgument`].
pub fn check_amount(amount: Decimal) -> Result<Decimal, CreditError> {
    if amount <= Decimal::ZERO || amount.normalize().scale() > 2 || amount > MAX_CREDITS {
        return Err(CreditError::InvalidArgument(format!(
            "a credit amount must be positive, with at most two decimals, up to {MAX_CREDITS}; got {amount}"
        )));
    }
    let mut amount = amount;
    amount.rescale(2);
    Ok(amount)
}

/// Checks an idempotency key: 1..=192 characters, no surrounding whitespace.
///
/// # Errors
/// [`CreditError::InvalidArgument`].
pub fn check_out_business_no(obn: &str) -> Result<(), CreditError> {
    if obn.is_empty() || obn.trim() != obn || obn.chars().count() > MAX_OUT_BUSINESS_NO {
        return Err(CreditError::InvalidArgument(format!(
            "outBusinessNo must be 1..{MAX_OUT_BUSINESS_NO} characters without surrounding whitespace"
        )));
    }
    Ok(())
}

/// The pure rule: the account after moving `amount` (positive) in direction `trade_type`.
/// Forward trades add to total and available; reverse trades take from available only, and
/// never below zero.
///
/// # Errors
/// [`CreditError::Insufficient`] for a debit larger than the available credits;
/// [`CreditError::InvalidArgument`] when the account would overflow its columns.
pub fn apply_trade(
    user: &str,
    before: Option<CreditBalance>,
    trade_type: TradeType,
    amount: Decimal,
) -> Result<CreditBalance, CreditError> {
    let b = before.unwrap_or(CreditBalance {
        total_amount: Decimal::ZERO,
        available_amount: Decimal::ZERO,
        version: 0,
    });
    let after = match trade_type {
        TradeType::Forward => CreditBalance {
            total_amount: b.total_amount + amount,
            available_amount: b.available_amount + amount,
            version: b.version + 1,
        },
        TradeType::Reverse if b.available_amount < amount => {
            return Err(CreditError::Insufficient {
                user: user.to_owned(),
                available: b.available_amount,
                needed: amount,
            });
        }
        TradeType::Reverse => CreditBalance {
            total_amount: b.total_amount,
            available_amount: b.available_amount - amount,
            version: b.version + 1,
        },
    };
    let mut after = after;
    // Two decimals, as the columns store them (and the views show them).
    after.total_amount.rescale(2);
    after.available_amount.rescale(2);
    if after.total_amount > MAX_CREDITS || after.available_amount > MAX_CREDITS {
        return Err(CreditError::InvalidArgument(format!(
            "the credit account of {user} would exceed {MAX_CREDITS}"
        )));
    }
    Ok(after)
}

/// The events of a committed credit change: `credit_adjust_success` (published, for
/// consumers of the original's topic) and the projection-only account snapshot with the order.
pub fn credit_events(
    ids: &dyn IdGenerator,
    order: &CreditOrder,
    after: &CreditBalance,
    timestamp_ms: i64,
) -> [OutboxMessage; 2] {
    let user = order.user_id.as_str();
    [
        OutboxMessage::new(
            user,
            TOPIC_CREDIT_ADJUST_SUCCESS,
            ids.next_message_id(),
            timestamp_ms,
            &CreditAdjustSuccess {
                amount: order.amount,
                order_id: order.order_id.as_str().to_owned(),
                out_business_no: order.out_business_no.clone(),
                user_id: user.to_owned(),
            },
        ),
        OutboxMessage::new(
            user,
            TOPIC_CREDIT_CHANGED,
            ids.next_message_id(),
            timestamp_ms,
            &CreditSnapshot {
                available_amount: after.available_amount,
                order: CreditOrderSnapshot {
                    amount: order.amount,
                    order_id: order.order_id.as_str().to_owned(),
                    order_time_ms: order.order_time.and_utc().timestamp_millis(),
                    out_business_no: order.out_business_no.clone(),
                    trade_name: order.trade_name.clone(),
                    trade_type: order.trade_type.code().to_owned(),
                },
                total_amount: after.total_amount,
                user_id: user.to_owned(),
                version: after.version,
            },
        ),
    ]
}

/// The whole-second UTC time of `now` (the datetime columns keep whole seconds).
pub(crate) fn whole_seconds(now: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
    chrono::DateTime::from_timestamp(now.timestamp(), 0)
        .unwrap_or(now)
        .naive_utc()
}

impl CreditService {
    /// Makes a credit trade. Idempotent on `(user, outBusinessNo)`: a replay of the same trade
    /// returns the first order with `created: false` and moves nothing.
    ///
    /// # Errors
    /// `0002` bad arguments, `ERR_CREDIT_001` not enough credits (nothing written), `0003` the
    /// `outBusinessNo` was used for a different trade, `0001` store failures.
    pub async fn trade(&self, cmd: CreditTrade) -> Result<CreditTraded, CreditError> {
        let user = UserId::parse(&cmd.user_id)?;
        let amount = check_amount(cmd.amount)?;
        check_out_business_no(&cmd.out_business_no)?;
        let signed = match cmd.trade_type {
            TradeType::Forward => amount,
            TradeType::Reverse => -amount,
        };
        if let Some(done) = self
            .replayed(&user, &cmd.out_business_no, &cmd.trade_name, signed)
            .await?
        {
            return Ok(done);
        }
        let now = self.clock.now();
        let order = CreditOrder {
            user_id: user.as_str().to_owned(),
            order_id: self.ids.next_order_id(),
            trade_name: cmd.trade_name.clone(),
            trade_type: cmd.trade_type,
            amount: signed,
            out_business_no: cmd.out_business_no.clone(),
            order_time: whole_seconds(now),
        };
        let (mut moved, mut conflicts) = (0u32, 0u32);
        loop {
            let before = self.credit.load_credit(user.as_str()).await?;
            let after = apply_trade(user.as_str(), before, cmd.trade_type, amount)?;
            let outbox = credit_events(self.ids.as_ref(), &order, &after, now.timestamp_millis());
            let change = CreditChange {
                order: &order,
                expected_version: before.map(|b| b.version),
                after,
            };
            match self.credit.save_trade(&change, &outbox).await {
                Ok(CreditSaved::Saved) => {
                    self.notifier.committed(user.as_str());
                    return Ok(CreditTraded {
                        order,
                        created: true,
                        balance: Some(after),
                    });
                }
                Ok(CreditSaved::Moved) if moved < crate::activity::service::MAX_MOVED_RETRIES => moved += 1,
                Ok(CreditSaved::Moved) => {
                    return Err(CreditError::Conflict(format!(
                        "the credit account of {user} moved under {moved} trades in a row"
                    )));
                }
                Ok(CreditSaved::OutBusinessNoUsed) => {
                    // A concurrent twin committed first: answer as its replay.
                    return self
                        .replayed(&user, &cmd.out_business_no, &cmd.trade_name, signed)
                        .await?
                        .ok_or_else(|| {
                            CreditError::Duplicate(format!("outBusinessNo {} was already used", cmd.out_business_no))
                        });
                }
                Err(SaveFailure::Conflict(_)) if conflicts + 1 < crate::activity::service::MAX_ATTEMPTS => {
                    conflicts += 1;
                }
                Err(SaveFailure::Conflict(e)) => return Err(CreditError::Conflict(e.to_string())),
                Err(SaveFailure::Port(e)) => return Err(e.into()),
                Err(SaveFailure::Unknown(e)) => {
                    return Err(CreditError::OutcomeUnknown(format!(
                        "the credit trade {} may or may not be saved ({e}); retry with the same outBusinessNo: it is applied at most once",
                        cmd.out_business_no
                    )));
                }
                Err(e @ SaveFailure::AwardRecorded) => return Err(CreditError::Conflict(e.to_string())),
            }
        }
    }

    async fn replayed(
        &self,
        user: &UserId,
        obn: &str,
        trade_name: &str,
        signed: Decimal,
    ) -> Result<Option<CreditTraded>, CreditError> {
        let Some(found) = self.credit.find_credit_order(user.as_str(), obn).await? else {
            return Ok(None);
        };
        if found.user_id != user.as_str() || found.amount != signed || found.trade_name != trade_name {
            return Err(CreditError::Duplicate(format!(
                "outBusinessNo {obn} was already used for another credit trade ({} {})",
                found.trade_name, found.amount
            )));
        }
        Ok(Some(CreditTraded {
            order: found,
            created: false,
            balance: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bal(total: i64, avail: i64, version: i64) -> CreditBalance {
        CreditBalance {
            total_amount: Decimal::from(total),
            available_amount: Decimal::from(avail),
            version,
        }
    }

    #[test]
    fn forward_adds_to_total_and_available_reverse_only_to_available() {
        let a = apply_trade("u", None, TradeType::Forward, Decimal::from(10)).unwrap();
        assert_eq!(a, bal(10, 10, 1));
        let b = apply_trade("u", Some(a), TradeType::Reverse, Decimal::from(4)).unwrap();
        assert_eq!(b, bal(10, 6, 2));
    }

    #[test]
    fn a_debit_never_takes_the_balance_below_zero() {
        let e = apply_trade("u", Some(bal(10, 3, 5)), TradeType::Reverse, Decimal::from(4)).unwrap_err();
        assert!(matches!(e, CreditError::Insufficient { .. }), "{e}");
        assert_eq!(crate::error::HasErrorCode::error_code(&e).code(), "ERR_CREDIT_001");
        let e = apply_trade("u", None, TradeType::Reverse, Decimal::new(1, 2)).unwrap_err();
        assert!(matches!(e, CreditError::Insufficient { .. }));
        // Exactly the balance is allowed.
        assert_eq!(
            apply_trade("u", Some(bal(10, 3, 5)), TradeType::Reverse, Decimal::from(3)).unwrap(),
            bal(10, 0, 6)
        );
    }

    #[test]
    fn amounts_must_be_positive_with_two_decimals_within_the_column() {
        for bad in [
            Decimal::ZERO,
            Decimal::from(-1),
            Decimal::new(1, 3),
            MAX_CREDITS + Decimal::ONE,
        ] {
            assert!(check_amount(bad).is_err(), "{bad}");
        }
        assert_eq!(check_amount(Decimal::new(1050, 2)).unwrap(), Decimal::new(1050, 2));
        assert!(apply_trade("u", Some(bal(999_999_999, 1, 1)), TradeType::Forward, Decimal::ONE).is_err());
        for bad in ["", " x", "x ", &"x".repeat(193)] {
            assert!(check_out_business_no(bad).is_err(), "{bad:?}");
        }
        assert!(check_out_business_no(&"x".repeat(192)).is_ok());
    }
}
