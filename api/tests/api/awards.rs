//! Awards delivered for real (spec §7.4): `openai_use_count` through the OpenAI account gateway
//! (a local HTTP server here), and awards whose key has no distributor: never delivered, their
//! task `DEAD` with the reason until replayed with a distributor configured.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use persistence::outbox::relay::RelayNudge;
use persistence::rabbit::Topology;
use poem::listener::{Acceptor, Listener, TcpListener};
use serde_json::{Value, json};

use api::settings::Settings;
use api::workers::Workers;
use test_support::app::{CONFIG, SHARD_01, SHARD_02, TestApp, spawn_app_with};

const APP_ID: &str = "big-market-tests";
const APP_TOKEN: &str = "token-of-the-gateway-in-the-tests";

/// How the gateway answers one call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Answer {
    /// `{"code":"0000"}`: granted (once per idempotency key).
    Granted,
    /// HTTP 200 with another code.
    Code(&'static str),
    /// Another HTTP status.
    Status(u16),
    /// No answer for 2 s (beyond the client's deadline).
    Hang,
}

/// One call the gateway received.
#[derive(Clone, Debug)]
struct Call {
    key: Option<String>,
    body: Value,
    answer: Answer,
}

struct GatewayState {
    calls: Vec<Call>,
    script: VecDeque<Answer>,
    otherwise: Answer,
    /// Quota granted per idempotency key (a repeated key grants nothing more).
    granted: HashMap<String, i64>,
}

/// The OpenAI account gateway, as a local HTTP server on a free port.
struct Gateway {
    host: String,
    state: Arc<Mutex<GatewayState>>,
}

impl Gateway {
    async fn start() -> Self {
        let state = Arc::new(Mutex::new(GatewayState {
            calls: Vec::new(),
            script: VecDeque::new(),
            otherwise: Answer::Granted,
            granted: HashMap::new(),
        }));
        let shared = state.clone();
        let endpoint = poem::endpoint::make(move |mut req: poem::Request| {
            let state = shared.clone();
            async move {
                let key = req.header("Idempotency-Key").map(str::to_owned);
                let body: Value = req.take_body().into_json().await.unwrap_or(Value::Null);
                let answer = {
                    let mut s = state.lock().unwrap();
                    let answer = s.script.pop_front().unwrap_or(s.otherwise);
                    s.calls.push(Call {
                        key: key.clone(),
                        body: body.clone(),
                        answer,
                    });
                    if answer == Answer::Granted {
                        let quota = body["increaseQuota"].as_i64().unwrap_or(0);
                        s.granted.entry(key.unwrap_or_default()).or_insert(quota);
                    }
                    answer
                };
                let json = |v: Value| {
                    poem::Response::builder()
                        .content_type("application/json")
                        .body(v.to_string())
                };
                match answer {
                    Answer::Granted => json(json!({"code": "0000", "info": "调用成功", "data": true})),
                    Answer::Code(code) => json(json!({"code": code, "info": "busy", "data": null})),
                    Answer::Status(status) => poem::Response::builder()
                        .status(poem::http::StatusCode::from_u16(status).unwrap())
                        .body("upstream trouble"),
                    Answer::Hang => {
                        tokio::time::sleep(Duration::from_secs(2)).await;
                        json(json!({"code": "0000", "info": "too late", "data": true}))
                    }
                }
            }
        });
        let route = poem::Route::new().at("/api/v1/account/adjust_quota", poem::post(endpoint));
        let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
        let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(route));
        Self {
            host: format!("http://127.0.0.1:{port}"),
            state,
        }
    }

    /// The next calls are answered `answers`, then every call `otherwise`.
    fn script(&self, answers: &[Answer], otherwise: Answer) {
        let mut s = self.state.lock().unwrap();
        s.script = answers.iter().copied().collect();
        s.otherwise = otherwise;
    }

    fn calls(&self) -> Vec<Call> {
        self.state.lock().unwrap().calls.clone()
    }

    fn granted(&self) -> HashMap<String, i64> {
        self.state.lock().unwrap().granted.clone()
    }

    /// `settings` with this gateway configured (300 ms per call).
    fn configure(&self, settings: &mut Settings) {
        settings.awards.openai.api_host = self.host.clone();
        settings.awards.openai.app_id = APP_ID.into();
        settings.awards.openai.app_token = APP_TOKEN.into();
        settings.awards.openai.timeout_ms = 300;
    }
}

/// Every default draw of strategy 100006 wins `award_id` (its stock taken, no lock).
async fn rig_draws_to(app: &TestApp, award_id: i32) {
    app.exec(
        CONFIG,
        "UPDATE strategy SET rule_models = NULL WHERE strategy_id = 100006",
    )
    .await;
    app.exec(
        CONFIG,
        &format!(
            "UPDATE strategy_award SET award_rate = IF(award_id = {award_id}, 0.03, 0), \
             rule_models = IF(award_id = {award_id}, 'tree_luck_award', rule_models) WHERE strategy_id = 100006"
        ),
    )
    .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
}

/// Recharges `user` one draw and draws: `(orderId, messageId)` of the award won.
async fn win(app: &TestApp, user: &str, award_id: i32) -> (String, String) {
    app.ok(&format!(
        r#"mutation {{ rechargeQuota(userId: "{user}", sku: 9014, outBusinessNo: "aw-{user}") {{ orderId }} }}"#
    ))
    .await;
    let d = app
        .ok(&format!(
            r#"mutation {{ draw(userId: "{user}", activityId: 100301) {{ awardId orderId messageId }} }}"#
        ))
        .await;
    assert_eq!(d["draw"]["awardId"], award_id, "{d}");
    (
        d["draw"]["orderId"].as_str().unwrap().to_owned(),
        d["draw"]["messageId"].as_str().unwrap().to_owned(),
    )
}

fn task_query(message_id: &str) -> String {
    format!(r#"{{ task(messageId: "{message_id}") {{ state attempts lastError message }} }}"#)
}

async fn wait_state(app: &TestApp, message_id: &str, state: &str) -> Value {
    app.eventually(15, &task_query(message_id), |t| t["task"]["state"] == state)
        .await["task"]
        .clone()
}

/// `award_state` of the award record `order_id`, wherever it is.
async fn award_state(app: &TestApp, order_id: &str) -> String {
    for shard in [SHARD_01, SHARD_02] {
        for t in 0..4 {
            let rows = app
                .sql(
                    shard,
                    &format!("SELECT award_state FROM user_award_record_{t:03} WHERE order_id = '{order_id}'"),
                )
                .await;
            if let Some(r) = rows.first() {
                return r["award_state"].as_str().unwrap().to_owned();
            }
        }
    }
    panic!("no award record {order_id}")
}

async fn count_everywhere(app: &TestApp, sql: &str) -> i64 {
    app.int(SHARD_01, sql).await + app.int(SHARD_02, sql).await
}

async fn queue_len(app: &TestApp, queue: &str) -> u32 {
    app.amqp()
        .await
        .queue_declare(
            queue.into(),
            QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap()
        .message_count()
}

/// Consumers only (no relay), in this process, with `settings`.
async fn consumers(settings: &Settings) -> Workers {
    let db = persistence::Databases::connect(&settings.database_settings())
        .await
        .unwrap();
    let redis = persistence::redis::connect(&settings.redis.url).await.unwrap();
    Workers::start(settings, &db, &redis, Arc::new(RelayNudge::new(&db)), None, false, true)
}

/// The states appended to `user`'s task-status stream for `message_id`, in order.
async fn streamed_states(app: &TestApp, user: &str, message_id: &str) -> Vec<String> {
    let mut conn = app.redis.clone();
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(app.key(&format!("bm:rm:task:{{{user}}}")))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    entries
        .ids
        .iter()
        .filter(|e| e.get::<String>("messageId").as_deref() == Some(message_id))
        .map(|e| e.get::<String>("state").unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_openai_use_count_award_is_granted_through_the_gateway_once() {
    let gateway = Gateway::start().await;
    let app = spawn_app_with(|s| gateway.configure(s)).await;
    rig_draws_to(&app, 102).await;
    let (order, id) = win(&app, "xiaofuge", 102).await;
    wait_state(&app, &id, "DELIVERED").await;
    let calls = gateway.calls();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].key.as_deref(), Some(order.as_str()), "idempotency key");
    assert_eq!(
        calls[0].body,
        json!({
            "appId": APP_ID,
            "appToken": APP_TOKEN,
            "openid": "xiaofuge",
            "increaseQuota": 5,
            "outBusinessNo": order,
        })
    );
    assert_eq!(award_state(&app, &order).await, "completed");
    assert_eq!(
        app.int(
            SHARD_01,
            "SELECT COUNT(*) FROM user_credit_account WHERE user_id = 'xiaofuge'"
        )
        .await,
        0,
        "no credits for a use count"
    );
    app.eventually(
        5,
        r#"{ userAwards(userId: "xiaofuge", first: 5) { edges { node { awardId awardState } } } }"#,
        |d| d["userAwards"]["edges"][0]["node"] == json!({"awardId": 102, "awardState": "COMPLETED"}),
    )
    .await;
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_send_award_grants_once_even_with_two_consumers() {
    let gateway = Gateway::start().await;
    let app = spawn_app_with(|s| {
        gateway.configure(s);
        s.consumers.enabled = false;
    })
    .await;
    rig_draws_to(&app, 102).await;
    let (order, id) = win(&app, "xiaofuge", 102).await;
    let message = wait_state(&app, &id, "PUBLISHED").await["message"]
        .as_str()
        .unwrap()
        .to_owned();
    // The broker redelivers: a second copy of the message waits in the queue.
    app.amqp()
        .await
        .basic_publish(
            "".into(),
            app.queue("send_award").as_str().into(),
            Default::default(),
            message.as_bytes(),
            persistence::rabbit::consumer::persistent_json().with_message_id(id.as_str().into()),
        )
        .await
        .unwrap()
        .await
        .unwrap();
    assert_eq!(queue_len(&app, &app.queue("send_award")).await, 2);
    let (a, b) = (consumers(&app.settings).await, consumers(&app.settings).await);
    wait_state(&app, &id, "DELIVERED").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while queue_len(&app, &app.queue("send_award")).await > 0 {
        assert!(std::time::Instant::now() < deadline, "copies left in the queue");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    a.stop().await;
    b.stop().await;
    let calls = gateway.calls();
    assert!((1..=2).contains(&calls.len()), "{calls:?}");
    assert!(
        calls.iter().all(|c| c.key.as_deref() == Some(order.as_str())),
        "every call carries the order id: {calls:?}"
    );
    assert_eq!(gateway.granted(), HashMap::from([(order.clone(), 5)]), "granted once");
    assert_eq!(count_everywhere(&app, "SELECT COUNT(*) FROM inbox").await, 1);
    assert_eq!(award_state(&app, &order).await, "completed");
    assert_eq!(queue_len(&app, &format!("{}.dead", app.queue("send_award"))).await, 0);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_gateway_is_retried_until_it_grants() {
    let gateway = Gateway::start().await;
    gateway.script(
        &[Answer::Status(502), Answer::Code("0001"), Answer::Hang],
        Answer::Granted,
    );
    let app = spawn_app_with(|s| gateway.configure(s)).await;
    rig_draws_to(&app, 102).await;
    let (order, id) = win(&app, "xiaofuge", 102).await;
    wait_state(&app, &id, "DELIVERED").await;
    let calls = gateway.calls();
    assert_eq!(
        calls.iter().map(|c| c.answer).collect::<Vec<_>>(),
        [Answer::Status(502), Answer::Code("0001"), Answer::Hang, Answer::Granted],
        "a non-2xx status, another code and a timeout are retried"
    );
    assert!(calls.iter().all(|c| c.key.as_deref() == Some(order.as_str())));
    assert_eq!(gateway.granted(), HashMap::from([(order.clone(), 5)]));
    assert_eq!(award_state(&app, &order).await, "completed");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_award_whose_gateway_stays_down_is_parked_then_granted_when_redriven() {
    let gateway = Gateway::start().await;
    gateway.script(&[], Answer::Code("0001"));
    let app = spawn_app_with(|s| {
        gateway.configure(s);
        s.consumers.max_attempts = 3;
        // No automatic re-drive during the test: the parked message stays put.
        s.consumers.redrive_interval_ms = 600_000;
    })
    .await;
    rig_draws_to(&app, 102).await;
    let (order, id) = win(&app, "xiaofuge", 102).await;
    let parked = format!("{}.parked", app.queue("send_award"));
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while queue_len(&app, &parked).await == 0 {
        assert!(std::time::Instant::now() < deadline, "never parked");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gateway.calls().len(), 3, "three attempts");
    assert!(gateway.granted().is_empty());
    assert_eq!(queue_len(&app, &format!("{}.dead", app.queue("send_award"))).await, 0);
    assert_eq!(award_state(&app, &order).await, "create");
    assert_eq!(app.ok(&task_query(&id)).await["task"]["state"], "PUBLISHED", "not dead");
    // The gateway recovers; the parked message is re-driven.
    gateway.script(&[], Answer::Granted);
    let moved = persistence::rabbit::consumer::redrive(
        &app.settings.rabbitmq.url,
        &Topology::new(app.settings.rabbitmq.queue_prefix.clone()),
        "send_award",
        10,
        None,
    )
    .await
    .unwrap();
    assert_eq!(moved, 1);
    wait_state(&app, &id, "DELIVERED").await;
    assert_eq!(gateway.granted(), HashMap::from([(order.clone(), 5)]));
    assert_eq!(award_state(&app, &order).await, "completed");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_award_without_a_distributor_is_dead_until_replayed_with_one_configured() {
    let gateway = Gateway::start().await;
    // The app runs without a gateway: `openai_use_count` has no distributor.
    let app = spawn_app_with(|s| s.consumers.enabled = false).await;
    let unconfigured = consumers(&app.settings).await;
    rig_draws_to(&app, 102).await;
    let (order, id) = win(&app, "xiaofuge", 102).await;
    let reason = "no distributor configured for award key openai_use_count";
    let dead = wait_state(&app, &id, "DEAD").await;
    assert_eq!(dead["lastError"], reason);
    assert_eq!(dead["attempts"], 1, "the publish attempts");
    let listed = app
        .ok("{ tasks(state: DEAD, first: 10) { edges { node { messageId lastError } } } }")
        .await;
    assert_eq!(
        listed["tasks"]["edges"],
        json!([{"node": {"messageId": id, "lastError": reason}}])
    );
    assert_eq!(award_state(&app, &order).await, "create", "never marked delivered");
    assert_eq!(count_everywhere(&app, "SELECT COUNT(*) FROM inbox").await, 0);
    assert_eq!(
        streamed_states(&app, "xiaofuge", &id).await,
        ["CREATED", "PUBLISHED", "DEAD"],
        "DEAD announced on the task-status stream"
    );
    // The message waits in the dead-letter queue with the reason.
    let dead_queue = format!("{}.dead", app.queue("send_award"));
    let got = app
        .amqp()
        .await
        .basic_get(dead_queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("dead-lettered");
    let error = got
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(persistence::rabbit::consumer::ERROR_HEADER).cloned());
    assert_eq!(error, Some(AMQPValue::LongString(reason.into())));
    assert!(gateway.calls().is_empty());

    // The operator configures the gateway, restarts the consumers and replays the task.
    unconfigured.stop().await;
    let mut configured = app.settings.clone();
    gateway.configure(&mut configured);
    let workers = consumers(&configured).await;
    let replayed = app
        .ok(&format!(
            r#"mutation {{ replayTask(messageId: "{id}") {{ state attempts }} }}"#
        ))
        .await;
    assert_eq!(replayed["replayTask"], json!({"state": "CREATED", "attempts": 0}));
    wait_state(&app, &id, "DELIVERED").await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    workers.stop().await;
    assert_eq!(gateway.calls().len(), 1, "granted exactly once");
    assert_eq!(gateway.granted(), HashMap::from([(order.clone(), 5)]));
    assert_eq!(award_state(&app, &order).await, "completed");
    assert_eq!(count_everywhere(&app, "SELECT COUNT(*) FROM inbox").await, 1);
    let task = app.ok(&task_query(&id)).await["task"].clone();
    assert_eq!(task["lastError"], Value::Null);
    assert_eq!(
        app.error_code(&format!(r#"mutation {{ replayTask(messageId: "{id}") {{ state }} }}"#))
            .await,
        "0002",
        "a delivered task is not replayed"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_openai_model_award_has_no_distributor_and_is_never_delivered() {
    let gateway = Gateway::start().await;
    let app = spawn_app_with(|s| gateway.configure(s)).await;
    rig_draws_to(&app, 105).await;
    let (order, id) = win(&app, "liergou", 105).await;
    let reason = "no distributor configured for award key openai_model";
    assert_eq!(wait_state(&app, &id, "DEAD").await["lastError"], reason);
    assert_eq!(award_state(&app, &order).await, "create");
    let dead_queue = format!("{}.dead", app.queue("send_award"));
    assert_eq!(queue_len(&app, &dead_queue).await, 1);
    // Replaying without a distributor changes nothing: dead again, with the same reason.
    app.ok(&format!(r#"mutation {{ replayTask(messageId: "{id}") {{ state }} }}"#))
        .await;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while queue_len(&app, &dead_queue).await < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the replayed copy was not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(wait_state(&app, &id, "DEAD").await["lastError"], reason);
    assert_eq!(award_state(&app, &order).await, "create");
    assert!(gateway.calls().is_empty(), "the gateway only grants use counts");
    app.cleanup().await;
}
