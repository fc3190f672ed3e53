//! Redis read models behind the user queries (spec §5.5, §7.7, §9 item 35).

use serde_json::{Value, json};

use test_support::app::{SHARD_01, TestApp, spawn_app_with};

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
    app.rig_draws_to_award_101().await;
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
    let mut keys: Vec<String> = redis::cmd("KEYS")
        .arg(app.key("bm:rm:v:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    let task_keys: Vec<String> = redis::cmd("KEYS")
        .arg(app.key("bm:rm:t:*"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(task_keys.len(), 3, "one status view per send_award");
    keys.extend(task_keys);
    let _: () = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await.unwrap();
    let report = app
        .ok("mutation { rebuildProjections { accounts credits awards tasks } }")
        .await;
    assert_eq!(
        report["rebuildProjections"],
        json!({"accounts": 1, "credits": 1, "awards": 3, "tasks": 3})
    );
    for id in &ids {
        let t = app.ok(&format!(r#"{{ task(messageId: "{id}") {{ state }} }}"#)).await;
        assert_eq!(t["task"]["state"], "DELIVERED", "task status rebuilt");
    }
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
    let mut redis = app.redis.clone();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*nobody*", app.settings.redis.key_prefix))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert_eq!(keys, Vec::<String>::new(), "reads of an unknown user create no keys");
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

#[tokio::test]
async fn award_list_rule_weights_and_sku_products_follow_the_spec() {
    let app = spawn_app_with(|_| {}).await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    app.ok(r#"mutation { rechargeQuota(userId: "xiaofuge", sku: 9013, outBusinessNo: "l-1") { orderId } }"#)
        .await;
    app.ok(r#"mutation { draw(userId: "xiaofuge", activityId: 100301) { orderId } }"#)
        .await;
    // Spec §9 item 33: one partake today.
    let q = r#"{ raffleAwards(userId: "xiaofuge", activityId: 100301) { awardId sort awardRuleLockCount isAwardUnlock waitUnlockCount } }"#;
    let list = app
        .eventually(10, q, |d| {
            d["raffleAwards"]
                .as_array()
                .unwrap()
                .iter()
                .any(|a| a["awardId"] == 107 && a["isAwardUnlock"] == true)
        })
        .await;
    let by_id = |id: i64| {
        list["raffleAwards"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["awardId"] == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        by_id(107),
        json!({"awardId": 107, "sort": 7, "awardRuleLockCount": 1, "isAwardUnlock": true, "waitUnlockCount": 0})
    );
    assert_eq!(
        by_id(106),
        json!({"awardId": 106, "sort": 6, "awardRuleLockCount": 2, "isAwardUnlock": false, "waitUnlockCount": 1})
    );
    assert_eq!(
        by_id(105),
        json!({"awardId": 105, "sort": 5, "awardRuleLockCount": 3, "isAwardUnlock": false, "waitUnlockCount": 2})
    );
    for id in [101, 102, 103, 104, 108] {
        assert_eq!(
            (
                by_id(id)["awardRuleLockCount"].clone(),
                by_id(id)["isAwardUnlock"].clone()
            ),
            (Value::Null, json!(true))
        );
    }
    let sorts: Vec<i64> = list["raffleAwards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["sort"].as_i64().unwrap())
        .collect();
    assert_eq!(sorts, (1..=8).collect::<Vec<_>>());
    // §9 item 34.
    let w = app.ok(r#"{ ruleWeights(userId: "xiaofuge", activityId: 100301) { ruleWeightCount userActivityAccountTotalUserCount strategyAwards { awardId awardTitle } } }"#).await;
    assert_eq!(
        w["ruleWeights"],
        json!([
            {"ruleWeightCount": 10, "userActivityAccountTotalUserCount": 1, "strategyAwards": [{"awardId": 102, "awardTitle": "OpenAI会员卡"}, {"awardId": 103, "awardTitle": "支付优惠券"}]},
            {"ruleWeightCount": 70, "userActivityAccountTotalUserCount": 1, "strategyAwards": [{"awardId": 106, "awardTitle": "轻奢办公椅"}, {"awardId": 107, "awardTitle": "小霸王游戏机"}]},
            {"ruleWeightCount": 1000, "userActivityAccountTotalUserCount": 1, "strategyAwards": [{"awardId": 104, "awardTitle": "小米台灯"}, {"awardId": 105, "awardTitle": "小米su7周体验"}]}
        ])
    );
    // §9 item 38, with live stock (one 9013 sold).
    let p = app.ok("{ skuProducts(activityId: 100301) { sku productAmount stockCountSurplus activityCount { totalCount dayCount monthCount } } }").await;
    assert_eq!(
        p["skuProducts"],
        json!([
            {"sku": "9011", "productAmount": "200.00", "stockCountSurplus": 99887, "activityCount": {"totalCount": 150, "dayCount": 150, "monthCount": 150}},
            {"sku": "9012", "productAmount": "100.00", "stockCountSurplus": 99885, "activityCount": {"totalCount": 50, "dayCount": 50, "monthCount": 50}},
            {"sku": "9013", "productAmount": "20.00", "stockCountSurplus": 99883, "activityCount": {"totalCount": 5, "dayCount": 5, "monthCount": 5}},
            {"sku": "9014", "productAmount": "5.00", "stockCountSurplus": 99866, "activityCount": {"totalCount": 1, "dayCount": 1, "monthCount": 1}}
        ])
    );
    assert_eq!(app.error_code("{ skuProducts(activityId: 42) { sku } }").await, "0002");
    app.cleanup().await;
}

#[tokio::test]
async fn task_status_is_served_from_the_read_model() {
    let app = spawn_app_with(|_| {}).await;
    app.rig_draws_to_award_101().await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    app.ok(r#"mutation { rechargeQuota(userId: "xiaofuge", sku: 9014, outBusinessNo: "t-1") { orderId } }"#)
        .await;
    let d = app
        .ok(r#"mutation { draw(userId: "xiaofuge", activityId: 100301) { messageId } }"#)
        .await;
    let id = d["draw"]["messageId"].as_str().unwrap();
    let q = format!(r#"{{ task(messageId: "{id}") {{ state userId topic attempts }} }}"#);
    app.eventually(15, &q, |t| t["task"]["state"] == "DELIVERED").await;
    // The shard row is gone: the status still answers, from Redis alone.
    app.exec(SHARD_01, &format!("DELETE FROM task WHERE message_id = '{id}'"))
        .await;
    let t = app.ok(&q).await;
    assert_eq!(
        t["task"],
        json!({"state": "DELIVERED", "userId": "xiaofuge", "topic": "send_award", "attempts": 1})
    );
    app.cleanup().await;
}
