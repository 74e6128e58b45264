//! The success and failure pages.

use leptos::prelude::*;
use leptos_router::components::A;
use leptos_router::hooks::{use_navigate, use_params_map};

use super::api::{get_order, PlaceOrder};
use super::types::{AppError, CartLine, OrderStatus, OrderView};
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
            <OrderAgain lines=o.items.iter().map(|i| CartLine { sku: i.sku.clone(), qty: i.qty }).collect()/>
            <A href="/" attr:class="button">"Back to the shop"</A>
        </section>
    }
    .into_any()
}

/// Places a new order with the same goods and quantities, and goes to its checkout.
#[component]
fn OrderAgain(lines: Vec<CartLine>) -> impl IntoView {
    let place = ServerAction::<PlaceOrder>::new();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(id)) = place.value().get() {
            navigate(&format!("/checkout/{id}"), Default::default());
        }
    });
    view! {
        <button
            class="button primary"
            data-testid="order-again"
            disabled=move || place.pending().get()
            on:click=move |_| { place.dispatch(PlaceOrder { lines: lines.clone() }); }
        >
            {move || if place.pending().get() { "Placing your order…" } else { "Order again" }}
        </button>
        {move || place.value().get().and_then(|r| r.err()).map(|e| view! {
            <p class="error" role="alert" data-testid="order-again-error">{e.to_string()}</p>
        })}
    }
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
