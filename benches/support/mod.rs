//! Shared by the benchmarks: pay results ready for the consumer, and the consumer's transaction
//! written by hand (the ceiling each benchmark compares itself with).
#![allow(dead_code)]

pub mod wrk;

use scanpay::server::domain::PayResult;
use scanpay::server::domain::{NewItem, NewOrder, Payment};
use scanpay::server::store::Store;
use scanpay::server::support::clock::now_ms;

/// The SQL with `?` parameters, numbered for PostgreSQL.
pub fn q(engine: &str, sql: &str) -> String {
    if engine != "postgres" {
        return sql.to_string();
    }
    let mut n = 0;
    sql.chars()
        .map(|c| match c {
            '?' => {
                n += 1;
                format!("${n}")
            }
            c => c.to_string(),
        })
        .collect()
}

/// `n` pending orders and their pay results in the inbox, ready for the consumer.
pub async fn prepare(s: &Store, tag: &str, n: usize) -> Vec<Payment> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("B{tag}{i:06}");
        let order = NewOrder {
            id: id.clone(),
            session_id: format!("bench-{i}"),
            created_at: now_ms(),
            deadline_at: now_ms() + 3_600_000,
            first_check_at: now_ms() + 3_600_000,
            max_open: 10,
            items: vec![NewItem {
                sku: "PIN-PANDA".into(),
                qty: 1,
            }],
        };
        let fee = s.create_order(&order, "bench").await.unwrap().total_fee;
        let n = PayResult {
            out_trade_no: id.clone(),
            transaction_id: format!("42{tag}{i:010}"),
            total_fee: fee,
            time_end: "20261127120000".into(),
            paid_at_ms: now_ms(),
            received_at_ms: None,
        };
        s.publish_pay_result(&n).await.unwrap();
        out.push(Payment {
            out_trade_no: id,
            transaction_id: n.transaction_id,
            total_fee: fee,
            paid_at: n.paid_at_ms,
        });
    }
    out
}

/// The same writes, hand-written: claim the inbox row, append the event with a known sequence
/// number, the guarded paid update and the outcome, in one transaction.
#[macro_export]
macro_rules! hand_written {
    ($engine:expr, $pool:expr, $work:expr, $clients:expr) => {{
        let engine: &str = $engine;
        let pool = $pool;
        let t = std::time::Instant::now();
        let n = $work.len();
        use futures::stream::StreamExt as _;
        futures::stream::iter($work)
            .for_each_concurrent($clients, |p: Payment| {
                let pool = pool.clone();
                async move {
                    let now = scanpay::server::support::clock::now_ms();
                    let mut tx = pool.begin().await.unwrap();
                    sqlx::query(&q(engine, "UPDATE pay_inbox SET processed_at = ?, next_attempt_at = NULL WHERE transaction_id = ? AND processed_at IS NULL"))
                        .bind(now).bind(&p.transaction_id).execute(&mut *tx).await.unwrap();
                    sqlx::query(&q(engine, "INSERT INTO order_events (order_id, seq, at, kind, cause, detail) VALUES (?, 2, ?, 'paid', 'notify', ?)"))
                        .bind(&p.out_trade_no).bind(now).bind(&p.transaction_id).execute(&mut *tx).await.unwrap();
                    let done = sqlx::query(&q(engine, "UPDATE orders SET status = 'paid', transaction_id = ?, paid_at = ?, finished_at = ?, updated_at = ?, next_check_at = NULL WHERE id = ? AND status IN ('pending', 'closing') AND total_fee = ?"))
                        .bind(&p.transaction_id).bind(p.paid_at).bind(now).bind(now).bind(&p.out_trade_no).bind(p.total_fee)
                        .execute(&mut *tx).await.unwrap().rows_affected();
                    assert_eq!(done, 1);
                    sqlx::query(&q(engine, "UPDATE pay_inbox SET outcome = 'paid' WHERE transaction_id = ?"))
                        .bind(&p.transaction_id).execute(&mut *tx).await.unwrap();
                    tx.commit().await.unwrap();
                }
            })
            .await;
        n as f64 / t.elapsed().as_secs_f64()
    }};
}

/// The `p` quantile (0 to 1) of sorted figures, by nearest rank.
pub fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// A new shopper (the session cookie from the home page) with one pending order of a tin of tea,
/// placed through the `place_order` server function at `base`: (cookie, order id).
pub async fn shopper_with_order(http: &reqwest::Client, base: &str) -> (String, String) {
    let resp = http.get(format!("{base}/")).send().await.unwrap();
    let cookie = resp.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string();
    let placed = http
        .post(format!("{base}/api/place_order"))
        .header("cookie", &cookie)
        .header("content-type", "application/json")
        .body(r#"{"lines":[{"sku":"TEA-OOLONG","qty":1}]}"#)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let id: String =
        serde_json::from_str(&placed).unwrap_or_else(|_| panic!("an order id: {placed}"));
    (cookie, id)
}
