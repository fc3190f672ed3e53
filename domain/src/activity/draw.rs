//! The draw command: a ticket, a raffle, an award record and its `send_award` event.
//!
//! The repository runs the whole draw in one shard transaction and calls back into the domain
//! ([`AwardDecider`]) at the point where the ticket is paid and the user's account row is
//! locked, so the raffle sees exact quota facts and nothing is half-written.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::error::ActivityError;
use super::model::Activity;
use crate::outbox::{AwardStockZero, OutboxMessage, SendAward, TOPIC_AWARD_STOCK_ZERO, TOPIC_SEND_AWARD};
use crate::ports::{AwardStockCounter, IdGenerator, RandomSource};
use crate::strategy::{ArmedStrategy, RaffleAward, RaffleInput, TakenStock};

/// What the repository needs to run one draw.
#[derive(Debug, Clone)]
pub struct DrawCommand {
    /// Drawing user (validated).
    pub user_id: String,
    /// The activity (checked open and running).
    pub activity: Activity,
    /// Now (UTC).
    pub now: DateTime<Utc>,
    /// Business day `yyyy-MM-dd`.
    pub day: String,
    /// Business month `yyyy-MM`.
    pub month: String,
    /// Id for the ticket if a new one is created.
    pub new_order_id: String,
    /// Message id of the `activity_account_changed` snapshot if quota is spent.
    pub account_event_id: String,
}

/// Facts of the paid ticket, known inside the transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartakeFacts {
    /// The ticket's order id.
    pub order_id: String,
    /// Whether an unused ticket was reused (no quota deducted).
    pub reused: bool,
    /// Total quota used in the activity, including this ticket (`rule_weight` score).
    pub total_used: i64,
    /// Today's partakes, including this ticket (`rule_lock`).
    pub day_partake_count: u32,
}

/// The award decided for a ticket and the outbox rows that announce it.
#[derive(Debug, Clone)]
pub struct DecidedAward {
    /// The raffle result.
    pub award: RaffleAward,
    /// Rows for the `task` table (`send_award`, maybe `strategy_award_stock_zero`).
    pub outbox: Vec<OutboxMessage>,
}

/// The committed draw.
#[derive(Debug, Clone)]
pub struct DrawRecorded {
    /// The ticket (= award record order id).
    pub order_id: String,
    /// The award.
    pub award: RaffleAward,
    /// The `send_award` message id.
    pub message_id: String,
}

/// Called by the repository inside the draw transaction.
#[async_trait::async_trait]
pub trait AwardDecider: Send + Sync {
    /// Draws for the paid ticket.
    ///
    /// # Errors
    /// [`ActivityError`] when the raffle fails; the transaction is then rolled back.
    async fn decide(&self, facts: &PartakeFacts) -> Result<DecidedAward, ActivityError>;
}

/// The production decider: the armed strategy of the activity.
pub struct StrategyDecider {
    pub(crate) strategy: Arc<ArmedStrategy>,
    pub(crate) random: Arc<dyn RandomSource>,
    pub(crate) stock: Arc<dyn AwardStockCounter>,
    pub(crate) ids: Arc<dyn IdGenerator>,
    pub(crate) user_id: String,
    pub(crate) now: DateTime<Utc>,
    pub(crate) blacklist_enabled: bool,
    pub(crate) lock_ttl: Option<Duration>,
    /// Stock taken by the last decision: to give back if the transaction does not commit.
    pub(crate) taken: Mutex<Option<TakenStock>>,
}

impl StrategyDecider {
    /// Takes the unit of stock recorded by the last decision, if any (to give it back when
    /// the draw does not commit).
    pub fn take_taken(&self) -> Option<TakenStock> {
        self.taken
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

#[async_trait::async_trait]
impl AwardDecider for StrategyDecider {
    async fn decide(&self, facts: &PartakeFacts) -> Result<DecidedAward, ActivityError> {
        let input = RaffleInput {
            user_id: &self.user_id,
            total_used: facts.total_used,
            day_partake_count: facts.day_partake_count,
            blacklist_enabled: self.blacklist_enabled,
            lock_ttl: self.lock_ttl,
        };
        let award = self
            .strategy
            .raffle(&input, self.random.as_ref(), self.stock.as_ref())
            .await
            .map_err(crate::strategy::StrategyError::from)?;
        *self.taken.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = award.taken;
        let ts = self.now.timestamp_millis();
        let mut outbox = vec![OutboxMessage::new(
            &self.user_id,
            TOPIC_SEND_AWARD,
            self.ids.next_id(),
            ts,
            &SendAward {
                award_config: award.award_config.clone(),
                award_id: award.award_id,
                award_title: award.award_title.clone(),
                order_id: facts.order_id.clone(),
                user_id: self.user_id.clone(),
            },
        )];
        if let Some(t) = award.taken.filter(|t| t.remaining == 0) {
            outbox.push(OutboxMessage::new(
                &self.user_id,
                TOPIC_AWARD_STOCK_ZERO,
                self.ids.next_id(),
                ts,
                &AwardStockZero {
                    award_id: t.award_id,
                    strategy_id: t.strategy_id,
                },
            ));
        }
        Ok(DecidedAward { award, outbox })
    }
}

/// TTL of stock unit locks: until one day after the activity ends (spec §4.6).
pub fn lock_ttl(activity: &Activity, now: DateTime<Utc>) -> Option<Duration> {
    let end = activity.end.and_utc() + chrono::Duration::days(1);
    (end - now).to_std().ok().filter(|d| !d.is_zero())
}
