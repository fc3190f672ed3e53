//! Config database, migration 3: the audit log of operator operations.
//!
//! One row per admin mutation (`armActivity`, `addAwardStock`, `replayTask`, …), written by the
//! API after the operation answered: who (`actor`, `role`), what (`operation` = the GraphQL
//! field name, `arguments` as JSON), how it ended (`outcome`: `ok` or the error code) and when.
//! Rows are only ever inserted. Additive: a new table.

use sea_orm_migration::prelude::*;

use crate::support::execute_all;

/// The table.
pub const TABLE: &str = "audit_log";

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_all(
            manager,
            vec![format!(
                "CREATE TABLE IF NOT EXISTS `{TABLE}` (
  `id` bigint unsigned NOT NULL AUTO_INCREMENT COMMENT 'id (the page cursor: newest first)',
  `actor` varchar(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL COMMENT 'token subject',
  `role` varchar(16) NOT NULL COMMENT 'admin | service | user',
  `operation` varchar(64) NOT NULL COMMENT 'GraphQL field name',
  `arguments` text NOT NULL COMMENT 'arguments as JSON',
  `outcome` varchar(64) NOT NULL COMMENT 'ok, or the error code',
  `message` varchar(512) NOT NULL DEFAULT '' COMMENT 'error message, if any',
  `at` datetime(3) NOT NULL COMMENT 'when the operation answered (UTC)',
  PRIMARY KEY (`id`),
  KEY `idx_operation` (`operation`, `id`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='operator operations (big-market)'"
            )],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_all(manager, vec![format!("DROP TABLE IF EXISTS `{TABLE}`")]).await
    }
}
