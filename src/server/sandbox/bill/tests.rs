//! The generated bill against WeChat's format (byte for byte), scanpay's parser (round trip),
//! the Beijing day's edges and each `bill=` knob.

use std::collections::HashMap;
use std::io::Read;

use super::*;
use crate::server::sandbox::refunds::REFUND_ACCOUNT;
use crate::server::sandbox::SandboxRefund;
use crate::server::wxpay::bill::{classify, parse, Bill, BillAnswer};
use crate::server::wxpay::SignType;

const MCH: &str = "1900000001";
const DAY: &str = "20240301";

fn at(beijing: &str) -> i64 {
    parse_beijing(beijing).unwrap()
}

fn order(no: &str, total: i64, paid: Option<&str>) -> SandboxOrder {
    let params = [
        ("appid", "wx2421b1c4370ec43b"),
        ("mch_id", MCH),
        ("body", "乌龙茶"),
        ("attach", "a=1"),
        ("total_fee", &total.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    SandboxOrder {
        api: Default::default(),
        mch_id: MCH.into(),
        out_trade_no: no.into(),
        params,
        sign_type: SignType::Md5,
        prepay_id: String::new(),
        code_url: String::new(),
        created_ms: 0,
        expire_ms: None,
        state: match paid {
            Some(t) => TradeState::Success {
                transaction_id: format!("4200{}{:0>16}", &t[..8], no.len() * 7 + total as usize),
                time_end: t.into(),
                openid: format!("oUser{no}"),
            },
            None => TradeState::NotPay,
        },
        notify_attempts: 0,
        notify_acked: false,
        refunds: Vec::new(),
    }
}

fn refund(no: &str, fee: i64, when: &str, status: RefundStatus) -> SandboxRefund {
    SandboxRefund {
        api: Default::default(),
        out_refund_no: no.into(),
        refund_id: format!("503{}{:0>18}", &when[..8], no.len() * 13 + fee as usize),
        refund_fee: fee,
        total_fee: 0,
        refund_desc: String::new(),
        refund_account: REFUND_ACCOUNT.into(),
        notify_url: String::new(),
        created_ms: at(when),
        status,
        success_time: None,
        notify_attempts: 0,
        notify_acked: false,
    }
}

fn none(_: &str) -> BillFault {
    BillFault::default()
}

fn all(orders: &[SandboxOrder]) -> Option<String> {
    trade_bill(orders, MCH, DAY, BillType::All, none, false)
}

fn parsed(text: &str) -> Bill {
    match classify(text.as_bytes()).unwrap() {
        BillAnswer::Text(t) => parse(&t).unwrap(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_small_day_byte_for_byte() {
    let mut o = order("SP1", 1000, Some("20240301100000"));
    o.refunds
        .push(refund("SR1", 500, "20240301110005", RefundStatus::Success));
    let text = all(&[o]).unwrap();
    let want = [
        "\u{feff}交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注",
        "`2024-03-01 10:00:00,`wx2421b1c4370ec43b,`1900000001,`0,`,`4200202403010000000000001021,`SP1,`oUserSP1,`NATIVE,`SUCCESS,`OTHERS,`CNY,`10.00,`0.00,`0,`0,`0.00,`0.00,`,`,`乌龙茶,`a=1,`0.06000,`0.60%,`10.00,`0.00,`",
        "`2024-03-01 11:00:05,`wx2421b1c4370ec43b,`1900000001,`0,`,`4200202403010000000000001021,`SP1,`oUserSP1,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50320240301000000000000000539,`SR1,`5.00,`0.00,`ORIGINAL,`SUCCESS,`乌龙茶,`a=1,`-0.03000,`0.60%,`0.00,`5.00,`",
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额",
        "`2,`10.00,`5.00,`0.00,`0.03000,`10.00,`5.00",
        "",
    ]
    .join("\r\n");
    assert_eq!(text, want);
    assert!(text.as_bytes().starts_with(&[0xef, 0xbb, 0xbf]));
    let b = parsed(&text);
    assert_eq!((b.columns, b.rows.len()), (27, 2));
    assert_eq!(b.rows[1].fee_millifen, -3000, "a refund returns its fee");
    assert_eq!(b.summary.fee_millifen, 3000);
}

#[test]
fn fees_are_six_thousandths_rounded_half_up_to_the_fen() {
    for (amount, fee) in [
        (0, 0),
        (1, 0),
        (83, 0),
        (84, 1),
        (250, 2),
        (249, 1),
        (1000, 6),
    ] {
        assert_eq!(fee_fen(amount), fee, "{amount}");
    }
    assert_eq!(yuan5(6), "0.06000");
    assert_eq!(yuan5(-123), "-1.23000");
    assert_eq!(yuan(5), "0.05");
    // A day of refunds alone: negative fees and a negative total, still parsed.
    let mut o = order("SP2", 10_000, Some("20240229120000"));
    o.refunds.push(refund(
        "SR2",
        10_000,
        "20240301080000",
        RefundStatus::Success,
    ));
    let b = parsed(&all(&[o]).unwrap());
    assert_eq!(b.rows.len(), 1);
    assert_eq!(
        (b.rows[0].fee_millifen, b.summary.fee_millifen),
        (-60_000, -60_000)
    );
}

#[test]
fn the_beijing_day_decides_which_rows_a_bill_holds() {
    // Paid a second before Beijing midnight (16:59:59 UTC): the day before's.
    let mut late = order("LATE", 100, Some("20240229235959"));
    late.refunds
        .push(refund("LR1", 40, "20240301000000", RefundStatus::Success));
    late.refunds
        .push(refund("LR2", 60, "20240302000001", RefundStatus::Success));
    let unpaid = order("UNPAID", 100, None);
    let mut other = order("OTHER", 100, Some("20240301090000"));
    other.mch_id = "1900000002".into();
    let orders = [late, unpaid, other];
    let b = parsed(&all(&orders).unwrap());
    let ids: Vec<_> = b
        .rows
        .iter()
        .map(|r| (r.out_trade_no.as_str(), r.out_refund_no.as_deref()))
        .collect();
    assert_eq!(
        ids,
        [("LATE", Some("LR1"))],
        "only the refund applied for on the 1st"
    );
    let feb = trade_bill(&orders, MCH, "20240229", BillType::All, none, false).unwrap();
    assert_eq!(parsed(&feb).rows.len(), 1);
    assert_eq!(
        trade_bill(&orders, MCH, "20240303", BillType::All, none, false),
        None
    );
    assert_eq!(day_start_ms(DAY), Some(at("20240301000000")));
    for bad in [
        "20240230",
        "2024031",
        "2024-3-1",
        "202403011",
        "",
        "2024030a",
    ] {
        assert_eq!(day_start_ms(bad), None, "{bad}");
    }
}

/// A day of 1,000 orders: full, partial, PROCESSING, REFUNDCLOSE and CHANGE refunds.
fn busy_day() -> Vec<SandboxOrder> {
    let statuses = [
        RefundStatus::Success,
        RefundStatus::Processing,
        RefundStatus::Closed,
        RefundStatus::Change,
    ];
    (0..1000i64)
        .map(|i| {
            let secs = i * 86; // spread over the day
            let t = format!(
                "{DAY}{:02}{:02}{:02}",
                secs / 3600,
                secs % 3600 / 60,
                secs % 60
            );
            let total = 1 + i * 37 % 50_000;
            let mut o = order(&format!("BUSY{i:04}"), total, Some(&t));
            if i % 3 == 0 {
                let r1 = if i % 2 == 0 { total } else { total / 2 + 1 };
                let status = statuses[(i / 3 % 4) as usize];
                o.refunds
                    .push(refund(&format!("BR{i:04}a"), r1, &t, status));
                if r1 < total {
                    let t2 = format!("{DAY}235959");
                    o.refunds.push(refund(
                        &format!("BR{i:04}b"),
                        total - r1,
                        &t2,
                        RefundStatus::Processing,
                    ));
                }
            }
            o
        })
        .collect()
}

#[test]
fn a_thousand_orders_round_trip_through_the_parser() {
    let orders = busy_day();
    let text = all(&orders).unwrap();
    let b = parsed(&text);
    let mut want = HashMap::new();
    for o in &orders {
        let TradeState::Success { transaction_id, .. } = &o.state else {
            unreachable!()
        };
        want.insert(
            (o.out_trade_no.clone(), None),
            (transaction_id.clone(), o.total_fee(), None),
        );
        for r in &o.refunds {
            let v = (
                transaction_id.clone(),
                r.refund_fee,
                Some(r.status.as_str().to_string()),
            );
            want.insert((o.out_trade_no.clone(), Some(r.out_refund_no.clone())), v);
        }
    }
    assert_eq!(b.rows.len(), want.len());
    assert!(b.rows.len() > 1300, "{}", b.rows.len());
    let mut seen = std::collections::HashSet::new();
    for r in &b.rows {
        let key = (r.out_trade_no.clone(), r.out_refund_no.clone());
        let (txn, amount, status) = want.get(&key).unwrap_or_else(|| panic!("{key:?}"));
        assert!(seen.insert(key.clone()), "{key:?} twice");
        assert_eq!(&r.transaction_id, txn);
        assert_eq!(&r.refund_status, status);
        assert_eq!(r.rate, "0.60%");
        if r.is_refund() {
            assert_eq!(
                (r.trade_state.as_str(), r.refund_fen, r.applied_refund_fen),
                ("REFUND", *amount, Some(*amount))
            );
            assert_eq!((r.settlement_fen, r.order_fen), (0, Some(0)));
            assert_eq!(r.fee_millifen, -fee_fen(*amount) * 1000);
            assert!(r.refund_id.as_ref().is_some_and(|id| id.len() == 29));
        } else {
            assert_eq!(
                (r.trade_state.as_str(), r.settlement_fen, r.order_fen),
                ("SUCCESS", *amount, Some(*amount))
            );
            assert_eq!((r.refund_fen, r.refund_id.as_deref()), (0, None));
            assert_eq!(r.fee_millifen, fee_fen(*amount) * 1000);
        }
        assert_eq!(
            (r.trade_type.as_str(), r.body.as_str(), r.attach.as_str()),
            ("NATIVE", "乌龙茶", "a=1")
        );
    }
    let times: Vec<_> = b.rows.iter().map(|r| r.trade_time.clone()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "sorted by time");
    // The SUCCESS and REFUND bills split the same rows.
    let success = parsed(&trade_bill(&orders, MCH, DAY, BillType::Success, none, false).unwrap());
    let refunds = parsed(&trade_bill(&orders, MCH, DAY, BillType::Refund, none, false).unwrap());
    assert_eq!((success.columns, refunds.columns), (20, 29));
    assert_eq!(success.rows.len(), 1000);
    assert_eq!(success.rows.len() + refunds.rows.len(), b.rows.len());
    assert!(refunds
        .rows
        .iter()
        .all(|r| r.is_refund() && r.refund_status.is_some()));
}

#[test]
fn gzip_holds_the_same_text() {
    let text = all(&busy_day()[..50]).unwrap();
    let gz = gzip(&text);
    assert_eq!(&gz[..2], &[0x1f, 0x8b]);
    let mut back = String::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_string(&mut back)
        .unwrap();
    assert_eq!(back, text);
    assert_eq!(classify(&gz).unwrap(), BillAnswer::Text(text));
}

/// The ALL bill of DAY with `spec` set for order `otn` alone, parsed.
fn knobbed(orders: &[SandboxOrder], otn: &str, spec: &str) -> Bill {
    let f = crate::server::sandbox::faults::Faults::parse(spec)
        .unwrap()
        .bill;
    let fault_of = |n: &str| if n == otn { f } else { BillFault::default() };
    parsed(&trade_bill(orders, MCH, DAY, BillType::All, fault_of, false).unwrap())
}

#[test]
fn each_bill_knob_makes_the_bill_disagree_yet_add_up() {
    let mut a = order("KA", 500, Some("20240301090000"));
    for (no, min, status) in [
        ("KAR1", "10", RefundStatus::Success),
        ("KAR2", "20", RefundStatus::Processing),
        ("KAR3", "30", RefundStatus::Closed),
    ] {
        a.refunds
            .push(refund(no, 100, &format!("2024030109{min}00"), status));
    }
    let orders = [a, order("KB", 700, Some("20240301100000"))];
    let pay = |b: &Bill, no: &str| {
        b.rows
            .iter()
            .find(|r| r.out_trade_no == no && !r.is_refund())
            .cloned()
    };

    let dropped = knobbed(&orders, "KA", "bill=drop");
    assert_eq!(pay(&dropped, "KA"), None);
    assert_eq!(dropped.rows.len(), 4, "its refunds stay");

    let off = knobbed(&orders, "KA", "bill=amount_off");
    let ka = pay(&off, "KA").unwrap();
    assert_eq!(
        (ka.settlement_fen, ka.order_fen, ka.fee_millifen),
        (501, Some(501), 3000)
    );
    assert_eq!(pay(&off, "KB").unwrap().settlement_fen, 700);

    let flipped = knobbed(&orders, "KA", "bill=refund_state");
    let states: Vec<_> = flipped
        .rows
        .iter()
        .filter_map(|r| r.refund_status.clone())
        .collect();
    assert_eq!(states, ["PROCESSING", "SUCCESS", "SUCCESS"]);

    // Globally: one phantom in the day's bill, none in a day without rows.
    let phantom = parsed(&trade_bill(&orders, MCH, DAY, BillType::All, none, true).unwrap());
    let ghosts: Vec<_> = phantom
        .rows
        .iter()
        .filter(|r| r.out_trade_no.starts_with("PHANTOM"))
        .collect();
    assert_eq!((ghosts.len(), phantom.rows.len()), (1, 6));
    let g = ghosts[0];
    assert_eq!(
        (
            g.settlement_fen,
            g.trade_state.as_str(),
            g.transaction_id.len()
        ),
        (1, "SUCCESS", 28)
    );
    assert!(g.transaction_id.starts_with("4200") && g.trade_time.starts_with("2024-03-01"));
    let again = trade_bill(&orders, MCH, DAY, BillType::All, none, true);
    assert_eq!(
        again.map(|t| parsed(&t)).as_ref(),
        Some(&phantom),
        "the same bill every time"
    );
    assert_eq!(
        trade_bill(&orders, MCH, "20240302", BillType::All, none, true),
        None
    );
    // Per order: in the bill of the day it was paid. Knobs combine.
    assert_eq!(knobbed(&orders, "KB", "bill=extra"), phantom);
    let both = knobbed(&orders, "KB", "bill=drop+extra");
    assert!(both.rows.iter().all(|r| r.out_trade_no != "KB"));
    assert_eq!(both.rows.len(), 5);
}
