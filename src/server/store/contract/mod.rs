//! The store contract: what every engine must do, checked against each one on a fresh database.
//! Transitions and their guards, stock conservation, the event log, anomalies recorded once, the
//! inbox's idempotency, and claims that give concurrent claimers disjoint work.
//! This file holds the runner, the list of checks and the helpers they share; the checks are in
//! files by subject.

mod inbox;
mod refunds;
mod schedule;
mod session;
mod transitions;

use std::future::Future;
use std::pin::Pin;

use super::Store;
use crate::app::types::OrderStatus;
use crate::server::domain::{CreateError, Created, NewItem, NewOrder, Payment};
use crate::server::support::clock::now_ms;

type Check = fn(Store) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every check, by name.
pub fn checks() -> Vec<(&'static str, Check)> {
    vec![
        ("create reserves stock and prices from the catalogue", |s| {
            Box::pin(transitions::create_reserves_stock(s))
        }),
        ("create refuses more than stock and writes nothing", |s| {
            Box::pin(transitions::create_is_all_or_nothing(s))
        }),
        ("the paid transition is guarded by status and amount", |s| {
            Box::pin(transitions::paid_is_guarded(s))
        }),
        ("failed and closed restore stock exactly once", |s| {
            Box::pin(transitions::stock_restored_once(s))
        }),
        (
            "begin_close is a claim and parked orders are left alone",
            |s| Box::pin(transitions::begin_close_claims(s)),
        ),
        (
            "a QR code is recorded once, however many flows bring it",
            |s| Box::pin(transitions::qr_recorded_once(s)),
        ),
        ("concurrent claimers get disjoint due orders", |s| {
            Box::pin(schedule::claims_are_disjoint(s))
        }),
        (
            "a claim sets each claimed order's own next check and counts its attempts",
            |s| Box::pin(schedule::claims_set_each_next_check(s)),
        ),
        (
            "load_many reads the orders that exist, each once, however many ids",
            |s| Box::pin(schedule::load_many_reads_what_exists(s)),
        ),
        (
            "schedule_checks moves unfinished orders' checks as schedule_check does",
            |s| Box::pin(schedule::schedule_checks_like_schedule_check(s)),
        ),
        (
            "the inbox keeps one row per transaction and applies it once",
            |s| Box::pin(inbox::inbox_is_idempotent(s)),
        ),
        (
            "a received pay result is recorded and applied once, anomalies included",
            |s| Box::pin(inbox::receive_applies_once(s)),
        ),
        (
            "pay results received together end as each would alone",
            |s| Box::pin(inbox::receive_together_as_alone(s)),
        ),
        (
            "a shopper lists their orders newest first and hides finished ones",
            |s| Box::pin(session::session_orders_and_hide(s)),
        ),
        ("refund guards hold and a refusal writes nothing", |s| {
            Box::pin(refunds::guards_hold_and_refusals_write_nothing(s))
        }),
        (
            "of concurrent refunds that together exceed the payment, one wins",
            |s| Box::pin(refunds::concurrent_refunds_cannot_exceed_the_payment(s)),
        ),
        ("refund transitions, and what a success changes", |s| {
            Box::pin(refunds::transitions_and_what_a_success_changes(s))
        }),
        ("an anomaly's payment is refunded once and resolved", |s| {
            Box::pin(refunds::anomaly_payments_are_refunded_once_and_resolved(s))
        }),
        ("concurrent refund claimers get disjoint refunds", |s| {
            Box::pin(refunds::refund_claims_are_disjoint(s))
        }),
        ("concurrent settles of one refund apply it once", |s| {
            Box::pin(refunds::concurrent_settles_apply_once(s))
        }),
    ]
}

/// Runs every check against `engine`, each on a database of its own that is removed afterwards.
pub async fn run(engine: &str) {
    for (name, check) in checks() {
        let db = super::testing::TestDb::new(engine).await;
        let store = super::connect(&db.url, &Default::default()).await.unwrap();
        store.migrate().await.unwrap();
        let outcome = tokio::spawn(check(store.clone())).await;
        store.close_pool().await;
        db.remove().await;
        if let Err(e) = outcome {
            panic!("{engine}: {name}: {e}");
        }
    }
}

fn order(id: &str, items: &[(&str, i64)]) -> NewOrder {
    NewOrder {
        id: id.into(),
        session_id: "s1".into(),
        created_at: now_ms(),
        deadline_at: now_ms() + 900_000,
        first_check_at: now_ms(),
        max_open: 100,
        items: items
            .iter()
            .map(|(s, q)| NewItem {
                sku: s.to_string(),
                qty: *q,
            })
            .collect(),
    }
}

async fn place(s: &Store, id: &str, items: &[(&str, i64)]) -> Result<Created, CreateError> {
    s.create_order(&order(id, items), "Shop").await
}

async fn stock(s: &Store, sku: &str) -> i64 {
    s.products()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.sku == sku)
        .unwrap()
        .stock
}

async fn status(s: &Store, id: &str) -> OrderStatus {
    s.load(id).await.unwrap().unwrap().status
}

async fn kinds(s: &Store, id: &str) -> Vec<String> {
    s.events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

fn payment(id: &str, fee: i64, txn: &str) -> Payment {
    Payment {
        out_trade_no: id.into(),
        transaction_id: txn.into(),
        total_fee: fee,
        paid_at: 1,
    }
}

#[tokio::test]
async fn sqlite_meets_the_contract() {
    run("sqlite").await;
}

#[tokio::test]
async fn postgres_meets_the_contract() {
    run("postgres").await;
}

#[tokio::test]
async fn mysql_meets_the_contract() {
    run("mysql").await;
}
