//! `Node` and `node(id:)` (docs/SCHEMA.md §Node): refetching each type by its global id, with
//! the access rule of the type's own field; the output formats of ids and times.

use serde_json::{Value, json};
use test_support::app::{CONFIG, TestApp, error_code_of, spawn_app_with};

use api::auth::Role;

/// Activity 100301 (strategy 100006) armed, `alice` with quota, stage 2 in the table.
async fn app() -> TestApp {
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    app.ok(r#"mutation { rechargeQuota(userId: "alice", sku: 9014, outBusinessNo: "n-1") { orderId } }"#)
        .await;
    app.exec(CONFIG, "DELETE FROM raffle_activity_stage").await;
    app.exec(
        CONFIG,
        "INSERT INTO raffle_activity_stage (id, channel, source, activity_id, state) VALUES (2, 'c01', 's01', 100301, 'create')",
    )
    .await;
    app
}

fn refetch(id: &str) -> String {
    format!(
        r#"{{ node(id: "{id}") {{ __typename id
            ... on Strategy {{ strategyId awards {{ awardId awardCountSurplus }} }}
            ... on SkuProduct {{ sku activityId stockCountSurplus }}
            ... on Task {{ messageId topic state }}
            ... on Stage {{ stageId channel activityId }} }} }}"#
    )
}

fn code(body: &Value) -> &str {
    error_code_of(body).unwrap_or_else(|| panic!("no error code in {body}"))
}

/// `2026-11-30T15:24:46.123Z`: UTC, `Z`, three fraction digits.
fn is_utc_millis(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 24
        && b[23] == b'Z'
        && b[19] == b'.'
        && b[10] == b'T'
        && t.char_indices()
            .all(|(i, c)| matches!(i, 4 | 7 | 10 | 13 | 16 | 19 | 23) || c.is_ascii_digit())
}

#[tokio::test]
async fn node_refetches_every_node_type_by_the_global_id_it_answered_with() {
    let app = app().await;
    // Public objects: anyone refetches them, and gets what the type's own field answers.
    let listed = app
        .graphql_as(
            None,
            "{ strategy(strategyId: 100006) { id strategyId awards { awardId awardCountSurplus } } \
               skuProducts(activityId: 100301) { id sku activityId stockCountSurplus } }",
        )
        .await;
    assert!(listed.get("errors").is_none(), "{listed}");
    let strategy = &listed["data"]["strategy"];
    assert_eq!(strategy["strategyId"], "100006", "64-bit ids are ID: strings on output");
    let id = strategy["id"].as_str().unwrap();
    assert_eq!(id, "U3RyYXRlZ3k6MTAwMDA2", "base64 of `Strategy:100006`");
    let node = app.graphql_as(None, &refetch(id)).await;
    let mut want = strategy.clone();
    want["__typename"] = json!("Strategy");
    assert_eq!(node["data"]["node"], want, "{node}");

    let sku = listed["data"]["skuProducts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["sku"] == "9014")
        .unwrap_or_else(|| panic!("no SKU 9014 in {listed}"))
        .clone();
    let node = app.graphql_as(None, &refetch(sku["id"].as_str().unwrap())).await;
    let mut want = sku.clone();
    want["__typename"] = json!("SkuProduct");
    assert_eq!(node["data"]["node"], want, "{node}");

    // An event: its owner refetches it; its times are UTC with milliseconds.
    let alice = app.user_token("alice");
    let drawn = app
        .graphql_as(
            Some(&alice),
            "mutation { draw(activityId: 100301) { orderId messageId } }",
        )
        .await;
    let message_id = drawn["data"]["draw"]["messageId"].as_str().unwrap().to_owned();
    assert!(message_id.parse::<i64>().is_ok(), "{drawn}");
    let task = app
        .graphql_as(
            Some(&alice),
            &format!(r#"{{ task(messageId: "{message_id}") {{ id messageId topic state createdAt updatedAt }} }}"#),
        )
        .await;
    let task = &task["data"]["task"];
    for at in ["createdAt", "updatedAt"] {
        let t = task[at].as_str().unwrap_or_default();
        assert!(is_utc_millis(t), "{at} {t:?} is not UTC with milliseconds");
    }
    let node = app
        .graphql_as(Some(&alice), &refetch(task["id"].as_str().unwrap()))
        .await;
    assert_eq!(
        node["data"]["node"],
        json!({"__typename": "Task", "id": task["id"], "messageId": message_id, "topic": "send_award", "state": task["state"]}),
        "{node}"
    );

    // A stage: operators only, as `stages`.
    let stages = app.ok("{ stages { nodes { id stageId channel activityId } } }").await;
    let stage = &stages["stages"]["nodes"][0];
    assert_eq!(stage["stageId"], "2", "{stages}");
    let node = app.ok(&refetch(stage["id"].as_str().unwrap())).await;
    let mut want = stage.clone();
    want["__typename"] = json!("Stage");
    assert_eq!(node["node"], want);

    // Ids of objects that no longer exist answer null; ids this service never issued, 0002.
    for gone in ["U3RyYXRlZ3k6NDI=", "U3RhZ2U6OTk=", "VGFzazox"] {
        let body = app.ok(&refetch(gone)).await;
        assert_eq!(body["node"], Value::Null, "{gone}: {body}");
    }
    for bad in ["abc", "Tm9wZTox", "100006"] {
        let body = app.graphql(&refetch(bad)).await;
        assert_eq!(code(&body), "0002", "{bad}: {body}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn node_applies_the_access_rule_of_the_types_own_field() {
    let app = app().await;
    let alice = app.user_token("alice");
    let drawn = app
        .graphql_as(Some(&alice), "mutation { draw(activityId: 100301) { messageId } }")
        .await;
    let message_id = drawn["data"]["draw"]["messageId"].as_str().unwrap().to_owned();
    let task_id = app
        .ok(&format!(r#"{{ task(messageId: "{message_id}") {{ id }} }}"#))
        .await["task"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stage_id = "U3RhZ2U6Mg=="; // Stage:2

    // Another user's event: FORBIDDEN, as `task`; no token: UNAUTHENTICATED.
    let bob = app.user_token("bob");
    for (token, who, id, want) in [
        (Some(bob.as_str()), "bob", task_id.as_str(), "FORBIDDEN"),
        (None, "anonymous", task_id.as_str(), "UNAUTHENTICATED"),
        (Some(alice.as_str()), "alice", stage_id, "FORBIDDEN"),
        (None, "anonymous", stage_id, "UNAUTHENTICATED"),
    ] {
        let body = app.graphql_as(token, &refetch(id)).await;
        assert_eq!(code(&body), want, "{who} refetching {id}: {body}");
        assert_eq!(body["data"]["node"], Value::Null, "{body}");
    }
    // A service reads any user's events; the owner and admins theirs and the stage.
    let service = app.token("billing", Role::Service);
    for token in [service.as_str(), alice.as_str()] {
        let body = app.graphql_as(Some(token), &refetch(&task_id)).await;
        assert_eq!(body["data"]["node"]["messageId"], message_id.as_str(), "{body}");
    }
    assert_eq!(app.ok(&refetch(stage_id)).await["node"]["stageId"], "2");
    app.cleanup().await;
}
