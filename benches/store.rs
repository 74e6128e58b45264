//! Benchmark: pay results applied per second on each engine — the consumer's whole transaction
//! (claim the inbox row, record the event, the guarded paid update, the outcome) through `Store` —
//! at 1, 4 and 16 concurrent clients, beside a hand-written transaction doing the same writes on
//! the same engine in the same run (the ceiling), as a ratio.
//!
//! Run: `scripts/bench.sh store` (release build; each engine on a database of its own on the local
//! servers: SQLite file, PostgreSQL, MariaDB). Figures: docs/BENCHMARKS.md.

use std::time::Instant;

#[macro_use]
mod support;

use futures::stream::{self, StreamExt};
use scanpay::server::domain::Payment;
use scanpay::server::store::testing::TestDb;
use scanpay::server::store::{self, PoolSettings, Store};
use support::{prepare, q};

/// Pay results per measurement.
const N: usize = 1500;

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
