//! Helpers shared by the migrations: split-table naming, DDL templates and seed rows.
//!
//! DDL is kept as the original MySQL text (types such as `int(8)`, comments, key names), written
//! as templates whose table name is the placeholder `{table}`, so one template serves a table and
//! all its split copies `_000` … `_003`.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::{ConnectionTrait, Statement, Value};

/// Number of physical copies (`_000` … `_003`) of every split table in each shard database
/// (the original's `tbCount`).
pub const SPLIT_TABLE_COUNT: usize = 4;

/// Placeholder for the table name in DDL templates.
pub(crate) const TABLE_PLACEHOLDER: &str = "{table}";

/// Names of the physical copies of the split table `base`: `base_000` … `base_003`.
pub(crate) fn split_table_names(base: &str) -> impl Iterator<Item = String> + '_ {
    (0..SPLIT_TABLE_COUNT).map(move |index| format!("{base}_{index:03}"))
}

/// Renders a DDL template for the physical table `table`.
pub(crate) fn render(template: &str, table: &str) -> String {
    template.replace(TABLE_PLACEHOLDER, table)
}

/// Executes each statement in order, as plain (unprepared) SQL.
///
/// Takes a collected list: iterator adapters borrowed across the `.await` points would make the
/// migration futures fail the `Send` bound of `async_trait`.
pub(crate) async fn execute_all(manager: &SchemaManager<'_>, statements: Vec<String>) -> Result<(), DbErr> {
    let db = manager.get_connection();
    for sql in statements {
        db.execute_unprepared(&sql).await?;
    }
    Ok(())
}

/// One cell of a seed row.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Cell {
    /// An integer.
    I(i64),
    /// Text; also used for `decimal` and `datetime` values, which MySQL converts exactly.
    T(&'static str),
    /// SQL `NULL`.
    Null,
}

impl Cell {
    fn value(self) -> Value {
        match self {
            Cell::I(number) => Value::BigInt(Some(number)),
            Cell::T(text) => Value::String(Some(Box::new(text.to_owned()))),
            Cell::Null => Value::String(None),
        }
    }
}

/// Reference rows of one table, inserted only where missing.
#[derive(Debug)]
pub(crate) struct SeedTable {
    /// Table name.
    pub table: &'static str,
    /// Columns given for each row (everything but `id` and the audit timestamps).
    pub columns: &'static [&'static str],
    /// Identity of a row: a row is inserted only if no existing row matches it on any of these
    /// column groups (the natural key, plus any other unique key the insert could collide on).
    /// Key columns must not be `NULL` in the seed rows.
    pub keys: &'static [&'static [&'static str]],
    /// The rows, one cell per column.
    pub rows: &'static [&'static [Cell]],
}

impl SeedTable {
    /// `INSERT … SELECT … FROM DUAL WHERE NOT EXISTS (…)` statements, one per row.
    pub(crate) fn statements(&self) -> Result<Vec<Statement>, DbErr> {
        let columns = self
            .columns
            .iter()
            .map(|column| format!("`{column}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let placeholders = vec!["?"; self.columns.len()].join(", ");
        let mut key_columns = Vec::new();
        let condition = self
            .keys
            .iter()
            .map(|key| {
                let parts = key
                    .iter()
                    .map(|column| {
                        key_columns.push(*column);
                        format!("`{column}` = ?")
                    })
                    .collect::<Vec<_>>();
                format!("({})", parts.join(" AND "))
            })
            .collect::<Vec<_>>()
            .join(" OR ");
        let sql = format!(
            "INSERT INTO `{table}` ({columns}) SELECT {placeholders} FROM DUAL \
             WHERE NOT EXISTS (SELECT 1 FROM `{table}` WHERE {condition})",
            table = self.table,
        );
        let key_positions = key_columns
            .iter()
            .map(|key| {
                self.columns
                    .iter()
                    .position(|column| column == key)
                    .ok_or_else(|| DbErr::Migration(format!("seed key {key} is not a column of {}", self.table)))
            })
            .collect::<Result<Vec<_>, _>>()?;
        self.rows
            .iter()
            .map(|row| {
                if row.len() != self.columns.len() {
                    return Err(DbErr::Migration(format!(
                        "seed row of {} has {} cells for {} columns",
                        self.table,
                        row.len(),
                        self.columns.len()
                    )));
                }
                let values = row
                    .iter()
                    .copied()
                    .chain(key_positions.iter().map(|&position| row[position]))
                    .map(Cell::value)
                    .collect::<Vec<_>>();
                Ok(Statement::from_sql_and_values(
                    sea_orm_migration::sea_orm::DbBackend::MySql,
                    sql.clone(),
                    values,
                ))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_names_are_zero_padded() {
        let names: Vec<_> = split_table_names("task").collect();
        assert_eq!(names, ["task_000", "task_001", "task_002", "task_003"]);
    }

    #[test]
    fn seed_statement_checks_every_key() {
        const SEED: SeedTable = SeedTable {
            table: "t",
            columns: &["a", "b", "c"],
            keys: &[&["a"], &["b", "c"]],
            rows: &[&[Cell::I(1), Cell::T("x"), Cell::Null]],
        };
        let statements = SEED.statements().unwrap();
        assert_eq!(statements.len(), 1);
        assert_eq!(
            statements[0].sql,
            "INSERT INTO `t` (`a`, `b`, `c`) SELECT ?, ?, ? FROM DUAL \
             WHERE NOT EXISTS (SELECT 1 FROM `t` WHERE (`a` = ?) OR (`b` = ? AND `c` = ?))"
        );
        let values = statements[0].values.as_ref().unwrap();
        assert_eq!(values.0.len(), 6);
        assert_eq!(values.0[3], Value::BigInt(Some(1)));
    }

    #[test]
    fn seed_rejects_bad_shapes() {
        const SHORT_ROW: SeedTable = SeedTable {
            table: "t",
            columns: &["a", "b"],
            keys: &[&["a"]],
            rows: &[&[Cell::I(1)]],
        };
        assert!(SHORT_ROW.statements().is_err());
        const UNKNOWN_KEY: SeedTable = SeedTable {
            table: "t",
            columns: &["a"],
            keys: &[&["z"]],
            rows: &[&[Cell::I(1)]],
        };
        assert!(UNKNOWN_KEY.statements().is_err());
    }
}
