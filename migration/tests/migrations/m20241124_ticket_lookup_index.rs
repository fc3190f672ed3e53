//! `m20241124_000001_ticket_lookup_index`: an index on every split `user_raffle_order` table
//! to find a user's unused ticket of an activity.

use std::collections::BTreeSet;

use migration::TICKET_LOOKUP_INDEX;
use test_support::schema::{IndexInfo, SchemaSnapshot, columns, keys_and_options, table_indexes};

use crate::support::{Shard, ShardRoundTrip, shard_round_trip};

/// The ticket-lookup index is on every split `user_raffle_order` table after up, gone after
/// rolling that migration back (nothing else changes), and back after up again.
#[tokio::test]
async fn ticket_lookup_index_rolls_back_and_applies_again() -> anyhow::Result<()> {
    shard_round_trip(TicketLookupIndex).await
}

struct TicketLookupIndex;

impl ShardRoundTrip for TicketLookupIndex {
    const MIGRATION: &'static str = "m20241124_000001_ticket_lookup_index";

    /// The index, with its columns, on every split table.
    async fn assert_effects(&self, shard: &Shard<'_>, applied: bool) -> anyhow::Result<()> {
        let expected = IndexInfo {
            unique: false,
            columns: ["user_id", "activity_id", "order_state"].map(str::to_owned).to_vec(),
        };
        let name = shard.name;
        for table in (0..migration::SPLIT_TABLE_COUNT).map(|i| format!("user_raffle_order_{i:03}")) {
            let indexes = table_indexes(shard.server, name, &table).await?;
            assert_eq!(
                indexes.get(TICKET_LOOKUP_INDEX),
                applied.then_some(&expected),
                "{name}.{table}.{TICKET_LOOKUP_INDEX}"
            );
        }
        Ok(())
    }

    /// Only the index is gone.
    async fn after_down(&self, shard: &Shard<'_>, up: &SchemaSnapshot) -> anyhow::Result<()> {
        let (server, name) = (shard.server, shard.name);
        let index = TICKET_LOOKUP_INDEX;
        let (keys_down, options_down) = keys_and_options(server, name).await?;
        let without: BTreeSet<Vec<String>> = up.keys_without_index(index);
        assert_eq!(keys_down, without, "only {index} is gone after down");
        assert_ne!(keys_down, up.keys, "{index} was dropped");
        assert_eq!(options_down, up.options, "table options after down");
        assert_eq!(
            columns(server, name).await?,
            crate::support::before_binary_ids(up.columns.clone()),
            "columns after down (the later binary-ids migration rolled back too)"
        );
        Ok(())
    }
}
