//! The shopper's pages. Compiled twice: into the server (render) and into WASM (hydrate).

pub mod api;
mod catalogue;
mod checkout;
pub mod i18n;
mod orders;
mod result;
pub mod types;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{path, SsrMode};

use i18n::{use_i18n, I18n, Key};

pub fn shell(options: LeptosOptions) -> impl IntoView {
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
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    let i18n = I18n(RwSignal::new(i18n::initial_lang()));
    provide_context(i18n);
    let t = move |k| i18n.t(k);
    // Lets tests (and curious people) see when the page has become interactive.
    Effect::new(move |_| {
        if let Some(body) = document().body() {
            let _ = body.set_attribute("data-hydrated", "true");
        }
    });
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
    }
}

/// Offers the other language, named in that language; the choice applies at once and is
/// remembered in a cookie.
#[component]
fn LanguageSwitch() -> impl IntoView {
    let i18n = use_i18n();
    let remember = ServerAction::<api::SetLanguage>::new();
    let switch = move |_| {
        let next = i18n.lang().other();
        i18n.0.set(next);
        if let Some(html) = document().document_element() {
            let _ = html.set_attribute("lang", next.code());
        }
        remember.dispatch(api::SetLanguage {
            lang: next.code().to_string(),
        });
    };
    view! {
        <button
            class="lang-switch"
            data-testid="lang-switch"
            lang=move || i18n.lang().other().code()
            aria-label=i18n.t(Key::switch_label)
            on:click=switch
        >
            {i18n.t(Key::switch_to)}
        </button>
    }
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
