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

/// A user id: non-blank, not padded with whitespace, at most 128 characters (the
/// `varchar(128)` of every shard table since migration `m20261130_000002_binary_ids`, the
/// latest original's width), compared byte for byte.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UserId(String);

impl UserId {
    /// Longest accepted user id, in characters.
    pub const MAX_CHARS: usize = 128;

    /// Validates a user id.
    ///
    /// # Errors
    /// [`InvalidArgument`] when blank, longer than 128 characters, or padded with whitespace.
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

/// A numeric id newtype: `new` for values read from storage (trusted), `parse` for values
/// from outside (must be positive), `get` for the stored number. Serialized as the bare number.
macro_rules! numeric_id {
    ($(#[$doc:meta])* $name:ident($inner:ty), $arg:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name($inner);

        impl $name {
            /// Wraps a stored value.
            pub const fn new(value: $inner) -> Self {
                Self(value)
            }

            /// Validates a value from outside.
            ///
            /// # Errors
            /// [`InvalidArgument`] when the value is not positive.
            pub fn parse(value: $inner) -> Result<Self, InvalidArgument> {
                if value > 0 {
                    Ok(Self(value))
                } else {
                    Err(InvalidArgument(format!(concat!($arg, " must be positive, got {}"), value)))
                }
            }

            /// The stored number.
            pub const fn get(self) -> $inner {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }

        impl From<$name> for $inner {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        /// Parses the stored decimal form (configuration values such as `101:1,100`).
        impl std::str::FromStr for $name {
            type Err = std::num::ParseIntError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                s.parse().map(Self)
            }
        }
    };
}

numeric_id!(
    /// A strategy id (`strategy.strategy_id`).
    StrategyId(i64),
    "strategyId"
);
numeric_id!(
    /// An award id (`award.award_id`).
    AwardId(i32),
    "awardId"
);
numeric_id!(
    /// An activity id (`raffle_activity.activity_id`).
    ActivityId(i64),
    "activityId"
);
numeric_id!(
    /// A SKU (`raffle_activity_sku.sku`): one purchasable quota package of an activity.
    Sku(i64),
    "sku"
);

/// A string id newtype made by the id generator or read from storage: `new` wraps it,
/// `as_str` reads it. Serialized as the bare string.
macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Wraps a generated or stored id.
            pub fn new(value: impl Into<String>) -> Self {
                Self(value.into())
            }

            /// The id as stored.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The id as an owned string.
            pub fn into_string(self) -> String {
                self.0
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> Self {
                id.0
            }
        }

        impl From<String> for $name {
            fn from(value: String) -> Self {
                Self(value)
            }
        }

        impl From<&str> for $name {
            fn from(value: &str) -> Self {
                Self(value.to_owned())
            }
        }
    };
}

string_id!(
    /// An order id: a raffle ticket (`user_raffle_order.order_id`, = the award record's
    /// `order_id`) or a quota recharge order (`raffle_activity_order.order_id`).
    OrderId
);
string_id!(
    /// An outbox message id (`task.message_id`, = the envelope `id`).
    MessageId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_id_rejects_blank_and_overlong_values() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse("   ").is_err());
        assert!(UserId::parse(" a").is_err());
        assert!(UserId::parse(&"x".repeat(129)).is_err());
        assert_eq!(UserId::parse("咸鱼12138").unwrap().as_str(), "咸鱼12138");
        assert!(UserId::parse(&"界".repeat(128)).is_ok());
    }

    #[test]
    fn numeric_ids_from_outside_must_be_positive_and_serialize_as_bare_numbers() {
        assert!(ActivityId::parse(0).is_err());
        assert!(AwardId::parse(-1).is_err());
        assert_eq!(StrategyId::parse(100006).unwrap().get(), 100006);
        assert_eq!(serde_json::to_string(&Sku::new(9011)).unwrap(), "9011");
        assert_eq!(serde_json::from_str::<AwardId>("101").unwrap(), AwardId::new(101));
        assert_eq!(ActivityId::new(100301).to_string(), "100301");
    }

    #[test]
    fn string_ids_serialize_as_bare_strings() {
        let id = OrderId::new("313091076458");
        assert_eq!(id.as_str(), "313091076458");
        assert_eq!(serde_json::to_string(&id).unwrap(), r#""313091076458""#);
        assert_eq!(
            serde_json::from_str::<MessageId>(r#""23913710462""#).unwrap(),
            MessageId::new("23913710462")
        );
        assert_eq!(MessageId::new("7").to_string(), "7");
    }
}
