//! `m20240406_000002_config_reference_data`: the reference rows of the config database,
//! inserted only where missing.

use migration::migrate_all;
use migration::sea_orm_migration::sea_orm::ConnectionTrait;
use test_support::mysql::{TestDatabases, connect, finish};
use test_support::schema::{row_counts, table_rows};
use test_support::services::database_url;

use crate::support::{NON_BUSINESS_COLUMNS, load_fixture, migrated_reference_counts};

/// The reference migration fills in missing rows by natural key and leaves existing ones (even
/// changed ones) alone.
#[tokio::test]
async fn reference_data_fills_only_missing_rows() -> anyhow::Result<()> {
    let mut dbs = TestDatabases::new().await?;
    let cfg = dbs.name("cfg");
    let result = fill_missing_rows(&dbs, &cfg).await;
    finish(dbs, result).await
}

async fn fill_missing_rows(dbs: &TestDatabases, cfg: &str) -> anyhow::Result<()> {
    let server = &dbs.server;
    load_fixture(cfg, "big_market.sql").await?;
    let db = connect(&database_url(cfg)).await?;
    for sql in [
        "DELETE FROM award WHERE award_id = 105",
        "DELETE FROM rule_tree_node WHERE tree_id = 'tree_lock_2' AND rule_key = 'rule_stock'",
        "DELETE FROM rule_tree_node_line WHERE tree_id = 'tree_lock_3' AND rule_limit_value = 'TAKE_OVER'",
        "DELETE FROM strategy_award WHERE strategy_id = 100006 AND award_id = 108",
        "UPDATE strategy_award SET award_count_surplus = 7 WHERE strategy_id = 100006 AND award_id = 101",
        "UPDATE daily_behavior_rebate SET rebate_config = '20' WHERE rebate_type = 'integral'",
    ] {
        db.execute_unprepared(sql).await?;
    }
    db.close().await?;

    migrate_all(&database_url(cfg), &[]).await?;

    let mut counts = row_counts(server, cfg).await?;
    counts.remove("seaql_migrations");
    counts.remove(migration::AUDIT_LOG_TABLE);
    counts.remove(migration::SWITCHES_TABLE);
    assert_eq!(
        counts,
        migrated_reference_counts(),
        "missing rows restored (and the latest dump's added), nothing duplicated"
    );
    let awards = table_rows(server, cfg, "strategy_award", NON_BUSINESS_COLUMNS).await?;
    assert!(
        awards.contains(&"100006|101|随机积分|<NULL>|10000|7|0.7900|tree_luck_award|1".to_owned()),
        "changed rows are kept: {awards:#?}"
    );
    assert!(awards.contains(&"100006|108|暴走玩偶|<NULL>|100|25|0.0300|tree_luck_award|8".to_owned()));
    let rebates = table_rows(server, cfg, "daily_behavior_rebate", NON_BUSINESS_COLUMNS).await?;
    assert!(rebates.contains(&"sign|签到返利-积分|integral|20|open".to_owned()));
    Ok(())
}
