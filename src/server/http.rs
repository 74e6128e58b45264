//! Plain HTTP endpoints: the pay-result notify, health and the operator views.
// An early-return `Response` is the idiomatic axum error here; its size does not matter.
#![allow(clippy::result_large_err)]

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use super::bus::PayResultBus;
use super::wxpay::notify::{self, NotifyError, REPLY_SUCCESS};
use super::wxpay::Merchant;
use super::Ctx;

fn xml(status: StatusCode, body: String) -> Response {
    (status, [(CONTENT_TYPE, "text/xml; charset=utf-8")], body).into_response()
}

/// `POST /wxpay/notify`: verify, hand off durably, then acknowledge. Anything short of a durable
/// hand-off answers FAIL so WeChat retries.
pub async fn notify(State(ctx): State<Arc<Ctx>>, body: Bytes) -> Response {
    let (status, reply) = handle_notify(&ctx.settings.merchant, &ctx.bus, &body).await;
    xml(status, reply)
}

/// The notify path without HTTP: verify → publish → the reply to send.
pub async fn handle_notify(
    merchant: &Merchant,
    bus: &PayResultBus,
    body: &[u8],
) -> (StatusCode, String) {
    let pay = match notify::parse_and_verify(body, merchant) {
        Ok(pay) => pay,
        // Verified, but not a payment: nothing to do, and nothing to retry.
        Err(NotifyError::PaymentFailed(code)) => {
            tracing::info!(err_code = %code, "notify for a failed payment acknowledged");
            return (StatusCode::OK, REPLY_SUCCESS.to_string());
        }
        Err(e) => {
            tracing::warn!(error = %e, "notify refused");
            return (StatusCode::BAD_REQUEST, notify::reply_fail(&e.to_string()));
        }
    };
    match bus.publish(&pay).await {
        Ok(()) => {
            tracing::info!(order_id = %pay.out_trade_no, transaction_id = %pay.transaction_id, "notify accepted");
            (StatusCode::OK, REPLY_SUCCESS.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, order_id = %pay.out_trade_no, "notify not handed off; WeChat will retry");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                notify::reply_fail("temporarily unavailable"),
            )
        }
    }
}

/// `GET /healthz`: the process is alive and serving (liveness: restart it if this fails).
pub async fn live() -> Response {
    (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
}

/// `GET /readyz`: each dependency by name (the database as its engine) and each worker this
/// process runs, with its state; 503 when any is down, naming which without internal detail
/// (that goes to the log).
pub async fn ready(State(ctx): State<Arc<Ctx>>) -> Response {
    let database = match ctx.store.ping().await {
        Ok(_) => "ok",
        Err(e) => {
            tracing::error!(error = %e, "readiness: the database does not answer");
            "unavailable"
        }
    };
    let mut deps = serde_json::Map::new();
    deps.insert(ctx.store.engine().into(), database.into());
    // Redis and RabbitMQ outages degrade scanpay without stopping it (polls and the sweep fall
    // back to SQL; notifies answer FAIL and WeChat retries), so they do not fail readiness.
    let mut degraded = false;
    if let Some(cache) = ctx.store.mirror() {
        let up = cache.ping().await.is_ok();
        degraded |= !up;
        deps.insert(
            "redis".into(),
            if up {
                "ok"
            } else {
                "unavailable: falling back to SQL"
            }
            .into(),
        );
    }
    let mut dead_letters = None;
    if let Some(rabbit) = &ctx.rabbit {
        let probe =
            tokio::time::timeout(std::time::Duration::from_secs(2), rabbit.dead_letters()).await;
        let up = match probe {
            Ok(Ok(n)) => {
                dead_letters = Some(n);
                true
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "readiness: RabbitMQ does not answer");
                false
            }
            Err(_) => false,
        };
        degraded |= !up;
        deps.insert(
            "rabbitmq".into(),
            if up {
                "ok"
            } else {
                "unavailable: notifies answer FAIL"
            }
            .into(),
        );
    }
    let ok = database == "ok" && ctx.workers.all_running();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let role = match ctx.settings.role {
        super::config::Role::Web => "web",
        super::config::Role::Worker => "worker",
        super::config::Role::All => "all",
    };
    let mut body = json!({
        "status": if ok && !degraded { "ok" } else { "degraded" },
        "role": role,
        "dependencies": deps,
        "workers": ctx.workers.states(),
    });
    if let Some(n) = dead_letters {
        // Messages past their delivery limit wait here for an operator.
        body["dead_letters"] = n.into();
    }
    (status, Json(body)).into_response()
}

/// Refuses a browser request to a server function (`/api/…`) made from another site: its `Origin`
/// (or, without one, `Referer`) must name this site, as seen in `Host` or the public URL.
/// Requests with neither (non-browser clients) pass; they carry no shopper's cookie by accident.
pub async fn same_origin(
    State(public_url): State<String>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.uri().path().starts_with("/api/") && req.method() != axum::http::Method::GET {
        let h = req.headers();
        let claimed = h
            .get(axum::http::header::ORIGIN)
            .or_else(|| h.get(axum::http::header::REFERER))
            .map(|v| v.to_str().ok().and_then(|s| reqwest::Url::parse(s).ok()));
        if let Some(claimed) = claimed {
            let host = h
                .get(axum::http::header::HOST)
                .and_then(|v| v.to_str().ok());
            if !claimed.is_some_and(|u| same_site(&u, host, &public_url)) {
                tracing::warn!(path = %req.uri().path(), "cross-site request to a server function refused");
                return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
            }
        }
    }
    next.run(req).await
}

fn same_site(claimed: &reqwest::Url, host: Option<&str>, public_url: &str) -> bool {
    let authority = |u: &reqwest::Url| {
        u.host_str()
            .map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
            .map(|a| a.to_ascii_lowercase())
    };
    let Some(origin) = authority(claimed) else {
        return false;
    };
    host.is_some_and(|h| h.eq_ignore_ascii_case(&origin))
        || reqwest::Url::parse(public_url).is_ok_and(|p| {
            p.scheme() == claimed.scheme() && authority(&p).as_deref() == Some(origin.as_str())
        })
}

/// Operator endpoints answer only with `Authorization: Bearer <SCANPAY_OPS_TOKEN>`.
fn authorized(ctx: &Ctx, headers: &HeaderMap) -> Result<(), Response> {
    use subtle::ConstantTimeEq;
    let Some(token) = &ctx.settings.ops_token else {
        return Err((
            StatusCode::NOT_FOUND,
            "operator endpoints are off: set SCANPAY_OPS_TOKEN",
        )
            .into_response());
    };
    let given = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if given.len() == token.expose().len()
        && bool::from(given.as_bytes().ct_eq(token.expose().as_bytes()))
    {
        Ok(())
    } else {
        Err((StatusCode::UNAUTHORIZED, "bad or missing bearer token").into_response())
    }
}

/// `GET /ops/anomalies`: payments that do not fit an order, newest first, with their evidence.
pub async fn anomalies(State(ctx): State<Arc<Ctx>>, headers: HeaderMap) -> Response {
    if let Err(r) = authorized(&ctx, &headers) {
        return r;
    }
    let rows = ctx.store.anomalies(500).await;
    match rows {
        Ok(rows) => Json(
            rows.into_iter()
                .map(|a| {
                    json!({
                        "id": a.id, "order_id": a.order_id, "transaction_id": a.transaction_id,
                        "kind": a.kind, "detail": a.detail, "at_ms": a.at,
                        "order_status": a.order_status,
                        // Parked: no automatic flow touches the order until an operator acts.
                        "parked_at_ms": a.parked_at,
                    })
                })
                .collect::<Vec<_>>(),
        )
        .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "ops: anomalies query failed");
            (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
        }
    }
}

/// `GET /ops/orders/{id}`: one order with its event timeline.
pub async fn order_timeline(
    State(ctx): State<Arc<Ctx>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(r) = authorized(&ctx, &headers) {
        return r;
    }
    let order = match ctx.store.load(&id).await {
        Ok(Some(o)) => o,
        Ok(None) => return (StatusCode::NOT_FOUND, "no such order").into_response(),
        Err(e) => {
            tracing::error!(error = %e, "ops: order query failed");
            return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response();
        }
    };
    let events = ctx.store.events(&id).await.unwrap_or_default();
    Json(json!({
        "id": order.id,
        "status": order.status.as_str(),
        "total_fee": order.total_fee,
        "created_at_ms": order.created_at,
        "deadline_at_ms": order.deadline_at,
        "transaction_id": order.transaction_id,
        "paid_at_ms": order.paid_at,
        "failure_reason": order.failure_reason.map(|r| r.as_str()),
        "parked": order.parked,
        "events": events.iter().map(|e| json!({"seq": e.seq, "at_ms": e.at, "kind": e.kind, "cause": e.cause, "detail": e.detail})).collect::<Vec<_>>(),
    }))
    .into_response()
}
