//! The audit log: every operator operation, allowed or refused, with who asked, the arguments
//! and how it ended; and `auditLog`, its newest-first, paginated view.
//!
//! Operator mutations run through [`audited`]: it checks the caller is an admin, runs the
//! operation, and appends one row (`outcome` `ok`, or the error code such as `FORBIDDEN`).
//! Anonymous calls are refused without a row, so no one can fill the table without a token.
//! A row that cannot be written is logged at `error` level; the operation's answer stands
//! (it has already happened). Each audited operation is also one `info` log line (target
//! `api::graphql::audit`: actor, role, mutation, outcome), carrying the request's trace id
//! and operation name in JSON logs.

use std::future::Future;
use std::sync::Arc;

use async_graphql::connection::{Connection, Edge, query};
use async_graphql::{Context, Object, Result, SimpleObject};
use chrono::Utc;
use domain::ErrorCode;
use persistence::mysql::audit::{AuditEntry, AuditRow};
use serde_json::Value;

use super::access::{self, identity};
use super::error::with_code;
use super::scalars::{DateTime, Page};
use crate::auth::Identity;
use crate::state::AppState;

/// The code of an error (`extensions.code`), `0001` when it has none.
fn error_code(e: &async_graphql::Error) -> String {
    match e.extensions.as_ref().and_then(|x| x.get("code")) {
        Some(async_graphql::Value::String(s)) => s.clone(),
        _ => ErrorCode::Unknown.code().to_owned(),
    }
}

/// Runs operator operation `operation` (its GraphQL field name) with `arguments`, after
/// checking the caller is an admin, and writes its audit row.
///
/// # Errors
/// `UNAUTHENTICATED` / `FORBIDDEN`, or the operation's own error.
pub async fn audited<T, F>(ctx: &Context<'_>, operation: &str, arguments: Value, run: F) -> Result<T>
where
    F: Future<Output = Result<T>>,
{
    let checked = access::admin(ctx);
    let result = match checked {
        Ok(_) => run.await,
        Err(e) => Err(e),
    };
    if let Identity::Caller { subject, role } = identity(ctx) {
        let (outcome, message) = match &result {
            Ok(_) => ("ok".to_owned(), String::new()),
            Err(e) => (error_code(e), e.message.clone()),
        };
        let entry = AuditEntry {
            actor: subject.clone(),
            role: role.as_str().to_owned(),
            operation: operation.to_owned(),
            arguments: arguments.to_string(),
            outcome,
            message,
            at: Utc::now().naive_utc(),
        };
        tracing::info!(
            actor = %entry.actor,
            role = %entry.role,
            mutation = %entry.operation,
            outcome = %entry.outcome,
            "operator operation"
        );
        match ctx.data::<Arc<AppState>>() {
            Ok(app) => {
                if let Err(e) = app.audit.append(&entry).await {
                    tracing::error!(error = %e, ?entry, "could not write the audit log");
                }
            }
            Err(e) => tracing::error!(error = ?e, ?entry, "no application state to write the audit log"),
        }
    }
    result
}

/// One audited operator operation.
#[derive(SimpleObject, Debug, Clone)]
#[graphql(name = "AuditEntry")]
pub struct AuditEntryView {
    /// Who: the token's subject.
    pub actor: String,
    /// The token's role.
    pub role: String,
    /// The GraphQL field (`armActivity`, `addAwardStock`, …).
    pub operation: String,
    /// Its arguments, as a JSON object.
    pub arguments: String,
    /// `ok`, or the error code it answered with.
    pub outcome: String,
    /// The error message (empty when `ok`).
    pub message: String,
    /// When it answered.
    pub at: DateTime,
}

impl From<AuditRow> for AuditEntryView {
    fn from(r: AuditRow) -> Self {
        Self {
            actor: r.actor,
            role: r.role,
            operation: r.operation,
            arguments: r.arguments,
            outcome: r.outcome,
            message: r.message,
            at: r.at.into(),
        }
    }
}

/// Largest page.
const MAX_PAGE: i32 = 100;

/// The audit-log query.
#[derive(Default)]
pub struct AuditQuery;

#[Object]
impl AuditQuery {
    /// Operator operations, newest first; forward pagination (`first` ≤ 100, default 20;
    /// `after` = a previous `endCursor`). Admin only.
    async fn audit_log(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Entries per page (0–100, default 20).")] first: Option<i32>,
        #[graphql(desc = "A previous page's `endCursor`.")] after: Option<String>,
    ) -> Result<Page<AuditEntryView>> {
        access::admin(ctx)?;
        let app = ctx.data::<Arc<AppState>>()?;
        let first = super::error::page_size(first, MAX_PAGE)?;
        let before = match after.as_deref() {
            None => None,
            Some(c) => Some(
                c.parse::<u64>()
                    .map_err(|_| with_code(ErrorCode::IllegalParameter, format!("invalid cursor {c:?}")))?,
            ),
        };
        query(
            None::<String>,
            None::<String>,
            Some(first),
            None,
            |_, _, first, _| async move {
                let want = first.unwrap_or(20) as u64;
                let mut rows = app.audit.page(before, want + 1).await.map_err(|e| {
                    tracing::error!(error = %e, "reading the audit log failed");
                    with_code(ErrorCode::Unknown, "internal error")
                })?;
                let has_next = rows.len() as u64 > want;
                rows.truncate(want as usize);
                let mut conn = Connection::new(before.is_some(), has_next);
                conn.edges.extend(
                    rows.into_iter()
                        .map(|r| Edge::new(r.id.to_string(), AuditEntryView::from(r))),
                );
                Ok::<_, async_graphql::Error>(conn)
            },
        )
        .await
        .map(Page)
    }
}
