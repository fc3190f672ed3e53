//! Outbox administration: `tasks` (paginated, across shards), `task`, `replayTask`.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, EmptyFields, query};
use async_graphql::{Context, Enum, Object, Result, SimpleObject};
use chrono::{DateTime, NaiveDateTime, Utc};
use domain::ErrorCode;
use domain::outbox::TaskState as DomainState;
use persistence::task_repo::{Replay, TaskRow};

use super::error::with_code;
use crate::state::AppState;

/// Life of an outbox event.
#[derive(Enum, Copy, Clone, Eq, PartialEq, Debug)]
pub enum TaskState {
    /// Committed, not yet confirmed by the broker.
    Created,
    /// Confirmed by the broker.
    Published,
    /// A publish attempt failed; retried after a backoff.
    Fail,
    /// Exhausted its attempts; needs `replayTask`.
    Dead,
    /// Published and its consumer's effect committed.
    Delivered,
}

impl From<DomainState> for TaskState {
    fn from(s: DomainState) -> Self {
        match s {
            DomainState::Created => Self::Created,
            DomainState::Published => Self::Published,
            DomainState::Failed => Self::Fail,
            DomainState::Dead => Self::Dead,
            DomainState::Delivered => Self::Delivered,
        }
    }
}

impl From<TaskState> for DomainState {
    fn from(s: TaskState) -> Self {
        match s {
            TaskState::Created => Self::Created,
            TaskState::Published => Self::Published,
            TaskState::Fail => Self::Failed,
            TaskState::Dead => Self::Dead,
            TaskState::Delivered => Self::Delivered,
        }
    }
}

fn utc(t: NaiveDateTime) -> DateTime<Utc> {
    t.and_utc()
}

/// An outbox event (a `task` row).
#[derive(SimpleObject)]
pub struct Task {
    /// Message id (= envelope `id`).
    pub message_id: String,
    /// User whose shard holds the row.
    pub user_id: String,
    /// Topic (= queue name).
    pub topic: String,
    /// State.
    pub state: TaskState,
    /// Publish attempts so far.
    pub attempts: i32,
    /// Last publish error.
    pub last_error: Option<String>,
    /// The envelope JSON as published.
    pub message: String,
    /// Commit time.
    pub created_at: DateTime<Utc>,
    /// Last change.
    pub updated_at: DateTime<Utc>,
    /// Broker confirm time.
    pub published_at: Option<DateTime<Utc>>,
    /// Consumer effect time.
    pub delivered_at: Option<DateTime<Utc>>,
    /// Next publish attempt (when failed).
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl From<TaskRow> for Task {
    fn from(t: TaskRow) -> Self {
        Self {
            message_id: t.message_id,
            user_id: t.user_id,
            topic: t.topic,
            state: t.state.into(),
            attempts: t.attempts,
            last_error: t.last_error,
            message: t.message,
            created_at: utc(t.created_at),
            updated_at: utc(t.updated_at),
            published_at: t.published_at.map(utc),
            delivered_at: t.delivered_at.map(utc),
            next_attempt_at: t.next_attempt_at.map(utc),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> async_graphql::Error {
    tracing::error!(error = %e, "task admin failed");
    with_code(ErrorCode::Unknown, "internal error")
}

fn cursor(t: &TaskRow) -> String {
    format!("{}:{}", t.shard, t.id)
}

fn parse_cursor(s: &str) -> Result<(usize, u64)> {
    s.split_once(':')
        .and_then(|(a, b)| Some((a.parse().ok()?, b.parse().ok()?)))
        .ok_or_else(|| with_code(ErrorCode::IllegalParameter, format!("invalid cursor {s:?}")))
}

/// Largest page.
const MAX_PAGE: usize = 100;

/// Task queries.
#[derive(Default)]
pub struct TaskQuery;

#[Object]
impl TaskQuery {
    /// Outbox events across every shard, optionally in one state; forward pagination
    /// (`first` ≤ 100, default 20; `after` = a previous `endCursor`). Admin view, read from MySQL.
    async fn tasks(
        &self,
        ctx: &Context<'_>,
        state: Option<TaskState>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<String, Task, EmptyFields, EmptyFields>> {
        let app = ctx.data::<Arc<AppState>>()?;
        let first = first.unwrap_or(20);
        if !(0..=MAX_PAGE as i32).contains(&first) {
            return Err(with_code(
                ErrorCode::IllegalParameter,
                format!("first must be between 0 and {MAX_PAGE}"),
            ));
        }
        let after = after.as_deref().map(parse_cursor).transpose()?;
        query(
            None::<String>,
            None::<String>,
            Some(first),
            None,
            |_, _, first, _| async move {
                let want = first.unwrap_or(20) as u64;
                let mut rows = app
                    .tasks
                    .list(state.map(Into::into), after, want + 1)
                    .await
                    .map_err(internal)?;
                let has_next = rows.len() as u64 > want;
                rows.truncate(want as usize);
                let mut conn = Connection::new(after.is_some(), has_next);
                conn.edges
                    .extend(rows.into_iter().map(|t| Edge::new(cursor(&t), Task::from(t))));
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
    }

    /// One outbox event by message id; null when unknown.
    async fn task(&self, ctx: &Context<'_>, message_id: String) -> Result<Option<Task>> {
        let app = ctx.data::<Arc<AppState>>()?;
        Ok(app.tasks.find(&message_id).await.map_err(internal)?.map(Task::from))
    }
}

/// Task mutations.
#[derive(Default)]
pub struct TaskMutation;

#[Object]
impl TaskMutation {
    /// Re-queues a dead (or failed) event: attempts reset, published again at once.
    /// Errors: `0002` unknown message id or a task that is not dead/failed.
    async fn replay_task(&self, ctx: &Context<'_>, message_id: String) -> Result<Task> {
        let app = ctx.data::<Arc<AppState>>()?;
        match app.tasks.replay(&message_id).await.map_err(internal)? {
            Replay::Requeued(t) => {
                app.nudge.nudge(t.shard);
                Ok(t.into())
            }
            Replay::NotFound => Err(with_code(
                ErrorCode::IllegalParameter,
                format!("no task with message id {message_id}"),
            )),
            Replay::NotReplayable(t) => Err(with_code(
                ErrorCode::IllegalParameter,
                format!(
                    "task {message_id} is {:?}, only DEAD or FAIL tasks can be replayed",
                    TaskState::from(t.state)
                ),
            )),
        }
    }
}
