//! Persisted documents (api/src/graphql/persisted.rs, docs/SECURITY.md §Trusted documents):
//! automatic persisted queries shared by every instance through Redis, over POST and GET,
//! `documentId`s, and the trusted-documents mode (HTTP and WebSocket), with its operator
//! paths (the audited mutation, `big-market trust-documents`).

use std::time::{Duration, Instant};

use api::settings::{Settings, TrustedDocuments};
use futures::{SinkExt, StreamExt};
use persistence::redis::persisted::document_hash;
use serde_json::{Value, json};
use test_support::app::{CONFIG, TestApp, spawn_app_with};
use test_support::proxy::FaultProxy;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const BIN: &str = env!("CARGO_BIN_EXE_big-market");
const GRJ: &str = "application/graphql-response+json";
const NO_CACHE: &str = "private, no-cache, must-revalidate";

async fn app(tweak: impl FnOnce(&mut Settings)) -> TestApp {
    spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
        tweak(s);
    })
    .await
}

fn apq(hash: &str) -> Value {
    json!({ "persistedQuery": { "version": 1, "sha256Hash": hash } })
}

fn code(body: &Value) -> &str {
    test_support::app::error_code_of(body).unwrap_or_else(|| panic!("no error code in {body}"))
}

#[derive(Debug)]
struct Answer {
    status: u16,
    cache_control: Option<String>,
    body: Value,
}

async fn answer(resp: reqwest::Response) -> Answer {
    let status = resp.status().as_u16();
    let cache_control = resp
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    Answer {
        status,
        cache_control,
        body: resp.json().await.unwrap_or(Value::Null),
    }
}

/// POSTs `body` to `address` with `token` and `accept`.
async fn post(app: &TestApp, address: &str, token: Option<&str>, accept: Option<&str>, body: &Value) -> Answer {
    let mut req = app.client.post(format!("{address}/graphql")).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(a) = accept {
        req = req.header("accept", a);
    }
    answer(req.send().await.unwrap()).await
}

/// GETs `/graphql` at `address` with the query string of `params` (JSON values as JSON text).
async fn get(app: &TestApp, address: &str, token: Option<&str>, params: &Value) -> Answer {
    let pairs: Vec<(String, String)> = params
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned)))
        .collect();
    let mut req = app.client.get(format!("{address}/graphql")).query(&pairs);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    answer(req.send().await.unwrap()).await
}

async fn apq_ttl(app: &TestApp, hash: &str) -> i64 {
    redis::cmd("TTL")
        .arg(app.key(&format!("bm:apq:{hash}")))
        .query_async(&mut app.redis.clone())
        .await
        .unwrap()
}

#[tokio::test]
async fn apq_misses_then_registers_and_runs_by_hash_over_post_and_get_on_every_instance() {
    let app = app(|_| {}).await;
    let q = "query Probe($id: ID!) { strategy(strategyId: $id) { strategyId } }";
    let h = document_hash(q);
    let vars = json!({ "id": 100006 });
    let by_hash = json!({ "operationName": "Probe", "variables": vars, "extensions": apq(&h) });

    // A miss: Apollo's error, 200 under application/json (what APQ clients expect), not cached.
    let a = post(&app, &app.address, None, None, &by_hash).await;
    assert_eq!((a.status, code(&a.body)), (200, "PERSISTED_QUERY_NOT_FOUND"), "{a:?}");
    assert_eq!(a.body["errors"][0]["message"], "PersistedQueryNotFound");
    assert_eq!(a.cache_control.as_deref(), Some(NO_CACHE));
    // Under application/graphql-response+json a request error is 400 without `data`.
    let a = post(&app, &app.address, None, Some(GRJ), &by_hash).await;
    assert_eq!((a.status, code(&a.body)), (400, "PERSISTED_QUERY_NOT_FOUND"), "{a:?}");
    assert!(a.body.get("data").is_none(), "{a:?}");
    let a = get(&app, &app.address, None, &by_hash).await;
    assert_eq!((a.status, code(&a.body)), (200, "PERSISTED_QUERY_NOT_FOUND"), "{a:?}");
    assert_eq!(a.cache_control.as_deref(), Some(NO_CACHE));

    // The client sends the text with its hash: it runs and is registered (with the TTL).
    let a = post(
        &app,
        &app.address,
        None,
        None,
        &json!({ "query": q, "variables": vars, "extensions": apq(&h) }),
    )
    .await;
    assert_eq!(
        a.body,
        json!({ "data": { "strategy": { "strategyId": "100006" } } }),
        "{a:?}"
    );
    let ttl = apq_ttl(&app, &h).await;
    assert!((1..=86_400).contains(&ttl), "TTL {ttl}");

    // Now the hash alone runs, over POST and GET, and as a `documentId`.
    for a in [
        post(&app, &app.address, None, None, &by_hash).await,
        get(&app, &app.address, None, &by_hash).await,
        post(
            &app,
            &app.address,
            None,
            Some(GRJ),
            &json!({ "documentId": format!("sha256:{h}"), "variables": vars }),
        )
        .await,
    ] {
        assert_eq!((a.status, &a.cache_control), (200, &None), "{a:?}");
        assert_eq!(a.body["data"]["strategy"]["strategyId"], "100006", "{a:?}");
    }

    // Another instance (its own process) over the same Redis runs it by hash, and what it
    // registers runs here.
    let other = app.spawn_process(BIN, |_| {}).await;
    let a = get(&app, &other.address, None, &by_hash).await;
    assert_eq!(a.body["data"]["strategy"]["strategyId"], "100006", "{a:?}");
    let q2 = "query Second { __typename }";
    let h2 = document_hash(q2);
    let a = post(
        &app,
        &other.address,
        None,
        None,
        &json!({ "query": q2, "extensions": apq(&h2) }),
    )
    .await;
    assert_eq!(a.body["data"]["__typename"], "Query", "{a:?}");
    let a = get(&app, &app.address, None, &json!({ "extensions": apq(&h2) })).await;
    assert_eq!(a.body["data"]["__typename"], "Query", "{a:?}");
    drop(other);
    app.cleanup().await;
}

#[tokio::test]
async fn apq_refuses_a_hash_that_is_not_the_query_s_and_registers_only_valid_documents() {
    let app = app(|_| {}).await;
    let q = "query Mismatch { __typename }";
    let wrong = document_hash("query Other { __typename }");
    let a = post(
        &app,
        &app.address,
        None,
        None,
        &json!({ "query": q, "extensions": apq(&wrong) }),
    )
    .await;
    assert_eq!(
        (a.status, code(&a.body)),
        (400, "PERSISTED_QUERY_HASH_MISMATCH"),
        "{a:?}"
    );
    assert_eq!(apq_ttl(&app, &wrong).await, -2, "nothing stored under the wrong hash");
    assert_eq!(apq_ttl(&app, &document_hash(q)).await, -2, "nor under the right one");

    for pq in [
        json!({ "version": 2, "sha256Hash": document_hash(q) }),
        json!({ "version": 1, "sha256Hash": "not-a-hash" }),
    ] {
        let a = post(
            &app,
            &app.address,
            None,
            None,
            &json!({ "extensions": { "persistedQuery": pq } }),
        )
        .await;
        assert_eq!((a.status, code(&a.body)), (400, "BAD_REQUEST"), "{a:?}");
    }
    let a = post(
        &app,
        &app.address,
        None,
        None,
        &json!({ "extensions": { "persistedQuery": { "version": 2, "sha256Hash": document_hash(q) } } }),
    )
    .await;
    assert!(
        a.body["errors"][0]["message"].as_str().unwrap().contains("version"),
        "{a:?}"
    );

    // Documents that do not parse or validate are answered, and not registered.
    for bad in ["{ __typename", "{ nope }"] {
        let h = document_hash(bad);
        let a = post(
            &app,
            &app.address,
            None,
            None,
            &json!({ "query": bad, "extensions": apq(&h) }),
        )
        .await;
        assert!(a.body["errors"].is_array(), "{a:?}");
        assert_eq!(apq_ttl(&app, &h).await, -2, "{bad} was registered");
    }

    // A mutation registered over POST still does not run over GET.
    let m = "mutation Arm { armStrategy(strategyId: 100006) }";
    let hm = document_hash(m);
    let a = post(
        &app,
        &app.address,
        Some(&app.admin_token),
        None,
        &json!({ "query": m, "extensions": apq(&hm) }),
    )
    .await;
    assert_eq!(a.body["data"]["armStrategy"], true, "{a:?}");
    let resp = app
        .client
        .get(format!("{}/graphql", app.address))
        .bearer_auth(&app.admin_token)
        .query(&[("extensions", apq(&hm).to_string())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    app.cleanup().await;
}

const REGISTER: &str = "mutation Register($d: [String!]!) { registerTrustedDocuments(documents: $d) }";

async fn register(app: &TestApp, token: &str, documents: &[&str]) -> Value {
    post(
        app,
        &app.address,
        Some(token),
        None,
        &json!({ "query": REGISTER, "variables": { "d": documents } }),
    )
    .await
    .body
}

type Ws = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn ws_connect(address: &str, token: &str) -> Ws {
    let mut req = format!("{}/graphql/ws", address.replace("http://", "ws://"))
        .into_client_request()
        .unwrap();
    req.headers_mut()
        .insert("Sec-WebSocket-Protocol", "graphql-transport-ws".parse().unwrap());
    let mut ws = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket upgrade")
        .0;
    ws.send(Message::text(
        json!({"type": "connection_init", "payload": {"Authorization": format!("Bearer {token}")}}).to_string(),
    ))
    .await
    .unwrap();
    assert_eq!(ws_next(&mut ws).await["type"], "connection_ack");
    ws
}

async fn ws_next(ws: &mut Ws) -> Value {
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a message within 15 s")
            .expect("open")
            .unwrap();
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(&t).unwrap();
            if v["type"] != "ping" {
                return v;
            }
        }
    }
}

/// Runs `query` over the socket: its data, or the first error's code.
async fn ws_run(ws: &mut Ws, id: &str, query: &str) -> Result<Value, String> {
    ws.send(Message::text(
        json!({"id": id, "type": "subscribe", "payload": {"query": query}}).to_string(),
    ))
    .await
    .unwrap();
    // Messages of earlier operations (their `complete`) are skipped.
    let m = loop {
        let m = ws_next(ws).await;
        if m["id"] == id && m["type"] != "complete" {
            break m;
        }
    };
    let errors = match m["type"].as_str() {
        Some("error") => m["payload"].clone(),
        Some("next") => m["payload"]["errors"].clone(),
        _ => panic!("unexpected {m}"),
    };
    match errors[0]["extensions"]["code"].as_str() {
        Some(c) => Err(c.to_owned()),
        None => Ok(m["payload"]["data"].clone()),
    }
}

#[tokio::test]
async fn enforce_mode_runs_only_trusted_documents_and_operators_add_them() {
    let app = app(|s| s.http.trusted_documents = TrustedDocuments::Enforce).await;
    let user = app.user_token("xiaofuge");
    let q = "query Trusted { strategy(strategyId: 100006) { strategyId } }";
    let h = document_hash(q);
    let data = json!({ "strategy": { "strategyId": "100006" } });

    // Not trusted yet: refused as text (also with Apollo's registration) and by hash.
    for (token, accept, status) in [(Some(user.as_str()), None, 200), (None, Some(GRJ), 400)] {
        let a = post(&app, &app.address, token, accept, &json!({ "query": q })).await;
        assert_eq!((a.status, code(&a.body)), (status, "OPERATION_NOT_TRUSTED"), "{a:?}");
    }
    let a = post(
        &app,
        &app.address,
        Some(&user),
        None,
        &json!({ "query": q, "extensions": apq(&h) }),
    )
    .await;
    assert_eq!(code(&a.body), "OPERATION_NOT_TRUSTED", "{a:?}");
    assert_eq!(
        apq_ttl(&app, &h).await,
        -2,
        "clients cannot register documents in enforce mode"
    );
    let a = post(&app, &app.address, Some(&user), None, &json!({ "extensions": apq(&h) })).await;
    assert_eq!(code(&a.body), "PERSISTED_QUERY_NOT_FOUND", "{a:?}");
    // Over the socket too; an admin runs anything there.
    let mut ws = ws_connect(&app.address, &user).await;
    assert_eq!(ws_run(&mut ws, "1", q).await, Err("OPERATION_NOT_TRUSTED".to_owned()));
    let mut admin_ws = ws_connect(&app.address, &app.admin_token).await;
    assert_eq!(ws_run(&mut admin_ws, "1", q).await, Ok(data.clone()));

    // An admin token runs untrusted documents (that is how an operator bootstraps), and trusts q.
    let a = post(
        &app,
        &app.address,
        Some(&app.admin_token),
        None,
        &json!({ "query": "{ __typename }" }),
    )
    .await;
    assert_eq!(a.body["data"]["__typename"], "Query", "{a:?}");
    let body = register(&app, &app.admin_token, &[q]).await;
    assert_eq!(body, json!({ "data": { "registerTrustedDocuments": [h] } }));

    // Now q runs for anyone: as text, by hash over POST and GET, as a documentId, on the socket.
    for a in [
        post(&app, &app.address, Some(&user), None, &json!({ "query": q })).await,
        post(
            &app,
            &app.address,
            None,
            None,
            &json!({ "query": q, "extensions": apq(&h) }),
        )
        .await,
        post(&app, &app.address, None, Some(GRJ), &json!({ "extensions": apq(&h) })).await,
        get(&app, &app.address, None, &json!({ "extensions": apq(&h) })).await,
        get(
            &app,
            &app.address,
            None,
            &json!({ "documentId": format!("sha256:{h}") }),
        )
        .await,
    ] {
        assert_eq!((a.status, &a.body["data"]), (200, &data), "{a:?}");
    }
    assert_eq!(ws_run(&mut ws, "2", q).await, Ok(data.clone()));
    // Another text — even one space more — is another document.
    let a = post(
        &app,
        &app.address,
        Some(&user),
        None,
        &json!({ "query": format!("{q} ") }),
    )
    .await;
    assert_eq!(code(&a.body), "OPERATION_NOT_TRUSTED", "{a:?}");

    // Operators list them, and the registration is in the audit log.
    let list = post(
        &app,
        &app.address,
        Some(&app.admin_token),
        None,
        &json!({ "query": "{ trustedDocuments { edges { cursor node { hash document } } pageInfo { hasNextPage } } }" }),
    )
    .await;
    assert_eq!(
        list.body["data"]["trustedDocuments"]["edges"],
        json!([{ "cursor": h, "node": { "hash": h, "document": q } }]),
        "{list:?}"
    );
    let rows = app
        .sql(
            CONFIG,
            "SELECT CAST(actor AS CHAR) AS actor, outcome, CAST(arguments AS CHAR) AS arguments FROM audit_log \
             WHERE operation = 'registerTrustedDocuments'",
        )
        .await;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["outcome"], "ok");
    assert!(rows[0]["arguments"].as_str().unwrap().contains(&h), "{rows:?}");
    app.cleanup().await;
}

#[tokio::test]
async fn only_operators_register_trusted_documents_and_every_attempt_is_audited() {
    let app = app(|_| {}).await;
    let q = "query Listed { __typename }";
    let h = document_hash(q);
    let body = register(&app, &app.user_token("xiaofuge"), &[q]).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let body = register(&app, &app.token("billing", api::auth::Role::Service), &[q]).await;
    assert_eq!(code(&body), "FORBIDDEN", "{body}");
    let a = post(
        &app,
        &app.address,
        None,
        None,
        &json!({ "query": REGISTER, "variables": { "d": [q] } }),
    )
    .await;
    assert_eq!(code(&a.body), "UNAUTHENTICATED", "{a:?}");
    // A document that is not GraphQL is refused with 0002, and the others of the call with it.
    let body = register(&app, &app.admin_token, &[q, "{ broken"]).await;
    assert_eq!(code(&body), "0002", "{body}");
    let body = register(&app, &app.admin_token, &[]).await;
    assert_eq!(body["data"]["registerTrustedDocuments"], json!([]), "{body}");
    let outcomes: Vec<String> = app
        .sql(
            CONFIG,
            "SELECT CAST(CONCAT(CAST(actor AS CHAR), ':', role, ':', outcome) AS CHAR) AS o FROM audit_log \
             WHERE operation = 'registerTrustedDocuments' ORDER BY id",
        )
        .await
        .iter()
        .map(|r| r["o"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        outcomes,
        [
            "xiaofuge:user:FORBIDDEN",
            "billing:service:FORBIDDEN",
            "test-admin:admin:0002",
            "test-admin:admin:ok"
        ]
    );
    // Nothing was trusted; an admin list says so.
    let a = post(&app, &app.address, None, None, &json!({ "extensions": apq(&h) })).await;
    assert_eq!(code(&a.body), "PERSISTED_QUERY_NOT_FOUND", "{a:?}");
    let list = app.ok("{ trustedDocuments { edges { cursor } } }").await;
    assert_eq!(list["trustedDocuments"]["edges"], json!([]));
    // Trusted documents also run by hash when nothing is enforced.
    assert_eq!(
        register(&app, &app.admin_token, &[q]).await["data"]["registerTrustedDocuments"],
        json!([h])
    );
    let a = get(&app, &app.address, None, &json!({ "extensions": apq(&h) })).await;
    assert_eq!(a.body["data"]["__typename"], "Query", "{a:?}");
    app.cleanup().await;
}

/// `big-market trust-documents` with the app's Redis settings, in `dir`.
fn trust_documents(app: &TestApp, dir: &std::path::Path, files: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .arg("trust-documents")
        .args(files)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("BIG_MARKET_REDIS__URL", &app.settings.redis.url)
        .env("BIG_MARKET_REDIS__KEY_PREFIX", &app.settings.redis.key_prefix)
        .env("BIG_MARKET_LOG__FILTER", "warn")
        .output()
        .expect("running big-market trust-documents")
}

#[tokio::test]
async fn the_trust_documents_command_registers_codegen_manifests_and_graphql_files() {
    let app = app(|s| s.http.trusted_documents = TrustedDocuments::Enforce).await;
    let dir = std::env::temp_dir().join(format!("bm-trust-{}", test_support::unique_name()));
    std::fs::create_dir_all(&dir).unwrap();
    let (q1, q2) = ("query One { __typename }", "query Two {\n  __typename\n}\n");
    let (h1, h2) = (document_hash(q1), document_hash(q2));
    std::fs::write(
        dir.join("persisted-documents.json"),
        json!({ h1.clone(): q1 }).to_string(),
    )
    .unwrap();
    std::fs::write(dir.join("two.graphql"), q2).unwrap();
    // graphql-codegen hashes with SHA-1 unless told otherwise: refused, nothing registered.
    let sha1 = json!({ "0123456789abcdef0123456789abcdef01234567": q1 }).to_string();
    std::fs::write(dir.join("sha1.json"), sha1).unwrap();
    let out = trust_documents(&app, &dir, &["two.graphql", "sha1.json"]);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("hashAlgorithm"),
        "{out:?}"
    );
    let user = app.user_token("xiaofuge");
    let a = post(&app, &app.address, Some(&user), None, &json!({ "query": q2 })).await;
    assert_eq!(code(&a.body), "OPERATION_NOT_TRUSTED", "{a:?}");

    let out = trust_documents(&app, &dir, &["persisted-documents.json", "two.graphql"]);
    assert!(out.status.success(), "{out:?}");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains(&format!("sha256:{h1}")) && printed.contains(&format!("sha256:{h2}")),
        "{printed}"
    );
    for (q, h) in [(q1, &h1), (q2, &h2)] {
        let a = post(&app, &app.address, Some(&user), None, &json!({ "query": q })).await;
        assert_eq!(a.body["data"]["__typename"], "Query", "{a:?}");
        let a = get(&app, &app.address, None, &json!({ "extensions": apq(h) })).await;
        assert_eq!(a.body["data"]["__typename"], "Query", "{a:?}");
    }
    let _ = std::fs::remove_dir_all(&dir);
    app.cleanup().await;
}

async fn redis_upstream() -> std::net::SocketAddr {
    let url = test_support::services::redis_url();
    let host = url
        .trim_start_matches("redis://")
        .split('/')
        .next()
        .unwrap_or("127.0.0.1:6379");
    tokio::net::lookup_host(host)
        .await
        .unwrap()
        .next()
        .expect("the test Redis address resolves")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lookup_without_redis_answers_0001_within_the_deadline() {
    let proxy = FaultProxy::start(redis_upstream().await).await.unwrap();
    let url = format!("redis://{}", proxy.addr());
    let app = app(|s| s.redis.url = url).await;
    let h = document_hash("query Gone { __typename }");
    let by_hash = json!({ "extensions": apq(&h) });

    proxy.blackhole();
    for _ in 0..3 {
        let started = Instant::now();
        let a = post(&app, &app.address, None, Some(GRJ), &by_hash).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(2_500),
            "a lookup took {took:?} with Redis blackholed"
        );
        assert_eq!((a.status, code(&a.body)), (200, "0001"), "{a:?}");
        assert_eq!(a.body["errors"][0]["message"], "internal error");
    }
    // Documents sent as text do not need Redis.
    let a = post(&app, &app.address, None, None, &json!({ "query": "{ __typename }" })).await;
    assert_eq!(a.body["data"]["__typename"], "Query", "{a:?}");

    proxy.pass();
    let healed = Instant::now();
    loop {
        let a = post(&app, &app.address, None, None, &by_hash).await;
        if code(&a.body) == "PERSISTED_QUERY_NOT_FOUND" {
            break;
        }
        assert!(healed.elapsed() < Duration::from_secs(10), "no heal: {a:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.cleanup().await;
}

#[tokio::test]
async fn a_removed_trusted_document_stops_running_on_every_instance_within_seconds() {
    let app = app(|s| s.http.trusted_documents = TrustedDocuments::Enforce).await;
    let user = app.user_token("xiaofuge");
    let q = "query Removable { strategy(strategyId: 100006) { strategyId } }";
    let kept = "query Kept { __typename }";
    let (h, hk) = (document_hash(q), document_hash(kept));
    assert_eq!(
        register(&app, &app.admin_token, &[q, kept]).await,
        json!({ "data": { "registerTrustedDocuments": [h, hk] } })
    );
    // Both instances run it (and keep its text in process).
    let other = app
        .spawn_process(BIN, |s| s.http.trusted_documents = TrustedDocuments::Enforce)
        .await;
    for address in [&app.address, &other.address] {
        for body in [json!({ "query": q }), json!({ "documentId": format!("sha256:{h}") })] {
            let a = post(&app, address, Some(&user), None, &body).await;
            assert_eq!(a.body["data"]["strategy"]["strategyId"], "100006", "{a:?}");
        }
    }

    // Only operators remove, with well-formed hashes.
    const REMOVE: &str = "mutation Remove($h: [String!]!) { removeTrustedDocuments(hashes: $h) }";
    let a = post(
        &app,
        &app.address,
        Some(&user),
        None,
        &json!({ "query": REMOVE, "variables": { "h": [h] } }),
    )
    .await;
    assert_eq!(
        code(&a.body),
        "OPERATION_NOT_TRUSTED",
        "a user cannot even send it in enforce mode: {a:?}"
    );
    let a = post(
        &app,
        &app.address,
        Some(&app.admin_token),
        None,
        &json!({ "query": REMOVE, "variables": { "h": ["not-a-hash"] } }),
    )
    .await;
    assert_eq!(code(&a.body), "0002", "{a:?}");
    let a = post(
        &app,
        &app.address,
        Some(&app.admin_token),
        None,
        &json!({ "query": REMOVE, "variables": { "h": [h, h] } }),
    )
    .await;
    assert_eq!(a.body, json!({ "data": { "removeTrustedDocuments": 1 } }), "{a:?}");

    // Within a few seconds neither instance runs it, by text or by hash; the other one still runs.
    let started = std::time::Instant::now();
    for address in [&app.address, &other.address] {
        loop {
            let a = post(&app, address, Some(&user), None, &json!({ "query": q })).await;
            if a.body["errors"][0]["extensions"]["code"] == "OPERATION_NOT_TRUSTED" {
                break;
            }
            assert!(
                started.elapsed() < std::time::Duration::from_secs(5),
                "{address} still runs a removed document: {a:?}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        let a = post(
            &app,
            address,
            Some(&user),
            None,
            &json!({ "documentId": format!("sha256:{h}") }),
        )
        .await;
        assert_eq!(code(&a.body), "PERSISTED_QUERY_NOT_FOUND", "{a:?}");
        let a = post(&app, address, Some(&user), None, &json!({ "query": kept })).await;
        assert_eq!(a.body["data"]["__typename"], "Query", "{a:?}");
    }
    let audit = app
        .ok(r#"{ auditLog(first: 10) { edges { node { operation outcome } } } }"#)
        .await;
    let removals: Vec<&Value> = audit["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["node"])
        .filter(|n| n["operation"] == "removeTrustedDocuments")
        .collect();
    assert_eq!(
        removals.len(),
        2,
        "both removal attempts of the admin are audited: {audit}"
    );
    drop(other);
    app.cleanup().await;
}
