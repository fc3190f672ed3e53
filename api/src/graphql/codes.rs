//! Codes for the errors of the GraphQL layer itself, so that every error a client sees carries
//! `extensions.code` (docs/ERRORS.md):
//!
//! * `GRAPHQL_PARSE_FAILED` — the document is not GraphQL;
//! * `BAD_USER_INPUT` — an argument or variable value of the wrong type or shape (rejected in
//!   validation, before anything runs);
//! * `QUERY_TOO_DEEP` / `QUERY_TOO_COMPLEX` — over `http.max_depth` / `http.max_complexity`;
//! * `GRAPHQL_VALIDATION_FAILED` — any other validation error (unknown field, …);
//! * `PERSISTED_QUERY_NOT_FOUND`, `PERSISTED_QUERY_HASH_MISMATCH`, `OPERATION_NOT_TRUSTED` —
//!   persisted documents and the trusted-documents mode ([`super::persisted`]).
//!
//! These are *request errors*: nothing ran. [`is_request_error`] tells the HTTP layer, which
//! answers them with 400 under `application/graphql-response+json`.

use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery, NextValidation};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{ServerError, ServerResult, ValidationResult, Variables};

/// Codes of errors raised before execution.
pub const REQUEST_ERROR_CODES: [&str; 14] = [
    "GRAPHQL_PARSE_FAILED",
    "GRAPHQL_VALIDATION_FAILED",
    "BAD_USER_INPUT",
    "QUERY_TOO_DEEP",
    "QUERY_TOO_COMPLEX",
    "TOO_MANY_ROOT_FIELDS",
    "TOO_MANY_SPENDING_FIELDS",
    "QUERY_TOO_LARGE",
    "BATCH_TOO_LARGE",
    "PAYLOAD_TOO_LARGE",
    "BAD_REQUEST",
    "PERSISTED_QUERY_NOT_FOUND",
    "PERSISTED_QUERY_HASH_MISMATCH",
    "OPERATION_NOT_TRUSTED",
];

/// Is `code` the code of an error raised before anything ran?
pub fn is_request_error(code: &str) -> bool {
    REQUEST_ERROR_CODES.contains(&code)
}

/// `e` with `extensions.code` = `code` unless it has a code already.
pub(crate) fn tag(mut e: ServerError, code: &str) -> ServerError {
    let ext = e.extensions.get_or_insert_with(Default::default);
    if ext.get("code").is_none() {
        ext.set("code", code);
    }
    e
}

/// The code of a validation error, from async-graphql's message.
pub(crate) fn validation_code(message: &str) -> &'static str {
    if message.starts_with("Invalid value for argument") || message.contains("invalid value") {
        "BAD_USER_INPUT"
    } else if message == "Query is nested too deep." || message.starts_with("The recursion depth of the query") {
        "QUERY_TOO_DEEP"
    } else if message == "Query is too complex." {
        "QUERY_TOO_COMPLEX"
    } else {
        "GRAPHQL_VALIDATION_FAILED"
    }
}

/// The extension that adds the codes.
#[derive(Debug, Clone, Copy, Default)]
pub struct ErrorCodes;

impl ExtensionFactory for ErrorCodes {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_trait::async_trait]
impl Extension for ErrorCodes {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        next.run(ctx, query, variables)
            .await
            .map_err(|e| tag(e, "GRAPHQL_PARSE_FAILED"))
    }

    async fn validation(
        &self,
        ctx: &ExtensionContext<'_>,
        next: NextValidation<'_>,
    ) -> Result<ValidationResult, Vec<ServerError>> {
        next.run(ctx).await.map_err(|errors| {
            errors
                .into_iter()
                .map(|e| {
                    let code = validation_code(&e.message);
                    tag(e, code)
                })
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::validation_code;

    #[test]
    fn validation_messages_map_to_codes() {
        assert_eq!(
            validation_code("Invalid value for argument \"strategyId\", expected type \"Int\""),
            "BAD_USER_INPUT"
        );
        assert_eq!(validation_code("Query is too complex."), "QUERY_TOO_COMPLEX");
        assert_eq!(validation_code("Query is nested too deep."), "QUERY_TOO_DEEP");
        assert_eq!(
            validation_code("Unknown field \"nope\" on type \"Query\"."),
            "GRAPHQL_VALIDATION_FAILED"
        );
    }
}
