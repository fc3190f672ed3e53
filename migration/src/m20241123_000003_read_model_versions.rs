//! Shard databases, migration 4: versions for the read models.
//!
//! `raffle_activity_account.version` and `user_credit_account.version` count the transactions
//! that changed the row. Every change publishes a snapshot carrying the version, and a Redis
//! projection applies a snapshot only when its version is newer, so replayed or reordered
//! events cannot move a view backwards. Additive: existing rows start at 0.

use sea_orm_migration::prelude::*;

use crate::support::execute_all;

const TABLES: [&str; 2] = ["raffle_activity_account", "user_credit_account"];

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut sql = Vec::new();
        for table in TABLES {
            if !manager.has_column(table, "version").await? {
                sql.push(format!(
                    "ALTER TABLE `{table}` ADD COLUMN `version` bigint(20) NOT NULL DEFAULT 0 COMMENT '变更版本（读模型）'"
                ));
            }
        }
        execute_all(manager, sql).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut sql = Vec::new();
        for table in TABLES {
            if manager.has_column(table, "version").await? {
                sql.push(format!("ALTER TABLE `{table}` DROP COLUMN `version`"));
            }
        }
        execute_all(manager, sql).await
    }
}
