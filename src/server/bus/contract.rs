//! The checks every pay-result bus passes (run against the inbox on each engine and RabbitMQ
//! from `tests/integration/engines.rs`): a result handed over is applied once however often and
//! however concurrently it is handed over, one handed over while no consumer runs is applied
//! when one starts, and two consumers split the work without applying anything twice.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{OnApplied, PayResults, Received};
use crate::server::domain::{PaidOutcome, PayResult};
use crate::server::store::Store;
use crate::server::support::clock::now_ms;

async fn order(store: &Store, id: &str) -> PayResult {
    let o = crate::server::store::testing::pin_order(id, 900_000, 60_000);
    let fee = store.create_order(&o, "Shop").await.unwrap().total_fee;
    PayResult {
        out_trade_no: id.into(),
        transaction_id: format!("42000{id}"),
        total_fee: fee,
        time_end: "20261127120000".into(),
        paid_at_ms: now_ms(),
        received_at_ms: None,
    }
}

type Seen = Arc<Mutex<Vec<(String, PaidOutcome)>>>;

fn recorder() -> (OnApplied, Seen) {
    let seen: Seen = Arc::default();
    let s = seen.clone();
    let hook: OnApplied = Arc::new(move |r: Received| {
        s.lock().unwrap().push((r.order_id, r.outcome));
        Box::pin(async {})
    });
    (hook, seen)
}

async fn until(what: &str, within: Duration, f: impl Fn() -> bool) {
    let end = std::time::Instant::now() + within;
    while !f() {
        assert!(
            std::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn paid_events(store: &Store, id: &str) -> usize {
    let events = store.events(id).await.unwrap();
    events.iter().filter(|e| e.kind == "paid").count()
}

/// Handed over three times in a row and three times at once, each result is applied once.
pub async fn duplicates_are_applied_once(bus: Arc<dyn PayResults>, store: &Store, tag: &str) {
    let (hook, seen) = recorder();
    let token = CancellationToken::new();
    let consumer = tokio::spawn(bus.consume(hook, token.clone()));
    let (a, b) = (
        order(store, &format!("{tag}A")).await,
        order(store, &format!("{tag}B")).await,
    );
    for _ in 0..3 {
        bus.publish(&a).await.unwrap();
    }
    let (x, y, z) = tokio::join!(bus.publish(&b), bus.publish(&b), bus.publish(&b));
    x.unwrap();
    y.unwrap();
    z.unwrap();
    until("both applied", Duration::from_secs(15), || {
        seen.lock().unwrap().len() >= 2
    })
    .await;
    // Give a late duplicate time to arrive, then look: still once each.
    tokio::time::sleep(Duration::from_millis(500)).await;
    token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), consumer).await;
    let mut seen = seen.lock().unwrap().clone();
    seen.sort_by(|p, q| p.0.cmp(&q.0));
    assert_eq!(
        seen,
        [
            (a.out_trade_no.clone(), PaidOutcome::Paid),
            (b.out_trade_no.clone(), PaidOutcome::Paid)
        ]
    );
    for id in [&a.out_trade_no, &b.out_trade_no] {
        assert_eq!(paid_events(store, id).await, 1, "{id}");
    }
}

/// Handed over while no consumer runs: applied by the next one to start; with two consumers
/// running, each result is applied by exactly one of them.
pub async fn kept_until_consumed_and_split_between_consumers(
    bus: Arc<dyn PayResults>,
    store: &Store,
    tag: &str,
) {
    let mut results = Vec::new();
    for i in 0..12 {
        results.push(order(store, &format!("{tag}K{i:02}")).await);
    }
    for r in &results[..6] {
        bus.publish(r).await.unwrap();
    }
    let (hook, seen) = recorder();
    let token = CancellationToken::new();
    let one = tokio::spawn(bus.consume(hook.clone(), token.clone()));
    let two = tokio::spawn(bus.consume(hook, token.clone()));
    for r in &results[6..] {
        bus.publish(r).await.unwrap();
    }
    until("all applied", Duration::from_secs(20), || {
        seen.lock().unwrap().len() >= 12
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), one).await;
    let _ = tokio::time::timeout(Duration::from_secs(5), two).await;
    assert_eq!(
        seen.lock().unwrap().len(),
        12,
        "each applied by one consumer only"
    );
    for r in &results {
        assert_eq!(
            paid_events(store, &r.out_trade_no).await,
            1,
            "{}",
            r.out_trade_no
        );
    }
}
