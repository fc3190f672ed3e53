//! Limits on what one GraphQL operation may ask for, checked on the parsed document before
//! validation and execution (so a refused request does no work at all):
//!
//! * at most `max_spending_fields` root mutation fields that spend or grant ([`SPENDING`]):
//!   100 aliased `draw`s are refused as a whole, not run as 100 draws;
//! * at most `max_root_fields` root fields per operation;
//! * at most `max_fields` selected fields per operation, counting every selection —
//!   `__typename` and aliases included, fragments expanded where they are spread.
//!
//! Every operation of the document is checked (the one to run is chosen later). Errors carry
//! `extensions.code` `TOO_MANY_SPENDING_FIELDS`, `TOO_MANY_ROOT_FIELDS` or `QUERY_TOO_COMPLEX`.

use std::collections::HashMap;
use std::sync::Arc;

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, FragmentDefinition, OperationType, Selection, SelectionSet};
use async_graphql::{Name, Positioned, ServerError, ServerResult, Variables};

use super::error::{EdgeCode, server_error};

/// Mutation fields that spend or grant quota, stock or credit.
pub const SPENDING: [&str; 5] = [
    "draw",
    "rechargeQuota",
    "randomRaffle",
    "calendarSignRebate",
    "creditPayExchangeSku",
];

/// The limits (from `http.*` settings).
#[derive(Debug, Clone, Copy)]
pub struct OperationLimits {
    /// Root fields per operation.
    pub max_root_fields: usize,
    /// Selected fields per operation (every selection counted).
    pub max_fields: usize,
    /// Spending mutation fields per request.
    pub max_spending_fields: usize,
}

impl ExtensionFactory for OperationLimits {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(*self)
    }
}

#[async_trait::async_trait]
impl Extension for OperationLimits {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        self.check(&doc)?;
        Ok(doc)
    }
}

/// Fragment definitions by name.
type Fragments = HashMap<Name, Positioned<FragmentDefinition>>;

impl OperationLimits {
    /// Checks every operation of `doc`.
    ///
    /// # Errors
    /// The first limit exceeded.
    pub fn check(&self, doc: &ExecutableDocument) -> Result<(), ServerError> {
        for (_, op) in doc.operations.iter() {
            let mut roots = Vec::new();
            root_fields(&op.node.selection_set.node, &doc.fragments, &mut roots, 0);
            if op.node.ty == OperationType::Mutation {
                let spending = roots.iter().filter(|n| SPENDING.contains(&n.as_str())).count();
                if spending > self.max_spending_fields {
                    return Err(server_error(
                        EdgeCode::TooManySpendingFields,
                        format!(
                            "a request may run at most {} of {} (aliases included); this one asks for {spending}",
                            self.max_spending_fields,
                            SPENDING.join(", ")
                        ),
                    ));
                }
            }
            if roots.len() > self.max_root_fields {
                return Err(server_error(
                    EdgeCode::TooManyRootFields,
                    format!(
                        "an operation may select at most {} root fields; this one selects {}",
                        self.max_root_fields,
                        roots.len()
                    ),
                ));
            }
            let mut budget = self.max_fields;
            if !count_fields(&op.node.selection_set.node, &doc.fragments, &mut budget, 0) {
                return Err(server_error(
                    EdgeCode::QueryTooComplex,
                    format!(
                        "an operation may select at most {} fields (__typename and aliases included)",
                        self.max_fields
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// Deepest fragment nesting followed (validation refuses cycles later; this only bounds work).
const MAX_FRAGMENT_NESTING: usize = 32;

fn root_fields(set: &SelectionSet, fragments: &Fragments, out: &mut Vec<Name>, nesting: usize) {
    if nesting > MAX_FRAGMENT_NESTING {
        return;
    }
    for item in &set.items {
        match &item.node {
            Selection::Field(f) => out.push(f.node.name.node.clone()),
            Selection::InlineFragment(f) => root_fields(&f.node.selection_set.node, fragments, out, nesting + 1),
            Selection::FragmentSpread(s) => {
                if let Some(def) = fragments.get(&s.node.fragment_name.node) {
                    root_fields(&def.node.selection_set.node, fragments, out, nesting + 1);
                }
            }
        }
    }
}

/// Spends one unit of `budget` per selected field; `false` once it runs out.
fn count_fields(set: &SelectionSet, fragments: &Fragments, budget: &mut usize, nesting: usize) -> bool {
    if nesting > MAX_FRAGMENT_NESTING {
        return false;
    }
    for item in &set.items {
        let ok = match &item.node {
            Selection::Field(f) => {
                if *budget == 0 {
                    return false;
                }
                *budget -= 1;
                count_fields(&f.node.selection_set.node, fragments, budget, nesting)
            }
            Selection::InlineFragment(f) => count_fields(&f.node.selection_set.node, fragments, budget, nesting + 1),
            Selection::FragmentSpread(s) => match fragments.get(&s.node.fragment_name.node) {
                Some(def) => count_fields(&def.node.selection_set.node, fragments, budget, nesting + 1),
                None => true,
            },
        };
        if !ok {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: OperationLimits = OperationLimits {
        max_root_fields: 16,
        max_fields: 50,
        max_spending_fields: 1,
    };

    fn code(query: &str) -> Option<String> {
        let doc = async_graphql::parser::parse_query(query).unwrap();
        LIMITS.check(&doc).err().map(|e| {
            let value = e.extensions.unwrap().get("code").cloned().unwrap();
            value.to_string().trim_matches('"').to_owned()
        })
    }

    #[test]
    fn one_draw_passes_and_two_aliased_draws_are_refused_even_through_fragments() {
        assert_eq!(code("mutation { draw(activityId: 1) { awardId } }"), None);
        assert_eq!(
            code("mutation { a: draw(activityId: 1) { awardId } b: draw(activityId: 1) { awardId } }").as_deref(),
            Some("TOO_MANY_SPENDING_FIELDS")
        );
        assert_eq!(
            code("mutation { draw(activityId: 1) { awardId } ...F } fragment F on Mutation { rechargeQuota(sku: 1, outBusinessNo: \"x\") { created } }")
                .as_deref(),
            Some("TOO_MANY_SPENDING_FIELDS")
        );
        assert_eq!(
            code("mutation { armActivity(activityId: 1) armStrategy(strategyId: 2) }"),
            None
        );
    }

    #[test]
    fn typename_aliases_count_against_the_field_budget() {
        let many: String = (0..51).map(|i| format!("t{i}: __typename ")).collect();
        assert_eq!(code(&format!("{{ {many} }}")).as_deref(), Some("TOO_MANY_ROOT_FIELDS"));
        let nested: String = (0..60).map(|i| format!("t{i}: __typename ")).collect();
        assert_eq!(
            code(&format!("{{ strategy(strategyId: 1) {{ {nested} }} }}")).as_deref(),
            Some("QUERY_TOO_COMPLEX")
        );
        assert_eq!(code("{ strategy(strategyId: 1) { __typename strategyId } }"), None);
    }

    #[test]
    fn the_raffle_page_fits_in_one_request() {
        let page = "{ a: strategy(strategyId: 1) { strategyId } b: activityAccount(activityId: 1) { totalCount } \
            c: creditAccount { availableAmount } d: raffleAwards(activityId: 1) { awardId } \
            e: ruleWeights(activityId: 1) { ruleWeightCount } f: skuProducts(activityId: 1) { sku } \
            g: userAwards { edges { node { awardId } } } h: __typename }";
        assert_eq!(code(page), None);
    }
}
