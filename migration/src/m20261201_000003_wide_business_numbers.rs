//! Shard databases, migration 9: business numbers long enough for ids built from user ids.
//!
//! A user id has up to 128 characters (`m20261130_000002_binary_ids`), and business numbers
//! are built from it: the sign-in rebate's `biz_id` is `{userId}_{rebateType}_{yyyyMMdd}` (up
//! to 128 + 1 + 8 + 1 + 8 = 146 characters), and it is also the `out_business_no` of the credit
//! trade (`user_credit_order_XXX`) and of the SKU recharge (`raffle_activity_order_XXX`) it
//! pays. The original's columns (`varchar(64)`; `varchar(128)` for `biz_id` and, in the latest
//! dumps, for the rebate's `out_business_no`) cannot hold them, so every business-number column
//! becomes `varchar(192)`. Each is rewritten with its nullability, default and comment, and
//! keeps its byte-for-byte `utf8mb4_bin` collation (a `MODIFY` without it would fall back to
//! the table's default); the unique keys over them (`uq_out_business_no`, `uq_biz_id`, one per
//! physical table) follow their columns. A column already that wide is left as it is. Rows are
//! kept: widening never changes a value.
//!
//! `down` narrows the columns back to this project's original widths (64, `biz_id` 128) with
//! their current collation, and refuses, before changing anything, when a stored value is
//! longer.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement};

use crate::m20261130_000002_binary_ids::{BINARY, Column, column, modify};
use crate::support::{execute_all, split_table_names};

/// The width of every business-number column after this migration (characters).
pub const WIDTH: usize = 192;

/// The business-number columns: `(split table base name, column, width before this migration)`.
pub const COLUMNS: [(&str, &str, usize); 4] = [
    ("raffle_activity_order", "out_business_no", 64),
    ("user_behavior_rebate_order", "out_business_no", 64),
    ("user_behavior_rebate_order", "biz_id", 128),
    ("user_credit_order", "out_business_no", 64),
];

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// Every business-number column of the current database with its collation, and the width it
/// had before this migration.
async fn business_columns(manager: &SchemaManager<'_>) -> Result<Vec<(Column, String, usize)>, DbErr> {
    let db = manager.get_connection();
    let mut found = Vec::new();
    for (base, name, original) in COLUMNS {
        for table in split_table_names(base) {
            let row = db
                .query_one(Statement::from_sql_and_values(
                    manager.get_database_backend(),
                    "SELECT TABLE_NAME AS t, COLUMN_NAME AS c, CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED) AS w, \
                            IS_NULLABLE AS n, COLUMN_DEFAULT AS d, COLUMN_COMMENT AS m, COLLATION_NAME AS co \
                     FROM information_schema.COLUMNS \
                     WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?",
                    [table.as_str().into(), name.into()],
                ))
                .await?
                .ok_or_else(|| DbErr::Migration(format!("column {table}.{name} is missing")))?;
            let collation: String = row.try_get("", "co")?;
            found.push((column(&row)?, collation, original));
        }
    }
    Ok(found)
}

/// A width in characters as information_schema reports it.
fn signed(width: usize) -> i64 {
    <i64 as TryFrom<usize>>::try_from(width).unwrap_or(i64::MAX)
}

fn wide() -> i64 {
    signed(WIDTH)
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = business_columns(manager)
            .await?
            .iter()
            .filter(|(c, collation, _)| c.width < wide() || collation != BINARY)
            .map(|(c, ..)| modify(c, c.width.max(wide()), BINARY))
            .collect();
        execute_all(manager, sql).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let widened: Vec<_> = business_columns(manager)
            .await?
            .into_iter()
            .filter(|(c, ..)| c.width == wide())
            .collect();
        let db = manager.get_connection();
        for (c, _, original) in &widened {
            let sql = format!(
                "SELECT COUNT(*) AS n FROM `{}` WHERE CHAR_LENGTH(`{}`) > {original}",
                c.table, c.name
            );
            let n: i64 = db
                .query_one(Statement::from_string(manager.get_database_backend(), sql))
                .await?
                .map(|r| r.try_get("", "n"))
                .transpose()?
                .unwrap_or(0);
            if n > 0 {
                return Err(DbErr::Migration(format!(
                    "cannot narrow {}.{} back to varchar({original}): {n} row(s) hold longer values",
                    c.table, c.name
                )));
            }
        }
        let sql = widened
            .iter()
            .map(|(c, collation, original)| modify(c, signed(*original), collation))
            .collect();
        execute_all(manager, sql).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{userId}_{rebateType}_{yyyyMMdd}` of the longest user id fits.
    #[test]
    fn the_width_holds_a_sign_in_biz_id_of_the_longest_user_id() {
        let longest = "u".repeat(128) + "_integral_20241201";
        assert!(longest.chars().count() <= WIDTH);
        for (.., original) in COLUMNS {
            assert!(original < WIDTH);
        }
    }
}
