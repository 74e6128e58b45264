//! The operator console over HTTP: its routes, the gate every page passes (`auth`), the pages
//! (`pages`: load, then render `app::ops`) and the forms that act (`actions`). A request with
//! `Authorization: Bearer …` goes to the JSON endpoints (`http::ops`) instead, on the same
//! paths, for scripts.

mod actions;
mod admin;
mod auth;
mod pages;
mod recon;
mod recon_files;
mod twofactor;

use axum::extract::{Request, State};
use axum::handler::Handler;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::{from_fn_with_state, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use super::ops;
use crate::app::i18n::Lang;
use crate::app::ops::{Me, Section};
use crate::server::domain::{Action, AuditEntry, Audited, OpsSessionRow};
use crate::server::state::{AppState, Ctx};
use crate::server::support::clock::now_ms;

/// A request that passed the gate: who is signed in.
#[derive(Debug, Clone)]
pub struct Signed {
    pub me: Me,
    pub session: OpsSessionRow,
}

/// A page's notice after a form, as the redirect left it (`?done=…` / `?error=…`: keys of the
/// console's texts).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Flash {
    done: String,
    error: String,
}

impl Flash {
    fn done(&self) -> Option<String> {
        Some(self.done.clone()).filter(|s| !s.is_empty())
    }
    fn error(&self) -> Option<String> {
        Some(self.error.clone()).filter(|s| !s.is_empty())
    }
    fn parts(&self) -> (Option<String>, Option<String>) {
        (self.done(), self.error())
    }
}

pub fn routes(state: AppState) -> Router<AppState> {
    Router::new()
        .route("/ops", get(pages::overview))
        .route("/ops/login", get(auth::login_page).post(auth::login))
        .route("/ops/logout", post(auth::logout))
        .route("/ops/language", post(auth::language))
        .route("/ops/orders", get(pages::orders))
        .route("/ops/orders.csv", get(pages::orders_csv))
        .route("/ops/orders/{id}", get(order_route))
        .route("/ops/orders/{id}/refund", post(actions::refund))
        .route(
            "/ops/orders/{id}/refunds",
            post(refunds_route).layer(axum::extract::DefaultBodyLimit::max(4096)),
        )
        .route("/ops/orders/{id}/note", post(actions::note))
        .route("/ops/orders/{id}/query", post(actions::query))
        .route("/ops/anomalies", get(anomalies_route))
        .route("/ops/anomalies/{id}/resolve", post(actions::resolve))
        .route("/ops/anomalies/{id}/refund", post(actions::refund_anomaly))
        .route(
            "/ops/reconciliation",
            get(recon_list_route).post(recon::run_form),
        )
        .route("/ops/reconciliation/{date}", get(recon_day_route))
        .route("/ops/reconciliation/{date}/run", post(recon::run_again))
        .route(
            "/ops/reconciliation/{date}/resolve",
            post(recon_resolve_route).layer(axum::extract::DefaultBodyLimit::max(16 * 1024)),
        )
        .route("/ops/reconciliation/{date}/bill", get(recon_files::bill))
        .route("/ops/audit", get(pages::audit))
        .route("/ops/2fa", get(twofactor::page_2fa))
        .route("/ops/2fa/start", post(twofactor::start))
        .route("/ops/2fa/enable", post(twofactor::enable))
        .route("/ops/2fa/disable", post(twofactor::disable))
        .route("/ops/dead-letters/requeue", post(admin::requeue))
        .route("/ops/operators", get(admin::operators).post(admin::add))
        .route("/ops/operators/{name}/role", post(admin::set_role))
        .route("/ops/operators/{name}/disable", post(admin::disable))
        .layer(from_fn_with_state(state.clone(), auth::gate))
        .layer(from_fn_with_state(state, same_site_forms))
}

/// A path only scripts use (no console page posts there): the bearer token decides, so neither
/// the sign-in gate nor the form check stands in front of its 401.
pub(super) fn json_only(path: &str) -> bool {
    let p: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    matches!(p.as_slice(), ["ops", "orders", _, "refunds"])
}

/// A script's request to a JSON endpoint: it carries the ops token (checked by `http::ops`),
/// no console cookie. Any other console path wants a session, token or not.
pub(super) fn bearer(req: &Request) -> bool {
    let p: Vec<&str> = req
        .uri()
        .path()
        .trim_start_matches('/')
        .split('/')
        .collect();
    let json_path = matches!(
        p.as_slice(),
        ["ops", "anomalies"]
            | ["ops", "orders", _]
            | ["ops", "orders", _, "refunds"]
            | ["ops", "reconciliation"]
            | ["ops", "reconciliation", _]
            | ["ops", "reconciliation", _, "resolve"]
    );
    json_path
        && req
            .headers()
            .contains_key(axum::http::header::AUTHORIZATION)
}

// Scripts (a bearer token) get the JSON endpoints; browsers the console, on the same paths.
async fn order_route(State(state): State<AppState>, req: Request) -> Response {
    if bearer(&req) {
        ops::order_timeline.call(req, state).await
    } else {
        pages::order.call(req, state).await
    }
}

async fn anomalies_route(State(state): State<AppState>, req: Request) -> Response {
    if bearer(&req) {
        ops::anomalies.call(req, state).await
    } else {
        pages::anomalies.call(req, state).await
    }
}

async fn recon_list_route(State(state): State<AppState>, req: Request) -> Response {
    if bearer(&req) {
        ops::recon_days.call(req, state).await
    } else {
        recon::list.call(req, state).await
    }
}

async fn recon_day_route(State(state): State<AppState>, req: Request) -> Response {
    if bearer(&req) {
        ops::recon_day.call(req, state).await
    } else {
        recon::day.call(req, state).await
    }
}

async fn recon_resolve_route(State(state): State<AppState>, req: Request) -> Response {
    if bearer(&req) {
        ops::recon_resolve.call(req, state).await
    } else {
        recon::resolve.call(req, state).await
    }
}

pub(super) use recon::{
    key_ok as recon_key_ok, reason_ok as recon_reason_ok, resolve_line as recon_resolve_line,
};
/// For `http::ops`: the day's CSV (scripts may fetch it with the token) and resolving a line.
pub(super) use recon_files::csv as recon_csv;

async fn refunds_route(State(state): State<AppState>, req: Request) -> Response {
    if bearer(&req) {
        ops::refund.call(req, state).await
    } else {
        bearer_only().await
    }
}

async fn bearer_only() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        "this endpoint takes Authorization: Bearer <SCANPAY_OPS_TOKEN>; the console's refund form posts to /ops/orders/<id>/refund",
    )
        .into_response()
}

/// Cross-site request forgery: besides the SameSite=Strict cookie, a console form must come
/// from a console page — its `Origin` (or `Referer`) present and this site's.
async fn same_site_forms(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if req.method() == axum::http::Method::POST && !bearer(&req) && !json_only(req.uri().path()) {
        let h = req.headers();
        let claimed = h
            .get(axum::http::header::ORIGIN)
            .or_else(|| h.get(axum::http::header::REFERER))
            .and_then(|v| v.to_str().ok())
            .and_then(|s| reqwest::Url::parse(s).ok());
        let host = h
            .get(axum::http::header::HOST)
            .and_then(|v| v.to_str().ok());
        let ok =
            claimed.is_some_and(|u| super::same_site(&u, host, &state.ctx.settings.public_url));
        if !ok {
            tracing::warn!(path = %req.uri().path(), "console: a form from another site (or none) refused");
            return (StatusCode::FORBIDDEN, "cross-site form refused").into_response();
        }
    }
    next.run(req).await
}

/// The page's language: the `lang` cookie, else `Accept-Language`.
fn lang_of(headers: &HeaderMap) -> Lang {
    crate::app::i18n::from_headers(headers)
}

/// The caller's address for the audit log and the sign-in limit.
fn address_of(state: &AppState, parts: &Parts) -> String {
    crate::server::support::limits::client_ip(parts, state.ctx.settings.client_ip_header.as_ref())
        .map(|ip| ip.to_string())
        .unwrap_or_default()
}

fn page<V: leptos::prelude::IntoView + 'static>(
    state: &AppState,
    lang: Lang,
    title: &str,
    me: Option<&Me>,
    section: Section,
    body: impl FnOnce() -> V,
) -> String {
    crate::app::ops::render(&state.leptos_options, lang, title, me, section, body)
}

/// Writes one line of the audit log; a failure is logged loudly (the action itself has
/// happened, and saying otherwise would be worse).
pub(super) async fn audit(
    ctx: &Ctx,
    actor: &str,
    action: Audited,
    subject: &str,
    address: &str,
    reason: &str,
    detail: &str,
) {
    // Each value cut to its column (characters, as every engine counts them).
    let cut = |s: &str, n: usize| s.chars().take(n).collect::<String>();
    let (actor, subject, address, reason, detail) = (
        cut(actor, 64),
        cut(subject, 128),
        cut(address, 64),
        cut(reason, 512),
        cut(detail, 1024),
    );
    let e = AuditEntry {
        actor: &actor,
        action,
        subject: &subject,
        address: &address,
        reason: &reason,
        detail: &detail,
    };
    if let Err(err) = ctx.store.audit(&e, now_ms()).await {
        tracing::error!(error = %err, actor = %actor, action = action.as_str(), subject = %subject, "AUDIT LOG NOT WRITTEN");
    }
}

/// An `application/x-www-form-urlencoded` body of at most `limit` bytes: 413 beyond it, 400
/// with serde's reason when it does not parse.
async fn form<T: serde::de::DeserializeOwned>(
    body: axum::body::Body,
    limit: usize,
) -> Result<T, Response> {
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| (StatusCode::PAYLOAD_TOO_LARGE, "form too large").into_response())?;
    serde_urlencoded_parse(&bytes)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("bad form: {e}")).into_response())
}

fn serde_urlencoded_parse<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, String> {
    serde_urlencoded::from_bytes(bytes).map_err(|e| e.to_string())
}

/// Who acts, if the role allows `action`: the sign-in page for a request without a session
/// (the gate lets none through; this is its seam), 403 saying which role it needs otherwise.
// An early-return `Response` is the idiomatic axum error here; its size does not matter.
#[allow(clippy::result_large_err)]
fn acting(req: &Request, action: Action) -> Result<Signed, Response> {
    let Some(signed) = req.extensions().get::<Signed>().cloned() else {
        return Err(auth::redirect("/ops/login"));
    };
    if !may(&signed, action) {
        let why = format!(
            "{} may not do this (it needs the {} role)",
            signed.me.role.as_str(),
            action.needs().as_str()
        );
        return Err((StatusCode::FORBIDDEN, why).into_response());
    }
    Ok(signed)
}

/// Whether the signed-in operator's role allows `action`.
fn may(signed: &Signed, action: Action) -> bool {
    signed.me.role.may(action)
}
