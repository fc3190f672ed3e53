//! The commands other than the draw on a blackholed shard: a recharge, a credit exchange, a
//! sign-in and an admin read, sent while shard 01 answers nothing, each answer within the
//! database's response deadline; retried once it is back, each is applied exactly once and no
//! SKU unit is sold twice. The sign-in's rebates, published and consumed after the fault, are
//! applied once too.

use std::time::{Duration, Instant};

use sea_orm::{ConnectionTrait as _, TransactionTrait as _};
use serde_json::Value;
use test_support::app::{CONFIG, SHARD_01, TestApp};

use super::harness::{Load, Report, count_split, drained, invariants, secs, until_ready, world_with_shard_01_proxied};

/// Priced SKU of activity 100301 bought with credits (5.00 in the reference data).
const PRICED_SKU: i64 = 9014;
/// SKU recharged without payment.
const FREE_SKU: i64 = 9011;

fn code(body: &Value) -> String {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .map_or_else(|| "ok".to_owned(), str::to_owned)
}

/// Sends `query` and returns the body, how long the answer took (a stuck request counts as
/// 20 s and `timeout`).
async fn timed(app: &TestApp, token: Option<&str>, query: &str) -> (Value, Duration) {
    let started = Instant::now();
    let body = tokio::time::timeout(Duration::from_secs(20), app.graphql_as(token, query))
        .await
        .unwrap_or_else(|_| serde_json::json!({ "errors": [{ "extensions": { "code": "timeout" } }] }));
    (body, started.elapsed())
}

async fn sku_counter(app: &TestApp, sku: i64) -> i64 {
    let mut conn = app.redis.clone();
    redis::cmd("GET")
        .arg(app.key(&format!("big_market_activity_sku_stock_count_key_{sku}")))
        .query_async::<Option<i64>>(&mut conn)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("SKU {sku} has no stock counter"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn commands_on_a_blackholed_shard_answer_within_the_deadline_and_their_retries_apply_once() {
    let (proxy, w, direct) = world_with_shard_01_proxied(|s| {
        s.database.response_timeout_ms = 1_000;
        s.consumers.retry_delay_ms = 200;
        s.consumers.max_retry_delay_ms = 1_000;
    })
    .await;
    let app = &w.app;
    // A buyer on shard 01 who is not part of the draw load, with 100 credits.
    let router = persistence::ShardRouter::new(2, app.settings.database.tables_per_shard).unwrap();
    let buyer = (0..)
        .map(|i| format!("buyer{i}"))
        .find(|u| router.route(u).db == 0)
        .unwrap_or_default();
    app.exec(
        SHARD_01,
        &format!(
            "INSERT INTO user_credit_account (user_id, total_amount, available_amount, account_status) \
             VALUES ('{buyer}', 100, 100, 'open')"
        ),
    )
    .await;
    let token = app.user_token(&buyer);
    let open_sign_rebates = app
        .int(
            CONFIG,
            "SELECT COUNT(*) FROM daily_behavior_rebate WHERE behavior_type = 'sign' AND state = 'open'",
        )
        .await;
    let (free_before, priced_before) = (sku_counter(app, FREE_SKU).await, sku_counter(app, PRICED_SKU).await);
    let recharge = format!(
        r#"mutation {{ rechargeQuota(userId: "{buyer}", sku: {FREE_SKU}, outBusinessNo: "cmd-recharge") {{ orderId created }} }}"#
    );
    let exchange = format!(
        r#"mutation {{ creditPayExchangeSku(sku: {PRICED_SKU}, outBusinessNo: "cmd-exchange") {{ orderId payAmount created }} }}"#
    );
    let sign = "mutation { calendarSignRebate { day created orders { orderId } } }";
    let tasks = "{ tasks(first: 5) { edges { node { messageId } } } }";

    let mut report = Report::new(
        "mysql-shard-blackhole-commands",
        "shard big_market_01 blackholed 4 s with a credit exchange caught mid-save, while a recharge, a sign-in \
         and an admin read are sent (and 4 users draw); then each command retried until it succeeds",
        Duration::from_secs(4),
        &["0001", "0006"],
    );
    let load = Load::start(&w, &app.address);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // The exchange is caught mid-statement: its save waits for the buyer's credit row, locked
    // here (past the proxy), when the blackhole begins, so its answer is held.
    let holder_db = sea_orm::Database::connect(direct.as_str()).await.unwrap();
    let holder = holder_db.begin().await.unwrap();
    holder
        .execute_unprepared(&format!(
            "SELECT * FROM user_credit_account WHERE user_id = '{buyer}' FOR UPDATE"
        ))
        .await
        .unwrap();
    let caught = timed(app, Some(&token), &exchange);
    let others = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        proxy.blackhole();
        let cut = Instant::now();
        holder.rollback().await.unwrap();
        let (recharged, signed, listed) = tokio::join!(
            timed(app, Some(&app.admin_token), &recharge),
            timed(app, Some(&token), sign),
            timed(app, Some(&app.admin_token), tasks),
        );
        (cut, recharged, signed, listed)
    };
    let (exchanged, (cut, recharged, signed, listed)) = tokio::join!(caught, others);
    holder_db.close().await.unwrap();
    report.check(
        exchanged.0["errors"][0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("may or may not be saved")),
        format!(
            "the exchange caught mid-save answered {} (want: outcome unknown)",
            exchanged.0
        ),
    );
    // connect_timeout_ms (1 s) bounds getting a connection, response_timeout_ms (1 s) each
    // answer: a command reads, then writes, so 4 s is a wide margin.
    for (name, (body, took)) in [
        ("rechargeQuota", &recharged),
        ("creditPayExchangeSku", &exchanged),
        ("calendarSignRebate", &signed),
        ("tasks", &listed),
    ] {
        let code = code(body);
        report.note(format!(
            "{name} during the fault: {code} in {} ms{}",
            took.as_millis(),
            body["errors"][0]["message"]
                .as_str()
                .map_or_else(String::new, |m| format!(" ({m})"))
        ));
        report.check(
            *took < Duration::from_secs(4),
            format!("{name} answered after {} ms", took.as_millis()),
        );
        report.check(code == "0001", format!("{name} answered {body} during the fault"));
    }
    tokio::time::sleep(Duration::from_secs(4).saturating_sub(cut.elapsed())).await;
    proxy.pass();
    let ready_again = until_ready(app, Duration::from_secs(10)).await;
    report.note(format!(
        "/ready 200 {} after the shard was back",
        ready_again.map_or_else(|| "never (10 s)".to_owned(), secs)
    ));

    // Retried with the same business numbers until they succeed: each applied once.
    for (name, token, query) in [
        ("rechargeQuota", Some(app.admin_token.as_str()), recharge.as_str()),
        ("creditPayExchangeSku", Some(token.as_str()), exchange.as_str()),
        ("calendarSignRebate", Some(token.as_str()), sign),
    ] {
        let mut last = Value::Null;
        let mut done = false;
        let retrying = Instant::now();
        while retrying.elapsed() < Duration::from_secs(10) {
            let (body, _) = timed(app, token, query).await;
            done = body["errors"].is_null();
            last = body;
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        report.note(format!("{name} retried after the fault: {last}"));
        report.check(done, format!("{name} never succeeded after the fault: {last}"));
    }
    let samples = load.stop().await;
    let drain = drained(app, Duration::from_secs(30)).await;
    report.note(format!(
        "every event published and every award delivered {} after the load stopped",
        drain.map_or_else(|| "NOT within 30 s".to_owned(), secs)
    ));
    report.check(drain.is_some(), "events not drained within 30 s");

    let orders = |obn: &str| format!("out_business_no = '{obn}' AND user_id = '{buyer}'");
    let recharges = count_split(app, "raffle_activity_order", &orders("cmd-recharge")).await;
    let exchanges = count_split(app, "raffle_activity_order", &orders("cmd-exchange")).await;
    let payments = count_split(app, "user_credit_order", &orders("cmd-exchange")).await;
    let sign_ins = count_split(
        app,
        "user_behavior_rebate_order",
        &format!("user_id = '{buyer}' AND behavior_type = 'sign'"),
    )
    .await;
    report.note(format!(
        "applied: {recharges} recharge, {exchanges} exchange order, {payments} credit payment, {sign_ins} sign-in rebate orders ({open_sign_rebates} open rebates)"
    ));
    report.check(
        recharges == 1,
        format!("{recharges} recharge orders for one outBusinessNo"),
    );
    report.check(
        exchanges == 1 && payments == 1,
        format!("{exchanges} exchange orders and {payments} payments for one outBusinessNo"),
    );
    report.check(
        sign_ins == open_sign_rebates,
        format!("{sign_ins} sign-in rebate orders for {open_sign_rebates} open rebates"),
    );
    // Credits: 100 minus the exchange plus whatever the sign-in's credit rebates paid, each
    // rebate once: the account equals the sum of its orders.
    let cents = |sql: &str| {
        let sql = sql.to_owned();
        async move { app.int(SHARD_01, &sql).await }
    };
    let account = cents(&format!(
        "SELECT CAST(available_amount * 100 AS SIGNED) FROM user_credit_account WHERE user_id = '{buyer}'"
    ))
    .await;
    let mut traded = 0;
    for t in 0..4 {
        traded += cents(&format!(
            "SELECT CAST(COALESCE(SUM(trade_amount), 0) * 100 AS SIGNED) FROM user_credit_order_{t:03} WHERE user_id = '{buyer}'"
        ))
        .await;
    }
    report.note(format!("buyer's credits {account} cents = 10000 + {traded} traded"));
    report.check(
        account == 10_000 + traded,
        format!("credits {account} cents, orders say {}", 10_000 + traded),
    );
    let rebate_credits = count_split(
        app,
        "user_credit_order",
        &format!("user_id = '{buyer}' AND trade_type = 'forward'"),
    )
    .await;
    let credit_rebates = app
        .int(
            CONFIG,
            "SELECT COUNT(*) FROM daily_behavior_rebate WHERE behavior_type = 'sign' AND state = 'open' AND rebate_type = 'integral'",
        )
        .await;
    report.check(
        rebate_credits == credit_rebates,
        format!("{rebate_credits} credit rebates paid for {credit_rebates} configured"),
    );
    // SKU units: never more taken than orders plus units of unknown outcome (at most one per
    // command sent during the fault).
    let (free_after, priced_after) = (sku_counter(app, FREE_SKU).await, sku_counter(app, PRICED_SKU).await);
    // The sign-in's SKU rebate recharges one of them too.
    let orders_of = |sku: i64| format!("user_id = '{buyer}' AND sku = {sku}");
    let free_orders = count_split(app, "raffle_activity_order", &orders_of(FREE_SKU)).await;
    let priced_orders = count_split(app, "raffle_activity_order", &orders_of(PRICED_SKU)).await;
    report.note(format!(
        "SKU {FREE_SKU}: {} units taken for {free_orders} orders; SKU {PRICED_SKU}: {} units taken for {priced_orders} orders",
        free_before - free_after,
        priced_before - priced_after
    ));
    report.check(
        free_before - free_after >= free_orders && free_before - free_after <= free_orders + 1,
        format!(
            "SKU {FREE_SKU}: {} units taken for {free_orders} orders",
            free_before - free_after
        ),
    );
    report.check(
        priced_before - priced_after >= priced_orders && priced_before - priced_after <= priced_orders + 1,
        format!(
            "SKU {PRICED_SKU}: {} units taken for {priced_orders} orders",
            priced_before - priced_after
        ),
    );
    let inv = invariants(app, &samples).await;
    report.finish(&samples, &inv);
    w.app.cleanup().await;
    drop(proxy);
}
