//! Metrics and trace context of the operations run over `/graphql/ws` (docs/OPERATIONS.md
//! §12–13).
//!
//! Over HTTP the endpoint (`crate::http`) counts each operation and runs it in its trace. Over a
//! WebSocket the schema runs each `subscribe` message as a stream, so this extension does the
//! same from inside the stream: the operation is counted once in `bm_graphql_requests_total`
//! (with the same bounded labels), the errors of each response or event by code, the latency
//! of a query or mutation; and the whole stream runs in a trace of its own
//! ([`crate::telemetry::RequestTrace`], a new trace: a WebSocket message carries no
//! `traceparent`), so a mutation sent over the socket stores its context with its outbox rows
//! and its log lines name the operation.

use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Instant;

use async_graphql::extensions::{
    Extension, ExtensionContext, ExtensionFactory, NextExecute, NextParseQuery, NextPrepareRequest, NextSubscribe,
};
use async_graphql::parser::types::ExecutableDocument;
use async_graphql::{Request, Response, ServerResult, Variables};
use futures::StreamExt as _;
use futures::stream::BoxStream;
use opentelemetry::context::FutureExt as _;

use crate::metrics::{Metrics, Operation};
use crate::telemetry::RequestTrace;

/// The extension (schema of `/graphql/ws` only: `/graphql` over HTTP counts and traces in its
/// endpoint).
pub struct OverWebSocket {
    metrics: Arc<Metrics>,
}

impl OverWebSocket {
    /// Counts in `metrics`.
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self { metrics }
    }
}

impl ExtensionFactory for OverWebSocket {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(Observed {
            metrics: self.metrics.clone(),
            state: Arc::new(State::default()),
        })
    }
}

/// One operation's observation (one `subscribe` message).
struct Observed {
    metrics: Arc<Metrics>,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    /// The `operationName` it asked for.
    requested: Mutex<Option<String>>,
    /// Its label, once known (or `(unknown)` when it failed before its document parsed).
    operation: OnceLock<Operation>,
}

impl State {
    /// The operation's label, counting it as started the first time.
    fn operation(&self, metrics: &Metrics, chosen: impl FnOnce() -> Operation) -> &Operation {
        let mut started = false;
        let op = self.operation.get_or_init(|| {
            started = true;
            chosen()
        });
        if started {
            metrics.graphql.started(op);
        }
        op
    }
}

#[async_trait::async_trait]
impl Extension for Observed {
    fn subscribe<'s>(
        &self,
        ctx: &ExtensionContext<'_>,
        stream: BoxStream<'s, Response>,
        next: NextSubscribe<'_>,
    ) -> BoxStream<'s, Response> {
        let (metrics, state) = (self.metrics.clone(), self.state.clone());
        let trace = RequestTrace::start(&poem::http::HeaderMap::new());
        let cx = trace.context();
        next.run(ctx, stream)
            .map(move |resp| {
                // The trace lives (and a recorded span stays open) as long as the stream.
                let _ = &trace;
                let op = state.operation(&metrics, || metrics.graphql.operation(None, None));
                metrics.graphql.count_errors(op, &resp);
                resp
            })
            .with_context(cx)
            .boxed()
    }

    async fn prepare_request(
        &self,
        ctx: &ExtensionContext<'_>,
        request: Request,
        next: NextPrepareRequest<'_>,
    ) -> ServerResult<Request> {
        *self.state.requested.lock().unwrap_or_else(PoisonError::into_inner) = request.operation_name.clone();
        next.run(ctx, request).await
    }

    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await;
        let requested = self
            .state
            .requested
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Ok(doc) = &doc {
            crate::telemetry::record_operation(&crate::telemetry::operation_label(requested.as_deref(), doc));
        }
        self.state.operation(&self.metrics, || {
            self.metrics.graphql.operation(requested.as_deref(), doc.as_ref().ok())
        });
        doc
    }

    async fn execute(
        &self,
        ctx: &ExtensionContext<'_>,
        operation_name: Option<&str>,
        next: NextExecute<'_>,
    ) -> Response {
        // Queries and mutations only: a subscription's events are not one answer.
        let started = Instant::now();
        let resp = next.run(ctx, operation_name).await;
        if let Some(op) = self.state.operation.get() {
            self.metrics.graphql.took(op, started.elapsed());
        }
        resp
    }
}
