//! The HTTP side: the router (pages, server functions, the notify endpoint, probes, operator
//! endpoints, the sandbox when mounted), its layers and the headers every answer carries.

pub mod assets;
mod console;
pub mod metrics;
pub mod notify;
pub mod notify_v3;
pub mod ops;
pub mod poll;
pub mod probes;
pub mod refund_notify;
mod whole;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::{shell, App};
use crate::server::state::AppState;
use crate::server::support::session::{self, SessionKeys};
use crate::server::wxpay;

pub fn router(state: AppState, sessions: Arc<SessionKeys>) -> Router {
    // Every role answers health and readiness; a worker serves nothing else.
    let probes = Router::new()
        .route("/healthz", get(probes::live))
        .route("/readyz", get(probes::ready))
        .route("/metrics", get(metrics::serve));
    if !state.ctx.settings.role.serves_web() {
        return probes
            .layer(axum::middleware::from_fn(metrics::count))
            .with_state(state);
    }
    let routes = generate_route_list(App);
    let pages: Router<AppState> = Router::new()
        .leptos_routes(&state, routes, {
            let options = (*state.leptos_options).clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn(whole::layer))
        .layer(axum::middleware::from_fn_with_state(
            state.ctx.clone(),
            poll::fast,
        ))
        .layer(axum::middleware::from_fn_with_state(
            sessions,
            session::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.ctx.settings.public_url.clone(),
            same_origin,
        ));
    let mut pages = pages;
    if state.ctx.settings.v2_notifies {
        pages = pages
            .route(
                "/wxpay/notify",
                post(notify::notify).layer(DefaultBodyLimit::max(wxpay::xml::MAX_BODY)),
            )
            .route(
                "/wxpay/refund-notify",
                post(refund_notify::refund_notify)
                    .layer(DefaultBodyLimit::max(wxpay::xml::MAX_BODY)),
            );
    } else {
        tracing::info!(
            "v2 notify endpoints not served: API v3 without a merchant v2 key \
             (SCANPAY_WXPAY_API_KEY) of its own"
        );
    }
    let mut app = pages
        .route(
            "/wxpay/v3/notify",
            post(notify_v3::notify_v3).layer(DefaultBodyLimit::max(notify_v3::MAX_BODY)),
        )
        .merge(probes)
        .merge(
            console::routes(state.clone()).layer(SetResponseHeaderLayer::overriding(
                axum::http::header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CONSOLE_CSP),
            )),
        );
    if let Some(sb) = &state.ctx.sandbox {
        app = app.merge(sb.mounted());
    }
    let policy = assets::AssetPolicy {
        pkg_prefix: format!("/{}/", state.leptos_options.site_pkg_dir),
        hashed: state.leptos_options.hash_files,
    };
    // Pages and server-function answers compressed on the fly (the front end's files come
    // precompressed from the build; an answer with a Content-Encoding is left as it is). Not
    // answers of a known size under 1 KB, the 3-second poll's among them: they fit one packet
    // as they are, so compressing them would only spend CPU (a choice, not a measured cost: the
    // poll's profile showed little of it, docs/BENCHMARKS.md).
    let compress = {
        use tower_http::compression::predicate::{NotForContentType, Predicate, SizeAbove};
        SizeAbove::new(COMPRESS_ABOVE)
            .and(NotForContentType::GRPC)
            .and(NotForContentType::IMAGES)
            .and(NotForContentType::SSE)
    };
    let app = app
        .layer(axum::middleware::from_fn_with_state(policy, assets::layer))
        .layer(tower_http::compression::CompressionLayer::new().compress_when(compress))
        .layer(axum::middleware::from_fn(metrics::count));
    with_security_headers(app.with_state(state))
}

/// Answers of a known size under this many bytes go uncompressed.
const COMPRESS_ABOVE: u16 = 1024;

/// The console's pages run no script at all (every action is a plain form), so they forbid
/// every script, and forms may go only to this site.
const CONSOLE_CSP: &str = "default-src 'self'; script-src 'none'; style-src 'self'; \
     img-src 'self' data:; connect-src 'none'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// Headers every answer carries unless a handler set its own: what the page may load and run
/// (Leptos hydrates with inline module scripts and WASM), that no other site may frame it, no
/// MIME sniffing, and no full URL (order ids) leaking to other sites in `Referer`.
fn with_security_headers(app: Router) -> Router {
    use axum::http::header::{
        CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
    };
    // Pages set their own, with the response's script nonce (`app::page_csp`); this is for
    // everything else, which runs no inline script at all.
    let csp = "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'";
    let header = |name, value: HeaderValue| SetResponseHeaderLayer::if_not_present(name, value);
    app.layer(header(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(csp),
    ))
    .layer(header(X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
    .layer(header(
        X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ))
    .layer(header(
        REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    ))
}

/// Refuses a browser request to a server function (`/api/…`) made from another site: its `Origin`
/// (or, without one, `Referer`) must name this site, as seen in `Host` or the public URL.
/// Requests with neither (non-browser clients) pass; they carry no shopper's cookie by accident.
pub async fn same_origin(
    State(public_url): State<String>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    if req.uri().path().starts_with("/api/") && req.method() != axum::http::Method::GET {
        let too_large = req
            .headers()
            .get(axum::http::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > SERVER_FN_BODY as u64);
        if too_large {
            return too_large_answer(req.headers());
        }
        let h = req.headers();
        let claimed = h
            .get(axum::http::header::ORIGIN)
            .or_else(|| h.get(axum::http::header::REFERER))
            .map(|v| v.to_str().ok().and_then(|s| reqwest::Url::parse(s).ok()));
        if let Some(claimed) = claimed {
            let host = h
                .get(axum::http::header::HOST)
                .and_then(|v| v.to_str().ok());
            if !claimed.is_some_and(|u| same_site(&u, host, &public_url)) {
                tracing::warn!(path = %req.uri().path(), "cross-site request to a server function refused");
                return (StatusCode::FORBIDDEN, "cross-site request refused").into_response();
            }
        }
    }
    // A body without a length (chunked) is read up to the limit here, so a server function
    // never reads more.
    if req.uri().path().starts_with("/api/") && req.method() != axum::http::Method::GET {
        let (parts, body) = req.into_parts();
        let Ok(bytes) = axum::body::to_bytes(body, SERVER_FN_BODY).await else {
            return too_large_answer(&parts.headers);
        };
        return next
            .run(axum::extract::Request::from_parts(
                parts,
                axum::body::Body::from(bytes),
            ))
            .await;
    }
    next.run(req).await
}

/// The most a server function's arguments may take (a cart of every product is under 2 KB).
pub(crate) const SERVER_FN_BODY: usize = 64 * 1024;

pub(crate) fn too_large_answer(headers: &axum::http::HeaderMap) -> Response {
    let lang = crate::app::i18n::from_headers(headers);
    let text = crate::app::i18n::console::t(lang, crate::app::i18n::console::OpsKey::err_too_large);
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        serde_json::json!({ "BadRequest": text }).to_string(),
    )
        .into_response()
}

pub(crate) fn same_site(claimed: &reqwest::Url, host: Option<&str>, public_url: &str) -> bool {
    let authority = |u: &reqwest::Url| {
        u.host_str()
            .map(|h| match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h.to_string(),
            })
            .map(|a| a.to_ascii_lowercase())
    };
    let Some(origin) = authority(claimed) else {
        return false;
    };
    host.is_some_and(|h| h.eq_ignore_ascii_case(&origin))
        || reqwest::Url::parse(public_url).is_ok_and(|p| {
            p.scheme() == claimed.scheme() && authority(&p).as_deref() == Some(origin.as_str())
        })
}
