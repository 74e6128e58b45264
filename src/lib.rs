//! scanpay: a WeChat Pay Native checkout. `app` is shared by the server render and the WASM
//! hydration; `server` exists only with the `ssr` feature.

pub mod app;
#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
}
