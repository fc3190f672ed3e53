//! Given/when/then tests of the `Draw` command over in-memory ports: the events it returns,
//! how it answers a moved save, and its deadline. (The adapters are tested against the real
//! services in `persistence` and `api`.)
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use chrono::{DateTime, NaiveDate, TimeZone as _, Utc};
use rust_decimal_macros::dec;

use super::account::{QuotaAccount, Ticket};
use super::ports::{
    ActivityRepository, DrawSave, DrawSaved, ExistingRecharge, QuotaRepository, RechargeSave, RechargeSaved,
    SaveFailure, SkuStockCounter,
};
use super::protection::{Admission, DrawRateLimiter};
use super::service::{ActivityDeps, ActivityService};
use super::{Activity, ActivityConfig, ActivityError, ActivityState, BusinessCalendar};
use crate::error::HasErrorCode as _;
use crate::events::{AccountSnapshot, Envelope, decode};
use crate::ids::{ActivityId, AwardId, Sku, StrategyId};
use crate::outbox::{TOPIC_ACCOUNT_CHANGED, TOPIC_SEND_AWARD};
use crate::ports::{
    ArmoryStore, AwardLedger, Clock, IdGenerator, OutboxNotifier, PortError, StockTake, StrategyRepository,
};
use crate::strategy::armory::tests::Seeded;
use crate::strategy::model::{AwardCatalogEntry, StrategyAwardConfig, StrategyConfig};
use crate::strategy::tree::tests::{MemStock, luck_tree};
use crate::strategy::{ArmedStrategy, StrategyService, StrategyView};
use crate::switches::Switches;

const ACTIVITY: ActivityId = ActivityId::new(100301);
const STRATEGY: StrategyId = StrategyId::new(100006);
const USER: &str = "xiaofuge";

/// One award, 102 (rate 1), whose tree takes a unit of its stock.
fn strategy() -> StrategyConfig {
    StrategyConfig {
        strategy_id: STRATEGY,
        strategy_desc: "one award".into(),
        rule_models: None,
        awards: vec![StrategyAwardConfig {
            award_id: AwardId::new(102),
            award_title: "award 102".into(),
            award_subtitle: None,
            award_count: 5,
            award_count_surplus: 5,
            award_rate: dec!(1),
            rule_models: Some("tree_luck_award".into()),
            sort: 1,
        }],
        rules: Vec::new(),
        trees: vec![luck_tree()],
        catalog: [101, 102]
            .map(|id| AwardCatalogEntry {
                award_id: AwardId::new(id),
                award_key: "user_credit_random".into(),
                award_config: "1,100".into(),
                award_desc: format!("award {id}"),
            })
            .to_vec(),
    }
}

struct Config;

#[async_trait::async_trait]
impl StrategyRepository for Config {
    async fn load_strategy(&self, _: StrategyId) -> Result<Option<StrategyConfig>, PortError> {
        Ok(Some(strategy()))
    }
}

#[async_trait::async_trait]
impl ActivityRepository for Config {
    async fn load_activity(&self, activity_id: ActivityId) -> Result<Option<ActivityConfig>, PortError> {
        let at = |y| NaiveDate::from_ymd_opt(y, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
        Ok(Some(ActivityConfig {
            activity: Activity {
                activity_id,
                activity_name: "activity".into(),
                activity_desc: String::new(),
                begin: at(2020),
                end: at(2099),
                strategy_id: STRATEGY,
                state: ActivityState::Open,
            },
            skus: Vec::new(),
        }))
    }

    async fn activity_of_sku(&self, _: Sku) -> Result<Option<ActivityId>, PortError> {
        Ok(None)
    }
}

#[async_trait::async_trait]
impl ArmoryStore for Config {
    async fn publish(&self, _: &ArmedStrategy, _: &HashMap<AwardId, i64>) -> Result<(), PortError> {
        Ok(())
    }
    async fn is_armed(&self, _: StrategyId) -> Result<bool, PortError> {
        Ok(true)
    }
    async fn view(&self, _: StrategyId) -> Result<Option<StrategyView>, PortError> {
        Ok(None)
    }
    async fn put_view(&self, _: &StrategyView) -> Result<(), PortError> {
        Ok(())
    }
}

#[async_trait::async_trait]
impl AwardLedger for Config {
    async fn awarded_units(&self, _: StrategyId) -> Result<HashMap<AwardId, i64>, PortError> {
        Ok(HashMap::new())
    }
}

#[async_trait::async_trait]
impl SkuStockCounter for Config {
    async fn take(&self, _: Sku, _: Option<std::time::Duration>) -> Result<StockTake, PortError> {
        Ok(StockTake::Missing)
    }
    async fn give_back(&self, _: Sku) -> Result<(), PortError> {
        Ok(())
    }
    async fn arm(&self, _: Sku, _: i64) -> Result<bool, PortError> {
        Ok(false)
    }
    async fn add(&self, _: Sku, _: i64) -> Result<Option<i64>, PortError> {
        Ok(None)
    }
}

/// The user's quota in memory; answers `Moved` `moved` times before saving, and `Unknown`
/// (no answer in time) `unknown` times.
struct Quota {
    account: Mutex<QuotaAccount>,
    moved: AtomicUsize,
    unknown: AtomicUsize,
    loads: AtomicUsize,
    saved_topics: Mutex<Vec<Vec<&'static str>>>,
}

#[async_trait::async_trait]
impl QuotaRepository for Quota {
    async fn find_recharge(&self, _: &str, _: &str) -> Result<Option<ExistingRecharge>, PortError> {
        Ok(None)
    }
    async fn save_recharge(&self, _: &RechargeSave<'_>) -> Result<RechargeSaved, SaveFailure> {
        Ok(RechargeSaved::Moved)
    }
    async fn load_quota(&self, _: &str, _: ActivityId, _: &str, _: &str) -> Result<Option<QuotaAccount>, PortError> {
        self.loads.fetch_add(1, Ordering::SeqCst);
        Ok(Some(self.account.lock().unwrap().clone()))
    }
    async fn save_draw(&self, save: &DrawSave<'_>) -> Result<DrawSaved, SaveFailure> {
        if self.unknown.load(Ordering::SeqCst) > 0 {
            self.unknown.fetch_sub(1, Ordering::SeqCst);
            return Err(SaveFailure::Unknown(PortError::new(
                "mysql",
                "no answer within 1500 ms",
            )));
        }
        if self.moved.load(Ordering::SeqCst) > 0 {
            self.moved.fetch_sub(1, Ordering::SeqCst);
            // Someone else drew meanwhile: the version moved.
            self.account.lock().unwrap().version += 1;
            return Ok(DrawSaved::Moved);
        }
        let mut account = self.account.lock().unwrap();
        assert_eq!(
            save.partake.expected_version, account.version,
            "saved on a stale version"
        );
        if let Ticket::Paid { after, .. } = &save.partake.ticket {
            *account = after.as_ref().clone();
        }
        self.saved_topics
            .lock()
            .unwrap()
            .push(save.outbox.iter().map(|m| m.topic).collect());
        Ok(DrawSaved::Saved)
    }
    async fn sku_units_sold(&self, _: Sku) -> Result<i64, PortError> {
        Ok(0)
    }
}

/// A clock that moves `step` further at every reading.
struct Steps {
    now: Mutex<DateTime<Utc>>,
    step: chrono::Duration,
}

impl Clock for Steps {
    fn now(&self) -> DateTime<Utc> {
        let mut now = self.now.lock().unwrap();
        let t = *now;
        *now = t + self.step;
        t
    }
}

struct Counter(AtomicUsize);

impl IdGenerator for Counter {
    fn next_id(&self) -> String {
        format!("{}", 1_000 + self.0.fetch_add(1, Ordering::SeqCst))
    }
}

impl OutboxNotifier for Counter {
    fn committed(&self, _: &str) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct World {
    service: ActivityService,
    quota: Arc<Quota>,
    stock: Arc<MemStock>,
    commits: Arc<Counter>,
    limiter: Arc<Limiter>,
}

/// Given a user with 10 draws left and 5 units of award 102; the clock moves `step` per reading.
fn given(moved: usize, step: chrono::Duration) -> World {
    given_switched(moved, step, Switches::default(), Admission::Allowed)
}

/// A rate limiter that always answers the same.
struct Limiter(Admission, AtomicUsize);

#[async_trait::async_trait]
impl DrawRateLimiter for Limiter {
    async fn admit(&self, _: &str, _: u32, _: u32, _: u64) -> Result<Admission, crate::ports::PortError> {
        self.1.fetch_add(1, Ordering::SeqCst);
        Ok(self.0)
    }
}

fn given_switched(moved: usize, step: chrono::Duration, switches: Switches, admission: Admission) -> World {
    let quota = Arc::new(Quota {
        account: Mutex::new(QuotaAccount {
            total_count: 10,
            total_count_surplus: 10,
            day_count: 10,
            month_count: 10,
            version: 3,
            ..QuotaAccount::empty(USER, ACTIVITY)
        }),
        moved: AtomicUsize::new(moved),
        unknown: AtomicUsize::new(0),
        loads: AtomicUsize::new(0),
        saved_topics: Mutex::new(Vec::new()),
    });
    let stock = Arc::new(MemStock::with(&[(102, 5)]));
    let commits = Arc::new(Counter(AtomicUsize::new(0)));
    let strategy = Arc::new(StrategyService::new(
        Arc::new(Config),
        Arc::new(Config),
        stock.clone(),
        Arc::new(Config),
        Arc::new(Seeded::new(7)),
    ));
    let limiter = Arc::new(Limiter(admission, AtomicUsize::new(0)));
    let service = ActivityService::new(ActivityDeps {
        activities: Arc::new(Config),
        quota: quota.clone(),
        credit: Arc::new(Config),
        sku_stock: Arc::new(Config),
        strategy,
        ids: Arc::new(Counter(AtomicUsize::new(0))),
        clock: Arc::new(Steps {
            now: Mutex::new(Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap()),
            step,
        }),
        calendar: BusinessCalendar::default(),
        notifier: commits.clone(),
        switches: Arc::new(switches),
        rate_limiter: limiter.clone(),
        guards: Arc::new(()),
    });
    World {
        service,
        quota,
        stock,
        commits,
        limiter,
    }
}

#[async_trait::async_trait]
impl crate::credit::CreditRepository for Config {
    async fn load_credit(&self, _: &str) -> Result<Option<crate::award::CreditBalance>, PortError> {
        Ok(None)
    }
    async fn find_credit_order(&self, _: &str, _: &str) -> Result<Option<crate::credit::CreditOrder>, PortError> {
        Ok(None)
    }
    async fn save_trade(
        &self,
        _: &crate::credit::ports::CreditChange<'_>,
        _: &[crate::outbox::OutboxMessage],
    ) -> Result<crate::credit::ports::CreditSaved, SaveFailure> {
        Ok(crate::credit::ports::CreditSaved::Saved)
    }
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures::executor::block_on(f)
}

#[test]
fn a_draw_returns_the_events_its_save_wrote_and_the_next_one_needs_no_read() {
    let w = given(0, chrono::Duration::zero());
    let drawn = block_on(w.service.draw(USER, ACTIVITY)).unwrap();
    assert_eq!(drawn.award.award_id, AwardId::new(102));
    let topics: Vec<_> = drawn.events.iter().map(|m| m.topic).collect();
    assert_eq!(topics, [TOPIC_SEND_AWARD, TOPIC_ACCOUNT_CHANGED]);
    assert_eq!(drawn.events[0].message_id, drawn.message_id);
    let snapshot: Envelope<AccountSnapshot> = decode(drawn.events[1].message.as_bytes()).unwrap();
    assert_eq!((snapshot.data.version, snapshot.data.total_count_surplus), (4, 9));
    assert_eq!(w.stock.left(102), 4);
    assert_eq!(
        w.commits.0.load(Ordering::SeqCst),
        1,
        "the relay is nudged after the commit"
    );

    block_on(w.service.draw(USER, ACTIVITY)).unwrap();
    assert_eq!(
        w.quota.loads.load(Ordering::SeqCst),
        1,
        "decided on the quota it saved last"
    );
    assert_eq!(w.quota.account.lock().unwrap().total_count_surplus, 8);
}

#[test]
fn a_moved_save_gives_its_stock_back_and_decides_again_on_a_fresh_read() {
    let w = given(2, chrono::Duration::zero());
    block_on(w.service.draw(USER, ACTIVITY)).unwrap();
    assert_eq!(w.quota.loads.load(Ordering::SeqCst), 3);
    assert_eq!(w.quota.saved_topics.lock().unwrap().len(), 1, "saved once");
    assert_eq!(w.stock.left(102), 4, "two units taken and given back, one kept");
}

#[test]
fn a_draw_past_its_deadline_answers_0006_gives_its_stock_back_and_saves_nothing() {
    // Every clock reading is 600 ms later: the deadline (1 s) passes after the raffle took
    // stock, before the save.
    let w = given(0, chrono::Duration::milliseconds(600));
    let err = block_on(w.service.draw(USER, ACTIVITY)).unwrap_err();
    assert!(matches!(err, ActivityError::DeadlineExceeded(..)), "{err}");
    assert_eq!(err.error_code().code(), "0006");
    assert!(w.quota.saved_topics.lock().unwrap().is_empty());
    assert_eq!(w.stock.left(102), 5);
    assert_eq!(w.commits.0.load(Ordering::SeqCst), 0);
}

#[test]
fn a_save_without_an_answer_answers_0001_and_keeps_its_stock_taken() {
    let w = given(0, chrono::Duration::zero());
    w.quota.unknown.store(1, Ordering::SeqCst);
    let err = block_on(w.service.draw(USER, ACTIVITY)).unwrap_err();
    assert_eq!(err.error_code().code(), "0001", "{err}");
    assert_eq!(w.stock.left(102), 4, "it may still commit: its unit is not given back");
    assert_eq!(w.commits.0.load(Ordering::SeqCst), 0);
    // The next draw reads the quota again (the unanswered save may have spent some).
    block_on(w.service.draw(USER, ACTIVITY)).unwrap();
    assert_eq!(w.quota.loads.load(Ordering::SeqCst), 2);
    assert_eq!(w.stock.left(102), 3);
}

#[test]
fn a_degraded_draw_answers_0004_and_touches_nothing() {
    let switches = Switches {
        degrade: true,
        rate_limiter: true,
        ..Switches::default()
    };
    let w = given_switched(0, chrono::Duration::zero(), switches, Admission::Allowed);
    let err = block_on(w.service.draw(USER, ACTIVITY)).unwrap_err();
    assert_eq!(err.error_code().code(), "0004", "{err}");
    assert!(w.quota.saved_topics.lock().unwrap().is_empty());
    assert_eq!(w.stock.left(102), 5);
    assert_eq!(
        w.limiter.1.load(Ordering::SeqCst),
        0,
        "degrade answers before the limiter"
    );
}

#[test]
fn the_rate_limiter_is_asked_only_while_its_switch_is_open_and_its_refusals_are_0005() {
    let w = given_switched(0, chrono::Duration::zero(), Switches::default(), Admission::Refused);
    block_on(w.service.draw(USER, ACTIVITY)).unwrap();
    assert_eq!(w.limiter.1.load(Ordering::SeqCst), 0);
    for admission in [Admission::Refused, Admission::Blacklisted] {
        let switches = Switches {
            rate_limiter: true,
            ..Switches::default()
        };
        let w = given_switched(0, chrono::Duration::zero(), switches, admission);
        let err = block_on(w.service.draw(USER, ACTIVITY)).unwrap_err();
        assert_eq!(err.error_code().code(), "0005", "{err}");
        assert!(w.quota.saved_topics.lock().unwrap().is_empty());
        assert_eq!(w.limiter.1.load(Ordering::SeqCst), 1);
    }
}

#[test]
fn the_draw_deadline_follows_the_switch() {
    // Every clock reading is 100 ms later: a 150 ms deadline passes before the save.
    let switches = Switches {
        draw_timeout_ms: 150,
        ..Switches::default()
    };
    let w = given_switched(0, chrono::Duration::milliseconds(100), switches, Admission::Allowed);
    let err = block_on(w.service.draw(USER, ACTIVITY)).unwrap_err();
    assert_eq!(err.error_code().code(), "0006", "{err}");
    assert!(w.quota.saved_topics.lock().unwrap().is_empty());
}
