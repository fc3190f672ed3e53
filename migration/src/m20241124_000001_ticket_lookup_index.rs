//! Shard databases, migration 5: an index for the draw's unused-ticket lookup.
//!
//! Every draw looks for the user's oldest unused ticket of the activity
//! (`user_id = ? AND activity_id = ? AND order_state = 'create' ORDER BY id LIMIT 1`). With only
//! the original `idx_user_id_activity_id`, that walks every ticket the user ever had in the
//! activity, so a draw got slower with each earlier draw. `(user_id, activity_id,
//! order_state)` — InnoDB appends the primary key `id` — answers it from one index entry.
//! Additive: no column or row changes.

use sea_orm_migration::prelude::*;

use crate::support::{SPLIT_TABLE_COUNT, execute_all};

/// The index name on every `user_raffle_order_XXX`.
pub const INDEX: &str = "idx_user_activity_state";

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

fn tables() -> impl Iterator<Item = String> {
    (0..SPLIT_TABLE_COUNT).map(|i| format!("user_raffle_order_{i:03}"))
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut sql = Vec::new();
        for table in tables() {
            if !manager.has_index(&table, INDEX).await? {
                sql.push(format!(
                    "ALTER TABLE `{table}` ADD INDEX `{INDEX}` (`user_id`, `activity_id`, `order_state`)"
                ));
            }
        }
        execute_all(manager, sql).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut sql = Vec::new();
        for table in tables() {
            if manager.has_index(&table, INDEX).await? {
                sql.push(format!("ALTER TABLE `{table}` DROP INDEX `{INDEX}`"));
            }
        }
        execute_all(manager, sql).await
    }
}
