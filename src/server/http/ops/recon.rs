//! The reconciliation for scripts: days, a day's totals and differences, resolving one (the
//! console's pages are `http::console::recon`).

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::{authorized, db_down, refused};
use crate::server::domain::recon::{BillDate, ReconClass, ReconLine};
use crate::server::state::Ctx;

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct DaysQuery {
    before: Option<String>,
    limit: Option<i64>,
}

/// `GET /ops/reconciliation[?before=<date>&limit=<n>]`: reconciled days, newest first (the
/// next page: `before=` the last one's date).
pub async fn recon_days(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    Query(q): Query<DaysQuery>,
) -> Response {
    if let Err(r) = authorized(&ctx, &headers) {
        return r;
    }
    let before = match q.before.as_deref().map(BillDate::parse).transpose() {
        Ok(b) => b,
        Err(why) => return refused(StatusCode::BAD_REQUEST, why),
    };
    let limit = q.limit.unwrap_or(31).clamp(1, 366);
    match ctx
        .store
        .recon_days(before.as_ref().map(BillDate::as_str), limit)
        .await
    {
        Ok(days) => Json(days.iter().map(|d| d.to_json()).collect::<Vec<_>>()).into_response(),
        Err(e) => db_down(e),
    }
}

/// Differences a day's JSON carries at most (the CSV has every line).
const JSON_DIFFERENCES: usize = 10_000;

/// The first `limit` lines, read `page` at a time after the last key read, and whether there
/// were more (one line past the limit is read to know).
async fn first_lines<F, Fut>(
    limit: usize,
    page: usize,
    mut fetch: F,
) -> Result<(Vec<ReconLine>, bool), sqlx::Error>
where
    F: FnMut(String, usize) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<ReconLine>, sqlx::Error>>,
{
    let mut lines: Vec<ReconLine> = Vec::new();
    loop {
        let after = lines.last().map(|l| l.key.clone()).unwrap_or_default();
        let got = fetch(after, page).await?;
        let last = got.len() < page;
        lines.extend(got);
        if last || lines.len() > limit {
            break;
        }
    }
    let more = lines.len() > limit;
    lines.truncate(limit);
    Ok((lines, more))
}

/// `GET /ops/reconciliation/{date}`: the day, its totals per class and its differences;
/// `{date}.csv`: every line as CSV.
pub async fn recon_day(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    Path(raw): Path<String>,
) -> Response {
    if let Err(r) = authorized(&ctx, &headers) {
        return r;
    }
    let (raw, as_csv) = match raw.strip_suffix(".csv") {
        Some(d) => (d, true),
        None => (raw.as_str(), false),
    };
    let date = match BillDate::parse(raw) {
        Ok(d) => d,
        Err(why) => return refused(StatusCode::BAD_REQUEST, why),
    };
    if as_csv {
        return crate::server::http::console::recon_csv(ctx.store.clone(), date).await;
    }
    let loaded = async {
        let Some(day) = ctx.store.recon_day(date.as_str()).await? else {
            return Ok(None);
        };
        let totals = ctx.store.recon_totals(date.as_str()).await?;
        let lines = first_lines(JSON_DIFFERENCES, 500, |after, n| {
            let (store, date) = (&ctx.store, &date);
            async move {
                store
                    .recon_lines(date.as_str(), true, &after, n as i64)
                    .await
            }
        })
        .await?;
        Ok::<_, sqlx::Error>(Some((day, totals, lines)))
    };
    let ((day, totals, lines), truncated) = match loaded.await {
        Ok(Some((day, totals, (lines, truncated)))) => ((day, totals, lines), truncated),
        Ok(None) => {
            return refused(
                StatusCode::NOT_FOUND,
                format!("no reconciliation for {date}"),
            )
        }
        Err(e) => return db_down(e),
    };
    let mut v = day.to_json();
    v["classes"] = ReconClass::ALL
        .iter()
        .map(|c| {
            let t = &totals[c.index()];
            let one = json!({"count": t.count, "wechat_fen": t.wechat_fen, "local_fen": t.local_fen, "open": t.open});
            (c.as_str().to_string(), one)
        })
        .collect::<serde_json::Map<_, _>>()
        .into();
    v["differences"] = lines.iter().map(ReconLine::to_json).collect();
    v["differences_truncated"] = truncated.into();
    Json(v).into_response()
}

/// The body of `POST /ops/reconciliation/{date}/resolve`.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResolveBody {
    pub key: String,
    pub reason: String,
}

/// `POST /ops/reconciliation/{date}/resolve` `{"key": "P:4200…", "reason": "…"}` → 200 with the
/// line resolved; 404 for no such line, 409 when it is not an open difference. Audited as
/// `ops-token`.
pub async fn recon_resolve(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(r) = authorized(&ctx, &headers) {
        return r;
    }
    let date = match BillDate::parse(&raw) {
        Ok(d) => d,
        Err(why) => return refused(StatusCode::BAD_REQUEST, why),
    };
    let body: ResolveBody = match serde_json::from_slice(&body) {
        Ok(b) => b,
        Err(e) => {
            let why = format!("expected {{\"key\": \"...\", \"reason\": \"...\"}}: {e}");
            return refused(StatusCode::UNPROCESSABLE_ENTITY, why);
        }
    };
    let reason = body.reason.trim();
    if !crate::server::http::console::recon_key_ok(&body.key)
        || !crate::server::http::console::recon_reason_ok(reason)
    {
        let why = "key: a line's key; reason: 1 to 512 characters, no control characters";
        return refused(StatusCode::UNPROCESSABLE_ENTITY, why);
    }
    let resolved = crate::server::http::console::recon_resolve_line(
        &ctx,
        &date,
        &body.key,
        "ops-token",
        "",
        reason,
    )
    .await;
    match resolved {
        Ok(Some(_)) => match ctx.store.recon_line(date.as_str(), &body.key).await {
            Ok(Some(line)) => Json(line.to_json()).into_response(),
            Ok(None) => refused(StatusCode::NOT_FOUND, "no such line"),
            Err(e) => db_down(e),
        },
        Ok(None) => match ctx.store.recon_line(date.as_str(), &body.key).await {
            Ok(Some(_)) => refused(StatusCode::CONFLICT, "not an open difference"),
            Ok(None) => refused(StatusCode::NOT_FOUND, "no such line"),
            Err(e) => db_down(e),
        },
        Err(e) => db_down(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::domain::recon::{blank, LineKind};

    #[tokio::test]
    async fn a_day_with_more_differences_than_the_json_carries_says_so() {
        let all: Vec<String> = (0..25).map(|i| format!("P:{i:03}")).collect();
        let read = |limit| {
            let all = all.clone();
            first_lines(limit, 5, move |after: String, n| {
                let page: Vec<ReconLine> = all
                    .iter()
                    .filter(|k| **k > after)
                    .take(n)
                    .map(|k| ReconLine {
                        key: k.clone(),
                        ..blank(LineKind::Payment, ReconClass::AmountDiffers)
                    })
                    .collect();
                async move { Ok(page) }
            })
        };
        for (limit, len, more) in [
            (10, 10, true),
            (24, 24, true),
            (25, 25, false),
            (30, 25, false),
        ] {
            let (lines, cut) = read(limit).await.unwrap();
            assert_eq!((lines.len(), cut), (len, more), "limit {limit}");
            assert_eq!(lines.last().unwrap().key, all[len - 1]);
        }
    }
}
