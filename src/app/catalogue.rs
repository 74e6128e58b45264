//! The catalogue: goods with price and stock; choose quantities, place the order.

use std::collections::BTreeMap;

use leptos::prelude::*;
use leptos_router::hooks::use_navigate;

use super::api::{get_catalogue, PlaceOrder};
use super::i18n::{use_i18n, Key};
use super::types::{CartLine, Fen, ProductView};

/// Places an order and, once placed, goes to its checkout (the catalogue and "order again").
pub fn place_and_go_to_checkout() -> ServerAction<PlaceOrder> {
    let place = ServerAction::<PlaceOrder>::new();
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(id)) = place.value().get() {
            navigate(&format!("/checkout/{id}"), Default::default());
        }
    });
    place
}

#[component]
pub fn CataloguePage() -> impl IntoView {
    let place = place_and_go_to_checkout();
    // Refetch after every attempt: stock may have moved.
    let catalogue = Resource::new(move || place.version().get(), |_| get_catalogue());
    let cart = RwSignal::new(BTreeMap::<String, i64>::new());
    let i18n = use_i18n();

    view! {
        <Suspense fallback=move || view! { <p class="muted">{i18n.t(Key::loading_shop)}</p> }>
            {move || catalogue.get().map(|c| match c {
                Err(e) => view! { <p class="error" role="alert">{move || e.text(i18n.lang())}</p> }.into_any(),
                Ok(c) => {
                    let products = c.products.clone();
                    let max_qty = c.max_qty;
                    let total = {
                        let products = products.clone();
                        move || {
                            let cart = cart.get();
                            products.iter().map(|p| p.price.get() * cart.get(&p.sku).copied().unwrap_or(0)).sum::<i64>()
                        }
                    };
                    let count = move || cart.get().values().sum::<i64>();
                    let submit = move |_| {
                        let lines: Vec<CartLine> = cart.get().into_iter().filter(|(_, q)| *q > 0).map(|(sku, qty)| CartLine { sku, qty }).collect();
                        place.dispatch(PlaceOrder { lines });
                    };
                    view! {
                        <section class="intro">
                            <h1>{c.shop_name.clone()}</h1>
                            <p class="muted">{i18n.t(Key::shop_intro)}</p>
                        </section>
                        <ul class="products">
                            {products.into_iter().map(|p| view! { <ProductCard p=p cart=cart max_qty=max_qty/> }).collect_view()}
                        </ul>
                        <div class="cart-bar" data-testid="cart-bar">
                            <div>
                                <div class="muted small">{move || i18n.t_with(Key::items_count, &[("count", &count().to_string())])}</div>
                                <div class="cart-total" data-testid="cart-total">{move || Fen::new(total()).map(Fen::yuan).unwrap_or_default()}</div>
                            </div>
                            <button
                                class="button primary"
                                data-testid="place-order"
                                disabled=move || count() == 0 || place.pending().get()
                                on:click=submit
                            >
                                {move || i18n.t(if place.pending().get() { Key::placing_order } else { Key::place_order })()}
                            </button>
                        </div>
                        {move || place.value().get().and_then(|r| r.err()).map(|e| view! {
                            <p class="error" role="alert" data-testid="place-error">{e.text(i18n.lang())}</p>
                        })}
                    }.into_any()
                }
            })}
        </Suspense>
    }
}

// Event handlers are dropped from the server render, so their captures look unused there.
#[cfg_attr(feature = "ssr", allow(unused_variables))]
#[component]
fn ProductCard(
    p: ProductView,
    cart: RwSignal<BTreeMap<String, i64>>,
    max_qty: i64,
) -> impl IntoView {
    let i18n = use_i18n();
    let sku = p.sku.clone();
    let stock = p.stock;
    let qty = {
        let sku = sku.clone();
        move || cart.get().get(&sku).copied().unwrap_or(0)
    };
    let set = {
        let sku = sku.clone();
        move |q: i64| {
            cart.update(|c| {
                c.insert(sku.clone(), q.clamp(0, stock.min(max_qty)));
            })
        }
    };
    let (dec, inc) = (set.clone(), set.clone());
    let qty_dec = qty.clone();
    let qty_inc = qty.clone();
    let qty_show = qty.clone();
    let qty_minus_disabled = qty.clone();
    let qty_plus_disabled = qty.clone();
    view! {
        <li class="product" data-sku=sku.clone() data-testid="product">
            <div class="product-art" aria-hidden="true">{p.name.chars().next().unwrap_or('·').to_string()}</div>
            <div class="product-info">
                <h2>{p.name.clone()}</h2>
                <p class="muted small">{p.description.clone()}</p>
                <p class="price">{p.price.yuan()}</p>
                <p class="stock small" data-testid="stock">
                    {move || if stock == 0 {
                        i18n.t(Key::sold_out)().to_string()
                    } else {
                        i18n.t_with(Key::stock_left, &[("count", &stock.to_string())])
                    }}
                </p>
            </div>
            <div class="stepper" role="group" aria-label={
                let name = p.name.clone();
                move || i18n.t_with(Key::qty_of, &[("name", &name)])
            }>
                <button aria-label=i18n.t(Key::fewer) data-testid="dec" disabled=move || { qty_minus_disabled() == 0 } on:click=move |_| dec(qty_dec() - 1)>"−"</button>
                <span class="qty" data-testid="qty">{move || qty_show()}</span>
                <button aria-label=i18n.t(Key::more) data-testid="inc" disabled=move || { qty_plus_disabled() >= stock.min(max_qty) } on:click=move |_| inc(qty_inc() + 1)>"+"</button>
            </div>
        </li>
    }
}
