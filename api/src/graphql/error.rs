//! Translating domain errors into GraphQL errors with a stable `extensions.code`.
//!
//! Expected errors carry their code and a clear English message. Unexpected ones (`0001`)
//! are logged once here with their cause chain and reach the client as "internal error".

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
    let message = if code == ErrorCode::Unknown {
        tracing::error!(error = %err, cause = ?std::error::Error::source(&err), "unexpected error");
        "internal error".to_owned()
    } else {
        err.to_string()
    };
    with_code(code, message)
}

/// An argument rejected at the edge (`UserId::parse`, `ActivityId::parse`, …): code `0002`.
pub fn invalid_argument(err: InvalidArgument) -> async_graphql::Error {
    with_code(ErrorCode::IllegalParameter, err.0)
}

/// A GraphQL error with `extensions.code` (and the original's short `info`).
pub fn with_code(code: ErrorCode, message: impl Into<String>) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, e| {
        e.set("code", code.code());
        e.set("info", code.info());
    })
}
