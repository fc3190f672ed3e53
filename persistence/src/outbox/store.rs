//! Every statement on the outbox table `task`: the insert that commands run in their
//! transaction, the relay's claim and settle statements, and the admin list / find / replay.
//!
//! The admin path is not a user query: it reads MySQL directly (the task-status read model
//! serves clients). States are written through [`TaskState::column_value`], never as literals.

use chrono::NaiveDateTime;
use domain::outbox::{OutboxMessage, TaskState};
use sea_orm::sea_query::{Alias, Cond, Expr, LockBehavior, LockType, Order, Query, SelectStatement};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};

use crate::mysql::db::Databases;

fn c(name: &'static str) -> Alias {
    Alias::new(name)
}

/// Inserts `rows` into the outbox (`task`, state `create`) in one statement on `db` (the
/// transaction that commits them with their business rows, or a shard connection), with the
/// trace context of the command that writes them (`traceparent`, [`crate::trace`]).
///
/// # Errors
/// The database error.
pub async fn insert_outbox(db: &impl ConnectionTrait, rows: &[OutboxMessage]) -> Result<(), DbErr> {
    if rows.is_empty() {
        return Ok(());
    }
    let traceparent = crate::trace::current_traceparent();
    let mut q = Query::insert();
    q.into_table(c("task")).columns([
        c("user_id"),
        c("topic"),
        c("message_id"),
        c("message"),
        c("state"),
        c("traceparent"),
    ]);
    for m in rows {
        q.values_panic([
            m.user_id.clone().into(),
            m.topic.into(),
            m.message_id.as_str().into(),
            m.message.clone().into(),
            TaskState::Created.column_value().into(),
            traceparent.clone().into(),
        ]);
    }
    db.execute(db.get_database_backend().build(&q)).await.map(|_| ())
}

/// One outbox row with its shard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRow {
    /// Shard index (0 = `big_market_01`).
    pub shard: usize,
    /// Row id within the shard.
    pub id: u64,
    /// Routing user.
    pub user_id: String,
    /// Topic.
    pub topic: String,
    /// Message id.
    pub message_id: String,
    /// Envelope JSON.
    pub message: String,
    /// Derived state.
    pub state: TaskState,
    /// Publish attempts.
    pub attempts: i32,
    /// Last publish error.
    pub last_error: Option<String>,
    /// Commit time.
    pub created_at: NaiveDateTime,
    /// Last change.
    pub updated_at: NaiveDateTime,
    /// Broker confirm time.
    pub published_at: Option<NaiveDateTime>,
    /// Consumer effect time.
    pub delivered_at: Option<NaiveDateTime>,
    /// Next publish attempt (backoff).
    pub next_attempt_at: Option<NaiveDateTime>,
    /// W3C trace context of the command that wrote the row (`None` for rows written outside
    /// a trace or by older code).
    pub traceparent: Option<String>,
}

/// What `replay` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replay {
    /// Reset to pending; the relay publishes it again.
    Requeued(TaskRow),
    /// No task has that message id.
    NotFound,
    /// The task is not dead or failed (e.g. already published).
    NotReplayable(TaskRow),
}

/// Outbox administration over every shard.
#[derive(Debug, Clone)]
pub struct MySqlTaskAdmin {
    db: Databases,
}

const COLUMNS: [&str; 14] = [
    "id",
    "user_id",
    "topic",
    "message_id",
    "message",
    "state",
    "attempts",
    "last_error",
    "create_time",
    "update_time",
    "published_at",
    "delivered_at",
    "next_attempt_at",
    "traceparent",
];

impl MySqlTaskAdmin {
    /// Admin over `db`.
    pub fn new(db: Databases) -> Self {
        Self { db }
    }

    fn select() -> SelectStatement {
        let mut q = Query::select();
        q.columns(COLUMNS.map(c)).from(c("task"));
        q
    }

    fn row(shard: usize, r: &QueryResult) -> Result<TaskRow, DbErr> {
        let id: u64 = r.try_get("", "id")?;
        let state: String = r.try_get("", "state")?;
        let delivered_at: Option<NaiveDateTime> = r.try_get("", "delivered_at")?;
        Ok(TaskRow {
            shard,
            id,
            user_id: r.try_get("", "user_id")?,
            topic: r.try_get("", "topic")?,
            message_id: r
                .try_get::<Option<String>>("", "message_id")?
                .unwrap_or_else(|| format!("task-{id}")),
            message: r.try_get("", "message")?,
            state: TaskState::from_row(&state, delivered_at.is_some()),
            attempts: r.try_get("", "attempts")?,
            last_error: r.try_get("", "last_error")?,
            created_at: r.try_get("", "create_time")?,
            updated_at: r.try_get("", "update_time")?,
            published_at: r.try_get("", "published_at")?,
            delivered_at,
            next_attempt_at: r.try_get("", "next_attempt_at")?,
            traceparent: r.try_get("", "traceparent")?,
        })
    }

    /// Up to `first` tasks in `(shard, id)` order after the cursor `after`, optionally in one state.
    ///
    /// # Errors
    /// When a shard cannot be read.
    pub async fn list(
        &self,
        state: Option<TaskState>,
        after: Option<(usize, u64)>,
        first: u64,
    ) -> Result<Vec<TaskRow>, DbErr> {
        let mut out = Vec::new();
        for (shard, db) in self.db.shards.iter().enumerate() {
            let remaining = first.saturating_sub(out.len() as u64);
            if remaining == 0 {
                break;
            }
            if matches!(after, Some((s, _)) if s > shard) {
                continue;
            }
            let mut q = Self::select();
            if let Some((s, id)) = after
                && s == shard
            {
                q.and_where(Expr::col(c("id")).gt(id));
            }
            if let Some(st) = state {
                q.and_where(Expr::col(c("state")).eq(st.column_value()));
                match st {
                    TaskState::Delivered => q.and_where(Expr::col(c("delivered_at")).is_not_null()),
                    TaskState::Published => q.and_where(Expr::col(c("delivered_at")).is_null()),
                    _ => &mut q,
                };
            }
            q.order_by(c("id"), Order::Asc).limit(remaining);
            for r in db.query_all(db.get_database_backend().build(&q)).await? {
                out.push(Self::row(shard, &r)?);
            }
        }
        Ok(out)
    }

    /// The task with `message_id`, on whichever shard holds it.
    ///
    /// # Errors
    /// When a shard cannot be read.
    pub async fn find(&self, message_id: &str) -> Result<Option<TaskRow>, DbErr> {
        for (shard, db) in self.db.shards.iter().enumerate() {
            let q = Self::select()
                .and_where(Expr::col(c("message_id")).eq(message_id))
                .to_owned();
            if let Some(r) = db.query_one(db.get_database_backend().build(&q)).await? {
                return Ok(Some(Self::row(shard, &r)?));
            }
        }
        Ok(None)
    }

    /// Resets a dead (or failed) task to pending with its attempts cleared.
    ///
    /// # Errors
    /// When a shard cannot be read or written.
    pub async fn replay(&self, message_id: &str) -> Result<Replay, DbErr> {
        let Some(task) = self.find(message_id).await? else {
            return Ok(Replay::NotFound);
        };
        if !matches!(task.state, TaskState::Dead | TaskState::Failed) {
            return Ok(Replay::NotReplayable(task));
        }
        let db = &self.db.shards[task.shard];
        let q = Query::update()
            .table(c("task"))
            .value(c("state"), TaskState::Created.column_value())
            .value(c("attempts"), 0)
            .value(c("next_attempt_at"), Option::<NaiveDateTime>::None)
            .value(c("last_error"), Option::<String>::None)
            .and_where(Expr::col(c("id")).eq(task.id))
            .and_where(Expr::col(c("state")).is_in([TaskState::Dead.column_value(), TaskState::Failed.column_value()]))
            .to_owned();
        db.execute(db.get_database_backend().build(&q)).await?;
        Ok(match self.find(message_id).await? {
            Some(t) => Replay::Requeued(t),
            None => Replay::NotFound,
        })
    }
}

/// A `task` row claimed by the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claimed {
    /// Row id within its shard.
    pub id: u64,
    /// Routing user.
    pub user_id: String,
    /// Claimed for the first time (`create`, no attempt yet): its `CREATED` is announced.
    pub fresh: bool,
    /// Topic.
    pub topic: String,
    /// Message id (`task-{id}` for rows of the original written without one).
    pub message_id: String,
    /// The envelope JSON.
    pub message: String,
    /// Publish attempts so far.
    pub attempts: u32,
    /// The W3C trace context of the command that wrote the row (`NULL` for rows written
    /// without one, e.g. by older code).
    pub traceparent: Option<String>,
}

/// Claims up to `limit` due rows, oldest first, locking them with `FOR UPDATE SKIP LOCKED`
/// inside `tx`, so concurrent loops and processes never claim the same row: first new rows
/// (`create`), then failed rows whose retry time has come (`fail`).
///
/// Two statements, each walking an index in the order it returns (`(state, id)`, then
/// `(state, next_attempt_at, id)`) and stopping at its limit. One statement over both states
/// had to sort, and a locking read that sorts locks every candidate row before the limit
/// applies: a second claimer then skipped them all and found nothing.
///
/// # Errors
/// The driver's error.
pub async fn claim(tx: &impl ConnectionTrait, limit: u64, now: NaiveDateTime) -> Result<Vec<Claimed>, DbErr> {
    let select = || {
        Query::select()
            .columns([
                c("id"),
                c("user_id"),
                c("topic"),
                c("message_id"),
                c("message"),
                c("attempts"),
                c("state"),
                c("traceparent"),
            ])
            .from(c("task"))
            .to_owned()
    };
    let fresh = select()
        .and_where(Expr::col(c("state")).eq(TaskState::Created.column_value()))
        .cond_where(
            Cond::any()
                .add(Expr::col(c("next_attempt_at")).is_null())
                .add(Expr::col(c("next_attempt_at")).lte(now)),
        )
        .order_by(c("id"), Order::Asc)
        .limit(limit)
        .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
        .to_owned();
    let mut rows = tx.query_all(tx.get_database_backend().build(&fresh)).await?;
    let left = limit.saturating_sub(rows.len() as u64);
    if left > 0 {
        let retries = select()
            .and_where(Expr::col(c("state")).eq(TaskState::Failed.column_value()))
            .and_where(Expr::col(c("next_attempt_at")).lte(now))
            .order_by(c("next_attempt_at"), Order::Asc)
            .order_by(c("id"), Order::Asc)
            .limit(left)
            .lock_with_behavior(LockType::Update, LockBehavior::SkipLocked)
            .to_owned();
        rows.extend(tx.query_all(tx.get_database_backend().build(&retries)).await?);
    }
    rows.into_iter()
        .map(|r| {
            let id: u64 = r.try_get("", "id")?;
            let attempts: i32 = r.try_get("", "attempts")?;
            Ok(Claimed {
                id,
                user_id: r.try_get("", "user_id")?,
                fresh: attempts == 0 && r.try_get::<String>("", "state")? == TaskState::Created.column_value(),
                topic: r.try_get("", "topic")?,
                message_id: r
                    .try_get::<Option<String>>("", "message_id")?
                    .unwrap_or_else(|| format!("task-{id}")),
                message: r.try_get("", "message")?,
                attempts: u32::try_from(attempts).unwrap_or(0),
                traceparent: r.try_get("", "traceparent")?,
            })
        })
        .collect()
}

/// Marks confirmed rows published (`completed`, `published_at`, one more attempt).
///
/// # Errors
/// The driver's error.
pub async fn mark_published(tx: &impl ConnectionTrait, ids: &[u64], now: NaiveDateTime) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    let q = Query::update()
        .table(c("task"))
        .value(c("state"), TaskState::Published.column_value())
        .value(c("published_at"), now)
        .value(c("last_error"), Option::<String>::None)
        .value(c("attempts"), Expr::col(c("attempts")).add(1))
        .and_where(Expr::col(c("id")).is_in(ids.iter().copied()))
        .to_owned();
    tx.execute(tx.get_database_backend().build(&q)).await.map(|_| ())
}

/// Records a failed publish attempt: `fail` with the next attempt's time, or `dead` when
/// `dead` is set; the reason is kept (first 500 characters).
///
/// # Errors
/// The driver's error.
pub async fn mark_failed(
    tx: &impl ConnectionTrait,
    id: u64,
    attempts: u32,
    dead: bool,
    next_attempt_at: NaiveDateTime,
    reason: &str,
) -> Result<(), DbErr> {
    let reason: String = reason.chars().take(500).collect();
    let state = if dead { TaskState::Dead } else { TaskState::Failed };
    let q = Query::update()
        .table(c("task"))
        .value(c("state"), state.column_value())
        .value(c("attempts"), attempts)
        .value(c("next_attempt_at"), next_attempt_at)
        .value(c("last_error"), reason)
        .and_where(Expr::col(c("id")).eq(id))
        .to_owned();
    tx.execute(tx.get_database_backend().build(&q)).await.map(|_| ())
}

/// Leases claimed rows until `until`: their `next_attempt_at` moves there, so no claim takes
/// them meanwhile, and the claiming transaction can commit before the broker is asked. A relay
/// that dies holding a lease leaves rows that become due again when it ends.
///
/// # Errors
/// The driver's error.
pub async fn lease(tx: &impl ConnectionTrait, ids: &[u64], until: NaiveDateTime) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    let q = Query::update()
        .table(c("task"))
        .value(c("next_attempt_at"), until)
        .and_where(Expr::col(c("id")).is_in(ids.iter().copied()))
        .to_owned();
    tx.execute(tx.get_database_backend().build(&q)).await.map(|_| ())
}

/// Puts leased rows back, due at `at`, without counting an attempt (the broker could not be
/// asked at all).
///
/// # Errors
/// The driver's error.
pub async fn defer(conn: &impl ConnectionTrait, ids: &[u64], at: NaiveDateTime) -> Result<(), DbErr> {
    if ids.is_empty() {
        return Ok(());
    }
    let q = Query::update()
        .table(c("task"))
        .value(c("next_attempt_at"), at)
        .and_where(Expr::col(c("id")).is_in(ids.iter().copied()))
        .and_where(Expr::col(c("state")).is_in([TaskState::Created.column_value(), TaskState::Failed.column_value()]))
        .to_owned();
    conn.execute(conn.get_database_backend().build(&q)).await.map(|_| ())
}

/// Marks the task of a consumed message `dead` with `reason` (a consumer found it can never
/// apply as it stands; `replayTask` sends it again). Only a row the relay recorded as published
/// (or dead already) is marked: a row still `create` / `fail` is about to be marked published by
/// its relay, which would overwrite `dead`, so the caller retries the message shortly.
///
/// # Errors
/// The driver's error.
pub async fn mark_consumed_dead(
    db: &impl ConnectionTrait,
    message_id: &str,
    reason: &str,
) -> Result<domain::award::DeadMark, DbErr> {
    use domain::award::DeadMark;
    let b = db.get_database_backend();
    let reason: String = reason.chars().take(500).collect();
    let mark = Query::update()
        .table(c("task"))
        .value(c("state"), TaskState::Dead.column_value())
        .value(c("last_error"), reason)
        .and_where(Expr::col(c("message_id")).eq(message_id))
        .and_where(Expr::col(c("state")).is_in([
            TaskState::Published.column_value(),
            "complete",
            TaskState::Dead.column_value(),
        ]))
        .and_where(Expr::col(c("delivered_at")).is_null())
        .to_owned();
    // Rows matched, not changed (the driver asks for CLIENT_FOUND_ROWS).
    let marked = db.execute(b.build(&mark)).await?.rows_affected();
    let q = Query::select()
        .columns([c("attempts"), c("delivered_at")])
        .from(c("task"))
        .and_where(Expr::col(c("message_id")).eq(message_id))
        .to_owned();
    let Some(row) = db.query_one(b.build(&q)).await? else {
        return Ok(DeadMark::NoTask);
    };
    let delivered: Option<NaiveDateTime> = row.try_get("", "delivered_at")?;
    Ok(if delivered.is_some() {
        DeadMark::Delivered
    } else if marked > 0 {
        DeadMark::Marked {
            attempts: row.try_get("", "attempts")?,
        }
    } else {
        DeadMark::NotPublished
    })
}

/// One shard's outbox at a glance (the `/metrics` gauges).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Rows not yet published: `create` (leased ones included) and `fail`.
    pub pending: i64,
    /// Seconds since the oldest pending row was created (by the database's clock); 0 when
    /// none is pending.
    pub oldest_pending_age_secs: i64,
    /// Rows in state `dead`.
    pub dead: i64,
}

/// Counts the pending and dead rows of a shard and the age of its oldest pending row, in one
/// statement that walks only `idx_state` (`(state, id)`): the oldest pending row is the lowest
/// id of each state, so no row is sorted.
///
/// # Errors
/// The driver's error.
pub async fn backlog(db: &impl ConnectionTrait) -> Result<Backlog, DbErr> {
    let (created, failed, dead) = (
        TaskState::Created.column_value(),
        TaskState::Failed.column_value(),
        TaskState::Dead.column_value(),
    );
    let sql = "SELECT \
        CAST((SELECT COUNT(*) FROM task WHERE state = ?) + (SELECT COUNT(*) FROM task WHERE state = ?) AS SIGNED) AS pending, \
        CAST((SELECT COUNT(*) FROM task WHERE state = ?) AS SIGNED) AS dead, \
        (SELECT CAST(TIMESTAMPDIFF(SECOND, MIN(create_time), NOW()) AS SIGNED) FROM task WHERE id IN \
            ((SELECT MIN(id) FROM task WHERE state = ?), (SELECT MIN(id) FROM task WHERE state = ?))) AS oldest";
    let stmt = sea_orm::Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        [created, failed, dead, created, failed].map(Into::into),
    );
    let Some(row) = db.query_one(stmt).await? else {
        return Ok(Backlog::default());
    };
    Ok(Backlog {
        pending: row.try_get("", "pending")?,
        oldest_pending_age_secs: row.try_get::<Option<i64>>("", "oldest")?.unwrap_or(0).max(0),
        dead: row.try_get("", "dead")?,
    })
}
