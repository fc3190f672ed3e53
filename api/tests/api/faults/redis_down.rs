//! Redis blackholed (connections open, nothing answers), then back.

use std::time::Duration;

use test_support::proxy::FaultProxy;

use super::harness::{
    Load, Report, STOCK_102, drained, invariants, ready, secs, through, until_ready, upstream_of, world,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_blackholed_fails_draws_fast_with_0001_ready_names_it_and_all_heals_by_itself() {
    let redis = test_support::services::redis_url();
    let proxy = FaultProxy::start(upstream_of(&redis).await).await.unwrap();
    let url = through(&redis, proxy.addr());
    let w = world(|s| s.redis.url = url, STOCK_102).await;
    let mut report = Report::new(
        "redis-blackhole",
        "Redis blackholed 3 s through the proxy while 4 users draw, then passed",
        // A Redis command fails after redis.response_timeout_ms (500 ms), at once while the
        // connection is known broken; a draw makes a few: 2.5 s bounds it with a wide margin.
        Duration::from_millis(2_500),
        &["0001", "0006"],
    );
    let load = Load::start(&w, &w.app.address);
    tokio::time::sleep(Duration::from_secs(1)).await;

    proxy.blackhole();
    let cut = load.now();
    let (status, body, took) = ready(&w.app).await;
    report.note(format!(
        "/ready during the fault: {status} {} in {} ms",
        body["failing"],
        took.as_millis()
    ));
    report.check(status == 503, format!("/ready answered {status}: {body}"));
    report.check(took < Duration::from_millis(1_500), format!("/ready took {took:?}"));
    report.check(
        body["failing"] == serde_json::json!(["redis"]),
        format!("/ready named {body}"),
    );
    report.check(
        body["checks"]["mysql_config"] == true,
        format!("MySQL looked down: {body}"),
    );
    tokio::time::sleep(Duration::from_secs(3) - took).await;

    proxy.pass();
    let lifted = load.now();
    let healed = load.first_win_after(lifted, &w.users, Duration::from_secs(10)).await;
    let ready_again = until_ready(&w.app, Duration::from_secs(10)).await;
    report.note(format!(
        "healed by itself: first won draw {} after Redis was back, /ready 200 after {}",
        healed.map_or_else(|| "never (10 s)".to_owned(), secs),
        ready_again.map_or_else(|| "never (10 s)".to_owned(), secs),
    ));
    report.check(healed.is_some(), "no draw won within 10 s of Redis coming back");
    report.check(ready_again.is_some(), "/ready not 200 within 10 s of Redis coming back");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let samples = load.stop().await;
    // Draws sent while Redis was away (except in the last half second, whose commands may be
    // answered once the held bytes go through) cannot take stock.
    let mut during = samples
        .iter()
        .filter(|s| s.at >= cut && s.at + Duration::from_millis(600) < lifted);
    report.check(
        during.all(|s| !s.won()),
        "a draw needing award stock won while Redis was blackholed",
    );

    let drain = drained(&w.app, Duration::from_secs(30)).await;
    report.note(format!(
        "every event published, every award delivered {} after the load stopped",
        drain.map_or_else(|| "NOT within 30 s".to_owned(), secs)
    ));
    let inv = invariants(&w.app, &samples).await;
    report.finish(&samples, &inv);
    w.app.cleanup().await; // through the proxy too
    drop(proxy);
}
