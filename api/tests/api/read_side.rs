//! Redis read models behind the user queries (spec §5.5, §7.7, §9 item 35).

use serde_json::{Value, json};

use crate::helpers::{CONFIG, SHARD_01, TestApp, spawn_app_with};

fn account_query(user: &str) -> String {
    format!(
        r#"{{ activityAccount(userId: "{user}", activityId: 100301) {{ totalCount totalCountSurplus dayCount dayCountSurplus monthCount monthCountSurplus }} }}"#
    )
}

/// What MySQL holds for the account today (the view must say the same).
async fn account_in_mysql(app: &TestApp, user: &str) -> Value {
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let month = chrono::Utc::now().format("%Y-%m").to_string();
    let a = &app.sql(SHARD_01, &format!("SELECT total_count, total_count_surplus, day_count, month_count FROM raffle_activity_account WHERE user_id = '{user}'")).await[0];
    let day = app.sql(SHARD_01, &format!("SELECT day_count, day_count_surplus FROM raffle_activity_account_day WHERE user_id = '{user}' AND day = '{today}'")).await;
    let mon = app.sql(SHARD_01, &format!("SELECT month_count, month_count_surplus FROM raffle_activity_account_month WHERE user_id = '{user}' AND month = '{month}'")).await;
    json!({
        "totalCount": a["total_count"], "totalCountSurplus": a["total_count_surplus"],
        "dayCount": day.first().map_or(a["day_count"].clone(), |d| d["day_count"].clone()),
        "dayCountSurplus": day.first().map_or(a["day_count"].clone(), |d| d["day_count_surplus"].clone()),
        "monthCount": mon.first().map_or(a["month_count"].clone(), |m| m["month_count"].clone()),
        "monthCountSurplus": mon.first().map_or(a["month_count"].clone(), |m| m["month_count_surplus"].clone()),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queries_show_what_the_write_side_holds_and_survive_a_rebuild() {
    let app = spawn_app_with(|_| {}).await;
    app.exec(
        CONFIG,
        "UPDATE strategy SET rule_models = NULL WHERE strategy_id = 100006",
    )
    .await;
    app.exec(
        CONFIG,
        "UPDATE strategy_award SET award_rate = 0 WHERE strategy_id = 100006 AND award_id <> 101",
    )
    .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    app.ok(r#"mutation { rechargeQuota(userId: "xiaofuge", sku: 9013, outBusinessNo: "v-1") { orderId } }"#)
        .await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let d = app
            .ok(r#"mutation { draw(userId: "xiaofuge", activityId: 100301) { messageId orderId } }"#)
            .await;
        ids.push(d["draw"]["messageId"].as_str().unwrap().to_owned());
    }
    for id in &ids {
        app.eventually(15, &format!(r#"{{ task(messageId: "{id}") {{ state }} }}"#), |t| {
            t["task"]["state"] == "DELIVERED"
        })
        .await;
    }
    let expected = account_in_mysql(&app, "xiaofuge").await;
    assert_eq!(expected["totalCountSurplus"], 2, "5 recharged, 3 drawn");
    let view = app
        .eventually(5, &account_query("xiaofuge"), |d| d["activityAccount"] == expected)
        .await;
    let credit = app.sql(SHARD_01, "SELECT CAST(total_amount AS CHAR) t, CAST(available_amount AS CHAR) a FROM user_credit_account WHERE user_id = 'xiaofuge'").await;
    let credit_view = app
        .eventually(
            5,
            r#"{ creditAccount(userId: "xiaofuge") { totalAmount availableAmount } }"#,
            |d| d["creditAccount"]["totalAmount"].as_str() == credit[0]["t"].as_str(),
        )
        .await;
    assert_eq!(
        credit_view["creditAccount"]["availableAmount"].as_str(),
        credit[0]["a"].as_str()
    );
    let awards_q = r#"{ userAwards(userId: "xiaofuge", first: 2) { edges { cursor node { orderId awardId awardState } } pageInfo { hasNextPage endCursor } } }"#;
    let awards = app
        .eventually(5, awards_q, |d| {
            d["userAwards"]["edges"]
                .as_array()
                .is_some_and(|e| e.len() == 2 && e.iter().all(|x| x["node"]["awardState"] == "COMPLETED"))
        })
        .await;
    assert_eq!(awards["userAwards"]["pageInfo"]["hasNextPage"], true);
    let cursor = awards["userAwards"]["pageInfo"]["endCursor"].as_str().unwrap();
    let rest = app.ok(&format!(r#"{{ userAwards(userId: "xiaofuge", first: 2, after: "{cursor}") {{ edges {{ node {{ orderId }} }} pageInfo {{ hasNextPage }} }} }}"#)).await;
    assert_eq!(rest["userAwards"]["edges"].as_array().unwrap().len(), 1);
    assert_eq!(rest["userAwards"]["pageInfo"]["hasNextPage"], false);
    let mut all: Vec<String> = awards["userAwards"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["orderId"].as_str().unwrap().to_owned())
        .collect();
    all.push(
        rest["userAwards"]["edges"][0]["node"]["orderId"]
            .as_str()
            .unwrap()
            .to_owned(),
    );
    let mut in_db: Vec<String> = app
        .sql(
            SHARD_01,
            "SELECT order_id FROM user_award_record_001 ORDER BY award_time DESC, order_id DESC",
        )
        .await
        .iter()
        .map(|r| r["order_id"].as_str().unwrap().to_owned())
        .collect();
    let mut sorted = all.clone();
    sorted.sort();
    in_db.sort();
    assert_eq!(sorted, in_db, "every award once");

    // Every read-model key is deleted, then rebuilt from MySQL: the answers are identical.
    let before = (app.ok(&account_query("xiaofuge")).await, app.ok(r#"{ creditAccount(userId: "xiaofuge") { totalAmount availableAmount } }"#).await, app.ok(r#"{ userAwards(userId: "xiaofuge", first: 10) { edges { node { orderId awardId awardTitle awardTime awardState } } } }"#).await);
    let mut conn = app.redis.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(app.key("bm:rm:v:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.unwrap();
    let report = app
        .ok("mutation { rebuildProjections { accounts credits awards } }")
        .await;
    assert_eq!(
        report["rebuildProjections"],
        json!({"accounts": 1, "credits": 1, "awards": 3})
    );
    let after = (app.ok(&account_query("xiaofuge")).await, app.ok(r#"{ creditAccount(userId: "xiaofuge") { totalAmount availableAmount } }"#).await, app.ok(r#"{ userAwards(userId: "xiaofuge", first: 10) { edges { node { orderId awardId awardTitle awardTime awardState } } } }"#).await);
    assert_eq!(before, after);
    assert_eq!(view["activityAccount"], after.0["activityAccount"]);
    app.cleanup().await;
}

#[tokio::test]
async fn an_unknown_user_reads_zeros_not_an_error() {
    let app = spawn_app_with(|_| {}).await;
    let a = app.ok(&account_query("nobody")).await;
    assert_eq!(
        a["activityAccount"],
        json!({"totalCount": 0, "totalCountSurplus": 0, "dayCount": 0, "dayCountSurplus": 0, "monthCount": 0, "monthCountSurplus": 0})
    );
    let c = app
        .ok(r#"{ creditAccount(userId: "nobody") { totalAmount availableAmount } }"#)
        .await;
    assert_eq!(c["creditAccount"]["totalAmount"], "0");
    let w = app
        .ok(r#"{ userAwards(userId: "nobody") { edges { cursor } pageInfo { hasNextPage } } }"#)
        .await;
    assert_eq!(w["userAwards"]["edges"], json!([]));
    assert_eq!(
        app.error_code(r#"{ activityAccount(userId: "", activityId: 1) { totalCount } }"#)
            .await,
        "0002"
    );
    assert_eq!(
        app.error_code(r#"{ userAwards(userId: "u", after: "bad") { edges { cursor } } }"#)
            .await,
        "0002"
    );
    app.cleanup().await;
}
