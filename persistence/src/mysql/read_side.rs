//! Building the user read models from MySQL: the full rebuild, and the single-view fallback
//! used when a view is missing (documented exception to "no MySQL on the query path": it
//! runs once per missing view, then the view serves).

use std::collections::HashMap;

use domain::ids::{ActivityId, AwardId};
use domain::outbox::{AccountSnapshot, INTERNAL_TOPICS, PeriodSnapshot, TaskState};
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ConnectionTrait, DbErr};

use crate::mysql::db::Db;

use crate::mysql::db::Databases;
use crate::redis::views::{AwardEntry, CreditView};
use crate::redis::{TaskEvent, TaskStream, UserViews};
use domain::events::CreditOrderSnapshot;

fn c(name: &'static str) -> Alias {
    Alias::new(name)
}

/// What a rebuild wrote.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RebuildReport {
    /// Keys dropped first.
    pub dropped: u64,
    /// Account views written.
    pub accounts: u64,
    /// Credit views written.
    pub credits: u64,
    /// Award history entries written.
    pub awards: u64,
    /// Task-status views written.
    pub tasks: u64,
    /// Credit orders written.
    pub credit_orders: u64,
    /// Users whose sign-in days were written.
    pub signed_users: u64,
}

type PeriodKey = (String, i64);

async fn periods(
    db: &Db,
    table: &'static str,
    key: &'static str,
    count: &'static str,
    surplus: &'static str,
    period: &str,
    user: Option<&str>,
) -> Result<HashMap<PeriodKey, PeriodSnapshot>, DbErr> {
    let mut q = Query::select();
    q.columns([c("user_id"), c("activity_id"), c(count), c(surplus)])
        .from(c(table))
        .and_where(Expr::col(c(key)).eq(period));
    if let Some(u) = user {
        q.and_where(Expr::col(c("user_id")).eq(u));
    }
    let mut out = HashMap::new();
    for r in db.query_all(db.get_database_backend().build(&q)).await? {
        out.insert(
            (r.try_get("", "user_id")?, r.try_get("", "activity_id")?),
            PeriodSnapshot {
                period: period.to_owned(),
                count: r.try_get("", count)?,
                surplus: r.try_get("", surplus)?,
            },
        );
    }
    Ok(out)
}

/// Account snapshots of one shard (optionally one user / activity) with today's and this
/// month's rows.
async fn accounts(db: &Db, day: &str, month: &str, user: Option<(&str, i64)>) -> Result<Vec<AccountSnapshot>, DbErr> {
    let mut q = Query::select();
    q.columns([
        c("user_id"),
        c("activity_id"),
        c("total_count"),
        c("total_count_surplus"),
        c("day_count"),
        c("month_count"),
        c("version"),
    ])
    .from(c("raffle_activity_account"));
    if let Some((u, a)) = user {
        q.and_where(Expr::col(c("user_id")).eq(u))
            .and_where(Expr::col(c("activity_id")).eq(a));
    }
    let u = user.map(|(u, _)| u);
    let mut days = periods(
        db,
        "raffle_activity_account_day",
        "day",
        "day_count",
        "day_count_surplus",
        day,
        u,
    )
    .await?;
    let mut months = periods(
        db,
        "raffle_activity_account_month",
        "month",
        "month_count",
        "month_count_surplus",
        month,
        u,
    )
    .await?;
    let mut out = Vec::new();
    for r in db.query_all(db.get_database_backend().build(&q)).await? {
        let key: PeriodKey = (r.try_get("", "user_id")?, r.try_get("", "activity_id")?);
        out.push(AccountSnapshot {
            activity_id: ActivityId::new(key.1),
            day: days.remove(&key),
            day_count: r.try_get("", "day_count")?,
            month: months.remove(&key),
            month_count: r.try_get("", "month_count")?,
            total_count: r.try_get("", "total_count")?,
            total_count_surplus: r.try_get("", "total_count_surplus")?,
            user_id: key.0,
            version: r.try_get("", "version")?,
        });
    }
    Ok(out)
}

async fn credits(db: &Db, user: Option<&str>) -> Result<Vec<(String, CreditView)>, DbErr> {
    let mut q = Query::select();
    q.columns([c("user_id"), c("total_amount"), c("available_amount"), c("version")])
        .from(c("user_credit_account"));
    if let Some(u) = user {
        q.and_where(Expr::col(c("user_id")).eq(u));
    }
    db.query_all(db.get_database_backend().build(&q))
        .await?
        .into_iter()
        .map(|r| {
            Ok((
                r.try_get("", "user_id")?,
                CreditView {
                    total_amount: r.try_get("", "total_amount")?,
                    available_amount: r.try_get("", "available_amount")?,
                    version: r.try_get("", "version")?,
                },
            ))
        })
        .collect()
}

/// Loads one account view from MySQL and stores it unless a newer one arrived meanwhile; zeros
/// (version 0, nothing stored) when the user has no account.
///
/// # Errors
/// When MySQL or Redis cannot be reached.
pub async fn load_account(
    db: &Databases,
    views: &UserViews,
    user: &str,
    activity: ActivityId,
    day: &str,
    month: &str,
) -> anyhow::Result<AccountSnapshot> {
    let (shard, _) = db.shard_of(user);
    match accounts(shard, day, month, Some((user, activity.get()))).await?.pop() {
        Some(snapshot) => {
            views.apply_account(&snapshot).await?;
            Ok(snapshot)
        }
        // No account: zeros, and no view is stored, so reads of unknown users create no keys.
        None => Ok(AccountSnapshot {
            activity_id: activity,
            day: None,
            day_count: 0,
            month: None,
            month_count: 0,
            total_count: 0,
            total_count_surplus: 0,
            user_id: user.to_owned(),
            version: 0,
        }),
    }
}

/// Loads one credit view from MySQL and stores it unless newer exists; zero (nothing stored)
/// when the user has no credit account.
///
/// # Errors
/// When MySQL or Redis cannot be reached.
pub async fn load_credit(db: &Databases, views: &UserViews, user: &str) -> anyhow::Result<CreditView> {
    let (shard, _) = db.shard_of(user);
    match credits(shard, Some(user)).await?.pop() {
        Some((_, view)) => {
            views.apply_credit(user, &view).await?;
            Ok(view)
        }
        // No credit account: zero, and no view is stored (no keys for unknown users).
        None => Ok(CreditView {
            total_amount: rust_decimal::Decimal::ZERO,
            available_amount: rust_decimal::Decimal::ZERO,
            version: 0,
        }),
    }
}

/// Every `(user, day)` a user signed in (`user_behavior_rebate_order`, behaviour `sign`) of one
/// split table, optionally of one user.
async fn signed_days(db: &Db, table: usize, user: Option<&str>) -> Result<HashMap<String, Vec<String>>, DbErr> {
    let mut q = Query::select();
    q.distinct()
        .columns([c("user_id"), c("out_business_no")])
        .from(Alias::new(format!("user_behavior_rebate_order_{table:03}")))
        .and_where(Expr::col(c("behavior_type")).eq(domain::credit::rebate::BEHAVIOR_SIGN));
    if let Some(u) = user {
        q.and_where(Expr::col(c("user_id")).eq(u));
    }
    let mut out: HashMap<String, Vec<String>> = HashMap::new();
    for r in db.query_all(db.get_database_backend().build(&q)).await? {
        out.entry(r.try_get("", "user_id")?)
            .or_default()
            .push(r.try_get("", "out_business_no")?);
    }
    Ok(out)
}

/// Whether `user` signed in on `day`, read from the user's shard; the sign-in view is built
/// for the user on the way (every day they signed), so the next read stays in Redis.
///
/// # Errors
/// When MySQL or Redis cannot be reached.
pub async fn load_signed(db: &Databases, views: &UserViews, user: &str, day: &str) -> anyhow::Result<bool> {
    let (shard, route) = db.shard_of(user);
    let days = signed_days(shard, route.table, Some(user))
        .await?
        .remove(user)
        .unwrap_or_default();
    views.mark_signed_loaded(user, &days).await?;
    Ok(days.iter().any(|d| d == day))
}

/// Credit orders of one split table.
async fn credit_orders(db: &Db, table: usize) -> Result<Vec<(String, CreditOrderSnapshot)>, DbErr> {
    let q = Query::select()
        .columns(crate::mysql::credit::CREDIT_ORDER_COLUMNS.map(c))
        .from(Alias::new(format!("user_credit_order_{table:03}")))
        .to_owned();
    db.query_all(db.get_database_backend().build(&q))
        .await?
        .into_iter()
        .map(|r| {
            let at: chrono::NaiveDateTime = r.try_get("", "create_time")?;
            Ok((
                r.try_get("", "user_id")?,
                CreditOrderSnapshot {
                    amount: r.try_get("", "trade_amount")?,
                    order_id: r.try_get("", "order_id")?,
                    order_time_ms: at.and_utc().timestamp_millis(),
                    out_business_no: r.try_get("", "out_business_no")?,
                    trade_name: r.try_get("", "trade_name")?,
                    trade_type: r.try_get("", "trade_type")?,
                },
            ))
        })
        .collect()
}

/// Drops every user view and task-status view and rebuilds them from all shards. Safe while
/// the service runs: versioned views accept only newer snapshots, award and task states only
/// move forward. The task-status streams (subscription history) are kept.
///
/// # Errors
/// When MySQL or Redis cannot be reached.
pub async fn rebuild(
    db: &Databases,
    views: &UserViews,
    tasks: &TaskStream,
    day: &str,
    month: &str,
) -> anyhow::Result<RebuildReport> {
    // Full scans of the split tables: bounded by the server's statement limit, not by the
    // response deadline of the command paths.
    let db = &db.for_maintenance();
    let mut report = RebuildReport {
        dropped: views.drop_all().await?,
        ..Default::default()
    };
    for shard in &db.shards {
        for s in accounts(shard, day, month, None).await? {
            views.apply_account(&s).await?;
            report.accounts += 1;
        }
        for (user, v) in credits(shard, None).await? {
            views.apply_credit(&user, &v).await?;
            report.credits += 1;
        }
        let q = Query::select()
            .columns([
                c("user_id"),
                c("topic"),
                c("message_id"),
                c("state"),
                c("attempts"),
                c("delivered_at"),
                c("update_time"),
            ])
            .from(c("task"))
            .to_owned();
        let mut batch = Vec::new();
        for r in shard.query_all(shard.get_database_backend().build(&q)).await? {
            let topic: String = r.try_get("", "topic")?;
            if INTERNAL_TOPICS.contains(&topic.as_str()) {
                continue;
            }
            let Some(message_id) = r.try_get::<Option<String>>("", "message_id")? else {
                continue;
            };
            let delivered: Option<chrono::NaiveDateTime> = r.try_get("", "delivered_at")?;
            let at: chrono::NaiveDateTime = r.try_get("", "update_time")?;
            batch.push(TaskEvent {
                cursor: String::new(),
                message_id,
                user_id: r.try_get("", "user_id")?,
                topic,
                state: TaskState::from_row(&r.try_get::<String>("", "state")?, delivered.is_some()),
                attempts: r.try_get("", "attempts")?,
                occurred_at_ms: delivered.unwrap_or(at).and_utc().timestamp_millis(),
            });
        }
        for chunk in batch.chunks(500) {
            tasks.set_states(chunk).await?;
            report.tasks += chunk.len() as u64;
        }
        for t in 0..db.router.tb_count() {
            let orders = credit_orders(shard, t).await?;
            for chunk in orders.chunks(500) {
                let batch: Vec<(&str, &CreditOrderSnapshot)> = chunk.iter().map(|(u, o)| (u.as_str(), o)).collect();
                views.add_credit_orders(&batch).await?;
                report.credit_orders += chunk.len() as u64;
            }
            for (user, days) in signed_days(shard, t, None).await? {
                views.mark_signed_loaded(&user, &days).await?;
                report.signed_users += 1;
            }
            let q = Query::select()
                .columns([
                    c("user_id"),
                    c("order_id"),
                    c("award_id"),
                    c("award_title"),
                    c("award_time"),
                    c("award_state"),
                ])
                .from(Alias::new(format!("user_award_record_{t:03}")))
                .to_owned();
            for r in shard.query_all(shard.get_database_backend().build(&q)).await? {
                let user: String = r.try_get("", "user_id")?;
                let time: chrono::NaiveDateTime = r.try_get("", "award_time")?;
                let state: String = r.try_get("", "award_state")?;
                let entry = AwardEntry {
                    order_id: r.try_get("", "order_id")?,
                    award_id: AwardId::new(r.try_get("", "award_id")?),
                    award_title: r.try_get("", "award_title")?,
                    award_time_ms: time.and_utc().timestamp_millis(),
                    delivered: state == "completed" || state == "complete",
                };
                views.add_award(&user, &entry).await?;
                report.awards += 1;
            }
        }
    }
    Ok(report)
}
