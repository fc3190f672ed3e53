//! Shard databases, migration 7: user ids and business numbers compare byte for byte.
//!
//! The shard tables of the original use the server's default `utf8mb4_general_ci` collation,
//! so `victimcAse` and `victimcase` (or `josé_x` and `jose_x`) were one account whenever the
//! router put them on the same shard, and `Order-AbC` / `order-abc` were one purchase. Every
//! `user_id`, `out_business_no` and `biz_id` column becomes `utf8mb4_bin` (the unique keys over
//! them follow their columns); `user_id` is widened to `varchar(128)`, the latest original's
//! width. Rows are kept: a binary collation distinguishes more values, never fewer, so no
//! unique key can break. The draw-save procedures are created again, because their parameters
//! carry the collation of these columns.
//!
//! `down` restores `utf8mb4_general_ci` and `user_id varchar(32)`, and refuses, before changing
//! anything, when two rows would then collide on a unique key or a user id is longer than 32.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, QueryResult, Statement};

use crate::m20261130_000001_draw_save_procedure as draw_save;
use crate::support::execute_all;

/// The columns made binary.
pub const COLUMNS: [&str; 3] = ["user_id", "out_business_no", "biz_id"];
/// Their collation after this migration.
pub const BINARY: &str = "utf8mb4_bin";
/// Their collation before (the original's).
const ORIGINAL: &str = "utf8mb4_general_ci";
/// The width of `user_id` after this migration.
const USER_ID_WIDTH: i64 = 128;
/// The width of `user_id` in the original dumps this project started from.
const ORIGINAL_USER_ID_WIDTH: i64 = 32;

/// The migration.
#[derive(DeriveMigrationName)]
pub struct Migration;

/// One column to change, as declared now.
pub(crate) struct Column {
    pub(crate) table: String,
    pub(crate) name: String,
    pub(crate) width: i64,
    pub(crate) nullable: bool,
    pub(crate) default: Option<String>,
    pub(crate) comment: String,
}

/// Reads a [`Column`] from a row with the aliases `t`, `c`, `w`, `n`, `d`, `m` (table, column,
/// width, `IS_NULLABLE`, default, comment).
pub(crate) fn column(r: &QueryResult) -> Result<Column, DbErr> {
    Ok(Column {
        table: r.try_get("", "t")?,
        name: r.try_get("", "c")?,
        width: r.try_get("", "w")?,
        nullable: r.try_get::<String>("", "n")? == "YES",
        default: r.try_get("", "d")?,
        comment: r.try_get("", "m")?,
    })
}

/// The target columns of the current database whose collation is not `collation`.
async fn columns(manager: &SchemaManager<'_>, not_collation: &str) -> Result<Vec<Column>, DbErr> {
    let db = manager.get_connection();
    let sql = format!(
        "SELECT TABLE_NAME AS t, COLUMN_NAME AS c, CAST(CHARACTER_MAXIMUM_LENGTH AS SIGNED) AS w, \
                IS_NULLABLE AS n, COLUMN_DEFAULT AS d, COLUMN_COMMENT AS m \
         FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = DATABASE() AND DATA_TYPE = 'varchar' AND COLUMN_NAME IN ({}) \
           AND COLLATION_NAME <> ? \
         ORDER BY TABLE_NAME, COLUMN_NAME",
        COLUMNS.map(|c| format!("'{c}'")).join(", ")
    );
    db.query_all(Statement::from_sql_and_values(
        manager.get_database_backend(),
        sql,
        [not_collation.into()],
    ))
    .await?
    .iter()
    .map(column)
    .collect()
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "''"))
}

/// `ALTER TABLE … MODIFY` keeping the column's nullability, default and comment.
pub(crate) fn modify(c: &Column, width: i64, collation: &str) -> String {
    let null = if c.nullable { "NULL" } else { "NOT NULL" };
    let default = match &c.default {
        // MariaDB reports a string default quoted, MySQL unquoted.
        Some(d) if d != "NULL" => format!(" DEFAULT {}", quote(d.trim_matches('\''))),
        _ => String::new(),
    };
    format!(
        "ALTER TABLE `{}` MODIFY COLUMN `{}` varchar({width}) CHARACTER SET utf8mb4 COLLATE {collation} {null}{default} COMMENT {}",
        c.table,
        c.name,
        quote(&c.comment)
    )
}

/// The draw-save procedures, created again over the columns' current collation.
async fn recreate_procedures(manager: &SchemaManager<'_>) -> Result<(), DbErr> {
    draw_save::Migration.up(manager).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let sql = columns(manager, BINARY)
            .await?
            .iter()
            .map(|c| {
                let width = if c.name == "user_id" {
                    c.width.max(USER_ID_WIDTH)
                } else {
                    c.width
                };
                modify(c, width, BINARY)
            })
            .collect();
        execute_all(manager, sql).await?;
        recreate_procedures(manager).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        let changed = columns(manager, ORIGINAL).await?;
        refuse_collisions(manager, &changed).await?;
        refuse_long_user_ids(manager, &changed).await?;
        let width = |c: &Column| {
            if c.name == "user_id" {
                ORIGINAL_USER_ID_WIDTH
            } else {
                c.width
            }
        };
        let sql = changed.iter().map(|c| modify(c, width(c), ORIGINAL)).collect();
        execute_all(manager, sql).await?;
        recreate_procedures(manager).await
    }
}

/// Fails when a stored user id is longer than the original width.
async fn refuse_long_user_ids(manager: &SchemaManager<'_>, changed: &[Column]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for c in changed.iter().filter(|c| c.name == "user_id") {
        let sql = format!(
            "SELECT COUNT(*) AS n FROM `{}` WHERE CHAR_LENGTH(`user_id`) > {ORIGINAL_USER_ID_WIDTH}",
            c.table
        );
        let n: i64 = db
            .query_one(Statement::from_string(manager.get_database_backend(), sql))
            .await?
            .map(|r| r.try_get("", "n"))
            .transpose()?
            .unwrap_or(0);
        if n > 0 {
            return Err(DbErr::Migration(format!(
                "cannot narrow {}.user_id back to varchar({ORIGINAL_USER_ID_WIDTH}): {n} row(s) hold longer ids",
                c.table
            )));
        }
    }
    Ok(())
}

/// Fails when a unique key over a changed column would hold two equal values once the column
/// compares case- and accent-insensitively again.
async fn refuse_collisions(manager: &SchemaManager<'_>, changed: &[Column]) -> Result<(), DbErr> {
    let db = manager.get_connection();
    let b = manager.get_database_backend();
    let tables: std::collections::BTreeSet<&str> = changed.iter().map(|c| c.table.as_str()).collect();
    for table in tables {
        let keys = db
            .query_all(Statement::from_sql_and_values(
                b,
                "SELECT INDEX_NAME AS k, GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX) AS cols \
                 FROM information_schema.STATISTICS \
                 WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND NON_UNIQUE = 0 GROUP BY INDEX_NAME",
                [table.into()],
            ))
            .await?;
        for key in keys {
            let cols: String = key.try_get("", "cols")?;
            let cols: Vec<&str> = cols.split(',').collect();
            if !cols.iter().any(|c| COLUMNS.contains(c)) {
                continue;
            }
            let group = cols
                .iter()
                .map(|c| {
                    if COLUMNS.contains(c) {
                        format!("`{c}` COLLATE {ORIGINAL}")
                    } else {
                        format!("`{c}`")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let sql =
                format!("SELECT COUNT(*) AS n FROM (SELECT 1 FROM `{table}` GROUP BY {group} HAVING COUNT(*) > 1) x");
            let n: i64 = db
                .query_one(Statement::from_string(b, sql))
                .await?
                .map(|r| r.try_get("", "n"))
                .transpose()?
                .unwrap_or(0);
            if n > 0 {
                let name: String = key.try_get("", "k")?;
                return Err(DbErr::Migration(format!(
                    "cannot make {table} case-insensitive again: {n} value(s) of unique key {name} differ only in case or accents"
                )));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_modify_keeps_nullability_default_and_comment() {
        let c = Column {
            table: "task".into(),
            name: "user_id".into(),
            width: 32,
            nullable: false,
            default: None,
            comment: "用户'ID".into(),
        };
        assert_eq!(
            modify(&c, 128, BINARY),
            "ALTER TABLE `task` MODIFY COLUMN `user_id` varchar(128) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL COMMENT '用户''ID'"
        );
        let d = Column {
            default: Some("'x'".into()),
            nullable: true,
            ..c
        };
        assert!(modify(&d, 32, ORIGINAL).ends_with("COLLATE utf8mb4_general_ci NULL DEFAULT 'x' COMMENT '用户''ID'"));
    }
}
