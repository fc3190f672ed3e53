//! Entity of the `strategy_award` table.
#![allow(missing_docs)]

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "strategy_award")]
pub struct Model {
    #[sea_orm(primary_key)]
    pub id: u64,
    pub strategy_id: i64,
    pub award_id: i32,
    pub award_title: String,
    pub award_subtitle: Option<String>,
    pub award_count: i32,
    pub award_count_surplus: i32,
    pub award_rate: Decimal,
    pub rule_models: Option<String>,
    pub sort: i32,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
