//! Draw protection: the guards every path that draws passes first, read from the live
//! [`Switches`] — degrade (`0004`), the rate limiter shared by every instance with its
//! blacklist (`0005`) — and the draw deadline the switches set (`0006`, applied by the draw).

use std::sync::Arc;

use super::error::ActivityError;
use super::service::ActivityService;
use crate::ids::UserId;
use crate::ports::PortError;
use crate::switches::Switches;

/// The switches as this instance sees them now.
pub trait SwitchSource: Send + Sync {
    /// The current values (cheap: an `Arc` clone).
    fn current(&self) -> Arc<Switches>;
}

/// Fixed switches (tests, tools).
impl SwitchSource for Switches {
    fn current(&self) -> Arc<Switches> {
        Arc::new(self.clone())
    }
}

/// What the shared rate limiter answered for one draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Within the user's permits.
    Allowed,
    /// Over the permits this second (the refusal is counted).
    Refused,
    /// On the blacklist (refused more than `rateLimiterBlacklistAfter` times).
    Blacklisted,
}

/// A per-user rate limiter shared by every instance (e.g. in Redis).
#[async_trait::async_trait]
pub trait DrawRateLimiter: Send + Sync {
    /// Takes one permit for `user`: at most `permits_per_second` per second; a refusal is
    /// counted, and past `blacklist_after` refusals the user is blacklisted for
    /// `blacklist_seconds` (0 = never blacklisted).
    async fn admit(
        &self,
        user: &str,
        permits_per_second: u32,
        blacklist_after: u32,
        blacklist_seconds: u64,
    ) -> Result<Admission, PortError>;
}

/// Which guard refused a draw.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Guard {
    /// `degradeSwitch` open.
    Degraded,
    /// Over the rate limit.
    RateLimited,
    /// On the rate limiter's blacklist.
    Blacklisted,
    /// Past the draw deadline.
    TimedOut,
}

impl Guard {
    /// Every guard.
    pub const ALL: [Guard; 4] = [Self::Degraded, Self::RateLimited, Self::Blacklisted, Self::TimedOut];

    /// Its name in metrics and admin views.
    pub const fn name(self) -> &'static str {
        match self {
            Self::Degraded => "degraded",
            Self::RateLimited => "rate_limited",
            Self::Blacklisted => "blacklisted",
            Self::TimedOut => "timed_out",
        }
    }
}

/// Counts refused draws per guard (fire and forget: counting never fails a draw).
pub trait GuardRecorder: Send + Sync {
    /// One draw refused by `guard`.
    fn refused(&self, guard: Guard);
}

/// Counts nothing.
impl GuardRecorder for () {
    fn refused(&self, _: Guard) {}
}

impl ActivityService {
    /// The guards a draw passes before anything else, on the live switches (returned, so the
    /// draw uses one consistent set): degrade, then the shared rate limit.
    ///
    /// # Errors
    /// `0004` while degraded, `0005` over the rate limit or blacklisted, `0001` when the rate
    /// limiter's store fails (a draw is never let through unchecked while the limiter is on).
    pub async fn admit(&self, user: &UserId) -> Result<Arc<Switches>, ActivityError> {
        let s = self.switches.current();
        if s.degrade {
            self.guards.refused(Guard::Degraded);
            return Err(ActivityError::Degraded);
        }
        if s.rate_limiter {
            let admission = self
                .rate_limiter
                .admit(
                    user.as_str(),
                    s.permits_per_second,
                    s.blacklist_after,
                    s.blacklist_seconds,
                )
                .await?;
            match admission {
                Admission::Allowed => {}
                Admission::Refused => {
                    self.guards.refused(Guard::RateLimited);
                    return Err(ActivityError::RateLimited(user.as_str().to_owned(), false));
                }
                Admission::Blacklisted => {
                    self.guards.refused(Guard::Blacklisted);
                    return Err(ActivityError::RateLimited(user.as_str().to_owned(), true));
                }
            }
        }
        Ok(s)
    }
}
