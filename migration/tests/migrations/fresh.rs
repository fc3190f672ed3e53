//! Every migration from nothing: fresh config and shard databases get the dumps' tables and
//! reference rows plus every later addition; a second run changes nothing, and rolling
//! everything back and up again restores the same state.

use std::collections::BTreeMap;

use anyhow::ensure;
use migration::sea_orm_migration::MigratorTrait;
use migration::{ConfigMigrator, ShardMigrator, migrate_all};
use test_support::mysql::{TestDatabases, connect, finish};
use test_support::schema::{DatabaseSnapshot, applied_migrations, column_names, row_counts, table_rows, tables};
use test_support::services::database_url;

use crate::m20241123_outbox_relay::assert_outbox_additions;
use crate::m20241123_read_model_versions::assert_version_columns;
use crate::m20241123_widen_ids::assert_id_widths;
use crate::m20261201_latest::assert_business_no_widths;
use crate::support::{
    CONFIG_TABLES, NON_BUSINESS_COLUMNS, STAGE_COLUMNS, migrated_reference_counts, migrated_shard_tables,
    migration_names, with_audit_columns,
};

/// Fresh databases: all tables with the dump's columns, the dump's reference rows, and a second
/// run that changes nothing.
#[tokio::test]
async fn fresh_migrate_creates_seeds_and_is_idempotent() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new().await?;
    let names = [dbs.name("cfg"), dbs.name("01"), dbs.name("02")];
    let result = fresh_migrate(&dbs, &names).await;
    finish(dbs, result).await
}

async fn fresh_migrate(dbs: &TestDatabases, [cfg, s01, s02]: &[String; 3]) -> anyhow::Result<()> {
    let server = &dbs.server;
    let shard_urls = [database_url(s01), database_url(s02)];
    migrate_all(&database_url(cfg), &shard_urls).await?;

    // Config tables and columns.
    let mut expected: Vec<String> = CONFIG_TABLES.iter().map(|(t, _)| t.to_string()).collect();
    expected.push("seaql_migrations".into());
    expected.push(migration::AUDIT_LOG_TABLE.into());
    expected.push(migration::SWITCHES_TABLE.into());
    expected.push(migration::STAGE_TABLE.into());
    expected.sort();
    assert_eq!(tables(server, cfg).await?, expected, "config tables");
    let stage = (migration::STAGE_TABLE, STAGE_COLUMNS);
    for (table, business) in CONFIG_TABLES.iter().chain([&stage]) {
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
        assert_business_no_widths(server, shard, true).await?;
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
    assert_eq!(
        counts.remove(migration::AUDIT_LOG_TABLE),
        Some(0),
        "the audit log starts empty"
    );
    assert_eq!(
        counts.remove(migration::SWITCHES_TABLE),
        Some(0),
        "every switch starts at its default"
    );
    let expected_counts: BTreeMap<String, i64> = migrated_reference_counts();
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
        applied_migrations(server, cfg).await?,
        migration_names::<ConfigMigrator>()
    );
    for shard in [s01, s02] {
        assert_eq!(
            applied_migrations(server, shard).await?,
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
    counts.remove(migration::AUDIT_LOG_TABLE);
    counts.remove(migration::SWITCHES_TABLE);
    assert_eq!(counts, expected_counts, "reference rows after down + up");
    Ok(())
}

/// Schema, keys, table options and data of each database.
async fn full_snapshot(dbs: &TestDatabases, names: &[&String]) -> anyhow::Result<Vec<DatabaseSnapshot>> {
    let mut snapshot = Vec::new();
    for name in names {
        snapshot.push(DatabaseSnapshot::take(&dbs.server, name).await?);
    }
    Ok(snapshot)
}
