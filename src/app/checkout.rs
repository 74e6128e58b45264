//! The checkout: QR code (inline SVG from the server), amount, order number and a countdown;
//! polls the order's status every 3 seconds and moves on to the success or failure page.

use std::time::Duration;

use leptos::prelude::*;
use leptos_router::components::Redirect;
use leptos_router::hooks::use_params_map;
use leptos_router::NavigateOptions;

use super::api::{get_order, order_status, CancelOrder};
use super::i18n::{use_i18n, Key};
use super::types::{AppError, OrderStatus, OrderView};
use super::{mm_ss, NotFound};

pub const POLL_EVERY: Duration = Duration::from_secs(3);

#[component]
pub fn CheckoutPage() -> impl IntoView {
    let params = use_params_map();
    let id = move || params.read().get("id").unwrap_or_default();
    let order = Resource::new(id, get_order);
    let i18n = use_i18n();
    view! {
        <Suspense fallback=move || view! { <p class="muted">{i18n.t(Key::loading_order)}</p> }>
            {move || order.get().map(|r| match r {
                // A finished order (a bookmark, the back button) goes straight to its result.
                Ok(o) => match result_path(&o.id, o.status) {
                    Some(path) => view! { <Redirect path=path options=NavigateOptions { replace: true, ..Default::default() }/> }.into_any(),
                    None => {
                        // The QR is server-rendered into the island as its (static) children,
                        // so its SVG is not sent twice (once more as the island's props).
                        let qr = o.qr_svg.clone();
                        let o = OrderView { qr_svg: None, ..o };
                        view! { <Checkout qr_ready=qr.is_some() o=o><Qr svg=qr/></Checkout> }.into_any()
                    }
                },
                Err(AppError::NotFound) => view! { <NotFound/> }.into_any(),
                Err(e) => view! { <p class="error" role="alert">{e.text(i18n.lang())}</p> }.into_any(),
            })}
        </Suspense>
    }
}

/// Where an order in this status belongs, if not on the checkout page.
pub fn result_path(id: &str, status: OrderStatus) -> Option<String> {
    match status {
        OrderStatus::Paid => Some(format!("/orders/{id}/paid")),
        OrderStatus::Closed | OrderStatus::Failed => Some(format!("/orders/{id}/failed")),
        OrderStatus::Pending | OrderStatus::Closing => None,
    }
}

#[component]
fn Qr(svg: Option<String>) -> impl IntoView {
    let i18n = use_i18n();
    match svg {
        // Generated on the server from WeChat's code_url; contains no user text.
        Some(svg) => view! { <div class="qr" data-testid="qr" role="img" aria-label=i18n.t(Key::qr_label) inner_html=svg></div> }.into_any(),
        None => view! { <div class="qr qr-waiting" data-testid="qr-pending">{i18n.t(Key::qr_preparing)}</div> }.into_any(),
    }
}

/// The live part of the checkout: status, countdown, cancel. `children` is the QR.
#[island]
fn Checkout(o: OrderView, qr_ready: bool, children: Children) -> impl IntoView {
    let waiting_for_qr = !qr_ready && o.status == OrderStatus::Pending;
    let status = RwSignal::new(o.status);
    let remaining = RwSignal::new(o.remaining_ms);
    // Polls in a row that got no answer (server restarting, network gone): said on the page.
    let failed_polls = RwSignal::new(0u32);
    let i18n = use_i18n();
    let t = move |k| i18n.t(k);
    let id = o.id.clone();

    // Browser only (effects do not run on the server): tick the countdown, poll the status —
    // every 3 seconds while the tab is visible, and at once when it comes back into view (a
    // hidden tab polling for minutes costs a phone's battery and data for nothing).
    Effect::new({
        let id = id.clone();
        move |_| {
            let tick = set_interval_with_handle(
                move || remaining.update(|r| *r = (*r - 1000).max(0)),
                Duration::from_secs(1),
            )
            .ok();
            let poll_now = {
                let id = id.clone();
                move || {
                    let id = id.clone();
                    leptos::task::spawn_local(async move {
                        match order_status(id).await {
                            Ok(s) => {
                                failed_polls.set(0);
                                status.set(s.status);
                                remaining.set(s.remaining_ms);
                                if waiting_for_qr && s.qr_ready {
                                    // The QR is drawn by the server: fetch the page again.
                                    let _ = window().location().reload();
                                }
                            }
                            Err(_) => failed_polls.update(|n| *n += 1),
                        }
                    });
                }
            };
            let poll = set_interval_with_handle(
                {
                    let poll_now = poll_now.clone();
                    move || {
                        if !document().hidden() {
                            poll_now()
                        }
                    }
                },
                POLL_EVERY,
            )
            .ok();
            let back_in_view = window_event_listener(leptos::ev::visibilitychange, move |_| {
                if !document().hidden() {
                    poll_now()
                }
            });
            on_cleanup(move || {
                for handle in [tick, poll].into_iter().flatten() {
                    handle.clear();
                }
                back_in_view.remove();
            });
        }
    });
    Effect::new({
        let id = id.clone();
        move |_| {
            if let Some(path) = result_path(&id, status.get()) {
                super::go_to(&path, true);
            }
        }
    });

    let cancel = ServerAction::<CancelOrder>::new();
    let cancelling = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some(Ok(s)) = cancel.value().get() {
            status.set(s.status);
        }
    });
    let on_cancel = {
        let id = id.clone();
        move |_| {
            cancelling.set(true);
            cancel.dispatch(CancelOrder { id: id.clone() });
        }
    };

    let status_text = move || {
        let key = match status.get() {
            OrderStatus::Pending if cancel.pending().get() => Key::status_cancelling,
            OrderStatus::Pending if remaining.get() == 0 => Key::status_time_up,
            OrderStatus::Pending => Key::status_waiting,
            OrderStatus::Closing if cancelling.get() => Key::status_cancelling,
            OrderStatus::Closing => Key::status_time_up,
            OrderStatus::Paid => Key::status_paid_moving,
            OrderStatus::Closed | OrderStatus::Failed => Key::status_ended,
        };
        t(key)
    };
    let time_left_notice = Memo::new(move |_| match (status.get(), remaining.get()) {
        (OrderStatus::Pending, r) if r > 0 && r <= 60_000 => Some(Key::time_left_1),
        (OrderStatus::Pending, r) if r > 60_000 && r <= 300_000 => Some(Key::time_left_5),
        _ => None,
    });
    let items = o.items.clone();
    view! {
        <section class="card checkout" data-testid="checkout">
            <p class="muted small center">{i18n.t_with(Key::pay_shop, &[("shop", &o.shop_name)])}</p>
            <p class="amount center" data-testid="amount">{o.amount.yuan()}</p>
            <div class="qr-box" class:dimmed=move || status.get() != OrderStatus::Pending || cancelling.get()>
                {children()}
            </div>
            <div class="notice on-phone" data-testid="phone-notice">
                <p><strong>{t(Key::phone_title)}</strong>" "{t(Key::phone_body)}</p>
                <p class="center">{t(Key::order_number)}<br/><span class="mono big-no" data-testid="phone-order-no">{o.id.clone()}</span></p>
                <p class="center">{t(Key::amount)}<br/><strong class="big-no">{o.amount.yuan()}</strong></p>
            </div>
            <p class="scan-hint center">
                <span class="wechat-dot" aria-hidden="true"></span>
                {t(Key::scan_hint)}
            </p>
            <p class="status center" data-testid="status" aria-live="polite">
                <span class="spinner" aria-hidden="true"></span>
                {status_text}
            </p>
            <Show when=move || { failed_polls.get() >= 2 }>
                <p class="notice center" role="status" data-testid="connection-lost">
                    {t(Key::connection_lost)}
                </p>
            </Show>
            // The ticking countdown is a timer (not read out every second); screen readers hear
            // only when five minutes and one minute are left.
            <p class="sr-only" aria-live="polite" data-testid="countdown-announcement">{move || time_left_notice.get().map(t)}</p>
            <p class="countdown center" role="timer" class:hidden=move || cancelling.get() || status.get() != OrderStatus::Pending>
                {t(Key::time_left)}" "
                <strong data-testid="countdown">{move || mm_ss(remaining.get())}</strong>
            </p>
            <Show when=move || status.get() == OrderStatus::Pending && !cancelling.get()>
                <p class="center">
                    <button class="button link" data-testid="cancel" on:click=on_cancel.clone()>{t(Key::cancel_order)}</button>
                </p>
            </Show>
            {move || cancel.value().get().and_then(|r| r.err()).map(|e| view! {
                <p class="error" role="alert" data-testid="cancel-error">{e.text(i18n.lang())}</p>
            })}
            {o.sandbox_scan_url.clone().map(|url| view! {
                <p class="center sandbox-link">
                    <a href=url target="_blank" rel="noopener" data-testid="sandbox-scan">{t(Key::sandbox_scan)}</a>
                </p>
            })}
            <dl class="details">
                <dt>{t(Key::order_number)}</dt>
                <dd class="mono" data-testid="order-no">{o.id.clone()}</dd>
                {items.into_iter().map(|i| view! {
                    <dt>{format!("{} × {}", i.name, i.qty)}</dt>
                    <dd>{super::types::Fen::new(i.unit_price.get() * i.qty).map(|f| f.yuan()).unwrap_or_default()}</dd>
                }).collect_view()}
            </dl>
        </section>
    }
}
