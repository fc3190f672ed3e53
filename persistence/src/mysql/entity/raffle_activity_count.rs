//! Entity of the `raffle_activity_count` table.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "raffle_activity_count")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: u64,
    pub activity_count_id: i64,
    pub total_count: i32,
    pub day_count: i32,
    pub month_count: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
