//! The reconciliation in the console: the days (`/ops/reconciliation`), one day with its
//! differences, every line as CSV, WeChat's bill as downloaded, and the forms that act — run a
//! day (in the background: a big day takes seconds) and resolve a difference with a reason.
//! Each action is audited. Scripts get JSON on the same paths (`http::ops`).

use std::collections::HashSet;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use leptos::prelude::*;

use super::auth::redirect;
use super::{acting, address_of, audit, form, lang_of, may, page, Flash, Signed};
use crate::app::i18n::Lang;
use crate::app::ops::{
    self, OpsKey, ReconDayData, ReconDayPage, ReconListData, ReconListPage, Section,
};
use crate::server::domain::recon::{BillDate, ReconLine};
use crate::server::domain::{Action, Audited};
use crate::server::orders::reconcile::{self, RunOutcome};
use crate::server::state::{AppState, Ctx};
use crate::server::support::clock::now_ms;

/// Days per page of the list.
const DAYS_PAGE: i64 = 31;
/// Differences shown on a day's page; the CSV has every line.
const DIFFS_SHOWN: i64 = 500;
pub(super) const AUDIT_RESOLVE: Audited = Audited::ReconResolve;
pub(super) const AUDIT_RUN: Audited = Audited::ReconRun;

pub(super) fn unavailable(e: sqlx::Error) -> Response {
    tracing::error!(error = %e, "console: reconciliation read failed");
    (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response()
}

/// Back to a page with a notice key (the keys are plain words: nothing to escape).
fn back(path: &str, key: &str, value: &str) -> Response {
    redirect(&format!("{path}?{key}={value}"))
}

/// A reason for the record: 1–512 characters, no control characters.
pub(crate) fn reason_ok(r: &str) -> bool {
    !r.is_empty() && r.chars().count() <= 512 && !r.chars().any(char::is_control)
}

/// A line's key as a form or a script sends it: bounded, printable.
pub(crate) fn key_ok(k: &str) -> bool {
    !k.is_empty() && k.len() <= 200 && !k.chars().any(char::is_control)
}

/// A day that may be run: a real day, today or before (Beijing time), within a year.
fn runnable(raw: &str) -> Option<BillDate> {
    BillDate::parse(raw)
        .ok()
        .filter(|d| d.runnable(now_ms()).is_ok())
}

/// A page that says what is wrong with the request, with `status`.
fn message(
    state: &AppState,
    lang: Lang,
    signed: &Signed,
    status: StatusCode,
    (title, body): (OpsKey, OpsKey),
    run: Option<String>,
) -> Response {
    let title = ops::t(lang, title);
    let html = page(
        state,
        lang,
        title,
        Some(&signed.me),
        Section::Reconciliation,
        move || {
            view! {
                <p><a href="/ops/reconciliation">{ops::t(lang, OpsKey::recon_back)}</a></p>
                <h1>{title}</h1>
                <p data-testid="recon-message">{ops::t(lang, body)}</p>
                {run.map(|action| view! {
                    <form method="post" action=action class="inline">
                        <button type="submit" class="button primary" data-testid="recon-run-day">{ops::t(lang, OpsKey::recon_run_submit)}</button>
                    </form>
                })}
            }
        },
    );
    (status, Html(html)).into_response()
}

/// 400 for a date in the URL that is no day: nothing looked up, nothing changed.
fn bad_date(state: &AppState, lang: Lang, signed: &Signed) -> Response {
    let keys = (OpsKey::recon_bad_date_title, OpsKey::recon_bad_date_body);
    message(state, lang, signed, StatusCode::BAD_REQUEST, keys, None)
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct ListQuery {
    before: String,
}

/// `GET /ops/reconciliation?before=<date>`: the days, newest first.
pub async fn list(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
    Query(q): Query<ListQuery>,
) -> Response {
    let lang = lang_of(&headers);
    let before = match q.before.trim() {
        "" => None,
        s => match BillDate::parse(s) {
            Ok(d) => Some(d),
            Err(_) => return bad_date(&state, lang, &signed),
        },
    };
    let days = state
        .ctx
        .store
        .recon_days(before.as_ref().map(BillDate::as_str), DAYS_PAGE + 1)
        .await;
    let mut days = match days {
        Ok(d) => d,
        Err(e) => return unavailable(e),
    };
    let next = if days.len() as i64 > DAYS_PAGE {
        days.truncate(DAYS_PAGE as usize);
        days.last().map(|d| d.bill_date.clone())
    } else {
        None
    };
    let today = BillDate::of_ms(now_ms());
    let (done, error) = flash.parts();
    let d = ReconListData {
        days,
        next,
        may_run: may(&signed, Action::QueryWechat),
        yesterday: today.prev().to_string(),
        today: today.to_string(),
        done,
        error,
    };
    let title = ops::t(lang, OpsKey::recon_title);
    Html(page(
        &state,
        lang,
        title,
        Some(&signed.me),
        Section::Reconciliation,
        move || view! { <ReconListPage lang=lang d=d/> },
    ))
    .into_response()
}

/// `GET /ops/reconciliation/{date}` (and `{date}.csv`: every line).
pub async fn day(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    headers: HeaderMap,
    Path(raw): Path<String>,
    Query(flash): Query<Flash>,
) -> Response {
    if let Some(date) = raw.strip_suffix(".csv") {
        return match BillDate::parse(date) {
            Ok(d) => super::recon_files::csv(state.ctx.store.clone(), d).await,
            Err(why) => (StatusCode::BAD_REQUEST, why).into_response(),
        };
    }
    let lang = lang_of(&headers);
    let Ok(date) = BillDate::parse(&raw) else {
        return bad_date(&state, lang, &signed);
    };
    let store = &state.ctx.store;
    let day = match store.recon_day(date.as_str()).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            let run = (may(&signed, Action::QueryWechat) && runnable(date.as_str()).is_some())
                .then(|| format!("/ops/reconciliation/{date}/run"));
            let keys = (OpsKey::recon_not_found_title, OpsKey::recon_not_found_body);
            return message(&state, lang, &signed, StatusCode::NOT_FOUND, keys, run);
        }
        Err(e) => return unavailable(e),
    };
    let loaded = async {
        let totals = store.recon_totals(date.as_str()).await?;
        let lines = store
            .recon_lines(date.as_str(), true, "", DIFFS_SHOWN + 1)
            .await?;
        let ids: Vec<String> = lines
            .iter()
            .map(|l| l.out_trade_no.clone())
            .filter(|id| !id.is_empty())
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let orders: HashSet<String> = store
            .recon_orders(&ids)
            .await?
            .into_iter()
            .map(|o| o.id)
            .collect();
        Ok::<_, sqlx::Error>((totals, lines, orders))
    };
    let (totals, mut lines, orders) = match loaded.await {
        Ok(x) => x,
        Err(e) => return unavailable(e),
    };
    let capped = (lines.len() as i64 > DIFFS_SHOWN).then(|| {
        lines.truncate(DIFFS_SHOWN as usize);
        lines.len()
    });
    let (done, error) = flash.parts();
    let d = ReconDayData {
        has_raw: day.raw_sha256.is_some(),
        day,
        totals,
        lines,
        capped,
        orders,
        may_act: may(&signed, Action::Resolve),
        done,
        error,
    };
    let title = ops::t_with(lang, OpsKey::recon_day_title, &[("date", date.as_str())]);
    Html(page(
        &state,
        lang,
        &title,
        Some(&signed.me),
        Section::Reconciliation,
        move || view! { <ReconDayPage lang=lang d=d/> },
    ))
    .into_response()
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct RunForm {
    date: String,
}

/// `POST /ops/reconciliation` (form `date`): "Reconcile a day".
pub async fn run_form(State(state): State<AppState>, req: Request) -> Response {
    let signed = match acting(&req, Action::QueryWechat) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (parts, body) = req.into_parts();
    let f: RunForm = match form(body, 1024).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(date) = runnable(&f.date) else {
        return back("/ops/reconciliation", "error", "bad_day");
    };
    start(&state, &signed, &address_of(&state, &parts), date).await
}

/// `POST /ops/reconciliation/{date}/run`: "Run again" (or the first run of a day not yet in
/// the table).
pub async fn run_again(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    req: Request,
) -> Response {
    let signed = match acting(&req, Action::QueryWechat) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(date) = runnable(&raw) else {
        return back("/ops/reconciliation", "error", "bad_day");
    };
    let address = address_of(&state, &req.into_parts().0);
    start(&state, &signed, &address, date).await
}

/// Audits the run, then starts it in the background (forced: it replaces the day's result) and
/// sends the operator to the day, which shows it waiting or running.
async fn start(state: &AppState, signed: &Signed, address: &str, date: BillDate) -> Response {
    let ctx = state.ctx.clone();
    let by = signed.me.name.clone();
    let page = format!("/ops/reconciliation/{date}");
    // The day's row first, so the page the operator lands on shows it waiting, not missing.
    if let Err(e) = ctx.store.recon_ensure_day(date.as_str(), now_ms()).await {
        tracing::error!(error = %e, "console: reconciliation day not recorded");
        return back("/ops/reconciliation", "error", "unavailable");
    }
    let detail = "reconciliation run (replaces the day's result)";
    audit(&ctx, &by, AUDIT_RUN, date.as_str(), address, "", detail).await;
    tokio::spawn(async move {
        match reconcile::run_day(&ctx, &date, &by, true).await {
            Ok(RunOutcome::Done(day)) => {
                tracing::info!(bill_date = date.as_str(), by = %by, open = day.open, "console: reconciliation run done")
            }
            Ok(other) => {
                tracing::warn!(bill_date = date.as_str(), by = %by, outcome = ?other, "console: reconciliation run did not finish")
            }
            Err(e) => {
                tracing::error!(bill_date = date.as_str(), by = %by, error = %e, "console: reconciliation run failed")
            }
        }
    });
    back(&page, "done", "recon_started")
}

#[derive(Debug, serde::Deserialize)]
pub struct ResolveForm {
    key: String,
    reason: String,
}

/// `POST /ops/reconciliation/{date}/resolve` (form `key`, `reason`): an open difference closed
/// with who and why; the money stays where it is.
pub async fn resolve(
    State(state): State<AppState>,
    Path(raw): Path<String>,
    req: Request,
) -> Response {
    let signed = match acting(&req, Action::Resolve) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Ok(date) = BillDate::parse(&raw) else {
        return (StatusCode::BAD_REQUEST, "not a day like 2026-11-30").into_response();
    };
    let page = format!("/ops/reconciliation/{date}");
    let (parts, body) = req.into_parts();
    let address = address_of(&state, &parts);
    let f: ResolveForm = match form(body, 16 * 1024).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let reason = f.reason.trim();
    if !key_ok(&f.key) {
        return (StatusCode::BAD_REQUEST, "bad line key").into_response();
    }
    if !reason_ok(reason) {
        return back(&page, "error", "bad_recon_reason");
    }
    let (ctx, name) = (&state.ctx, &signed.me.name);
    match resolve_line(ctx, &date, &f.key, name, &address, reason).await {
        Ok(Some(_)) => back(&page, "done", "recon_resolved"),
        Ok(None) => back(&page, "error", "recon_not_open"),
        Err(e) => {
            tracing::error!(error = %e, "console: difference not resolved");
            back(&page, "error", "unavailable")
        }
    }
}

/// Resolves an open difference and audits it (the console's form and the scripts' JSON alike):
/// the line as it was, or None when it is no open difference of the day.
pub(crate) async fn resolve_line(
    ctx: &Ctx,
    date: &BillDate,
    key: &str,
    actor: &str,
    address: &str,
    reason: &str,
) -> Result<Option<ReconLine>, sqlx::Error> {
    let Some(line) = ctx.store.recon_line(date.as_str(), key).await? else {
        return Ok(None);
    };
    if !ctx
        .store
        .recon_resolve(date.as_str(), key, actor, reason, now_ms())
        .await?
    {
        return Ok(None);
    }
    let subject = format!("{date} {key}");
    let detail = format!("reconciliation {}: {}", line.class.as_str(), line.note);
    audit(
        ctx,
        actor,
        AUDIT_RESOLVE,
        &subject,
        address,
        reason,
        &detail,
    )
    .await;
    Ok(Some(line))
}
