//! Activity stages: `stageActivity` (which activity a channel and source show, from Redis),
//! and the operators' `stages` / `activateStage`.

use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, query};
use async_graphql::{Context, ID, Object, Result, SimpleObject};
use domain::ErrorCode;
use domain::ids::ActivityId;
use persistence::mysql::stage::{Activated, MySqlStages};
use serde_json::json;

use super::access::admin;
use super::audit::audited;
use super::error::{invalid_argument, with_code};
use super::node::{STAGE, global_id};
use super::scalars::{DateTime, Page, id_json, id_of, long_id};
use crate::state::AppState;

/// A stage: the activity shown on a channel and source.
#[derive(SimpleObject, Debug, Clone)]
pub struct Stage {
    /// Global id: refetch this stage with `node(id:)` (admin only, as `stages`).
    pub id: ID,
    /// Stage id (the argument of `activateStage`).
    pub stage_id: ID,
    /// Channel.
    pub channel: String,
    /// Source.
    pub source: String,
    /// The activity shown.
    pub activity_id: ID,
    /// `create`, `active` or `expire`.
    pub state: String,
    /// Last change.
    pub updated_at: DateTime,
}

impl From<persistence::mysql::stage::Stage> for Stage {
    fn from(s: persistence::mysql::stage::Stage) -> Self {
        Self {
            id: global_id(STAGE, &s.id.to_string()),
            stage_id: id_of(s.id),
            channel: s.channel,
            source: s.source,
            activity_id: id_of(s.activity_id),
            state: s.state,
            updated_at: s.update_time.into(),
        }
    }
}

fn internal(e: impl std::fmt::Display) -> async_graphql::Error {
    super::error::internal_error("stages failed", e)
}

fn database(e: persistence::DbErr) -> async_graphql::Error {
    super::error::database_error("stages failed", e)
}

/// Largest `stages` page.
const MAX_PAGE: i32 = 100;
/// Longest channel / source (the columns are `varchar(8)`).
const MAX_KEY: usize = 8;

pub(crate) fn stages(app: &AppState) -> MySqlStages {
    MySqlStages::new(app.db.config.clone())
}

/// Writes the stage view from the config database.
pub(crate) async fn reload_stages(app: &AppState) -> Result<()> {
    let active = stages(app).active().await.map_err(database)?;
    let rows: Vec<(String, String, i64)> = active
        .into_iter()
        .map(|s| (s.channel, s.source, s.activity_id))
        .collect();
    app.views.put_stages(&rows).await.map_err(internal)
}

fn check_key(name: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.chars().count() > MAX_KEY {
        return Err(with_code(
            ErrorCode::IllegalParameter,
            format!("{name} must be 1..{MAX_KEY} characters"),
        ));
    }
    Ok(())
}

/// Stage queries.
#[derive(Default)]
pub struct StageQuery;

#[Object]
impl StageQuery {
    /// The activity shown on `channel` and `source` (the active stage), or null. Public;
    /// served from Redis.
    async fn stage_activity(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The channel (1–8 characters).")] channel: String,
        #[graphql(desc = "The source (1–8 characters).")] source: String,
    ) -> Result<Option<ID>> {
        check_key("channel", &channel)?;
        check_key("source", &source)?;
        let app = ctx.data::<Arc<AppState>>()?;
        if let Some(found) = app.views.stage(&channel, &source).await.map_err(internal)? {
            return Ok(found.map(id_of));
        }
        reload_stages(app).await?;
        Ok(app
            .views
            .stage(&channel, &source)
            .await
            .map_err(internal)?
            .flatten()
            .map(id_of))
    }

    /// Every stage by id (`first` ≤ 100, default 20; `after` = `endCursor`). Admin only.
    async fn stages(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Stages per page (0–100, default 20).")] first: Option<i32>,
        #[graphql(desc = "A previous page's `endCursor`.")] after: Option<String>,
    ) -> Result<Page<Stage>> {
        admin(ctx)?;
        let app = ctx.data::<Arc<AppState>>()?;
        let first = super::error::page_size(first, MAX_PAGE)?;
        let after_id = match &after {
            None => 0,
            Some(a) => a
                .parse::<i64>()
                .map_err(|_| with_code(ErrorCode::IllegalParameter, format!("invalid cursor {a:?}")))?,
        };
        query(
            None::<String>,
            None::<String>,
            Some(first),
            None,
            |_, _, first, _| async move {
                let first = first.unwrap_or(20);
                let mut rows = stages(app).list(after_id, first as u64 + 1).await.map_err(database)?;
                let has_next = rows.len() > first;
                rows.truncate(first);
                let mut conn = Connection::new(after.is_some(), has_next);
                conn.edges
                    .extend(rows.into_iter().map(|s| Edge::new(s.id.to_string(), Stage::from(s))));
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
        .map(Page)
    }
}

/// Stage mutations.
#[derive(Default)]
pub struct StageMutation;

#[Object]
impl StageMutation {
    /// Puts a stage on show: arms its activity (SKU stock counters, strategy), then marks it
    /// `active` and expires the other active stages of its channel and source, in one
    /// transaction. Re-runnable. Errors: `0002` unknown stage. Admin only.
    async fn activate_stage(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The stage (its `stageId`).")] stage_id: ID,
    ) -> Result<Stage> {
        audited(ctx, "activateStage", json!({ "stageId": id_json(&stage_id) }), async {
            let app = ctx.data::<Arc<AppState>>()?;
            let id = long_id("stageId", &stage_id)?;
            let unknown = || with_code(ErrorCode::IllegalParameter, format!("stage {id} does not exist"));
            let stage = stages(app).find(id).await.map_err(database)?.ok_or_else(unknown)?;
            let activity = ActivityId::parse(stage.activity_id).map_err(invalid_argument)?;
            super::activity::arm(app, activity).await?;
            let stage = match stages(app).activate(id).await.map_err(database)? {
                Activated::Active { stage, .. } => stage,
                Activated::NotFound => return Err(unknown()),
            };
            reload_stages(app).await?;
            Ok(Stage::from(stage))
        })
        .await
    }
}
