//! The shopper's pages, rendered on the server. Only the interactive parts are islands
//! (`#[island]`): they alone are compiled into the WASM and hydrated in the browser, which keeps
//! the bundle small (docs/BENCHMARKS.md). Links between pages are plain page loads.

pub mod api;
mod catalogue;
mod checkout;
pub mod i18n;
#[cfg(feature = "ssr")]
pub mod ops;
mod orders;
mod result;
pub mod types;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{path, SsrMode};

use i18n::{use_i18n, I18n, Key};

pub fn shell(options: LeptosOptions) -> impl IntoView {
    #[cfg(feature = "ssr")]
    page_csp(&options);
    // The hydrating page reads its language back from here (i18n::initial_lang).
    let lang = i18n::initial_lang().code();
    view! {
        <!DOCTYPE html>
        <html lang=lang>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <meta name="theme-color" content="#07c160"/>
                <link rel="icon" type="image/svg+xml" href="/favicon.svg"/>
                <HashedStylesheet options=options.clone() id="leptos"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options islands=true/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The page's Content-Security-Policy: inline scripts only with this response's nonce (Leptos
/// puts it on its hydration and island scripts), WASM from this site, and the development
/// reload socket only under `cargo leptos watch` (which sets `LEPTOS_WATCH`).
#[cfg(feature = "ssr")]
fn page_csp(options: &LeptosOptions) {
    leptos::nonce::provide_nonce();
    let (Some(nonce), Some(resp)) = (
        leptos::nonce::use_nonce(),
        use_context::<leptos_axum::ResponseOptions>(),
    ) else {
        return;
    };
    let reload = if std::env::var_os("LEPTOS_WATCH").is_some() {
        format!(" ws://{}:{}", options.site_addr.ip(), options.reload_port)
    } else {
        String::new()
    };
    let csp = format!(
        "default-src 'self'; script-src 'self' 'nonce-{}' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'{reload}; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
        &*nonce
    );
    if let Ok(v) = axum::http::HeaderValue::from_str(&csp) {
        resp.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, v);
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let i18n = I18n(i18n::initial_lang());
    provide_context(i18n);
    let t = move |k| i18n.t(k);
    view! {
        <Title text="scanpay"/>
        <Router>
            <header class="topbar">
                <A href="/" attr:class="brand">
                    <span class="logo" aria-hidden="true">"¥"</span>
                    "scanpay"
                </A>
                <nav class="topnav">
                    <A href="/orders" attr:data-testid="nav-orders">{t(Key::nav_orders)}</A>
                    <LanguageSwitch/>
                    <span class="secure">{t(Key::nav_secure)}</span>
                </nav>
            </header>
            <main class="page">
                <Routes fallback=NotFound>
                    <Route path=path!("/") view=catalogue::CataloguePage/>
                    <Route path=path!("/orders") view=orders::MyOrdersPage/>
                    <Route path=path!("/checkout/:id") view=checkout::CheckoutPage ssr=SsrMode::Async/>
                    <Route path=path!("/orders/:id/paid") view=result::PaidPage ssr=SsrMode::Async/>
                    <Route path=path!("/orders/:id/failed") view=result::FailedPage ssr=SsrMode::Async/>
                </Routes>
            </main>
        </Router>
        <HydratedMark/>
    }
}

/// Tells tests (and curious people) when the page has become interactive. Islands hydrate in
/// document order, and this one comes last.
#[island]
fn HydratedMark() -> impl IntoView {
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
}

/// Offers the other language, named in that language. The choice is remembered in a cookie and
/// the page reloads in it: the server renders every text, so that is the one place to switch.
#[island]
fn LanguageSwitch() -> impl IntoView {
    let i18n = use_i18n();
    let remember = ServerAction::<api::SetLanguage>::new();
    Effect::new(move |_| {
        if let Some(Ok(())) = remember.value().get() {
            let _ = window().location().reload();
        }
    });
    let switch = move |_| {
        remember.dispatch(api::SetLanguage {
            lang: i18n.lang().other().code().to_string(),
        });
    };
    view! {
        <button
            class="lang-switch"
            data-testid="lang-switch"
            lang=i18n.lang().other().code()
            aria-label=i18n.t(Key::switch_label)
            disabled=move || remember.pending().get()
            on:click=switch
        >
            {i18n.t(Key::switch_to)}
        </button>
        {move || remember.value().get().and_then(|r| r.err()).map(|e| view! {
            <span class="error small" role="alert" data-testid="lang-error">{e.text(i18n.lang())}</span>
        })}
    }
}

/// Leaves the page for `path` (a full page load: every page is rendered by the server). With
/// `replace`, the page left is dropped from the history (the back button skips a finished checkout).
pub fn go_to(path: &str, replace: bool) {
    let location = window().location();
    let _ = if replace {
        location.replace(path)
    } else {
        location.set_href(path)
    };
}

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(opts) = use_context::<leptos_axum::ResponseOptions>() {
        opts.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    let i18n = use_i18n();
    view! {
        <section class="card narrow center" data-testid="not-found">
            <h1>{i18n.t(Key::not_found_title)}</h1>
            <p class="muted">{i18n.t(Key::not_found_body)}</p>
            <A href="/" attr:class="button">{i18n.t(Key::back_to_shop)}</A>
        </section>
    }
}

/// `mm:ss` for a countdown.
pub fn mm_ss(ms: i64) -> String {
    let s = (ms.max(0) + 999) / 1000;
    format!("{:02}:{:02}", s / 60, s % 60)
}
