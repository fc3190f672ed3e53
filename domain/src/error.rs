//! Stable error codes shared with the original system (spec §7.11) plus our own.
//!
//! Every domain error maps to one [`ErrorCode`]; the GraphQL edge puts [`ErrorCode::code`]
//! into `extensions.code`. Codes never change once published: clients switch on them.

/// A stable, client-visible error code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// `0001`: unexpected failure (details are logged, not returned).
    Unknown,
    /// `0002`: a missing or malformed argument, or an id that does not exist.
    IllegalParameter,
    /// `0003`: a unique-key conflict (an idempotent replay that cannot be merged).
    IndexDuplicate,
    /// `0004`: the draw is switched off by the degrade switch.
    Degraded,
    /// `0005`: rate limited.
    RateLimited,
    /// `0006`: circuit open / timeout.
    CircuitOpen,
    /// `ERR_BIZ_001`: `rule_weight` is listed in `rule_models` but not configured.
    RuleWeightNotConfigured,
    /// `ERR_BIZ_002`: the strategy has not been armed (assembled).
    StrategyNotArmed,
    /// `ERR_BIZ_003`: the activity is not open.
    ActivityNotOpen,
    /// `ERR_BIZ_004`: now is outside the activity's date range.
    ActivityDateError,
    /// `ERR_BIZ_005`: SKU stock is exhausted.
    SkuStockEmpty,
    /// `ERR_BIZ_006`: the account's total quota is exhausted (or there is no account).
    TotalQuotaExhausted,
    /// `ERR_BIZ_007`: this month's quota is exhausted.
    MonthQuotaExhausted,
    /// `ERR_BIZ_008`: today's quota is exhausted.
    DayQuotaExhausted,
    /// `ERR_BIZ_009`: the raffle ticket was already used.
    TicketUsed,
    /// `ERR_CONFIG_001`: an `award_config` is not a `min,max` range.
    AwardConfigNotRange,
    /// `ERR_CONFIG_002`: strategy configuration (rates, rules, rule trees) is invalid.
    InvalidStrategyConfig,
    /// `ERR_CREDIT_001`: not enough credits.
    CreditInsufficient,
}

impl ErrorCode {
    /// The wire code, e.g. `ERR_BIZ_006` or `0002`.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Unknown => "0001",
            Self::IllegalParameter => "0002",
            Self::IndexDuplicate => "0003",
            Self::Degraded => "0004",
            Self::RateLimited => "0005",
            Self::CircuitOpen => "0006",
            Self::RuleWeightNotConfigured => "ERR_BIZ_001",
            Self::StrategyNotArmed => "ERR_BIZ_002",
            Self::ActivityNotOpen => "ERR_BIZ_003",
            Self::ActivityDateError => "ERR_BIZ_004",
            Self::SkuStockEmpty => "ERR_BIZ_005",
            Self::TotalQuotaExhausted => "ERR_BIZ_006",
            Self::MonthQuotaExhausted => "ERR_BIZ_007",
            Self::DayQuotaExhausted => "ERR_BIZ_008",
            Self::TicketUsed => "ERR_BIZ_009",
            Self::AwardConfigNotRange => "ERR_CONFIG_001",
            Self::InvalidStrategyConfig => "ERR_CONFIG_002",
            Self::CreditInsufficient => "ERR_CREDIT_001",
        }
    }

    /// The original's short description (English), used when a more specific message is absent.
    pub const fn info(self) -> &'static str {
        match self {
            Self::Unknown => "internal error",
            Self::IllegalParameter => "illegal parameter",
            Self::IndexDuplicate => "duplicate request",
            Self::Degraded => "activity degraded",
            Self::RateLimited => "rate limited",
            Self::CircuitOpen => "circuit open",
            Self::RuleWeightNotConfigured => "rule_weight is listed in rule_models but not configured",
            Self::StrategyNotArmed => "raffle strategy is not armed",
            Self::ActivityNotOpen => "activity is not open",
            Self::ActivityDateError => "outside the activity's date range",
            Self::SkuStockEmpty => "activity SKU stock is exhausted",
            Self::TotalQuotaExhausted => "total draw quota exhausted",
            Self::MonthQuotaExhausted => "monthly draw quota exhausted",
            Self::DayQuotaExhausted => "daily draw quota exhausted",
            Self::TicketUsed => "raffle ticket already used",
            Self::AwardConfigNotRange => "award_config is not a range such as 1,100",
            Self::InvalidStrategyConfig => "invalid strategy configuration",
            Self::CreditInsufficient => "insufficient credits",
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.code())
    }
}

/// Implemented by every domain error so the edge can translate it without knowing its type.
pub trait HasErrorCode {
    /// The stable code of this error.
    fn error_code(&self) -> ErrorCode;

    /// Whether the message may reach the client. By default every error but `0001` shows
    /// its message; an unexpected failure is answered as "internal error" (its cause is
    /// logged). Errors of code `0001` whose message is meant for the client (an outcome that
    /// is unknown and how to retry) say so here.
    fn message_is_public(&self) -> bool {
        self.error_code() != ErrorCode::Unknown
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_match_the_original_catalogue() {
        assert_eq!(ErrorCode::IllegalParameter.code(), "0002");
        assert_eq!(ErrorCode::RuleWeightNotConfigured.code(), "ERR_BIZ_001");
        assert_eq!(ErrorCode::StrategyNotArmed.code(), "ERR_BIZ_002");
        assert_eq!(ErrorCode::DayQuotaExhausted.code(), "ERR_BIZ_008");
        assert_eq!(ErrorCode::CreditInsufficient.code(), "ERR_CREDIT_001");
    }
}
