//! GraphQL over HTTP (docs/ERRORS.md, api/src/http.rs): media types, methods, status codes and
//! the codes of request errors; and graphql-http's own server audits.

use serde_json::{Value, json};
use test_support::app::{TestApp, spawn_app_with};

async fn app() -> TestApp {
    spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await
}

async fn post(app: &TestApp, accept: Option<&str>, body: &Value) -> (u16, String, Value) {
    let mut req = app
        .client
        .post(format!("{}/graphql", app.address))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let media = resp.headers()["content-type"].to_str().unwrap().to_owned();
    (status, media, resp.json().await.unwrap_or(Value::Null))
}

fn code(body: &Value) -> &str {
    body["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {body}"))
}

#[tokio::test]
async fn request_errors_are_400_without_data_under_the_graphql_response_media_type_and_200_under_json() {
    let app = app().await;
    const GRJ: &str = "application/graphql-response+json";
    for (query, want) in [
        ("{ __typename", "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
        ("{ strategy(strategyId: \"abc\") { strategyId } }", "BAD_USER_INPUT"),
    ] {
        let (status, media, body) = post(&app, Some(GRJ), &json!({ "query": query })).await;
        assert_eq!((status, code(&body)), (400, want), "{query}: {body}");
        assert!(media.starts_with(GRJ), "{media}");
        assert!(body.get("data").is_none(), "{body}");
        let (status, media, body) = post(&app, Some("application/json"), &json!({ "query": query })).await;
        assert_eq!((status, code(&body)), (200, want), "{query}: {body}");
        assert!(media.starts_with("application/json"), "{media}");
    }
    // A variable of the wrong type is refused before execution too.
    let (status, _, body) = post(
        &app,
        Some(GRJ),
        &json!({ "query": "query($id: Int!) { strategy(strategyId: $id) { strategyId } }", "variables": { "id": "x" } }),
    )
    .await;
    assert_eq!((status, code(&body)), (400, "BAD_USER_INPUT"), "{body}");
    // An error of execution keeps 200 and its data.
    let (status, _, body) = post(
        &app,
        Some(GRJ),
        &json!({ "query": "{ strategy(strategyId: 42) { strategyId } }" }),
    )
    .await;
    assert_eq!((status, code(&body)), (200, "0002"), "{body}");
    app.cleanup().await;
}

#[tokio::test]
async fn get_runs_queries_only_and_post_takes_json_only() {
    let app = app().await;
    let url = format!("{}/graphql", app.address);
    let get = app
        .client
        .get(&url)
        .query(&[("query", "{ __typename }")])
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    assert_eq!(get.json::<Value>().await.unwrap()["data"]["__typename"], "Query");
    let mutation = app
        .client
        .get(&url)
        .query(&[("query", "mutation { armActivity(activityId: 100301) }")])
        .send()
        .await
        .unwrap();
    assert_eq!(mutation.status(), 405);
    assert_eq!(mutation.headers()["allow"], "POST");
    for content_type in [Some("text/plain"), Some("application/x-www-form-urlencoded"), None] {
        let mut req = app.client.post(&url).body(r#"{"query":"{ __typename }"}"#);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 415, "{content_type:?}");
    }
    let not_acceptable = app
        .client
        .post(&url)
        .header("accept", "text/html")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert_eq!(not_acceptable.status(), 406);
    for body in [
        json!(null),
        json!("text"),
        json!({}),
        json!({ "query": 1 }),
        json!({ "query": "{ __typename }", "variables": [] }),
    ] {
        let (status, _, answer) = post(&app, None, &body).await;
        assert_eq!((status, code(&answer)), (400, "BAD_REQUEST"), "{body}: {answer}");
    }
    app.cleanup().await;
}

/// graphql-http's `serverAudits` (the reference implementation of the GraphQL over HTTP spec):
/// no error and no warning. Needs Node.js and `npm ci` in `tools/graphql-http-audit`
/// (`scripts/test.sh` runs it).
#[tokio::test]
async fn graphql_http_server_audits_pass_without_warnings() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tools/graphql-http-audit");
    assert!(
        dir.join("node_modules/graphql-http").exists(),
        "graphql-http is not installed: run `npm ci` in tools/graphql-http-audit (scripts/test.sh does)"
    );
    let app = app().await;
    let url = format!("{}/graphql", app.address);
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg("audit.mjs")
            .arg(url)
            .current_dir(&dir)
            .output()
    })
    .await
    .unwrap()
    .expect("running node (Node.js 18 or newer is needed)");
    let report = String::from_utf8_lossy(&out.stdout);
    println!("{report}");
    assert!(
        out.status.success(),
        "graphql-http audits failed:\n{report}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains(" 0 warnings, 0 errors"), "{report}");
    app.cleanup().await;
}
