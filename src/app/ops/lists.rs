//! `/ops/anomalies` and `/ops/audit`.

use leptos::prelude::*;

use super::{t, when, Flash, OpsKey};
use crate::app::i18n::Lang;
use crate::server::domain::{AnomalyItem, AuditRow};

/// Payments that fit no order: the open ones first, each with what fits — refund it (on its
/// order's page) or resolve it with a reason; resolved ones stay, with who and why.
#[component]
pub fn AnomaliesPage(
    lang: Lang,
    rows: Vec<AnomalyItem>,
    may_act: bool,
    done: Option<String>,
    error: Option<String>,
) -> impl IntoView {
    let empty = rows.is_empty();
    view! {
        <h1>{t(lang, OpsKey::anomalies_title)}</h1>
        <p class="muted">{t(lang, OpsKey::anomalies_intro)}</p>
        <Flash lang=lang done=done error=error/>
        {empty.then(|| view! { <p class="muted" data-testid="ops-no-anomalies">{t(lang, OpsKey::anomalies_none)}</p> })}
        <ul class="plain anomalies" data-testid="ops-anomalies">
            {rows.into_iter().map(|a| {
                let open = a.resolved_at.is_none();
                let resolve = format!("/ops/anomalies/{}/resolve", a.id);
                let field = format!("resolve-{}", a.id);
                view! {
                    <li class=if open { "card anomaly open" } else { "card anomaly resolved" } data-testid="ops-anomaly" data-anomaly=a.id.clone()>
                        <div>
                            <span class=if open { "pill failed" } else { "pill" }>{a.kind.clone()}</span>" "
                            <a class="mono" href=format!("/ops/orders/{}", a.order_id)>{a.order_id.clone()}</a>
                            " · "<span class="mono small">{a.transaction_id.clone()}</span>" · "{when(a.at)}
                        </div>
                        <p class="small">{t(lang, OpsKey::wechat_said)}" "{a.detail.clone()}</p>
                        {a.resolution.clone().map(|r| view! {
                            <p class="small" data-testid="ops-resolution">{t(lang, OpsKey::resolved_as)}" "{r}" · "{a.resolved_at.map(when)}</p>
                        })}
                        {(open && may_act).then(|| view! {
                            <div class="actions">
                                <form method="post" action=format!("/ops/anomalies/{}/refund", a.id) class="inline">
                                    <label for=format!("refund-{}", a.id)>{t(lang, OpsKey::anomaly_refund_reason)}</label>
                                    <input id=format!("refund-{}", a.id) name="reason" type="text" required maxlength="80"/>
                                    <button type="submit" class="button small" data-testid="ops-anomaly-refund">{t(lang, OpsKey::anomaly_refund)}</button>
                                </form>
                                <form method="post" action=resolve class="inline">
                                    <label for=field.clone()>{t(lang, OpsKey::resolve_reason)}</label>
                                    <input id=field name="reason" type="text" required maxlength="180"/>
                                    <button type="submit" class="button small" data-testid="ops-resolve">{t(lang, OpsKey::resolve_submit)}</button>
                                </form>
                            </div>
                        })}
                    </li>
                }
            }).collect_view()}
        </ul>
    }
}

#[component]
pub fn AuditPage(lang: Lang, rows: Vec<AuditRow>, next: Option<i64>) -> impl IntoView {
    view! {
        <h1>{t(lang, OpsKey::audit_title)}</h1>
        <AuditTable lang=lang rows=rows/>
        {next.map(|n| view! { <p><a class="button" href=format!("/ops/audit?before={n}") data-testid="ops-next">{t(lang, OpsKey::next_page)}</a></p> })}
    }
}

#[component]
pub fn AuditTable(lang: Lang, rows: Vec<AuditRow>) -> impl IntoView {
    let empty = rows.is_empty();
    view! {
        {empty.then(|| view! { <p class="muted">{t(lang, OpsKey::audit_none)}</p> })}
        {(!empty).then(|| view! {
            <table class="grid" data-testid="ops-audit">
                <thead><tr>
                    <th scope="col">{t(lang, OpsKey::col_when)}</th><th scope="col">{t(lang, OpsKey::col_by)}</th>
                    <th scope="col">{t(lang, OpsKey::col_action)}</th><th scope="col">{t(lang, OpsKey::col_subject)}</th>
                    <th scope="col">{t(lang, OpsKey::col_reason)}</th><th scope="col">{t(lang, OpsKey::col_address)}</th>
                </tr></thead>
                <tbody>
                    {rows.into_iter().map(|r| {
                        let detail = (!r.detail.is_empty()).then(|| view! { <div class="small muted">{r.detail.clone()}</div> });
                        view! {
                            <tr data-testid="ops-audit-row" data-action=r.action.clone()>
                                <td>{when(r.at)}</td><td>{r.actor.clone()}</td><td>{r.action.clone()}</td>
                                <td class="mono small">{r.subject.clone()}</td>
                                <td>{r.reason.clone()}{detail}</td>
                                <td class="mono small">{r.address.clone()}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        })}
    }
}
