//! The last known quota of recently drawing users, kept in process so that a user's next draw
//! can decide without reading the shard first.
//!
//! An entry is only a guess: the save checks the account `version` (and the ticket state)
//! under the row lock, so a stale entry costs one `moved` answer and a fresh read, never a
//! wrong write. A refusal is never taken from the cache: quota may have been recharged
//! elsewhere, so a draw the cache would refuse is decided again on a fresh read.

use std::collections::HashMap;
use std::sync::Mutex;

use super::account::QuotaAccount;
use crate::ids::ActivityId;

/// Entries kept before the cache starts over (about 200 bytes each).
pub const CAPACITY: usize = 100_000;

/// `(user, activity) → QuotaAccount` after that user's last save in this process.
#[derive(Debug, Default)]
pub struct QuotaCache {
    entries: Mutex<HashMap<(String, ActivityId), QuotaAccount>>,
}

impl QuotaCache {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, ActivityId), QuotaAccount>> {
        self.entries.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The last known quota of `user` in `activity`.
    pub fn get(&self, user: &str, activity: ActivityId) -> Option<QuotaAccount> {
        self.lock().get(&(user.to_owned(), activity)).cloned()
    }

    /// Remembers `account` as its user's current quota. When the cache is full it starts
    /// over: a miss costs one read.
    pub fn put(&self, account: QuotaAccount) {
        let mut map = self.lock();
        if map.len() >= CAPACITY {
            map.clear();
        }
        map.insert((account.user_id.clone(), account.activity_id), account);
    }

    /// Forgets `user`'s quota in `activity` (after a change this process cannot describe).
    pub fn forget(&self, user: &str, activity: ActivityId) {
        self.lock().remove(&(user.to_owned(), activity));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_quota_is_returned_until_forgotten() {
        let cache = QuotaCache::default();
        let a = QuotaAccount::empty("u", ActivityId::new(1));
        cache.put(a.clone());
        assert_eq!(cache.get("u", ActivityId::new(1)), Some(a));
        assert_eq!(cache.get("u", ActivityId::new(2)), None);
        cache.forget("u", ActivityId::new(1));
        assert_eq!(cache.get("u", ActivityId::new(1)), None);
    }
}
