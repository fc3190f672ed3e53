//! Translating domain errors into GraphQL errors with a stable `extensions.code`.
//!
//! Expected errors carry their code and a clear English message. Unexpected ones (`0001`)
//! are logged once here with their cause chain and reach the client as "internal error";
//! a `0001` whose outcome is unknown (a write past the database's response deadline) keeps
//! its message, which tells the client how to retry.

use async_graphql::ErrorExtensions;
use domain::ErrorCode;
use domain::error::HasErrorCode;
use domain::ids::InvalidArgument;

/// Converts any domain error into a GraphQL error.
pub fn to_gql<E>(err: E) -> async_graphql::Error
where
    E: HasErrorCode + std::error::Error,
{
    let code = err.error_code();
    let message = if !err.message_is_public() {
        tracing::error!(error = %err, cause = ?std::error::Error::source(&err), "unexpected error");
        "internal error".to_owned()
    } else {
        if code == ErrorCode::Unknown {
            // An outcome the client must learn (e.g. unknown after a database deadline).
            tracing::warn!(error = %err, "operation outcome unknown");
        }
        err.to_string()
    };
    with_code(code, message)
}

/// An argument rejected at the edge (`UserId::parse`, `ActivityId::parse`, …): code `0002`.
pub fn invalid_argument(err: InvalidArgument) -> async_graphql::Error {
    with_code(ErrorCode::IllegalParameter, err.0)
}

/// An unexpected failure, logged with its cause as `what`, answered as `0001` without details.
pub(crate) fn internal_error(what: &str, e: impl std::fmt::Display) -> async_graphql::Error {
    tracing::error!(error = %e, "{what}");
    with_code(ErrorCode::Unknown, "internal error")
}

/// A database failure of `what`: when the database could not be reached or did not answer in
/// time, the client is told so (`0001`, naming MySQL and the deadline); anything else is an
/// internal error.
pub(crate) fn database_error(what: &str, e: persistence::DbErr) -> async_graphql::Error {
    if persistence::mysql::db::unreachable(&e) {
        tracing::warn!(error = %e, "{what}: database unavailable");
        with_code(ErrorCode::Unknown, format!("mysql: {e}"))
    } else {
        internal_error(what, e)
    }
}

/// A GraphQL error with `extensions.code` (and the original's short `info`).
pub fn with_code(code: ErrorCode, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| {
        e.set("code", code.code());
        e.set("info", code.info());
    })
}

/// The `first` of a page: 20 when absent, else within `0..=max` (`0002` otherwise).
///
/// # Errors
/// `0002` for a size out of range.
pub fn page_size(first: Option<i32>, max: i32) -> Result<i32, async_graphql::Error> {
    let first = first.unwrap_or(20);
    if (0..=max).contains(&first) {
        Ok(first)
    } else {
        Err(with_code(
            ErrorCode::IllegalParameter,
            format!("first must be between 0 and {max}"),
        ))
    }
}

/// Codes of the API edge (who may call, limits on one request), beside the domain's
/// [`ErrorCode`]s; listed in `docs/ERRORS.md`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeCode {
    /// No token where one is needed, or a token that does not verify.
    Unauthenticated,
    /// A verified caller without the right (another user's data, an operator operation).
    Forbidden,
    /// Too many open subscriptions (per connection, per user or per instance).
    TooManySubscriptions,
    /// More than one spending mutation field in a request.
    TooManySpendingFields,
    /// More root fields than `http.max_root_fields`.
    TooManyRootFields,
    /// More selected fields than `http.max_fields`.
    QueryTooComplex,
    /// A `query` text longer than `http.max_query_bytes`.
    QueryTooLarge,
    /// A JSON batch larger than `http.max_batch`.
    BatchTooLarge,
    /// A body larger than `http.max_body_bytes`.
    PayloadTooLarge,
    /// A body that is not a GraphQL request in JSON.
    BadRequest,
    /// A persisted document id (`extensions.persistedQuery.sha256Hash`, `documentId`) that no
    /// instance knows.
    PersistedQueryNotFound,
    /// A `query` sent with a persisted-query hash that is not the SHA-256 of the text.
    PersistedQueryHashMismatch,
    /// `http.trusted_documents = "enforce"`: a document that is not trusted.
    OperationNotTrusted,
}

impl EdgeCode {
    /// The wire code.
    pub const fn code(self) -> &'static str {
        match self {
            Self::Unauthenticated => "UNAUTHENTICATED",
            Self::Forbidden => "FORBIDDEN",
            Self::TooManySubscriptions => "TOO_MANY_SUBSCRIPTIONS",
            Self::TooManySpendingFields => "TOO_MANY_SPENDING_FIELDS",
            Self::TooManyRootFields => "TOO_MANY_ROOT_FIELDS",
            Self::QueryTooComplex => "QUERY_TOO_COMPLEX",
            Self::QueryTooLarge => "QUERY_TOO_LARGE",
            Self::BatchTooLarge => "BATCH_TOO_LARGE",
            Self::PayloadTooLarge => "PAYLOAD_TOO_LARGE",
            Self::BadRequest => "BAD_REQUEST",
            Self::PersistedQueryNotFound => "PERSISTED_QUERY_NOT_FOUND",
            Self::PersistedQueryHashMismatch => "PERSISTED_QUERY_HASH_MISMATCH",
            Self::OperationNotTrusted => "OPERATION_NOT_TRUSTED",
        }
    }
}

/// A resolver error with an edge code.
pub fn edge(code: EdgeCode, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| e.set("code", code.code()))
}

/// A request-level error (before execution) with an edge code.
pub fn server_error(code: EdgeCode, message: impl Into<String>) -> async_graphql::ServerError {
    let mut e = async_graphql::ServerError::new(message, None);
    let mut ext = async_graphql::ErrorExtensionValues::default();
    ext.set("code", code.code());
    e.extensions = Some(ext);
    e
}
