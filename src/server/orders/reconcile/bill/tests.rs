//! The bill's rows as the comparison reads them: amounts by layout, and rows that do not belong.

use super::*;

fn old_layout(time: &str, coupon: &str) -> bill::Bill {
    let header = "交易时间,公众账号ID,商户号,子商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,总金额,代金券或立减优惠金额,微信退款单号,商户退款单号,退款金额,代金券或立减优惠退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率";
    let row = format!("`{time},`wx2421b1c4370ec43b,`10000100,`0,`,`1004400740201605040000000001,`SP1,`o1,`NATIVE,`SUCCESS,`CMB_CREDIT,`CNY,`12.30,`{coupon},`0,`0,`0.00,`0.00,`,`,`Tea,`,`0.07380,`0.60%");
    let text = [
        header,
        &row,
        "总交易单数,总交易额,总退款金额,总代金券或立减优惠退款金额,手续费总金额",
        "`1,`12.30,`0.00,`0.00,`0.07380",
    ]
    .join("\r\n");
    bill::parse(&text).unwrap()
}

#[test]
fn the_old_layouts_total_is_the_orders_amount_coupon_or_not() {
    let day = BillDate::parse("2016-05-04").unwrap();
    // 总金额 already holds a pre-funded coupon: adding it again would call every coupon payment
    // a difference.
    for coupon in ["0.00", "2.00"] {
        let (rows, totals) = wechat_rows(&old_layout("2016-05-04 10:00:01", coupon), &day).unwrap();
        assert_eq!(rows[0].amount_fen, 1230, "coupon {coupon}");
        assert_eq!((totals.rows, totals.order_fen), (1, None));
    }
}

#[test]
fn a_row_of_another_day_or_an_overlong_id_makes_the_bill_unusable() {
    let day = BillDate::parse("2016-05-04").unwrap();
    let e = wechat_rows(&old_layout("2016-05-05 00:00:00", "0.00"), &day).unwrap_err();
    assert!(e.contains("not on 2016-05-04"), "{e}");
    let e = wechat_rows(&old_layout("2016-05-04 25:00:00", "0.00"), &day).unwrap_err();
    assert!(e.contains("not a time"), "{e}");
    let mut b = old_layout("2016-05-04 10:00:01", "0.00");
    b.rows[0].out_trade_no = "X".repeat(65);
    let e = wechat_rows(&b, &day).unwrap_err();
    assert!(e.contains("longer than WeChat writes"), "{e}");
}
