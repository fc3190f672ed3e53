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
    let redis_up = persistence::redis::ping(&state.redis).await;
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
/// legacy `graphql-ws`), with server keep-alive pings and an optional idle timeout.
///
/// async-graphql owns the protocol; its outgoing messages go through a channel that a
/// forwarding task merges with a periodic keep-alive (`{"type":"ping"}` on
/// graphql-transport-ws, `{"type":"ka"}` on the legacy protocol), so idle proxies and clients
/// see traffic and dead peers are noticed when a write fails.
pub struct GraphQLWs {
    /// The schema.
    pub schema: crate::graphql::AppSchema,
    /// Close connections whose client is silent for this long (`None`: never).
    pub idle_timeout: Option<std::time::Duration>,
    /// Server keep-alive period.
    pub ping_every: std::time::Duration,
}

impl poem::Endpoint for GraphQLWs {
    type Output = poem::Response;

    async fn call(&self, req: poem::Request) -> poem::Result<Self::Output> {
        use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols};
        use async_graphql_poem::{GraphQLProtocol, GraphQLWebSocket};
        use futures::{SinkExt, StreamExt};
        use poem::FromRequest;
        use poem::web::websocket::{Message, WebSocket};

        let (req, mut body) = req.split();
        let websocket = WebSocket::from_request(&req, &mut body).await?;
        let protocol = GraphQLProtocol::from_request(&req, &mut body).await?;
        let schema = self.schema.clone();
        let (idle_timeout, ping_every) = (self.idle_timeout, self.ping_every);
        let ping = match protocol.0 {
            WebSocketProtocols::GraphQLWS => r#"{"type":"ping"}"#,
            WebSocketProtocols::SubscriptionsTransportWS => r#"{"type":"ka"}"#,
        };
        Ok(websocket
            .protocols(ALL_WEBSOCKET_PROTOCOLS)
            .on_upgrade(move |socket| async move {
                let (mut out, incoming) = socket.split();
                let (tx, mut rx) = futures::channel::mpsc::channel::<Message>(64);
                let forward = async move {
                    let mut tick = tokio::time::interval(ping_every);
                    tick.tick().await;
                    loop {
                        let next = tokio::select! {
                            m = rx.next() => m,
                            _ = tick.tick() => Some(Message::Text(ping.to_owned())),
                        };
                        let Some(m) = next else { break };
                        if out.send(m).await.is_err() {
                            break;
                        }
                    }
                    let _ = out.close().await;
                };
                let serve = GraphQLWebSocket::new_with_pair(tx, incoming, schema, protocol)
                    .keepalive_timeout(idle_timeout)
                    .serve();
                tokio::select! {
                    _ = serve => {}
                    _ = forward => {}
                }
            })
            .into_response())
    }
}
