//! Errors of the activity commands, with the original codes.

use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::{ActivityId, InvalidArgument, OrderId, Sku};
use crate::ports::PortError;
use crate::strategy::StrategyError;

/// Everything that can stop a recharge or a draw.
#[derive(Debug, thiserror::Error)]
pub enum ActivityError {
    /// A blank or malformed argument, or an unknown activity / SKU (`0002`).
    #[error("{0}")]
    InvalidArgument(String),
    /// The activity is not `open` (`ERR_BIZ_003`).
    #[error("activity {0} is not open")]
    NotOpen(ActivityId),
    /// Now is outside the activity's dates (`ERR_BIZ_004`).
    #[error("activity {0} is not running now (outside its begin/end dates)")]
    OutsideDates(ActivityId),
    /// SKU stock is exhausted (`ERR_BIZ_005`).
    #[error("SKU {0} is sold out")]
    SkuStockEmpty(Sku),
    /// SKU stock counter missing: the activity was never armed (`ERR_BIZ_005`).
    #[error("SKU {0} has no stock counter: arm its activity first (armActivity)")]
    SkuNotArmed(Sku),
    /// No account or no total quota left (`ERR_BIZ_006`).
    #[error("no draws left in total for activity {0}")]
    TotalQuotaExhausted(ActivityId),
    /// No draws left this month (`ERR_BIZ_007`).
    #[error("no draws left this month for activity {0}")]
    MonthQuotaExhausted(ActivityId),
    /// No draws left today (`ERR_BIZ_008`).
    #[error("no draws left today for activity {0}")]
    DayQuotaExhausted(ActivityId),
    /// The raffle ticket was already used (`ERR_BIZ_009`).
    #[error("raffle ticket {0} was already used")]
    TicketUsed(OrderId),
    /// A conflicting duplicate (`0003`): e.g. an `outBusinessNo` already used for another SKU or user.
    #[error("{0}")]
    Duplicate(String),
    /// The draw could not finish within its deadline (`0006`); nothing was written and taken
    /// stock was given back.
    #[error("the draw did not finish within {1} ms (activity {0}); nothing was written")]
    DeadlineExceeded(ActivityId, i64),
    /// `degradeSwitch` is open: draws are refused (`0004`).
    #[error("draws are switched off for now (degraded); try again later")]
    Degraded,
    /// Over the per-user rate limit (`0005`; `true`: the user is on the blacklist).
    #[error("{}", if *.1 { format!("user {} is blocked for drawing too often; try again later", .0) } else { format!("user {} draws too often; try again in a second", .0) })]
    RateLimited(String, bool),
    /// The transaction lost a deadlock or a lock wait and was rolled back; retrying may succeed
    /// (`0001` if it still fails).
    #[error("transaction conflict: {0}")]
    Conflict(String),
    /// Not enough credits to pay (`ERR_CREDIT_001`); nothing was written.
    #[error("{0}")]
    CreditInsufficient(String),
    /// The strategy side failed (not armed, store down, ...).
    #[error(transparent)]
    Strategy(#[from] StrategyError),
    /// A store failed (`0001`).
    #[error(transparent)]
    Port(#[from] PortError),
    /// The save was sent and its answer never came (`0001`): it may or may not be applied.
    /// The message says what the client can do (retry with the same `outBusinessNo`, which
    /// applies it at most once; for a draw, look at the awards before drawing again).
    #[error("{0}")]
    OutcomeUnknown(String),
}

impl From<InvalidArgument> for ActivityError {
    fn from(e: InvalidArgument) -> Self {
        Self::InvalidArgument(e.0)
    }
}

impl From<crate::credit::CreditError> for ActivityError {
    fn from(e: crate::credit::CreditError) -> Self {
        use crate::credit::CreditError as C;
        match e {
            C::InvalidArgument(m) => Self::InvalidArgument(m),
            e @ C::Insufficient { .. } => Self::CreditInsufficient(e.to_string()),
            C::Duplicate(m) => Self::Duplicate(m),
            C::Conflict(m) => Self::Conflict(m),
            C::Port(p) => Self::Port(p),
            C::OutcomeUnknown(m) => Self::OutcomeUnknown(m),
        }
    }
}

impl HasErrorCode for ActivityError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::InvalidArgument(_) => ErrorCode::IllegalParameter,
            Self::NotOpen(_) => ErrorCode::ActivityNotOpen,
            Self::OutsideDates(_) => ErrorCode::ActivityDateError,
            Self::SkuStockEmpty(_) | Self::SkuNotArmed(_) => ErrorCode::SkuStockEmpty,
            Self::TotalQuotaExhausted(_) => ErrorCode::TotalQuotaExhausted,
            Self::MonthQuotaExhausted(_) => ErrorCode::MonthQuotaExhausted,
            Self::DayQuotaExhausted(_) => ErrorCode::DayQuotaExhausted,
            Self::TicketUsed(_) => ErrorCode::TicketUsed,
            Self::DeadlineExceeded(..) => ErrorCode::CircuitOpen,
            Self::Degraded => ErrorCode::Degraded,
            Self::RateLimited(..) => ErrorCode::RateLimited,
            Self::Duplicate(_) => ErrorCode::IndexDuplicate,
            Self::CreditInsufficient(_) => ErrorCode::CreditInsufficient,
            Self::Strategy(e) => e.error_code(),
            Self::Port(_) | Self::Conflict(_) | Self::OutcomeUnknown(_) => ErrorCode::Unknown,
        }
    }

    fn message_is_public(&self) -> bool {
        match self {
            Self::OutcomeUnknown(_) => true,
            Self::Port(p) => p.is_unavailable(),
            Self::Strategy(e) => e.message_is_public(),
            _ => self.error_code() != ErrorCode::Unknown,
        }
    }
}
