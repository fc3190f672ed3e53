//! Schema and data snapshots of a MySQL database from information_schema, to compare a
//! database before and after a change (a migration, a rollback, a dump upgrade).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, bail};
use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement, Value};

/// Runs `sql` with `params` and returns every row as strings (`NULL` as `<NULL>`); every
/// selected column must be text (`CAST(… AS CHAR)`).
pub async fn query_strings(
    db: &DatabaseConnection,
    sql: &str,
    params: Vec<Value>,
    columns: usize,
) -> anyhow::Result<Vec<Vec<String>>> {
    let rows = db
        .query_all(Statement::from_sql_and_values(DbBackend::MySql, sql, params))
        .await
        .with_context(|| format!("query failed: {sql}"))?;
    rows.iter()
        .map(|row| {
            (0..columns)
                .map(|index| {
                    let value: Option<String> = row.try_get_by_index(index)?;
                    Ok(value.unwrap_or_else(|| "<NULL>".to_owned()))
                })
                .collect()
        })
        .collect()
}

/// Base tables of `database`, sorted.
pub async fn tables(server: &DatabaseConnection, database: &str) -> anyhow::Result<Vec<String>> {
    let rows = query_strings(
        server,
        "SELECT CAST(TABLE_NAME AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE' ORDER BY TABLE_NAME",
        vec![database.into()],
        1,
    )
    .await?;
    Ok(rows.into_iter().flatten().collect())
}

/// Column names of `database`.`table` in ordinal order.
pub async fn column_names(server: &DatabaseConnection, database: &str, table: &str) -> anyhow::Result<Vec<String>> {
    let rows = query_strings(
        server,
        "SELECT CAST(COLUMN_NAME AS CHAR) FROM information_schema.COLUMNS \
         WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        vec![database.into(), table.into()],
        1,
    )
    .await?;
    Ok(rows.into_iter().flatten().collect())
}

/// One column as seen in information_schema.COLUMNS.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ColumnInfo {
    /// Table name.
    pub table: String,
    /// Column name.
    pub column: String,
    /// e.g. `int(8)`, `bigint(11) unsigned`, `decimal(6,4)`.
    pub column_type: String,
    /// `YES` / `NO`.
    pub is_nullable: String,
    /// Position in the table.
    pub position: String,
    /// Default expression or `<NULL>`.
    pub default: String,
    /// e.g. `auto_increment`, `on update current_timestamp()`.
    pub extra: String,
    /// Column comment.
    pub comment: String,
    /// Collation of text columns.
    pub collation: String,
}

/// Every column of `database`.
pub async fn columns(server: &DatabaseConnection, database: &str) -> anyhow::Result<BTreeSet<ColumnInfo>> {
    let rows = query_strings(
        server,
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR), \
         CAST(IS_NULLABLE AS CHAR), CAST(ORDINAL_POSITION AS CHAR), CAST(COLUMN_DEFAULT AS CHAR), \
         CAST(EXTRA AS CHAR), CAST(COLUMN_COMMENT AS CHAR), CAST(COLLATION_NAME AS CHAR) \
         FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ?",
        vec![database.into()],
        9,
    )
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let mut row = row.into_iter();
            let mut next = || row.next().unwrap_or_default();
            ColumnInfo {
                table: next(),
                column: next(),
                column_type: next(),
                is_nullable: next(),
                position: next(),
                default: next(),
                extra: next(),
                comment: next(),
                collation: next(),
            }
        })
        .collect())
}

/// Indexes (table, index, non_unique, seq, column) and table options (table, engine, collation,
/// comment) of `database`.
pub async fn keys_and_options(
    server: &DatabaseConnection,
    database: &str,
) -> anyhow::Result<(BTreeSet<Vec<String>>, BTreeSet<Vec<String>>)> {
    let indexes = query_strings(
        server,
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(INDEX_NAME AS CHAR), CAST(NON_UNIQUE AS CHAR), \
         CAST(SEQ_IN_INDEX AS CHAR), CAST(COLUMN_NAME AS CHAR) \
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ?",
        vec![database.into()],
        5,
    )
    .await?;
    let options = query_strings(
        server,
        "SELECT CAST(TABLE_NAME AS CHAR), CAST(ENGINE AS CHAR), CAST(TABLE_COLLATION AS CHAR), \
         CAST(TABLE_COMMENT AS CHAR) FROM information_schema.TABLES \
         WHERE TABLE_SCHEMA = ? AND TABLE_TYPE = 'BASE TABLE'",
        vec![database.into()],
        4,
    )
    .await?;
    Ok((indexes.into_iter().collect(), options.into_iter().collect()))
}

/// `SELECT COUNT(*)` of every base table of `database`.
pub async fn row_counts(server: &DatabaseConnection, database: &str) -> anyhow::Result<BTreeMap<String, i64>> {
    let mut counts = BTreeMap::new();
    for table in tables(server, database).await? {
        let sql = format!("SELECT CAST(COUNT(*) AS CHAR) FROM `{database}`.`{table}`");
        let rows = query_strings(server, &sql, Vec::new(), 1).await?;
        let count = rows
            .first()
            .and_then(|row| row.first())
            .context("COUNT(*) returned no row")?
            .parse()?;
        counts.insert(table, count);
    }
    Ok(counts)
}

/// Every row of `database`.`table` rendered as one string (columns joined by `|`), restricted to
/// the columns not in `skip`; sorted, so tables can be compared regardless of ids.
pub async fn table_rows(
    server: &DatabaseConnection,
    database: &str,
    table: &str,
    skip: &[&str],
) -> anyhow::Result<Vec<String>> {
    let columns = column_names(server, database, table).await?;
    let parts: Vec<String> = columns
        .iter()
        .filter(|column| !skip.contains(&column.as_str()))
        .map(|column| format!("COALESCE(CAST(`{column}` AS CHAR), '<NULL>')"))
        .collect();
    if parts.is_empty() {
        bail!("{database}.{table} has no columns to compare");
    }
    let sql = format!(
        "SELECT CONCAT_WS('|', {}) FROM `{database}`.`{table}`",
        parts.join(", ")
    );
    let mut rows: Vec<String> = query_strings(server, &sql, Vec::new(), 1)
        .await?
        .into_iter()
        .flatten()
        .collect();
    rows.sort();
    Ok(rows)
}

/// Every row of every table of `database` except the migration bookkeeping, all columns.
pub async fn data_snapshot(
    server: &DatabaseConnection,
    database: &str,
) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    data_snapshot_without(server, database, &[]).await
}

/// Like [`data_snapshot`], but without the columns `skip` (`(table, column)` pairs), e.g. the
/// columns a later migration added, so rows can be compared with a snapshot taken before it.
pub async fn data_snapshot_without(
    server: &DatabaseConnection,
    database: &str,
    skip: &[(&str, &str)],
) -> anyhow::Result<BTreeMap<String, Vec<String>>> {
    let mut snapshot = BTreeMap::new();
    for table in tables(server, database).await? {
        if table == "seaql_migrations" {
            continue;
        }
        let skipped: Vec<&str> = skip
            .iter()
            .filter(|(skip_table, _)| *skip_table == table)
            .map(|&(_, column)| column)
            .collect();
        let rows = table_rows(server, database, &table, &skipped).await?;
        snapshot.insert(table, rows);
    }
    Ok(snapshot)
}

/// One index of a table: whether it is unique, and its columns in key order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    /// `NON_UNIQUE = 0`.
    pub unique: bool,
    /// Columns in `SEQ_IN_INDEX` order.
    pub columns: Vec<String>,
}

/// Indexes of `database`.`table` by name (`PRIMARY` included).
pub async fn table_indexes(
    server: &DatabaseConnection,
    database: &str,
    table: &str,
) -> anyhow::Result<BTreeMap<String, IndexInfo>> {
    let rows = query_strings(
        server,
        "SELECT CAST(INDEX_NAME AS CHAR), CAST(NON_UNIQUE AS CHAR), CAST(COLUMN_NAME AS CHAR) \
         FROM information_schema.STATISTICS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? \
         ORDER BY INDEX_NAME, SEQ_IN_INDEX",
        vec![database.into(), table.into()],
        3,
    )
    .await?;
    let mut indexes: BTreeMap<String, IndexInfo> = BTreeMap::new();
    for row in rows {
        let [name, non_unique, column] =
            <[String; 3]>::try_from(row).map_err(|row| anyhow::anyhow!("unexpected STATISTICS row {row:?}"))?;
        let index = indexes.entry(name).or_insert_with(|| IndexInfo {
            unique: non_unique == "0",
            columns: Vec::new(),
        });
        index.columns.push(column);
    }
    Ok(indexes)
}

/// Versions recorded in `database`.`seaql_migrations`, in order.
pub async fn applied_migrations(server: &DatabaseConnection, database: &str) -> anyhow::Result<Vec<String>> {
    let sql = format!("SELECT CAST(version AS CHAR) FROM `{database}`.`seaql_migrations` ORDER BY version");
    Ok(query_strings(server, &sql, Vec::new(), 1)
        .await?
        .into_iter()
        .flatten()
        .collect())
}

/// The schema of one database: every column, every index entry and the table options, as
/// compared across a migration round trip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaSnapshot {
    /// Every column ([`columns`]).
    pub columns: BTreeSet<ColumnInfo>,
    /// Every index entry: (table, index, non_unique, seq, column) ([`keys_and_options`]).
    pub keys: BTreeSet<Vec<String>>,
    /// Every base table's (table, engine, collation, comment) ([`keys_and_options`]).
    pub options: BTreeSet<Vec<String>>,
}

impl SchemaSnapshot {
    /// Takes the snapshot of `database`.
    pub async fn take(server: &DatabaseConnection, database: &str) -> anyhow::Result<Self> {
        let (keys, options) = keys_and_options(server, database).await?;
        Ok(Self {
            columns: columns(server, database).await?,
            keys,
            options,
        })
    }

    /// The columns without those listed as `(table, column)`.
    pub fn columns_without(&self, skip: &[(&str, &str)]) -> BTreeSet<ColumnInfo> {
        self.columns
            .iter()
            .filter(|c| !skip.contains(&(c.table.as_str(), c.column.as_str())))
            .cloned()
            .collect()
    }

    /// The index entries without those of the index named `index` (in any table).
    pub fn keys_without_index(&self, index: &str) -> BTreeSet<Vec<String>> {
        self.keys
            .iter()
            .filter(|k| k.get(1).map(String::as_str) != Some(index))
            .cloned()
            .collect()
    }
}

/// Schema and data of one database ([`SchemaSnapshot`] and [`data_snapshot`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatabaseSnapshot {
    /// The schema.
    pub schema: SchemaSnapshot,
    /// Every row of every table except the migration bookkeeping.
    pub rows: BTreeMap<String, Vec<String>>,
}

impl DatabaseSnapshot {
    /// Takes the snapshot of `database`.
    pub async fn take(server: &DatabaseConnection, database: &str) -> anyhow::Result<Self> {
        Ok(Self {
            schema: SchemaSnapshot::take(server, database).await?,
            rows: data_snapshot(server, database).await?,
        })
    }
}
