//! A user's draw quota in one activity, as a value, and the pure rule that pays for a draw.
//!
//! The account (`raffle_activity_account`) holds the total allowance and what is left of it,
//! plus the per-day and per-month allowances; today's and this month's rows
//! (`raffle_activity_account_day` / `_month`) are created lazily from those allowances on the
//! first draw of the period and are authoritative for the period (the account's own day/month
//! surplus columns only mirror them). An unused ticket (`user_raffle_order.order_state =
//! 'create'`, e.g. left by the original system, which paid tickets and drew in two steps) is
//! reused before any quota is spent.
//!
//! [`QuotaAccount::partake`] decides; the repository then saves the decision with guards that
//! fail as a whole when the account moved meanwhile (see `ports::QuotaRepository::save_draw`).

use super::error::ActivityError;
use super::model::ActivityCount;
use crate::events::{AccountSnapshot, PeriodSnapshot};
use crate::ids::{ActivityId, OrderId};

/// A period row: today's (`yyyy-MM-dd`) or this month's (`yyyy-MM`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodQuota {
    /// `yyyy-MM-dd` or `yyyy-MM` (business calendar).
    pub period: String,
    /// Allowance of the period.
    pub count: i32,
    /// Left in the period.
    pub surplus: i32,
}

impl PeriodQuota {
    /// Draws made in the period.
    pub fn used(&self) -> i32 {
        self.count - self.surplus
    }

    fn snapshot(&self) -> PeriodSnapshot {
        PeriodSnapshot {
            period: self.period.clone(),
            count: self.count,
            surplus: self.surplus,
        }
    }
}

/// The user's quota for an activity, as loaded in one read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuotaAccount {
    /// Owner.
    pub user_id: String,
    /// Activity.
    pub activity_id: ActivityId,
    /// Total granted.
    pub total_count: i32,
    /// Total left.
    pub total_count_surplus: i32,
    /// Per-day allowance.
    pub day_count: i32,
    /// Per-month allowance.
    pub month_count: i32,
    /// Row version; every change of the account, its day or month rows increments it.
    pub version: i64,
    /// The day row that was loaded, if it exists.
    pub day: Option<PeriodQuota>,
    /// The month row that was loaded, if it exists.
    pub month: Option<PeriodQuota>,
    /// The oldest unused ticket, if any.
    pub unused_ticket: Option<OrderId>,
}

/// How a draw's ticket is paid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ticket {
    /// An unused ticket is reused; no quota changes.
    Reused {
        /// Its order id.
        order_id: OrderId,
    },
    /// A new ticket, paid with one unit of total, month and day quota.
    Paid {
        /// The new ticket's order id.
        order_id: OrderId,
        /// The account after the payment.
        after: Box<QuotaAccount>,
        /// Whether the day row is created by this payment (it did not exist).
        new_day: bool,
        /// Whether the month row is created by this payment.
        new_month: bool,
    },
}

/// The decision of [`QuotaAccount::partake`]: the ticket and the facts the raffle needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partake {
    /// The ticket.
    pub ticket: Ticket,
    /// The version the decision was made on; the save fails if the account moved.
    pub expected_version: i64,
    /// Total quota used in the activity, including this ticket (`rule_weight` score).
    pub total_used: i64,
    /// Today's partakes, including this ticket (`rule_lock`).
    pub day_partake_count: u32,
}

impl Partake {
    /// The ticket's order id.
    pub fn order_id(&self) -> &OrderId {
        match &self.ticket {
            Ticket::Reused { order_id } | Ticket::Paid { order_id, .. } => order_id,
        }
    }
}

impl QuotaAccount {
    /// Today's row if the loaded one is of `today`.
    fn row_of<'a>(row: &'a Option<PeriodQuota>, period: &str) -> Option<&'a PeriodQuota> {
        row.as_ref().filter(|r| r.period == period)
    }

    /// Pays for one draw: reuses the unused ticket, or spends one unit of total, month and
    /// day quota for a new ticket `new_order_id`, creating the month / day row from the
    /// account's allowances when it does not exist yet.
    ///
    /// # Errors
    /// [`ActivityError::TotalQuotaExhausted`] (`ERR_BIZ_006`),
    /// [`ActivityError::MonthQuotaExhausted`] (`ERR_BIZ_007`) or
    /// [`ActivityError::DayQuotaExhausted`] (`ERR_BIZ_008`), checked in that order.
    pub fn partake(&self, today: &str, month: &str, new_order_id: OrderId) -> Result<Partake, ActivityError> {
        let day_row = Self::row_of(&self.day, today);
        let month_row = Self::row_of(&self.month, month);
        let total_used = i64::from(self.total_count) - i64::from(self.total_count_surplus);
        if let Some(order_id) = &self.unused_ticket {
            return Ok(Partake {
                ticket: Ticket::Reused {
                    order_id: order_id.clone(),
                },
                expected_version: self.version,
                total_used,
                day_partake_count: day_row.map_or(0, |d| u32::try_from(d.used()).unwrap_or(0)),
            });
        }
        let id = self.activity_id;
        if self.total_count_surplus <= 0 {
            return Err(ActivityError::TotalQuotaExhausted(id));
        }
        let spend = |row: Option<&PeriodQuota>, period: &str, allowance: i32| -> Option<PeriodQuota> {
            let row = row.cloned().unwrap_or(PeriodQuota {
                period: period.to_owned(),
                count: allowance,
                surplus: allowance,
            });
            (row.surplus > 0).then(|| PeriodQuota {
                surplus: row.surplus - 1,
                ..row
            })
        };
        let month_after = spend(month_row, month, self.month_count).ok_or(ActivityError::MonthQuotaExhausted(id))?;
        let day_after = spend(day_row, today, self.day_count).ok_or(ActivityError::DayQuotaExhausted(id))?;
        let day_partake_count = u32::try_from(day_after.used()).unwrap_or(0);
        let after = QuotaAccount {
            total_count_surplus: self.total_count_surplus - 1,
            version: self.version + 1,
            day: Some(day_after),
            month: Some(month_after),
            unused_ticket: None,
            ..self.clone()
        };
        Ok(Partake {
            ticket: Ticket::Paid {
                order_id: new_order_id,
                after: Box::new(after),
                new_day: day_row.is_none(),
                new_month: month_row.is_none(),
            },
            expected_version: self.version,
            total_used: total_used + 1,
            day_partake_count,
        })
    }

    /// An account that does not exist yet (version 0): what a first recharge credits.
    pub fn empty(user_id: &str, activity_id: ActivityId) -> Self {
        Self {
            user_id: user_id.to_owned(),
            activity_id,
            total_count: 0,
            total_count_surplus: 0,
            day_count: 0,
            month_count: 0,
            version: 0,
            day: None,
            month: None,
            unused_ticket: None,
        }
    }

    /// The account after one package is credited: the package is added to the total, to the
    /// day and month allowances and to the period rows of `today` / `month` that exist (rows
    /// of other periods are dropped from the value: they no longer matter). The version
    /// increments.
    pub fn credit(&self, package: &ActivityCount, today: &str, month: &str) -> QuotaAccount {
        let add = |row: Option<&PeriodQuota>, n: i32| {
            row.map(|r| PeriodQuota {
                period: r.period.clone(),
                count: r.count + n,
                surplus: r.surplus + n,
            })
        };
        QuotaAccount {
            total_count: self.total_count + package.total_count,
            total_count_surplus: self.total_count_surplus + package.total_count,
            day_count: self.day_count + package.day_count,
            month_count: self.month_count + package.month_count,
            version: self.version + 1,
            day: add(Self::row_of(&self.day, today), package.day_count),
            month: add(Self::row_of(&self.month, month), package.month_count),
            ..self.clone()
        }
    }

    /// The `activity_account_changed` payload of this state.
    pub fn snapshot(&self) -> AccountSnapshot {
        AccountSnapshot {
            activity_id: self.activity_id,
            day: self.day.as_ref().map(PeriodQuota::snapshot),
            day_count: self.day_count,
            month: self.month.as_ref().map(PeriodQuota::snapshot),
            month_count: self.month_count,
            total_count: self.total_count,
            total_count_surplus: self.total_count_surplus,
            user_id: self.user_id.clone(),
            version: self.version,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const TODAY: &str = "2024-05-01";
    const MONTH: &str = "2024-05";

    fn account(total: (i32, i32), day: i32, month: i32) -> QuotaAccount {
        QuotaAccount {
            user_id: "xiaofuge".into(),
            activity_id: ActivityId::new(100301),
            total_count: total.0,
            total_count_surplus: total.1,
            day_count: day,
            month_count: month,
            version: 7,
            day: None,
            month: None,
            unused_ticket: None,
        }
    }

    fn period(p: &str, count: i32, surplus: i32) -> Option<PeriodQuota> {
        Some(PeriodQuota {
            period: p.into(),
            count,
            surplus,
        })
    }

    fn paid(p: &Partake) -> (&QuotaAccount, bool, bool) {
        match &p.ticket {
            Ticket::Paid {
                after,
                new_day,
                new_month,
                ..
            } => (after, *new_day, *new_month),
            Ticket::Reused { .. } => panic!("expected a paid ticket"),
        }
    }

    #[test]
    fn partake_creates_the_day_and_month_rows_from_the_allowances_on_the_first_draw() {
        let p = account((10, 10), 3, 5).partake(TODAY, MONTH, "t1".into()).unwrap();
        let (after, new_day, new_month) = paid(&p);
        assert!(new_day && new_month);
        assert_eq!(after.day, period(TODAY, 3, 2));
        assert_eq!(after.month, period(MONTH, 5, 4));
        assert_eq!((after.total_count_surplus, after.version), (9, 8));
        assert_eq!((p.total_used, p.day_partake_count, p.expected_version), (1, 1, 7));
        assert_eq!(p.order_id().as_str(), "t1");
    }

    #[test]
    fn partake_spends_existing_rows_of_the_current_period() {
        let mut a = account((10, 6), 3, 5);
        a.day = period(TODAY, 3, 2);
        a.month = period(MONTH, 5, 1);
        let p = a.partake(TODAY, MONTH, "t".into()).unwrap();
        let (after, new_day, new_month) = paid(&p);
        assert!(!new_day && !new_month);
        assert_eq!(after.day, period(TODAY, 3, 1));
        assert_eq!(after.month, period(MONTH, 5, 0));
        assert_eq!((p.total_used, p.day_partake_count), (5, 2));
    }

    #[test]
    fn partake_treats_a_row_of_another_day_as_missing() {
        let mut a = account((10, 6), 3, 5);
        a.day = period("2024-04-30", 3, 0);
        let p = a.partake(TODAY, MONTH, "t".into()).unwrap();
        assert_eq!(paid(&p).0.day, period(TODAY, 3, 2));
        assert!(paid(&p).1);
    }

    #[test]
    fn partake_fails_when_total_quota_is_exhausted() {
        let err = account((10, 0), 3, 5).partake(TODAY, MONTH, "t".into()).unwrap_err();
        assert!(matches!(err, ActivityError::TotalQuotaExhausted(a) if a.get() == 100301));
    }

    #[test]
    fn partake_fails_when_month_quota_is_exhausted_before_looking_at_the_day() {
        let mut a = account((10, 5), 0, 5);
        a.month = period(MONTH, 5, 0);
        assert!(matches!(
            a.partake(TODAY, MONTH, "t".into()),
            Err(ActivityError::MonthQuotaExhausted(_))
        ));
        let a = account((10, 5), 3, 0);
        assert!(matches!(
            a.partake(TODAY, MONTH, "t".into()),
            Err(ActivityError::MonthQuotaExhausted(_))
        ));
    }

    #[test]
    fn partake_fails_when_day_quota_is_exhausted() {
        let mut a = account((10, 5), 3, 5);
        a.day = period(TODAY, 3, 0);
        assert!(matches!(
            a.partake(TODAY, MONTH, "t".into()),
            Err(ActivityError::DayQuotaExhausted(_))
        ));
        assert!(matches!(
            account((10, 5), 0, 5).partake(TODAY, MONTH, "t".into()),
            Err(ActivityError::DayQuotaExhausted(_))
        ));
    }

    #[test]
    fn partake_reuses_an_unused_ticket_without_spending_quota_even_when_quota_is_exhausted() {
        let mut a = account((10, 0), 3, 5);
        a.day = period(TODAY, 3, 0);
        a.unused_ticket = Some("old".into());
        let p = a.partake(TODAY, MONTH, "new".into()).unwrap();
        assert_eq!(p.ticket, Ticket::Reused { order_id: "old".into() });
        assert_eq!((p.total_used, p.day_partake_count, p.expected_version), (10, 3, 7));
    }

    #[test]
    fn the_snapshot_carries_the_rows_and_version_after_the_payment() {
        let p = account((10, 10), 3, 5).partake(TODAY, MONTH, "t".into()).unwrap();
        let s = paid(&p).0.snapshot();
        assert_eq!((s.version, s.total_count_surplus), (8, 9));
        assert_eq!(s.day.map(|d| (d.period, d.surplus)), Some((TODAY.to_owned(), 2)));
    }

    #[test]
    fn a_credit_adds_the_package_to_the_account_and_to_the_current_rows_only() {
        let mut a = account((10, 4), 3, 5);
        a.day = period(TODAY, 3, 1);
        a.month = period("2024-04", 5, 0);
        let package = ActivityCount {
            activity_count_id: 1,
            total_count: 50,
            day_count: 5,
            month_count: 20,
        };
        let after = a.credit(&package, TODAY, MONTH);
        assert_eq!((after.total_count, after.total_count_surplus), (60, 54));
        assert_eq!((after.day_count, after.month_count, after.version), (8, 25, 8));
        assert_eq!(after.day, period(TODAY, 8, 6));
        assert_eq!(after.month, None, "last month's row is not this month's");
        let first = QuotaAccount::empty("u", ActivityId::new(1)).credit(&package, TODAY, MONTH);
        assert_eq!((first.total_count_surplus, first.version), (50, 1));
    }

    fn arb_period(p: &'static str) -> impl Strategy<Value = Option<PeriodQuota>> {
        proptest::option::of((0..20i32, 0..20i32).prop_map(move |(count, used)| PeriodQuota {
            period: p.into(),
            count,
            surplus: count - used.min(count),
        }))
    }

    fn arb_account() -> impl Strategy<Value = QuotaAccount> {
        (
            0..30i32,
            0..30i32,
            0..10i32,
            0..10i32,
            arb_period(TODAY),
            arb_period(MONTH),
            proptest::bool::weighted(0.1),
        )
            .prop_map(|(total, used, day, month, d, m, unused)| {
                let mut a = account((total, total - used.min(total)), day, month);
                a.day = d;
                a.month = m;
                a.unused_ticket = unused.then(|| "old".into());
                a
            })
    }

    proptest! {
        #[test]
        fn repeated_draws_never_drive_a_counter_negative_and_used_is_count_minus_surplus(a in arb_account(), draws in 0..40usize) {
            let mut acc = a.clone();
            let mut paid_draws = 0;
            for i in 0..draws {
                match acc.partake(TODAY, MONTH, format!("t{i}").into()) {
                    Ok(p) => {
                        prop_assert_eq!(p.expected_version, acc.version);
                        match p.ticket {
                            Ticket::Paid { after, .. } => {
                                paid_draws += 1;
                                acc = *after;
                            }
                            Ticket::Reused { .. } => acc.unused_ticket = None,
                        }
                    }
                    Err(_) => break,
                }
                prop_assert!(acc.total_count_surplus >= 0);
                for row in [&acc.day, &acc.month].into_iter().flatten() {
                    prop_assert!(row.surplus >= 0);
                    prop_assert_eq!(row.used(), row.count - row.surplus);
                }
            }
            prop_assert_eq!(i64::from(acc.total_count - acc.total_count_surplus),
                            i64::from(a.total_count - a.total_count_surplus) + paid_draws);
            prop_assert_eq!(acc.version, a.version + paid_draws);
        }

        #[test]
        fn a_draw_is_refused_only_when_some_counter_is_spent(a in arb_account()) {
            let a = QuotaAccount { unused_ticket: None, ..a };
            let day_left = a.day.as_ref().map_or(a.day_count, |d| d.surplus);
            let month_left = a.month.as_ref().map_or(a.month_count, |m| m.surplus);
            let ok = a.partake(TODAY, MONTH, "t".into()).is_ok();
            prop_assert_eq!(ok, a.total_count_surplus > 0 && day_left > 0 && month_left > 0);
        }
    }
}
