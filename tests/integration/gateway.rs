//! The payment-provider contract: what the flows rely on from `Gateway`, checked against the
//! sandbox through each API's client (`SCANPAY_WXPAY_API=v2` and `v3`) — the same answers, the
//! same errors, the same uncertainty, so the flows decide alike on either.

use scanpay::server::support::clock::{format_beijing, now_ms};
use scanpay::server::wxpay::bill::{self, BillAnswer};
use scanpay::server::wxpay::{
    ErrCode, RefundRequest, RefundState, TradeState, UnifiedOrderRequest, WxPayError,
};

use crate::common::{spawn_app, TestApp};

async fn app(api: &str) -> TestApp {
    spawn_app(&[
        ("SCANPAY_WXPAY_API", api),
        ("SCANPAY_SANDBOX_CLOSE_FLOOR", "1ms"),
        ("SCANPAY_SANDBOX_BILL_READY_AFTER", "0s"),
        // Refunds stay PROCESSING for 0.6 s (× the tests' time scale of 0.001).
        ("SCANPAY_SANDBOX_REFUND_DELAY", "600s"),
        // A held-back answer (the `timeout` knob) is given up on after this.
        ("SCANPAY_WXPAY_TIMEOUT", "1s"),
    ])
    .await
}

/// WeChat stops taking payment then: fixed for the test, so the same order is sent identically.
fn expire() -> &'static str {
    static AT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    AT.get_or_init(|| format_beijing(now_ms() + 600_000))
}

fn request(no: &str, total_fee: i64) -> UnifiedOrderRequest {
    UnifiedOrderRequest {
        body: "测试商品 tea".into(),
        out_trade_no: no.into(),
        total_fee,
        spbill_create_ip: "127.0.0.1".into(),
        // Nobody listens: the contract is about the calls.
        notify_url: "http://127.0.0.1:9/wxpay/notify".into(),
        product_id: "TEA".into(),
        time_start: None,
        time_expire: Some(expire().to_string()),
        attach: None,
    }
}

fn code(r: Result<impl std::fmt::Debug, WxPayError>) -> ErrCode {
    match r {
        Err(WxPayError::Business { code, .. }) => code,
        other => panic!("expected a business error, got {other:?}"),
    }
}

async fn contract(api: &str) {
    let app = app(api).await;
    let gw = app.ctx().wxpay.clone();
    assert_eq!(gw.api(), api);
    let sb = app.ctx().sandbox.clone().unwrap();
    let mch = app.ctx().settings.merchant.mch_id.clone();
    let stamp = now_ms();

    // Place: the same parameters are the same payment; other ones under the number are refused.
    let no = format!("G{api}{stamp}");
    let placed = gw.unified_order(&request(&no, 101)).await.unwrap();
    assert!(
        placed.code_url.starts_with("weixin://wxpay/bizpayurl"),
        "{placed:?}"
    );
    assert_eq!(
        gw.unified_order(&request(&no, 101)).await.unwrap().code_url,
        placed.code_url
    );
    let used = gw.unified_order(&request(&no, 102)).await;
    assert_eq!(code(used), ErrCode::OutTradeNoUsed);

    // Query before and after payment; an order WeChat never saw.
    let q = gw.order_query(&no).await.unwrap();
    assert_eq!(
        (q.trade_state, q.transaction_id),
        (TradeState::NotPay, None)
    );
    assert_eq!(
        code(gw.order_query(&format!("N{no}")).await),
        ErrCode::OrderNotExist
    );
    sb.pay_code(&placed.code_url).unwrap();
    let q = gw.order_query(&no).await.unwrap();
    assert_eq!(q.trade_state, TradeState::Success);
    assert_eq!(q.total_fee, Some(101));
    let txn = q
        .transaction_id
        .clone()
        .expect("a transaction id once paid");
    let time_end = q.time_end.clone().expect("a payment time");
    assert_eq!(time_end.len(), 14, "Beijing yyyyMMddHHmmss: {time_end}");

    // A paid order cannot be closed: WeChat says it is paid (both APIs' spellings read alike).
    assert_eq!(code(gw.close_order(&no).await), ErrCode::OrderPaid);

    // Close an unpaid one; it stays closed.
    let other = format!("C{api}{stamp}");
    gw.unified_order(&request(&other, 55)).await.unwrap();
    // The sandbox's close floor (1 ms here, WeChat's 5 minutes) must pass first.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    gw.close_order(&other).await.unwrap();
    assert_eq!(
        gw.order_query(&other).await.unwrap().trade_state,
        TradeState::Closed
    );
    assert_eq!(
        code(gw.unified_order(&request(&other, 55)).await),
        ErrCode::OrderClosed
    );

    // Refund: accepted, the same request again is the same refund, then its state.
    let refund = RefundRequest {
        transaction_id: txn.clone(),
        out_trade_no: no.clone(),
        out_refund_no: format!("{no}R01"),
        total_fee: 101,
        refund_fee: 40,
        refund_desc: "退货".into(),
        notify_url: String::new(),
    };
    let accepted = gw.refund(&refund).await.unwrap();
    assert_eq!(accepted.refund_fee, 40);
    assert_eq!(
        gw.refund(&refund).await.unwrap().refund_id,
        accepted.refund_id
    );
    let record = gw.refund_query(&refund.out_refund_no).await.unwrap();
    assert_eq!(
        (record.refund_id.as_str(), record.refund_fee, record.state),
        (accepted.refund_id.as_str(), 40, RefundState::Processing)
    );
    assert_eq!(
        code(gw.refund_query(&format!("{no}R99")).await),
        ErrCode::RefundNotExist
    );
    // Changed amounts under the same number: refused, nothing refunded twice.
    let changed = RefundRequest {
        refund_fee: 41,
        ..refund.clone()
    };
    assert!(!gw.refund(&changed).await.unwrap_err().is_retryable());
    // The order is now REFUND at WeChat, which still counts as paid.
    assert_eq!(
        gw.order_query(&no).await.unwrap().trade_state,
        TradeState::Refund
    );

    // Today's bill (ready at once in this sandbox): the payment and the refund, read alike.
    let today = &format_beijing(now_ms())[..8];
    let text = match gw.download_bill(today).await.unwrap() {
        BillAnswer::Text(t) => t,
        other => panic!("expected the bill, got {other:?}"),
    };
    let parsed = bill::parse(&text).unwrap();
    let mine: Vec<_> = parsed
        .rows
        .iter()
        .filter(|r| r.out_trade_no == no)
        .collect();
    assert_eq!(mine.len(), 2, "the payment and its refund: {mine:?}");
    assert!(mine
        .iter()
        .any(|r| r.transaction_id == txn && r.settlement_fen == 101));
    assert!(mine.iter().any(|r| r.refund_fen == 40));
    assert_eq!(
        gw.download_bill("20000101").await.unwrap(),
        BillAnswer::NoBill
    );

    // Uncertainty: an error answered without effect, and an effect answered too late.
    let set = |n: &str, f: &str| {
        sb.set_faults(
            Some(n),
            scanpay::server::sandbox::faults::Faults::parse(f).unwrap(),
        )
    };
    set(&no, "orderquery=systemerror");
    let e = gw.order_query(&no).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    let late = format!("T{api}{stamp}");
    gw.unified_order(&request(&late, 77)).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    set(&late, "closeorder=timeout");
    let e = gw.close_order(&late).await.unwrap_err();
    assert!(
        matches!(e, WxPayError::Transport(_)) && e.is_retryable(),
        "{e:?}"
    );
    assert_eq!(
        gw.order_query(&late).await.unwrap().trade_state,
        TradeState::Closed
    );
    set(&no, "refund=notenough");
    let more = RefundRequest {
        out_refund_no: format!("{no}R02"),
        refund_fee: 10,
        ..refund.clone()
    };
    assert_eq!(code(gw.refund(&more).await), ErrCode::NotEnough);
    set(&no, "refund=systemerror_applied");
    assert!(gw.refund(&more).await.unwrap_err().is_retryable());
    sb.clear_faults();
    // A bill download WeChat failed: uncertain, asked again later — not a refusal.
    sb.set_faults(
        None,
        scanpay::server::sandbox::faults::Faults::parse("downloadbill=systemerror").unwrap(),
    );
    let e = gw.download_bill(today).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    sb.clear_faults();
    // Retried identically, it is the refund already recorded — not a second one.
    let again = gw.refund(&more).await.unwrap();
    let held = sb.order(&mch, &no).unwrap().refunds;
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(held.iter().any(|r| r.refund_id == again.refund_id));
}

#[tokio::test]
async fn the_v2_client_keeps_the_contract() {
    contract("v2").await;
}

#[tokio::test]
async fn the_v3_client_keeps_the_contract() {
    contract("v3").await;
}
