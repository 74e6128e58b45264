//! The operator console's pages: Leptos components rendered on the server to whole HTML pages
//! (`render`), with no islands and no script at all — every action is a plain form posting to
//! `http::console`, so nothing of the console enters the shopper's WASM bundle and its pages
//! can forbid every script. Server-only (`ssr`): the handlers in `http::console` load the data.

mod lists;
mod operators;
mod order;
mod orders;
mod pages;
mod recon;
mod twofactor;

pub use lists::{AnomaliesPage, AuditPage};
pub use operators::OperatorsPage;
pub use order::{OrderPage, OrderPageData};
pub use orders::{OrdersPageView, OrdersQuery};
pub use pages::{LoginPage, OverviewData, OverviewPage};
pub use recon::{ReconDayData, ReconDayPage, ReconListData, ReconListPage};
pub use twofactor::{TwoFactorPage, TwoFactorState};

use leptos::prelude::*;
use leptos_meta::HashedStylesheet;

use super::i18n::Lang;
use crate::server::domain::Role;

pub use super::i18n::console::{bad_arguments, t, t_with, OpsKey};

/// Who is signed in, as the pages show it.
#[derive(Debug, Clone)]
pub struct Me {
    pub name: String,
    pub role: Role,
}

/// Which console section a page belongs to (its tab is marked current).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Overview,
    Orders,
    Anomalies,
    Reconciliation,
    Audit,
    Operators,
    None,
}

/// A whole console page: `<html>` with the stylesheet, the top bar (sections, who is signed
/// in, sign out, the other language) and `body`.
pub fn render<V: IntoView + 'static>(
    options: &LeptosOptions,
    lang: Lang,
    title: &str,
    me: Option<&Me>,
    section: Section,
    body: impl FnOnce() -> V,
) -> String {
    let owner = Owner::new();
    let title = format!("{title} · scanpay");
    let me = me.cloned();
    let options = options.clone();
    let html = owner.with(move || {
        view! {
            <html lang=lang.code()>
                <head>
                    <meta charset="utf-8"/>
                    <meta name="viewport" content="width=device-width, initial-scale=1"/>
                    <meta name="referrer" content="same-origin"/>
                    <title>{title}</title>
                    <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                    <HashedStylesheet options=options id="leptos"/>
                </head>
                <body class="ops">
                    <a class="skip" href="#main">{t(lang, OpsKey::skip_to_content)}</a>
                    <TopBar lang=lang me=me section=section/>
                    <main class="page ops-page" id="main">{body()}</main>
                </body>
            </html>
        }
        .to_html()
    });
    format!("<!DOCTYPE html>{html}")
}

#[component]
fn TopBar(lang: Lang, me: Option<Me>, section: Section) -> impl IntoView {
    let tab = move |href: &'static str, s: Section, key: OpsKey| {
        let current = (s == section).then_some("page");
        view! { <a href=href aria-current=current>{t(lang, key)}</a> }
    };
    let other = lang.other();
    view! {
        <header class="topbar ops-bar">
            <a href="/ops" class="brand">
                <span class="logo" aria-hidden="true">"¥"</span>
                {t(lang, OpsKey::console_name)}
            </a>
            {me.map(|me| view! {
                <nav class="topnav" aria-label=t(lang, OpsKey::nav_label)>
                    {tab("/ops", Section::Overview, OpsKey::nav_overview)}
                    {tab("/ops/orders", Section::Orders, OpsKey::nav_orders)}
                    {tab("/ops/anomalies", Section::Anomalies, OpsKey::nav_anomalies)}
                    {tab("/ops/reconciliation", Section::Reconciliation, OpsKey::nav_recon)}
                    {tab("/ops/audit", Section::Audit, OpsKey::nav_audit)}
                    {(me.role == Role::Admin).then(|| tab("/ops/operators", Section::Operators, OpsKey::nav_operators))}
                </nav>
                <div class="whoami">
                    <a href="/ops/2fa" data-testid="ops-me" aria-label=t(lang, OpsKey::twofa_title)>{me.name.clone()}" · "{role_text(lang, me.role)}</a>
                    <form method="post" action="/ops/logout" class="inline">
                        <button type="submit" class="button small link" data-testid="ops-logout">{t(lang, OpsKey::sign_out)}</button>
                    </form>
                </div>
            })}
            <form method="post" action="/ops/language" class="inline">
                <input type="hidden" name="lang" value=other.code()/>
                <button type="submit" class="lang-switch" lang=other.code() data-testid="ops-lang">
                    {match other { Lang::En => "English", Lang::ZhCn => "中文" }}
                </button>
            </form>
        </header>
    }
}

pub fn role_text(lang: Lang, role: Role) -> &'static str {
    t(
        lang,
        match role {
            Role::Viewer => OpsKey::role_viewer,
            Role::Operator => OpsKey::role_operator,
            Role::Admin => OpsKey::role_admin,
        },
    )
}

/// `¥12.30` from fen.
pub fn yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let f = fen.abs();
    format!("{sign}¥{}.{:02}", f / 100, f % 100)
}

/// `2026-11-27 10:31:05` (Beijing time).
pub fn when(ms: i64) -> String {
    crate::server::support::clock::beijing_display(ms)
}

pub fn status_text(lang: Lang, s: crate::app::types::OrderStatus) -> &'static str {
    use crate::app::types::OrderStatus as S;
    t(
        lang,
        match s {
            S::Pending => OpsKey::status_pending,
            S::Closing => OpsKey::status_closing,
            S::Paid => OpsKey::status_paid,
            S::Closed => OpsKey::status_closed,
            S::Failed => OpsKey::status_failed,
        },
    )
}

/// A notice at the top of a page after a form (`?done=` / `?error=` in the redirect).
#[component]
pub fn Flash(lang: Lang, done: Option<String>, error: Option<String>) -> impl IntoView {
    view! {
        {done.map(|d| view! { <p class="notice ok" role="status" data-testid="ops-done">{flash_text(lang, &d)}</p> })}
        {error.map(|e| view! { <p class="notice error" role="alert" data-testid="ops-error">{flash_text(lang, &e)}</p> })}
    }
}

/// The redirect carries a key (`refund_requested`), with a number after a dot for the texts
/// that name one (`refused_over.1200`). Only the console's own texts are shown: a link cannot
/// put words of its own in a notice.
fn flash_text(lang: Lang, value: &str) -> String {
    let (key, n) = value.split_once('.').unwrap_or((value, ""));
    let n = if n.bytes().all(|b| b.is_ascii_digit()) {
        n
    } else {
        ""
    };
    let found = OpsKey::ALL
        .iter()
        .find(|k| k.name().strip_prefix("flash_") == Some(key))
        .copied()
        .unwrap_or(OpsKey::flash_refused_other);
    let shown = n.parse::<i64>().map(yuan).unwrap_or_default();
    t_with(lang, found, &[("n", n), ("amount", &shown)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_console_text_exists_in_both_languages() {
        for k in OpsKey::ALL {
            assert!(!t(Lang::En, *k).is_empty(), "{}", k.name());
            assert!(!t(Lang::ZhCn, *k).is_empty(), "{}", k.name());
        }
        assert_eq!(yuan(1230), "¥12.30");
        assert_eq!(yuan(-5), "-¥0.05");
    }
}
