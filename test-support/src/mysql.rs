//! Throw-away databases on the test server: connecting, creating, dropping.

use std::time::Duration;

use anyhow::{Context, bail};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection};

use crate::services::{MYSQL_URL_ENV, START_MYSQL, database_url, mysql_server_url};

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

/// Connects to the test server (no database selected) and checks that it answers; the error
/// says which server is missing and how to start it.
pub async fn connect_server() -> anyhow::Result<DatabaseConnection> {
    let url = mysql_server_url();
    let server = match connect(&url).await {
        Ok(server) => server,
        Err(error) => bail!(
            "the tests need a real MariaDB/MySQL server, but {url} is not reachable ({error}). \
             Start the local one ({START_MYSQL}, or docker compose up -d) or set {MYSQL_URL_ENV} \
             to a server URL without database, e.g. mysql://root@127.0.0.1:3306"
        ),
    };
    server
        .execute_unprepared("SELECT 1")
        .await
        .with_context(|| format!("the test server {url} does not answer"))?;
    Ok(server)
}

/// Quotes a MySQL identifier with backticks (doubling any backtick inside).
fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

/// Creates database `name` on the test server if it does not exist (utf8mb4).
pub async fn create_database(name: &str) -> anyhow::Result<()> {
    let server = connect_server().await?;
    let sql = format!(
        "CREATE DATABASE IF NOT EXISTS {} DEFAULT CHARACTER SET utf8mb4",
        quote_identifier(name)
    );
    let result = server.execute_unprepared(&sql).await;
    server.close().await?;
    result.with_context(|| format!("creating test database {name}"))?;
    Ok(())
}

/// Drops database `name` on the test server if it exists.
pub async fn drop_database(name: &str) -> anyhow::Result<()> {
    let server = connect_server().await?;
    let result = drop_on(&server, name).await;
    server.close().await?;
    result
}

async fn drop_on(server: &DatabaseConnection, name: &str) -> anyhow::Result<()> {
    server
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {}", quote_identifier(name)))
        .await
        .with_context(|| format!("dropping test database {name}"))?;
    Ok(())
}

/// URLs of one set of big-market databases: the config database and the two shards.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShardedUrls {
    /// The config database (`<prefix>_cfg`).
    pub config_url: String,
    /// The shard databases (`<prefix>_01`, `<prefix>_02`).
    pub shard_urls: Vec<String>,
}

impl ShardedUrls {
    /// Every URL: the config database first, then the shards.
    pub fn all(&self) -> Vec<String> {
        std::iter::once(self.config_url.clone())
            .chain(self.shard_urls.iter().cloned())
            .collect()
    }
}

/// The uniquely named databases of one test (`<prefix>_<suffix>`, the prefix a
/// [`unique_name`](crate::unique_name)), dropped by [`TestDatabases::drop_all`], or when the test
/// panicked before that, by the [`Drop`] safety net.
///
/// The databases themselves are created by whoever uses them (the migrations, a dump load, or
/// [`create_database`]); this only hands out the names and drops them.
pub struct TestDatabases {
    /// Connection to the server (no database selected), e.g. for information_schema queries.
    pub server: DatabaseConnection,
    prefix: String,
    created: Vec<String>,
}

impl TestDatabases {
    /// Checks that the server is reachable (failing with a clear message otherwise) and picks a
    /// unique name prefix.
    pub async fn new() -> anyhow::Result<Self> {
        Ok(Self {
            server: connect_server().await?,
            prefix: crate::unique_name(),
            created: Vec::new(),
        })
    }

    /// The unique prefix of this test's database names (also usable for other resources).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Name of this test's database `suffix` (e.g. `cfg`, `01`); remembered for dropping.
    pub fn name(&mut self, suffix: &str) -> String {
        let name = format!("{}_{suffix}", self.prefix);
        if !self.created.contains(&name) {
            self.created.push(name.clone());
        }
        name
    }

    /// URL of this test's database `suffix` (see [`TestDatabases::name`]).
    pub fn url(&mut self, suffix: &str) -> String {
        database_url(&self.name(suffix))
    }

    /// URLs of a config database (`cfg`) and two shards (`01`, `02`) of this test.
    pub fn sharded(&mut self) -> ShardedUrls {
        ShardedUrls {
            config_url: self.url("cfg"),
            shard_urls: vec![self.url("01"), self.url("02")],
        }
    }

    /// Drops every database named through [`TestDatabases::name`].
    pub async fn drop_all(mut self) -> anyhow::Result<()> {
        let names = std::mem::take(&mut self.created);
        for name in &names {
            drop_on(&self.server, name).await?;
        }
        self.server.clone().close().await?;
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
                    drop_database(name).await?;
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
