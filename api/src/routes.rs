//! Plain HTTP routes: GraphiQL, health and readiness.

use std::sync::Arc;

use async_graphql::http::GraphiQLSource;
use poem::http::StatusCode;
use poem::web::{Data, Html, Json};
use poem::{IntoResponse, handler};
use serde_json::json;

use crate::state::AppState;

/// GraphiQL, pointed at `/graphql`.
#[handler]
pub async fn graphiql() -> impl IntoResponse {
    Html(
        GraphiQLSource::build()
            .endpoint("/graphql")
            .title("big-market")
            .finish(),
    )
}

/// Liveness: the process answers.
#[handler]
pub async fn health() -> impl IntoResponse {
    Json(json!({ "status": "ok" }))
}

/// Readiness: MySQL (config + every shard) and Redis answer.
#[handler]
pub async fn ready(state: Data<&Arc<AppState>>) -> impl IntoResponse {
    let mut checks = serde_json::Map::new();
    let mut ok = true;
    let config = state.db.config.ping().await.is_ok();
    ok &= config;
    checks.insert("mysql_config".into(), json!(config));
    for (i, shard) in state.db.shards.iter().enumerate() {
        let up = shard.ping().await.is_ok();
        ok &= up;
        checks.insert(format!("mysql_shard_{:02}", i + 1), json!(up));
    }
    let mut conn = state.redis.clone();
    let redis_up = redis::cmd("PING").query_async::<String>(&mut conn).await.is_ok();
    ok &= redis_up;
    checks.insert("redis".into(), json!(redis_up));
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "status": if ok { "ready" } else { "unavailable" }, "checks": checks })),
    )
}

/// `GET /graphql/ws`: GraphQL subscriptions over WebSocket (`graphql-transport-ws`, and the
/// legacy `graphql-ws`), with an optional idle timeout.
pub struct GraphQLWs {
    /// The schema.
    pub schema: crate::graphql::AppSchema,
    /// Close connections idle for this long (`None`: never).
    pub idle_timeout: Option<std::time::Duration>,
}

impl poem::Endpoint for GraphQLWs {
    type Output = poem::Response;

    async fn call(&self, req: poem::Request) -> poem::Result<Self::Output> {
        use async_graphql::http::ALL_WEBSOCKET_PROTOCOLS;
        use async_graphql_poem::{GraphQLProtocol, GraphQLWebSocket};
        use poem::FromRequest;
        use poem::web::websocket::WebSocket;

        let (req, mut body) = req.split();
        let websocket = WebSocket::from_request(&req, &mut body).await?;
        let protocol = GraphQLProtocol::from_request(&req, &mut body).await?;
        let schema = self.schema.clone();
        let idle_timeout = self.idle_timeout;
        Ok(websocket
            .protocols(ALL_WEBSOCKET_PROTOCOLS)
            .on_upgrade(move |stream| {
                GraphQLWebSocket::new(stream, schema, protocol)
                    .keepalive_timeout(idle_timeout)
                    .serve()
            })
            .into_response())
    }
}
