//! The success and failure pages.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::use_params_map;

use super::api::get_order;
use super::types::{AppError, OrderStatus, OrderView};
use super::NotFound;

#[component]
fn WithOrder(render: fn(OrderView) -> AnyView) -> impl IntoView {
    let params = use_params_map();
    let order = Resource::new(
        move || params.read().get("id").unwrap_or_default(),
        get_order,
    );
    view! {
        <Suspense fallback=|| view! { <p class="muted">"Loading your order…"</p> }>
            {move || order.get().map(|r| match r {
                Ok(o) => render(o),
                Err(AppError::NotFound) => view! { <NotFound/> }.into_any(),
                Err(e) => view! { <p class="error" role="alert">{e.to_string()}</p> }.into_any(),
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
    view! {
        <section class="card narrow result" data-testid="paid">
            <div class="badge ok" aria-hidden="true">"✓"</div>
            <h1>"Payment received"</h1>
            <p class="amount center" data-testid="paid-amount">{o.amount.yuan()}</p>
            <p class="muted center">{format!("Thank you for shopping at {}.", o.shop_name)}</p>
            <dl class="details">
                <dt>"Order number"</dt>
                <dd class="mono">{o.id.clone()}</dd>
                <dt>"WeChat transaction"</dt>
                <dd class="mono" data-testid="transaction-id">{o.transaction_id.clone().unwrap_or_default()}</dd>
                <dt>"Paid at (Beijing time)"</dt>
                <dd data-testid="paid-at">{o.paid_at.clone().unwrap_or_default()}</dd>
            </dl>
            <A href="/" attr:class="button primary">"Continue shopping"</A>
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
    let why = o
        .failure_reason
        .map(|r| r.explain())
        .unwrap_or("This order was closed without payment.");
    view! {
        <section class="card narrow result" data-testid="failed">
            <div class="badge fail" aria-hidden="true">"!"</div>
            <h1>"Order not completed"</h1>
            <p class="center" data-testid="failure-reason">{why}</p>
            <dl class="details">
                <dt>"Order number"</dt>
                <dd class="mono">{o.id.clone()}</dd>
                <dt>"Amount"</dt>
                <dd>{o.amount.yuan()}</dd>
            </dl>
            <A href="/" attr:class="button primary">"Back to the shop"</A>
        </section>
    }
    .into_any()
}

/// Someone opened a result page before the order got there.
fn not_yet(o: &OrderView) -> AnyView {
    let (text, href) = match o.status {
        OrderStatus::Paid => (
            "This order has been paid.",
            format!("/orders/{}/paid", o.id),
        ),
        OrderStatus::Closed | OrderStatus::Failed => {
            ("This order has ended.", format!("/orders/{}/failed", o.id))
        }
        _ => (
            "This order is still waiting for payment.",
            format!("/checkout/{}", o.id),
        ),
    };
    view! {
        <section class="card narrow center" data-testid="not-yet">
            <p>{text}</p>
            <a class="button" href=href>"Show it"</a>
        </section>
    }
    .into_any()
}
