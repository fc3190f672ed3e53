//! The audit log of operator operations (`audit_log` on the config database): append and
//! page newest first.

use chrono::NaiveDateTime;
use domain::ports::PortError;
use sea_orm::{ConnectionTrait, FromQueryResult, Statement};

use crate::mysql::db::Db;

use super::db::port_err;

/// One operator operation, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuditEntry {
    /// Token subject.
    pub actor: String,
    /// Token role (`admin`, …).
    pub role: String,
    /// GraphQL field name.
    pub operation: String,
    /// Arguments as JSON.
    pub arguments: String,
    /// `ok`, or the error code.
    pub outcome: String,
    /// Error message (empty when `ok`).
    pub message: String,
    /// When the operation answered (UTC).
    pub at: NaiveDateTime,
}

/// A stored entry with its id (the page cursor).
#[derive(Debug, Clone, PartialEq, Eq, FromQueryResult)]
pub struct AuditRow {
    /// Row id; newer entries have larger ids.
    pub id: u64,
    /// Token subject.
    pub actor: String,
    /// Token role.
    pub role: String,
    /// GraphQL field name.
    pub operation: String,
    /// Arguments as JSON.
    pub arguments: String,
    /// `ok`, or the error code.
    pub outcome: String,
    /// Error message (empty when `ok`).
    pub message: String,
    /// When.
    pub at: NaiveDateTime,
}

/// Longest stored message (the column's width).
const MESSAGE_CHARS: usize = 512;

/// The audit log on the config database.
#[derive(Debug, Clone)]
pub struct MySqlAuditLog {
    config: Db,
}

impl MySqlAuditLog {
    /// The log of `config`.
    pub fn new(config: Db) -> Self {
        Self { config }
    }

    /// Appends one entry.
    ///
    /// # Errors
    /// The database failed.
    pub async fn append(&self, e: &AuditEntry) -> Result<(), PortError> {
        let b = self.config.get_database_backend();
        let message: String = e.message.chars().take(MESSAGE_CHARS).collect();
        self.config
            .execute(Statement::from_sql_and_values(
                b,
                "INSERT INTO audit_log (actor, role, operation, arguments, outcome, message, at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    e.actor.clone().into(),
                    e.role.clone().into(),
                    e.operation.clone().into(),
                    e.arguments.clone().into(),
                    e.outcome.clone().into(),
                    message.into(),
                    e.at.into(),
                ],
            ))
            .await
            .map_err(port_err)?;
        Ok(())
    }

    /// Up to `limit` entries older than `before` (all when `None`), newest first.
    ///
    /// # Errors
    /// The database failed.
    pub async fn page(&self, before: Option<u64>, limit: u64) -> Result<Vec<AuditRow>, PortError> {
        let b = self.config.get_database_backend();
        let sql = "SELECT id, actor, role, operation, arguments, outcome, message, at FROM audit_log \
                   WHERE id < ? ORDER BY id DESC LIMIT ?";
        AuditRow::find_by_statement(Statement::from_sql_and_values(
            b,
            sql,
            [before.unwrap_or(u64::MAX).into(), limit.into()],
        ))
        .all(&self.config)
        .await
        .map_err(port_err)
    }
}
