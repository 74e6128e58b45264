//! `/ops/operators` (admins): who may sign in, with what role; add one, change a role, disable.

use leptos::prelude::*;

use super::{role_text, t, when, Flash, OpsKey};
use crate::app::i18n::Lang;
use crate::server::domain::{OperatorRow, Role};

#[component]
pub fn OperatorsPage(
    lang: Lang,
    rows: Vec<OperatorRow>,
    me: String,
    done: Option<String>,
    error: Option<String>,
) -> impl IntoView {
    let roles = move |current: Option<Role>| {
        Role::ALL
            .into_iter()
            .map(|r| view! { <option value=r.as_str() selected=current == Some(r)>{role_text(lang, r)}</option> })
            .collect_view()
    };
    view! {
        <h1>{t(lang, OpsKey::operators_title)}</h1>
        <Flash lang=lang done=done error=error/>
        <table class="grid" data-testid="ops-operators">
            <thead><tr>
                <th scope="col">{t(lang, OpsKey::login_name)}</th><th scope="col">{t(lang, OpsKey::col_role)}</th>
                <th scope="col">{t(lang, OpsKey::col_since)}</th><th scope="col">{t(lang, OpsKey::col_state)}</th>
            </tr></thead>
            <tbody>
                {rows.into_iter().map(|o| {
                    let enabled = o.disabled_at.is_none();
                    let own = o.name == me;
                    let role_action = format!("/ops/operators/{}/role", o.name);
                    let disable_action = format!("/ops/operators/{}/disable", o.name);
                    let field = format!("role-{}", o.name);
                    view! {
                        <tr data-testid="ops-operator" data-operator=o.name.clone()>
                            <td>{o.name.clone()}</td>
                            <td>
                                {(enabled && !own).then(|| view! {
                                    <form method="post" action=role_action class="inline">
                                        <label for=field.clone() class="sr-only">{t(lang, OpsKey::col_role)}</label>
                                        <select id=field name="role">{roles(Some(o.role))}</select>
                                        <button type="submit" class="button small">{t(lang, OpsKey::operator_set_role)}</button>
                                    </form>
                                })}
                                {(!enabled || own).then(|| role_text(lang, o.role))}
                            </td>
                            <td>{when(o.created_at)}</td>
                            <td>
                                {o.disabled_at.map(|at| view! { <span class="muted">{t(lang, OpsKey::operator_disabled)}" "{when(at)}</span> })}
                                {(enabled && !own).then(|| view! {
                                    <form method="post" action=disable_action class="inline">
                                        <button type="submit" class="button small link" data-testid="ops-operator-disable">{t(lang, OpsKey::operator_disable)}</button>
                                    </form>
                                })}
                            </td>
                        </tr>
                    }
                }).collect_view()}
            </tbody>
        </table>
        <section class="card">
            <h2>{t(lang, OpsKey::operator_add_title)}</h2>
            <form method="post" action="/ops/operators" class="stack" data-testid="ops-operator-add">
                <label for="new-name">{t(lang, OpsKey::login_name)}</label>
                <input id="new-name" name="name" type="text" required maxlength="64" autocomplete="off" spellcheck="false" autocapitalize="none"/>
                <label for="new-role">{t(lang, OpsKey::col_role)}</label>
                <select id="new-role" name="role">{roles(Some(Role::Viewer))}</select>
                <label for="new-password">{t(lang, OpsKey::operator_password)}</label>
                <input id="new-password" name="password" type="password" required minlength="12" maxlength="1024" autocomplete="new-password"/>
                <button type="submit" class="button primary">{t(lang, OpsKey::operator_add)}</button>
            </form>
        </section>
    }
}
