//! Benchmark: the console's orders list on 100,000 orders (PostgreSQL) — the newest page of a
//! filter (paid, an amount range), a page deep in it (by cursor), a search by an exact WeChat
//! transaction id, and the CSV export's pages — through `Store`, beside the same query written by
//! hand on the same pool in the same run (the ceiling), p50 and p99 of each.
//!
//! Run: `scripts/bench.sh console` (release build; a database of its own on the local PostgreSQL).
//! Figures: docs/BENCHMARKS.md.

use std::time::{Duration, Instant};

use scanpay::app::types::OrderStatus;
use scanpay::server::domain::OrderFilter;
use scanpay::server::store::testing::TestDb;
use scanpay::server::store::{self, PoolSettings};

const ORDERS: i64 = 100_000;
const RUNS: usize = 300;

fn pct(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    let at = |p: f64| v[((v.len() as f64 * p) as usize).min(v.len() - 1)].as_secs_f64() * 1000.0;
    (at(0.5), at(0.99))
}

async fn time<F, Fut>(mut f: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..20 {
        f().await; // warm the cache and the plan
    }
    let mut v = Vec::with_capacity(RUNS);
    for _ in 0..RUNS {
        let t = Instant::now();
        f().await;
        v.push(t.elapsed());
    }
    pct(v)
}

#[tokio::main]
async fn main() {
    let db = TestDb::new("postgres").await;
    let s = store::connect(&db.url, &PoolSettings::default())
        .await
        .unwrap();
    s.migrate().await.unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&db.url)
        .await
        .unwrap();
    let base: i64 = 1_764_547_200_000; // 2025-12-01 Beijing midnight, one order a minute after
    sqlx::query(
        "INSERT INTO orders (id, session_id, status, total_fee, body, created_at, deadline_at, \
         updated_at, transaction_id, paid_at, refunded_fee) \
         SELECT 'SP' || lpad(g::text, 26, '0'), 's' || (g % 1000), \
           CASE WHEN g % 10 < 6 THEN 'paid' WHEN g % 10 < 9 THEN 'closed' ELSE 'pending' END, \
           100 + (g * 37) % 20000, 'Tea x1', $1 + g * 60000, $1 + g * 60000 + 900000, $1 + g * 60000, \
           CASE WHEN g % 10 < 6 THEN '4200' || lpad(g::text, 24, '0') END, \
           CASE WHEN g % 10 < 6 THEN $1 + g * 60000 + 30000 END, \
           CASE WHEN g % 97 = 0 THEN 100 ELSE 0 END \
         FROM generate_series(1, $2) g",
    )
    .bind(base)
    .bind(ORDERS)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO anomalies (id, order_id, transaction_id, kind, detail, at) \
         SELECT 'A' || g, 'SP' || lpad(g::text, 26, '0'), '4299' || lpad(g::text, 24, '0'), \
           'second_payment', 'bench', $1 FROM generate_series(1, $2, 1000) g",
    )
    .bind(base)
    .bind(ORDERS)
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(&pool).await.unwrap();

    let filter = OrderFilter {
        status: Some(OrderStatus::Paid),
        min_fee: Some(5_000),
        max_fee: Some(15_000),
        ..Default::default()
    };
    let hand =
        "SELECT id, status, total_fee, refunded_fee, body, created_at, paid_at, transaction_id, \
         (SELECT COUNT(*) FROM anomalies a WHERE a.order_id = orders.id) AS anomalies \
         FROM orders WHERE status = $1 AND total_fee >= $2 AND total_fee <= $3";
    let mut rows: Vec<String> = Vec::new();
    let mut line = |what: &str, ours: (f64, f64), ceiling: (f64, f64)| {
        rows.push(format!(
            "| {what} | {:.2} / {:.2} ms | {:.2} / {:.2} ms | {:.2} |",
            ours.0,
            ours.1,
            ceiling.0,
            ceiling.1,
            ours.0 / ceiling.0
        ));
    };

    // The newest page of the filter.
    let ours = time(|| async {
        let p = s.orders_page(&filter, 50).await.unwrap();
        assert_eq!(p.lines.len(), 50);
    })
    .await;
    let ceiling = time(|| async {
        let r = sqlx::query(&format!(
            "{hand} ORDER BY created_at DESC, id DESC LIMIT 51"
        ))
        .bind("paid")
        .bind(5_000i64)
        .bind(15_000i64)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(r.len(), 51);
    })
    .await;
    line("filtered list, newest page (paid, ¥50–150)", ours, ceiling);

    // A page deep in it: the cursor of an order half-way back.
    let mid = (base + ORDERS / 2 * 60_000, format!("SP{:026}", ORDERS / 2));
    let deep = OrderFilter {
        after: Some(mid.clone()),
        ..filter.clone()
    };
    let ours = time(|| async {
        assert_eq!(s.orders_page(&deep, 50).await.unwrap().lines.len(), 50);
    })
    .await;
    let ceiling = time(|| async {
        let r = sqlx::query(&format!(
            "{hand} AND (created_at < $4 OR (created_at = $5 AND id < $6)) \
             ORDER BY created_at DESC, id DESC LIMIT 51"
        ))
        .bind("paid")
        .bind(5_000i64)
        .bind(15_000i64)
        .bind(mid.0)
        .bind(mid.0)
        .bind(&mid.1)
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(r.len(), 51);
    })
    .await;
    line(
        "filtered list, a page 50,000 orders back (cursor)",
        ours,
        ceiling,
    );

    // A search by an exact transaction id (the jump to its order).
    let tx = format!("4200{:024}", 77_771);
    let ours = time(|| async {
        assert!(s.find_order_id(&tx).await.unwrap().is_some());
    })
    .await;
    let ceiling = time(|| async {
        let r: Option<String> =
            sqlx::query_scalar("SELECT id FROM orders WHERE transaction_id = $1")
                .bind(&tx)
                .fetch_optional(&pool)
                .await
                .unwrap();
        assert!(r.is_some());
    })
    .await;
    line("search by WeChat transaction id", ours, ceiling);

    // The whole filter as the CSV export reads it, page by page (500 at a time).
    let t = Instant::now();
    let mut f = filter.clone();
    let mut n = 0;
    loop {
        let p = s.orders_page(&f, 500).await.unwrap();
        n += p.lines.len();
        match p.next {
            Some(c) => f.after = Some(c),
            None => break,
        }
    }
    let export = t.elapsed();
    println!("| query | ours p50 / p99 | by hand p50 / p99 | p50 ratio |");
    println!("|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    println!(
        "\nCSV export's reads of the same filter: {n} orders in {:.0} ms ({:.0} orders/s), 500 a page",
        export.as_secs_f64() * 1000.0,
        n as f64 / export.as_secs_f64()
    );
    pool.close().await;
}
