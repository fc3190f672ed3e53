//! Newtypes for identifiers, validated at the edge with `parse`.

use crate::error::{ErrorCode, HasErrorCode};

/// An argument that failed validation (code `0002`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidArgument(pub String);

impl HasErrorCode for InvalidArgument {
    fn error_code(&self) -> ErrorCode {
        ErrorCode::IllegalParameter
    }
}

/// A user id: non-blank, at most 32 characters (the `varchar(32)` of every shard table).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Longest accepted user id, in characters.
    pub const MAX_CHARS: usize = 32;

    /// Validates a user id.
    ///
    /// # Errors
    /// [`InvalidArgument`] when blank, longer than 32 characters, or padded with whitespace.
    pub fn parse(raw: &str) -> Result<Self, InvalidArgument> {
        if raw.trim().is_empty() {
            return Err(InvalidArgument("userId must not be blank".into()));
        }
        if raw.trim() != raw {
            return Err(InvalidArgument("userId must not start or end with whitespace".into()));
        }
        if raw.chars().count() > Self::MAX_CHARS {
            return Err(InvalidArgument(format!(
                "userId must be at most {} characters",
                Self::MAX_CHARS
            )));
        }
        Ok(Self(raw.to_owned()))
    }

    /// The id as stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for UserId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A strategy id (`strategy.strategy_id`).
pub type StrategyId = i64;
/// An award id (`award.award_id`).
pub type AwardId = i32;
/// An activity id (`raffle_activity.activity_id`).
pub type ActivityId = i64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_rejects_blank_and_overlong_values() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("   ").is_err());
        assert!(UserId::parse(" a").is_err());
        assert!(UserId::parse(&"x".repeat(33)).is_err());
        assert_eq!(UserId::parse("咸鱼12138").unwrap().as_str(), "咸鱼12138");
        assert!(UserId::parse(&"界".repeat(32)).is_ok());
    }
}
