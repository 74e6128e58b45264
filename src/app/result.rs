//! The success and failure pages.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use super::api::{get_order, PlaceOrder};
use super::i18n::{refunded_text, use_i18n, Key};
use super::types::{AppError, CartLine, OrderStatus, OrderView};
use super::NotFound;

#[component]
fn WithOrder(render: fn(OrderView) -> AnyView) -> impl IntoView {
    let params = use_params_map();
    let order = Resource::new(
        move || params.read().get("id").unwrap_or_default(),
        get_order,
    );
    let i18n = use_i18n();
    view! {
        <Suspense fallback=move || view! { <p class="muted">{i18n.t(Key::loading_order)}</p> }>
            {move || order.get().map(|r| match r {
                Ok(o) => render(o),
                Err(AppError::NotFound) => view! { <NotFound/> }.into_any(),
                Err(e) => view! { <p class="error" role="alert">{e.text(i18n.lang())}</p> }.into_any(),
            })}
        </Suspense>
    }
}

#[component]
pub fn PaidPage() -> impl IntoView {
    view! { <WithOrder render=paid/> }
}

fn paid(o: OrderView) -> AnyView {
    if o.status != OrderStatus::Paid {
        return not_yet(&o);
    }
    let i18n = use_i18n();
    let t = move |k| i18n.t(k);
    let shop = o.shop_name.clone();
    view! {
        <section class="card narrow result" data-testid="paid">
            <div class="badge ok" aria-hidden="true">"✓"</div>
            <h1>{t(Key::paid_title)}</h1>
            <p class="amount center" data-testid="paid-amount">{o.amount.yuan()}</p>
            {refunded_text(i18n.lang(), o.amount, o.refunded).map(|r| view! {
                <p class="refunded center" data-testid="refunded">{r}</p>
            })}
            <p class="muted center">{i18n.t_with(Key::paid_thanks, &[("shop", &shop)])}</p>
            <dl class="details">
                <dt>{t(Key::order_number)}</dt>
                <dd class="mono">{o.id.clone()}</dd>
                <dt>{t(Key::wechat_transaction)}</dt>
                <dd class="mono" data-testid="transaction-id">{o.transaction_id.clone().unwrap_or_default()}</dd>
                <dt>{t(Key::paid_at)}</dt>
                <dd data-testid="paid-at">{o.paid_at.clone().unwrap_or_default()}</dd>
            </dl>
            <A href="/" attr:class="button primary">{t(Key::continue_shopping)}</A>
        </section>
    }
    .into_any()
}

#[component]
pub fn FailedPage() -> impl IntoView {
    view! { <WithOrder render=failed/> }
}

fn failed(o: OrderView) -> AnyView {
    if !matches!(o.status, OrderStatus::Closed | OrderStatus::Failed) {
        return not_yet(&o);
    }
    let i18n = use_i18n();
    let t = move |k| i18n.t(k);
    let why = o
        .failure_reason
        .map_or(Key::failed_default, |r| r.explain());
    view! {
        <section class="card narrow result" data-testid="failed">
            <div class="badge fail" aria-hidden="true">"!"</div>
            <h1>{t(Key::failed_title)}</h1>
            <p class="center" data-testid="failure-reason">{t(why)}</p>
            // A payment that arrived after the order closed goes back by itself.
            {refunded_text(i18n.lang(), o.amount, o.refunded).map(|r| view! {
                <p class="refunded center" data-testid="refunded">{r}</p>
            })}
            <dl class="details">
                <dt>{t(Key::order_number)}</dt>
                <dd class="mono">{o.id.clone()}</dd>
                <dt>{t(Key::amount)}</dt>
                <dd>{o.amount.yuan()}</dd>
            </dl>
            <OrderAgain lines=o.items.iter().map(|i| CartLine { sku: i.sku.clone(), qty: i.qty }).collect()/>
            <A href="/" attr:class="button">{t(Key::back_to_shop)}</A>
        </section>
    }
    .into_any()
}

/// Places a new order with the same goods and quantities, and goes to its checkout.
#[island]
fn OrderAgain(lines: Vec<CartLine>) -> impl IntoView {
    let place = super::catalogue::place_and_go_to_checkout();
    let i18n = use_i18n();
    view! {
        <button
            class="button primary"
            data-testid="order-again"
            disabled=move || place.pending().get()
            on:click=move |_| { place.dispatch(PlaceOrder { lines: lines.clone() }); }
        >
            {move || i18n.t(if place.pending().get() { Key::placing_again } else { Key::order_again })}
        </button>
        {move || place.value().get().and_then(|r| r.err()).map(|e| view! {
            <p class="error" role="alert" data-testid="order-again-error">{e.text(i18n.lang())}</p>
        })}
    }
}

/// Someone opened a result page before the order got there.
fn not_yet(o: &OrderView) -> AnyView {
    let (text, href) = match o.status {
        OrderStatus::Paid => (Key::not_yet_paid, format!("/orders/{}/paid", o.id)),
        OrderStatus::Closed | OrderStatus::Failed => {
            (Key::not_yet_ended, format!("/orders/{}/failed", o.id))
        }
        _ => (Key::not_yet_waiting, format!("/checkout/{}", o.id)),
    };
    let i18n = use_i18n();
    view! {
        <section class="card narrow center" data-testid="not-yet">
            <p>{i18n.t(text)}</p>
            <a class="button" href=href>{i18n.t(Key::show_it)}</a>
        </section>
    }
    .into_any()
}
