//! The quota economy (issue 12): the daily sign-in rebate, credit trades and the credit-paid
//! SKU exchange, against the real MariaDB, Redis and RabbitMQ.

use futures::future::join_all;
use serde_json::{Value, json};

use test_support::app::{CONFIG, SHARD_01, SHARD_02, TestApp, error_code_of, spawn_app_with};

const BIN: &str = env!("CARGO_BIN_EXE_big-market");

/// Replaces the sign-in rebate configuration with `rows` of `(rebate_type, rebate_config, state)`.
async fn configure_sign_rebates(app: &TestApp, rows: &[(&str, &str, &str)]) {
    app.exec(CONFIG, "DELETE FROM daily_behavior_rebate").await;
    for (i, (kind, config, state)) in rows.iter().enumerate() {
        app.exec(
            CONFIG,
            &format!(
                "INSERT INTO daily_behavior_rebate (id, behavior_type, rebate_desc, rebate_type, rebate_config, state) \
                 VALUES ({}, 'sign', '签到返利-{kind}', '{kind}', '{config}', '{state}')",
                i + 1
            ),
        )
        .await;
    }
}

/// Sets the user's credits (the account must exist: it is on exactly one shard).
async fn set_credits(app: &TestApp, user: &str, amount: &str) {
    for shard in [SHARD_01, SHARD_02] {
        app.exec(
            shard,
            &format!(
                "UPDATE user_credit_account SET total_amount = {amount}, available_amount = {amount}, version = version + 1 WHERE user_id = '{user}'"
            ),
        )
        .await;
    }
}

/// Rows of `sql` summed over both shards (first column).
async fn both(app: &TestApp, sql: &str) -> i64 {
    app.int(SHARD_01, sql).await + app.int(SHARD_02, sql).await
}

/// Rows of a split table matching `filter`, over both shards.
async fn split_rows(app: &TestApp, table: &str, filter: &str) -> i64 {
    let mut n = 0;
    for t in 0..4 {
        n += both(app, &format!("SELECT COUNT(*) FROM {table}_{t:03} WHERE {filter}")).await;
    }
    n
}

async fn available(app: &TestApp, user: &str) -> String {
    let rows_1 = app
        .sql(
            SHARD_01,
            &format!("SELECT CAST(available_amount AS CHAR) AS a FROM user_credit_account WHERE user_id = '{user}'"),
        )
        .await;
    let rows_2 = app
        .sql(
            SHARD_02,
            &format!("SELECT CAST(available_amount AS CHAR) AS a FROM user_credit_account WHERE user_id = '{user}'"),
        )
        .await;
    let rows: Vec<Value> = rows_1.into_iter().chain(rows_2).collect();
    assert!(rows.len() <= 1, "one credit account per user: {rows:?}");
    rows.first()
        .and_then(|r| r["a"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "none".into())
}

const SIGN: &str =
    "mutation { calendarSignRebate { day created orders { orderId rebateType rebateConfig bizId messageId } } }";

fn exchange(sku: i64, obn: &str) -> String {
    format!(
        r#"mutation {{ creditPayExchangeSku(sku: {sku}, outBusinessNo: "{obn}") {{ orderId payAmount outBusinessNo created }} }}"#
    )
}

async fn task_state(app: &TestApp, message_id: &str) -> Value {
    app.ok(&format!(
        r#"{{ task(messageId: "{message_id}") {{ state lastError }} }}"#
    ))
    .await["task"]
        .clone()
}

#[tokio::test]
async fn signing_in_twice_a_day_applies_one_sku_recharge_and_one_credit_trade_then_the_next_day_again() {
    // Business day = UTC−12: the second instance below (UTC+12) is always one day later.
    let app = spawn_app_with(|s| s.business.utc_offset_minutes = -720).await;
    configure_sign_rebates(
        &app,
        &[
            ("sku", "9014", "open"),
            ("integral", "10", "open"),
            ("integral", "99", "close"),
        ],
    )
    .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    let user = "signer_01";
    let token = app.user_token(user);
    let as_user = |q: String| {
        let (app, token) = (&app, token.clone());
        async move { app.graphql_as(Some(&token), &q).await }
    };

    assert_eq!(
        as_user("{ isCalendarSignRebate }".into()).await["data"]["isCalendarSignRebate"],
        false
    );
    let first = as_user(SIGN.into()).await;
    let first = &first["data"]["calendarSignRebate"];
    assert_eq!(first["created"], true, "{first}");
    let day = first["day"].as_str().unwrap().to_owned();
    let orders = first["orders"].as_array().unwrap().clone();
    assert_eq!(orders.len(), 2, "only the open rebates: {first}");
    assert_eq!(orders[0]["bizId"], format!("{user}_sku_{day}"));
    assert_eq!(orders[1]["bizId"], format!("{user}_integral_{day}"));
    assert_eq!(
        as_user("{ isCalendarSignRebate }".into()).await["data"]["isCalendarSignRebate"],
        true
    );

    // Again the same day, also concurrently: the same orders, nothing written.
    let again = join_all((0..5).map(|_| as_user(SIGN.into()))).await;
    for a in &again {
        let a = &a["data"]["calendarSignRebate"];
        assert_eq!(a["created"], false, "{a}");
        let ids: Vec<&Value> = a["orders"].as_array().unwrap().iter().map(|o| &o["orderId"]).collect();
        assert_eq!(ids, orders.iter().map(|o| &o["orderId"]).collect::<Vec<_>>());
    }
    assert_eq!(
        split_rows(&app, "user_behavior_rebate_order", &format!("user_id = '{user}'")).await,
        2
    );

    // Delivered: exactly one SKU recharge (package 9014: 1 draw) and one 10-credit trade.
    for o in &orders {
        let id = o["messageId"].as_str().unwrap();
        app.eventually(20, &format!(r#"{{ task(messageId: "{id}") {{ state }} }}"#), |t| {
            t["task"]["state"] == "DELIVERED"
        })
        .await;
    }
    app.eventually(
        10,
        &format!(r#"{{ creditAccount(userId: "{user}") {{ availableAmount }} }}"#),
        |d| d["creditAccount"]["availableAmount"] == "10.00" || d["creditAccount"]["availableAmount"] == "10",
    )
    .await;
    let acct = app
        .ok(&format!(
            r#"{{ activityAccount(userId: "{user}", activityId: 100301) {{ totalCount totalCountSurplus }} }}"#
        ))
        .await;
    assert_eq!(
        acct["activityAccount"],
        json!({"totalCount": 1, "totalCountSurplus": 1})
    );
    assert_eq!(
        split_rows(&app, "raffle_activity_order", &format!("user_id = '{user}'")).await,
        1
    );
    assert_eq!(
        split_rows(
            &app,
            "user_credit_order",
            &format!("user_id = '{user}' AND trade_amount = 10 AND trade_name = '行为返利'")
        )
        .await,
        1
    );
    assert_eq!(available(&app, user).await, "10.00");
    let history =
        as_user("{ creditOrders(first: 5) { edges { node { tradeName tradeType amount outBusinessNo } } } }".into())
            .await;
    assert_eq!(
        history["data"]["creditOrders"]["edges"],
        json!([{"node": {"tradeName": "行为返利", "tradeType": "FORWARD", "amount": "10.00", "outBusinessNo": format!("{user}_integral_{day}")}}])
    );

    // The next business day (an instance at UTC+12 over the same databases): a new set.
    let tomorrow = app.spawn_process(BIN, |s| s.business.utc_offset_minutes = 720).await;
    let next = app.graphql_at(&tomorrow.address, Some(&token), SIGN).await;
    let next = &next["data"]["calendarSignRebate"];
    assert_eq!(next["created"], true, "{next}");
    assert_ne!(next["day"], day.as_str());
    assert_eq!(
        split_rows(&app, "user_behavior_rebate_order", &format!("user_id = '{user}'")).await,
        4
    );
    for o in next["orders"].as_array().unwrap() {
        let id = o["messageId"].as_str().unwrap();
        app.eventually(20, &format!(r#"{{ task(messageId: "{id}") {{ state }} }}"#), |t| {
            t["task"]["state"] == "DELIVERED"
        })
        .await;
    }
    assert_eq!(available(&app, user).await, "20.00");
    assert_eq!(
        split_rows(&app, "raffle_activity_order", &format!("user_id = '{user}'")).await,
        2
    );
    drop(tomorrow);
    app.cleanup().await;
}

#[tokio::test]
async fn a_rebate_whose_activity_ended_is_recorded_as_not_applied_and_the_others_still_apply() {
    let app = spawn_app_with(|_| {}).await;
    // SKU 9901 belongs to activity 100401, which ended on 2026-10-06.
    app.exec(
        CONFIG,
        "UPDATE raffle_activity SET end_date_time = '2026-10-06 12:09:34' WHERE activity_id = 100401",
    )
    .await;
    configure_sign_rebates(&app, &[("sku", "9901", "open"), ("integral", "10", "open")]).await;
    let token = app.user_token("ended_01");
    let body = app.graphql_as(Some(&token), SIGN).await;
    let orders = body["data"]["calendarSignRebate"]["orders"].as_array().unwrap().clone();
    assert_eq!(orders.len(), 2, "{body}");
    let sku_msg = orders[0]["messageId"].as_str().unwrap();
    let credit_msg = orders[1]["messageId"].as_str().unwrap();
    app.eventually(20, &format!(r#"{{ task(messageId: "{sku_msg}") {{ state }} }}"#), |t| {
        t["task"]["state"] == "DEAD"
    })
    .await;
    let dead = task_state(&app, sku_msg).await;
    let reason = dead["lastError"].as_str().unwrap_or_default();
    assert!(reason.starts_with("not applied") && reason.contains("100401"), "{dead}");
    app.eventually(
        20,
        &format!(r#"{{ task(messageId: "{credit_msg}") {{ state }} }}"#),
        |t| t["task"]["state"] == "DELIVERED",
    )
    .await;
    assert_eq!(available(&app, "ended_01").await, "10.00");
    assert_eq!(
        split_rows(&app, "raffle_activity_order", "user_id = 'ended_01'").await,
        0
    );
    // Not retried: still dead a while later, and nothing parked or dead-lettered.
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    assert_eq!(task_state(&app, sku_msg).await["state"], "DEAD");
    app.cleanup().await;
}

/// Signs `user` in (10 credits arrive), then sets the credits to `amount`.
async fn user_with_credits(app: &TestApp, user: &str, amount: &str) -> String {
    let token = app.user_token(user);
    let body = app.graphql_as(Some(&token), SIGN).await;
    let id = body["data"]["calendarSignRebate"]["orders"][0]["messageId"]
        .as_str()
        .unwrap_or_else(|| panic!("{body}"))
        .to_owned();
    app.eventually(20, &format!(r#"{{ task(messageId: "{id}") {{ state }} }}"#), |t| {
        t["task"]["state"] == "DELIVERED"
    })
    .await;
    set_credits(app, user, amount).await;
    token
}

async fn sku_stock(app: &TestApp, sku: i64) -> i64 {
    let mut conn = app.redis.clone();
    redis::cmd("GET")
        .arg(app.key(&format!("big_market_activity_sku_stock_count_key_{sku}")))
        .query_async(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn exchanging_credits_for_a_sku_pays_and_credits_in_one_transaction() {
    let app = spawn_app_with(|_| {}).await;
    configure_sign_rebates(&app, &[("integral", "10", "open")]).await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    let token = user_with_credits(&app, "buyer_01", "12.50").await;
    let stock = sku_stock(&app, 9014).await;

    // Enough credits: 5.00 for SKU 9014 (one draw).
    let body = app.graphql_as(Some(&token), &exchange(9014, "ex-1")).await;
    let done = &body["data"]["creditPayExchangeSku"];
    assert_eq!(
        (done["created"].clone(), done["payAmount"].clone()),
        (json!(true), json!("5.00")),
        "{body}"
    );
    assert_eq!(available(&app, "buyer_01").await, "7.50");
    assert_eq!(sku_stock(&app, 9014).await, stock - 1);
    let acct = app
        .ok(r#"{ activityAccount(userId: "buyer_01", activityId: 100301) { totalCount dayCount monthCount } }"#)
        .await;
    assert_eq!(
        acct["activityAccount"],
        json!({"totalCount": 1, "dayCount": 1, "monthCount": 1})
    );
    assert_eq!(
        split_rows(
            &app,
            "raffle_activity_order",
            "user_id = 'buyer_01' AND pay_amount = 5 AND state = 'completed'"
        )
        .await,
        1
    );
    assert_eq!(
        split_rows(
            &app,
            "user_credit_order",
            "user_id = 'buyer_01' AND trade_type = 'reverse' AND trade_amount = -5 AND out_business_no = 'ex-1'"
        )
        .await,
        1
    );
    // The same request again: the first order, nothing charged.
    let again = app.graphql_as(Some(&token), &exchange(9014, "ex-1")).await;
    assert_eq!(again["data"]["creditPayExchangeSku"]["created"], false, "{again}");
    assert_eq!(again["data"]["creditPayExchangeSku"]["orderId"], done["orderId"]);
    assert_eq!(available(&app, "buyer_01").await, "7.50");

    // Too few credits for SKU 9011 (200.00): ERR_CREDIT_001, nothing changed, no stock taken.
    let stock_9011 = sku_stock(&app, 9011).await;
    let refused = app.graphql_as(Some(&token), &exchange(9011, "ex-2")).await;
    assert_eq!(error_code_of(&refused), Some("ERR_CREDIT_001"), "{refused}");
    assert_eq!(available(&app, "buyer_01").await, "7.50");
    assert_eq!(sku_stock(&app, 9011).await, stock_9011);
    assert_eq!(
        split_rows(&app, "raffle_activity_order", "user_id = 'buyer_01'").await,
        1
    );
    assert_eq!(split_rows(&app, "user_credit_order", "user_id = 'buyer_01'").await, 2);

    // The views follow: balance and the newest-first order history with its debit.
    app.eventually(
        10,
        r#"{ creditAccount(userId: "buyer_01") { availableAmount } }"#,
        |d| d["creditAccount"]["availableAmount"] == "7.50",
    )
    .await;
    let history = app
        .ok(r#"{ creditOrders(userId: "buyer_01", first: 1) { edges { node { tradeName tradeType amount } } pageInfo { hasNextPage endCursor } } }"#)
        .await;
    assert_eq!(
        history["creditOrders"]["edges"],
        json!([{"node": {"tradeName": "兑换抽奖", "tradeType": "REVERSE", "amount": "-5.00"}}])
    );
    assert_eq!(history["creditOrders"]["pageInfo"]["hasNextPage"], true);
    app.cleanup().await;
}

#[tokio::test]
async fn fifty_concurrent_exchanges_with_credits_for_three_sell_exactly_three() {
    let app = spawn_app_with(|_| {}).await;
    configure_sign_rebates(&app, &[("integral", "10", "open")]).await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    let token = user_with_credits(&app, "racer_01", "15.00").await;
    let stock = sku_stock(&app, 9014).await;
    let results = join_all((0..50).map(|i| {
        let (app, token) = (&app, token.clone());
        async move {
            app.graphql_as(Some(&token), &exchange(9014, &format!("race-{i}")))
                .await
        }
    }))
    .await;
    let ok = results
        .iter()
        .filter(|r| r["data"]["creditPayExchangeSku"]["created"] == true)
        .count();
    let refused = results
        .iter()
        .filter(|r| error_code_of(r) == Some("ERR_CREDIT_001"))
        .count();
    assert_eq!((ok, refused), (3, 47), "{results:?}");
    assert_eq!(available(&app, "racer_01").await, "0.00");
    assert_eq!(
        sku_stock(&app, 9014).await,
        stock - 3,
        "refused exchanges gave their stock back"
    );
    assert_eq!(
        split_rows(&app, "raffle_activity_order", "user_id = 'racer_01'").await,
        3
    );
    let acct = app
        .ok(r#"{ activityAccount(userId: "racer_01", activityId: 100301) { totalCount } }"#)
        .await;
    assert_eq!(acct["activityAccount"]["totalCount"], 3);

    // One business number retried 20 times at once: one charge, one order.
    set_credits(&app, "racer_01", "15.00").await;
    let same = join_all((0..20).map(|_| {
        let (app, token) = (&app, token.clone());
        async move { app.graphql_as(Some(&token), &exchange(9014, "retry-me")).await }
    }))
    .await;
    let ids: std::collections::BTreeSet<String> = same
        .iter()
        .map(|r| {
            r["data"]["creditPayExchangeSku"]["orderId"]
                .as_str()
                .unwrap_or_else(|| panic!("{r}"))
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "{same:?}");
    assert_eq!(
        same.iter()
            .filter(|r| r["data"]["creditPayExchangeSku"]["created"] == true)
            .count(),
        1
    );
    assert_eq!(available(&app, "racer_01").await, "10.00");
    assert_eq!(sku_stock(&app, 9014).await, stock - 4);
    app.cleanup().await;
}

#[tokio::test]
async fn a_user_signs_in_and_exchanges_only_for_itself() {
    let app = spawn_app_with(|_| {}).await;
    let token = app.user_token("alice_01");
    let other = app
        .graphql_as(
            Some(&token),
            r#"mutation { calendarSignRebate(userId: "bob_01") { created } }"#,
        )
        .await;
    assert_eq!(error_code_of(&other), Some("FORBIDDEN"), "{other}");
    let anonymous = app.graphql_as(None, SIGN).await;
    assert_eq!(error_code_of(&anonymous), Some("UNAUTHENTICATED"), "{anonymous}");
    let bad = app.graphql_as(Some(&token), &exchange(9014, " padded")).await;
    assert_eq!(error_code_of(&bad), Some("0002"), "{bad}");
    let unknown = app.graphql_as(Some(&token), &exchange(1, "x")).await;
    assert_eq!(error_code_of(&unknown), Some("0002"), "{unknown}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_rebate_message_delivered_twice_has_one_effect() {
    let app = spawn_app_with(|_| {}).await;
    // Two open rebates of one type: the second gets its own bizId (`…_2`).
    configure_sign_rebates(
        &app,
        &[
            ("sku", "9014", "open"),
            ("integral", "10", "open"),
            ("integral", "5", "open"),
        ],
    )
    .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    let token = app.user_token("twice_01");
    let body = app.graphql_as(Some(&token), SIGN).await;
    let ids: Vec<String> = body["data"]["calendarSignRebate"]["orders"]
        .as_array()
        .unwrap_or_else(|| panic!("{body}"))
        .iter()
        .map(|o| o["messageId"].as_str().unwrap().to_owned())
        .collect();
    for id in &ids {
        app.eventually(20, &format!(r#"{{ task(messageId: "{id}") {{ state }} }}"#), |t| {
            t["task"]["state"] == "DELIVERED"
        })
        .await;
    }
    // The relay publishes both again (as after a crash between publish and settle).
    for shard in [SHARD_01, SHARD_02] {
        app.exec(
            shard,
            "UPDATE task SET state = 'create', delivered_at = NULL, next_attempt_at = NULL WHERE topic = 'send_rebate' AND user_id = 'twice_01'",
        )
        .await;
    }
    for id in &ids {
        app.eventually(
            20,
            &format!(r#"{{ task(messageId: "{id}") {{ state deliveredAt }} }}"#),
            |t| t["task"]["state"] == "DELIVERED" && !t["task"]["deliveredAt"].is_null(),
        )
        .await;
    }
    let biz: Vec<&str> = body["data"]["calendarSignRebate"]["orders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["bizId"].as_str().unwrap())
        .collect();
    let day = body["data"]["calendarSignRebate"]["day"].as_str().unwrap();
    assert_eq!(
        biz,
        [
            format!("twice_01_sku_{day}"),
            format!("twice_01_integral_{day}"),
            format!("twice_01_integral_{day}_2")
        ]
    );
    assert_eq!(available(&app, "twice_01").await, "15.00");
    assert_eq!(split_rows(&app, "user_credit_order", "user_id = 'twice_01'").await, 2);
    assert_eq!(
        split_rows(&app, "raffle_activity_order", "user_id = 'twice_01'").await,
        1
    );
    let acct = app
        .ok(r#"{ activityAccount(userId: "twice_01", activityId: 100301) { totalCount } }"#)
        .await;
    assert_eq!(acct["activityAccount"]["totalCount"], 1);
    app.cleanup().await;
}

#[tokio::test]
async fn the_raffle_page_answers_the_six_calls_of_the_original_page_in_one_query() {
    let app = spawn_app_with(|_| {}).await;
    configure_sign_rebates(&app, &[("integral", "10", "open")]).await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    let token = user_with_credits(&app, "pager_01", "12.50").await;
    let bought = app.graphql_as(Some(&token), &exchange(9014, "page-1")).await;
    assert_eq!(bought["data"]["creditPayExchangeSku"]["created"], true, "{bought}");
    app.eventually(
        10,
        r#"{ creditAccount(userId: "pager_01") { availableAmount } }"#,
        |d| d["creditAccount"]["availableAmount"] == "7.50",
    )
    .await;

    const FIELDS: &str = "activityAccount { totalCount totalCountSurplus dayCount dayCountSurplus monthCount monthCountSurplus } \
        creditAccount { totalAmount availableAmount } isCalendarSignRebate \
        skuProducts { sku activityId activityCountId stockCount stockCountSurplus productAmount activityCount { totalCount dayCount monthCount } } \
        raffleAwards { awardId awardTitle awardSubtitle sort awardRuleLockCount isAwardUnlock waitUnlockCount } \
        ruleWeights { ruleWeightCount userActivityAccountTotalUserCount strategyAwards { awardId awardTitle } }";
    let page = app
        .graphql_as(
            Some(&token),
            &format!("{{ rafflePage(activityId: 100301) {{ userId activityId {FIELDS} }} }}"),
        )
        .await;
    assert!(page.get("errors").is_none(), "{page}");
    let page = &page["data"]["rafflePage"];
    let six = app
        .graphql_as(
            Some(&token),
            "{ activityAccount(activityId: 100301) { totalCount totalCountSurplus dayCount dayCountSurplus monthCount monthCountSurplus } \
               creditAccount { totalAmount availableAmount } isCalendarSignRebate \
               skuProducts(activityId: 100301) { sku activityId activityCountId stockCount stockCountSurplus productAmount activityCount { totalCount dayCount monthCount } } \
               raffleAwards(activityId: 100301) { awardId awardTitle awardSubtitle sort awardRuleLockCount isAwardUnlock waitUnlockCount } \
               ruleWeights(activityId: 100301) { ruleWeightCount userActivityAccountTotalUserCount strategyAwards { awardId awardTitle } } }",
        )
        .await;
    assert!(six.get("errors").is_none(), "{six}");
    for field in [
        "activityAccount",
        "creditAccount",
        "isCalendarSignRebate",
        "skuProducts",
        "raffleAwards",
        "ruleWeights",
    ] {
        assert_eq!(page[field], six["data"][field], "{field}");
    }
    assert_eq!(page["userId"], "pager_01");
    assert_eq!(page["isCalendarSignRebate"], true);
    assert_eq!(page["activityAccount"]["totalCount"], 1);
    assert_eq!(page["creditAccount"]["availableAmount"], "7.50");
    assert!(page["raffleAwards"].as_array().is_some_and(|a| !a.is_empty()), "{page}");
    // Another user's page needs a service or admin token; an unknown activity is 0002.
    let other = app
        .graphql_as(
            Some(&token),
            r#"{ rafflePage(userId: "bob_02", activityId: 100301) { userId } }"#,
        )
        .await;
    assert_eq!(error_code_of(&other), Some("FORBIDDEN"), "{other}");
    let unknown = app
        .graphql_as(Some(&token), "{ rafflePage(activityId: 999999) { userId } }")
        .await;
    assert_eq!(error_code_of(&unknown), Some("0002"), "{unknown}");
    app.cleanup().await;
}

#[tokio::test]
async fn activating_a_stage_arms_its_activity_and_shows_it_on_its_channel() {
    let app = spawn_app_with(|_| {}).await;
    app.exec(CONFIG, "DELETE FROM raffle_activity_stage").await;
    app.exec(
        CONFIG,
        "INSERT INTO raffle_activity_stage (id, channel, source, activity_id, state) VALUES \
         (1, 'c01', 's01', 100401, 'active'), (2, 'c01', 's01', 100301, 'create'), (3, 'c02', 's01', 100301, 'create')",
    )
    .await;
    let shown = |channel: &'static str| {
        let app = &app;
        async move {
            app.graphql_as(
                None,
                &format!(r#"{{ stageActivity(channel: "{channel}", source: "s01") }}"#),
            )
            .await["data"]["stageActivity"]
                .clone()
        }
    };
    assert_eq!(shown("c01").await, "100401", "public, from the stage table");
    assert_eq!(shown("c02").await, Value::Null);

    let done = app
        .ok("mutation { activateStage(stageId: 2) { stageId state activityId } }")
        .await;
    assert_eq!(
        done["activateStage"],
        json!({"stageId": "2", "state": "active", "activityId": "100301"})
    );
    assert_eq!(shown("c01").await, "100301", "the other stage of c01/s01 expired");
    assert_eq!(sku_stock(&app, 9011).await, 99887, "its SKU stock is armed");
    let list = app
        .ok("{ stages(first: 2) { edges { cursor node { stageId state } } pageInfo { hasNextPage endCursor } } }")
        .await;
    assert_eq!(
        list["stages"]["edges"],
        json!([{"cursor": "1", "node": {"stageId": "1", "state": "expire"}}, {"cursor": "2", "node": {"stageId": "2", "state": "active"}}])
    );
    assert_eq!(list["stages"]["pageInfo"]["hasNextPage"], true);
    let rest = app
        .ok(r#"{ stages(first: 2, after: "2") { edges { node { stageId } } pageInfo { hasNextPage } } }"#)
        .await;
    assert_eq!(rest["stages"]["edges"], json!([{"node": {"stageId": "3"}}]));

    // Operators only; an unknown stage is 0002; bad channel is 0002.
    let user = app.user_token("stage_user");
    let refused = app
        .graphql_as(Some(&user), "mutation { activateStage(stageId: 3) { id } }")
        .await;
    assert_eq!(error_code_of(&refused), Some("FORBIDDEN"), "{refused}");
    let listed = app
        .graphql_as(Some(&user), "{ stages { edges { node { id } } } }")
        .await;
    assert_eq!(error_code_of(&listed), Some("FORBIDDEN"), "{listed}");
    assert_eq!(
        app.error_code("mutation { activateStage(stageId: 99) { id } }").await,
        "0002"
    );
    let long = app
        .graphql_as(None, r#"{ stageActivity(channel: "123456789", source: "s01") }"#)
        .await;
    assert_eq!(error_code_of(&long), Some("0002"), "{long}");
    app.cleanup().await;
}
