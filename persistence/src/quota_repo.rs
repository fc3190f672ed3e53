//! User quota on the shards: recharge orders, the one-transaction draw, durable stock ledgers.
//!
//! Every user's rows live on one shard (the router), so each command is a single local
//! transaction there. Split tables (`_000.._003`) are addressed by the routed suffix with
//! sea-query. Concurrency: the user's account row is locked (`SELECT … FOR UPDATE`) first,
//! serialising that user's draws; every decrement is additionally guarded in SQL
//! (`… AND surplus > 0`, exactly-one-row checks), so no quota goes negative or is spent twice.

use std::collections::HashMap;

use domain::activity::ActivityError;
use domain::activity::draw::{AwardDecider, DrawCommand, DrawRecorded, PartakeFacts};
use domain::activity::ports::{ExistingRecharge, QuotaRepository, RechargeOrder};
use domain::ids::{AwardId, StrategyId};
use domain::outbox::{AccountSnapshot, OutboxMessage, PeriodSnapshot, TOPIC_ACCOUNT_CHANGED, TOPIC_SEND_AWARD};
use domain::ports::{AwardLedger, PortError};
use sea_orm::Statement;
use sea_orm::sea_query::{Alias, Expr, OnConflict, Query};
use sea_orm::{ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbErr, QueryResult, TransactionTrait};

use crate::db::{Databases, is_duplicate, port_err};

fn c(name: &'static str) -> Alias {
    Alias::new(name)
}

/// The datetime columns hold whole seconds; MySQL rounds and MariaDB truncates fractions, so
/// truncate here to store (and project) the same instant on both.
pub(crate) fn whole_seconds(t: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDateTime {
    use chrono::Timelike;
    t.naive_utc().with_nanosecond(0).unwrap_or(t.naive_utc())
}

fn db_err(e: DbErr) -> ActivityError {
    if crate::db::is_conflict(&e) {
        ActivityError::Conflict(e.to_string())
    } else {
        ActivityError::Port(port_err(e))
    }
}

/// [`QuotaRepository`] and [`AwardLedger`] over the shard databases.
#[derive(Debug, Clone)]
pub struct MySqlQuotaRepository {
    db: Databases,
}

/// The locked account with today's / this month's rows and the oldest unused ticket.
struct Locked {
    account: Account,
    day: Option<(i32, i32)>,
    month: Option<(i32, i32)>,
    unused: Option<String>,
}

/// The locked account row.
struct Account {
    total_count: i32,
    total_count_surplus: i32,
    day_count: i32,
    month_count: i32,
    version: i64,
}

impl MySqlQuotaRepository {
    /// A repository over the shards of `db`.
    pub fn new(db: Databases) -> Self {
        Self { db }
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

    /// READ COMMITTED (every connection of [`Databases`] runs it): locking reads of absent
    /// rows take no gap locks, so concurrent users' inserts into the same split table do not
    /// deadlock; per-user serialisation comes from the account row lock.
    async fn begin(db: &DatabaseConnection) -> Result<DatabaseTransaction, DbErr> {
        db.begin().await
    }

    async fn insert_outbox(tx: &DatabaseTransaction, outbox: &[OutboxMessage]) -> Result<(), DbErr> {
        crate::task_repo::insert_outbox(tx, outbox).await
    }

    /// The account row (inside a transaction that already holds its lock).
    async fn read_account(tx: &DatabaseTransaction, user: &str, activity_id: i64) -> Result<Option<Account>, DbErr> {
        let mut q = Query::select();
        q.columns([
            c("total_count"),
            c("total_count_surplus"),
            c("day_count"),
            c("month_count"),
            c("version"),
        ])
        .from(c("raffle_activity_account"))
        .and_where(Expr::col(c("user_id")).eq(user))
        .and_where(Expr::col(c("activity_id")).eq(activity_id));
        let Some(r) = Self::one(tx, &q).await? else {
            return Ok(None);
        };
        Ok(Some(Account {
            total_count: r.try_get("", "total_count")?,
            total_count_surplus: r.try_get("", "total_count_surplus")?,
            day_count: r.try_get("", "day_count")?,
            month_count: r.try_get("", "month_count")?,
            version: r.try_get("", "version")?,
        }))
    }

    /// The `activity_account_changed` outbox row for the account's current state.
    #[allow(clippy::too_many_arguments)]
    fn snapshot_message(
        user: &str,
        activity_id: i64,
        account: &Account,
        day: Option<(String, i32, i32)>,
        month: Option<(String, i32, i32)>,
        message_id: &str,
        at_ms: i64,
    ) -> OutboxMessage {
        let period =
            |p: Option<(String, i32, i32)>| p.map(|(period, count, surplus)| PeriodSnapshot { period, count, surplus });
        let snapshot = AccountSnapshot {
            activity_id,
            day: period(day),
            day_count: account.day_count,
            month: period(month),
            month_count: account.month_count,
            total_count: account.total_count,
            total_count_surplus: account.total_count_surplus,
            user_id: user.to_owned(),
            version: account.version,
        };
        OutboxMessage::new(user, TOPIC_ACCOUNT_CHANGED, message_id.to_owned(), at_ms, &snapshot)
    }

    /// One statement locks the account row with today's and this month's rows (a locking read
    /// of a join locks the joined rows too) and finds the oldest unused ticket. A plain read
    /// of the tickets is safe: every change to this user's tickets happens under the account
    /// row lock, and READ COMMITTED sees the latest commit.
    async fn lock_for_draw(
        tx: &DatabaseTransaction,
        cmd: &DrawCommand,
        tickets: &str,
    ) -> Result<Option<Locked>, DbErr> {
        let sql = format!(
            "SELECT a.total_count, a.total_count_surplus, a.day_count, a.month_count, a.version, \
                    d.day_count AS d_count, d.day_count_surplus AS d_left, \
                    m.month_count AS m_count, m.month_count_surplus AS m_left, \
                    (SELECT t.order_id FROM `{tickets}` t WHERE t.user_id = a.user_id AND t.activity_id = a.activity_id \
                       AND t.order_state = 'create' ORDER BY t.id LIMIT 1) AS unused \
             FROM raffle_activity_account a \
             LEFT JOIN raffle_activity_account_day d ON d.user_id = a.user_id AND d.activity_id = a.activity_id AND d.day = ? \
             LEFT JOIN raffle_activity_account_month m ON m.user_id = a.user_id AND m.activity_id = a.activity_id AND m.month = ? \
             WHERE a.user_id = ? AND a.activity_id = ? FOR UPDATE"
        );
        let stmt = Statement::from_sql_and_values(
            tx.get_database_backend(),
            sql,
            [
                cmd.day.clone().into(),
                cmd.month.clone().into(),
                cmd.user_id.clone().into(),
                cmd.activity.activity_id.into(),
            ],
        );
        let Some(r) = tx.query_one(stmt).await? else {
            return Ok(None);
        };
        let period = |count: &str, left: &str| -> Result<Option<(i32, i32)>, DbErr> {
            Ok(
                match (
                    r.try_get::<Option<i32>>("", count)?,
                    r.try_get::<Option<i32>>("", left)?,
                ) {
                    (Some(n), Some(l)) => Some((n, l)),
                    _ => None,
                },
            )
        };
        Ok(Some(Locked {
            account: Account {
                total_count: r.try_get("", "total_count")?,
                total_count_surplus: r.try_get("", "total_count_surplus")?,
                day_count: r.try_get("", "day_count")?,
                month_count: r.try_get("", "month_count")?,
                version: r.try_get("", "version")?,
            },
            day: period("d_count", "d_left")?,
            month: period("m_count", "m_left")?,
            unused: r.try_get("", "unused")?,
        }))
    }

    /// Spends one unit of the day or month allowance: decrements the existing (locked) row,
    /// guarded in SQL, or creates it from the account's allowance. Returns `(count, surplus after)`.
    #[allow(clippy::too_many_arguments)]
    async fn spend_period(
        tx: &DatabaseTransaction,
        table: &'static str,
        key: &'static str,
        count: &'static str,
        surplus: &'static str,
        existing: Option<(i32, i32)>,
        allowance: i32,
        cmd: &DrawCommand,
        period: &str,
        exhausted: fn(i64) -> ActivityError,
    ) -> Result<(i32, i32), ActivityError> {
        let activity_id = cmd.activity.activity_id;
        match existing {
            Some((n, left)) => {
                if left <= 0 {
                    return Err(exhausted(activity_id));
                }
                let q = Query::update()
                    .table(c(table))
                    .value(c(surplus), Expr::col(c(surplus)).sub(1))
                    .and_where(Expr::col(c("user_id")).eq(cmd.user_id.as_str()))
                    .and_where(Expr::col(c("activity_id")).eq(activity_id))
                    .and_where(Expr::col(c(key)).eq(period))
                    .and_where(Expr::col(c(surplus)).gt(0))
                    .to_owned();
                if Self::exec(tx, &q).await.map_err(db_err)? != 1 {
                    return Err(exhausted(activity_id));
                }
                Ok((n, left - 1))
            }
            None => {
                if allowance <= 0 {
                    return Err(exhausted(activity_id));
                }
                let q = Query::insert()
                    .into_table(c(table))
                    .columns([c("user_id"), c("activity_id"), c(key), c(count), c(surplus)])
                    .values_panic([
                        cmd.user_id.clone().into(),
                        activity_id.into(),
                        period.to_owned().into(),
                        allowance.into(),
                        (allowance - 1).into(),
                    ])
                    .to_owned();
                Self::exec(tx, &q).await.map_err(db_err)?;
                Ok((allowance, allowance - 1))
            }
        }
    }

    /// Reuses the unused ticket or pays a new one with quota; returns the partake facts and,
    /// when quota was spent, the account snapshot event. A new ticket is inserted later,
    /// already `used`, together with its award record.
    async fn partake(
        tx: &DatabaseTransaction,
        cmd: &DrawCommand,
        tickets: &str,
    ) -> Result<(PartakeFacts, Option<OutboxMessage>), ActivityError> {
        let activity_id = cmd.activity.activity_id;
        let locked = Self::lock_for_draw(tx, cmd, tickets)
            .await
            .map_err(db_err)?
            .ok_or(ActivityError::TotalQuotaExhausted(activity_id))?;
        let account = locked.account;
        if let Some(order_id) = locked.unused {
            let facts = PartakeFacts {
                order_id,
                reused: true,
                total_used: i64::from(account.total_count - account.total_count_surplus),
                day_partake_count: locked.day.map_or(0, |(n, left)| u32::try_from(n - left).unwrap_or(0)),
            };
            return Ok((facts, None));
        }
        if account.total_count_surplus <= 0 {
            return Err(ActivityError::TotalQuotaExhausted(activity_id));
        }
        let (month_count, month_left) = Self::spend_period(
            tx,
            "raffle_activity_account_month",
            "month",
            "month_count",
            "month_count_surplus",
            locked.month,
            account.month_count,
            cmd,
            &cmd.month,
            ActivityError::MonthQuotaExhausted,
        )
        .await?;
        let (day_count, day_left) = Self::spend_period(
            tx,
            "raffle_activity_account_day",
            "day",
            "day_count",
            "day_count_surplus",
            locked.day,
            account.day_count,
            cmd,
            &cmd.day,
            ActivityError::DayQuotaExhausted,
        )
        .await?;
        // Day/month rows are authoritative; the account's day/month surplus columns mirror them.
        let q = Query::update()
            .table(c("raffle_activity_account"))
            .value(c("total_count_surplus"), Expr::col(c("total_count_surplus")).sub(1))
            .value(c("version"), Expr::col(c("version")).add(1))
            .value(c("day_count_surplus"), day_left)
            .value(c("month_count_surplus"), month_left)
            .and_where(Expr::col(c("user_id")).eq(cmd.user_id.as_str()))
            .and_where(Expr::col(c("activity_id")).eq(activity_id))
            .and_where(Expr::col(c("total_count_surplus")).gt(0))
            .to_owned();
        if Self::exec(tx, &q).await.map_err(db_err)? != 1 {
            return Err(ActivityError::TotalQuotaExhausted(activity_id));
        }
        let after = Account {
            total_count_surplus: account.total_count_surplus - 1,
            version: account.version + 1,
            ..account
        };
        let snapshot = Self::snapshot_message(
            &cmd.user_id,
            activity_id,
            &after,
            Some((cmd.day.clone(), day_count, day_left)),
            Some((cmd.month.clone(), month_count, month_left)),
            &cmd.account_event_id,
            cmd.now.timestamp_millis(),
        );
        let facts = PartakeFacts {
            order_id: cmd.new_order_id.clone(),
            reused: false,
            total_used: i64::from(account.total_count - account.total_count_surplus + 1),
            day_partake_count: u32::try_from(day_count - day_left).unwrap_or(0),
        };
        Ok((facts, Some(snapshot)))
    }

    async fn draw_in(
        tx: &DatabaseTransaction,
        cmd: &DrawCommand,
        suffix: &str,
        decider: &dyn AwardDecider,
    ) -> Result<DrawRecorded, ActivityError> {
        let tickets = format!("user_raffle_order{suffix}");
        let (facts, snapshot) = Self::partake(tx, cmd, &tickets).await?;
        let mut decided = decider.decide(&facts).await?;
        decided.outbox.extend(snapshot);
        let record = Query::insert()
            .into_table(Alias::new(format!("user_award_record{suffix}")))
            .columns([
                c("user_id"),
                c("activity_id"),
                c("strategy_id"),
                c("order_id"),
                c("award_id"),
                c("award_title"),
                c("award_time"),
                c("award_state"),
            ])
            .values_panic([
                cmd.user_id.clone().into(),
                cmd.activity.activity_id.into(),
                cmd.activity.strategy_id.into(),
                facts.order_id.clone().into(),
                decided.award.award_id.into(),
                decided.award.award_title.clone().into(),
                whole_seconds(cmd.now).into(),
                "create".into(),
            ])
            .to_owned();
        Self::exec(tx, &record).await.map_err(|e| {
            if is_duplicate(&e) {
                ActivityError::TicketUsed(facts.order_id.clone())
            } else {
                db_err(e)
            }
        })?;
        if facts.reused {
            let used = Query::update()
                .table(Alias::new(tickets))
                .value(c("order_state"), "used")
                .and_where(Expr::col(c("user_id")).eq(cmd.user_id.as_str()))
                .and_where(Expr::col(c("order_id")).eq(facts.order_id.as_str()))
                .and_where(Expr::col(c("order_state")).eq("create"))
                .to_owned();
            if Self::exec(tx, &used).await.map_err(db_err)? != 1 {
                return Err(ActivityError::TicketUsed(facts.order_id));
            }
        } else {
            // The new ticket is born used: created and spent in this one transaction.
            let ticket = Query::insert()
                .into_table(Alias::new(tickets))
                .columns([
                    c("user_id"),
                    c("activity_id"),
                    c("activity_name"),
                    c("strategy_id"),
                    c("order_id"),
                    c("order_time"),
                    c("order_state"),
                ])
                .values_panic([
                    cmd.user_id.clone().into(),
                    cmd.activity.activity_id.into(),
                    cmd.activity.activity_name.clone().into(),
                    cmd.activity.strategy_id.into(),
                    cmd.new_order_id.clone().into(),
                    whole_seconds(cmd.now).into(),
                    "used".into(),
                ])
                .to_owned();
            Self::exec(tx, &ticket).await.map_err(|e| {
                if is_duplicate(&e) {
                    ActivityError::Duplicate(format!("ticket id {} already exists", cmd.new_order_id))
                } else {
                    db_err(e)
                }
            })?;
        }
        Self::insert_outbox(tx, &decided.outbox).await.map_err(db_err)?;
        let message_id = decided
            .outbox
            .iter()
            .find(|m| m.topic == TOPIC_SEND_AWARD)
            .map(|m| m.message_id.clone())
            .unwrap_or_default();
        Ok(DrawRecorded {
            order_id: facts.order_id,
            award: decided.award,
            message_id,
        })
    }

    async fn save_recharge_in(
        tx: &DatabaseTransaction,
        o: &RechargeOrder,
        suffix: &str,
        outbox: &[OutboxMessage],
    ) -> Result<(), DbErr> {
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
                o.sku.into(),
                o.activity_id.into(),
                o.activity_name.clone().into(),
                o.strategy_id.into(),
                o.order_id.clone().into(),
                o.order_time.into(),
                o.count.total_count.into(),
                o.count.day_count.into(),
                o.count.month_count.into(),
                o.pay_amount.into(),
                o.state.into(),
                o.out_business_no.clone().into(),
            ])
            .to_owned();
        Self::exec(tx, &order).await?;
        let (t, d, m) = (o.count.total_count, o.count.day_count, o.count.month_count);
        let add = |col: &'static str, n: i32| (c(col), Expr::col((c("raffle_activity_account"), c(col))).add(n));
        let columns = [
            "user_id",
            "activity_id",
            "total_count",
            "total_count_surplus",
            "day_count",
            "day_count_surplus",
            "month_count",
            "month_count_surplus",
            "version",
        ];
        let account = Query::insert()
            .into_table(c("raffle_activity_account"))
            .columns(columns.map(c))
            .values_panic([
                o.user_id.clone().into(),
                o.activity_id.into(),
                t.into(),
                t.into(),
                d.into(),
                d.into(),
                m.into(),
                m.into(),
                1.into(),
            ])
            .on_conflict(
                OnConflict::new()
                    .values([
                        add("total_count", t),
                        add("total_count_surplus", t),
                        add("day_count", d),
                        add("day_count_surplus", d),
                        add("month_count", m),
                        add("month_count_surplus", m),
                        (
                            c("version"),
                            Expr::col((c("raffle_activity_account"), c("version"))).add(1),
                        ),
                    ])
                    .to_owned(),
            )
            .to_owned();
        Self::exec(tx, &account).await?;
        let mut periods = Vec::with_capacity(2);
        for (table, key, period, count, surplus, n) in [
            (
                "raffle_activity_account_day",
                "day",
                &o.day,
                "day_count",
                "day_count_surplus",
                d,
            ),
            (
                "raffle_activity_account_month",
                "month",
                &o.month,
                "month_count",
                "month_count_surplus",
                m,
            ),
        ] {
            let q = Query::update()
                .table(c(table))
                .value(c(count), Expr::col(c(count)).add(n))
                .value(c(surplus), Expr::col(c(surplus)).add(n))
                .and_where(Expr::col(c("user_id")).eq(o.user_id.as_str()))
                .and_where(Expr::col(c("activity_id")).eq(o.activity_id))
                .and_where(Expr::col(c(key)).eq(period.as_str()))
                .to_owned();
            let touched = Self::exec(tx, &q).await? == 1;
            let row = if touched {
                let q = Query::select()
                    .columns([c(count), c(surplus)])
                    .from(c(table))
                    .and_where(Expr::col(c("user_id")).eq(o.user_id.as_str()))
                    .and_where(Expr::col(c("activity_id")).eq(o.activity_id))
                    .and_where(Expr::col(c(key)).eq(period.as_str()))
                    .to_owned();
                Self::one(tx, &q)
                    .await?
                    .map(|r| Ok::<_, DbErr>((period.clone(), r.try_get("", count)?, r.try_get("", surplus)?)))
                    .transpose()?
            } else {
                None
            };
            periods.push(row);
        }
        let account = Self::read_account(tx, &o.user_id, o.activity_id)
            .await?
            .ok_or_else(|| DbErr::RecordNotFound("account vanished inside its transaction".into()))?;
        let month = periods.pop().flatten();
        let day = periods.pop().flatten();
        let snapshot = Self::snapshot_message(
            &o.user_id,
            o.activity_id,
            &account,
            day,
            month,
            &o.account_event_id,
            o.order_time.and_utc().timestamp_millis(),
        );
        let mut rows = outbox.to_vec();
        rows.push(snapshot);
        Self::insert_outbox(tx, &rows).await
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
            .columns([c("user_id"), c("sku"), c("order_id"), c("out_business_no")])
            .from(Alias::new(format!("raffle_activity_order{}", route.suffix())))
            .and_where(Expr::col(c("out_business_no")).eq(out_business_no))
            .to_owned();
        let Some(r) = Self::one(db, &q).await.map_err(port_err)? else {
            return Ok(None);
        };
        let get = |col| r.try_get::<String>("", col).map_err(port_err);
        Ok(Some(ExistingRecharge {
            user_id: get("user_id")?,
            sku: r.try_get("", "sku").map_err(port_err)?,
            order_id: get("order_id")?,
            out_business_no: get("out_business_no")?,
        }))
    }

    async fn save_recharge(&self, order: &RechargeOrder, outbox: &[OutboxMessage]) -> Result<(), ActivityError> {
        let (db, route) = self.db.shard_of(&order.user_id);
        let tx = Self::begin(db).await.map_err(db_err)?;
        match Self::save_recharge_in(&tx, order, &route.suffix(), outbox).await {
            Ok(()) => tx.commit().await.map_err(db_err),
            Err(e) if is_duplicate(&e) => Err(ActivityError::Duplicate(format!(
                "outBusinessNo {} was already used",
                order.out_business_no
            ))),
            Err(e) => Err(db_err(e)),
        }
    }

    async fn draw(&self, cmd: &DrawCommand, decider: &dyn AwardDecider) -> Result<DrawRecorded, ActivityError> {
        let (db, route) = self.db.shard_of(&cmd.user_id);
        let tx = Self::begin(db).await.map_err(db_err)?;
        // Any error drops `tx`, which rolls the transaction back.
        let recorded = Self::draw_in(&tx, cmd, &route.suffix(), decider).await?;
        tx.commit().await.map_err(db_err)?;
        Ok(recorded)
    }

    async fn sku_units_sold(&self, sku: i64) -> Result<i64, PortError> {
        let counts = self
            .count_everywhere("raffle_activity_order", None, "sku", sku)
            .await
            .map_err(port_err)?;
        Ok(counts.values().sum())
    }
}

#[async_trait::async_trait]
impl AwardLedger for MySqlQuotaRepository {
    async fn awarded_units(&self, strategy_id: StrategyId) -> Result<HashMap<AwardId, i64>, PortError> {
        let counts = self
            .count_everywhere("user_award_record", Some("award_id"), "strategy_id", strategy_id)
            .await
            .map_err(port_err)?;
        Ok(counts
            .into_iter()
            .filter_map(|(k, n)| AwardId::try_from(k).ok().map(|a| (a, n)))
            .collect())
    }
}
