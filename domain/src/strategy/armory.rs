//! Rate pools: the exact-decimal probability tables drawn from in O(1).
//!
//! A pool over awards with rates `r_i` gets `ceil(r_i * 10^s)` slots per award, where `s` is
//! the number of decimal places of the smallest positive rate (0.03 → 100, 0.0001 → 10 000,
//! 1.0 → 1). The slots are shuffled once; a draw picks a uniformly random slot. Because the
//! table size (not `10^s`) is the denominator, rates need not sum to one (spec §4.2, with the
//! §8.1 precision bug fixed: strategy 100001 gets 10 000 slots, not 13).

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

use crate::ids::AwardId;
use crate::ports::RandomSource;

/// Largest table we build: guards against rates like `0.00000001` on many awards.
pub const MAX_SLOTS: usize = 1_000_000;

/// A shuffled lookup table: slot index → award id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RatePool {
    key: String,
    slots: Vec<AwardId>,
}

/// Why a pool cannot be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PoolError {
    /// The pool has no award.
    #[error("pool {0} has no awards")]
    Empty(String),
    /// An award has a negative rate.
    #[error("pool {key}: award {award_id} has a negative rate {rate}")]
    NegativeRate {
        /// Pool key.
        key: String,
        /// Offending award.
        award_id: AwardId,
        /// Its rate.
        rate: Decimal,
    },
    /// Every rate is zero.
    #[error("pool {0}: every award rate is zero")]
    NoPositiveRate(String),
    /// The rates need more than [`MAX_SLOTS`] slots.
    #[error("pool {key}: rates need {slots} slots, more than the limit of {MAX_SLOTS}")]
    TooLarge {
        /// Pool key.
        key: String,
        /// Slots needed.
        slots: u128,
    },
}

impl RatePool {
    /// Builds and shuffles a pool. `key` is the Redis key suffix (`100001` or
    /// `100001_60:102,103,104,105`).
    ///
    /// # Errors
    /// [`PoolError`] for an empty pool, negative or all-zero rates, or an oversized table.
    pub fn build(
        key: impl Into<String>,
        awards: &[(AwardId, Decimal)],
        random: &dyn RandomSource,
    ) -> Result<Self, PoolError> {
        let key = key.into();
        if awards.is_empty() {
            return Err(PoolError::Empty(key));
        }
        if let Some(&(award_id, rate)) = awards.iter().find(|(_, r)| r.is_sign_negative() && !r.is_zero()) {
            return Err(PoolError::NegativeRate { key, award_id, rate });
        }
        let Some(min) = awards.iter().map(|(_, r)| *r).filter(|r| *r > Decimal::ZERO).min() else {
            return Err(PoolError::NoPositiveRate(key));
        };
        let range = Decimal::from_i128_with_scale(10_i128.pow(min.normalize().scale()), 0);
        let mut counts = Vec::with_capacity(awards.len());
        let mut total: u128 = 0;
        for &(award_id, rate) in awards {
            let n = (rate * range).ceil().to_u128().unwrap_or(u128::MAX);
            total = total.saturating_add(n);
            counts.push((award_id, n));
        }
        if total > MAX_SLOTS as u128 {
            return Err(PoolError::TooLarge { key, slots: total });
        }
        let mut slots = Vec::with_capacity(total as usize);
        for (award_id, n) in counts {
            slots.extend(std::iter::repeat_n(award_id, n as usize));
        }
        // Fisher–Yates with the injected randomness (deterministic in tests).
        for i in (1..slots.len()).rev() {
            let j = random.below(i + 1);
            slots.swap(i, j);
        }
        Ok(Self { key, slots })
    }

    /// Rebuilds a pool from stored slots (e.g. a table another instance armed).
    pub fn from_slots(key: impl Into<String>, slots: Vec<AwardId>) -> Self {
        Self { key: key.into(), slots }
    }

    /// The key suffix: `{strategyId}` or `{strategyId}_{weightGroup}`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Slot index → award id; its length is the stored "rate range".
    pub fn slots(&self) -> &[AwardId] {
        &self.slots
    }

    /// Number of slots (`big_market_strategy_rate_range_key_{key}`).
    pub fn size(&self) -> usize {
        self.slots.len()
    }

    /// Draws one award: O(1).
    pub fn draw(&self, random: &dyn RandomSource) -> AwardId {
        // A built pool is never empty; `from_slots` with no slots is the caller's bug and
        // yields award 0, which the raffle reports as an unknown award.
        let idx = random.below(self.slots.len().max(1));
        self.slots.get(idx).copied().unwrap_or(AwardId::new(0))
    }

    /// How many slots each award holds, ordered by award id.
    pub fn multiplicities(&self) -> std::collections::BTreeMap<AwardId, usize> {
        let mut m = std::collections::BTreeMap::new();
        for a in &self.slots {
            *m.entry(*a).or_insert(0) += 1;
        }
        m
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Mutex;

    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    use rust_decimal_macros::dec;

    use super::*;

    /// Seeded randomness for deterministic tests.
    pub struct Seeded(pub Mutex<StdRng>);

    impl Seeded {
        pub fn new(seed: u64) -> Self {
            Self(Mutex::new(StdRng::seed_from_u64(seed)))
        }
    }

    impl RandomSource for Seeded {
        fn below(&self, bound: usize) -> usize {
            self.0.lock().unwrap().random_range(0..bound)
        }
    }

    fn counts(pool: &RatePool) -> Vec<(i32, usize)> {
        pool.multiplicities().into_iter().map(|(a, n)| (a.get(), n)).collect()
    }

    /// Builds a pool from plain award numbers.
    fn build(key: &str, awards: &[(i32, Decimal)], random: &Seeded) -> Result<RatePool, PoolError> {
        let awards: Vec<_> = awards.iter().map(|&(a, r)| (AwardId::new(a), r)).collect();
        RatePool::build(key, &awards, random)
    }

    #[test]
    fn strategy_100001_has_ten_thousand_slots() {
        let awards = [
            (101, dec!(0.3000)),
            (102, dec!(0.2000)),
            (103, dec!(0.2000)),
            (104, dec!(0.1000)),
            (105, dec!(0.1000)),
            (106, dec!(0.0500)),
            (107, dec!(0.0400)),
            (108, dec!(0.0099)),
            (109, dec!(0.0001)),
        ];
        let pool = build("100001", &awards, &Seeded::new(1)).unwrap();
        assert_eq!(pool.size(), 10_000);
        assert_eq!(
            counts(&pool),
            vec![
                (101, 3000),
                (102, 2000),
                (103, 2000),
                (104, 1000),
                (105, 1000),
                (106, 500),
                (107, 400),
                (108, 99),
                (109, 1)
            ]
        );
    }

    #[test]
    fn rates_need_not_sum_to_one() {
        let pool = build(
            "100002",
            &[(101, dec!(0.5)), (102, dec!(0.1)), (106, dec!(0.01))],
            &Seeded::new(2),
        )
        .unwrap();
        assert_eq!(pool.size(), 61);
        assert_eq!(counts(&pool), vec![(101, 50), (102, 10), (106, 1)]);
    }

    #[test]
    fn a_single_certain_award_has_one_slot() {
        let pool = build("100004", &[(109, dec!(1.0000))], &Seeded::new(3)).unwrap();
        assert_eq!(pool.size(), 1);
        assert_eq!(pool.draw(&Seeded::new(4)).get(), 109);
    }

    #[test]
    fn shuffling_keeps_multiplicities_and_changes_order() {
        let awards = [(1, dec!(0.5)), (2, dec!(0.5))];
        let a = build("k", &awards, &Seeded::new(5)).unwrap();
        let b = build("k", &awards, &Seeded::new(6)).unwrap();
        assert_eq!(a.size(), 10);
        assert_eq!(a.multiplicities(), b.multiplicities());
        let sorted: Vec<_> = (0..10).map(|i| AwardId::new(if i < 5 { 1 } else { 2 })).collect();
        assert_ne!(
            a.slots().to_vec(),
            sorted,
            "a shuffled table is not left in insertion order"
        );
    }

    #[test]
    fn invalid_pools_are_rejected() {
        assert!(matches!(build("k", &[], &Seeded::new(1)), Err(PoolError::Empty(_))));
        assert!(matches!(
            build("k", &[(1, dec!(0))], &Seeded::new(1)),
            Err(PoolError::NoPositiveRate(_))
        ));
        assert!(matches!(
            build("k", &[(1, dec!(-0.1))], &Seeded::new(1)),
            Err(PoolError::NegativeRate { .. })
        ));
        assert!(matches!(
            build("k", &[(1, dec!(0.0000001)), (2, dec!(0.9))], &Seeded::new(1)),
            Err(PoolError::TooLarge { .. })
        ));
    }

    #[test]
    fn zero_rate_awards_get_no_slot() {
        let pool = build("k", &[(1, dec!(0)), (2, dec!(0.25))], &Seeded::new(1)).unwrap();
        assert_eq!(counts(&pool), vec![(2, 25)]);
    }
}
