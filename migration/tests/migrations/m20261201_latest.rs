//! `m20261201_000001_latest_reference` (config: the activity stage and the reference rows of
//! the original's latest dump), `m20261201_000002_task_message_text` (shards: outbox messages
//! as `text`) and `m20261201_000003_wide_business_numbers` (shards: business numbers of
//! `varchar(192)`), from nothing, from the latest dumps and in a round trip.

use std::collections::BTreeSet;

use anyhow::{Context, ensure};
use migration::sea_orm_migration::MigratorTrait;
use migration::sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseConnection};
use migration::{ConfigMigrator, ShardMigrator, migrate_all};
use test_support::mysql::{TestDatabases, connect, finish};
use test_support::schema::{
    SchemaSnapshot, applied_migrations, column_names, columns, data_snapshot, data_snapshot_without, keys_and_options,
    query_strings, row_counts, table_indexes, table_rows, tables,
};
use test_support::services::database_url;

use crate::m20241123_outbox_relay::OUTBOX_INBOX;
use crate::support::{
    AUDIT_TIMESTAMPS, LATEST_ADDED_ROWS, LATEST_KEPT_DIFFERENCES, NON_BUSINESS_COLUMNS, STAGE_COLUMNS, Shard,
    ShardRoundTrip, all_appended_columns, before_wide_business_numbers, latest_fixture, load_fixture,
    load_latest_fixture, migration_names, mysql8_to_mariadb, shard_round_trip, with_audit_columns,
};
use crate::upgrade_from_dumps::compare_schemas;

/// Asserts that every business-number column of `database` is `varchar(192)` (`applied`) or has
/// its width from before the migration, keeps `NOT NULL` and compares byte for byte.
pub(crate) async fn assert_business_no_widths(
    server: &DatabaseConnection,
    database: &str,
    applied: bool,
) -> anyhow::Result<()> {
    let all = columns(server, database).await?;
    for (base, column, original) in migration::BUSINESS_NO_COLUMNS {
        for index in 0..migration::SPLIT_TABLE_COUNT {
            let table = format!("{base}_{index:03}");
            let c = all
                .iter()
                .find(|c| c.table == table && c.column == column)
                .with_context(|| format!("{database}.{table}.{column} is missing"))?;
            let width = if applied {
                migration::BUSINESS_NO_WIDTH
            } else {
                original
            };
            assert_eq!(
                c.column_type,
                format!("varchar({width})"),
                "{database}.{table}.{column}"
            );
            assert_eq!(c.collation, migration::ID_COLLATION, "{database}.{table}.{column}");
            assert_eq!(c.is_nullable, "NO", "{database}.{table}.{column}");
        }
    }
    Ok(())
}

/// Rows of `database`.`table` with their ids, without the audit timestamps.
async fn rows_by_id(server: &DatabaseConnection, database: &str, table: &str) -> anyhow::Result<BTreeSet<String>> {
    Ok(table_rows(server, database, table, AUDIT_TIMESTAMPS)
        .await?
        .into_iter()
        .collect())
}

/// The MySQL 8 dumps load into MariaDB once their `utf8mb4_0900_*` collations are dropped; the
/// latest dumps name one only in their `CREATE DATABASE` (which the loader skips anyway) and
/// hold no comment versioned for MySQL 8.
#[test]
fn mysql8_dumps_are_mapped_for_mariadb() -> anyhow::Result<()> {
    assert_eq!(
        mysql8_to_mariadb(
            "CREATE database if NOT EXISTS `b` default character set utf8mb4 collate utf8mb4_0900_ai_ci;\n\
             CREATE TABLE `t` (`a` varchar(8) CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_as_cs NOT NULL, `名` int) \
             ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci /*!80016 DEFAULT ENCRYPTION='N' */;\n\
             ALTER DATABASE `b` DEFAULT COLLATE utf8mb4_0900_ai_ci;\n\
             /*!50001 SET collation_connection = utf8mb4_0900_ai_ci */;"
        ),
        "CREATE database if NOT EXISTS `b` default character set utf8mb4;\n\
         CREATE TABLE `t` (`a` varchar(8) CHARACTER SET utf8mb4 NOT NULL, `名` int) \
         ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 ;\n\
         ALTER DATABASE `b`;\n\
         /*!50001 SET collation_connection = utf8mb4_general_ci */;"
    );
    for file in ["big_market.sql", "big_market_01.sql", "big_market_02.sql"] {
        let text = std::fs::read_to_string(latest_fixture(file))?;
        assert_eq!(text.matches("utf8mb4_0900_ai_ci").count(), 1, "{file}");
        assert!(!text.contains("/*!8"), "{file}");
        let mapped = mysql8_to_mariadb(&text);
        assert!(!mapped.contains("0900"), "{file}");
        assert_eq!(mapped.len(), text.len() - " collate utf8mb4_0900_ai_ci".len(), "{file}");
    }
    Ok(())
}

/// Fresh databases get the stage table as in the latest dump (plus its lookup index), the latest
/// dump's reference rows by id (two rows kept as the original dump had them), and wide binary
/// business numbers.
#[tokio::test]
async fn fresh_databases_get_the_latest_schema_and_reference_rows() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new().await?;
    let names = [dbs.name("cfg"), dbs.name("01"), dbs.name("lcfg")];
    let result = fresh_latest(&dbs, &names).await;
    finish(dbs, result).await
}

async fn fresh_latest(dbs: &TestDatabases, [cfg, s01, lcfg]: &[String; 3]) -> anyhow::Result<()> {
    let server = &dbs.server;
    migrate_all(&database_url(cfg), &[database_url(s01)]).await?;
    load_latest_fixture(lcfg, "big_market.sql").await?;
    let stage = migration::STAGE_TABLE;

    // The stage table: the latest dump's columns (type, default, comment, collation) and table
    // options, plus the index of the lookup by channel and source.
    assert_eq!(
        column_names(server, cfg, stage).await?,
        with_audit_columns(STAGE_COLUMNS)
    );
    let stage_columns = |all: BTreeSet<test_support::schema::ColumnInfo>| -> BTreeSet<_> {
        all.into_iter().filter(|c| c.table == stage).collect()
    };
    assert_eq!(
        stage_columns(columns(server, cfg).await?),
        stage_columns(columns(server, lcfg).await?),
        "{stage} as in the latest dump"
    );
    let options = |(_, options): (_, BTreeSet<Vec<String>>)| -> Vec<Vec<String>> {
        options.into_iter().filter(|o| o[0] == stage).collect()
    };
    assert_eq!(
        options(keys_and_options(server, cfg).await?),
        options(keys_and_options(server, lcfg).await?)
    );
    let indexes = table_indexes(server, cfg, stage).await?;
    assert_eq!(indexes.keys().collect::<Vec<_>>(), ["PRIMARY", migration::STAGE_INDEX]);
    let index = &indexes[migration::STAGE_INDEX];
    assert!(!index.unique);
    assert_eq!(index.columns, ["channel", "source"]);

    // The reference rows: the latest dump's, by id and content, apart from the kept rows.
    for (table, row) in LATEST_ADDED_ROWS {
        assert!(
            rows_by_id(server, cfg, table).await?.contains(*row),
            "{cfg}.{table} has {row}"
        );
    }
    // Compared by content: the original seed gives `strategy_rule` other ids than the dumps.
    let content = |rows: Vec<String>| -> BTreeSet<String> { rows.into_iter().collect() };
    let mut differences = BTreeSet::new();
    for table in tables(server, lcfg).await? {
        let ours = content(table_rows(server, cfg, &table, NON_BUSINESS_COLUMNS).await?);
        let latest = content(table_rows(server, lcfg, &table, NON_BUSINESS_COLUMNS).await?);
        for row in ours.difference(&latest) {
            differences.insert((table.clone(), Some(row.clone()), None));
        }
        for row in latest.difference(&ours) {
            differences.insert((table.clone(), None, Some(row.clone())));
        }
    }
    // A changed row shows as one row of ours and one of the latest dump.
    let without_id = |row: &str| row.split_once('|').map(|(_, rest)| rest.to_owned());
    let expected: BTreeSet<_> = LATEST_KEPT_DIFFERENCES
        .iter()
        .flat_map(|&(table, ours, latest)| {
            [
                ours.and_then(without_id).map(|row| (table.to_owned(), Some(row), None)),
                latest
                    .and_then(without_id)
                    .map(|row| (table.to_owned(), None, Some(row))),
            ]
        })
        .flatten()
        .collect();
    assert_eq!(differences, expected, "fresh reference rows vs the latest dump's");

    assert_business_no_widths(server, s01, true).await?;
    Ok(())
}

/// Databases created from the latest dumps (no `seaql_migrations`; MySQL 8 dumps) migrate in
/// place: every row is kept, no reference row is added or duplicated, and their schema equals a
/// freshly migrated one.
#[tokio::test]
async fn latest_dumps_upgrade_in_place() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new().await?;
    let dumped = [dbs.name("lcfg"), dbs.name("l01"), dbs.name("l02")];
    let fresh = [dbs.name("fcfg"), dbs.name("f01"), dbs.name("f02")];
    let result = upgrade_latest(&dbs, &dumped, &fresh).await;
    finish(dbs, result).await
}

async fn upgrade_latest(dbs: &TestDatabases, dumped: &[String; 3], fresh: &[String; 3]) -> anyhow::Result<()> {
    let server = &dbs.server;
    for (name, file) in dumped
        .iter()
        .zip(["big_market.sql", "big_market_01.sql", "big_market_02.sql"])
    {
        load_latest_fixture(name, file).await?;
        ensure!(
            !tables(server, name).await?.contains(&"seaql_migrations".to_owned()),
            "{name} must look like an original database"
        );
    }
    let [lcfg, l01, l02] = dumped;
    let mut before = Vec::new();
    for name in dumped {
        before.push((row_counts(server, name).await?, data_snapshot(server, name).await?));
    }
    // The dumps hold the users' rows (the shards) and the latest reference rows.
    let reference = &before[0].0;
    assert_eq!(reference.get(migration::STAGE_TABLE), Some(&1));
    assert_eq!(reference.get("award"), Some(&18));
    for (counts, _) in &before[1..] {
        ensure!(counts.values().sum::<i64>() > 30, "shard rows: {counts:?}");
    }

    migrate_all(&database_url(lcfg), &[database_url(l01), database_url(l02)]).await?;

    for (name, (counts, rows)) in dumped.iter().zip(&before) {
        let mut after = row_counts(server, name).await?;
        assert!(
            after.remove("seaql_migrations").is_some(),
            "{name} has no seaql_migrations"
        );
        for created in [OUTBOX_INBOX, migration::AUDIT_LOG_TABLE, migration::SWITCHES_TABLE] {
            let count = after.remove(created);
            assert!(count.is_none_or(|count| count == 0), "{name}.{created} is not empty");
        }
        assert_eq!(&after, counts, "row counts of {name} changed by the upgrade");
        let mut after_rows = data_snapshot_without(server, name, &all_appended_columns()?).await?;
        after_rows.remove(OUTBOX_INBOX);
        after_rows.remove(migration::AUDIT_LOG_TABLE);
        after_rows.remove(migration::SWITCHES_TABLE);
        assert!(&after_rows == rows, "rows of {name} changed by the upgrade");
    }
    assert_eq!(
        applied_migrations(server, lcfg).await?,
        migration_names::<ConfigMigrator>()
    );
    for shard in [l01, l02] {
        assert_eq!(
            applied_migrations(server, shard).await?,
            migration_names::<ShardMigrator>()
        );
        assert_business_no_widths(server, shard, true).await?;
    }

    let [fcfg, f01, f02] = fresh;
    migrate_all(&database_url(fcfg), &[database_url(f01), database_url(f02)]).await?;
    for ((old, new), dump_02) in dumped.iter().zip(fresh).zip([false, false, true]) {
        compare_schemas(dbs, old, new, dump_02).await?;
    }
    Ok(())
}

/// On a database that already has rows of its own, the latest rows are added where missing by
/// id and natural key: a row whose id another row holds gets a new id, a row present under
/// another id is not added again, and a changed row with the latest id is kept as it is.
#[tokio::test]
async fn latest_reference_rows_fill_only_missing_rows() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new().await?;
    let cfg = dbs.name("cfg");
    let result = fill_missing_latest_rows(&dbs, &cfg).await;
    finish(dbs, result).await
}

async fn fill_missing_latest_rows(dbs: &TestDatabases, cfg: &str) -> anyhow::Result<()> {
    let server = &dbs.server;
    load_fixture(cfg, "big_market.sql").await?;
    let db = connect(&database_url(cfg)).await?;
    for sql in [
        // An operator's award at the id of award 110.
        "INSERT INTO award (id, award_id, award_key, award_config, award_desc) \
         VALUES (11, 199, 'openai_use_count', '7', 'operator award')",
        // SKU 9901 configured already, at its latest id, with other stock.
        "INSERT INTO raffle_activity_sku (id, sku, activity_id, activity_count_id, stock_count, stock_count_surplus, product_amount) \
         VALUES (5, 9901, 100401, 22201, 50, 42, 9.99)",
        // Quota package 22202 configured already, under another id.
        "INSERT INTO raffle_activity_count (id, activity_count_id, total_count, day_count, month_count) \
         VALUES (40, 22202, 5, 5, 5)",
    ] {
        db.execute_unprepared(sql).await?;
    }
    db.close().await?;

    migrate_all(&database_url(cfg), &[]).await?;

    let awards = rows_by_id(server, cfg, "award").await?;
    ensure!(
        awards.contains("11|199|openai_use_count|7|operator award"),
        "{awards:#?}"
    );
    let award_110: Vec<_> = awards.iter().filter(|r| r.contains("|110|")).collect();
    assert_eq!(award_110, ["22|110|openai_use_count|1|OpenAI 增加使用次数"]);
    for (table, row) in LATEST_ADDED_ROWS {
        let displaced = row.starts_with("11|110|");
        let replaced = row.starts_with("5|9901|") || row.starts_with("6|22202|");
        assert_eq!(
            rows_by_id(server, cfg, table).await?.contains(*row),
            !(displaced || replaced),
            "{table}: {row}"
        );
    }
    let skus = rows_by_id(server, cfg, "raffle_activity_sku").await?;
    ensure!(skus.contains("5|9901|100401|22201|50|42|9.99"), "{skus:#?}");
    let packages = rows_by_id(server, cfg, "raffle_activity_count").await?;
    let package_22202: Vec<_> = packages.iter().filter(|r| r.contains("|22202|")).collect();
    assert_eq!(package_22202, ["40|22202|5|5|5"]);
    ensure!(!packages.iter().any(|r| r.starts_with("6|")), "{packages:#?}");
    Ok(())
}

/// Rolling the latest reference migration back drops the stage table and keeps every other row;
/// applying it again restores the stage table and its row.
#[tokio::test]
async fn latest_reference_rolls_back_and_applies_again() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new().await?;
    let cfg = dbs.name("cfg");
    let result = config_round_trip(&dbs, &cfg).await;
    finish(dbs, result).await
}

async fn config_round_trip(dbs: &TestDatabases, cfg: &str) -> anyhow::Result<()> {
    let server = &dbs.server;
    let stage = migration::STAGE_TABLE;
    migrate_all(&database_url(cfg), &[]).await?;
    let names = migration_names::<ConfigMigrator>();
    assert_eq!(
        names.last().map(String::as_str),
        Some("m20261201_000001_latest_reference")
    );
    let schema = SchemaSnapshot::take(server, cfg).await?;
    let mut rows = data_snapshot(server, cfg).await?;
    let stage_rows = rows.remove(stage);

    let db = connect(&database_url(cfg)).await?;
    ConfigMigrator::down(&db, Some(1)).await?;
    assert_eq!(applied_migrations(server, cfg).await?, names[..names.len() - 1]);
    ensure!(
        !tables(server, cfg).await?.iter().any(|t| t == stage),
        "{stage} survived"
    );
    assert!(
        data_snapshot(server, cfg).await? == rows,
        "rows changed by the rollback"
    );

    ConfigMigrator::up(&db, None).await?;
    db.close().await?;
    assert_eq!(applied_migrations(server, cfg).await?, names);
    assert!(
        SchemaSnapshot::take(server, cfg).await? == schema,
        "schema after down + up"
    );
    let mut after = data_snapshot(server, cfg).await?;
    let after_stage = after.remove(stage);
    assert!(after == rows, "rows changed by down + up");
    let without_times = |rows: Option<Vec<String>>| -> Vec<String> {
        rows.unwrap_or_default()
            .iter()
            .map(|r| r.splitn(6, '|').take(5).collect::<Vec<_>>().join("|"))
            .collect()
    };
    assert_eq!(without_times(after_stage), without_times(stage_rows));
    assert_eq!(
        rows_by_id(server, cfg, stage).await?,
        BTreeSet::from(["1|c01|s01|100401|active".to_owned()])
    );
    Ok(())
}

/// The business-number columns are wide after up, back to their widths after rolling the
/// migration back (definitions otherwise unchanged), and wide again after up again; values of the
/// new width are stored and compared byte for byte, and the rollback refuses while one is stored.
#[tokio::test]
async fn wide_business_numbers_roll_back_and_apply_again() -> anyhow::Result<()> {
    shard_round_trip(WideBusinessNumbers).await
}

struct WideBusinessNumbers;

/// A sign-in `biz_id` of a 128-character user id: `{userId}_{rebateType}_{yyyyMMdd}`.
fn longest_biz_id(user: &str) -> String {
    format!("{user}_integral_20241201")
}

/// Inserts rows with the business number `no` into the rebate, credit and recharge tables of
/// split `_001`.
async fn insert_business_rows(shard: &Shard<'_>, user: &str, no: &str, order: &str) -> anyhow::Result<()> {
    shard
        .exec(&[
            &format!(
                "INSERT INTO user_behavior_rebate_order_001 (user_id, order_id, behavior_type, rebate_desc, rebate_type, \
                 rebate_config, out_business_no, biz_id) \
                 VALUES ('{user}', '{order}', 'sign', '签到返利-积分', 'integral', '10', '{no}', '{no}')"
            ),
            &format!(
                "INSERT INTO user_credit_order_001 (user_id, order_id, trade_name, trade_type, trade_amount, out_business_no) \
                 VALUES ('{user}', '{order}', '行为返利', 'forward', 10.00, '{no}')"
            ),
            &format!(
                "INSERT INTO raffle_activity_order_001 (user_id, sku, activity_id, activity_name, strategy_id, order_id, \
                 order_time, total_count, day_count, month_count, pay_amount, state, out_business_no) \
                 VALUES ('{user}', 9901, 100401, 'OpenAi抽奖活动', 10007, '{order}', '2024-12-01 10:00:00', 1, 1, 1, 0.00, \
                 'completed', '{no}')"
            ),
        ])
        .await
}

async fn delete_business_rows(shard: &Shard<'_>, no: &str) -> anyhow::Result<()> {
    shard
        .exec(&[
            &format!("DELETE FROM user_behavior_rebate_order_001 WHERE biz_id = '{no}'"),
            &format!("DELETE FROM user_credit_order_001 WHERE out_business_no = '{no}'"),
            &format!("DELETE FROM raffle_activity_order_001 WHERE out_business_no = '{no}'"),
        ])
        .await
}

impl ShardRoundTrip for WideBusinessNumbers {
    const MIGRATION: &'static str = "m20261201_000003_wide_business_numbers";

    async fn assert_effects(&self, shard: &Shard<'_>, applied: bool) -> anyhow::Result<()> {
        assert_business_no_widths(shard.server, shard.name, applied).await
    }

    async fn prepare(&self, shard: &Shard<'_>) -> anyhow::Result<()> {
        // A 146-character business number is stored whole; one differing only in case is
        // another business number.
        let user = "u".repeat(128);
        let long = longest_biz_id(&user);
        assert_eq!(long.chars().count(), 146);
        insert_business_rows(shard, &user, &long, "900000000000000001").await?;
        insert_business_rows(shard, &user, &long.to_uppercase(), "900000000000000002").await?;
        for (table, column) in [
            ("user_behavior_rebate_order_001", "biz_id"),
            ("user_behavior_rebate_order_001", "out_business_no"),
            ("user_credit_order_001", "out_business_no"),
            ("raffle_activity_order_001", "out_business_no"),
        ] {
            let sql = format!(
                "SELECT CAST(COUNT(*) AS CHAR) FROM `{}`.`{table}` WHERE `{column}` = ?",
                shard.name
            );
            let found = query_strings(shard.server, &sql, vec![long.clone().into()], 1).await?;
            assert_eq!(found, [["1"]], "{table}.{column}");
        }
        delete_business_rows(shard, &long).await?;
        delete_business_rows(shard, &long.to_uppercase()).await?;
        // Rows of the original widths are kept across the round trip.
        insert_business_rows(shard, "xiaofuge", &"9".repeat(64), "900000000000000003").await
    }

    async fn after_down(&self, shard: &Shard<'_>, up: &SchemaSnapshot) -> anyhow::Result<()> {
        // Only the widths changed back.
        let expected = before_wide_business_numbers(up.columns.clone());
        let now = SchemaSnapshot::take(shard.server, shard.name).await?;
        assert!(now.columns == expected, "columns after down");
        assert!(now.keys == up.keys, "keys after down");
        Ok(())
    }

    async fn after_up_again(&self, shard: &Shard<'_>, up: &SchemaSnapshot) -> anyhow::Result<()> {
        // The rollback refuses while a value longer than the original width is stored.
        let user = "v".repeat(128);
        let long = longest_biz_id(&user);
        insert_business_rows(shard, &user, &long, "900000000000000004").await?;
        // The migrations after this one are rolled back first, and applied again after.
        let later = shard.steps - 1;
        if later > 0 {
            ShardMigrator::down(shard.db, Some(later)).await?;
        }
        let refused = ShardMigrator::down(shard.db, Some(1)).await;
        let error = refused
            .err()
            .context("the rollback must refuse long business numbers")?;
        ensure!(error.to_string().contains("cannot narrow"), "{error}");
        let kept = &shard.names[..shard.names.len() - usize::try_from(later)?];
        shard.assert_applied(kept, "after a refused rollback").await?;
        ShardMigrator::up(shard.db, None).await?;
        assert!(
            SchemaSnapshot::take(shard.server, shard.name).await? == *up,
            "a refused rollback changes nothing"
        );
        delete_business_rows(shard, &long).await
    }
}

#[tokio::test]
async fn task_message_text_rolls_back_and_applies_again() -> anyhow::Result<()> {
    shard_round_trip(TaskMessageText).await
}

struct TaskMessageText;

/// `task.message`'s data type in `database`.
async fn message_type(server: &DatabaseConnection, database: &str) -> anyhow::Result<String> {
    let sql = format!(
        "SELECT DATA_TYPE FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = '{database}' AND TABLE_NAME = 'task' AND COLUMN_NAME = 'message'"
    );
    let found = query_strings(server, &sql, Vec::new(), 1).await?;
    found
        .first()
        .and_then(|r| r.first())
        .cloned()
        .context("task.message is missing")
}

/// An outbox row whose message is `len` characters long.
fn long_task(message_id: &str, len: usize) -> String {
    format!(
        "INSERT INTO task (user_id, topic, message_id, message, state) \
         VALUES ('xiaofuge', 'send_rebate', '{message_id}', '{}', 'create')",
        "m".repeat(len)
    )
}

impl ShardRoundTrip for TaskMessageText {
    const MIGRATION: &'static str = "m20261201_000002_task_message_text";

    async fn assert_effects(&self, shard: &Shard<'_>, applied: bool) -> anyhow::Result<()> {
        let expected = if applied { "text" } else { "varchar" };
        ensure!(
            message_type(shard.server, shard.name).await? == expected,
            "task.message is not {expected}"
        );
        Ok(())
    }

    async fn prepare(&self, shard: &Shard<'_>) -> anyhow::Result<()> {
        // A message longer than the original 512 characters is stored whole…
        shard.exec(&[&long_task("900000000000000010", 2000)]).await?;
        let sql = format!(
            "SELECT CAST(CHAR_LENGTH(message) AS CHAR) FROM `{}`.task WHERE message_id = '900000000000000010'",
            shard.name
        );
        assert_eq!(query_strings(shard.server, &sql, Vec::new(), 1).await?, [["2000"]]);
        shard
            .exec(&["DELETE FROM task WHERE message_id = '900000000000000010'"])
            .await?;
        // …and one of the original width is kept across the round trip.
        shard.exec(&[&long_task("900000000000000011", 512)]).await
    }

    async fn after_up_again(&self, shard: &Shard<'_>, _up: &SchemaSnapshot) -> anyhow::Result<()> {
        // The rollback refuses while a longer message is stored, and changes nothing of the column.
        shard.exec(&[&long_task("900000000000000012", 513)]).await?;
        let refused = ShardMigrator::down(shard.db, Some(shard.steps)).await;
        let error = refused.err().context("the rollback must refuse long messages")?;
        ensure!(error.to_string().contains("cannot narrow task.message"), "{error}");
        ensure!(
            message_type(shard.server, shard.name).await? == "text",
            "the column was narrowed"
        );
        shard
            .exec(&["DELETE FROM task WHERE message_id = '900000000000000012'"])
            .await?;
        // The later migrations the refused rollback undid come back.
        ShardMigrator::up(shard.db, None).await?;
        shard
            .assert_applied(&shard.names, "after a refused rollback and up")
            .await
    }
}
