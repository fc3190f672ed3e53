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
    test_support::app::error_code_of(body).unwrap_or_else(|| panic!("no error code in {body}"))
}

#[tokio::test]
async fn request_errors_are_400_without_data_under_the_graphql_response_media_type_and_200_under_json() {
    let app = app().await;
    const GRJ: &str = "application/graphql-response+json";
    for (query, want) in [
        ("{ __typename", "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
        ("{ strategy(strategyId: 1.5) { strategyId } }", "BAD_USER_INPUT"),
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
        &json!({ "query": "query($id: ID!) { strategy(strategyId: $id) { strategyId } }", "variables": { "id": true } }),
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

#[tokio::test]
async fn large_answers_are_compressed_as_the_client_prefers_and_small_ones_are_not() {
    use std::io::Read as _;
    let app = app().await;
    let url = format!("{}/graphql", app.address);
    let introspection = json!({ "query": "{ __schema { types { name fields { name } } } }" });
    let plain = app.client.post(&url).json(&introspection).send().await.unwrap();
    assert!(plain.headers().get("content-encoding").is_none());
    let plain = plain.bytes().await.unwrap();
    assert!(plain.len() > 4_000, "introspection is {} bytes", plain.len());
    for (accept, encoding) in [("br, gzip", "br"), ("gzip", "gzip")] {
        let resp = app
            .client
            .post(&url)
            .header("accept-encoding", accept)
            .json(&introspection)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-encoding"], encoding);
        assert_eq!(resp.headers()["vary"], "accept-encoding");
        let body = resp.bytes().await.unwrap();
        assert!(
            body.len() * 2 < plain.len(),
            "{encoding}: {} of {}",
            body.len(),
            plain.len()
        );
        let mut back = Vec::new();
        if encoding == "br" {
            brotli::Decompressor::new(&body[..], 4096)
                .read_to_end(&mut back)
                .unwrap();
        } else {
            flate2::read::GzDecoder::new(&body[..]).read_to_end(&mut back).unwrap();
        }
        assert_eq!(back, plain.to_vec(), "{encoding} decodes to the same answer");
    }
    let small = app
        .client
        .post(&url)
        .header("accept-encoding", "gzip")
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    assert!(
        small.headers().get("content-encoding").is_none(),
        "small answers go as they are"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn cors_answers_only_the_allowed_origins_and_the_socket_checks_origin_too() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let app = spawn_app_with(|s| s.http.cors_allow_origins = vec!["https://raffle.example".into()]).await;
    let url = format!("{}/graphql", app.address);
    let preflight = |origin: &'static str| {
        app.client
            .request(reqwest::Method::OPTIONS, &url)
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type, authorization")
            .send()
    };
    let ok = preflight("https://raffle.example").await.unwrap();
    assert!(ok.status().is_success(), "{}", ok.status());
    assert_eq!(ok.headers()["access-control-allow-origin"], "https://raffle.example");
    let other = preflight("https://evil.example").await.unwrap();
    assert!(other.headers().get("access-control-allow-origin").is_none());
    assert!(!other.status().is_success(), "{}", other.status());

    let ws = |origin: &'static str| {
        let mut req = format!("{}/graphql/ws", app.address.replace("http://", "ws://"))
            .into_client_request()
            .unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
        req.headers_mut().insert("Origin", origin.parse().unwrap());
        tokio_tungstenite::connect_async(req)
    };
    assert!(ws("https://raffle.example").await.is_ok());
    match ws("https://evil.example").await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {:?}", other.map(|(_, r)| r.status())),
    }

    // Without an allow-list there are no CORS answers at all.
    let closed = spawn_app_with(|_| {}).await;
    let resp = closed
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/graphql", closed.address))
        .header("origin", "https://raffle.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(resp.headers().get("access-control-allow-origin").is_none());
    assert_eq!(resp.status(), 405);
    app.cleanup().await;
    closed.cleanup().await;
}

/// A text is parsed and strictly validated the first time; once valid, a document without
/// variables runs with fast validation — the answers stay the same, and an invalid text is
/// refused with its code every time (it is never marked valid).
#[tokio::test]
async fn repeated_texts_answer_the_same_and_invalid_ones_stay_refused() {
    let app = app().await;
    let valid = json!({ "query": "{ strategy(strategyId: 100006) { strategyId awards { awardId } } }" });
    let first = post(&app, None, &valid).await;
    assert_eq!(first.0, 200, "{:?}", first.2);
    assert!(first.2.get("errors").is_none(), "{:?}", first.2);
    for _ in 0..3 {
        let again = post(&app, None, &valid).await;
        assert_eq!(again.2, first.2);
    }
    let invalid = json!({ "query": "{ strategy(strategyId: 100006) { nope } }" });
    for _ in 0..3 {
        let (status, _, body) = post(&app, Some("application/graphql-response+json"), &invalid).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(
            body["errors"][0]["extensions"]["code"], "GRAPHQL_VALIDATION_FAILED",
            "{body}"
        );
    }
    let bad_arg = json!({ "query": "{ strategy(strategyId: 1.5) { strategyId } }" });
    for _ in 0..2 {
        let (_, _, body) = post(&app, None, &bad_arg).await;
        assert_eq!(body["errors"][0]["extensions"]["code"], "BAD_USER_INPUT", "{body}");
    }
    app.cleanup().await;
}
