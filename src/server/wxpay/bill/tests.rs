//! The bill parser against the reference's fixtures (wxpay-refund-bill.md §4.4: the PHP SDK's
//! ALL rows, the layouts by column count) and the ways bills go wrong for SDK users.

use super::*;

const ALL_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
/// The PHP SDK's fixture rows (a payment, then a refund; its product name as the reference has it).
const PAY_ROW: &str = "`2019-02-19 01:52:32,`wxab8acd895ab1638a,`1921000401,`0,`,`4200000263201902167700134902,`autotest_20190219015232_89201,`wxab8acb865bb1637e,`NATIVE,`SUCCESS,`OTHERS,`CNY,`0.03,`0.00,`0,`0,`0.00,`0.00,`,`,`autotest,`,`0.01000,`39.00%,`0.03,`0.00,`";
const REFUND_ROW: &str = "`2019-02-19 05:01:46,`wxab8acd895ab1638a,`1921000401,`0,`harryma007,`4200000263201902167700134212,`autotest_20190216081946_82335,`oHkLxtx0vUqe-18p_AXTZ1innxkCY,`JSAPI,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50000709672019011908420787722,`REF4200000263201902167700963919,`0.01,`0.00,`ORIGINAL,`SUCCESS,`<商品名称>,`,`0.00000,`39.00%,`0.00,`0.01,`";
const ALL_SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

fn bill(lines: &[&str], eol: &str) -> String {
    format!("\u{feff}{}{eol}", lines.join(eol))
}

#[test]
fn the_current_all_layout_with_bom_and_crlf() {
    let text = bill(
        &[
            ALL_HEADER,
            PAY_ROW,
            REFUND_ROW,
            ALL_SUMMARY_HEADER,
            "`2,`0.03,`0.01,`0.00,`0.01000,`0.03,`0.01",
        ],
        "\r\n",
    );
    let b = parse(&text).unwrap();
    assert_eq!(b.columns, 27);
    assert_eq!(b.rows.len(), 2);
    let pay = &b.rows[0];
    assert_eq!(pay.trade_time, "2019-02-19 01:52:32");
    assert_eq!(pay.transaction_id, "4200000263201902167700134902");
    assert_eq!(pay.out_trade_no, "autotest_20190219015232_89201");
    assert_eq!(
        (pay.trade_type.as_str(), pay.trade_state.as_str()),
        ("NATIVE", "SUCCESS")
    );
    assert_eq!(pay.settlement_fen, 3);
    assert_eq!(pay.fee_millifen, 1000, "0.01000 yuan is one fen");
    assert_eq!((pay.order_fen, pay.applied_refund_fen), (Some(3), Some(0)));
    assert!(
        !pay.is_refund(),
        "0 in the refund columns of a payment is no refund"
    );
    assert_eq!(
        (pay.refund_id.clone(), pay.refund_status.clone()),
        (None, None)
    );
    let refund = &b.rows[1];
    assert!(refund.is_refund());
    assert_eq!(
        refund.out_refund_no.as_deref(),
        Some("REF4200000263201902167700963919")
    );
    assert_eq!(
        refund.refund_id.as_deref(),
        Some("50000709672019011908420787722")
    );
    assert_eq!((refund.refund_fen, refund.settlement_fen), (1, 0));
    assert_eq!(refund.refund_status.as_deref(), Some("SUCCESS"));
    assert_eq!(refund.body, "<商品名称>");
    assert_eq!(b.summary.rows, 2);
    // LF alone reads the same.
    assert_eq!(parse(&text.replace("\r\n", "\n")).unwrap(), b);
}

#[test]
fn the_old_24_column_layout_by_its_names() {
    let header = "交易时间,公众账号ID,商户号,子商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,总金额,代金券或立减优惠金额,微信退款单号,商户退款单号,退款金额,代金券或立减优惠退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率";
    let row = "`2016-05-04 10:00:01,`wx2421b1c4370ec43b,`10000100,`0,`,`1004400740201605040000000001,`SP1,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`SUCCESS,`CMB_CREDIT,`CNY,`12.30,`0.00,`0,`0,`0.00,`0.00,`,`,`Tea,`,`0.07380,`0.60%";
    let text = bill(
        &[
            header,
            row,
            "总交易单数,总交易额,总退款金额,总代金券或立减优惠退款金额,手续费总金额",
            "`1,`12.30,`0.00,`0.00,`0.07380",
        ],
        "\r\n",
    );
    let b = parse(&text).unwrap();
    assert_eq!(b.columns, 24);
    assert_eq!(b.rows[0].settlement_fen, 1230);
    assert_eq!(b.rows[0].fee_millifen, 7380);
    assert_eq!((b.rows[0].order_fen, b.summary.order_fen), (None, None));
}

#[test]
fn success_and_refund_bills() {
    let success_header = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,商品名称,商户数据包,手续费,费率,订单金额,费率备注";
    let row = "`2026-11-30 09:00:00,`wx5a4d1ba6b7c8e9f0,`1900000109,`0,`,`4200000001202611300000000001,`SP1,`o1,`NATIVE,`SUCCESS,`OTHERS,`CNY,`68.00,`0.00,`Tea,`,`0.40800,`0.60%,`68.00,`";
    let s = parse(&bill(&[success_header, row, "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额", "`1,`68.00,`0.00,`0.00,`0.40800,`68.00,`0.00"], "\r\n")).unwrap();
    assert_eq!(
        (s.columns, s.rows[0].settlement_fen, s.rows[0].is_refund()),
        (20, 6800, false)
    );

    let refund_header = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,退款申请时间,退款成功时间,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";
    let row = "`2026-11-30 09:00:00,`wx5a4d1ba6b7c8e9f0,`1900000109,`0,`,`4200000001202611300000000001,`SP1,`o1,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`2026-11-30 10:00:00,`2026-11-30 10:00:05,`50300000012026113000000001,`SP1R01,`12.00,`0.00,`ORIGINAL,`PROCESSING,`Tea,`,`-0.07200,`0.60%,`0.00,`12.00,`";
    let summary = "`1,`0.00,`12.00,`0.00,`-0.07200,`0.00,`12.00";
    // A refund returns its share of the fee: negative, and the day's total with it. A summary
    // that disagrees in sign does not add up.
    let wrong_sign = summary.replace("`-0.07200", "`0.07200");
    let r = parse(&bill(&[refund_header, row, "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额", &wrong_sign], "\r\n"));
    assert!(matches!(r, Err(BillError::Summary(_))), "{r:?}");
    let b = parse(&bill(&[refund_header, row, "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额", summary], "\r\n")).unwrap();
    assert_eq!(b.rows[0].fee_millifen, -7200);
    assert_eq!(b.columns, 29);
    let r = &b.rows[0];
    assert_eq!(
        (
            r.out_refund_no.as_deref(),
            r.refund_fen,
            r.refund_status.as_deref()
        ),
        (Some("SP1R01"), 1200, Some("PROCESSING"))
    );
    assert_eq!(r.applied_refund_fen, Some(1200));
}

#[test]
fn an_empty_bill_and_a_truncated_one() {
    let empty = bill(
        &[
            ALL_HEADER,
            ALL_SUMMARY_HEADER,
            "`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00",
        ],
        "\r\n",
    );
    let b = parse(&empty).unwrap();
    assert!(b.rows.is_empty());
    // A header alone (a download cut short) is refused, never read as "nothing happened".
    assert_eq!(
        parse(&bill(&[ALL_HEADER], "\r\n")),
        Err(BillError::NoSummary)
    );
    assert_eq!(
        parse(&bill(&[ALL_HEADER, PAY_ROW], "\r\n")),
        Err(BillError::NoSummary)
    );
    assert_eq!(parse(""), Err(BillError::NoHeader));
    assert_eq!(parse("\u{feff}"), Err(BillError::NoHeader));
}

#[test]
fn a_summary_that_does_not_add_up_is_refused() {
    for (summary, what) in [
        ("`2,`0.04,`0.01,`0.00,`0.01000,`0.03,`0.01", "settlement"),
        ("`3,`0.03,`0.01,`0.00,`0.01000,`0.03,`0.01", "rows"),
        ("`2,`0.03,`0.02,`0.00,`0.01000,`0.03,`0.01", "refunds"),
        ("`2,`0.03,`0.01,`0.00,`0.01001,`0.03,`0.01", "fees"),
        (
            "`2,`0.03,`0.01,`0.01,`0.01000,`0.03,`0.01",
            "coupon refunds",
        ),
        (
            "`2,`0.03,`0.01,`0.00,`0.01000,`0.03,`0.02",
            "applied refunds",
        ),
    ] {
        let r = parse(&bill(
            &[ALL_HEADER, PAY_ROW, REFUND_ROW, ALL_SUMMARY_HEADER, summary],
            "\r\n",
        ));
        match r {
            Err(BillError::Summary(why)) => assert!(why.contains(what), "{what}: {why}"),
            other => panic!("{what}: {other:?}"),
        }
    }
    // The PHP fixture writes its count as 45.0: a decimal count is read as one.
    let ok = bill(
        &[
            ALL_HEADER,
            PAY_ROW,
            REFUND_ROW,
            ALL_SUMMARY_HEADER,
            "`2.0,`0.03,`0.01,`0.0,`0.01000,`0.03,`0.01",
        ],
        "\r\n",
    );
    assert_eq!(parse(&ok).unwrap().summary.rows, 2);
}

/// A bill of one payment row (PAY_ROW's amounts) in the current ALL layout, parsed.
fn parse_one_payment(row: &str) -> Bill {
    parse(&bill(
        &[
            ALL_HEADER,
            row,
            ALL_SUMMARY_HEADER,
            "`1,`0.03,`0.00,`0.00,`0.01000,`0.03,`0.00",
        ],
        "\r\n",
    ))
    .unwrap()
}

/// A body or attach holding a comma, a backtick or even `` ,` `` (merchants' bodies may; scanpay's
/// own — the shop's and the products' names — never hold `` ,` ``) does not shift the columns.
#[test]
fn commas_and_backticks_in_a_body_do_not_shift_columns() {
    for body in ["Tea, the good one", "Tea `green`", "Tea,`oolong", "a,`b,`c"] {
        let row = PAY_ROW.replace(",`autotest,`", &format!(",`{body},`"));
        let b = parse_one_payment(&row);
        assert_eq!(b.rows[0].body, body);
        assert_eq!(
            b.rows[0].fee_millifen, 1000,
            "{body}: the columns after it are where they were"
        );
        assert_eq!(b.rows[0].order_fen, Some(3));
    }
    // An attach with a comma or a backtick is kept whole too. One holding `` ,` `` cannot be
    // told from a body holding it (the two columns are side by side): such a row's body takes
    // the extra and its attach the rest, the money columns still where they were. scanpay sends
    // no attach (orders/qr.rs), so its own rows never meet this.
    for attach in ["x=1,y=2", "k=`v`", "a,`b"] {
        let row = PAY_ROW.replace(",`autotest,`,`", &format!(",`autotest,`{attach},`"));
        let b = parse_one_payment(&row);
        let r = &b.rows[0];
        if attach.contains(",`") {
            assert_eq!(
                format!("{},`{}", r.body, r.attach),
                format!("autotest,`{attach}")
            );
        } else {
            assert_eq!((r.body.as_str(), r.attach.as_str()), ("autotest", attach));
        }
        assert_eq!((r.fee_millifen, r.order_fen), (1000, Some(3)), "{attach}");
    }
    // A row a value short is refused, not read askew.
    let short = PAY_ROW.replacen(",`CNY", "", 1);
    assert_ne!(short, PAY_ROW);
    assert!(matches!(
        parse(&bill(
            &[
                ALL_HEADER,
                &short,
                ALL_SUMMARY_HEADER,
                "`1,`0.03,`0.00,`0.00,`0.01000,`0.03,`0.00"
            ],
            "\r\n"
        )),
        Err(BillError::Row { .. })
    ));
}

#[test]
fn the_answer_is_told_apart_on_its_bytes() {
    let xml = |msg: &str, code: &str| {
        format!("<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[{msg}]]></return_msg><error_code><![CDATA[{code}]]></error_code></xml>")
    };
    assert_eq!(
        classify(xml("No Bill Exist", "20002").as_bytes()),
        Ok(BillAnswer::NoBill)
    );
    assert_eq!(
        classify(xml("NO Bill Exist", "20002").as_bytes()),
        Ok(BillAnswer::NoBill),
        "the documentation's spelling"
    );
    assert_eq!(
        classify(xml("Bill Creating", "").as_bytes()),
        Ok(BillAnswer::NotReady)
    );
    assert_eq!(
        classify(xml("invalid bill_date", "20001").as_bytes()),
        Ok(BillAnswer::Refused {
            msg: "invalid bill_date".into(),
            code: "20001".into()
        })
    );
    let text = bill(
        &[
            ALL_HEADER,
            PAY_ROW,
            ALL_SUMMARY_HEADER,
            "`1,`0.03,`0.00,`0.00,`0.01000,`0.03,`0.00",
        ],
        "\r\n",
    );
    assert_eq!(
        classify(text.as_bytes()),
        Ok(BillAnswer::Text(text.clone()))
    );
    // Asked with tar_type=GZIP: the file comes compressed — and a refusal still as plain XML.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(&mut gz, text.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    assert_eq!(classify(&gz), Ok(BillAnswer::Text(text)));
    assert!(
        matches!(classify(&gz[..gz.len() / 2]), Err(BillError::Gzip(_))),
        "a cut-off download"
    );
    assert_eq!(classify(&[0xff, 0xfe, 0x00]), Err(BillError::NotText));
}

#[test]
fn decimals_are_exact() {
    assert_eq!(decimal("0.03", 2), Some(3));
    assert_eq!(decimal("12.3", 2), Some(1230));
    assert_eq!(decimal("45.0", 0), Some(45));
    assert_eq!(decimal("0.01000", 5), Some(1000));
    assert_eq!(decimal("0.010000", 5), Some(1000));
    for bad in ["", "-0.01", "1e3", "0.001", "1,000", ".5", "abc"] {
        assert_eq!(decimal(bad, 2), None, "{bad}");
    }
}
