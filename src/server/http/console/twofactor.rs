//! The second factor's forms (`/ops/2fa…`) and its check at sign-in: a TOTP code (a step used
//! once) or one of the recovery codes (each used once). Secrets live in the database; recovery
//! codes only as their SHA-256.

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use leptos::prelude::*;
use sha2::{Digest, Sha256};

use super::auth::redirect;
use super::{address_of, audit, form, lang_of, page, Flash, Signed};
use crate::app::ops::{self, OpsKey, Section, TwoFactorPage, TwoFactorState};
use crate::server::domain::{Audited, OperatorRow};
use crate::server::state::{AppState, Ctx};
use crate::server::support::clock::now_ms;
use crate::server::support::{ids, totp};

pub(super) fn code_hash(code: &str) -> String {
    let normal: String = code.trim().to_ascii_lowercase().replace(['-', ' '], "");
    Sha256::digest(normal.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether `code` is this operator's second factor now (and uses it up). Operators without
/// one pass.
pub(super) async fn second_factor_ok(
    ctx: &Ctx,
    o: &OperatorRow,
    code: &str,
) -> Result<bool, sqlx::Error> {
    let Some(secret) = o.totp_secret.as_deref().and_then(totp::base32_decode) else {
        return Ok(true);
    };
    if let Some(step) = totp::verify(&secret, code, now_ms() / 1000, o.totp_last_step) {
        // Compare-and-set: of two sign-ins with the same code, one wins.
        return ctx.store.use_totp_step(&o.name, step).await;
    }
    let c = code.trim();
    if c.len() >= 10 && c.len() <= 12 {
        return ctx
            .store
            .use_recovery_code(&o.name, &code_hash(c), now_ms())
            .await;
    }
    Ok(false)
}

fn render(
    state: &AppState,
    signed: &Signed,
    headers: &HeaderMap,
    s: TwoFactorState,
    flash: Flash,
) -> Response {
    let lang = lang_of(headers);
    let title = ops::t(lang, OpsKey::twofa_title);
    let (done, error) = flash.parts();
    Html(page(
        state,
        lang,
        title,
        Some(&signed.me),
        Section::None,
        move || {
            view! { <TwoFactorPage lang=lang state=s done=done error=error/> }
        },
    ))
    .into_response()
}

async fn me(state: &AppState, signed: &Signed) -> Result<OperatorRow, Response> {
    match state.ctx.store.operator(&signed.me.name).await {
        Ok(Some(o)) => Ok(o),
        Ok(None) => Err(redirect("/ops/login")),
        Err(e) => {
            tracing::error!(error = %e, "console: operator not read");
            Err((StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response())
        }
    }
}

/// `GET /ops/2fa`.
pub async fn page_2fa(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Response {
    let o = match me(&state, &signed).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let s = match (&o.totp_secret, &o.totp_pending) {
        (Some(_), _) => TwoFactorState::On,
        (None, Some(pending)) => {
            let url = totp::otpauth_url("scanpay", &o.name, pending);
            TwoFactorState::Pending {
                qr_svg: crate::server::qr::svg(&url).unwrap_or_default(),
                secret: pending.clone(),
            }
        }
        (None, None) => TwoFactorState::Off,
    };
    render(&state, &signed, &headers, s, flash)
}

/// `POST /ops/2fa/start`: a new secret, pending until its first code confirms it.
pub async fn start(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
) -> Response {
    let secret = totp::base32(&totp::new_secret());
    match state
        .ctx
        .store
        .set_totp_pending(&signed.me.name, &secret)
        .await
    {
        Ok(_) => redirect("/ops/2fa"),
        Err(e) => {
            tracing::error!(error = %e, "console: second factor not started");
            redirect("/ops/2fa?error=unavailable")
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct CodeForm {
    code: String,
}

/// `POST /ops/2fa/enable`: the first code confirms the pending secret; the recovery codes are
/// shown this once.
pub async fn enable(State(state): State<AppState>, req: Request) -> Response {
    let Some(signed) = req.extensions().get::<Signed>().cloned() else {
        return redirect("/ops/login");
    };
    let (parts, body) = req.into_parts();
    let address = address_of(&state, &parts);
    let f: CodeForm = match form(body, 1024).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let o = match me(&state, &signed).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let Some(pending) = o.totp_pending.clone() else {
        return redirect("/ops/2fa");
    };
    let secret = totp::base32_decode(&pending).unwrap_or_default();
    let Some(step) = totp::verify(&secret, &f.code, now_ms() / 1000, None) else {
        return redirect("/ops/2fa?error=bad_code");
    };
    let recovery: Vec<String> = (0..10)
        .map(|_| {
            let c = ids::random_alnum(10).to_ascii_lowercase();
            format!("{}-{}", &c[..5], &c[5..])
        })
        .collect();
    let hashes: Vec<String> = recovery.iter().map(|c| code_hash(c)).collect();
    let ctx = &state.ctx;
    match ctx
        .store
        .enable_totp(&o.name, &pending, step, &hashes)
        .await
    {
        Ok(true) => {
            audit(
                ctx,
                &o.name,
                Audited::SecondFactorOn,
                &o.name,
                &address,
                "",
                "",
            )
            .await;
            render(
                &state,
                &signed,
                &parts.headers,
                TwoFactorState::JustOn { recovery },
                Flash::default(),
            )
        }
        Ok(false) => redirect("/ops/2fa"),
        Err(e) => {
            tracing::error!(error = %e, "console: second factor not enabled");
            redirect("/ops/2fa?error=unavailable")
        }
    }
}

/// `POST /ops/2fa/disable`: with a current code (or a recovery code).
pub async fn disable(State(state): State<AppState>, req: Request) -> Response {
    let Some(signed) = req.extensions().get::<Signed>().cloned() else {
        return redirect("/ops/login");
    };
    let (parts, body) = req.into_parts();
    let address = address_of(&state, &parts);
    let f: CodeForm = match form(body, 1024).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let o = match me(&state, &signed).await {
        Ok(o) => o,
        Err(r) => return r,
    };
    let ctx = &state.ctx;
    // Guesses count as failed sign-ins: five in the window lock the name (sign-in too).
    let since = now_ms() - crate::server::domain::SIGN_IN_WINDOW_MS;
    match ctx.store.sign_in_failures(&o.name, "", since).await {
        Ok((n, _)) if n >= crate::server::domain::SIGN_IN_FAILURES_PER_NAME => {
            return redirect("/ops/2fa?error=locked")
        }
        Ok(_) => {}
        Err(_) => return redirect("/ops/2fa?error=unavailable"),
    }
    match second_factor_ok(ctx, &o, &f.code).await {
        Ok(true) if o.totp_secret.is_some() => {}
        Ok(_) => {
            audit(
                ctx,
                &o.name,
                Audited::SignInFailed,
                &o.name,
                &address,
                "",
                "second factor: a wrong code to turn it off",
            )
            .await;
            return redirect("/ops/2fa?error=bad_code");
        }
        Err(_) => return redirect("/ops/2fa?error=unavailable"),
    }
    match ctx.store.disable_totp(&o.name).await {
        Ok(_) => {
            audit(
                ctx,
                &o.name,
                Audited::SecondFactorOff,
                &o.name,
                &address,
                "",
                "",
            )
            .await;
            redirect("/ops/2fa?done=twofa_off")
        }
        Err(_) => redirect("/ops/2fa?error=unavailable"),
    }
}
