//! The raw baselines, issued directly with sqlx and a multiplexed Redis connection — no HTTP,
//! GraphQL, domain service or ORM:
//!
//! * [`RawDriver`]: the draw as the application did it until the write-model redesign
//!   (2026-11-30) — the statements of the old `MySqlQuotaRepository::draw` (fresh-ticket path)
//!   and the award stock script, all inside one locked transaction;
//! * [`FloorDriver`]: the physical floor of any draw that commits durably and takes stock —
//!   one single-row `INSERT` committed on its own (autocommit: one round trip, one redo-log
//!   flush) on the user's shard, plus one `EVALSHA` of the stock script.
//!
//! Per draw, on the user's shard, in one READ COMMITTED transaction (9 statements; the
//! connections run READ COMMITTED from the start, as the application's do): `BEGIN` → one
//! locking read of the account with today's / this month's rows and the oldest unused
//! ticket (none) → spend month → spend day → update account (surplus, version) → `EVALSHA`
//! take (Redis) → insert award record → insert the ticket, born `used` → insert the
//! `send_award` and `activity_account_changed` tasks (one statement) → commit. The SQL text is
//! the repository's (sea-query renders its other statements this way, all values bound), so
//! the server does the same work.

use anyhow::Context as _;
use chrono::{NaiveDateTime, Timelike as _, Utc};
use domain::activity::BusinessCalendar;
use domain::ids::{AwardId, StrategyId};
use domain::outbox::{
    AccountSnapshot, OutboxMessage, PeriodSnapshot, SendAward, TOPIC_ACCOUNT_CHANGED, TOPIC_SEND_AWARD,
};
use persistence::SnowflakeIds;
use persistence::redis::Keys;
use sea_orm::sqlx::mysql::{MySqlConnection, MySqlPool};
use sea_orm::sqlx::{self, Row as _};

use crate::env::{ACTIVITY_ID, BenchEnv, BenchUser};

const SPEND_ACCOUNT: &str = "UPDATE `raffle_activity_account` SET `total_count_surplus` = `total_count_surplus` - ?, \
     `version` = `version` + ?, `day_count_surplus` = ?, `month_count_surplus` = ? \
     WHERE `user_id` = ? AND `activity_id` = ? AND `total_count_surplus` > ?";
/// The draw's two outbox rows: `send_award` and the `activity_account_changed` snapshot.
const INSERT_TASKS: &str = "INSERT INTO `task` (`user_id`, `topic`, `message_id`, `message`, `state`) \
     VALUES (?, ?, ?, ?, ?), (?, ?, ?, ?, ?)";

/// The statements on one day or month table.
struct PeriodSql {
    spend: String,
    insert: String,
}

impl PeriodSql {
    fn new(table: &str, key: &str, count: &str, surplus: &str) -> Self {
        Self {
            spend: format!(
                "UPDATE `{table}` SET `{surplus}` = `{surplus}` - ? \
                 WHERE `user_id` = ? AND `activity_id` = ? AND `{key}` = ? AND `{surplus}` > ?"
            ),
            insert: format!(
                "INSERT INTO `{table}` (`user_id`, `activity_id`, `{key}`, `{count}`, `{surplus}`) \
                 VALUES (?, ?, ?, ?, ?)"
            ),
        }
    }
}

/// The statements on one split table suffix.
struct SplitSql {
    lock_for_draw: String,
    insert_ticket: String,
    insert_record: String,
}

impl SplitSql {
    fn new(table: usize) -> Self {
        let tickets = format!("user_raffle_order_{table:03}");
        let records = format!("user_award_record_{table:03}");
        Self {
            // Today's path locked the production quota read (`persistence::mysql::draw_save`).
            lock_for_draw: format!(
                "{} FOR UPDATE",
                persistence::mysql::draw_save::load_sql(&format!("_{table:03}"))
            ),
            insert_ticket: format!(
                "INSERT INTO `{tickets}` (`user_id`, `activity_id`, `activity_name`, `strategy_id`, `order_id`, \
                 `order_time`, `order_state`) VALUES (?, ?, ?, ?, ?, ?, ?)"
            ),
            insert_record: format!(
                "INSERT INTO `{records}` (`user_id`, `activity_id`, `strategy_id`, `order_id`, `award_id`, \
                 `award_title`, `award_time`, `award_state`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
            ),
        }
    }
}

/// The pre-redesign draw: direct connections and the precomputed statements.
pub(crate) struct RawDriver {
    shards: Vec<MySqlPool>,
    redis: redis::aio::MultiplexedConnection,
    take: redis::Script,
    stock_key: String,
    ids: SnowflakeIds,
    calendar: BusinessCalendar,
    activity_name: String,
    strategy_id: StrategyId,
    activity_end: NaiveDateTime,
    award_id: AwardId,
    award_title: String,
    month: PeriodSql,
    day: PeriodSql,
    split: Vec<SplitSql>,
}

impl RawDriver {
    /// Reads the activity and its first award from the benchmark config database, opens one
    /// pool per shard (as large as the application's), connects to Redis and leases its own
    /// snowflake worker id.
    pub(crate) async fn new(env: &BenchEnv) -> anyhow::Result<Self> {
        let s = &env.world.settings;
        let mut shards = Vec::new();
        for url in &s.database.shard_urls {
            shards.push(
                crate::env::read_committed()
                    .max_connections(s.database.max_connections)
                    .min_connections(0)
                    .acquire_timeout(std::time::Duration::from_millis(
                        s.database.connect_timeout_ms.max(1_000),
                    ))
                    .connect(url)
                    .await
                    .with_context(|| format!("connecting to {url}"))?,
            );
        }
        let row =
            sqlx::query("SELECT activity_name, strategy_id, end_date_time FROM raffle_activity WHERE activity_id = ?")
                .bind(ACTIVITY_ID.get())
                .fetch_one(&env.world.config)
                .await?;
        let (activity_name, strategy_id, activity_end): (String, i64, NaiveDateTime) =
            (row.try_get(0)?, row.try_get(1)?, row.try_get(2)?);
        let row = sqlx::query(
            "SELECT award_id, award_title FROM strategy_award WHERE strategy_id = ? ORDER BY sort, award_id LIMIT 1",
        )
        .bind(strategy_id)
        .fetch_one(&env.world.config)
        .await?;
        let (award_id, award_title): (i32, String) = (row.try_get(0)?, row.try_get(1)?);
        let (strategy_id, award_id) = (StrategyId::new(strategy_id), AwardId::new(award_id));
        let keys = Keys::new(s.redis.key_prefix.clone());
        let redis = redis::Client::open(s.redis.url.as_str())?
            .get_multiplexed_async_connection()
            .await
            .context("connecting to Redis")?;
        let mut manager = persistence::redis::connect(&s.redis.url).await?;
        let worker = SnowflakeIds::lease_worker(&mut manager, &s.redis.key_prefix).await?;
        Ok(Self {
            shards,
            redis,
            take: redis::Script::new(persistence::redis::stock::TAKE),
            stock_key: keys.award_stock(strategy_id, award_id),
            ids: SnowflakeIds::new(worker)?,
            calendar: BusinessCalendar::new(s.business.utc_offset_minutes)
                .context("business.utc_offset_minutes must be within ±23:59")?,
            activity_name,
            strategy_id,
            activity_end,
            award_id,
            award_title,
            month: PeriodSql::new(
                "raffle_activity_account_month",
                "month",
                "month_count",
                "month_count_surplus",
            ),
            day: PeriodSql::new("raffle_activity_account_day", "day", "day_count", "day_count_surplus"),
            split: (0..s.database.tables_per_shard).map(SplitSql::new).collect(),
        })
    }

    /// Closes the pools.
    pub(crate) async fn close(&self) {
        for p in &self.shards {
            p.close().await;
        }
    }

    /// Spends one unit of a day/month row (update the locked row if present, insert it from
    /// the allowance otherwise); returns `(count, surplus after)`.
    async fn spend(
        conn: &mut MySqlConnection,
        sql: &PeriodSql,
        existing: Option<(i32, i32)>,
        user: &str,
        period: &str,
        allowance: i32,
    ) -> anyhow::Result<(i32, i32)> {
        match existing {
            Some((n, left)) => {
                anyhow::ensure!(left > 0, "period {period} exhausted");
                let done = sqlx::query(&sql.spend)
                    .bind(1_i32)
                    .bind(user)
                    .bind(ACTIVITY_ID.get())
                    .bind(period)
                    .bind(0_i32)
                    .execute(&mut *conn)
                    .await?;
                anyhow::ensure!(done.rows_affected() == 1, "period {period} exhausted");
                Ok((n, left - 1))
            }
            None => {
                anyhow::ensure!(allowance > 0, "period {period} exhausted");
                sqlx::query(&sql.insert)
                    .bind(user)
                    .bind(ACTIVITY_ID.get())
                    .bind(period)
                    .bind(allowance)
                    .bind(allowance - 1)
                    .execute(&mut *conn)
                    .await?;
                Ok((allowance, allowance - 1))
            }
        }
    }

    /// One draw for `user`.
    pub(crate) async fn draw(&self, user: &BenchUser) -> anyhow::Result<()> {
        let now = Utc::now();
        let (day, month) = (self.calendar.day(now), self.calendar.month(now));
        let at = now.naive_utc().with_nanosecond(0).unwrap_or(now.naive_utc());
        let order_id = self.ids.next_i64().to_string();
        let account_event_id = self.ids.next_i64().to_string();
        let split = self
            .split
            .get(user.route.table)
            .context("route outside the split tables")?;
        let pool = self.shards.get(user.route.db).context("route outside the shards")?;
        let uid = user.id.as_str();

        let mut tx = pool.begin().await?;

        let locked = sqlx::query(&split.lock_for_draw)
            .bind(day.as_str())
            .bind(month.as_str())
            .bind(uid)
            .bind(ACTIVITY_ID.get())
            .fetch_optional(&mut *tx)
            .await?
            .context("no account")?;
        let (total, total_left, day_allowance, month_allowance): (i32, i32, i32, i32) = (
            locked.try_get(0)?,
            locked.try_get(1)?,
            locked.try_get(2)?,
            locked.try_get(3)?,
        );
        let version: i64 = locked.try_get(4)?;
        let period = |count: usize| -> anyhow::Result<Option<(i32, i32)>> {
            let n: Option<i32> = locked.try_get(count)?;
            let left: Option<i32> = locked.try_get(count + 1)?;
            Ok(n.zip(left))
        };
        let (day_row, month_row) = (period(5)?, period(7)?);
        let unused: Option<String> = locked.try_get(9)?;
        anyhow::ensure!(unused.is_none(), "an unused ticket exists (not the measured path)");
        anyhow::ensure!(total_left > 0, "total quota exhausted");
        let (month_count, month_left) =
            Self::spend(&mut tx, &self.month, month_row, uid, &month, month_allowance).await?;
        let (day_count, day_left) = Self::spend(&mut tx, &self.day, day_row, uid, &day, day_allowance).await?;
        let done = sqlx::query(SPEND_ACCOUNT)
            .bind(1_i32)
            .bind(1_i32)
            .bind(day_left)
            .bind(month_left)
            .bind(uid)
            .bind(ACTIVITY_ID.get())
            .bind(0_i32)
            .execute(&mut *tx)
            .await?;
        anyhow::ensure!(done.rows_affected() == 1, "total quota exhausted");
        // The raffle's one Redis call: take a unit of award stock (same script, same key shape).
        let ttl_ms = (self.activity_end.and_utc() + chrono::Duration::days(1) - now)
            .num_milliseconds()
            .max(0);
        let remaining: i64 = self
            .take
            .key(&self.stock_key)
            .arg(ttl_ms)
            .invoke_async(&mut self.redis.clone())
            .await?;
        anyhow::ensure!(remaining >= 0, "award stock take returned {remaining}");

        sqlx::query(&split.insert_record)
            .bind(uid)
            .bind(ACTIVITY_ID.get())
            .bind(self.strategy_id.get())
            .bind(order_id.as_str())
            .bind(self.award_id.get())
            .bind(self.award_title.as_str())
            .bind(at)
            .bind("create")
            .execute(&mut *tx)
            .await?;
        sqlx::query(&split.insert_ticket)
            .bind(uid)
            .bind(ACTIVITY_ID.get())
            .bind(self.activity_name.as_str())
            .bind(self.strategy_id.get())
            .bind(order_id.as_str())
            .bind(at)
            .bind("used")
            .execute(&mut *tx)
            .await?;

        // The payloads are the application's (`domain::outbox`), byte for byte.
        let ts = now.timestamp_millis();
        let send_award = OutboxMessage::new(
            uid,
            TOPIC_SEND_AWARD,
            self.ids.next_i64().to_string().into(),
            ts,
            &SendAward {
                award_config: None,
                award_id: self.award_id,
                award_title: self.award_title.clone(),
                order_id,
                user_id: uid.to_owned(),
            },
        );
        let snapshot = OutboxMessage::new(
            uid,
            TOPIC_ACCOUNT_CHANGED,
            account_event_id.into(),
            ts,
            &AccountSnapshot {
                activity_id: ACTIVITY_ID,
                day: Some(PeriodSnapshot {
                    period: day,
                    count: day_count,
                    surplus: day_left,
                }),
                day_count: day_allowance,
                month: Some(PeriodSnapshot {
                    period: month,
                    count: month_count,
                    surplus: month_left,
                }),
                month_count: month_allowance,
                total_count: total,
                total_count_surplus: total_left - 1,
                user_id: uid.to_owned(),
                version: version + 1,
            },
        );
        let mut insert = sqlx::query(INSERT_TASKS);
        for m in [&send_award, &snapshot] {
            insert = insert
                .bind(m.user_id.as_str())
                .bind(m.topic)
                .bind(m.message_id.as_str())
                .bind(m.message.as_str())
                .bind("create");
        }
        insert.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// The commit floor: per draw, one `EVALSHA` of the stock script and one autocommitted
/// single-row `INSERT` of the draw's `send_award` outbox row, on the same shard pools as
/// [`RawDriver`]. Nothing that saves a draw durably can do less.
pub(crate) struct FloorDriver {
    raw: RawDriver,
}

impl FloorDriver {
    /// Opens the same pools and Redis connection as [`RawDriver::new`].
    pub(crate) async fn new(env: &BenchEnv) -> anyhow::Result<Self> {
        Ok(Self {
            raw: RawDriver::new(env).await?,
        })
    }

    /// Closes the pools.
    pub(crate) async fn close(&self) {
        self.raw.close().await;
    }

    /// One floor "draw" for `user`.
    pub(crate) async fn draw(&self, user: &BenchUser) -> anyhow::Result<()> {
        let r = &self.raw;
        let now = Utc::now();
        let pool = r.shards.get(user.route.db).context("route outside the shards")?;
        let uid = user.id.as_str();
        let ttl_ms = (r.activity_end.and_utc() + chrono::Duration::days(1) - now)
            .num_milliseconds()
            .max(0);
        let remaining: i64 = r
            .take
            .key(&r.stock_key)
            .arg(ttl_ms)
            .invoke_async(&mut r.redis.clone())
            .await?;
        anyhow::ensure!(remaining >= 0, "award stock take returned {remaining}");
        let send_award = OutboxMessage::new(
            uid,
            TOPIC_SEND_AWARD,
            r.ids.next_i64().to_string().into(),
            now.timestamp_millis(),
            &SendAward {
                award_config: None,
                award_id: r.award_id,
                award_title: r.award_title.clone(),
                order_id: r.ids.next_i64().to_string(),
                user_id: uid.to_owned(),
            },
        );
        sqlx::query(INSERT_TASK)
            .bind(send_award.user_id.as_str())
            .bind(send_award.topic)
            .bind(send_award.message_id.as_str())
            .bind(send_award.message.as_str())
            .bind("create")
            .execute(pool)
            .await?;
        Ok(())
    }
}

/// The floor's one row.
const INSERT_TASK: &str =
    "INSERT INTO `task` (`user_id`, `topic`, `message_id`, `message`, `state`) VALUES (?, ?, ?, ?, ?)";
