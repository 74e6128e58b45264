//! Health (`/healthz`: alive) and readiness (`/readyz`: each dependency and job by name).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use crate::server::state::Ctx;

/// `GET /healthz`: the process is alive and serving (liveness: restart it if this fails).
pub async fn live() -> Response {
    (StatusCode::OK, Json(json!({"status": "ok"}))).into_response()
}

/// `GET /readyz`: each dependency by name (the database as its engine) and each worker this
/// process runs, with its state (and, degraded but ready, Redis or RabbitMQ away); 503 when any is down, naming which without internal detail
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
    let (cache_up, dead) = tokio::join!(
        ctx.cache.health(),
        tokio::time::timeout(std::time::Duration::from_secs(2), ctx.bus.dead_letters())
    );
    if let Some(up) = cache_up {
        degraded |= !up;
        let state = if up {
            "ok"
        } else {
            "unavailable: falling back to SQL"
        };
        deps.insert("redis".into(), state.into());
    }
    let mut dead_letters = None;
    let probe = match dead {
        Ok(probe) => probe,
        Err(_) => Some(Err("no answer within 2 s".to_string())),
    };
    if let Some(probe) = probe {
        let up = match probe {
            Ok(n) => {
                dead_letters = Some(n);
                true
            }
            Err(e) => {
                tracing::error!(error = %e, "readiness: RabbitMQ does not answer");
                false
            }
        };
        degraded |= !up;
        let state = if up {
            "ok"
        } else {
            "unavailable: notifies answer FAIL"
        };
        deps.insert(ctx.bus.name().into(), state.into());
    }
    // A base URL that keeps answering what no WeChat Pay host answers (a 404 page, HTML) for a
    // reconciliation period is misconfigured: nothing can be paid or closed through it.
    let period = ctx.reconciliation_period().as_millis() as i64;
    let misdirected = ctx
        .wxpay
        .misdirected(period)
        .filter(|(since, _)| crate::server::support::clock::now_ms() - since >= period);
    let wechat = match &misdirected {
        Some((_, why)) => format!("misdirected: {why} from SCANPAY_WXPAY_BASE_URL, not WeChat Pay"),
        None => "ok".to_string(),
    };
    deps.insert("wechat".into(), wechat.into());
    let ok = database == "ok" && ctx.jobs.all_running() && misdirected.is_none();
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let role = match ctx.settings.role {
        crate::server::config::Role::Web => "web",
        crate::server::config::Role::Worker => "worker",
        crate::server::config::Role::All => "all",
    };
    let mut body = json!({
        "status": if ok && !degraded { "ok" } else { "degraded" },
        "role": role,
        "dependencies": deps,
        "workers": ctx.jobs.states(),
    });
    if let Some(n) = dead_letters {
        // Messages past their delivery limit wait here for an operator.
        body["dead_letters"] = n.into();
    }
    (status, Json(body)).into_response()
}
