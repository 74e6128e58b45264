//! Benchmark: pay results applied per second on each engine — the consumer's whole transaction
//! (claim the inbox row, record the event, the guarded paid update, the outcome) through `Store` —
//! at 1, 4 and 16 concurrent clients, beside a hand-written transaction doing the same writes on
//! the same engine in the same run (the ceiling), as a ratio.
//!
//! Run: `scripts/bench.sh store` (release build; each engine on a database of its own on the local
//! servers: SQLite file, PostgreSQL, MariaDB). Figures: docs/BENCHMARKS.md.

use std::time::Instant;

use futures::stream::{self, StreamExt};
use scanpay::server::orders::state::{NewItem, NewOrder, Payment};
use scanpay::server::store::testing::TestDb;
use scanpay::server::store::{self, now_ms, PoolSettings, Store};
use scanpay::server::wxpay::notify::PayNotify;

/// Pay results per measurement.
const N: usize = 1500;

/// The SQL with `?` parameters, numbered for PostgreSQL.
fn q(engine: &str, sql: &str) -> String {
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
async fn prepare(s: &Store, tag: &str, n: usize) -> Vec<Payment> {
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
        let n = PayNotify {
            out_trade_no: id.clone(),
            transaction_id: format!("42{tag}{i:010}"),
            total_fee: fee,
            time_end: "20261127120000".into(),
            paid_at_ms: now_ms(),
            openid: None,
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

/// Applies every payment through the store, `clients` at a time; applications per second.
async fn through_store(s: &Store, work: Vec<Payment>, clients: usize) -> f64 {
    let t = Instant::now();
    let n = work.len();
    stream::iter(work)
        .for_each_concurrent(clients, |p| async move {
            let outcome = s.apply_pay_result(&p).await.unwrap();
            assert!(outcome.is_some());
        })
        .await;
    n as f64 / t.elapsed().as_secs_f64()
}

/// The same writes, hand-written: claim the inbox row, append the event with a known sequence
/// number, the guarded paid update and the outcome, in one transaction.
macro_rules! hand_written {
    ($engine:expr, $pool:expr, $work:expr, $clients:expr) => {{
        let engine: &str = $engine;
        let pool = $pool;
        let t = Instant::now();
        let n = $work.len();
        stream::iter($work)
            .for_each_concurrent($clients, |p: Payment| {
                let pool = pool.clone();
                async move {
                    let now = now_ms();
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

async fn engine_rows(engine: &str) -> Vec<String> {
    let db = TestDb::new(engine).await;
    let settings = PoolSettings {
        max_connections: 20,
        ..PoolSettings::default()
    };
    let s = store::connect(&db.url, &settings).await.unwrap();
    s.migrate().await.unwrap();
    sqlx::any::install_default_drivers();
    let raw = sqlx::AnyPool::connect(&db.url).await.unwrap();
    sqlx::query("UPDATE products SET stock = 1000000")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;
    let mut rows = Vec::new();
    for clients in [1usize, 4, 16] {
        let work = prepare(&s, &format!("s{clients}"), N).await;
        let ceiling_work = prepare(&s, &format!("h{clients}"), N).await;
        let ours = through_store(&s, work, clients).await;
        let ceiling = match engine {
            "sqlite" => {
                let pool = sqlx::sqlite::SqlitePoolOptions::new()
                    .max_connections(20)
                    .connect(&db.url)
                    .await
                    .unwrap();
                hand_written!(engine, pool, ceiling_work, clients)
            }
            "postgres" => {
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(20)
                    .connect(&db.url)
                    .await
                    .unwrap();
                hand_written!(engine, pool, ceiling_work, clients)
            }
            _ => {
                let pool = sqlx::mysql::MySqlPoolOptions::new()
                    .max_connections(20)
                    .connect(&db.url)
                    .await
                    .unwrap();
                hand_written!(engine, pool, ceiling_work, clients)
            }
        };
        rows.push(format!(
            "| {engine} | {clients} | {ours:.0} /s | {ceiling:.0} /s | {:.2} |",
            ours / ceiling
        ));
    }
    s.close_pool().await;
    db.remove().await;
    rows
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let engines: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let engines = if engines.is_empty() {
        vec!["sqlite".into(), "postgres".into(), "mysql".into()]
    } else {
        engines
    };
    rt.block_on(async {
        println!("scanpay store benchmark: pay results applied per second ({N} per measurement)");
        println!("| engine | clients | through Store (consumer transaction) | hand-written ceiling | ratio |");
        println!("|---|---|---|---|---|");
        for e in engines {
            for row in engine_rows(&e).await {
                println!("{row}");
            }
        }
    });
}
