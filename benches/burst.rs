//! Benchmark: a burst of 2,000 verified notifies through web → RabbitMQ → worker → PostgreSQL
//! (+ Redis): paid orders per second and notify latency (p50/p99), beside PostgreSQL's ceiling for
//! the consumer's transaction (hand-written, 32 clients) and RabbitMQ's for the same message path
//! (publish with confirms, consume, ack), both measured in the same run; then the
//! 3-second status polls answered per second by a web process reading Redis vs one reading SQL.
//!
//! Run: `scripts/bench.sh burst` (release build; the local PostgreSQL, RabbitMQ and Redis, each
//! under names of its own, removed afterwards). Figures: docs/BENCHMARKS.md.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

mod support;

use futures::stream::{self, StreamExt};
use leptos::prelude::LeptosOptions;
use scanpay::server::config::{Role, Settings};
use scanpay::server::domain::{NewItem, NewOrder};
use scanpay::server::store::testing::TestDb;
use scanpay::server::support::clock::now_ms;
use scanpay::server::wxpay::{sign, xml};
use scanpay::server::{start, Running};
use support::percentile;

const BURST: usize = 2000;
/// Notifies in flight at once (WeChat sends from many servers).
const SENDERS: usize = 64;

async fn app(env: &BTreeMap<String, String>, role: Role) -> Running {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut env = env.clone();
    if role == Role::Web {
        // This web process is its own WeChat (for the poll benchmark's one real order).
        env.insert(
            "SCANPAY_WXPAY_BASE_URL".into(),
            format!("http://{addr}/sandbox/"),
        );
        env.insert("SCANPAY_SANDBOX".into(), "true".into());
    }
    // One of several processes: told where it is reached (it may not guess).
    env.insert("SCANPAY_PUBLIC_URL".into(), format!("http://{addr}"));
    let mut settings =
        Settings::from_sources(include_str!("../Leptos.toml"), "Leptos.toml", &env, addr).unwrap();
    settings.role = role;
    let options = LeptosOptions::builder()
        .output_name("scanpay")
        .site_addr(addr)
        .build();
    start(settings, options, listener).await.unwrap()
}

/// Pending orders of one ¥1.01 pin each, due for no check within the benchmark.
async fn create_pending(store: &scanpay::server::store::Store, ids: &[String]) {
    stream::iter(ids.iter().cloned())
        .for_each_concurrent(16, |id| async move {
            let order = NewOrder {
                id,
                session_id: "bench".into(),
                created_at: now_ms(),
                deadline_at: now_ms() + 3_600_000,
                first_check_at: now_ms() + 3_600_000,
                max_open: 1_000_000,
                items: vec![NewItem {
                    sku: "PIN-PANDA".into(),
                    qty: 1,
                }],
            };
            store.create_order(&order, "bench").await.unwrap();
        })
        .await;
}

/// CPU seconds used so far by the processes whose command name is one of `names`
/// (`/proc/<pid>/stat`: utime + stime, in clock ticks of 1/100 s on Linux). Only the numbered
/// entries: `/proc/self` and `/proc/thread-self` would count this process again.
fn cpu_seconds(names: &[&str]) -> f64 {
    let mut ticks = 0u64;
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if !entry
            .file_name()
            .to_string_lossy()
            .bytes()
            .all(|b| b.is_ascii_digit())
        {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        ticks += stat_ticks(&stat, names);
    }
    ticks as f64 / 100.0
}

/// utime + stime from a `stat` line if its command name starts with one of `names`.
fn stat_ticks(stat: &str, names: &[&str]) -> u64 {
    let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
        return 0;
    };
    if !names.iter().any(|n| stat[open + 1..close].starts_with(n)) {
        return 0;
    }
    let fields: Vec<&str> = stat[close + 2..].split(' ').collect();
    // After the name: state is field 0, utime field 11, stime field 12.
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// CPU seconds used so far by this process's threads named one of `names` (the notifying client
/// runs on the main thread; web and worker on the tokio workers and lapin's I/O threads).
fn thread_cpu_seconds(names: &[&str]) -> f64 {
    let ticks: u64 = std::fs::read_dir("/proc/self/task")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("stat")).ok())
        .map(|stat| stat_ticks(&stat, names))
        .sum();
    ticks as f64 / 100.0
}

/// Who used the CPU: scanpay's web + worker and the notifying client (threads of this process),
/// RabbitMQ, PostgreSQL and Redis.
const THREADS: [(&str, &[&str]); 2] = [
    ("scanpay web + worker", &["tokio-", "lapin-"]),
    ("the notifying client", &["burst-"]),
];
const PROCESSES: [(&str, &[&str]); 3] = [
    ("RabbitMQ", &["beam.smp", "erl_child_setup"]),
    ("PostgreSQL", &["postgres"]),
    ("Redis", &["redis-server"]),
];

fn cpu_now() -> Vec<f64> {
    THREADS
        .iter()
        .map(|(_, n)| thread_cpu_seconds(n))
        .chain(PROCESSES.iter().map(|(_, n)| cpu_seconds(n)))
        .collect()
}

/// Cache flushes (fsync/fdatasync reaching the device) completed so far by the machine's disks
/// (`/proc/diskstats`, field 15 after the name; partitions and virtual devices left out). Every
/// commit at PostgreSQL and every confirmed batch at a quorum queue needs one, and the disk does
/// them one after another: flushes per payment say how much of the disk's pace each path takes.
fn disk_flushes() -> u64 {
    let disks: Vec<String> = std::fs::read_dir("/sys/block")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with("loop") && !n.starts_with("ram") && !n.starts_with("zram"))
        .collect();
    std::fs::read_to_string("/proc/diskstats")
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() > 18 && disks.iter().any(|d| d == f[2])).then(|| f[18].parse::<u64>().ok())?
        })
        .sum()
}

/// Polls `order_status` as its owner, 32 at a time, for `for_`: answers per second.
async fn polls(base: &str, cookie: &str, id: &str, for_: Duration) -> f64 {
    let http = reqwest::Client::new();
    let done = AtomicUsize::new(0);
    let until = Instant::now() + for_;
    let start = Instant::now();
    stream::iter(0..32)
        .for_each_concurrent(32, |_| {
            let (http, done) = (&http, &done);
            async move {
                while Instant::now() < until {
                    let r = http
                        .post(format!("{base}/api/order_status"))
                        .header("cookie", cookie)
                        .header("content-type", "application/x-www-form-urlencoded")
                        .body(format!("id={id}"))
                        .send()
                        .await
                        .unwrap();
                    let status = r.status();
                    let body = r.text().await.unwrap_or_default();
                    assert_eq!(status, 200, "{body}");
                    done.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
        .await;
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

/// RabbitMQ's ceiling for the pay-result path alone, on a topology of its own: 2,000 pay-result
/// sized messages published persistent + mandatory with confirms, 64 in flight (as the notifies),
/// while one consumer with scanpay's prefetch acks each (no HTTP, no SQL, no Redis). Messages
/// consumed per second, and disk flushes per message.
async fn broker_ceiling(prefix: &str, prefetch: u16) -> (f64, f64) {
    use scanpay::server::amqp::{self, Handled, Rabbit, RabbitSettings};
    let settings = RabbitSettings {
        url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
        prefix: prefix.to_string(),
        prefetch,
        publish_timeout: Duration::from_secs(10),
    };
    let publisher = Rabbit::connect(settings.clone()).await.unwrap();
    let consumed = std::sync::Arc::new(AtomicUsize::new(0));
    let all_in = std::sync::Arc::new(tokio::sync::Notify::new());
    let stop = tokio_util::sync::CancellationToken::new();
    let consumer = tokio::spawn({
        let (consumed, all_in) = (consumed.clone(), all_in.clone());
        amqp::consume(
            settings,
            publisher.names().pay_queue,
            stop.clone(),
            move |_body| {
                let (consumed, all_in) = (consumed.clone(), all_in.clone());
                async move {
                    if consumed.fetch_add(1, Ordering::SeqCst) + 1 == BURST {
                        all_in.notify_one();
                    }
                    Handled::Done
                }
            },
        )
    });
    let body = br#"{"out_trade_no":"BURST000000","transaction_id":"4200000003202611270000000000","total_fee":101,"time_end":"20261127120000","paid_at_ms":1795780800000}"#;
    let exchange = publisher.names().pay_exchange;
    let flushes_before = disk_flushes();
    let t = Instant::now();
    stream::iter(0..BURST)
        .for_each_concurrent(SENDERS, |i| {
            let (publisher, exchange) = (&publisher, &exchange);
            async move {
                publisher
                    .publish(exchange, "pay_result", &format!("ceiling-{i}"), body)
                    .await
                    .unwrap();
            }
        })
        .await;
    tokio::time::timeout(Duration::from_secs(60), all_in.notified())
        .await
        .expect("every message consumed");
    let rate = BURST as f64 / t.elapsed().as_secs_f64();
    let flushes = (disk_flushes() - flushes_before) as f64 / BURST as f64;
    stop.cancel();
    let _ = consumer.await;
    publisher.delete_topology(&[]).await.unwrap();
    (rate, flushes)
}

/// Removes the benchmark's RabbitMQ queues and Redis keys however it ends.
struct Cleanup(String);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let prefix = self.0.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                // The app's topology, and the broker ceiling's.
                for (prefix, delays) in [
                    (prefix.clone(), &[900][..]),
                    (format!("{prefix}_mq"), &[][..]),
                ] {
                    let settings = scanpay::server::amqp::RabbitSettings {
                        url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
                        prefix,
                        prefetch: 1,
                        publish_timeout: Duration::from_secs(3),
                    };
                    if let Ok(r) = scanpay::server::amqp::Rabbit::connect(settings).await {
                        let _ = r.delete_topology(delays).await; // 900: the one placed order's 15-minute deadline
                    }
                }
                if let Ok(c) = scanpay::server::redis_conn::RedisConn::connect(
                    "redis://127.0.0.1:6379/0",
                    &prefix,
                )
                .await
                {
                    let _ = c.delete_all().await;
                }
            })
        })
        .join();
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let db = TestDb::new("postgres").await;
        let prefix = format!("scanpay_bench_{}", std::process::id());
        let _cleanup = Cleanup(prefix.clone());
        let env: BTreeMap<String, String> = [
            ("SCANPAY_DATABASE_URL", db.url.as_str()),
            ("SCANPAY_DATABASE_MAX_CONNECTIONS", "32"),
            ("SCANPAY_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            ("SCANPAY_AMQP_PREFIX", &prefix),
            ("SCANPAY_REDIS_URL", "redis://127.0.0.1:6379/0"),
            ("SCANPAY_REDIS_PREFIX", &prefix),
            ("SCANPAY_LIMIT_ORDERS_PER_MINUTE", "1000000"),
            ("SCANPAY_SWEEP_INTERVAL", "60s"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let web = app(&env, Role::Web).await;
        let worker = app(&env, Role::Worker).await;
        let store = web.ctx.store.clone();
        let raw = sqlx::PgPool::connect(&db.url).await.unwrap();
        sqlx::query("UPDATE products SET stock = 1000000")
            .execute(&raw)
            .await
            .unwrap();

        // The burst: 2,000 pending orders, one verified notify each.
        let ids: Vec<String> = (0..BURST).map(|i| format!("BURST{i:06}")).collect();
        create_pending(&store, &ids).await;
        let m = web.ctx.settings.merchant.clone();
        let bodies: Vec<String> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| {
                let mut p: xml::Params = [
                    ("return_code", "SUCCESS"),
                    ("result_code", "SUCCESS"),
                    ("appid", m.appid.as_str()),
                    ("mch_id", m.mch_id.as_str()),
                    ("nonce_str", "bench"),
                    ("out_trade_no", id.as_str()),
                    ("transaction_id", &format!("4200000003202611270{i:09}")),
                    ("total_fee", "101"),
                    ("time_end", "20261127120000"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
                let s = sign::sign(&p, m.api_key.expose(), m.sign_type);
                p.insert("sign".into(), s);
                xml::to_xml(&p)
            })
            .collect();
        let http = reqwest::Client::new();
        let notify_url = format!("http://{}/wxpay/notify", web.addr);
        let cpu_before = cpu_now();
        let flushes_before = disk_flushes();
        let started = Instant::now();
        let mut latencies: Vec<f64> = stream::iter(bodies)
            .map(|body| {
                let (http, url) = (&http, &notify_url);
                async move {
                    let t = Instant::now();
                    let r = http.post(url).body(body).send().await.unwrap();
                    assert_eq!(r.status(), 200, "every notify accepted");
                    t.elapsed().as_secs_f64() * 1000.0
                }
            })
            .buffer_unordered(SENDERS)
            .collect()
            .await;
        let answered = started.elapsed();
        loop {
            let paid: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status = 'paid'")
                .fetch_one(&raw)
                .await
                .unwrap();
            if paid as usize == BURST {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(120), "only {paid} paid");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let all_paid = started.elapsed();
        let flushes = disk_flushes() - flushes_before;
        let cpu_used: Vec<f64> = cpu_now()
            .iter()
            .zip(&cpu_before)
            .map(|(now, before)| now - before)
            .collect();
        latencies.sort_by(f64::total_cmp);
        let rate = BURST as f64 / all_paid.as_secs_f64();

        // The ceiling: the consumer's writes for the same 2,000 payments, by hand on the same
        // database with nothing else running: the inbox row, the paid update and both events,
        // written as the one statement the consumer uses (its fewest round trips), 32 clients.
        let ceiling_ids: Vec<String> = (0..BURST).map(|i| format!("CEIL{i:06}")).collect();
        create_pending(&store, &ceiling_ids).await;
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(32)
            .connect(&db.url)
            .await
            .unwrap();
        let ceiling_cpu_before = cpu_now();
        let ceiling_flushes_before = disk_flushes();
        let t = Instant::now();
        stream::iter(ceiling_ids.iter().enumerate())
            .for_each_concurrent(32, |(i, id)| {
                let pool = pool.clone();
                async move {
                    let now = now_ms();
                    let paid: Option<(String,)> = sqlx::query_as(
                        "WITH paid AS (UPDATE orders SET status = 'paid', transaction_id = $1, paid_at = $2, \
                           finished_at = $2, updated_at = $2, next_check_at = NULL \
                           WHERE id = $3 AND status IN ('pending', 'closing') AND total_fee = 101 RETURNING id), \
                         inbox AS (INSERT INTO pay_inbox (transaction_id, out_trade_no, total_fee, time_end, paid_at, \
                           received_at, processed_at, outcome) SELECT $1, $3, 101, '20261127120000', $2, $2, $2, 'paid' FROM paid), \
                         events AS (INSERT INTO order_events (order_id, seq, at, kind, cause, detail) \
                           SELECT $3, k.n, $2, k.kind, 'notify', $1 FROM paid, \
                           (VALUES (2, 'notify_received'), (3, 'paid')) AS k(n, kind)) \
                         SELECT id FROM paid",
                    )
                    .bind(format!("4200000004202611270{i:09}"))
                    .bind(now)
                    .bind(id)
                    .fetch_optional(&pool)
                    .await
                    .unwrap();
                    assert!(paid.is_some(), "{id} paid by hand");
                }
            })
            .await;
        let ceiling = BURST as f64 / t.elapsed().as_secs_f64();
        let ceiling_flushes = disk_flushes() - ceiling_flushes_before;
        let ceiling_cpu: f64 = cpu_now()
            .iter()
            .zip(&ceiling_cpu_before)
            .map(|(now, before)| now - before)
            .sum();
        // How the consumer committed the burst: the transactions that wrote its inbox rows
        // (xmin), so the payments per commit.
        let commits: i64 = sqlx::query_scalar(
            "SELECT COUNT(DISTINCT xmin::text) FROM pay_inbox WHERE out_trade_no LIKE 'BURST%'",
        )
        .fetch_one(&raw)
        .await
        .unwrap();
        let per_commit = BURST as f64 / commits as f64;
        // And the same writes batched by hand the same way: batches of that size, as many at a
        // time as the consumer runs, each one statement (the per-payment one over `unnest`).
        let batched_ids: Vec<String> = (0..BURST).map(|i| format!("BATCH{i:06}")).collect();
        create_pending(&store, &batched_ids).await;
        let size = (per_commit.round() as usize).max(1);
        let t = Instant::now();
        stream::iter(batched_ids.chunks(size).enumerate())
            .for_each_concurrent(4, |(c, ids)| {
                let pool = pool.clone();
                async move {
                    let now = now_ms();
                    let tids: Vec<String> = (0..ids.len())
                        .map(|i| format!("4200000005{c:06}{i:04}"))
                        .collect();
                    let paid: Vec<(String,)> = sqlx::query_as(
                        "WITH input AS (SELECT * FROM unnest($1::text[], $3::text[]) AS i(i_no, i_tid)), \
                         paid AS (UPDATE orders SET status = 'paid', transaction_id = i_tid, paid_at = $2, \
                           finished_at = $2, updated_at = $2, next_check_at = NULL FROM input \
                           WHERE id = i_no AND status IN ('pending', 'closing') AND total_fee = 101 RETURNING id, i_tid), \
                         inbox AS (INSERT INTO pay_inbox (transaction_id, out_trade_no, total_fee, time_end, paid_at, \
                           received_at, processed_at, outcome) SELECT i_tid, id, 101, '20261127120000', $2, $2, $2, 'paid' FROM paid), \
                         events AS (INSERT INTO order_events (order_id, seq, at, kind, cause, detail) \
                           SELECT id, k.n, $2, k.kind, 'notify', i_tid FROM paid, \
                           (VALUES (2, 'notify_received'), (3, 'paid')) AS k(n, kind)) \
                         SELECT id FROM paid",
                    )
                    .bind(ids)
                    .bind(now)
                    .bind(&tids)
                    .fetch_all(&pool)
                    .await
                    .unwrap();
                    assert_eq!(paid.len(), ids.len(), "batch {c} paid by hand");
                }
            })
            .await;
        let batched_ceiling = BURST as f64 / t.elapsed().as_secs_f64();
        pool.close().await; // PostgreSQL's 100 connections are shared by every pool here
        let prefetch = web.ctx.settings.amqp.as_ref().map_or(64, |a| a.prefetch);
        let (broker, broker_flushes) = broker_ceiling(&format!("{prefix}_mq"), prefetch).await;

        println!("scanpay burst benchmark: {BURST} notifies, {SENDERS} in flight, web → RabbitMQ → worker → PostgreSQL + Redis");
        println!("| measure | value |");
        println!("|---|---|");
        println!("| all notifies answered SUCCESS | {:.2} s |", answered.as_secs_f64());
        println!("| all orders paid | {:.2} s |", all_paid.as_secs_f64());
        println!("| paid orders per second | {rate:.0} /s |");
        println!("| PostgreSQL ceiling (the consumer's writes by hand, one statement each, 32 clients) | {ceiling:.0} /s |");
        println!("| ratio | {:.2} |", rate / ceiling);
        println!("| payments per commit in the burst (the consumer's batches) | {per_commit:.1} |");
        println!("| PostgreSQL, the same writes batched by hand ({size} per statement, 4 at a time) | {batched_ceiling:.0} /s |");
        println!("| paid orders / batched by hand | {:.2} |", rate / batched_ceiling);
        println!("| RabbitMQ ceiling (the same path alone: confirmed publish, {SENDERS} in flight; consume and ack, no SQL) | {broker:.0} /s |");
        println!("| paid orders / RabbitMQ ceiling | {:.2} |", rate / broker);
        println!(
            "| notify latency p50 / p99 | {:.1} ms / {:.1} ms |",
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99)
        );

        println!(
            "| CPU per payment, all processes: burst / ceiling | {:.0} µs / {:.0} µs ({:.2}) |",
            cpu_used.iter().sum::<f64>() * 1e6 / BURST as f64,
            ceiling_cpu * 1e6 / BURST as f64,
            ceiling_cpu / cpu_used.iter().sum::<f64>()
        );
        println!(
            "| disk flushes per payment: burst / PostgreSQL ceiling / RabbitMQ ceiling | {:.2} / {:.2} / {:.2} ({:.0} /s / {:.0} /s) |",
            flushes as f64 / BURST as f64,
            ceiling_flushes as f64 / BURST as f64,
            broker_flushes,
            flushes as f64 / all_paid.as_secs_f64(),
            ceiling_flushes as f64 * ceiling / BURST as f64
        );
        let who = THREADS.iter().chain(&PROCESSES).map(|(w, _)| *w);
        for (who, used) in who.zip(&cpu_used) {
            println!(
                "| CPU during the burst: {who} | {used:.2} s ({:.0} µs per payment) |",
                used * 1e6 / BURST as f64
            );
        }

        // Polls: one shopper's order, from the Redis cache vs from SQL (a second web process on
        // the same database without Redis).
        let (cookie, id) = support::shopper_with_order(&http, &format!("http://{}", web.addr)).await;
        let mut sql_env = env.clone();
        sql_env.remove("SCANPAY_REDIS_URL");
        sql_env.remove("SCANPAY_AMQP_URL");
        sql_env.insert("SCANPAY_DATABASE_MAX_CONNECTIONS".into(), "16".into());
        let web_sql = app(&sql_env, Role::Web).await;
        let base_redis = format!("http://{}", web.addr);
        let base_sql = format!("http://{}", web_sql.addr);
        let redis_rate = polls(&base_redis, &cookie, &id, Duration::from_secs(5)).await;
        let sql_rate = polls(&base_sql, &cookie, &id, Duration::from_secs(5)).await;
        println!("| status polls answered, web reading Redis (32 pollers) | {redis_rate:.0} /s |");
        println!("| status polls answered, web reading SQL (32 pollers) | {sql_rate:.0} /s |");
        println!("| ratio Redis / SQL | {:.2} |", redis_rate / sql_rate);

        // Clean up: the database here, queues and keys by `Cleanup` (also after a panic).
        web.abort();
        worker.abort();
        web_sql.abort();
        raw.close().await;
        store.close_pool().await;
        db.remove().await;
    });
}
