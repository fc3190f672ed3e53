//! The draw's two statements on the user's shard: the quota read and the one-call save.
//!
//! * [`LOAD_SQL`] reads the account with the day and month rows and the oldest unused ticket
//!   in one plain (non-locking) statement.
//! * [`save`] calls `bm_save_draw_v2_XXX` (migration `m20261201_000004_task_trace_context`;
//!   the first version, `bm_save_draw_XXX` of `m20261130_000001_draw_save_procedure`, stays for
//!   binaries of before it), which checks the version under the account row lock and writes
//!   ticket, quota, award record and outbox rows in its own transaction: one round trip for the
//!   whole save. The outbox rows get the trace context of the draw ([`crate::trace`]).
//!
//! Both can be given a response deadline (`database.response_timeout_ms`): the time a draw
//! waits for the shard's answer, so a shard that stops answering mid-statement fails the draw
//! instead of holding it. A save without an answer is [`SaveFailure::Unknown`].
//!
//! The statements are public so the benchmark's raw baseline sends exactly these.

use domain::activity::account::{PeriodQuota, QuotaAccount, Ticket};
use std::time::Duration;

use domain::activity::ports::{DrawSave, DrawSaved, SaveFailure};
use domain::ids::{ActivityId, OrderId};
use domain::ports::PortError;
use sea_orm::sqlx::mysql::{MySql, MySqlArguments};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbErr, QueryResult, RuntimeErr, Statement, Value};

use crate::mysql::db::{is_conflict, port_err};
use crate::mysql::quota::whole_seconds;

/// The quota read; `{tickets}` is the routed `user_raffle_order_XXX`. Parameters: day, month,
/// user id, activity id.
pub const LOAD_SQL: &str = "SELECT a.total_count, a.total_count_surplus, a.day_count, a.month_count, a.version, \
        d.day_count AS d_count, d.day_count_surplus AS d_left, \
        m.month_count AS m_count, m.month_count_surplus AS m_left, \
        (SELECT t.order_id FROM `{tickets}` t WHERE t.user_id = a.user_id AND t.activity_id = a.activity_id \
           AND t.order_state = 'create' ORDER BY t.id LIMIT 1) AS unused \
     FROM raffle_activity_account a \
     LEFT JOIN raffle_activity_account_day d ON d.user_id = a.user_id AND d.activity_id = a.activity_id AND d.day = ? \
     LEFT JOIN raffle_activity_account_month m ON m.user_id = a.user_id AND m.activity_id = a.activity_id AND m.month = ? \
     WHERE a.user_id = ? AND a.activity_id = ?";

/// The quota read for the split table `suffix` (`_001`).
pub fn load_sql(suffix: &str) -> String {
    LOAD_SQL.replace("{tickets}", &format!("user_raffle_order{suffix}"))
}

/// The save call for the split table `suffix`, with its 28 placeholders.
pub fn save_sql(suffix: &str) -> String {
    format!("CALL bm_save_draw_v2{suffix}({})", ["?"; 28].join(", "))
}

/// The load and save statements of every split table, rendered once.
#[derive(Debug, Clone)]
pub struct DrawStatements {
    load: Vec<String>,
    save: Vec<String>,
}

impl DrawStatements {
    /// The statements of split tables `_000` … for `tables` tables.
    pub fn new(tables: usize) -> Self {
        let suffixes: Vec<String> = (0..tables).map(|t| format!("_{t:03}")).collect();
        Self {
            load: suffixes.iter().map(|s| load_sql(s)).collect(),
            save: suffixes.iter().map(|s| save_sql(s)).collect(),
        }
    }

    /// The quota read of split table `table`.
    pub fn load(&self, table: usize) -> &str {
        self.load.get(table).map_or("", String::as_str)
    }

    /// The save call of split table `table`.
    pub fn save(&self, table: usize) -> &str {
        self.save.get(table).map_or("", String::as_str)
    }
}

/// Reads the user's quota (see [`LOAD_SQL`]); `None` without an account.
///
/// # Errors
/// The driver's error.
pub async fn load(
    db: &impl ConnectionTrait,
    sql: &str,
    user_id: &str,
    activity_id: ActivityId,
    day: &str,
    month: &str,
) -> Result<Option<QuotaAccount>, DbErr> {
    let stmt = Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        [day.into(), month.into(), user_id.into(), activity_id.get().into()],
    );
    let Some(r) = db.query_one(stmt).await? else {
        return Ok(None);
    };
    let period = |p: &str, count: &str, left: &str| -> Result<Option<PeriodQuota>, DbErr> {
        Ok(
            match (
                r.try_get::<Option<i32>>("", count)?,
                r.try_get::<Option<i32>>("", left)?,
            ) {
                (Some(count), Some(surplus)) => Some(PeriodQuota {
                    period: p.to_owned(),
                    count,
                    surplus,
                }),
                _ => None,
            },
        )
    };
    Ok(Some(QuotaAccount {
        user_id: user_id.to_owned(),
        activity_id,
        total_count: r.try_get("", "total_count")?,
        total_count_surplus: r.try_get("", "total_count_surplus")?,
        day_count: r.try_get("", "day_count")?,
        month_count: r.try_get("", "month_count")?,
        version: r.try_get("", "version")?,
        day: period(day, "d_count", "d_left")?,
        month: period(month, "m_count", "m_left")?,
        unused_ticket: r.try_get::<Option<String>>("", "unused")?.map(OrderId::new),
    }))
}

/// The 28 arguments of `bm_save_draw_v2_XXX`, in order; the last is the `traceparent` of the
/// current span, for the outbox rows.
pub fn save_values(save: &DrawSave<'_>) -> Vec<Value> {
    let p = save.partake;
    let at = whole_seconds(save.at);
    let (reused, day, month) = match &p.ticket {
        Ticket::Reused { .. } => (true, None, None),
        Ticket::Paid {
            after,
            new_day,
            new_month,
            ..
        } => (
            false,
            after.day.as_ref().map(|d| (d, *new_day)),
            after.month.as_ref().map(|m| (m, *new_month)),
        ),
    };
    let period = |row: Option<(&PeriodQuota, bool)>| -> [Value; 4] {
        match row {
            Some((r, new)) => [r.period.clone().into(), r.count.into(), r.surplus.into(), new.into()],
            None => [Value::String(None), Value::Int(None), Value::Int(None), false.into()],
        }
    };
    let mut v: Vec<Value> = vec![
        save.user_id.into(),
        save.activity.activity_id.get().into(),
        p.expected_version.into(),
        reused.into(),
        p.order_id().as_str().into(),
    ];
    v.extend(period(day));
    v.extend(period(month));
    v.extend([
        save.activity.activity_name.clone().into(),
        save.activity.strategy_id.get().into(),
        save.award.award_id.get().into(),
        save.award.award_title.clone().into(),
        at.into(),
    ]);
    for i in 0..3 {
        match save.outbox.get(i) {
            Some(m) => v.extend([m.topic.into(), m.message_id.as_str().into(), m.message.clone().into()]),
            None => v.extend([Value::String(None), Value::String(None), Value::String(None)]),
        }
    }
    v.push(crate::trace::current_traceparent().into());
    v
}

/// Binds sea-orm values (the kinds [`save_values`] produces) to a sqlx query.
fn bind<'q>(
    mut query: sea_orm::sqlx::query::Query<'q, MySql, MySqlArguments>,
    values: &'q [Value],
) -> Result<sea_orm::sqlx::query::Query<'q, MySql, MySqlArguments>, DbErr> {
    for value in values {
        query = match value {
            Value::String(s) => query.bind(s.as_deref().map(String::as_str)),
            Value::Int(i) => query.bind(*i),
            Value::BigInt(i) => query.bind(*i),
            Value::Bool(b) => query.bind(*b),
            Value::ChronoDateTime(t) => query.bind(t.as_deref().copied()),
            other => return Err(DbErr::Custom(format!("a draw save cannot bind {other:?}"))),
        };
    }
    Ok(query)
}

/// Calls the save procedure and reads its outcome. The call first takes a connection (within
/// the pool's acquire timeout: a save that gets none is not sent); with `response_timeout`, it
/// then waits at most that long for the answer.
///
/// # Errors
/// [`SaveFailure`] for a duplicate award record, a lost deadlock or a driver error;
/// [`SaveFailure::Unknown`] when the call was sent and its answer did not come within
/// `response_timeout` or the connection broke meanwhile (the connection is then dropped).
pub async fn save(
    db: &DatabaseConnection,
    sql: &str,
    save: &DrawSave<'_>,
    response_timeout: Option<Duration>,
) -> Result<DrawSaved, SaveFailure> {
    use sea_orm::sqlx::Error as Sqlx;
    if save.outbox.is_empty() || save.outbox.len() > 3 {
        return Err(SaveFailure::Port(PortError::new(
            "draw save",
            format!("a draw writes 1 to 3 outbox rows, not {}", save.outbox.len()),
        )));
    }
    let values = save_values(save);
    let query = bind(sea_orm::sqlx::query(sql), &values).map_err(|e| SaveFailure::Port(port_err(e)))?;
    let mut conn = db
        .get_mysql_connection_pool()
        .acquire()
        .await
        .map_err(|e| SaveFailure::Port(port_err(DbErr::Conn(RuntimeErr::SqlxError(e)))))?;
    let answer = match response_timeout {
        None => query.fetch_one(&mut *conn).await,
        Some(limit) => match tokio::time::timeout(limit, query.fetch_one(&mut *conn)).await {
            Ok(answer) => answer,
            Err(_) => {
                // Whatever the connection says later belongs to a call nobody waits for.
                drop(conn.detach());
                return Err(SaveFailure::Unknown(PortError::new(
                    "draw save",
                    format!(
                        "no answer from the shard within {} ms; the save may still be applied",
                        limit.as_millis()
                    ),
                )));
            }
        },
    };
    let row = match answer {
        Ok(row) => Some(QueryResult::from(row)),
        Err(Sqlx::RowNotFound) => None,
        Err(e @ (Sqlx::Io(_) | Sqlx::Protocol(_) | Sqlx::WorkerCrashed)) => {
            return Err(SaveFailure::Unknown(port_err(DbErr::Query(RuntimeErr::SqlxError(e)))));
        }
        Err(e) => {
            let e = DbErr::Query(RuntimeErr::SqlxError(e));
            return Err(if is_conflict(&e) {
                SaveFailure::Conflict(port_err(e))
            } else {
                SaveFailure::Port(port_err(e))
            });
        }
    };
    let outcome = outcome(row).map_err(|e| SaveFailure::Port(port_err(e)))?;
    match outcome.as_str() {
        "saved" => Ok(DrawSaved::Saved),
        "duplicate_award" => Err(SaveFailure::AwardRecorded),
        // The account moved, or a row this decision meant to create exists already: the
        // decision is stale either way, and nothing was written.
        "moved" | "duplicate_month" | "duplicate_day" | "duplicate_ticket" | "duplicate_task" => Ok(DrawSaved::Moved),
        other => Err(SaveFailure::Port(PortError::new(
            "draw save",
            format!("unexpected outcome {other:?} of {sql}"),
        ))),
    }
}

fn outcome(row: Option<QueryResult>) -> Result<String, DbErr> {
    // By position: the column names of a result set sent from inside a procedure are not
    // reliably reported through the prepared-statement protocol.
    row.ok_or_else(|| DbErr::RecordNotFound("bm_save_draw answered no outcome".into()))?
        .try_get_by_index(0)
}
