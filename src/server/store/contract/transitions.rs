//! The transitions and their guards: placing reserves stock all or nothing, paid only at the
//! order's amount (anything else an anomaly, recorded once, that parks the order), failed and closed
//! restore stock exactly once, begin_close is a claim, and a QR code is recorded once.

use crate::app::types::{FailureReason, OrderStatus};
use crate::server::domain::{Cause, CreateError, PaidOutcome};
use crate::server::store::Store;
use crate::server::support::clock::now_ms;

use super::{kinds, order, payment, place, status, stock};

pub(super) async fn create_reserves_stock(s: Store) {
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

pub(super) async fn create_is_all_or_nothing(s: Store) {
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

pub(super) async fn paid_is_guarded(s: Store) {
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

pub(super) async fn stock_restored_once(s: Store) {
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

pub(super) async fn qr_recorded_once(s: Store) {
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

pub(super) async fn begin_close_claims(s: Store) {
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
