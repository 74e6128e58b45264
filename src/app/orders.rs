//! My orders: this session's orders, newest first. A pending order links back to its checkout, a
//! finished one to its result; finished orders can be hidden (a logical delete: the row stays).

use leptos::prelude::*;

use super::api::{my_orders, HideOrder};
use super::checkout::result_path;
use super::i18n::{refunded_text, use_i18n, Key};
use super::types::{OrderStatus, OrderSummary};

#[component]
pub fn MyOrdersPage() -> impl IntoView {
    let orders = Resource::new(|| (), |_| my_orders());
    let i18n = use_i18n();
    view! {
        <section class="card my-orders" data-testid="my-orders">
            <h1>{i18n.t(Key::orders_title)}</h1>
            <Suspense fallback=move || view! { <p class="muted">{i18n.t(Key::loading_orders)}</p> }>
                {move || orders.get().map(|r| match r {
                    Err(e) => view! { <p class="error" role="alert">{e.text(i18n.lang())}</p> }.into_any(),
                    Ok(list) => view! { <OrderList orders=list/> }.into_any(),
                })}
            </Suspense>
        </section>
    }
}

/// The list, with a Hide button on each finished order.
#[island]
fn OrderList(orders: Vec<OrderSummary>) -> impl IntoView {
    let i18n = use_i18n();
    let orders = RwSignal::new(orders);
    let hide = ServerAction::<HideOrder>::new();
    // Reloaded after each hide, whatever came of it (another tab may have hidden it already).
    Effect::new(move |_| {
        if hide.version().get() > 0 {
            leptos::task::spawn_local(async move {
                if let Ok(now) = my_orders().await {
                    orders.set(now);
                }
            });
        }
    });
    view! {
        <Show
            when=move || orders.with(|o| !o.is_empty())
            fallback=move || view! {
                <p class="muted" data-testid="no-orders">{i18n.t(Key::orders_empty)}</p>
                <a href="/" class="button">{i18n.t(Key::go_to_shop)}</a>
            }
        >
            <ul class="order-list">
                {move || orders.get().into_iter().map(|o| view! { <OrderLine o=o hide=hide/> }).collect_view()}
            </ul>
        </Show>
        {move || hide.value().get().and_then(|r| r.err()).map(|e| view! {
            <p class="error" role="alert" data-testid="hide-error">{e.text(i18n.lang())}</p>
        })}
    }
}

pub fn status_label(s: OrderStatus) -> Key {
    match s {
        OrderStatus::Pending => Key::state_pending,
        OrderStatus::Closing => Key::state_closing,
        OrderStatus::Paid => Key::state_paid,
        OrderStatus::Closed => Key::state_closed,
        OrderStatus::Failed => Key::state_failed,
    }
}

#[component]
fn OrderLine(o: OrderSummary, hide: ServerAction<HideOrder>) -> impl IntoView {
    let href = result_path(&o.id, o.status).unwrap_or_else(|| format!("/checkout/{}", o.id));
    let finished = o.status.is_final();
    let id = o.id.clone();
    let i18n = use_i18n();
    let t = move |k| i18n.t(k);
    let label = if finished {
        Key::order_details
    } else {
        Key::order_pay_now
    };
    view! {
        <li class="order-line" data-testid="order-line" data-order=o.id.clone()>
            <div class="order-main">
                <span class=format!("pill {}", o.status.as_str()) data-testid="order-status">{t(status_label(o.status))}</span>
                <span class="order-amount">{o.amount.yuan()}</span>
                {refunded_text(i18n.lang(), o.amount, o.refunded).map(|r| view! {
                    <span class="pill refunded" data-testid="order-refunded">{r}</span>
                })}
            </div>
            <div class="muted small">{o.body.clone()}</div>
            <div class="muted small">
                <time>{o.placed_at.clone()}</time>" "{t(Key::beijing_time)}" · "
                <span class="mono">{o.id.clone()}</span>
            </div>
            <div class="order-actions">
                <a href=href class="button small" data-testid="order-open">{t(label)}</a>
                {finished.then(|| view! {
                    <button
                        class="button small link"
                        data-testid="order-hide"
                        aria-label=i18n.t_with(Key::order_hide_label, &[("id", &id)])
                        disabled=move || hide.pending().get()
                        on:click={
                            let id = id.clone();
                            move |_| { hide.dispatch(HideOrder { id: id.clone() }); }
                        }
                    >{t(Key::order_hide)}</button>
                })}
            </div>
        </li>
    }
}
