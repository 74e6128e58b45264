//! How answers may be cached and compressed. The front end's files carry a content hash in their
//! names (cargo-leptos `hash-files`), so a browser keeps them for a year without asking again; a
//! page or a server function's answer belongs to one shopper and is never stored by others.

use axum::extract::{Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;

/// Where the front end's files are served, and whether their names are content-hashed.
#[derive(Clone, Debug)]
pub struct AssetPolicy {
    /// `/pkg/`
    pub pkg_prefix: String,
    pub hashed: bool,
}

/// The `Cache-Control` an answer gets unless its handler chose one.
pub fn cache_control(path: &str, content_type: Option<&str>, policy: &AssetPolicy) -> &'static str {
    if path.starts_with(&policy.pkg_prefix) {
        return if policy.hashed {
            "public, max-age=31536000, immutable"
        } else {
            // Same name after a rebuild: keep it, but ask whether it changed.
            "public, no-cache"
        };
    }
    match content_type {
        Some(t) if t.starts_with("text/html") || t.starts_with("application/json") => {
            "private, no-store"
        }
        // favicon and the other files of `public/`: unhashed, so kept a day.
        Some(t) if t.starts_with("image/") || t.starts_with("text/css") => "public, max-age=86400",
        _ => "no-store",
    }
}

pub async fn layer(State(policy): State<AssetPolicy>, req: Request, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let mut res = next.run(req).await;
    if !res.headers().contains_key(CACHE_CONTROL) {
        let kind = res
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let value = cache_control(&path, kind, &policy);
        res.headers_mut()
            .insert(CACHE_CONTROL, HeaderValue::from_static(value));
    }
    res
}

/// Whether cargo-leptos built this binary's front end with hashed file names: it leaves
/// `hash.txt` beside the binary (what Leptos reads to name the files in the page).
pub fn hashed_build(hash_file: &str) -> bool {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join(hash_file)))
        .is_some_and(|p| p.is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashed_files_are_immutable_and_pages_are_private() {
        let hashed = AssetPolicy {
            pkg_prefix: "/pkg/".into(),
            hashed: true,
        };
        let plain = AssetPolicy {
            hashed: false,
            ..hashed.clone()
        };
        let wasm = "/pkg/scanpay.3f2a1b.wasm";
        assert_eq!(
            cache_control(wasm, Some("application/wasm"), &hashed),
            "public, max-age=31536000, immutable"
        );
        assert_eq!(
            cache_control(wasm, Some("application/wasm"), &plain),
            "public, no-cache"
        );
        assert_eq!(
            cache_control("/checkout/SP1", Some("text/html; charset=utf-8"), &hashed),
            "private, no-store"
        );
        assert_eq!(
            cache_control("/api/order_status", Some("application/json"), &hashed),
            "private, no-store"
        );
        assert_eq!(
            cache_control("/favicon.svg", Some("image/svg+xml"), &hashed),
            "public, max-age=86400"
        );
        assert_eq!(
            cache_control("/wxpay/notify", Some("text/xml"), &hashed),
            "no-store"
        );
    }
}
