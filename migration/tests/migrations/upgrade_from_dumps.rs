//! Databases created from the original dumps (no `seaql_migrations`) are upgraded in place by
//! the whole chain of migrations.

use std::collections::{BTreeMap, BTreeSet};

use anyhow::ensure;
use migration::sea_orm_migration::sea_orm::ConnectionTrait;
use migration::{ConfigMigrator, ShardMigrator, migrate_all};
use test_support::mysql::{TestDatabases, connect, finish};
use test_support::schema::{
    ColumnInfo, applied_migrations, columns, data_snapshot, data_snapshot_without, keys_and_options, query_strings,
    row_counts, table_rows, tables,
};
use test_support::services::database_url;

use crate::m20241123_outbox_relay::{OUTBOX_INBOX, assert_outbox_additions};
use crate::m20241123_read_model_versions::{VERSIONED_TABLES, assert_version_columns};
use crate::m20241123_widen_ids::assert_id_widths;
use crate::m20261201_latest::assert_business_no_widths;
use crate::support::{
    AUDIT_TIMESTAMPS, LATEST_ADDED_ROWS, NON_BUSINESS_COLUMNS, REFERENCE_COUNTS, all_appended_columns, load_fixture,
    migrated_reference_counts, migration_names, without_latest_rows,
};

/// Databases created from the original dumps (no `seaql_migrations`) migrate in place: every row
/// is kept, no reference row is duplicated, the rows of the latest dump missing by id are added,
/// and their schema equals a freshly migrated one.
#[tokio::test]
async fn original_dumps_upgrade_in_place() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new().await?;
    let dumped = [dbs.name("dcfg"), dbs.name("d01"), dbs.name("d02")];
    let fresh = [dbs.name("fcfg"), dbs.name("f01"), dbs.name("f02")];
    let result = upgrade_in_place(&dbs, &dumped, &fresh).await;
    finish(dbs, result).await
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
    load_fixture(dcfg, "big_market.sql").await?;
    load_fixture(d01, "big_market_01.sql").await?;
    load_fixture(d02, "big_market_02.sql").await?;
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

    // Every row is kept as it was; the tables the upgrade created are empty (the stage table
    // holds the latest dump's row), the columns it added are left out of the comparison (their
    // values are checked below), and so are the latest dump's reference rows it added.
    for ((name, counts), rows) in dumped.iter().zip(&before_counts).zip(&before_rows) {
        let mut after = row_counts(server, name).await?;
        let applied = after.remove("seaql_migrations");
        for created in [OUTBOX_INBOX, migration::AUDIT_LOG_TABLE, migration::SWITCHES_TABLE] {
            let count = after.remove(created);
            assert!(count.is_none_or(|count| count == 0), "{name}.{created} is not empty");
        }
        let expected = if name == dcfg {
            migrated_reference_counts()
        } else {
            counts.clone()
        };
        assert_eq!(after, expected, "row counts of {name} changed by the upgrade");
        assert!(applied.is_some(), "{name} has no seaql_migrations after upgrade");
        let mut after_rows = data_snapshot_without(server, name, &all_appended_columns()?).await?;
        after_rows.remove(OUTBOX_INBOX);
        after_rows.remove(migration::AUDIT_LOG_TABLE);
        after_rows.remove(migration::SWITCHES_TABLE);
        if name == dcfg {
            after_rows = without_latest_rows(after_rows);
        }
        assert!(&after_rows == rows, "rows of {name} changed by the upgrade");
    }
    for (table, row) in LATEST_ADDED_ROWS {
        let rows = table_rows(server, dcfg, table, AUDIT_TIMESTAMPS).await?;
        assert!(
            rows.contains(&(*row).to_owned()),
            "{dcfg}.{table} gained the latest row {row}: {rows:#?}"
        );
    }
    assert_eq!(
        applied_migrations(server, dcfg).await?,
        migration_names::<ConfigMigrator>()
    );
    for shard in [d01, d02] {
        assert_eq!(
            applied_migrations(server, shard).await?,
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
        let fresh_tasks = query_strings(server, &sql, Vec::new(), 1).await?;
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
                query_strings(server, &sql, Vec::new(), 1).await?,
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
            query_strings(server, &sql, Vec::new(), 1).await?,
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
        assert_business_no_widths(server, shard, true).await?;
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
    for ((old, new), dump_02) in dumped.iter().zip(fresh).zip([false, false, true]) {
        compare_schemas(dbs, old, new, dump_02).await?;
    }

    // The seeded reference rows are exactly the dump's (ids and audit timestamps aside).
    let stage = (migration::STAGE_TABLE, 0);
    for (table, _) in REFERENCE_COUNTS.iter().chain([&stage]) {
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
/// keys and table options. The one known difference of the original dumps (old and latest) is
/// tolerated when `old` was loaded from a `big_market_02` dump (`dump_02`):
/// `big_market_02.raffle_activity_account.update_time` lacks `ON UPDATE CURRENT_TIMESTAMP`.
pub(crate) async fn compare_schemas(dbs: &TestDatabases, old: &str, new: &str, dump_02: bool) -> anyhow::Result<()> {
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
        |c: &ColumnInfo| dump_02 && c.table == "raffle_activity_account" && c.column == "update_time";
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
    if dump_02 {
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
