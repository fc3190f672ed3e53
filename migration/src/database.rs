//! Creating and dropping whole databases named by a connection URL.
//!
//! A URL `mysql://user:pass@host:port/dbname?options` is split into the server URL (same
//! credentials and options, no database) and the database name; the server URL is used to run
//! `CREATE DATABASE` / `DROP DATABASE`, which cannot be run from inside the database itself.

use sea_orm_migration::DbErr;
use sea_orm_migration::sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

/// Creates the database named in `url` (`mysql://user:pass@host:port/dbname`) if it does not
/// exist (utf8mb4). Connects to the server without a database to do it.
///
/// An existing database is left as it is (its character set is not changed).
pub async fn ensure_database(url: &str) -> Result<(), DbErr> {
    let target = DatabaseUrl::parse(url)?;
    let server = crate::connect(&target.server_url).await?;
    let result = create_if_missing(&server, &target.database).await;
    let closed = server.close().await;
    result?;
    closed
}

/// Checks first, so that an account allowed to use the database but not to create databases
/// can still run the migrations.
async fn create_if_missing(server: &DatabaseConnection, database: &str) -> Result<(), DbErr> {
    let exists = server
        .query_one(Statement::from_sql_and_values(
            DbBackend::MySql,
            "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = ?",
            [database.into()],
        ))
        .await?
        .is_some();
    if exists {
        tracing::debug!(database, "database exists");
        return Ok(());
    }
    let sql = format!(
        "CREATE DATABASE IF NOT EXISTS {} DEFAULT CHARACTER SET utf8mb4",
        quote_identifier(database)
    );
    server.execute_unprepared(&sql).await?;
    tracing::info!(database, "database created");
    Ok(())
}

/// Drops the database named in `url` if it exists (used by tests).
pub async fn drop_database(url: &str) -> Result<(), DbErr> {
    let target = DatabaseUrl::parse(url)?;
    let sql = format!("DROP DATABASE IF EXISTS {}", quote_identifier(&target.database));
    let server = crate::connect(&target.server_url).await?;
    let result = server.execute_unprepared(&sql).await;
    let closed = server.close().await;
    result?;
    closed?;
    tracing::debug!(database = %target.database, "database dropped");
    Ok(())
}

/// The database name of `url`, for logging and error messages.
pub(crate) fn database_name(url: &str) -> Result<String, DbErr> {
    DatabaseUrl::parse(url).map(|parsed| parsed.database)
}

/// A database URL split into the server part and the database name.
#[derive(Debug, PartialEq, Eq)]
struct DatabaseUrl {
    /// `scheme://authority` plus the original `?query`, without any path.
    server_url: String,
    /// Percent-decoded database name (the first path segment).
    database: String,
}

impl DatabaseUrl {
    fn parse(url: &str) -> Result<Self, DbErr> {
        let invalid = |why: &str| DbErr::Custom(format!("invalid database URL ({why})"));
        let scheme_end = url
            .find("://")
            .ok_or_else(|| invalid("expected scheme://host/database"))?;
        let (scheme, rest) = (&url[..scheme_end], &url[scheme_end + 3..]);
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let authority = &rest[..authority_end];
        let after_authority = &rest[authority_end..];
        let path = after_authority
            .strip_prefix('/')
            .ok_or_else(|| invalid("no database name in the path"))?;
        let name_end = path.find(['?', '#']).unwrap_or(path.len());
        let (raw_name, suffix) = (&path[..name_end], &path[name_end..]);
        if raw_name.contains('/') {
            return Err(invalid("the path must be a single database name"));
        }
        let database = percent_decode(raw_name).ok_or_else(|| invalid("bad percent-encoding"))?;
        if database.is_empty() {
            return Err(invalid("no database name in the path"));
        }
        Ok(Self {
            server_url: format!("{scheme}://{authority}{suffix}"),
            database,
        })
    }
}

/// Decodes `%XX` escapes; `None` on a malformed escape or non-UTF-8 result.
fn percent_decode(input: &str) -> Option<String> {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = input.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Quotes a MySQL identifier with backticks (doubling any backtick inside).
fn quote_identifier(name: &str) -> String {
    format!("`{}`", name.replace('`', "``"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> DatabaseUrl {
        DatabaseUrl::parse(url).unwrap()
    }

    #[test]
    fn splits_server_and_database() {
        assert_eq!(
            parse("mysql://root:secret@127.0.0.1:3306/big_market_01"),
            DatabaseUrl {
                server_url: "mysql://root:secret@127.0.0.1:3306".into(),
                database: "big_market_01".into(),
            }
        );
    }

    #[test]
    fn keeps_query_options_and_decodes_name() {
        assert_eq!(
            parse("mysql://u@db.example:3307/big%2Dmarket?ssl-mode=required"),
            DatabaseUrl {
                server_url: "mysql://u@db.example:3307?ssl-mode=required".into(),
                database: "big-market".into(),
            }
        );
    }

    #[test]
    fn rejects_urls_without_database() {
        for url in [
            "mysql://root@127.0.0.1:3306",
            "mysql://root@127.0.0.1:3306/",
            "mysql://root@127.0.0.1:3306/?x=1",
            "mysql://root@127.0.0.1:3306/a/b",
            "127.0.0.1/big_market",
            "mysql://h/bad%zz",
        ] {
            assert!(DatabaseUrl::parse(url).is_err(), "{url} should be rejected");
        }
    }

    #[test]
    fn quotes_identifiers() {
        assert_eq!(quote_identifier("big_market"), "`big_market`");
        assert_eq!(quote_identifier("a`b"), "`a``b`");
    }
}
