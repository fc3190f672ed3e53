//! `m20261130_000003_audit_log`: the config database's audit log of operator operations.

use migration::sea_orm_migration::MigratorTrait;
use migration::{AUDIT_LOG_TABLE, ConfigMigrator};
use test_support::mysql::{TestDatabases, connect, finish};
use test_support::schema::{column_names, tables};
use test_support::services::database_url;

/// The table is created with its columns, dropped by rolling the migration back (nothing else
/// changes), and created again by up.
#[tokio::test]
async fn audit_log_rolls_back_and_applies_again() -> anyhow::Result<()> {
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
    ConfigMigrator::down(&db, Some(1)).await?;
    let mut without = with.clone();
    without.retain(|t| t != AUDIT_LOG_TABLE);
    assert_eq!(
        tables(server, cfg).await?,
        without,
        "only {AUDIT_LOG_TABLE} is gone after down"
    );

    ConfigMigrator::up(&db, None).await?;
    assert_eq!(tables(server, cfg).await?, with, "{AUDIT_LOG_TABLE} is back after up");
    assert_eq!(column_names(server, cfg, AUDIT_LOG_TABLE).await?, columns);
    db.close().await?;
    Ok(())
}
