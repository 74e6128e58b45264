//! What WeChat's answer about an order means for it: the one mapping from an `orderquery` result
//! to an action, used by the sweep, the close flow and the placing of an order alike. Pure: the
//! order, the answer and the time in, an `Action` out; `apply` carries it out.
//!
//! The rules, in short:
//! - money is applied only from a complete SUCCESS (transaction id, amount and payment time);
//!   anything less is an uncertain answer;
//! - an order with a QR code is closed only on WeChat's confirmed CLOSED (someone may hold the
//!   code); an order that never had one may also be closed or failed on ORDERNOTEXIST;
//! - a pending order without a QR code that WeChat holds (NOTPAY) gets its code by asking again with
//!   the identical request, unless WeChat has refused that request, in which case it is closed.

use crate::app::types::{FailureReason, OrderStatus};
use crate::server::domain::{OrderRow, Payment, RefundEnd};
use crate::server::support::clock::parse_beijing;
use crate::server::wxpay::{
    ErrCode, OrderQueryResponse, RefundAccepted, RefundRecord, RefundState, TradeState, WxPayError,
};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// WeChat took the money: the paid transition (amount checked there).
    Paid(Payment),
    /// WeChat confirms nobody can pay any more: `closed`, stock restored.
    Close(String),
    /// WeChat never created the payment: `failed`, stock restored.
    Fail(String),
    /// WeChat holds the order (or not yet) and the shopper has no QR code: send the identical
    /// unifiedorder again, which answers with the code.
    RequestQr,
    /// Start the close flow (deadline passed, or the QR can no longer be obtained).
    StartClose(FailureReason),
    /// Nothing definite: look again later.
    Wait(String),
}

/// Whether asking unifiedorder again can still give the shopper a QR code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QrRoute {
    /// Yes: the request was never refused.
    Open,
    /// No: WeChat refused our unifiedorder (OUT_TRADE_NO_USED, ORDERPAID, a definite error).
    Refused,
}

pub fn decide(
    order: &OrderRow,
    answer: &Result<OrderQueryResponse, WxPayError>,
    now: i64,
    route: QrRoute,
) -> Action {
    let pending = order.status == OrderStatus::Pending;
    let past_deadline = now >= order.deadline_at;
    let has_qr = order.code_url.is_some();
    let q = match answer {
        Ok(q) => q,
        // WeChat has no such order: unifiedorder never landed.
        Err(WxPayError::Business {
            code: ErrCode::OrderNotExist,
            ..
        }) => {
            return if has_qr {
                // We hold a code WeChat issued, so it does exist: an inconsistent answer.
                Action::Wait("orderquery: ORDERNOTEXIST for an order with a QR code".into())
            } else if pending && !past_deadline && route == QrRoute::Open {
                Action::RequestQr
            } else if pending {
                Action::Fail("orderquery: ORDERNOTEXIST".into())
            } else {
                // Closing, never created at WeChat: nothing can pay it.
                Action::Close("orderquery: ORDERNOTEXIST".into())
            };
        }
        Err(e) => return Action::Wait(format!("orderquery: {e}")),
    };
    match q.trade_state {
        TradeState::Success | TradeState::Refund => match payment(order, q) {
            Ok(p) => Action::Paid(p),
            Err(missing) => Action::Wait(format!("orderquery: SUCCESS without {missing}")),
        },
        TradeState::Closed | TradeState::Revoked | TradeState::PayError => {
            Action::Close(format!("orderquery: {}", q.trade_state.as_str()))
        }
        // NOTPAY, USERPAYING, or a state this version does not know.
        _ if !pending => Action::Wait(format!("orderquery: {}", q.trade_state.as_str())),
        _ if past_deadline => Action::StartClose(FailureReason::Expired),
        _ if has_qr => Action::Wait(format!("orderquery: {}", q.trade_state.as_str())),
        _ if route == QrRoute::Open => Action::RequestQr,
        _ => Action::StartClose(FailureReason::PaymentNotCreated),
    }
}

/// The evidence of a SUCCESS, or the name of the field it lacks.
fn payment(order: &OrderRow, q: &OrderQueryResponse) -> Result<Payment, &'static str> {
    let transaction_id = q
        .transaction_id
        .clone()
        .filter(|t| !t.is_empty())
        .ok_or("transaction_id")?;
    let total_fee = q.total_fee.filter(|f| *f > 0).ok_or("total_fee")?;
    let paid_at = q
        .time_end
        .as_deref()
        .and_then(|t| parse_beijing(t).ok())
        .ok_or("time_end")?;
    Ok(Payment {
        out_trade_no: order.id.clone(),
        transaction_id,
        total_fee,
        paid_at,
    })
}

/// What WeChat's answer to a refund request means for the refund.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RefundAnswer {
    /// Accepted (not yet returned): `processing`, WeChat's refund id kept.
    Accepted(String),
    /// Unknown whether WeChat has it: send the identical request again later.
    Uncertain(String),
    /// WeChat will not refund it (NOTENOUGH, TRADE_OVERDUE, ORDERNOTEXIST, …): `failed`.
    Refused(String),
}

pub fn decide_refund(answer: &Result<RefundAccepted, WxPayError>) -> RefundAnswer {
    match answer {
        Ok(a) => RefundAnswer::Accepted(a.refund_id.clone()),
        // A timeout, SYSTEMERROR, a 5xx, a non-XML 400 page (no client certificate reached
        // WeChat), a garbled or unsigned answer: it may have been applied.
        Err(e) if e.is_retryable() => RefundAnswer::Uncertain(e.to_string()),
        Err(e) => RefundAnswer::Refused(e.to_string()),
    }
}

/// What a refundquery answer settles; None while WeChat is still at it (or the answer says
/// nothing definite).
pub fn decide_refund_query(answer: &Result<RefundRecord, WxPayError>) -> Option<RefundEnd> {
    let r = answer.as_ref().ok()?;
    refund_end(
        &r.state,
        Some(&r.refund_id),
        &r.success_time,
        &r.recv_account,
    )
}

/// A state WeChat reported (notify or query) as a refund's end.
pub fn refund_end(
    state: &RefundState,
    refund_id: Option<&String>,
    success_time: &Option<String>,
    recv_account: &Option<String>,
) -> Option<RefundEnd> {
    match state {
        RefundState::Success => Some(RefundEnd::Success {
            refund_id: refund_id.filter(|r| !r.is_empty()).cloned(),
            success_time: success_time.clone(),
            recv_account: recv_account.clone(),
        }),
        RefundState::Closed => Some(RefundEnd::Closed),
        RefundState::Change => Some(RefundEnd::Abnormal),
        RefundState::Processing | RefundState::Other(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn order(status: OrderStatus, qr: bool) -> OrderRow {
        OrderRow {
            next_check_at: None,
            id: "O1".into(),
            session_id: "s".into(),
            status,
            total_fee: 100,
            body: "b".into(),
            created_at: 0,
            deadline_at: 1_000,
            code_url: qr.then(|| "weixin://x".into()),
            transaction_id: None,
            paid_at: None,
            failure_reason: None,
            parked: false,
            refunded_fee: 0,
        }
    }

    fn query(state: TradeState) -> Result<OrderQueryResponse, WxPayError> {
        Ok(OrderQueryResponse {
            trade_state: state,
            out_trade_no: "O1".into(),
            trade_state_desc: None,
            transaction_id: Some("4200".into()),
            total_fee: Some(100),
            time_end: Some("20261127120000".into()),
        })
    }

    fn not_exist() -> Result<OrderQueryResponse, WxPayError> {
        Err(WxPayError::Business {
            code: ErrCode::OrderNotExist,
            description: String::new(),
        })
    }

    use OrderStatus::{Closing, Pending};
    use QrRoute::{Open, Refused};

    #[test]
    fn success_pays_only_with_complete_evidence() {
        let o = order(Pending, true);
        assert!(matches!(
            decide(&o, &query(TradeState::Success), 0, Open),
            Action::Paid(Payment { total_fee: 100, .. })
        ));
        for strip in ["transaction_id", "total_fee", "time_end"] {
            let mut q = query(TradeState::Success).unwrap();
            match strip {
                "transaction_id" => q.transaction_id = Some(String::new()),
                "total_fee" => q.total_fee = None,
                _ => q.time_end = None,
            }
            let a = decide(&o, &Ok(q), 0, Open);
            assert!(
                matches!(a, Action::Wait(ref w) if w.contains(strip)),
                "{a:?}"
            );
        }
    }

    #[test]
    fn an_order_with_a_qr_closes_only_on_confirmed_closed() {
        for status in [Pending, Closing] {
            let o = order(status, true);
            assert!(matches!(
                decide(&o, &not_exist(), 5_000, Open),
                Action::Wait(_)
            ));
            assert!(matches!(
                decide(&o, &query(TradeState::Closed), 0, Open),
                Action::Close(_)
            ));
        }
        let closing = order(Closing, false);
        assert!(matches!(
            decide(&closing, &not_exist(), 0, Open),
            Action::Close(_)
        ));
    }

    #[test]
    fn a_pending_order_without_qr_asks_again_unless_refused() {
        let o = order(Pending, false);
        assert_eq!(
            decide(&o, &query(TradeState::NotPay), 0, Open),
            Action::RequestQr
        );
        assert_eq!(decide(&o, &not_exist(), 0, Open), Action::RequestQr);
        assert_eq!(
            decide(&o, &query(TradeState::NotPay), 0, Refused),
            Action::StartClose(FailureReason::PaymentNotCreated)
        );
        assert!(matches!(
            decide(&o, &not_exist(), 0, Refused),
            Action::Fail(_)
        ));
        assert!(matches!(
            decide(&o, &not_exist(), 5_000, Open),
            Action::Fail(_)
        ));
        assert_eq!(
            decide(&o, &query(TradeState::NotPay), 5_000, Open),
            Action::StartClose(FailureReason::Expired)
        );
    }

    #[test]
    fn notpay_waits_before_the_deadline_and_errors_are_uncertain() {
        let o = order(Pending, true);
        assert!(matches!(
            decide(&o, &query(TradeState::NotPay), 0, Open),
            Action::Wait(_)
        ));
        assert!(matches!(
            decide(&o, &query(TradeState::UserPaying), 0, Open),
            Action::Wait(_)
        ));
        let e = Err(WxPayError::Transport("timed out".into()));
        assert!(matches!(decide(&o, &e, 5_000, Open), Action::Wait(_)));
        let closing = order(Closing, true);
        assert!(matches!(
            decide(&closing, &query(TradeState::NotPay), 5_000, Open),
            Action::Wait(_)
        ));
    }

    fn refund_biz(code: &str) -> WxPayError {
        WxPayError::Business {
            code: ErrCode::parse(code),
            description: String::new(),
        }
    }

    #[test]
    fn a_refund_answer_is_definite_only_when_wechat_says_so() {
        let ok = Ok(RefundAccepted {
            refund_id: "5001".into(),
            refund_fee: 1,
        });
        assert_eq!(decide_refund(&ok), RefundAnswer::Accepted("5001".into()));
        let uncertain = [
            WxPayError::Transport("timed out".into()),
            WxPayError::Http(400), // WeChat's page when no client certificate reached it
            WxPayError::Http(503),
            WxPayError::BadSignature,
            WxPayError::InvalidResponse("missing refund_id".into()),
            refund_biz("SYSTEMERROR"),
            refund_biz("BIZERR_NEED_RETRY"),
            refund_biz("FREQUENCY_LIMITED"),
            refund_biz("INVALID_REQ_TOO_MUCH"),
        ];
        for e in uncertain {
            let shown = e.to_string();
            assert!(
                matches!(decide_refund(&Err(e)), RefundAnswer::Uncertain(_)),
                "{shown}"
            );
        }
        let refused = [
            refund_biz("NOTENOUGH"),
            refund_biz("TRADE_OVERDUE"),
            refund_biz("ORDERNOTEXIST"),
            refund_biz("USER_ACCOUNT_ABNORMAL"),
            WxPayError::Protocol {
                return_msg: "证书与商户号不匹配".into(),
            },
        ];
        for e in refused {
            let shown = e.to_string();
            assert!(
                matches!(decide_refund(&Err(e)), RefundAnswer::Refused(_)),
                "{shown}"
            );
        }
    }

    #[test]
    fn only_a_final_refund_state_settles_a_refund() {
        let rec = |state: RefundState| {
            Ok(RefundRecord {
                out_refund_no: "O1R01".into(),
                refund_id: "5001".into(),
                refund_fee: 1,
                state,
                success_time: Some("2026-12-01 12:00:00".into()),
                recv_account: None,
            })
        };
        assert!(matches!(
            decide_refund_query(&rec(RefundState::Success)),
            Some(RefundEnd::Success { refund_id: Some(ref id), .. }) if id == "5001"
        ));
        assert_eq!(
            decide_refund_query(&rec(RefundState::Closed)),
            Some(RefundEnd::Closed)
        );
        assert_eq!(
            decide_refund_query(&rec(RefundState::Change)),
            Some(RefundEnd::Abnormal)
        );
        assert_eq!(decide_refund_query(&rec(RefundState::Processing)), None);
        assert_eq!(
            decide_refund_query(&rec(RefundState::Other("NEW".into()))),
            None
        );
        assert_eq!(decide_refund_query(&Err(refund_biz("SYSTEMERROR"))), None);
    }
}
