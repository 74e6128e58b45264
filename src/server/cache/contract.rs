//! The checks every status cache passes (run against `none` and Redis from
//! `tests/integration/engines.rs`): whatever was written to it and in whatever order, the poll's
//! read (`cache::status`) answers what SQL holds; a write that could not reach the cache leaves
//! the entry a miss until `repair`, which rewrites every one.

use super::{status, CachedStatus, StatusCache};
use crate::server::domain::{Cause, NewItem, NewOrder, Payment};
use crate::server::store::Store;
use crate::server::support::clock::now_ms;

async fn place(store: &Store, id: &str) {
    let order = NewOrder {
        id: id.into(),
        session_id: "s1".into(),
        created_at: now_ms(),
        deadline_at: now_ms() + 900_000,
        first_check_at: now_ms(),
        max_open: 1000,
        items: vec![NewItem {
            sku: "PIN-PANDA".into(),
            qty: 1,
        }],
    };
    store.create_order(&order, "Shop").await.unwrap();
}

async fn truth(store: &Store, id: &str) -> Option<CachedStatus> {
    store.load(id).await.unwrap().map(|r| CachedStatus::of(&r))
}

async fn pay(store: &Store, id: &str) {
    let row = store.load(id).await.unwrap().unwrap();
    let p = Payment {
        out_trade_no: id.into(),
        transaction_id: format!("4200{id}"),
        total_fee: row.total_fee,
        paid_at: now_ms(),
    };
    store.mark_paid(&p, Cause::Notify).await.unwrap();
}

/// Reads agree with SQL through every change, and a late (stale) write never moves an entry back.
pub async fn reads_agree_with_sql_and_never_move_back(cache: &dyn StatusCache, store: &Store) {
    let id = format!("CC{}", now_ms() % 100_000_000);
    assert_eq!(status(cache, store, "NO-SUCH-ORDER").await.unwrap(), None);
    place(store, &id).await;
    let pending = store.load(&id).await.unwrap().unwrap();
    cache.changed(&pending).await;
    assert_eq!(
        status(cache, store, &id).await.unwrap(),
        truth(store, &id).await
    );
    store
        .record_code_url(&id, "weixin://wxpay/x", "wx1")
        .await
        .unwrap();
    cache
        .changed(&store.load(&id).await.unwrap().unwrap())
        .await;
    let shown = status(cache, store, &id).await.unwrap().unwrap();
    assert!(shown.qr_ready, "{shown:?}");
    pay(store, &id).await;
    let paid = store.load(&id).await.unwrap().unwrap();
    cache.changed(&paid).await;
    cache.changed(&pending).await; // a writer that read the row before the payment
    assert_eq!(
        status(cache, store, &id).await.unwrap(),
        truth(store, &id).await
    );
    assert_eq!(
        status(cache, store, &id).await.unwrap().unwrap().status,
        crate::app::types::OrderStatus::Paid
    );
}

/// With the cache cut (`cut(true)`), changes still commit and reads still agree with SQL; what
/// could not be written is repaired once the cache is back (`cut(false)`), every entry of it.
pub async fn an_unwritten_change_is_a_miss_until_repaired(
    cache: &dyn StatusCache,
    store: &Store,
    cut: &(dyn Fn(bool) + Sync),
) {
    let ids: Vec<String> = (0..5)
        .map(|i| format!("CD{i}{}", now_ms() % 10_000_000))
        .collect();
    for id in &ids {
        place(store, id).await;
        cache.changed(&store.load(id).await.unwrap().unwrap()).await;
    }
    cut(true);
    for id in &ids {
        pay(store, id).await;
        cache.changed(&store.load(id).await.unwrap().unwrap()).await;
        assert_eq!(
            status(cache, store, id).await.unwrap(),
            truth(store, id).await
        );
    }
    let marked = cache.dirty();
    assert!(!cache.enabled() || marked == ids.len(), "{marked} marked");
    assert!(cache.repair(store).await.is_err() || !cache.enabled());
    cut(false);
    // The first command after a cut may still meet the broken connection.
    let mut rewritten = 0;
    for _ in 0..20 {
        if let Ok(n) = cache.repair(store).await {
            rewritten += n;
            if cache.dirty() == 0 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    assert_eq!(cache.dirty(), 0);
    assert_eq!(rewritten, if cache.enabled() { ids.len() } else { 0 });
    for id in &ids {
        assert_eq!(
            cache.get(id).await.unwrap(),
            if cache.enabled() {
                truth(store, id).await
            } else {
                None
            },
            "{id} rewritten"
        );
    }
}
