//! `DeliverAward`: apply a `send_award` event exactly once.

use std::sync::Arc;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::error::{ErrorCode, HasErrorCode};
use crate::events::{SendAward, decode};
use crate::ids::AwardId;
use crate::ports::{PortError, RandomSource};
use crate::strategy::AwardCatalogEntry;

use super::distributor::{AwardDistributors, Grant};

/// What one delivery does, in one transaction on the user's shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Winner.
    pub user_id: String,
    /// Raffle ticket / award record order id.
    pub order_id: String,
    /// The `send_award` message id (inbox key, task row).
    pub message_id: String,
    /// Credits to add, for credit awards.
    pub credit: Option<Decimal>,
}

/// A credit account after a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreditBalance {
    /// Lifetime credits.
    pub total_amount: Decimal,
    /// Spendable credits.
    pub available_amount: Decimal,
    /// Row version (read models apply only newer balances).
    pub version: i64,
}

/// What a delivery transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeliveryOutcome {
    /// `false` when the message had been applied before (nothing changed).
    pub applied: bool,
    /// The credit account after the delivery, when credits were added.
    pub credit: Option<CreditBalance>,
}

/// What [`AwardDeliveryRepository::mark_dead`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadMark {
    /// The task row is now `dead` with the reason; `attempts` are its publish attempts.
    Marked {
        /// Publish attempts of the row.
        attempts: i32,
    },
    /// No task row has this message id (a message published by hand): nothing to mark.
    NoTask,
    /// The relay has not recorded the publish yet (`create` / `fail`): marking now would be
    /// overwritten, so the message is retried shortly.
    NotPublished,
    /// The message was delivered already.
    Delivered,
}

/// Shard-side effects of a delivery.
#[async_trait::async_trait]
pub trait AwardDeliveryRepository: Send + Sync {
    /// In one transaction: insert the inbox row (a duplicate means "already applied": change
    /// nothing), flip the award record `create → completed`, add the credit (insert-or-add on
    /// the user's credit account, version + 1) and stamp the task row delivered.
    ///
    /// # Errors
    /// [`PortError`] on database failure (the transaction is rolled back; retry later).
    async fn deliver(&self, delivery: &Delivery) -> Result<DeliveryOutcome, PortError>;

    /// The catalogue entry of an award (`award_key`, `award_config`).
    ///
    /// # Errors
    /// [`PortError`] on database failure.
    async fn award(&self, award_id: AwardId) -> Result<Option<AwardCatalogEntry>, PortError>;

    /// Whether the message is in `user_id`'s inbox (applied before).
    ///
    /// # Errors
    /// [`PortError`] on database failure.
    async fn applied(&self, user_id: &str, message_id: &str) -> Result<bool, PortError>;

    /// Marks the message's task row on `user_id`'s shard `dead` with `reason` (shown by
    /// `task` / `tasks(state: DEAD)`; `replayTask` publishes it again), unless it was delivered
    /// or its publish is not recorded yet.
    ///
    /// # Errors
    /// [`PortError`] on database failure.
    async fn mark_dead(&self, user_id: &str, message_id: &str, reason: &str) -> Result<DeadMark, PortError>;
}

/// Why a message could not be delivered.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// The message is not a `send_award` envelope: retrying cannot help.
    #[error("malformed send_award message: {0}")]
    Malformed(String),
    /// The award is not in the catalogue: retrying cannot help until configuration changes.
    #[error("award {0} is not in the award catalogue")]
    UnknownAward(AwardId),
    /// No distributor is configured for the award's key: never recorded as delivered until one
    /// is configured and the task replayed.
    #[error("no distributor configured for award key {0}")]
    NoDistributor(String),
    /// The credit range is not `min,max` (`ERR_CONFIG_001`).
    #[error("award config {0:?} is not a range such as 1,100")]
    NotARange(String),
    /// The award's config does not fit its distributor (what was expected is the second field).
    #[error("award config {0:?} is not {1}")]
    InvalidConfig(String, &'static str),
    /// The task row does not show the publish yet: retry shortly.
    #[error("task {0} is not recorded as published yet")]
    NotYetPublished(String),
    /// A store or another system failed: retry.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl DeliverError {
    /// Whether a retry may succeed (store or gateway failures) or the message is poison.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Port(_) | Self::NotYetPublished(_))
    }
}

impl HasErrorCode for DeliverError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) | Self::UnknownAward(_) => ErrorCode::IllegalParameter,
            Self::NoDistributor(_) | Self::InvalidConfig(..) => ErrorCode::InvalidStrategyConfig,
            Self::NotARange(_) => ErrorCode::AwardConfigNotRange,
            Self::Port(_) | Self::NotYetPublished(_) => ErrorCode::Unknown,
        }
    }
}

/// A message that can never be delivered as configured: its task row was marked dead (when
/// there is one) and the message belongs in the dead-letter queue.
#[derive(Debug)]
pub struct DeadAward {
    /// Winner.
    pub user_id: String,
    /// The `send_award` message id.
    pub message_id: String,
    /// Why (the task's `last_error`).
    pub error: DeliverError,
    /// The task row's publish attempts, when a row was marked dead.
    pub task_attempts: Option<i32>,
}

/// What [`DeliverAward::deliver`] did with a message.
#[derive(Debug)]
pub enum Delivered {
    /// Delivered now: the award record is `completed`, credits (if any) paid.
    Applied {
        /// The delivery.
        delivery: Delivery,
        /// The credit account after it, when credits were added.
        credit: Option<CreditBalance>,
    },
    /// Delivered before; nothing changed.
    AlreadyApplied,
    /// Not delivered and never will be as configured; the award record stays `create`.
    Dead(DeadAward),
}

/// A random credit amount in `range` (`min,max`): `min + r × (max − min)`, rounded half-up to
/// three significant digits (spec §7.4 with the §8.4 item 26 formula fix), kept inside the
/// range and to the account's two decimals.
///
/// # Errors
/// [`DeliverError::NotARange`] when `range` is not two non-negative decimals `min ≤ max`.
pub fn credit_amount(range: &str, random: &dyn RandomSource) -> Result<Decimal, DeliverError> {
    let bad = || DeliverError::NotARange(range.to_owned());
    let (min, max) = range.split_once(',').ok_or_else(bad)?;
    let min: Decimal = min.trim().parse().map_err(|_| bad())?;
    let max: Decimal = max.trim().parse().map_err(|_| bad())?;
    if min.is_sign_negative() || max < min {
        return Err(bad());
    }
    if min == max {
        return Ok(min);
    }
    const SCALE: usize = 1_000_000_000;
    let r = Decimal::from(random.below(SCALE).to_u64().unwrap_or(0)) / Decimal::from(SCALE as u64);
    let raw = min + r * (max - min);
    let rounded = raw
        .round_sf_with_strategy(3, RoundingStrategy::MidpointAwayFromZero)
        .unwrap_or(raw);
    Ok(rounded
        .clamp(min, max)
        .round_dp_with_strategy(2, RoundingStrategy::MidpointAwayFromZero))
}

/// Applies `send_award` messages.
pub struct DeliverAward {
    repo: Arc<dyn AwardDeliveryRepository>,
    distributors: AwardDistributors,
}

impl DeliverAward {
    /// A service over its ports: the shard and the distributors by award key.
    pub fn new(repo: Arc<dyn AwardDeliveryRepository>, distributors: AwardDistributors) -> Self {
        Self { repo, distributors }
    }

    /// The distributors in use.
    pub fn distributors(&self) -> &AwardDistributors {
        &self.distributors
    }

    /// Delivers one message through the distributor of its award's key.
    ///
    /// The configuration is the message's `awardConfig` when not blank, else the award's own.
    /// A distributor that calls another system is skipped when the message was applied
    /// before; the call carries the order id as idempotency key, since a failure after it
    /// retries the whole delivery. A message that can never be delivered as configured (no
    /// distributor for the key, an unknown award, a config that does not fit) is answered
    /// [`Delivered::Dead`] after its task row was marked dead with the reason.
    ///
    /// # Errors
    /// [`DeliverError::Malformed`] (poison, no task to mark), or a transient error (see
    /// [`DeliverError::is_transient`]) to retry.
    pub async fn deliver(&self, message: &[u8]) -> Result<Delivered, DeliverError> {
        let env = decode::<SendAward>(message).map_err(|e| DeliverError::Malformed(e.to_string()))?;
        let (user_id, message_id) = (env.data.user_id.clone(), env.id.clone());
        match self.apply(env.id, env.data).await {
            Err(error) if !error.is_transient() => {
                let task_attempts = match self.repo.mark_dead(&user_id, &message_id, &error.to_string()).await? {
                    DeadMark::Marked { attempts } => Some(attempts),
                    DeadMark::NoTask => None,
                    DeadMark::NotPublished => return Err(DeliverError::NotYetPublished(message_id)),
                    DeadMark::Delivered => return Ok(Delivered::AlreadyApplied),
                };
                Ok(Delivered::Dead(DeadAward {
                    user_id,
                    message_id,
                    error,
                    task_attempts,
                }))
            }
            other => other,
        }
    }

    async fn apply(&self, message_id: String, data: SendAward) -> Result<Delivered, DeliverError> {
        let award = self
            .repo
            .award(data.award_id)
            .await?
            .ok_or(DeliverError::UnknownAward(data.award_id))?;
        let distributor = self
            .distributors
            .get(&award.award_key)
            .ok_or_else(|| DeliverError::NoDistributor(award.award_key.clone()))?;
        if distributor.external() && self.repo.applied(&data.user_id, &message_id).await? {
            return Ok(Delivered::AlreadyApplied);
        }
        let config = data
            .award_config
            .filter(|c| !c.trim().is_empty())
            .unwrap_or(award.award_config);
        let grant = Grant {
            user_id: data.user_id,
            order_id: data.order_id,
            message_id,
            award_id: award.award_id,
            award_key: award.award_key,
            config,
        };
        let payout = distributor.distribute(&grant).await?;
        let delivery = Delivery {
            user_id: grant.user_id,
            order_id: grant.order_id,
            message_id: grant.message_id,
            credit: payout.credit(),
        };
        let outcome = self.repo.deliver(&delivery).await?;
        Ok(if outcome.applied {
            Delivered::Applied {
                delivery,
                credit: outcome.credit,
            }
        } else {
            Delivered::AlreadyApplied
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::armory::tests::Seeded;

    #[test]
    fn credit_amounts_stay_in_range_with_three_significant_digits() {
        let rng = Seeded::new(42);
        for _ in 0..10_000 {
            let a = credit_amount("1,100", &rng).unwrap();
            assert!(a >= Decimal::ONE && a <= Decimal::from(100), "{a}");
            let digits = a.normalize().mantissa().abs().to_string().len();
            assert!(digits <= 3, "{a} has more than 3 significant digits");
            let b = credit_amount("0.01,1", &rng).unwrap();
            assert!(b >= Decimal::new(1, 2) && b <= Decimal::ONE, "{b}");
        }
        assert_eq!(credit_amount("5,5", &rng).unwrap(), Decimal::from(5));
    }

    #[test]
    fn malformed_ranges_are_rejected_with_err_config_001() {
        let rng = Seeded::new(1);
        for bad in ["1", "a,b", "10,1", "-1,5", ""] {
            let e = credit_amount(bad, &rng).unwrap_err();
            assert_eq!(e.error_code().code(), "ERR_CONFIG_001", "{bad}");
            assert!(!e.is_transient());
        }
    }
}
