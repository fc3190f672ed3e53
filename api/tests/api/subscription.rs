//! `taskStatus` over graphql-transport-ws at `/graphql/ws` (ARCHITECTURE §6–7).

use std::time::Duration;

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

use test_support::app::{TestApp, spawn_app_with};

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/graphql/ws` and sends `connection_init` with `token`; expects the ack.
async fn connect(address: &str, token: &str) -> Ws {
    let mut ws = open_raw(address).await;
    ws.send(Message::text(
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}).to_string(),
    ))
    .await
    .unwrap();
    let ack = next_message(&mut ws).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    ws
}

async fn next_message(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a message within 15 s")
            .expect("open")
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] == "ping" {
                ws.send(Message::text(json!({"type": "pong"}).to_string()))
                    .await
                    .unwrap();
                continue;
            }
            return v;
        }
    }
}

async fn subscribe(ws: &mut Ws, user: &str, message_id: Option<&str>, after: Option<&str>) {
    let mut args = format!(r#"userId: "{user}""#);
    if let Some(m) = message_id {
        args.push_str(&format!(r#", messageId: "{m}""#));
    }
    if let Some(a) = after {
        args.push_str(&format!(r#", after: "{a}""#));
    }
    let query = format!("subscription {{ taskStatus({args}) {{ cursor messageId topic state attempts occurredAt }} }}");
    ws.send(Message::text(
        json!({"id": "1", "type": "subscribe", "payload": {"query": query}}).to_string(),
    ))
    .await
    .unwrap();
}

async fn next_event(ws: &mut Ws) -> Value {
    let m = next_message(ws).await;
    assert_eq!(m["type"], "next", "{m}");
    assert!(m["payload"]["errors"].is_null(), "{m}");
    m["payload"]["data"]["taskStatus"].clone()
}

/// The code of a subscription's failure (sent as a `next` whose payload carries `errors`).
async fn error_code(ws: &mut Ws) -> String {
    let m = next_message(ws).await;
    m["payload"]["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("expected an error: {m}"))
        .to_owned()
}

async fn rigged(app: &TestApp) {
    app.rig_draws_to_award_101().await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
}

async fn draw(app: &TestApp, user: &str, obn: &str) -> String {
    app.ok(&format!(
        r#"mutation {{ rechargeQuota(userId: "{user}", sku: 9014, outBusinessNo: "{obn}") {{ orderId }} }}"#
    ))
    .await;
    let d = app
        .ok(&format!(
            r#"mutation {{ draw(userId: "{user}", activityId: 100301) {{ messageId }} }}"#
        ))
        .await;
    d["draw"]["messageId"].as_str().unwrap().to_owned()
}

async fn delivered(app: &TestApp, id: &str) {
    app.eventually(15, &format!(r#"{{ task(messageId: "{id}") {{ state }} }}"#), |t| {
        t["task"]["state"] == "DELIVERED"
    })
    .await;
}

#[tokio::test]
async fn a_subscriber_sees_created_published_delivered_for_its_draw() {
    let app = spawn_app_with(|_| {}).await;
    rigged(&app).await;
    let id = draw(&app, "xiaofuge", "w-1").await;
    let mut ws = connect(&app.address, &app.admin_token).await;
    subscribe(&mut ws, "xiaofuge", Some(&id), None).await;
    let events = [
        next_event(&mut ws).await,
        next_event(&mut ws).await,
        next_event(&mut ws).await,
    ];
    let states: Vec<Value> = events
        .iter()
        .map(|e| {
            assert_eq!(e["messageId"], id.as_str());
            assert_eq!(e["topic"], "send_award");
            e["state"].clone()
        })
        .collect();
    assert_eq!(states, [json!("CREATED"), json!("PUBLISHED"), json!("DELIVERED")]);
    let attempts: Vec<&Value> = events.iter().map(|e| &e["attempts"]).collect();
    assert_eq!(attempts, [&json!(0), &json!(1), &json!(1)], "attempts never go back");
    let delivered = app
        .ok(&format!(r#"{{ task(messageId: "{id}") {{ state attempts }} }}"#))
        .await;
    assert_eq!(delivered["task"]["attempts"], 1, "{delivered}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_reconnecting_subscriber_receives_each_missed_event_once() {
    let app = spawn_app_with(|_| {}).await;
    rigged(&app).await;
    let mut ws = connect(&app.address, &app.admin_token).await;
    subscribe(&mut ws, "liergou", None, None).await;
    let first = draw(&app, "liergou", "r-1").await;
    let mut last = Value::Null;
    for _ in 0..3 {
        last = next_event(&mut ws).await;
        assert_eq!(last["messageId"], first.as_str());
    }
    ws.close(None).await.unwrap();
    // Events happen while the client is away.
    let second = draw(&app, "liergou", "r-2").await;
    delivered(&app, &second).await;
    let mut ws = connect(&app.address, &app.admin_token).await;
    subscribe(&mut ws, "liergou", None, last["cursor"].as_str()).await;
    let missed: Vec<(String, String)> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            let e = next_event(&mut ws).await;
            v.push((
                e["messageId"].as_str().unwrap().to_owned(),
                e["state"].as_str().unwrap().to_owned(),
            ));
        }
        v
    };
    assert_eq!(
        missed,
        [
            (second.clone(), "CREATED".into()),
            (second.clone(), "PUBLISHED".into()),
            (second.clone(), "DELIVERED".into())
        ]
    );
    assert!(
        tokio::time::timeout(Duration::from_millis(700), ws.next())
            .await
            .is_err(),
        "nothing is delivered twice"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn two_server_processes_share_the_stream() {
    let a = spawn_app_with(|_| {}).await;
    rigged(&a).await;
    let b = api::startup::Application::build(a.settings.clone())
        .await
        .expect("second instance");
    let b_address = format!("http://127.0.0.1:{}", b.port());
    tokio::spawn(b.run_until_stopped());
    let mut ws = connect(&b_address, &a.admin_token).await;
    subscribe(&mut ws, "zhan", None, None).await;
    let id = draw(&a, "zhan", "p-1").await;
    let mut states = Vec::new();
    for _ in 0..3 {
        let e = next_event(&mut ws).await;
        assert_eq!(e["messageId"], id.as_str());
        states.push(e["state"].as_str().unwrap().to_owned());
    }
    assert_eq!(states, ["CREATED", "PUBLISHED", "DELIVERED"]);
    a.cleanup().await;
}

#[tokio::test]
async fn bad_subscription_arguments_are_rejected_with_codes() {
    let app = spawn_app_with(|s| s.http.max_subscriptions = 1).await;
    let mut ws = connect(&app.address, &app.admin_token).await;
    subscribe(&mut ws, "u", None, Some("not-a-cursor")).await;
    assert_eq!(error_code(&mut ws).await, "0002");
    ws.send(Message::text(json!({"id": "2", "type": "subscribe", "payload": {"query": "subscription { taskStatus(userId: \"u\") { cursor } }"}}).to_string()))
        .await
        .unwrap();
    let mut other = connect(&app.address, &app.admin_token).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    subscribe(&mut other, "v", None, None).await;
    assert_eq!(
        error_code(&mut other).await,
        "TOO_MANY_SUBSCRIPTIONS",
        "the single slot is taken"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn the_server_sends_keep_alive_pings() {
    let app = spawn_app_with(|s| s.http.ws_ping_secs = 1).await;
    let mut ws = connect(&app.address, &app.admin_token).await;
    subscribe(&mut ws, "quiet", None, None).await;
    let msg = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("a ping within 5 s")
        .unwrap()
        .unwrap();
    let v: Value = serde_json::from_str(msg.to_text().unwrap()).unwrap();
    assert_eq!(v["type"], "ping");
    ws.send(Message::text(json!({"type": "pong"}).to_string()))
        .await
        .unwrap();
    let again = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("pings keep coming")
        .unwrap()
        .unwrap();
    assert!(again.to_text().unwrap().contains("ping"), "{again:?}");
    app.cleanup().await;
}

/// Opens `/graphql/ws` and sends `connection_init` with `payload`; returns the socket unacked.
async fn open_with(address: &str, payload: Value) -> Ws {
    let mut ws = open_raw(address).await;
    ws.send(Message::text(
        json!({"type": "connection_init", "payload": payload}).to_string(),
    ))
    .await
    .unwrap();
    ws
}

#[tokio::test]
async fn a_token_that_does_not_verify_closes_the_socket_with_4403() {
    let app = spawn_app_with(|_| {}).await;
    let mut ws = open_with(&app.address, json!({"authorization": "Bearer not-a-token"})).await;
    let frame = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("an answer within 5 s")
        .expect("a frame")
        .unwrap();
    match frame {
        Message::Close(Some(close)) => assert_eq!(u16::from(close.code), 4403, "{close:?}"),
        other => panic!("expected a 4403 close, got {other:?}"),
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_user_token_subscribes_to_its_own_events_only() {
    let app = spawn_app_with(|_| {}).await;
    rigged(&app).await;
    let token = app.user_token("carol");
    // The key of the init payload is case-insensitive.
    let mut ws = open_with(&app.address, json!({"AUTHORIZATION": format!("Bearer {token}")})).await;
    assert_eq!(next_message(&mut ws).await["type"], "connection_ack");
    subscribe(&mut ws, "dave", None, None).await;
    assert_eq!(error_code(&mut ws).await, "FORBIDDEN");
    ws.send(Message::text(
        json!({"id": "own", "type": "subscribe", "payload": {"query": "subscription { taskStatus { messageId state } }"}})
            .to_string(),
    ))
    .await
    .unwrap();
    let id = draw(&app, "carol", "c-1").await;
    let mut m = next_message(&mut ws).await;
    if m["type"] == "complete" {
        assert_eq!(m["id"], "1", "the refused subscription completes: {m}");
        m = next_message(&mut ws).await;
    }
    assert_eq!(m["id"], "own", "{m}");
    assert_eq!(m["payload"]["data"]["taskStatus"]["messageId"], id.as_str(), "{m}");

    let mut anonymous = open_with(&app.address, json!({})).await;
    assert_eq!(next_message(&mut anonymous).await["type"], "connection_ack");
    subscribe(&mut anonymous, "carol", None, None).await;
    assert_eq!(error_code(&mut anonymous).await, "UNAUTHENTICATED");
    app.cleanup().await;
}

#[tokio::test]
async fn two_thousand_subscriptions_on_one_connection_are_capped() {
    let app = spawn_app_with(|s| s.http.max_subscriptions_per_connection = 16).await;
    let mut ws = connect(&app.address, &app.admin_token).await;
    let query = r#"subscription { taskStatus(userId: "many") { cursor } }"#;
    for i in 0..2_000 {
        ws.send(Message::text(
            json!({"id": format!("s{i}"), "type": "subscribe", "payload": {"query": query}}).to_string(),
        ))
        .await
        .unwrap();
    }
    let mut refused = 0;
    while refused < 2_000 - 16 {
        let m = next_message(&mut ws).await;
        if m["type"] == "next" && m["payload"]["errors"][0]["extensions"]["code"] == "TOO_MANY_SUBSCRIPTIONS" {
            refused += 1;
        } else if m["type"] != "complete" {
            panic!("unexpected message {m}");
        }
    }
    assert_eq!(refused, 1_984, "16 stay open, every other one is refused");
    app.cleanup().await;
}

#[tokio::test]
async fn two_thousand_subscribers_share_one_redis_reader() {
    let redis = test_support::redis::PrivateRedis::start()
        .await
        .expect("a private redis-server");
    let url = redis.url.clone();
    let app = spawn_app_with(move |s| s.redis.url = url).await;
    rigged(&app).await;
    let before = redis.connected_clients().await.unwrap();
    let mut sockets = Vec::new();
    for chunk in (0..2_000).collect::<Vec<usize>>().chunks(200) {
        let opened = futures::future::join_all(chunk.iter().map(|i| {
            let (address, token) = (app.address.clone(), app.admin_token.clone());
            async move {
                let mut ws = connect(&address, &token).await;
                subscribe(&mut ws, &format!("crowd-{i}"), None, None).await;
                ws
            }
        }))
        .await;
        sockets.extend(opened);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let during = redis.connected_clients().await.unwrap();
    println!("Redis clients: {before} before, {during} with 2 000 subscriptions open");
    assert!(
        during <= before + 2,
        "2 000 subscriptions must not open Redis connections of their own: {before} → {during}"
    );
    // Events still reach the right subscriber through the shared reader.
    let id = draw(&app, "crowd-1234", "crowd-p").await;
    let e = next_event(&mut sockets[1234]).await;
    assert_eq!(e["messageId"], id.as_str());
    assert_eq!(e["state"], "CREATED");
    drop(sockets);
    app.cleanup().await;
}

#[tokio::test]
async fn a_websocket_outlives_the_request_head_deadline() {
    let app = spawn_app_with(|s| s.http.header_read_timeout_secs = 1).await;
    rigged(&app).await;
    let mut ws = connect(&app.address, &app.admin_token).await;
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    subscribe(&mut ws, "patient", None, None).await;
    let id = draw(&app, "patient", "pa-1").await;
    assert_eq!(next_event(&mut ws).await["messageId"], id.as_str());
    app.cleanup().await;
}

/// Opens `/graphql/ws` (graphql-transport-ws) without sending anything.
async fn open_raw(address: &str) -> Ws {
    let mut req = format!("{}/graphql/ws", address.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket upgrade")
        .0
}

/// The close code the server ends `ws` with (skipping its other messages), within 15 s.
async fn close_code(ws: &mut Ws) -> u16 {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a close within 15 s")
            .expect("a close frame, not the end of the stream")
            .expect("a close frame, not a reset");
        if let Message::Close(Some(close)) = frame {
            return u16::from(close.code);
        }
    }
}

#[tokio::test]
async fn every_graphql_transport_ws_violation_closes_with_its_code() {
    let app = spawn_app_with(|s| s.http.ws_init_timeout_secs = 1).await;
    let init = json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {}", app.admin_token)}})
        .to_string();
    let subscribe = |id: &str| {
        json!({"id": id, "type": "subscribe", "payload": {"query": "subscription { taskStatus(userId: \"raw\") { cursor } }"}})
            .to_string()
    };

    // 4400: not a protocol message.
    let mut ws = open_raw(&app.address).await;
    ws.send(Message::text("{\"type\":\"hello\"}")).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 4400);

    // 4401: subscribe before connection_init was acknowledged.
    let mut ws = open_raw(&app.address).await;
    ws.send(Message::text(subscribe("1"))).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 4401);

    // 4408: no connection_init within the init timeout (1 s here).
    let mut ws = open_raw(&app.address).await;
    let started = std::time::Instant::now();
    assert_eq!(close_code(&mut ws).await, 4408);
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    // 4409: a second subscribe with the id of a running subscription.
    let mut ws = open_raw(&app.address).await;
    ws.send(Message::text(init.clone())).await.unwrap();
    assert_eq!(next_message(&mut ws).await["type"], "connection_ack");
    ws.send(Message::text(subscribe("dup"))).await.unwrap();
    ws.send(Message::text(subscribe("dup"))).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 4409);

    // 4429: a second connection_init.
    let mut ws = open_raw(&app.address).await;
    ws.send(Message::text(init.clone())).await.unwrap();
    assert_eq!(next_message(&mut ws).await["type"], "connection_ack");
    ws.send(Message::text(init)).await.unwrap();
    assert_eq!(close_code(&mut ws).await, 4429);
    app.cleanup().await;
}

/// The reference client of graphql-transport-ws (`graphql-ws`, driven by
/// `tools/graphql-http-audit/ws-client.mjs`): subscribes to a draw's events until delivered,
/// resumes after the first one and gets exactly the others, and learns `4403` as the close
/// code of a token that does not verify. Needs Node.js and `npm ci` in
/// `tools/graphql-http-audit` (`scripts/test.sh` runs it).
#[tokio::test]
async fn the_reference_graphql_ws_client_subscribes_resumes_and_reads_the_close_code() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/graphql-http-audit");
    assert!(
        dir.join("node_modules/graphql-ws").exists(),
        "graphql-ws is not installed: run `npm ci` in tools/graphql-http-audit (scripts/test.sh does)"
    );
    let app = spawn_app_with(|_| {}).await;
    rigged(&app).await;
    let user = "wsclient";
    let id = draw(&app, user, "ref-1").await;
    let url = format!("{}/graphql/ws", app.address.replacen("http", "ws", 1));
    let token = app.user_token(user);
    let args = [url, token, user.to_owned(), id.clone(), "not-a-token".to_owned()];
    let out = tokio::time::timeout(
        Duration::from_secs(60),
        tokio::task::spawn_blocking(move || {
            std::process::Command::new("node")
                .arg("ws-client.mjs")
                .args(args)
                .current_dir(&dir)
                .output()
        }),
    )
    .await
    .expect("the client finishes within 60 s")
    .unwrap()
    .expect("running node (Node.js 18 or newer is needed)");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "graphql-ws client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    let events = report["events"].as_array().expect("events");
    let states: Vec<&Value> = events.iter().map(|e| &e["state"]).collect();
    assert_eq!(
        states,
        [&json!("CREATED"), &json!("PUBLISHED"), &json!("DELIVERED")],
        "{report}"
    );
    assert!(events.iter().all(|e| e["messageId"] == id.as_str()), "{report}");
    assert_eq!(
        report["resumed"].as_array().expect("resumed"),
        &events[1..].to_vec(),
        "resuming after the first cursor yields exactly the later events: {report}"
    );
    assert_eq!(report["badToken"]["code"], 4403, "{report}");
    app.cleanup().await;
}
