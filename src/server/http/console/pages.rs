//! The console's pages: each loads what it shows, then renders `app::ops`.

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use leptos::prelude::*;

use super::{lang_of, may, page, Flash, Signed};
use crate::app::ops::{
    self, AnomaliesPage, AuditPage, OpsKey, OrderPage, OrderPageData, OrdersPageView, OrdersQuery,
    OverviewData, OverviewPage, Section,
};
use crate::server::domain::{Action, RefundStatus};
use crate::server::jobs::Phase;
use crate::server::state::AppState;
use crate::server::support::clock::{format_beijing, now_ms, parse_beijing};

const PAGE: i64 = 50;

fn unavailable(e: sqlx::Error) -> Response {
    tracing::error!(error = %e, "console: database read failed");
    (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
}

/// The start of today in Beijing, as epoch ms.
pub(crate) fn beijing_day_start(now: i64) -> i64 {
    let today = &format_beijing(now)[..8];
    parse_beijing(&format!("{today}000000")).expect("a valid time")
}

/// `GET /ops`.
pub async fn overview(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Response {
    let lang = lang_of(&headers);
    let ctx = &state.ctx;
    let now = now_ms();
    let counts = match ctx.store.overview_counts(beijing_day_start(now)).await {
        Ok(c) => c,
        Err(e) => return unavailable(e),
    };
    let hour = now - now.rem_euclid(3_600_000);
    let since = hour - 23 * 3_600_000;
    let (placed, paid) = match ctx.store.hourly(since).await {
        Ok(h) => h,
        Err(e) => return unavailable(e),
    };
    // Days with differences still open, however old (the newest 14 named; the list page has
    // them all).
    let recon_open = match ctx.store.recon_open_days(14).await {
        Ok(days) => days.into_iter().map(|d| (d.bill_date, d.open)).collect(),
        Err(e) => return unavailable(e),
    };
    let count_in = |v: &[(i64, i64)], i: i64| v.iter().find(|(h, _)| *h == i).map_or(0, |x| x.1);
    let hours = (0..24)
        .map(|i| {
            (
                since + i * 3_600_000,
                count_in(&placed, i),
                count_in(&paid, i),
            )
        })
        .collect();
    let workers = ctx
        .jobs
        .states()
        .into_iter()
        .map(|(name, s)| {
            let ok = s.state == Phase::Running;
            let detail = match (&s.state, s.restarts) {
                (Phase::Running, 0) => "running".to_string(),
                (p, n) => format!(
                    "{p:?}, {n} restart(s){}",
                    s.last_panic.map(|p| format!(": {p}")).unwrap_or_default()
                ),
            };
            (name.to_string(), ok, detail)
        })
        .collect();
    let d = OverviewData {
        paid_today: counts.paid,
        paid_today_fen: counts.paid_fen,
        placed_today: counts.placed,
        placed_today_paid: counts.placed_paid,
        refunded_today_fen: counts.refunded_fen,
        refunds_today: counts.refunds,
        unfinished: counts.unfinished,
        oldest_unfinished_at: counts.oldest_unfinished_at,
        anomalies_open: counts.anomalies_open,
        recon_open,
        hours,
        workers,
        dead_letters: match ctx.bus.dead_letters().await {
            Some(Ok(n)) => {
                let bodies = match ctx.bus.dead_letter_list(20).await {
                    Some(Ok(b)) => b,
                    _ => Vec::new(),
                };
                Some((n, bodies))
            }
            _ => None,
        },
        may_requeue: may(&signed, Action::Requeue),
        done: flash.done(),
        error: flash.error(),
    };
    let title = ops::t(lang, OpsKey::overview_title);
    Html(page(
        &state,
        lang,
        title,
        Some(&signed.me),
        Section::Overview,
        move || {
            view! { <OverviewPage lang=lang d=d/> }
        },
    ))
    .into_response()
}

/// `GET /ops/orders?q=…&status=…`: an exact id (order, transaction or refund number) goes
/// straight to its order; anything else filters the list.
pub async fn orders(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    headers: HeaderMap,
    Query(query): Query<OrdersQuery>,
) -> Response {
    let lang = lang_of(&headers);
    let ctx = &state.ctx;
    let q = query.q.trim();
    if !q.is_empty() && q.len() <= 64 && q.bytes().all(|b| b.is_ascii_alphanumeric()) {
        match ctx.store.find_order_id(q).await {
            Ok(Some(id)) => return super::auth::redirect(&format!("/ops/orders/{id}")),
            Ok(None) => {}
            Err(e) => return unavailable(e),
        }
    }
    let (lines, next, error, status) = match query.filter() {
        Ok(f) => match ctx.store.orders_page(&f, PAGE).await {
            Ok(p) => (p.lines, p.next, None, StatusCode::OK),
            Err(e) => return unavailable(e),
        },
        Err(key) => (Vec::new(), None, Some(key), StatusCode::BAD_REQUEST),
    };
    let title = ops::t(lang, OpsKey::orders_title);
    let body = page(
        &state,
        lang,
        title,
        Some(&signed.me),
        Section::Orders,
        move || {
            view! { <OrdersPageView lang=lang query=query lines=lines next=next error=error/> }
        },
    );
    (status, Html(body)).into_response()
}

/// `GET /ops/orders.csv?…`: every order the filter selects, streamed page by page (constant
/// memory however many), ids as text so a spreadsheet keeps their digits.
pub async fn orders_csv(
    State(state): State<AppState>,
    Query(query): Query<OrdersQuery>,
) -> Response {
    let filter = match query.filter() {
        Ok(f) => f,
        Err(key) => {
            return (
                StatusCode::BAD_REQUEST,
                ops::t(crate::app::i18n::Lang::En, key),
            )
                .into_response()
        }
    };
    let store = state.ctx.store.clone();
    let header_line = "out_trade_no,status,total_fee_yuan,refunded_yuan,placed_beijing,paid_beijing,transaction_id,anomalies,body\r\n";
    let rows = futures::stream::unfold(Some(filter), move |f| {
        let store = store.clone();
        async move {
            let mut f = f?;
            match store.orders_page(&f, 500).await {
                Err(e) => {
                    tracing::error!(error = %e, "console: CSV export cut short");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
                Ok(p) => {
                    let mut chunk = String::with_capacity(p.lines.len() * 160);
                    for o in &p.lines {
                        chunk.push_str(&csv_line(o));
                    }
                    let next = p.next.map(|n| {
                        f.after = Some(n);
                        f
                    });
                    Some((Ok::<_, std::io::Error>(chunk), next))
                }
            }
        }
    });
    // Fused: the compression layer polls once more after the end, which `unfold` forbids (a
    // gzip-accepting browser's download panicked the handler and lost its connection).
    let body = futures::StreamExt::fuse(futures::StreamExt::chain(
        futures::stream::once(async move { Ok(header_line.to_string()) }),
        rows,
    ));
    let name = format!("orders-{}.csv", &format_beijing(now_ms())[..8]);
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// One CSV line; every text field quoted (a body may hold a comma), a leading `=+-@` defused
/// against spreadsheet formulas.
fn csv_line(o: &crate::server::domain::OrderLine) -> String {
    let q = |s: &str| {
        let s = if s.starts_with(['=', '+', '-', '@']) {
            format!("'{s}")
        } else {
            s.to_string()
        };
        format!("\"{}\"", s.replace('"', "\"\""))
    };
    let yuan = |f: i64| format!("{}.{:02}", f / 100, f % 100);
    format!(
        "{},{},{},{},{},{},{},{},{}\r\n",
        q(&o.id),
        o.status.as_str(),
        yuan(o.total_fee),
        yuan(o.refunded_fee),
        ops::when(o.created_at),
        o.paid_at.map(ops::when).unwrap_or_default(),
        q(o.transaction_id.as_deref().unwrap_or("")),
        o.anomalies,
        q(&o.body)
    )
}

/// `GET /ops/orders/{id}`.
pub async fn order(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    let lang = lang_of(&headers);
    let ctx = &state.ctx;
    let order = match ctx.store.load(&id).await {
        Ok(Some(o)) => o,
        Ok(None) => {
            let title = ops::t(lang, OpsKey::not_found_title);
            let body = page(
                &state,
                lang,
                title,
                Some(&signed.me),
                Section::Orders,
                move || {
                    view! { <h1>{title}</h1><p><a href="/ops/orders">{ops::t(lang, OpsKey::back_to_orders)}</a></p> }
                },
            );
            return (StatusCode::NOT_FOUND, Html(body)).into_response();
        }
        Err(e) => return unavailable(e),
    };
    let loaded = async {
        Ok::<_, sqlx::Error>((
            ctx.store.items(&id).await?,
            ctx.store.events(&id).await?,
            ctx.store.refunds_of(&id).await?,
            ctx.store.anomalies_of(&id).await?,
            ctx.store.audit_log(None, Some(&id), 100).await?,
            ctx.store.calls_of(&id, 500).await?,
            ctx.store.notifies_of(&id, 500).await?,
            ctx.store.recon_lines_of_order(&id).await?,
        ))
    };
    let (items, events, refunds, anomalies, audit, calls, notifies, recon) = match loaded.await {
        Ok(x) => x,
        Err(e) => return unavailable(e),
    };
    let holding: i64 = refunds
        .iter()
        .filter(|r| {
            r.anomaly_id.is_none()
                && r.status != RefundStatus::Failed
                && r.status != RefundStatus::Closed
        })
        .map(|r| r.refund_fee)
        .sum();
    let refundable = if order.status == crate::app::types::OrderStatus::Paid {
        (order.total_fee - holding).max(0)
    } else {
        0
    };
    let d = OrderPageData {
        order,
        items,
        events,
        refunds,
        anomalies,
        audit,
        calls,
        notifies,
        recon,
        refundable,
        may_act: may(&signed, Action::Refund),
        done: flash.done(),
        error: flash.error(),
    };
    Html(page(
        &state,
        lang,
        &id,
        Some(&signed.me),
        Section::Orders,
        move || {
            view! { <OrderPage lang=lang d=d/> }
        },
    ))
    .into_response()
}

/// `GET /ops/anomalies`.
pub async fn anomalies(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Response {
    let lang = lang_of(&headers);
    let rows = match state.ctx.store.anomaly_list(500).await {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    let may_act = may(&signed, Action::Resolve);
    let title = ops::t(lang, OpsKey::anomalies_title);
    let (done, error) = flash.parts();
    Html(page(
        &state,
        lang,
        title,
        Some(&signed.me),
        Section::Anomalies,
        move || {
            view! { <AnomaliesPage lang=lang rows=rows may_act=may_act done=done error=error/> }
        },
    ))
    .into_response()
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct AuditQuery {
    before: Option<i64>,
}

/// `GET /ops/audit?before=<id>`.
pub async fn audit(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Response {
    let lang = lang_of(&headers);
    let mut rows = match state.ctx.store.audit_log(q.before, None, PAGE + 1).await {
        Ok(r) => r,
        Err(e) => return unavailable(e),
    };
    let next = if rows.len() as i64 > PAGE {
        rows.truncate(PAGE as usize);
        rows.last().map(|r| r.id)
    } else {
        None
    };
    let title = ops::t(lang, OpsKey::audit_title);
    Html(page(
        &state,
        lang,
        title,
        Some(&signed.me),
        Section::Audit,
        move || {
            view! { <AuditPage lang=lang rows=rows next=next/> }
        },
    ))
    .into_response()
}
