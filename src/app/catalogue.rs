//! The catalogue: goods with price and stock; choose quantities, place the order.

use std::collections::BTreeMap;

use leptos::prelude::*;

use super::api::{get_catalogue, Catalogue, PlaceOrder};
use super::i18n::{use_i18n, Key};
use super::types::{CartLine, Fen, ProductView};

type Cart = BTreeMap<String, i64>;

/// Places an order and, once placed, goes to its checkout (the catalogue and "order again").
pub fn place_and_go_to_checkout() -> ServerAction<PlaceOrder> {
    let place = ServerAction::<PlaceOrder>::new();
    Effect::new(move |_| {
        if let Some(Ok(id)) = place.value().get() {
            saved_cart::clear();
            super::go_to(&format!("/checkout/{id}"), false);
        }
    });
    place
}

#[component]
pub fn CataloguePage() -> impl IntoView {
    let catalogue = Resource::new(|| (), |_| get_catalogue());
    let i18n = use_i18n();
    view! {
        <Suspense fallback=move || view! { <p class="muted">{i18n.t(Key::loading_shop)}</p> }>
            {move || catalogue.get().map(|c| match c {
                Err(e) => view! { <p class="error" role="alert">{e.text(i18n.lang())}</p> }.into_any(),
                Ok(c) => view! {
                    <section class="intro">
                        <h1>{c.shop_name.clone()}</h1>
                        <p class="muted">{i18n.t(Key::shop_intro)}</p>
                    </section>
                    <Shop catalogue=c/>
                }.into_any(),
            })}
        </Suspense>
    }
}

/// The goods, the cart and the order button. The cart lives in the tab's session storage, so it
/// survives a reload (a language switch) and the back button, and is emptied once ordered.
#[island]
fn Shop(catalogue: Catalogue) -> impl IntoView {
    let i18n = use_i18n();
    let max_qty = catalogue.max_qty;
    let products = RwSignal::new(catalogue.products);
    let cart = RwSignal::new(Cart::new());
    let place = place_and_go_to_checkout();

    // Browser only: bring back this tab's cart first, then save every change to it.
    Effect::new(move |first: Option<()>| {
        if first.is_none() {
            if let Some(saved) = saved_cart::load() {
                cart.set(fit_to_stock(saved, &products.get_untracked(), max_qty));
            }
        }
        saved_cart::save(&cart.get());
    });
    // A refused order (stock moved under it, say): show the goods as they are now.
    Effect::new(move |_| {
        if let Some(Err(_)) = place.value().get() {
            leptos::task::spawn_local(async move {
                if let Ok(now) = get_catalogue().await {
                    cart.update(|c| *c = fit_to_stock(std::mem::take(c), &now.products, max_qty));
                    products.set(now.products);
                }
            });
        }
    });

    let total = move || {
        let cart = cart.get();
        products.with(|ps| {
            ps.iter()
                .map(|p| p.price.get() * cart.get(&p.sku).copied().unwrap_or(0))
                .sum::<i64>()
        })
    };
    let count = move || cart.with(|c| c.values().sum::<i64>());
    let submit = move |_| {
        let lines: Vec<CartLine> = cart
            .get()
            .into_iter()
            .filter(|(_, q)| *q > 0)
            .map(|(sku, qty)| CartLine { sku, qty })
            .collect();
        place.dispatch(PlaceOrder { lines });
    };
    view! {
        <ul class="products">
            {move || products.get().into_iter().map(|p| view! { <ProductCard p=p cart=cart max_qty=max_qty/> }).collect_view()}
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
                {move || i18n.t(if place.pending().get() { Key::placing_order } else { Key::place_order })}
            </button>
        </div>
        {move || place.value().get().and_then(|r| r.err()).map(|e| view! {
            <p class="error" role="alert" data-testid="place-error">{e.text(i18n.lang())}</p>
        })}
    }
}

/// The cart with every quantity within what is in stock and what one order may take; goods no
/// longer sold are dropped.
fn fit_to_stock(cart: Cart, products: &[ProductView], max_qty: i64) -> Cart {
    cart.into_iter()
        .filter_map(|(sku, qty)| {
            let p = products.iter().find(|p| p.sku == sku)?;
            let qty = qty.clamp(0, p.stock.min(max_qty));
            (qty > 0).then_some((sku, qty))
        })
        .collect()
}

/// This tab's cart in `sessionStorage` (browser only; nothing is kept on the server before an
/// order is placed).
mod saved_cart {
    use super::Cart;

    const KEY: &str = "scanpay.cart";

    #[cfg(feature = "hydrate")]
    fn storage() -> Option<leptos::web_sys::Storage> {
        leptos::prelude::window().session_storage().ok().flatten()
    }

    pub fn load() -> Option<Cart> {
        #[cfg(feature = "hydrate")]
        return leptos::serde_json::from_str(&storage()?.get_item(KEY).ok()??).ok();
        #[cfg(not(feature = "hydrate"))]
        None
    }

    pub fn save(cart: &Cart) {
        #[cfg(feature = "hydrate")]
        if let (Some(s), Ok(json)) = (storage(), leptos::serde_json::to_string(cart)) {
            let _ = s.set_item(KEY, &json);
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = (cart, KEY);
    }

    pub fn clear() {
        #[cfg(feature = "hydrate")]
        if let Some(s) = storage() {
            let _ = s.remove_item(KEY);
        }
    }
}

// Event handlers are dropped from the server render, so their captures look unused there.
#[cfg_attr(feature = "ssr", allow(unused_variables))]
#[component]
fn ProductCard(p: ProductView, cart: RwSignal<Cart>, max_qty: i64) -> impl IntoView {
    let i18n = use_i18n();
    let sku = p.sku.clone();
    let limit = p.stock.min(max_qty);
    let qty = {
        let sku = sku.clone();
        move || cart.with(|c| c.get(&sku).copied().unwrap_or(0))
    };
    let set = {
        let sku = sku.clone();
        move |q: i64| {
            cart.update(|c| {
                c.insert(sku.clone(), q.clamp(0, limit));
            })
        }
    };
    let (dec, inc) = (set.clone(), set);
    let stock_text = if p.stock == 0 {
        i18n.t(Key::sold_out).to_string()
    } else {
        i18n.t_with(Key::stock_left, &[("count", &p.stock.to_string())])
    };
    view! {
        <li class="product" data-sku=sku.clone() data-testid="product">
            <div class="product-art" aria-hidden="true">{p.name.chars().next().unwrap_or('·').to_string()}</div>
            <div class="product-info">
                <h2>{p.name.clone()}</h2>
                <p class="muted small">{p.description.clone()}</p>
                <p class="price">{p.price.yuan()}</p>
                <p class="stock small" data-testid="stock">{stock_text}</p>
            </div>
            <div class="stepper" role="group" aria-label=i18n.t_with(Key::qty_of, &[("name", &p.name)])>
                <button aria-label=i18n.t(Key::fewer) data-testid="dec" disabled={ let qty = qty.clone(); move || qty() == 0 } on:click={ let qty = qty.clone(); move |_| dec(qty() - 1) }>"−"</button>
                <span class="qty" data-testid="qty">{ let qty = qty.clone(); move || qty() }</span>
                <button aria-label=i18n.t(Key::more) data-testid="inc" disabled={ let qty = qty.clone(); move || qty() >= limit } on:click=move |_| inc(qty() + 1)>"+"</button>
            </div>
        </li>
    }
}
