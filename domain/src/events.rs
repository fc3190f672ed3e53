//! Event payloads: one type per message, shared by producers, the relay, the consumers and
//! the benchmarks, so no payload is declared twice.
//!
//! Every message travels in the original's envelope `{"data": …, "id": "<message id>",
//! "timestamp": <epoch ms>}`. Struct fields are declared in alphabetical order and absent
//! values are omitted, as fastjson wrote them, so consumers written for the Java system read
//! ours unchanged (and ours read theirs).

use serde::{Deserialize, Serialize};

use crate::ids::{ActivityId, AwardId, Sku, StrategyId};

/// The envelope of every message. `I` is `&str` when writing and `String` when reading.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope<T, I = String> {
    /// The payload.
    pub data: T,
    /// The message id (the `task.message_id` of its outbox row).
    pub id: I,
    /// When the event happened, epoch milliseconds.
    pub timestamp: i64,
}

/// Why a message body could not be read.
#[derive(Debug, thiserror::Error)]
#[error("malformed message: {0}")]
pub struct MalformedMessage(#[from] serde_json::Error);

/// Reads an envelope and its payload from a message body.
///
/// # Errors
/// [`MalformedMessage`] when the body is not JSON of this envelope and payload.
pub fn decode<'a, T: Deserialize<'a>>(body: &'a [u8]) -> Result<Envelope<T>, MalformedMessage> {
    Ok(serde_json::from_slice(body)?)
}

/// `send_award`: an award was recorded for a user and is to be delivered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SendAward {
    /// Distribution override (`1,100`), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub award_config: Option<String>,
    /// Award id.
    pub award_id: AwardId,
    /// Award title.
    #[serde(default)]
    pub award_title: String,
    /// Raffle ticket id.
    pub order_id: String,
    /// Winner.
    pub user_id: String,
}

/// `strategy_award_stock_zero`: the last unit of an award's stock was taken.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AwardStockZero {
    /// Award id.
    pub award_id: AwardId,
    /// Strategy id.
    pub strategy_id: StrategyId,
}

/// `activity_sku_stock_zero`: the last unit of a SKU was sold. The original's payload is the
/// bare SKU number.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct SkuStockZero(pub Sku);

/// A period row (`raffle_activity_account_day` / `_month`) in an account snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PeriodSnapshot {
    /// `yyyy-MM-dd` or `yyyy-MM`.
    pub period: String,
    /// Allowance of the period.
    pub count: i32,
    /// Left in the period.
    pub surplus: i32,
}

/// `activity_account_changed` (projection only): the whole account after a change, with its
/// version, so a view applies only newer snapshots.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AccountSnapshot {
    /// Activity.
    pub activity_id: ActivityId,
    /// Today's row, if it exists.
    pub day: Option<PeriodSnapshot>,
    /// Per-day allowance (`raffle_activity_account.day_count`).
    pub day_count: i32,
    /// This month's row, if it exists.
    pub month: Option<PeriodSnapshot>,
    /// Per-month allowance.
    pub month_count: i32,
    /// Total granted.
    pub total_count: i32,
    /// Total left.
    pub total_count_surplus: i32,
    /// Owner.
    pub user_id: String,
    /// Row version: a view applies only newer snapshots.
    pub version: i64,
}

/// `send_rebate`: a behaviour rebate (sign-in) was recorded and is to be applied.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SendRebate {
    /// `{userId}_{rebateType}_{outBusinessNo}`: the rebate's idempotency key downstream.
    pub biz_id: String,
    /// A SKU (`sku`) or a credit amount (`integral`).
    pub rebate_config: String,
    /// Description.
    pub rebate_desc: String,
    /// `sku` or `integral`.
    pub rebate_type: String,
    /// The user.
    pub user_id: String,
}

/// `credit_adjust_success`: a credit trade committed. `amount` is signed (negative for a
/// debit) and written as a decimal string, so no precision is lost.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CreditAdjustSuccess {
    /// Signed amount.
    pub amount: rust_decimal::Decimal,
    /// Credit order id.
    pub order_id: String,
    /// The trade's idempotency key.
    pub out_business_no: String,
    /// The user.
    pub user_id: String,
}

/// One credit order, as the credit-order view lists it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CreditOrderSnapshot {
    /// Signed amount.
    pub amount: rust_decimal::Decimal,
    /// Credit order id.
    pub order_id: String,
    /// When it was made (epoch ms, whole seconds).
    pub order_time_ms: i64,
    /// The trade's idempotency key.
    pub out_business_no: String,
    /// Trade name (`行为返利`, `兑换抽奖`).
    pub trade_name: String,
    /// `forward` or `reverse`.
    pub trade_type: String,
}

/// `credit_account_changed` (projection only): a user's credit account after a trade, with
/// the order that moved it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CreditSnapshot {
    /// Spendable credits.
    pub available_amount: rust_decimal::Decimal,
    /// The order of the trade.
    pub order: CreditOrderSnapshot,
    /// Lifetime credits.
    pub total_amount: rust_decimal::Decimal,
    /// The user.
    pub user_id: String,
    /// Row version: the balance view applies only newer snapshots.
    pub version: i64,
}

/// One rebate order of a sign-in.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RebateOrderSnapshot {
    /// `{userId}_{rebateType}_{outBusinessNo}`.
    pub biz_id: String,
    /// Rebate order id.
    pub order_id: String,
    /// The `send_rebate` message id that applies it.
    pub message_id: String,
    /// A SKU or a credit amount.
    pub rebate_config: String,
    /// `sku` or `integral`.
    pub rebate_type: String,
}

/// `behavior_rebate_recorded` (projection only): the rebate orders of one behaviour
/// (a day's sign-in) of a user.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RebateSnapshot {
    /// `sign`.
    pub behavior_type: String,
    /// The orders.
    pub orders: Vec<RebateOrderSnapshot>,
    /// The business day `yyyyMMdd` (sign-in).
    pub out_business_no: String,
    /// The user.
    pub user_id: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_send_award_message_of_the_original_reads_back_into_its_payload() {
        let body = br#"{"data":{"awardId":101,"awardTitle":"OpenAI","orderId":"313091076458","userId":"xiaofuge"},"id":"23913710462","timestamp":1712374909975}"#;
        let env: Envelope<SendAward> = decode(body).unwrap();
        assert_eq!(env.id, "23913710462");
        assert_eq!(env.data.award_id, AwardId::new(101));
        assert_eq!(env.data.award_config, None);
    }

    #[test]
    fn a_sku_stock_zero_payload_is_the_bare_sku() {
        let env: Envelope<SkuStockZero> = decode(br#"{"data":9011,"id":"1","timestamp":5}"#).unwrap();
        assert_eq!(env.data, SkuStockZero(Sku::new(9011)));
        assert!(decode::<SkuStockZero>(b"{").is_err());
    }
}
