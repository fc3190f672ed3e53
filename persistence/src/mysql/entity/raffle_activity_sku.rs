//! Entity of the `raffle_activity_sku` table.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "raffle_activity_sku")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: u64,
    pub sku: i64,
    pub activity_id: i64,
    pub activity_count_id: i64,
    pub stock_count: i32,
    pub stock_count_surplus: i32,
    pub product_amount: Decimal,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
