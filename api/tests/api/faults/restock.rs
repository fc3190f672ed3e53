//! Stock sold out under load, then raised by an operator (`addAwardStock`, `addSkuStock`):
//! exactly the new units sell, while the draws go on.

use std::time::Duration;

use test_support::app::TestApp;

use super::harness::{Load, Report, STOCK_9013, count_split, drained, invariants, secs, wins_of, world};

const STOCK_102: i64 = 10;
const ADDED_102: i64 = 7;
const ADDED_9013: i64 = 4;

/// `n` users buy SKU 9013 at once (one package each); how many got one.
async fn buy_9013(app: &TestApp, round: &str, n: usize) -> (usize, Vec<String>) {
    let buys = (0..n).map(|i| async move {
        app.graphql(&format!(
            r#"mutation {{ rechargeQuota(userId: "buyer-{round}-{i}", sku: 9013, outBusinessNo: "buy-{round}-{i}") {{ orderId }} }}"#
        ))
        .await
    });
    let answers = futures::future::join_all(buys).await;
    let codes = answers
        .iter()
        .filter_map(|a| test_support::app::error_code_of(a).map(str::to_owned))
        .collect::<Vec<_>>();
    (n - codes.len(), codes)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn stock_added_after_a_sell_out_under_load_sells_exactly_the_new_units() {
    let w = world(|_| {}, STOCK_102).await;
    let mut report = Report::new(
        "stock-added-after-sell-out",
        format!(
            "award 102 ({STOCK_102} units) sold out by 4 drawing users, then addAwardStock +{ADDED_102}; \
             SKU 9013 ({STOCK_9013} units) sold out by concurrent recharges, then addSkuStock +{ADDED_9013}"
        ),
        Duration::from_millis(2_500),
        &[],
    );
    let load = Load::start(&w, &w.app.address);
    let sold_out = load
        .until(Duration::from_secs(20), |s| {
            // Sold out, and then some more draws that could not have it.
            wins_of(s, 102) == STOCK_102 as usize && s.iter().filter(|s| s.won()).count() > 2 * STOCK_102 as usize + 20
        })
        .await;
    report.check(sold_out, format!("award 102 did not sell its {STOCK_102} units"));
    let added = w
        .app
        .ok(&format!(
            "mutation {{ addAwardStock(strategyId: 100006, awardId: 102, units: {ADDED_102}) {{ count surplus live }} }}"
        ))
        .await;
    report.check(
        added["addAwardStock"]["count"] == STOCK_102 + ADDED_102 && added["addAwardStock"]["live"] == ADDED_102,
        format!("addAwardStock answered {added}"),
    );
    let resold = load
        .until(Duration::from_secs(20), |s| {
            wins_of(s, 102) >= (STOCK_102 + ADDED_102) as usize
        })
        .await;
    report.check(resold, format!("the {ADDED_102} added units of award 102 did not sell"));

    // Meanwhile SKU 9013 sells out to concurrent recharges, gets more, sells out again.
    let (first, codes) = buy_9013(&w.app, "a", 12).await;
    report.check(
        first == STOCK_9013 as usize && codes.iter().all(|c| c == "ERR_BIZ_005"),
        format!("{first} of 12 recharges bought SKU 9013 ({STOCK_9013} units): {codes:?}"),
    );
    let added = w
        .app
        .ok(&format!(
            "mutation {{ addSkuStock(sku: 9013, units: {ADDED_9013}) {{ count live }} }}"
        ))
        .await;
    report.check(
        added["addSkuStock"]["live"] == ADDED_9013,
        format!("addSkuStock answered {added}"),
    );
    let (second, codes) = buy_9013(&w.app, "b", 12).await;
    report.check(
        second == ADDED_9013 as usize && codes.iter().all(|c| c == "ERR_BIZ_005"),
        format!("{second} of 12 recharges bought the {ADDED_9013} added units of SKU 9013: {codes:?}"),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let samples = load.stop().await;

    let (records_102, orders_9013) = (
        count_split(&w.app, "user_award_record", "award_id = 102").await,
        count_split(&w.app, "raffle_activity_order", "sku = 9013").await,
    );
    report.note(format!(
        "award 102: {} draws won it, {records_102} records = {STOCK_102} + {ADDED_102} added; \
         SKU 9013: {first} + {second} recharges bought it, {orders_9013} orders = {STOCK_9013} + {ADDED_9013} added",
        wins_of(&samples, 102)
    ));
    report.check(
        records_102 == STOCK_102 + ADDED_102 && wins_of(&samples, 102) == records_102 as usize,
        "award 102 did not sell exactly its units",
    );
    report.check(
        orders_9013 == STOCK_9013 + ADDED_9013,
        "SKU 9013 did not sell exactly its units",
    );
    let drain = drained(&w.app, Duration::from_secs(30)).await;
    report.note(format!(
        "every event published, every award delivered {} after the load stopped",
        drain.map_or_else(|| "NOT within 30 s".to_owned(), secs)
    ));
    let inv = invariants(&w.app, &samples).await;
    report.finish(&samples, &inv);
    w.app.cleanup().await;
}
