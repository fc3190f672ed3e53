//! The relay and the consumers run as processes of their own and are killed (`kill -9`) again
//! and again while users draw.

use std::time::Duration;

use test_support::app::{ServerProcess, TestApp};

use super::harness::{BIN, Load, Report, STOCK_102, drained, invariants, secs, world};

/// Kills rounds: each kills the relay process, then the consumer process, restarting each.
const ROUNDS: usize = 3;

/// `big-market relay` without consumers.
fn relay(app: &TestApp) -> ServerProcess {
    app.spawn_relay_process(BIN, |s| s.consumers.enabled = false)
}

/// `big-market serve` running the consumers only.
async fn consumers(app: &TestApp) -> ServerProcess {
    app.spawn_process(BIN, |s| {
        s.relay.enabled = false;
        s.consumers.enabled = true;
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn relay_and_consumer_processes_killed_again_and_again_deliver_every_award_once() {
    // The app takes the draws and runs neither relay nor consumers; a claim of a killed relay
    // is due again after its lease (1 s here).
    let w = world(
        |s| {
            s.relay.enabled = false;
            s.consumers.enabled = false;
            s.relay.confirm_timeout_ms = 500;
            s.relay.lease_ms = 1_000;
        },
        STOCK_102,
    )
    .await;
    let mut report = Report::new(
        "kill-9-relay-and-consumers",
        format!(
            "`big-market relay` and a consumers-only `big-market serve` each killed with kill -9 {ROUNDS} times (and restarted) while 4 users draw"
        ),
        // The draws go to the app, which the kills do not touch.
        Duration::from_millis(2_500),
        &[],
    );
    let load = Load::start(&w, &w.app.address);
    let mut relay_process = relay(&w.app);
    let mut consumer_process = consumers(&w.app).await;
    for _ in 0..ROUNDS {
        tokio::time::sleep(Duration::from_millis(1_200)).await;
        relay_process.kill9();
        relay_process = relay(&w.app);
        tokio::time::sleep(Duration::from_millis(700)).await;
        consumer_process.kill9();
        consumer_process = consumers(&w.app).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let samples = load.stop().await;

    let drain = drained(&w.app, Duration::from_secs(30)).await;
    report.note(format!(
        "{ROUNDS} kills each; every event published, every award delivered {} after the load stopped",
        drain.map_or_else(|| "NOT within 30 s".to_owned(), secs)
    ));
    let inv = invariants(&w.app, &samples).await;
    drop((relay_process, consumer_process));
    report.finish(&samples, &inv);
    w.app.cleanup().await;
}
