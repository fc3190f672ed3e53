//! Runtime switches: the original's DCC values (`degradeSwitch`, `rateLimiterSwitch`,
//! `blackListSwitch`) and the settings of the draw protection, as data an operator changes with
//! `setSwitch` and every instance applies within a second.
//!
//! Values are strings on the wire and in the `switch_setting` table; [`Switches::set`] validates
//! one and [`Switches::entries`] lists them all with their current values.

use crate::ids::InvalidArgument;

/// The switch keys, as the original's DCC names them.
pub const KEYS: [&str; 7] = [
    DEGRADE,
    RATE_LIMITER,
    BLACKLIST,
    RATE_LIMITER_PERMITS_PER_SECOND,
    RATE_LIMITER_BLACKLIST_AFTER,
    RATE_LIMITER_BLACKLIST_SECONDS,
    DRAW_TIMEOUT_MS,
];

/// `open` refuses every draw with `0004`.
pub const DEGRADE: &str = "degradeSwitch";
/// `open` limits draws per user (shared by every instance).
pub const RATE_LIMITER: &str = "rateLimiterSwitch";
/// `open` applies `rule_blacklist` in strategies.
pub const BLACKLIST: &str = "blackListSwitch";
/// Draws per second per user when the rate limiter is open.
pub const RATE_LIMITER_PERMITS_PER_SECOND: &str = "rateLimiterPermitsPerSecond";
/// Refusals a user may collect before being blacklisted (`1`: blacklisted on the second).
pub const RATE_LIMITER_BLACKLIST_AFTER: &str = "rateLimiterBlacklistAfter";
/// How long a rate-limit blacklist entry lasts.
pub const RATE_LIMITER_BLACKLIST_SECONDS: &str = "rateLimiterBlacklistSeconds";
/// A draw's deadline (`0006` past it).
pub const DRAW_TIMEOUT_MS: &str = "drawTimeoutMs";

/// Every switch's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switches {
    /// `degradeSwitch` is `open`.
    pub degrade: bool,
    /// `rateLimiterSwitch` is `open`.
    pub rate_limiter: bool,
    /// `blackListSwitch` is `open`.
    pub blacklist: bool,
    /// `rateLimiterPermitsPerSecond` (≥ 1).
    pub permits_per_second: u32,
    /// `rateLimiterBlacklistAfter` (0 = never blacklist).
    pub blacklist_after: u32,
    /// `rateLimiterBlacklistSeconds` (≥ 1).
    pub blacklist_seconds: u64,
    /// `drawTimeoutMs` (1 – 60 000).
    pub draw_timeout_ms: u64,
}

impl Default for Switches {
    /// The original's defaults: every switch `close`, one permit per second, blacklisted on the
    /// second refusal for a day; a one-second draw deadline.
    fn default() -> Self {
        Self {
            degrade: false,
            rate_limiter: false,
            blacklist: false,
            permits_per_second: 1,
            blacklist_after: 1,
            blacklist_seconds: 86_400,
            draw_timeout_ms: 1_000,
        }
    }
}

fn open_close(key: &str, value: &str) -> Result<bool, InvalidArgument> {
    match value {
        "open" => Ok(true),
        "close" => Ok(false),
        other => Err(InvalidArgument(format!("{key} is `open` or `close`, not {other:?}"))),
    }
}

fn number<T: std::str::FromStr + PartialOrd + std::fmt::Display>(
    key: &str,
    value: &str,
    min: T,
    max: T,
) -> Result<T, InvalidArgument> {
    match value.parse::<T>() {
        Ok(n) if n >= min && n <= max => Ok(n),
        _ => Err(InvalidArgument(format!(
            "{key} is a whole number from {min} to {max}, not {value:?}"
        ))),
    }
}

const fn open(b: bool) -> &'static str {
    if b { "open" } else { "close" }
}

impl Switches {
    /// Sets `key` to `value` after validating both.
    ///
    /// # Errors
    /// `0002` for an unknown key or a value out of its range.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), InvalidArgument> {
        match key {
            DEGRADE => self.degrade = open_close(key, value)?,
            RATE_LIMITER => self.rate_limiter = open_close(key, value)?,
            BLACKLIST => self.blacklist = open_close(key, value)?,
            RATE_LIMITER_PERMITS_PER_SECOND => self.permits_per_second = number(key, value, 1, 10_000)?,
            RATE_LIMITER_BLACKLIST_AFTER => self.blacklist_after = number(key, value, 0, 1_000_000)?,
            RATE_LIMITER_BLACKLIST_SECONDS => self.blacklist_seconds = number(key, value, 1, 31_536_000)?,
            DRAW_TIMEOUT_MS => self.draw_timeout_ms = number(key, value, 1, 60_000)?,
            other => {
                return Err(InvalidArgument(format!(
                    "unknown switch {other:?}; the switches are {}",
                    KEYS.join(", ")
                )));
            }
        }
        Ok(())
    }

    /// The switches with stored values applied over `self` (unknown or invalid rows are
    /// skipped and returned, so one bad row never stops the others).
    pub fn with_stored<'a>(&self, rows: impl IntoIterator<Item = (&'a str, &'a str)>) -> (Self, Vec<InvalidArgument>) {
        let mut s = self.clone();
        let mut bad = Vec::new();
        for (k, v) in rows {
            if let Err(e) = s.set(k, v) {
                bad.push(e);
            }
        }
        (s, bad)
    }

    /// Every key with its current value, in [`KEYS`] order.
    pub fn entries(&self) -> Vec<(&'static str, String)> {
        vec![
            (DEGRADE, open(self.degrade).to_owned()),
            (RATE_LIMITER, open(self.rate_limiter).to_owned()),
            (BLACKLIST, open(self.blacklist).to_owned()),
            (RATE_LIMITER_PERMITS_PER_SECOND, self.permits_per_second.to_string()),
            (RATE_LIMITER_BLACKLIST_AFTER, self.blacklist_after.to_string()),
            (RATE_LIMITER_BLACKLIST_SECONDS, self.blacklist_seconds.to_string()),
            (DRAW_TIMEOUT_MS, self.draw_timeout_ms.to_string()),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_originals_and_every_key_round_trips() {
        let d = Switches::default();
        assert!(!d.degrade && !d.rate_limiter && !d.blacklist);
        assert_eq!(
            (d.permits_per_second, d.blacklist_after, d.blacklist_seconds),
            (1, 1, 86_400)
        );
        let mut s = Switches::default();
        for (k, v) in [
            (DEGRADE, "open"),
            (RATE_LIMITER, "open"),
            (BLACKLIST, "open"),
            (RATE_LIMITER_PERMITS_PER_SECOND, "5"),
            (RATE_LIMITER_BLACKLIST_AFTER, "0"),
            (RATE_LIMITER_BLACKLIST_SECONDS, "60"),
            (DRAW_TIMEOUT_MS, "150"),
        ] {
            s.set(k, v).unwrap();
        }
        let entries = s.entries();
        assert_eq!(entries.iter().map(|(k, _)| *k).collect::<Vec<_>>(), KEYS);
        let (again, bad) = Switches::default().with_stored(entries.iter().map(|(k, v)| (*k, v.as_str())));
        assert!(bad.is_empty());
        assert_eq!(again, s);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_and_change_nothing() {
        let mut s = Switches::default();
        for (k, v) in [
            ("degrade", "open"),
            (DEGRADE, "on"),
            (RATE_LIMITER_PERMITS_PER_SECOND, "0"),
            (DRAW_TIMEOUT_MS, "60001"),
            (DRAW_TIMEOUT_MS, "-1"),
            (RATE_LIMITER_BLACKLIST_SECONDS, "1.5"),
        ] {
            assert!(s.set(k, v).is_err(), "{k}={v}");
        }
        assert_eq!(s, Switches::default());
        let (kept, bad) = Switches::default().with_stored([(DEGRADE, "open"), ("nope", "x")]);
        assert!(kept.degrade);
        assert_eq!(bad.len(), 1);
    }
}
