use serde_json::json;

use test_support::app::spawn_app;

#[tokio::test]
async fn arm_then_query_then_draw_strategy_100006() {
    let app = spawn_app().await;
    assert_eq!(
        app.ok("mutation { armStrategy(strategyId: 100006) }").await,
        json!({ "armStrategy": true })
    );
    let data = app
        .ok("{ strategy(strategyId: 100006) { strategyId strategyDesc ruleModels awards { awardId awardTitle awardSubtitle awardRate awardCount awardCountSurplus sort } } }")
        .await;
    let s = &data["strategy"];
    assert_eq!(s["strategyId"], "100006");
    assert_eq!(s["ruleModels"], json!(["rule_blacklist", "rule_weight"]));
    let awards = s["awards"].as_array().unwrap();
    assert_eq!(awards.len(), 8);
    assert_eq!(
        awards[0],
        json!({ "awardId": 101, "awardTitle": "随机积分", "awardSubtitle": null, "awardRate": "0.7900", "awardCount": 10000, "awardCountSurplus": 9982, "sort": 1 })
    );
    assert_eq!(awards[4]["awardSubtitle"], "抽奖3次后解锁");

    let ids: Vec<i64> = awards.iter().map(|a| a["awardId"].as_i64().unwrap()).collect();
    for _ in 0..20 {
        let d = app
            .ok("mutation { randomRaffle(strategyId: 100006) { awardId awardTitle awardIndex } }")
            .await;
        let won = d["randomRaffle"]["awardId"].as_i64().unwrap();
        assert!(ids.contains(&won), "{d}");
        assert!(
            ![105, 106, 107].contains(&won),
            "locked awards need draws today; system has none: {d}"
        );
    }
    app.cleanup().await;
}

#[tokio::test]
async fn strategy_100004_gives_its_single_unit_then_the_luck_award() {
    let app = spawn_app().await;
    app.ok("mutation { armStrategy(strategyId: 100004) }").await;
    let first = app
        .ok("mutation { randomRaffle(strategyId: 100004) { awardId awardTitle awardIndex } }")
        .await;
    assert_eq!(
        first["randomRaffle"],
        json!({ "awardId": 109, "awardTitle": "解锁全部模型", "awardIndex": 9 })
    );
    let second = app
        .ok("mutation { randomRaffle(strategyId: 100004) { awardId awardIndex } }")
        .await;
    assert_eq!(second["randomRaffle"], json!({ "awardId": 101, "awardIndex": null }));
    let stock = app
        .ok("{ strategy(strategyId: 100004) { awards { awardId awardCountSurplus } } }")
        .await;
    assert_eq!(
        stock["strategy"]["awards"],
        json!([{ "awardId": 109, "awardCountSurplus": 0 }])
    );
    app.cleanup().await;
}

#[tokio::test]
async fn errors_carry_stable_codes() {
    let app = spawn_app().await;
    assert_eq!(
        app.error_code("mutation { randomRaffle(strategyId: 100006) { awardId } }")
            .await,
        "ERR_BIZ_002"
    );
    assert_eq!(app.error_code("mutation { armStrategy(strategyId: 42) }").await, "0002");
    assert_eq!(
        app.error_code("{ strategy(strategyId: 42) { strategyId } }").await,
        "0002"
    );
    let body = app.graphql("mutation { armStrategy(strategyId: 42) }").await;
    assert_eq!(body["errors"][0]["message"], "strategy 42 does not exist");
    // A malformed id is refused with a message naming the argument, never a 500.
    let body = app.graphql("mutation { armStrategy(strategyId: \"abc\") }").await;
    assert!(
        body["errors"][0]["message"].as_str().unwrap().contains("strategyId"),
        "{body}"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn non_positive_ids_are_rejected_at_the_edge_with_0002() {
    let app = spawn_app().await;
    for query in [
        "mutation { armStrategy(strategyId: 0) }",
        "{ strategy(strategyId: -1) { strategyId } }",
        "mutation { randomRaffle(strategyId: 0) { awardId } }",
        "mutation { armActivity(activityId: 0) }",
        r#"mutation { draw(userId: "u", activityId: -5) { orderId } }"#,
        r#"mutation { rechargeQuota(userId: "u", sku: 0, outBusinessNo: "x") { orderId } }"#,
        r#"{ activityAccount(userId: "u", activityId: 0) { totalCount } }"#,
        "{ skuProducts(activityId: -1) { sku } }",
        r#"{ raffleAwards(userId: "u", activityId: 0) { awardId } }"#,
        r#"{ ruleWeights(userId: "u", activityId: 0) { ruleWeightCount } }"#,
    ] {
        assert_eq!(app.error_code(query).await, "0002", "{query}");
    }
    let body = app.graphql("mutation { armActivity(activityId: 0) }").await;
    assert_eq!(body["errors"][0]["message"], "activityId must be positive, got 0");
    app.cleanup().await;
}
