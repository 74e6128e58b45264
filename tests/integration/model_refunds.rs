//! The model test's refunds: WeChat's refund desk (scripted behind the same `Gateway` seam as
//! the rest of the model's WeChat), and the refund invariants checked after every step:
//! refunded ≤ paid for every order (in SQL and at WeChat), WeChat refunded each `out_refund_no`
//! once and only with the amounts scanpay recorded, no refund of an order that is not paid, and
//! every end in SQL is WeChat's own. The desk takes whatever it is asked (no sum guard of its
//! own), so a request scanpay should never have sent shows up here rather than as a refusal.

use std::collections::{BTreeMap, HashMap, VecDeque};

use scanpay::server::wxpay::refund_notify::{encrypt_req_info, to_root_xml};
use scanpay::server::wxpay::xml::{self, Params};
use scanpay::server::wxpay::{
    ErrCode, Merchant, RefundAccepted, RefundRecord, RefundRequest, RefundState, WxPayError,
};

use crate::common::sql;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundFault {
    /// Refused, not applied.
    SystemError,
    /// Applied, the answer lost.
    Timeout,
    /// Applied, yet answered with a definite-looking refusal (a retry that met WeChat's own
    /// record of the number): scanpay must ask before it concludes `failed`.
    RefusedButApplied,
}

#[derive(Debug, Clone)]
pub struct AtWechat {
    pub order: String,
    pub txn: String,
    pub total: i64,
    pub fee: i64,
    pub refund_id: String,
    pub state: RefundState,
}

#[derive(Default, Clone)]
pub struct RefundDesk {
    pub refunds: BTreeMap<String, AtWechat>,
    pub faults: VecDeque<RefundFault>,
    /// Requests under a known number with other amounts (scanpay must never send one).
    pub mismatched: u32,
    seq: u64,
}

fn biz(code: ErrCode) -> WxPayError {
    WxPayError::Business {
        code,
        description: String::new(),
    }
}

impl RefundDesk {
    /// `paid`: the transaction WeChat holds as paid for the order, with its amount.
    pub fn refund(
        &mut self,
        r: &RefundRequest,
        paid: Option<(String, i64)>,
    ) -> Result<RefundAccepted, WxPayError> {
        let fault = self.faults.pop_front();
        if fault == Some(RefundFault::SystemError) {
            return Err(biz(ErrCode::SystemError));
        }
        let answer = match self.refunds.get(&r.out_refund_no) {
            Some(held)
                if (held.fee, held.total, &held.txn)
                    == (r.refund_fee, r.total_fee, &r.transaction_id) =>
            {
                Ok(RefundAccepted {
                    refund_id: held.refund_id.clone(),
                    refund_fee: held.fee,
                })
            }
            Some(_) => {
                self.mismatched += 1;
                Err(biz(ErrCode::Error))
            }
            None => match paid {
                Some((txn, total)) if txn == r.transaction_id && total == r.total_fee => {
                    self.seq += 1;
                    let refund_id = format!("50{:027}", self.seq);
                    self.refunds.insert(
                        r.out_refund_no.clone(),
                        AtWechat {
                            order: r.out_trade_no.clone(),
                            txn,
                            total,
                            fee: r.refund_fee,
                            refund_id: refund_id.clone(),
                            state: RefundState::Processing,
                        },
                    );
                    Ok(RefundAccepted {
                        refund_id,
                        refund_fee: r.refund_fee,
                    })
                }
                _ => Err(biz(ErrCode::OrderNotExist)),
            },
        };
        match (fault, answer) {
            (Some(RefundFault::Timeout), _) => Err(WxPayError::Transport("timed out".into())),
            (Some(RefundFault::RefusedButApplied), Ok(_)) => Err(biz(ErrCode::Error)),
            (_, answer) => answer,
        }
    }

    pub fn query(&self, no: &str) -> Result<RefundRecord, WxPayError> {
        let r = self
            .refunds
            .get(no)
            .ok_or_else(|| biz(ErrCode::RefundNotExist))?;
        Ok(RefundRecord {
            out_refund_no: no.to_string(),
            refund_id: r.refund_id.clone(),
            refund_fee: r.fee,
            state: r.state.clone(),
            success_time: (r.state == RefundState::Success).then(|| "2026-12-01 12:00:00".into()),
            recv_account: Some("支付用户零钱".into()),
        })
    }

    /// WeChat finishes the order's refunds in progress; returns their numbers.
    pub fn finish(&mut self, order: &str, to: RefundState) -> Vec<String> {
        let mut done = Vec::new();
        for (no, r) in self.refunds.iter_mut() {
            if r.order == order && r.state == RefundState::Processing {
                r.state = to.clone();
                done.push(no.clone());
            }
        }
        done
    }

    /// The refund notify WeChat sends for `no`, encrypted with `key` (the merchant's, or not).
    pub fn notify_body(&self, m: &Merchant, no: &str, key: &str, fee_off: i64) -> Vec<u8> {
        let r = &self.refunds[no];
        let mut inner: Params = [
            ("out_refund_no", no.to_string()),
            ("out_trade_no", r.order.clone()),
            ("refund_id", r.refund_id.clone()),
            ("transaction_id", r.txn.clone()),
            ("total_fee", r.total.to_string()),
            ("refund_fee", (r.fee + fee_off).to_string()),
            ("settlement_refund_fee", r.fee.to_string()),
            ("refund_status", r.state.as_str().to_string()),
            ("refund_recv_accout", "支付用户零钱".to_string()),
            ("refund_request_source", "API".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        if r.state == RefundState::Success {
            inner.insert("success_time".into(), "2026-12-01 12:00:00".into());
        }
        refund_notify_xml(&m.appid, &m.mch_id, key, &inner).into_bytes()
    }
}

/// A refund notify as WeChat sends it: unsigned outer XML, the refund in `req_info` encrypted
/// with `key` (the merchant's API key, or another to forge one).
pub(crate) fn refund_notify_xml(appid: &str, mch_id: &str, key: &str, inner: &Params) -> String {
    let outer: Params = [
        ("return_code", "SUCCESS".to_string()),
        ("appid", appid.to_string()),
        ("mch_id", mch_id.to_string()),
        ("nonce_str", "n0nce".to_string()),
        ("req_info", encrypt_req_info(key, &to_root_xml(inner))),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    xml::to_xml(&outer)
}

type RefundCols = (String, String, String, i64, i64, String);

/// The refund invariants, over SQL and WeChat's desk; `paid_at_wechat` is each order's paid
/// transaction and amount at WeChat.
pub async fn check(
    db: &sqlx::AnyPool,
    desk: &RefundDesk,
    paid_at_wechat: &HashMap<String, (String, i64)>,
) {
    assert_eq!(
        desk.mismatched, 0,
        "scanpay sent other amounts under a number WeChat knew"
    );
    let rows: Vec<RefundCols> = sqlx::query_as(&sql(
        "SELECT out_refund_no, order_id, transaction_id, total_fee, refund_fee, status FROM refunds",
    ))
    .fetch_all(db)
    .await
    .unwrap();
    let orders: Vec<(String, String, i64, i64, Option<String>)> = sqlx::query_as(&sql(
        "SELECT id, status, total_fee, refunded_fee, transaction_id FROM orders",
    ))
    .fetch_all(db)
    .await
    .unwrap();
    let held: HashMap<&str, &RefundCols> = rows.iter().map(|r| (r.0.as_str(), r)).collect();
    for (id, status, total, refunded, txn) in &orders {
        let mine: Vec<&RefundCols> = rows.iter().filter(|r| &r.1 == id).collect();
        if !mine.is_empty() {
            assert_eq!(
                status, "paid",
                "no refund of an order that is not paid ({id})"
            );
        }
        let holding: i64 = mine
            .iter()
            .filter(|r| !matches!(r.5.as_str(), "failed" | "closed"))
            .map(|r| r.4)
            .sum();
        assert!(holding <= *total, "I7: {id} refunds {holding} of {total}");
        let succeeded: i64 = mine.iter().filter(|r| r.5 == "success").map(|r| r.4).sum();
        assert_eq!(
            *refunded, succeeded,
            "{id}: refunded_fee is its successful refunds"
        );
        // REFUNDCLOSE returned nothing: its amount is the merchant's again.
        let at_wechat: i64 = desk
            .refunds
            .values()
            .filter(|r| &r.order == id && r.state != RefundState::Closed)
            .map(|r| r.fee)
            .sum();
        assert!(
            at_wechat <= *total,
            "I7: WeChat refunded {at_wechat} of {id}'s {total}"
        );
        if let Some(t) = txn {
            assert!(
                mine.iter().all(|r| &r.2 == t),
                "{id}: refunds of its own payment"
            );
        }
    }
    for (no, w) in &desk.refunds {
        let r = held
            .get(no.as_str())
            .unwrap_or_else(|| panic!("I8: WeChat holds {no}, scanpay has no such refund"));
        assert_eq!(
            (&r.1, &r.2, r.3, r.4),
            (&w.order, &w.txn, w.total, w.fee),
            "I8: {no} as recorded"
        );
        let paid = paid_at_wechat.get(&w.order);
        assert_eq!(
            paid.map(|p| &p.0),
            Some(&w.txn),
            "{no}: a refund of a payment WeChat holds"
        );
        let ok = match r.5.as_str() {
            "requested" | "processing" => true,
            "success" => w.state == RefundState::Success,
            "closed" => w.state == RefundState::Closed,
            "abnormal" => w.state == RefundState::Change,
            other => panic!("{no} is {other} though WeChat holds it"),
        };
        assert!(
            ok,
            "{no}: {} in SQL, {:?} at WeChat: money never guessed",
            r.5, w.state
        );
    }
    for r in &rows {
        if !desk.refunds.contains_key(&r.0) {
            assert!(
                matches!(r.5.as_str(), "requested" | "failed"),
                "{}: {} in SQL but WeChat never had it",
                r.0,
                r.5
            );
        }
    }
}

/// Once WeChat has answered every refund: each one final in SQL, as WeChat has it.
pub async fn check_final(db: &sqlx::AnyPool, desk: &RefundDesk) {
    let rows: Vec<(String, String)> =
        sqlx::query_as(&sql("SELECT out_refund_no, status FROM refunds"))
            .fetch_all(db)
            .await
            .unwrap();
    for (no, status) in rows {
        assert!(
            !matches!(status.as_str(), "requested" | "processing"),
            "{no} still {status} a reconciliation period after WeChat answered"
        );
        if let Some(w) = desk.refunds.get(&no) {
            let want = match w.state {
                RefundState::Success => "success",
                RefundState::Closed => "closed",
                RefundState::Change => "abnormal",
                _ => "processing",
            };
            assert_eq!(status, want, "{no} ends as WeChat has it");
        }
    }
}
