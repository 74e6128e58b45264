//! Flow 1, place order: validate the cart, reserve stock and insert the order in one transaction,
//! then ask WeChat for a QR code.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::reconcile::{self, Action, QrRoute};
use super::state::{Cause, CreateError, NewItem, NewOrder, OrderRow};
use crate::app::i18n::{text, text_with, Key, Lang};
use crate::app::types::CartLine;
use crate::server::store::now_ms;
use crate::server::wxpay::client::random_alnum;
use crate::server::wxpay::time::format_beijing;
use crate::server::wxpay::{UnifiedOrderRequest, UnifiedOrderResponse, WxPayError};
use crate::server::Ctx;

/// How long the shopper waits for the QR code before the checkout page shows (it picks up a code
/// that arrives later by itself).
pub const ANSWER_WITHIN: Duration = Duration::from_millis(1500);

#[derive(Debug, thiserror::Error)]
pub enum PlaceError {
    /// The shopper can fix this; the message says how.
    #[error("{0}")]
    Invalid(Refusal),
    /// The shopper has reached a limit; the message says which.
    #[error("{0}")]
    Limited(Refusal),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

/// Why an order was not placed, told to the shopper in their language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    UnknownProduct(String),
    QtyTooSmall(String),
    QtyTooLarge { sku: String, max: i64 },
    EmptyCart,
    SoldOut(String),
    OnlyLeft { name: String, left: i64 },
    TooManyOpen(i64),
}

impl Refusal {
    pub fn text(&self, lang: Lang) -> String {
        match self {
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
}

/// In English (logs, and shoppers who chose it).
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text(Lang::En))
    }
}

/// A validated cart: known-good lines, merged by SKU, in a stable order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cart(Vec<NewItem>);

impl Cart {
    /// `max_qty`: the most of one product an order may take (`SCANPAY_LIMIT_ITEM_QTY`).
    pub fn parse(lines: &[CartLine], max_qty: i64) -> Result<Self, PlaceError> {
        let invalid = |r: Refusal| Err(PlaceError::Invalid(r));
        let mut merged: BTreeMap<&str, i64> = BTreeMap::new();
        for line in lines {
            if line.sku.is_empty()
                || line.sku.len() > 32
                || !line
                    .sku
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            {
                return invalid(Refusal::UnknownProduct(line.sku.clone()));
            }
            if line.qty == 0 {
                continue; // an untouched quantity box
            }
            if line.qty < 0 {
                return invalid(Refusal::QtyTooSmall(line.sku.clone()));
            }
            let q = merged.entry(&line.sku).or_insert(0);
            *q = q.saturating_add(line.qty);
            if *q > max_qty {
                return invalid(Refusal::QtyTooLarge {
                    sku: line.sku.clone(),
                    max: max_qty,
                });
            }
        }
        if merged.is_empty() {
            return invalid(Refusal::EmptyCart);
        }
        Ok(Cart(
            merged
                .into_iter()
                .map(|(sku, qty)| NewItem {
                    sku: sku.to_string(),
                    qty,
                })
                .collect(),
        ))
    }
}

/// A fresh out_trade_no: `SP` + Beijing date-time + 12 random alphanumerics (28 characters,
/// inside WeChat's charset and 32-character limit, unguessable).
pub fn new_order_id(now_ms: i64) -> String {
    format!("SP{}{}", format_beijing(now_ms), random_alnum(12))
}

/// Places the order and returns its id, within [`ANSWER_WITHIN`]: the QR code is requested in the
/// background and the checkout page shows it when it comes. A definite WeChat refusal leaves the
/// order `failed` or closing (see [`request_payment`]); an uncertain answer leaves it `pending`
/// for the sweep, which asks again within one sweep interval.
pub async fn place_order(
    ctx: &Arc<Ctx>,
    session_id: &str,
    lines: &[CartLine],
) -> Result<String, PlaceError> {
    let limits = &ctx.settings.limits;
    let cart = Cart::parse(lines, limits.item_qty)?;
    let now = now_ms();
    let ttl = ctx.settings.order_ttl.as_millis() as i64;
    let order = NewOrder {
        id: new_order_id(now),
        session_id: session_id.to_string(),
        created_at: now,
        deadline_at: now + ttl,
        first_check_at: now + 2 * ctx.settings.sweep_interval.as_millis() as i64,
        max_open: limits.open_orders,
        items: cart.0,
    };
    match ctx
        .store
        .create_order(&order, &ctx.settings.shop_name)
        .await
    {
        Ok(_) => {}
        Err(CreateError::UnknownSku(sku)) => {
            return Err(PlaceError::Invalid(Refusal::UnknownProduct(sku)))
        }
        Err(CreateError::OutOfStock { name, left, .. }) => {
            return Err(PlaceError::Invalid(match left {
                0 => Refusal::SoldOut(name),
                left => Refusal::OnlyLeft { name, left },
            }))
        }
        Err(CreateError::TooManyOpen(n)) => {
            return Err(PlaceError::Limited(Refusal::TooManyOpen(n)))
        }
        Err(CreateError::Db(e)) => return Err(e.into()),
    };
    super::timeout::schedule(ctx, &order.id, order.deadline_at).await;

    let row = ctx
        .store
        .load(&order.id)
        .await?
        .ok_or(sqlx::Error::RowNotFound)?;
    let task = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            if let Err(e) = request_payment(&ctx, &row).await {
                tracing::warn!(order_id = %row.id, error = %e, "requesting the QR code failed; the sweep retries");
            }
        }
    });
    // Past the wait the request carries on; the shopper already sees the checkout.
    let _ = tokio::time::timeout(ANSWER_WITHIN, task).await;
    Ok(order.id)
}

/// The last moment WeChat takes payment (`time_expire`, whole seconds): a tenth of the time to pay,
/// at most a minute, before our deadline, so a payment cannot land after we have started closing
/// (the late-payment race shrinks to clock skew). Shoppers are shown this as their deadline.
pub fn pay_by(created_at: i64, deadline_at: i64) -> i64 {
    let margin = ((deadline_at - created_at) / 10).min(60_000);
    (deadline_at - margin).div_euclid(1000) * 1000
}

/// The unifiedorder request for an order, rebuilt from the order row alone, so asking again
/// (after an uncertain answer, from the sweep, after a restart) sends identical parameters and
/// WeChat treats it as the same payment rather than OUT_TRADE_NO_USED.
pub fn payment_request(ctx: &Ctx, o: &OrderRow) -> UnifiedOrderRequest {
    UnifiedOrderRequest {
        body: o.body.clone(),
        out_trade_no: o.id.clone(),
        total_fee: o.total_fee,
        spbill_create_ip: ctx.settings.wxpay_server_ip.clone(),
        notify_url: ctx.settings.notify_url(),
        product_id: o.id.clone(),
        time_start: Some(format_beijing(o.created_at)),
        time_expire: Some(format_beijing(pay_by(o.created_at, o.deadline_at))),
        attach: None,
    }
}

/// Asks WeChat for the order's QR code. An uncertain answer leaves the order pending and brings
/// its next check forward to one sweep interval. A definite refusal is never taken at its word
/// (OUT_TRADE_NO_USED and ORDERPAID mean WeChat may hold the order, even paid): WeChat is asked,
/// and only an order it confirms it never created is failed; one it holds unpaid is closed.
pub async fn request_payment(ctx: &Ctx, o: &OrderRow) -> Result<(), sqlx::Error> {
    let refusal = match unified_order_with_retry(ctx, &payment_request(ctx, o)).await {
        Ok(resp) => {
            ctx.store
                .record_code_url(&o.id, &resp.code_url, &resp.prepay_id)
                .await?;
            return Ok(());
        }
        Err(e) if e.is_retryable() => {
            tracing::warn!(order_id = %o.id, error = %e, "unifiedorder uncertain; the sweep asks again");
            let soon = now_ms() + ctx.settings.sweep_interval.as_millis() as i64;
            return ctx
                .store
                .schedule_check(&o.id, soon.min(o.deadline_at))
                .await;
        }
        // return_code=FAIL: WeChat refused the request itself (signature, merchant, format), so
        // it created nothing. Nothing can pay this order.
        Err(e @ WxPayError::Protocol { .. }) => {
            tracing::warn!(order_id = %o.id, error = %e, "unifiedorder refused; order failed");
            let reason = crate::app::types::FailureReason::PaymentNotCreated;
            ctx.store
                .fail(&o.id, reason, Cause::System, &e.to_string())
                .await?;
            return Ok(());
        }
        Err(e) => e,
    };
    tracing::warn!(order_id = %o.id, error = %refusal, "unifiedorder refused; asking WeChat what it holds");
    let answer = ctx.wxpay.order_query(&o.id).await;
    let action = reconcile::decide(o, &answer, now_ms(), QrRoute::Refused);
    match &action {
        Action::StartClose(reason) => {
            ctx.closer().run(&o.id, *reason, Cause::System).await?;
        }
        Action::Wait(why) => {
            tracing::info!(order_id = %o.id, why, "refused unifiedorder not settled yet");
            let soon = now_ms() + ctx.settings.sweep_interval.as_millis() as i64;
            ctx.store.schedule_check(&o.id, soon).await?;
        }
        _ => {
            let detail = format!("unifiedorder: {refusal}");
            let _ = ctx
                .store
                .note(&o.id, "unifiedorder_refused", Cause::System, &detail)
                .await;
            reconcile::settle(&ctx.store, o, &action, Cause::System).await?;
        }
    }
    Ok(())
}

/// Retries an uncertain failure once, with the same parameters (and so the same out_trade_no);
/// later attempts are the sweep's.
async fn unified_order_with_retry(
    ctx: &Ctx,
    req: &UnifiedOrderRequest,
) -> Result<UnifiedOrderResponse, WxPayError> {
    match ctx.wxpay.unified_order(req).await {
        Err(e) if e.is_retryable() => {
            tracing::info!(order_id = %req.out_trade_no, error = %e, "unifiedorder retry");
            tokio::time::sleep(ctx.retry_delay).await;
            ctx.wxpay.unified_order(req).await
        }
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(sku: &str, qty: i64) -> CartLine {
        CartLine {
            sku: sku.into(),
            qty,
        }
    }

    #[test]
    fn carts_are_validated_and_merged() {
        let c = Cart::parse(
            &[line("B", 1), line("A", 2), line("B", 3), line("C", 0)],
            10,
        )
        .unwrap();
        assert_eq!(
            c.0.iter()
                .map(|i| (i.sku.as_str(), i.qty))
                .collect::<Vec<_>>(),
            vec![("A", 2), ("B", 4)]
        );
        let msg = |lines: &[CartLine]| Cart::parse(lines, 99).unwrap_err().to_string();
        assert!(msg(&[]).contains("empty"));
        assert!(msg(&[line("A", 0)]).contains("empty"));
        assert!(msg(&[line("A", -1)]).contains("at least 1"));
        assert!(msg(&[line("A", 60), line("A", 40)]).contains("At most 99"));
        assert!(msg(&[line("A'; DROP", 1)]).contains("Unknown product"));
        let e = Cart::parse(&[line("A", 11)], 10).unwrap_err().to_string();
        assert_eq!(e, "At most 10 of A per order.");
    }

    #[test]
    fn wechat_stops_taking_payment_a_little_before_the_deadline() {
        assert_eq!(
            pay_by(0, 900_000),
            840_000,
            "15 minutes: one minute earlier"
        );
        assert_eq!(
            pay_by(0, 3_000),
            2_000,
            "3 s: 300 ms earlier, cut to the second"
        );
        assert_eq!(pay_by(1_500, 11_500), 10_000);
    }

    #[test]
    fn order_ids_fit_wechat_rules() {
        let id = new_order_id(1_761_723_532_000);
        assert_eq!(id.len(), 28);
        assert!(id.starts_with("SP20251029153852"));
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
