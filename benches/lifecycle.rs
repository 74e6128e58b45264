//! Benchmark: the cost of the reconciliation sweep and the timeout scheduler follows the orders
//! that are due, not the size of the orders table; and with a slow WeChat the sweep still checks
//! 1,000 due orders within one reconciliation period.
//!
//! Run: `scripts/bench.sh lifecycle` (release build; SQLite file on disk; WeChat is the sandbox
//! over HTTP on 127.0.0.1, slowed with its `latency:` fault knob). Figures: docs/BENCHMARKS.md.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scanpay::app::types::CartLine;
use scanpay::server::config::Settings;
use scanpay::server::orders::{place, sweep, timeout};
use scanpay::server::sandbox::{faults::Faults, Sandbox, SandboxConfig};
use scanpay::server::store;
use scanpay::server::support::clock::now_ms;
use scanpay::server::wxpay::{
    BoxFuture, Gateway, OrderQueryResponse, UnifiedOrderRequest, UnifiedOrderResponse, WxPayClient,
    WxPayError,
};
use scanpay::server::Ctx;

const RUNS: usize = 5;

struct Bench {
    ctx: Arc<Ctx>,
    db: sqlx::SqlitePool,
    sandbox: Sandbox,
    wechat: Arc<Watched>,
    _dir: tempfile::TempDir,
}

/// The real client, noting when each order's first orderquery answer came back.
struct Watched {
    inner: WxPayClient,
    answered: Mutex<(HashSet<String>, Option<Instant>)>,
    want: Mutex<usize>,
}

impl Gateway for Watched {
    fn download_bill<'a>(
        &'a self,
        bill_date: &'a str,
    ) -> BoxFuture<'a, Result<scanpay::server::wxpay::bill::BillAnswer, WxPayError>> {
        Box::pin(self.inner.download_bill(bill_date))
    }
    fn unified_order<'a>(
        &'a self,
        req: &'a UnifiedOrderRequest,
    ) -> BoxFuture<'a, Result<UnifiedOrderResponse, WxPayError>> {
        Box::pin(self.inner.unified_order(req))
    }
    fn order_query<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<OrderQueryResponse, WxPayError>> {
        Box::pin(async move {
            let r = self.inner.order_query(id).await;
            let mut a = self.answered.lock().unwrap();
            a.0.insert(id.to_string());
            if a.1.is_none() && a.0.len() == *self.want.lock().unwrap() {
                a.1 = Some(Instant::now());
            }
            r
        })
    }
    fn close_order<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), WxPayError>> {
        Box::pin(self.inner.close_order(id))
    }
    fn refund<'a>(
        &'a self,
        req: &'a scanpay::server::wxpay::RefundRequest,
    ) -> BoxFuture<'a, Result<scanpay::server::wxpay::RefundAccepted, WxPayError>> {
        Box::pin(self.inner.refund(req))
    }
    fn refund_query<'a>(
        &'a self,
        no: &'a str,
    ) -> BoxFuture<'a, Result<scanpay::server::wxpay::RefundRecord, WxPayError>> {
        Box::pin(self.inner.refund_query(no))
    }
}

async fn setup() -> Bench {
    let dir = tempfile::tempdir().unwrap();
    let db_url = format!("sqlite://{}/bench.db", dir.path().display());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let env: BTreeMap<String, String> = [
        ("SCANPAY_DATABASE_URL", db_url.as_str()),
        ("SCANPAY_WXPAY_BASE_URL", &format!("http://{addr}/sandbox/")),
        ("SCANPAY_WXPAY_CLOSE_FLOOR", "1ms"),
        ("SCANPAY_LIMIT_OPEN_ORDERS", "1000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let settings =
        Settings::from_sources(include_str!("../Leptos.toml"), "Leptos.toml", &env, addr).unwrap();
    let sandbox = Sandbox::new(SandboxConfig {
        merchants: vec![settings.merchant.clone()],
        payee: "bench".into(),
        time_scale: 1.0,
        refund_delay: Duration::from_secs(2),
        bill_ready_after: Duration::ZERO,
        require_client_cert: false,
        close_floor: Duration::from_millis(1),
        min_expire: Duration::from_secs(60),
        faults: Faults::parse("notify=drop").unwrap(),
        v3: None,
    });
    let app = axum::Router::new().nest("/sandbox", sandbox.router());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let store = store::connect(&db_url, &Default::default()).await.unwrap();
    store.migrate().await.unwrap();
    let db = sqlx::SqlitePool::connect(&db_url).await.unwrap();
    sqlx::query("UPDATE products SET stock = 1000000")
        .execute(&db)
        .await
        .unwrap();
    let wechat = Arc::new(Watched {
        inner: WxPayClient::new(
            &settings.wxpay_base_url,
            settings.merchant.clone(),
            settings.wxpay_timeout,
        ),
        answered: Mutex::default(),
        want: Mutex::new(usize::MAX),
    });
    Bench {
        ctx: Arc::new(Ctx::new(settings, store, wechat.clone(), None)),
        db,
        sandbox,
        wechat,
        _dir: dir,
    }
}

/// Orders placed through the real flow (at WeChat too), from a fresh session each 500.
async fn place_real(b: &Bench, n: usize) -> Vec<String> {
    let line = [CartLine {
        sku: "PIN-PANDA".into(),
        qty: 1,
    }];
    let mut ids = Vec::with_capacity(n);
    for i in 0..n {
        let session = format!("bench-{}-{}", now_ms(), i / 500);
        ids.push(place::place_order(&b.ctx, &session, &line).await.unwrap());
    }
    ids
}

/// Unfinished orders that are not due for anything (deadline and next check far ahead): the
/// table's bulk, written straight into SQL.
async fn fill(b: &Bench, n: usize) {
    let mut tx = b.db.begin().await.unwrap();
    let far = now_ms() + 3_600_000;
    for i in 0..n {
        sqlx::query(
            "INSERT INTO orders (id, session_id, status, total_fee, body, created_at, deadline_at, \
             code_url, next_check_at, updated_at) VALUES (?, ?, 'pending', 101, 'filler', ?, ?, 'weixin://x', ?, ?)",
        )
        .bind(format!("FILL{i:012}"))
        .bind(format!("filler-{}", i % 1000))
        .bind(now_ms())
        .bind(far)
        .bind(far)
        .bind(now_ms())
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

async fn set_for(b: &Bench, ids: &[String], column: &str, value: i64) {
    let mut tx = b.db.begin().await.unwrap();
    for id in ids {
        sqlx::query(&format!("UPDATE orders SET {column} = ? WHERE id = ?"))
            .bind(value)
            .bind(id)
            .execute(&mut *tx)
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap());
    v[v.len() / 2]
}

/// Median ms of one sweep pass and one scheduler tick with `due` orders due among `total`.
async fn pass_and_tick(total: usize, due: usize) -> (f64, f64) {
    let b = setup().await;
    fill(&b, total - due).await;
    let checked = place_real(&b, due).await;
    let mut sweeps = Vec::new();
    for _ in 0..RUNS {
        set_for(&b, &checked, "next_check_at", 0).await;
        let t = Instant::now();
        let n = sweep::pass(&b.ctx).await.unwrap();
        sweeps.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(n, due);
    }
    set_for(&b, &checked, "next_check_at", now_ms() + 3_600_000).await;
    let mut ticks = Vec::new();
    for _ in 0..RUNS {
        let expiring = place_real(&b, due).await;
        set_for(&b, &expiring, "deadline_at", now_ms() - 1).await;
        // The sweep must not reach them first.
        set_for(&b, &expiring, "next_check_at", now_ms() + 3_600_000).await;
        let t = Instant::now();
        timeout::tick(&b.ctx).await.unwrap();
        ticks.push(t.elapsed().as_secs_f64() * 1000.0);
        let closed: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE status = 'closed'")
            .fetch_one(&b.db)
            .await
            .unwrap();
        assert!(closed > 0);
    }
    (median(sweeps), median(ticks))
}

/// Seconds until every one of `due` orders has had its orderquery answered, with WeChat slowed
/// down by the sandbox's latency knob; the reconciliation period; the concurrency used.
async fn slow_wechat(due: usize, latency: &str) -> (f64, Duration, usize) {
    let b = setup().await;
    let ids = place_real(&b, due).await;
    b.sandbox.set_faults(
        None,
        Faults::parse(&format!("notify=drop,orderquery=latency:{latency}")).unwrap(),
    );
    *b.wechat.want.lock().unwrap() = due;
    set_for(&b, &ids, "next_check_at", 0).await;
    let t = Instant::now();
    // The pass goes on past the last first check if early orders come due again meanwhile.
    let n = sweep::pass(&b.ctx).await.unwrap();
    assert!(n >= due);
    let all = b
        .wechat
        .answered
        .lock()
        .unwrap()
        .1
        .expect("every order checked");
    let period = b.ctx.settings.sweep_interval * 4;
    (
        all.duration_since(t).as_secs_f64(),
        period,
        b.ctx.settings.sweep_concurrency,
    )
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!("scanpay lifecycle benchmark (SQLite on disk, sandbox over HTTP, median of {RUNS})");
        let (sweep_big, tick_big) = pass_and_tick(10_000, 100).await;
        let (sweep_small, tick_small) = pass_and_tick(100, 100).await;
        println!("| work | 10,000 unfinished, 100 due | 100 unfinished, 100 due | ratio |");
        println!("|---|---|---|---|");
        println!(
            "| one sweep pass (100 orderquery) | {sweep_big:.1} ms | {sweep_small:.1} ms | {:.2} |",
            sweep_big / sweep_small
        );
        println!(
            "| one scheduler tick (100 closes) | {tick_big:.1} ms | {tick_small:.1} ms | {:.2} |",
            tick_big / tick_small
        );
        let (secs, period, conc) = slow_wechat(1000, "100ms").await;
        println!(
            "1,000 orders due, orderquery 100 ms each, concurrency {conc}: all checked in {secs:.2} s; \
             reconciliation period {} s; ratio {:.2} (must be < 1)",
            period.as_secs(),
            secs / period.as_secs_f64()
        );
    });
}
