//! The store contract: what every engine must do, checked against each one on a fresh database.
//! Transitions and their guards, stock conservation, the event log, anomalies recorded once, the
//! inbox's idempotency, and claims that give concurrent claimers disjoint work.

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;

use super::Store;
use crate::app::types::{FailureReason, OrderStatus};
use crate::server::domain::PayResult;
use crate::server::domain::{
    Cause, CreateError, Created, HideOutcome, NewItem, NewOrder, PaidOutcome, Payment,
};
use crate::server::support::clock::now_ms;

type Check = fn(Store) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Every check, by name.
pub fn checks() -> Vec<(&'static str, Check)> {
    vec![
        ("create reserves stock and prices from the catalogue", |s| {
            Box::pin(create_reserves_stock(s))
        }),
        ("create refuses more than stock and writes nothing", |s| {
            Box::pin(create_is_all_or_nothing(s))
        }),
        ("the paid transition is guarded by status and amount", |s| {
            Box::pin(paid_is_guarded(s))
        }),
        ("failed and closed restore stock exactly once", |s| {
            Box::pin(stock_restored_once(s))
        }),
        (
            "begin_close is a claim and parked orders are left alone",
            |s| Box::pin(begin_close_claims(s)),
        ),
        (
            "a QR code is recorded once, however many flows bring it",
            |s| Box::pin(qr_recorded_once(s)),
        ),
        ("concurrent claimers get disjoint due orders", |s| {
            Box::pin(claims_are_disjoint(s))
        }),
        (
            "a claim sets each claimed order's own next check and counts its attempts",
            |s| Box::pin(claims_set_each_next_check(s)),
        ),
        (
            "load_many reads the orders that exist, each once, however many ids",
            |s| Box::pin(load_many_reads_what_exists(s)),
        ),
        (
            "schedule_checks moves unfinished orders' checks as schedule_check does",
            |s| Box::pin(schedule_checks_like_schedule_check(s)),
        ),
        (
            "the inbox keeps one row per transaction and applies it once",
            |s| Box::pin(inbox_is_idempotent(s)),
        ),
        (
            "a received pay result is recorded and applied once, anomalies included",
            |s| Box::pin(receive_applies_once(s)),
        ),
        (
            "pay results received together end as each would alone",
            |s| Box::pin(receive_together_as_alone(s)),
        ),
        (
            "a shopper lists their orders newest first and hides finished ones",
            |s| Box::pin(session_orders_and_hide(s)),
        ),
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

async fn create_reserves_stock(s: Store) {
    let c = place(&s, "O1", &[("TEA-OOLONG", 2), ("PIN-PANDA", 1)])
        .await
        .unwrap();
    assert_eq!(c.total_fee, 2 * 6800 + 101);
    assert_eq!(c.body, "Shop - Tieguanyin oolong +1 more");
    assert_eq!(stock(&s, "TEA-OOLONG").await, 18);
    assert_eq!(status(&s, "O1").await, OrderStatus::Pending);
    assert_eq!(kinds(&s, "O1").await, vec!["created"]);
    let items = s.items("O1").await.unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!((items[1].sku.as_str(), items[1].qty), ("TEA-OOLONG", 2));
}

async fn create_is_all_or_nothing(s: Store) {
    let e = place(&s, "O1", &[("TEA-OOLONG", 1), ("NB-GRID", 4)])
        .await
        .unwrap_err();
    assert!(
        matches!(e, CreateError::OutOfStock { ref sku, left: 3, .. } if sku == "NB-GRID"),
        "{e:?}"
    );
    assert_eq!(stock(&s, "TEA-OOLONG").await, 20, "first line rolled back");
    assert!(s.load("O1").await.unwrap().is_none());
    assert!(matches!(
        place(&s, "O2", &[("NOPE", 1)]).await.unwrap_err(),
        CreateError::UnknownSku(_)
    ));
    let mut limited = order("O3", &[("PIN-PANDA", 1)]);
    limited.max_open = 1;
    s.create_order(&limited, "Shop").await.unwrap();
    limited.id = "O4".into();
    assert!(matches!(
        s.create_order(&limited, "Shop").await.unwrap_err(),
        CreateError::TooManyOpen(1)
    ));
    assert_eq!(
        stock(&s, "PIN-PANDA").await,
        49,
        "the refused order holds nothing"
    );
}

async fn paid_is_guarded(s: Store) {
    let fee = place(&s, "O1", &[("BUN-RED", 1)]).await.unwrap().total_fee;
    assert_eq!(
        s.mark_paid(&payment("O1", fee + 1, "T1"), Cause::Notify)
            .await
            .unwrap(),
        PaidOutcome::Anomaly("amount_mismatch")
    );
    let o = s.load("O1").await.unwrap().unwrap();
    assert_eq!((o.status, o.parked), (OrderStatus::Pending, true));
    // The same evidence again (a sweep, a notify retry) is recorded once.
    for _ in 0..3 {
        s.mark_paid(&payment("O1", fee + 1, "T1"), Cause::Sweep)
            .await
            .unwrap();
    }
    let claimed = s.claim_due(i64::MAX, 10, &|_, _| 0).await.unwrap();
    assert!(claimed.is_empty(), "a parked order is never due");
    assert_eq!(
        s.mark_paid(&payment("O1", fee, "T1"), Cause::Notify)
            .await
            .unwrap(),
        PaidOutcome::Paid
    );
    assert_eq!(
        s.mark_paid(&payment("O1", fee, "T1"), Cause::Notify)
            .await
            .unwrap(),
        PaidOutcome::AlreadyPaid
    );
    assert_eq!(
        s.mark_paid(&payment("O1", fee, "T2"), Cause::Sweep)
            .await
            .unwrap(),
        PaidOutcome::Anomaly("second_payment")
    );
    assert_eq!(
        s.mark_paid(&payment("NOPE", 1, "T3"), Cause::Notify)
            .await
            .unwrap(),
        PaidOutcome::Anomaly("unknown_order")
    );
    let o = s.load("O1").await.unwrap().unwrap();
    assert_eq!(
        (o.status, o.transaction_id.as_deref()),
        (OrderStatus::Paid, Some("T1"))
    );
    assert_eq!(
        s.anomaly_kinds("O1").await.unwrap(),
        vec!["amount_mismatch", "second_payment"]
    );
    assert_eq!(
        kinds(&s, "O1").await,
        vec!["created", "anomaly", "parked", "paid", "anomaly"]
    );
    let listed = s.anomalies(10).await.unwrap();
    assert_eq!(listed.len(), 3);
    assert!(listed
        .iter()
        .any(|a| a.order_id == "NOPE" && a.order_status.is_none()));
}

async fn stock_restored_once(s: Store) {
    place(&s, "O1", &[("MUG-CELADON", 3)]).await.unwrap();
    assert_eq!(stock(&s, "MUG-CELADON").await, 5);
    let reason = FailureReason::PaymentNotCreated;
    assert!(s.fail("O1", reason, Cause::System, "NOAUTH").await.unwrap());
    assert!(!s.fail("O1", reason, Cause::System, "again").await.unwrap());
    assert_eq!(stock(&s, "MUG-CELADON").await, 8);
    assert_eq!(
        s.mark_paid(&payment("O1", 3 * 12800, "T1"), Cause::Notify)
            .await
            .unwrap(),
        PaidOutcome::Anomaly("paid_after_close")
    );
    assert_eq!(status(&s, "O1").await, OrderStatus::Failed);

    // closing → closed, and pending → closed straight away; each restores once.
    place(&s, "O2", &[("MUG-CELADON", 1)]).await.unwrap();
    place(&s, "O3", &[("MUG-CELADON", 2)]).await.unwrap();
    assert_eq!(stock(&s, "MUG-CELADON").await, 5);
    let cancelled = FailureReason::Cancelled;
    assert!(s
        .begin_close("O2", cancelled, Cause::Shopper, now_ms())
        .await
        .unwrap());
    let expired = FailureReason::Expired;
    for _ in 0..2 {
        s.close("O2", expired, Cause::Sweep, "CLOSED")
            .await
            .unwrap();
        s.close("O3", expired, Cause::Sweep, "CLOSED")
            .await
            .unwrap();
    }
    assert_eq!(stock(&s, "MUG-CELADON").await, 8);
    let o2 = s.load("O2").await.unwrap().unwrap();
    assert_eq!(
        (o2.status, o2.failure_reason),
        (OrderStatus::Closed, Some(cancelled)),
        "the reason given when closing began is kept"
    );
    let o3 = s.load("O3").await.unwrap().unwrap();
    assert_eq!(
        (o3.status, o3.failure_reason),
        (OrderStatus::Closed, Some(expired))
    );
    assert_eq!(kinds(&s, "O2").await, vec!["created", "closing", "closed"]);

    // A paid order keeps its stock and gets no QR code any more.
    let fee = place(&s, "O4", &[("MUG-CELADON", 1)])
        .await
        .unwrap()
        .total_fee;
    s.mark_paid(&payment("O4", fee, "T4"), Cause::Notify)
        .await
        .unwrap();
    assert!(!s.fail("O4", reason, Cause::System, "late").await.unwrap());
    assert!(!s.close("O4", expired, Cause::Sweep, "late").await.unwrap());
    assert_eq!(stock(&s, "MUG-CELADON").await, 7);
    assert!(!s.record_code_url("O4", "weixin://x", "p").await.unwrap());
}

async fn qr_recorded_once(s: Store) {
    place(&s, "Q1", &[("PIN-PANDA", 1)]).await.unwrap();
    // The place flow and a sweep that re-sent unifiedorder get the same code at once.
    let recorded = futures::future::join_all(
        (0..3).map(|_| s.record_code_url("Q1", "weixin://wxpay/bizpayurl?pr=same", "wx1")),
    )
    .await;
    assert_eq!(
        recorded
            .into_iter()
            .filter(|r| *r.as_ref().unwrap())
            .count(),
        1
    );
    let issued = |s: Store| async move {
        s.events("Q1")
            .await
            .unwrap()
            .iter()
            .filter(|e| e.kind == "qr_issued")
            .count()
    };
    assert_eq!(issued(s.clone()).await, 1);
    // A new code (the old one expired) is a new event.
    assert!(s
        .record_code_url("Q1", "weixin://wxpay/bizpayurl?pr=new", "wx2")
        .await
        .unwrap());
    assert_eq!(issued(s.clone()).await, 2);
}

async fn begin_close_claims(s: Store) {
    place(&s, "O1", &[("PIN-PANDA", 1)]).await.unwrap();
    let attempts = futures::future::join_all((0..4).map(|_| {
        s.begin_close(
            "O1",
            FailureReason::Expired,
            Cause::Timeout,
            now_ms() + 5000,
        )
    }))
    .await;
    let won = attempts
        .into_iter()
        .filter(|r| *r.as_ref().unwrap())
        .count();
    assert_eq!(won, 1, "one close flow per deadline");
    // Its next check is where the closer put it, not now: the sweep does not run it twice.
    assert!(s
        .claim_due(now_ms(), 10, &|_, _| 0)
        .await
        .unwrap()
        .is_empty());

    let fee = place(&s, "O2", &[("PIN-PANDA", 1)])
        .await
        .unwrap()
        .total_fee;
    s.mark_paid(&payment("O2", fee - 1, "T2"), Cause::Notify)
        .await
        .unwrap();
    let now = now_ms();
    assert!(!s
        .begin_close("O2", FailureReason::Expired, Cause::Timeout, now)
        .await
        .unwrap());
    sqlx_free_deadline_check(&s, "O2").await;
}

/// A parked order is not among the due deadlines, however late it is.
async fn sqlx_free_deadline_check(s: &Store, id: &str) {
    let (due, _) = s.due_deadlines(i64::MAX, 100).await.unwrap();
    assert!(!due.contains(&id.to_string()), "{due:?}");
}

async fn claims_are_disjoint(s: Store) {
    let mut ids = Vec::new();
    for i in 0..40 {
        let id = format!("C{i:02}");
        place(&s, &id, &[("PIN-PANDA", 1)]).await.unwrap();
        s.schedule_check(&id, 1000 + i).await.unwrap();
        ids.push(id);
    }
    let later = now_ms() + 60_000;
    let next = move |_: &crate::server::domain::OrderRow, _: i64| later;
    let claims = futures::future::join_all((0..4).map(|_| s.claim_due(10_000, 15, &next))).await;
    let mut seen = HashSet::new();
    let mut total = 0;
    for c in claims {
        for o in c.unwrap() {
            total += 1;
            assert!(seen.insert(o.id.clone()), "{} claimed twice", o.id);
        }
    }
    assert_eq!(total, seen.len());
    assert!(total >= 15, "claimers made progress: {total}");
    // What is left is still due, and nothing claimed is due again before `later`.
    let rest = s.claim_due(10_000, 100, &|_, _| later).await.unwrap();
    assert_eq!(total + rest.len(), 40);
    assert!(rest.iter().all(|o| !seen.contains(&o.id)));
    let (due, next) = s.due_deadlines(now_ms(), 100).await.unwrap();
    assert!(due.is_empty());
    assert!(next.is_some());
}

async fn claims_set_each_next_check(s: Store) {
    for i in 0..6 {
        let id = format!("N{i}");
        place(&s, &id, &[("PIN-PANDA", 1)]).await.unwrap();
        s.schedule_check(&id, 1000 + i).await.unwrap();
    }
    // Each order's next check from its own row and attempts: N3 at 20_030 + attempts.
    let next = |o: &crate::server::domain::OrderRow, attempts: i64| {
        20_000 + 10 * o.id[1..].parse::<i64>().unwrap() + attempts
    };
    let claimed = s.claim_due(10_000, 4, &next).await.unwrap();
    let ids: Vec<_> = claimed.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["N0", "N1", "N2", "N3"], "the earliest due first");
    for i in 0..6 {
        let o = s.load(&format!("N{i}")).await.unwrap().unwrap();
        let want = if i < 4 { 20_000 + 10 * i } else { 1000 + i };
        assert_eq!(o.next_check_at, Some(want), "N{i}");
    }
    // Claimed again later: the attempt is counted, for the claimed ones only.
    let claimed = s.claim_due(20_025, 10, &next).await.unwrap();
    let mut ids: Vec<_> = claimed.iter().map(|o| o.id.clone()).collect();
    ids.sort();
    assert_eq!(ids, ["N0", "N1", "N2", "N4", "N5"]);
    let s = &s;
    let at = |i: i64| async move { s.load(&format!("N{i}")).await.unwrap().unwrap() };
    assert_eq!(at(0).await.next_check_at, Some(20_001), "a second attempt");
    assert_eq!(
        at(3).await.next_check_at,
        Some(20_030),
        "not due, not claimed"
    );
    assert_eq!(at(4).await.next_check_at, Some(20_040), "a first attempt");
}

async fn load_many_reads_what_exists(s: Store) {
    for id in ["M1", "M2", "M3"] {
        place(&s, id, &[("PIN-PANDA", 1)]).await.unwrap();
    }
    let fee = s.load("M3").await.unwrap().unwrap().total_fee;
    s.mark_paid(&payment("M3", fee, "T-M3"), Cause::Notify)
        .await
        .unwrap();
    assert!(s.load_many(&[]).await.unwrap().is_empty());
    let ids = |rows: &[crate::server::domain::OrderRow]| {
        let mut ids: Vec<_> = rows.iter().map(|o| o.id.clone()).collect();
        ids.sort();
        ids
    };
    let asked = ["M2", "NOPE", "M1", "M2", "M3"].map(String::from);
    let rows = s.load_many(&asked).await.unwrap();
    assert_eq!(
        ids(&rows),
        ["M1", "M2", "M3"],
        "each once, the missing one absent"
    );
    for row in &rows {
        let one = s.load(&row.id).await.unwrap().unwrap();
        assert_eq!(
            (row.status, row.total_fee, row.next_check_at, &row.body),
            (one.status, one.total_fee, one.next_check_at, &one.body),
            "{}",
            row.id
        );
    }
    assert_eq!(
        rows.iter().find(|o| o.id == "M3").unwrap().status,
        OrderStatus::Paid
    );
    // More ids than one statement takes: found in every chunk.
    let mut many: Vec<String> = (0..1200).map(|i| format!("X{i:04}")).collect();
    many[0] = "M1".into();
    many[700] = "M2".into();
    many[1199] = "M3".into();
    assert_eq!(ids(&s.load_many(&many).await.unwrap()), ["M1", "M2", "M3"]);
}

async fn schedule_checks_like_schedule_check(s: Store) {
    for id in ["P1", "P2", "P3", "P4", "P5"] {
        place(&s, id, &[("PIN-PANDA", 1)]).await.unwrap();
    }
    let fee = s.load("P3").await.unwrap().unwrap().total_fee;
    s.mark_paid(&payment("P3", fee, "T-P3"), Cause::Notify)
        .await
        .unwrap();
    s.mark_paid(&payment("P4", fee + 1, "T-P4"), Cause::Notify)
        .await
        .unwrap(); // parked
    assert!(s
        .begin_close("P5", FailureReason::Cancelled, Cause::Shopper, now_ms())
        .await
        .unwrap());
    s.schedule_checks(&[]).await.unwrap();
    let checks = [
        ("P1", 111),
        ("P2", 5),
        ("P3", 333),
        ("P4", 444),
        ("P5", 555),
        ("NOPE", 1),
        ("P2", 222), // the last one given wins
    ]
    .map(|(id, at)| (id.to_string(), at));
    s.schedule_checks(&checks).await.unwrap();
    let next = |id: &'static str| {
        let s = s.clone();
        async move { s.load(id).await.unwrap().unwrap().next_check_at }
    };
    assert_eq!(next("P1").await, Some(111));
    assert_eq!(next("P2").await, Some(222));
    assert_eq!(next("P3").await, None, "a paid order has no checks");
    assert_eq!(next("P4").await, None, "a parked order has no checks");
    assert_eq!(next("P5").await, Some(555), "a closing order is checked");
    assert!(s.load("NOPE").await.unwrap().is_none());
    // The same as schedule_check one at a time would leave.
    s.schedule_check("P1", 5).await.unwrap();
    s.schedule_check("P3", 5).await.unwrap();
    s.schedule_check("P4", 5).await.unwrap();
    assert_eq!(
        (next("P1").await, next("P3").await, next("P4").await),
        (Some(5), None, None)
    );
    // More checks than one statement takes.
    let mut many: Vec<(String, i64)> = (0..1100).map(|i| (format!("X{i:04}"), i)).collect();
    many[3] = ("P1".into(), 7_000);
    many[1099] = ("P2".into(), 9_000);
    s.schedule_checks(&many).await.unwrap();
    assert_eq!(
        (next("P1").await, next("P2").await),
        (Some(7_000), Some(9_000))
    );
    let due = s.claim_due(8_000, 10, &|_, _| i64::MAX / 2).await.unwrap();
    let due: Vec<_> = due.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(due, ["P5", "P1"], "claims follow the new checks");
}

async fn inbox_is_idempotent(s: Store) {
    let fee = place(&s, "O1", &[("TEA-OOLONG", 1)])
        .await
        .unwrap()
        .total_fee;
    let n = PayResult {
        out_trade_no: "O1".into(),
        transaction_id: "4200000001".into(),
        total_fee: fee,
        time_end: "20261127120000".into(),
        paid_at_ms: 1,
    };
    for _ in 0..3 {
        s.publish_pay_result(&n).await.unwrap();
    }
    let due = s.due_pay_results(now_ms(), 10).await.unwrap();
    assert_eq!(due.len(), 1, "one row per transaction");
    let p = due[0].0.clone();
    let applied = futures::future::join_all((0..4).map(|_| s.apply_pay_result(&p))).await;
    let outcomes: Vec<_> = applied
        .into_iter()
        .filter_map(|r| r.unwrap().map(|a| a.outcome))
        .collect();
    assert_eq!(
        outcomes,
        vec![PaidOutcome::Paid],
        "applied by exactly one consumer"
    );
    assert!(s.due_pay_results(now_ms(), 10).await.unwrap().is_empty());
    assert_eq!(
        kinds(&s, "O1").await,
        vec!["created", "notify_received", "paid"]
    );
    // A failed application is backed off, not retried at once.
    let n2 = PayResult {
        transaction_id: "4200000002".into(),
        out_trade_no: "O2".into(),
        ..n
    };
    s.publish_pay_result(&n2).await.unwrap();
    s.back_off_pay_result("4200000002", now_ms() + 60_000, "boom")
        .await
        .unwrap();
    assert!(s.due_pay_results(now_ms(), 10).await.unwrap().is_empty());
    let (p, attempts) = s
        .due_pay_results(now_ms() + 120_000, 10)
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!((p.transaction_id.as_str(), attempts), ("4200000002", 1));
}

async fn receive_applies_once(s: Store) {
    let fee = place(&s, "R1", &[("TEA-OOLONG", 1)])
        .await
        .unwrap()
        .total_fee;
    let n = PayResult {
        out_trade_no: "R1".into(),
        transaction_id: "4200000011".into(),
        total_fee: fee,
        time_end: "20261127120000".into(),
        paid_at_ms: 1,
    };
    // A message delivered three times at once (a redelivery racing the first delivery).
    let received = futures::future::join_all((0..3).map(|_| s.receive_pay_result(&n))).await;
    let outcomes: Vec<_> = received
        .into_iter()
        .filter_map(|r| r.unwrap().map(|a| a.outcome))
        .collect();
    assert_eq!(outcomes, vec![PaidOutcome::Paid], "applied exactly once");
    let o = s.load("R1").await.unwrap().unwrap();
    assert_eq!(
        (o.status, o.transaction_id.as_deref(), o.next_check_at),
        (OrderStatus::Paid, Some("4200000011"), None)
    );
    assert_eq!(
        kinds(&s, "R1").await,
        vec!["created", "notify_received", "paid"]
    );
    assert!(s
        .due_pay_results(now_ms() + 3_600_000, 10)
        .await
        .unwrap()
        .is_empty());

    // Recorded through the inbox before but never applied: received now, applied now.
    let fee2 = place(&s, "R2", &[("PIN-PANDA", 1)])
        .await
        .unwrap()
        .total_fee;
    let n2 = PayResult {
        out_trade_no: "R2".into(),
        transaction_id: "4200000012".into(),
        total_fee: fee2,
        ..n.clone()
    };
    s.publish_pay_result(&n2).await.unwrap();
    assert_eq!(
        s.receive_pay_result(&n2).await.unwrap().map(|a| a.outcome),
        Some(PaidOutcome::Paid)
    );
    assert!(s
        .due_pay_results(now_ms() + 3_600_000, 10)
        .await
        .unwrap()
        .is_empty());

    // Another amount: not applied, recorded as an anomaly, the order parked for an operator.
    place(&s, "R3", &[("PIN-PANDA", 1)]).await.unwrap();
    let n3 = PayResult {
        out_trade_no: "R3".into(),
        transaction_id: "4200000013".into(),
        total_fee: 1,
        ..n.clone()
    };
    assert_eq!(
        s.receive_pay_result(&n3).await.unwrap().map(|a| a.outcome),
        Some(PaidOutcome::Anomaly("amount_mismatch"))
    );
    assert_eq!(status(&s, "R3").await, OrderStatus::Pending);
    assert_eq!(
        kinds(&s, "R3").await,
        vec!["created", "notify_received", "anomaly", "parked"]
    );
    assert!(s.load("R3").await.unwrap().unwrap().parked);
    assert_eq!(
        s.receive_pay_result(&n3).await.unwrap().map(|a| a.outcome),
        None,
        "once"
    );
}

async fn receive_together_as_alone(s: Store) {
    use PaidOutcome::{Anomaly, Paid};
    let notify = |id: &str, txn: &str, fee: i64| PayResult {
        out_trade_no: id.into(),
        transaction_id: txn.into(),
        total_fee: fee,
        time_end: "20261127120000".into(),
        paid_at_ms: 1,
    };
    let mut fee = std::collections::HashMap::new();
    for id in ["T1", "T2", "T3", "T4", "T5", "T6"] {
        fee.insert(
            id,
            place(&s, id, &[("PIN-PANDA", 1)]).await.unwrap().total_fee,
        );
    }
    // The engine's batch itself (a failing one would hide behind the one-by-one fallback).
    place(&s, "T0", &[("PIN-PANDA", 1)]).await.unwrap();
    let (t0, nope) = (
        notify("T0", "4200000020", 101),
        notify("NOPE", "4200000029", 101),
    );
    // MySQL and SQLite answer for both.
    let both = |all: Result<Vec<Option<super::Applied>>, sqlx::Error>| {
        let outcomes = all.unwrap().into_iter().map(|a| a.map(|a| a.outcome));
        let ids = ["T0", "NOPE"].map(String::from);
        ids.into_iter().zip(outcomes).collect::<Vec<_>>()
    };
    let outcomes: Vec<(String, Option<PaidOutcome>)> = match &s.engine {
        super::Engine::Postgres(pg) => {
            let rows = pg.receive_payable_batch(&[&t0, &nope]).await.unwrap();
            let row = rows.iter().find(|r| r.id == "T0").unwrap();
            assert_eq!(
                (row.status, row.transaction_id.as_deref()),
                (OrderStatus::Paid, Some("4200000020"))
            );
            rows.into_iter().map(|r| (r.id, Some(Paid))).collect()
        }
        super::Engine::Mysql(my) => both(my.receive_together(&[&t0, &nope]).await),
        super::Engine::Sqlite(lite) => both(lite.receive_together(&[&t0, &nope]).await),
    };
    let expected = match &s.engine {
        // PostgreSQL's statement pays the payable ones and leaves the rest to the caller.
        super::Engine::Postgres(_) => vec![("T0".to_string(), Some(Paid))],
        _ => vec![
            ("T0".to_string(), Some(Paid)),
            ("NOPE".to_string(), Some(Anomaly("unknown_order"))),
        ],
    };
    assert_eq!(outcomes, expected);
    assert_eq!(status(&s, "T0").await, OrderStatus::Paid);
    assert_eq!(
        kinds(&s, "T0").await,
        ["created", "notify_received", "paid"]
    );
    let t4 = notify("T4", "4200000024", fee["T4"]);
    assert_eq!(
        s.receive_pay_result(&t4).await.unwrap().map(|a| a.outcome),
        Some(Paid)
    );
    let batch = [
        notify("T1", "4200000021", fee["T1"]),
        notify("T2", "4200000022", fee["T2"]),
        notify("T1", "4200000021", fee["T1"]), // the same message twice in one batch
        notify("T3", "4200000023", 1),         // another amount
        notify("T4", "4200000025", fee["T4"]), // a second payment for a paid order
        notify("NOPE", "4200000026", 101),     // no such order
        t4.clone(),                            // applied before
    ];
    let got: Vec<_> = s
        .receive_pay_results(&batch)
        .await
        .into_iter()
        .map(|r| r.unwrap().map(|a| a.outcome))
        .collect();
    assert_eq!(
        got,
        [
            Some(Paid),
            Some(Paid),
            None,
            Some(Anomaly("amount_mismatch")),
            Some(Anomaly("second_payment")),
            Some(Anomaly("unknown_order")),
            None,
        ]
    );
    for id in ["T1", "T2"] {
        assert_eq!(
            kinds(&s, id).await,
            ["created", "notify_received", "paid"],
            "{id}"
        );
        let o = s.load(id).await.unwrap().unwrap();
        assert_eq!(
            (o.status, o.paid_at, o.next_check_at),
            (OrderStatus::Paid, Some(1), None)
        );
    }
    assert_eq!(
        s.load("T1")
            .await
            .unwrap()
            .unwrap()
            .transaction_id
            .as_deref(),
        Some("4200000021")
    );
    assert_eq!(status(&s, "T3").await, OrderStatus::Pending);
    assert!(s
        .due_pay_results(now_ms() + 3_600_000, 10)
        .await
        .unwrap()
        .is_empty());

    // One of them recorded in the inbox before (so the batch cannot be written as one): each is
    // applied on its own, with the same outcome.
    let t6 = notify("T6", "4200000028", fee["T6"]);
    s.publish_pay_result(&t6).await.unwrap();
    let got: Vec<_> = s
        .receive_pay_results(&[notify("T5", "4200000027", fee["T5"]), t6])
        .await
        .into_iter()
        .map(|r| r.unwrap().map(|a| a.outcome))
        .collect();
    assert_eq!(got, [Some(Paid), Some(Paid)]);
    assert_eq!(
        kinds(&s, "T6").await,
        ["created", "notify_received", "paid"]
    );

    // The same batch at two consumers at once: each payment applied exactly once.
    let mut batch = Vec::new();
    for i in 0..8 {
        let id = format!("TC{i}");
        let fee = place(&s, &id, &[("PIN-PANDA", 1)]).await.unwrap().total_fee;
        batch.push(notify(&id, &format!("42000001{i:02}"), fee));
    }
    let (a, b) = tokio::join!(s.receive_pay_results(&batch), s.receive_pay_results(&batch));
    for (i, (a, b)) in a.into_iter().zip(b).enumerate() {
        let mut both = [a.unwrap().map(|a| a.outcome), b.unwrap().map(|a| a.outcome)];
        both.sort_by_key(|o| o.is_some());
        assert_eq!(both, [None, Some(Paid)], "TC{i}");
        assert_eq!(
            kinds(&s, &format!("TC{i}")).await,
            ["created", "notify_received", "paid"]
        );
    }
}

async fn session_orders_and_hide(s: Store) {
    let first = place(&s, "H1", &[("PIN-PANDA", 1)]).await.unwrap();
    place(&s, "H2", &[("PIN-PANDA", 1)]).await.unwrap();
    let mut theirs = order("H3", &[("PIN-PANDA", 1)]);
    theirs.session_id = "s2".into();
    s.create_order(&theirs, "Shop").await.unwrap();
    let ids = |rows: Vec<crate::server::domain::OrderRow>| {
        rows.into_iter().map(|r| r.id).collect::<Vec<_>>()
    };
    assert_eq!(ids(s.session_orders("s1", 50).await.unwrap()), ["H2", "H1"]);
    assert_eq!(ids(s.session_orders("s1", 1).await.unwrap()), ["H2"]);

    assert_eq!(s.hide("H1", "s1").await.unwrap(), HideOutcome::NotFinished);
    assert_eq!(
        s.hide("H3", "s1").await.unwrap(),
        HideOutcome::NotFound,
        "not theirs"
    );
    assert_eq!(s.hide("NOPE", "s1").await.unwrap(), HideOutcome::NotFound);
    s.mark_paid(&payment("H1", first.total_fee, "T-H1"), Cause::Notify)
        .await
        .unwrap();
    for _ in 0..2 {
        assert_eq!(s.hide("H1", "s1").await.unwrap(), HideOutcome::Hidden);
    }
    assert_eq!(ids(s.session_orders("s1", 50).await.unwrap()), ["H2"]);
    // A logical delete: the order and its history stay for operators.
    assert_eq!(status(&s, "H1").await, OrderStatus::Paid);
    assert_eq!(
        kinds(&s, "H1").await,
        vec!["created", "paid", "hidden"],
        "hidden once"
    );
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
