//! Runtime switches and the draw protection's admin views: `switches`, `setSwitch`,
//! `drawGuards`, `rateLimitBlacklist`, `unblockUser` (docs/OPERATIONS.md §Switches).

use std::sync::Arc;

use async_graphql::{Context, Object, Result, SimpleObject};
use domain::ErrorCode;
use domain::ids::UserId;
use domain::switches::Switches;
use persistence::switch_board::SetError;
use serde_json::json;

use super::access;
use super::audit::audited;
use super::error::{invalid_argument, with_code};
use super::scalars::DateTime;
use crate::state::AppState;
use chrono::Utc;

/// One switch and its value in force on the answering instance.
#[derive(SimpleObject, Debug, Clone)]
pub struct Switch {
    /// The original's DCC key, e.g. `degradeSwitch`.
    pub key: String,
    /// The value: `open` / `close` for the three switches, a number for the others.
    pub value: String,
}

fn listed(s: &Switches) -> Vec<Switch> {
    s.entries()
        .into_iter()
        .map(|(key, value)| Switch {
            key: key.to_owned(),
            value,
        })
        .collect()
}

/// Draws refused by one guard, over every instance.
#[derive(SimpleObject, Debug, Clone)]
pub struct GuardCount {
    /// `degraded`, `rate_limited`, `blacklisted` or `timed_out`.
    pub guard: String,
    /// Draws it refused so far.
    pub refused: u64,
}

/// A user on the rate limiter's blacklist.
#[derive(SimpleObject, Debug, Clone)]
pub struct BlacklistEntry {
    /// The user.
    pub user_id: String,
    /// When the entry ends.
    pub until: DateTime,
}

fn internal(e: impl std::fmt::Display) -> async_graphql::Error {
    super::error::internal_error("switch administration failed", e)
}

/// Switch queries (admin).
#[derive(Default)]
pub struct SwitchQuery;

#[Object]
impl SwitchQuery {
    /// Every switch with the value this instance applies (all instances converge within
    /// `switches.refresh_ms`). Admin only.
    async fn switches(&self, ctx: &Context<'_>) -> Result<Vec<Switch>> {
        access::admin(ctx)?;
        let app = ctx.data::<Arc<AppState>>()?;
        Ok(listed(&domain::activity::protection::SwitchSource::current(
            &app.switch_board,
        )))
    }

    /// Draws refused by each guard (degrade, rate limit, blacklist, deadline) over every
    /// instance. Admin only.
    async fn draw_guards(&self, ctx: &Context<'_>) -> Result<Vec<GuardCount>> {
        access::admin(ctx)?;
        let app = ctx.data::<Arc<AppState>>()?;
        Ok(app
            .guard_counter
            .counts()
            .await
            .map_err(internal)?
            .into_iter()
            .map(|(g, refused)| GuardCount {
                guard: g.name().to_owned(),
                refused,
            })
            .collect())
    }

    /// Users the rate limiter blacklisted, soonest to end first. Admin only.
    async fn rate_limit_blacklist(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many (1–1 000, default 100).")] first: Option<i32>,
    ) -> Result<Vec<BlacklistEntry>> {
        access::admin(ctx)?;
        let app = ctx.data::<Arc<AppState>>()?;
        let first = first.unwrap_or(100);
        if !(1..=1_000).contains(&first) {
            return Err(with_code(
                ErrorCode::IllegalParameter,
                "first must be between 1 and 1000",
            ));
        }
        Ok(app
            .rate_limiter
            .blacklist(first as usize)
            .await
            .map_err(internal)?
            .into_iter()
            .map(|e| BlacklistEntry {
                user_id: e.user_id,
                until: DateTime::from_millis(e.until_ms),
            })
            .collect())
    }
}

/// Switch mutations (admin, audited).
#[derive(Default)]
pub struct SwitchMutation;

#[Object]
impl SwitchMutation {
    /// Sets a switch (stored, applied here at once, by every instance within a second) and
    /// returns every switch as now in force here. Keys: `degradeSwitch`, `rateLimiterSwitch`,
    /// `blackListSwitch` (`open` / `close`), `rateLimiterPermitsPerSecond`,
    /// `rateLimiterBlacklistAfter`, `rateLimiterBlacklistSeconds`, `drawTimeoutMs`.
    /// Errors: `0002` unknown key or bad value. Admin only.
    async fn set_switch(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The switch, e.g. `degradeSwitch`.")] key: String,
        #[graphql(desc = "Its new value, e.g. `open`.")] value: String,
    ) -> Result<Vec<Switch>> {
        let arguments = json!({ "key": key, "value": value });
        audited(ctx, "setSwitch", arguments, async {
            let app = ctx.data::<Arc<AppState>>()?;
            let by = access::identity(ctx).actor().to_owned();
            match app.switch_board.set(&key, &value, &by, Utc::now().naive_utc()).await {
                Ok(s) => Ok(listed(&s)),
                Err(SetError::Invalid(e)) => Err(invalid_argument(e)),
                Err(SetError::Port(e)) => Err(internal(e)),
            }
        })
        .await
    }

    /// Takes a user off the rate limiter's blacklist (and forgets its refusals); `false` when
    /// it was not on it. Admin only.
    async fn unblock_user(&self, ctx: &Context<'_>, #[graphql(desc = "The user.")] user_id: String) -> Result<bool> {
        audited(ctx, "unblockUser", json!({ "userId": user_id }), async {
            let app = ctx.data::<Arc<AppState>>()?;
            let user = UserId::parse(&user_id).map_err(invalid_argument)?;
            app.rate_limiter.unblock(user.as_str()).await.map_err(internal)
        })
        .await
    }
}
