//! The WASM floor for docs/BENCHMARKS.md: a minimal Leptos 0.8 router app (two routes, a signal,
//! a button), built as scanpay's front end is (wasm-release, wasm-bindgen, wasm-opt -Oz), with
//! and without leptos_i18n (feature `i18n`, scanpay's own locales/*.json) to measure what the
//! library adds.
use leptos::prelude::*;
use leptos_router::components::{Route, Router, Routes, A};
use leptos_router::path;

#[cfg(feature = "i18n")]
leptos_i18n::load_locales!();

#[component]
fn Home() -> impl IntoView {
    let n = RwSignal::new(0);
    #[cfg(feature = "i18n")]
    {
        use crate::i18n::*;
        let i18n = use_i18n();
        return view! {
            <h1>{t!(i18n, shop_intro)}</h1>
            <p>{t!(i18n, stock_left, count = move || n.get())}</p>
            <button on:click=move |_| { n.update(|n| *n += 1); i18n.set_locale(Locale::zh_CN) }>{t!(i18n, place_order)}</button>
            <A href="/b">{t!(i18n, nav_orders)}</A>
        }.into_any();
    }
    #[cfg(not(feature = "i18n"))]
    view! {
        <h1>"Choose your goods"</h1>
        <p>{move || format!("{} left", n.get())}</p>
        <button on:click=move |_| n.update(|n| *n += 1)>"Place order"</button>
        <A href="/b">"My orders"</A>
    }.into_any()
}

#[component]
pub fn App() -> impl IntoView {
    let routes = view! {
        <Router>
            <Routes fallback=|| "not found">
                <Route path=path!("/") view=Home/>
                <Route path=path!("/b") view=|| view! { <p>"b"</p> }/>
            </Routes>
        </Router>
    };
    #[cfg(feature = "i18n")]
    {
        use crate::i18n::I18nContextProvider;
        return view! { <I18nContextProvider>{routes}</I18nContextProvider> }.into_any();
    }
    #[cfg(not(feature = "i18n"))]
    routes.into_any()
}

#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    leptos::mount::hydrate_body(App);
}
