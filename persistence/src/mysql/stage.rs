//! Activity stages (`raffle_activity_stage`, config database): which activity a channel and
//! source show. One stage per `(channel, source)` is `active`; activating one expires the
//! others of its channel and source in the same transaction.

use sea_orm::sea_query::{Alias, Expr, Order, Query};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};

use crate::mysql::db::Db;

fn c(name: &'static str) -> Alias {
    Alias::new(name)
}

/// One stage row.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Stage {
    /// Row id.
    pub id: i64,
    /// Channel (≤ 8 characters).
    pub channel: String,
    /// Source (≤ 8 characters).
    pub source: String,
    /// The activity shown.
    pub activity_id: i64,
    /// `create`, `active` or `expire`.
    pub state: String,
    /// Last change (UTC).
    pub update_time: chrono::NaiveDateTime,
}

/// What activating a stage did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Activated {
    /// The stage is active now (it may have been already); the stages it replaced expired.
    Active {
        /// The stage after the change.
        stage: Stage,
        /// Stages of the same channel and source that were active and are expired now.
        expired: u64,
    },
    /// No stage has this id.
    NotFound,
}

const COLUMNS: [&str; 6] = ["id", "channel", "source", "activity_id", "state", "update_time"];

fn read(r: &QueryResult) -> Result<Stage, DbErr> {
    Ok(Stage {
        id: r.try_get::<u32>("", "id").map(i64::from)?,
        channel: r.try_get("", "channel")?,
        source: r.try_get("", "source")?,
        activity_id: r.try_get("", "activity_id")?,
        state: r.try_get("", "state")?,
        update_time: r.try_get("", "update_time")?,
    })
}

/// Stage administration over the config database.
#[derive(Debug, Clone)]
pub struct MySqlStages {
    db: Db,
}

impl MySqlStages {
    /// Stages of the config database `db`.
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Up to `limit` stages with an id above `after`, by id.
    ///
    /// # Errors
    /// The driver's error.
    pub async fn list(&self, after: i64, limit: u64) -> Result<Vec<Stage>, DbErr> {
        let q = Query::select()
            .columns(COLUMNS.map(c))
            .from(c("raffle_activity_stage"))
            .and_where(Expr::col(c("id")).gt(after))
            .order_by(c("id"), Order::Asc)
            .limit(limit)
            .to_owned();
        let b = self.db.get_database_backend();
        self.db.query_all(b.build(&q)).await?.iter().map(read).collect()
    }

    /// One stage.
    ///
    /// # Errors
    /// The driver's error.
    pub async fn find(&self, id: i64) -> Result<Option<Stage>, DbErr> {
        let q = Query::select()
            .columns(COLUMNS.map(c))
            .from(c("raffle_activity_stage"))
            .and_where(Expr::col(c("id")).eq(id))
            .to_owned();
        let b = self.db.get_database_backend();
        self.db.query_one(b.build(&q)).await?.as_ref().map(read).transpose()
    }

    /// Every active stage (the read model's source).
    ///
    /// # Errors
    /// The driver's error.
    pub async fn active(&self) -> Result<Vec<Stage>, DbErr> {
        let q = Query::select()
            .columns(COLUMNS.map(c))
            .from(c("raffle_activity_stage"))
            .and_where(Expr::col(c("state")).eq("active"))
            .order_by(c("id"), Order::Asc)
            .to_owned();
        let b = self.db.get_database_backend();
        self.db.query_all(b.build(&q)).await?.iter().map(read).collect()
    }

    /// Marks stage `id` active and expires the other active stages of its channel and source,
    /// in one transaction. Arm its activity first: a stage is shown as soon as this commits.
    ///
    /// # Errors
    /// The driver's error.
    pub async fn activate(&self, id: i64) -> Result<Activated, DbErr> {
        let Some(stage) = self.find(id).await? else {
            return Ok(Activated::NotFound);
        };
        let tx = self.db.begin().await?;
        let b = tx.get_database_backend();
        let expire = Query::update()
            .table(c("raffle_activity_stage"))
            .value(c("state"), "expire")
            .and_where(Expr::col(c("channel")).eq(stage.channel.as_str()))
            .and_where(Expr::col(c("source")).eq(stage.source.as_str()))
            .and_where(Expr::col(c("state")).eq("active"))
            .and_where(Expr::col(c("id")).ne(id))
            .to_owned();
        let expired = tx.execute(b.build(&expire)).await?.rows_affected();
        let activate = Query::update()
            .table(c("raffle_activity_stage"))
            .value(c("state"), "active")
            .and_where(Expr::col(c("id")).eq(id))
            .to_owned();
        tx.execute(b.build(&activate)).await?;
        tx.commit().await?;
        Ok(match self.find(id).await? {
            Some(stage) => Activated::Active { stage, expired },
            None => Activated::NotFound,
        })
    }
}
