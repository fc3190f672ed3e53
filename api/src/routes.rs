//! Plain HTTP routes: health, readiness and the GraphQL WebSocket (GraphiQL: [`crate::graphiql`]).

use std::sync::Arc;

use poem::http::StatusCode;
use poem::web::{Data, Json};
use poem::{IntoResponse, handler};
use serde_json::json;

use crate::state::AppState;

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
///
/// Identity: the `connection_init` payload's `Authorization` (key case-insensitive, value
/// `Bearer <token>`), else the upgrade request's `Authorization` header, else anonymous. A token
/// that does not verify closes the connection with 4403 (graphql-transport-ws) or answers
/// `connection_error` (legacy protocol).
pub struct GraphQLWs {
    /// Token verification.
    pub auth: Arc<crate::auth::Authenticator>,
    /// Open subscriptions per connection.
    pub max_subscriptions_per_connection: usize,
    /// The schema.
    pub schema: crate::graphql::AppSchema,
    /// Close connections whose client is silent for this long (`None`: never).
    pub idle_timeout: Option<std::time::Duration>,
    /// Server keep-alive period.
    pub ping_every: std::time::Duration,
    /// graphql-transport-ws: close with 4408 when `connection_init` has not arrived by then.
    pub init_timeout: std::time::Duration,
    /// Origins allowed to open the socket (empty: any).
    pub allowed_origins: Vec<String>,
}

impl poem::Endpoint for GraphQLWs {
    type Output = poem::Response;

    async fn call(&self, req: poem::Request) -> poem::Result<Self::Output> {
        use async_graphql::http::{ALL_WEBSOCKET_PROTOCOLS, WebSocketProtocols};
        use async_graphql_poem::{GraphQLProtocol, GraphQLWebSocket};
        use futures::{SinkExt, StreamExt};
        use poem::FromRequest;
        use poem::web::websocket::{Message, WebSocket};

        if !self.allowed_origins.is_empty()
            && let Some(origin) = req.headers().get(poem::http::header::ORIGIN)
            && !self.allowed_origins.iter().any(|o| o.as_bytes() == origin.as_bytes())
        {
            return Ok(crate::http::refuse(
                poem::http::StatusCode::FORBIDDEN,
                crate::graphql::error::EdgeCode::Forbidden,
                "this origin may not open the GraphQL socket (http.cors_allow_origins)",
            ));
        }
        let upgrade_identity = match crate::http::identify(&self.auth, &req) {
            Ok(i) => i,
            Err(e) => return Ok(crate::http::unauthorized(e)),
        };
        let (req, mut body) = req.split();
        let websocket = WebSocket::from_request(&req, &mut body).await?;
        let auth = self.auth.clone();
        let slots = crate::graphql::subscription::ConnectionSlots::new(self.max_subscriptions_per_connection);
        let refused = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let refused_in_init = refused.clone();
        let on_init = move |payload: serde_json::Value| async move {
            let token = payload.as_object().and_then(|o| {
                o.iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                    .map(|(_, v)| v.as_str().unwrap_or_default().to_owned())
            });
            let identity = match token {
                None => upgrade_identity,
                Some(value) => match auth.authorization(Some(&value)) {
                    Ok(i) => i,
                    Err(e) => {
                        refused_in_init.store(true, std::sync::atomic::Ordering::Release);
                        return Err(async_graphql::Error::new(format!("Forbidden: {e}")));
                    }
                },
            };
            let mut data = async_graphql::Data::default();
            data.insert(identity);
            data.insert(slots);
            Ok(data)
        };
        let protocol = GraphQLProtocol::from_request(&req, &mut body).await?;
        let schema = self.schema.clone();
        let (idle_timeout, ping_every, init_timeout) = (self.idle_timeout, self.ping_every, self.init_timeout);
        // The protocol rules of `crate::ws_guard` apply to graphql-transport-ws only.
        let checked = protocol.0 == WebSocketProtocols::GraphQLWS;
        let ping = match protocol.0 {
            WebSocketProtocols::GraphQLWS => r#"{"type":"ping"}"#,
            WebSocketProtocols::SubscriptionsTransportWS => r#"{"type":"ka"}"#,
        };
        Ok(websocket
            .protocols(ALL_WEBSOCKET_PROTOCOLS)
            .on_upgrade(move |socket| async move {
                use poem::web::websocket::CloseCode;
                let (mut out, incoming) = socket.split();
                let (tx, mut rx) = futures::channel::mpsc::channel::<Message>(64);
                let guard = Arc::new(std::sync::Mutex::new(crate::ws_guard::WsGuard::default()));
                let initialised = |g: &std::sync::Mutex<crate::ws_guard::WsGuard>| {
                    g.lock().unwrap_or_else(std::sync::PoisonError::into_inner).init_received()
                };
                let (inbound, outbound) = (guard.clone(), guard.clone());
                let mut closer = tx.clone();
                // A violation drops its message, queues the close and ends the client's stream.
                let incoming = incoming.take_while(move |item| {
                    let verdict = match item {
                        Ok(Message::Text(text)) if checked => inbound
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .inbound(text),
                        _ => crate::ws_guard::Verdict::Pass,
                    };
                    futures::future::ready(match verdict {
                        crate::ws_guard::Verdict::Pass => true,
                        crate::ws_guard::Verdict::Close(code, reason) => {
                            let _ = closer.try_send(Message::Close(Some((CloseCode::from(code), reason))));
                            false
                        }
                    })
                });
                let forward = async move {
                    let mut tick = tokio::time::interval(ping_every);
                    tick.tick().await;
                    let init_deadline = tokio::time::sleep(init_timeout);
                    tokio::pin!(init_deadline);
                    let mut init_watch = checked;
                    loop {
                        let next = tokio::select! {
                            m = rx.next() => m,
                            _ = tick.tick() => Some(Message::Text(ping.to_owned())),
                            _ = &mut init_deadline, if init_watch => {
                                init_watch = false;
                                if initialised(&guard) {
                                    continue;
                                }
                                Some(Message::Close(Some((CloseCode::from(4408), "Connection initialisation timeout".to_owned()))))
                            }
                        };
                        let Some(mut m) = next else { break };
                        match &m {
                            Message::Text(text) if checked => outbound
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner)
                                .outbound(text),
                            // graphql-transport-ws: a refused token is 4403, not async-graphql's 1002.
                            Message::Close(Some((_, reason))) if refused.load(std::sync::atomic::Ordering::Acquire) => {
                                m = Message::Close(Some((CloseCode::from(4403), reason.clone())));
                            }
                            _ => {}
                        }
                        let closing = matches!(m, Message::Close(_));
                        if out.send(m).await.is_err() || closing {
                            break;
                        }
                    }
                    let _ = out.close().await;
                };
                let serve = GraphQLWebSocket::new_with_pair(tx, incoming, schema, protocol)
                    .on_connection_init(on_init)
                    .keepalive_timeout(idle_timeout)
                    .serve();
                // When the protocol ends (a close it decided on, or the client's), the messages it
                // queued — its close frame above all — still go out before the socket closes.
                tokio::pin!(forward);
                tokio::select! {
                    _ = serve => {
                        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), &mut forward).await;
                    }
                    _ = &mut forward => {}
                }
            })
            .into_response())
    }
}
