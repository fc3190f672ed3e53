//! Collision-free order and message ids: snowflake ids behind the domain's [`IdGenerator`].
//!
//! The original draws 12-digit random order ids and 11-digit random message ids, which collide
//! under load (spec §8.2 item 17). A snowflake id is unique by construction instead:
//!
//! ```text
//!  0 | 41 bits: ms since 2024-01-01T00:00:00Z | 10 bits: worker id | 12 bits: sequence
//! ```
//!
//! The sign bit stays 0, so every id is a positive `i64`, written as decimal digits (at most 19;
//! the id columns are `varchar(32)` since migration `m20241123_000001_widen_ids`). Ids of one
//! generator strictly increase; generators with different worker ids never produce the same id.
//! The 41-bit timestamp lasts until 2093.
//!
//! Worker ids come from [`SnowflakeIds::lease_worker`], a Redis counter shared by all processes.

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use domain::ports::IdGenerator;

/// 2024-01-01T00:00:00Z in milliseconds since the Unix epoch.
const EPOCH_MS: u64 = 1_704_067_200_000;
/// Bits of the worker id.
const WORKER_BITS: u32 = 10;
/// Bits of the per-millisecond sequence.
const SEQUENCE_BITS: u32 = 12;
/// Bits of the timestamp; with the sign bit the id fills exactly 64 bits.
const TIMESTAMP_BITS: u32 = 41;
/// Number of distinct worker ids (1024).
pub const WORKER_COUNT: u16 = 1 << WORKER_BITS;
/// Largest sequence number within one millisecond (4095).
const MAX_SEQUENCE: u64 = (1 << SEQUENCE_BITS) - 1;
/// Largest timestamp that fits its 41 bits.
const MAX_TIMESTAMP: u64 = (1 << TIMESTAMP_BITS) - 1;
/// Redis counter (after the key prefix) from which worker ids are leased.
const WORKER_SEQ_KEY: &str = "big_market_id_worker_seq";

/// A worker id outside `0..1024`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("snowflake worker id {0} is out of range (must be below {WORKER_COUNT})")]
pub struct WorkerIdOutOfRange(pub u16);

/// [`IdGenerator`] producing snowflake ids (see the module docs) for one worker id.
#[derive(Debug)]
pub struct SnowflakeIds {
    worker_id: u16,
    /// `(timestamp, sequence)` of the last id handed out. A mutex rather than an atomic: the
    /// critical section is a few instructions, and waiting for the next millisecond on sequence
    /// overflow is simpler to get right while holding it.
    last: Mutex<(u64, u64)>,
}

impl SnowflakeIds {
    /// A generator for `worker_id`, which must be below 1024 and unique among the processes
    /// writing to the same databases (use [`SnowflakeIds::lease_worker`]).
    ///
    /// # Errors
    /// [`WorkerIdOutOfRange`] when `worker_id` is 1024 or more.
    pub fn new(worker_id: u16) -> Result<Self, WorkerIdOutOfRange> {
        if worker_id >= WORKER_COUNT {
            return Err(WorkerIdOutOfRange(worker_id));
        }
        Ok(Self {
            worker_id,
            last: Mutex::new((0, 0)),
        })
    }

    /// The worker id embedded in every id of this generator.
    pub fn worker_id(&self) -> u16 {
        self.worker_id
    }

    /// Leases a worker id for this process: `INCR {key_prefix}big_market_id_worker_seq`, minus
    /// one, modulo 1024.
    ///
    /// Every call (one per process start) takes the next worker id of a cycle of 1024, so
    /// processes running at the same time get distinct worker ids **as long as at most 1024
    /// leases (restarts included) are taken while the oldest running process lives**. Leases
    /// are never returned: the 1025th lease after a process's own reuses its worker id, and ids
    /// may then collide while both processes run.
    ///
    /// # Errors
    /// The Redis error when the counter cannot be incremented.
    pub async fn lease_worker(conn: &mut redis::aio::ConnectionManager, key_prefix: &str) -> redis::RedisResult<u16> {
        let value: i64 = redis::cmd("INCR")
            .arg(format!("{key_prefix}{WORKER_SEQ_KEY}"))
            .query_async(conn)
            .await?;
        // INCR starts at 1; `rem_euclid` keeps even a tampered negative counter in range.
        let worker = (value - 1).rem_euclid(i64::from(WORKER_COUNT));
        Ok(u16::try_from(worker).unwrap_or_default())
    }

    /// The next `(timestamp, sequence)`: strictly after the previous one.
    fn next_parts(&self) -> (u64, u64) {
        // A poisoned lock only means another thread panicked between reading and writing a
        // plain pair of integers; the stored pair is still a valid "last" value.
        let mut last = self.last.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (last_ms, last_seq) = *last;
        let now = now_ms();
        let next = if now > last_ms {
            (now, 0)
        } else if last_seq < MAX_SEQUENCE {
            // Same millisecond, or a clock that went backwards: keep counting in the last one.
            (last_ms, last_seq + 1)
        } else if now < last_ms {
            // The clock is behind and the last millisecond is used up: move on to the next one
            // instead of stalling every caller until the clock catches up (which may take
            // seconds after an NTP step).
            (last_ms + 1, 0)
        } else {
            // 4096 ids in this millisecond: wait (under a millisecond) for the next one.
            let mut now = now;
            while now <= last_ms {
                std::thread::sleep(Duration::from_micros(100));
                now = now_ms();
            }
            (now, 0)
        };
        *last = next;
        next
    }

    /// The next id as an integer (what [`IdGenerator::next_id`] prints).
    pub fn next_i64(&self) -> i64 {
        let (ms, seq) = self.next_parts();
        let id = ((ms & MAX_TIMESTAMP) << (WORKER_BITS + SEQUENCE_BITS))
            | (u64::from(self.worker_id) << SEQUENCE_BITS)
            | seq;
        // The top bit is never set: 41 + 10 + 12 = 63 bits.
        i64::try_from(id).unwrap_or(i64::MAX)
    }
}

impl IdGenerator for SnowflakeIds {
    fn next_id(&self) -> String {
        self.next_i64().to_string()
    }
}

/// Milliseconds since the custom epoch; 0 when the system clock is before it.
fn now_ms() -> u64 {
    let since_unix = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_millis())
        .unwrap_or(0);
    u64::try_from(since_unix).unwrap_or(u64::MAX).saturating_sub(EPOCH_MS)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Arc;

    use super::*;

    #[test]
    fn worker_ids_from_1024_on_are_rejected() {
        assert_eq!(SnowflakeIds::new(1023).map(|ids| ids.worker_id()), Ok(1023));
        assert_eq!(SnowflakeIds::new(1024).err(), Some(WorkerIdOutOfRange(1024)));
        assert!(SnowflakeIds::new(u16::MAX).is_err());
    }

    #[test]
    fn an_id_is_the_decimal_form_of_a_positive_i64_with_its_worker_inside() {
        let ids = SnowflakeIds::new(777).unwrap();
        let id: i64 = ids.next_id().parse().unwrap();
        assert!(id > 0);
        assert_eq!((id >> SEQUENCE_BITS) & i64::from(WORKER_COUNT - 1), 777);
        let ms = u64::try_from(id >> (WORKER_BITS + SEQUENCE_BITS)).unwrap();
        assert!(ms.abs_diff(now_ms()) < 60_000, "timestamp {ms} is not now");
    }

    #[test]
    fn eight_threads_get_unique_ids_increasing_per_thread() {
        let ids = Arc::new(SnowflakeIds::new(5).unwrap());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let ids = Arc::clone(&ids);
                std::thread::spawn(move || {
                    let drawn: Vec<i64> = (0..20_000).map(|_| ids.next_id().parse::<i64>().unwrap()).collect();
                    assert!(
                        drawn.windows(2).all(|pair| pair[0] < pair[1]),
                        "not strictly increasing"
                    );
                    drawn
                })
            })
            .collect();
        let mut all = HashSet::new();
        for thread in threads {
            for id in thread.join().unwrap() {
                assert!(id > 0);
                assert!(all.insert(id), "duplicate id {id}");
            }
        }
        assert_eq!(all.len(), 8 * 20_000);
    }

    #[test]
    fn generators_with_different_workers_never_collide() {
        let first = SnowflakeIds::new(0).unwrap();
        let second = SnowflakeIds::new(1).unwrap();
        let mut seen = HashSet::new();
        for _ in 0..20_000 {
            assert!(seen.insert(first.next_id()));
            assert!(seen.insert(second.next_id()));
        }
    }

    #[test]
    fn a_clock_that_went_backwards_neither_repeats_nor_decreases() {
        let ids = SnowflakeIds::new(3).unwrap();
        // Pretend the last id was issued one minute in the future.
        let future = now_ms() + 60_000;
        *ids.last.lock().unwrap() = (future, 0);
        let first = ids.next_i64();
        let second = ids.next_i64();
        assert!(first < second);
        assert_eq!(u64::try_from(first >> (WORKER_BITS + SEQUENCE_BITS)).unwrap(), future);
    }

    #[test]
    fn a_clock_that_went_backwards_moves_on_when_the_millisecond_is_used_up() {
        let ids = SnowflakeIds::new(3).unwrap();
        let future = now_ms() + 60_000;
        *ids.last.lock().unwrap() = (future, MAX_SEQUENCE);
        assert_eq!(ids.next_parts(), (future + 1, 0));
    }

    #[test]
    fn an_exhausted_millisecond_waits_for_the_next_one() {
        let ids = SnowflakeIds::new(9).unwrap();
        let now = now_ms();
        *ids.last.lock().unwrap() = (now, MAX_SEQUENCE);
        let (ms, seq) = ids.next_parts();
        assert!(ms > now);
        assert_eq!(seq, 0);
    }
}
