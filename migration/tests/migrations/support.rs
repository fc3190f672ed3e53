//! What the migration tests share: the original dumps (tables, columns, reference rows, the
//! fixture files), the shard migrations' bookkeeping (names, rollback steps, the columns and
//! tables each one adds) and [`shard_round_trip`], the up / down / up-again test every shard
//! migration's file runs.
//!
//! The generic parts (throw-away databases, dump loading, information_schema snapshots) are in
//! `test-support`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, ensure};
use migration::ShardMigrator;
use migration::sea_orm_migration::MigratorTrait;
use migration::sea_orm_migration::sea_orm::DatabaseConnection;
use test_support::mysql::{TestDatabases, connect, create_database, finish};
use test_support::schema::{SchemaSnapshot, applied_migrations, data_snapshot, data_snapshot_without, tables};
use test_support::services::database_url;

use crate::m20241123_outbox_relay::{INBOX_COLUMNS, OUTBOX_INBOX, OUTBOX_RELAY, OUTBOX_TASK_COLUMNS};
use crate::m20241123_read_model_versions::{READ_MODEL_VERSIONS, VERSION_COLUMN, VERSIONED_TABLES};
use crate::m20261201_task_trace_context::TASK_TRACE_CONTEXT;

/// Path of a committed fixture dump (`tests/fixtures/original/<file>`).
pub(crate) fn fixture(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/original")
        .join(file)
}

/// Creates database `name` and loads the fixture dump `file` into it.
pub(crate) async fn load_fixture(name: &str, file: &str) -> anyhow::Result<()> {
    test_support::dump::load_dump(name, &fixture(file)).await
}

/// Path of a committed copy of the original's latest dumps (`tests/fixtures/latest/<file>`).
pub(crate) fn latest_fixture(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/latest")
        .join(file)
}

/// Creates database `name` and loads the latest dump `file` into it, taken as MySQL 8 wrote it
/// and made loadable by MariaDB with [`mysql8_to_mariadb`] (through a copy in the test target's
/// scratch directory).
pub(crate) async fn load_latest_fixture(name: &str, file: &str) -> anyhow::Result<()> {
    let source = latest_fixture(file);
    let text = std::fs::read_to_string(&source).with_context(|| format!("reading {}", source.display()))?;
    let converted = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{file}"));
    std::fs::write(&converted, mysql8_to_mariadb(&text)).with_context(|| format!("writing {}", converted.display()))?;
    let loaded = test_support::dump::load_dump(name, &converted).await;
    std::fs::remove_file(&converted).ok();
    loaded
}

/// What MariaDB cannot take from a MySQL 8 dump, removed: the MySQL 8 collations
/// (`utf8mb4_0900_ai_ci` and the other `utf8mb4_0900_*`, in `COLLATE x`, `COLLATE=x` and
/// `DEFAULT COLLATE x` clauses), so the server's default collation of the character set applies
/// (a name outside such a clause becomes `utf8mb4_general_ci`), and the comments versioned for MySQL 8 (`/*!80000 … */`, which MariaDB would execute because
/// its own version number, 10.x, is larger).
pub(crate) fn mysql8_to_mariadb(dump: &str) -> String {
    const MYSQL8_COLLATION: &str = "utf8mb4_0900_";
    let mut out = String::with_capacity(dump.len());
    let mut rest = dump;
    loop {
        let lower = rest.to_ascii_lowercase();
        let collation = lower.find(MYSQL8_COLLATION);
        let comment = lower.find("/*!8");
        match (collation, comment) {
            (Some(at), comment) if comment.is_none_or(|c| at < c) => {
                // Drop `[DEFAULT] COLLATE[=| ]` before the name, and the name itself; a bare
                // name (`SET collation_connection = …`) becomes MariaDB's utf8mb4 default.
                let before = rest[..at].trim_end_matches([' ', '=']);
                let head = strip_keyword(before, "collate");
                if head.len() < before.len() {
                    out.push_str(strip_keyword(head, "default"));
                } else {
                    out.push_str(&rest[..at]);
                    out.push_str("utf8mb4_general_ci");
                }
                let name_end = rest[at..]
                    .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .map_or(rest.len(), |end| at + end);
                rest = &rest[name_end..];
            }
            (_, Some(at)) => {
                out.push_str(&rest[..at]);
                let end = rest[at..].find("*/").map_or(rest.len(), |end| at + end + 2);
                rest = &rest[end..];
            }
            _ => {
                out.push_str(rest);
                return out;
            }
        }
    }
}

/// `text` without the keyword `word` (any case) and the blanks before it, if it ends with them.
fn strip_keyword<'a>(text: &'a str, word: &str) -> &'a str {
    text.len()
        .checked_sub(word.len())
        .filter(|&start| text.get(start..).is_some_and(|tail| tail.eq_ignore_ascii_case(word)))
        .map_or(text, |start| text[..start].trim_end())
}

/// The audit timestamps, left out when rows are compared by id and content.
pub(crate) const AUDIT_TIMESTAMPS: &[&str] = &["create_time", "update_time"];

/// The columns of `raffle_activity_stage` (latest dump).
pub(crate) const STAGE_COLUMNS: &[&str] = &["channel", "source", "activity_id", "state"];

/// The reference rows of the latest dump that `m20261201_000001_latest_reference` adds to a
/// config database holding the original dump's rows (a fresh one, or one loaded from the
/// original dump): `(table, row)`, the row with its id and without [`AUDIT_TIMESTAMPS`].
pub(crate) const LATEST_ADDED_ROWS: &[(&str, &str)] = &[
    ("award", "11|110|openai_use_count|1|OpenAI 增加使用次数"),
    ("award", "12|111|openai_use_count|5|OpenAI 增加使用次数"),
    ("award", "14|112|openai_use_count|10|OpenAI 增加使用次数"),
    ("award", "15|113|openai_use_count|15|OpenAI 增加使用次数"),
    ("award", "16|114|openai_use_count|20|OpenAI 增加使用次数"),
    ("award", "18|115|openai_use_count|25|OpenAI 增加使用次数"),
    ("award", "19|116|openai_use_count|50|OpenAI 增加使用次数"),
    ("award", "21|117|openai_use_count|100|OpenAI 增加使用次数"),
    ("strategy", "7|10007|抽奖策略-规则树|<NULL>"),
    (
        "strategy_award",
        "30|10007|101|随机积分|<NULL>|1000000|1000000|0.1000|tree_luck_award|1",
    ),
    (
        "strategy_award",
        "31|10007|110|1次使用次数|<NULL>|1000000|1000000|0.8000|tree_luck_award|2",
    ),
    (
        "strategy_award",
        "32|10007|111|5次使用次数|<NULL>|1000000|1000000|0.0800|tree_luck_award|3",
    ),
    (
        "strategy_award",
        "33|10007|112|10次使用次数|<NULL>|1000000|1000000|0.0100|tree_luck_award|4",
    ),
    (
        "strategy_award",
        "34|10007|113|50次使用次数|抽奖3次后解锁|1000000|1000000|0.0002|tree_lock_3|5",
    ),
    (
        "strategy_award",
        "35|10007|114|20次使用次数|抽奖2次后解锁|1000000|1000000|0.0040|tree_lock_2|6",
    ),
    (
        "strategy_award",
        "36|10007|115|25次使用次数|抽奖1次后解锁|1000000|1000000|0.0008|tree_lock_1|7",
    ),
    (
        "strategy_award",
        "37|10007|116|15次使用次数|<NULL>|1000000|1000000|0.0050|tree_luck_award|8",
    ),
    ("raffle_activity_count", "5|22201|1|1|1"),
    ("raffle_activity_count", "6|22202|5|5|5"),
    ("raffle_activity_count", "7|22203|10|10|10"),
    (
        "raffle_activity",
        "2|100401|OpenAi抽奖活动|签到&支付有奖返利|2024-10-06 12:09:34|2026-10-06 12:09:34|10007|open",
    ),
    ("raffle_activity_sku", "5|9901|100401|22201|100000|100000|5.00"),
    ("raffle_activity_sku", "6|9902|100401|22202|100000|100000|10.00"),
    ("raffle_activity_sku", "7|9903|100401|22203|100000|100000|20.00"),
    ("daily_behavior_rebate", "4|openai_pay|支付返利-积分|sku|9901|open"),
    (
        "daily_behavior_rebate",
        "5|openai_pay|支付返利-sku额度|integral|10|open",
    ),
    ("raffle_activity_stage", "1|c01|s01|100401|active"),
];

/// The rows in which a config database holding the original dump's rows differs from the latest
/// dump once migrated (by id and content, without [`AUDIT_TIMESTAMPS`]): `(table, ours,
/// latest)`. The migration never changes an existing row: the sign-in SKU rebate stays SKU 9014
/// at id 1 (the latest dump has SKU 9901 at id 3, which is not added next to an open `sign` /
/// `sku` row), and award 108 of strategy 100006 keeps its original rate.
pub(crate) const LATEST_KEPT_DIFFERENCES: &[(&str, Option<&str>, Option<&str>)] = &[
    (
        "daily_behavior_rebate",
        Some("1|sign|签到返利-sku额度|sku|9014|open"),
        None,
    ),
    (
        "daily_behavior_rebate",
        None,
        Some("3|sign|签到返利-sku额度|sku|9901|open"),
    ),
    (
        "strategy_award",
        Some("29|100006|108|暴走玩偶|<NULL>|100|25|0.0300|tree_luck_award|8"),
        Some("29|100006|108|暴走玩偶|<NULL>|100|25|0.0003|tree_luck_award|8"),
    ),
];

/// Row counts of the reference tables once every config migration ran on a database holding
/// the original dump's rows: [`REFERENCE_COUNTS`] plus [`LATEST_ADDED_ROWS`].
pub(crate) fn migrated_reference_counts() -> BTreeMap<String, i64> {
    let mut counts: BTreeMap<String, i64> = REFERENCE_COUNTS
        .iter()
        .map(|&(table, count)| (table.to_owned(), count))
        .collect();
    for (table, _) in LATEST_ADDED_ROWS {
        *counts.entry((*table).to_owned()).or_default() += 1;
    }
    counts
}

/// `snapshot` (a [`data_snapshot`] of a config database, all columns) without the rows of
/// [`LATEST_ADDED_ROWS`] (by id) and without the stage table.
pub(crate) fn without_latest_rows(mut snapshot: BTreeMap<String, Vec<String>>) -> BTreeMap<String, Vec<String>> {
    snapshot.remove(migration::STAGE_TABLE);
    for (table, row) in LATEST_ADDED_ROWS {
        let id = row.split('|').next().unwrap_or_default();
        if let Some(rows) = snapshot.get_mut(*table) {
            rows.retain(|r| !r.starts_with(&format!("{id}|")));
        }
    }
    snapshot
}

/// Config tables with their business columns (every table also has `id`, `create_time` and
/// `update_time`), as in `big_market.sql`.
pub(crate) const CONFIG_TABLES: &[(&str, &[&str])] = &[
    ("award", &["award_id", "award_key", "award_config", "award_desc"]),
    (
        "daily_behavior_rebate",
        &["behavior_type", "rebate_desc", "rebate_type", "rebate_config", "state"],
    ),
    (
        "raffle_activity",
        &[
            "activity_id",
            "activity_name",
            "activity_desc",
            "begin_date_time",
            "end_date_time",
            "strategy_id",
            "state",
        ],
    ),
    (
        "raffle_activity_count",
        &["activity_count_id", "total_count", "day_count", "month_count"],
    ),
    (
        "raffle_activity_sku",
        &[
            "sku",
            "activity_id",
            "activity_count_id",
            "stock_count",
            "stock_count_surplus",
            "product_amount",
        ],
    ),
    (
        "rule_tree",
        &["tree_id", "tree_name", "tree_desc", "tree_node_rule_key"],
    ),
    ("rule_tree_node", &["tree_id", "rule_key", "rule_desc", "rule_value"]),
    (
        "rule_tree_node_line",
        &[
            "tree_id",
            "rule_node_from",
            "rule_node_to",
            "rule_limit_type",
            "rule_limit_value",
        ],
    ),
    ("strategy", &["strategy_id", "strategy_desc", "rule_models"]),
    (
        "strategy_award",
        &[
            "strategy_id",
            "award_id",
            "award_title",
            "award_subtitle",
            "award_count",
            "award_count_surplus",
            "award_rate",
            "rule_models",
            "sort",
        ],
    ),
    (
        "strategy_rule",
        &[
            "strategy_id",
            "award_id",
            "rule_type",
            "rule_model",
            "rule_value",
            "rule_desc",
        ],
    ),
];

/// Shard tables (base names; `split` ones exist as `_000` … `_003`) with their business columns,
/// as in `big_market_01.sql`.
pub(crate) const SHARD_TABLES: &[(&str, bool, &[&str])] = &[
    (
        "raffle_activity_account",
        false,
        &[
            "user_id",
            "activity_id",
            "total_count",
            "total_count_surplus",
            "day_count",
            "day_count_surplus",
            "month_count",
            "month_count_surplus",
        ],
    ),
    (
        "raffle_activity_account_day",
        false,
        &["user_id", "activity_id", "day", "day_count", "day_count_surplus"],
    ),
    (
        "raffle_activity_account_month",
        false,
        &["user_id", "activity_id", "month", "month_count", "month_count_surplus"],
    ),
    (
        "raffle_activity_order",
        true,
        &[
            "user_id",
            "sku",
            "activity_id",
            "activity_name",
            "strategy_id",
            "order_id",
            "order_time",
            "total_count",
            "day_count",
            "month_count",
            "pay_amount",
            "state",
            "out_business_no",
        ],
    ),
    ("task", false, &["user_id", "topic", "message_id", "message", "state"]),
    (
        "user_award_record",
        true,
        &[
            "user_id",
            "activity_id",
            "strategy_id",
            "order_id",
            "award_id",
            "award_title",
            "award_time",
            "award_state",
        ],
    ),
    (
        "user_behavior_rebate_order",
        true,
        &[
            "user_id",
            "order_id",
            "behavior_type",
            "rebate_desc",
            "rebate_type",
            "rebate_config",
            "out_business_no",
            "biz_id",
        ],
    ),
    (
        "user_credit_account",
        false,
        &["user_id", "total_amount", "available_amount", "account_status"],
    ),
    (
        "user_credit_order",
        true,
        &[
            "user_id",
            "order_id",
            "trade_name",
            "trade_type",
            "trade_amount",
            "out_business_no",
        ],
    ),
    (
        "user_raffle_order",
        true,
        &[
            "user_id",
            "activity_id",
            "activity_name",
            "strategy_id",
            "order_id",
            "order_time",
            "order_state",
        ],
    ),
];

/// Row counts of the config tables in `big_market.sql`.
pub(crate) const REFERENCE_COUNTS: &[(&str, i64)] = &[
    ("award", 10),
    ("daily_behavior_rebate", 2),
    ("raffle_activity", 1),
    ("raffle_activity_count", 4),
    ("raffle_activity_sku", 4),
    ("rule_tree", 4),
    ("rule_tree_node", 11),
    ("rule_tree_node_line", 10),
    ("strategy", 6),
    ("strategy_award", 29),
    ("strategy_rule", 4),
];

/// Audit / surrogate columns that legitimately differ between seeded and dumped rows.
pub(crate) const NON_BUSINESS_COLUMNS: &[&str] = &["id", "create_time", "update_time"];

/// Physical shard table names with all their columns in order, as in `big_market_01.sql`.
pub(crate) fn original_shard_tables() -> Vec<(String, Vec<String>)> {
    let mut tables = Vec::new();
    for &(base, split, columns) in SHARD_TABLES {
        if split {
            for index in 0..migration::SPLIT_TABLE_COUNT {
                tables.push((format!("{base}_{index:03}"), with_audit_columns(columns)));
            }
        } else {
            tables.push((base.to_owned(), with_audit_columns(columns)));
        }
    }
    tables
}

/// Physical shard table names with all their columns in order, once every shard migration is
/// applied: the original tables with the columns of [`appended_columns`] (the outbox columns of
/// `task`, the `version` of the accounts), and `inbox`.
pub(crate) fn migrated_shard_tables() -> Vec<(String, Vec<String>)> {
    let mut tables = original_shard_tables();
    let appended = appended_columns();
    for (table, columns) in &mut tables {
        columns.extend(
            appended
                .iter()
                .filter(|&&(_, appended_to, _)| appended_to == table.as_str())
                .map(|&(_, _, column)| column.to_owned()),
        );
    }
    tables.push((
        OUTBOX_INBOX.to_owned(),
        INBOX_COLUMNS.iter().map(|&c| c.to_owned()).collect(),
    ));
    tables.sort();
    tables
}

pub(crate) fn with_audit_columns(columns: &[&str]) -> Vec<String> {
    std::iter::once("id")
        .chain(columns.iter().copied())
        .chain(["create_time", "update_time"])
        .map(str::to_owned)
        .collect()
}

pub(crate) fn migration_names<M: MigratorTrait>() -> Vec<String> {
    M::migrations()
        .iter()
        .map(|migration| migration.name().to_owned())
        .collect()
}

/// Position of the shard migration `name` in [`ShardMigrator`]'s list.
pub(crate) fn shard_migration_index(name: &str) -> anyhow::Result<usize> {
    migration_names::<ShardMigrator>()
        .iter()
        .position(|applied| applied == name)
        .with_context(|| format!("{name} is not a shard migration"))
}

/// Steps of `ShardMigrator::down` that roll a fully migrated shard back to just before the
/// migration `name` (reverting it and every migration after it), counted from the end of the
/// list so that migrations added later do not change what is reverted.
pub(crate) fn shard_steps_down_through(name: &str) -> anyhow::Result<u32> {
    let steps = ShardMigrator::migrations().len() - shard_migration_index(name)?;
    Ok(u32::try_from(steps)?)
}

/// Every column a shard migration appends to a table of the original dumps, in migration order:
/// `(migration, table, column)`.
pub(crate) fn appended_columns() -> Vec<(&'static str, &'static str, &'static str)> {
    let outbox = OUTBOX_TASK_COLUMNS
        .iter()
        .map(|&(column, ..)| (OUTBOX_RELAY, "task", column));
    let versions = VERSIONED_TABLES
        .iter()
        .map(|&table| (READ_MODEL_VERSIONS, table, VERSION_COLUMN.0));
    let trace = std::iter::once((TASK_TRACE_CONTEXT, "task", migration::TRACE_CONTEXT_COLUMN));
    outbox.chain(versions).chain(trace).collect()
}

/// `(table, column)` of every column appended by the shard migration `name` or by one after it,
/// i.e. the columns that rolling back through `name` drops. Rows compared across such a rollback
/// (or with the original dumps) leave these columns out.
pub(crate) fn columns_appended_from(name: &str) -> anyhow::Result<Vec<(&'static str, &'static str)>> {
    let first = shard_migration_index(name)?;
    let mut appended = Vec::new();
    for (migration, table, column) in appended_columns() {
        if shard_migration_index(migration)? >= first {
            appended.push((table, column));
        }
    }
    Ok(appended)
}

/// `(table, column)` of every column any shard migration appends to a table of the dumps.
pub(crate) fn all_appended_columns() -> anyhow::Result<Vec<(&'static str, &'static str)>> {
    columns_appended_from(&migration_names::<ShardMigrator>()[0])
}

/// Every table a shard migration creates: `(migration, table)`.
pub(crate) fn created_tables() -> Vec<(&'static str, &'static str)> {
    vec![(OUTBOX_RELAY, OUTBOX_INBOX)]
}

/// Every table created by the shard migration `name` or by one after it, i.e. the tables that
/// rolling back through `name` drops.
pub(crate) fn tables_created_from(name: &str) -> anyhow::Result<Vec<&'static str>> {
    let first = shard_migration_index(name)?;
    let mut created = Vec::new();
    for (migration, table) in created_tables() {
        if shard_migration_index(migration)? >= first {
            created.push(table);
        }
    }
    Ok(created)
}

/// Business columns of the shard table `table` (base name) in the original dump.
pub(crate) fn original_business_columns(table: &str) -> anyhow::Result<&'static [&'static str]> {
    SHARD_TABLES
        .iter()
        .find(|(shard_table, ..)| *shard_table == table)
        .map(|&(_, _, business)| business)
        .with_context(|| format!("{table} is a shard table"))
}

/// One shard database in the middle of a round trip, handed to the [`ShardRoundTrip`] hooks.
pub(crate) struct Shard<'a> {
    /// Connection to the server (no database selected) for information_schema queries.
    pub server: &'a DatabaseConnection,
    /// The shard database's name.
    pub name: &'a str,
    /// Connection to the shard database (one connection: session state carries over).
    pub db: &'a DatabaseConnection,
    /// Every shard migration, in order.
    pub names: Vec<String>,
    /// Position of the migration under test in [`Shard::names`].
    pub index: usize,
    /// Steps of `ShardMigrator::down` that revert the migration under test and every later one.
    pub steps: u32,
}

impl Shard<'_> {
    /// Runs each statement on the shard.
    pub async fn exec(&self, statements: &[&str]) -> anyhow::Result<()> {
        use migration::sea_orm_migration::sea_orm::ConnectionTrait;
        for sql in statements {
            self.db
                .execute_unprepared(sql)
                .await
                .with_context(|| format!("{}: {sql}", self.name))?;
        }
        Ok(())
    }

    /// Asserts the migrations recorded in the shard's `seaql_migrations`.
    pub async fn assert_applied(&self, expected: &[String], when: &str) -> anyhow::Result<()> {
        assert_eq!(
            applied_migrations(self.server, self.name).await?,
            expected,
            "migrations applied to {} {when}",
            self.name
        );
        Ok(())
    }
}

/// What one shard migration's round trip checks beyond the shared steps of
/// [`shard_round_trip`]. Rolling back through a migration reverts every later one too, so the
/// hooks see the effects of the later migrations come and go as well.
pub(crate) trait ShardRoundTrip {
    /// The migration under test (its name in [`ShardMigrator`]).
    const MIGRATION: &'static str;

    /// Asserts that what rolling back through [`Self::MIGRATION`] reverts is all there with its
    /// exact definition (`applied`), or all gone.
    async fn assert_effects(&self, shard: &Shard<'_>, applied: bool) -> anyhow::Result<()>;

    /// After the first up: writes the rows kept across the round trip and runs any scenario that
    /// must leave the shard fully migrated.
    async fn prepare(&self, _shard: &Shard<'_>) -> anyhow::Result<()> {
        Ok(())
    }

    /// After the rollback (the shared checks passed): checks the rolled-back schema against the
    /// first up's.
    async fn after_down(&self, _shard: &Shard<'_>, _up: &SchemaSnapshot) -> anyhow::Result<()> {
        Ok(())
    }

    /// After up again (the shared checks passed).
    async fn after_up_again(&self, _shard: &Shard<'_>, _up: &SchemaSnapshot) -> anyhow::Result<()> {
        Ok(())
    }
}

/// The round trip of one shard migration, in a fresh shard database:
///
/// 1. up: every shard migration is applied, and the migration's effects are there;
/// 2. [`ShardRoundTrip::prepare`], then a schema snapshot and a data snapshot (without the
///    columns the rollback drops);
/// 3. down through the migration: the migrations before it stay applied, its effects are gone,
///    the tables it (or a later one) created are gone and every other row is kept as it was;
/// 4. up again: everything is applied, the effects are back, the schema equals the first up's,
///    the re-created tables are empty and every kept row is unchanged.
pub(crate) async fn shard_round_trip<T: ShardRoundTrip>(case: T) -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new().await?;
    let name = dbs.name("01");
    let result = round_trip_in(&dbs, &name, &case).await;
    finish(dbs, result).await
}

async fn round_trip_in<T: ShardRoundTrip>(dbs: &TestDatabases, name: &str, case: &T) -> anyhow::Result<()> {
    let server = &dbs.server;
    create_database(name).await?;
    let db = connect(&database_url(name)).await?;
    let shard = Shard {
        server,
        name,
        db: &db,
        names: migration_names::<ShardMigrator>(),
        index: shard_migration_index(T::MIGRATION)?,
        steps: shard_steps_down_through(T::MIGRATION)?,
    };
    let names = &shard.names;

    // Up.
    ShardMigrator::up(&db, None).await?;
    shard.assert_applied(names, "after up").await?;
    case.assert_effects(&shard, true).await?;
    case.prepare(&shard).await?;
    let schema = SchemaSnapshot::take(server, name).await?;
    let appended = columns_appended_from(T::MIGRATION)?;
    let created = tables_created_from(T::MIGRATION)?;
    let rows = data_snapshot_without(server, name, &appended).await?;
    let mut kept_rows = rows.clone();
    for table in &created {
        kept_rows.remove(*table);
    }

    // Down through the migration.
    ShardMigrator::down(&db, Some(shard.steps)).await?;
    shard.assert_applied(&names[..shard.index], "after down").await?;
    case.assert_effects(&shard, false).await?;
    let after_down = tables(server, name).await?;
    for table in &created {
        ensure!(
            !after_down.iter().any(|t| t == table),
            "{name}.{table} survived the rollback"
        );
    }
    assert!(
        data_snapshot(server, name).await? == kept_rows,
        "rows of {name} changed by the rollback"
    );
    case.after_down(&shard, &schema).await?;

    // Up again.
    ShardMigrator::up(&db, None).await?;
    shard.assert_applied(names, "after down + up").await?;
    case.assert_effects(&shard, true).await?;
    assert!(
        SchemaSnapshot::take(server, name).await? == schema,
        "schema of {name} after down + up differs from the first up"
    );
    let mut after_rows: BTreeMap<String, Vec<String>> = data_snapshot_without(server, name, &appended).await?;
    for table in &created {
        assert_eq!(
            after_rows.remove(*table),
            Some(Vec::new()),
            "{name}.{table} is recreated empty"
        );
    }
    assert!(after_rows == kept_rows, "rows of {name} changed by down + up");
    case.after_up_again(&shard, &schema).await?;
    db.close().await?;
    Ok(())
}

/// `columns` as they were before `m20261130_000002_binary_ids` (what rolling back through it,
/// and so through every later migration, restores): the business numbers at their original
/// widths ([`before_wide_business_numbers`]), the id columns in the original's
/// `utf8mb4_general_ci`, `user_id` as `varchar(32)`.
pub(crate) fn before_binary_ids(
    columns: std::collections::BTreeSet<test_support::schema::ColumnInfo>,
) -> std::collections::BTreeSet<test_support::schema::ColumnInfo> {
    before_task_message_text(before_wide_business_numbers(columns))
        .into_iter()
        .map(|mut c| {
            if migration::BINARY_ID_COLUMNS.contains(&c.column.as_str()) && c.collation == migration::ID_COLLATION {
                c.collation = "utf8mb4_general_ci".into();
                if c.column == "user_id" {
                    c.column_type = "varchar(32)".into();
                }
            }
            c
        })
        .collect()
}

/// `columns` as they were before `m20261201_000002_task_message_text` (what rolling back
/// through it restores): `task.message` as the original's `varchar(512)`.
pub(crate) fn before_task_message_text(
    columns: std::collections::BTreeSet<test_support::schema::ColumnInfo>,
) -> std::collections::BTreeSet<test_support::schema::ColumnInfo> {
    columns
        .into_iter()
        .map(|mut c| {
            if c.table == "task" && c.column == "message" {
                c.column_type = "varchar(512)".into();
            }
            c
        })
        .collect()
}

/// `columns` as they were before `m20261201_000003_wide_business_numbers` (what rolling back
/// through it, and so through the later [`before_task_trace_context`], restores): every
/// business-number column of [`migration::BUSINESS_NO_COLUMNS`] at its width from before, its
/// definition otherwise unchanged.
pub(crate) fn before_wide_business_numbers(
    columns: std::collections::BTreeSet<test_support::schema::ColumnInfo>,
) -> std::collections::BTreeSet<test_support::schema::ColumnInfo> {
    before_task_trace_context(columns)
        .into_iter()
        .map(|mut c| {
            for (base, column, original) in migration::BUSINESS_NO_COLUMNS {
                let split = c
                    .table
                    .strip_prefix(base)
                    .and_then(|suffix| suffix.strip_prefix('_'))
                    .is_some_and(|index| index.len() == 3 && index.chars().all(|d| d.is_ascii_digit()));
                if split && c.column == column {
                    c.column_type = format!("varchar({original})");
                }
            }
            c
        })
        .collect()
}

/// `columns` as they were before `m20261201_000004_task_trace_context` (what rolling back
/// through it restores): without `task.traceparent`.
pub(crate) fn before_task_trace_context(
    columns: std::collections::BTreeSet<test_support::schema::ColumnInfo>,
) -> std::collections::BTreeSet<test_support::schema::ColumnInfo> {
    columns
        .into_iter()
        .filter(|c| !(c.table == "task" && c.column == migration::TRACE_CONTEXT_COLUMN))
        .collect()
}
