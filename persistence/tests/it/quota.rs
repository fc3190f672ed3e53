//! The quota adapter on its own: the draw's read and one-call save, the recharge save, and the
//! outcomes each reports when its guard fails (nothing written).

use chrono::{NaiveDate, TimeZone as _, Utc};
use domain::activity::account::{QuotaAccount, Ticket};
use domain::activity::ports::{
    DrawSave, DrawSaved, QuotaRepository, RechargeOrder, RechargeSave, RechargeSaved, SaveFailure,
};
use domain::activity::{Activity, ActivityCount, ActivityState};
use domain::ids::{ActivityId, AwardId, Sku, StrategyId};
use domain::outbox::{OutboxMessage, TOPIC_ACCOUNT_CHANGED, TOPIC_SEND_AWARD};
use domain::strategy::{Decision, RaffleAward};
use persistence::MySqlQuotaRepository;
use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::TestEnv;

const USER: &str = "xiaofuge"; // → big_market_01, tables _001
const DAY: &str = "2026-11-30";
const MONTH: &str = "2026-11";
const ACTIVITY: ActivityId = ActivityId::new(100301);

fn activity() -> Activity {
    let at = |d| {
        NaiveDate::from_ymd_opt(2026, 1, d)
            .unwrap()
            .and_hms_opt(0, 0, 0)
            .unwrap()
    };
    Activity {
        activity_id: ACTIVITY,
        activity_name: "测试活动".into(),
        activity_desc: String::new(),
        begin: at(1),
        end: at(31),
        strategy_id: StrategyId::new(100006),
        state: ActivityState::Open,
    }
}

fn award() -> RaffleAward {
    RaffleAward {
        award_id: AwardId::new(101),
        award_title: "随机积分".into(),
        award_config: None,
        sort: Some(1),
        decision: Decision::Default,
        taken: None,
    }
}

fn message(topic: &'static str, id: &str) -> OutboxMessage {
    OutboxMessage::new(USER, topic, id.into(), 1, &id)
}

async fn count(env: &TestEnv, sql: &str) -> i64 {
    let db = &env.db.shards[0];
    let row = db
        .query_one(Statement::from_string(db.get_database_backend(), sql.to_owned()))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn exec(env: &TestEnv, sql: &str) {
    let db = &env.db.shards[0];
    db.execute_unprepared(sql).await.unwrap();
}

async fn with_account(env: &TestEnv, surplus: i32, version: i64) {
    exec(
        env,
        &format!(
            "INSERT INTO raffle_activity_account (user_id, activity_id, total_count, total_count_surplus, day_count, \
             day_count_surplus, month_count, month_count_surplus, version) VALUES ('{USER}', 100301, 10, {surplus}, 5, 5, 8, 8, {version})"
        ),
    )
    .await;
}

/// Saves the draw decided on `account` with message ids prefixed by `tag`.
async fn save(repo: &MySqlQuotaRepository, account: &QuotaAccount, tag: &str) -> Result<DrawSaved, SaveFailure> {
    let partake = account.partake(DAY, MONTH, format!("{tag}-ticket").into()).unwrap();
    let mut outbox = vec![message(TOPIC_SEND_AWARD, &format!("{tag}-m1"))];
    if let Ticket::Paid { after, .. } = &partake.ticket {
        outbox.push(OutboxMessage::new(
            USER,
            TOPIC_ACCOUNT_CHANGED,
            format!("{tag}-m2").into(),
            1,
            &after.snapshot(),
        ));
    }
    let (activity, award) = (activity(), award());
    repo.save_draw(&DrawSave {
        user_id: USER,
        activity: &activity,
        partake: &partake,
        award: &award,
        at: Utc.with_ymd_and_hms(2026, 11, 30, 8, 0, 0).unwrap(),
        outbox: &outbox,
    })
    .await
}

#[tokio::test]
async fn a_paid_draw_is_saved_in_one_call_and_a_stale_decision_writes_nothing() {
    let env = TestEnv::new().await;
    let repo = MySqlQuotaRepository::new(env.db.clone());
    assert_eq!(
        repo.load_quota(USER, ACTIVITY, DAY, MONTH).await.unwrap(),
        None,
        "no account"
    );
    with_account(&env, 10, 3).await;
    let before = repo.load_quota(USER, ACTIVITY, DAY, MONTH).await.unwrap().unwrap();
    assert_eq!(
        (before.total_count_surplus, before.version, before.day.clone()),
        (10, 3, None)
    );

    assert_eq!(save(&repo, &before, "a").await.unwrap(), DrawSaved::Saved);
    let after = repo.load_quota(USER, ACTIVITY, DAY, MONTH).await.unwrap().unwrap();
    assert_eq!((after.total_count_surplus, after.version), (9, 4));
    assert_eq!(
        after.day.as_ref().map(|d| (d.count, d.surplus)),
        Some((5, 4)),
        "day row created"
    );
    assert_eq!(
        after.month.as_ref().map(|m| (m.count, m.surplus)),
        Some((8, 7)),
        "month row created"
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM user_raffle_order_001 WHERE order_id = 'a-ticket' AND order_state = 'used'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM user_award_record_001 WHERE order_id = 'a-ticket' AND award_state = 'create'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM task WHERE message_id IN ('a-m1', 'a-m2') AND state = 'create'"
        )
        .await,
        2
    );

    // The same decision again: the account moved (version 4 now), so nothing is written.
    assert_eq!(save(&repo, &before, "b").await.unwrap(), DrawSaved::Moved);
    assert_eq!(count(&env, "SELECT COUNT(*) FROM task").await, 2);
    assert_eq!(count(&env, "SELECT COUNT(*) FROM user_raffle_order_001").await, 1);
    // Decided on the fresh read, it saves and spends the existing rows.
    assert_eq!(save(&repo, &after, "c").await.unwrap(), DrawSaved::Saved);
    let again = repo.load_quota(USER, ACTIVITY, DAY, MONTH).await.unwrap().unwrap();
    assert_eq!(again.day.map(|d| d.surplus), Some(3));
    assert_eq!(again.month.map(|m| m.surplus), Some(6));
    env.cleanup().await;
}

/// A save whose answer does not come within the response timeout (here it waits for a row
/// lock longer than that) is of unknown outcome; without the timeout, the lock wait decides.
#[tokio::test]
async fn a_save_unanswered_within_the_response_timeout_is_unknown() {
    let env = TestEnv::new().await;
    with_account(&env, 10, 3).await;
    let plain = MySqlQuotaRepository::new(env.db.clone());
    let bounded = plain
        .clone()
        .with_response_timeout(std::time::Duration::from_millis(300));
    let before = plain.load_quota(USER, ACTIVITY, DAY, MONTH).await.unwrap().unwrap();
    let holder = env.db.shards[0].begin().await.unwrap();
    holder
        .execute_unprepared(&format!(
            "SELECT * FROM raffle_activity_account WHERE user_id = '{USER}' FOR UPDATE"
        ))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let unknown = save(&bounded, &before, "u").await;
    let took = started.elapsed();
    assert!(matches!(unknown, Err(SaveFailure::Unknown(_))), "{unknown:?}");
    assert!(took < std::time::Duration::from_millis(900), "answered after {took:?}");
    let lock_wait = save(&plain, &before, "w").await;
    assert!(matches!(lock_wait, Err(SaveFailure::Conflict(_))), "{lock_wait:?}");
    holder.rollback().await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn an_unused_ticket_is_reused_once_and_a_recorded_award_is_reported() {
    let env = TestEnv::new().await;
    let repo = MySqlQuotaRepository::new(env.db.clone());
    with_account(&env, 0, 1).await;
    exec(&env, &format!("INSERT INTO user_raffle_order_001 (user_id, activity_id, activity_name, strategy_id, order_id, order_time, order_state) VALUES ('{USER}', 100301, 'a', 100006, 'old-1', NOW(), 'create'), ('{USER}', 100301, 'a', 100006, 'old-2', NOW(), 'create')")).await;
    let loaded = repo.load_quota(USER, ACTIVITY, DAY, MONTH).await.unwrap().unwrap();
    assert_eq!(
        loaded.unused_ticket.as_ref().map(|t| t.as_str()),
        Some("old-1"),
        "the oldest first"
    );
    assert_eq!(save(&repo, &loaded, "r").await.unwrap(), DrawSaved::Saved);
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM user_raffle_order_001 WHERE order_id = 'old-1' AND order_state = 'used'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &env,
            "SELECT total_count_surplus + version FROM raffle_activity_account"
        )
        .await,
        1,
        "no quota spent"
    );
    // Reusing the same ticket again finds it used: moved, nothing written.
    assert_eq!(save(&repo, &loaded, "s").await.unwrap(), DrawSaved::Moved);
    // The next ticket's award is recorded already (written by the original system, say).
    exec(&env, &format!("INSERT INTO user_award_record_001 (user_id, activity_id, strategy_id, order_id, award_id, award_title, award_time, award_state) VALUES ('{USER}', 100301, 100006, 'old-2', 101, 't', NOW(), 'create')")).await;
    let next = repo.load_quota(USER, ACTIVITY, DAY, MONTH).await.unwrap().unwrap();
    assert_eq!(next.unused_ticket.as_ref().map(|t| t.as_str()), Some("old-2"));
    assert!(matches!(save(&repo, &next, "t").await, Err(SaveFailure::AwardRecorded)));
    assert_eq!(
        count(
            &env,
            "SELECT COUNT(*) FROM user_raffle_order_001 WHERE order_id = 'old-2' AND order_state = 'create'"
        )
        .await,
        1,
        "rolled back"
    );
    assert_eq!(count(&env, "SELECT COUNT(*) FROM task").await, 1);
    env.cleanup().await;
}

#[tokio::test]
async fn a_recharge_save_creates_or_credits_the_account_at_its_version_once_per_out_business_no() {
    let env = TestEnv::new().await;
    let repo = MySqlQuotaRepository::new(env.db.clone());
    let package = ActivityCount {
        activity_count_id: 1,
        total_count: 10,
        day_count: 2,
        month_count: 4,
    };
    let order = |id: &str, obn: &str| RechargeOrder {
        user_id: USER.into(),
        sku: Sku::new(9011),
        activity_id: ACTIVITY,
        activity_name: "a".into(),
        strategy_id: StrategyId::new(100006),
        order_id: id.into(),
        order_time: NaiveDate::from_ymd_opt(2026, 11, 30)
            .unwrap()
            .and_hms_opt(8, 0, 0)
            .unwrap(),
        count: package,
        pay_amount: rust_decimal::Decimal::ZERO,
        state: "completed",
        out_business_no: obn.into(),
    };
    let recharge = |before: QuotaAccount, id: &'static str, obn: &'static str| {
        let repo = &repo;
        async move {
            let after = before.credit(&package, DAY, MONTH);
            let o = order(id, obn);
            let outbox = [message(TOPIC_ACCOUNT_CHANGED, id)];
            repo.save_recharge(&RechargeSave {
                order: &o,
                expected_version: before.version,
                after: &after,
                payment: None,
                outbox: &outbox,
            })
            .await
        }
    };
    let empty = QuotaAccount::empty(USER, ACTIVITY);
    assert_eq!(recharge(empty.clone(), "o1", "n1").await.unwrap(), RechargeSaved::Saved);
    // A second "first" recharge races in late: the account exists now.
    assert_eq!(recharge(empty, "o2", "n2").await.unwrap(), RechargeSaved::Moved);
    let loaded = repo.load_quota(USER, ACTIVITY, DAY, MONTH).await.unwrap().unwrap();
    assert_eq!(
        (loaded.total_count_surplus, loaded.day_count, loaded.version),
        (10, 2, 1)
    );
    assert_eq!(
        recharge(loaded.clone(), "o3", "n1").await.unwrap(),
        RechargeSaved::OutBusinessNoUsed
    );
    assert_eq!(recharge(loaded, "o4", "n4").await.unwrap(), RechargeSaved::Saved);
    let loaded = repo.load_quota(USER, ACTIVITY, DAY, MONTH).await.unwrap().unwrap();
    assert_eq!(
        (loaded.total_count_surplus, loaded.month_count, loaded.version),
        (20, 8, 2)
    );
    assert_eq!(count(&env, "SELECT COUNT(*) FROM raffle_activity_order_001").await, 2);
    assert_eq!(count(&env, "SELECT COUNT(*) FROM task").await, 2);
    env.cleanup().await;
}
