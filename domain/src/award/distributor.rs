//! Award distributors: who grants an award, chosen by its `award_key` (spec §7.4).
//!
//! A [`Distributor`] turns one won award ([`Grant`]) into a [`Payout`]: credits that the
//! delivery transaction adds to the user's credit account, or a grant already made by another
//! system (the OpenAI account gateway for `openai_use_count`). [`AwardDistributors`] is the
//! registry [`super::DeliverAward`] picks from; an award key without a distributor is never
//! recorded as delivered.

use std::collections::BTreeMap;
use std::sync::Arc;

use rust_decimal::Decimal;

use super::deliver::{DeliverError, credit_amount};
use crate::ids::AwardId;
use crate::ports::{PortError, RandomSource};

/// Award key of random credits (`award_config` = `min,max`).
pub const USER_CREDIT_RANDOM: &str = "user_credit_random";
/// Award key of the blacklist's fixed credits (`award_config` = the amount, e.g. `1`).
pub const USER_CREDIT_BLACKLIST: &str = "user_credit_blacklist";
/// Award key of OpenAI usage quota (`award_config` = how many uses to add).
pub const OPENAI_USE_COUNT: &str = "openai_use_count";
/// Award key of OpenAI model access (`award_config` = model names); no distributor exists yet.
pub const OPENAI_MODEL: &str = "openai_model";

/// One won award to grant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    /// Winner.
    pub user_id: String,
    /// Raffle ticket / award record order id: the idempotency key towards other systems.
    pub order_id: String,
    /// The `send_award` message id.
    pub message_id: String,
    /// Award id.
    pub award_id: AwardId,
    /// Award key (`user_credit_random`, …).
    pub award_key: String,
    /// The configuration in force: the message's `awardConfig` when not blank, else the
    /// catalogue's `award_config`.
    pub config: String,
}

/// What a distributor did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Payout {
    /// Credits to add in the delivery transaction.
    Credit(Decimal),
    /// Granted by another system; the delivery only records it.
    Granted,
}

impl Payout {
    /// The credits to add, for credit payouts.
    pub fn credit(self) -> Option<Decimal> {
        match self {
            Self::Credit(amount) => Some(amount),
            Self::Granted => None,
        }
    }
}

/// Grants awards of one award key.
#[async_trait::async_trait]
pub trait Distributor: Send + Sync {
    /// Whether [`Distributor::distribute`] has an effect outside the delivery transaction (a
    /// call to another system). Such a call is skipped for a message that was applied already.
    fn external(&self) -> bool {
        false
    }

    /// Grants `grant`.
    ///
    /// # Errors
    /// [`DeliverError`]: a configuration that does not fit (permanent) or a failing other
    /// system ([`DeliverError::Port`], retried).
    async fn distribute(&self, grant: &Grant) -> Result<Payout, DeliverError>;
}

/// `user_credit_random`: a random amount in the `min,max` range (see [`credit_amount`]).
pub struct RandomCredit {
    random: Arc<dyn RandomSource>,
}

impl RandomCredit {
    /// A distributor drawing from `random`.
    pub fn new(random: Arc<dyn RandomSource>) -> Self {
        Self { random }
    }
}

#[async_trait::async_trait]
impl Distributor for RandomCredit {
    async fn distribute(&self, grant: &Grant) -> Result<Payout, DeliverError> {
        credit_amount(&grant.config, self.random.as_ref()).map(Payout::Credit)
    }
}

/// `user_credit_blacklist`: the configured amount of credits, paid like random credits (the
/// original had no implementation; spec §7.4).
pub struct FixedCredit;

/// The fixed credit amount of `config`: one non-negative decimal with at most two decimals.
///
/// # Errors
/// [`DeliverError::InvalidConfig`] otherwise.
pub fn fixed_credit_amount(config: &str) -> Result<Decimal, DeliverError> {
    let bad = || DeliverError::InvalidConfig(config.to_owned(), "a credit amount such as 1");
    let amount: Decimal = config.trim().parse().map_err(|_| bad())?;
    if amount.is_sign_negative() || amount.scale() > 2 {
        return Err(bad());
    }
    Ok(amount)
}

#[async_trait::async_trait]
impl Distributor for FixedCredit {
    async fn distribute(&self, grant: &Grant) -> Result<Payout, DeliverError> {
        fixed_credit_amount(&grant.config).map(Payout::Credit)
    }
}

/// One quota increase asked of the OpenAI account gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaIncrease {
    /// The user (the gateway's `openid`).
    pub user_id: String,
    /// Uses to add (`increaseQuota`).
    pub increase: u32,
    /// Sent with the call so the gateway applies a repeated call once: the award's order id.
    pub idempotency_key: String,
}

/// The OpenAI account gateway (`POST {api_host}/api/v1/account/adjust_quota`); the adapter
/// lives in `persistence`.
#[async_trait::async_trait]
pub trait QuotaGateway: Send + Sync {
    /// Adds quota. Delivery is at least once: the same increase may be asked again with the
    /// same idempotency key.
    ///
    /// # Errors
    /// [`PortError`] when the gateway cannot be reached in time, answers a non-2xx status or a
    /// code other than `0000` (all retried).
    async fn adjust_quota(&self, increase: &QuotaIncrease) -> Result<(), PortError>;
}

/// `openai_use_count`: adds `award_config` uses through the [`QuotaGateway`].
pub struct OpenAiUseCount {
    gateway: Arc<dyn QuotaGateway>,
}

impl OpenAiUseCount {
    /// A distributor calling `gateway`.
    pub fn new(gateway: Arc<dyn QuotaGateway>) -> Self {
        Self { gateway }
    }
}

/// The use count of `config`: a whole number from 1.
///
/// # Errors
/// [`DeliverError::InvalidConfig`] otherwise.
pub fn use_count(config: &str) -> Result<u32, DeliverError> {
    match config.trim().parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(DeliverError::InvalidConfig(config.to_owned(), "a use count such as 5")),
    }
}

#[async_trait::async_trait]
impl Distributor for OpenAiUseCount {
    fn external(&self) -> bool {
        true
    }

    async fn distribute(&self, grant: &Grant) -> Result<Payout, DeliverError> {
        let increase = QuotaIncrease {
            user_id: grant.user_id.clone(),
            increase: use_count(&grant.config)?,
            idempotency_key: grant.order_id.clone(),
        };
        self.gateway.adjust_quota(&increase).await?;
        Ok(Payout::Granted)
    }
}

/// The distributors by award key.
#[derive(Clone, Default)]
pub struct AwardDistributors {
    by_key: BTreeMap<String, Arc<dyn Distributor>>,
}

impl AwardDistributors {
    /// No distributor at all.
    pub fn new() -> Self {
        Self::default()
    }

    /// The credit distributors, which need nothing but the shard: `user_credit_random`
    /// ([`RandomCredit`] over `random`) and `user_credit_blacklist` ([`FixedCredit`]).
    pub fn credits(random: Arc<dyn RandomSource>) -> Self {
        Self::new()
            .with(USER_CREDIT_RANDOM, Arc::new(RandomCredit::new(random)))
            .with(USER_CREDIT_BLACKLIST, Arc::new(FixedCredit))
    }

    /// These distributors and `distributor` for `award_key` (replacing any).
    pub fn with(mut self, award_key: impl Into<String>, distributor: Arc<dyn Distributor>) -> Self {
        self.by_key.insert(award_key.into(), distributor);
        self
    }

    /// The distributor of `award_key`, if one is configured.
    pub fn get(&self, award_key: &str) -> Option<&Arc<dyn Distributor>> {
        self.by_key.get(award_key)
    }

    /// The configured award keys, sorted.
    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.by_key.keys().map(String::as_str)
    }
}

impl std::fmt::Debug for AwardDistributors {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.keys()).finish()
    }
}
