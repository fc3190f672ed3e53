//! Config database, migration 4: runtime switches (`setSwitch`), one row per key.
//!
//! Keys are the original's DCC names (`degradeSwitch`, `rateLimiterSwitch`, `blackListSwitch`,
//! …); a missing row means the key's default. Every instance re-reads the table at least twice
//! a second and at once when told over Redis pub/sub. Additive: a new table.

use sea_orm_migration::prelude::*;

use crate::support::execute_all;

/// The table.
pub const TABLE: &str = "switch_setting";

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
  `switch_key` varchar(64) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL COMMENT 'DCC key, e.g. degradeSwitch',
  `switch_value` varchar(64) NOT NULL COMMENT 'value, e.g. open / close / 1000',
  `updated_by` varchar(128) NOT NULL DEFAULT '' COMMENT 'token subject of the last setSwitch',
  `update_time` datetime(3) NOT NULL COMMENT 'last change (UTC)',
  PRIMARY KEY (`switch_key`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='runtime switches (big-market)'"
            )],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        execute_all(manager, vec![format!("DROP TABLE IF EXISTS `{TABLE}`")]).await
    }
}
