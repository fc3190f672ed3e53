//! Helpers of the migration integration tests: the test server, uniquely named throw-away
//! databases, loading the original dumps, and schema / data snapshots from information_schema.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use migration::sea_orm_migration::sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, Value,
};

/// Environment variable overriding the test server URL (no database in the path).
pub const SERVER_URL_ENV: &str = "BIG_MARKET_TEST_MYSQL_URL";
/// The local MariaDB of the development machines and of `docker-compose.yml`.
pub const DEFAULT_SERVER_URL: &str = "mysql://root@127.0.0.1:3306";

/// The server URL the tests use.
pub fn server_url() -> String {
    std::env::var(SERVER_URL_ENV)
        .ok()
        .filter(|url| !url.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_SERVER_URL.to_owned())
}

/// URL of database `name` on the test server (keeps any `?options` of the server URL).
pub fn database_url(name: &str) -> String {
    let server = server_url();
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base.to_owned(), format!("?{query}")),
        None => (server.clone(), String::new()),
    };
    format!("{}/{name}{query}", base.trim_end_matches('/'))
}

/// Connects with a single pooled connection, so session state (`SET SQL_MODE`, `LOCK TABLES`)
/// carries from one statement to the next.
pub async fn connect(url: &str) -> anyhow::Result<DatabaseConnection> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .max_connections(1)
        .min_connections(0)
        .connect_timeout(Duration::from_secs(5))
        .acquire_timeout(Duration::from_secs(10))
        .sqlx_logging(false);
    Ok(Database::connect(options).await?)
}

/// A set of uniquely named databases of one test, dropped by [`TestDatabases::drop_all`].
pub struct TestDatabases {
    /// Connection to the server (no database selected) for information_schema queries.
    pub server: DatabaseConnection,
    prefix: String,
    created: Vec<String>,
}

impl TestDatabases {
    /// Checks that the server is reachable (failing with a clear message otherwise) and picks a
    /// unique name prefix `bmt_<pid>_<nanos>_<tag>`.
    pub async fn new(tag: &str) -> anyhow::Result<Self> {
        let url = server_url();
        let server = match connect(&url).await {
            Ok(server) => server,
            Err(error) => bail!(
                "the migration tests need a real MariaDB/MySQL server, but {url} is not \
                 reachable ({error}). Start the local services (docker compose up -d) or set \
                 {SERVER_URL_ENV} to a server URL without database, e.g. {DEFAULT_SERVER_URL}"
            ),
        };
        server
            .execute_unprepared("SELECT 1")
            .await
            .with_context(|| format!("the test server {url} does not answer"))?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("clock before 1970")?
            .as_nanos();
        Ok(Self {
            server,
            prefix: format!("bmt_{}_{nanos}_{tag}", std::process::id()),
            created: Vec::new(),
        })
    }

    /// Name of this test's database `suffix` (e.g. `cfg`, `01`); remembered for dropping.
    pub fn name(&mut self, suffix: &str) -> String {
        let name = format!("{}_{suffix}", self.prefix);
        if !self.created.contains(&name) {
            self.created.push(name.clone());
        }
        name
    }

    /// Drops every database named through [`TestDatabases::name`].
    pub async fn drop_all(mut self) -> anyhow::Result<()> {
        let names = std::mem::take(&mut self.created);
        for name in &names {
            migration::drop_database(&database_url(name))
                .await
                .with_context(|| format!("dropping test database {name}"))?;
        }
        Ok(())
    }
}

/// Safety net for a test that panicked (a failed `assert!`) before [`TestDatabases::drop_all`]:
/// drops the remaining databases on a separate thread with its own runtime (a runtime cannot be
/// started from inside the test's runtime).
impl Drop for TestDatabases {
    fn drop(&mut self) {
        let names = std::mem::take(&mut self.created);
        if names.is_empty() {
            return;
        }
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
            runtime.block_on(async {
                for name in &names {
                    migration::drop_database(&database_url(name)).await?;
                }
                anyhow::Ok(())
            })
        });
        match cleanup.join() {
            Ok(Ok(())) => {}
            Ok(Err(error)) => eprintln!("could not drop the test databases: {error:#}"),
            Err(_) => eprintln!("could not drop the test databases: cleanup thread panicked"),
        }
    }
}

/// Runs the body's result through cleanup: the databases are dropped whether the body failed or
/// not, and the body's error wins over a cleanup error.
pub async fn finish(dbs: TestDatabases, body: anyhow::Result<()>) -> anyhow::Result<()> {
    let cleanup = dbs.drop_all().await;
    body?;
    cleanup
}

/// Path of a committed fixture dump.
pub fn fixture(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/original")
        .join(file)
}

/// Creates database `name` and loads the dump `file` into it, statement by statement through
/// sea-orm on one connection. The dump's own `CREATE DATABASE` / `USE` statements are skipped so
/// that it loads into `name` whatever database it was taken from.
pub async fn load_dump(name: &str, file: &str) -> anyhow::Result<()> {
    let path = fixture(file);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading fixture {}", path.display()))?;
    let url = database_url(name);
    migration::ensure_database(&url).await?;
    let db = connect(&url).await?;
    for statement in split_statements(&text) {
        if selects_database(&statement) {
            continue;
        }
        db.execute_unprepared(&statement)
            .await
            .with_context(|| format!("loading {file}: {statement}"))?;
    }
    db.close().await?;
    Ok(())
}

/// Whether the statement creates or selects a database (`CREATE DATABASE`, `USE`).
fn selects_database(statement: &str) -> bool {
    let lower = statement.to_ascii_lowercase();
    let mut words = lower.split_whitespace();
    matches!(
        (words.next(), words.next()),
        (Some("use"), _) | (Some("create"), Some("database" | "schema"))
    )
}

/// Splits a MySQL dump into statements. Handles quoted strings and identifiers (which may
/// contain `;`, `#` or escaped quotes), `#` and `-- ` line comments and `/* */` comments; the
/// versioned comments `/*!40101 … */` are kept, since the server executes them.
pub fn split_statements(sql: &str) -> Vec<String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut statements = Vec::new();
    let mut current = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        match c {
            '\'' | '"' | '`' => {
                current.push(c);
                i += 1;
                while i < chars.len() {
                    let d = chars[i];
                    current.push(d);
                    i += 1;
                    if d == '\\' && c != '`' {
                        if let Some(&escaped) = chars.get(i) {
                            current.push(escaped);
                            i += 1;
                        }
                    } else if d == c {
                        if chars.get(i) == Some(&c) {
                            current.push(c);
                            i += 1;
                        } else {
                            break;
                        }
                    }
                }
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '-' if next == Some('-') && chars.get(i + 2).is_none_or(|after| after.is_whitespace()) => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
            }
            '/' if next == Some('*') => {
                let versioned = chars.get(i + 2) == Some(&'!');
                let mut end = i + 2;
                while end < chars.len() && !(chars[end] == '*' && chars.get(end + 1) == Some(&'/')) {
                    end += 1;
                }
                end = (end + 2).min(chars.len());
                if versioned {
                    current.extend(&chars[i..end]);
                } else {
                    current.push(' ');
                }
                i = end;
            }
            ';' => {
                let statement = current.trim();
                if !statement.is_empty() {
                    statements.push(statement.to_owned());
                }
                current.clear();
                i += 1;
            }
            _ => {
                current.push(c);
                i += 1;
            }
        }
    }
    let statement = current.trim();
    if !statement.is_empty() {
        statements.push(statement.to_owned());
    }
    statements
}

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
