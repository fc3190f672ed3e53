//! The `Node` interface and `node(id:)`: refetching an object a client already holds by its
//! global id (the Global Object Identification convention; docs/SCHEMA.md §Node).
//!
//! A global id is the standard base64 of `Type:key` (`Strategy:100006`,
//! `SkuProduct:100301:9011`, `Task:<messageId>`, `Stage:2`). Clients treat it as opaque; the
//! server decodes it and loads the object through the same code, and the same access rule, as
//! the object's own field (`strategy`, `skuProducts`, `task`, `stages`).

use std::sync::Arc;

use async_graphql::{Context, ID, Interface, Object, Result};
use domain::ErrorCode;
use domain::ids::{ActivityId, StrategyId};

use super::catalog::{SkuProduct, sku_product_of};
use super::error::{to_gql, with_code};
use super::stage::Stage;
use super::strategy::Strategy;
use super::tasks::{Task, find_task};
use crate::state::AppState;

/// `Strategy` global ids: `Strategy:<strategyId>`.
pub const STRATEGY: &str = "Strategy";
/// `SkuProduct` global ids: `SkuProduct:<activityId>:<sku>`.
pub const SKU_PRODUCT: &str = "SkuProduct";
/// `Task` global ids: `Task:<messageId>`.
pub const TASK: &str = "Task";
/// `Stage` global ids: `Stage:<stageId>`.
pub const STAGE: &str = "Stage";

/// An object with a global id that `node(id:)` refetches.
// One value per `node` answer, built and dropped within the request: boxing `Task` would save
// nothing that matters.
#[allow(clippy::large_enum_variant)]
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "&ID",
    desc = "Global id of the object: opaque, stable, unique across types; pass it to `node(id:)`."
))]
pub enum Node {
    /// A prize strategy.
    Strategy(Strategy),
    /// A quota package.
    SkuProduct(SkuProduct),
    /// An outbox event.
    Task(Task),
    /// An activity stage.
    Stage(Stage),
}

/// The global id of the object of type `type_name` with key `key`.
pub fn global_id(type_name: &str, key: &str) -> ID {
    ID(base64::encode(format!("{type_name}:{key}").as_bytes()))
}

/// `(type, key)` of a global id, if it is one this service issues.
fn decode(id: &str) -> Option<(String, String)> {
    let text = String::from_utf8(base64::decode(id)?).ok()?;
    let (t, k) = text.split_once(':')?;
    Some((t.to_owned(), k.to_owned()))
}

fn not_ours(id: &str) -> async_graphql::Error {
    with_code(
        ErrorCode::IllegalParameter,
        format!("{id:?} is not a global id of this service"),
    )
}

fn number(id: &str, key: &str) -> Result<i64> {
    key.parse::<i64>().map_err(|_| not_ours(id))
}

/// The `node` query.
#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// Refetches an object by its global `id` (the `id` field of a `Node`). Null when the
    /// object no longer exists. Access is the object's own field's: strategies and quota
    /// packages are public, a user reads its own events only (`FORBIDDEN` otherwise), stages
    /// are for operators. Errors: `0002` for an id this service did not issue.
    async fn node(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "A global id, as read from a `Node`'s `id` field.")] id: ID,
    ) -> Result<Option<Node>> {
        let (type_name, key) = decode(&id).ok_or_else(|| not_ours(&id))?;
        let app = ctx.data::<Arc<AppState>>()?;
        match type_name.as_str() {
            STRATEGY => {
                let Ok(strategy_id) = StrategyId::parse(number(&id, &key)?) else {
                    return Ok(None);
                };
                match app.strategy.view(strategy_id).await {
                    Ok(view) => Ok(Some(Node::Strategy(view.into()))),
                    Err(domain::strategy::StrategyError::NotFound(_)) => Ok(None),
                    Err(e) => Err(to_gql(e)),
                }
            }
            SKU_PRODUCT => {
                let (activity, sku) = key.split_once(':').ok_or_else(|| not_ours(&id))?;
                let (activity, sku) = (number(&id, activity)?, number(&id, sku)?);
                let Ok(activity_id) = ActivityId::parse(activity) else {
                    return Ok(None);
                };
                // An unknown activity reads as `0002` from the catalogue: here, as nothing.
                let Ok(cfg) = super::catalog::activity(app, activity_id).await else {
                    return Ok(None);
                };
                Ok(cfg
                    .skus
                    .iter()
                    .find(|s| s.sku.get() == sku)
                    .map(|s| Node::SkuProduct(sku_product_of(s, s.stock_count_surplus))))
            }
            TASK => Ok(find_task(ctx, key).await?.map(Node::Task)),
            STAGE => {
                super::access::admin(ctx)?;
                let stage = super::stage::stages(app)
                    .find(number(&id, &key)?)
                    .await
                    .map_err(|e| super::error::internal_error("stage read failed", e))?;
                Ok(stage.map(|s| Node::Stage(s.into())))
            }
            _ => Err(not_ours(&id)),
        }
    }
}

/// Standard base64 (RFC 4648 §4, with padding), the usual encoding of global ids; small
/// enough to keep here rather than add a dependency.
mod base64 {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

    pub fn encode(bytes: &[u8]) -> String {
        let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
        for chunk in bytes.chunks(3) {
            let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
            let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
            for i in 0..4 {
                if i <= chunk.len() {
                    out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
                } else {
                    out.push('=');
                }
            }
        }
        out
    }

    pub fn decode(text: &str) -> Option<Vec<u8>> {
        let bytes = text.as_bytes();
        if bytes.len() % 4 != 0 {
            return None;
        }
        let mut out = Vec::with_capacity(bytes.len() / 4 * 3);
        for (q, quad) in bytes.chunks(4).enumerate() {
            let last = q == bytes.len() / 4 - 1;
            let pad = quad.iter().rev().take_while(|&&c| c == b'=').count();
            if pad > 2 || (pad > 0 && !last) {
                return None;
            }
            let mut n = 0u32;
            for &c in &quad[..4 - pad] {
                let v = ALPHABET.iter().position(|&a| a == c)?;
                n = (n << 6) | v as u32;
            }
            n <<= 6 * pad as u32;
            let full = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
            out.extend_from_slice(&full[..3 - pad]);
        }
        Some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_ids_are_base64_of_type_and_key_and_decode_back() {
        assert_eq!(global_id("Strategy", "100006").as_str(), "U3RyYXRlZ3k6MTAwMDA2");
        assert_eq!(global_id("Stage", "2").as_str(), "U3RhZ2U6Mg==");
        assert_eq!(global_id("Task", "1").as_str(), "VGFzazox");
        for (t, k) in [
            ("Strategy", "100006"),
            ("Stage", "2"),
            ("Task", "1"),
            ("SkuProduct", "100301:9011"),
        ] {
            assert_eq!(decode(&global_id(t, k)), Some((t.to_owned(), k.to_owned())));
        }
        for bad in ["", "abc", "U3RhZ2U6Mg=", "U3Rh=2U6Mg==", "!!!!", "U3RyYXRlZ3k"] {
            assert_eq!(decode(bad), None, "{bad}");
        }
    }
}
