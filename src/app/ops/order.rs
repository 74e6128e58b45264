//! `/ops/orders/{id}`: one order — what was bought, where it stands, everything that happened
//! to it, its refunds with the refund form, "Query WeChat now" and notes.

use leptos::prelude::*;

use super::{status_text, t, t_with, when, yuan, Flash, OpsKey};
use crate::app::i18n::Lang;
use crate::server::domain::recon::ReconLine;
use crate::server::domain::{
    AnomalyItem, AuditRow, CallRow, EventRow, ItemRow, NotifyRow, OrderRow, RefundRow,
};

#[derive(Debug, Clone)]
pub struct OrderPageData {
    pub order: OrderRow,
    pub items: Vec<ItemRow>,
    pub events: Vec<EventRow>,
    pub refunds: Vec<RefundRow>,
    pub anomalies: Vec<AnomalyItem>,
    pub audit: Vec<AuditRow>,
    /// Every call made to WeChat for it, and every notify received naming it.
    pub calls: Vec<CallRow>,
    pub notifies: Vec<NotifyRow>,
    /// The daily reconciliation's differences naming it: (bill date, line), newest day first.
    pub recon: Vec<(String, ReconLine)>,
    /// What may still be refunded: paid − refunded − in progress.
    pub refundable: i64,
    /// The signed-in operator may refund, note and query (role operator or admin).
    pub may_act: bool,
    pub done: Option<String>,
    pub error: Option<String>,
}

#[component]
pub fn OrderPage(lang: Lang, d: OrderPageData) -> impl IntoView {
    let o = d.order.clone();
    let id = o.id.clone();
    let fact = move |key: OpsKey, value: Option<String>| {
        value.map(|v| view! { <dt>{t(lang, key)}</dt><dd>{v}</dd> })
    };
    let refund_action = format!("/ops/orders/{id}/refund");
    let note_action = format!("/ops/orders/{id}/note");
    let query_action = format!("/ops/orders/{id}/query");
    let can_refund = d.may_act && d.refundable > 0;
    view! {
        <p><a href="/ops/orders">{t(lang, OpsKey::back_to_orders)}</a></p>
        <h1 class="mono" data-testid="ops-order-id">{id.clone()}</h1>
        <Flash lang=lang done=d.done.clone() error=d.error.clone()/>
        <section class="card">
            <dl class="facts">
                <dt>{t(lang, OpsKey::col_status)}</dt>
                <dd><span class=format!("pill {}", o.status.as_str()) data-testid="ops-order-status">{status_text(lang, o.status)}</span>
                    {o.parked.then(|| view! { " " <span class="pill failed">{t(lang, OpsKey::parked)}</span> })}</dd>
                <dt>{t(lang, OpsKey::col_amount)}</dt><dd>{yuan(o.total_fee)}</dd>
                {fact(OpsKey::col_refunded, (o.refunded_fee > 0).then(|| yuan(o.refunded_fee)))}
                <dt>{t(lang, OpsKey::col_placed)}</dt><dd>{when(o.created_at)}</dd>
                {fact(OpsKey::col_paid_at, o.paid_at.map(when))}
                {fact(OpsKey::col_transaction, o.transaction_id.clone())}
                {fact(OpsKey::col_failure, o.failure_reason.map(|r| r.as_str().to_string()))}
                <dt>{t(lang, OpsKey::col_body)}</dt><dd>{o.body.clone()}</dd>
            </dl>
            <table class="grid">
                <caption>{t(lang, OpsKey::items_title)}</caption>
                <thead><tr><th scope="col">{t(lang, OpsKey::col_item)}</th><th scope="col" class="num">{t(lang, OpsKey::col_qty)}</th><th scope="col" class="num">{t(lang, OpsKey::col_unit_price)}</th></tr></thead>
                <tbody>
                    {d.items.iter().map(|i| view! {
                        <tr><td>{i.name.clone()}" "<span class="muted small mono">{i.sku.clone()}</span></td><td class="num">{i.qty}</td><td class="num">{yuan(i.unit_price_fen)}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
            {d.may_act.then(|| view! {
                <form method="post" action=query_action class="inline">
                    <button type="submit" class="button" data-testid="ops-query">{t(lang, OpsKey::query_now)}</button>
                </form>
            })}
        </section>

        <section class="card" aria-labelledby="refunds-h">
            <h2 id="refunds-h">{t(lang, OpsKey::refunds_title)}</h2>
            {d.refunds.is_empty().then(|| view! { <p class="muted">{t(lang, OpsKey::refunds_none)}</p> })}
            {(!d.refunds.is_empty()).then(|| view! {
                <table class="grid" data-testid="ops-refunds">
                    <thead><tr>
                        <th scope="col">{t(lang, OpsKey::col_refund_no)}</th><th scope="col">{t(lang, OpsKey::col_status)}</th>
                        <th scope="col" class="num">{t(lang, OpsKey::col_amount)}</th><th scope="col">{t(lang, OpsKey::col_reason)}</th>
                        <th scope="col">{t(lang, OpsKey::col_by)}</th><th scope="col">{t(lang, OpsKey::col_when)}</th>
                    </tr></thead>
                    <tbody>
                        {d.refunds.iter().map(|r| view! {
                            <tr data-testid="ops-refund-row">
                                <td class="mono small">{r.out_refund_no.clone()}</td>
                                <td><span class="pill">{r.status.as_str()}</span>{r.failure.clone().map(|f| view! { " " <span class="small muted">{f}</span> })}</td>
                                <td class="num">{yuan(r.refund_fee)}</td>
                                <td>{r.reason.clone()}</td>
                                <td>{r.requested_by.clone()}</td>
                                <td>{when(r.created_at)}</td>
                            </tr>
                        }).collect_view()}
                    </tbody>
                </table>
            })}
            {can_refund.then(|| view! {
                <form method="post" action=refund_action class="stack refund-form" data-testid="ops-refund-form">
                    <h3>{t(lang, OpsKey::refund_form_title)}</h3>
                    <p class="muted small">{t_with(lang, OpsKey::refund_at_most, &[("amount", &yuan(d.refundable))])}</p>
                    <label for="refund-amount">{t(lang, OpsKey::refund_amount)}</label>
                    <input id="refund-amount" name="amount" type="text" inputmode="decimal" required placeholder=format!("{}.{:02}", d.refundable / 100, d.refundable % 100)/>
                    <label for="refund-reason">{t(lang, OpsKey::refund_reason)}</label>
                    <input id="refund-reason" name="reason" type="text" required maxlength="80"/>
                    <div class="check">
                        <input id="refund-restock" name="restock" type="checkbox" value="1"/>
                        <label for="refund-restock">{t(lang, OpsKey::refund_restock)}</label>
                    </div>
                    <button type="submit" class="button primary" data-testid="ops-refund-submit">{t(lang, OpsKey::refund_submit)}</button>
                </form>
            })}
        </section>

        {(!d.anomalies.is_empty()).then(|| view! {
            <section class="card" aria-labelledby="anomalies-h">
                <h2 id="anomalies-h">{t(lang, OpsKey::nav_anomalies)}</h2>
                <ul class="plain">
                    {d.anomalies.iter().map(|a| view! {
                        <li><span class="pill failed">{a.kind.clone()}</span>" "<span class="mono small">{a.transaction_id.clone()}</span>" · "{when(a.at)}<div class="small muted">{a.detail.clone()}</div></li>
                    }).collect_view()}
                </ul>
            </section>
        })}

        <super::recon::OrderRecon lang=lang lines=d.recon.clone()/>

        <section class="card" aria-labelledby="timeline-h">
            <h2 id="timeline-h">{t(lang, OpsKey::timeline_title)}</h2>
            <ol class="timeline" data-testid="ops-timeline">
                {d.events.iter().map(|e| view! {
                    <li data-kind=e.kind.clone()>
                        <time>{when(e.at)}</time>" "<strong>{e.kind.clone()}</strong>" "<span class="muted small">{format!("({})", e.cause)}</span>
                        <div class="small">{e.detail.clone()}</div>
                    </li>
                }).collect_view()}
            </ol>
            {d.may_act.then(|| view! {
                <form method="post" action=note_action class="stack">
                    <label for="note-text">{t(lang, OpsKey::note_label)}</label>
                    <textarea id="note-text" name="text" required maxlength="500" rows="2"></textarea>
                    <button type="submit" class="button" data-testid="ops-note-submit">{t(lang, OpsKey::note_submit)}</button>
                </form>
            })}
        </section>

        <section class="card" aria-labelledby="calls-h">
            <h2 id="calls-h">{t(lang, OpsKey::calls_title)}</h2>
            <table class="grid" data-testid="ops-calls">
                <thead><tr>
                    <th scope="col">{t(lang, OpsKey::col_when)}</th><th scope="col">{t(lang, OpsKey::col_api)}</th>
                    <th scope="col">{t(lang, OpsKey::col_result)}</th><th scope="col" class="num">{t(lang, OpsKey::col_latency)}</th>
                </tr></thead>
                <tbody>
                    {d.calls.iter().map(|c| view! {
                        <tr data-testid="ops-call" data-api=c.api.clone()>
                            <td>{when(c.at)}</td><td class="mono">{c.api.clone()}</td>
                            <td><span class=if c.result == "success" { "pill paid" } else { "pill failed" }>{c.result.clone()}</span></td>
                            <td class="num">{format!("{} ms", c.latency_ms)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
            <h3>{t(lang, OpsKey::notifies_title)}</h3>
            <table class="grid" data-testid="ops-notifies">
                <thead><tr>
                    <th scope="col">{t(lang, OpsKey::col_when)}</th><th scope="col">{t(lang, OpsKey::col_kind)}</th>
                    <th scope="col">{t(lang, OpsKey::col_result)}</th><th scope="col">{t(lang, OpsKey::col_reference)}</th>
                    <th scope="col">{t(lang, OpsKey::col_reason)}</th>
                </tr></thead>
                <tbody>
                    {d.notifies.iter().map(|n| view! {
                        <tr data-testid="ops-notify" data-outcome=n.outcome.clone()>
                            <td>{when(n.at)}</td><td>{n.kind.clone()}</td>
                            <td><span class=if n.outcome == "accepted" { "pill paid" } else { "pill failed" }>{n.outcome.clone()}</span></td>
                            <td class="mono small">{n.reference.clone()}</td><td class="small">{n.reason.clone()}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table>
        </section>

        <section class="card" aria-labelledby="audit-h">
            <h2 id="audit-h">{t(lang, OpsKey::order_audit_title)}</h2>
            <super::lists::AuditTable lang=lang rows=d.audit.clone()/>
        </section>
    }
}
