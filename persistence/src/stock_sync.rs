//! Durable stock convergence: the DB surplus follows the Redis counters in batches.
//!
//! The original queued one element per sold unit and applied them one per 5 s (spec §8.1
//! item 4). Here a periodic pass reads every award and SKU counter with one `MGET` per table
//! and lowers each durable surplus to the live value in a single `UPDATE` — never raising it,
//! so a stale or re-armed counter cannot give stock back. Several processes may run it.

use std::time::Duration;

use domain::ids::{AwardId, Sku, StrategyId};
use redis::aio::ConnectionManager;
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ConnectionTrait, DbErr};

use crate::mysql::db::Db;
use tokio::sync::watch;

use crate::redis::Keys;

fn c(name: &'static str) -> Alias {
    Alias::new(name)
}

/// What one pass changed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SyncReport {
    /// `strategy_award` rows lowered.
    pub awards: u64,
    /// `raffle_activity_sku` rows lowered.
    pub skus: u64,
}

/// The convergence worker.
pub struct StockSync {
    config: Db,
    redis: ConnectionManager,
    keys: Keys,
    interval: Duration,
}

impl StockSync {
    /// A worker over the config DB and the Redis counters under `keys`.
    pub fn new(config: Db, redis: ConnectionManager, keys: Keys, interval: Duration) -> Self {
        Self {
            config,
            redis,
            keys,
            interval,
        }
    }

    /// Runs a pass every interval until `shutdown` turns true.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            if let Err(e) = self.sync_once().await {
                tracing::warn!(error = %e, "stock sync pass failed");
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.changed() => {}
            }
        }
    }

    /// One pass over every award and SKU.
    ///
    /// # Errors
    /// When MySQL or Redis cannot be reached.
    pub async fn sync_once(&self) -> anyhow::Result<SyncReport> {
        let b = self.config.get_database_backend();
        let awards = self
            .config
            .query_all(
                b.build(
                    Query::select()
                        .columns([c("strategy_id"), c("award_id"), c("award_count_surplus")])
                        .from(c("strategy_award")),
                ),
            )
            .await?;
        let awards: Vec<(StrategyId, AwardId, i64)> = awards
            .iter()
            .map(|r| {
                Ok((
                    StrategyId::new(r.try_get("", "strategy_id")?),
                    AwardId::new(r.try_get("", "award_id")?),
                    i64::from(r.try_get::<i32>("", "award_count_surplus")?),
                ))
            })
            .collect::<Result<_, DbErr>>()?;
        let skus = self
            .config
            .query_all(
                b.build(
                    Query::select()
                        .columns([c("sku"), c("stock_count_surplus")])
                        .from(c("raffle_activity_sku")),
                ),
            )
            .await?;
        let skus: Vec<(Sku, i64)> = skus
            .iter()
            .map(|r| {
                Ok((
                    Sku::new(r.try_get("", "sku")?),
                    i64::from(r.try_get::<i32>("", "stock_count_surplus")?),
                ))
            })
            .collect::<Result<_, DbErr>>()?;
        let award_live = self
            .mget(awards.iter().map(|(s, a, _)| self.keys.award_stock(*s, *a)).collect())
            .await?;
        let sku_live = self
            .mget(skus.iter().map(|(s, _)| self.keys.sku_stock(*s)).collect())
            .await?;
        let mut report = SyncReport::default();
        for ((strategy, award, durable), live) in awards.iter().zip(award_live) {
            if let Some(live) = live.filter(|l| l < durable) {
                report.awards += self
                    .lower(
                        "strategy_award",
                        "award_count_surplus",
                        live,
                        &[("strategy_id", strategy.get()), ("award_id", i64::from(award.get()))],
                    )
                    .await?;
            }
        }
        for ((sku, durable), live) in skus.iter().zip(sku_live) {
            if let Some(live) = live.filter(|l| l < durable) {
                report.skus += self
                    .lower(
                        "raffle_activity_sku",
                        "stock_count_surplus",
                        live,
                        &[("sku", sku.get())],
                    )
                    .await?;
            }
        }
        Ok(report)
    }

    async fn mget(&self, keys: Vec<String>) -> redis::RedisResult<Vec<Option<i64>>> {
        if keys.is_empty() {
            return Ok(Vec::new());
        }
        let mut conn = self.redis.clone();
        redis::cmd("MGET").arg(keys).query_async(&mut conn).await
    }

    async fn lower(
        &self,
        table: &'static str,
        column: &'static str,
        live: i64,
        key: &[(&'static str, i64)],
    ) -> Result<u64, DbErr> {
        let live = live.max(0);
        let mut q = Query::update();
        q.table(c(table))
            .value(c(column), live)
            .and_where(Expr::col(c(column)).gt(live));
        for (k, v) in key {
            q.and_where(Expr::col(c(k)).eq(*v));
        }
        Ok(self
            .config
            .execute(self.config.get_database_backend().build(&q))
            .await?
            .rows_affected())
    }
}
