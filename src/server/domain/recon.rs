//! The daily reconciliation's vocabulary and its comparison: WeChat's trade bill for one Beijing
//! day against the payments and refunds scanpay holds for it. Pure: the flow reads the facts,
//! this decides what each line is, and what to ask WeChat about afterwards.
//!
//! Payments are keyed by WeChat's transaction id (the bill's 微信订单号, our `transaction_id`),
//! refunds by our `out_refund_no` (the bill's 商户退款单号). A payment belongs to the Beijing day
//! of its `time_end` (our `paid_at` is WeChat's `time_end`), so both sides cut the day alike; a
//! refund to the day WeChat received it (ours: when it was recorded, moments before).

use std::collections::{HashMap, HashSet};

use super::RefundStatus;
use crate::app::types::OrderStatus;

mod date;
mod day;
pub use date::BillDate;
pub use day::*;

/// What a line of the comparison is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ReconClass {
    /// Both sides agree.
    Matched,
    /// At WeChat, not here (paid there and not paid here; a refund scanpay did not make).
    WechatOnly,
    /// Here, not in WeChat's bill.
    LocalOnly,
    /// A payment on both sides, for different amounts.
    AmountDiffers,
    /// A refund on both sides, with a different amount or state.
    RefundDiffers,
}

impl ReconClass {
    pub const ALL: [ReconClass; 5] = [
        ReconClass::Matched,
        ReconClass::WechatOnly,
        ReconClass::LocalOnly,
        ReconClass::AmountDiffers,
        ReconClass::RefundDiffers,
    ];
    pub fn as_str(self) -> &'static str {
        match self {
            ReconClass::Matched => "matched",
            ReconClass::WechatOnly => "wechat_only",
            ReconClass::LocalOnly => "local_only",
            ReconClass::AmountDiffers => "amount_differs",
            ReconClass::RefundDiffers => "refund_differs",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }
    pub fn index(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).expect("listed")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineKind {
    Payment,
    Refund,
}

impl LineKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LineKind::Payment => "payment",
            LineKind::Refund => "refund",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "payment" => Some(LineKind::Payment),
            "refund" => Some(LineKind::Refund),
            _ => None,
        }
    }
}

/// One row of WeChat's bill, as the comparison needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WechatRow {
    /// Beijing `yyyy-MM-dd HH:mm:ss`.
    pub trade_time: String,
    pub transaction_id: String,
    pub out_trade_no: String,
    /// A payment's 订单金额 (what the shopper was charged), or a refund's amount, in fen.
    pub amount_fen: i64,
    /// Set on refund rows.
    pub out_refund_no: Option<String>,
    /// 交易状态 of a payment, 退款状态 of a refund (SUCCESS, PROCESSING, REFUNDCLOSE, CHANGE).
    pub state: String,
    pub fee_millifen: i64,
}

/// An order as the comparison needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalOrder {
    pub id: String,
    pub status: OrderStatus,
    pub total_fee: i64,
    pub transaction_id: Option<String>,
    pub paid_at: Option<i64>,
}

/// A payment recorded as an anomaly (paid after close, a second payment, …).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAnomaly {
    pub transaction_id: String,
    pub order_id: String,
    pub kind: String,
    pub resolved: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRefund {
    pub out_refund_no: String,
    pub order_id: String,
    pub transaction_id: String,
    pub refund_fee: i64,
    pub status: RefundStatus,
    pub created_at: i64,
}

/// What scanpay holds for the day, and for whatever else the bill names.
#[derive(Debug, Default, Clone)]
pub struct LocalFacts {
    /// Orders paid during the day (by `paid_at`).
    pub paid: Vec<LocalOrder>,
    /// Refunds recorded during the day.
    pub refunds_of_day: Vec<LocalRefund>,
    /// Every order a bill row names, by id (the day's and others).
    pub orders: HashMap<String, LocalOrder>,
    /// Anomalies by transaction id, for the bill's payments no order holds.
    pub anomalies: HashMap<String, LocalAnomaly>,
    /// Every refund a bill row names, by out_refund_no.
    pub refunds: HashMap<String, LocalRefund>,
}

/// One line of the day's comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconLine {
    /// `P:<transaction id or order>` or `R:<out_refund_no>`: unique within the day.
    pub key: String,
    pub kind: LineKind,
    pub class: ReconClass,
    pub out_trade_no: String,
    pub transaction_id: String,
    pub out_refund_no: String,
    /// Beijing `yyyy-MM-dd HH:mm:ss`: WeChat's time when the bill has the line, else ours.
    pub trade_time: String,
    pub wechat_fen: Option<i64>,
    pub local_fen: Option<i64>,
    pub wechat_state: String,
    pub local_state: String,
    pub fee_millifen: i64,
    /// What the difference is and what was done about it.
    pub note: String,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
    pub resolution: Option<String>,
}

/// What to ask WeChat once the comparison is saved (the answer goes into the line's note).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FollowUp {
    /// orderquery, applied through the decision function (a lost notify is fixed here).
    QueryOrder(String),
    /// refundquery (or the same refund again, if it is still `requested`), settled as usual.
    CheckRefund(String),
}

/// The comparison: one line per payment and refund on either side, and what to ask about.
pub fn compare(rows: &[WechatRow], local: &LocalFacts) -> Vec<(ReconLine, Option<FollowUp>)> {
    let mut out = Vec::with_capacity(rows.len() + 8);
    let mut keys = Keys::default();
    let mut seen_orders = HashSet::new();
    let mut seen_refunds = HashSet::new();
    for r in rows {
        let (line, follow) = match &r.out_refund_no {
            None => {
                let l = payment_row(r, local);
                if l.0.class != ReconClass::WechatOnly {
                    seen_orders.insert(r.out_trade_no.clone());
                }
                l
            }
            Some(no) => {
                seen_refunds.insert(no.clone());
                refund_row(r, no, local)
            }
        };
        out.push((unique(line, &mut keys), follow));
    }
    for o in local.paid.iter().filter(|o| !seen_orders.contains(&o.id)) {
        let line = ReconLine {
            note: "paid here, not in WeChat's bill".into(),
            ..blank(LineKind::Payment, ReconClass::LocalOnly)
        }
        .with_order(o);
        out.push((
            unique(line, &mut keys),
            Some(FollowUp::QueryOrder(o.id.clone())),
        ));
    }
    for f in local.refunds_of_day.iter() {
        // Only refunds WeChat accepted or may hold: one never sent or refused is not money.
        let expected = !matches!(f.status, RefundStatus::Requested | RefundStatus::Failed);
        if !expected || seen_refunds.contains(&f.out_refund_no) {
            continue;
        }
        let line = ReconLine {
            key: format!("R:{}", f.out_refund_no),
            out_trade_no: f.order_id.clone(),
            transaction_id: f.transaction_id.clone(),
            out_refund_no: f.out_refund_no.clone(),
            trade_time: crate::server::support::clock::beijing_display(f.created_at),
            local_fen: Some(f.refund_fee),
            local_state: f.status.as_str().into(),
            note: "refunded here, not in WeChat's bill".into(),
            ..blank(LineKind::Refund, ReconClass::LocalOnly)
        };
        let follow = (f.status == RefundStatus::Processing)
            .then(|| FollowUp::CheckRefund(f.out_refund_no.clone()));
        out.push((unique(line, &mut keys), follow));
    }
    out
}

fn payment_row(r: &WechatRow, local: &LocalFacts) -> (ReconLine, Option<FollowUp>) {
    let line = ReconLine {
        key: format!("P:{}", r.transaction_id),
        out_trade_no: r.out_trade_no.clone(),
        transaction_id: r.transaction_id.clone(),
        trade_time: r.trade_time.clone(),
        wechat_fen: Some(r.amount_fen),
        wechat_state: r.state.clone(),
        fee_millifen: r.fee_millifen,
        ..blank(LineKind::Payment, ReconClass::WechatOnly)
    };
    let order = local.orders.get(&r.out_trade_no);
    let anomaly = local.anomalies.get(&r.transaction_id);
    match (order, anomaly) {
        (Some(o), _)
            if o.status == OrderStatus::Paid
                && o.transaction_id.as_deref() == Some(r.transaction_id.as_str()) =>
        {
            let same = o.total_fee == r.amount_fen;
            let line = ReconLine {
                class: if same {
                    ReconClass::Matched
                } else {
                    ReconClass::AmountDiffers
                },
                local_fen: Some(o.total_fee),
                local_state: o.status.as_str().into(),
                note: if same {
                    String::new()
                } else {
                    format!(
                        "WeChat charged {} fen, the order is {} fen",
                        r.amount_fen, o.total_fee
                    )
                },
                ..line
            };
            (line, None)
        }
        // Parked for a person: the payment is the order's, for another amount.
        (Some(o), Some(a)) if a.kind == "amount_mismatch" => {
            let state = if a.resolved { "resolved" } else { "open" };
            let line = ReconLine {
                class: ReconClass::AmountDiffers,
                local_fen: Some(o.total_fee),
                local_state: o.status.as_str().into(),
                note: format!(
                    "WeChat charged {} fen, the order is {} fen: parked as anomaly amount_mismatch ({state})",
                    r.amount_fen, o.total_fee
                ),
                ..line
            };
            (line, None)
        }
        (_, Some(a)) => {
            let state = if a.resolved { "resolved" } else { "open" };
            let line = ReconLine {
                local_state: format!("anomaly {}", a.kind),
                note: format!(
                    "a payment scanpay did not keep: anomaly {} of order {} ({state})",
                    a.kind, a.order_id
                ),
                ..line
            };
            (line, None)
        }
        (Some(o), None) => {
            let note = match (&o.status, &o.transaction_id) {
                (OrderStatus::Paid, Some(tx)) => {
                    format!("paid at WeChat again: the order is paid here by {tx}")
                }
                (status, _) => format!("paid at WeChat, {} here", status.as_str()),
            };
            let line = ReconLine {
                local_fen: Some(o.total_fee),
                local_state: o.status.as_str().into(),
                note,
                ..line
            };
            (line, Some(FollowUp::QueryOrder(o.id.clone())))
        }
        (None, None) => {
            let line = ReconLine {
                note: format!("no order {} here", r.out_trade_no),
                ..line
            };
            (line, None)
        }
    }
}

fn refund_row(r: &WechatRow, no: &str, local: &LocalFacts) -> (ReconLine, Option<FollowUp>) {
    let line = ReconLine {
        key: format!("R:{no}"),
        out_trade_no: r.out_trade_no.clone(),
        transaction_id: r.transaction_id.clone(),
        out_refund_no: no.to_string(),
        trade_time: r.trade_time.clone(),
        wechat_fen: Some(r.amount_fen),
        wechat_state: r.state.clone(),
        fee_millifen: r.fee_millifen,
        ..blank(LineKind::Refund, ReconClass::WechatOnly)
    };
    let Some(f) = local.refunds.get(no) else {
        let line = ReconLine {
            note: "a refund scanpay has no record of (made at the merchant platform?)".into(),
            ..line
        };
        return (line, None);
    };
    let same_amount = f.refund_fee == r.amount_fen;
    let same_state = wechat_refund_state(f.status) == Some(r.state.as_str());
    let mut why = Vec::new();
    if !same_amount {
        why.push(format!(
            "WeChat refunds {} fen, scanpay {} fen",
            r.amount_fen, f.refund_fee
        ));
    }
    if !same_state {
        why.push(format!(
            "WeChat says {}, scanpay {}",
            r.state,
            f.status.as_str()
        ));
    }
    let line = ReconLine {
        class: if why.is_empty() {
            ReconClass::Matched
        } else {
            ReconClass::RefundDiffers
        },
        local_fen: Some(f.refund_fee),
        local_state: f.status.as_str().into(),
        note: why.join("; "),
        ..line
    };
    // Ours not final yet: WeChat's word settles it (the usual refund check).
    let follow =
        (!same_state && !f.status.is_settled()).then(|| FollowUp::CheckRefund(no.to_string()));
    (line, follow)
}

/// How WeChat's bill writes a refund in this state (None: WeChat does not hold it).
pub fn wechat_refund_state(s: RefundStatus) -> Option<&'static str> {
    match s {
        RefundStatus::Processing => Some("PROCESSING"),
        RefundStatus::Success => Some("SUCCESS"),
        RefundStatus::Closed => Some("REFUNDCLOSE"),
        RefundStatus::Abnormal => Some("CHANGE"),
        RefundStatus::Requested | RefundStatus::Failed => None,
    }
}

/// A line with nothing on it yet but its kind and class.
pub(crate) fn blank(kind: LineKind, class: ReconClass) -> ReconLine {
    ReconLine {
        key: String::new(),
        kind,
        class,
        out_trade_no: String::new(),
        transaction_id: String::new(),
        out_refund_no: String::new(),
        trade_time: String::new(),
        wechat_fen: None,
        local_fen: None,
        wechat_state: String::new(),
        local_state: String::new(),
        fee_millifen: 0,
        note: String::new(),
        resolved_at: None,
        resolved_by: None,
        resolution: None,
    }
}

impl ReconLine {
    fn with_order(self, o: &LocalOrder) -> ReconLine {
        ReconLine {
            key: format!("P:{}", o.transaction_id.as_deref().unwrap_or(&o.id)),
            out_trade_no: o.id.clone(),
            transaction_id: o.transaction_id.clone().unwrap_or_default(),
            trade_time: o
                .paid_at
                .map(crate::server::support::clock::beijing_display)
                .unwrap_or_default(),
            local_fen: Some(o.total_fee),
            local_state: o.status.as_str().into(),
            ..self
        }
    }
    /// A difference still waiting for a person.
    pub fn is_open(&self) -> bool {
        self.class != ReconClass::Matched && self.resolved_at.is_none()
    }
}

/// The keys a day's lines took: as they are, and case-folded (as MySQL's collation compares).
#[derive(Default)]
struct Keys {
    exact: HashSet<String>,
    folded: HashSet<String>,
}

/// A bill naming the same payment or refund twice keeps both lines (the second marked). Keys
/// are told apart regardless of case: two refund numbers differing only in case (numbers scanpay
/// did not make) keep both lines, the second keyed apart but not marked.
fn unique(mut line: ReconLine, keys: &mut Keys) -> ReconLine {
    let base = line.key.clone();
    let listed_again = !keys.exact.insert(base.clone());
    let mut n = 1;
    while !keys.folded.insert(line.key.to_ascii_lowercase()) {
        n += 1;
        line.key = format!("{base}#{n}");
    }
    if line.key != base {
        keys.exact.insert(line.key.clone());
    }
    if listed_again && line.class == ReconClass::Matched {
        line.class = ReconClass::WechatOnly;
        line.note = "the bill lists this again".into();
    }
    line
}

/// Count and amounts of one class on one day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClassTotal {
    pub count: i64,
    pub wechat_fen: i64,
    pub local_fen: i64,
    pub open: i64,
}

/// Per-class totals of a day's lines, in `ReconClass::ALL` order.
pub fn totals(lines: &[ReconLine]) -> [ClassTotal; 5] {
    let mut t: [ClassTotal; 5] = Default::default();
    for l in lines {
        let c = &mut t[l.class.index()];
        c.count += 1;
        c.wechat_fen += l.wechat_fen.unwrap_or(0);
        c.local_fen += l.local_fen.unwrap_or(0);
        c.open += l.is_open() as i64;
    }
    t
}

#[cfg(test)]
mod tests;
