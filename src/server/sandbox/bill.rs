//! The trade bill `pay/downloadbill` serves (wxpay-refund-bill.md §4.4), made from a snapshot
//! of the sandbox's orders: one payment row per order paid that Beijing day, one refund row per
//! refund applied for that day, WeChat's exact text (BOM, CRLF, a backtick before every value,
//! yuan with 2 decimals, fees with 5), and a summary that is the rows' sums. The `bill=` fault
//! knobs make it disagree with the merchant's records, never with itself.

use std::io::Write;

use super::faults::BillFault;
use super::refunds::RefundStatus;
use super::{SandboxOrder, TradeState};
use crate::server::support::clock::{beijing_display, format_beijing, parse_beijing};

/// The bill types served (`RECHARGE_REFUND` never has rows here: no recharge coupons).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BillType {
    All,
    Success,
    Refund,
}

impl BillType {
    pub fn parse(s: &str) -> Option<BillType> {
        match s {
            "ALL" => Some(BillType::All),
            "SUCCESS" => Some(BillType::Success),
            "REFUND" => Some(BillType::Refund),
            _ => None,
        }
    }

    /// The header's columns, in order.
    pub fn columns(self) -> &'static [&'static str] {
        match self {
            BillType::All => ALL_COLUMNS,
            BillType::Success => SUCCESS_COLUMNS,
            BillType::Refund => REFUND_COLUMNS,
        }
    }
}

/// The current 27-column ALL layout.
#[rustfmt::skip]
pub const ALL_COLUMNS: &[&str] = &[
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号",
    "用户标识", "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额",
    "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额", "退款类型", "退款状态",
    "商品名称", "商户数据包", "手续费", "费率", "订单金额", "申请退款金额", "费率备注",
];
/// SUCCESS: columns 1–14 of ALL, then the goods and fee columns (20).
#[rustfmt::skip]
pub const SUCCESS_COLUMNS: &[&str] = &[
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号",
    "用户标识", "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额",
    "商品名称", "商户数据包", "手续费", "费率", "订单金额", "费率备注",
];
/// REFUND: columns 1–14, then the refund's (29; the exact current text is [unverified]).
#[rustfmt::skip]
pub const REFUND_COLUMNS: &[&str] = &[
    "交易时间", "公众账号ID", "商户号", "特约商户号", "设备号", "微信订单号", "商户订单号",
    "用户标识", "交易类型", "交易状态", "付款银行", "货币种类", "应结订单金额", "代金券金额",
    "退款申请时间", "退款成功时间", "微信退款单号", "商户退款单号", "退款金额", "充值券退款金额",
    "退款类型", "退款状态", "商品名称", "商户数据包", "手续费", "费率", "订单金额",
    "申请退款金额", "费率备注",
];
/// The summary's header (the same for every type here; WeChat's SUCCESS/REFUND one is
/// [unverified]).
pub const SUMMARY_HEADER: &str =
    "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额";

/// The fee rate charged on Native payments (and returned on refunds).
pub const RATE: &str = "0.60%";

/// 0.60% of an amount in fen, rounded half up to the fen.
pub fn fee_fen(amount_fen: i64) -> i64 {
    (amount_fen * 6 + 500).div_euclid(1000)
}

fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", fen.abs() / 100, fen.abs() % 100)
}

/// A fee in fen as the bill writes it: yuan with five decimals (`0.01000`, `-0.06000`).
fn yuan5(fen: i64) -> String {
    format!("{}000", yuan(fen))
}

/// `yyyyMMdd` that is a real date → the UTC ms its Beijing day starts at.
pub fn day_start_ms(bill_date: &str) -> Option<i64> {
    let ok = bill_date.len() == 8 && bill_date.bytes().all(|b| b.is_ascii_digit());
    ok.then(|| parse_beijing(&format!("{bill_date}000000")).ok())
        .flatten()
}

/// One row, with every value any layout needs.
struct Row {
    at_ms: i64,
    refund: bool,
    /// 交易时间 in ALL (the refund's time on a refund row); the payment's in REFUND.
    time: String,
    pay_time: String,
    appid: String,
    mch_id: String,
    device_info: String,
    transaction_id: String,
    out_trade_no: String,
    openid: String,
    settle_fen: i64,
    order_fen: i64,
    refund_id: String,
    out_refund_no: String,
    refund_fen: i64,
    refund_status: &'static str,
    success_time: String,
    body: String,
    attach: String,
    fee_fen: i64,
}

impl Row {
    fn value(&self, col: &str, kind: BillType) -> String {
        let refund_only = |v: &str| {
            if self.refund {
                v.to_string()
            } else {
                String::new()
            }
        };
        match col {
            "交易时间" if kind == BillType::Refund => self.pay_time.clone(),
            "交易时间" => self.time.clone(),
            "公众账号ID" => self.appid.clone(),
            "商户号" => self.mch_id.clone(),
            "特约商户号" => "0".into(),
            "设备号" => self.device_info.clone(),
            "微信订单号" => self.transaction_id.clone(),
            "商户订单号" => self.out_trade_no.clone(),
            "用户标识" => self.openid.clone(),
            "交易类型" => "NATIVE".into(),
            "交易状态" => if self.refund { "REFUND" } else { "SUCCESS" }.into(),
            "付款银行" => "OTHERS".into(),
            "货币种类" => "CNY".into(),
            "应结订单金额" => yuan(self.settle_fen),
            "代金券金额" | "充值券退款金额" => yuan(0),
            "退款申请时间" => self.time.clone(),
            "退款成功时间" => self.success_time.clone(),
            "微信退款单号" => self.refund_id.clone(),
            "商户退款单号" => self.out_refund_no.clone(),
            "退款金额" => yuan(self.refund_fen),
            "退款类型" => refund_only("ORIGINAL"),
            "退款状态" => refund_only(self.refund_status),
            "商品名称" => self.body.clone(),
            "商户数据包" => self.attach.clone(),
            "手续费" => yuan5(self.fee_fen),
            "费率" => RATE.into(),
            "订单金额" => yuan(self.order_fen),
            "申请退款金额" => yuan(self.refund_fen),
            _ => String::new(),
        }
    }
}

/// A line break would split the row (how WeChat writes one is [unverified]); commas and
/// backticks go through unescaped, as WeChat's do.
fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

/// The state a refund row shows: its own, or with `refund_state` another one.
fn shown_status(s: RefundStatus, flip: bool) -> &'static str {
    match (s, flip) {
        (s, false) => s.as_str(),
        (RefundStatus::Success, true) => RefundStatus::Processing.as_str(),
        (_, true) => RefundStatus::Success.as_str(),
    }
}

/// The rows of one order on `bill_date`: its payment (when paid that day) and the refunds
/// applied for that day.
fn order_rows(o: &SandboxOrder, bill_date: &str, f: BillFault, rows: &mut Vec<Row>) {
    let TradeState::Success {
        transaction_id,
        time_end,
        openid,
    } = &o.state
    else {
        return;
    };
    let pay_ms = parse_beijing(time_end).unwrap_or_default();
    let pay_time = beijing_display(pay_ms);
    let base = |at_ms: i64, refund: bool| Row {
        at_ms,
        refund,
        time: beijing_display(at_ms),
        pay_time: pay_time.clone(),
        appid: o.param("appid").to_string(),
        mch_id: o.mch_id.clone(),
        device_info: one_line(o.param("device_info")),
        transaction_id: transaction_id.clone(),
        out_trade_no: o.out_trade_no.clone(),
        openid: openid.clone(),
        settle_fen: 0,
        order_fen: 0,
        refund_id: "0".into(),
        out_refund_no: "0".into(),
        refund_fen: 0,
        refund_status: "",
        success_time: String::new(),
        body: one_line(o.param("body")),
        attach: one_line(o.param("attach")),
        fee_fen: 0,
    };
    if time_end.starts_with(bill_date) && !f.drop {
        let paid = o.total_fee() + i64::from(f.amount_off);
        rows.push(Row {
            settle_fen: paid,
            order_fen: paid,
            fee_fen: fee_fen(paid),
            ..base(pay_ms, false)
        });
    }
    for r in &o.refunds {
        if !format_beijing(r.created_ms).starts_with(bill_date) {
            continue;
        }
        rows.push(Row {
            refund_id: r.refund_id.clone(),
            out_refund_no: r.out_refund_no.clone(),
            refund_fen: r.refund_fee,
            refund_status: shown_status(r.status, f.refund_state),
            success_time: r.success_time.clone().unwrap_or_default(),
            fee_fen: -fee_fen(r.refund_fee),
            ..base(r.created_ms, true)
        });
    }
}

/// A payment of an order nobody placed, the same in every download of that day's bill.
fn phantom(mch_id: &str, bill_date: &str, like: &Row) -> Row {
    // FNV-1a: a stable made-up number per (merchant, day).
    let h = format!("{mch_id}{bill_date}")
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    Row {
        at_ms: like.at_ms,
        refund: false,
        time: like.time.clone(),
        pay_time: like.time.clone(),
        appid: like.appid.clone(),
        mch_id: mch_id.to_string(),
        device_info: String::new(),
        transaction_id: format!("4200{bill_date}{:016}", h % 10u64.pow(16)),
        out_trade_no: format!("PHANTOM{bill_date}{:06}", h % 1_000_000),
        openid: format!("oPhantom{:020}", h % 10u64.pow(19)),
        settle_fen: 1,
        order_fen: 1,
        refund_id: "0".into(),
        out_refund_no: "0".into(),
        refund_fen: 0,
        refund_status: "",
        success_time: String::new(),
        body: "PHANTOM".into(),
        attach: String::new(),
        fee_fen: fee_fen(1),
    }
}

/// The `kind` bill of `mch_id`'s Beijing day `bill_date` (`yyyyMMdd`), from `orders` (any
/// merchant's; others are skipped), with each order's bill knobs from `fault_of(out_trade_no)`;
/// `extra` adds the phantom payment to a bill that has rows (as does an order's own `extra`,
/// in the bill of its payment day). None when the day has no rows: `No Bill Exist`.
pub fn trade_bill(
    orders: &[SandboxOrder],
    mch_id: &str,
    bill_date: &str,
    kind: BillType,
    fault_of: impl Fn(&str) -> BillFault,
    extra: bool,
) -> Option<String> {
    let mut rows = Vec::new();
    let mut phantom_wanted = extra;
    for o in orders.iter().filter(|o| o.mch_id == mch_id) {
        let f = fault_of(&o.out_trade_no);
        order_rows(o, bill_date, f, &mut rows);
        phantom_wanted |= f.extra
            && matches!(&o.state, TradeState::Success { time_end, .. }
                if time_end.starts_with(bill_date));
    }
    rows.sort_by(|a, b| {
        (a.at_ms, a.refund, &a.out_trade_no, &a.out_refund_no).cmp(&(
            b.at_ms,
            b.refund,
            &b.out_trade_no,
            &b.out_refund_no,
        ))
    });
    if phantom_wanted {
        if let Some(first) = rows.first() {
            let p = phantom(mch_id, bill_date, first);
            rows.insert(0, p);
        }
    }
    rows.retain(|r| match kind {
        BillType::All => true,
        BillType::Success => !r.refund,
        BillType::Refund => r.refund,
    });
    (!rows.is_empty()).then(|| render(&rows, kind))
}

fn render(rows: &[Row], kind: BillType) -> String {
    let cols = kind.columns();
    let mut out = String::with_capacity(64 + rows.len() * 400);
    out.push('\u{feff}');
    out.push_str(&cols.join(","));
    out.push_str("\r\n");
    for r in rows {
        let values: Vec<String> = cols.iter().map(|c| r.value(c, kind)).collect();
        out.push('`');
        out.push_str(&values.join(",`"));
        out.push_str("\r\n");
    }
    let sum = |f: fn(&Row) -> i64| rows.iter().map(f).sum::<i64>();
    out.push_str(SUMMARY_HEADER);
    out.push_str("\r\n");
    let summary = [
        rows.len().to_string(),
        yuan(sum(|r| r.settle_fen)),
        yuan(sum(|r| r.refund_fen)),
        yuan(0),
        yuan5(sum(|r| r.fee_fen)),
        yuan(sum(|r| r.order_fen)),
        yuan(sum(|r| r.refund_fen)),
    ];
    out.push('`');
    out.push_str(&summary.join(",`"));
    out.push_str("\r\n");
    out
}

/// The bill as `tar_type=GZIP` sends it.
pub fn gzip(text: &str) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail.
    let _ = gz.write_all(text.as_bytes());
    gz.finish().unwrap_or_default()
}

#[cfg(test)]
mod tests;
