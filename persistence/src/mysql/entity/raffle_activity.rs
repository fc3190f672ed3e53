//! Entity of the `raffle_activity` table.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "raffle_activity")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: u64,
    pub activity_id: i64,
    pub activity_name: String,
    pub activity_desc: String,
    pub begin_date_time: DateTime,
    pub end_date_time: DateTime,
    pub strategy_id: i64,
    pub state: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
