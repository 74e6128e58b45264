//! The trade bill (`pay/downloadbill`): WeChat's answer told apart on its bytes (a small XML
//! error, gzip, or the text itself), and the text read by its header names — the current
//! 27-column ALL layout, the old 24-column one, SUCCESS and REFUND — with the BOM and CRLF
//! handled, the backtick before every value dropped, yuan turned into integer fen by a decimal
//! parse, and the summary checked against the rows: a bill whose rows do not add up to its
//! summary is refused.

use std::borrow::Cow;
use std::io::Read;

/// The most a (decompressed) bill may be: 100,000 rows are about 40 MB.
pub const MAX_BILL: u64 = 512 * 1024 * 1024;
/// The most a downloaded answer (gzip, or plain text) may be.
pub const MAX_DOWNLOAD: usize = 256 * 1024 * 1024;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BillError {
    #[error("the bill is not valid gzip: {0}")]
    Gzip(String),
    #[error("the bill is not UTF-8 text")]
    NotText,
    #[error("the bill has no header line")]
    NoHeader,
    #[error("the bill's header lacks the column {0}")]
    MissingColumn(&'static str),
    #[error("bill line {line}: {why}")]
    Row { line: usize, why: String },
    #[error("the bill has no summary (truncated?)")]
    NoSummary,
    #[error("the bill's rows do not add up to its summary: {0}")]
    Summary(String),
}

/// What WeChat answered to `downloadbill`.
#[derive(Debug, PartialEq, Eq)]
pub enum BillAnswer {
    /// The bill's text (gunzipped when it came compressed).
    Text(String),
    /// `No Bill Exist`: nothing was paid or refunded that day.
    NoBill,
    /// `Bill Creating`: not ready yet (from 09:00 Beijing time the next day).
    NotReady,
    /// Any other refusal, as WeChat worded it.
    Refused { msg: String, code: String },
}

/// Decides on the bytes (gzip is not text): WeChat's refusals are a small XML even when gzip
/// was asked for.
pub fn classify(body: &[u8]) -> Result<BillAnswer, BillError> {
    let start = body
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(0);
    if body[start..].starts_with(b"<") {
        let p = super::xml::parse(body).map_err(|e| BillError::Row {
            line: 1,
            why: format!("an XML answer that does not parse: {e}"),
        })?;
        let msg = p.get("return_msg").cloned().unwrap_or_default();
        let code = p.get("error_code").cloned().unwrap_or_default();
        return Ok(match msg.to_ascii_lowercase().as_str() {
            "no bill exist" => BillAnswer::NoBill,
            "bill creating" => BillAnswer::NotReady,
            _ => BillAnswer::Refused { msg, code },
        });
    }
    let bytes = if body.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        // Every member (a file may be several gzip members end to end), and one byte past the
        // cap so a bill too large is refused as such rather than read cut short.
        flate2::read::MultiGzDecoder::new(body)
            .take(MAX_BILL + 1)
            .read_to_end(&mut out)
            .map_err(|e| BillError::Gzip(e.to_string()))?;
        if out.len() as u64 > MAX_BILL {
            return Err(BillError::Gzip(format!(
                "it unpacks to more than {} MB",
                MAX_BILL >> 20
            )));
        }
        out
    } else {
        body.to_vec()
    };
    String::from_utf8(bytes)
        .map(BillAnswer::Text)
        .map_err(|_| BillError::NotText)
}

/// One row of the bill: a payment (交易状态 SUCCESS…) or a refund (REFUND).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BillRow {
    /// Beijing `yyyy-MM-dd HH:mm:ss`: the payment's time, or the refund's.
    pub trade_time: String,
    pub appid: String,
    pub mch_id: String,
    pub transaction_id: String,
    pub out_trade_no: String,
    pub trade_type: String,
    pub trade_state: String,
    /// 应结订单金额 (old layout: 总金额): what the payment settles, in fen; 0 on a refund row.
    pub settlement_fen: i64,
    pub coupon_fen: i64,
    pub refund_id: Option<String>,
    pub out_refund_no: Option<String>,
    pub refund_fen: i64,
    /// 充值券退款金额 (old layout: 代金券或立减优惠退款金额): None when the layout has no such column.
    pub coupon_refund_fen: Option<i64>,
    pub refund_status: Option<String>,
    pub body: String,
    pub attach: String,
    /// 手续费 in thousandths of a fen (the bill gives five decimals of a yuan).
    pub fee_millifen: i64,
    pub rate: String,
    /// 订单金额 and 申请退款金额 (the current layout only).
    pub order_fen: Option<i64>,
    pub applied_refund_fen: Option<i64>,
}

impl BillRow {
    pub fn is_refund(&self) -> bool {
        self.out_refund_no.is_some()
    }
}

/// The summary line, as WeChat totals the day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BillSummary {
    pub rows: i64,
    pub settlement_fen: i64,
    pub refund_fen: i64,
    /// None when the summary has no such figure (checked against the rows only when present).
    pub coupon_refund_fen: Option<i64>,
    pub fee_millifen: i64,
    pub order_fen: Option<i64>,
    pub applied_refund_fen: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bill {
    /// How many columns its header had (27 current ALL, 24 old ALL, 20 SUCCESS, 29 REFUND).
    pub columns: usize,
    pub rows: Vec<BillRow>,
    pub summary: BillSummary,
}

/// A decimal string (`12`, `0.03`, `45.0`, `0.01000`) as an integer of `10^-scale` units,
/// exactly; None for anything else (a sign, more decimals than `scale`, an exponent).
pub fn decimal(s: &str, scale: u32) -> Option<i64> {
    let s = s.trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |d: &str| d.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || whole.len() > 12 || !digits(whole) || !digits(frac) {
        return None;
    }
    // Trailing zeros beyond the scale are harmless (`45.0` rows, `0.010000`).
    let frac = frac.trim_end_matches('0');
    if frac.len() > scale as usize {
        return None;
    }
    let padded = format!("{frac:0<width$}", width = scale as usize);
    let f = if scale == 0 {
        0
    } else {
        padded.parse::<i64>().ok()?
    };
    whole
        .parse::<i64>()
        .ok()?
        .checked_mul(10i64.pow(scale))?
        .checked_add(f)
}

/// [`decimal`] with an optional leading `-`: a refund's 手续费 is returned to the merchant,
/// so WeChat writes it negative (`-0.01000`), and the day's fee total may be too.
pub fn signed_decimal(s: &str, scale: u32) -> Option<i64> {
    match s.trim().strip_prefix('-') {
        Some(rest) => decimal(rest, scale).map(|v| -v),
        None => decimal(s, scale),
    }
}

/// The index of the first of `names` in the header.
fn col(header: &[&str], names: &[&str]) -> Option<usize> {
    names
        .iter()
        .find_map(|n| header.iter().position(|h| h.trim() == *n))
}

/// Splits a data or summary line: every value after a backtick, separated by `` ,` ``.
fn fields(line: &str) -> Option<Vec<&str>> {
    line.strip_prefix('`')
        .map(|rest| rest.split(",`").collect())
}

/// Reads the bill's text by its header names.
pub fn parse(text: &str) -> Result<Bill, BillError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty());
    let (_, header_line) = lines.next().ok_or(BillError::NoHeader)?;
    let header: Vec<&str> = header_line.split(',').collect();
    let need = |names: &[&str], label: &'static str| {
        col(&header, names).ok_or(BillError::MissingColumn(label))
    };
    let c_time = need(&["交易时间"], "交易时间")?;
    let c_appid = need(&["公众账号ID"], "公众账号ID")?;
    let c_mch = need(&["商户号"], "商户号")?;
    let c_tx = need(&["微信订单号"], "微信订单号")?;
    let c_otn = need(&["商户订单号"], "商户订单号")?;
    let c_type = need(&["交易类型"], "交易类型")?;
    let c_state = need(&["交易状态"], "交易状态")?;
    let c_settle = need(&["应结订单金额", "总金额"], "应结订单金额")?;
    let c_coupon = col(
        &header,
        &["代金券金额", "代金券或立减优惠金额", "企业红包金额"],
    );
    let c_refund_id = col(&header, &["微信退款单号"]);
    let c_out_refund = col(&header, &["商户退款单号"]);
    let c_refund = col(&header, &["退款金额"]);
    let c_refund_status = col(&header, &["退款状态"]);
    let c_body = need(&["商品名称"], "商品名称")?;
    let c_attach = col(&header, &["商户数据包"]);
    let c_fee = need(&["手续费"], "手续费")?;
    let c_coupon_refund = col(
        &header,
        &[
            "充值券退款金额",
            "代金券或立减优惠退款金额",
            "企业红包退款金额",
        ],
    );
    let c_rate = col(&header, &["费率"]);
    let c_order = col(&header, &["订单金额"]);
    let c_applied = col(&header, &["申请退款金额"]);
    let width = header.len();

    let mut rows = Vec::new();
    let mut summary_header = None;
    for (i, line) in lines.by_ref() {
        if line.starts_with("总交易单数") {
            summary_header = Some(line);
            break;
        }
        let bad = |why: String| BillError::Row { line: i + 1, why };
        let mut f: Vec<Cow<str>> = fields(line)
            .ok_or_else(|| bad("a value without its backtick".into()))?
            .into_iter()
            .map(Cow::Borrowed)
            .collect();
        // A body holding `` ,` `` splits into more fields: what lies between the columns before
        // it and the columns after it is the body (scanpay's own bodies never hold it).
        if f.len() > width {
            let extra = f.len() - width;
            let joined = f[c_body..=c_body + extra].join(",`");
            f.splice(c_body..=c_body + extra, [Cow::Owned(joined)]);
        }
        if f.len() != width {
            return Err(bad(format!("{} values, the header has {width}", f.len())));
        }
        let text = |c: usize| f[c].trim().to_string();
        let opt_id = |c: Option<usize>| {
            c.map(|c| f[c].trim())
                .filter(|v| !v.is_empty() && *v != "0")
                .map(str::to_string)
        };
        let fen = |c: usize, what: &str| {
            decimal(&f[c], 2).ok_or_else(|| bad(format!("{what} {:?} is not an amount", f[c])))
        };
        let opt_fen = |c: Option<usize>, what: &str| c.map(|c| fen(c, what)).transpose();
        rows.push(BillRow {
            trade_time: text(c_time),
            appid: text(c_appid),
            mch_id: text(c_mch),
            transaction_id: text(c_tx),
            out_trade_no: text(c_otn),
            trade_type: text(c_type),
            trade_state: text(c_state),
            settlement_fen: fen(c_settle, "应结订单金额")?,
            coupon_fen: opt_fen(c_coupon, "代金券金额")?.unwrap_or(0),
            refund_id: opt_id(c_refund_id),
            out_refund_no: opt_id(c_out_refund),
            refund_fen: opt_fen(c_refund, "退款金额")?.unwrap_or(0),
            // An empty cell is none (this column was not always filled).
            coupon_refund_fen: match c_coupon_refund {
                Some(c) if f[c].trim().is_empty() => Some(0),
                c => opt_fen(c, "充值券退款金额")?,
            },
            refund_status: c_refund_status
                .map(|c| f[c].trim().to_string())
                .filter(|v| !v.is_empty()),
            body: f[c_body].to_string(),
            attach: c_attach.map(|c| f[c].to_string()).unwrap_or_default(),
            fee_millifen: signed_decimal(&f[c_fee], 5)
                .ok_or_else(|| bad(format!("手续费 {:?} is not an amount", f[c_fee])))?,
            rate: c_rate.map(text).unwrap_or_default(),
            order_fen: opt_fen(c_order, "订单金额")?,
            applied_refund_fen: opt_fen(c_applied, "申请退款金额")?,
        });
    }
    let summary_header: Vec<&str> = summary_header
        .ok_or(BillError::NoSummary)?
        .split(',')
        .collect();
    let (i, values) = lines.next().ok_or(BillError::NoSummary)?;
    let values = fields(values)
        .filter(|v| v.len() == summary_header.len())
        .ok_or_else(|| BillError::Row {
            line: i + 1,
            why: "the summary's values do not match its header".into(),
        })?;
    let s = |names: &[&str], scale: u32| -> Result<Option<i64>, BillError> {
        match col(&summary_header, names) {
            None => Ok(None),
            // Signed: a day of refunds alone has a negative fee total.
            Some(c) => signed_decimal(values[c], scale)
                .map(Some)
                .ok_or_else(|| BillError::Row {
                    line: i + 1,
                    why: format!("summary value {:?} is not an amount", values[c]),
                }),
        }
    };
    let missing = |label| BillError::MissingColumn(label);
    let summary = BillSummary {
        rows: s(&["总交易单数"], 0)?.ok_or_else(|| missing("总交易单数"))?,
        settlement_fen: s(&["应结订单总金额", "总交易额"], 2)?
            .ok_or_else(|| missing("应结订单总金额"))?,
        refund_fen: s(&["退款总金额", "总退款金额"], 2)?.ok_or_else(|| missing("退款总金额"))?,
        coupon_refund_fen: s(
            &[
                "充值券退款总金额",
                "总代金券或立减优惠退款金额",
                "总企业红包退款金额",
            ],
            2,
        )?,
        fee_millifen: s(&["手续费总金额"], 5)?.ok_or_else(|| missing("手续费总金额"))?,
        order_fen: s(&["订单总金额"], 2)?,
        applied_refund_fen: s(&["申请退款总金额"], 2)?,
    };
    let bill = Bill {
        columns: width,
        rows,
        summary,
    };
    check_summary(&bill)?;
    Ok(bill)
}

/// The rows must add up to the summary, figure by figure.
fn check_summary(b: &Bill) -> Result<(), BillError> {
    let s = &b.summary;
    let sum = |f: fn(&BillRow) -> i64| b.rows.iter().map(f).sum::<i64>();
    let mut wrong = Vec::new();
    let mut check = |what: &str, rows: i64, total: i64| {
        if rows != total {
            wrong.push(format!("{what}: rows {rows}, summary {total}"));
        }
    };
    check("rows", b.rows.len() as i64, s.rows);
    check(
        "settlement (fen)",
        sum(|r| r.settlement_fen),
        s.settlement_fen,
    );
    check("refunds (fen)", sum(|r| r.refund_fen), s.refund_fen);
    check("fees (1/1000 fen)", sum(|r| r.fee_millifen), s.fee_millifen);
    if let Some(total) = s.order_fen {
        check("orders (fen)", sum(|r| r.order_fen.unwrap_or(0)), total);
    }
    if let Some(total) = s.coupon_refund_fen {
        if b.rows.iter().all(|r| r.coupon_refund_fen.is_some()) {
            check(
                "coupon refunds (fen)",
                sum(|r| r.coupon_refund_fen.unwrap_or(0)),
                total,
            );
        }
    }
    if let Some(total) = s.applied_refund_fen {
        check(
            "applied refunds (fen)",
            sum(|r| r.applied_refund_fen.unwrap_or(0)),
            total,
        );
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(BillError::Summary(wrong.join("; ")))
    }
}

#[cfg(test)]
mod tests;
