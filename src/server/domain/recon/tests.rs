//! The comparison, one class at a time, and the bill date.

use super::*;
use crate::server::support::clock::parse_beijing;

fn pay(otn: &str, tx: &str, fen: i64) -> WechatRow {
    WechatRow {
        trade_time: "2026-11-30 10:00:00".into(),
        transaction_id: tx.into(),
        out_trade_no: otn.into(),
        amount_fen: fen,
        out_refund_no: None,
        state: "SUCCESS".into(),
        fee_millifen: 6_000,
    }
}

fn refund_row(otn: &str, no: &str, fen: i64, state: &str) -> WechatRow {
    WechatRow {
        out_refund_no: Some(no.into()),
        state: state.into(),
        fee_millifen: -6_000,
        ..pay(otn, &format!("T{otn}"), fen)
    }
}

fn order(id: &str, status: OrderStatus, fen: i64, tx: Option<&str>) -> LocalOrder {
    LocalOrder {
        id: id.into(),
        status,
        total_fee: fen,
        transaction_id: tx.map(String::from),
        paid_at: tx.map(|_| parse_beijing("20261130100000").unwrap()),
    }
}

fn refund(no: &str, otn: &str, fen: i64, status: RefundStatus) -> LocalRefund {
    LocalRefund {
        out_refund_no: no.into(),
        order_id: otn.into(),
        transaction_id: format!("T{otn}"),
        refund_fee: fen,
        status,
        created_at: parse_beijing("20261130110000").unwrap(),
    }
}

fn facts(paid: Vec<LocalOrder>, others: Vec<LocalOrder>, refunds: Vec<LocalRefund>) -> LocalFacts {
    LocalFacts {
        orders: paid
            .iter()
            .chain(others.iter())
            .map(|o| (o.id.clone(), o.clone()))
            .collect(),
        paid,
        refunds: refunds
            .iter()
            .map(|r| (r.out_refund_no.clone(), r.clone()))
            .collect(),
        refunds_of_day: refunds,
        anomalies: HashMap::new(),
    }
}

fn classes(out: &[(ReconLine, Option<FollowUp>)]) -> Vec<(String, ReconClass)> {
    let mut v: Vec<_> = out.iter().map(|(l, _)| (l.key.clone(), l.class)).collect();
    v.sort();
    v
}

#[test]
fn a_day_that_agrees_is_all_matched() {
    let local = facts(
        vec![
            order("A", OrderStatus::Paid, 100, Some("TA")),
            order("B", OrderStatus::Paid, 250, Some("TB")),
        ],
        vec![],
        vec![refund("AR01", "A", 40, RefundStatus::Success)],
    );
    let rows = [
        pay("A", "TA", 100),
        pay("B", "TB", 250),
        refund_row("A", "AR01", 40, "SUCCESS"),
    ];
    let out = compare(&rows, &local);
    assert!(out
        .iter()
        .all(|(l, f)| l.class == ReconClass::Matched && f.is_none()));
    assert_eq!(out.len(), 3);
    let t = totals(&out.into_iter().map(|(l, _)| l).collect::<Vec<_>>());
    assert_eq!(t[ReconClass::Matched.index()].count, 3);
    assert_eq!(t[ReconClass::Matched.index()].local_fen, 390);
    assert_eq!(t[ReconClass::Matched.index()].open, 0);
}

#[test]
fn each_class_is_found_and_nothing_else() {
    let local = facts(
        vec![
            order("OK", OrderStatus::Paid, 100, Some("TOK")),
            order("OFF", OrderStatus::Paid, 100, Some("TOFF")),
            order("GONE", OrderStatus::Paid, 300, Some("TGONE")),
        ],
        // Paid at WeChat, its notify lost: still pending here.
        vec![order("LOST", OrderStatus::Pending, 500, None)],
        vec![
            refund("OKR01", "OK", 50, RefundStatus::Success),
            refund("OKR02", "OK", 20, RefundStatus::Processing),
            refund("GONER01", "GONE", 10, RefundStatus::Success),
            // Never accepted: not money, not expected in the bill.
            refund("GONER02", "GONE", 10, RefundStatus::Failed),
        ],
    );
    let rows = [
        pay("OK", "TOK", 100),
        pay("OFF", "TOFF", 101),
        pay("LOST", "TLOST", 500),
        pay("PHANTOM1", "TPH", 1),
        refund_row("OK", "OKR01", 50, "SUCCESS"),
        refund_row("OK", "OKR02", 20, "SUCCESS"),
    ];
    let out = compare(&rows, &local);
    assert_eq!(
        classes(&out),
        vec![
            ("P:TGONE".to_string(), ReconClass::LocalOnly),
            ("P:TLOST".to_string(), ReconClass::WechatOnly),
            ("P:TOFF".to_string(), ReconClass::AmountDiffers),
            ("P:TOK".to_string(), ReconClass::Matched),
            ("P:TPH".to_string(), ReconClass::WechatOnly),
            ("R:GONER01".to_string(), ReconClass::LocalOnly),
            ("R:OKR01".to_string(), ReconClass::Matched),
            ("R:OKR02".to_string(), ReconClass::RefundDiffers),
        ]
    );
    let follow: Vec<_> = out.iter().filter_map(|(_, f)| f.clone()).collect();
    assert_eq!(
        follow,
        vec![
            FollowUp::QueryOrder("LOST".into()),
            FollowUp::CheckRefund("OKR02".into()),
            FollowUp::QueryOrder("GONE".into()),
        ]
    );
    let off = out.iter().find(|(l, _)| l.key == "P:TOFF").unwrap();
    assert_eq!((off.0.wechat_fen, off.0.local_fen), (Some(101), Some(100)));
}

#[test]
fn a_refund_of_another_amount_or_state_differs() {
    let local = facts(
        vec![order("A", OrderStatus::Paid, 100, Some("TA"))],
        vec![],
        vec![
            refund("AR01", "A", 30, RefundStatus::Success),
            refund("AR02", "A", 30, RefundStatus::Success),
            refund("AR03", "A", 30, RefundStatus::Closed),
        ],
    );
    let rows = [
        pay("A", "TA", 100),
        refund_row("A", "AR01", 31, "SUCCESS"),
        refund_row("A", "AR02", 30, "PROCESSING"),
        refund_row("A", "AR03", 30, "REFUNDCLOSE"),
        // Made at the merchant platform, not through scanpay.
        refund_row("A", "PLATFORM1", 5, "SUCCESS"),
    ];
    let out = compare(&rows, &local);
    let class = |k: &str| out.iter().find(|(l, _)| l.key == k).unwrap().0.class;
    assert_eq!(class("R:AR01"), ReconClass::RefundDiffers);
    assert_eq!(class("R:AR02"), ReconClass::RefundDiffers);
    assert_eq!(class("R:AR03"), ReconClass::Matched);
    assert_eq!(class("R:PLATFORM1"), ReconClass::WechatOnly);
    // Ours is final (WeChat's word set it): nothing to ask.
    assert!(out.iter().all(|(_, f)| f.is_none()));
}

#[test]
fn a_payment_kept_as_an_anomaly_is_wechat_only_without_a_query() {
    let mut local = facts(
        vec![],
        vec![order("C", OrderStatus::Closed, 100, None)],
        vec![],
    );
    local.anomalies.insert(
        "TC".into(),
        LocalAnomaly {
            transaction_id: "TC".into(),
            order_id: "C".into(),
            kind: "paid_after_close".into(),
            resolved: false,
        },
    );
    let out = compare(&[pay("C", "TC", 100)], &local);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.class, ReconClass::WechatOnly);
    assert!(
        out[0].0.note.contains("paid_after_close"),
        "{}",
        out[0].0.note
    );
    assert_eq!(out[0].1, None);
}

#[test]
fn no_bill_makes_every_local_payment_local_only() {
    let local = facts(
        vec![order("A", OrderStatus::Paid, 100, Some("TA"))],
        vec![],
        vec![refund("AR01", "A", 10, RefundStatus::Processing)],
    );
    let out = compare(&[], &local);
    assert_eq!(
        classes(&out),
        vec![
            ("P:TA".to_string(), ReconClass::LocalOnly),
            ("R:AR01".to_string(), ReconClass::LocalOnly),
        ]
    );
}

#[test]
fn refund_numbers_differing_only_in_case_keep_apart_keys_and_their_classes() {
    // Not numbers scanpay makes (a refund started at the merchant platform), but MySQL's
    // collation would take the two keys for one.
    let local = facts(
        vec![order("A", OrderStatus::Paid, 100, Some("TA"))],
        vec![],
        vec![refund("rf1", "A", 10, RefundStatus::Success)],
    );
    let out = compare(
        &[
            pay("A", "TA", 100),
            refund_row("A", "rf1", 10, "SUCCESS"),
            refund_row("A", "RF1", 20, "SUCCESS"),
        ],
        &local,
    );
    let keys: Vec<String> = classes(&out).into_iter().map(|(k, _)| k).collect();
    let folded: HashSet<String> = keys.iter().map(|k| k.to_ascii_lowercase()).collect();
    assert_eq!(folded.len(), keys.len(), "{keys:?}");
    let class_of = |no: &str| {
        out.iter()
            .find(|(l, _)| l.out_refund_no == no)
            .unwrap()
            .0
            .class
    };
    assert_eq!(class_of("rf1"), ReconClass::Matched);
    assert_ne!(class_of("RF1"), ReconClass::Matched, "not ours");
    assert!(out.iter().all(|(l, _)| !l.note.contains("again")));
    // Ours listed after a case variant, then listed again: the repeat is still marked.
    let out = compare(
        &[
            pay("A", "TA", 100),
            refund_row("A", "RF1", 20, "SUCCESS"),
            refund_row("A", "rf1", 10, "SUCCESS"),
            refund_row("A", "rf1", 10, "SUCCESS"),
        ],
        &local,
    );
    let ours: Vec<_> = out
        .iter()
        .filter(|(l, _)| l.out_refund_no == "rf1")
        .map(|(l, _)| (l.class, l.note.contains("again")))
        .collect();
    assert_eq!(
        ours,
        vec![(ReconClass::Matched, false), (ReconClass::WechatOnly, true)]
    );
}

#[test]
fn a_row_listed_twice_keeps_both_lines() {
    let local = facts(
        vec![order("A", OrderStatus::Paid, 100, Some("TA"))],
        vec![],
        vec![],
    );
    let out = compare(&[pay("A", "TA", 100), pay("A", "TA", 100)], &local);
    assert_eq!(
        classes(&out),
        vec![
            ("P:TA".to_string(), ReconClass::Matched),
            ("P:TA#2".to_string(), ReconClass::WechatOnly),
        ]
    );
}

#[test]
fn bill_dates_are_beijing_days() {
    let d = BillDate::parse("2026-11-30").unwrap();
    assert_eq!(d.compact(), "20261130");
    assert_eq!(BillDate::parse("20261130").unwrap(), d);
    // 2026-11-30 00:00 Beijing is 2026-11-29 16:00 UTC.
    assert_eq!(d.start_ms(), parse_beijing("20261130000000").unwrap());
    assert_eq!(d.end_ms() - d.start_ms(), 86_400_000);
    assert_eq!(BillDate::of_ms(d.end_ms() - 1), d);
    assert_eq!(BillDate::of_ms(d.end_ms()).as_str(), "2026-12-01");
    assert_eq!(d.prev().as_str(), "2026-11-29");
    assert_eq!(
        BillDate::parse("2024-03-01").unwrap().prev().as_str(),
        "2024-02-29"
    );
    for bad in [
        "2026-02-30",
        "2026-13-01",
        "26-11-30",
        "2026/11/30",
        "",
        "2026-11-3x",
    ] {
        assert!(BillDate::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_payment_parked_for_its_amount_is_an_amount_difference() {
    let mut local = facts(
        vec![],
        vec![order("P", OrderStatus::Pending, 100, None)],
        vec![],
    );
    local.anomalies.insert(
        "TP".into(),
        LocalAnomaly {
            transaction_id: "TP".into(),
            order_id: "P".into(),
            kind: "amount_mismatch".into(),
            resolved: false,
        },
    );
    let out = compare(&[pay("P", "TP", 90)], &local);
    assert_eq!(out.len(), 1);
    let (l, f) = &out[0];
    assert_eq!(
        (l.class, l.wechat_fen, l.local_fen),
        (ReconClass::AmountDiffers, Some(90), Some(100))
    );
    assert!(l.note.contains("amount_mismatch"), "{}", l.note);
    assert_eq!(*f, None);
}
