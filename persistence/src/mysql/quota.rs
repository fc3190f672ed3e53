//! User quota on the shards: the draw's load and save (statements in [`crate::mysql::draw_save`]),
//! the recharge save, and the durable stock ledgers.
//!
//! Every user's rows live on one shard (the router), so each save is a single local
//! transaction there. Split tables (`_000.._003`) are addressed by the routed suffix with
//! sea-query. The adapter stores what the domain decided and holds no business rule:
//! concurrency is handled by optimistic guards (the account `version` the decision was made
//! on, exactly-one-row checks), and a failed guard is reported as an outcome (`Moved`,
//! `OutBusinessNoUsed`) for the command to act on. Duplicate keys and lost deadlocks are
//! recognised by their MySQL error numbers.

use std::collections::HashMap;

use domain::activity::account::QuotaAccount;
use domain::activity::ports::{
    DrawSave, DrawSaved, ExistingRecharge, QuotaRepository, RechargeSave, RechargeSaved, SaveFailure,
};
use domain::ids::{ActivityId, AwardId, OrderId, Sku, StrategyId};
use domain::ports::{AwardLedger, PortError};
use sea_orm::sea_query::{Alias, Expr, Query};
use sea_orm::{ConnectionTrait, DbErr, QueryResult};

use crate::mysql::db::Tx;

use crate::mysql::credit::CreditStop;
use crate::mysql::db::{Databases, is_duplicate, port_err};
use crate::mysql::draw_save;
use domain::credit::ports::CreditSaved;

fn c(name: &'static str) -> Alias {
    Alias::new(name)
}

/// The datetime columns hold whole seconds; MySQL rounds and MariaDB truncates fractions, so
/// truncate here to store (and project) the same instant on both.
pub(crate) fn whole_seconds(t: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
    use chrono::Timelike;
    t.naive_utc().with_nanosecond(0).unwrap_or(t.naive_utc())
}

/// [`QuotaRepository`] and [`AwardLedger`] over the shard databases.
#[derive(Debug, Clone)]
pub struct MySqlQuotaRepository {
    db: Databases,
    draw: draw_save::DrawStatements,
    response_timeout: Option<std::time::Duration>,
}

/// Why a recharge transaction stopped early (everything it wrote is rolled back).
enum Stop {
    /// The guard failed: report this outcome.
    Outcome(RechargeSaved),
    /// The driver failed.
    Db(DbErr),
}

impl From<DbErr> for Stop {
    fn from(e: DbErr) -> Self {
        Self::Db(e)
    }
}

impl MySqlQuotaRepository {
    /// A repository over the shards of `db`.
    pub fn new(db: Databases) -> Self {
        let draw = draw_save::DrawStatements::new(db.router.tb_count());
        let response_timeout = db.config.deadline().limit();
        Self {
            db,
            draw,
            response_timeout,
        }
    }

    /// Bounds how long the draw's quota read and save wait for the shard's answer (zero: no
    /// limit; by default the databases' response deadline). Past it the read fails, and the
    /// save fails as [`SaveFailure::Unknown`].
    #[must_use]
    pub fn with_response_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.response_timeout = (!timeout.is_zero()).then_some(timeout);
        self.db = self.db.with_response_timeout(timeout);
        self
    }

    async fn one(
        tx: &impl ConnectionTrait,
        stmt: &impl sea_orm::StatementBuilder,
    ) -> Result<Option<QueryResult>, DbErr> {
        tx.query_one(tx.get_database_backend().build(stmt)).await
    }

    async fn exec(tx: &impl ConnectionTrait, stmt: &impl sea_orm::StatementBuilder) -> Result<u64, DbErr> {
        Ok(tx.execute(tx.get_database_backend().build(stmt)).await?.rows_affected())
    }

    /// The recharge transaction: order, account (inserted, or updated at the expected
    /// version), the current day / month rows, outbox. Stops with an outcome when a guard
    /// fails; the caller then rolls back.
    async fn save_recharge_in(tx: &Tx, save: &RechargeSave<'_>, suffix: &str) -> Result<(), Stop> {
        let o = save.order;
        let guard = |e: DbErr, outcome| {
            if is_duplicate(&e) {
                Stop::Outcome(outcome)
            } else {
                Stop::Db(e)
            }
        };
        let order = Query::insert()
            .into_table(Alias::new(format!("raffle_activity_order{suffix}")))
            .columns([
                c("user_id"),
                c("sku"),
                c("activity_id"),
                c("activity_name"),
                c("strategy_id"),
                c("order_id"),
                c("order_time"),
                c("total_count"),
                c("day_count"),
                c("month_count"),
                c("pay_amount"),
                c("state"),
                c("out_business_no"),
            ])
            .values_panic([
                o.user_id.clone().into(),
                o.sku.get().into(),
                o.activity_id.get().into(),
                o.activity_name.clone().into(),
                o.strategy_id.get().into(),
                o.order_id.as_str().into(),
                o.order_time.into(),
                o.count.total_count.into(),
                o.count.day_count.into(),
                o.count.month_count.into(),
                o.pay_amount.into(),
                o.state.into(),
                o.out_business_no.clone().into(),
            ])
            .to_owned();
        Self::exec(tx, &order)
            .await
            .map_err(|e| guard(e, RechargeSaved::OutBusinessNoUsed))?;
        if let Some(payment) = &save.payment {
            crate::mysql::credit::save_credit_in(tx, payment, suffix)
                .await
                .map_err(|stop| match stop {
                    CreditStop::Outcome(CreditSaved::OutBusinessNoUsed) => {
                        Stop::Outcome(RechargeSaved::OutBusinessNoUsed)
                    }
                    CreditStop::Outcome(_) => Stop::Outcome(RechargeSaved::Moved),
                    CreditStop::Db(e) => Stop::Db(e),
                })?;
        }
        let a = save.after;
        let (t, d, m) = (o.count.total_count, o.count.day_count, o.count.month_count);
        if save.expected_version == 0 {
            let account = Query::insert()
                .into_table(c("raffle_activity_account"))
                .columns(
                    [
                        "user_id",
                        "activity_id",
                        "total_count",
                        "total_count_surplus",
                        "day_count",
                        "day_count_surplus",
                        "month_count",
                        "month_count_surplus",
                        "version",
                    ]
                    .map(c),
                )
                .values_panic([
                    o.user_id.clone().into(),
                    o.activity_id.get().into(),
                    a.total_count.into(),
                    a.total_count_surplus.into(),
                    a.day_count.into(),
                    a.day_count.into(),
                    a.month_count.into(),
                    a.month_count.into(),
                    a.version.into(),
                ])
                .to_owned();
            Self::exec(tx, &account)
                .await
                .map_err(|e| guard(e, RechargeSaved::Moved))?;
        } else {
            // Relative adds keep the account's day/month surplus mirrors in step; the version
            // guard makes the result exactly the decided state.
            let add = |col: &'static str, n: i32| (c(col), Expr::col(c(col)).add(n));
            let account = Query::update()
                .table(c("raffle_activity_account"))
                .values([
                    add("total_count", t),
                    add("total_count_surplus", t),
                    add("day_count", d),
                    add("day_count_surplus", d),
                    add("month_count", m),
                    add("month_count_surplus", m),
                ])
                .value(c("version"), a.version)
                .and_where(Expr::col(c("user_id")).eq(o.user_id.as_str()))
                .and_where(Expr::col(c("activity_id")).eq(o.activity_id.get()))
                .and_where(Expr::col(c("version")).eq(save.expected_version))
                .to_owned();
            if Self::exec(tx, &account).await? != 1 {
                return Err(Stop::Outcome(RechargeSaved::Moved));
            }
        }
        for (table, key, count, surplus, row) in [
            (
                "raffle_activity_account_day",
                "day",
                "day_count",
                "day_count_surplus",
                &a.day,
            ),
            (
                "raffle_activity_account_month",
                "month",
                "month_count",
                "month_count_surplus",
                &a.month,
            ),
        ] {
            let Some(row) = row else { continue };
            let q = Query::update()
                .table(c(table))
                .value(c(count), row.count)
                .value(c(surplus), row.surplus)
                .and_where(Expr::col(c("user_id")).eq(o.user_id.as_str()))
                .and_where(Expr::col(c("activity_id")).eq(o.activity_id.get()))
                .and_where(Expr::col(c(key)).eq(row.period.as_str()))
                .to_owned();
            if Self::exec(tx, &q).await? != 1 {
                return Err(Stop::Outcome(RechargeSaved::Moved));
            }
        }
        Ok(crate::outbox::store::insert_outbox(tx, save.outbox).await?)
    }

    /// `SELECT … FROM every split table of every shard`, summed per key.
    async fn count_everywhere(
        &self,
        base: &str,
        key_col: Option<&'static str>,
        filter_col: &'static str,
        value: i64,
    ) -> Result<HashMap<i64, i64>, DbErr> {
        let mut out = HashMap::new();
        for shard in &self.db.shards {
            for t in 0..self.db.router.tb_count() {
                let mut q = Query::select();
                q.from(Alias::new(format!("{base}_{t:03}")))
                    .expr_as(Expr::col(c("id")).count(), c("n"))
                    .and_where(Expr::col(c(filter_col)).eq(value));
                if let Some(k) = key_col {
                    q.expr_as(Expr::col(c(k)).cast_as(c("SIGNED")), c("k"))
                        .group_by_col(c(k));
                }
                let rows = shard.query_all(shard.get_database_backend().build(&q)).await?;
                for r in rows {
                    let k: i64 = if key_col.is_some() { r.try_get("", "k")? } else { 0 };
                    let n: i64 = r.try_get("", "n")?;
                    *out.entry(k).or_insert(0) += n;
                }
            }
        }
        Ok(out)
    }
}

#[async_trait::async_trait]
impl QuotaRepository for MySqlQuotaRepository {
    async fn find_recharge(&self, user_id: &str, out_business_no: &str) -> Result<Option<ExistingRecharge>, PortError> {
        let (db, route) = self.db.shard_of(user_id);
        let q = Query::select()
            .columns([
                c("user_id"),
                c("sku"),
                c("order_id"),
                c("out_business_no"),
                c("pay_amount"),
            ])
            .from(Alias::new(format!("raffle_activity_order{}", route.suffix())))
            .and_where(Expr::col(c("out_business_no")).eq(out_business_no))
            .to_owned();
        let Some(r) = Self::one(db, &q).await.map_err(port_err)? else {
            return Ok(None);
        };
        let get = |col| r.try_get::<String>("", col).map_err(port_err);
        Ok(Some(ExistingRecharge {
            user_id: get("user_id")?,
            sku: Sku::new(r.try_get("", "sku").map_err(port_err)?),
            order_id: OrderId::new(get("order_id")?),
            out_business_no: get("out_business_no")?,
            pay_amount: r
                .try_get::<Option<rust_decimal::Decimal>>("", "pay_amount")
                .map_err(port_err)?
                .unwrap_or_default(),
        }))
    }

    async fn save_recharge(&self, save: &RechargeSave<'_>) -> Result<RechargeSaved, SaveFailure> {
        let (db, route) = self.db.shard_of(&save.order.user_id);
        let failure = crate::mysql::db::save_failure;
        let tx = db.begin().await.map_err(failure)?;
        // An early return drops `tx`, which rolls the transaction back.
        match Self::save_recharge_in(&tx, save, &route.suffix()).await {
            Ok(()) => {
                tx.commit().await.map_err(failure)?;
                Ok(RechargeSaved::Saved)
            }
            Err(Stop::Outcome(outcome)) => Ok(outcome),
            Err(Stop::Db(e)) => Err(failure(e)),
        }
    }

    async fn load_quota(
        &self,
        user_id: &str,
        activity_id: ActivityId,
        day: &str,
        month: &str,
    ) -> Result<Option<QuotaAccount>, PortError> {
        // Waits at most the pool's acquire timeout for a connection, then the response
        // deadline for the answer.
        let (db, route) = self.db.shard_of(user_id);
        draw_save::load(db, self.draw.load(route.table), user_id, activity_id, day, month)
            .await
            .map_err(port_err)
    }

    async fn save_draw(&self, save: &DrawSave<'_>) -> Result<DrawSaved, SaveFailure> {
        let (db, route) = self.db.shard_of(save.user_id);
        draw_save::save(
            db.connection(),
            self.draw.save(route.table),
            save,
            self.response_timeout,
        )
        .await
    }

    async fn sku_units_sold(&self, sku: Sku) -> Result<i64, PortError> {
        let counts = self
            .count_everywhere("raffle_activity_order", None, "sku", sku.get())
            .await
            .map_err(port_err)?;
        Ok(counts.values().sum())
    }
}

#[async_trait::async_trait]
impl AwardLedger for MySqlQuotaRepository {
    async fn awarded_units(&self, strategy_id: StrategyId) -> Result<HashMap<AwardId, i64>, PortError> {
        let counts = self
            .count_everywhere("user_award_record", Some("award_id"), "strategy_id", strategy_id.get())
            .await
            .map_err(port_err)?;
        Ok(counts
            .into_iter()
            .filter_map(|(k, n)| i32::try_from(k).ok().map(|a| (AwardId::new(a), n)))
            .collect())
    }
}
