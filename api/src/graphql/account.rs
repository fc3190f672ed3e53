//! User read-model queries: `activityAccount`, `creditAccount`, `userAwards`, and the admin
//! `rebuildProjections`. Served from Redis; a missing account or credit view is built once
//! from MySQL (the documented fallback), unknown users read as zeros.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, query};
use async_graphql::{Context, Enum, ID, Object, Result, SimpleObject};
use chrono::Utc;
use domain::ErrorCode;
use domain::ids::ActivityId;
use domain::outbox::AccountSnapshot;
use persistence::mysql::read_side;

use super::access::acting_user;
use super::audit::audited;
use super::error::{invalid_argument, with_code};
use super::scalars::{DateTime, Decimal, Page, long_id};
use crate::state::AppState;
use serde_json::json;

/// A user's draw quota in an activity, as of today.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct ActivityAccount {
    /// Total draws granted.
    pub total_count: i32,
    /// Total draws left.
    pub total_count_surplus: i32,
    /// Draws allowed today.
    pub day_count: i32,
    /// Draws left today.
    pub day_count_surplus: i32,
    /// Draws allowed this month.
    pub month_count: i32,
    /// Draws left this month.
    pub month_count_surplus: i32,
}

impl ActivityAccount {
    /// Today's view of a snapshot: period rows of other days/months fall back to the allowance.
    pub fn of(s: &AccountSnapshot, day: &str, month: &str) -> Self {
        let (day_count, day_left) = match &s.day {
            Some(d) if d.period == day => (d.count, d.surplus),
            _ => (s.day_count, s.day_count),
        };
        let (month_count, month_left) = match &s.month {
            Some(m) if m.period == month => (m.count, m.surplus),
            _ => (s.month_count, s.month_count),
        };
        Self {
            total_count: s.total_count,
            total_count_surplus: s.total_count_surplus,
            day_count,
            day_count_surplus: day_left,
            month_count,
            month_count_surplus: month_left,
        }
    }
}

/// A user's credits.
#[derive(SimpleObject, Debug, Clone, PartialEq, Eq)]
pub struct CreditAccount {
    /// Lifetime credits earned.
    pub total_amount: Decimal,
    /// Spendable credits.
    pub available_amount: Decimal,
}

/// Delivery state of a won award.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum AwardState {
    /// Recorded, not yet delivered.
    Create,
    /// Delivered.
    Completed,
}

/// A won award.
#[derive(SimpleObject, Debug, Clone)]
pub struct UserAward {
    /// Raffle ticket id.
    pub order_id: ID,
    /// Award.
    pub award_id: i32,
    /// Title.
    pub award_title: String,
    /// When it was won.
    pub award_time: DateTime,
    /// Delivery state.
    pub award_state: AwardState,
}

/// What `rebuildProjections` wrote.
#[derive(SimpleObject, Debug, Clone, Copy)]
pub struct RebuildReport {
    /// Keys dropped.
    pub dropped: u64,
    /// Account views.
    pub accounts: u64,
    /// Credit views.
    pub credits: u64,
    /// Award history entries.
    pub awards: u64,
    /// Task-status views.
    pub tasks: u64,
    /// Credit orders.
    pub credit_orders: u64,
    /// Users whose sign-in days were written.
    pub signed_users: u64,
}

fn internal(e: impl std::fmt::Display) -> async_graphql::Error {
    super::error::internal_error("read model failed", e)
}

/// Largest `userAwards` page.
const MAX_PAGE: i32 = 100;

/// Read-model queries.
#[derive(Default)]
pub struct AccountQuery;

#[Object]
impl AccountQuery {
    /// The user's quota in an activity (zeros for an unknown user). Day and month values are
    /// today's and this month's (business calendar).
    async fn activity_account(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user; defaults to the token's user (service and admin tokens must name one).")]
        user_id: Option<String>,
        #[graphql(desc = "The activity.")] activity_id: ID,
    ) -> Result<ActivityAccount> {
        let user = acting_user(ctx, user_id.as_deref())?;
        let app = ctx.data::<Arc<AppState>>()?;
        let activity_id = ActivityId::parse(long_id("activityId", &activity_id)?).map_err(invalid_argument)?;
        let now = Utc::now();
        let (day, month) = (app.calendar.day(now), app.calendar.month(now));
        let snapshot = match app.views.account(user.as_str(), activity_id).await.map_err(internal)? {
            Some(s) => s,
            None => read_side::load_account(&app.db, &app.views, user.as_str(), activity_id, &day, &month)
                .await
                .map_err(internal)?,
        };
        Ok(ActivityAccount::of(&snapshot, &day, &month))
    }

    /// The user's credits (zero for an unknown user).
    async fn credit_account(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user; defaults to the token's user (service and admin tokens must name one).")]
        user_id: Option<String>,
    ) -> Result<CreditAccount> {
        let user = acting_user(ctx, user_id.as_deref())?;
        let app = ctx.data::<Arc<AppState>>()?;
        let v = match app.views.credit(user.as_str()).await.map_err(internal)? {
            Some(v) => v,
            None => read_side::load_credit(&app.db, &app.views, user.as_str())
                .await
                .map_err(internal)?,
        };
        Ok(CreditAccount {
            total_amount: Decimal(v.total_amount),
            available_amount: Decimal(v.available_amount),
        })
    }

    /// The user's won awards, newest first (`first` ≤ 100, default 20; `after` = `endCursor`).
    async fn user_awards(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user; defaults to the token's user (service and admin tokens must name one).")]
        user_id: Option<String>,
        #[graphql(desc = "Awards per page (0–100, default 20).")] first: Option<i32>,
        #[graphql(desc = "A previous page's `endCursor`.")] after: Option<String>,
    ) -> Result<Page<UserAward>> {
        let user = acting_user(ctx, user_id.as_deref())?;
        let app = ctx.data::<Arc<AppState>>()?;
        let first = super::error::page_size(first, MAX_PAGE)?;
        let after = match after {
            None => None,
            Some(a) => Some(
                a.split_once(':')
                    .and_then(|(t, o)| Some((t.parse::<i64>().ok()?, o.to_owned())))
                    .ok_or_else(|| with_code(ErrorCode::IllegalParameter, format!("invalid cursor {a:?}")))?,
            ),
        };
        query(
            None::<String>,
            None::<String>,
            Some(first),
            None,
            |_, _, first, _| async move {
                let page = app
                    .views
                    .awards(
                        user.as_str(),
                        first.unwrap_or(20),
                        after.as_ref().map(|(t, o)| (*t, o.as_str())),
                    )
                    .await
                    .map_err(internal)?;
                let mut conn = Connection::new(after.is_some(), page.has_next);
                conn.edges.extend(page.entries.into_iter().map(|e| {
                    Edge::new(
                        format!("{}:{}", e.award_time_ms, e.order_id),
                        UserAward {
                            award_time: DateTime::from_millis(e.award_time_ms),
                            award_state: if e.delivered {
                                AwardState::Completed
                            } else {
                                AwardState::Create
                            },
                            order_id: ID(e.order_id),
                            award_id: e.award_id.get(),
                            award_title: e.award_title,
                        },
                    )
                }));
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
        .map(Page)
    }
}

/// Read-model administration.
#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Drops and rebuilds every user read model (accounts, credit, award history, task status)
    /// from all shards, while the service runs. Task-status streams (subscription history) are kept.
    /// Admin only.
    async fn rebuild_projections(&self, ctx: &Context<'_>) -> Result<RebuildReport> {
        audited(ctx, "rebuildProjections", json!({}), async {
            let app = ctx.data::<Arc<AppState>>()?;
            let now = Utc::now();
            let r = read_side::rebuild(
                &app.db,
                &app.views,
                &app.task_stream,
                &app.calendar.day(now),
                &app.calendar.month(now),
            )
            .await
            .map_err(internal)?;
            super::stage::reload_stages(app).await?;
            Ok(RebuildReport {
                dropped: r.dropped,
                accounts: r.accounts,
                credits: r.credits,
                awards: r.awards,
                tasks: r.tasks,
                credit_orders: r.credit_orders,
                signed_users: r.signed_users,
            })
        })
        .await
    }
}
