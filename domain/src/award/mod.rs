//! The award context: delivering won awards (consumer of `send_award`, spec §6.5, §7.4).
//!
//! Delivery is idempotent: the repository records the message in an inbox table in the same
//! transaction as the effect, so a redelivered message changes nothing.

pub mod deliver;

pub use deliver::{
    AwardDeliveryRepository, CreditBalance, DeliverAward, DeliverError, Delivery, DeliveryOutcome, credit_amount,
};
