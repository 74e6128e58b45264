//! `GET /metrics` (Prometheus text, every role; bearer `SCANPAY_METRICS_TOKEN` when set) and the
//! middleware counting every HTTP request by route, method and status.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::server::state::Ctx;
use crate::server::support::metrics;

pub async fn count(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let route = metrics::route_of(req.uri().path());
    let method = req.method().as_str().to_string();
    let resp = next.run(req).await;
    metrics::http_request(
        &method,
        route,
        resp.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

pub async fn serve(State(ctx): State<Arc<Ctx>>, headers: HeaderMap) -> Response {
    if let Some(token) = &ctx.settings.console.metrics_token {
        use subtle::ConstantTimeEq;
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !(given.len() == token.expose().len()
            && bool::from(given.as_bytes().ct_eq(token.expose().as_bytes())))
        {
            return (StatusCode::UNAUTHORIZED, "bad or missing bearer token").into_response();
        }
    }
    // What is read at scrape time: the backlog and the open problems, from SQL.
    let up = |ok: bool| if ok { 1.0 } else { 0.0 };
    if let Ok(b) = ctx
        .store
        .backlog(crate::server::support::clock::now_ms())
        .await
    {
        metrics::gauge("scanpay_sweep_due_orders", b.due as f64);
        metrics::gauge("scanpay_sweep_lag_seconds", b.lag_ms as f64 / 1000.0);
        metrics::gauge("scanpay_deadlines_due", b.deadlines_due as f64);
        metrics::gauge("scanpay_pay_results_in_flight", b.inbox_waiting as f64);
    }
    match ctx.store.overview_counts(i64::MAX).await {
        Ok(c) => {
            metrics::gauge("scanpay_orders_unfinished", c.unfinished as f64);
            metrics::gauge("scanpay_anomalies_open", c.anomalies_open as f64);
            let oldest = c
                .oldest_unfinished_at
                .map(|at| (crate::server::support::clock::now_ms() - at).max(0) as f64 / 1000.0)
                .unwrap_or(0.0);
            metrics::gauge("scanpay_oldest_unfinished_age_seconds", oldest);
            metrics::gauge("scanpay_database_up", 1.0);
        }
        Err(_) => metrics::gauge("scanpay_database_up", 0.0),
    }
    if let Ok(open) = ctx.store.recon_open_by_class().await {
        use crate::server::domain::recon::ReconClass;
        for c in ReconClass::ALL.into_iter().skip(1) {
            metrics::recon_open(c.as_str(), open[c.index()]);
        }
    }
    let (cache_up, dead) = tokio::join!(
        ctx.cache.health(),
        tokio::time::timeout(std::time::Duration::from_secs(2), ctx.bus.dead_letters())
    );
    if let Some(ok) = cache_up {
        metrics::gauge("scanpay_redis_up", up(ok));
    }
    match dead {
        Ok(Some(Ok(n))) => {
            metrics::gauge("scanpay_rabbitmq_up", 1.0);
            metrics::gauge("scanpay_pay_results_dead_lettered", n as f64);
        }
        Ok(Some(Err(_))) | Err(_) => metrics::gauge("scanpay_rabbitmq_up", 0.0),
        Ok(None) => {}
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics::handle().render(),
    )
        .into_response()
}
