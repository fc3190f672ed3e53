//! Errors of arming and of drawing.

use crate::error::{ErrorCode, HasErrorCode};
use crate::ids::{AwardId, StrategyId};
use crate::ports::PortError;

/// Why a strategy could not be armed. Reported when arming, never at draw time.
#[derive(Debug, thiserror::Error)]
pub enum ArmError {
    /// `rule_weight` listed in `rule_models` without a `strategy_rule` row (`ERR_BIZ_001`).
    #[error("strategy {0}: rule_weight is listed in rule_models but has no strategy_rule row")]
    RuleWeightNotConfigured(StrategyId),
    /// Anything else wrong with the configuration (`ERR_CONFIG_002`), with a precise message.
    #[error("strategy {strategy_id}: {reason}")]
    Invalid {
        /// The strategy being armed.
        strategy_id: StrategyId,
        /// What is wrong, naming the offending row or value.
        reason: String,
    },
}

impl ArmError {
    pub(crate) fn invalid(strategy_id: StrategyId, reason: impl Into<String>) -> Self {
        Self::Invalid {
            strategy_id,
            reason: reason.into(),
        }
    }
}

impl HasErrorCode for ArmError {
    fn error_code(&self) -> ErrorCode {
        match self {
            Self::RuleWeightNotConfigured(_) => ErrorCode::RuleWeightNotConfigured,
            Self::Invalid { .. } => ErrorCode::InvalidStrategyConfig,
        }
    }
}

/// Why a draw failed.
#[derive(Debug, thiserror::Error)]
pub enum RaffleError {
    /// The drawn award has no configuration (cannot happen for a validated strategy).
    #[error("award {award_id} is not configured for strategy {strategy_id}")]
    UnknownAward {
        /// Strategy drawn from.
        strategy_id: StrategyId,
        /// The award that could not be resolved.
        award_id: AwardId,
    },
    /// The stock store failed (`0001`).
    #[error("award stock store failed: {0}")]
    Stock(#[from] PortError),
}

impl HasErrorCode for RaffleError {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::Unknown
    }
}
