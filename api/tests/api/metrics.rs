//! `/metrics`: what a scrape shows after a draw, its delivery and a refused request, and who
//! may scrape (docs/OPERATIONS.md §Metrics).

use std::time::{Duration, Instant};

use test_support::app::{SHARD_02, TestApp, spawn_app, spawn_app_with};

const BIN: &str = env!("CARGO_BIN_EXE_big-market");

/// The value of the sample of `name` whose labels include every pair of `labels`.
fn sample(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|line| {
        let (series, value) = line.rsplit_once(' ')?;
        let (metric, rest) = series.split_once('{').unwrap_or((series, "}"));
        if metric != name {
            return None;
        }
        let rest = rest.strip_suffix('}')?;
        let all = labels
            .iter()
            .all(|(k, v)| rest.split(',').any(|pair| pair == format!("{k}=\"{v}\"")));
        all.then(|| value.parse().ok()).flatten()
    })
}

async fn scrape_at(app: &TestApp, url: &str, token: Option<&str>) -> reqwest::Response {
    let mut req = app.client.get(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    req.send().await.expect("GET /metrics")
}

async fn scrape(app: &TestApp) -> String {
    let resp = scrape_at(app, &format!("{}/metrics", app.address), None).await;
    assert_eq!(resp.status(), 200);
    let content_type = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    resp.text().await.unwrap()
}

/// Scrapes until `done` accepts the text, or fails after `secs` with the last one.
async fn scrape_until(app: &TestApp, url: &str, secs: u64, done: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let last = match app.client.get(url).send().await {
            Ok(r) if r.status() == 200 => r.text().await.unwrap_or_default(),
            _ => String::new(),
        };
        if done(&last) {
            return last;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {secs}s; last scrape:\n{last}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    sample(text, name, labels).unwrap_or_else(|| panic!("no sample {name}{labels:?} in:\n{text}"))
}

#[tokio::test]
async fn a_draw_and_its_delivery_show_in_the_draw_relay_consumer_and_read_model_metrics() {
    let app = spawn_app().await;
    // Every draw wins award 101 (credits), which the consumer delivers.
    app.rig_draws_to_award_101().await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    app.ok(r#"mutation { rechargeQuota(userId: "xiaofuge", sku: 9011, outBusinessNo: "metrics-1") { orderId } }"#)
        .await;
    let before = scrape(&app).await;
    let won_before = value(&before, "bm_draws_total", &[("outcome", "won")]);

    // xiaofuge (shard 0) draws; a user without quota is refused with ERR_BIZ_006.
    let token = app.user_token("xiaofuge");
    let drawn = app
        .graphql_as(
            Some(&token),
            "mutation Spend { draw(activityId: 100301) { messageId } }",
        )
        .await;
    let message_id = drawn["data"]["draw"]["messageId"]
        .as_str()
        .unwrap_or_else(|| panic!("the draw failed: {drawn}"))
        .to_owned();
    let refused = app
        .graphql_as(
            Some(&app.user_token("metrics-broke")),
            "mutation Spend { draw(activityId: 100301) { messageId } }",
        )
        .await;
    assert_eq!(
        test_support::app::error_code_of(&refused),
        Some("ERR_BIZ_006"),
        "{refused}"
    );
    app.eventually(
        30,
        &format!(r#"{{ task(messageId: "{message_id}") {{ state }} }}"#),
        |t| t["task"]["state"] == "DELIVERED",
    )
    .await;

    let url = format!("{}/metrics", app.address);
    // The consumer counts after it acknowledged; the relay's pending rows of shard 0 drain.
    let text = scrape_until(&app, &url, 10, |t| {
        sample(
            t,
            "bm_consumer_messages_total",
            &[("topic", "send_award"), ("result", "ok")],
        ) >= Some(1.0)
            && sample(t, "bm_outbox_pending_rows", &[("shard", "0")]) == Some(0.0)
    })
    .await;
    assert_eq!(value(&text, "bm_draws_total", &[("outcome", "won")]), won_before + 1.0);
    assert_eq!(value(&text, "bm_draws_total", &[("outcome", "ERR_BIZ_006")]), 1.0);
    assert_eq!(
        value(&text, "bm_graphql_requests_total", &[("operation", "Spend")]),
        2.0
    );
    assert_eq!(
        value(
            &text,
            "bm_graphql_errors_total",
            &[("operation", "Spend"), ("code", "ERR_BIZ_006")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &text,
            "bm_graphql_request_duration_seconds_count",
            &[("operation", "Spend")]
        ),
        2.0
    );
    // The relay published the draw's rows on shard 0 and projected its award into the history.
    assert!(value(&text, "bm_relay_published_total", &[("shard", "0")]) >= 1.0);
    assert_eq!(value(&text, "bm_relay_dead_lettered_total", &[("shard", "0")]), 0.0);
    let lag_count = value(&text, "bm_read_model_lag_seconds_count", &[("topic", "send_award")]);
    let lag_sum = value(&text, "bm_read_model_lag_seconds_sum", &[("topic", "send_award")]);
    assert!(lag_count >= 1.0, "{text}");
    assert!(
        (0.0..30.0).contains(&(lag_sum / lag_count)),
        "mean read-model lag {lag_sum}/{lag_count}"
    );
    // Shard 0 answered the gauges: nothing pending, no lag.
    assert_eq!(value(&text, "bm_outbox_scrape_up", &[("shard", "0")]), 1.0);
    assert_eq!(
        value(&text, "bm_outbox_oldest_pending_age_seconds", &[("shard", "0")]),
        0.0
    );
    // The pools of the config database and each shard (database.max_connections = 8).
    assert!(value(&text, "bm_db_pool_connections", &[("database", "config")]) >= 1.0);
    assert_eq!(
        value(&text, "bm_db_pool_max_connections", &[("database", "shard_1")]),
        8.0
    );

    // A row that waits 90 s for a retry and a dead row on shard 1: its backlog, lag and dead
    // rows show at the next scrape.
    app.exec(
        SHARD_02,
        "INSERT INTO task (user_id, topic, message_id, message, state, attempts, create_time, next_attempt_at) VALUES \
         ('metrics-lag', 'send_award', 'mlag1', '{}', 'fail', 1, NOW() - INTERVAL 90 SECOND, NOW() + INTERVAL 1 HOUR), \
         ('metrics-lag', 'send_award', 'mdead1', '{}', 'dead', 8, NOW(), NULL)",
    )
    .await;
    let text = scrape(&app).await;
    assert_eq!(value(&text, "bm_outbox_pending_rows", &[("shard", "1")]), 1.0);
    assert_eq!(value(&text, "bm_outbox_dead_rows", &[("shard", "1")]), 1.0);
    let lag = value(&text, "bm_outbox_oldest_pending_age_seconds", &[("shard", "1")]);
    assert!((89.0..300.0).contains(&lag), "oldest pending row of shard 1: {lag} s");
    app.cleanup().await;
}

#[tokio::test]
async fn graphql_errors_are_counted_by_operation_and_code_with_bounded_names() {
    let app = spawn_app_with(|s| s.metrics.max_operations = 2).await;
    app.graphql("query Broken { noSuchField }").await;
    app.graphql("{ noSuchField }").await;
    app.graphql("query {").await;
    app.graphql("query First { __typename }").await;
    app.graphql("query Second { __typename }").await;
    let text = scrape(&app).await;
    let errors = |op: &str, code: &str| sample(&text, "bm_graphql_errors_total", &[("operation", op), ("code", code)]);
    assert_eq!(errors("Broken", "GRAPHQL_VALIDATION_FAILED"), Some(1.0), "{text}");
    assert_eq!(errors("(anonymous)", "GRAPHQL_VALIDATION_FAILED"), Some(1.0), "{text}");
    assert_eq!(errors("(unknown)", "GRAPHQL_PARSE_FAILED"), Some(1.0), "{text}");
    // Two names fit (Broken, First); the third shares `(other)`.
    let requests = |op: &str| sample(&text, "bm_graphql_requests_total", &[("operation", op)]);
    assert_eq!(requests("First"), Some(1.0));
    assert_eq!(requests("Second"), None);
    assert_eq!(requests("(other)"), Some(1.0));
    app.cleanup().await;
}

#[tokio::test]
async fn metrics_answer_only_the_configured_bearer_token() {
    const TOKEN: &str = "scrape-token-of-the-metrics-test";
    let app = spawn_app_with(|s| s.metrics.token = TOKEN.into()).await;
    let url = format!("{}/metrics", app.address);
    let none = scrape_at(&app, &url, None).await;
    assert_eq!(none.status(), 401);
    assert_eq!(none.headers()["www-authenticate"], "Bearer");
    assert_eq!(
        scrape_at(&app, &url, Some("scrape-token-of-the-metrics-tesX"))
            .await
            .status(),
        401
    );
    let ok = scrape_at(&app, &url, Some(TOKEN)).await;
    assert_eq!(ok.status(), 200);
    assert!(ok.text().await.unwrap().contains("bm_draws_total{outcome=\"won\"} 0"));
    app.cleanup().await;

    // With a listener of its own, the API listener does not answer /metrics.
    let app = spawn_app_with(|s| s.metrics.listen = "127.0.0.1:0".into()).await;
    let resp = scrape_at(&app, &format!("{}/metrics", app.address), None).await;
    assert_eq!(resp.status(), 404);
    app.cleanup().await;
}

#[tokio::test]
async fn a_metrics_listener_off_loopback_without_a_token_refuses_to_start() {
    let mut settings = api::settings::Settings::default();
    settings.metrics.listen = "0.0.0.0:0".into();
    let err = api::startup::Application::build(settings)
        .await
        .err()
        .expect("an open metrics listener without a token must not start");
    assert!(format!("{err:#}").contains("metrics.token"), "{err:#}");
}

#[tokio::test]
async fn the_relay_process_serves_its_metrics_on_metrics_listen() {
    let app = spawn_app_with(|s| s.relay.enabled = false).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let _relay = app.spawn_relay_process(BIN, |s| {
        s.metrics.listen = format!("127.0.0.1:{port}");
        s.consumers.enabled = false;
    });
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    app.ok(r#"mutation { rechargeQuota(userId: "xiaofuge", sku: 9011, outBusinessNo: "metrics-2") { orderId } }"#)
        .await;
    app.ok(r#"mutation { draw(userId: "xiaofuge", activityId: 100301) { messageId } }"#)
        .await;
    let text = scrape_until(&app, &format!("http://127.0.0.1:{port}/metrics"), 20, |t| {
        sample(t, "bm_relay_published_total", &[("shard", "0")]) >= Some(1.0)
    })
    .await;
    assert_eq!(value(&text, "bm_outbox_scrape_up", &[("shard", "1")]), 1.0);
    // The draw was counted by the process that ran it, not by the relay.
    assert_eq!(value(&text, "bm_draws_total", &[("outcome", "won")]), 0.0);
    app.cleanup().await;
}

#[tokio::test]
async fn a_blackholed_shard_does_not_hold_up_the_scrape_it_is_reported_down() {
    // Shard 1 through a fault proxy (the server part of its URL replaced by the proxy's).
    let server = test_support::services::mysql_server_url();
    let host = server.split_once("://").map_or(server.as_str(), |(_, r)| r);
    let host = host.split_once('/').map_or(host, |(h, _)| h);
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h).to_owned();
    let upstream = tokio::net::lookup_host(host.as_str()).await.unwrap().next().unwrap();
    let proxy = test_support::proxy::FaultProxy::start(upstream).await.unwrap();
    let app = spawn_app_with(|s| {
        s.database.shard_urls[1] = s.database.shard_urls[1].replacen(&host, &proxy.addr().to_string(), 1);
        s.metrics.scrape_timeout_ms = 500;
    })
    .await;
    let url = format!("{}/metrics", app.address);
    assert_eq!(
        value(&scrape(&app).await, "bm_outbox_scrape_up", &[("shard", "1")]),
        1.0
    );

    proxy.blackhole();
    let started = Instant::now();
    let text = scrape(&app).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "the scrape took {took:?}");
    assert_eq!(value(&text, "bm_outbox_scrape_up", &[("shard", "1")]), 0.0);
    assert_eq!(
        sample(&text, "bm_outbox_pending_rows", &[("shard", "1")]),
        None,
        "{text}"
    );
    assert_eq!(value(&text, "bm_outbox_scrape_up", &[("shard", "0")]), 1.0);
    assert_eq!(value(&text, "bm_outbox_pending_rows", &[("shard", "0")]), 0.0);

    proxy.pass();
    scrape_until(&app, &url, 20, |t| {
        sample(t, "bm_outbox_scrape_up", &[("shard", "1")]) == Some(1.0)
    })
    .await;
    app.cleanup().await;
}

#[tokio::test]
async fn redis_is_pinged_at_scrape_and_a_blackholed_redis_is_reported_down_in_time() {
    let redis = test_support::services::redis_url();
    let host = redis.split_once("://").map_or(redis.as_str(), |(_, r)| r);
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let host = host.split_once('/').map_or(host, |(h, _)| h);
    let upstream = tokio::net::lookup_host(host).await.unwrap().next().unwrap();
    let proxy = test_support::proxy::FaultProxy::start(upstream).await.unwrap();
    let app = spawn_app_with(|s| {
        s.redis.url = redis.replacen(host, &proxy.addr().to_string(), 1);
        s.metrics.scrape_timeout_ms = 500;
    })
    .await;
    let url = format!("{}/metrics", app.address);
    let text = scrape(&app).await;
    assert_eq!(value(&text, "bm_redis_up", &[]), 1.0, "{text}");
    let ping = value(&text, "bm_redis_ping_seconds", &[]);
    assert!(ping > 0.0 && ping < 0.5, "{ping}");

    proxy.blackhole();
    let started = Instant::now();
    let text = scrape(&app).await;
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "the scrape took {took:?}");
    assert_eq!(value(&text, "bm_redis_up", &[]), 0.0, "{text}");
    // The shards are read all the same.
    assert_eq!(value(&text, "bm_outbox_scrape_up", &[("shard", "0")]), 1.0);

    proxy.pass();
    scrape_until(&app, &url, 20, |t| sample(t, "bm_redis_up", &[]) == Some(1.0)).await;
    app.cleanup().await;
}

/// Operations over `/graphql/ws` count like those over HTTP (same families and labels), and a
/// mutation sent over the socket runs in a trace of its own.
#[tokio::test]
async fn operations_over_the_websocket_are_counted_and_traced() {
    use futures::{SinkExt, StreamExt};
    use serde_json::{Value, json};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;

    let app = spawn_app().await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    let mut req = format!("{}/graphql/ws", app.address.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.expect("websocket upgrade");
    ws.send(Message::text(
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {}", app.admin_token)}})
            .to_string(),
    ))
    .await
    .unwrap();
    // The messages of subscription `id` up to its `complete` (pings answered, others skipped).
    async fn until_complete(
        ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
        id: &str,
    ) -> Vec<Value> {
        let mut got = Vec::new();
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(15), ws.next())
                .await
                .expect("a message within 15 s")
                .expect("open")
                .unwrap();
            let Message::Text(t) = msg else { continue };
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "ping" {
                ws.send(Message::text(json!({"type": "pong"}).to_string()))
                    .await
                    .unwrap();
            } else if v["id"] == id {
                if v["type"] == "complete" {
                    return got;
                }
                got.push(v);
            }
        }
    }
    let before = scrape(&app).await;
    let count = |text: &str, name: &str, labels: &[(&str, &str)]| sample(text, name, labels).unwrap_or(0.0);

    // A mutation, a query and a refused subscription, each named.
    let recharge = r#"mutation WsRecharge { rechargeQuota(userId: "xiaofuge", sku: 9011, outBusinessNo: "ws-metrics-1") { orderId } }"#;
    ws.send(Message::text(
        json!({"id": "1", "type": "subscribe", "payload": {"query": recharge}}).to_string(),
    ))
    .await
    .unwrap();
    let answered = until_complete(&mut ws, "1").await;
    assert!(answered[0]["payload"]["errors"].is_null(), "{answered:?}");
    ws.send(Message::text(
        json!({"id": "2", "type": "subscribe", "payload": {"query": "query WsTypename { __typename }"}}).to_string(),
    ))
    .await
    .unwrap();
    until_complete(&mut ws, "2").await;
    let refused = r#"subscription WsBad { taskStatus(userId: "") { state } }"#;
    ws.send(Message::text(
        json!({"id": "3", "type": "subscribe", "payload": {"query": refused}}).to_string(),
    ))
    .await
    .unwrap();
    let errors = until_complete(&mut ws, "3").await;
    let code = errors[0]["payload"]["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error: {errors:?}"))
        .to_owned();
    // A document that does not parse is counted as `(unknown)`.
    ws.send(Message::text(
        json!({"id": "4", "type": "subscribe", "payload": {"query": "subscription {"}}).to_string(),
    ))
    .await
    .unwrap();
    until_complete(&mut ws, "4").await;

    let text = scrape(&app).await;
    let delta = |name: &str, labels: &[(&str, &str)]| count(&text, name, labels) - count(&before, name, labels);
    assert_eq!(
        delta("bm_graphql_requests_total", &[("operation", "WsRecharge")]),
        1.0,
        "{text}"
    );
    assert_eq!(delta("bm_graphql_requests_total", &[("operation", "WsTypename")]), 1.0);
    assert_eq!(delta("bm_graphql_requests_total", &[("operation", "WsBad")]), 1.0);
    assert_eq!(delta("bm_graphql_requests_total", &[("operation", "(unknown)")]), 1.0);
    assert_eq!(
        delta(
            "bm_graphql_request_duration_seconds_count",
            &[("operation", "WsRecharge")]
        ),
        1.0,
        "queries and mutations have a latency"
    );
    assert_eq!(
        delta("bm_graphql_errors_total", &[("operation", "WsBad"), ("code", &code)]),
        1.0,
        "{text}"
    );
    assert_eq!(
        delta(
            "bm_graphql_errors_total",
            &[("operation", "(unknown)"), ("code", "GRAPHQL_PARSE_FAILED")]
        ),
        1.0,
        "{text}"
    );
    assert_eq!(delta("bm_graphql_errors_total", &[("operation", "WsRecharge")]), 0.0);

    // The recharge's outbox rows store the trace it ran in over the socket.
    let stored = app
        .sql(
            test_support::app::SHARD_01,
            "SELECT traceparent FROM task WHERE user_id = 'xiaofuge' ORDER BY id DESC LIMIT 1",
        )
        .await;
    let tp = stored
        .first()
        .and_then(|r| r["traceparent"].as_str())
        .unwrap_or_else(|| panic!("the recharge's row has no trace context: {stored:?}"));
    assert_eq!(tp.split('-').map(str::len).collect::<Vec<_>>(), [2, 32, 16, 2], "{tp}");
    app.cleanup().await;
}
