//! Outbox messages: the original's envelope and topics (spec §6.2, §7.8).
//!
//! `{"data": …, "id": "<message id>", "timestamp": <epoch ms>}` with keys in alphabetical
//! order and absent values omitted, as fastjson wrote them, so consumers written for the Java
//! system read ours unchanged.

use serde::Serialize;

use crate::ids::MessageId;

pub use crate::events::{
    AccountSnapshot, AwardStockZero, CreditAdjustSuccess, CreditSnapshot, PeriodSnapshot, RebateSnapshot, SendAward,
    SendRebate, SkuStockZero,
};

/// Topic of award delivery (`send_award`).
pub const TOPIC_SEND_AWARD: &str = "send_award";
/// Topic of SKU sell-out (`activity_sku_stock_zero`).
pub const TOPIC_SKU_STOCK_ZERO: &str = "activity_sku_stock_zero";
/// Topic of award sell-out (`strategy_award_stock_zero`).
pub const TOPIC_AWARD_STOCK_ZERO: &str = "strategy_award_stock_zero";

/// Topic of rebate settlement (`send_rebate`).
pub const TOPIC_SEND_REBATE: &str = "send_rebate";
/// Topic of credit trades (`credit_adjust_success`).
pub const TOPIC_CREDIT_ADJUST_SUCCESS: &str = "credit_adjust_success";

/// Projection-only topic: the new state of a user's activity account (never sent to the broker;
/// the relay applies it to the read model).
pub const TOPIC_ACCOUNT_CHANGED: &str = "activity_account_changed";

/// Projection-only topic: a user's credit account after a trade, with its order.
pub const TOPIC_CREDIT_CHANGED: &str = "credit_account_changed";

/// Projection-only topic: the rebate orders of a user's behaviour (a day's sign-in).
pub const TOPIC_REBATE_RECORDED: &str = "behavior_rebate_recorded";

/// Topics that only feed projections: the relay applies them instead of publishing them.
pub const INTERNAL_TOPICS: [&str; 3] = [TOPIC_ACCOUNT_CHANGED, TOPIC_CREDIT_CHANGED, TOPIC_REBATE_RECORDED];

/// Every topic the system publishes; the relay declares a durable queue for each.
pub const TOPICS: [&str; 5] = [
    TOPIC_SEND_AWARD,
    TOPIC_SEND_REBATE,
    TOPIC_CREDIT_ADJUST_SUCCESS,
    TOPIC_SKU_STOCK_ZERO,
    TOPIC_AWARD_STOCK_ZERO,
];

/// The life of an outbox row, as clients see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Committed, not yet confirmed by the broker (`state = 'create'`).
    Created,
    /// Confirmed by the broker (`completed`).
    Published,
    /// A publish attempt failed; will be retried after a backoff (`fail`).
    Failed,
    /// Exhausted its attempts; waits for an operator's replay (`dead`).
    Dead,
    /// Published and its consumer's effect committed (`delivered_at` set).
    Delivered,
}

impl TaskState {
    /// Derives the state from the stored `state` column and `delivered_at`.
    pub fn from_row(state: &str, delivered: bool) -> Self {
        match state {
            _ if delivered => Self::Delivered,
            "completed" | "complete" => Self::Published,
            "fail" => Self::Failed,
            "dead" => Self::Dead,
            _ => Self::Created,
        }
    }

    /// The stored `state` value selecting rows in this state (`Delivered` rows are `completed`).
    pub fn column_value(self) -> &'static str {
        match self {
            Self::Created => "create",
            Self::Published | Self::Delivered => "completed",
            Self::Failed => "fail",
            Self::Dead => "dead",
        }
    }
}

/// One row of the `task` table to insert in the same transaction as the state change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxMessage {
    /// Routing user (the shard the row lives in).
    pub user_id: String,
    /// Topic (= queue name).
    pub topic: &'static str,
    /// Unique message id (= envelope `id`).
    pub message_id: MessageId,
    /// The envelope JSON.
    pub message: String,
}

impl OutboxMessage {
    /// Wraps `data` in the envelope.
    pub fn new<T: Serialize>(
        user_id: &str,
        topic: &'static str,
        message_id: MessageId,
        timestamp_ms: i64,
        data: &T,
    ) -> Self {
        let message = serde_json::to_string(&crate::events::Envelope {
            data,
            id: message_id.as_str(),
            timestamp: timestamp_ms,
        })
        // Serializing plain structs of strings and numbers cannot fail.
        .unwrap_or_default();
        Self {
            user_id: user_id.to_owned(),
            topic,
            message_id,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelope_matches_the_original_byte_for_byte() {
        let data = SendAward {
            award_config: None,
            award_id: crate::ids::AwardId::new(101),
            award_title: "OpenAI 增加使用次数".into(),
            order_id: "313091076458".into(),
            user_id: "xiaofuge".into(),
        };
        let m = OutboxMessage::new(
            "xiaofuge",
            TOPIC_SEND_AWARD,
            "23913710462".into(),
            1_712_374_909_975,
            &data,
        );
        assert_eq!(
            m.message,
            r#"{"data":{"awardId":101,"awardTitle":"OpenAI 增加使用次数","orderId":"313091076458","userId":"xiaofuge"},"id":"23913710462","timestamp":1712374909975}"#
        );
        let zero = OutboxMessage::new(
            "u",
            TOPIC_SKU_STOCK_ZERO,
            "1".into(),
            5,
            &SkuStockZero(crate::ids::Sku::new(9011)),
        );
        assert_eq!(zero.message, r#"{"data":9011,"id":"1","timestamp":5}"#);
    }
}
