//! Metrics, Prometheus-named: every name `scanpay_…`, counters `_total`, durations `_seconds`
//! histograms, labels of bounded sets only (never an order id). Recorded through the `metrics`
//! facade; `http::metrics` renders them at `GET /metrics`. One recorder per process (tests that
//! start several apps in one process share it, so they compare values before and after).

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Seconds buckets for HTTP and WeChat calls (OpenTelemetry's advice) and the longer waits.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0, 30.0, 60.0,
];

/// The process's recorder, installed on first use.
pub fn handle() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), BUCKETS)
            .expect("buckets are not empty")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder (a test harness's) may be installed already: then ours only renders.
        let _ = metrics::set_global_recorder(recorder);
        metrics::gauge!("scanpay_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        handle
    })
}

/// Folds recorded histogram samples into their buckets every `every` until `token` is
/// cancelled. The recorder keeps each sample until then (or until a scrape): without this, a
/// process nobody scrapes would grow by every request it answers.
pub async fn run_upkeep(every: std::time::Duration, token: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => handle().run_upkeep(),
            _ = token.cancelled() => return,
        }
    }
}

/// One HTTP request answered: by route template (`/checkout/{id}`), method and status.
pub fn http_request(method: &str, route: &'static str, status: u16, seconds: f64) {
    // Any token is a method to HTTP: the label keeps the standard ones.
    let method = match method {
        "GET" => "GET",
        "POST" => "POST",
        "HEAD" => "HEAD",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "OPTIONS" => "OPTIONS",
        "PATCH" => "PATCH",
        _ => "other",
    };
    let status = status.to_string();
    metrics::counter!("scanpay_http_requests_total", "method" => method, "route" => route, "status" => status.clone()).increment(1);
    metrics::histogram!("scanpay_http_request_duration_seconds", "route" => route, "status" => status).record(seconds);
}

/// One call to WeChat Pay: the API (`pay/orderquery` → `orderquery`) and how it ended
/// (`success`, a `result_code` error code, `protocol`, `http_5xx`, `transport`, …).
pub fn wxpay_call(api: &str, result: &str, seconds: f64) {
    let api = api.rsplit('/').next().unwrap_or(api).to_string();
    metrics::counter!("scanpay_wxpay_requests_total", "api" => api.clone(), "result" => result.to_string()).increment(1);
    metrics::histogram!("scanpay_wxpay_request_duration_seconds", "api" => api).record(seconds);
}

/// A pay or refund notify answered: `accepted`, `refused_sign`, `unavailable`, ….
pub fn notify(kind: &'static str, outcome: &'static str) {
    metrics::counter!("scanpay_notifies_total", "kind" => kind, "outcome" => outcome).increment(1);
}

/// An order moved to `to` (paid, closing, closed, failed) because of `cause`.
pub fn transition(to: &'static str, cause: &'static str) {
    metrics::counter!("scanpay_order_transitions_total", "to" => to, "cause" => cause).increment(1);
}

/// From a notify's arrival to its payment committed.
pub fn notify_to_paid(seconds: f64) {
    metrics::histogram!("scanpay_notify_to_paid_seconds").record(seconds);
}

/// A refund reached `status` (requested, processing, success, closed, abnormal, failed).
pub fn refund(status: &'static str) {
    metrics::counter!("scanpay_refunds_total", "status" => status).increment(1);
}

/// A reconciliation run ended: `done`, `no_bill` (WeChat has none for the day), `unavailable`
/// (not ready, refused or no answer: tried again later).
pub fn recon_run(outcome: &'static str) {
    metrics::counter!("scanpay_recon_runs_total", "outcome" => outcome).increment(1);
}

/// Differences of the daily reconciliation still open, by class (read at scrape time).
pub fn recon_open(class: &'static str, n: i64) {
    metrics::gauge!("scanpay_recon_differences_open", "class" => class).set(n as f64);
}

/// A value read at scrape time (backlogs, open anomalies, availability).
pub fn gauge(name: &'static str, value: f64) {
    metrics::gauge!(name).set(value);
}

/// The route template of a path, from the app's own routes: bounded, so a scan of random
/// paths cannot grow the label set.
pub fn route_of(path: &str) -> &'static str {
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match seg.as_slice() {
        [""] => "/",
        ["orders"] => "/orders",
        ["checkout", _] => "/checkout/{id}",
        ["orders", _, "paid"] => "/orders/{id}/paid",
        ["orders", _, "failed"] => "/orders/{id}/failed",
        ["api", "order_status"] => "/api/order_status",
        ["api", "order"] => "/api/order",
        ["api", "place_order"] => "/api/place_order",
        ["api", "cancel_order"] => "/api/cancel_order",
        ["api", "catalogue"] => "/api/catalogue",
        ["api", "my_orders"] => "/api/my_orders",
        ["api", "hide_order"] => "/api/hide_order",
        ["api", "set_language"] => "/api/set_language",
        ["api", ..] => "/api/other",
        ["wxpay", "notify"] => "/wxpay/notify",
        ["wxpay", "refund-notify"] => "/wxpay/refund-notify",
        ["healthz"] => "/healthz",
        ["readyz"] => "/readyz",
        ["metrics"] => "/metrics",
        ["ops"] => "/ops",
        ["ops", "orders", _, action] if !action.is_empty() => match *action {
            "refund" => "/ops/orders/{id}/refund",
            "refunds" => "/ops/orders/{id}/refunds",
            "note" => "/ops/orders/{id}/note",
            "query" => "/ops/orders/{id}/query",
            _ => "/ops/other",
        },
        ["ops", "orders", _] => "/ops/orders/{id}",
        ["ops", "anomalies", _, "resolve"] => "/ops/anomalies/{id}/resolve",
        ["ops", "reconciliation", _] => "/ops/reconciliation/{date}",
        ["ops", "reconciliation", _, action] => match *action {
            "run" => "/ops/reconciliation/{date}/run",
            "resolve" => "/ops/reconciliation/{date}/resolve",
            "bill" => "/ops/reconciliation/{date}/bill",
            _ => "/ops/other",
        },
        ["ops", page] => match *page {
            "login" => "/ops/login",
            "logout" => "/ops/logout",
            "orders" => "/ops/orders",
            "orders.csv" => "/ops/orders.csv",
            "anomalies" => "/ops/anomalies",
            "audit" => "/ops/audit",
            "reconciliation" => "/ops/reconciliation",
            "language" => "/ops/language",
            _ => "/ops/other",
        },
        ["pkg", ..] => "/pkg/*",
        ["sandbox", ..] => "/sandbox/*",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::route_of;

    #[test]
    fn paths_map_to_a_bounded_set_of_routes() {
        assert_eq!(route_of("/checkout/SP123"), "/checkout/{id}");
        assert_eq!(route_of("/orders/SP1/paid"), "/orders/{id}/paid");
        assert_eq!(route_of("/ops/orders/SP1"), "/ops/orders/{id}");
        assert_eq!(
            route_of("/ops/orders/SP1/refund"),
            "/ops/orders/{id}/refund"
        );
        assert_eq!(route_of("/wp-admin/x.php"), "other");
        assert_eq!(route_of("/api/whatever"), "/api/other");
        assert_eq!(route_of("/"), "/");
    }
}
