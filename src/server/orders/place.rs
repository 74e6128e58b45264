//! Flow 1, place order: validate the cart, reserve stock and insert the order in one transaction,
//! then ask WeChat for a QR code.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::app::types::{CartLine, OrderStatus};
use crate::server::domain::{CreateError, NewItem, NewOrder, OrderRow, ANSWER_WITHIN};
use crate::server::orders::{apply, qr};
use crate::server::state::Ctx;
use crate::server::support::clock::now_ms;
use crate::server::support::ids::new_order_id;

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

/// In plain English for logs; shoppers read it in their language (`app::api`).
impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::UnknownProduct(sku) => write!(f, "unknown product {sku}"),
            Refusal::QtyTooSmall(sku) => write!(f, "quantity below 1 for {sku}"),
            Refusal::QtyTooLarge { sku, max } => write!(f, "more than {max} of {sku}"),
            Refusal::EmptyCart => write!(f, "empty cart"),
            Refusal::SoldOut(name) => write!(f, "{name} is sold out"),
            Refusal::OnlyLeft { name, left } => write!(f, "only {left} left of {name}"),
            Refusal::TooManyOpen(n) => write!(f, "{n} unfinished orders already"),
        }
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

/// Places the order and returns its id, within [`ANSWER_WITHIN`]: the QR code is requested in the
/// background and the checkout page shows it when it comes. A definite WeChat refusal leaves the
/// order `failed` or closing (see `qr::request_payment`); an uncertain answer leaves it `pending`
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
    let created = match ctx
        .store
        .create_order(&order, &ctx.settings.shop_name)
        .await
    {
        Ok(c) => c,
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
    // The row as committed, without reading it back: the hooks and the QR request use it.
    let row = OrderRow {
        next_check_at: Some(order.first_check_at),
        id: order.id.clone(),
        session_id: order.session_id.clone(),
        status: OrderStatus::Pending,
        total_fee: created.total_fee,
        body: created.body,
        created_at: order.created_at,
        deadline_at: order.deadline_at,
        code_url: None,
        transaction_id: None,
        paid_at: None,
        failure_reason: None,
        parked: false,
        refunded_fee: 0,
    };
    apply::committed(ctx, &row).await;
    // The deadline's message is sent beside the answer: the SQL poller catches a lost one.
    tokio::spawn(ctx.deadlines.at(order.id.clone(), order.deadline_at));
    let task = tokio::spawn({
        let ctx = ctx.clone();
        async move {
            if let Err(e) = qr::request_payment(&ctx, &row).await {
                tracing::warn!(order_id = %row.id, error = %e, "requesting the QR code failed; the sweep retries");
            }
        }
    });
    // Past the wait the request carries on; the shopper already sees the checkout.
    let _ = tokio::time::timeout(ANSWER_WITHIN, task).await;
    Ok(order.id)
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
        let refusal = |lines: &[CartLine], max| match Cart::parse(lines, max) {
            Err(PlaceError::Invalid(r)) => r,
            other => panic!("{other:?}"),
        };
        assert_eq!(refusal(&[], 99), Refusal::EmptyCart);
        assert_eq!(refusal(&[line("A", 0)], 99), Refusal::EmptyCart);
        assert_eq!(
            refusal(&[line("A", -1)], 99),
            Refusal::QtyTooSmall("A".into())
        );
        assert_eq!(
            refusal(&[line("A", 60), line("A", 40)], 99),
            Refusal::QtyTooLarge {
                sku: "A".into(),
                max: 99
            }
        );
        assert_eq!(
            refusal(&[line("A'; DROP", 1)], 99),
            Refusal::UnknownProduct("A'; DROP".into())
        );
        assert_eq!(
            refusal(&[line("A", 11)], 10).to_string(),
            "more than 10 of A"
        );
    }
}
