//! One blocking reader per process for every task-status subscription.
//!
//! Each subscriber registers its user's stream with a cursor and gets a channel. A single task,
//! on one Redis connection of its own, runs `XREAD BLOCK … STREAMS <every registered stream>
//! <the reader's position in each>` and hands each entry to the channels of that stream's
//! subscribers. So the number of Redis connections stays flat however many subscriptions are
//! open (one reader, plus the shared connection), where a connection per subscription used to
//! run Redis out of clients.
//!
//! * **No gap, no repeat.** Registration and delivery share one lock. A subscriber whose stream
//!   is new sets the reader's position to its own cursor (so the reader replays its history).
//!   A subscriber joining a stream the reader already follows at position `R` reads the entries
//!   between its cursor and `R` itself (`XRANGE`, on the shared connection) and then takes the
//!   live ones, all of which come after `R`.
//! * **Prompt.** A registration of a new stream interrupts the reader's blocking read
//!   (`CLIENT UNBLOCK`), so the reader includes it at once.
//! * **Slow subscribers.** Each channel holds [`CHANNEL_CAPACITY`] events; a subscriber that
//!   falls further behind is dropped from the reader and re-registers from its own cursor (no
//!   event is lost; it reads them from the stream).
//! * **Redis trouble.** The reader reconnects with a short pause and continues from its
//!   positions; subscribers wait meanwhile.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use redis::aio::MultiplexedConnection;
use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
use tokio::sync::{Notify, mpsc};

use super::task_stream::{TaskEvent, TaskStream, event_of};

/// Events buffered per subscriber before it counts as lagging.
pub const CHANNEL_CAPACITY: usize = 256;

/// How long one blocking read waits before the reader looks at its registrations again.
const BLOCK_MS: usize = 5_000;

/// Entries read per stream per round.
const COUNT: usize = 100;

/// A stream id (`<ms>-<seq>`) as a comparable pair; `0` is the start.
fn id_key(id: &str) -> (u64, u64) {
    let (ms, seq) = id.split_once('-').unwrap_or((id, "0"));
    (ms.parse().unwrap_or(0), seq.parse().unwrap_or(0))
}

/// The subscribers of one user's stream and the reader's position in it.
struct Followed {
    position: String,
    senders: Vec<(u64, mpsc::Sender<TaskEvent>)>,
}

struct Inner {
    stream: TaskStream,
    followed: Mutex<HashMap<String, Followed>>,
    next_id: AtomicU64,
    /// `CLIENT ID` of the reader's connection (0 while not connected).
    reader_client: AtomicI64,
    wake: Notify,
}

/// The process's task-status fan-out (clone freely; one reader task per [`TaskFanout::start`]).
#[derive(Clone)]
pub struct TaskFanout {
    inner: Arc<Inner>,
}

/// A registration: live events arrive on `events`; dropping it unregisters.
pub struct Subscription {
    fanout: TaskFanout,
    user: String,
    id: u64,
    /// Events after the registration's position, in stream order.
    pub events: mpsc::Receiver<TaskEvent>,
    /// Entries between the subscriber's cursor and the reader's position at registration, to
    /// read with [`TaskFanout::backlog`] before the live ones (`None`: nothing to read).
    pub backlog_until: Option<String>,
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let mut followed = self
            .fanout
            .inner
            .followed
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(f) = followed.get_mut(&self.user) {
            f.senders.retain(|(id, _)| *id != self.id);
            if f.senders.is_empty() {
                followed.remove(&self.user);
            }
        }
    }
}

impl TaskFanout {
    /// Starts the reader on `stream`'s Redis; it stops when every clone is dropped.
    pub fn start(stream: TaskStream) -> Self {
        let inner = Arc::new(Inner {
            stream,
            followed: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            reader_client: AtomicI64::new(0),
            wake: Notify::new(),
        });
        tokio::spawn(run(Arc::downgrade(&inner)));
        Self { inner }
    }

    /// Streams the reader follows now (for tests and metrics).
    pub fn followed_streams(&self) -> usize {
        self.inner.followed.lock().unwrap_or_else(PoisonError::into_inner).len()
    }

    /// Registers a subscriber of `user` whose last seen event is `cursor` (`0`: from the start).
    ///
    /// # Errors
    /// When Redis cannot be reached to wake the reader.
    pub async fn subscribe(&self, user: &str, cursor: &str) -> redis::RedisResult<Subscription> {
        let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (backlog_until, new_stream) = {
            let mut followed = self.inner.followed.lock().unwrap_or_else(PoisonError::into_inner);
            match followed.get_mut(user) {
                Some(f) => {
                    f.senders.push((id, tx));
                    let behind = id_key(cursor) < id_key(&f.position);
                    (behind.then(|| f.position.clone()), false)
                }
                None => {
                    followed.insert(
                        user.to_owned(),
                        Followed {
                            position: cursor.to_owned(),
                            senders: vec![(id, tx)],
                        },
                    );
                    (None, true)
                }
            }
        };
        let subscription = Subscription {
            fanout: self.clone(),
            user: user.to_owned(),
            id,
            events: rx,
            backlog_until,
        };
        if new_stream {
            self.inner.wake.notify_one();
            let client = self.inner.reader_client.load(Ordering::Acquire);
            if client != 0 {
                let mut conn = self.inner.stream.shared_connection();
                redis::cmd("CLIENT")
                    .arg("UNBLOCK")
                    .arg(client)
                    .query_async::<i64>(&mut conn)
                    .await?;
            }
        }
        Ok(subscription)
    }

    /// The entries of `user`'s stream after `after` up to and including `until`, oldest first,
    /// at most `count`.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn backlog(
        &self,
        user: &str,
        after: &str,
        until: &str,
        count: usize,
    ) -> redis::RedisResult<Vec<TaskEvent>> {
        let mut conn = self.inner.stream.shared_connection();
        let start = if after == "0" {
            "-".to_owned()
        } else {
            format!("({after}")
        };
        let reply: StreamRangeReply = redis::cmd("XRANGE")
            .arg(self.inner.stream.key_of(user))
            .arg(start)
            .arg(until)
            .arg("COUNT")
            .arg(count)
            .query_async(&mut conn)
            .await?;
        Ok(reply.ids.into_iter().map(|e| event_of(user, e)).collect())
    }
}

/// Where a follower is: its cursor, its registration and the events read but not yet taken.
struct Follower {
    fanout: TaskFanout,
    user: String,
    cursor: String,
    registration: Option<Subscription>,
    ready: std::collections::VecDeque<TaskEvent>,
}

impl Follower {
    /// Keeps `e` if it comes after the cursor (a re-registration may see an entry twice).
    fn take(&mut self, e: TaskEvent) {
        if id_key(&e.cursor) > id_key(&self.cursor) {
            self.cursor.clone_from(&e.cursor);
            self.ready.push_back(e);
        }
    }

    async fn next(&mut self) -> redis::RedisResult<Option<TaskEvent>> {
        loop {
            if let Some(e) = self.ready.pop_front() {
                return Ok(Some(e));
            }
            let Some(registration) = self.registration.as_mut() else {
                let mut registration = self.fanout.subscribe(&self.user, &self.cursor).await?;
                if let Some(until) = registration.backlog_until.take() {
                    loop {
                        let page = self.fanout.backlog(&self.user, &self.cursor, &until, COUNT).await?;
                        let full = page.len() == COUNT;
                        for e in page {
                            self.take(e);
                        }
                        if !full || id_key(&self.cursor) >= id_key(&until) {
                            break;
                        }
                    }
                }
                self.registration = Some(registration);
                continue;
            };
            match registration.events.recv().await {
                Some(e) => self.take(e),
                // Dropped for lagging: register again from the cursor and read what was missed.
                None => self.registration = None,
            }
        }
    }
}

impl TaskFanout {
    /// Every event of `user` after `cursor` (`0`: the retained history first), then live ones,
    /// in stream order, each once. The stream ends only when Redis fails (the caller resumes
    /// from the last event's cursor).
    pub fn follow(&self, user: &str, cursor: &str) -> impl futures::Stream<Item = TaskEvent> + Send + use<> {
        let follower = Follower {
            fanout: self.clone(),
            user: user.to_owned(),
            cursor: cursor.to_owned(),
            registration: None,
            ready: std::collections::VecDeque::new(),
        };
        futures::stream::unfold(follower, |mut f| async move {
            match f.next().await {
                Ok(Some(e)) => Some((e, f)),
                Ok(None) => None,
                Err(e) => {
                    tracing::warn!(error = %e, user = %f.user, "task-status follow failed; ending the subscription");
                    None
                }
            }
        })
    }
}

async fn run(inner: std::sync::Weak<Inner>) {
    let mut conn: Option<MultiplexedConnection> = None;
    loop {
        let Some(me) = inner.upgrade() else { return };
        let (keys, users, positions) = {
            let followed = me.followed.lock().unwrap_or_else(PoisonError::into_inner);
            let mut keys = Vec::with_capacity(followed.len());
            let mut users = Vec::with_capacity(followed.len());
            let mut positions = Vec::with_capacity(followed.len());
            for (user, f) in followed.iter() {
                keys.push(me.stream.key_of(user));
                users.push(user.clone());
                positions.push(f.position.clone());
            }
            (keys, users, positions)
        };
        if keys.is_empty() {
            // Re-check now and then so a dropped fan-out ends its task.
            let _ = tokio::time::timeout(Duration::from_secs(1), me.wake.notified()).await;
            continue;
        }
        let c = match conn.as_mut() {
            Some(c) => c,
            None => match me.stream.reader(Duration::from_millis(BLOCK_MS as u64 + 2_000)).await {
                Ok(mut c) => {
                    match redis::cmd("CLIENT").arg("ID").query_async::<i64>(&mut c).await {
                        Ok(id) => me.reader_client.store(id, Ordering::Release),
                        Err(e) => tracing::warn!(error = %e, "task-status reader: CLIENT ID failed"),
                    }
                    conn.insert(c)
                }
                Err(e) => {
                    tracing::warn!(error = %e, "task-status reader cannot connect to Redis; retrying");
                    drop(me);
                    tokio::time::sleep(Duration::from_millis(500)).await;
                    continue;
                }
            },
        };
        let opts = StreamReadOptions::default().block(BLOCK_MS).count(COUNT);
        let read: redis::RedisResult<Option<StreamReadReply>> =
            redis::AsyncCommands::xread_options(c, &keys, &positions, &opts).await;
        let reply = match read {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "task-status reader failed; reconnecting");
                me.reader_client.store(0, Ordering::Release);
                conn = None;
                drop(me);
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let Some(reply) = reply else { continue };
        let user_of: HashMap<&str, &str> = keys
            .iter()
            .map(String::as_str)
            .zip(users.iter().map(String::as_str))
            .collect();
        let mut followed = me.followed.lock().unwrap_or_else(PoisonError::into_inner);
        for stream in reply.keys {
            let Some(user) = user_of.get(stream.key.as_str()) else {
                continue;
            };
            let Some(f) = followed.get_mut(*user) else { continue };
            for entry in stream.ids {
                f.position.clone_from(&entry.id);
                let event = event_of(user, entry);
                // A full or closed channel drops that subscriber; it re-registers from its cursor.
                f.senders.retain(|(_, tx)| tx.try_send(event.clone()).is_ok());
            }
            if f.senders.is_empty() {
                followed.remove(*user);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::id_key;

    #[test]
    fn stream_ids_compare_by_time_then_sequence() {
        assert!(id_key("0") < id_key("1-0"));
        assert!(id_key("1700000000000-9") < id_key("1700000000001-0"));
        assert!(id_key("1700000000000-10") > id_key("1700000000000-9"));
    }
}
