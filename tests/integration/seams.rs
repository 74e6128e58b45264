//! Each seam's contract suite against each implementation: the embedded ones on the engine under
//! test (`TEST_DATABASE`), Redis and RabbitMQ for real (each test under names of its own; a
//! missing service fails the test, it never skips it).

use std::sync::Arc;
use std::time::Duration;

use scanpay::server::amqp::Rabbit;
use scanpay::server::bus::{self, PayResults};
use scanpay::server::cache;
use scanpay::server::redis_conn::RedisConn;
use scanpay::server::schedule::{self, Deadlines, DueIndex};
use scanpay::server::store::testing::{engine_under_test, TestDb};
use scanpay::server::store::{self, Store};

use crate::common::{amqp_url, redis_url, unique_prefix, Proxy};
use crate::engines::{rabbit_settings, test_rabbit};

/// A migrated database of the engine under test, removed when dropped (with `close`).
struct Db {
    store: Store,
    testdb: Option<TestDb>,
}

impl Db {
    async fn new() -> Db {
        let testdb = TestDb::new(&engine_under_test()).await;
        let store = store::connect(&testdb.url, &Default::default())
            .await
            .unwrap();
        store.migrate().await.unwrap();
        Db {
            store,
            testdb: Some(testdb),
        }
    }

    async fn close(mut self) {
        self.store.close_pool().await;
        if let Some(db) = self.testdb.take() {
            db.remove().await;
        }
    }
}

use crate::engines::RedisCleanup as RedisKeys;

async fn redis(prefix: &str) -> Arc<RedisConn> {
    Arc::new(RedisConn::connect(&redis_url(), prefix).await.unwrap())
}

// ---- bus

#[tokio::test]
async fn the_inbox_bus_meets_the_contract() {
    let db = Db::new().await;
    let bus: Arc<dyn PayResults> = Arc::new(bus::inbox::InboxBus::new(db.store.clone()));
    bus::contract::duplicates_are_applied_once(bus.clone(), &db.store, "IB").await;
    bus::contract::kept_until_consumed_and_split_between_consumers(bus, &db.store, "IB").await;
    db.close().await;
}

#[tokio::test]
async fn the_rabbitmq_bus_meets_the_contract() {
    let db = Db::new().await;
    let (rabbit, _cleanup) = test_rabbit(&[]).await;
    let bus: Arc<dyn PayResults> =
        Arc::new(bus::amqp::AmqpBus::new(Arc::new(rabbit), db.store.clone()));
    bus::contract::duplicates_are_applied_once(bus.clone(), &db.store, "RB").await;
    bus::contract::kept_until_consumed_and_split_between_consumers(bus, &db.store, "RB").await;
    db.close().await;
}

// ---- status cache

#[tokio::test]
async fn no_cache_meets_the_contract() {
    let db = Db::new().await;
    let none = cache::none::NoCache;
    cache::contract::reads_agree_with_sql_and_never_move_back(&none, &db.store).await;
    cache::contract::an_unwritten_change_is_a_miss_until_repaired(&none, &db.store, &|_| {}).await;
    db.close().await;
}

#[tokio::test]
async fn the_redis_cache_meets_the_contract_with_redis_cut_and_back() {
    let db = Db::new().await;
    let prefix = unique_prefix();
    let _keys = RedisKeys(prefix.clone());
    let c = cache::redis::RedisCache::new(redis(&prefix).await, Duration::from_secs(20));
    cache::contract::reads_agree_with_sql_and_never_move_back(&c, &db.store).await;
    // The same cache over a proxy the test cuts.
    let proxy = Proxy::start("127.0.0.1:6379").await;
    let cut_conn = Arc::new(
        RedisConn::connect(&format!("redis://127.0.0.1:{}/0", proxy.port), &prefix)
            .await
            .unwrap(),
    );
    let c = cache::redis::RedisCache::new(cut_conn, Duration::from_secs(20));
    let cut = |down: bool| if down { proxy.cut() } else { proxy.restore() };
    cache::contract::an_unwritten_change_is_a_miss_until_repaired(&c, &db.store, &cut).await;
    db.close().await;
}

// ---- schedule

#[tokio::test]
async fn the_sql_schedule_meets_the_contract() {
    let db = Db::new().await;
    let (a, b) = (
        schedule::sql::SqlDueIndex::new(db.store.clone()),
        schedule::sql::SqlDueIndex::new(db.store.clone()),
    );
    schedule::contract::claims_are_disjoint(&a, &b, &db.store, "SQ").await;
    schedule::contract::a_claim_comes_back_at_its_next_check(&a, &db.store, "SQ").await;
    let deadlines: Arc<dyn Deadlines> =
        Arc::new(schedule::sql::SqlDeadlines::new(db.store.clone(), 4));
    schedule::contract::deadlines_are_on_time_and_never_early(
        deadlines,
        &db.store,
        "SQ",
        Duration::from_millis(1_500),
    )
    .await;
    db.close().await;
}

#[tokio::test]
async fn the_redis_due_index_meets_the_contract() {
    let db = Db::new().await;
    let prefix = unique_prefix();
    let _keys = RedisKeys(prefix.clone());
    let (ca, cb) = (redis(&prefix).await, redis(&prefix).await);
    let a: Arc<dyn DueIndex> = Arc::new(schedule::redis::RedisDueIndex::new(
        ca,
        db.store.clone(),
        5_000,
    ));
    let b: Arc<dyn DueIndex> = Arc::new(schedule::redis::RedisDueIndex::new(
        cb,
        db.store.clone(),
        5_000,
    ));
    schedule::contract::claims_are_disjoint(&*a, &*b, &db.store, "RQ").await;
    // The claims came from Redis (not its fallback to SQL): the sorted set holds the claimed
    // orders at the next check the claim planned (a minute ahead), not at their first one.
    let conn = redis(&prefix).await;
    let mut c = conn.conn();
    let score: Option<f64> = ::redis::cmd("ZSCORE")
        .arg(conn.key("due"))
        .arg("RQD00")
        .query_async(&mut c)
        .await
        .unwrap();
    let now = scanpay::server::support::clock::now_ms() as f64;
    assert!(
        score.is_some_and(|s| s > now + 30_000.0),
        "RQD00 at {score:?}, now {now}"
    );
    // The claims came from Redis (not its fallback to SQL): the sorted set holds the claimed
    // orders at the next check the claim planned (a minute ahead), not at their first one.
    let conn = redis(&prefix).await;
    let mut c = conn.conn();
    let score: Option<f64> = ::redis::cmd("ZSCORE")
        .arg(conn.key("due"))
        .arg("RQD00")
        .query_async(&mut c)
        .await
        .unwrap();
    let now = scanpay::server::support::clock::now_ms() as f64;
    assert!(
        score.is_some_and(|s| s > now + 30_000.0),
        "RQD00 at {score:?}, now {now}"
    );
    schedule::contract::a_claim_comes_back_at_its_next_check(&*a, &db.store, "RQ").await;
    // Made to hold exactly what SQL lists.
    let (added, removed) = a.repair().await.unwrap();
    assert_eq!(removed, 0, "every indexed order is unfinished in SQL");
    assert!(added <= 41, "{added}");
    db.close().await;
}

#[tokio::test]
async fn rabbitmq_delay_queues_meet_the_deadline_contract() {
    let db = Db::new().await;
    let prefix = unique_prefix();
    let s = rabbit_settings(&amqp_url(), &prefix);
    let rabbit = Arc::new(Rabbit::connect(s).await.unwrap());
    let _cleanup = crate::engines::RabbitCleanup::new(rabbit.settings().clone(), vec![2, 3]);
    // The SQL net far behind: only the delay queues can be on time here.
    let net = schedule::sql::SqlDeadlines::new(db.store.clone(), 4)
        .behind(Duration::from_secs(600), Duration::from_secs(1));
    let deadlines: Arc<dyn Deadlines> = Arc::new(schedule::amqp_delay::AmqpDeadlines::new(
        rabbit,
        Duration::from_secs(3),
        net,
    ));
    schedule::contract::deadlines_are_on_time_and_never_early(
        deadlines,
        &db.store,
        "AQ",
        Duration::from_millis(1_500),
    )
    .await;
    db.close().await;
}
