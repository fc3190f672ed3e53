//! The shard router, byte-exact with the original `db-router` "HashCode" strategy (spec §3).
//!
//! `idx = (dbCount*tbCount - 1) & (h ^ (h >>> 16))` where `h` is Java's `String.hashCode`
//! over UTF-16 code units; `db = idx / tbCount` (0-based here; the original's `db01` is 0)
//! and `table = idx % tbCount`. `xiaofuge` → first shard, `_001`.

/// Where a user's rows live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// 0-based shard index: 0 = `big_market_01`, 1 = `big_market_02`.
    pub db: usize,
    /// Split-table index 0..tbCount: the `_000` .. `_003` suffix.
    pub table: usize,
}

impl Route {
    /// The split-table suffix, e.g. `_001`.
    pub fn suffix(&self) -> String {
        format!("_{:03}", self.table)
    }

    /// The original's database key, e.g. `01`.
    pub fn db_key(&self) -> String {
        format!("{:02}", self.db + 1)
    }
}

/// Routes user ids to (shard, table). Counts come from configuration; their product must be a
/// power of two, as in the original.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardRouter {
    db_count: usize,
    tb_count: usize,
}

/// The configured shard layout is not one the original algorithm supports.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("db_count ({db_count}) × tb_count ({tb_count}) must be a power of two ≥ 1")]
pub struct InvalidLayout {
    db_count: usize,
    tb_count: usize,
}

impl ShardRouter {
    /// A router over `db_count` shard databases of `tb_count` split tables each.
    ///
    /// # Errors
    /// [`InvalidLayout`] when either count is 0 or their product is not a power of two.
    pub fn new(db_count: usize, tb_count: usize) -> Result<Self, InvalidLayout> {
        let size = db_count.checked_mul(tb_count).unwrap_or(0);
        if db_count == 0 || tb_count == 0 || !size.is_power_of_two() || size > i32::MAX as usize {
            return Err(InvalidLayout { db_count, tb_count });
        }
        Ok(Self { db_count, tb_count })
    }

    /// Number of shard databases.
    pub fn db_count(&self) -> usize {
        self.db_count
    }

    /// Number of split tables per shard.
    pub fn tb_count(&self) -> usize {
        self.tb_count
    }

    /// Routes a user id.
    pub fn route(&self, user_id: &str) -> Route {
        let h = java_string_hash(user_id);
        let spread = h ^ ((h as u32) >> 16) as i32;
        let idx = ((self.db_count * self.tb_count - 1) as i32 & spread) as usize;
        Route {
            db: idx / self.tb_count,
            table: idx % self.tb_count,
        }
    }
}

/// Java's `String.hashCode`: `h = 31*h + c` (wrapping) over UTF-16 code units.
pub fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0_i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_match_the_original_fixtures() {
        let r = ShardRouter::new(2, 4).unwrap();
        let cases = [
            ("xiaofuge", 0, 1),
            ("user001", 1, 0),
            ("user002", 1, 1),
            ("user003", 0, 2),
            ("user004", 0, 3),
            ("user005", 0, 0),
            ("user006", 0, 1),
            ("liergou", 0, 1),
            ("咸鱼12138", 1, 2),
            ("system", 0, 3),
            ("kiss", 1, 0),
            ("zhan", 0, 2),
            ("chen", 0, 0),
        ];
        for (user, db, table) in cases {
            assert_eq!(r.route(user), Route { db, table }, "{user}");
        }
        assert_eq!(r.route("xiaofuge").suffix(), "_001");
        assert_eq!(r.route("xiaofuge").db_key(), "01");
    }

    #[test]
    fn hashes_utf16_code_units_like_java() {
        assert_eq!(java_string_hash("xiaofuge"), 265_141_580);
        assert_eq!(java_string_hash("咸鱼12138"), -1_689_275_311);
        assert_eq!(java_string_hash(""), 0);
        // A non-BMP character is two UTF-16 code units (surrogate pair): 0xD83D, 0xDE00.
        assert_eq!(java_string_hash("😀"), 0xD83D * 31 + 0xDE00);
        assert_eq!(java_string_hash("a😀"), (97 * 31 + 0xD83D) * 31 + 0xDE00);
    }

    #[test]
    fn rejects_layouts_the_algorithm_cannot_route() {
        assert!(ShardRouter::new(3, 4).is_err());
        assert!(ShardRouter::new(0, 4).is_err());
        assert!(ShardRouter::new(4, 4).is_ok());
    }
}
