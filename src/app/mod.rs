//! The shopper's pages. Compiled twice: into the server (render) and into WASM (hydrate).

pub mod api;
mod catalogue;
mod checkout;
mod orders;
mod result;
pub mod types;

use leptos::prelude::*;
use leptos_meta::{provide_meta_context, HashedStylesheet, MetaTags, Title};
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::{path, SsrMode};

pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
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
                    <A href="/orders" attr:data-testid="nav-orders">"My orders"</A>
                    <span class="secure">"WeChat Pay · Native"</span>
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

#[component]
pub fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(opts) = use_context::<leptos_axum::ResponseOptions>() {
        opts.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <section class="card narrow center" data-testid="not-found">
            <h1>"Not found"</h1>
            <p class="muted">"There is nothing here, or it belongs to someone else."</p>
            <A href="/" attr:class="button">"Back to the shop"</A>
        </section>
    }
}

/// `mm:ss` for a countdown.
pub fn mm_ss(ms: i64) -> String {
    let s = (ms.max(0) + 999) / 1000;
    format!("{:02}:{:02}", s / 60, s % 60)
}
