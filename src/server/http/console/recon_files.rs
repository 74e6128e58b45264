//! The reconciliation's downloads: a day's every line as CSV (streamed) and WeChat's bill as
//! it was downloaded.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};

use super::recon::unavailable;
use crate::app::ops;
use crate::server::domain::recon::{BillDate, ReconLine};
use crate::server::state::AppState;
use crate::server::store::Store;

/// A download: `body` as an attachment named `name`.
fn attachment(name: &str, body: Body) -> Response {
    let disposition = format!("attachment; filename=\"{name}\"");
    let headers = [
        (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
        (header::CONTENT_DISPOSITION, disposition),
    ];
    (headers, body).into_response()
}

/// Every line of the day as CSV, streamed page by page (constant memory however many); 404 for
/// a day never reconciled. Ids quoted as text, amounts in fen and in yuan.
pub(crate) async fn csv(store: Store, date: BillDate) -> Response {
    match store.recon_day(date.as_str()).await {
        Ok(Some(_)) => {}
        Ok(None) => {
            return (StatusCode::NOT_FOUND, "no reconciliation for that day").into_response()
        }
        Err(e) => return unavailable(e),
    }
    let header_line = "bill_date,key,kind,class,open,out_trade_no,transaction_id,out_refund_no,\
        trade_time,wechat_fen,wechat_yuan,local_fen,local_yuan,wechat_state,local_state,\
        fee_millifen,note,resolved_at,resolved_by,resolution\r\n";
    let day = date.to_string();
    let rows = futures::stream::unfold(Some(String::new()), move |after| {
        let (store, day) = (store.clone(), day.clone());
        async move {
            let after = after?;
            match store.recon_lines(&day, false, &after, 500).await {
                Err(e) => {
                    tracing::error!(error = %e, "console: reconciliation CSV cut short");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
                Ok(lines) => {
                    let mut chunk = String::with_capacity(lines.len() * 240);
                    for l in &lines {
                        chunk.push_str(&csv_line(&day, l));
                    }
                    let next = (lines.len() == 500)
                        .then(|| lines.last().map(|l| l.key.clone()))
                        .flatten();
                    Some((Ok::<_, std::io::Error>(chunk), next))
                }
            }
        }
    });
    // Fused: the compression layer polls once more after the end, which `unfold` forbids.
    let body = futures::StreamExt::fuse(futures::StreamExt::chain(
        futures::stream::once(async move { Ok(header_line.to_string()) }),
        rows,
    ));
    attachment(
        &format!("reconciliation-{date}.csv"),
        Body::from_stream(body),
    )
}

/// One CSV line: text quoted (a note may hold a comma), a leading `=+-@` defused against
/// spreadsheet formulas, as `/ops/orders.csv` writes them.
fn csv_line(day: &str, l: &ReconLine) -> String {
    let q = |s: &str| {
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s.to_string()
        };
        format!("\"{}\"", s.replace('"', "\"\""))
    };
    let fen = |f: Option<i64>| f.map(|f| f.to_string()).unwrap_or_default();
    let yuan = |f: Option<i64>| f.map(|f| ops::yuan(f).replace('¥', "")).unwrap_or_default();
    let fields = [
        day.to_string(),
        q(&l.key),
        l.kind.as_str().to_string(),
        l.class.as_str().to_string(),
        l.is_open().to_string(),
        q(&l.out_trade_no),
        q(&l.transaction_id),
        q(&l.out_refund_no),
        q(&l.trade_time),
        fen(l.wechat_fen),
        yuan(l.wechat_fen),
        fen(l.local_fen),
        yuan(l.local_fen),
        q(&l.wechat_state),
        q(&l.local_state),
        l.fee_millifen.to_string(),
        q(&l.note),
        l.resolved_at.map(ops::when).unwrap_or_default(),
        q(l.resolved_by.as_deref().unwrap_or("")),
        q(l.resolution.as_deref().unwrap_or("")),
    ];
    format!("{}\r\n", fields.join(","))
}

/// `GET /ops/reconciliation/{date}/bill`: WeChat's bill text exactly as downloaded (kept
/// gzipped; served plain, the response compressed on the way like any other).
pub async fn bill(State(state): State<AppState>, Path(raw): Path<String>) -> Response {
    use std::io::Read as _;
    let Ok(date) = BillDate::parse(&raw) else {
        return (StatusCode::BAD_REQUEST, "not a day like 2026-11-30").into_response();
    };
    let gz = match state.ctx.store.recon_raw(date.as_str()).await {
        Ok(Some(gz)) => gz,
        Ok(None) => return (StatusCode::NOT_FOUND, "no bill kept for that day").into_response(),
        Err(e) => return unavailable(e),
    };
    let mut text = Vec::with_capacity(gz.len() * 4);
    if let Err(e) = flate2::read::GzDecoder::new(gz.as_slice()).read_to_end(&mut text) {
        tracing::error!(error = %e, bill_date = date.as_str(), "console: stored bill unreadable");
        return (StatusCode::INTERNAL_SERVER_ERROR, "stored bill unreadable").into_response();
    }
    attachment(&format!("wechat-bill-{date}.csv"), Body::from(text))
}
