//! Migration tests against the real MariaDB/MySQL server (`BIG_MARKET_TEST_MYSQL_URL`, default
//! `mysql://root@127.0.0.1:3306`). Each test works in its own uniquely named databases and drops
//! them at the end; an unreachable server fails the test.

mod support;

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, ensure};
use migration::sea_orm_migration::MigratorTrait;
use migration::sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseConnection};
use migration::{ConfigMigrator, ShardMigrator, migrate_all};
use support::{
    ColumnInfo, IndexInfo, TestDatabases, column_names, columns, connect, data_snapshot, data_snapshot_without,
    database_url, keys_and_options, load_dump, row_counts, split_statements, table_indexes, table_rows, tables,
};

/// Config tables with their business columns (every table also has `id`, `create_time` and
/// `update_time`), as in `big_market.sql`.
const CONFIG_TABLES: &[(&str, &[&str])] = &[
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
const SHARD_TABLES: &[(&str, bool, &[&str])] = &[
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
const REFERENCE_COUNTS: &[(&str, i64)] = &[
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
const NON_BUSINESS_COLUMNS: &[&str] = &["id", "create_time", "update_time"];

/// Physical shard table names with all their columns in order, as in `big_market_01.sql`.
fn original_shard_tables() -> Vec<(String, Vec<String>)> {
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
fn migrated_shard_tables() -> Vec<(String, Vec<String>)> {
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

fn with_audit_columns(columns: &[&str]) -> Vec<String> {
    std::iter::once("id")
        .chain(columns.iter().copied())
        .chain(["create_time", "update_time"])
        .map(str::to_owned)
        .collect()
}

fn migration_names<M: MigratorTrait>() -> Vec<String> {
    M::migrations()
        .iter()
        .map(|migration| migration.name().to_owned())
        .collect()
}

/// Position of the shard migration `name` in [`ShardMigrator`]'s list.
fn shard_migration_index(name: &str) -> anyhow::Result<usize> {
    migration_names::<ShardMigrator>()
        .iter()
        .position(|applied| applied == name)
        .with_context(|| format!("{name} is not a shard migration"))
}

/// Steps of `ShardMigrator::down` that roll a fully migrated shard back to just before the
/// migration `name` (reverting it and every migration after it), counted from the end of the
/// list so that migrations added later do not change what is reverted.
fn shard_steps_down_through(name: &str) -> anyhow::Result<u32> {
    let steps = ShardMigrator::migrations().len() - shard_migration_index(name)?;
    Ok(u32::try_from(steps)?)
}

/// The shard migration widening the id columns.
const WIDEN_IDS: &str = "m20241123_000001_widen_ids";

/// The shard migration adding the outbox relay / idempotent consumer bookkeeping.
const OUTBOX_RELAY: &str = "m20241123_000002_outbox_relay";

/// Columns `m20241123_000002_outbox_relay` appends to `task` (after `update_time`): name,
/// `COLUMN_TYPE`, `IS_NULLABLE` and default (`None`: no default, i.e. `NULL`).
const OUTBOX_TASK_COLUMNS: &[(&str, &str, &str, Option<&str>)] = &[
    ("attempts", "int(8)", "NO", Some("0")),
    ("next_attempt_at", "datetime(3)", "YES", None),
    ("last_error", "varchar(512)", "YES", None),
    ("published_at", "datetime(3)", "YES", None),
    ("delivered_at", "datetime(3)", "YES", None),
];

/// The index `m20241123_000002_outbox_relay` adds to `task` to claim due rows.
const OUTBOX_TASK_INDEX: (&str, &[&str]) = ("idx_state_next_attempt", &["state", "next_attempt_at"]);

/// The table `m20241123_000002_outbox_relay` creates, its columns and its unique key.
const OUTBOX_INBOX: &str = "inbox";
const INBOX_COLUMNS: &[&str] = &["id", "message_id", "topic", "user_id", "create_time"];
const INBOX_UNIQUE_KEY: (&str, &[&str]) = ("uq_message_id_topic", &["message_id", "topic"]);

/// The unique key `m20241123_000002_outbox_relay` adds to `user_credit_account`.
const CREDIT_ACCOUNT_UNIQUE_KEY: (&str, &[&str]) = ("uq_user_id", &["user_id"]);

/// The shard migration adding the row versions of the read models.
const READ_MODEL_VERSIONS: &str = "m20241123_000003_read_model_versions";

/// Tables `m20241123_000003_read_model_versions` appends `version` to (after `update_time`).
const VERSIONED_TABLES: &[&str] = &["raffle_activity_account", "user_credit_account"];

/// The column `m20241123_000003_read_model_versions` appends: name, `COLUMN_TYPE`,
/// `IS_NULLABLE`, default and comment.
const VERSION_COLUMN: (&str, &str, &str, &str, &str) = ("version", "bigint(20)", "NO", "0", "变更版本（读模型）");

/// Every column a shard migration appends to a table of the original dumps, in migration order:
/// `(migration, table, column)`.
fn appended_columns() -> Vec<(&'static str, &'static str, &'static str)> {
    let outbox = OUTBOX_TASK_COLUMNS
        .iter()
        .map(|&(column, ..)| (OUTBOX_RELAY, "task", column));
    let versions = VERSIONED_TABLES
        .iter()
        .map(|&table| (READ_MODEL_VERSIONS, table, VERSION_COLUMN.0));
    outbox.chain(versions).collect()
}

/// `(table, column)` of every column appended by the shard migration `name` or by one after it,
/// i.e. the columns that rolling back through `name` drops. Rows compared across such a rollback
/// (or with the original dumps) leave these columns out.
fn columns_appended_from(name: &str) -> anyhow::Result<Vec<(&'static str, &'static str)>> {
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
fn all_appended_columns() -> anyhow::Result<Vec<(&'static str, &'static str)>> {
    columns_appended_from(&migration_names::<ShardMigrator>()[0])
}

/// Asserts that the `version` columns of `m20241123_000003_read_model_versions` are in shard
/// `database` with their exact definition, appended after the original columns and in no index
/// (`present`), or all gone, leaving those tables' columns as in the original dump.
async fn assert_version_columns(server: &DatabaseConnection, database: &str, present: bool) -> anyhow::Result<()> {
    let (column, column_type, nullable, default, comment) = VERSION_COLUMN;
    let all_columns = columns(server, database).await?;
    for &table in VERSIONED_TABLES {
        let mut expected = with_audit_columns(
            SHARD_TABLES
                .iter()
                .find(|(shard_table, ..)| *shard_table == table)
                .map(|&(_, _, business)| business)
                .with_context(|| format!("{table} is a shard table"))?,
        );
        let info = all_columns.iter().find(|c| c.table == table && c.column == column);
        if present {
            expected.push(column.to_owned());
            let info = info.with_context(|| format!("{database}.{table}.{column} is missing"))?;
            assert_eq!(
                (
                    info.column_type.as_str(),
                    info.is_nullable.as_str(),
                    info.default.as_str(),
                    info.extra.as_str(),
                    info.comment.as_str(),
                ),
                (column_type, nullable, default, "", comment),
                "(type, nullable, default, extra, comment) of {database}.{table}.{column}"
            );
        } else {
            ensure!(info.is_none(), "{database}.{table}.{column} survived the rollback");
        }
        assert_eq!(
            column_names(server, database, table).await?,
            expected,
            "columns of {database}.{table}"
        );
        let indexed: Vec<String> = table_indexes(server, database, table)
            .await?
            .into_iter()
            .filter(|(_, index)| index.columns.iter().any(|c| c == column))
            .map(|(name, _)| name)
            .collect();
        ensure!(
            indexed.is_empty(),
            "{database}.{table}.{column} is in indexes {indexed:?}"
        );
    }
    Ok(())
}

/// Asserts that the additions of `m20241123_000002_outbox_relay` to shard `database` are all
/// there with their exact definitions (`present`), or all gone, leaving the tables they touch as
/// in the original dump.
async fn assert_outbox_additions(server: &DatabaseConnection, database: &str, present: bool) -> anyhow::Result<()> {
    // `task`: the bookkeeping columns, appended in order, and the index to claim due rows.
    let task: BTreeMap<String, ColumnInfo> = columns(server, database)
        .await?
        .into_iter()
        .filter(|c| c.table == "task")
        .map(|c| (c.column.clone(), c))
        .collect();
    let original_task = with_audit_columns(
        SHARD_TABLES
            .iter()
            .find(|(table, ..)| *table == "task")
            .map(|&(_, _, business)| business)
            .context("task is a shard table")?,
    );
    let mut expected_task = original_task.clone();
    for &(column, column_type, nullable, default) in OUTBOX_TASK_COLUMNS {
        if !present {
            ensure!(
                !task.contains_key(column),
                "{database}.task.{column} survived the rollback"
            );
            continue;
        }
        expected_task.push(column.to_owned());
        let info = task
            .get(column)
            .with_context(|| format!("{database}.task.{column} is missing"))?;
        assert_eq!(
            (info.column_type.as_str(), info.is_nullable.as_str()),
            (column_type, nullable),
            "type of {database}.task.{column}"
        );
        match default {
            Some(default) => assert_eq!(info.default, default, "default of {database}.task.{column}"),
            // No default: MariaDB reports the literal `NULL`, MySQL an SQL NULL.
            None => assert!(
                matches!(info.default.as_str(), "NULL" | "<NULL>"),
                "default of {database}.task.{column}: {}",
                info.default
            ),
        }
    }
    assert_eq!(
        column_names(server, database, "task").await?,
        expected_task,
        "columns of {database}.task"
    );
    let (index, index_columns) = OUTBOX_TASK_INDEX;
    let task_indexes = table_indexes(server, database, "task").await?;
    let expected = present.then(|| IndexInfo {
        unique: false,
        columns: index_columns.iter().map(|&c| c.to_owned()).collect(),
    });
    assert_eq!(task_indexes.get(index), expected.as_ref(), "{database}.task.{index}");

    // `inbox`: the consumed messages, unique per (message_id, topic).
    let has_inbox = tables(server, database).await?.iter().any(|t| t == OUTBOX_INBOX);
    assert_eq!(has_inbox, present, "{database}.{OUTBOX_INBOX} exists");
    if present {
        assert_eq!(
            column_names(server, database, OUTBOX_INBOX).await?,
            INBOX_COLUMNS,
            "columns of {database}.{OUTBOX_INBOX}"
        );
        let (key, key_columns) = INBOX_UNIQUE_KEY;
        let unique = IndexInfo {
            unique: true,
            columns: key_columns.iter().map(|&c| c.to_owned()).collect(),
        };
        let inbox_indexes = table_indexes(server, database, OUTBOX_INBOX).await?;
        assert_eq!(inbox_indexes.get(key), Some(&unique), "{database}.{OUTBOX_INBOX}.{key}");
    }

    // `user_credit_account`: one account per user.
    let (key, key_columns) = CREDIT_ACCOUNT_UNIQUE_KEY;
    let expected = present.then(|| IndexInfo {
        unique: true,
        columns: key_columns.iter().map(|&c| c.to_owned()).collect(),
    });
    let account_indexes = table_indexes(server, database, "user_credit_account").await?;
    assert_eq!(
        account_indexes.get(key),
        expected.as_ref(),
        "{database}.user_credit_account.{key}"
    );
    Ok(())
}

/// Tables holding an id column widened by `m20241123_000001_widen_ids` (split ones exist as
/// `_000` … `_003`), with that column as in the original dumps: width, `IS_NULLABLE`, comment.
const ID_COLUMNS: &[(&str, bool, &str, u32, &str, &str)] = &[
    ("raffle_activity_order", true, "order_id", 12, "NO", "订单ID"),
    ("user_raffle_order", true, "order_id", 12, "NO", "订单ID"),
    (
        "user_award_record",
        true,
        "order_id",
        12,
        "NO",
        "抽奖订单ID【作为幂等使用】",
    ),
    ("user_behavior_rebate_order", true, "order_id", 12, "NO", "订单ID"),
    ("user_credit_order", true, "order_id", 12, "NO", "订单ID"),
    ("task", false, "message_id", 11, "YES", "消息编号"),
];

/// Asserts every id column of shard `database`: `COLUMN_TYPE` is `varchar(32)` when `widened`
/// and the original width otherwise; NULL-ability, (no) default and comment are the dump's.
async fn assert_id_widths(server: &DatabaseConnection, database: &str, widened: bool) -> anyhow::Result<()> {
    let actual: BTreeMap<(String, String), ColumnInfo> = columns(server, database)
        .await?
        .into_iter()
        .map(|c| ((c.table.clone(), c.column.clone()), c))
        .collect();
    let mut checked = 0;
    for &(base, split, column, original, nullable, comment) in ID_COLUMNS {
        let physical: Vec<String> = if split {
            (0..migration::SPLIT_TABLE_COUNT)
                .map(|index| format!("{base}_{index:03}"))
                .collect()
        } else {
            vec![base.to_owned()]
        };
        let width = if widened { 32 } else { original };
        for table in physical {
            let info = actual
                .get(&(table.clone(), column.to_owned()))
                .with_context(|| format!("{database}.{table}.{column} is missing"))?;
            let seen = (
                info.column_type.as_str(),
                info.is_nullable.as_str(),
                info.comment.as_str(),
            );
            assert_eq!(
                seen,
                (format!("varchar({width})").as_str(), nullable, comment),
                "{database}.{table}.{column}"
            );
            // No default: MariaDB reports the literal `NULL`, MySQL an SQL NULL.
            assert!(
                matches!(info.default.as_str(), "NULL" | "<NULL>"),
                "default of {database}.{table}.{column}: {}",
                info.default
            );
            checked += 1;
        }
    }
    assert_eq!(checked, 5 * migration::SPLIT_TABLE_COUNT + 1);
    Ok(())
}

#[test]
fn splitter_respects_quotes_and_comments() {
    let sql = "# header; not a statement\n\
               /*!40101 SET NAMES utf8mb4 */;\n\
               /* plain; comment */ INSERT INTO `t;x` VALUES ('a;b', 'it''s', 'c\\';d', \"e;f\");\n\
               -- line; comment\n\
               SELECT 1";
    assert_eq!(
        split_statements(sql),
        [
            "/*!40101 SET NAMES utf8mb4 */",
            "INSERT INTO `t;x` VALUES ('a;b', 'it''s', 'c\\';d', \"e;f\")",
            "SELECT 1",
        ]
    );
}

/// Fresh databases: all tables with the dump's columns, the dump's reference rows, and a second
/// run that changes nothing.
#[tokio::test]
async fn fresh_migrate_creates_seeds_and_is_idempotent() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new("fresh").await?;
    let names = [dbs.name("cfg"), dbs.name("01"), dbs.name("02")];
    let result = fresh_migrate(&dbs, &names).await;
    support::finish(dbs, result).await
}

async fn fresh_migrate(dbs: &TestDatabases, [cfg, s01, s02]: &[String; 3]) -> anyhow::Result<()> {
    let server = &dbs.server;
    let shard_urls = [database_url(s01), database_url(s02)];
    migrate_all(&database_url(cfg), &shard_urls).await?;

    // Config tables and columns.
    let mut expected: Vec<String> = CONFIG_TABLES.iter().map(|(t, _)| t.to_string()).collect();
    expected.push("seaql_migrations".into());
    expected.sort();
    assert_eq!(tables(server, cfg).await?, expected, "config tables");
    for (table, business) in CONFIG_TABLES {
        assert_eq!(
            column_names(server, cfg, table).await?,
            with_audit_columns(business),
            "columns of {cfg}.{table}"
        );
    }

    // Shard tables and columns.
    for shard in [s01, s02] {
        let mut expected: Vec<String> = migrated_shard_tables().into_iter().map(|(table, _)| table).collect();
        expected.push("seaql_migrations".into());
        expected.sort();
        assert_eq!(tables(server, shard).await?, expected, "tables of {shard}");
        for (table, columns) in migrated_shard_tables() {
            assert_eq!(
                column_names(server, shard, &table).await?,
                columns,
                "columns of {shard}.{table}"
            );
        }
        assert_id_widths(server, shard, true).await?;
        assert_outbox_additions(server, shard, true).await?;
        assert_version_columns(server, shard, true).await?;
        let counts = row_counts(server, shard).await?;
        ensure!(
            counts
                .iter()
                .all(|(table, &count)| table == "seaql_migrations" || count == 0),
            "shard databases get no seed rows: {counts:?}"
        );
    }

    // Reference data.
    let mut counts = row_counts(server, cfg).await?;
    counts.remove("seaql_migrations");
    let expected_counts: BTreeMap<String, i64> = REFERENCE_COUNTS
        .iter()
        .map(|&(table, count)| (table.to_owned(), count))
        .collect();
    assert_eq!(counts, expected_counts, "reference row counts");
    let strategies = table_rows(server, cfg, "strategy", NON_BUSINESS_COLUMNS).await?;
    assert!(
        strategies.contains(&"100006|抽奖策略-规则树|rule_blacklist,rule_weight".to_owned()),
        "{strategies:?}"
    );
    let lines = table_rows(server, cfg, "rule_tree_node_line", NON_BUSINESS_COLUMNS).await?;
    assert!(lines.contains(&"tree_lock_3|rule_lock|rule_luck_award|EQUAL|ALLOW".to_owned()));

    // Bookkeeping.
    assert_eq!(
        support::applied_migrations(server, cfg).await?,
        migration_names::<ConfigMigrator>()
    );
    for shard in [s01, s02] {
        assert_eq!(
            support::applied_migrations(server, shard).await?,
            migration_names::<ShardMigrator>()
        );
    }

    // A second run is a no-op: same schema, same rows, nothing pending.
    let before = full_snapshot(dbs, &[cfg, s01, s02]).await?;
    migrate_all(&database_url(cfg), &shard_urls).await?;
    let after = full_snapshot(dbs, &[cfg, s01, s02]).await?;
    assert!(before == after, "second migrate_all changed something");
    let db = connect(&database_url(cfg)).await?;
    let pending = ConfigMigrator::get_pending_migrations(&db).await?;
    db.close().await?;
    assert!(pending.is_empty(), "pending config migrations after up");

    // Rolling everything back leaves only the bookkeeping table; up again restores the state.
    for (name, config) in [(cfg, true), (s01, false)] {
        let db = connect(&database_url(name)).await?;
        if config {
            ConfigMigrator::down(&db, None).await?;
        } else {
            ShardMigrator::down(&db, None).await?;
        }
        assert_eq!(tables(server, name).await?, ["seaql_migrations"]);
        if config {
            ConfigMigrator::up(&db, None).await?;
        } else {
            ShardMigrator::up(&db, None).await?;
        }
        db.close().await?;
    }
    let mut counts = row_counts(server, cfg).await?;
    counts.remove("seaql_migrations");
    assert_eq!(counts, expected_counts, "reference rows after down + up");
    Ok(())
}

/// Schema, keys, table options and data of each database.
type Snapshot = Vec<(
    BTreeSet<ColumnInfo>,
    BTreeSet<Vec<String>>,
    BTreeSet<Vec<String>>,
    BTreeMap<String, Vec<String>>,
)>;

async fn full_snapshot(dbs: &TestDatabases, names: &[&String]) -> anyhow::Result<Snapshot> {
    let mut snapshot = Vec::new();
    for name in names {
        let (indexes, options) = keys_and_options(&dbs.server, name).await?;
        snapshot.push((
            columns(&dbs.server, name).await?,
            indexes,
            options,
            data_snapshot(&dbs.server, name).await?,
        ));
    }
    Ok(snapshot)
}

/// Databases created from the original dumps (no `seaql_migrations`) migrate in place: every row
/// is kept, no reference row is duplicated, and their schema equals a freshly migrated one.
#[tokio::test]
async fn original_dumps_upgrade_in_place() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new("upg").await?;
    let dumped = [dbs.name("dcfg"), dbs.name("d01"), dbs.name("d02")];
    let fresh = [dbs.name("fcfg"), dbs.name("f01"), dbs.name("f02")];
    let result = upgrade_in_place(&dbs, &dumped, &fresh).await;
    support::finish(dbs, result).await
}

/// Per-user rows written into the dump-loaded shards before upgrading (the shard dumps hold no
/// rows), shaped after the seed of spec §2.4.
const SHARD_ROWS: &[&str] = &[
    "INSERT INTO raffle_activity_account (id, user_id, activity_id, total_count, total_count_surplus, day_count, day_count_surplus, month_count, month_count_surplus, create_time, update_time) VALUES (3, 'xiaofuge', 100301, 45, 44, 45, 45, 45, 45, '2024-03-23 16:38:57', '2024-04-05 17:10:31')",
    "INSERT INTO raffle_activity_account_day (id, user_id, activity_id, day, day_count, day_count_surplus) VALUES (2, 'xiaofuge', 100301, '2024-04-05', 45, 44)",
    "INSERT INTO raffle_activity_account_month (id, user_id, activity_id, month, month_count, month_count_surplus) VALUES (5, 'xiaofuge', 100301, '2024-04', 45, 44)",
    "INSERT INTO raffle_activity_order_001 (id, user_id, sku, activity_id, activity_name, strategy_id, order_id, order_time, total_count, day_count, month_count, pay_amount, state, out_business_no) VALUES (56, 'xiaofuge', 9011, 100301, '测试活动', 100006, '381900087970', '2024-04-05 14:19:30', 1, 1, 1, NULL, 'completed', '700091009119')",
    "INSERT INTO user_raffle_order_001 (id, user_id, activity_id, activity_name, strategy_id, order_id, order_time, order_state) VALUES (4, 'xiaofuge', 100301, '测试活动', 100006, '313091076458', '2024-04-05 17:10:31', 'create')",
    "INSERT INTO user_award_record_001 (user_id, activity_id, strategy_id, order_id, award_id, award_title, award_time, award_state) VALUES ('xiaofuge', 100301, 100006, '313091076458', 101, 'OpenAI 增加使用次数', '2024-04-06 11:41:49', 'create')",
    "INSERT INTO task (user_id, topic, message_id, message, state) VALUES ('xiaofuge', 'send_award', '23913710462', '{\"data\":{\"awardId\":101,\"awardTitle\":\"OpenAI 增加使用次数\",\"userId\":\"xiaofuge\"},\"id\":\"23913710462\",\"timestamp\":1712374909975}', 'completed')",
    "INSERT INTO user_behavior_rebate_order_002 (user_id, order_id, behavior_type, rebate_desc, rebate_type, rebate_config, out_business_no, biz_id) VALUES ('xiaofuge', '412345678901', 'sign', '签到返利-积分', 'integral', '10', '20240802', 'xiaofuge_integral_20240802')",
    "INSERT INTO user_credit_account (user_id, total_amount, available_amount, account_status) VALUES ('xiaofuge', 10.00, 10.00, 'open')",
    "INSERT INTO user_credit_order_003 (user_id, order_id, trade_name, trade_type, trade_amount, out_business_no) VALUES ('xiaofuge', '512345678901', '行为返利', 'forward', 10.00, 'xiaofuge_integral_20240802')",
];

async fn upgrade_in_place(dbs: &TestDatabases, dumped: &[String; 3], fresh: &[String; 3]) -> anyhow::Result<()> {
    let server = &dbs.server;
    let [dcfg, d01, d02] = dumped;
    load_dump(dcfg, "big_market.sql").await?;
    load_dump(d01, "big_market_01.sql").await?;
    load_dump(d02, "big_market_02.sql").await?;
    for shard in [d01, d02] {
        let db = connect(&database_url(shard)).await?;
        for sql in SHARD_ROWS {
            db.execute_unprepared(sql).await?;
        }
        db.close().await?;
    }
    for name in dumped {
        assert!(
            !tables(server, name).await?.contains(&"seaql_migrations".to_owned()),
            "{name} must look like an original database"
        );
    }
    let dump_counts = row_counts(server, dcfg).await?;
    let expected: BTreeMap<String, i64> = REFERENCE_COUNTS
        .iter()
        .map(|&(table, count)| (table.to_owned(), count))
        .collect();
    assert_eq!(dump_counts, expected, "the dump loaded completely");

    let before_counts = [
        dump_counts.clone(),
        row_counts(server, d01).await?,
        row_counts(server, d02).await?,
    ];
    let mut before_rows = Vec::new();
    for name in dumped {
        before_rows.push(data_snapshot(server, name).await?);
    }

    // Upgrade the dump-loaded databases.
    migrate_all(&database_url(dcfg), &[database_url(d01), database_url(d02)]).await?;

    // Every row is kept as it was; the tables the upgrade created are empty, and the columns it
    // added are left out of the comparison (their values are checked below).
    for ((name, counts), rows) in dumped.iter().zip(&before_counts).zip(&before_rows) {
        let mut after = row_counts(server, name).await?;
        let applied = after.remove("seaql_migrations");
        let inbox = after.remove(OUTBOX_INBOX);
        assert!(
            inbox.is_none_or(|count| count == 0),
            "{name}.{OUTBOX_INBOX} is not empty"
        );
        assert_eq!(&after, counts, "row counts of {name} changed by the upgrade");
        assert!(applied.is_some(), "{name} has no seaql_migrations after upgrade");
        let mut after_rows = data_snapshot_without(server, name, &all_appended_columns()?).await?;
        after_rows.remove(OUTBOX_INBOX);
        assert!(&after_rows == rows, "rows of {name} changed by the upgrade");
    }
    assert_eq!(
        support::applied_migrations(server, dcfg).await?,
        migration_names::<ConfigMigrator>()
    );
    for shard in [d01, d02] {
        assert_eq!(
            support::applied_migrations(server, shard).await?,
            migration_names::<ShardMigrator>()
        );
    }

    // The outbox additions are in the dump-loaded shards; existing tasks start with no attempt.
    for shard in [d01, d02] {
        assert_outbox_additions(server, shard, true).await?;
        let sql = format!(
            "SELECT CAST(COUNT(*) AS CHAR) FROM `{shard}`.`task` WHERE attempts = 0 AND next_attempt_at IS NULL \
             AND last_error IS NULL AND published_at IS NULL AND delivered_at IS NULL"
        );
        let fresh_tasks = support::query_strings(server, &sql, Vec::new(), 1).await?;
        assert_eq!(
            fresh_tasks,
            [["1"]],
            "the dumped task row of {shard} gets the column defaults"
        );
    }

    // The dump-loaded accounts get their `version` column: `bigint(20) NOT NULL DEFAULT 0`, so the
    // accounts written before the upgrade start at 0, a new one without a version gets 0, and a
    // NULL version is rejected.
    for shard in [d01, d02] {
        assert_version_columns(server, shard, true).await?;
        for table in VERSIONED_TABLES {
            let sql = format!("SELECT CAST(`version` AS CHAR) FROM `{shard}`.`{table}`");
            assert_eq!(
                support::query_strings(server, &sql, Vec::new(), 1).await?,
                [["0"]],
                "the dumped row of {shard}.{table} gets version 0"
            );
        }
        let db = connect(&database_url(shard)).await?;
        db.execute_unprepared(
            "INSERT INTO user_credit_account (user_id, total_amount, available_amount, account_status) \
             VALUES ('liergou', 0.00, 0.00, 'open')",
        )
        .await?;
        let null_version = db
            .execute_unprepared(
                "INSERT INTO raffle_activity_account (user_id, activity_id, total_count, total_count_surplus, \
                 day_count, day_count_surplus, month_count, month_count_surplus, version) \
                 VALUES ('liergou', 100301, 1, 1, 1, 1, 1, 1, NULL)",
            )
            .await;
        ensure!(
            null_version.is_err(),
            "{shard}.raffle_activity_account.version must be NOT NULL"
        );
        let sql =
            format!("SELECT CAST(`version` AS CHAR) FROM `{shard}`.`user_credit_account` WHERE user_id = 'liergou'");
        assert_eq!(
            support::query_strings(server, &sql, Vec::new(), 1).await?,
            [["0"]],
            "a new account of {shard} starts at version 0"
        );
        db.execute_unprepared("DELETE FROM user_credit_account WHERE user_id = 'liergou'")
            .await?;
        db.close().await?;
    }

    // The id columns of the dump-loaded shards are widened and take a 19-digit snowflake id.
    for shard in [d01, d02] {
        assert_id_widths(server, shard, true).await?;
        let db = connect(&database_url(shard)).await?;
        db.execute_unprepared(
            "INSERT INTO user_raffle_order_002 (user_id, activity_id, activity_name, strategy_id, order_id, order_time, order_state) \
             VALUES ('xiaofuge', 100301, '测试活动', 100006, '9223372036854775807', '2024-11-23 10:00:00', 'create')",
        )
        .await?;
        db.execute_unprepared("DELETE FROM user_raffle_order_002 WHERE order_id = '9223372036854775807'")
            .await?;
        db.close().await?;
    }

    // Migrate fresh databases and compare.
    let [fcfg, f01, f02] = fresh;
    migrate_all(&database_url(fcfg), &[database_url(f01), database_url(f02)]).await?;
    for shard in [f01, f02] {
        assert_id_widths(server, shard, true).await?;
        assert_outbox_additions(server, shard, true).await?;
        assert_version_columns(server, shard, true).await?;
    }
    for (old, new) in dumped.iter().zip(fresh) {
        compare_schemas(dbs, old, new).await?;
    }

    // The seeded reference rows are exactly the dump's (ids and audit timestamps aside).
    for (table, _) in REFERENCE_COUNTS {
        assert_eq!(
            table_rows(server, fcfg, table, NON_BUSINESS_COLUMNS).await?,
            table_rows(server, dcfg, table, NON_BUSINESS_COLUMNS).await?,
            "reference rows of {table}: seeded vs dumped"
        );
    }
    Ok(())
}

/// Asserts that `old` (loaded from a dump, then migrated) and `new` (migrated from nothing) have
/// the same tables, columns (name, type, NULL-ability, default, extra, comment, collation, order),
/// keys and table options. The one known difference of the original dumps is tolerated:
/// `big_market_02.raffle_activity_account.update_time` lacks `ON UPDATE CURRENT_TIMESTAMP`.
async fn compare_schemas(dbs: &TestDatabases, old: &str, new: &str) -> anyhow::Result<()> {
    let server = &dbs.server;
    assert_eq!(
        tables(server, old).await?,
        tables(server, new).await?,
        "tables of {old} vs {new}"
    );

    let old_columns = columns(server, old).await?;
    let new_columns = columns(server, new).await?;
    let core = |columns: &BTreeSet<ColumnInfo>| -> BTreeSet<(String, String, String, String)> {
        columns
            .iter()
            .map(|c| {
                (
                    c.table.clone(),
                    c.column.clone(),
                    c.column_type.clone(),
                    c.is_nullable.clone(),
                )
            })
            .collect()
    };
    assert_eq!(
        core(&old_columns),
        core(&new_columns),
        "(column_name, column_type, is_nullable) of {old} vs {new}"
    );

    let known_difference =
        |c: &ColumnInfo| old.ends_with("_d02") && c.table == "raffle_activity_account" && c.column == "update_time";
    let full = |columns: &BTreeSet<ColumnInfo>| -> BTreeSet<ColumnInfo> {
        columns
            .iter()
            .map(|c| {
                let mut c = c.clone();
                if known_difference(&c) {
                    c.extra = "<ignored>".into();
                }
                c
            })
            .collect()
    };
    let old_full = full(&old_columns);
    let new_full = full(&new_columns);
    let differences: Vec<_> = old_full.symmetric_difference(&new_full).collect();
    assert!(
        differences.is_empty(),
        "column details of {old} vs {new} differ: {differences:#?}"
    );
    if old.ends_with("_d02") {
        let extra = |columns: &BTreeSet<ColumnInfo>| {
            columns
                .iter()
                .find(|c| c.table == "raffle_activity_account" && c.column == "update_time")
                .map(|c| c.extra.to_ascii_lowercase())
        };
        assert!(
            !extra(&old_columns).unwrap_or_default().contains("on update"),
            "the 02 dump has no ON UPDATE on raffle_activity_account.update_time"
        );
        assert!(
            extra(&new_columns).unwrap_or_default().contains("on update"),
            "fresh shards use the 01 definition"
        );
    }

    let (old_keys, old_options) = keys_and_options(server, old).await?;
    let (new_keys, new_options) = keys_and_options(server, new).await?;
    assert_eq!(old_keys, new_keys, "keys of {old} vs {new}");
    assert_eq!(old_options, new_options, "table options of {old} vs {new}");
    Ok(())
}

/// The id widening rolls back to the original widths, refuses to do so while a longer id is
/// stored (changing nothing of the widening), and applies again. The migrations after it are
/// rolled back with it, however many there are.
#[tokio::test]
async fn widened_ids_roll_back_only_when_every_id_fits() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new("widen").await?;
    let shard = dbs.name("01");
    let result = widen_round_trip(&dbs, &shard).await;
    support::finish(dbs, result).await
}

async fn widen_round_trip(dbs: &TestDatabases, shard: &str) -> anyhow::Result<()> {
    let server = &dbs.server;
    let url = database_url(shard);
    let names = migration_names::<ShardMigrator>();
    let widen = shard_migration_index(WIDEN_IDS)?;
    let steps = shard_steps_down_through(WIDEN_IDS)?;
    migration::ensure_database(&url).await?;
    let db = connect(&url).await?;
    ShardMigrator::up(&db, None).await?;
    assert_id_widths(server, shard, true).await?;
    assert_eq!(support::applied_migrations(server, shard).await?, names);

    db.execute_unprepared(
        "INSERT INTO task (user_id, topic, message_id, message, state) \
         VALUES ('xiaofuge', 'send_award', '9223372036854775807', '{}', 'create')",
    )
    .await?;
    let refused = ShardMigrator::down(&db, Some(steps)).await;
    ensure!(
        refused.is_err(),
        "down must refuse while a 19-digit message id is stored"
    );
    assert_id_widths(server, shard, true).await?;
    // MySQL DDL is not transactional: the migrations after the widening were rolled back before
    // it refused, and stay rolled back; the widening itself is still applied.
    assert_eq!(
        support::applied_migrations(server, shard).await?,
        names[..=widen].to_vec(),
        "migrations applied after the refused rollback"
    );
    ShardMigrator::up(&db, None).await?;
    assert_eq!(support::applied_migrations(server, shard).await?, names);

    db.execute_unprepared("DELETE FROM task").await?;
    ShardMigrator::down(&db, Some(steps)).await?;
    assert_id_widths(server, shard, false).await?;
    assert_outbox_additions(server, shard, false).await?;
    assert_version_columns(server, shard, false).await?;
    assert_eq!(
        support::applied_migrations(server, shard).await?,
        names[..widen].to_vec()
    );

    ShardMigrator::up(&db, None).await?;
    assert_id_widths(server, shard, true).await?;
    assert_outbox_additions(server, shard, true).await?;
    assert_version_columns(server, shard, true).await?;
    assert_eq!(support::applied_migrations(server, shard).await?, names);
    db.close().await?;
    Ok(())
}

/// The outbox relay migration rolls back to the original `task` and `user_credit_account` (no
/// `inbox`), keeping the rows, and applies again to the same schema as before. The migrations
/// after it (the read-model versions) are rolled back and applied again with it.
#[tokio::test]
async fn outbox_relay_rolls_back_and_applies_again() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new("outbox").await?;
    let shard = dbs.name("01");
    let result = outbox_round_trip(&dbs, &shard).await;
    support::finish(dbs, result).await
}

async fn outbox_round_trip(dbs: &TestDatabases, shard: &str) -> anyhow::Result<()> {
    let server = &dbs.server;
    let url = database_url(shard);
    let names = migration_names::<ShardMigrator>();
    let outbox = shard_migration_index(OUTBOX_RELAY)?;
    let steps = shard_steps_down_through(OUTBOX_RELAY)?;
    migration::ensure_database(&url).await?;
    let db = connect(&url).await?;
    ShardMigrator::up(&db, None).await?;
    assert_outbox_additions(server, shard, true).await?;
    for sql in [
        "INSERT INTO task (user_id, topic, message_id, message, state, attempts, last_error) \
         VALUES ('xiaofuge', 'send_award', '1856297216412340224', '{}', 'create', 2, 'broker down')",
        "INSERT INTO user_credit_account (user_id, total_amount, available_amount, account_status) \
         VALUES ('xiaofuge', 10.00, 10.00, 'open')",
        "INSERT INTO inbox (message_id, topic, user_id) VALUES ('1856297216412340224', 'send_award', 'xiaofuge')",
    ] {
        db.execute_unprepared(sql).await?;
    }
    let (keys, options) = keys_and_options(server, shard).await?;
    let schema = (columns(server, shard).await?, keys, options);
    let appended = columns_appended_from(OUTBOX_RELAY)?;
    let rows = data_snapshot_without(server, shard, &appended).await?;

    ShardMigrator::down(&db, Some(steps)).await?;
    assert_eq!(
        support::applied_migrations(server, shard).await?,
        names[..outbox].to_vec()
    );
    assert_outbox_additions(server, shard, false).await?;
    assert_version_columns(server, shard, false).await?;
    let mut expected: Vec<String> = original_shard_tables().into_iter().map(|(table, _)| table).collect();
    expected.push("seaql_migrations".into());
    expected.sort();
    assert_eq!(tables(server, shard).await?, expected, "tables of {shard} after down");
    let mut expected_rows = rows.clone();
    expected_rows.remove(OUTBOX_INBOX);
    assert!(
        data_snapshot(server, shard).await? == expected_rows,
        "rows of {shard} changed by the rollback"
    );
    // Without the unique key, a second account of the same user is accepted again.
    db.execute_unprepared(
        "INSERT INTO user_credit_account (user_id, total_amount, available_amount, account_status) \
         VALUES ('xiaofuge', 0.00, 0.00, 'open')",
    )
    .await?;
    db.execute_unprepared("DELETE FROM user_credit_account WHERE total_amount = 0")
        .await?;

    ShardMigrator::up(&db, None).await?;
    assert_eq!(support::applied_migrations(server, shard).await?, names);
    assert_outbox_additions(server, shard, true).await?;
    assert_version_columns(server, shard, true).await?;
    let (keys, options) = keys_and_options(server, shard).await?;
    assert!(
        (columns(server, shard).await?, keys, options) == schema,
        "schema of {shard} after down + up differs from the first up"
    );
    let mut after_rows = data_snapshot_without(server, shard, &appended).await?;
    assert_eq!(
        after_rows.remove(OUTBOX_INBOX),
        Some(Vec::new()),
        "inbox is recreated empty"
    );
    assert!(after_rows == expected_rows, "rows of {shard} changed by down + up");
    // The keys are enforced again.
    let duplicate_account = db
        .execute_unprepared(
            "INSERT INTO user_credit_account (user_id, total_amount, available_amount, account_status) \
             VALUES ('xiaofuge', 0.00, 0.00, 'open')",
        )
        .await;
    ensure!(duplicate_account.is_err(), "uq_user_id must reject a second account");
    db.execute_unprepared("INSERT INTO inbox (message_id, topic, user_id) VALUES ('1', 'send_award', 'xiaofuge')")
        .await?;
    let duplicate_message = db
        .execute_unprepared("INSERT INTO inbox (message_id, topic, user_id) VALUES ('1', 'send_award', 'xiaofuge')")
        .await;
    ensure!(duplicate_message.is_err(), "inbox must reject a message consumed twice");
    db.execute_unprepared("INSERT INTO inbox (message_id, topic, user_id) VALUES ('1', 'send_rebate', 'xiaofuge')")
        .await?;
    db.close().await?;
    Ok(())
}

/// The read-model versions migration rolls back to the accounts without `version`, keeping their
/// rows and every earlier migration (outbox additions, widened ids), and applies again to the same
/// schema as before, the existing accounts restarting at version 0. It also applies when one of
/// its columns is already there (a rerun after a partial up: MySQL DDL is not transactional).
#[tokio::test]
async fn read_model_versions_roll_back_and_apply_again() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new("versions").await?;
    let shard = dbs.name("01");
    let result = versions_round_trip(&dbs, &shard).await;
    support::finish(dbs, result).await
}

/// `version` of every row of `database`.`table`, sorted.
async fn versions(server: &DatabaseConnection, database: &str, table: &str) -> anyhow::Result<Vec<String>> {
    let sql = format!("SELECT CAST(`version` AS CHAR) FROM `{database}`.`{table}` ORDER BY `version`");
    Ok(support::query_strings(server, &sql, Vec::new(), 1)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

async fn versions_round_trip(dbs: &TestDatabases, shard: &str) -> anyhow::Result<()> {
    let server = &dbs.server;
    let url = database_url(shard);
    let names = migration_names::<ShardMigrator>();
    let versions_index = shard_migration_index(READ_MODEL_VERSIONS)?;
    let steps = shard_steps_down_through(READ_MODEL_VERSIONS)?;
    let (version, ..) = VERSION_COLUMN;
    migration::ensure_database(&url).await?;
    let db = connect(&url).await?;
    ShardMigrator::up(&db, None).await?;
    assert_version_columns(server, shard, true).await?;
    for sql in [
        "INSERT INTO raffle_activity_account (user_id, activity_id, total_count, total_count_surplus, day_count, \
         day_count_surplus, month_count, month_count_surplus, version) VALUES ('xiaofuge', 100301, 10, 7, 5, 2, 10, 7, 3)",
        "INSERT INTO user_credit_account (user_id, total_amount, available_amount, account_status, version) \
         VALUES ('xiaofuge', 10.00, 10.00, 'open', 5)",
        "INSERT INTO user_credit_account (user_id, total_amount, available_amount, account_status) \
         VALUES ('liergou', 0.00, 0.00, 'open')",
        "INSERT INTO task (user_id, topic, message_id, message, state, attempts, last_error) \
         VALUES ('xiaofuge', 'send_award', '1856297216412340224', '{}', 'create', 2, 'broker down')",
        "INSERT INTO inbox (message_id, topic, user_id) VALUES ('1856297216412340224', 'send_award', 'xiaofuge')",
    ] {
        db.execute_unprepared(sql).await?;
    }
    assert_eq!(versions(server, shard, "raffle_activity_account").await?, ["3"]);
    assert_eq!(versions(server, shard, "user_credit_account").await?, ["0", "5"]);
    let (keys, options) = keys_and_options(server, shard).await?;
    let schema = (columns(server, shard).await?, keys, options);
    let appended = columns_appended_from(READ_MODEL_VERSIONS)?;
    let rows = data_snapshot_without(server, shard, &appended).await?;

    // Down: only the `version` columns go; everything else, rows included, stays as it was.
    ShardMigrator::down(&db, Some(steps)).await?;
    assert_eq!(
        support::applied_migrations(server, shard).await?,
        names[..versions_index].to_vec()
    );
    assert_version_columns(server, shard, false).await?;
    assert_outbox_additions(server, shard, true).await?;
    assert_id_widths(server, shard, true).await?;
    let (keys, options) = keys_and_options(server, shard).await?;
    let (first_columns, first_keys, first_options) = &schema;
    let without_versions: BTreeSet<ColumnInfo> = first_columns
        .iter()
        .filter(|c| !appended.contains(&(c.table.as_str(), c.column.as_str())))
        .cloned()
        .collect();
    assert_eq!(
        columns(server, shard).await?,
        without_versions,
        "columns of {shard} after down"
    );
    // Rolling back through the versions also rolled back the later ticket-lookup index.
    let without_later: BTreeSet<Vec<String>> = first_keys
        .iter()
        .filter(|k| k.get(1).map(String::as_str) != Some(migration::TICKET_LOOKUP_INDEX))
        .cloned()
        .collect();
    assert_eq!(keys, without_later, "keys of {shard} after down");
    assert_eq!(&options, first_options, "table options of {shard} after down");
    assert!(
        data_snapshot(server, shard).await? == rows,
        "rows of {shard} changed by the rollback"
    );

    // Up again: the same schema as the first up; the kept rows restart at version 0.
    ShardMigrator::up(&db, None).await?;
    assert_eq!(support::applied_migrations(server, shard).await?, names);
    assert_version_columns(server, shard, true).await?;
    let (keys, options) = keys_and_options(server, shard).await?;
    assert!(
        (columns(server, shard).await?, keys, options) == schema,
        "schema of {shard} after down + up differs from the first up"
    );
    assert!(
        data_snapshot_without(server, shard, &appended).await? == rows,
        "rows of {shard} changed by down + up"
    );
    for &table in VERSIONED_TABLES {
        let count = row_counts(server, shard).await?[table];
        let zeros = vec!["0".to_owned(); usize::try_from(count)?];
        assert_eq!(
            versions(server, shard, table).await?,
            zeros,
            "{shard}.{table}.{version} after down + up"
        );
    }

    // Up after a partial up (one column already added): adds only the missing one.
    ShardMigrator::down(&db, Some(steps)).await?;
    assert_version_columns(server, shard, false).await?;
    db.execute_unprepared(
        "ALTER TABLE `raffle_activity_account` ADD COLUMN `version` bigint(20) NOT NULL DEFAULT 0 \
         COMMENT '变更版本（读模型）'",
    )
    .await?;
    ShardMigrator::up(&db, None).await?;
    assert_eq!(support::applied_migrations(server, shard).await?, names);
    assert_version_columns(server, shard, true).await?;
    let (keys, options) = keys_and_options(server, shard).await?;
    assert!(
        (columns(server, shard).await?, keys, options) == schema,
        "schema of {shard} after a partial up differs from the first up"
    );
    db.close().await?;
    Ok(())
}

/// The ticket-lookup index is on every split `user_raffle_order` table after up, gone after
/// rolling that migration back (nothing else changes), and back after up again.
#[tokio::test]
async fn ticket_lookup_index_rolls_back_and_applies_again() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new("ticketidx").await?;
    let shard = dbs.name("01");
    let result = ticket_index_round_trip(&dbs, &shard).await;
    support::finish(dbs, result).await
}

async fn ticket_index_round_trip(dbs: &TestDatabases, shard: &str) -> anyhow::Result<()> {
    let server = &dbs.server;
    let url = database_url(shard);
    let index = migration::TICKET_LOOKUP_INDEX;
    let expected = IndexInfo {
        unique: false,
        columns: ["user_id", "activity_id", "order_state"].map(str::to_owned).to_vec(),
    };
    let split = || (0..migration::SPLIT_TABLE_COUNT).map(|i| format!("user_raffle_order_{i:03}"));
    migration::ensure_database(&url).await?;
    let db = connect(&url).await?;
    ShardMigrator::up(&db, None).await?;
    for table in split() {
        let indexes = table_indexes(server, shard, &table).await?;
        assert_eq!(indexes.get(index), Some(&expected), "{shard}.{table}.{index}");
    }
    let (keys, options) = keys_and_options(server, shard).await?;
    let columns_before = columns(server, shard).await?;

    let steps = shard_steps_down_through("m20241124_000001_ticket_lookup_index")?;
    ShardMigrator::down(&db, Some(steps)).await?;
    let (keys_down, options_down) = keys_and_options(server, shard).await?;
    let without: BTreeSet<Vec<String>> = keys
        .iter()
        .filter(|k| k.get(1).map(String::as_str) != Some(index))
        .cloned()
        .collect();
    assert_eq!(keys_down, without, "only {index} is gone after down");
    assert_ne!(keys_down, keys, "{index} was dropped");
    assert_eq!(options_down, options, "table options after down");
    assert_eq!(columns(server, shard).await?, columns_before, "columns after down");

    ShardMigrator::up(&db, None).await?;
    assert_eq!(
        keys_and_options(server, shard).await?,
        (keys, options),
        "keys after down + up"
    );
    db.close().await?;
    Ok(())
}

/// The reference migration fills in missing rows by natural key and leaves existing ones (even
/// changed ones) alone.
#[tokio::test]
async fn reference_data_fills_only_missing_rows() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new("seed").await?;
    let cfg = dbs.name("cfg");
    let result = fill_missing_rows(&dbs, &cfg).await;
    support::finish(dbs, result).await
}

async fn fill_missing_rows(dbs: &TestDatabases, cfg: &str) -> anyhow::Result<()> {
    let server = &dbs.server;
    load_dump(cfg, "big_market.sql").await?;
    let db = connect(&database_url(cfg)).await?;
    for sql in [
        "DELETE FROM award WHERE award_id = 105",
        "DELETE FROM rule_tree_node WHERE tree_id = 'tree_lock_2' AND rule_key = 'rule_stock'",
        "DELETE FROM rule_tree_node_line WHERE tree_id = 'tree_lock_3' AND rule_limit_value = 'TAKE_OVER'",
        "DELETE FROM strategy_award WHERE strategy_id = 100006 AND award_id = 108",
        "UPDATE strategy_award SET award_count_surplus = 7 WHERE strategy_id = 100006 AND award_id = 101",
        "UPDATE daily_behavior_rebate SET rebate_config = '20' WHERE rebate_type = 'integral'",
    ] {
        db.execute_unprepared(sql).await?;
    }
    db.close().await?;

    migrate_all(&database_url(cfg), &[]).await?;

    let mut counts = row_counts(server, cfg).await?;
    counts.remove("seaql_migrations");
    let expected: BTreeMap<String, i64> = REFERENCE_COUNTS
        .iter()
        .map(|&(table, count)| (table.to_owned(), count))
        .collect();
    assert_eq!(counts, expected, "missing rows restored, nothing duplicated");
    let awards = table_rows(server, cfg, "strategy_award", NON_BUSINESS_COLUMNS).await?;
    assert!(
        awards.contains(&"100006|101|随机积分|<NULL>|10000|7|0.7900|tree_luck_award|1".to_owned()),
        "changed rows are kept: {awards:#?}"
    );
    assert!(awards.contains(&"100006|108|暴走玩偶|<NULL>|100|25|0.0300|tree_luck_award|8".to_owned()));
    let rebates = table_rows(server, cfg, "daily_behavior_rebate", NON_BUSINESS_COLUMNS).await?;
    assert!(rebates.contains(&"sign|签到返利-积分|integral|20|open".to_owned()));
    Ok(())
}
