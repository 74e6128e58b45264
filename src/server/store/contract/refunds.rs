//! Refunds: the guards (paid only, the sum, 50, the spacing, a double click), one winner among
//! concurrent refunds that together would exceed the payment, the transitions and what a
//! success changes (refunded amount, restock once, the anomaly resolved), and disjoint claims.

use super::{kinds, payment, place, stock, Store};
use crate::app::types::{FailureReason, OrderStatus};
use crate::server::domain::{
    Cause, NewRefund, RefundEnd, RefundOf, RefundRefusal, RefundStatus, Requested,
};
use crate::server::support::clock::now_ms;

fn ask(id: &str, fee: Option<i64>, spacing_ms: i64) -> NewRefund {
    let now = now_ms();
    NewRefund {
        order_id: id.into(),
        of: RefundOf::Order,
        refund_fee: fee,
        reason: "broken".into(),
        requested_by: "alice".into(),
        cause: Cause::Operator,
        restock: false,
        now,
        spacing_ms,
        first_check_at: now,
    }
}

/// A paid order of one 6,800-fen tin; returns its total.
async fn paid(s: &Store, id: &str, txn: &str) -> i64 {
    let fee = place(s, id, &[("TEA-OOLONG", 1)]).await.unwrap().total_fee;
    s.mark_paid(&payment(id, fee, txn), Cause::Notify)
        .await
        .unwrap();
    fee
}

fn success() -> RefundEnd {
    RefundEnd::Success {
        refund_id: Some("50000000000000000000000000001".into()),
        success_time: Some("2026-12-01 10:00:00".into()),
        recv_account: Some("支付用户零钱".into()),
    }
}

pub async fn guards_hold_and_refusals_write_nothing(s: Store) {
    // Not paid: refused, nothing written.
    place(&s, "U1", &[("TEA-OOLONG", 1)]).await.unwrap();
    assert_eq!(
        s.request_refund(&ask("U1", Some(100), 0)).await.unwrap(),
        Err(RefundRefusal::NotPaid(OrderStatus::Pending))
    );
    assert_eq!(
        s.request_refund(&ask("NOPE", Some(100), 0)).await.unwrap(),
        Err(RefundRefusal::NoOrder)
    );
    assert!(s.refunds_of("U1").await.unwrap().is_empty());
    assert!(!kinds(&s, "U1")
        .await
        .iter()
        .any(|k| k.starts_with("refund")));

    let fee = paid(&s, "P1", "T1").await;
    let first = s
        .request_refund(&ask("P1", Some(1000), 60_000))
        .await
        .unwrap()
        .unwrap();
    let Requested::New(r1) = &first else {
        panic!("{first:?}")
    };
    assert_eq!(
        (r1.status, r1.refund_fee, r1.total_fee),
        (RefundStatus::Requested, 1000, fee)
    );
    assert_eq!(r1.out_refund_no, "P1R01");
    // The same request moments later is the same refund (a double click).
    assert_eq!(
        s.request_refund(&ask("P1", Some(1000), 60_000))
            .await
            .unwrap(),
        Ok(Requested::Existing(r1.clone()))
    );
    // Another within the spacing is refused; so is more than what is left.
    let too_soon = s
        .request_refund(&ask("P1", Some(500), 60_000))
        .await
        .unwrap();
    assert!(
        matches!(too_soon, Err(RefundRefusal::TooSoon { wait_ms }) if wait_ms > 0 && wait_ms <= 60_000)
    );
    assert_eq!(
        s.request_refund(&ask("P1", Some(fee - 999), 0))
            .await
            .unwrap(),
        Err(RefundRefusal::OverRefundable {
            refundable: fee - 1000
        })
    );
    assert_eq!(
        s.refunds_of("P1").await.unwrap().len(),
        1,
        "refusals wrote nothing"
    );
    // The rest, with no amount.
    let rest = s
        .request_refund(&ask("P1", None, 0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rest.row().refund_fee, fee - 1000);
    assert_eq!(rest.row().out_refund_no, "P1R02");
    let k = kinds(&s, "P1").await;
    assert_eq!(
        k.iter().filter(|k| *k == "refund_requested").count(),
        2,
        "{k:?}"
    );

    // Fifty parts at most.
    let fee = paid(&s, "P2", "T2").await;
    assert!(fee >= 51);
    for _ in 0..50 {
        s.request_refund(&ask("P2", Some(1), 0))
            .await
            .unwrap()
            .unwrap();
    }
    assert_eq!(
        s.request_refund(&ask("P2", Some(1), 0)).await.unwrap(),
        Err(RefundRefusal::TooMany)
    );
}

pub async fn concurrent_refunds_cannot_exceed_the_payment(s: Store) {
    let fee = paid(&s, "C1", "TC1").await;
    let tries = (0..6).map(|i| {
        let s = s.clone();
        async move {
            let mut a = ask("C1", Some(fee * 6 / 10), 0);
            a.reason = format!("try {i}");
            s.request_refund(&a).await.unwrap()
        }
    });
    let results = futures::future::join_all(tries).await;
    let won = results
        .iter()
        .filter(|r| matches!(r, Ok(Requested::New(_))))
        .count();
    assert_eq!(won, 1, "{results:?}");
    assert!(results.iter().all(|r| matches!(
        r,
        Ok(Requested::New(_)) | Err(RefundRefusal::OverRefundable { .. })
    )));
    assert_eq!(s.refunds_of("C1").await.unwrap().len(), 1);
}

pub async fn transitions_and_what_a_success_changes(s: Store) {
    let fee = paid(&s, "R1", "TR1").await;
    let left = stock(&s, "TEA-OOLONG").await;
    let mut half = ask("R1", Some(fee / 2), 0);
    half.restock = true;
    let a = s
        .request_refund(&half)
        .await
        .unwrap()
        .unwrap()
        .row()
        .clone();
    // An uncertain answer leaves it requested, with the error kept.
    assert!(s
        .refund_uncertain(&a.out_refund_no, "timed out", Cause::Operator, 1)
        .await
        .unwrap());
    let r = s.refund(&a.out_refund_no).await.unwrap().unwrap();
    assert_eq!(
        (r.status, r.failure.as_deref()),
        (RefundStatus::Requested, Some("timed out"))
    );
    assert!(s
        .refund_accepted(&a.out_refund_no, "5001", Cause::Operator, 2)
        .await
        .unwrap());
    assert!(
        !s.refund_accepted(&a.out_refund_no, "5001", Cause::Operator, 2)
            .await
            .unwrap(),
        "once"
    );
    assert!(
        !s.refund_refused(&a.out_refund_no, "NOTENOUGH", Cause::Operator)
            .await
            .unwrap(),
        "not from processing"
    );
    assert!(s
        .settle_refund(&a.out_refund_no, &success(), Cause::Notify)
        .await
        .unwrap());
    assert!(
        !s.settle_refund(&a.out_refund_no, &success(), Cause::Sweep)
            .await
            .unwrap(),
        "a duplicate changes nothing"
    );
    assert!(
        !s.settle_refund(&a.out_refund_no, &RefundEnd::Closed, Cause::Sweep)
            .await
            .unwrap(),
        "success is final"
    );
    let r = s.refund(&a.out_refund_no).await.unwrap().unwrap();
    assert_eq!(r.status, RefundStatus::Success);
    assert_eq!(
        r.refund_id.as_deref(),
        Some("50000000000000000000000000001")
    );
    assert_eq!((r.next_check_at, r.finished_at.is_some()), (None, true));
    assert_eq!(s.load("R1").await.unwrap().unwrap().refunded_fee, fee / 2);
    assert_eq!(
        stock(&s, "TEA-OOLONG").await,
        left,
        "half refunded: no restock yet"
    );

    // A refused refund gives its amount back to what is refundable.
    let b = s
        .request_refund(&ask("R1", None, 0))
        .await
        .unwrap()
        .unwrap()
        .row()
        .clone();
    assert!(s
        .refund_refused(&b.out_refund_no, "NOTENOUGH", Cause::Operator)
        .await
        .unwrap());
    assert_eq!(
        s.refund(&b.out_refund_no).await.unwrap().unwrap().status,
        RefundStatus::Failed
    );
    // CHANGE, then WeChat's later SUCCESS: the rest refunded, the items back once.
    let c = s
        .request_refund(&ask("R1", None, 0))
        .await
        .unwrap()
        .unwrap()
        .row()
        .clone();
    assert_eq!(
        (c.out_refund_no.as_str(), c.refund_fee),
        ("R1R03", fee - fee / 2)
    );
    assert!(s
        .refund_accepted(&c.out_refund_no, "5003", Cause::Operator, 2)
        .await
        .unwrap());
    assert!(s
        .settle_refund(&c.out_refund_no, &RefundEnd::Abnormal, Cause::Sweep)
        .await
        .unwrap());
    assert_eq!(
        s.refund(&c.out_refund_no)
            .await
            .unwrap()
            .unwrap()
            .next_check_at,
        None,
        "a person acts"
    );
    assert!(s
        .settle_refund(&c.out_refund_no, &success(), Cause::Notify)
        .await
        .unwrap());
    let o = s.load("R1").await.unwrap().unwrap();
    assert_eq!((o.refunded_fee, o.status), (fee, OrderStatus::Paid));
    assert_eq!(stock(&s, "TEA-OOLONG").await, left + 1, "restocked once");
    let k = kinds(&s, "R1").await;
    for kind in [
        "refund_uncertain",
        "refund_processing",
        "refund_succeeded",
        "refund_failed",
        "refund_abnormal",
        "restocked",
    ] {
        assert!(k.iter().any(|e| e == kind), "{kind} in {k:?}");
    }
    assert_eq!(k.iter().filter(|e| *e == "restocked").count(), 1);
}

pub async fn anomaly_payments_are_refunded_once_and_resolved(s: Store) {
    // A payment for an order already closed (its stock back on the shelf).
    let fee = place(&s, "A1", &[("TEA-OOLONG", 1)])
        .await
        .unwrap()
        .total_fee;
    assert!(s
        .close("A1", FailureReason::Expired, Cause::Timeout, "CLOSED")
        .await
        .unwrap());
    s.mark_paid(&payment("A1", fee, "TA1"), Cause::Notify)
        .await
        .unwrap();
    assert_eq!(
        s.unrefunded_anomalies(10).await.unwrap(),
        vec![("A1".to_string(), "TA1".to_string())]
    );
    let mut a = ask("A1", None, 0);
    a.of = RefundOf::Anomaly {
        transaction_id: "TA1".into(),
    };
    a.requested_by = "system".into();
    let r = s.request_refund(&a).await.unwrap().unwrap().row().clone();
    assert_eq!(
        (r.transaction_id.as_str(), r.refund_fee, r.total_fee),
        ("TA1", fee, fee)
    );
    assert!(r.anomaly_id.is_some());
    assert!(
        s.unrefunded_anomalies(10).await.unwrap().is_empty(),
        "asked for"
    );
    assert_eq!(
        s.request_refund(&a).await.unwrap(),
        Ok(Requested::Existing(r.clone())),
        "once"
    );
    assert!(s
        .settle_refund(&r.out_refund_no, &success(), Cause::Notify)
        .await
        .unwrap());
    assert!(
        s.anomalies(10).await.unwrap().is_empty(),
        "resolved by the refund"
    );
    let o = s.load("A1").await.unwrap().unwrap();
    assert_eq!((o.status, o.refunded_fee), (OrderStatus::Closed, fee));
    // A second payment of a paid order: refunded against itself; the order keeps its figure.
    let fee = paid(&s, "A2", "TA2").await;
    s.mark_paid(&payment("A2", fee, "TA3"), Cause::Notify)
        .await
        .unwrap();
    let mut b = ask("A2", None, 0);
    b.of = RefundOf::Anomaly {
        transaction_id: "TA3".into(),
    };
    let r = s.request_refund(&b).await.unwrap().unwrap().row().clone();
    assert_eq!(r.transaction_id, "TA3");
    assert!(s
        .settle_refund(&r.out_refund_no, &success(), Cause::Notify)
        .await
        .unwrap());
    assert_eq!(s.load("A2").await.unwrap().unwrap().refunded_fee, 0);
    // The order's own payment is still wholly refundable.
    assert_eq!(
        s.request_refund(&ask("A2", None, 0))
            .await
            .unwrap()
            .unwrap()
            .row()
            .refund_fee,
        fee
    );
}

pub async fn refund_claims_are_disjoint(s: Store) {
    for i in 0..4 {
        let id = format!("D{i}");
        paid(&s, &id, &format!("TD{i}")).await;
        s.request_refund(&ask(&id, Some(100), 0))
            .await
            .unwrap()
            .unwrap();
    }
    let now = now_ms() + 1;
    let later = |_: i64| now + 60_000;
    let (a, b) = tokio::join!(
        s.claim_due_refunds(now, 10, &later),
        s.claim_due_refunds(now, 10, &later)
    );
    let mut all: Vec<String> = a
        .unwrap()
        .into_iter()
        .chain(b.unwrap())
        .map(|r| r.out_refund_no)
        .collect();
    all.sort();
    assert_eq!(
        all,
        vec!["D0R01", "D1R01", "D2R01", "D3R01"],
        "each claimed once"
    );
    assert!(
        s.claim_due_refunds(now, 10, &later)
            .await
            .unwrap()
            .is_empty(),
        "pushed on"
    );
    let r = s.refund("D0R01").await.unwrap().unwrap();
    assert_eq!((r.next_check_at, r.check_attempts), (Some(now + 60_000), 1));
}

pub async fn concurrent_settles_apply_once(s: Store) {
    let fee = paid(&s, "S1", "TS1").await;
    let mut half = ask("S1", Some(fee / 2), 0);
    half.restock = true;
    let r = s
        .request_refund(&half)
        .await
        .unwrap()
        .unwrap()
        .row()
        .clone();
    assert!(s
        .refund_accepted(&r.out_refund_no, "5001", Cause::Operator, 2)
        .await
        .unwrap());
    let left = stock(&s, "TEA-OOLONG").await;
    // A notify delivered several times at once, and the sweep's refundquery, all at once.
    let settles = (0..6).map(|i| {
        let (s, no) = (s.clone(), r.out_refund_no.clone());
        async move {
            let cause = if i % 2 == 0 {
                Cause::Notify
            } else {
                Cause::Sweep
            };
            s.settle_refund(&no, &success(), cause).await.unwrap()
        }
    });
    let applied = futures::future::join_all(settles).await;
    assert_eq!(applied.iter().filter(|a| **a).count(), 1, "{applied:?}");
    let o = s.load("S1").await.unwrap().unwrap();
    assert_eq!(o.refunded_fee, fee / 2, "added once");
    assert_eq!(
        stock(&s, "TEA-OOLONG").await,
        left,
        "half refunded: no restock"
    );
    let k = kinds(&s, "S1").await;
    assert_eq!(
        k.iter().filter(|e| *e == "refund_succeeded").count(),
        1,
        "{k:?}"
    );
    // WeChat's word ends a refund scanpay had concluded failed.
    let b = s
        .request_refund(&ask("S1", None, 0))
        .await
        .unwrap()
        .unwrap()
        .row()
        .clone();
    assert!(s
        .refund_refused(&b.out_refund_no, "ORDERNOTEXIST", Cause::Operator)
        .await
        .unwrap());
    assert!(s
        .settle_refund(&b.out_refund_no, &success(), Cause::Notify)
        .await
        .unwrap());
    assert_eq!(s.load("S1").await.unwrap().unwrap().refunded_fee, fee);
}
