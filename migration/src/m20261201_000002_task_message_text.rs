//! Shard databases, migration 8: outbox messages as long as their payloads.
//!
//! The original's `task.message` is `varchar(512)`. With user ids of up to 128 characters and
//! business numbers of up to 192, an envelope can be longer: a `send_rebate` message carries the
//! user id, the `bizId` built from it and a description of up to 128 characters (about 600
//! characters at most), a credit trade's snapshot the order's business number. The column
//! becomes `text` (up to 65 535 bytes), keeping `NOT NULL` and its comment. Rows are kept:
//! widening never changes a value.
//!
//! `down` narrows it back to `varchar(512)`, and refuses, before changing anything, when a
//! stored message is longer.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

/// The original width of `task.message` (characters).
pub const ORIGINAL_WIDTH: i64 = 512;

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// The data type of `task.message` (`varchar`, `text`).
async fn message_type(manager: &SchemaManager<'_>) -> Result<String, DbErr> {
    let row = manager
        .get_connection()
        .query_one(Statement::from_string(
            manager.get_database_backend(),
            "SELECT DATA_TYPE AS t FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = 'task' AND COLUMN_NAME = 'message'",
        ))
        .await?
        .ok_or_else(|| DbErr::Migration("column task.message is missing".into()))?;
    row.try_get("", "t")
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if message_type(manager).await? == "varchar" {
            manager
                .get_connection()
                .execute_unprepared("ALTER TABLE `task` MODIFY `message` text NOT NULL COMMENT '消息主体'")
                .await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if message_type(manager).await? == "varchar" {
            return Ok(());
        }
        let db = manager.get_connection();
        let n: i64 = db
            .query_one(Statement::from_string(
                manager.get_database_backend(),
                format!("SELECT COUNT(*) AS n FROM `task` WHERE CHAR_LENGTH(`message`) > {ORIGINAL_WIDTH}"),
            ))
            .await?
            .map(|r| r.try_get("", "n"))
            .transpose()?
            .unwrap_or(0);
        if n > 0 {
            return Err(DbErr::Migration(format!(
                "cannot narrow task.message back to varchar({ORIGINAL_WIDTH}): {n} row(s) hold longer messages"
            )));
        }
        db.execute_unprepared(&format!(
            "ALTER TABLE `task` MODIFY `message` varchar({ORIGINAL_WIDTH}) NOT NULL COMMENT '消息主体'"
        ))
        .await?;
        Ok(())
    }
}
