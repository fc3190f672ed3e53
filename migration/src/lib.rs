//! Schema migrations of big-market.
//!
//! This crate owns the MySQL schema of both kinds of database of the original system and the
//! reference (configuration) data of the config database:
//!
//! * [`ConfigMigrator`] — the config database `big_market` (strategies, awards, rule trees,
//!   activities, SKUs, rebate configuration, the activity stage) and its reference rows, up to
//!   the original's latest dump;
//! * [`ShardMigrator`] — every shard database `big_market_01`, `big_market_02`, … (accounts,
//!   orders, award records, outbox `task`), with the split tables `_000` … `_003`.
//!
//! The first migrations reproduce the original dumps exactly (`CREATE TABLE IF NOT EXISTS`,
//! reference rows inserted only where missing), so a database that was created from those dumps
//! (and has no `seaql_migrations` table) is upgraded in place with its rows kept. Every later
//! migration must be additive (new columns with defaults, new tables, new indexes) or widen a
//! column without touching its data.
//!
//! To add a migration: create `src/mYYYYMMDD_NNNNNN_<what>.rs` with a `Migration` unit struct
//! implementing [`MigrationTrait`], declare the module below
//! and append it to the list of [`ConfigMigrator`] or [`ShardMigrator`] (never reorder or
//! rename applied migrations). Helpers for split tables live in the `support` module.

pub use sea_orm_migration;

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectOptions, Database, DatabaseConnection};

mod database;
mod m20240406_000001_config_tables;
mod m20240406_000001_shard_tables;
mod m20240406_000002_config_reference_data;
mod m20241123_000001_widen_ids;
mod m20241123_000002_outbox_relay;
mod m20241123_000003_read_model_versions;
mod m20241124_000001_ticket_lookup_index;
mod m20261130_000001_draw_save_procedure;
mod m20261130_000002_binary_ids;
mod m20261130_000003_audit_log;
mod m20261130_000004_switches;
mod m20261201_000001_latest_reference;
mod m20261201_000002_task_message_text;
mod m20261201_000003_wide_business_numbers;
mod m20261201_000004_task_trace_context;
mod support;

pub use database::{drop_database, ensure_database};
pub use m20241124_000001_ticket_lookup_index::INDEX as TICKET_LOOKUP_INDEX;
pub use m20261130_000001_draw_save_procedure::procedure_name as draw_save_procedure;
pub use m20261130_000002_binary_ids::{BINARY as ID_COLLATION, COLUMNS as BINARY_ID_COLUMNS};
pub use m20261130_000003_audit_log::TABLE as AUDIT_LOG_TABLE;
pub use m20261130_000004_switches::TABLE as SWITCHES_TABLE;
pub use m20261201_000001_latest_reference::{STAGE_INDEX, STAGE_TABLE};
pub use m20261201_000003_wide_business_numbers::{COLUMNS as BUSINESS_NO_COLUMNS, WIDTH as BUSINESS_NO_WIDTH};
pub use m20261201_000004_task_trace_context::{
    COLUMN as TRACE_CONTEXT_COLUMN, procedure_name as traced_draw_save_procedure,
};
pub use support::SPLIT_TABLE_COUNT;

/// Migrations of the config database `big_market`.
pub struct ConfigMigrator;

#[async_trait::async_trait]
impl MigratorTrait for ConfigMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20240406_000001_config_tables::Migration),
            Box::new(m20240406_000002_config_reference_data::Migration),
            Box::new(m20261130_000003_audit_log::Migration),
            Box::new(m20261130_000004_switches::Migration),
            Box::new(m20261201_000001_latest_reference::Migration),
        ]
    }
}

/// Migrations of every shard database `big_market_01`, `big_market_02`, ...
pub struct ShardMigrator;

#[async_trait::async_trait]
impl MigratorTrait for ShardMigrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20240406_000001_shard_tables::Migration),
            Box::new(m20241123_000001_widen_ids::Migration),
            Box::new(m20241123_000002_outbox_relay::Migration),
            Box::new(m20241123_000003_read_model_versions::Migration),
            Box::new(m20241124_000001_ticket_lookup_index::Migration),
            Box::new(m20261130_000001_draw_save_procedure::Migration),
            Box::new(m20261130_000002_binary_ids::Migration),
            Box::new(m20261201_000002_task_message_text::Migration),
            Box::new(m20261201_000003_wide_business_numbers::Migration),
            Box::new(m20261201_000004_task_trace_context::Migration),
        ]
    }
}

/// Creates (if missing) and migrates the config DB and every shard DB; re-runnable.
///
/// Each URL has the form `mysql://user:pass@host:port/dbname`. The databases are processed one
/// after the other: first `config_url` with [`ConfigMigrator`], then each of `shard_urls` with
/// [`ShardMigrator`]. Migrations already recorded in a database's `seaql_migrations` table are
/// skipped, so a second run is a no-op.
pub async fn migrate_all(config_url: &str, shard_urls: &[String]) -> Result<(), DbErr> {
    migrate_one::<ConfigMigrator>(config_url, "config").await?;
    for shard_url in shard_urls {
        migrate_one::<ShardMigrator>(shard_url, "shard").await?;
    }
    Ok(())
}

/// Ensures the database of `url` exists, then applies all pending migrations of `M` to it.
async fn migrate_one<M: MigratorTrait>(url: &str, kind: &str) -> Result<(), DbErr> {
    let name = database::database_name(url)?;
    ensure_database(url).await?;
    tracing::info!(database = %name, kind, "applying pending migrations");
    let db = connect(url).await?;
    let result = M::up(&db, None).await;
    let closed = db.close().await;
    result?;
    closed?;
    tracing::info!(database = %name, kind, "database is up to date");
    Ok(())
}

/// Opens a small pool for migration work; statement logging is left to our own tracing.
pub(crate) async fn connect(url: &str) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(2)
        .min_connections(0)
        .connect_timeout(std::time::Duration::from_secs(10))
        .acquire_timeout(std::time::Duration::from_secs(30))
        .sqlx_logging(false);
    Database::connect(options).await
}
