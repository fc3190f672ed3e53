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

/// Readiness: MySQL (config + every shard) and Redis answer, checked concurrently, each within
/// `http.ready_timeout_ms`; a 503 names the failing dependencies in `failing`.
#[handler]
pub async fn ready(state: Data<&Arc<AppState>>) -> impl IntoResponse {
    let deadline = state.ready_timeout;
    let bounded = |name: String, check: futures::future::BoxFuture<'static, Result<(), String>>| async move {
        let outcome = match tokio::time::timeout(deadline, check).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(format!("no answer within {} ms", deadline.as_millis())),
        };
        (name, outcome)
    };
    let mut checks = Vec::new();
    let config = state.db.config.clone();
    checks.push(bounded(
        "mysql_config".into(),
        Box::pin(async move { config.ping().await.map_err(|e| e.to_string()) }),
    ));
    for (i, shard) in state.db.shards.iter().enumerate() {
        let shard = shard.clone();
        checks.push(bounded(
            format!("mysql_shard_{:02}", i + 1),
            Box::pin(async move { shard.ping().await.map_err(|e| e.to_string()) }),
        ));
    }
    let redis = state.redis.clone();
    checks.push(bounded(
        "redis".into(),
        Box::pin(async move {
            if persistence::redis::ping(&redis).await {
                Ok(())
            } else {
                Err("no PONG".to_owned())
            }
        }),
    ));
    // Every dependency is checked at once: the answer takes one deadline at most.
    let results = futures::future::join_all(checks).await;
    let ok = results.iter().all(|(_, r)| r.is_ok());
    let mut map = serde_json::Map::new();
    let mut failing = Vec::new();
    for (name, result) in results {
        if let Err(e) = &result {
            tracing::warn!(dependency = %name, error = %e, "readiness check failed");
            failing.push(name.clone());
        }
        map.insert(name, json!(result.is_ok()));
    }
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({ "status": if ok { "ready" } else { "unavailable" }, "checks": map, "failing": failing })),
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
