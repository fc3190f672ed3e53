//! Post-draw rule trees (spec §4.5): validated when armed, walked after the draw.
//!
//! A tree is a small graph of nodes (`rule_lock`, `rule_stock`, `rule_luck_award`) joined by
//! lines that test the previous node's outcome (`ALLOW` / `TAKE_OVER`). Arming rejects unknown
//! nodes, dangling lines, cycles and luck awards that are not in the award catalogue, so a
//! walk always terminates; a walk that ends without an award falls back to the tree's luck
//! award instead of failing (spec §8.1 item 6).

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use super::error::ArmError;
use super::model::RuleTreeConfig;
use crate::ids::{AwardId, StrategyId};
use crate::ports::{AwardStockCounter, PortError, StockTake};

/// A node's outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `ALLOW` (code `0000`): let the drawn award through / continue.
    Allow,
    /// `TAKE_OVER` (code `0001`): this node decides.
    TakeOver,
}

impl Check {
    fn code(self) -> &'static str {
        match self {
            Self::Allow => "0000",
            Self::TakeOver => "0001",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "ALLOW" => Some(Self::Allow),
            "TAKE_OVER" => Some(Self::TakeOver),
            _ => None,
        }
    }
}

/// `rule_limit_type` of a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LimitType {
    Equal,
    Gt,
    Lt,
    Ge,
    Le,
    Enum,
}

impl LimitType {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "EQUAL" => Self::Equal,
            "GT" => Self::Gt,
            "LT" => Self::Lt,
            "GE" => Self::Ge,
            "LE" => Self::Le,
            "ENUM" => Self::Enum,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Line {
    to: String,
    limit_type: LimitType,
    limit_value: Check,
}

impl Line {
    /// Compares the outcome code with the line's code, as the original does (string order).
    fn matches(&self, outcome: Check) -> bool {
        let (a, b) = (outcome.code(), self.limit_value.code());
        match self.limit_type {
            LimitType::Equal => a == b,
            LimitType::Gt => a > b,
            LimitType::Lt => a < b,
            LimitType::Ge => a >= b,
            LimitType::Le => a <= b,
            LimitType::Enum => false,
        }
    }
}

/// What a node does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// `rule_lock`: the award unlocks after `required` draws today.
    Lock {
        /// Draws needed today.
        required: u32,
    },
    /// `rule_stock`: take one unit of the drawn award's stock.
    Stock,
    /// `rule_luck_award`: give the consolation award.
    LuckAward {
        /// The consolation award.
        award_id: AwardId,
        /// Its `awardConfig` (e.g. `1,100`), possibly empty.
        award_config: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Node {
    kind: NodeKind,
    lines: Vec<Line>,
}

/// A validated rule tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleTree {
    id: String,
    root: String,
    nodes: HashMap<String, Node>,
    /// The fallback when a walk ends without an award.
    luck_award: (AwardId, String),
}

/// Per-draw inputs of a tree walk.
pub struct TreeContext<'a> {
    /// Strategy drawn from.
    pub strategy_id: StrategyId,
    /// Award the pool produced.
    pub drawn_award_id: AwardId,
    /// The user's partakes today (includes the current ticket).
    pub day_partake_count: u32,
    /// Weight draws skip `rule_lock` nodes: the user already earned the pool.
    pub skip_locks: bool,
    /// TTL of the stock unit lock key.
    pub lock_ttl: Option<Duration>,
    /// The award stock counters.
    pub stock: &'a dyn AwardStockCounter,
}

/// The result of a walk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeOutcome {
    /// The award decided.
    pub award_id: AwardId,
    /// Its award config (`1,100` for luck awards), if any.
    pub award_config: Option<String>,
    /// Units left of the drawn award when the walk took one (and kept it).
    pub stock_remaining: Option<i64>,
}

impl RuleTree {
    /// Validates a tree configuration against the award catalogue.
    ///
    /// # Errors
    /// [`ArmError::Invalid`] naming the tree and the offending node or line.
    pub fn validate(
        strategy_id: StrategyId,
        cfg: &RuleTreeConfig,
        catalog: &HashSet<AwardId>,
    ) -> Result<Self, ArmError> {
        let err = |reason: String| ArmError::invalid(strategy_id, format!("rule tree {}: {reason}", cfg.tree_id));
        let mut nodes = HashMap::new();
        let mut luck_award = None;
        for (key, value) in &cfg.nodes {
            let kind = match key.as_str() {
                "rule_lock" => {
                    let raw = value.as_deref().unwrap_or("").trim();
                    let required = raw
                        .parse()
                        .map_err(|_| err(format!("rule_lock value {raw:?} is not a non-negative count")))?;
                    NodeKind::Lock { required }
                }
                "rule_stock" => NodeKind::Stock,
                "rule_luck_award" => {
                    let raw = value.as_deref().unwrap_or("").trim();
                    let (id, config) = raw.split_once(':').unwrap_or((raw, ""));
                    let award_id: AwardId = id
                        .trim()
                        .parse()
                        .map_err(|_| err(format!("rule_luck_award value {raw:?} is not {{awardId}}:{{config}}")))?;
                    if !catalog.contains(&award_id) {
                        return Err(err(format!("luck award {award_id} is not a configured award")));
                    }
                    luck_award = Some((award_id, config.to_owned()));
                    NodeKind::LuckAward {
                        award_id,
                        award_config: config.to_owned(),
                    }
                }
                other => return Err(err(format!("unknown node rule_key {other:?}"))),
            };
            if nodes
                .insert(
                    key.clone(),
                    Node {
                        kind,
                        lines: Vec::new(),
                    },
                )
                .is_some()
            {
                return Err(err(format!("node {key} is defined twice")));
            }
        }
        if !nodes.contains_key(&cfg.root) {
            return Err(err(format!("root node {:?} does not exist", cfg.root)));
        }
        let Some(luck_award) = luck_award else {
            return Err(err("has no rule_luck_award node to fall back to".into()));
        };
        for (from, to, limit_type, limit_value) in &cfg.lines {
            if !nodes.contains_key(to) {
                return Err(err(format!("line {from} -> {to} points to a missing node")));
            }
            let line = Line {
                to: to.clone(),
                limit_type: LimitType::parse(limit_type)
                    .ok_or_else(|| err(format!("line {from} -> {to}: unknown rule_limit_type {limit_type:?}")))?,
                limit_value: Check::parse(limit_value)
                    .ok_or_else(|| err(format!("line {from} -> {to}: unknown rule_limit_value {limit_value:?}")))?,
            };
            nodes
                .get_mut(from)
                .ok_or_else(|| err(format!("line {from} -> {to} starts at a missing node")))?
                .lines
                .push(line);
        }
        let tree = Self {
            id: cfg.tree_id.clone(),
            root: cfg.root.clone(),
            nodes,
            luck_award,
        };
        if let Some(node) = tree.find_cycle() {
            return Err(err(format!("lines form a cycle through node {node}")));
        }
        Ok(tree)
    }

    /// Depth-first search for a cycle; returns a node on it.
    fn find_cycle(&self) -> Option<String> {
        fn visit<'a>(
            t: &'a RuleTree,
            n: &'a str,
            stack: &mut Vec<&'a str>,
            done: &mut HashSet<&'a str>,
        ) -> Option<String> {
            if stack.contains(&n) {
                return Some(n.to_owned());
            }
            if !done.insert(n) {
                return None;
            }
            stack.push(n);
            for line in t.nodes.get(n).map(|x| x.lines.as_slice()).unwrap_or_default() {
                if let Some(c) = visit(t, &line.to, stack, done) {
                    return Some(c);
                }
            }
            stack.pop();
            None
        }
        let mut done = HashSet::new();
        let mut keys: Vec<&String> = self.nodes.keys().collect();
        keys.sort();
        keys.into_iter().find_map(|k| {
            let mut stack = Vec::new();
            // Re-visit from every node: `done` only short-cuts nodes fully explored without a cycle.
            visit(self, k, &mut stack, &mut done)
        })
    }

    /// The tree id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// `rule_value` of the tree's `rule_lock` node, if it has one (award list lock counts).
    pub fn lock_count(&self) -> Option<u32> {
        self.nodes.values().find_map(|n| match n.kind {
            NodeKind::Lock { required } => Some(required),
            _ => None,
        })
    }

    /// The fallback award and its config.
    pub fn luck_award(&self) -> (AwardId, &str) {
        (self.luck_award.0, &self.luck_award.1)
    }

    /// Walks the tree for one draw.
    ///
    /// A unit of stock taken by a node is kept only when the walk ends on the drawn award;
    /// otherwise it is given back before returning.
    ///
    /// # Errors
    /// [`PortError`] when the stock store fails; nothing is kept taken in that case.
    pub async fn walk(&self, ctx: &TreeContext<'_>) -> Result<TreeOutcome, PortError> {
        let mut current = self.nodes.get(&self.root);
        let mut result: Option<(AwardId, Option<String>)> = None;
        let mut taken: Option<i64> = None;
        // Validation rejects cycles, so a walk visits each node at most once.
        let mut steps = 0;
        while let Some(node) = current {
            steps += 1;
            if steps > self.nodes.len() {
                break;
            }
            let check = match &node.kind {
                NodeKind::Lock { required } => {
                    result = None;
                    if ctx.skip_locks || ctx.day_partake_count >= *required {
                        Check::Allow
                    } else {
                        Check::TakeOver
                    }
                }
                NodeKind::Stock => {
                    if taken.is_some() {
                        // Never take twice in one walk: treat as available.
                        result = Some((ctx.drawn_award_id, None));
                        Check::TakeOver
                    } else {
                        match ctx.stock.take(ctx.strategy_id, ctx.drawn_award_id, ctx.lock_ttl).await {
                            Ok(StockTake::Taken { remaining }) => {
                                taken = Some(remaining);
                                result = Some((ctx.drawn_award_id, None));
                                Check::TakeOver
                            }
                            Ok(StockTake::Exhausted | StockTake::Missing) => {
                                result = None;
                                Check::Allow
                            }
                            Err(e) => return Err(e),
                        }
                    }
                }
                NodeKind::LuckAward { award_id, award_config } => {
                    result = Some((*award_id, Some(award_config.clone())));
                    Check::TakeOver
                }
            };
            current = node
                .lines
                .iter()
                .find(|l| l.matches(check))
                .and_then(|l| self.nodes.get(&l.to));
        }
        let (award_id, award_config) = result.unwrap_or_else(|| (self.luck_award.0, Some(self.luck_award.1.clone())));
        let mut stock_remaining = taken;
        if taken.is_some() && award_id != ctx.drawn_award_id {
            ctx.stock.give_back(ctx.strategy_id, ctx.drawn_award_id).await?;
            stock_remaining = None;
        }
        Ok(TreeOutcome {
            award_id,
            award_config,
            stock_remaining,
        })
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use super::*;

    const STRATEGY: StrategyId = StrategyId::new(1);

    /// In-memory stock for tree tests (the Redis adapter is tested against Redis).
    pub struct MemStock(pub Mutex<HashMap<AwardId, i64>>);

    impl MemStock {
        pub fn with(stock: &[(i32, i64)]) -> Self {
            Self(Mutex::new(stock.iter().map(|&(a, n)| (AwardId::new(a), n)).collect()))
        }
        pub fn left(&self, award: i32) -> i64 {
            self.0.lock().unwrap().get(&AwardId::new(award)).copied().unwrap_or(0)
        }
    }

    #[async_trait::async_trait]
    impl AwardStockCounter for MemStock {
        async fn take(&self, _: StrategyId, award_id: AwardId, _: Option<Duration>) -> Result<StockTake, PortError> {
            let mut m = self.0.lock().unwrap();
            let s = m.entry(award_id).or_insert(0);
            if *s <= 0 {
                return Ok(StockTake::Exhausted);
            }
            *s -= 1;
            Ok(StockTake::Taken { remaining: *s })
        }
        async fn give_back(&self, _: StrategyId, award_id: AwardId) -> Result<(), PortError> {
            *self.0.lock().unwrap().entry(award_id).or_insert(0) += 1;
            Ok(())
        }
        async fn add(&self, _: StrategyId, award_id: AwardId, units: i64) -> Result<Option<i64>, PortError> {
            Ok(self.0.lock().unwrap().get_mut(&award_id).map(|s| {
                *s += units;
                *s
            }))
        }
    }

    fn line(from: &str, to: &str, v: &str) -> (String, String, String, String) {
        (from.into(), to.into(), "EQUAL".into(), v.into())
    }

    pub fn lock_tree(id: &str, lock: &str) -> RuleTreeConfig {
        RuleTreeConfig {
            tree_id: id.into(),
            root: "rule_lock".into(),
            nodes: vec![
                ("rule_lock".into(), Some(lock.into())),
                ("rule_stock".into(), None),
                ("rule_luck_award".into(), Some("101:1,100".into())),
            ],
            lines: vec![
                line("rule_lock", "rule_stock", "ALLOW"),
                line("rule_lock", "rule_luck_award", "TAKE_OVER"),
                line("rule_stock", "rule_luck_award", "ALLOW"),
            ],
        }
    }

    pub fn luck_tree() -> RuleTreeConfig {
        RuleTreeConfig {
            tree_id: "tree_luck_award".into(),
            root: "rule_stock".into(),
            nodes: vec![
                ("rule_stock".into(), None),
                ("rule_luck_award".into(), Some("101:1,100".into())),
            ],
            lines: vec![line("rule_stock", "rule_luck_award", "ALLOW")],
        }
    }

    fn catalog() -> HashSet<AwardId> {
        (100..=109).map(AwardId::new).collect()
    }

    async fn walk(tree: &RuleTree, stock: &MemStock, count: u32) -> TreeOutcome {
        tree.walk(&TreeContext {
            strategy_id: STRATEGY,
            drawn_award_id: AwardId::new(107),
            day_partake_count: count,
            skip_locks: false,
            lock_ttl: None,
            stock,
        })
        .await
        .unwrap()
    }

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        // The walk only awaits the in-memory stock, which is always ready.
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn locked_award_falls_to_the_luck_award_until_enough_draws_today() {
        let tree = RuleTree::validate(STRATEGY, &lock_tree("tree_lock_1", "1"), &catalog()).unwrap();
        let stock = MemStock::with(&[(107, 5)]);
        let o = block_on(walk(&tree, &stock, 0));
        assert_eq!((o.award_id.get(), o.award_config.as_deref()), (101, Some("1,100")));
        assert_eq!(stock.left(107), 5, "a locked draw takes no stock");
        let o = block_on(walk(&tree, &stock, 1));
        assert_eq!(
            (o.award_id.get(), o.award_config, o.stock_remaining),
            (107, None, Some(4))
        );
        let tree2 = RuleTree::validate(STRATEGY, &lock_tree("tree_lock_2", "2"), &catalog()).unwrap();
        assert_eq!(block_on(walk(&tree2, &stock, 1)).award_id.get(), 101);
        assert_eq!(block_on(walk(&tree2, &stock, 2)).award_id.get(), 107);
    }

    #[test]
    fn exhausted_stock_falls_to_the_luck_award() {
        let tree = RuleTree::validate(STRATEGY, &luck_tree(), &catalog()).unwrap();
        let stock = MemStock::with(&[(107, 1)]);
        assert_eq!(block_on(walk(&tree, &stock, 0)).award_id.get(), 107);
        let o = block_on(walk(&tree, &stock, 0));
        assert_eq!(
            (o.award_id.get(), o.award_config.as_deref(), o.stock_remaining),
            (101, Some("1,100"), None)
        );
    }

    #[test]
    fn a_walk_ending_without_data_falls_back_to_the_luck_award() {
        // Repo LogicTreeTest shape: lock -> stock on ALLOW, stock -> luck only on TAKE_OVER.
        let cfg = RuleTreeConfig {
            tree_id: "t".into(),
            root: "rule_lock".into(),
            nodes: vec![
                ("rule_lock".into(), Some("1".into())),
                ("rule_stock".into(), None),
                ("rule_luck_award".into(), Some("101".into())),
            ],
            lines: vec![
                line("rule_lock", "rule_luck_award", "TAKE_OVER"),
                line("rule_lock", "rule_stock", "ALLOW"),
                line("rule_stock", "rule_luck_award", "TAKE_OVER"),
            ],
        };
        let tree = RuleTree::validate(STRATEGY, &cfg, &catalog()).unwrap();
        let stock = MemStock::with(&[]);
        let o = block_on(walk(&tree, &stock, 0));
        assert_eq!((o.award_id.get(), o.award_config.as_deref()), (101, Some("")));
        let o = block_on(walk(&tree, &stock, 3));
        assert_eq!(
            (o.award_id.get(), o.award_config.as_deref()),
            (101, Some("")),
            "lock passes, stock empty: empty result falls back"
        );
    }

    #[test]
    fn stock_taken_for_an_award_that_is_then_replaced_is_given_back() {
        // stock -> luck on TAKE_OVER: the drawn unit is taken, then the luck award overrides it.
        let mut cfg = luck_tree();
        cfg.lines = vec![line("rule_stock", "rule_luck_award", "TAKE_OVER")];
        let tree = RuleTree::validate(STRATEGY, &cfg, &catalog()).unwrap();
        let stock = MemStock::with(&[(107, 3)]);
        let o = block_on(walk(&tree, &stock, 0));
        assert_eq!(o.award_id.get(), 101);
        assert_eq!(stock.left(107), 3);
    }

    #[test]
    fn invalid_trees_are_rejected_when_armed() {
        let check = |cfg: RuleTreeConfig, needle: &str| {
            let e = RuleTree::validate(STRATEGY, &cfg, &catalog()).unwrap_err().to_string();
            assert!(e.contains(needle), "{e}");
        };
        let mut c = lock_tree("t", "1");
        c.nodes.push(("rule_magic".into(), None));
        check(c, "unknown node");
        let mut c = lock_tree("t", "1");
        c.lines.push(line("rule_stock", "rule_nope", "ALLOW"));
        check(c, "missing node");
        let mut c = lock_tree("t", "1");
        c.lines.push(line("rule_luck_award", "rule_lock", "TAKE_OVER"));
        check(c, "cycle");
        let mut c = lock_tree("t", "1");
        c.nodes[2].1 = Some("999:1,100".into());
        check(c, "not a configured award");
        let mut c = lock_tree("t", "x");
        c.tree_id = "t".into();
        check(c, "rule_lock value");
        let mut c = lock_tree("t", "1");
        c.root = "rule_x".into();
        check(c, "root node");
        let mut c = lock_tree("t", "1");
        c.lines[0].3 = "MAYBE".into();
        check(c, "rule_limit_value");
    }

    #[test]
    fn lines_match_on_outcome_codes() {
        let l = |t: LimitType, v: Check| Line {
            to: String::new(),
            limit_type: t,
            limit_value: v,
        };
        assert!(l(LimitType::Equal, Check::Allow).matches(Check::Allow));
        assert!(!l(LimitType::Equal, Check::Allow).matches(Check::TakeOver));
        assert!(l(LimitType::Gt, Check::Allow).matches(Check::TakeOver));
        assert!(l(LimitType::Le, Check::TakeOver).matches(Check::Allow));
        assert!(!l(LimitType::Enum, Check::Allow).matches(Check::Allow));
    }
}
