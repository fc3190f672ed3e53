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
        self.rows
            .iter()
            .map(|row| insert_where_missing(self.table, self.columns, self.keys, row))
            .collect()
    }

    /// For seed rows that carry their own primary key (the first column is `id`): first, for
    /// each row, an insert with its `id` when neither that id nor any of [`SeedTable::keys`] is
    /// taken; then, for each row, an insert without `id` (`AUTO_INCREMENT`) when still no row
    /// matches a key, i.e. when another row holds its id (the ids of the other rows are tried
    /// first, so one displaced row displaces no other). A row present by key is never inserted
    /// again, and an existing row is never changed.
    pub(crate) fn statements_keeping_ids(&self) -> Result<Vec<Statement>, DbErr> {
        if self.columns.first() != Some(&"id") {
            return Err(DbErr::Migration(format!(
                "seed rows of {} keeping their ids must start with the id column",
                self.table
            )));
        }
        let mut with_id: Vec<&[&str]> = vec![&["id"]];
        with_id.extend(self.keys.iter().copied());
        let mut statements = Vec::new();
        for row in self.rows {
            statements.push(insert_where_missing(self.table, self.columns, &with_id, row)?);
        }
        for row in self.rows {
            let without_id = row.get(1..).unwrap_or_default();
            statements.push(insert_where_missing(
                self.table,
                &self.columns[1..],
                self.keys,
                without_id,
            )?);
        }
        Ok(statements)
    }
}

/// `INSERT INTO table (columns) SELECT row FROM DUAL WHERE NOT EXISTS (a row matching any of
/// `keys`)`.
fn insert_where_missing(table: &str, columns: &[&str], keys: &[&[&str]], row: &[Cell]) -> Result<Statement, DbErr> {
    if row.len() != columns.len() {
        return Err(DbErr::Migration(format!(
            "seed row of {table} has {} cells for {} columns",
            row.len(),
            columns.len()
        )));
    }
    let column_list = columns
        .iter()
        .map(|column| format!("`{column}`"))
        .collect::<Vec<_>>()
        .join(", ");
    let placeholders = vec!["?"; columns.len()].join(", ");
    let mut key_columns = Vec::new();
    let condition = keys
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
        "INSERT INTO `{table}` ({column_list}) SELECT {placeholders} FROM DUAL \
         WHERE NOT EXISTS (SELECT 1 FROM `{table}` WHERE {condition})"
    );
    let key_positions = key_columns
        .iter()
        .map(|key| {
            columns
                .iter()
                .position(|column| column == key)
                .ok_or_else(|| DbErr::Migration(format!("seed key {key} is not a column of {table}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let values = row
        .iter()
        .copied()
        .chain(key_positions.iter().map(|&position| row[position]))
        .map(Cell::value)
        .collect::<Vec<_>>();
    Ok(Statement::from_sql_and_values(
        sea_orm_migration::sea_orm::DbBackend::MySql,
        sql,
        values,
    ))
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
    fn seed_keeping_ids_tries_the_id_then_auto_increment() {
        const SEED: SeedTable = SeedTable {
            table: "t",
            columns: &["id", "a", "b"],
            keys: &[&["a"]],
            rows: &[&[Cell::I(7), Cell::I(1), Cell::T("x")]],
        };
        let statements = SEED.statements_keeping_ids().unwrap();
        assert_eq!(statements.len(), 2);
        assert_eq!(
            statements[0].sql,
            "INSERT INTO `t` (`id`, `a`, `b`) SELECT ?, ?, ? FROM DUAL \
             WHERE NOT EXISTS (SELECT 1 FROM `t` WHERE (`id` = ?) OR (`a` = ?))"
        );
        assert_eq!(
            statements[1].sql,
            "INSERT INTO `t` (`a`, `b`) SELECT ?, ? FROM DUAL WHERE NOT EXISTS (SELECT 1 FROM `t` WHERE (`a` = ?))"
        );
        let values = statements[1].values.as_ref().unwrap();
        assert_eq!(
            values.0,
            [Value::BigInt(Some(1)), Cell::T("x").value(), Value::BigInt(Some(1))]
        );
        const NO_ID: SeedTable = SeedTable {
            table: "t",
            columns: &["a"],
            keys: &[&["a"]],
            rows: &[&[Cell::I(1)]],
        };
        assert!(NO_ID.statements_keeping_ids().is_err());
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
