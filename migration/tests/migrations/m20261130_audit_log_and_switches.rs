//! `m20261130_000003_audit_log` and `m20261130_000004_switches`: the config database's audit
//! log of operator operations and its runtime switches.

use anyhow::Context;
use migration::sea_orm_migration::MigratorTrait;
use migration::{AUDIT_LOG_TABLE, ConfigMigrator};
use test_support::mysql::{TestDatabases, connect, finish};
use test_support::schema::{column_names, tables};
use test_support::services::database_url;

/// The tables are created with their columns, dropped one by one by rolling the migrations back
/// (nothing else changes), and created again by up.
#[tokio::test]
async fn audit_log_and_switches_roll_back_and_apply_again() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new().await?;
    let cfg = dbs.name("cfg");
    let result = round_trip(&dbs, &cfg).await;
    finish(dbs, result).await
}

async fn round_trip(dbs: &TestDatabases, cfg: &str) -> anyhow::Result<()> {
    let server = &dbs.server;
    migration::migrate_all(&database_url(cfg), &[]).await?;
    let columns = [
        "id",
        "actor",
        "role",
        "operation",
        "arguments",
        "outcome",
        "message",
        "at",
    ]
    .map(str::to_owned);
    assert_eq!(column_names(server, cfg, AUDIT_LOG_TABLE).await?, columns);
    let with = tables(server, cfg).await?;

    let db = connect(&database_url(cfg)).await?;
    // The later migrations go first (taking the stage table of the latest reference rows).
    let names = crate::support::migration_names::<ConfigMigrator>();
    let switches = names
        .iter()
        .position(|name| name == "m20261130_000004_switches")
        .context("the switches migration is a config migration")?;
    let later = u32::try_from(names.len() - switches - 1)?;
    if later > 0 {
        ConfigMigrator::down(&db, Some(later)).await?;
    }
    let mut without = with.clone();
    without.retain(|t| t != migration::STAGE_TABLE);
    assert_eq!(
        tables(server, cfg).await?,
        without,
        "the later migrations are rolled back"
    );
    // One step down drops the switches, the next one the audit log.
    ConfigMigrator::down(&db, Some(1)).await?;
    without.retain(|t| t != migration::SWITCHES_TABLE);
    assert_eq!(
        tables(server, cfg).await?,
        without,
        "only switch_setting is gone after one step"
    );
    ConfigMigrator::down(&db, Some(1)).await?;
    without.retain(|t| t != AUDIT_LOG_TABLE);
    assert_eq!(tables(server, cfg).await?, without, "then only {AUDIT_LOG_TABLE}");

    ConfigMigrator::up(&db, None).await?;
    assert_eq!(tables(server, cfg).await?, with, "both are back after up");
    assert_eq!(column_names(server, cfg, AUDIT_LOG_TABLE).await?, columns);
    assert_eq!(
        column_names(server, cfg, migration::SWITCHES_TABLE).await?,
        ["switch_key", "switch_value", "updated_by", "update_time"].map(str::to_owned)
    );
    db.close().await?;
    Ok(())
}
