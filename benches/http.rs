//! Benchmark: what every shopper's browser asks of scanpay — the 3-second status poll, the
//! checkout page, placing an order — under load from `wrk` (a second process, 64 keep-alive
//! connections), each beside its ceiling measured the same way in the same run:
//!
//! - the poll (`POST /api/order_status`, session cookie, `Origin`, `Accept-Encoding` as a browser
//!   sends them) from the Redis status cache and from SQL, beside an axum hello-world;
//! - the checkout (whole page with the QR SVG, a pending order) beside axum serving the very bytes
//!   it rendered from memory, uncompressed and as a browser gets it (brotli), and its latency on
//!   one connection (server time plus loopback);
//! - placing an order (cart → pending order, the QR asked of the sandbox in the background)
//!   beside the store's own `create_order` for as many orders at the same concurrency.
//!
//! The app runs in this process on 2 tokio threads with its defaults (SQLite, in-process sandbox,
//! hashed front-end file names as a release build serves them). Needs `wrk` (Debian: `apt-get
//! install wrk`) and Redis at `BENCH_REDIS_URL` (default 127.0.0.1:6379).
//!
//! Run: `scripts/bench.sh http [SECONDS]` (release build). Figures: docs/BENCHMARKS.md.
//! `BENCH_ONLY=poll|render|place` runs one part (for a profiler attached to this process).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod support;

use axum::http::header;
use futures::stream::{self, StreamExt};
use leptos::prelude::LeptosOptions;
use scanpay::server::config::Settings;
use scanpay::server::domain::{NewItem, NewOrder};
use scanpay::server::start;
use scanpay::server::startup::Running;
use scanpay::server::support::clock::now_ms;
use support::percentile;
use support::wrk::{self, Load, Req};

const CONNECTIONS: usize = 64;
const BROWSER_ENCODING: &str = "gzip, deflate, br, zstd";

struct App {
    running: Running,
    base: String,
}

async fn app(dir: &std::path::Path, name: &str, extra: &[(&str, String)]) -> App {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut env: BTreeMap<String, String> = [
        (
            "SCANPAY_DATABASE_URL",
            format!("sqlite://{}/{name}.db", dir.display()),
        ),
        ("SCANPAY_WXPAY_BASE_URL", format!("http://{addr}/sandbox/")),
        ("SCANPAY_SANDBOX", "true".into()),
        ("SCANPAY_LIMIT_OPEN_ORDERS", "1000".into()),
        ("SCANPAY_LIMIT_ORDERS_PER_MINUTE", "1000000".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    env.extend(extra.iter().map(|(k, v)| (k.to_string(), v.clone())));
    let settings =
        Settings::from_sources(include_str!("../Leptos.toml"), "Leptos.toml", &env, addr).unwrap();
    // As a release build serves the front end: hashed file names, read from `hash.txt` beside
    // the executable (cargo-leptos writes it there).
    let exe_dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::write(
        exe_dir.join("hash.txt"),
        "js: 0123456789abcdef\nwasm: 0123456789abcdef\ncss: 0123456789abcdef\n",
    )
    .unwrap();
    let options = LeptosOptions::builder()
        .output_name("scanpay")
        .site_addr(addr)
        .site_root(dir.display().to_string())
        .hash_files(true)
        .build();
    let running = start(settings, options, listener).await.unwrap();
    App {
        running,
        base: format!("http://{addr}"),
    }
}

/// Serves `router` on a port of its own: the URL of its `/`.
async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    format!("http://{addr}/")
}

/// Serves `body` with `headers` at `/` from memory: the ceiling for the same bytes.
async fn from_memory(
    body: axum::body::Bytes,
    headers: Vec<(header::HeaderName, String)>,
) -> String {
    let handler = move || {
        let (body, headers) = (body.clone(), headers.clone());
        async move {
            let mut r = axum::response::Response::new(axum::body::Body::from(body));
            for (k, v) in headers {
                r.headers_mut().insert(k, v.parse().unwrap());
            }
            r
        }
    };
    serve(axum::Router::new().route("/", axum::routing::get(handler))).await
}

async fn hello_world() -> String {
    serve(axum::Router::new().route("/", axum::routing::get(|| async { "Hello, world!" }))).await
}

/// What one Redis read costs a bare axum handler: `HGET key v` over one multiplexed connection
/// per request, the body its answer. The floor under any poll that asks Redis every time.
async fn redis_floor(url: &str, key: String) -> String {
    let conn = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let handler = move || {
        let (mut conn, key) = (conn.clone(), key.clone());
        async move {
            let v: Option<String> = redis::cmd("HGET")
                .arg(&key)
                .arg("v")
                .query_async(&mut conn)
                .await
                .unwrap();
            v.unwrap_or_default()
        }
    };
    serve(axum::Router::new().route("/", axum::routing::get(handler))).await
}

/// The same for SQL: the poll's row read by a bare axum handler from its own SQLite pool.
async fn sql_floor(db_url: &str, id: String) -> String {
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(10)
        .test_before_acquire(false)
        .connect(db_url)
        .await
        .unwrap();
    let handler = move || {
        let (pool, id) = (pool.clone(), id.clone());
        async move {
            let (status, session): (String, String) =
                sqlx::query_as("SELECT status, session_id FROM orders WHERE id = ?")
                    .bind(&id)
                    .fetch_one(&pool)
                    .await
                    .unwrap();
            format!("{status}{session}")
        }
    };
    serve(axum::Router::new().route("/", axum::routing::get(handler))).await
}

/// wrk on a blocking thread (the servers keep running on the runtime meanwhile).
async fn load(url: &str, req: Req<'static>, connections: usize, secs: u64) -> Load {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || wrk::run(&url, &req, connections, secs))
        .await
        .unwrap()
}

/// A shopper of `app` with a pending order whose QR code is ready: (cookie, order id).
async fn shopper(http: &reqwest::Client, app: &App) -> (String, String) {
    let (cookie, id) = support::shopper_with_order(http, &app.base).await;
    for _ in 0..100 {
        let page = http
            .get(format!("{}/checkout/{id}", app.base))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if page.contains("<svg") {
            return (cookie, id);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no QR code for {id}");
}

fn poll_req(app: &App, cookie: &str, id: &str) -> Req<'static> {
    Req {
        post_body: Some(Box::leak(format!("id={id}").into_boxed_str())),
        headers: vec![
            ("Cookie", cookie.to_string()),
            ("Origin", app.base.clone()),
            ("Content-Type", "application/x-www-form-urlencoded".into()),
            ("Accept", "application/json".into()),
            ("Accept-Encoding", BROWSER_ENCODING.into()),
        ],
        cookies: vec![],
    }
}

fn row(name: &str, ours: Load, ceiling: Load) {
    println!(
        "| {name} | {:.0} /s | {:.0} /s | **{:.3}** | {:.2} ms | {:.2} ms | {:.2}× |",
        ours.rps,
        ceiling.rps,
        ours.rps / ceiling.rps,
        ours.p99_ms,
        ceiling.p99_ms,
        ours.p99_ms / ceiling.p99_ms
    );
}

fn main() {
    let secs: u64 = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let only = std::env::var("BENCH_ONLY").ok();
    let part = |name: &str| only.as_deref().is_none_or(|o| o == name);
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let redis_url =
            std::env::var("BENCH_REDIS_URL").unwrap_or("redis://127.0.0.1:6379".into());
        let prefix = format!("scanpay-bench-{}", std::process::id());
        let cached = app(
            dir.path(),
            "cached",
            &[
                ("SCANPAY_REDIS_URL", redis_url.clone()),
                ("SCANPAY_REDIS_PREFIX", prefix.clone()),
            ],
        )
        .await;
        let plain = app(dir.path(), "plain", &[]).await;
        let hello = hello_world().await;
        // A request that hangs fails the run instead of stalling it.
        let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();
        let mut redis = redis::Client::open(redis_url.as_str())
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();

        println!(
            "scanpay HTTP benchmark: wrk, 1 thread, {CONNECTIONS} keep-alive connections, \
             {secs} s each; the app on 2 tokio threads in the benchmark's process"
        );
        println!();
        println!("| request | ours | ceiling | ratio | p99 ours | p99 ceiling | p99 ratio |");
        println!("|---|---|---|---|---|---|---|");

        // Warm-up: connections, caches, the allocator.
        let (c_cookie, c_id) = shopper(&http, &cached).await;
        let (p_cookie, p_id) = shopper(&http, &plain).await;
        let poll_cached = poll_req(&cached, &c_cookie, &c_id);
        let poll_plain = poll_req(&plain, &p_cookie, &p_id);
        let body = http
            .post(format!("{}/api/order_status", cached.base))
            .header("cookie", &c_cookie)
            .header("origin", &cached.base)
            .form(&[("id", &c_id)])
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(body.contains("\"status\":\"Pending\""), "{body}");
        load(&hello, Req::default(), CONNECTIONS, 1).await;
        load(&format!("{}/api/order_status", cached.base), poll_cached.clone(), CONNECTIONS, 1).await;
        let key = format!("{prefix}:status:{c_id}");
        let cached_entry: bool = redis::cmd("EXISTS").arg(&key).query_async(&mut redis).await.unwrap();
        assert!(cached_entry, "the poll is answered from Redis ({key})");

        // The poll.
        if part("poll") {
        let ceiling = load(&hello, Req::default(), CONNECTIONS, secs).await;
        let ours = load(&format!("{}/api/order_status", cached.base), poll_cached, CONNECTIONS, secs).await;
        row("status poll, Redis cache (vs hello-world)", ours, ceiling);
        let floor = load(&redis_floor(&redis_url, key.clone()).await, Req::default(), CONNECTIONS, secs).await;
        row("floor: bare axum + one Redis HGET (vs hello-world)", floor, ceiling);
        let ours = load(&format!("{}/api/order_status", plain.base), poll_plain, CONNECTIONS, secs).await;
        row("status poll, SQL (vs hello-world)", ours, ceiling);
        let db_url = format!("sqlite://{}/plain.db", dir.path().display());
        let floor = load(&sql_floor(&db_url, p_id.clone()).await, Req::default(), CONNECTIONS, secs).await;
        row("floor: bare axum + one SQLite SELECT (vs hello-world)", floor, ceiling);
        }

        // The checkout page, uncompressed and as a browser gets it.
        let checkout = format!("{}/checkout/{p_id}", plain.base);
        for (label, encoding) in [("identity", "identity"), ("brotli", BROWSER_ENCODING)] {
            if !part("render") {
                break;
            }
            let page = http
                .get(&checkout)
                .header("cookie", &p_cookie)
                .header("accept-encoding", encoding)
                .send()
                .await
                .unwrap();
            assert_eq!(page.status(), 200);
            let mut headers = vec![(header::CONTENT_TYPE, "text/html; charset=utf-8".to_string())];
            if let Some(e) = page.headers().get(header::CONTENT_ENCODING) {
                headers.push((header::CONTENT_ENCODING, e.to_str().unwrap().to_string()));
            }
            let bytes = page.bytes().await.unwrap();
            let memory = from_memory(bytes.clone(), headers).await;
            let req = Req {
                post_body: None,
                headers: vec![
                    ("Cookie", p_cookie.clone()),
                    ("Accept", "text/html".into()),
                    ("Accept-Encoding", encoding.into()),
                ],
                cookies: vec![],
            };
            load(&checkout, req.clone(), CONNECTIONS, 1).await;
            let ceiling = load(&memory, req.clone(), CONNECTIONS, secs).await;
            let ours = load(&checkout, req.clone(), CONNECTIONS, secs).await;
            row(
                &format!(
                    "checkout page, {label} ({:.1} KB; vs the same bytes from memory)",
                    bytes.len() as f64 / 1024.0
                ),
                ours,
                ceiling,
            );
            if label == "identity" {
                let one = load(&checkout, req.clone(), 1, secs).await;
                let one_ceiling = load(&memory, req, 1, secs).await;
                println!(
                    "| checkout page, identity, 1 connection | p50 {:.3} ms | p50 {:.3} ms | | | | |",
                    one.p50_ms, one_ceiling.p50_ms
                );
            }
        }

        // Placing an order: many shoppers (a session holds at most 1,000 open orders).
        if part("place") {
        sqlx::any::install_default_drivers();
        let db = sqlx::AnyPool::connect(&format!("sqlite://{}/plain.db", dir.path().display()))
            .await
            .unwrap();
        sqlx::query("UPDATE products SET stock = 100000000").execute(&db).await.unwrap();
        let mut cookies = Vec::new();
        for _ in 0..200 {
            cookies.push(support::shopper_with_order(&http, &plain.base).await.0);
        }
        let place = Req {
            post_body: Some(r#"{"lines":[{"sku":"TEA-OOLONG","qty":1}]}"#),
            headers: vec![
                ("Origin", plain.base.clone()),
                ("Content-Type", "application/json".into()),
                ("Accept-Encoding", BROWSER_ENCODING.into()),
            ],
            cookies,
        };
        let before: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&db).await.unwrap();
        let ours = load(&format!("{}/api/place_order", plain.base), place, CONNECTIONS, secs).await;
        let after: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders").fetch_one(&db).await.unwrap();
        let placed = (after - before) as usize;
        // The store's own transaction, as many orders, the same concurrency, no HTTP.
        let store = plain.running.ctx.store.clone();
        let started = Instant::now();
        let mut lat: Vec<f64> = stream::iter(0..placed)
            .map(|i| {
                let store = store.clone();
                async move {
                    let t = Instant::now();
                    let order = NewOrder {
                        id: format!("CEIL{i:010}"),
                        session_id: format!("ceiling-{}", i % 200),
                        created_at: now_ms(),
                        deadline_at: now_ms() + 3_600_000,
                        first_check_at: now_ms() + 3_600_000,
                        max_open: 1000,
                        items: vec![NewItem { sku: "TEA-OOLONG".into(), qty: 1 }],
                    };
                    store.create_order(&order, "bench").await.unwrap();
                    t.elapsed().as_secs_f64() * 1000.0
                }
            })
            .buffer_unordered(CONNECTIONS)
            .collect()
            .await;
        let rate = placed as f64 / started.elapsed().as_secs_f64();
        lat.sort_by(f64::total_cmp);
        let ceiling = Load { rps: rate, p50_ms: percentile(&lat, 0.5), p99_ms: percentile(&lat, 0.99) };
        row(
            &format!("place order, {placed} orders (vs store.create_order, as many)"),
            ours,
            ceiling,
        );
        }

        cached.running.abort();
        plain.running.abort();
        let exe = std::env::current_exe().unwrap();
        let _ = std::fs::remove_file(exe.parent().unwrap().join("hash.txt"));
        // The apps stopped first: their jobs write keys until then.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{prefix}:*"))
            .query_async(&mut redis)
            .await
            .unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL").arg(keys).query_async(&mut redis).await.unwrap();
        }
    });
}
