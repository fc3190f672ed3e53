//! Activity configuration and the business calendar.

use chrono::{DateTime, FixedOffset, NaiveDateTime, Offset, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{ActivityId, Sku, StrategyId};

/// `raffle_activity.state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ActivityState {
    /// Created, not yet usable.
    Create,
    /// Usable.
    Open,
    /// Closed.
    Close,
}

impl ActivityState {
    /// Parses the stored value; anything unknown is treated as not usable (`create`).
    pub fn parse(s: &str) -> Self {
        match s {
            "open" => Self::Open,
            "close" => Self::Close,
            _ => Self::Create,
        }
    }
}

/// A raffle activity (`raffle_activity`). Dates are UTC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Activity {
    /// `activity_id`.
    pub activity_id: ActivityId,
    /// `activity_name`.
    pub activity_name: String,
    /// `activity_desc`.
    pub activity_desc: String,
    /// `begin_date_time`.
    pub begin: NaiveDateTime,
    /// `end_date_time`.
    pub end: NaiveDateTime,
    /// `strategy_id` (1:1).
    pub strategy_id: StrategyId,
    /// `state`.
    pub state: ActivityState,
}

/// A quota package (`raffle_activity_count`): what one SKU purchase grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityCount {
    /// `activity_count_id`.
    pub activity_count_id: i64,
    /// Total draws granted.
    pub total_count: i32,
    /// Draws per day granted.
    pub day_count: i32,
    /// Draws per month granted.
    pub month_count: i32,
}

/// A purchasable SKU (`raffle_activity_sku`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivitySku {
    /// `sku`.
    pub sku: Sku,
    /// `activity_id`.
    pub activity_id: ActivityId,
    /// The package granted.
    pub count: ActivityCount,
    /// `stock_count`.
    pub stock_count: i32,
    /// `stock_count_surplus` (durable; lags the Redis counter).
    pub stock_count_surplus: i32,
    /// `product_amount` (price in credits).
    pub product_amount: Decimal,
}

/// An activity with its SKUs: everything arming and commands need.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActivityConfig {
    /// The activity.
    pub activity: Activity,
    /// Its SKUs.
    pub skus: Vec<ActivitySku>,
}

/// Days and months are business-local: `yyyy-MM-dd` / `yyyy-MM` at a fixed UTC offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BusinessCalendar {
    offset: FixedOffset,
}

impl Default for BusinessCalendar {
    /// UTC days.
    fn default() -> Self {
        Self { offset: Utc.fix() }
    }
}

impl BusinessCalendar {
    /// A calendar at `offset_minutes` east of UTC (e.g. 480 for +08:00).
    pub fn new(offset_minutes: i32) -> Option<Self> {
        FixedOffset::east_opt(offset_minutes.checked_mul(60)?).map(|offset| Self { offset })
    }

    /// `yyyy-MM-dd` of `now`.
    pub fn day(&self, now: DateTime<Utc>) -> String {
        now.with_timezone(&self.offset).format("%Y-%m-%d").to_string()
    }

    /// `yyyy-MM` of `now`.
    pub fn month(&self, now: DateTime<Utc>) -> String {
        now.with_timezone(&self.offset).format("%Y-%m").to_string()
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    #[test]
    fn days_and_months_follow_the_business_offset() {
        let t = Utc.with_ymd_and_hms(2024, 4, 30, 17, 10, 31).unwrap();
        assert_eq!(BusinessCalendar::default().day(t), "2024-04-30");
        let cst = BusinessCalendar::new(480).unwrap();
        assert_eq!(cst.day(t), "2024-05-01");
        assert_eq!(cst.month(t), "2024-05");
        assert!(BusinessCalendar::new(24 * 60).is_none());
    }
}
