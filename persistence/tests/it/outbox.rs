//! The outbox store on its own: insert, exclusive claims, settling a batch.

use chrono::{Duration, NaiveDateTime, Utc};
use domain::outbox::{OutboxMessage, TOPIC_SEND_AWARD};
use persistence::outbox::store::{self, MySqlTaskAdmin, Replay};
use sea_orm::{ConnectionTrait, Statement};

use crate::helpers::TestEnv;

fn now() -> NaiveDateTime {
    Utc::now().naive_utc()
}

async fn states(env: &TestEnv) -> Vec<(String, String, i64)> {
    let db = &env.db.shards[0];
    db.query_all(Statement::from_string(
        db.get_database_backend(),
        "SELECT message_id, state, CAST(attempts AS SIGNED) AS attempts FROM task ORDER BY id".to_owned(),
    ))
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.try_get("", "message_id").unwrap(),
            r.try_get("", "state").unwrap(),
            r.try_get("", "attempts").unwrap(),
        )
    })
    .collect()
}

#[tokio::test]
async fn claims_never_share_a_row_and_settled_rows_are_claimed_only_when_due() {
    let env = TestEnv::new().await;
    let db = &env.db.shards[0];
    let rows: Vec<OutboxMessage> = (0..6)
        .map(|i| OutboxMessage::new("xiaofuge", TOPIC_SEND_AWARD, format!("m{i}").into(), 1, &i))
        .collect();
    store::insert_outbox(db, &rows).await.unwrap();

    let first = db.begin().await.unwrap();
    let a = store::claim(&first, 4, now()).await.unwrap();
    let ids = |c: &[store::Claimed]| c.iter().map(|r| r.message_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&a), ["m0", "m1", "m2", "m3"]);
    assert!(a.iter().all(|r| r.fresh && r.attempts == 0));
    // A concurrent claim returns at once with the rows the first did not take.
    let second = db.begin().await.unwrap();
    let b = store::claim(&second, 4, now()).await.unwrap();
    assert_eq!(ids(&b), ["m4", "m5"], "the locked rows are skipped, the others claimed");
    second.rollback().await.unwrap();

    store::mark_published(&first, &a.iter().map(|r| r.id).collect::<Vec<_>>(), now())
        .await
        .unwrap();
    first.commit().await.unwrap();
    let third = db.begin().await.unwrap();
    let c = store::claim(&third, 4, now()).await.unwrap();
    assert_eq!(ids(&c), ["m4", "m5"], "published rows are not claimed again");
    // m4 fails and is retried later; m5 fails for the last time.
    store::mark_failed(&third, c[0].id, 1, false, now() + Duration::hours(1), "broker said no")
        .await
        .unwrap();
    store::mark_failed(&third, c[1].id, 8, true, now(), "gave up")
        .await
        .unwrap();
    third.commit().await.unwrap();
    assert_eq!(
        states(&env).await,
        [
            ("m0", "completed", 1),
            ("m1", "completed", 1),
            ("m2", "completed", 1),
            ("m3", "completed", 1),
            ("m4", "fail", 1),
            ("m5", "dead", 8)
        ]
        .map(|(m, s, a)| (m.to_owned(), s.to_owned(), a))
    );

    // Nothing is due now: m4 waits for its retry time, published and dead rows never come back.
    let tx = db.begin().await.unwrap();
    assert!(store::claim(&tx, 10, now()).await.unwrap().is_empty());
    let later = store::claim(&tx, 10, now() + Duration::hours(2)).await.unwrap();
    assert_eq!(ids(&later), ["m4"]);
    assert!(!later[0].fresh, "a retried row is not announced as created again");
    tx.rollback().await.unwrap();

    // An operator replays the dead row: it is pending again with its attempts cleared.
    let admin = MySqlTaskAdmin::new(env.db.clone());
    assert!(matches!(admin.replay("m5").await.unwrap(), Replay::Requeued(_)));
    assert!(matches!(admin.replay("m0").await.unwrap(), Replay::NotReplayable(_)));
    let tx = db.begin().await.unwrap();
    let replayed = store::claim(&tx, 10, now()).await.unwrap();
    assert_eq!(ids(&replayed), ["m5"]);
    assert!(replayed[0].fresh);
    tx.rollback().await.unwrap();
    env.cleanup().await;
}

#[tokio::test]
async fn a_claimed_batch_is_leased_so_no_transaction_stays_open_and_it_is_due_again_after_the_lease() {
    let env = TestEnv::new().await;
    let db = &env.db.shards[0];
    let rows: Vec<OutboxMessage> = (0..3)
        .map(|i| OutboxMessage::new("xiaofuge", TOPIC_SEND_AWARD, format!("l{i}").into(), 1, &i))
        .collect();
    store::insert_outbox(db, &rows).await.unwrap();
    let t0 = now();
    let tx = db.begin().await.unwrap();
    let claimed = store::claim(&tx, 10, t0).await.unwrap();
    assert_eq!(claimed.len(), 3);
    let ids: Vec<u64> = claimed.iter().map(|r| r.id).collect();
    store::lease(&tx, &ids, t0 + Duration::seconds(30)).await.unwrap();
    tx.commit().await.unwrap();

    // While the batch is out (no transaction open), another claim neither waits nor takes it.
    let started = std::time::Instant::now();
    let tx = db.begin().await.unwrap();
    assert!(store::claim(&tx, 10, t0).await.unwrap().is_empty());
    tx.commit().await.unwrap();
    assert!(
        started.elapsed() < std::time::Duration::from_millis(500),
        "the claim waited"
    );

    // A relay that died: the rows are due again once the lease ends, attempts untouched.
    let tx = db.begin().await.unwrap();
    let again = store::claim(&tx, 10, t0 + Duration::seconds(31)).await.unwrap();
    tx.commit().await.unwrap();
    assert_eq!(again.iter().map(|r| r.id).collect::<Vec<_>>(), ids);
    assert!(again.iter().all(|r| r.attempts == 0 && r.fresh));

    // Deferred rows (broker unreachable) come back at the given time, no attempt counted.
    store::defer(db, &ids, t0 + Duration::seconds(2)).await.unwrap();
    let tx = db.begin().await.unwrap();
    assert!(
        store::claim(&tx, 10, t0 + Duration::seconds(1))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(store::claim(&tx, 10, t0 + Duration::seconds(3)).await.unwrap().len(), 3);
    tx.commit().await.unwrap();
    assert!(
        states(&env)
            .await
            .iter()
            .all(|(_, state, attempts)| state == "create" && *attempts == 0)
    );
    env.cleanup().await;
}
