//! The checks every schedule implementation passes (run against SQL on each engine, Redis and
//! RabbitMQ from `tests/integration/engines.rs`): claims are disjoint, a claim's lease comes back,
//! and a deadline is acted on on time and never early.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{Deadlines, DueIndex, OnDue};
use crate::server::domain::OrderRow;
use crate::server::store::Store;
use crate::server::support::clock::now_ms;

async fn place(store: &Store, id: &str, deadline_in_ms: i64) -> OrderRow {
    let order = crate::server::store::testing::pin_order(id, deadline_in_ms, -1);
    store.create_order(&order, "Shop").await.unwrap();
    store.load(id).await.unwrap().unwrap()
}

/// Two claimers racing over the same due orders: each order goes to exactly one of them.
pub async fn claims_are_disjoint(a: &dyn DueIndex, b: &dyn DueIndex, store: &Store, tag: &str) {
    let ids: Vec<String> = (0..40).map(|i| format!("{tag}D{i:02}")).collect();
    for id in &ids {
        let row = place(store, id, 900_000).await;
        a.changed(&row).await;
    }
    let later = |_: &OrderRow, _: i64| now_ms() + 60_000;
    let mut got: Vec<String> = Vec::new();
    for _ in 0..5 {
        let (x, y) = tokio::join!(a.claim(now_ms(), 7, &later), b.claim(now_ms(), 7, &later));
        got.extend(x.unwrap().into_iter().map(|r| r.id));
        got.extend(y.unwrap().into_iter().map(|r| r.id));
    }
    let (x, y) = tokio::join!(
        a.claim(now_ms(), 100, &later),
        b.claim(now_ms(), 100, &later)
    );
    got.extend(x.unwrap().into_iter().map(|r| r.id));
    got.extend(y.unwrap().into_iter().map(|r| r.id));
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want, "every due order claimed once");
}

/// A claimed order is not claimed again before its next check, and is once that comes (its
/// claimer died, or checked it and planned the next check then).
pub async fn a_claim_comes_back_at_its_next_check(index: &dyn DueIndex, store: &Store, tag: &str) {
    let id = format!("{tag}L1");
    let row = place(store, &id, 900_000).await;
    index.changed(&row).await;
    let soon = |_: &OrderRow, _: i64| now_ms() + 400;
    let first = index.claim(now_ms(), 10, &soon).await.unwrap();
    assert_eq!(
        first.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    assert!(index.claim(now_ms(), 10, &soon).await.unwrap().is_empty());
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let again = index.claim(now_ms(), 10, &soon).await.unwrap();
    assert_eq!(
        again.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
        [id.as_str()]
    );
    assert!(store
        .load(&id)
        .await
        .unwrap()
        .unwrap()
        .next_check_at
        .is_some());
}

/// Deadlines set `at` are acted on after the deadline, never before, and within `slack`.
pub async fn deadlines_are_on_time_and_never_early(
    deadlines: Arc<dyn Deadlines>,
    store: &Store,
    tag: &str,
    slack: Duration,
) {
    let fired: Arc<Mutex<Vec<(String, i64)>>> = Arc::default();
    let on_due: OnDue = {
        let fired = fired.clone();
        let store = store.clone();
        Arc::new(move |id: String| {
            let (fired, store) = (fired.clone(), store.clone());
            Box::pin(async move {
                fired.lock().unwrap().push((id.clone(), now_ms()));
                // What the close flow's claim does: the order leaves the poller's view.
                let check = now_ms() + 60_000;
                let reason = crate::app::types::FailureReason::Expired;
                store
                    .begin_close(&id, reason, crate::server::domain::Cause::Timeout, check)
                    .await
                    .map(|_| ())
            })
        })
    };
    let token = CancellationToken::new();
    let running = tokio::spawn(deadlines.run(on_due, token.clone()));
    let mut want = Vec::new();
    for (i, ms) in [2_000i64, 3_000].into_iter().enumerate() {
        let id = format!("{tag}T{i}");
        let row = place(store, &id, ms).await;
        deadlines.at(id.clone(), row.deadline_at).await;
        want.push((id, row.deadline_at));
    }
    let until = now_ms() + 3_000 + slack.as_millis() as i64 + 1_000;
    while now_ms() < until && fired.lock().unwrap().len() < want.len() {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    token.cancel();
    let _ = tokio::time::timeout(Duration::from_secs(5), running).await;
    let fired = fired.lock().unwrap().clone();
    for (id, deadline) in want {
        let at: Vec<i64> = fired
            .iter()
            .filter(|(f, _)| *f == id)
            .map(|(_, at)| *at)
            .collect();
        assert!(!at.is_empty(), "{id} never acted on: {fired:?}");
        assert!(at[0] >= deadline, "{id} {} ms early", deadline - at[0]);
        assert!(
            at[0] <= deadline + slack.as_millis() as i64,
            "{id} {} ms late",
            at[0] - deadline
        );
    }
}
