//! The schema's own scalars and id conventions (docs/SCHEMA.md):
//!
//! * [`DateTime`]: an instant, always written in UTC with `Z` and milliseconds
//!   (`2026-11-30T15:24:46.123Z`); any RFC 3339 offset is accepted on input;
//! * [`Decimal`]: an exact decimal number as a string (`"0.0300"`, `"-7.50"`), never a float;
//! * 64-bit identifiers (`activityId`, `strategyId`, `sku`, `orderId`, `messageId`, …) are
//!   `ID`: decimal digits as a string on output, a string or an integer on input ([`long_id`]);
//! * [`Page`]: a connection type that says what it pages.
//!
//! chrono's and rust_decimal's own scalars are not used: the first writes `+00:00` with a
//! varying number of fraction digits, and neither carries a description of its format.

use std::borrow::Cow;

use async_graphql::connection::{Connection, EmptyFields};
use async_graphql::parser::types::Field;
use async_graphql::registry::{MetaType, Registry};
use async_graphql::{
    ContextSelectionSet, ID, InputValueError, InputValueResult, OutputType, Positioned, Scalar, ScalarType,
    ServerResult, Value,
};
use chrono::{SecondsFormat, Utc};
use domain::ErrorCode;

use super::error::with_code;

/// An instant in UTC (GraphQL `DateTime`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct DateTime(pub chrono::DateTime<Utc>);

/// An instant. Output: RFC 3339 in UTC with `Z` and exactly three fraction digits
/// (`2026-11-30T15:24:46.123Z`). Input: any RFC 3339 date-time with an offset (converted to UTC).
#[Scalar(
    name = "DateTime",
    specified_by_url = "https://scalars.graphql.org/andimarek/date-time"
)]
impl ScalarType for DateTime {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
                .map(|t| Self(t.with_timezone(&Utc)))
                .map_err(|e| InputValueError::custom(format!("not an RFC 3339 date-time: {e}"))),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(s) if chrono::DateTime::parse_from_rfc3339(s).is_ok())
    }

    fn to_value(&self) -> Value {
        Value::String(self.to_string())
    }
}

impl std::fmt::Display for DateTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl From<chrono::DateTime<Utc>> for DateTime {
    fn from(t: chrono::DateTime<Utc>) -> Self {
        Self(t)
    }
}

impl From<chrono::NaiveDateTime> for DateTime {
    /// A database `datetime`, which the service writes in UTC.
    fn from(t: chrono::NaiveDateTime) -> Self {
        Self(t.and_utc())
    }
}

impl DateTime {
    /// The instant `ms` milliseconds after the Unix epoch (the epoch itself when out of range).
    pub fn from_millis(ms: i64) -> Self {
        Self(chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default())
    }
}

/// An exact decimal number (GraphQL `Decimal`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Decimal(pub rust_decimal::Decimal);

/// An exact decimal number as a string: an optional `-`, digits, and optionally `.` and more
/// digits, with the scale the value carries (`"0.0300"`, `"-7.50"`, `"100"`); the lexical form
/// of XML Schema's `decimal`. A string so that no client reads it through a binary float.
/// Input: the same form (a leading `+` is accepted).
#[Scalar(name = "Decimal", specified_by_url = "https://www.w3.org/TR/xmlschema11-2/#decimal")]
impl ScalarType for Decimal {
    fn parse(value: Value) -> InputValueResult<Self> {
        match &value {
            Value::String(s) if is_decimal_lexical(s) => s
                .trim_start_matches('+')
                .parse::<rust_decimal::Decimal>()
                .map(Self)
                .map_err(|e| InputValueError::custom(format!("not a decimal: {e}"))),
            Value::String(s) => Err(InputValueError::custom(format!("not a decimal: {s:?}"))),
            _ => Err(InputValueError::expected_type(value)),
        }
    }

    fn is_valid(value: &Value) -> bool {
        matches!(value, Value::String(s) if is_decimal_lexical(s))
    }

    fn to_value(&self) -> Value {
        Value::String(self.0.to_string())
    }
}

impl std::fmt::Display for Decimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl From<rust_decimal::Decimal> for Decimal {
    fn from(d: rust_decimal::Decimal) -> Self {
        Self(d)
    }
}

/// `(+|-)?([0-9]+(\.[0-9]*)?|\.[0-9]+)`: XML Schema's `decimal` lexical space.
fn is_decimal_lexical(s: &str) -> bool {
    let s = s.strip_prefix(['+', '-']).unwrap_or(s);
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    digits(int) && digits(frac) && !(int.is_empty() && frac.is_empty())
}

/// The 64-bit value of an `ID` argument named `name`.
///
/// # Errors
/// `0002` when it is not a decimal integer that fits 64 bits.
pub fn long_id(name: &str, id: &ID) -> async_graphql::Result<i64> {
    id.parse::<i64>().map_err(|_| {
        with_code(
            ErrorCode::IllegalParameter,
            format!("{name} must be a 64-bit integer, got {:?}", id.as_str()),
        )
    })
}

/// An `ID` argument as the audit log records it: a number when it is one, else the text.
pub fn id_json(id: &ID) -> serde_json::Value {
    id.parse::<i64>()
        .map_or_else(|_| serde_json::Value::from(id.as_str()), serde_json::Value::from)
}

/// An `ID` output of a 64-bit identifier.
pub fn id_of(n: i64) -> ID {
    ID(n.to_string())
}

/// A page of a connection (`…Connection`), with a type description, which async-graphql's
/// [`Connection`] does not give.
pub struct Page<T: OutputType>(pub Connection<String, T, EmptyFields, EmptyFields>);

impl<T: OutputType> From<Connection<String, T, EmptyFields, EmptyFields>> for Page<T> {
    fn from(c: Connection<String, T, EmptyFields, EmptyFields>) -> Self {
        Self(c)
    }
}

impl<T: OutputType> OutputType for Page<T> {
    fn type_name() -> Cow<'static, str> {
        Connection::<String, T, EmptyFields, EmptyFields>::type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        let name = Connection::<String, T, EmptyFields, EmptyFields>::create_type_info(registry);
        let what = T::type_name();
        if let Some(MetaType::Object { description, .. }) = registry.types.get_mut(&*Self::type_name())
            && description.is_none()
        {
            *description = Some(format!(
                "A page of `{what}` items in the list's order. Pagination is forward only: pass \
                 `pageInfo.endCursor` as `after` while `pageInfo.hasNextPage` is true."
            ));
        }
        name
    }

    async fn resolve(&self, ctx: &ContextSelectionSet<'_>, field: &Positioned<Field>) -> ServerResult<Value> {
        self.0.resolve(ctx, field).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn date_times_are_written_in_utc_with_z_and_milliseconds() {
        let t = chrono::DateTime::parse_from_rfc3339("2026-11-30T23:24:46.123456+08:00").unwrap();
        let t = DateTime(t.with_timezone(&Utc));
        assert_eq!(t.to_value(), Value::String("2026-11-30T15:24:46.123Z".into()));
        assert_eq!(
            DateTime::from_millis(0).to_value(),
            Value::String("1970-01-01T00:00:00.000Z".into())
        );
    }

    #[test]
    fn date_time_input_takes_any_rfc3339_offset_and_refuses_other_text() {
        let parsed = <DateTime as ScalarType>::parse(Value::String("2026-11-30T23:24:46+08:00".into())).unwrap();
        assert_eq!(parsed.to_string(), "2026-11-30T15:24:46.000Z");
        assert!(<DateTime as ScalarType>::parse(Value::String("2026-11-30 15:24".into())).is_err());
        assert!(!<DateTime as ScalarType>::is_valid(&Value::Number(1.into())));
    }

    #[test]
    fn decimals_are_strings_in_the_xsd_decimal_form() {
        let d = Decimal(rust_decimal::Decimal::new(-750, 2));
        assert_eq!(d.to_value(), Value::String("-7.50".into()));
        for ok in ["0.0300", "-7.50", "+1", "100", ".5", "5."] {
            assert!(<Decimal as ScalarType>::is_valid(&Value::String(ok.into())), "{ok}");
        }
        for bad in ["", ".", "1e3", "1_000", "NaN", " 1", "--1"] {
            assert!(!<Decimal as ScalarType>::is_valid(&Value::String(bad.into())), "{bad}");
        }
        assert!(!<Decimal as ScalarType>::is_valid(&Value::Number(1.into())));
        let parsed = <Decimal as ScalarType>::parse(Value::String("+0.0300".into())).unwrap();
        assert_eq!(parsed.0.to_string(), "0.0300");
    }

    #[test]
    fn long_ids_take_decimal_integers_only() {
        assert_eq!(long_id("sku", &ID("9011".into())).unwrap(), 9011);
        assert!(long_id("sku", &ID("x".into())).is_err());
        assert!(long_id("sku", &ID("99999999999999999999".into())).is_err());
        assert_eq!(id_of(383_394_499_981_737_984).as_str(), "383394499981737984");
    }
}
