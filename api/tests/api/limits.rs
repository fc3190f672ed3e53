//! Limits on what one request can do (docs/SECURITY.md): spending fields, root fields, fields
//! counted with `__typename`, batch, query and body size.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use test_support::app::{TestApp, spawn_app_with};

fn code(body: &Value) -> &str {
    test_support::app::error_code_of(body).unwrap_or_else(|| panic!("no error code in {body}"))
}

async fn tickets(app: &TestApp) -> i64 {
    app.count_split("user_raffle_order").await
}

#[tokio::test]
async fn a_hundred_aliased_draws_perform_no_draw_and_one_draw_still_works() {
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    app.ok(r#"mutation { rechargeQuota(userId: "eve", sku: 9014, outBusinessNo: "e-1") { orderId } }"#)
        .await;
    let eve = app.user_token("eve");
    let aliased: String = (0..100)
        .map(|i| format!("d{i}: draw(activityId: 100301) {{ orderId }} "))
        .collect();
    let body = app.graphql_as(Some(&eve), &format!("mutation {{ {aliased} }}")).await;
    assert_eq!(code(&body), "TOO_MANY_SPENDING_FIELDS", "{body}");
    assert!(body["data"].is_null(), "nothing ran: {body}");
    assert_eq!(tickets(&app).await, 0);
    let one = app
        .graphql_as(Some(&eve), "mutation { draw(activityId: 100301) { orderId } }")
        .await;
    assert!(one.get("errors").is_none(), "{one}");
    assert_eq!(tickets(&app).await, 1);
    app.cleanup().await;
}

#[tokio::test]
async fn typename_floods_batches_and_long_queries_are_refused_before_execution() {
    let app = spawn_app_with(|_| {}).await;
    let roots: String = (0..1_000).map(|i| format!("t{i}: __typename ")).collect();
    let body = app.graphql_as(None, &format!("{{ {roots} }}")).await;
    assert_eq!(code(&body), "TOO_MANY_ROOT_FIELDS", "{body}");
    let nested: String = (0..600).map(|i| format!("t{i}: __typename ")).collect();
    let body = app
        .graphql_as(None, &format!("{{ strategy(strategyId: 100006) {{ {nested} }} }}"))
        .await;
    assert_eq!(code(&body), "QUERY_TOO_COMPLEX", "{body}");
    let huge: String = (0..200_000).map(|i| format!("t{i}: __typename ")).collect();
    let body = app.graphql_as(None, &format!("{{ {huge} }}")).await;
    assert!(
        ["QUERY_TOO_LARGE", "PAYLOAD_TOO_LARGE"].contains(&code(&body)),
        "200 000 aliases: {}",
        code(&body)
    );

    let batch: Vec<Value> = (0..500).map(|_| json!({"query": "{ __typename }"})).collect();
    let resp = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&batch)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(code(&body), "BATCH_TOO_LARGE", "{body}");
    app.cleanup().await;
}

#[tokio::test]
async fn a_20_mb_body_is_refused_with_413_while_health_stays_fast() {
    let app = spawn_app_with(|_| {}).await;
    let big = format!(
        r#"{{"query": "{{ __typename }}", "pad": "{}"}}"#,
        "x".repeat(20 * 1024 * 1024)
    );
    let url = format!("{}/graphql", app.address);
    let client = app.client.clone();
    let declared = tokio::spawn({
        let (client, url, big) = (client.clone(), url.clone(), big.clone());
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(big)
                .send()
                .await
        }
    });
    // Streamed without a Content-Length: refused while reading, past the limit.
    let chunks =
        futures::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1024 * 1024]))));
    let streamed = tokio::spawn({
        let (client, url) = (client.clone(), url.clone());
        async move {
            client
                .post(url)
                .header("content-type", "application/json")
                .body(reqwest::Body::wrap_stream(chunks))
                .send()
                .await
        }
    });
    let start = Instant::now();
    let health = client.get(format!("{}/health", app.address)).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "/health took {:?}",
        start.elapsed()
    );
    for (what, resp) in [
        ("declared", declared.await.unwrap()),
        ("streamed", streamed.await.unwrap()),
    ] {
        match resp {
            Ok(resp) => {
                assert_eq!(resp.status(), 413, "{what}");
                let body: Value = resp.json().await.unwrap();
                assert_eq!(code(&body), "PAYLOAD_TOO_LARGE", "{what}: {body}");
            }
            // The server may answer and close before the client finished sending.
            Err(e) => assert!(e.is_request() || e.is_body(), "{what}: {e}"),
        }
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_request_head_trickled_a_byte_at_a_time_is_cut_off_but_idle_keep_alive_is_not() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(|s| s.http.header_read_timeout_secs = 1).await;
    let addr = app.address.trim_start_matches("http://").to_owned();

    // Slow headers: one byte every 200 ms never completes the head within 1 s.
    let mut slow = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let head = b"POST /graphql HTTP/1.1\r\nHost: slow\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
    let mut cut = false;
    for byte in head {
        if slow.write_all(&[*byte]).await.is_err() {
            cut = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let mut probe = [0u8; 64];
        if let Ok(Ok(0) | Err(_)) = tokio::time::timeout(Duration::from_millis(1), slow.read(&mut probe)).await {
            cut = true;
            break;
        }
    }
    assert!(
        cut,
        "the trickling connection was still open after {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "cut after {:?}",
        started.elapsed()
    );

    // A kept-alive connection may wait between requests longer than the head deadline.
    let mut kept = tokio::net::TcpStream::connect(&addr).await.unwrap();
    let request = format!("GET /health HTTP/1.1\r\nHost: {addr}\r\n\r\n");
    for _ in 0..2 {
        kept.write_all(request.as_bytes()).await.unwrap();
        let mut buf = vec![0u8; 1024];
        let n = tokio::time::timeout(Duration::from_secs(5), kept.read(&mut buf))
            .await
            .expect("an answer")
            .unwrap();
        assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        tokio::time::sleep(Duration::from_millis(1_500)).await;
    }
    app.cleanup().await;
}

#[tokio::test]
async fn introspection_and_graphiql_can_be_switched_off() {
    let app = spawn_app_with(|s| {
        s.http.introspection = false;
        s.http.graphiql = false;
    })
    .await;
    let body = app.graphql("{ __schema { queryType { name } } }").await;
    assert!(body["data"]["__schema"].is_null(), "introspection answered: {body}");
    let page = app
        .client
        .get(format!("{}/graphiql", app.address))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 404);
    let on = spawn_app_with(|_| {}).await;
    let body = on.ok("{ __schema { queryType { name } } }").await;
    assert_eq!(body["__schema"]["queryType"]["name"], "Query");
    app.cleanup().await;
    on.cleanup().await;
}
