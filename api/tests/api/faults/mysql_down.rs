//! One MariaDB shard blackholed (connections open, nothing answers), then back.

use std::time::Duration;

use sea_orm::{ConnectionTrait as _, TransactionTrait as _};

use super::harness::{Load, Report, drained, invariants, ready, secs, until_ready, world_with_shard_01_proxied};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_blackholed_shard_fails_its_draws_within_the_deadline_ready_names_it_and_all_heals_by_itself() {
    let (proxy, w, direct) = world_with_shard_01_proxied(|s| {
        s.draw.timeout_ms = 1_000;
        s.database.response_timeout_ms = 1_500;
    })
    .await;
    let (shard_01, shard_02) = w.users.split_at(w.users.len() / 2);
    let mut report = Report::new(
        "mysql-shard-blackhole",
        "shard big_market_01 blackholed 4 s through the proxy while 2 users of each shard draw, then passed",
        // draw.timeout_ms (1 s) bounds the reads before the save, database.response_timeout_ms
        // (1.5 s) the save: 2.5 s at worst; 4 s leaves a wide margin.
        Duration::from_secs(4),
        &["0001", "0006"],
    );
    let load = Load::start(&w, &w.app.address);
    tokio::time::sleep(Duration::from_secs(1)).await;

    // One draw is caught mid-statement: its save waits for a row lock held here (past the
    // proxy) when the blackhole begins, so its answer is held too.
    let holder_db = sea_orm::Database::connect(direct.as_str()).await.unwrap();
    let holder = holder_db.begin().await.unwrap();
    holder
        .execute_unprepared(&format!(
            "SELECT * FROM raffle_activity_account WHERE user_id = '{}' FOR UPDATE",
            shard_01[0]
        ))
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    proxy.blackhole();
    let cut = load.now();
    holder.rollback().await.unwrap();
    holder_db.close().await.unwrap();
    let (status, body, took) = ready(&w.app).await;
    report.note(format!(
        "/ready during the fault: {status} {} in {} ms",
        body["failing"],
        took.as_millis()
    ));
    report.check(status == 503, format!("/ready answered {status}: {body}"));
    report.check(took < Duration::from_millis(1_200), format!("/ready took {took:?}"));
    report.check(
        body["failing"] == serde_json::json!(["mysql_shard_01"]),
        format!("/ready named {body}"),
    );
    tokio::time::sleep(Duration::from_secs(4) - took).await;

    proxy.pass();
    let lifted = load.now();
    let healed = load.first_win_after(lifted, shard_01, Duration::from_secs(10)).await;
    let ready_again = until_ready(&w.app, Duration::from_secs(10)).await;
    report.note(format!(
        "healed by itself: first won draw on shard 01 {} after it was back, /ready 200 after {}",
        healed.map_or_else(|| "never (10 s)".to_owned(), secs),
        ready_again.map_or_else(|| "never (10 s)".to_owned(), secs),
    ));
    report.check(
        healed.is_some(),
        "no shard-01 draw won within 10 s of the shard coming back",
    );
    report.check(
        ready_again.is_some(),
        "/ready not 200 within 10 s of the shard coming back",
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let samples = load.stop().await;
    if let Some(caught) = samples
        .iter()
        .filter(|s| s.user == shard_01[0] && s.at < cut && s.answered() > cut)
        .max_by_key(|s| s.took)
    {
        report.note(format!(
            "the draw caught mid-save answered {:?} after {} ms",
            caught.outcome,
            caught.took.as_millis()
        ));
    }
    // The other shard's users never noticed.
    let others: Vec<_> = samples
        .iter()
        .filter(|s| shard_02.contains(&s.user) && s.at >= cut && s.at < lifted)
        .collect();
    let others_won = others.iter().filter(|s| s.won()).count();
    report.note(format!(
        "shard 02 during the fault: {others_won} of {} draws won",
        others.len()
    ));
    report.check(
        others_won == others.len() && others_won > 0,
        "users of the healthy shard could not draw",
    );

    let drain = drained(&w.app, Duration::from_secs(30)).await;
    report.note(format!(
        "every event published, every award delivered {} after the load stopped",
        drain.map_or_else(|| "NOT within 30 s".to_owned(), secs)
    ));
    let inv = invariants(&w.app, &samples).await;
    report.finish(&samples, &inv);
    w.app.cleanup().await;
    drop(proxy);
}
