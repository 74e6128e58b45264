use super::*;

fn ask(fee: Option<i64>, now: i64) -> NewRefund {
    NewRefund {
        order_id: "O1".into(),
        of: RefundOf::Order,
        refund_fee: fee,
        reason: "broken mug".into(),
        requested_by: "alice".into(),
        cause: crate::server::domain::Cause::Operator,
        restock: false,
        now,
        spacing_ms: WECHAT_REFUND_SPACING_MS,
        first_check_at: now,
    }
}

fn paid() -> OrderFacts {
    OrderFacts {
        status: OrderStatus::Paid,
        total_fee: 1000,
        transaction_id: Some("T1".into()),
    }
}

fn row(no: &str, fee: i64, status: RefundStatus, at: i64) -> RefundRow {
    RefundRow {
        out_refund_no: no.into(),
        order_id: "O1".into(),
        transaction_id: "T1".into(),
        total_fee: 1000,
        refund_fee: fee,
        reason: "broken mug".into(),
        requested_by: "alice".into(),
        restock: false,
        anomaly_id: None,
        status,
        refund_id: None,
        failure: None,
        success_time: None,
        recv_account: None,
        created_at: at,
        updated_at: at,
        finished_at: None,
        next_check_at: None,
        check_attempts: 0,
    }
}

fn new_fee(j: Judged) -> (String, i64) {
    match j {
        Judged::New {
            out_refund_no,
            refund_fee,
            ..
        } => (out_refund_no, refund_fee),
        other => panic!("expected a new refund, got {other:?}"),
    }
}

#[test]
fn a_paid_order_is_refunded_in_parts_up_to_its_amount() {
    assert_eq!(
        new_fee(judge(&ask(Some(300), 0), &paid(), None, &[]).unwrap()),
        ("O1R01".into(), 300)
    );
    let done = [row("O1R01", 300, RefundStatus::Success, 0)];
    assert_eq!(
        new_fee(judge(&ask(None, 60_000), &paid(), None, &done).unwrap()),
        ("O1R02".into(), 700),
        "no amount: the rest"
    );
    assert_eq!(
        judge(&ask(Some(701), 60_000), &paid(), None, &done),
        Err(RefundRefusal::OverRefundable { refundable: 700 })
    );
    // Failed and closed refunds give their amount back; their numbers are not reused.
    let gone = [
        row("O1R01", 1000, RefundStatus::Failed, 0),
        row("O1R02", 1000, RefundStatus::Closed, 0),
    ];
    assert_eq!(
        new_fee(judge(&ask(Some(1000), 60_000), &paid(), None, &gone).unwrap()),
        ("O1R03".into(), 1000)
    );
    // In flight counts against it.
    let flying = [row("O1R01", 1000, RefundStatus::Processing, 0)];
    assert_eq!(
        judge(&ask(Some(1), 60_000), &paid(), None, &flying),
        Err(RefundRefusal::OverRefundable { refundable: 0 })
    );
}

#[test]
fn only_a_paid_order_and_a_positive_amount() {
    for status in [
        OrderStatus::Pending,
        OrderStatus::Closing,
        OrderStatus::Closed,
        OrderStatus::Failed,
    ] {
        let o = OrderFacts { status, ..paid() };
        assert_eq!(
            judge(&ask(Some(1), 0), &o, None, &[]),
            Err(RefundRefusal::NotPaid(status))
        );
    }
    assert_eq!(
        judge(&ask(Some(0), 0), &paid(), None, &[]),
        Err(RefundRefusal::BadAmount)
    );
    assert_eq!(
        judge(&ask(Some(-5), 0), &paid(), None, &[]),
        Err(RefundRefusal::BadAmount)
    );
}

#[test]
fn fifty_refunds_and_a_minute_apart() {
    let fifty: Vec<RefundRow> = (1..=50)
        .map(|i| row(&format!("O1R{i:02}"), 1, RefundStatus::Success, i))
        .collect();
    assert_eq!(
        judge(&ask(Some(1), 10_000_000), &paid(), None, &fifty),
        Err(RefundRefusal::TooMany)
    );
    let one = [row("O1R01", 1, RefundStatus::Processing, 1_000)];
    let mut other = ask(Some(2), 31_000);
    other.reason = "another".into();
    assert_eq!(
        judge(&other, &paid(), None, &one),
        Err(RefundRefusal::TooSoon { wait_ms: 30_000 })
    );
    other.now = 61_000;
    assert!(matches!(
        judge(&other, &paid(), None, &one),
        Ok(Judged::New { .. })
    ));
}

#[test]
fn the_same_request_within_the_minute_is_the_same_refund() {
    let one = [row("O1R01", 300, RefundStatus::Requested, 1_000)];
    assert_eq!(
        judge(&ask(Some(300), 2_000), &paid(), None, &one),
        Ok(Judged::Same(Box::new(one[0].clone())))
    );
    // After the minute it is a new refund.
    assert_eq!(
        new_fee(judge(&ask(Some(300), 61_000), &paid(), None, &one).unwrap()).0,
        "O1R02"
    );
    // A different amount within the minute is a second refund, too soon.
    assert!(matches!(
        judge(&ask(Some(200), 2_000), &paid(), None, &one),
        Err(RefundRefusal::TooSoon { .. })
    ));
}

#[test]
fn an_anomalys_payment_is_refunded_once_in_full() {
    let closed = OrderFacts {
        status: OrderStatus::Closed,
        total_fee: 1000,
        transaction_id: None,
    };
    let late = AnomalyFacts {
        id: "A1".into(),
        kind: "paid_after_close".into(),
        resolved: false,
    };
    let mut a = ask(None, 0);
    a.of = RefundOf::Anomaly {
        transaction_id: "T9".into(),
    };
    a.requested_by = "system".into();
    let j = judge(&a, &closed, Some(&late), &[]).unwrap();
    assert_eq!(
        j,
        Judged::New {
            out_refund_no: "O1R01".into(),
            transaction_id: "T9".into(),
            total_fee: 1000,
            refund_fee: 1000,
            anomaly_id: Some("A1".into()),
        }
    );
    let mut held = row("O1R01", 1000, RefundStatus::Processing, 0);
    held.transaction_id = "T9".into();
    held.anomaly_id = Some("A1".into());
    held.requested_by = "system".into();
    assert_eq!(
        judge(&a, &closed, Some(&late), &[held.clone()]),
        Ok(Judged::Same(Box::new(held.clone())))
    );
    // A second payment of a paid order: refunded against its own transaction, not the order's.
    let second = AnomalyFacts {
        kind: "second_payment".into(),
        ..late.clone()
    };
    let own = [row("O1R01", 1000, RefundStatus::Success, 0)];
    let mut b = a.clone();
    b.now = 60_000;
    assert!(matches!(
        judge(&b, &paid(), Some(&second), &own),
        Ok(Judged::New {
            refund_fee: 1000,
            ..
        })
    ));
    // An amount mismatch or a resolved one is not refunded by the system.
    let mismatch = AnomalyFacts {
        kind: "amount_mismatch".into(),
        ..late.clone()
    };
    assert_eq!(
        judge(&a, &closed, Some(&mismatch), &[]),
        Err(RefundRefusal::NotRefundable("amount_mismatch".into()))
    );
    let resolved = AnomalyFacts {
        resolved: true,
        ..late
    };
    assert_eq!(
        judge(&a, &closed, Some(&resolved), &[]),
        Err(RefundRefusal::AnomalyResolved)
    );
    assert_eq!(judge(&a, &closed, None, &[]), Err(RefundRefusal::NoAnomaly));
}
