//! Console sign-in: sessions kept in SQL (shared by every web process), the cookie, the gate in
//! front of every console page, and the sign-in / sign-out / language forms. Plain axum form
//! handlers, not server functions: a sign-in sets a cookie and redirects, nothing more.
//!
//! Verify → guard → act: a sign-in parses the name, counts recent failures (the limit per name
//! and per address, from the audit log), verifies the password (a decoy hash for an unknown
//! name, so both take as long), then makes a new session (a new id every time: fixation-proof).

use axum::extract::{Query, Request, State};
use axum::http::header::{COOKIE, LOCATION, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{Html, IntoResponse, Response};
use leptos::prelude::*;
use sha2::{Digest, Sha256};

use super::{address_of, audit, lang_of, page, Signed};
use crate::app::ops::{self, LoginPage, Me, OpsKey, Section};
use crate::server::domain::{
    Audited, OperatorName, SIGN_IN_FAILURES_PER_ADDRESS, SIGN_IN_FAILURES_PER_NAME,
    SIGN_IN_WINDOW_MS,
};
use crate::server::state::AppState;
use crate::server::support::clock::now_ms;
use crate::server::support::ids::random_alnum;
use crate::server::support::password;

/// Password checks running at once, at most.
static HASHING: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

/// `__Host-` (only over https: the browser then insists on Secure, Path=/ and no Domain).
fn cookie_name(secure: bool) -> &'static str {
    if secure {
        "__Host-scanpay_ops"
    } else {
        "scanpay_ops"
    }
}

pub(super) fn secure(state: &AppState) -> bool {
    state.ctx.settings.public_url.starts_with("https://")
}

/// The stored form of a session id: its SHA-256, hex.
fn id_hash(id: &str) -> String {
    Sha256::digest(id.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn session_cookie(headers: &HeaderMap, secure: bool) -> Option<String> {
    let name = cookie_name(secure);
    headers
        .get_all(COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|c| {
            let (n, v) = c.trim().split_once('=')?;
            (n == name && v.len() == 43 && v.bytes().all(|b| b.is_ascii_alphanumeric()))
                .then(|| v.to_string())
        })
}

/// Where a sign-in may send the operator back to: a console path, nothing else (no open
/// redirect to another site through `next`).
pub(super) fn safe_next(next: &str) -> String {
    let ok = next.starts_with("/ops")
        && !next.starts_with("/ops/login")
        && !next.contains("//")
        && !next.contains('\\')
        && next.bytes().all(|b| b.is_ascii_graphic());
    if ok {
        next.to_string()
    } else {
        "/ops".to_string()
    }
}

pub(super) fn redirect(to: &str) -> Response {
    let mut r = StatusCode::SEE_OTHER.into_response();
    if let Ok(v) = HeaderValue::from_str(to) {
        r.headers_mut().insert(LOCATION, v);
    }
    r
}

/// The gate: every console page and action needs a live session; an anonymous one is sent to
/// sign in and comes back to where it was going. Puts [`Signed`] in the request's extensions.
pub async fn gate(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let open = matches!(path, "/ops/login" | "/ops/language");
    // A script's bearer token is checked by the JSON endpoints themselves.
    if !path.starts_with("/ops") || open || super::bearer(&req) || super::json_only(path) {
        return next.run(req).await;
    }
    let secure = secure(&state);
    let now = now_ms();
    let idle = state.ctx.settings.console.idle_timeout.as_millis() as i64;
    let found = match session_cookie(req.headers(), secure) {
        None => None,
        Some(id) => {
            let hash = id_hash(&id);
            match state.ctx.store.ops_session(&hash).await {
                Ok(s) => s.filter(|s| s.alive(now, idle)).map(|s| (hash, s)),
                Err(e) => {
                    tracing::error!(error = %e, "console: session lookup failed");
                    return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable")
                        .into_response();
                }
            }
        }
    };
    let Some((hash, session)) = found else {
        // A script (no HTML wanted) gets a plain 401; a browser is sent to sign in.
        let wants_page = req
            .headers()
            .get(axum::http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.contains("text/html"));
        if !wants_page {
            return (
                StatusCode::UNAUTHORIZED,
                "sign in at /ops/login, or send Authorization: Bearer <SCANPAY_OPS_TOKEN>",
            )
                .into_response();
        }
        let target = req
            .uri()
            .path_and_query()
            .map(|p| p.as_str().to_string())
            .unwrap_or_default();
        let next = if req.method() == axum::http::Method::GET {
            safe_next(&target)
        } else {
            "/ops".into()
        };
        let q = percent_encoding::utf8_percent_encode(&next, percent_encoding::NON_ALPHANUMERIC);
        return redirect(&format!("/ops/login?next={q}"));
    };
    // Written at most once a minute: the idle time-out is minutes long.
    if now - session.seen_at > 60_000 {
        if let Err(e) = state.ctx.store.touch_ops_session(&hash, now, false).await {
            tracing::warn!(error = %e, "console: session not touched");
        }
    }
    req.extensions_mut().insert(Signed {
        me: Me {
            name: session.operator.clone(),
            role: session.role,
        },
        session,
    });
    next.run(req).await
}

#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct LoginQuery {
    next: String,
    again: String,
}

/// `GET /ops/login`.
pub async fn login_page(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<LoginQuery>,
) -> Response {
    let lang = lang_of(&headers);
    let again = OperatorName::parse(&q.again).ok().map(|n| n.to_string());
    login_form(
        &state,
        lang,
        safe_next(&q.next),
        None,
        again,
        String::new(),
        StatusCode::OK,
    )
}

fn login_form(
    state: &AppState,
    lang: crate::app::i18n::Lang,
    next: String,
    error: Option<OpsKey>,
    again: Option<String>,
    name: String,
    status: StatusCode,
) -> Response {
    let title = ops::t(lang, OpsKey::sign_in);
    let body = page(
        state,
        lang,
        title,
        None,
        Section::None,
        move || view! { <LoginPage lang=lang next=next error=error again=again name=name/> },
    );
    (status, Html(body)).into_response()
}

#[derive(Debug, serde::Deserialize)]
pub struct LoginForm {
    name: String,
    password: String,
    #[serde(default)]
    next: String,
    /// The authenticator's code (or a recovery code), for operators with a second factor.
    #[serde(default)]
    code: String,
}

/// `POST /ops/login`.
pub async fn login(State(state): State<AppState>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let lang = lang_of(&parts.headers);
    let address = address_of(&state, &parts);
    let form: LoginForm = match super::form(body, 8 * 1024).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let next = safe_next(&form.next);
    let ctx = &state.ctx;
    // Held from the count of recent failures to the audit line of this attempt: parallel
    // attempts cannot all see the count below the limit (four at most overshoot it).
    let _turn = HASHING.acquire().await;
    let now = now_ms();
    let typed: String = form.name.chars().take(64).collect();
    let fail = |key: OpsKey, status: StatusCode| {
        login_form(
            &state,
            lang,
            next.clone(),
            Some(key),
            None,
            typed.clone(),
            status,
        )
    };
    // The name as typed (bounded) is what the limit counts, valid or not.
    let tried: String = form
        .name
        .trim()
        .to_ascii_lowercase()
        .chars()
        .take(64)
        .collect();
    let failures = ctx
        .store
        .sign_in_failures(&tried, &address, now - SIGN_IN_WINDOW_MS)
        .await;
    let (by_name, by_address) = match failures {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(error = %e, "console: sign-in limit not read");
            return fail(OpsKey::login_unavailable, StatusCode::SERVICE_UNAVAILABLE);
        }
    };
    let locked = by_name >= SIGN_IN_FAILURES_PER_NAME || by_address >= SIGN_IN_FAILURES_PER_ADDRESS;
    let operator = match OperatorName::parse(&form.name) {
        Ok(n) if !locked => ctx.store.operator(n.as_str()).await.unwrap_or_else(|e| {
            tracing::error!(error = %e, "console: operator not read");
            None
        }),
        _ => None,
    };
    // Locked: answered at once, nothing hashed (the answer says only what 429 says anyway).
    // Otherwise an argon2 check (19 MiB for ~20 ms), at most four at a time (`HASHING`): a
    // flood of sign-ins waits its turn instead of exhausting memory.
    let verified = if locked {
        false
    } else {
        let phc = operator
            .as_ref()
            .filter(|o| o.disabled_at.is_none())
            .map(|o| o.password_hash.clone())
            .unwrap_or_else(|| password::decoy().to_string());
        let pw = form.password.clone();
        tokio::task::spawn_blocking(move || password::verify(&pw, &phc))
            .await
            .unwrap_or(false)
    };
    let operator = operator.filter(|o| verified && o.disabled_at.is_none() && !locked);
    // The second factor, for an operator who has one: a wrong or missing code is a failed
    // sign-in like a wrong password (the same answer, counted the same).
    let second = match &operator {
        Some(o) => super::twofactor::second_factor_ok(ctx, o, &form.code)
            .await
            .unwrap_or(false),
        None => false,
    };
    let operator = operator.filter(|_| second);
    let Some(operator) = operator else {
        // A name that is no name (often a password typed in the wrong field) is not written down.
        let actor = OperatorName::parse(&form.name)
            .map(|n| n.to_string())
            .unwrap_or_else(|_| "(not a name)".into());
        // A locked attempt is recorded, but not as a failure: it does not extend the lock.
        let action = if locked {
            Audited::SignInLocked
        } else {
            Audited::SignInFailed
        };
        audit(ctx, &actor, action, "", &address, "", "").await;
        let (key, status) = if locked {
            (OpsKey::login_locked, StatusCode::TOO_MANY_REQUESTS)
        } else {
            (OpsKey::login_failed, StatusCode::UNAUTHORIZED)
        };
        return fail(key, status);
    };
    // A new id at every sign-in; the session the browser came with (if any) ends.
    let secure = secure(&state);
    if let Some(old) = session_cookie(&parts.headers, secure) {
        let _ = ctx.store.end_ops_session(&id_hash(&old)).await;
    }
    // Sessions past their time-outs go now and then (any sign-in sweeps them).
    let idle = ctx.settings.console.idle_timeout.as_millis() as i64;
    if let Err(e) = ctx.store.purge_ops_sessions(now, now - idle).await {
        tracing::warn!(error = %e, "console: old sessions not purged");
    }
    let id = random_alnum(43);
    let lifetime = ctx.settings.console.session_lifetime.as_millis() as i64;
    let created = ctx
        .store
        .create_ops_session(&id_hash(&id), &operator.name, now, now + lifetime, &address)
        .await;
    if let Err(e) = created {
        tracing::error!(error = %e, "console: session not written");
        return fail(OpsKey::login_unavailable, StatusCode::SERVICE_UNAVAILABLE);
    }
    audit(
        ctx,
        &operator.name,
        Audited::SignIn,
        "",
        &address,
        "",
        operator.role.as_str(),
    )
    .await;
    let mut resp = redirect(&next);
    let cookie = format!(
        "{}={id}; Path=/; HttpOnly; SameSite=Strict{}",
        cookie_name(secure),
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    resp
}

/// `POST /ops/logout`: the session ends here and in the database.
pub async fn logout(State(state): State<AppState>, req: Request) -> Response {
    let secure = secure(&state);
    let (parts, _) = req.into_parts();
    if let Some(signed) = parts.extensions.get::<Signed>() {
        let address = address_of(&state, &parts);
        audit(
            &state.ctx,
            &signed.me.name,
            Audited::SignOut,
            "",
            &address,
            "",
            "",
        )
        .await;
    }
    end_session(&state, &parts.headers).await;
    let mut resp = redirect("/ops/login");
    let clear = format!(
        "{}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}",
        cookie_name(secure),
        if secure { "; Secure" } else { "" }
    );
    if let Ok(v) = HeaderValue::from_str(&clear) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    resp
}

/// Ends the session behind this request's cookie (sign-out).
pub(super) async fn end_session(state: &AppState, headers: &HeaderMap) {
    if let Some(id) = session_cookie(headers, secure(state)) {
        if let Err(e) = state.ctx.store.end_ops_session(&id_hash(&id)).await {
            tracing::warn!(error = %e, "console: session not ended");
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct LangForm {
    lang: String,
}

/// `POST /ops/language`: remembers the choice in the shopper's `lang` cookie, back to the page.
pub async fn language(req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let form: LangForm = match super::form(body, 1024).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Some(lang) = crate::app::i18n::Lang::parse(&form.lang) else {
        return (StatusCode::BAD_REQUEST, "lang: en or zh-CN").into_response();
    };
    let back = parts
        .headers
        .get(axum::http::header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| reqwest::Url::parse(r).ok())
        .map(|u| match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        })
        .map(|p| {
            if p.starts_with("/ops/login") {
                p
            } else {
                safe_next(&p)
            }
        })
        .unwrap_or_else(|| "/ops".into());
    let mut resp = redirect(&back);
    let cookie = format!(
        "{}={}; Path=/; SameSite=Lax; Max-Age=31536000",
        crate::app::i18n::COOKIE,
        lang.code()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().append(SET_COOKIE, v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_in_the_console() {
        assert_eq!(safe_next("/ops/orders?q=SP1"), "/ops/orders?q=SP1");
        for bad in [
            "https://evil.example/",
            "//evil.example",
            "/ops//evil",
            "/",
            "/ops/login",
            "/ops\\x",
            "/ops/a b",
        ] {
            assert_eq!(safe_next(bad), "/ops", "{bad}");
        }
        assert_eq!(id_hash("a").len(), 64);
    }
}
