//! Entity of the `strategy_rule` table.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "strategy_rule")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: u64,
    pub strategy_id: i32,
    pub award_id: Option<i32>,
    pub rule_model: String,
    pub rule_value: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
