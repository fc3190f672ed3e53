//! Shard databases, migration 10: outbox rows carry the trace context of their command.
//!
//! * `task` gains `traceparent` (`varchar(128)` ASCII, `NULL`): the W3C `traceparent` of the
//!   span that wrote the row (the GraphQL request, or the consumer of the message that caused
//!   it). The relay sends it on as the AMQP header `traceparent`, so a consumer continues the
//!   trace (docs/OPERATIONS.md §12). Rows written before, or by older binaries, keep `NULL` and
//!   are published without the header.
//! * The draw's save gets a second version, `bm_save_draw_v2_000` … `_003`, that takes the
//!   `traceparent` as a 28th parameter and stores it in its outbox rows. The first version
//!   (`m20261130_000001_draw_save_procedure`) stays, so binaries of before this migration keep
//!   saving draws while a deployment rolls (their rows get `NULL`). A later migration that
//!   changes the collation of `user_id`, `order_id`, `day` or `month` must re-create both.
//!
//! `down` drops the second version and the column (the trace contexts are lost; nothing else
//! is).

use sea_orm_migration::prelude::*;

use crate::m20261130_000001_draw_save_procedure::{column_charset, procedure_sql};
use crate::support::{SPLIT_TABLE_COUNT, execute_all};

/// The column added to `task`.
pub const COLUMN: &str = "traceparent";

/// The traced save procedure of split table `index`: `bm_save_draw_v2_000` … `_003`.
pub fn procedure_name(index: usize) -> String {
    format!("bm_save_draw_v2_{index:03}")
}

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut sql = Vec::new();
        if !manager.has_column("task", COLUMN).await? {
            sql.push(format!(
                "ALTER TABLE `task` ADD COLUMN `{COLUMN}` varchar(128) CHARACTER SET ascii DEFAULT NULL COMMENT 'W3C traceparent（链路追踪）'"
            ));
        }
        let user = column_charset(manager, "raffle_activity_account", "user_id").await?;
        let order = column_charset(manager, "user_raffle_order_000", "order_id").await?;
        let period = column_charset(manager, "raffle_activity_account_day", "day").await?;
        for index in 0..SPLIT_TABLE_COUNT {
            let name = procedure_name(index);
            sql.push(format!("DROP PROCEDURE IF EXISTS `{name}`"));
            sql.push(procedure_sql(&name, index, &user, &order, &period, true));
        }
        execute_all(manager, sql).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut sql: Vec<String> = (0..SPLIT_TABLE_COUNT)
            .map(|index| format!("DROP PROCEDURE IF EXISTS `{}`", procedure_name(index)))
            .collect();
        if manager.has_column("task", COLUMN).await? {
            sql.push(format!("ALTER TABLE `task` DROP COLUMN `{COLUMN}`"));
        }
        execute_all(manager, sql).await
    }
}
