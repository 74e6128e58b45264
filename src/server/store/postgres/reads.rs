//! PostgreSQL: read models (an order, its items, the catalogue) and generated secrets.

use sqlx::postgres::PgRow;
use sqlx::Row;

use super::PgStore;
use crate::app::types::{FailureReason, OrderStatus};
use crate::server::domain::Product;
use crate::server::domain::{ItemRow, OrderRow};
use crate::server::store::pool::{distinct, IDS_PER_STATEMENT};
use crate::server::store::ProductRow;
use crate::server::support::clock::now_ms;

pub(super) const ORDER_COLUMNS: &str =
    "id, session_id, status, total_fee, body, created_at, deadline_at, code_url, \
     transaction_id, paid_at, failure_reason, parked_at, next_check_at, refunded_fee";

pub(super) fn order_row(r: &PgRow) -> Result<OrderRow, sqlx::Error> {
    let status: String = r.try_get("status")?;
    let reason: Option<String> = r.try_get("failure_reason")?;
    Ok(OrderRow {
        id: r.try_get("id")?,
        session_id: r.try_get("session_id")?,
        status: OrderStatus::parse(&status)
            .ok_or_else(|| sqlx::Error::Decode(format!("status {status:?}").into()))?,
        total_fee: r.try_get("total_fee")?,
        body: r.try_get("body")?,
        created_at: r.try_get("created_at")?,
        deadline_at: r.try_get("deadline_at")?,
        code_url: r.try_get("code_url")?,
        transaction_id: r.try_get("transaction_id")?,
        paid_at: r.try_get("paid_at")?,
        failure_reason: reason.as_deref().and_then(FailureReason::parse),
        parked: r.try_get::<Option<i64>, _>("parked_at")?.is_some(),
        next_check_at: r.try_get("next_check_at")?,
        refunded_fee: r.try_get("refunded_fee")?,
    })
}

impl PgStore {
    pub async fn unfinished(&self) -> Result<Vec<(String, i64)>, sqlx::Error> {
        sqlx::query_as(
            "SELECT id, next_check_at FROM orders \
             WHERE status IN ('pending', 'closing') AND parked_at IS NULL AND next_check_at IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await
    }

    /// A shopper's orders, newest first, without the ones they hid.
    pub async fn session_orders(
        &self,
        session_id: &str,
        limit: i64,
    ) -> Result<Vec<OrderRow>, sqlx::Error> {
        let rows = sqlx::query(&format!(
            "SELECT {ORDER_COLUMNS} FROM orders WHERE session_id = $1 AND hidden_at IS NULL \
             ORDER BY created_at DESC, id DESC LIMIT $2"
        ))
        .bind(session_id)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(order_row).collect()
    }

    pub async fn load(&self, id: &str) -> Result<Option<OrderRow>, sqlx::Error> {
        let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_row).transpose()
    }

    /// The orders of `ids` that exist, in no particular order: one SELECT per
    /// `IDS_PER_STATEMENT` ids.
    pub async fn load_many(&self, ids: &[String]) -> Result<Vec<OrderRow>, sqlx::Error> {
        let mut found = Vec::with_capacity(ids.len());
        for chunk in distinct(ids).chunks(IDS_PER_STATEMENT) {
            let rows = sqlx::query(&format!(
                "SELECT {ORDER_COLUMNS} FROM orders WHERE id = ANY($1)"
            ))
            .bind(chunk)
            .fetch_all(&self.pool)
            .await?;
            for row in rows {
                found.push(order_row(&row)?);
            }
        }
        Ok(found)
    }

    pub async fn items(&self, id: &str) -> Result<Vec<ItemRow>, sqlx::Error> {
        let rows: Vec<(String, String, i64, i64)> = sqlx::query_as(
            "SELECT sku, name, unit_price_fen, qty FROM order_items WHERE order_id = $1 ORDER BY sku",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(ItemRow::from).collect())
    }

    pub async fn products(&self) -> Result<Vec<Product>, sqlx::Error> {
        let rows: Vec<ProductRow> = sqlx::query_as(
            "SELECT sku, name, description, price_fen, stock, name_zh, description_zh \
             FROM products ORDER BY position",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(Product::from).collect())
    }

    pub async fn generated_secret(&self, name: &str, fresh: &str) -> Result<String, sqlx::Error> {
        sqlx::query(
            "INSERT INTO app_secrets (name, value, created_at) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING",
        )
        .bind(name)
        .bind(fresh)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        sqlx::query_scalar("SELECT value FROM app_secrets WHERE name = $1")
            .bind(name)
            .fetch_one(&self.pool)
            .await
    }

    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.pool)
            .await
            .map(|_| ())
    }
}
