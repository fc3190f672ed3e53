//! Outbox relay and idempotent consumers against the real MariaDB, Redis and RabbitMQ
//! (spec §6.2–6.5, §7.4, §9 items 28–29).

use std::sync::Arc;
use std::time::Duration;

use lapin::options::{BasicGetOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use persistence::outbox::relay::{Relay, RelayNudge};
use persistence::rabbit::Topology;
use persistence::rabbit::publisher::Publisher;
use serde_json::Value;
use tokio::sync::watch;

use test_support::app::{CONFIG, SHARD_01, SHARD_02, TestApp, spawn_app_with};

fn recharge(user: &str, sku: i64, obn: &str) -> String {
    format!(r#"mutation {{ rechargeQuota(userId: "{user}", sku: {sku}, outBusinessNo: "{obn}") {{ orderId }} }}"#)
}

fn draw(user: &str) -> String {
    format!(r#"mutation {{ draw(userId: "{user}", activityId: 100301) {{ awardId orderId messageId }} }}"#)
}

fn task_state(message_id: &str) -> String {
    format!(r#"{{ task(messageId: "{message_id}") {{ state attempts lastError message }} }}"#)
}

/// Every default draw of 100006 wins award 101 (random credits) with a fixed range `5,5`.
async fn rig_credit_award(app: &TestApp) {
    app.rig_draws_to_award_101().await;
    app.exec(CONFIG, "UPDATE award SET award_config = '5,5' WHERE award_id = 101")
        .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
}

async fn databases(app: &TestApp) -> persistence::Databases {
    persistence::Databases::connect(&app.settings.database_settings())
        .await
        .expect("databases")
}

async fn relay(app: &TestApp, db: &persistence::Databases) -> (Arc<Relay>, Arc<RelayNudge>) {
    let nudge = Arc::new(RelayNudge::new(db));
    let publisher = Arc::new(Publisher::new(
        app.settings.rabbitmq.url.clone(),
        Topology::new(app.settings.rabbitmq.queue_prefix.clone()),
    ));
    (
        Arc::new(Relay::new(
            db.clone(),
            publisher,
            app.settings.relay.relay_settings(),
            nudge.clone(),
        )),
        nudge,
    )
}

/// Messages waiting in the test's queue of `topic`.
async fn queued(app: &TestApp, topic: &str) -> u32 {
    let ch = app.amqp().await;
    ch.queue_declare(
        app.queue(topic).as_str().into(),
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

async fn count_everywhere(app: &TestApp, sql: &str) -> i64 {
    app.int(SHARD_01, sql).await + app.int(SHARD_02, sql).await
}

#[tokio::test]
async fn a_draws_send_award_reaches_its_queue_in_the_original_envelope() {
    let app = spawn_app_with(|s| s.consumers.enabled = false).await;
    rig_credit_award(&app).await;
    app.ok(&recharge("xiaofuge", 9014, "e-1")).await;
    let d = app.ok(&draw("xiaofuge")).await["draw"].clone();
    let id = d["messageId"].as_str().unwrap().to_owned();
    app.eventually(10, &task_state(&id), |t| t["task"]["state"] == "PUBLISHED")
        .await;
    let ch = app.amqp().await;
    let got = ch
        .basic_get(
            app.queue("send_award").as_str().into(),
            BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("a message in the queue");
    assert_eq!(
        got.delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str().to_owned()),
        Some(id.clone())
    );
    assert_eq!(got.delivery.properties.delivery_mode(), &Some(2), "persistent");
    let body: Value = serde_json::from_slice(&got.delivery.data).unwrap();
    assert_eq!(body["id"], id.as_str());
    assert!(body["timestamp"].is_i64());
    assert_eq!(body["data"]["userId"], "xiaofuge");
    assert_eq!(body["data"]["orderId"], d["orderId"]);
    assert_eq!(body["data"]["awardId"], 101);
    let raw = String::from_utf8(got.delivery.data.clone()).unwrap();
    assert!(
        raw.starts_with(r#"{"data":{"#) && raw.contains(r#""id":""#),
        "fastjson key order: {raw}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_delivered_credit_award_completes_the_record_and_credits_once() {
    let app = spawn_app_with(|_| {}).await;
    app.rig_draws_to_award_101().await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    app.ok(&recharge("xiaofuge", 9014, "c-1")).await;
    let d = app.ok(&draw("xiaofuge")).await["draw"].clone();
    let id = d["messageId"].as_str().unwrap().to_owned();
    app.eventually(10, &task_state(&id), |t| t["task"]["state"] == "DELIVERED")
        .await;
    let record = app
        .sql(
            SHARD_01,
            &format!(
                "SELECT award_state FROM user_award_record_001 WHERE order_id = '{}'",
                d["orderId"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(record[0]["award_state"], "completed");
    let acc = app.sql(SHARD_01, "SELECT CAST(total_amount AS CHAR) t, CAST(available_amount AS CHAR) a FROM user_credit_account WHERE user_id = 'xiaofuge'").await;
    let total: f64 = acc[0]["t"].as_str().unwrap().parse().unwrap();
    assert!(
        (1.0..=100.0).contains(&total),
        "credit {total} within the award's 1,100 range"
    );
    assert_eq!(acc[0]["t"], acc[0]["a"]);
    let digits = acc[0]["t"]
        .as_str()
        .unwrap()
        .replace('.', "")
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len();
    assert!(digits <= 3, "three significant digits: {}", acc[0]["t"]);
    // Replaying the very same message has no second effect.
    let ch = app.amqp().await;
    let message = app.ok(&task_state(&id)).await["task"]["message"]
        .as_str()
        .unwrap()
        .to_owned();
    ch.basic_publish(
        "".into(),
        app.queue("send_award").as_str().into(),
        Default::default(),
        message.as_bytes(),
        persistence::rabbit::consumer::persistent_json(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(app.int(SHARD_01, "SELECT COUNT(*) FROM inbox").await, 1);
    let again = app
        .sql(
            SHARD_01,
            "SELECT CAST(total_amount AS CHAR) t FROM user_credit_account WHERE user_id = 'xiaofuge'",
        )
        .await;
    assert_eq!(again[0]["t"], acc[0]["t"], "no second credit");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_broker_unreachable_draws_succeed_and_everything_is_delivered_once_it_is_back() {
    let app = spawn_app_with(|s| s.rabbitmq.url = "amqp://guest:guest@127.0.0.1:5999/%2f".into()).await;
    rig_credit_award(&app).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        let user = format!("offline{i}");
        app.ok(&recharge(&user, 9014, &format!("o{i}"))).await;
        ids.push(
            app.ok(&draw(&user)).await["draw"]["messageId"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for id in &ids {
        let t = app.ok(&task_state(id)).await;
        assert_eq!(
            (t["task"]["state"].as_str(), t["task"]["attempts"].as_i64()),
            (Some("CREATED"), Some(0)),
            "pending, no attempt burnt"
        );
    }
    // Projection-only rows (the account snapshots of the recharges and draws) do not wait
    // behind the broker: they are applied meanwhile.
    let started = std::time::Instant::now();
    loop {
        let waiting = count_everywhere(
            &app,
            "SELECT COUNT(*) FROM task WHERE topic = 'activity_account_changed' AND state <> 'completed'",
        )
        .await;
        if waiting == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{waiting} account snapshots still wait"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count_everywhere(
            &app,
            "SELECT COUNT(*) FROM task WHERE topic = 'activity_account_changed'"
        )
        .await,
        20
    );
    // The broker is back: a worker with the right address drains everything.
    let mut fixed = app.settings.clone();
    fixed.rabbitmq.url = "amqp://guest:guest@127.0.0.1:5672/%2f".into();
    let db = databases(&app).await;
    let workers = api::workers::Workers::start(
        &fixed,
        &db,
        &persistence::redis::connect(&fixed.redis.url).await.unwrap(),
        Arc::new(RelayNudge::new(&db)),
        None,
        true,
        true,
    );
    for id in &ids {
        app.eventually(15, &task_state(id), |t| t["task"]["state"] == "DELIVERED")
            .await;
    }
    workers.stop().await;
    assert_eq!(count_everywhere(&app, "SELECT COUNT(*) FROM inbox").await, 10);
    assert_eq!(
        count_everywhere(
            &app,
            "SELECT COUNT(*) FROM user_credit_account WHERE total_amount = 5 AND available_amount = 5"
        )
        .await,
        10
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relay_killed_mid_stream_loses_nothing_and_effects_happen_exactly_once() {
    let app = spawn_app_with(|s| s.relay.enabled = false).await;
    rig_credit_award(&app).await;
    let n = 40;
    for i in 0..n {
        let user = format!("crash{i}");
        app.ok(&recharge(&user, 9014, &format!("k{i}"))).await;
        app.ok(&draw(&user)).await;
    }
    let db = databases(&app).await;
    // Start and abort relays at arbitrary points, including between publish and commit.
    for round in 0..12u64 {
        let (relay, _) = relay(&app, &db).await;
        let (_tx, rx) = watch::channel(false);
        let handle = tokio::spawn(relay.run(rx));
        tokio::time::sleep(Duration::from_millis(3 + round * 7 % 23)).await;
        handle.abort();
        let _ = handle.await;
    }
    let (relay, _) = relay(&app, &db).await;
    let (stop, rx) = watch::channel(false);
    let handle = tokio::spawn(relay.run(rx));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while count_everywhere(
        &app,
        "SELECT COUNT(*) FROM task WHERE topic = 'send_award' AND delivered_at IS NULL",
    )
    .await
        > 0
    {
        assert!(std::time::Instant::now() < deadline, "not everything was delivered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = stop.send(true);
    let _ = handle.await;
    assert_eq!(count_everywhere(&app, "SELECT COUNT(*) FROM inbox").await, n);
    assert_eq!(
        count_everywhere(&app, "SELECT COUNT(*) FROM user_credit_account").await,
        n
    );
    assert_eq!(
        count_everywhere(
            &app,
            "SELECT CAST(COALESCE(SUM(total_amount), 0) AS SIGNED) FROM user_credit_account"
        )
        .await,
        5 * n,
        "credit balance = sum of awards"
    );
    assert_eq!(
        count_everywhere(&app, "SELECT COUNT(*) FROM user_credit_account WHERE total_amount <> 5").await,
        0,
        "nobody credited twice"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_relays_share_the_shards_without_publishing_a_row_twice() {
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    let n = 600;
    for db in [SHARD_01, SHARD_02] {
        let values: Vec<String> = (0..n / 2)
            .map(|i| format!("('u{i}', 'strategy_award_stock_zero', 'm{db}-{i}', '{{\"data\":{{\"awardId\":1,\"strategyId\":1}},\"id\":\"m{db}-{i}\",\"timestamp\":1}}', 'create')"))
            .collect();
        app.exec(
            db,
            &format!(
                "INSERT INTO task (user_id, topic, message_id, message, state) VALUES {}",
                values.join(",")
            ),
        )
        .await;
    }
    let db = databases(&app).await;
    let (a, _) = relay(&app, &db).await;
    let (b, _) = relay(&app, &db).await;
    let (stop, rx) = watch::channel(false);
    let (ha, hb) = (tokio::spawn(a.clone().run(rx.clone())), tokio::spawn(b.clone().run(rx)));
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while count_everywhere(&app, "SELECT COUNT(*) FROM task WHERE state <> 'completed'").await > 0 {
        assert!(std::time::Instant::now() < deadline, "rows left behind");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(true);
    let _ = (ha.await, hb.await);
    let (pa, pb) = (
        a.stats().published.load(std::sync::atomic::Ordering::Relaxed),
        b.stats().published.load(std::sync::atomic::Ordering::Relaxed),
    );
    assert_eq!(pa + pb, n as u64, "each row published once (a {pa}, b {pb})");
    let deadlocks = a.stats().deadlocks.load(std::sync::atomic::Ordering::Relaxed)
        + b.stats().deadlocks.load(std::sync::atomic::Ordering::Relaxed);
    assert_eq!(deadlocks, 0, "four claim loops per shard never deadlock each other");
    assert_eq!(
        queued(&app, "strategy_award_stock_zero").await,
        n as u32,
        "the queue holds each event once"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_unroutable_event_is_dead_lettered_after_its_attempts_and_can_be_replayed() {
    let app = spawn_app_with(|s| {
        s.consumers.enabled = false;
        s.relay.max_attempts = 3;
    })
    .await;
    app.exec(SHARD_01, r#"INSERT INTO task (user_id, topic, message_id, message, state) VALUES ('xiaofuge', 'no_such_topic', 'poison-1', '{"data":{},"id":"poison-1","timestamp":1}', 'create')"#).await;
    app.ok("mutation { armStrategy(strategyId: 100006) }").await; // any commit-free activity; the poll picks the row up
    let t = app
        .eventually(15, &task_state("poison-1"), |t| {
            t["task"]["state"] == "DEAD" && t["task"]["lastError"].is_string()
        })
        .await;
    assert_eq!(t["task"]["attempts"], 3);
    assert!(t["task"]["lastError"].as_str().unwrap().contains("NO_ROUTE"), "{t}");
    // The stream announces DEAD right after the confirms, before the settle commits: the shard
    // lists it a moment later.
    let listed = app
        .eventually(
            10,
            "{ tasks(state: DEAD, first: 10) { edges { node { messageId state } } pageInfo { hasNextPage } } }",
            |l| l["tasks"]["edges"][0]["node"]["messageId"] == "poison-1",
        )
        .await;
    assert_eq!(listed["tasks"]["edges"].as_array().map(Vec::len), Some(1), "{listed}");
    // Not replayable while published; unknown ids are errors.
    assert_eq!(
        app.error_code(r#"mutation { replayTask(messageId: "nope") { state } }"#)
            .await,
        "0002"
    );
    // The operator fixes the routing, then replays.
    let ch = app.amqp().await;
    ch.queue_declare(
        app.queue("no_such_topic").as_str().into(),
        QueueDeclareOptions::durable(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let replayed = app
        .ok(r#"mutation { replayTask(messageId: "poison-1") { state attempts } }"#)
        .await;
    assert_eq!(replayed["replayTask"]["state"], "CREATED");
    app.eventually(10, &task_state("poison-1"), |t| t["task"]["state"] == "PUBLISHED")
        .await;
    assert_eq!(
        app.error_code(r#"mutation { replayTask(messageId: "poison-1") { state } }"#)
            .await,
        "0002"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn tasks_paginate_across_shards() {
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    for (db, user) in [(SHARD_01, "xiaofuge"), (SHARD_02, "user001")] {
        for i in 0..3 {
            app.exec(db, &format!("INSERT INTO task (user_id, topic, message_id, message) VALUES ('{user}', 'send_award', '{user}-{i}', '{{}}')")).await;
        }
    }
    let mut seen = Vec::new();
    let mut after = String::new();
    loop {
        let arg = if after.is_empty() {
            String::new()
        } else {
            format!(r#", after: "{after}""#)
        };
        let page = app.ok(&format!("{{ tasks(first: 4{arg}) {{ edges {{ cursor node {{ messageId state }} }} pageInfo {{ hasNextPage endCursor }} }} }}")).await;
        for e in page["tasks"]["edges"].as_array().unwrap() {
            seen.push(e["node"]["messageId"].as_str().unwrap().to_owned());
            assert_eq!(e["node"]["state"], "CREATED");
        }
        if page["tasks"]["pageInfo"]["hasNextPage"] != true {
            break;
        }
        after = page["tasks"]["pageInfo"]["endCursor"].as_str().unwrap().to_owned();
    }
    assert_eq!(
        seen,
        [
            "xiaofuge-0",
            "xiaofuge-1",
            "xiaofuge-2",
            "user001-0",
            "user001-1",
            "user001-2"
        ]
    );
    assert_eq!(
        app.error_code("{ tasks(first: 1000) { edges { cursor } } }").await,
        "0002"
    );
    assert_eq!(
        app.error_code(r#"{ tasks(after: "zz") { edges { cursor } } }"#).await,
        "0002"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn durable_stock_converges_to_the_live_counters_in_one_pass() {
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    for i in 0..5 {
        app.ok(&recharge(&format!("sync{i}"), 9013, &format!("s{i}"))).await;
    }
    let mut conn = app.redis.clone();
    let _: () = redis::cmd("SET")
        .arg(app.key("strategy_award_count_key_100006_102"))
        .arg(3)
        .query_async(&mut conn)
        .await
        .unwrap();
    let db = databases(&app).await;
    let redis = persistence::redis::connect(&app.settings.redis.url).await.unwrap();
    let sync = persistence::stock_sync::StockSync::new(
        db.config.clone(),
        redis,
        persistence::redis::Keys::new(app.settings.redis.key_prefix.clone()),
        Duration::from_secs(1),
    );
    let report = sync.sync_once().await.unwrap();
    assert_eq!((report.awards, report.skus), (1, 1), "{report:?}");
    assert_eq!(
        app.int(
            CONFIG,
            "SELECT stock_count_surplus FROM raffle_activity_sku WHERE sku = 9013"
        )
        .await,
        99884 - 5
    );
    assert_eq!(
        app.int(
            CONFIG,
            "SELECT award_count_surplus FROM strategy_award WHERE strategy_id = 100006 AND award_id = 102"
        )
        .await,
        3
    );
    // A counter above the durable surplus (e.g. re-armed by hand) never raises it.
    let _: () = redis::cmd("SET")
        .arg(app.key("strategy_award_count_key_100006_102"))
        .arg(50)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        sync.sync_once().await.unwrap(),
        persistence::stock_sync::SyncReport::default()
    );
    assert_eq!(
        app.int(
            CONFIG,
            "SELECT award_count_surplus FROM strategy_award WHERE strategy_id = 100006 AND award_id = 102"
        )
        .await,
        3
    );
    app.cleanup().await;
}

/// The consumers' MariaDB is unreachable for longer than their retries: the award is parked,
/// not lost and not dead; once MariaDB answers again it is re-driven by itself and delivered
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_award_parked_during_a_database_outage_is_delivered_by_itself_once_it_ends() {
    use test_support::proxy::FaultProxy;
    let app = spawn_app_with(|s| {
        s.consumers.enabled = false;
        s.consumers.max_attempts = 3;
    })
    .await;
    rig_credit_award(&app).await;
    app.ok(&recharge("xiaofuge", 9014, "park-1")).await;
    let id = app.ok(&draw("xiaofuge")).await["draw"]["messageId"]
        .as_str()
        .unwrap()
        .to_owned();
    app.eventually(15, &task_state(&id), |t| t["task"]["state"] == "PUBLISHED")
        .await;

    // A consumer process whose databases sit behind a proxy that is then cut.
    let server = app.settings.database.config_url.clone();
    let host = server
        .trim_start_matches("mysql://")
        .split('@')
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .unwrap()
        .to_owned();
    let upstream = tokio::net::lookup_host(&host).await.unwrap().next().unwrap();
    let proxy = FaultProxy::start(upstream).await.unwrap();
    let mut consumer_settings = app.settings.clone();
    let through = |url: &str| url.replacen(&host, &proxy.addr().to_string(), 1);
    consumer_settings.database.config_url = through(&consumer_settings.database.config_url);
    consumer_settings.database.shard_urls = consumer_settings
        .database
        .shard_urls
        .iter()
        .map(|u| through(u))
        .collect();
    consumer_settings.database.connect_timeout_ms = 500;
    let db = persistence::Databases::connect(&consumer_settings.database_settings())
        .await
        .unwrap();
    proxy.refuse();
    let registry = prometheus::Registry::new();
    let metrics = persistence::metrics::PersistenceMetrics::register(&registry, 2).unwrap();
    let workers = api::workers::Workers::start_observed(
        &consumer_settings,
        &db,
        &persistence::redis::connect(&consumer_settings.redis.url).await.unwrap(),
        Arc::new(RelayNudge::new(&db)),
        None,
        api::workers::Roles {
            relay: false,
            consumers: true,
        },
        Some(&metrics),
    );
    let counted = |result: &str| {
        let send_award = metrics.consumers.topic("send_award").unwrap();
        match result {
            "parked" => send_award.parked.get(),
            "redriven" => send_award.redriven.get(),
            "ok" => send_award.ok.get(),
            _ => send_award.dead.get(),
        }
    };

    // Parked after its three attempts, not dead.
    let ch = app.amqp().await;
    let count = |queue: String| {
        let ch = ch.clone();
        async move {
            ch.queue_declare(
                queue.as_str().into(),
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
    };
    let started = std::time::Instant::now();
    while count(format!("{}.parked", app.queue("send_award"))).await == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the award was never parked"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        count(format!("{}.dead", app.queue("send_award"))).await,
        0,
        "not dead-lettered"
    );
    assert_eq!(app.ok(&task_state(&id)).await["task"]["state"], "PUBLISHED");

    // MariaDB is back: the parked award is re-driven and delivered, once.
    proxy.pass();
    app.eventually(20, &task_state(&id), |t| t["task"]["state"] == "DELIVERED")
        .await;
    workers.stop().await;
    assert_eq!(count(format!("{}.parked", app.queue("send_award"))).await, 0);
    // Counted as it happened: parked once, re-driven once, applied once, never dead.
    assert_eq!(
        (counted("parked"), counted("redriven"), counted("ok"), counted("dead")),
        (1, 1, 1, 0)
    );
    assert_eq!(
        app.int(
            SHARD_01,
            "SELECT CAST(total_amount AS SIGNED) FROM user_credit_account WHERE user_id = 'xiaofuge'"
        )
        .await,
        5,
        "credited once"
    );
    app.cleanup().await;
}

/// Blackholes the proxy in front of the shard the moment the first batch is confirmed by the
/// broker, before the relay settles it.
struct CutBeforeSettle {
    proxy: Arc<test_support::proxy::FaultProxy>,
    cut: Arc<std::sync::atomic::AtomicBool>,
}

impl persistence::outbox::relay::RelayObserver for CutBeforeSettle {
    fn confirmed(&self, _shard: usize, _rows: &[persistence::outbox::relay::RelayedRow<'_>]) {
        if !self.cut.swap(true, std::sync::atomic::Ordering::SeqCst) {
            self.proxy.blackhole();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settle_the_shard_does_not_answer_is_retried_while_leased_so_nothing_is_published_twice() {
    use std::sync::atomic::Ordering;
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    let n = 40;
    let values: Vec<String> = (0..n)
        .map(|i| format!("('u{i}', 'strategy_award_stock_zero', 'settle-{i}', '{{\"data\":{{\"awardId\":1,\"strategyId\":1}},\"id\":\"settle-{i}\",\"timestamp\":1}}', 'create')"))
        .collect();
    app.exec(
        SHARD_01,
        &format!(
            "INSERT INTO task (user_id, topic, message_id, message, state) VALUES {}",
            values.join(",")
        ),
    )
    .await;
    // Shard 01 through a fault proxy, with short deadlines.
    let url = app.settings.database.shard_urls[0].clone();
    let server = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split('/').next())
        .and_then(|s| s.rsplit('@').next())
        .expect("host:port in the shard URL")
        .to_owned();
    let upstream = tokio::net::lookup_host(&server).await.unwrap().next().unwrap();
    let proxy = Arc::new(test_support::proxy::FaultProxy::start(upstream).await.unwrap());
    let mut settings = app.settings.clone();
    settings.database.shard_urls[0] = url.replacen(&server, &proxy.addr().to_string(), 1);
    settings.database.connect_timeout_ms = 500;
    settings.database.response_timeout_ms = 500;
    let db = persistence::Databases::connect(&settings.database_settings())
        .await
        .expect("databases");
    let publisher = Arc::new(Publisher::new(
        app.settings.rabbitmq.url.clone(),
        Topology::new(app.settings.rabbitmq.queue_prefix.clone()),
    ));
    let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let relay = Relay::new(
        db.clone(),
        publisher,
        app.settings.relay.relay_settings(),
        Arc::new(RelayNudge::new(&db)),
    )
    .with_observer(Arc::new(CutBeforeSettle {
        proxy: proxy.clone(),
        cut: cut.clone(),
    }));
    // The shard comes back 2 s after it was cut (well within the 30 s lease).
    let healer = {
        let (proxy, cut) = (proxy.clone(), cut.clone());
        tokio::spawn(async move {
            while !cut.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
            proxy.pass();
        })
    };
    let started = std::time::Instant::now();
    let outcome = tokio::time::timeout(Duration::from_secs(20), relay.pump(0))
        .await
        .expect("the batch finishes within 20 s")
        .expect("the settle succeeds once the shard is back");
    healer.await.unwrap();
    let retries = relay.stats().settle_retries.load(Ordering::Relaxed);
    assert!(
        retries >= 1,
        "the settle was retried ({outcome:?} in {:?})",
        started.elapsed()
    );
    assert!(
        matches!(outcome, persistence::outbox::relay::BatchOutcome::Handled { published, .. } if published == n),
        "{outcome:?}"
    );
    assert_eq!(
        app.int(SHARD_01, "SELECT COUNT(*) FROM task WHERE state <> 'completed'")
            .await,
        0,
        "every row settled"
    );
    assert!(
        matches!(relay.pump(0).await, Ok(persistence::outbox::relay::BatchOutcome::Idle)),
        "nothing is due again"
    );
    assert_eq!(
        queued(&app, "strategy_award_stock_zero").await,
        n as u32,
        "each event published once"
    );
    app.cleanup().await;
}
