//! Loading MySQL dumps (`mysqldump` output) into a throw-away database.

use std::path::Path;

use anyhow::Context;
use sea_orm::ConnectionTrait;

use crate::mysql::{connect, create_database};
use crate::services::database_url;

/// Creates database `name` on the test server and loads the dump at `path` into it, statement
/// by statement through sea-orm on one connection. The dump's own `CREATE DATABASE` / `USE`
/// statements are skipped so that it loads into `name` whatever database it was taken from.
pub async fn load_dump(name: &str, path: &Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading dump {}", path.display()))?;
    create_database(name).await?;
    let db = connect(&database_url(name)).await?;
    for statement in split_statements(&text) {
        if selects_database(&statement) {
            continue;
        }
        db.execute_unprepared(&statement)
            .await
            .with_context(|| format!("loading {}: {statement}", path.display()))?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitter_respects_quotes_and_comments() {
        let sql = "# header; not a statement\n\
                   /*!40101 SET NAMES utf8mb4 */;\n\
                   /* plain; comment */ INSERT INTO `t;x` VALUES ('a;b', 'it''s', 'c\\';d', \"e;f\");\n\
                   -- line; comment\n\
                   SELECT 1";
        assert_eq!(
            split_statements(sql),
            [
                "/*!40101 SET NAMES utf8mb4 */",
                "INSERT INTO `t;x` VALUES ('a;b', 'it''s', 'c\\';d', \"e;f\")",
                "SELECT 1",
            ]
        );
    }

    #[test]
    fn database_statements_are_recognised() {
        assert!(selects_database("USE `big_market`"));
        assert!(selects_database(
            "CREATE DATABASE /*!32312 IF NOT EXISTS*/ `big_market`"
        ));
        assert!(selects_database("create schema x"));
        assert!(!selects_database("CREATE TABLE `award` (id int)"));
    }
}
