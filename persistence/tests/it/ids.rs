//! Worker id leases from the shared Redis counter.

use std::collections::HashSet;

use domain::ports::IdGenerator;
use persistence::SnowflakeIds;

use crate::helpers::TestEnv;

#[tokio::test]
async fn two_leases_get_different_worker_ids() {
    let env = TestEnv::new().await;
    let mut conn = env.redis.clone();
    let prefix = env.keys.prefix().to_owned();

    let first = SnowflakeIds::lease_worker(&mut conn, &prefix).await.unwrap();
    let second = SnowflakeIds::lease_worker(&mut conn, &prefix).await.unwrap();
    assert_eq!(first, 0, "a fresh counter starts the cycle at worker 0");
    assert_ne!(first, second);

    let (a, b) = (SnowflakeIds::new(first).unwrap(), SnowflakeIds::new(second).unwrap());
    let mut seen = HashSet::new();
    for _ in 0..1_000 {
        assert!(seen.insert(a.next_id()));
        assert!(seen.insert(b.next_id()));
    }

    env.cleanup().await;
}
