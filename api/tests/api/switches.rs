//! Runtime switches and draw protection across **two server processes** (this test's app and a
//! `big-market serve` child process of the same world): propagation within a second, also
//! without the pub/sub message; degrade; the shared rate limit and its blacklist; the runtime
//! draw deadline; configuration armed on one instance used by the other.

use std::time::{Duration, Instant};

use serde_json::Value;
use test_support::app::{CONFIG, SHARD_01, ServerProcess, TestApp, spawn_app_with};

const BIN: &str = env!("CARGO_BIN_EXE_big-market");

fn code(body: &Value) -> Option<&str> {
    test_support::app::error_code_of(body)
}

/// The write side alone, activity 100301 armed, every draw wins award 101 (plenty of stock).
async fn world() -> (TestApp, ServerProcess) {
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    app.rig_draws_to_award_101().await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    let other = app.spawn_process(BIN, |_| {}).await;
    (app, other)
}

async fn give_quota(app: &TestApp, user: &str) {
    app.ok(&format!(
        r#"mutation {{ rechargeQuota(userId: "{user}", sku: 9011, outBusinessNo: "q-{user}") {{ orderId }} }}"#
    ))
    .await;
}

/// One draw for `user` on the server at `address`; `None` when it succeeded, else its code.
async fn draw_at(app: &TestApp, address: &str, user: &str) -> Option<String> {
    let token = app.user_token(user);
    let body = app
        .graphql_at(
            address,
            Some(&token),
            "mutation { draw(activityId: 100301) { orderId } }",
        )
        .await;
    match code(&body) {
        None => {
            assert!(body["data"]["draw"]["orderId"].is_string(), "{body}");
            None
        }
        Some(c) => Some(c.to_owned()),
    }
}

async fn set_switch(app: &TestApp, address: &str, key: &str, value: &str) {
    let body = app
        .graphql_at(
            address,
            Some(&app.admin_token),
            &format!(r#"mutation {{ setSwitch(key: "{key}", value: "{value}") {{ key value }} }}"#),
        )
        .await;
    assert!(body.get("errors").is_none(), "setSwitch {key}={value}: {body}");
}

async fn tickets(app: &TestApp) -> i64 {
    app.count_split("user_raffle_order").await
}

/// Draws on `address` until `want` answers (or 3 s pass); returns how long it took.
async fn until_answer(app: &TestApp, address: &str, user: &str, want: Option<&str>) -> Duration {
    let started = Instant::now();
    loop {
        let got = draw_at(app, address, user).await;
        if got.as_deref() == want {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{address} still answers {got:?} after 3 s (want {want:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_switch_set_on_one_instance_reaches_the_other_within_a_second_also_without_its_message() {
    let (app, other) = world().await;
    give_quota(&app, "sw-user").await;

    // setSwitch on the process; the in-process instance refuses within a second.
    set_switch(&app, &other.address, "degradeSwitch", "open").await;
    let took = until_answer(&app, &app.address, "sw-user", Some("0004")).await;
    assert!(took < Duration::from_secs(1), "applied after {took:?}");
    let before = tickets(&app).await;
    assert_eq!(draw_at(&app, &other.address, "sw-user").await.as_deref(), Some("0004"));
    assert_eq!(tickets(&app).await, before, "a degraded draw writes nothing");

    // A lost message: the row changes without any publish; both re-read it within a second.
    app.exec(
        CONFIG,
        "UPDATE switch_setting SET switch_value = 'close' WHERE switch_key = 'degradeSwitch'",
    )
    .await;
    let started = Instant::now();
    until_answer(&app, &app.address, "sw-user", None).await;
    until_answer(&app, &other.address, "sw-user", None).await;
    let took = started.elapsed();
    assert!(took < Duration::from_millis(1_500), "both applied it after {took:?}");

    let listed = app.ok("{ switches { key value } }").await;
    assert!(
        listed["switches"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s["key"] == "degradeSwitch" && s["value"] == "close"),
        "{listed}"
    );
    let guards = app.ok("{ drawGuards { guard refused } }").await;
    let degraded = guards["drawGuards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["guard"] == "degraded")
        .unwrap()["refused"]
        .as_u64()
        .unwrap();
    assert!(degraded >= 2, "{guards}");
    drop(other);
    app.cleanup().await;
}

#[tokio::test]
async fn the_rate_limit_holds_across_both_instances_and_its_blacklist_expires() {
    let (app, other) = world().await;
    for user in ["rl-a", "rl-b", "rl-c"] {
        give_quota(&app, user).await;
    }
    set_switch(&app, &app.address, "rateLimiterBlacklistAfter", "0").await;
    set_switch(&app, &app.address, "rateLimiterSwitch", "open").await;
    tokio::time::sleep(Duration::from_millis(1_200)).await; // both instances apply it

    // 20 draws over 2.4 s, alternating between the instances: one permit per second in total.
    let mut ok = 0;
    for i in 0..20 {
        let address = if i % 2 == 0 { &app.address } else { &other.address };
        match draw_at(&app, address, "rl-a").await {
            None => ok += 1,
            Some(c) => assert_eq!(c, "0005"),
        }
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    assert!((2..=4).contains(&ok), "{ok} draws passed in ~2.4 s at 1 per second");

    // Blacklisted on the second refusal, for 2 s; visible to admins, then gone.
    set_switch(&app, &other.address, "rateLimiterBlacklistAfter", "1").await;
    set_switch(&app, &other.address, "rateLimiterBlacklistSeconds", "2").await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(draw_at(&app, &app.address, "rl-b").await, None);
    assert_eq!(draw_at(&app, &other.address, "rl-b").await.as_deref(), Some("0005"));
    assert_eq!(draw_at(&app, &app.address, "rl-b").await.as_deref(), Some("0005"));
    let listed = app.ok("{ rateLimitBlacklist { userId until } }").await;
    assert_eq!(listed["rateLimitBlacklist"][0]["userId"], "rl-b", "{listed}");
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(
        draw_at(&app, &other.address, "rl-b").await.as_deref(),
        Some("0005"),
        "a permit is free again, but the blacklist still holds"
    );
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    assert_eq!(draw_at(&app, &app.address, "rl-b").await, None, "the entry expired");

    // An admin takes a user off the blacklist at once.
    assert_eq!(draw_at(&app, &app.address, "rl-c").await, None);
    draw_at(&app, &app.address, "rl-c").await;
    draw_at(&app, &app.address, "rl-c").await;
    let unblocked = app.ok(r#"mutation { unblockUser(userId: "rl-c") }"#).await;
    assert_eq!(unblocked["unblockUser"], true);
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    assert_eq!(draw_at(&app, &other.address, "rl-c").await, None);
    let audited = app
        .int(
            CONFIG,
            "SELECT COUNT(*) FROM audit_log WHERE operation IN ('setSwitch', 'unblockUser')",
        )
        .await;
    assert_eq!(audited, 5);
    drop(other);
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_draw_past_the_deadline_set_at_runtime_answers_0006_and_writes_nothing() {
    use sea_orm::{ConnectionTrait as _, TransactionTrait as _};
    let (app, other) = world().await;
    give_quota(&app, "xiaofuge").await; // xiaofuge lives on shard 01
    set_switch(&app, &app.address, "drawTimeoutMs", "200").await;
    let stock_key = app.key("strategy_award_count_key_100006_101");
    let live = || async {
        let v: Option<i64> = redis::AsyncCommands::get(&mut app.redis.clone(), &stock_key)
            .await
            .unwrap();
        v
    };
    let stock_before = live().await;
    let holder = app.dbs[SHARD_01].begin().await.unwrap();
    holder
        .execute_unprepared("SELECT * FROM raffle_activity_account WHERE user_id = 'xiaofuge' FOR UPDATE")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(700)).await; // the process applied the switch
    let started = Instant::now();
    let answered = draw_at(&app, &other.address, "xiaofuge").await;
    let took = started.elapsed();
    holder.rollback().await.unwrap();
    assert_eq!(answered.as_deref(), Some("0006"));
    assert!(took < Duration::from_secs(3), "answered after {took:?}");
    assert_eq!(tickets(&app).await, 0, "nothing written");
    assert_eq!(
        live().await,
        stock_before,
        "the stock taken for the draw was given back"
    );
    assert_eq!(draw_at(&app, &other.address, "xiaofuge").await, None, "free again");
    drop(other);
    app.cleanup().await;
}

#[tokio::test]
async fn arming_a_changed_strategy_on_one_instance_changes_draws_on_the_other() {
    let (app, other) = world().await;
    give_quota(&app, "arm-user").await;
    let award = |body: Value| body["data"]["draw"]["awardId"].as_i64();
    let token = app.user_token("arm-user");
    let draw = "mutation { draw(activityId: 100301) { awardId } }";
    assert_eq!(
        award(app.graphql_at(&other.address, Some(&token), draw).await),
        Some(101)
    );

    // Every draw now wins 102 once the strategy is armed again — on this instance.
    app.exec(
        CONFIG,
        "UPDATE strategy_award SET award_rate = CASE award_id WHEN 102 THEN 1 ELSE 0 END WHERE strategy_id = 100006",
    )
    .await;
    app.ok("mutation { armStrategy(strategyId: 100006) }").await;
    let started = Instant::now();
    loop {
        let got = award(app.graphql_at(&other.address, Some(&token), draw).await);
        if got == Some(102) {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "the other instance still draws {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(other);
    app.cleanup().await;
}

#[tokio::test]
async fn switches_are_for_admins_and_unknown_keys_or_bad_values_are_0002() {
    let app = spawn_app_with(|_| {}).await;
    let user = app.user_token("someone");
    let body = app
        .graphql_as(
            Some(&user),
            r#"mutation { setSwitch(key: "degradeSwitch", value: "open") { key } }"#,
        )
        .await;
    assert_eq!(code(&body), Some("FORBIDDEN"));
    assert_eq!(
        code(&app.graphql_as(Some(&user), "{ switches { key } }").await),
        Some("FORBIDDEN")
    );
    for (key, value) in [
        ("degrade", "open"),
        ("degradeSwitch", "on"),
        ("drawTimeoutMs", "0"),
        ("rateLimiterPermitsPerSecond", "x"),
    ] {
        let body = app
            .graphql(&format!(
                r#"mutation {{ setSwitch(key: "{key}", value: "{value}") {{ key }} }}"#
            ))
            .await;
        assert_eq!(code(&body), Some("0002"), "{key}={value}: {body}");
    }
    assert_eq!(
        app.int(CONFIG, "SELECT COUNT(*) FROM switch_setting").await,
        0,
        "nothing stored"
    );
    let keys: Vec<String> = app.ok("{ switches { key value } }").await["switches"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| format!("{}={}", s["key"].as_str().unwrap(), s["value"].as_str().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            "degradeSwitch=close",
            "rateLimiterSwitch=close",
            "blackListSwitch=close",
            "rateLimiterPermitsPerSecond=1",
            "rateLimiterBlacklistAfter=1",
            "rateLimiterBlacklistSeconds=86400",
            "drawTimeoutMs=1000"
        ]
    );
    app.cleanup().await;
}
