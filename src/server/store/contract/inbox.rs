//! The pay-result inbox: one row per transaction, applied once however often it arrives or however
//! many consumers race for it, anomalies included, and a batch received together ending as each
//! pay result would alone.

use crate::app::types::OrderStatus;
use crate::server::domain::{PaidOutcome, PayResult};
use crate::server::store::{Applied, Engine, Store};
use crate::server::support::clock::now_ms;

use super::{kinds, place, status};

pub(super) async fn inbox_is_idempotent(s: Store) {
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
        received_at_ms: None,
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

pub(super) async fn receive_applies_once(s: Store) {
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
        received_at_ms: None,
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

pub(super) async fn receive_together_as_alone(s: Store) {
    use PaidOutcome::{Anomaly, Paid};
    let notify = |id: &str, txn: &str, fee: i64| PayResult {
        out_trade_no: id.into(),
        transaction_id: txn.into(),
        total_fee: fee,
        time_end: "20261127120000".into(),
        paid_at_ms: 1,
        received_at_ms: None,
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
    let both = |all: Result<Vec<Option<Applied>>, sqlx::Error>| {
        let outcomes = all.unwrap().into_iter().map(|a| a.map(|a| a.outcome));
        let ids = ["T0", "NOPE"].map(String::from);
        ids.into_iter().zip(outcomes).collect::<Vec<_>>()
    };
    let outcomes: Vec<(String, Option<PaidOutcome>)> = match &s.engine {
        Engine::Postgres(pg) => {
            let rows = pg.receive_payable_batch(&[&t0, &nope]).await.unwrap();
            let row = rows.iter().find(|r| r.id == "T0").unwrap();
            assert_eq!(
                (row.status, row.transaction_id.as_deref()),
                (OrderStatus::Paid, Some("4200000020"))
            );
            rows.into_iter().map(|r| (r.id, Some(Paid))).collect()
        }
        Engine::Mysql(my) => both(my.receive_together(&[&t0, &nope]).await),
        Engine::Sqlite(lite) => both(lite.receive_together(&[&t0, &nope]).await),
    };
    let expected = match &s.engine {
        // PostgreSQL's statement pays the payable ones and leaves the rest to the caller.
        Engine::Postgres(_) => vec![("T0".to_string(), Some(Paid))],
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
