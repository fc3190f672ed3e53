//! The task-status stream: one Redis Stream per user, the read model behind the
//! `taskStatus` subscription.
//!
//! Writers are the workers — the relay (created, published, failed, dead) and the consumers
//! (delivered, or dead for an award without a distributor) — so a row's events are appended in
//! the order they happened, whichever API instance committed it. Readers resume from any entry
//! id (the subscription cursor); every API instance reads the same stream, so a subscriber sees
//! events produced anywhere.
//! Streams are capped (`MAXLEN ~`), keeping each user's recent history.

use domain::outbox::TaskState;
use redis::aio::{ConnectionManager, MultiplexedConnection};

use super::Keys;

/// Entries kept per user (approximately).
pub const MAX_ENTRIES_PER_USER: usize = 1_000;

/// One state change of an outbox event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEvent {
    /// Stream entry id (the resume cursor); empty before it is appended.
    pub cursor: String,
    /// The event's message id.
    pub message_id: String,
    /// Owner (stream key).
    pub user_id: String,
    /// Topic.
    pub topic: String,
    /// New state.
    pub state: TaskState,
    /// Publish attempts at that point.
    pub attempts: i32,
    /// When it happened (epoch ms).
    pub occurred_at_ms: i64,
}

fn state_name(s: TaskState) -> &'static str {
    match s {
        TaskState::Created => "CREATED",
        TaskState::Published => "PUBLISHED",
        TaskState::Failed => "FAIL",
        TaskState::Dead => "DEAD",
        TaskState::Delivered => "DELIVERED",
    }
}

fn parse_state(s: &str) -> TaskState {
    match s {
        "PUBLISHED" => TaskState::Published,
        "FAIL" => TaskState::Failed,
        "DEAD" => TaskState::Dead,
        "DELIVERED" => TaskState::Delivered,
        _ => TaskState::Created,
    }
}

/// Whether `s` is a stream entry id (`<ms>-<seq>`), i.e. a valid resume cursor.
pub fn is_cursor(s: &str) -> bool {
    s.split_once('-')
        .is_some_and(|(a, b)| a.parse::<u64>().is_ok() && b.parse::<u64>().is_ok())
}

/// Latest state of one message: `bm:rm:t:{messageId}`, moved only forward
/// (CREATED < FAIL < PUBLISHED < DEAD < DELIVERED: the consumer marks a published award
/// dead when it has no distributor) so events arriving out of order are harmless.
/// Applies every event in one call: KEYS[i] is the i-th event's status key, ARGV holds five
/// values per event (state, userId, topic, attempts, at).
/// Appends events to the users' streams so that each message's states only move forward, in
/// order, whoever reports them first: an event that does not advance the message's status is
/// not appended (it may still raise the recorded publish attempts); a `DELIVERED` reported
/// before the relay announced its confirm is preceded by the `CREATED` / `PUBLISHED` it implies;
/// a `DELIVERED` without attempts takes the recorded ones. The status hash moves with the
/// stream, in the same script.
const APPEND: &str = r"
local rank = {CREATED = 0, FAIL = 1, PUBLISHED = 2, DEAD = 2.5, DELIVERED = 3}
local maxlen = ARGV[1]
for i = 1, #KEYS / 2 do
  local stream, status = KEYS[2 * i - 1], KEYS[2 * i]
  local b = 1 + (i - 1) * 6
  local mid, uid, topic, state = ARGV[b + 1], ARGV[b + 2], ARGV[b + 3], ARGV[b + 4]
  local attempts, at = tonumber(ARGV[b + 5]) or 0, ARGV[b + 6]
  local cur = redis.call('HGET', status, 'state')
  local seen = tonumber(redis.call('HGET', status, 'attempts') or '0') or 0
  local function add(s, a)
    redis.call('XADD', stream, 'MAXLEN', '~', maxlen, '*', 'messageId', mid, 'topic', topic,
      'state', s, 'attempts', a, 'at', at)
  end
  local forward = not cur or not rank[cur] or rank[state] > rank[cur]
    or (rank[state] == rank[cur] and state == 'FAIL')
  if not forward then
    if attempts > seen then
      redis.call('HSET', status, 'attempts', attempts)
    end
  else
    if state == 'DELIVERED' then
      if attempts == 0 then attempts = math.max(seen, 1) end
      if not cur then add('CREATED', 0) end
      if not cur or rank[cur] < 2 then add('PUBLISHED', attempts) end
    end
    add(state, attempts)
    redis.call('HSET', status, 'state', state, 'userId', uid, 'topic', topic, 'at', at,
      'attempts', math.max(attempts, seen))
  end
end
return #KEYS
";

const SET_STATE: &str = r"
local rank = {CREATED = 0, FAIL = 1, PUBLISHED = 2, DEAD = 2.5, DELIVERED = 3}
for i, key in ipairs(KEYS) do
  local b = (i - 1) * 5
  local state = ARGV[b + 1]
  local cur = redis.call('HGET', key, 'state')
  if cur and rank[cur] and rank[cur] > rank[state] then
    -- A late event (the relay's PUBLISHED after the consumer's DELIVERED) still brings the
    -- publish attempts, which the consumer does not know.
    local seen = tonumber(redis.call('HGET', key, 'attempts') or '0') or 0
    if tonumber(ARGV[b + 4]) > seen then
      redis.call('HSET', key, 'attempts', ARGV[b + 4])
    end
  else
    local fields = {'state', state, 'userId', ARGV[b + 2], 'topic', ARGV[b + 3], 'at', ARGV[b + 5]}
    -- The consumer does not know the publish attempts: keep the relay's count.
    if state ~= 'DELIVERED' or redis.call('HEXISTS', key, 'attempts') == 0 then
      table.insert(fields, 'attempts')
      table.insert(fields, ARGV[b + 4])
    end
    redis.call('HSET', key, unpack(fields))
  end
end
return #KEYS
";

/// The latest state of one outbox event, from the read model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskStatus {
    /// Owner.
    pub user_id: String,
    /// Topic.
    pub topic: String,
    /// State.
    pub state: TaskState,
    /// Publish attempts.
    pub attempts: i32,
    /// When it reached this state (epoch ms).
    pub at_ms: i64,
}

/// Appends and reads task-status events.
#[derive(Clone)]
pub struct TaskStream {
    conn: ConnectionManager,
    client: redis::Client,
    keys: Keys,
    set_state: redis::Script,
    append_script: redis::Script,
}

impl TaskStream {
    /// Streams under `keys`; `client` opens the dedicated connections of blocking readers.
    pub fn new(conn: ConnectionManager, client: redis::Client, keys: Keys) -> Self {
        Self {
            conn,
            client,
            keys,
            set_state: redis::Script::new(SET_STATE),
            append_script: redis::Script::new(APPEND),
        }
    }

    /// Streams under `keys`, the blocking readers connecting to `url`.
    ///
    /// # Errors
    /// When `url` is not a valid Redis URL.
    pub fn open(conn: ConnectionManager, url: &str, keys: Keys) -> redis::RedisResult<Self> {
        Ok(Self::new(conn, redis::Client::open(url)?, keys))
    }

    /// Appends events (one pipeline).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn append(&self, events: &[TaskEvent]) -> redis::RedisResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut call = self.append_script.prepare_invoke();
        call.arg(MAX_ENTRIES_PER_USER);
        for e in events {
            call.key(self.keys.task_stream(&e.user_id))
                .key(self.keys.task_status(&e.message_id))
                .arg(&e.message_id)
                .arg(&e.user_id)
                .arg(&e.topic)
                .arg(state_name(e.state))
                .arg(e.attempts)
                .arg(e.occurred_at_ms);
        }
        let mut conn = self.conn.clone();
        call.invoke_async::<i64>(&mut conn).await.map(drop)
    }

    /// Moves each message's status view forward to the event's state (no stream entry).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn set_states(&self, events: &[TaskEvent]) -> redis::RedisResult<()> {
        if events.is_empty() {
            return Ok(());
        }
        let mut call = self.set_state.prepare_invoke();
        for e in events {
            call.key(self.keys.task_status(&e.message_id))
                .arg(state_name(e.state))
                .arg(&e.user_id)
                .arg(&e.topic)
                .arg(e.attempts)
                .arg(e.occurred_at_ms);
        }
        let mut conn = self.conn.clone();
        call.invoke_async::<i64>(&mut conn).await.map(drop)
    }

    /// The latest state of a message, if the read model has it.
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn status(&self, message_id: &str) -> redis::RedisResult<Option<TaskStatus>> {
        let mut conn = self.conn.clone();
        let h: std::collections::HashMap<String, String> = redis::cmd("HGETALL")
            .arg(self.keys.task_status(message_id))
            .query_async(&mut conn)
            .await?;
        let Some(state) = h.get("state") else { return Ok(None) };
        Ok(Some(TaskStatus {
            user_id: h.get("userId").cloned().unwrap_or_default(),
            topic: h.get("topic").cloned().unwrap_or_default(),
            state: parse_state(state),
            attempts: h.get("attempts").and_then(|a| a.parse().ok()).unwrap_or(0),
            at_ms: h.get("at").and_then(|a| a.parse().ok()).unwrap_or(0),
        }))
    }

    /// Forgets a message's state (before an operator replays it, so it may start over).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn forget(&self, message_id: &str) -> redis::RedisResult<()> {
        let mut conn = self.conn.clone();
        redis::cmd("DEL")
            .arg(self.keys.task_status(message_id))
            .query_async(&mut conn)
            .await
    }

    /// The shared (multiplexed) connection, for short non-blocking commands.
    pub fn shared_connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// The stream key of `user_id`.
    pub fn key_of(&self, user_id: &str) -> String {
        self.keys.task_stream(user_id)
    }

    /// A connection of its own for a blocking reader (a blocked `XREAD` would stall others),
    /// whose commands may wait `response_timeout` (longer than the reader's `BLOCK`).
    ///
    /// # Errors
    /// When Redis cannot be reached.
    pub async fn reader(&self, response_timeout: std::time::Duration) -> redis::RedisResult<MultiplexedConnection> {
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(std::time::Duration::from_secs(2)))
            .set_response_timeout(Some(response_timeout));
        self.client.get_multiplexed_async_connection_with_config(&config).await
    }
}

/// The event of one stream entry of `user_id`.
pub(crate) fn event_of(user_id: &str, entry: redis::streams::StreamId) -> TaskEvent {
    let text = |f: &str| entry.get::<String>(f).unwrap_or_default();
    TaskEvent {
        message_id: text("messageId"),
        user_id: user_id.to_owned(),
        topic: text("topic"),
        state: parse_state(&text("state")),
        attempts: entry.get("attempts").unwrap_or(0),
        occurred_at_ms: entry.get("at").unwrap_or(0),
        cursor: entry.id,
    }
}
