//! Shard databases, migration 3: what the outbox relay and idempotent consumers need.
//!
//! Additive only:
//! * `task` gains delivery bookkeeping — `attempts`, `next_attempt_at` (backoff), `last_error`,
//!   `published_at` (broker confirm) and `delivered_at` (consumer effect committed) — and an
//!   index to claim due rows. The `state` column keeps the original values (`create`,
//!   `completed`, `fail`) plus `dead` for rows that exhausted their attempts.
//! * `inbox`: one row per consumed message, written in the consumer's transaction, so a
//!   redelivered message has no second effect.
//! * `user_credit_account.user_id` becomes unique (spec §8.4 item 27), so a credit is an
//!   insert-or-add on one row even when two first credits race.

use sea_orm_migration::prelude::*;

use crate::support::execute_all;

/// Columns added to `task`: (name, definition).
const TASK_COLUMNS: &[(&str, &str)] = &[
    (
        "attempts",
        "`attempts` int(8) NOT NULL DEFAULT 0 COMMENT '发布尝试次数'",
    ),
    (
        "next_attempt_at",
        "`next_attempt_at` datetime(3) DEFAULT NULL COMMENT '下次发布时间（退避）'",
    ),
    (
        "last_error",
        "`last_error` varchar(512) DEFAULT NULL COMMENT '最近一次失败原因'",
    ),
    (
        "published_at",
        "`published_at` datetime(3) DEFAULT NULL COMMENT 'broker 确认时间'",
    ),
    (
        "delivered_at",
        "`delivered_at` datetime(3) DEFAULT NULL COMMENT '消费完成时间'",
    ),
];

const INBOX: &str = "CREATE TABLE IF NOT EXISTS `inbox` (
  `id` bigint(11) unsigned NOT NULL AUTO_INCREMENT COMMENT '自增ID',
  `message_id` varchar(32) NOT NULL COMMENT '消息编号',
  `topic` varchar(32) NOT NULL COMMENT '消息主题',
  `user_id` varchar(32) NOT NULL COMMENT '用户ID',
  `create_time` datetime NOT NULL DEFAULT CURRENT_TIMESTAMP COMMENT '消费时间',
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_message_id_topic` (`message_id`,`topic`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COMMENT='已消费消息（幂等）'";

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut sql = Vec::new();
        for (name, definition) in TASK_COLUMNS {
            if !manager.has_column("task", name).await? {
                sql.push(format!("ALTER TABLE `task` ADD COLUMN {definition}"));
            }
        }
        if !manager.has_index("task", "idx_state_next_attempt").await? {
            sql.push("ALTER TABLE `task` ADD KEY `idx_state_next_attempt` (`state`,`next_attempt_at`)".into());
        }
        sql.push(INBOX.into());
        if !manager.has_index("user_credit_account", "uq_user_id").await? {
            sql.push("ALTER TABLE `user_credit_account` ADD UNIQUE KEY `uq_user_id` (`user_id`)".into());
        }
        execute_all(manager, sql).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let mut sql = vec!["DROP TABLE IF EXISTS `inbox`".to_owned()];
        if manager.has_index("user_credit_account", "uq_user_id").await? {
            sql.push("ALTER TABLE `user_credit_account` DROP KEY `uq_user_id`".into());
        }
        if manager.has_index("task", "idx_state_next_attempt").await? {
            sql.push("ALTER TABLE `task` DROP KEY `idx_state_next_attempt`".into());
        }
        for (name, _) in TASK_COLUMNS {
            if manager.has_column("task", name).await? {
                sql.push(format!("ALTER TABLE `task` DROP COLUMN `{name}`"));
            }
        }
        execute_all(manager, sql).await
    }
}
