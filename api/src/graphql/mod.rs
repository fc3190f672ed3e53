//! The GraphQL schema: queries, mutations, error translation.
//!
//! Operation names are a contract: clients generate code from `api/schema.graphql`, which a
//! test keeps identical to [`sdl`].

pub mod access;
pub mod account;
pub mod activity;
pub mod audit;
pub mod catalog;
pub mod codes;
pub mod credit;
pub mod documents;
pub mod error;
pub mod limits;
pub mod node;
pub mod observe;
pub mod page;
pub mod persisted;
pub mod projected;
pub mod scalars;
pub mod stage;
pub mod stock;
pub mod strategy;
pub mod subscription;
pub mod switches;
pub mod tasks;

use std::sync::Arc;

use async_graphql::{MergedObject, Schema};

use crate::settings::HttpSettings;
use crate::state::AppState;

/// All queries.
#[derive(MergedObject, Default)]
#[graphql(name = "Query")]
pub struct QueryRoot(
    strategy::StrategyQuery,
    account::AccountQuery,
    catalog::CatalogQuery,
    tasks::TaskQuery,
    audit::AuditQuery,
    switches::SwitchQuery,
    credit::CreditQuery,
    stage::StageQuery,
    page::PageQuery,
    persisted::TrustedDocumentQuery,
    node::NodeQuery,
);

/// All mutations.
#[derive(MergedObject, Default)]
#[graphql(name = "Mutation")]
pub struct MutationRoot(
    strategy::StrategyMutation,
    activity::ActivityMutation,
    account::AccountMutation,
    tasks::TaskMutation,
    stock::StockMutation,
    switches::SwitchMutation,
    credit::CreditMutation,
    stage::StageMutation,
    persisted::TrustedDocumentMutation,
);

/// The executable schema.
pub type AppSchema = Schema<QueryRoot, MutationRoot, subscription::SubscriptionRoot>;

/// Builds the schema with the limits of `http`; `state` is `None` only for SDL export. This is
/// the schema of the WebSocket endpoint (and the SDL): its extensions parse, check and code
/// every operation ([`codes::ErrorCodes`], [`limits::OperationLimits`]) and, with
/// `http.trusted_documents = "enforce"`, refuse documents that are not trusted
/// ([`persisted::TrustedOnly`]); with the application state, they count and trace each
/// operation ([`observe::OverWebSocket`]).
pub fn build(state: Option<Arc<AppState>>, http: &HttpSettings) -> AppSchema {
    let trusted_only = state
        .as_ref()
        .filter(|s| s.persisted.mode() == crate::settings::TrustedDocuments::Enforce)
        .map(|s| persisted::TrustedOnly(s.persisted.clone()));
    let observed = state.as_ref().map(|s| observe::OverWebSocket::new(s.metrics.clone()));
    let mut b = builder(state, http)
        .extension(codes::ErrorCodes)
        .extension(operation_limits(http));
    if let Some(t) = trusted_only {
        b = b.extension(t);
    }
    if let Some(o) = observed {
        b = b.extension(o);
    }
    b.finish()
}

/// The schema of `POST /graphql`: the same, without extensions — the HTTP endpoint parses each
/// distinct text once, checks its limits ([`documents::DocumentCache`]) and codes its errors
/// itself, so no field of a response goes through an extension chain.
pub fn build_http(state: Option<Arc<AppState>>, http: &HttpSettings) -> AppSchema {
    builder(state, http).finish()
}

/// [`build_http`] in async-graphql's fast validation mode: only the depth and complexity limits
/// and fragment cycles are checked. For documents that passed strict validation before.
pub fn build_http_fast(state: Option<Arc<AppState>>, http: &HttpSettings) -> AppSchema {
    builder(state, http)
        .validation_mode(async_graphql::ValidationMode::Fast)
        .finish()
}

/// The limits of one operation from `http`.
pub fn operation_limits(http: &HttpSettings) -> limits::OperationLimits {
    limits::OperationLimits {
        max_root_fields: http.max_root_fields.max(1),
        max_fields: http.max_fields.max(1),
        max_spending_fields: http.max_spending_fields,
    }
}

fn builder(
    state: Option<Arc<AppState>>,
    http: &HttpSettings,
) -> async_graphql::SchemaBuilder<QueryRoot, MutationRoot, subscription::SubscriptionRoot> {
    let mut b = Schema::build(
        QueryRoot::default(),
        MutationRoot::default(),
        subscription::SubscriptionRoot,
    )
    .limit_depth(http.max_depth)
    .limit_complexity(http.max_complexity)
    .limit_recursive_depth(32)
    .limit_directives(16);
    if !http.introspection {
        b = b.disable_introspection();
    }
    if let Some(state) = state {
        b = b.data(state);
    }
    b
}

/// The schema in SDL, as committed at `api/schema.graphql` (with `@specifiedBy` on the
/// scalars that have a specification).
pub fn sdl() -> String {
    build(None, &HttpSettings::default())
        .sdl_with_options(async_graphql::SDLExportOptions::new().include_specified_by())
}
