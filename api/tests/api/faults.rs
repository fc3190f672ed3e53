//! Dependencies that stop answering, through a TCP fault proxy: the service answers within its
//! deadlines meanwhile and heals by itself afterwards.

use std::time::{Duration, Instant};

use test_support::app::spawn_app_with;
use test_support::proxy::FaultProxy;

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
async fn with_redis_blackholed_ready_names_it_within_a_second_draws_fail_fast_and_all_heals() {
    let proxy = FaultProxy::start(redis_upstream().await).await.unwrap();
    let url = format!("redis://{}", proxy.addr());
    let app = spawn_app_with(|s| {
        s.redis.url = url;
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    let draw = r#"mutation { draw(userId: "xiaofuge", activityId: 100301) { awardId } }"#;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    app.ok(r#"mutation { rechargeQuota(userId: "xiaofuge", sku: 9011, outBusinessNo: "f-1") { orderId } }"#)
        .await;
    let ready = || async {
        let started = Instant::now();
        let r = app.client.get(format!("{}/ready", app.address)).send().await.unwrap();
        let status = r.status().as_u16();
        (status, r.json::<serde_json::Value>().await.unwrap(), started.elapsed())
    };

    proxy.blackhole();
    let (status, body, took) = ready().await;
    assert_eq!(status, 503, "{body}");
    assert!(took < Duration::from_millis(1_500), "/ready took {took:?}");
    assert_eq!(body["failing"], serde_json::json!(["redis"]), "{body}");
    assert_eq!(body["checks"]["mysql_config"], true);
    // A draw needs Redis only to take award stock: it answers within the Redis deadline,
    // with an award or with 0001 — never hangs.
    for _ in 0..3 {
        let started = Instant::now();
        let body = app.graphql(draw).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(2_500),
            "a draw took {took:?} with Redis blackholed"
        );
        if let Some(code) = body["errors"][0]["extensions"]["code"].as_str() {
            assert_eq!(code, "0001", "{body}");
        }
    }

    proxy.pass();
    let healed = Instant::now();
    loop {
        let (status, body, _) = ready().await;
        if status == 200 {
            break;
        }
        assert!(
            healed.elapsed() < Duration::from_secs(10),
            "not ready 10 s after Redis came back: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    app.ok(draw).await;
    app.cleanup().await;
}
