//! Sign-in and the overview.

use leptos::prelude::*;

use super::{t, t_with, when, yuan, OpsKey};
use crate::app::i18n::Lang;

/// `/ops/login`: a plain form. `next` is where the operator was going; `again` names the
/// operator asked for their password again (a refund wants it fresh).
#[component]
pub fn LoginPage(
    lang: Lang,
    next: String,
    error: Option<OpsKey>,
    again: Option<String>,
    /// The name as typed, kept after a failed attempt.
    #[prop(optional)]
    name: String,
) -> impl IntoView {
    view! {
        <section class="card narrow" data-testid="ops-login">
            <h1>{t(lang, if again.is_some() { OpsKey::login_again_title } else { OpsKey::login_title })}</h1>
            {again.is_some().then(|| view! { <p class="muted">{t(lang, OpsKey::login_again_body)}</p> })}
            {error.map(|e| view! { <p class="notice error" role="alert" data-testid="login-error">{t(lang, e)}</p> })}
            <form method="post" action="/ops/login" class="stack">
                <input type="hidden" name="next" value=next/>
                <label for="login-name">{t(lang, OpsKey::login_name)}</label>
                <input id="login-name" name="name" type="text" autocomplete="username" required
                    autocapitalize="none" spellcheck="false" maxlength="64"
                    value=again.clone().unwrap_or(name) readonly=again.is_some()/>
                <label for="login-password">{t(lang, OpsKey::login_password)}</label>
                <input id="login-password" name="password" type="password" autocomplete="current-password" required maxlength="1024"/>
                <label for="login-code">{t(lang, OpsKey::login_code_optional)}</label>
                <input id="login-code" name="code" type="text" inputmode="numeric" autocomplete="one-time-code" maxlength="12"/>
                <button type="submit" class="button primary" data-testid="login-submit">{t(lang, OpsKey::sign_in)}</button>
            </form>
        </section>
    }
}

/// What the overview shows (read by `http::console::overview`).
#[derive(Debug, Clone, Default)]
pub struct OverviewData {
    pub paid_today: i64,
    pub paid_today_fen: i64,
    pub placed_today: i64,
    /// Of today's orders, those paid (the success rate's numerator).
    pub placed_today_paid: i64,
    pub refunded_today_fen: i64,
    pub refunds_today: i64,
    pub unfinished: i64,
    pub oldest_unfinished_at: Option<i64>,
    pub anomalies_open: i64,
    /// Recent reconciled days with differences still open: (day, how many).
    pub recon_open: Vec<(String, i64)>,
    /// Per hour of the last 24 (oldest first): (hour start ms, placed, paid).
    pub hours: Vec<(i64, i64, i64)>,
    /// Each worker and what it is doing (from the readiness checks).
    pub workers: Vec<(String, bool, String)>,
    /// Dead-lettered pay results (RabbitMQ): how many, and what the first ones carry.
    pub dead_letters: Option<(u32, Vec<String>)>,
    /// The signed-in operator may requeue them (admin).
    pub may_requeue: bool,
    pub done: Option<String>,
    pub error: Option<String>,
}

#[component]
pub fn OverviewPage(lang: Lang, d: OverviewData) -> impl IntoView {
    let rate = if d.placed_today > 0 {
        format!(
            "{:.1}%",
            d.placed_today_paid as f64 * 100.0 / d.placed_today as f64
        )
    } else {
        "—".to_string()
    };
    let tile = move |key: OpsKey, value: String, id: &'static str| {
        view! {
            <div class="tile" data-testid=id>
                <div class="muted small">{t(lang, key)}</div>
                <div class="tile-value">{value}</div>
            </div>
        }
    };
    let oldest = d
        .oldest_unfinished_at
        .map(|at| t_with(lang, OpsKey::oldest_since, &[("when", &when(at))]));
    view! {
        <h1>{t(lang, OpsKey::overview_title)}</h1>
        <super::Flash lang=lang done=d.done.clone() error=d.error.clone()/>
        <p class="muted">{t(lang, OpsKey::overview_today)}</p>
        <div class="tiles">
            {tile(OpsKey::tile_paid, format!("{} · {}", d.paid_today, yuan(d.paid_today_fen)), "tile-paid")}
            {tile(OpsKey::tile_refunds, format!("{} · {}", d.refunds_today, yuan(d.refunded_today_fen)), "tile-refunds")}
            {tile(OpsKey::tile_rate, rate, "tile-rate")}
            {tile(OpsKey::tile_unfinished, d.unfinished.to_string(), "tile-unfinished")}
            {tile(OpsKey::tile_anomalies, d.anomalies_open.to_string(), "tile-anomalies")}
        </div>
        {oldest.map(|o| view! { <p class="muted small">{o}</p> })}
        {d.recon_open.iter().map(|(day, n)| view! {
            <p class="notice" data-testid="ops-recon-open">
                <a href=format!("/ops/reconciliation/{day}")>{t_with(lang, OpsKey::overview_recon, &[("date", day), ("n", &n.to_string())])}</a>
            </p>
        }).collect_view()}
        <section class="card">
            <h2>{t(lang, OpsKey::chart_title)}</h2>
            <Chart lang=lang hours=d.hours.clone()/>
        </section>
        {d.dead_letters.clone().map(|(n, bodies)| view! {
            <section class="card" data-testid="ops-dead-letters">
                <h2>{t(lang, OpsKey::dead_title)}</h2>
                <p data-testid="ops-dead-count">{t_with(lang, OpsKey::dead_count, &[("count", &n.to_string())])}</p>
                <ul class="plain mono small">
                    {bodies.into_iter().map(|b| view! { <li data-testid="ops-dead-letter">{b}</li> }).collect_view()}
                </ul>
                {(d.may_requeue && n > 0).then(|| view! {
                    <form method="post" action="/ops/dead-letters/requeue">
                        <button type="submit" class="button" data-testid="ops-requeue">{t(lang, OpsKey::dead_requeue)}</button>
                    </form>
                })}
            </section>
        })}
        <section class="card">
            <h2>{t(lang, OpsKey::workers_title)}</h2>
            <p class="muted small">{t(lang, OpsKey::workers_here)}</p>
            <table class="grid">
                <thead><tr><th scope="col">{t(lang, OpsKey::col_worker)}</th><th scope="col">{t(lang, OpsKey::col_state)}</th></tr></thead>
                <tbody>
                    {d.workers.into_iter().map(|(name, ok, detail)| view! {
                        <tr><td>{name}</td><td class=if ok { "ok" } else { "bad" }>{detail}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

/// Orders placed and paid per hour, as bars: an SVG drawn here (people would rather look than
/// read), with the numbers in a table beside it for screen readers.
#[component]
fn Chart(lang: Lang, hours: Vec<(i64, i64, i64)>) -> impl IntoView {
    let (w, h, pad) = (720.0_f64, 160.0_f64, 20.0_f64);
    let max = hours
        .iter()
        .map(|(_, p, q)| (*p).max(*q))
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let slot = (w - pad) / hours.len().max(1) as f64;
    let bars = hours
        .iter()
        .enumerate()
        .map(|(i, (_, placed, paid))| {
            let x = pad + i as f64 * slot;
            let ph = (*placed as f64 / max) * (h - pad);
            let qh = (*paid as f64 / max) * (h - pad);
            view! {
                <rect class="bar-placed" x=format!("{x:.1}") y=format!("{:.1}", h - pad - ph) width=format!("{:.1}", slot * 0.45) height=format!("{ph:.1}")/>
                <rect class="bar-paid" x=format!("{:.1}", x + slot * 0.45) y=format!("{:.1}", h - pad - qh) width=format!("{:.1}", slot * 0.45) height=format!("{qh:.1}")/>
            }
        })
        .collect_view();
    let labels = hours
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 4 == 0)
        .map(|(i, (at, _, _))| {
            let x = pad + i as f64 * slot;
            let hour = &when(*at)[11..13];
            view! { <text x=format!("{x:.1}") y=format!("{:.1}", h - 4.0) class="axis">{format!("{hour}:00")}</text> }
        })
        .collect_view();
    view! {
        <svg class="chart" viewBox=format!("0 0 {w} {h}") role="img" aria-label=t(lang, OpsKey::chart_label) data-testid="ops-chart">
            {bars}
            {labels}
        </svg>
        <p class="legend small"><span class="key placed"></span>{t(lang, OpsKey::chart_placed)}" "<span class="key paid"></span>{t(lang, OpsKey::chart_paid)}</p>
        <details>
            <summary>{t(lang, OpsKey::chart_as_table)}</summary>
            <table class="grid">
                <thead><tr><th scope="col">{t(lang, OpsKey::col_hour)}</th><th scope="col">{t(lang, OpsKey::chart_placed)}</th><th scope="col">{t(lang, OpsKey::chart_paid)}</th></tr></thead>
                <tbody>
                    {hours.into_iter().map(|(at, placed, paid)| view! {
                        <tr><td>{when(at)[..16].to_string()}</td><td>{placed}</td><td>{paid}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
        </details>
    }
}
