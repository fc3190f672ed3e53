//! `TaskFanout`: one Redis reader per process for every task-status follower.

use std::time::Duration;

use domain::outbox::TaskState;
use futures::StreamExt;
use persistence::redis::{Keys, TaskEvent, TaskFanout, TaskStream};
use test_support::redis::PrivateRedis;

fn event(user: &str, message: &str, state: TaskState) -> TaskEvent {
    TaskEvent {
        cursor: String::new(),
        message_id: message.to_owned(),
        user_id: user.to_owned(),
        topic: "send_award".to_owned(),
        state,
        attempts: 0,
        occurred_at_ms: 1,
    }
}

async fn next(s: &mut (impl futures::Stream<Item = TaskEvent> + Unpin)) -> TaskEvent {
    tokio::time::timeout(Duration::from_secs(10), s.next())
        .await
        .expect("an event within 10 s")
        .expect("the follow goes on")
}

#[tokio::test]
async fn followers_get_history_then_live_events_each_once_and_in_order_over_one_connection() {
    let redis = PrivateRedis::start().await.expect("a private redis-server");
    let conn = persistence::redis::connect(&redis.url).await.unwrap();
    let stream = TaskStream::open(conn, &redis.url, Keys::new("fan:")).unwrap();
    stream
        .append(&[
            event("ann", "m1", TaskState::Created),
            event("ann", "m1", TaskState::Published),
        ])
        .await
        .unwrap();
    let fanout = TaskFanout::start(stream.clone());
    let before = redis.connected_clients().await.unwrap();

    // A first follower replays ann's history, then takes a live event.
    let mut first = Box::pin(fanout.follow("ann", "0"));
    let h1 = next(&mut first).await;
    let h2 = next(&mut first).await;
    assert_eq!((h1.message_id.as_str(), h1.state), ("m1", TaskState::Created));
    assert_eq!(h2.state, TaskState::Published);
    stream.append(&[event("ann", "m2", TaskState::Created)]).await.unwrap();
    let live = next(&mut first).await;
    assert_eq!(live.message_id, "m2");

    // A second follower of the same stream, resuming after the first event, reads what the
    // reader had already passed (the backlog) and then the live ones: no gap, no repeat.
    let mut second = Box::pin(fanout.follow("ann", &h1.cursor));
    let got: Vec<String> = vec![next(&mut second).await.cursor, next(&mut second).await.cursor];
    assert_eq!(got, [h2.cursor.clone(), live.cursor.clone()]);
    stream.append(&[event("ann", "m3", TaskState::Created)]).await.unwrap();
    assert_eq!(next(&mut first).await.message_id, "m3");
    assert_eq!(next(&mut second).await.message_id, "m3");
    assert!(
        tokio::time::timeout(Duration::from_millis(300), second.next())
            .await
            .is_err(),
        "nothing twice"
    );

    // Many users followed at once: still one reader connection.
    let mut crowd: Vec<_> = (0..300)
        .map(|i| Box::pin(fanout.follow(&format!("u{i}"), "0")))
        .collect();
    // A follow registers when first polled.
    futures::future::join_all(
        crowd
            .iter_mut()
            .map(|s| tokio::time::timeout(Duration::from_millis(300), s.next())),
    )
    .await;
    stream
        .append(&[event("u299", "late", TaskState::Created)])
        .await
        .unwrap();
    assert_eq!(next(&mut crowd[299]).await.message_id, "late");
    let during = redis.connected_clients().await.unwrap();
    assert!(
        during <= before + 1,
        "one reader for every follower: {before} → {during}"
    );
    assert_eq!(fanout.followed_streams(), 301);
    drop(crowd);
    drop(first);
    drop(second);
    assert_eq!(fanout.followed_streams(), 0, "dropped followers unregister");
}

#[tokio::test]
async fn a_published_event_arriving_after_delivered_keeps_the_state_and_brings_the_attempts() {
    let redis = PrivateRedis::start().await.expect("a private redis-server");
    let conn = persistence::redis::connect(&redis.url).await.unwrap();
    let stream = TaskStream::open(conn, &redis.url, Keys::new("order:")).unwrap();
    // The consumer committed before the relay announced its confirm.
    stream
        .set_states(&[event("ann", "m9", TaskState::Delivered)])
        .await
        .unwrap();
    let mut published = event("ann", "m9", TaskState::Published);
    published.attempts = 1;
    stream.set_states(&[published]).await.unwrap();
    let status = stream.status("m9").await.unwrap().unwrap();
    assert_eq!((status.state, status.attempts), (TaskState::Delivered, 1));
}

#[tokio::test]
async fn a_message_s_states_reach_the_stream_in_order_whoever_reports_first() {
    let redis = PrivateRedis::start().await.expect("a private redis-server");
    let conn = persistence::redis::connect(&redis.url).await.unwrap();
    let stream = TaskStream::open(conn, &redis.url, Keys::new("order:")).unwrap();
    let fanout = TaskFanout::start(stream.clone());
    // The consumer's DELIVERED arrives before the relay's CREATED / PUBLISHED.
    stream.append(&[event("bo", "m1", TaskState::Delivered)]).await.unwrap();
    let mut published = event("bo", "m1", TaskState::Published);
    published.attempts = 1;
    stream
        .append(&[event("bo", "m1", TaskState::Created), published])
        .await
        .unwrap();
    stream.append(&[event("bo", "m2", TaskState::Created)]).await.unwrap();
    let mut follow = Box::pin(fanout.follow("bo", "0"));
    let mut seen = Vec::new();
    for _ in 0..4 {
        let e = next(&mut follow).await;
        seen.push((e.message_id, e.state, e.attempts));
    }
    assert_eq!(
        seen,
        [
            ("m1".to_owned(), TaskState::Created, 0),
            ("m1".to_owned(), TaskState::Published, 1),
            ("m1".to_owned(), TaskState::Delivered, 1),
            ("m2".to_owned(), TaskState::Created, 0),
        ]
    );
    let status = stream.status("m1").await.unwrap().unwrap();
    assert_eq!((status.state, status.attempts), (TaskState::Delivered, 1));
}
