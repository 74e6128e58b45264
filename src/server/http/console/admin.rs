//! The admins' forms: operators added, given another role, disabled (their sessions end at once).
//! Each is audit-logged; bad input changes nothing.

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Extension;
use leptos::prelude::*;

use super::auth::redirect;
use super::{acting, address_of, audit, form, lang_of, may, page, Flash, Signed};
use crate::app::ops::{self, OperatorsPage, OpsKey, Section};
use crate::server::domain::{Action, Audited, OperatorName, Role};
use crate::server::state::AppState;
use crate::server::support::clock::now_ms;
use crate::server::support::password;

fn forbidden() -> Response {
    (StatusCode::FORBIDDEN, "only an admin manages operators").into_response()
}

fn back(key: &str, value: &str) -> Response {
    let v: String = value
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.~".contains(c) {
                c.to_string()
            } else {
                percent_encoding::utf8_percent_encode(
                    &c.to_string(),
                    percent_encoding::NON_ALPHANUMERIC,
                )
                .to_string()
            }
        })
        .collect();
    redirect(&format!("/ops/operators?{key}={v}"))
}

/// `GET /ops/operators`.
pub async fn operators(
    State(state): State<AppState>,
    Extension(signed): Extension<Signed>,
    headers: HeaderMap,
    Query(flash): Query<Flash>,
) -> Response {
    if !may(&signed, Action::ManageOperators) {
        return forbidden();
    }
    let lang = lang_of(&headers);
    let rows = match state.ctx.store.operators().await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(error = %e, "console: operators not read");
            return (StatusCode::SERVICE_UNAVAILABLE, "database unavailable").into_response();
        }
    };
    let me = signed.me.name.clone();
    let (done, error) = flash.parts();
    let title = ops::t(lang, OpsKey::operators_title);
    Html(page(
        &state,
        lang,
        title,
        Some(&signed.me),
        Section::Operators,
        move || {
            view! { <OperatorsPage lang=lang rows=rows me=me done=done error=error/> }
        },
    ))
    .into_response()
}

#[derive(Debug, serde::Deserialize)]
pub struct AddForm {
    name: String,
    role: String,
    password: String,
}

/// `POST /ops/operators`.
pub async fn add(State(state): State<AppState>, req: Request) -> Response {
    let signed = match acting(&req, Action::ManageOperators) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let (parts, body) = req.into_parts();
    let address = address_of(&state, &parts);
    let f: AddForm = match form(body, 4096).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Ok(name) = OperatorName::parse(&f.name) else {
        return back("error", "bad_name");
    };
    let Ok(role) = Role::parse(&f.role) else {
        return back("error", "bad_role");
    };
    if password::acceptable(&f.password).is_err() {
        return back("error", "bad_password");
    }
    let pw = f.password;
    let hash = match tokio::task::spawn_blocking(move || password::hash(&pw)).await {
        Ok(Ok(h)) => h,
        _ => return back("error", "unavailable"),
    };
    let ctx = &state.ctx;
    match ctx
        .store
        .add_operator(name.as_str(), role, &hash, now_ms())
        .await
    {
        Ok(true) => {
            audit(
                ctx,
                &signed.me.name,
                Audited::OperatorAdded,
                name.as_str(),
                &address,
                "",
                role.as_str(),
            )
            .await;
            back("done", "operator_added")
        }
        Ok(false) => back("error", "operator_exists"),
        Err(e) => {
            tracing::error!(error = %e, "console: operator not added");
            back("error", "unavailable")
        }
    }
}

#[derive(Debug, serde::Deserialize)]
pub struct RoleForm {
    role: String,
}

/// `POST /ops/operators/{name}/role`: the operator's sessions end (they sign in again with it).
pub async fn set_role(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let signed = match acting(&req, Action::ManageOperators) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if name == signed.me.name {
        return back("error", "not_yourself");
    }
    let (parts, body) = req.into_parts();
    let address = address_of(&state, &parts);
    let f: RoleForm = match form(body, 1024).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let Ok(role) = Role::parse(&f.role) else {
        return back("error", "bad_role");
    };
    let ctx = &state.ctx;
    match ctx.store.set_operator_role(&name, role, now_ms()).await {
        Ok(true) => {
            audit(
                ctx,
                &signed.me.name,
                Audited::OperatorRole,
                &name,
                &address,
                "",
                role.as_str(),
            )
            .await;
            back("done", "operator_changed")
        }
        Ok(false) => back("error", "not_open"),
        Err(e) => {
            tracing::error!(error = %e, "console: role not changed");
            back("error", "unavailable")
        }
    }
}

/// `POST /ops/operators/{name}/disable`.
pub async fn disable(
    State(state): State<AppState>,
    Path(name): Path<String>,
    req: Request,
) -> Response {
    let signed = match acting(&req, Action::ManageOperators) {
        Ok(s) => s,
        Err(r) => return r,
    };
    if name == signed.me.name {
        return back("error", "not_yourself");
    }
    let address = address_of(&state, &req.into_parts().0);
    let ctx = &state.ctx;
    match ctx.store.disable_operator(&name, now_ms()).await {
        Ok(true) => {
            audit(
                ctx,
                &signed.me.name,
                Audited::OperatorDisabled,
                &name,
                &address,
                "",
                "",
            )
            .await;
            back("done", "operator_changed")
        }
        Ok(false) => back("error", "not_open"),
        Err(e) => {
            tracing::error!(error = %e, "console: operator not disabled");
            back("error", "unavailable")
        }
    }
}

/// `POST /ops/dead-letters/requeue` (admins): the dead-lettered pay results back to the
/// consumers; the inbox makes one applied before harmless.
pub async fn requeue(State(state): State<AppState>, req: Request) -> Response {
    let signed = match acting(&req, Action::Requeue) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let address = address_of(&state, &req.into_parts().0);
    let ctx = &state.ctx;
    match ctx.bus.requeue_dead_letters(1000).await {
        Some(Ok(n)) => {
            audit(
                ctx,
                &signed.me.name,
                Audited::Requeue,
                "dead_letters",
                &address,
                "",
                &format!("{n} requeued"),
            )
            .await;
            redirect("/ops?done=requeued")
        }
        Some(Err(e)) => {
            tracing::error!(error = %e, "console: dead letters not requeued");
            redirect("/ops?error=unavailable")
        }
        None => redirect("/ops"),
    }
}
