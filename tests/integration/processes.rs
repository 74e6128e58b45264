//! Real `scanpay` processes: several on one database, and a graceful stop on SIGTERM.

use crate::common::sql;
use std::collections::{BTreeMap, HashSet};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use futures::stream::{self, StreamExt};
use scanpay::server::wxpay::{Merchant, SignType, WxPayClient};

use crate::notify::{notify_params, signed};

/// A scanpay process, killed when dropped (also when a test fails).
pub struct Proc {
    pub child: Child,
    pub base: String,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn spawn(
    dir: &std::path::Path,
    name: &str,
    port: u16,
    env: &[(&str, String)],
    args: &[&str],
) -> Proc {
    let log = std::fs::File::create(dir.join(format!("{name}.log"))).unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scanpay"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "warn")
        .env("LEPTOS_OUTPUT_NAME", "scanpay")
        .env("LEPTOS_SITE_ROOT", dir.join("site"))
        .env("LEPTOS_SITE_PKG_DIR", "pkg")
        .env("LEPTOS_SITE_ADDR", format!("127.0.0.1:{port}"))
        .env("SCANPAY_SANDBOX_MIN_EXPIRE", "1s")
        .env("SCANPAY_LIMIT_OPEN_ORDERS", "1000")
        .env("SCANPAY_LIMIT_ORDERS_PER_MINUTE", "100000")
        .args(args)
        .stdout(log.try_clone().unwrap())
        .stderr(log);
    for (k, v) in env {
        cmd.env(k, v);
    }
    Proc {
        child: cmd.spawn().expect("the scanpay binary starts"),
        base: format!("http://127.0.0.1:{port}"),
    }
}

pub async fn wait_healthy(http: &reqwest::Client, p: &Proc, dir: &std::path::Path, name: &str) {
    let start = Instant::now();
    loop {
        if let Ok(r) = http.get(format!("{}/healthz", p.base)).send().await {
            if r.status() == 200 {
                return;
            }
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{name} did not become healthy: {}",
            std::fs::read_to_string(dir.join(format!("{name}.log"))).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub async fn session(http: &reqwest::Client, base: &str) -> String {
    let r = http.get(format!("{base}/")).send().await.unwrap();
    r.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_string()
}

pub async fn place(http: &reqwest::Client, base: &str, cookie: &str, sku: &str) -> String {
    let r = http
        .post(format!("{base}/api/place_order"))
        .header("cookie", cookie)
        .header("content-type", "application/json")
        .body(format!(r#"{{"lines":[{{"sku":"{sku}","qty":1}}]}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    serde_json::from_str::<String>(&r.text().await.unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_on_one_database_finish_each_order_exactly_once() {
    const ORDERS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    // SQLite by default; TEST_DATABASE=postgres runs the three processes on PostgreSQL.
    let testdb = scanpay::server::store::testing::TestDb::new(
        &scanpay::server::store::testing::engine_under_test(),
    )
    .await;
    let db_url = testdb.url.clone();
    let ports = [free_port(), free_port(), free_port()];
    let public = format!("http://127.0.0.1:{}", ports[0]);
    let sandbox = format!("{public}/sandbox/");
    let common = |extra: &[(&'static str, String)]| {
        let mut env = vec![
            ("SCANPAY_DATABASE_URL", db_url.clone()),
            // One notify_url for every process, as behind a load balancer.
            ("SCANPAY_PUBLIC_URL", public.clone()),
            ("SCANPAY_ORDER_TTL", "8s".into()),
            ("SCANPAY_SWEEP_INTERVAL", "300ms".into()),
            ("SCANPAY_WXPAY_CLOSE_FLOOR", "1s".into()),
        ];
        env.extend(extra.iter().cloned());
        env
    };
    // Process a also plays WeChat; notifies are dropped there and delivered by this test.
    let a = common(&[
        ("SCANPAY_SANDBOX", "true".into()),
        ("SCANPAY_SANDBOX_CLOSE_FLOOR", "1s".into()),
        ("SCANPAY_SANDBOX_FAULTS", "notify=drop".into()),
    ]);
    let other = common(&[("SCANPAY_WXPAY_BASE_URL", sandbox.clone())]);
    // All three start at once: migrations race too.
    let procs = [
        spawn(dir.path(), "a", ports[0], &a, &[]),
        spawn(dir.path(), "b", ports[1], &other, &[]),
        spawn(dir.path(), "c", ports[2], &other, &[]),
    ];
    let http = reqwest::Client::new();
    for (p, name) in procs.iter().zip(["a", "b", "c"]) {
        wait_healthy(&http, p, dir.path(), name).await;
    }
    let db = crate::common::raw_db(&db_url).await;
    sqlx::query(&sql("UPDATE products SET stock = 100000"))
        .execute(&db)
        .await
        .unwrap();

    // Shoppers on every process (their cookies work on all three: one generated secret).
    let mut cookies = Vec::new();
    for p in &procs {
        cookies.push(session(&http, &p.base).await);
    }
    let skus = ["TEA-OOLONG", "BUN-RED", "PIN-PANDA"];
    let ids: Vec<String> = stream::iter(0..ORDERS)
        .map(|i| {
            let (http, base, cookie) = (&http, &procs[i % 3].base, &cookies[(i / 3) % 3]);
            async move { place(http, base, cookie, skus[i % 3]).await }
        })
        .buffered(8)
        .collect()
        .await;

    // Every other order is paid at WeChat. A quarter of all get a notify at one process, a
    // twelfth of all at all three at once; the rest of the paid ones only the sweeps can find.
    let merchant = Merchant {
        appid: "wx5a4d1ba6b7c8e9f0".into(),
        mch_id: "1900000109".into(),
        api_key: scanpay::server::wxpay::ApiKey::new("sandbox0api0key0not0a0secret0000"),
        sign_type: SignType::Md5,
    };
    let wechat = WxPayClient::new(&sandbox, merchant.clone(), Duration::from_secs(5));
    let mut paid = HashSet::new();
    let mut notified = 0;
    let mut duplicated = 0;
    for (i, id) in ids.iter().enumerate().filter(|(i, _)| i % 2 == 0) {
        let r = http
            .post(format!("{public}/sandbox/admin/pay"))
            .form(&[("out_trade_no", id.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        paid.insert(id.clone());
        if i % 4 != 0 {
            continue;
        }
        let q = wechat.order_query(id).await.unwrap();
        let body = signed(
            &merchant,
            notify_params(
                &merchant,
                id,
                q.total_fee.unwrap(),
                &q.transaction_id.unwrap(),
            ),
        );
        let targets: Vec<&Proc> = if i % 12 == 0 {
            duplicated += 1;
            procs.iter().collect()
        } else {
            vec![&procs[(i / 4) % 3]]
        };
        notified += 1;
        let replies = futures::future::join_all(targets.iter().map(|p| {
            http.post(format!("{}/wxpay/notify", p.base))
                .body(body.clone())
                .send()
        }))
        .await;
        for r in replies {
            assert_eq!(r.unwrap().status(), 200);
        }
    }

    // Every order reaches its outcome: paid, or closed after its deadline.
    let start = Instant::now();
    loop {
        let open: i64 = sqlx::query_scalar(&sql(
            "SELECT COUNT(*) FROM orders WHERE status IN ('pending', 'closing')",
        ))
        .fetch_one(&db)
        .await
        .unwrap();
        if open == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(40),
            "{open} orders unfinished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rows: Vec<(String, String)> = sqlx::query_as(&sql("SELECT id, status FROM orders"))
        .fetch_all(&db)
        .await
        .unwrap();
    assert_eq!(rows.len(), ORDERS);
    let outcome_events: BTreeMap<String, i64> = sqlx::query_as::<_, (String, i64)>(&sql("SELECT order_id, COUNT(*) FROM order_events WHERE kind IN ('paid', 'closed', 'failed') GROUP BY order_id"))
    .fetch_all(&db)
    .await
    .unwrap()
    .into_iter()
    .collect();
    let mut counts = BTreeMap::<&str, usize>::new();
    for (id, status) in &rows {
        assert_eq!(
            outcome_events.get(id),
            Some(&1),
            "{id}: exactly one outcome event"
        );
        let expect = if paid.contains(id) { "paid" } else { "closed" };
        assert_eq!(status, expect, "{id}");
        *counts.entry(expect).or_default() += 1;
    }
    let repeated: Vec<(String, String, i64)> = sqlx::query_as(&sql("SELECT order_id, kind, COUNT(*) FROM order_events WHERE kind IN ('notify_received', 'closing', 'qr_issued') \
         GROUP BY order_id, kind HAVING COUNT(*) > 1"))
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(repeated.is_empty(), "work done twice: {repeated:?}");
    let anomalies: i64 = sqlx::query_scalar(&sql("SELECT COUNT(*) FROM anomalies"))
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(anomalies, 0);
    let held: i64 = sqlx::query_scalar(&sql("SELECT CAST(300000 - SUM(stock) AS BIGINT) FROM products WHERE sku IN ('TEA-OOLONG', 'BUN-RED', 'PIN-PANDA')"))
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(
        held,
        paid.len() as i64,
        "stock held by exactly the paid orders"
    );
    println!(
        "3 processes, one {} database: {ORDERS} orders, {} paid ({notified} notified, {duplicated} of them \
         at all three processes at once, {} found by the sweeps), {} closed; each outcome once, \
         no notify applied twice, no close started twice",
        scanpay::server::store::testing::engine_under_test(),
        counts["paid"],
        counts["paid"] - notified,
        counts["closed"]
    );
    db.close().await;
    drop(procs);
    testdb.remove().await;
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_and_exits_zero() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let env = [
        (
            "SCANPAY_DATABASE_URL",
            format!("sqlite://{}/t.db", dir.path().display()),
        ),
        ("SCANPAY_SANDBOX_FAULTS", "unifiedorder=latency:1s".into()),
    ];
    let mut p = spawn(dir.path(), "p", port, &env, &[]);
    let http = reqwest::Client::new();
    wait_healthy(&http, &p, dir.path(), "p").await;
    let cookie = session(&http, &p.base).await;
    let base = p.base.clone();
    let in_flight = tokio::spawn({
        let http = http.clone();
        async move { place(&http, &base, &cookie, "TEA-OOLONG").await }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = p.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let id = in_flight.await.unwrap();
    assert!(id.starts_with("SP"), "answered: {id}");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = p.child.try_wait().unwrap() {
            break s;
        }
        assert!(start.elapsed() < Duration::from_secs(10), "exits");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        status.success(),
        "exit {status:?}: {}",
        std::fs::read_to_string(dir.path().join("p.log")).unwrap_or_default()
    );
}

#[tokio::test]
async fn a_web_and_a_worker_process_split_the_work_of_one() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/roles.db", dir.path().display());
    let (web_port, worker_port) = (free_port(), free_port());
    let public = format!("http://127.0.0.1:{web_port}");
    let env = vec![
        ("SCANPAY_DATABASE_URL", url.clone()),
        ("SCANPAY_PUBLIC_URL", public.clone()),
        ("SCANPAY_WXPAY_BASE_URL", format!("{public}/sandbox/")),
        ("SCANPAY_SANDBOX", "true".into()),
        ("SCANPAY_ORDER_TTL", "3s".into()),
        ("SCANPAY_SWEEP_INTERVAL", "300ms".into()),
        ("SCANPAY_WXPAY_CLOSE_FLOOR", "1s".into()),
        ("SCANPAY_SANDBOX_CLOSE_FLOOR", "1s".into()),
    ];
    let web = spawn(dir.path(), "web", web_port, &env, &["--role", "web"]);
    let worker = spawn(dir.path(), "worker", worker_port, &env, &["--role=worker"]);
    let http = reqwest::Client::new();
    wait_healthy(&http, &web, dir.path(), "web").await;
    wait_healthy(&http, &worker, dir.path(), "worker").await;
    let ready = |base: String| {
        let http = http.clone();
        async move {
            let r = http.get(format!("{base}/readyz")).send().await.unwrap();
            assert_eq!(r.status(), 200);
            serde_json::from_str::<serde_json::Value>(&r.text().await.unwrap()).unwrap()
        }
    };
    let w = ready(web.base.clone()).await;
    assert_eq!(
        (
            w["role"].as_str(),
            w["workers"].as_object().map(|o| o.len())
        ),
        (Some("web"), Some(0))
    );
    let k = ready(worker.base.clone()).await;
    assert_eq!(k["role"], "worker");
    for name in ["pay_results", "sweep", "timeouts", "reconcile"] {
        assert_eq!(k["workers"][name]["state"], "running", "{k}");
    }
    assert_eq!(k["dependencies"]["sqlite"], "ok");
    // The worker serves no pages.
    let r = http.get(format!("{}/", worker.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);

    // An order placed at the web process is closed at its deadline by the worker process.
    let cookie = session(&http, &web.base).await;
    let id = place(&http, &web.base, &cookie, "PIN-PANDA").await;
    let db = crate::common::raw_db(&url).await;
    let start = Instant::now();
    loop {
        let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = ?")
            .bind(&id)
            .fetch_one(&db)
            .await
            .unwrap();
        if status == "closed" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "{id} still {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let causes: Vec<String> = sqlx::query_scalar(
        "SELECT cause FROM order_events WHERE order_id = ? AND kind IN ('closing', 'closed')",
    )
    .bind(&id)
    .fetch_all(&db)
    .await
    .unwrap();
    assert!(
        !causes.is_empty() && causes.iter().all(|c| c == "timeout" || c == "sweep"),
        "{causes:?}"
    );
    // A bad role is refused at start-up with a message.
    let out = Command::new(env!("CARGO_BIN_EXE_scanpay"))
        .args(["--role", "cook"])
        .env("LEPTOS_OUTPUT_NAME", "scanpay")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("web, worker or all"));
}

/// The scaled-out topology: one web and two worker processes on PostgreSQL + RabbitMQ + Redis.
/// A worker is killed (SIGKILL) in the middle of a burst of notifies: the other applies what it
/// had not acked. Every paid order is paid once, every other one closes at its deadline.
#[tokio::test]
#[ignore = "PostgreSQL only: run once, by scripts/test.sh's PostgreSQL suite (--include-ignored)"]
async fn one_web_and_two_workers_on_postgres_rabbitmq_and_redis_survive_a_killed_worker() {
    let testdb = scanpay::server::store::testing::TestDb::new("postgres").await;
    let prefix = crate::common::unique_prefix();
    let dir = tempfile::tempdir().unwrap();
    let ports = [free_port(), free_port(), free_port()];
    let public = format!("http://127.0.0.1:{}", ports[0]);
    let env = vec![
        ("SCANPAY_DATABASE_URL", testdb.url.clone()),
        ("SCANPAY_AMQP_URL", crate::common::amqp_url()),
        ("SCANPAY_AMQP_PREFIX", prefix.clone()),
        ("SCANPAY_REDIS_URL", crate::common::redis_url()),
        ("SCANPAY_REDIS_PREFIX", prefix.clone()),
        ("SCANPAY_PUBLIC_URL", public.clone()),
        ("SCANPAY_WXPAY_BASE_URL", format!("{public}/sandbox/")),
        ("SCANPAY_SANDBOX", "true".into()),
        ("SCANPAY_ORDER_TTL", "4s".into()),
        ("SCANPAY_SWEEP_INTERVAL", "300ms".into()),
        ("SCANPAY_WXPAY_CLOSE_FLOOR", "1s".into()),
        ("SCANPAY_SANDBOX_CLOSE_FLOOR", "1s".into()),
    ];
    // Clean-up of the queues and keys whatever happens.
    struct Engines(String);
    impl Drop for Engines {
        fn drop(&mut self) {
            let p = Some(self.0.clone());
            crate::common::remove_queues_and_keys(p.clone(), p, vec![4]);
        }
    }
    let _engines = Engines(prefix.clone());
    let web = spawn(dir.path(), "web", ports[0], &env, &["--role", "web"]);
    let mut worker_a = spawn(
        dir.path(),
        "worker_a",
        ports[1],
        &env,
        &["--role", "worker"],
    );
    let worker_b = spawn(
        dir.path(),
        "worker_b",
        ports[2],
        &env,
        &["--role", "worker"],
    );
    let http = reqwest::Client::new();
    for (p, name) in [
        (&web, "web"),
        (&worker_a, "worker_a"),
        (&worker_b, "worker_b"),
    ] {
        wait_healthy(&http, p, dir.path(), name).await;
    }
    let ready: serde_json::Value = serde_json::from_str(
        &http
            .get(format!("{}/readyz", web.base))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        (
            &ready["dependencies"]["postgres"],
            &ready["dependencies"]["rabbitmq"],
            &ready["dependencies"]["redis"]
        ),
        (&"ok".into(), &"ok".into(), &"ok".into()),
        "{ready}"
    );

    let db = crate::common::raw_db(&testdb.url).await;
    sqlx::query("UPDATE products SET stock = 100000 WHERE sku = 'PIN-PANDA'")
        .execute(&db)
        .await
        .unwrap();
    let cookie = session(&http, &web.base).await;
    let mut ids = Vec::new();
    for _ in 0..40 {
        ids.push(place(&http, &web.base, &cookie, "PIN-PANDA").await);
    }
    let merchant = Merchant {
        appid: "wx5a4d1ba6b7c8e9f0".into(),
        mch_id: "1900000109".into(),
        api_key: scanpay::server::wxpay::ApiKey::new("sandbox0api0key0not0a0secret0000"),
        sign_type: SignType::Md5,
    };
    // Half are paid by notify; worker A dies after the first few.
    let paid: Vec<String> = ids.iter().step_by(2).cloned().collect();
    for (i, id) in paid.iter().enumerate() {
        if i == 5 {
            worker_a.child.kill().unwrap(); // SIGKILL
        }
        let body = signed(
            &merchant,
            notify_params(&merchant, id, 101, &format!("4200000002202611270{i:09}")),
        );
        loop {
            let r = http
                .post(format!("{}/wxpay/notify", web.base))
                .body(body.clone())
                .send()
                .await
                .unwrap();
            if r.status() == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await; // WeChat retries
        }
    }
    let start = Instant::now();
    for id in &ids {
        let want = if paid.contains(id) { "paid" } else { "closed" };
        loop {
            let status: String = sqlx::query_scalar("SELECT status FROM orders WHERE id = $1")
                .bind(id)
                .fetch_one(&db)
                .await
                .unwrap();
            if status == want {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "{id} is {status}, expected {want}: {}",
                std::fs::read_to_string(dir.path().join("worker_b.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let finals: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM order_events WHERE order_id = $1 AND kind IN ('paid', 'closed', 'failed')",
        )
        .bind(id)
        .fetch_one(&db)
        .await
        .unwrap();
        assert_eq!(finals, 1, "{id} finished {finals} times");
    }
    let held: i64 =
        sqlx::query_scalar("SELECT 100000 - stock FROM products WHERE sku = 'PIN-PANDA'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(held, paid.len() as i64, "stock held = paid orders");
    drop(db);
    drop((web, worker_b));
    testdb.remove().await;
}

/// `scanpay sandbox` is WeChat Pay for another scanpay process: the app places its order there,
/// shows the QR, and is paid by the sandbox's notify.
#[tokio::test]
async fn the_sandbox_runs_as_its_own_process_and_the_app_is_paid_through_it() {
    let dir = tempfile::tempdir().unwrap();
    let (sb_port, app_port) = (free_port(), free_port());
    let wechat = format!("http://127.0.0.1:{sb_port}/sandbox/");
    let sandbox = spawn(
        dir.path(),
        "sandbox",
        sb_port,
        &[("SCANPAY_SANDBOX_TIME_SCALE", "0.01".into())],
        &["sandbox"],
    );
    let url = format!("sqlite://{}/app.db", dir.path().display());
    let app = spawn(
        dir.path(),
        "app",
        app_port,
        &[
            ("SCANPAY_DATABASE_URL", url.clone()),
            ("SCANPAY_WXPAY_BASE_URL", wechat.clone()),
        ],
        &[],
    );
    let http = reqwest::Client::new();
    wait_healthy(&http, &sandbox, dir.path(), "sandbox").await;
    wait_healthy(&http, &app, dir.path(), "app").await;
    // The app mounts no simulator of its own.
    let r = http
        .get(format!("{}/sandbox/scan", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);

    let cookie = session(&http, &app.base).await;
    let id = place(&http, &app.base, &cookie, "PIN-PANDA").await;
    let db = crate::common::raw_db(&url).await;
    let status = |want: &'static str| {
        let (db, id) = (db.clone(), id.clone());
        async move {
            let start = Instant::now();
            loop {
                let (status, qr): (String, Option<String>) =
                    sqlx::query_as("SELECT status, code_url FROM orders WHERE id = ?")
                        .bind(&id)
                        .fetch_one(&db)
                        .await
                        .unwrap();
                if (want == "qr" && qr.is_some()) || status == want {
                    return;
                }
                assert!(
                    start.elapsed() < Duration::from_secs(10),
                    "{id}: {status}, waiting for {want}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    status("qr").await;
    let r = http
        .post(format!("{wechat}admin/pay"))
        .form(&[("out_trade_no", id.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    status("paid").await;
}
