//! The award context: delivering won awards (consumer of `send_award`, spec §6.5, §7.4).
//!
//! Delivery is idempotent: the repository records the message in an inbox table in the same
//! transaction as the effect, so a redelivered message changes nothing. Who grants an award is
//! decided by its `award_key` ([`distributor`]); a key without a distributor is never recorded
//! as delivered.

pub mod deliver;
pub mod distributor;

pub use deliver::{
    AwardDeliveryRepository, CreditBalance, DeadAward, DeadMark, DeliverAward, DeliverError, Delivered, Delivery,
    DeliveryOutcome, credit_amount,
};
pub use distributor::{
    AwardDistributors, Distributor, FixedCredit, Grant, OPENAI_MODEL, OPENAI_USE_COUNT, OpenAiUseCount, Payout,
    QuotaGateway, QuotaIncrease, RandomCredit, USER_CREDIT_BLACKLIST, USER_CREDIT_RANDOM,
};

#[cfg(test)]
mod tests;
