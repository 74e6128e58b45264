//! Server functions: the browser's only way in. Each checks the caller's session; an order of
//! another session is answered exactly like a missing one (404).

use leptos::prelude::*;
use leptos::server_fn::codec::Json;

#[cfg(feature = "ssr")]
use super::i18n::{text, text_with, Key, Lang};
use super::types::{AppError, CartLine, OrderSummary, OrderView, ProductView, StatusView};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Catalogue {
    pub shop_name: String,
    /// Most of one product an order may take.
    pub max_qty: i64,
    pub products: Vec<ProductView>,
}

#[server(prefix = "/api", endpoint = "catalogue")]
pub async fn get_catalogue() -> Result<Catalogue, AppError> {
    let ctx = ssr::ctx()?;
    let lang = ssr::lang();
    let products = ctx.store.products().await.map_err(ssr::internal)?;
    Ok(Catalogue {
        shop_name: ctx.settings.shop_name.clone(),
        max_qty: ctx.settings.limits.item_qty,
        products: products
            .iter()
            .map(|p| ProductView {
                price: super::types::Fen::new(p.price_fen)
                    .unwrap_or(super::types::Fen::new(0).unwrap()),
                sku: p.sku.clone(),
                name: ssr::product_text(p, lang).0.to_string(),
                description: ssr::product_text(p, lang).1.to_string(),
                stock: p.stock,
            })
            .collect(),
    })
}

#[server(prefix = "/api", endpoint = "place_order", input = Json)]
pub async fn place_order(lines: Vec<CartLine>) -> Result<String, AppError> {
    use crate::server::orders::place::{self, PlaceError};
    let ctx = ssr::ctx()?;
    let session = ssr::session()?;
    let lang = ssr::lang();
    if !ctx.order_rate.allow(ssr::client_ip(&ctx)) {
        return Err(ssr::status(
            429,
            AppError::BadRequest(text(lang, Key::err_rate_limited).into()),
        ));
    }
    match place::place_order(&ctx, &session, &lines).await {
        Ok(id) => Ok(id),
        Err(PlaceError::Invalid(r)) => {
            let r = ssr::in_language(&ctx, lang, r).await;
            Err(ssr::status(
                400,
                AppError::BadRequest(ssr::refusal_text(&r, lang)),
            ))
        }
        Err(PlaceError::Limited(r)) => Err(ssr::status(
            429,
            AppError::BadRequest(ssr::refusal_text(&r, lang)),
        )),
        Err(PlaceError::Db(e)) => Err(ssr::internal(e)),
    }
}

#[server(prefix = "/api", endpoint = "order")]
pub async fn get_order(id: String) -> Result<OrderView, AppError> {
    let ctx = ssr::ctx()?;
    let order = ssr::own_order(&ctx, &id).await?;
    ssr::order_view(&ctx, order).await
}

/// The checkout's 3-second poll. Its common case (a script asking for JSON) is answered by a
/// plain handler in front of this one, the same answer in the same bytes (`server::http::poll`);
/// this one answers the rest (arguments that do not parse, HTML forms).
#[server(prefix = "/api", endpoint = "order_status")]
pub async fn order_status(id: String) -> Result<StatusView, AppError> {
    let ctx = ssr::ctx()?;
    match crate::server::cache::poll(&*ctx.cache, &ctx.store, &ssr::session()?, &id).await {
        Ok(Some(view)) => Ok(view),
        Ok(None) => Err(ssr::status(404, AppError::NotFound)),
        Err(e) => Err(ssr::internal(e)),
    }
}

/// The shopper gives up on an unpaid order: the close starts (only from pending: a second cancel
/// changes nothing), and within a couple of seconds the answer is the status reached (`Closing`
/// until WeChat confirms the close; the checkout polls for the outcome). Limited per session and
/// per client address.
#[server(prefix = "/api", endpoint = "cancel_order")]
pub async fn cancel_order(id: String) -> Result<StatusView, AppError> {
    use crate::server::orders::cancel::{self, CancelError};
    use crate::server::support::limits::Key as LimitKey;
    let ctx = ssr::ctx()?;
    let lang = ssr::lang();
    let session = ssr::session()?;
    // The address first: fresh sessions cost a client nothing, so they cannot be what lets it in.
    if !ctx.cancel_rate.allow(ssr::client_ip(&ctx))
        || !ctx.cancel_rate.allow(LimitKey::Session(session))
    {
        return Err(ssr::status(
            429,
            AppError::BadRequest(text(lang, Key::err_cancel_limited).into()),
        ));
    }
    let order = ssr::own_order(&ctx, &id).await?;
    match cancel::cancel(&ctx, order).await {
        Ok(order) => Ok(StatusView {
            status: order.status,
            remaining_ms: ssr::remaining(&order),
            qr_ready: order.code_url.is_some(),
        }),
        Err(CancelError::AlreadyPaid) => Err(ssr::status(
            409,
            AppError::BadRequest(text(lang, Key::err_already_paid).into()),
        )),
        Err(CancelError::PaidBeforeCancel) => Err(ssr::status(
            409,
            AppError::BadRequest(text(lang, Key::err_paid_before_cancel).into()),
        )),
        Err(CancelError::Gone) => Err(ssr::status(404, AppError::NotFound)),
        Err(CancelError::Db(e)) => Err(ssr::internal(e)),
    }
}

/// How many of their orders a shopper sees (newest first).
pub const MY_ORDERS_LIMIT: i64 = 50;

/// The session's orders, newest first, without the ones the shopper hid.
#[server(prefix = "/api", endpoint = "my_orders")]
pub async fn my_orders() -> Result<Vec<OrderSummary>, AppError> {
    let ctx = ssr::ctx()?;
    let session = ssr::session()?;
    let rows = ctx
        .store
        .session_orders(&session, MY_ORDERS_LIMIT)
        .await
        .map_err(ssr::internal)?;
    rows.into_iter()
        .map(|o| {
            Ok(OrderSummary {
                status: o.status,
                amount: super::types::Fen::new(o.total_fee).ok_or(AppError::Internal)?,
                body: o.body,
                placed_at: crate::server::support::clock::beijing_display(o.created_at),
                refunded: super::types::Fen::new(o.refunded_fee).ok_or(AppError::Internal)?,
                id: o.id,
            })
        })
        .collect()
}

/// Hides a finished order from the shopper's list. The order stays on record (operators see it).
#[server(prefix = "/api", endpoint = "hide_order")]
pub async fn hide_order(id: String) -> Result<(), AppError> {
    use crate::server::domain::HideOutcome;
    let ctx = ssr::ctx()?;
    let session = ssr::session()?;
    if id.is_empty() || id.len() > 32 {
        return Err(ssr::status(404, AppError::NotFound));
    }
    match ctx.store.hide(&id, &session).await.map_err(ssr::internal)? {
        HideOutcome::Hidden => Ok(()),
        HideOutcome::NotFound => Err(ssr::status(404, AppError::NotFound)),
        HideOutcome::NotFinished => Err(ssr::status(
            409,
            AppError::BadRequest(text(ssr::lang(), Key::err_hide_unfinished).into()),
        )),
    }
}

/// Remembers the shopper's language (`en` or `zh-CN`) in the `lang` cookie for a year.
#[server(prefix = "/api", endpoint = "set_language")]
pub async fn set_language(lang: String) -> Result<(), AppError> {
    use axum::http::{header::SET_COOKIE, HeaderValue};
    let Some(chosen) = Lang::parse(&lang).filter(|l| l.code().eq_ignore_ascii_case(lang.trim()))
    else {
        let code: String = lang.chars().take(16).collect();
        return Err(ssr::status(
            400,
            AppError::BadRequest(text_with(
                ssr::lang(),
                Key::err_bad_language,
                &[("code", &code)],
            )),
        ));
    };
    let cookie = format!(
        "{}={}; Path=/; Max-Age=31536000; SameSite=Lax",
        super::i18n::COOKIE,
        chosen.code()
    );
    if let (Some(res), Ok(value)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        HeaderValue::from_str(&cookie),
    ) {
        res.append_header(SET_COOKIE, value);
    }
    Ok(())
}

#[cfg(feature = "ssr")]
mod ssr {
    use std::sync::Arc;

    use super::super::i18n::{text, text_with, Key, Lang};
    use super::super::types::{AppError, Fen, OrderItemView, OrderView};
    use crate::server::domain::{pay_by, OrderRow, Product};
    use crate::server::orders::place::Refusal;
    use crate::server::state::{AppState, Ctx};
    use crate::server::support::clock::now_ms;
    use crate::server::support::session::SessionId;
    use leptos::prelude::*;

    /// Everything but unreserved characters is escaped in a query value.
    const QUERY_VALUE: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');

    pub fn ctx() -> Result<Arc<Ctx>, AppError> {
        use_context::<AppState>()
            .map(|s| s.ctx)
            .ok_or(AppError::Internal)
    }

    /// The caller's address (the TCP peer, or the trusted proxy header when configured); None
    /// when the configured header is missing (such requests share one allowance).
    pub fn client_ip(ctx: &Ctx) -> Option<std::net::IpAddr> {
        let parts = use_context::<axum::http::request::Parts>()?;
        crate::server::support::limits::client_ip(&parts, ctx.settings.client_ip_header.as_ref())
    }

    /// A refusal as the shopper reads it, in `lang`.
    pub fn refusal_text(r: &Refusal, lang: Lang) -> String {
        match r {
            Refusal::UnknownProduct(sku) => {
                text_with(lang, Key::err_unknown_product, &[("sku", sku)])
            }
            Refusal::QtyTooSmall(sku) => text_with(lang, Key::err_qty_min, &[("sku", sku)]),
            Refusal::QtyTooLarge { sku, max } => text_with(
                lang,
                Key::err_qty_max,
                &[("sku", sku), ("max", &max.to_string())],
            ),
            Refusal::EmptyCart => text(lang, Key::err_empty_cart).to_string(),
            Refusal::SoldOut(name) => text_with(lang, Key::err_sold_out, &[("name", name)]),
            Refusal::OnlyLeft { name, left } => text_with(
                lang,
                Key::err_only_left,
                &[("name", name), ("left", &left.to_string())],
            ),
            Refusal::TooManyOpen(n) => {
                text_with(lang, Key::err_too_many_open, &[("count", &n.to_string())])
            }
        }
    }

    /// A product's name and description in `lang` (English where there is no translation).
    pub fn product_text(p: &Product, lang: Lang) -> (&str, &str) {
        match lang {
            Lang::ZhCn => (
                p.name_zh.as_deref().unwrap_or(&p.name),
                p.description_zh.as_deref().unwrap_or(&p.description),
            ),
            Lang::En => (&p.name, &p.description),
        }
    }

    /// The language of this request (the `lang` cookie, else `Accept-Language`).
    pub fn lang() -> super::super::i18n::Lang {
        use_context::<axum::http::request::Parts>()
            .map(|p| super::super::i18n::from_headers(&p.headers))
            .unwrap_or_default()
    }

    pub fn session() -> Result<String, AppError> {
        use_context::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<SessionId>().cloned())
            .map(|s| s.0)
            .ok_or(AppError::Internal)
    }

    /// Sets the HTTP status of the current response (page or server function).
    pub fn status(code: u16, e: AppError) -> AppError {
        if let Some(opts) = use_context::<leptos_axum::ResponseOptions>() {
            opts.set_status(
                axum::http::StatusCode::from_u16(code)
                    .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR),
            );
        }
        e
    }

    pub fn internal(e: impl std::fmt::Display) -> AppError {
        tracing::error!(error = %e, "server function failed");
        status(500, AppError::Internal)
    }

    /// The order, if it exists and belongs to this session; otherwise 404.
    pub async fn own_order(ctx: &Ctx, id: &str) -> Result<OrderRow, AppError> {
        let session = session()?;
        if id.is_empty() || id.len() > 32 {
            return Err(status(404, AppError::NotFound));
        }
        match ctx.store.load(id).await.map_err(internal)? {
            Some(o) if o.session_id == session => Ok(o),
            _ => Err(status(404, AppError::NotFound)),
        }
    }

    /// Time left to pay, as WeChat counts it (its `time_expire`, a little before our deadline).
    pub fn remaining(o: &OrderRow) -> i64 {
        (pay_by(o.created_at, o.deadline_at) - now_ms()).max(0)
    }

    /// A refusal naming a product, with the product's name in `lang`.
    pub async fn in_language(ctx: &Ctx, lang: super::super::i18n::Lang, r: Refusal) -> Refusal {
        let Ok(products) = ctx.store.products().await else {
            return r;
        };
        let local = |name: String| {
            products
                .iter()
                .find(|p| p.name == name)
                .map_or(name, |p| product_text(p, lang).0.to_string())
        };
        match r {
            Refusal::SoldOut(name) => Refusal::SoldOut(local(name)),
            Refusal::OnlyLeft { name, left } => Refusal::OnlyLeft {
                name: local(name),
                left,
            },
            other => other,
        }
    }

    pub async fn order_view(ctx: &Ctx, o: OrderRow) -> Result<OrderView, AppError> {
        let items = ctx.store.items(&o.id).await.map_err(internal)?;
        // Item names as the shopper reads them (the order keeps the English ones it was placed with).
        let lang = lang();
        let products = match lang {
            super::super::i18n::Lang::En => Vec::new(),
            _ => ctx.store.products().await.map_err(internal)?,
        };
        let name_of = |sku: &str, name: String| {
            products
                .iter()
                .find(|p| p.sku == sku)
                .map_or(name, |p| product_text(p, lang).0.to_string())
        };
        let showing_qr = o.status == super::super::types::OrderStatus::Pending;
        let qr_svg = o
            .code_url
            .as_deref()
            .filter(|_| showing_qr)
            .and_then(crate::server::qr::payment_svg)
            .map(|svg| svg.to_string());
        let sandbox_scan_url = match (ctx.settings.sandbox_phone_base(), &o.code_url) {
            (Some(base), Some(code)) if showing_qr => {
                let code = percent_encoding::utf8_percent_encode(code, QUERY_VALUE);
                Some(format!("{base}scan?code_url={code}"))
            }
            _ => None,
        };
        Ok(OrderView {
            remaining_ms: remaining(&o),
            shop_name: ctx.settings.shop_name.clone(),
            status: o.status,
            amount: Fen::new(o.total_fee).ok_or(AppError::Internal)?,
            items: items
                .into_iter()
                .map(|i| OrderItemView {
                    name: name_of(&i.sku, i.name),
                    sku: i.sku,
                    qty: i.qty,
                    unit_price: Fen::new(i.unit_price_fen).unwrap_or(Fen::new(0).unwrap()),
                })
                .collect(),
            qr_svg,
            sandbox_scan_url,
            transaction_id: o.transaction_id,
            paid_at: o
                .paid_at
                .map(crate::server::support::clock::beijing_display),
            failure_reason: o.failure_reason,
            refunded: Fen::new(o.refunded_fee).ok_or(AppError::Internal)?,
            id: o.id,
        })
    }
}
