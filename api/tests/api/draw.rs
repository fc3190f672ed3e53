//! `draw`: one shard transaction from ticket to award record and outbox (spec §5.4, §6.1, §9 items 22–27).

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::json;

use test_support::app::{CONFIG, SHARD_01, SHARD_02, TestApp, spawn_app, spawn_app_with};

const DRAW: &str = "awardId awardTitle awardIndex orderId messageId";

fn draw(user: &str) -> String {
    format!(r#"mutation {{ draw(userId: "{user}", activityId: 100301) {{ {DRAW} }} }}"#)
}

fn recharge(user: &str, sku: i64, obn: &str) -> String {
    format!(r#"mutation {{ rechargeQuota(userId: "{user}", sku: {sku}, outBusinessNo: "{obn}") {{ orderId }} }}"#)
}

/// The write side alone: no relay or consumer changes the rows under the assertions.
async fn armed() -> TestApp {
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    app
}

#[tokio::test]
async fn a_draw_by_xiaofuge_lands_in_big_market_01_table_001_in_one_transaction() {
    let app = armed().await;
    app.ok(&recharge("xiaofuge", 9013, "x-1")).await;
    let d = app.ok(&draw("xiaofuge")).await["draw"].clone();
    let order_id = d["orderId"].as_str().unwrap();
    let ticket = app
        .sql(
            SHARD_01,
            &format!("SELECT order_state, strategy_id FROM user_raffle_order_001 WHERE order_id = '{order_id}'"),
        )
        .await;
    assert_eq!(ticket, vec![json!({"order_state": "used", "strategy_id": 100006})]);
    let record = app
        .sql(
            SHARD_01,
            &format!(
                "SELECT award_id, award_title, award_state FROM user_award_record_001 WHERE order_id = '{order_id}'"
            ),
        )
        .await;
    assert_eq!(
        record,
        vec![json!({"award_id": d["awardId"], "award_title": d["awardTitle"], "award_state": "create"})]
    );
    let task = app
        .sql(
            SHARD_01,
            &format!(
                // `CAST`: the JSON row reader takes binary-collated text for bytes.
                "SELECT CAST(user_id AS CHAR) AS user_id, topic, state, message FROM task WHERE message_id = '{}'",
                d["messageId"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(
        (
            task[0]["user_id"].as_str(),
            task[0]["topic"].as_str(),
            task[0]["state"].as_str()
        ),
        (Some("xiaofuge"), Some("send_award"), Some("create"))
    );
    let message: serde_json::Value = serde_json::from_str(task[0]["message"].as_str().unwrap()).unwrap();
    assert_eq!(message["id"], d["messageId"]);
    assert!(message["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
    assert_eq!(message["data"]["orderId"], d["orderId"]);
    assert_eq!(message["data"]["userId"], "xiaofuge");
    assert_eq!(message["data"]["awardId"], d["awardId"]);
    let keys: Vec<&String> = message["data"].as_object().unwrap().keys().collect();
    assert!(
        keys.iter()
            .all(|k| ["awardConfig", "awardId", "awardTitle", "orderId", "userId"].contains(&k.as_str())),
        "{keys:?}"
    );
    assert_eq!(
        app.int(
            SHARD_01,
            "SELECT total_count_surplus FROM raffle_activity_account WHERE user_id = 'xiaofuge'"
        )
        .await,
        4
    );
    for other in [
        "user_raffle_order_000",
        "user_raffle_order_002",
        "user_raffle_order_003",
    ] {
        assert_eq!(app.int(SHARD_01, &format!("SELECT COUNT(*) FROM {other}")).await, 0);
    }
    assert_eq!(
        app.int(SHARD_02, "SELECT COUNT(*) FROM task").await,
        0,
        "nothing on the other shard"
    );
    // Recharge and draw each published the account's new state for the read model.
    let snapshots = app
        .sql(
            SHARD_01,
            "SELECT message FROM task WHERE topic = 'activity_account_changed' ORDER BY id",
        )
        .await;
    assert_eq!(snapshots.len(), 2);
    let last: serde_json::Value = serde_json::from_str(snapshots[1]["message"].as_str().unwrap()).unwrap();
    assert_eq!(
        (
            last["data"]["totalCountSurplus"].as_i64(),
            last["data"]["version"].as_i64()
        ),
        (Some(4), Some(2))
    );

    // user001 routes to big_market_02, table _000.
    app.ok(&recharge("user001", 9013, "x-2")).await;
    let d = app.ok(&draw("user001")).await["draw"].clone();
    let n = app
        .int(
            SHARD_02,
            &format!(
                "SELECT COUNT(*) FROM user_award_record_000 WHERE order_id = '{}'",
                d["orderId"].as_str().unwrap()
            ),
        )
        .await;
    assert_eq!(n, 1);
    assert_eq!(
        app.int(
            SHARD_02,
            "SELECT COUNT(*) FROM task WHERE user_id = 'user001' AND topic = 'send_award'"
        )
        .await,
        1
    );
    app.cleanup().await;
}

#[tokio::test]
async fn the_first_draw_of_a_day_creates_day_and_month_rows_from_the_allowance() {
    let app = armed().await;
    // The seed account of xiaofuge: allowance 45/45/45 (spec §2.4), no day/month rows today.
    app.exec(SHARD_01, "INSERT INTO raffle_activity_account (user_id, activity_id, total_count, total_count_surplus, day_count, day_count_surplus, month_count, month_count_surplus) VALUES ('xiaofuge', 100301, 45, 44, 45, 45, 45, 45)").await;
    app.ok(&draw("xiaofuge")).await;
    let day = app
        .sql(
            SHARD_01,
            "SELECT day_count, day_count_surplus FROM raffle_activity_account_day WHERE user_id = 'xiaofuge'",
        )
        .await;
    let month = app
        .sql(
            SHARD_01,
            "SELECT month_count, month_count_surplus FROM raffle_activity_account_month WHERE user_id = 'xiaofuge'",
        )
        .await;
    assert_eq!(day, vec![json!({"day_count": 45, "day_count_surplus": 44})]);
    assert_eq!(month, vec![json!({"month_count": 45, "month_count_surplus": 44})]);
    let acc = app.sql(SHARD_01, "SELECT total_count_surplus, day_count_surplus, month_count_surplus FROM raffle_activity_account WHERE user_id = 'xiaofuge'").await;
    assert_eq!(
        acc,
        vec![json!({"total_count_surplus": 43, "day_count_surplus": 44, "month_count_surplus": 44})]
    );
    app.cleanup().await;
}

#[tokio::test]
async fn an_unused_ticket_from_the_original_system_is_reused_without_spending_quota() {
    let app = armed().await;
    app.ok(&recharge("xiaofuge", 9014, "x-1")).await;
    app.exec(SHARD_01, "INSERT INTO user_raffle_order_001 (user_id, activity_id, activity_name, strategy_id, order_id, order_time, order_state) VALUES ('xiaofuge', 100301, '测试活动', 100006, '313091076458', '2024-04-05 09:10:31', 'create')").await;
    let d = app.ok(&draw("xiaofuge")).await["draw"].clone();
    assert_eq!(d["orderId"], "313091076458");
    assert_eq!(
        app.int(
            SHARD_01,
            "SELECT total_count_surplus FROM raffle_activity_account WHERE user_id = 'xiaofuge'"
        )
        .await,
        1,
        "no quota spent"
    );
    assert_eq!(
        app.int(
            SHARD_01,
            "SELECT COUNT(*) FROM user_raffle_order_001 WHERE order_state = 'used'"
        )
        .await,
        1
    );
    // Next draw pays with quota (package 9014 = 1/1/1), the one after has none left.
    app.ok(&draw("xiaofuge")).await;
    assert_eq!(app.error_code(&draw("xiaofuge")).await, "ERR_BIZ_006");
    app.cleanup().await;
}

#[tokio::test]
async fn quota_errors_carry_their_codes_and_write_nothing() {
    let app = armed().await;
    assert_eq!(app.error_code(&draw("nobody")).await, "ERR_BIZ_006", "no account");
    assert_eq!(
        app.error_code(r#"mutation { draw(userId: " ", activityId: 100301) { orderId } }"#)
            .await,
        "0002"
    );
    assert_eq!(
        app.error_code(r#"mutation { draw(userId: "u", activityId: 42) { orderId } }"#)
            .await,
        "0002"
    );
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    app.exec(SHARD_01, "INSERT INTO raffle_activity_account (user_id, activity_id, total_count, total_count_surplus, day_count, day_count_surplus, month_count, month_count_surplus) VALUES ('chen', 100301, 10, 10, 10, 10, 10, 10), ('zhan', 100301, 10, 10, 10, 10, 10, 10), ('user003', 100301, 10, 0, 10, 10, 10, 10)").await;
    app.exec(SHARD_01, &format!("INSERT INTO raffle_activity_account_month (user_id, activity_id, month, month_count, month_count_surplus) VALUES ('chen', 100301, '{month}', 10, 0)")).await;
    app.exec(SHARD_01, &format!("INSERT INTO raffle_activity_account_day (user_id, activity_id, day, day_count, day_count_surplus) VALUES ('zhan', 100301, '{today}', 10, 0)")).await;
    assert_eq!(app.error_code(&draw("user003")).await, "ERR_BIZ_006");
    assert_eq!(app.error_code(&draw("chen")).await, "ERR_BIZ_007");
    assert_eq!(app.error_code(&draw("zhan")).await, "ERR_BIZ_008");
    assert_eq!(
        app.int(SHARD_01, "SELECT SUM(total_count_surplus) FROM raffle_activity_account")
            .await,
        20,
        "nothing half-written"
    );
    assert_eq!(
        app.int(SHARD_01, "SELECT COUNT(*) FROM user_raffle_order_000").await
            + app.int(SHARD_01, "SELECT COUNT(*) FROM user_raffle_order_002").await,
        0
    );
    // A closed activity.
    app.exec(
        CONFIG,
        "UPDATE raffle_activity SET state = 'close' WHERE activity_id = 100301",
    )
    .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    assert_eq!(app.error_code(&draw("chen")).await, "ERR_BIZ_003");
    app.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_concurrent_draws_on_fifty_quota_succeed_exactly_fifty_times() {
    // One user racing 200 draws against itself takes longer than the default 1 s deadline
    // (those draws would answer 0006, writing nothing): this test is about exactness.
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
        s.draw.timeout_ms = 60_000;
    })
    .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    let app = Arc::new(app);
    app.ok(&recharge("kiss", 9012, "fifty")).await; // 50/50/50, kiss → big_market_02 _000
    let tasks: Vec<_> = (0..200)
        .map(|_| {
            let app = app.clone();
            tokio::spawn(async move { app.graphql(&draw("kiss")).await })
        })
        .collect();
    let mut ok = 0;
    let mut codes: HashMap<String, usize> = HashMap::new();
    for t in tasks {
        let body = t.await.unwrap();
        match body["errors"][0]["extensions"]["code"].as_str() {
            None => ok += 1,
            Some(code) => *codes.entry(code.to_owned()).or_default() += 1,
        }
    }
    assert_eq!(ok, 50, "{codes:?}");
    assert!(
        codes
            .keys()
            .all(|c| ["ERR_BIZ_006", "ERR_BIZ_007", "ERR_BIZ_008"].contains(&c.as_str())),
        "{codes:?}"
    );
    let acc = app.sql(SHARD_02, "SELECT total_count_surplus, day_count_surplus, month_count_surplus FROM raffle_activity_account WHERE user_id = 'kiss'").await;
    assert_eq!(
        acc,
        vec![json!({"total_count_surplus": 0, "day_count_surplus": 0, "month_count_surplus": 0})]
    );
    assert_eq!(
        app.int(
            SHARD_02,
            "SELECT MIN(day_count_surplus) FROM raffle_activity_account_day WHERE user_id = 'kiss'"
        )
        .await,
        0
    );
    assert_eq!(
        app.int(
            SHARD_02,
            "SELECT COUNT(*) FROM user_award_record_000 WHERE user_id = 'kiss'"
        )
        .await,
        50
    );
    assert_eq!(
        app.int(
            SHARD_02,
            "SELECT COUNT(*) FROM user_raffle_order_000 WHERE order_state = 'used'"
        )
        .await,
        50
    );
    assert_eq!(
        app.int(SHARD_02, "SELECT COUNT(*) FROM task WHERE topic = 'send_award'")
            .await,
        50
    );
    Arc::into_inner(app).unwrap().cleanup().await;
}

/// Strategy 100006 rigged so every default draw picks award 102, whose stock is 10 of 10.
async fn rigged_app() -> Arc<TestApp> {
    let app = spawn_app().await;
    app.exec(
        CONFIG,
        "UPDATE strategy SET rule_models = NULL WHERE strategy_id = 100006",
    )
    .await;
    app.exec(
        CONFIG,
        "UPDATE strategy_award SET award_rate = 0 WHERE strategy_id = 100006 AND award_id <> 102",
    )
    .await;
    app.exec(CONFIG, "UPDATE strategy_award SET award_rate = 1, award_count = 10, award_count_surplus = 10 WHERE strategy_id = 100006 AND award_id = 102").await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    Arc::new(app)
}

async fn race(app: &Arc<TestApp>, users: std::ops::Range<usize>) -> HashMap<i64, usize> {
    let tasks: Vec<_> = users
        .map(|i| {
            let app = app.clone();
            tokio::spawn(async move {
                let user = format!("racer{i}");
                app.ok(&recharge(&user, 9014, &format!("r{i}"))).await;
                app.ok(&draw(&user)).await["draw"]["awardId"].as_i64().unwrap()
            })
        })
        .collect();
    let mut won: HashMap<i64, usize> = HashMap::new();
    for t in tasks {
        *won.entry(t.await.unwrap()).or_default() += 1;
    }
    won
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_hundred_users_racing_for_stock_ten_win_it_exactly_ten_times_even_across_a_redis_loss() {
    let app = rigged_app().await;
    let won = race(&app, 0..100).await;
    assert_eq!(won.get(&102), Some(&10), "{won:?}");
    assert_eq!(won.get(&101), Some(&90), "the others get the luck award: {won:?}");
    let zero = app
        .int(
            SHARD_01,
            "SELECT COUNT(*) FROM task WHERE topic = 'strategy_award_stock_zero'",
        )
        .await
        + app
            .int(
                SHARD_02,
                "SELECT COUNT(*) FROM task WHERE topic = 'strategy_award_stock_zero'",
            )
            .await;
    assert_eq!(zero, 1, "one stock-zero event through the outbox");
    // Redis is lost and re-armed: stock is derived from the award records, nothing is oversold.
    app.flush_redis().await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    let won = race(&app, 100..130).await;
    assert_eq!(won.get(&102), None, "{won:?}");
    let mut total = 0;
    for db in [SHARD_01, SHARD_02] {
        for t in 0..4 {
            total += app
                .int(
                    db,
                    &format!("SELECT COUNT(*) FROM user_award_record_{t:03} WHERE award_id = 102"),
                )
                .await;
        }
    }
    assert_eq!(total, 10);
    Arc::into_inner(app).unwrap().cleanup().await;
}

/// The process remembers each user's quota after a draw, but the shard decides: a change made
/// elsewhere (another instance, an operator) is seen by the next draw, in both directions.
#[tokio::test]
async fn a_draw_sees_quota_changed_behind_this_instance() {
    let app = armed().await;
    app.ok(&recharge("xiaofuge", 9014, "one")).await; // 1 / 1 / 1
    app.ok(&draw("xiaofuge")).await;
    // Granted more elsewhere: this instance last saw the quota spent, and must not refuse.
    let raise = "UPDATE raffle_activity_account SET total_count = total_count + 2, total_count_surplus = total_count_surplus + 2, \
                 day_count = day_count + 2, month_count = month_count + 2, version = version + 1 WHERE user_id = 'xiaofuge'";
    app.exec(SHARD_01, raise).await;
    app.exec(SHARD_01, "UPDATE raffle_activity_account_day SET day_count = day_count + 2, day_count_surplus = day_count_surplus + 2 WHERE user_id = 'xiaofuge'").await;
    app.exec(SHARD_01, "UPDATE raffle_activity_account_month SET month_count = month_count + 2, month_count_surplus = month_count_surplus + 2 WHERE user_id = 'xiaofuge'").await;
    app.ok(&draw("xiaofuge")).await;
    // Spent elsewhere: this instance last saw one draw left, and must not overspend.
    app.exec(
        SHARD_01,
        "UPDATE raffle_activity_account SET total_count_surplus = 0, version = version + 1 WHERE user_id = 'xiaofuge'",
    )
    .await;
    assert_eq!(app.error_code(&draw("xiaofuge")).await, "ERR_BIZ_006");
    assert_eq!(
        app.int(
            SHARD_01,
            "SELECT COUNT(*) FROM user_award_record_001 WHERE user_id = 'xiaofuge'"
        )
        .await,
        2
    );
    app.cleanup().await;
}

/// A draw that cannot be saved before its deadline (`draw.timeout_ms`, 1 s) — here the
/// account row is held by another transaction — answers `0006`, writes nothing and gives its
/// stock back; once the row is free the next draw goes through.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_draw_blocked_past_its_deadline_answers_0006_and_leaves_nothing_behind() {
    use redis::AsyncCommands as _;
    use sea_orm::{ConnectionTrait as _, TransactionTrait as _};

    let app = rigged_app().await; // every draw wins award 102, stock 10
    app.ok(&recharge("xiaofuge", 9011, "deadline")).await;
    let stock_key = app.key("strategy_award_count_key_100006_102");
    let stock = || async { app.redis.clone().get::<_, i64>(&stock_key).await.unwrap() };
    assert_eq!(stock().await, 10);

    let holder = app.dbs[SHARD_01].begin().await.unwrap();
    holder
        .execute_unprepared("SELECT * FROM raffle_activity_account WHERE user_id = 'xiaofuge' FOR UPDATE")
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let code = app.error_code(&draw("xiaofuge")).await;
    let took = started.elapsed();
    holder.rollback().await.unwrap();
    assert_eq!(code, "0006");
    assert!(took < std::time::Duration::from_secs(3), "answered after {took:?}");
    assert_eq!(stock().await, 10, "the stock taken for the draw was given back");
    assert_eq!(
        app.int(SHARD_01, "SELECT COUNT(*) FROM user_award_record_001").await
            + app.int(SHARD_01, "SELECT COUNT(*) FROM user_raffle_order_001").await,
        0,
        "nothing written"
    );
    assert_eq!(
        app.int(
            SHARD_01,
            "SELECT total_count_surplus FROM raffle_activity_account WHERE user_id = 'xiaofuge'"
        )
        .await,
        150
    );

    assert_eq!(app.ok(&draw("xiaofuge")).await["draw"]["awardId"], 102);
    assert_eq!(stock().await, 9);
    Arc::into_inner(app).unwrap().cleanup().await;
}

/// After a sell-out an operator adds 5 units: exactly 5 more draws win the award (the unit
/// locks of the earlier sales do not block the new units), and the durable count follows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_added_after_a_sell_out_is_sold_exactly_once() {
    let app = rigged_app().await;
    let won = race(&app, 0..12).await;
    assert_eq!(won.get(&102), Some(&10), "{won:?}");
    let added = app
        .ok("mutation { addAwardStock(strategyId: 100006, awardId: 102, units: 5) { count surplus live } }")
        .await;
    assert_eq!(added["addAwardStock"]["count"], 15);
    assert_eq!(added["addAwardStock"]["live"], 5);
    let won = race(&app, 12..30).await;
    assert_eq!(won.get(&102), Some(&5), "{won:?}");
    assert_eq!(
        app.int(
            CONFIG,
            "SELECT award_count FROM strategy_award WHERE strategy_id = 100006 AND award_id = 102"
        )
        .await,
        15
    );
    assert_eq!(
        app.error_code("mutation { addAwardStock(strategyId: 100006, awardId: 999, units: 5) { count } }")
            .await,
        "0002"
    );
    assert_eq!(
        app.error_code("mutation { addAwardStock(strategyId: 100006, awardId: 102, units: 0) { count } }")
            .await,
        "0002"
    );
    // SKUs the same way: count and live counter raised together.
    let before = app
        .int(CONFIG, "SELECT stock_count FROM raffle_activity_sku WHERE sku = 9011")
        .await;
    let live: i64 = {
        use redis::AsyncCommands as _;
        app.redis
            .clone()
            .get(app.key("big_market_activity_sku_stock_count_key_9011"))
            .await
            .unwrap()
    };
    let added = app
        .ok("mutation { addSkuStock(sku: 9011, units: 3) { count live } }")
        .await;
    assert_eq!(added["addSkuStock"]["count"], before + 3);
    assert_eq!(added["addSkuStock"]["live"], live + 3);
    assert_eq!(
        app.error_code("mutation { addSkuStock(sku: 1, units: 3) { count } }")
            .await,
        "0002"
    );
    Arc::into_inner(app).unwrap().cleanup().await;
}

/// User ids take up to 128 characters (the latest original's `varchar(128)`), multi-byte ones
/// included, from recharge to award record; one more is refused with `0002`.
#[tokio::test]
async fn a_user_id_of_128_characters_draws_and_one_of_129_is_refused() {
    let app = armed().await;
    let long: String = "界".repeat(100) + &"x".repeat(28);
    assert_eq!(long.chars().count(), 128);
    app.ok(&recharge(&long, 9011, "long-1")).await;
    let d = app.ok(&draw(&long)).await["draw"].clone();
    let order_id = d["orderId"].as_str().unwrap().to_owned();
    let token = app.user_token(&long);
    let awards = app
        .graphql_as(Some(&token), "{ userAwards { edges { node { orderId } } } }")
        .await;
    assert!(awards.get("errors").is_none(), "{awards}");
    assert_eq!(app.count_split("user_award_record").await, 1, "{order_id}");
    let too_long = long + "y";
    assert_eq!(app.error_code(&draw(&too_long)).await, "0002");
    assert_eq!(app.error_code(&recharge(&too_long, 9011, "long-2")).await, "0002");
    app.cleanup().await;
}
