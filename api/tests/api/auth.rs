//! Who may do what (docs/SECURITY.md): anonymous, user, service and admin callers over HTTP and
//! WebSocket, refused tokens, and the audit log of operator operations.

use serde_json::{Value, json};
use test_support::app::{CONFIG, TEST_SECRET, TestApp, spawn_app_with};

use api::auth::Role;

fn code(body: &Value) -> &str {
    test_support::app::error_code_of(body).unwrap_or_else(|| panic!("no error code in {body}"))
}

/// The write side alone, activity 100301 armed, user `alice` with quota.
async fn armed() -> TestApp {
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    app.ok(r#"mutation { rechargeQuota(userId: "alice", sku: 9014, outBusinessNo: "a-1") { orderId } }"#)
        .await;
    app
}

async fn award_records(app: &TestApp) -> i64 {
    app.count_split("user_award_record").await
}

#[tokio::test]
async fn anonymous_callers_read_the_catalogue_and_nothing_else() {
    let app = armed().await;
    let public = app
        .graphql_as(
            None,
            "{ __typename strategy(strategyId: 100006) { strategyId } skuProducts(activityId: 100301) { sku } }",
        )
        .await;
    assert!(public.get("errors").is_none(), "{public}");
    assert_eq!(public["data"]["strategy"]["strategyId"], "100006");
    for op in [
        r#"mutation { draw(userId: "alice", activityId: 100301) { orderId } }"#,
        r#"{ activityAccount(userId: "alice", activityId: 100301) { totalCount } }"#,
        r#"{ creditAccount(userId: "alice") { availableAmount } }"#,
        "{ tasks { edges { cursor } } }",
        r#"{ task(messageId: "1") { state } }"#,
        "mutation { armActivity(activityId: 100301) }",
        "mutation { randomRaffle(strategyId: 100006) { awardId } }",
        r#"mutation { rechargeQuota(userId: "alice", sku: 9014, outBusinessNo: "free") { orderId } }"#,
        "mutation { rebuildProjections { dropped } }",
        "{ auditLog { edges { cursor } } }",
    ] {
        let body = app.graphql_as(None, op).await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{op}: {body}");
    }
    assert_eq!(award_records(&app).await, 0, "no anonymous draw happened");
    assert_eq!(
        app.int(CONFIG, "SELECT COUNT(*) FROM audit_log WHERE actor <> 'test-admin'")
            .await,
        0,
        "anonymous calls write no audit rows"
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_user_token_draws_reads_and_follows_only_its_own_user() {
    let app = armed().await;
    let alice = app.user_token("alice");
    let drawn = app
        .graphql_as(
            Some(&alice),
            "mutation { draw(activityId: 100301) { orderId messageId } }",
        )
        .await;
    assert!(drawn.get("errors").is_none(), "{drawn}");
    let message_id = drawn["data"]["draw"]["messageId"].as_str().unwrap().to_owned();
    let same = app
        .graphql_as(
            Some(&alice),
            r#"{ activityAccount(userId: "alice", activityId: 100301) { totalCountSurplus } creditAccount { availableAmount } }"#,
        )
        .await;
    assert!(same.get("errors").is_none(), "naming oneself is fine: {same}");
    let own = app
        .graphql_as(
            Some(&alice),
            &format!(r#"{{ task(messageId: "{message_id}") {{ topic }} }}"#),
        )
        .await;
    assert_eq!(own["data"]["task"]["topic"], "send_award", "{own}");

    // Another user, by the argument or by reading alice's event.
    app.ok(r#"mutation { rechargeQuota(userId: "bob", sku: 9014, outBusinessNo: "b-1") { orderId } }"#)
        .await;
    let before = award_records(&app).await;
    for op in [
        r#"mutation { draw(userId: "bob", activityId: 100301) { orderId } }"#.to_owned(),
        r#"{ activityAccount(userId: "bob", activityId: 100301) { totalCount } }"#.to_owned(),
        r#"{ userAwards(userId: "Alice") { edges { cursor } } }"#.to_owned(),
    ] {
        let body = app.graphql_as(Some(&alice), &op).await;
        assert_eq!(code(&body), "FORBIDDEN", "{op}: {body}");
    }
    let bob = app.user_token("bob");
    let theirs = app
        .graphql_as(
            Some(&bob),
            &format!(r#"{{ task(messageId: "{message_id}") {{ topic }} }}"#),
        )
        .await;
    assert_eq!(code(&theirs), "FORBIDDEN", "{theirs}");
    assert_eq!(award_records(&app).await, before, "no draw for bob with alice's token");

    // Operator operations: refused, and the refusal is audited.
    for op in [
        "mutation { armActivity(activityId: 100301) }",
        "{ tasks { edges { cursor } } }",
        "{ auditLog { edges { cursor } } }",
        r#"mutation { rechargeQuota(userId: "alice", sku: 9014, outBusinessNo: "free") { orderId } }"#,
    ] {
        let body = app.graphql_as(Some(&alice), op).await;
        assert_eq!(code(&body), "FORBIDDEN", "{op}: {body}");
    }
    let refused = app
        .sql(
            CONFIG,
            "SELECT CAST(actor AS CHAR) AS actor, role, operation, outcome FROM audit_log \
             WHERE actor = 'alice' ORDER BY id",
        )
        .await;
    assert_eq!(
        refused,
        vec![
            json!({"actor": "alice", "role": "user", "operation": "armActivity", "outcome": "FORBIDDEN"}),
            json!({"actor": "alice", "role": "user", "operation": "rechargeQuota", "outcome": "FORBIDDEN"}),
        ]
    );
    app.cleanup().await;
}

#[tokio::test]
async fn a_service_token_acts_for_named_users_but_runs_no_operator_operation() {
    let app = armed().await;
    let service = app.token("rebate-service", Role::Service);
    let drawn = app
        .graphql_as(
            Some(&service),
            r#"mutation { draw(userId: "alice", activityId: 100301) { orderId } }"#,
        )
        .await;
    assert!(drawn.get("errors").is_none(), "{drawn}");
    let unnamed = app
        .graphql_as(Some(&service), "mutation { draw(activityId: 100301) { orderId } }")
        .await;
    assert_eq!(code(&unnamed), "0002", "{unnamed}");
    let arm = app
        .graphql_as(Some(&service), "mutation { armActivity(activityId: 100301) }")
        .await;
    assert_eq!(code(&arm), "FORBIDDEN", "{arm}");
    app.cleanup().await;
}

#[tokio::test]
async fn expired_foreign_and_malformed_tokens_are_refused_with_401() {
    let app = armed().await;
    let now = chrono::Utc::now().timestamp();
    let sign = |claims: Value, secret: &str| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let cases = [
        (
            "expired",
            sign(
                json!({"iss": "big-market", "openId": "alice", "exp": now - 600}),
                TEST_SECRET,
            ),
        ),
        (
            "other issuer",
            sign(
                json!({"iss": "elsewhere", "openId": "alice", "exp": now + 600}),
                TEST_SECRET,
            ),
        ),
        (
            "other secret",
            sign(
                json!({"iss": "big-market", "openId": "alice", "exp": now + 600}),
                "another-secret-another-secret-another-secret",
            ),
        ),
        ("garbage", "not-a-jwt".to_owned()),
    ];
    for (what, token) in cases {
        let resp = app
            .client
            .post(format!("{}/graphql", app.address))
            .bearer_auth(&token)
            .json(&json!({ "query": "{ creditAccount { availableAmount } }" }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 401, "{what}");
        assert_eq!(resp.headers()["www-authenticate"], "Bearer", "{what}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(code(&body), "UNAUTHENTICATED", "{what}: {body}");
    }
    // The original's token shape (user in `openId`, no role) is a user token.
    let original = sign(
        json!({"iss": "big-market", "openId": "alice", "exp": now + 600}),
        TEST_SECRET,
    );
    let body = app
        .graphql_as(Some(&original), "{ creditAccount { availableAmount } }")
        .await;
    assert!(body.get("errors").is_none(), "{body}");
    app.cleanup().await;
}

#[tokio::test]
async fn operator_operations_are_audited_and_the_log_pages_newest_first() {
    let app = armed().await;
    let bad = app.graphql("mutation { armActivity(activityId: 999999) }").await;
    let bad_code = code(&bad).to_owned();
    app.ok("mutation { addSkuStock(sku: 9014, units: 5) { count } }").await;
    let page = app
        .ok("{ auditLog(first: 2) { edges { cursor node { actor operation arguments outcome at } } pageInfo { hasNextPage endCursor } } }")
        .await;
    let edges = page["auditLog"]["edges"].as_array().unwrap();
    assert_eq!(edges.len(), 2);
    let newest = &edges[0]["node"];
    assert_eq!(newest["actor"], "test-admin");
    assert_eq!(newest["operation"], "addSkuStock");
    assert_eq!(
        serde_json::from_str::<Value>(newest["arguments"].as_str().unwrap()).unwrap(),
        json!({"sku": 9014, "units": 5})
    );
    assert_eq!(newest["outcome"], "ok");
    assert_eq!(edges[1]["node"]["operation"], "armActivity");
    assert_eq!(edges[1]["node"]["outcome"], bad_code.as_str());
    assert_eq!(page["auditLog"]["pageInfo"]["hasNextPage"], true);
    let after = page["auditLog"]["pageInfo"]["endCursor"].as_str().unwrap();
    let rest = app
        .ok(&format!(
            r#"{{ auditLog(first: 100, after: "{after}") {{ edges {{ node {{ operation arguments outcome }} }} }} }}"#
        ))
        .await;
    let rest: Vec<Value> = rest["auditLog"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    assert_eq!(
        rest.iter()
            .map(|n| n["operation"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["rechargeQuota", "armActivity"],
        "the setup's operations, oldest last"
    );
    assert_eq!(rest[1]["outcome"], "ok");
    app.cleanup().await;
}

/// An RS256 or ES256 token signed with a test key of `api/tests/fixtures`.
fn signed_by_provider(alg: jsonwebtoken::Algorithm, kid: &str, claims: &Value) -> String {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let key = match alg {
        jsonwebtoken::Algorithm::ES256 => {
            jsonwebtoken::EncodingKey::from_ec_der(&std::fs::read(dir.join("jwks-es256.der")).unwrap())
        }
        _ => jsonwebtoken::EncodingKey::from_rsa_der(&std::fs::read(dir.join("jwks-rs256.der")).unwrap()),
    };
    let mut header = jsonwebtoken::Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, &key).unwrap()
}

#[tokio::test]
async fn tokens_of_an_identity_provider_verify_with_its_jwks() {
    let jwks = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/jwks.json");
    let app = spawn_app_with(|s| {
        s.auth.jwks_file = jwks.display().to_string();
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    let exp = chrono::Utc::now().timestamp() + 600;
    let es = jsonwebtoken::Algorithm::ES256;
    let rs = jsonwebtoken::Algorithm::RS256;
    let admin = signed_by_provider(
        rs,
        "test-rsa",
        &json!({"iss": "big-market", "sub": "ops", "role": "admin", "exp": exp}),
    );
    let armed = app
        .graphql_as(Some(&admin), "mutation { armActivity(activityId: 100301) }")
        .await;
    assert_eq!(armed["data"]["armActivity"], true, "{armed}");
    let user = signed_by_provider(
        es,
        "test-ec",
        &json!({"iss": "big-market", "openId": "frank", "exp": exp}),
    );
    let own = app
        .graphql_as(Some(&user), "{ creditAccount { availableAmount } }")
        .await;
    assert!(own.get("errors").is_none(), "{own}");
    for (what, token) in [
        (
            "unknown kid",
            signed_by_provider(
                es,
                "rotated-away",
                &json!({"iss": "big-market", "openId": "frank", "exp": exp}),
            ),
        ),
        (
            "kid of another algorithm",
            signed_by_provider(
                es,
                "test-rsa",
                &json!({"iss": "big-market", "openId": "frank", "exp": exp}),
            ),
        ),
        (
            "expired",
            signed_by_provider(
                es,
                "test-ec",
                &json!({"iss": "big-market", "openId": "frank", "exp": exp - 1200}),
            ),
        ),
    ] {
        let body = app
            .graphql_as(Some(&token), "{ creditAccount { availableAmount } }")
            .await;
        assert_eq!(code(&body), "UNAUTHENTICATED", "{what}: {body}");
    }
    app.cleanup().await;
}

#[tokio::test]
async fn big_market_token_works_before_serve_ever_ran_and_only_on_loopback() {
    let dir = std::env::temp_dir().join(format!("bm-token-{}-{}", std::process::id(), line!()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_big-market"))
            .args(args)
            .current_dir(&dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .output()
            .expect("running big-market token");
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    };
    let admin = run(&["token", "--admin"]);
    let user = run(&["token", "--user", "grace"]);
    let secret_file = dir.join(".big-market/dev-secret");
    assert!(
        secret_file.exists(),
        "the first token run creates the development secret"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret_file).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "only its owner reads the secret");
    }
    let app = spawn_app_with(|s| {
        s.auth.secret = String::new();
        s.auth.dev_secret_file = secret_file.display().to_string();
    })
    .await;
    let armed = app
        .graphql_as(Some(&admin), "mutation { armActivity(activityId: 100301) }")
        .await;
    assert_eq!(armed["data"]["armActivity"], true, "{armed}");
    let own = app
        .graphql_as(Some(&user), "{ creditAccount { availableAmount } }")
        .await;
    assert!(own.get("errors").is_none(), "{own}");

    // The same configuration on a public address refuses to start.
    let mut public = app.settings.clone();
    public.http.host = "0.0.0.0".into();
    let refused = api::startup::authenticator(&public).unwrap_err().to_string();
    assert!(refused.contains("auth.secret"), "{refused}");
    public.auth.secret = "p".repeat(32);
    assert!(api::startup::authenticator(&public).is_ok());
    app.cleanup().await;
    let _ = std::fs::remove_dir_all(&dir);
}
