//! `DeliverAward`: apply a `send_award` event exactly once.

use std::sync::Arc;

use rust_decimal::prelude::ToPrimitive;
use rust_decimal::{Decimal, RoundingStrategy};

use crate::error::{ErrorCode, HasErrorCode};
use crate::events::{SendAward, decode};
use crate::ids::AwardId;
use crate::ports::{PortError, RandomSource};
use crate::strategy::AwardCatalogEntry;

/// Award key of random credits.
pub const USER_CREDIT_RANDOM: &str = "user_credit_random";

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
    /// The credit range is not `min,max` (`ERR_CONFIG_001`).
    #[error("award config {0:?} is not a range such as 1,100")]
    NotARange(String),
    /// A store failed: retry.
    #[error(transparent)]
    Port(#[from] PortError),
}

impl DeliverError {
    /// Whether a retry may succeed (store failures) or the message is poison.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Port(_))
    }
}

impl HasErrorCode for DeliverError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::Malformed(_) | Self::UnknownAward(_) => ErrorCode::IllegalParameter,
            Self::NotARange(_) => ErrorCode::AwardConfigNotRange,
            Self::Port(_) => ErrorCode::Unknown,
        }
    }
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
    random: Arc<dyn RandomSource>,
}

impl DeliverAward {
    /// A service over its ports.
    pub fn new(repo: Arc<dyn AwardDeliveryRepository>, random: Arc<dyn RandomSource>) -> Self {
        Self { repo, random }
    }

    /// Delivers one message. Returns what was applied (with the new credit balance), or `None`
    /// when it had been delivered already.
    ///
    /// Credit awards (`user_credit_random`) add a random amount in the message's `awardConfig`
    /// range (or the award's own config); other award keys have no distributor yet and are
    /// recorded as delivered.
    ///
    /// # Errors
    /// [`DeliverError`]; see [`DeliverError::is_transient`] for what to retry.
    pub async fn deliver(&self, message: &[u8]) -> Result<Option<(Delivery, Option<CreditBalance>)>, DeliverError> {
        let env = decode::<SendAward>(message).map_err(|e| DeliverError::Malformed(e.to_string()))?;
        let award = self
            .repo
            .award(env.data.award_id)
            .await?
            .ok_or(DeliverError::UnknownAward(env.data.award_id))?;
        let credit = if award.award_key == USER_CREDIT_RANDOM {
            let range = env
                .data
                .award_config
                .as_deref()
                .filter(|c| !c.trim().is_empty())
                .unwrap_or(&award.award_config);
            Some(credit_amount(range, self.random.as_ref())?)
        } else {
            None
        };
        let delivery = Delivery {
            user_id: env.data.user_id,
            order_id: env.data.order_id,
            message_id: env.id,
            credit,
        };
        let outcome = self.repo.deliver(&delivery).await?;
        Ok(outcome.applied.then_some((delivery, outcome.credit)))
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
