//! A reconciled day as stored: its state (claimed in SQL so one process runs it), WeChat's
//! figures from the bill's summary, ours, and the count of each class.

/// `due` → `running` (claimed, with a lease) → `done`, or back to `due` with a later attempt
/// when the bill was not ready or could not be had, or `failed` when WeChat refused it or it
/// was unusable (or the attempts ran out): a person runs it again. A re-run takes any day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DayStatus {
    Due,
    Running,
    Done,
    Failed,
}

impl DayStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DayStatus::Due => "due",
            DayStatus::Running => "running",
            DayStatus::Done => "done",
            DayStatus::Failed => "failed",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "due" => Some(DayStatus::Due),
            "running" => Some(DayStatus::Running),
            "done" => Some(DayStatus::Done),
            "failed" => Some(DayStatus::Failed),
            _ => None,
        }
    }
}

/// WeChat's summary line, as the bill gives it (fees in thousandths of a fen).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WechatTotals {
    pub rows: i64,
    pub settlement_fen: i64,
    pub refund_fen: i64,
    pub fee_millifen: i64,
    /// 订单总金额 (the current layout only).
    pub order_fen: Option<i64>,
}

/// What scanpay holds for the day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalTotals {
    pub paid_count: i64,
    pub paid_fen: i64,
    pub refund_count: i64,
    pub refund_fen: i64,
}

/// The outcome of a finished run, written with its lines in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DayResult {
    /// None: WeChat has no bill for the day (`No Bill Exist`).
    pub wechat: Option<WechatTotals>,
    pub local: LocalTotals,
    /// The bill's text gzipped, and the SHA-256 (hex) of the text.
    pub raw_gzip: Option<Vec<u8>>,
    pub raw_sha256: Option<String>,
    pub run_by: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReconDayRow {
    pub bill_date: String,
    pub status: DayStatus,
    pub attempts: i64,
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
    /// `bill`, `no_bill`, or None before the first finished run.
    pub bill: Option<String>,
    pub raw_sha256: Option<String>,
    pub wechat: WechatTotals,
    pub local: LocalTotals,
    /// Lines per class, in `ReconClass::ALL` order, and the differences still open.
    pub counts: [i64; 5],
    pub open: i64,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
    pub run_by: Option<String>,
}

impl ReconDayRow {
    /// The day as the CLI and the JSON endpoints give it: a count per class, the open
    /// differences, WeChat's figures beside ours.
    pub fn to_json(&self) -> serde_json::Value {
        let mut v = serde_json::json!({
            "date": self.bill_date,
            "status": self.status.as_str(),
            "bill": self.bill,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "open": self.open,
            "wechat": {
                "rows": self.wechat.rows,
                "settlement_fen": self.wechat.settlement_fen,
                "refund_fen": self.wechat.refund_fen,
                "fee_millifen": self.wechat.fee_millifen,
                "order_fen": self.wechat.order_fen,
            },
            "local": {
                "paid_count": self.local.paid_count,
                "paid_fen": self.local.paid_fen,
                "refund_count": self.local.refund_count,
                "refund_fen": self.local.refund_fen,
            },
            "raw_sha256": self.raw_sha256,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "run_by": self.run_by,
        });
        for c in super::ReconClass::ALL {
            v[c.as_str()] = self.counts[c.index()].into();
        }
        v
    }
}

impl super::ReconLine {
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "key": self.key,
            "kind": self.kind.as_str(),
            "class": self.class.as_str(),
            "out_trade_no": self.out_trade_no,
            "transaction_id": self.transaction_id,
            "out_refund_no": self.out_refund_no,
            "trade_time": self.trade_time,
            "wechat_fen": self.wechat_fen,
            "local_fen": self.local_fen,
            "wechat_state": self.wechat_state,
            "local_state": self.local_state,
            "fee_millifen": self.fee_millifen,
            "note": self.note,
            "resolved_at": self.resolved_at,
            "resolved_by": self.resolved_by,
            "resolution": self.resolution,
        })
    }
}
