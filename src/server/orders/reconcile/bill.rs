//! The reconciliation's bill: downloaded through the gateway, read and checked (every row of
//! the day asked for, ids and states that fit what is stored), kept gzipped with its SHA-256.

use std::io::Write as _;

use sha2::Digest as _;

use crate::server::domain::recon::{BillDate, WechatRow, WechatTotals};
use crate::server::state::Ctx;
use crate::server::wxpay::bill::{self, BillAnswer};

/// Why the bill cannot be had, and whether trying again later can help.
pub(super) struct NoBill {
    pub why: String,
    pub retry: bool,
}

/// The bill's rows and summary with its raw text (gzipped, and its SHA-256), or none at all
/// when WeChat has no bill for the day; Err: why the bill cannot be had now.
pub(super) type Fetched = (
    Vec<WechatRow>,
    Option<WechatTotals>,
    Option<(Vec<u8>, String)>,
);

pub(super) async fn fetch(ctx: &Ctx, date: &BillDate) -> Result<Fetched, NoBill> {
    let again = |why: String| NoBill { why, retry: true };
    let refused = |why: String| NoBill { why, retry: false };
    let text = match ctx.wxpay.download_bill(&date.compact()).await {
        Ok(BillAnswer::Text(t)) => t,
        Ok(BillAnswer::NoBill) => return Ok((Vec::new(), None, None)),
        Ok(BillAnswer::NotReady) => {
            return Err(again("WeChat: Bill Creating (not ready yet)".into()))
        }
        // SYSTEMERROR passes; the rest (a bad date, the bill API closed, a bad signature) wants
        // a person.
        Ok(BillAnswer::Refused { msg, code }) => {
            let why = format!("WeChat refused the download: {msg} ({code})");
            return Err(if msg.eq_ignore_ascii_case("SYSTEMERROR") {
                again(why)
            } else {
                refused(why)
            });
        }
        Err(e) => return Err(again(format!("{e}"))),
    };
    // A bill that does not add up (truncated, altered) or names another day is refused,
    // loudly: nothing is compared. Reading and packing it are CPU work: off the async threads.
    let day = date.clone();
    let read = tokio::task::spawn_blocking(move || {
        let b = bill::parse(&text).map_err(|e| e.to_string())?;
        let (rows, totals) = wechat_rows(&b, &day)?;
        // Fast compression: the file is kept for people to read, not to save bytes.
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let gz = gz
            .write_all(text.as_bytes())
            .and_then(|_| gz.finish())
            .map_err(|e| format!("cannot compress the bill: {e}"))?;
        let sha = hex(&sha2::Sha256::digest(text.as_bytes()));
        Ok::<_, String>((rows, Some(totals), Some((gz, sha))))
    })
    .await
    .expect("reading the bill does not panic");
    read.map_err(|e| {
        tracing::error!(bill_date = date.as_str(), error = %e, "WeChat's trade bill is unusable");
        refused(format!("WeChat's bill is unusable: {e}"))
    })
}

/// The bill's rows as the comparison reads them, each checked to be of `date` and to fit what
/// is stored; Err names the first that is not.
pub fn wechat_rows(
    b: &bill::Bill,
    date: &BillDate,
) -> Result<(Vec<WechatRow>, WechatTotals), String> {
    let mut rows = Vec::with_capacity(b.rows.len());
    for (i, r) in b.rows.iter().enumerate() {
        let n = i + 1;
        let at = crate::server::support::clock::parse_beijing(
            &r.trade_time.replace(['-', ' ', ':'], ""),
        )
        .map_err(|_| format!("row {n}: 交易时间 {:?} is not a time", r.trade_time))?;
        if !(date.start_ms()..date.end_ms()).contains(&at) {
            return Err(format!(
                "row {n}: 交易时间 {} is not on {date}",
                r.trade_time
            ));
        }
        let fits = |v: &str, max: usize| v.chars().count() <= max;
        let ids = [&r.transaction_id, &r.out_trade_no];
        if !ids.iter().all(|v| fits(v, 64))
            || !r.out_refund_no.as_deref().is_none_or(|v| fits(v, 64))
            || !fits(&r.trade_state, 32)
            || !r.refund_status.as_deref().is_none_or(|v| fits(v, 32))
        {
            return Err(format!(
                "row {n}: an id or a state longer than WeChat writes them"
            ));
        }
        rows.push(WechatRow {
            trade_time: r.trade_time.clone(),
            transaction_id: r.transaction_id.clone(),
            out_trade_no: r.out_trade_no.clone(),
            amount_fen: match &r.out_refund_no {
                Some(_) => r.applied_refund_fen.unwrap_or(r.refund_fen),
                // 订单金额; the old layout's 总金额 is the order's total (coupons then were
                // pre-funded and inside it), read into `settlement_fen`.
                None => r.order_fen.unwrap_or(r.settlement_fen),
            },
            out_refund_no: r.out_refund_no.clone(),
            state: match &r.out_refund_no {
                Some(_) => r.refund_status.clone().unwrap_or_default(),
                None => r.trade_state.clone(),
            },
            fee_millifen: r.fee_millifen,
        });
    }
    let s = &b.summary;
    let totals = WechatTotals {
        rows: s.rows,
        settlement_fen: s.settlement_fen,
        refund_fen: s.refund_fen,
        fee_millifen: s.fee_millifen,
        order_fen: s.order_fen,
    };
    Ok((rows, totals))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests;
