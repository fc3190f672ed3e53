//! RabbitMQ blackholed for 10 s (relay and consumers connected through the proxy), then back.

use std::time::Duration;

use test_support::app::{SHARD_01, SHARD_02};
use test_support::proxy::FaultProxy;
use test_support::services::DEFAULT_AMQP_URL;

use super::harness::{Load, Report, STOCK_102, drained, invariants, secs, through, upstream_of, world};

async fn delivered(app: &test_support::app::TestApp) -> i64 {
    let sql = "SELECT COUNT(*) FROM task WHERE topic = 'send_award' AND delivered_at IS NOT NULL";
    app.int(SHARD_01, sql).await + app.int(SHARD_02, sql).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_the_broker_blackholed_for_10_s_draws_go_on_and_every_award_is_delivered_once_afterwards() {
    let proxy = FaultProxy::start(upstream_of(DEFAULT_AMQP_URL).await).await.unwrap();
    let url = through(DEFAULT_AMQP_URL, proxy.addr());
    let w = world(
        |s| {
            s.rabbitmq.url = url;
            s.relay.confirm_timeout_ms = 2_000;
        },
        STOCK_102,
    )
    .await;
    let mut report = Report::new(
        "broker-blackhole",
        "RabbitMQ blackholed 10 s through the proxy (relay and consumers connected through it) while 4 users draw, then passed",
        // Draws never wait on the broker: the limit is an ordinary draw's, with a wide margin.
        Duration::from_millis(2_500),
        &[],
    );
    let load = Load::start(&w, &w.app.address);
    tokio::time::sleep(Duration::from_secs(2)).await;

    proxy.blackhole();
    let before = delivered(&w.app).await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let during = delivered(&w.app).await - before;
    proxy.pass();
    let won_meanwhile = load.samples().iter().filter(|s| s.won()).count();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let samples = load.stop().await;
    report.note(format!(
        "awards delivered while the broker was blackholed: {during} (of {won_meanwhile} won by then)"
    ));

    let drain = drained(&w.app, Duration::from_secs(40)).await;
    report.note(format!(
        "every event published, every award delivered {} after the load stopped (2 s after the broker came back)",
        drain.map_or_else(|| "NOT within 40 s".to_owned(), secs)
    ));
    let inv = invariants(&w.app, &samples).await;
    report.finish(&samples, &inv);
    w.app.cleanup().await;
    drop(proxy);
}
