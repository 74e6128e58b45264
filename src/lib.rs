//! scanpay: a WeChat Pay Native checkout. `app` is rendered by the server, and its islands are
//! hydrated in the browser; `server` exists only with the `ssr` feature.

pub mod app;
#[cfg(feature = "ssr")]
pub mod server;

#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    // Each island hydrates itself, called by Leptos' island script with its element.
    leptos::mount::hydrate_islands();
}
