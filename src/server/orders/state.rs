//! The order state machine: the only code that changes an order row.
//!
//! Every transition is one guarded `UPDATE … WHERE status IN (…)` whose `rows_affected` decides
//! what happens next, and appends to the order's event log in the same transaction. Stock moves
//! only inside those transactions, so it is reserved once and restored at most once.
//!
//! ```text
//! pending ──▶ paid          (notify / query SUCCESS)
//! pending ──▶ failed        (unifiedorder failed definitely; stock restored)
//! pending ──▶ closing ──▶ closed (stock restored)
//!                  └────▶ paid
//! ```

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use crate::app::types::{FailureReason, OrderStatus};
use crate::server::store::{now_ms, Db};
use crate::server::wxpay::client::random_alnum;

/// Who or what caused a transition; recorded on every event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Shopper,
    Notify,
    Sweep,
    Timeout,
    Operator,
    System,
}

impl Cause {
    pub fn as_str(self) -> &'static str {
        match self {
            Cause::Shopper => "shopper",
            Cause::Notify => "notify",
            Cause::Sweep => "sweep",
            Cause::Timeout => "timeout",
            Cause::Operator => "operator",
            Cause::System => "system",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewItem {
    pub sku: String,
    pub qty: i64,
}

#[derive(Debug, Clone)]
pub struct NewOrder {
    pub id: String,
    pub session_id: String,
    pub created_at: i64,
    pub deadline_at: i64,
    /// When the reconciliation sweep first looks at it (if no notify came by then).
    pub first_check_at: i64,
    /// Most unfinished (pending or closing) orders the session may hold, this one included.
    pub max_open: i64,
    pub items: Vec<NewItem>,
}

#[derive(Debug, thiserror::Error)]
pub enum CreateError {
    #[error("unknown product {0}")]
    UnknownSku(String),
    #[error("only {left} left of {name}")]
    OutOfStock {
        sku: String,
        name: String,
        left: i64,
    },
    /// The session already holds this many unfinished orders.
    #[error("{0} unfinished orders")]
    TooManyOpen(i64),
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// What the order became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    pub total_fee: i64,
    pub body: String,
}

/// Reserves stock with guarded decrements and inserts the `pending` order, all in one
/// transaction: either everything is written or nothing is.
pub async fn create(db: &Db, order: &NewOrder, shop_name: &str) -> Result<Created, CreateError> {
    let mut tx = db.begin().await?;
    let mut total_fee = 0i64;
    let mut names = Vec::new();
    for item in &order.items {
        // Write first: in SQLite the transaction takes the write lock here, not on a later upgrade.
        let taken =
            sqlx::query("UPDATE products SET stock = stock - ? WHERE sku = ? AND stock >= ?")
                .bind(item.qty)
                .bind(&item.sku)
                .bind(item.qty)
                .execute(&mut *tx)
                .await?
                .rows_affected();
        let row = sqlx::query("SELECT name, price_fen, stock FROM products WHERE sku = ?")
            .bind(&item.sku)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            return Err(CreateError::UnknownSku(item.sku.clone()));
        };
        let name: String = row.try_get("name")?;
        let price: i64 = row.try_get("price_fen")?;
        if taken != 1 {
            let left: i64 = row.try_get("stock")?;
            return Err(CreateError::OutOfStock {
                sku: item.sku.clone(),
                name,
                left,
            });
        }
        total_fee += price * item.qty;
        sqlx::query("INSERT INTO order_items (order_id, sku, name, unit_price_fen, qty) VALUES (?, ?, ?, ?, ?)")
            .bind(&order.id)
            .bind(&item.sku)
            .bind(&name)
            .bind(price)
            .bind(item.qty)
            .execute(&mut *tx)
            .await?;
        names.push(name);
    }
    // Counted after the first write, so (in SQLite) concurrent placings are serialised here.
    let open: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM orders WHERE session_id = ? AND status IN ('pending', 'closing')",
    )
    .bind(&order.session_id)
    .fetch_one(&mut *tx)
    .await?;
    if open >= order.max_open {
        return Err(CreateError::TooManyOpen(open));
    }
    let body = order_body(shop_name, &names);
    sqlx::query(
        "INSERT INTO orders (id, session_id, status, total_fee, body, created_at, deadline_at, next_check_at, updated_at) \
         VALUES (?, ?, 'pending', ?, ?, ?, ?, ?, ?)",
    )
    .bind(&order.id)
    .bind(&order.session_id)
    .bind(total_fee)
    .bind(&body)
    .bind(order.created_at)
    .bind(order.deadline_at)
    .bind(order.first_check_at)
    .bind(order.created_at)
    .execute(&mut *tx)
    .await?;
    append_event(
        &mut tx,
        &order.id,
        "created",
        Cause::Shopper,
        &format!("total_fee={total_fee}"),
    )
    .await?;
    tx.commit().await?;
    Ok(Created { total_fee, body })
}

/// WeChat's `body`: "Shop - First item" (+ "N more"), cut to 127 bytes at a character boundary
/// (String(128) in the protocol; Chinese names take 3 bytes a character).
fn order_body(shop: &str, names: &[String]) -> String {
    let mut body = format!(
        "{shop} - {}",
        names.first().map(String::as_str).unwrap_or("order")
    );
    if names.len() > 1 {
        body.push_str(&format!(" +{} more", names.len() - 1));
    }
    let mut end = body.len().min(127);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    body.truncate(end);
    body
}

/// Stores the QR code WeChat issued for a still-pending order.
pub async fn record_code_url(
    db: &Db,
    id: &str,
    code_url: &str,
    prepay_id: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let n = sqlx::query("UPDATE orders SET code_url = ?, prepay_id = ?, updated_at = ? WHERE id = ? AND status IN ('pending', 'closing')")
        .bind(code_url)
        .bind(prepay_id)
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    if n == 1 {
        append_event(
            &mut tx,
            id,
            "qr_issued",
            Cause::System,
            &format!("prepay_id={prepay_id}"),
        )
        .await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}

/// `pending → failed`, restoring stock: WeChat never created a payment for it (confirmed by
/// ORDERNOTEXIST or a definite refusal). False when the order was not pending (nothing changed).
pub async fn fail(
    db: &Db,
    id: &str,
    reason: FailureReason,
    cause: Cause,
    detail: &str,
) -> Result<bool, sqlx::Error> {
    finish_unpaid(
        db,
        id,
        &[OrderStatus::Pending],
        OrderStatus::Failed,
        reason,
        cause,
        detail,
    )
    .await
}

/// `pending → closing`: the close flow has started (deadline reached or shopper cancelled).
/// The reason is kept for the failure page. False when the order was not pending (or is parked
/// for an operator). The guarded UPDATE is also the claim: of several processes reaching the same
/// deadline, one wins and runs the close flow; the sweep takes over at `check_at` only if that
/// flow stops before an outcome.
pub async fn begin_close(
    db: &Db,
    id: &str,
    reason: FailureReason,
    cause: Cause,
    check_at: i64,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let now = now_ms();
    let n = sqlx::query(
        "UPDATE orders SET status = 'closing', failure_reason = ?, next_check_at = ?, updated_at = ? \
         WHERE id = ? AND status = 'pending' AND parked_at IS NULL",
    )
    .bind(reason.as_str())
    .bind(check_at)
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 1 {
        append_event(&mut tx, id, "closing", cause, reason.as_str()).await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}

/// `pending | closing → closed`, restoring stock. Call only once WeChat has confirmed the order
/// can no longer be paid (CLOSED; or, for an order that never had a QR code, ORDERNOTEXIST).
/// `reason` applies when the order had none yet (a pending order WeChat expired on its own).
pub async fn close(
    db: &Db,
    id: &str,
    reason: FailureReason,
    cause: Cause,
    detail: &str,
) -> Result<bool, sqlx::Error> {
    finish_unpaid(
        db,
        id,
        &[OrderStatus::Pending, OrderStatus::Closing],
        OrderStatus::Closed,
        reason,
        cause,
        detail,
    )
    .await
}

/// Moves an unpaid order from one of `from` to the final `to` and puts its stock back in the same
/// transaction. Only the caller whose guarded UPDATE matched restores it, so it happens once.
async fn finish_unpaid(
    db: &Db,
    id: &str,
    from: &[OrderStatus],
    to: OrderStatus,
    reason: FailureReason,
    cause: Cause,
    detail: &str,
) -> Result<bool, sqlx::Error> {
    let mut tx = db.begin().await?;
    let now = now_ms();
    let n = sqlx::query(&format!(
        "UPDATE orders SET status = ?, failure_reason = COALESCE(failure_reason, ?), finished_at = ?, \
         updated_at = ?, next_check_at = NULL WHERE id = ? AND status IN ({}) AND parked_at IS NULL",
        status_list(from)
    ))
    .bind(to.as_str())
    .bind(reason.as_str())
    .bind(now)
    .bind(now)
    .bind(id)
    .execute(&mut *tx)
    .await?
    .rows_affected();
    if n == 1 {
        restore_stock(&mut tx, id).await?;
        append_event(&mut tx, id, to.as_str(), cause, detail).await?;
    }
    tx.commit().await?;
    Ok(n == 1)
}

/// Notes something about an order in its timeline without changing it (e.g. an uncertain answer).
pub async fn note(
    db: &Db,
    id: &str,
    kind: &str,
    cause: Cause,
    detail: &str,
) -> Result<(), sqlx::Error> {
    let mut tx = db.begin().await?;
    sqlx::query("UPDATE orders SET updated_at = ? WHERE id = ?")
        .bind(now_ms())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    append_event(&mut tx, id, kind, cause, detail).await?;
    tx.commit().await
}

/// Records on the order's timeline that a verified pay result arrived (inside the consumer's
/// transaction). False when there is no such order.
pub async fn record_notify(conn: &mut AnyConnection, p: &Payment) -> Result<bool, sqlx::Error> {
    let n = sqlx::query("UPDATE orders SET updated_at = ? WHERE id = ?")
        .bind(now_ms())
        .bind(&p.out_trade_no)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    if n == 1 {
        let detail = format!(
            "transaction_id={} total_fee={}",
            p.transaction_id, p.total_fee
        );
        append_event(
            conn,
            &p.out_trade_no,
            "notify_received",
            Cause::Notify,
            &detail,
        )
        .await?;
    }
    Ok(n == 1)
}

/// `'pending', 'closing'` for an IN list (statuses are our own constants, never input).
fn status_list(statuses: &[OrderStatus]) -> String {
    statuses
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Sets when the sweep next looks at an unfinished order (earlier or later than planned).
pub async fn schedule_check(db: &Db, id: &str, at: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE orders SET next_check_at = ? WHERE id = ? AND status IN ('pending', 'closing') AND parked_at IS NULL",
    )
    .bind(at)
    .bind(id)
    .execute(db)
    .await?;
    Ok(())
}

/// Claims up to `limit` unfinished orders whose check is due, pushing each one's next check to
/// `next_at(order)`. Several sweepers (threads or processes) may run this at once: a claim is a
/// compare-and-set on `next_check_at`, so each due order goes to exactly one of them.
pub async fn claim_due(
    db: &Db,
    now: i64,
    limit: i64,
    next_at: impl Fn(&OrderRow, i64) -> i64,
) -> Result<Vec<OrderRow>, sqlx::Error> {
    // `next_check_at` is NULL for finished and parked orders, so the index range holds only due work.
    let rows = sqlx::query(&format!(
        "SELECT {ORDER_COLUMNS}, next_check_at, check_attempts FROM orders \
         WHERE next_check_at <= ? AND status IN ('pending', 'closing') ORDER BY next_check_at LIMIT ?"
    ))
    .bind(now)
    .bind(limit)
    .fetch_all(db)
    .await?;
    let mut claimed = Vec::new();
    for row in rows {
        let order = OrderRow::from_row(&row)?;
        let seen: i64 = row.try_get("next_check_at")?;
        let attempts = row
            .try_get::<i32, _>("check_attempts")
            .map(i64::from)
            .or_else(|_| row.try_get::<i64, _>("check_attempts"))?;
        let n = sqlx::query(
            "UPDATE orders SET next_check_at = ?, check_attempts = check_attempts + 1 \
             WHERE id = ? AND next_check_at = ? AND status IN ('pending', 'closing')",
        )
        .bind(next_at(&order, attempts))
        .bind(&order.id)
        .bind(seen)
        .execute(db)
        .await?
        .rows_affected();
        if n == 1 {
            claimed.push(order);
        }
    }
    Ok(claimed)
}

/// Up to `limit` pending orders whose deadline has passed (earliest first), and the next deadline
/// still ahead (for the timer). Both read the `(status, deadline_at)` index.
pub async fn due_deadlines(
    db: &Db,
    now: i64,
    limit: i64,
) -> Result<(Vec<String>, Option<i64>), sqlx::Error> {
    let due: Vec<String> = sqlx::query_scalar(
        "SELECT id FROM orders WHERE status = 'pending' AND deadline_at <= ? AND parked_at IS NULL \
         ORDER BY deadline_at LIMIT ?",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db)
    .await?;
    let next: Option<i64> = sqlx::query_scalar(
        "SELECT MIN(deadline_at) FROM orders WHERE status = 'pending' AND deadline_at > ?",
    )
    .bind(now)
    .fetch_one(db)
    .await?;
    Ok((due, next))
}

async fn restore_stock(conn: &mut AnyConnection, id: &str) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE products SET stock = stock + (SELECT qty FROM order_items WHERE order_items.order_id = ? AND order_items.sku = products.sku) WHERE sku IN (SELECT sku FROM order_items WHERE order_id = ?)")
        .bind(id)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Evidence that WeChat took the money.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payment {
    pub out_trade_no: String,
    pub transaction_id: String,
    pub total_fee: i64,
    pub paid_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaidOutcome {
    /// This call moved the order to `paid`.
    Paid,
    /// Already paid with this transaction: a duplicate, nothing changed.
    AlreadyPaid,
    /// Recorded as an anomaly for an operator; the order was not changed.
    Anomaly(&'static str),
}

impl PaidOutcome {
    pub fn as_str(&self) -> &'static str {
        match self {
            PaidOutcome::Paid => "paid",
            PaidOutcome::AlreadyPaid => "duplicate",
            PaidOutcome::Anomaly(kind) => kind,
        }
    }
}

/// `pending | closing → paid`, guarded by the amount. Runs inside the caller's transaction so the
/// caller can record that it handled the evidence in the same commit.
pub async fn mark_paid(
    conn: &mut AnyConnection,
    p: &Payment,
    cause: Cause,
) -> Result<PaidOutcome, sqlx::Error> {
    let now = now_ms();
    let n = sqlx::query(
        "UPDATE orders SET status = 'paid', transaction_id = ?, paid_at = ?, finished_at = ?, updated_at = ?, \
         next_check_at = NULL WHERE id = ? AND status IN ('pending', 'closing') AND total_fee = ?",
    )
    .bind(&p.transaction_id)
    .bind(p.paid_at)
    .bind(now)
    .bind(now)
    .bind(&p.out_trade_no)
    .bind(p.total_fee)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if n == 1 {
        let detail = format!(
            "transaction_id={} total_fee={}",
            p.transaction_id, p.total_fee
        );
        append_event(conn, &p.out_trade_no, "paid", cause, &detail).await?;
        return Ok(PaidOutcome::Paid);
    }

    // Not applied: find out why, and never let money go unnoticed.
    let row = sqlx::query("SELECT status, total_fee, transaction_id FROM orders WHERE id = ?")
        .bind(&p.out_trade_no)
        .fetch_optional(&mut *conn)
        .await?;
    let evidence = format!(
        "transaction_id={} total_fee={} paid_at={} via {}",
        p.transaction_id,
        p.total_fee,
        p.paid_at,
        cause.as_str()
    );
    let Some(row) = row else {
        record_anomaly(conn, p, "unknown_order", &evidence).await?;
        return Ok(PaidOutcome::Anomaly("unknown_order"));
    };
    let status: String = row.try_get("status")?;
    let total_fee: i64 = row.try_get("total_fee")?;
    let txn: Option<String> = row.try_get("transaction_id")?;
    let kind = if status == "paid" && txn.as_deref() == Some(p.transaction_id.as_str()) {
        return Ok(PaidOutcome::AlreadyPaid);
    } else if total_fee != p.total_fee {
        "amount_mismatch"
    } else if status == "paid" {
        "second_payment"
    } else {
        "paid_after_close"
    };
    let detail = format!("{evidence}; order status={status} total_fee={total_fee}");
    if record_anomaly(conn, p, kind, &detail).await? {
        append_event(
            conn,
            &p.out_trade_no,
            "anomaly",
            cause,
            &format!("{kind}: {detail}"),
        )
        .await?;
        if status == "pending" || status == "closing" {
            // Money arrived that cannot be applied: stop the automatic flows (no more checks, no
            // close) and leave the order, its stock and the evidence to an operator.
            sqlx::query(
                "UPDATE orders SET parked_at = ?, next_check_at = NULL, updated_at = ? WHERE id = ?",
            )
            .bind(now_ms())
            .bind(now_ms())
            .bind(&p.out_trade_no)
            .execute(&mut *conn)
            .await?;
            append_event(conn, &p.out_trade_no, "parked", cause, kind).await?;
        }
    }
    Ok(PaidOutcome::Anomaly(kind))
}

/// Records an anomaly once per (order, WeChat transaction); true when this call recorded it.
async fn record_anomaly(
    conn: &mut AnyConnection,
    p: &Payment,
    kind: &str,
    detail: &str,
) -> Result<bool, sqlx::Error> {
    let n = sqlx::query(
        "INSERT INTO anomalies (id, order_id, transaction_id, kind, detail, at) SELECT ?, ?, ?, ?, ?, ? \
         WHERE NOT EXISTS (SELECT 1 FROM anomalies WHERE order_id = ? AND transaction_id = ?)",
    )
    .bind(random_alnum(24))
    .bind(&p.out_trade_no)
    .bind(&p.transaction_id)
    .bind(kind)
    .bind(detail)
    .bind(now_ms())
    .bind(&p.out_trade_no)
    .bind(&p.transaction_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if n == 1 {
        tracing::error!(order_id = %p.out_trade_no, kind, detail, "payment anomaly: needs an operator");
    }
    Ok(n == 1)
}

/// Appends to the order's timeline. Called only inside a transaction that already updated the
/// order row (or inserted it), which serialises appends per order.
async fn append_event(
    conn: &mut AnyConnection,
    id: &str,
    kind: &str,
    cause: Cause,
    detail: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO order_events (order_id, seq, at, kind, cause, detail) \
         SELECT ?, COALESCE(MAX(seq), 0) + 1, ?, ?, ?, ? FROM order_events WHERE order_id = ?",
    )
    .bind(id)
    .bind(now_ms())
    .bind(kind)
    .bind(cause.as_str())
    .bind(detail)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

// ---- reads ----

#[derive(Debug, Clone)]
pub struct OrderRow {
    pub id: String,
    pub session_id: String,
    pub status: OrderStatus,
    pub total_fee: i64,
    pub body: String,
    pub created_at: i64,
    pub deadline_at: i64,
    pub code_url: Option<String>,
    pub transaction_id: Option<String>,
    pub paid_at: Option<i64>,
    pub failure_reason: Option<FailureReason>,
    /// Waiting for an operator (a payment that could not be applied): no automatic flow touches it.
    pub parked: bool,
}

impl OrderRow {
    fn from_row(r: &AnyRow) -> Result<Self, sqlx::Error> {
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
        })
    }
}

const ORDER_COLUMNS: &str =
    "id, session_id, status, total_fee, body, created_at, deadline_at, code_url, \
     transaction_id, paid_at, failure_reason, parked_at";

pub async fn load(db: &Db, id: &str) -> Result<Option<OrderRow>, sqlx::Error> {
    let row = sqlx::query(&format!("SELECT {ORDER_COLUMNS} FROM orders WHERE id = ?"))
        .bind(id)
        .fetch_optional(db)
        .await?;
    row.as_ref().map(OrderRow::from_row).transpose()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemRow {
    pub sku: String,
    pub name: String,
    pub unit_price_fen: i64,
    pub qty: i64,
}

pub async fn items(db: &Db, id: &str) -> Result<Vec<ItemRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT sku, name, unit_price_fen, qty FROM order_items WHERE order_id = ? ORDER BY sku",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(ItemRow {
                sku: r.try_get("sku")?,
                name: r.try_get("name")?,
                unit_price_fen: r.try_get("unit_price_fen")?,
                qty: r.try_get("qty")?,
            })
        })
        .collect()
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventRow {
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub cause: String,
    pub detail: String,
}

pub async fn events(db: &Db, id: &str) -> Result<Vec<EventRow>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT seq, at, kind, cause, detail FROM order_events WHERE order_id = ? ORDER BY seq",
    )
    .bind(id)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(EventRow {
                seq: r
                    .try_get::<i32, _>("seq")
                    .map(i64::from)
                    .or_else(|_| r.try_get::<i64, _>("seq"))?,
                at: r.try_get("at")?,
                kind: r.try_get("kind")?,
                cause: r.try_get("cause")?,
                detail: r.try_get("detail")?,
            })
        })
        .collect()
}

pub async fn anomaly_kinds(db: &Db, order_id: &str) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar("SELECT kind FROM anomalies WHERE order_id = ? ORDER BY at")
        .bind(order_id)
        .fetch_all(db)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::store;

    async fn db() -> (tempfile::TempDir, Db) {
        let dir = tempfile::tempdir().unwrap();
        let db = store::connect(&format!("sqlite://{}/t.db", dir.path().display()))
            .await
            .unwrap();
        store::migrate(&db).await.unwrap();
        (dir, db)
    }

    async fn stock(db: &Db, sku: &str) -> i64 {
        sqlx::query_scalar("SELECT stock FROM products WHERE sku = ?")
            .bind(sku)
            .fetch_one(db)
            .await
            .unwrap()
    }

    async fn new_order(db: &Db, id: &str, items: &[(&str, i64)]) -> Result<Created, CreateError> {
        let order = NewOrder {
            id: id.into(),
            session_id: "s1".into(),
            created_at: now_ms(),
            deadline_at: now_ms() + 900_000,
            first_check_at: now_ms(),
            max_open: 100,
            items: items
                .iter()
                .map(|(s, q)| NewItem {
                    sku: s.to_string(),
                    qty: *q,
                })
                .collect(),
        };
        create(db, &order, "Shop").await
    }

    fn payment(id: &str, fee: i64, txn: &str) -> Payment {
        Payment {
            out_trade_no: id.into(),
            transaction_id: txn.into(),
            total_fee: fee,
            paid_at: 1,
        }
    }

    async fn status(db: &Db, id: &str) -> OrderStatus {
        load(db, id).await.unwrap().unwrap().status
    }

    #[tokio::test]
    async fn create_reserves_stock_and_prices_from_the_catalogue() {
        let (_d, db) = db().await;
        let c = new_order(&db, "O1", &[("TEA-OOLONG", 2), ("PIN-PANDA", 1)])
            .await
            .unwrap();
        assert_eq!(c.total_fee, 2 * 6800 + 101);
        assert_eq!(c.body, "Shop - Tieguanyin oolong +1 more");
        assert_eq!(stock(&db, "TEA-OOLONG").await, 18);
        assert_eq!(status(&db, "O1").await, OrderStatus::Pending);
        assert_eq!(events(&db, "O1").await.unwrap()[0].kind, "created");
    }

    #[tokio::test]
    async fn create_guard_refuses_more_than_stock_and_writes_nothing() {
        let (_d, db) = db().await;
        let e = new_order(&db, "O1", &[("TEA-OOLONG", 1), ("NB-GRID", 4)])
            .await
            .unwrap_err();
        assert!(
            matches!(e, CreateError::OutOfStock { ref sku, left: 3, .. } if sku == "NB-GRID"),
            "{e:?}"
        );
        assert_eq!(
            stock(&db, "TEA-OOLONG").await,
            20,
            "the first line's decrement was rolled back"
        );
        assert!(load(&db, "O1").await.unwrap().is_none());
        let e = new_order(&db, "O2", &[("NOPE", 1)]).await.unwrap_err();
        assert!(matches!(e, CreateError::UnknownSku(_)));
    }

    #[tokio::test]
    async fn paid_transition_is_guarded_by_status_and_amount() {
        let (_d, db) = db().await;
        let fee = new_order(&db, "O1", &[("BUN-RED", 1)])
            .await
            .unwrap()
            .total_fee;
        let mut conn = db.acquire().await.unwrap();
        assert_eq!(
            mark_paid(&mut conn, &payment("O1", fee + 1, "T1"), Cause::Notify)
                .await
                .unwrap(),
            PaidOutcome::Anomaly("amount_mismatch")
        );
        assert_eq!(status(&db, "O1").await, OrderStatus::Pending);
        assert!(
            load(&db, "O1").await.unwrap().unwrap().parked,
            "left to an operator"
        );
        // The same evidence again (the sweep, a notify retry) is recorded once.
        for _ in 0..3 {
            mark_paid(&mut conn, &payment("O1", fee + 1, "T1"), Cause::Sweep)
                .await
                .unwrap();
        }
        let due: Option<i64> =
            sqlx::query_scalar("SELECT next_check_at FROM orders WHERE id = 'O1'")
                .fetch_one(&mut *conn)
                .await
                .unwrap();
        assert_eq!(due, None, "no further automatic checks");
        assert_eq!(
            mark_paid(&mut conn, &payment("O1", fee, "T1"), Cause::Notify)
                .await
                .unwrap(),
            PaidOutcome::Paid
        );
        assert_eq!(
            mark_paid(&mut conn, &payment("O1", fee, "T1"), Cause::Notify)
                .await
                .unwrap(),
            PaidOutcome::AlreadyPaid
        );
        assert_eq!(
            mark_paid(&mut conn, &payment("O1", fee, "T2"), Cause::Sweep)
                .await
                .unwrap(),
            PaidOutcome::Anomaly("second_payment")
        );
        assert_eq!(
            mark_paid(&mut conn, &payment("NOPE", 1, "T3"), Cause::Notify)
                .await
                .unwrap(),
            PaidOutcome::Anomaly("unknown_order")
        );
        drop(conn);
        let o = load(&db, "O1").await.unwrap().unwrap();
        assert_eq!(
            (o.status, o.transaction_id.as_deref()),
            (OrderStatus::Paid, Some("T1"))
        );
        assert_eq!(
            anomaly_kinds(&db, "O1").await.unwrap(),
            vec!["amount_mismatch", "second_payment"]
        );
        let kinds: Vec<_> = events(&db, "O1")
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.kind)
            .collect();
        assert_eq!(
            kinds,
            vec!["created", "anomaly", "parked", "paid", "anomaly"]
        );
    }

    #[tokio::test]
    async fn failed_restores_stock_exactly_once_and_never_after_payment() {
        let (_d, db) = db().await;
        new_order(&db, "O1", &[("MUG-CELADON", 3)]).await.unwrap();
        assert_eq!(stock(&db, "MUG-CELADON").await, 5);
        assert!(fail(
            &db,
            "O1",
            FailureReason::PaymentNotCreated,
            Cause::System,
            "NOAUTH"
        )
        .await
        .unwrap());
        assert!(!fail(
            &db,
            "O1",
            FailureReason::PaymentNotCreated,
            Cause::System,
            "again"
        )
        .await
        .unwrap());
        assert_eq!(stock(&db, "MUG-CELADON").await, 8);
        let mut conn = db.acquire().await.unwrap();
        let fee = 3 * 12800;
        assert_eq!(
            mark_paid(&mut conn, &payment("O1", fee, "T1"), Cause::Notify)
                .await
                .unwrap(),
            PaidOutcome::Anomaly("paid_after_close")
        );
        drop(conn);
        assert_eq!(status(&db, "O1").await, OrderStatus::Failed);

        let fee = new_order(&db, "O2", &[("MUG-CELADON", 1)])
            .await
            .unwrap()
            .total_fee;
        let mut conn = db.acquire().await.unwrap();
        mark_paid(&mut conn, &payment("O2", fee, "T2"), Cause::Notify)
            .await
            .unwrap();
        drop(conn);
        assert!(!fail(
            &db,
            "O2",
            FailureReason::PaymentNotCreated,
            Cause::System,
            "late"
        )
        .await
        .unwrap());
        assert_eq!(stock(&db, "MUG-CELADON").await, 7);
        assert!(
            !record_code_url(&db, "O2", "weixin://x", "p").await.unwrap(),
            "no QR for a finished order"
        );
    }
}
