//! Shard databases, migration 2: room for collision-free ids.
//!
//! The original draws 12-digit random order ids and 11-digit random message ids, which collide
//! (spec §8.2 item 17). Their replacement — snowflake ids, up to 19 decimal digits — needs wider
//! columns, so every `order_id` of the split tables and `task.message_id` become `varchar(32)`.
//!
//! Each column is rewritten with `ALTER TABLE … MODIFY COLUMN` and its full original definition
//! (NULL-ability, comment) at the new width; the unique keys on these columns are untouched. The
//! statement leaves an already widened column as it is, so the migration can be applied again.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

use crate::support::{execute_all, split_table_names};

/// Width of the widened id columns: a snowflake id has at most 19 digits; the rest is headroom
/// for a later id scheme without another migration.
const WIDE: u16 = 32;

/// Placeholder for the width in the column definitions below.
const WIDTH_PLACEHOLDER: &str = "{width}";

/// An id column to widen.
struct IdColumn {
    /// Table, or base name of a split table.
    table: &'static str,
    /// Whether the table exists as `_000` … `_003`.
    split: bool,
    /// Column name.
    column: &'static str,
    /// The original definition with `{width}` in place of the width.
    definition: &'static str,
    /// The original width, restored by `down`.
    original_width: u16,
}

/// Every id column of a shard database, with its definition as in the original dump.
const ID_COLUMNS: &[IdColumn] = &[
    IdColumn {
        table: "raffle_activity_order",
        split: true,
        column: "order_id",
        definition: "`order_id` varchar({width}) NOT NULL COMMENT '订单ID'",
        original_width: 12,
    },
    IdColumn {
        table: "user_raffle_order",
        split: true,
        column: "order_id",
        definition: "`order_id` varchar({width}) NOT NULL COMMENT '订单ID'",
        original_width: 12,
    },
    IdColumn {
        table: "user_award_record",
        split: true,
        column: "order_id",
        definition: "`order_id` varchar({width}) NOT NULL COMMENT '抽奖订单ID【作为幂等使用】'",
        original_width: 12,
    },
    IdColumn {
        table: "user_behavior_rebate_order",
        split: true,
        column: "order_id",
        definition: "`order_id` varchar({width}) NOT NULL COMMENT '订单ID'",
        original_width: 12,
    },
    IdColumn {
        table: "user_credit_order",
        split: true,
        column: "order_id",
        definition: "`order_id` varchar({width}) NOT NULL COMMENT '订单ID'",
        original_width: 12,
    },
    IdColumn {
        table: "task",
        split: false,
        column: "message_id",
        definition: "`message_id` varchar({width}) DEFAULT NULL COMMENT '消息编号'",
        original_width: 11,
    },
];

/// Widens the order and message id columns to `varchar(32)`.
#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let statements = physical_columns().map(|(table, column)| modify(&table, column, WIDE));
        execute_all(manager, statements.collect()).await
    }

    /// Restores the original widths. Refuses (before changing anything) when a stored id is
    /// longer than its original width: narrowing would fail in strict mode and silently cut ids
    /// otherwise.
    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let db = manager.get_connection();
        let columns: Vec<_> = physical_columns().collect();
        for (table, column) in &columns {
            let sql = format!(
                "SELECT COUNT(*) AS too_long FROM `{table}` WHERE CHAR_LENGTH(`{name}`) > ?",
                name = column.column
            );
            let row = db
                .query_one(Statement::from_sql_and_values(
                    manager.get_database_backend(),
                    sql,
                    [i32::from(column.original_width).into()],
                ))
                .await?;
            let too_long: i64 = match row {
                Some(row) => row.try_get("", "too_long")?,
                None => 0,
            };
            if too_long > 0 {
                return Err(DbErr::Migration(format!(
                    "cannot narrow {table}.{name} back to varchar({width}): {too_long} row(s) hold longer ids",
                    name = column.column,
                    width = column.original_width,
                )));
            }
        }
        let statements = columns
            .iter()
            .map(|(table, column)| modify(table, column, column.original_width));
        execute_all(manager, statements.collect()).await
    }
}

/// Every physical table holding an id column, with that column.
fn physical_columns() -> impl Iterator<Item = (String, &'static IdColumn)> {
    ID_COLUMNS.iter().flat_map(|column| {
        let tables: Vec<String> = if column.split {
            split_table_names(column.table).collect()
        } else {
            vec![column.table.to_owned()]
        };
        tables.into_iter().map(move |table| (table, column))
    })
}

/// `ALTER TABLE … MODIFY COLUMN …` setting `column` of `table` to `width` characters.
fn modify(table: &str, column: &IdColumn, width: u16) -> String {
    let definition = column.definition.replace(WIDTH_PLACEHOLDER, &width.to_string());
    format!("ALTER TABLE `{table}` MODIFY COLUMN {definition}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widens_order_ids_of_every_split_table_and_the_task_message_id() {
        let columns: Vec<(String, &str)> = physical_columns()
            .map(|(table, column)| (table, column.column))
            .collect();
        assert_eq!(columns.len(), 5 * crate::SPLIT_TABLE_COUNT + 1);
        assert!(columns.contains(&("user_credit_order_003".to_owned(), "order_id")));
        assert!(columns.contains(&("task".to_owned(), "message_id")));
    }

    #[test]
    fn statements_keep_the_original_definition_at_the_new_width() {
        let statements: Vec<String> = physical_columns()
            .map(|(table, column)| modify(&table, column, WIDE))
            .collect();
        assert!(
            statements.contains(
                &"ALTER TABLE `user_award_record_001` MODIFY COLUMN `order_id` varchar(32) NOT NULL \
              COMMENT '抽奖订单ID【作为幂等使用】'"
                    .to_owned()
            )
        );
        assert!(statements.contains(
            &"ALTER TABLE `task` MODIFY COLUMN `message_id` varchar(32) DEFAULT NULL COMMENT '消息编号'".to_owned()
        ));
        for sql in &statements {
            assert!(!sql.contains('{'), "unrendered placeholder in {sql}");
        }
    }
}
