//! `m20261130_000002_binary_ids`: every `user_id`, `out_business_no` and `biz_id` column of a
//! shard compares byte for byte (`utf8mb4_bin`), `user_id` is `varchar(128)`.

use test_support::schema::columns;

use crate::support::{Shard, ShardRoundTrip, shard_round_trip};

/// The id columns are binary after up, back to the original collation and width after
/// rolling that migration back, and binary again after up again.
#[tokio::test]
async fn binary_ids_roll_back_and_apply_again() -> anyhow::Result<()> {
    shard_round_trip(BinaryIds).await
}

struct BinaryIds;

impl ShardRoundTrip for BinaryIds {
    const MIGRATION: &'static str = "m20261130_000002_binary_ids";

    async fn assert_effects(&self, shard: &Shard<'_>, applied: bool) -> anyhow::Result<()> {
        let ids: Vec<_> = columns(shard.server, shard.name)
            .await?
            .into_iter()
            .filter(|c| migration::BINARY_ID_COLUMNS.contains(&c.column.as_str()))
            .collect();
        // Every table that names a user: accounts, orders, records, tasks, the inbox, rebates, credit.
        assert!(ids.iter().filter(|c| c.column == "user_id").count() >= 20, "{ids:?}");
        assert!(ids.iter().any(|c| c.column == "out_business_no"));
        assert!(ids.iter().any(|c| c.column == "biz_id"));
        for c in &ids {
            let collation = if applied {
                migration::ID_COLLATION
            } else {
                "utf8mb4_general_ci"
            };
            assert_eq!(c.collation, collation, "{}.{}", c.table, c.column);
            if c.column == "user_id" {
                let width = if applied { "varchar(128)" } else { "varchar(32)" };
                assert_eq!(c.column_type, width, "{}.user_id", c.table);
            }
        }
        Ok(())
    }
}
