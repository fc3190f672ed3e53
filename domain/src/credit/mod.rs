//! The credit context: credit trades (`user_credit_order` + `user_credit_account`) and
//! behaviour rebates (the daily sign-in), spec §7.2–7.3.
//!
//! * [`ports`] — the credit and rebate repositories;
//! * [`trade`] — `CreditTrade`: the pure balance rule and the command, idempotent on
//!   `(user, outBusinessNo)`;
//! * [`rebate`] — `SignIn`: one transaction of rebate orders and their `send_rebate` events
//!   per user and business day.
//!
//! Both commands have the shape of the draw: load → decide (pure) → one save with the outbox,
//! guarded by the account version the decision was made on.

pub mod ports;
pub mod rebate;
pub mod trade;

use std::sync::Arc;

use crate::activity::BusinessCalendar;
use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::InvalidArgument;
use crate::ports::{Clock, IdGenerator, OutboxNotifier, PortError};

pub use ports::{CreditOrder, CreditRepository, RebateRepository, TradeType};
pub use rebate::SignedIn;
pub use trade::{CreditTrade, CreditTraded, apply_trade};

/// Errors of the credit commands.
#[derive(Debug, thiserror::Error)]
pub enum CreditError {
    /// A malformed argument (`0002`).
    #[error("{0}")]
    InvalidArgument(String),
    /// Not enough credits (`ERR_CREDIT_001`).
    #[error("user {user} has {available} credits available, {needed} needed")]
    Insufficient {
        /// The user.
        user: String,
        /// What the account holds.
        available: rust_decimal::Decimal,
        /// What the trade needs.
        needed: rust_decimal::Decimal,
    },
    /// The `outBusinessNo` was used for a different trade (`0003`).
    #[error("{0}")]
    Duplicate(String),
    /// A lost deadlock, or the account kept moving (`0001`).
    #[error("transaction conflict: {0}")]
    Conflict(String),
    /// A store failed (`0001`).
    #[error(transparent)]
    Port(#[from] PortError),
    /// The save was sent and its answer never came (`0001`): it may or may not be applied;
    /// retrying with the same business number applies it at most once.
    #[error("{0}")]
    OutcomeUnknown(String),
}

impl From<InvalidArgument> for CreditError {
    fn from(e: InvalidArgument) -> Self {
        Self::InvalidArgument(e.0)
    }
}

impl HasErrorCode for CreditError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::InvalidArgument(_) => ErrorCode::IllegalParameter,
            Self::Insufficient { .. } => ErrorCode::CreditInsufficient,
            Self::Duplicate(_) => ErrorCode::IndexDuplicate,
            Self::Conflict(_) | Self::Port(_) | Self::OutcomeUnknown(_) => ErrorCode::Unknown,
        }
    }

    fn message_is_public(&self) -> bool {
        match self {
            Self::OutcomeUnknown(_) => true,
            Self::Port(p) => p.is_unavailable(),
            _ => self.error_code() != ErrorCode::Unknown,
        }
    }
}

/// Runs the credit commands.
pub struct CreditService {
    pub(crate) credit: Arc<dyn CreditRepository>,
    pub(crate) rebates: Arc<dyn RebateRepository>,
    pub(crate) ids: Arc<dyn IdGenerator>,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) calendar: BusinessCalendar,
    pub(crate) notifier: Arc<dyn OutboxNotifier>,
}

impl CreditService {
    /// A service over its ports.
    pub fn new(
        credit: Arc<dyn CreditRepository>,
        rebates: Arc<dyn RebateRepository>,
        ids: Arc<dyn IdGenerator>,
        clock: Arc<dyn Clock>,
        calendar: BusinessCalendar,
        notifier: Arc<dyn OutboxNotifier>,
    ) -> Self {
        Self {
            credit,
            rebates,
            ids,
            clock,
            calendar,
            notifier,
        }
    }

    /// The business day of `now` as `yyyyMMdd` (the sign-in's `outBusinessNo`).
    pub fn business_day(&self, now: chrono::DateTime<chrono::Utc>) -> String {
        self.calendar.day(now).replace('-', "")
    }

    /// Today's business day as `yyyyMMdd`.
    pub fn today(&self) -> String {
        self.business_day(self.clock.now())
    }
}
