//! `rechargeQuota` (spec §5.2, §9 items 19–21).

use std::sync::Arc;

use serde_json::json;

use test_support::app::{CONFIG, SHARD_01, TestApp, spawn_app};

fn recharge(user: &str, sku: i64, obn: &str) -> String {
    format!(
        r#"mutation {{ rechargeQuota(userId: "{user}", sku: {sku}, outBusinessNo: "{obn}") {{ orderId outBusinessNo created }} }}"#
    )
}

async fn account(app: &TestApp, user: &str) -> serde_json::Value {
    let rows = app
        .sql(SHARD_01, &format!("SELECT total_count, total_count_surplus, day_count, day_count_surplus, month_count, month_count_surplus FROM raffle_activity_account WHERE user_id = '{user}' AND activity_id = 100301"))
        .await;
    rows.into_iter().next().unwrap_or(serde_json::Value::Null)
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
async fn recharge_credits_the_package_once_per_out_business_no() {
    let app = spawn_app().await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    let before = sku_stock(&app, 9011).await;
    assert_eq!(before, 99887, "armed from the durable surplus");

    let first = app.ok(&recharge("xiaofuge", 9011, "700091009119")).await["rechargeQuota"].clone();
    assert_eq!(first["created"], true);
    assert_eq!(first["outBusinessNo"], "700091009119");
    assert_eq!(
        account(&app, "xiaofuge").await,
        json!({"total_count":150,"total_count_surplus":150,"day_count":150,"day_count_surplus":150,"month_count":150,"month_count_surplus":150})
    );
    let order = app
        .sql(
            SHARD_01,
            "SELECT sku, state, pay_amount, total_count, out_business_no, order_id FROM raffle_activity_order_001",
        )
        .await;
    assert_eq!(order.len(), 1);
    assert_eq!(
        (order[0]["state"].as_str(), order[0]["sku"].as_i64()),
        (Some("completed"), Some(9011))
    );
    assert_eq!(order[0]["order_id"], first["orderId"]);

    // A retry of the same request: the first order, nothing credited, no stock lost.
    let again = app.ok(&recharge("xiaofuge", 9011, "700091009119")).await["rechargeQuota"].clone();
    assert_eq!(
        (again["orderId"].clone(), again["created"].clone()),
        (first["orderId"].clone(), json!(false))
    );
    assert_eq!(account(&app, "xiaofuge").await["total_count"], 150);
    assert_eq!(sku_stock(&app, 9011).await, before - 1);

    // A new business number credits again (+150 on all six columns).
    app.ok(&recharge("xiaofuge", 9011, "700091009120")).await;
    assert_eq!(
        account(&app, "xiaofuge").await,
        json!({"total_count":300,"total_count_surplus":300,"day_count":300,"day_count_surplus":300,"month_count":300,"month_count_surplus":300})
    );

    // The same business number for another SKU is a conflicting duplicate.
    assert_eq!(
        app.error_code(&recharge("xiaofuge", 9012, "700091009119")).await,
        "0003"
    );
    assert_eq!(
        sku_stock(&app, 9012).await,
        99885,
        "the rejected duplicate took no stock"
    );
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixty_four_concurrent_retries_credit_exactly_once() {
    let app = Arc::new(spawn_app().await);
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    let before = sku_stock(&app, 9013).await;
    let tasks: Vec<_> = (0..64)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.graphql(&recharge("liergou", 9013, "race-1")).await })
        })
        .collect();
    let mut order_ids = std::collections::HashSet::new();
    let mut created = 0;
    for t in tasks {
        let body = t.await.unwrap();
        assert!(
            body.get("errors").is_none(),
            "every retry answers with the order: {body}"
        );
        order_ids.insert(body["data"]["rechargeQuota"]["orderId"].as_str().unwrap().to_owned());
        created += usize::from(body["data"]["rechargeQuota"]["created"] == true);
    }
    assert_eq!((order_ids.len(), created), (1, 1));
    assert_eq!(
        account(&app, "liergou").await["total_count"],
        5,
        "package 11103 is 5/5/5, credited once"
    );
    assert_eq!(sku_stock(&app, 9013).await, before - 1, "losers gave their unit back");
    Arc::into_inner(app).unwrap().cleanup().await;
}

#[tokio::test]
async fn sku_stock_sells_out_emits_its_event_and_survives_a_redis_loss() {
    let app = spawn_app().await;
    app.exec(
        CONFIG,
        "UPDATE raffle_activity_sku SET stock_count = 20, stock_count_surplus = 20 WHERE sku = 9011",
    )
    .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    for i in 0..20 {
        app.ok(&recharge(&format!("buyer{i}"), 9011, &format!("sell-out-{i}")))
            .await;
    }
    assert_eq!(
        app.error_code(&recharge("buyer21", 9011, "sell-out-21")).await,
        "ERR_BIZ_005"
    );
    let zero_events: i64 = app
        .int(
            SHARD_01,
            "SELECT COUNT(*) FROM task WHERE topic = 'activity_sku_stock_zero'",
        )
        .await
        + app
            .int(
                test_support::app::SHARD_02,
                "SELECT COUNT(*) FROM task WHERE topic = 'activity_sku_stock_zero'",
            )
            .await;
    assert_eq!(
        zero_events, 1,
        "the 20th recharge wrote one activity_sku_stock_zero outbox row"
    );
    // Redis is lost; re-arming derives the stock from the orders, so nothing more is sold.
    app.flush_redis().await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    assert_eq!(sku_stock(&app, 9011).await, 0);
    assert_eq!(
        app.error_code(&recharge("buyer22", 9011, "sell-out-22")).await,
        "ERR_BIZ_005"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn recharge_rejects_bad_input_and_closed_activities_with_codes() {
    let app = spawn_app().await;
    assert_eq!(
        app.error_code(&recharge("u1", 9011, "x")).await,
        "ERR_BIZ_005",
        "not armed: no stock counter"
    );
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    assert_eq!(app.error_code(&recharge("", 9011, "x")).await, "0002");
    assert_eq!(app.error_code(&recharge("u1", 9011, "")).await, "0002");
    assert_eq!(app.error_code(&recharge("u1", 123, "x")).await, "0002");
    assert_eq!(app.error_code("mutation { armActivity(activityId: 1) }").await, "0002");
    app.exec(
        CONFIG,
        "UPDATE raffle_activity SET state = 'close' WHERE activity_id = 100301",
    )
    .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    assert_eq!(app.error_code(&recharge("u1", 9011, "x")).await, "ERR_BIZ_003");
    app.exec(
        CONFIG,
        "UPDATE raffle_activity SET state = 'open', end_date_time = '2025-01-01 00:00:00' WHERE activity_id = 100301",
    )
    .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    assert_eq!(app.error_code(&recharge("u1", 9011, "x")).await, "ERR_BIZ_004");
    assert_eq!(
        app.int(SHARD_01, "SELECT COUNT(*) FROM raffle_activity_account").await,
        0,
        "nothing written on errors"
    );
    app.cleanup().await;
}

/// User ids and out-business numbers compare byte for byte: spellings that differ only in case
/// are different users and different orders, even where the router puts them in one table.
#[tokio::test]
async fn user_ids_and_out_business_numbers_compare_byte_for_byte() {
    let app = spawn_app().await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    let router = persistence::ShardRouter::new(2, 4).unwrap();
    let (user, other) = (0..10_000)
        .map(|i| (format!("victimcase{i}"), format!("victimcAse{i}")))
        .find(|(a, b)| router.route(a) == router.route(b))
        .expect("two spellings on one route");
    let route = router.route(&user);
    let (db, orders) = (1 + route.db, format!("raffle_activity_order{}", route.suffix()));
    let recharge = |u: &str, obn: &str| {
        format!(r#"mutation {{ rechargeQuota(userId: "{u}", sku: 9011, outBusinessNo: "{obn}") {{ created }} }}"#)
    };
    assert_eq!(
        app.ok(&recharge(&user, "Order-AbC")).await["rechargeQuota"]["created"],
        true
    );
    assert_eq!(
        app.ok(&recharge(&user, "order-abc")).await["rechargeQuota"]["created"],
        true,
        "another order, not a replay"
    );
    assert_eq!(
        app.ok(&recharge(&user, "gift-🎁")).await["rechargeQuota"]["created"],
        true
    );
    assert_eq!(
        app.ok(&recharge(&user, "gift-🎄")).await["rechargeQuota"]["created"],
        true
    );
    assert_eq!(
        app.int(db, &format!("SELECT COUNT(*) FROM {orders} WHERE user_id = '{user}'"))
            .await,
        4
    );
    let draw = |u: &str| format!(r#"mutation {{ draw(userId: "{u}", activityId: 100301) {{ orderId }} }}"#);
    assert_eq!(
        app.error_code(&draw(&other)).await,
        "ERR_BIZ_006",
        "{other} has no account"
    );
    app.ok(&draw(&user)).await;
    app.cleanup().await;
}
