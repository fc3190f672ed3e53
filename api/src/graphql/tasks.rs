//! Outbox administration: `tasks` (paginated, across shards), `task`, `replayTask`.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, query};
use async_graphql::{ComplexObject, Context, Enum, ID, Object, Result, SimpleObject};
use domain::ErrorCode;
use domain::outbox::TaskState as DomainState;
use persistence::outbox::store::{Replay, TaskRow};
use persistence::redis::task_stream::TaskStatus;

use super::access;
use super::audit::audited;
use super::error::with_code;
use super::node::{TASK, global_id};
use super::scalars::{DateTime, Page};
use crate::state::AppState;
use serde_json::json;

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

/// An outbox event (a `task` row). The status fields come from the Redis read model; the
/// admin details (`message`, `lastError`, timestamps) are read from the shard when asked for.
#[derive(SimpleObject)]
#[graphql(complex)]
pub struct Task {
    /// Global id: refetch this event (its state) with `node(id:)`.
    pub id: ID,
    /// Message id (= envelope `id`; 64-bit).
    pub message_id: ID,
    /// User whose shard holds the row.
    pub user_id: String,
    /// Topic (= queue name).
    pub topic: String,
    /// State.
    pub state: TaskState,
    /// Publish attempts so far.
    pub attempts: i32,
    /// When it reached its state (read model) or last changed (shard).
    pub updated_at: DateTime,
    #[graphql(skip)]
    row: tokio::sync::OnceCell<Option<TaskRow>>,
}

impl From<TaskRow> for Task {
    fn from(t: TaskRow) -> Self {
        Self {
            id: global_id(TASK, &t.message_id),
            message_id: ID(t.message_id.clone()),
            user_id: t.user_id.clone(),
            topic: t.topic.clone(),
            state: t.state.into(),
            attempts: t.attempts,
            updated_at: t.updated_at.into(),
            row: tokio::sync::OnceCell::new_with(Some(Some(t))),
        }
    }
}

impl Task {
    fn from_status(message_id: String, s: TaskStatus) -> Self {
        Self {
            id: global_id(TASK, &message_id),
            message_id: ID(message_id),
            user_id: s.user_id,
            topic: s.topic,
            state: s.state.into(),
            attempts: s.attempts,
            updated_at: DateTime::from_millis(s.at_ms),
            row: tokio::sync::OnceCell::new(),
        }
    }

    async fn row(&self, ctx: &Context<'_>) -> Result<Option<&TaskRow>> {
        let app = ctx.data::<Arc<AppState>>()?;
        let row = self
            .row
            .get_or_try_init(|| async { app.tasks.find(&self.message_id).await.map_err(database) })
            .await?;
        Ok(row.as_ref())
    }
}

#[ComplexObject]
impl Task {
    /// The envelope JSON as published.
    async fn message(&self, ctx: &Context<'_>) -> Result<String> {
        Ok(self.row(ctx).await?.map(|r| r.message.clone()).unwrap_or_default())
    }

    /// The last publish error, or why the consumer recorded the event `DEAD` instead of applying
    /// it (`not applied: …` for a rebate, `no distributor configured …` for an award).
    async fn last_error(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        Ok(self.row(ctx).await?.and_then(|r| r.last_error.clone()))
    }

    /// Commit time.
    async fn created_at(&self, ctx: &Context<'_>) -> Result<DateTime> {
        Ok(self.row(ctx).await?.map_or(self.updated_at, |r| r.created_at.into()))
    }

    /// Broker confirm time.
    async fn published_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime>> {
        Ok(self.row(ctx).await?.and_then(|r| r.published_at).map(DateTime::from))
    }

    /// Consumer effect time.
    async fn delivered_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime>> {
        Ok(self.row(ctx).await?.and_then(|r| r.delivered_at).map(DateTime::from))
    }

    /// Next publish attempt (when failed).
    async fn next_attempt_at(&self, ctx: &Context<'_>) -> Result<Option<DateTime>> {
        Ok(self.row(ctx).await?.and_then(|r| r.next_attempt_at).map(DateTime::from))
    }

    /// The W3C trace id (32 hex digits) of the command that wrote this event — the GraphQL
    /// request's (its `traceresponse` header) or the consumed message's — to find the event's
    /// whole path (request, publish, consume) in the tracing backend. Null for events written
    /// outside a trace.
    async fn trace_id(&self, ctx: &Context<'_>) -> Result<Option<String>> {
        Ok(self
            .row(ctx)
            .await?
            .and_then(|r| r.traceparent.as_deref().and_then(trace_id_of).map(str::to_owned)))
    }
}

/// The trace id of a stored `traceparent` (`00-<trace id>-<span id>-<flags>`).
fn trace_id_of(traceparent: &str) -> Option<&str> {
    let id = traceparent.split('-').nth(1)?;
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())).then_some(id)
}

fn internal(e: impl std::fmt::Display) -> async_graphql::Error {
    super::error::internal_error("task admin failed", e)
}

fn database(e: persistence::DbErr) -> async_graphql::Error {
    super::error::database_error("task admin failed", e)
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
        #[graphql(desc = "Only events in this state (all when left out).")] state: Option<TaskState>,
        #[graphql(desc = "Events per page (0–100, default 20).")] first: Option<i32>,
        #[graphql(desc = "A previous page's `endCursor`.")] after: Option<String>,
    ) -> Result<Page<Task>> {
        access::admin(ctx)?;
        let app = ctx.data::<Arc<AppState>>()?;
        let first = super::error::page_size(first, MAX_PAGE as i32)?;
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
                    .map_err(database)?;
                let has_next = rows.len() as u64 > want;
                rows.truncate(want as usize);
                let mut conn = Connection::new(after.is_some(), has_next);
                conn.edges
                    .extend(rows.into_iter().map(|t| Edge::new(cursor(&t), Task::from(t))));
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
        .map(Page)
    }

    /// One outbox event by message id; null when unknown. Its status is read from Redis
    /// (falling back to the shard for events the read model has not seen yet).
    /// A user may read its own events; admins and services any.
    async fn task(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The event's message id (`messageId` of `draw`, `task`, …).")] message_id: ID,
    ) -> Result<Option<Task>> {
        find_task(ctx, message_id.0).await
    }
}

/// The event `message_id` if the caller may read it (as `task` answers; also `node`).
///
/// # Errors
/// `UNAUTHENTICATED` without a token, `FORBIDDEN` for another user's event, `0001` when a
/// store fails.
pub(crate) async fn find_task(ctx: &Context<'_>, message_id: String) -> Result<Option<Task>> {
    access::caller(ctx)?;
    let app = ctx.data::<Arc<AppState>>()?;
    if let Some(status) = app.task_stream.status(&message_id).await.map_err(internal)? {
        access::may_read_user(ctx, &status.user_id)?;
        return Ok(Some(Task::from_status(message_id, status)));
    }
    let row = app.tasks.find(&message_id).await.map_err(database)?;
    if let Some(row) = &row {
        access::may_read_user(ctx, &row.user_id)?;
    }
    Ok(row.map(Task::from))
}

/// Task mutations.
#[derive(Default)]
pub struct TaskMutation;

#[Object]
impl TaskMutation {
    /// Re-queues a dead (or failed) event: attempts reset, published again at once.
    /// Errors: `0002` unknown message id or a task that is not dead/failed.
    async fn replay_task(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The event's message id.")] message_id: ID,
    ) -> Result<Task> {
        let arguments = json!({ "messageId": message_id.as_str() });
        audited(ctx, "replayTask", arguments, self.replay(ctx, message_id.0)).await
    }
}

impl TaskMutation {
    async fn replay(&self, ctx: &Context<'_>, message_id: String) -> Result<Task> {
        let app = ctx.data::<Arc<AppState>>()?;
        match app.tasks.replay(&message_id).await.map_err(database)? {
            Replay::Requeued(t) => {
                if let Err(e) = app.task_stream.forget(&message_id).await {
                    tracing::warn!(error = %e, "could not reset the task's status view");
                }
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
