//! The scaled-out topology under every fault at once: one web and two worker processes on
//! PostgreSQL + RabbitMQ + Redis, each service reached through a proxy the test cuts; notifies
//! duplicated and concurrent; RabbitMQ cut, Redis cut, PostgreSQL cut for 3 s; a worker and then
//! the web SIGKILLed and restarted during the cuts. At the end: every paid order paid once, every
//! other one closed, stock conserved, every poll agreeing with SQL, nothing dead-lettered.

use std::time::{Duration, Instant};

use crate::common::Proxy;
use crate::processes::{free_port, place, session, spawn, wait_healthy};

#[tokio::test]
#[ignore = "PostgreSQL only: run once, by scripts/test.sh's PostgreSQL suite (--include-ignored)"]
async fn one_web_and_two_workers_survive_cuts_of_every_service_and_kills_during_them() {
    let testdb = scanpay::server::store::testing::TestDb::new("postgres").await;
    let prefix = crate::common::unique_prefix();
    let dir = tempfile::tempdir().unwrap();
    let (pg, mq, redis) = (
        Proxy::start("127.0.0.1:5432").await,
        Proxy::start("127.0.0.1:5672").await,
        Proxy::start("127.0.0.1:6379").await,
    );
    let db_url = testdb
        .url
        .replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", pg.port), 1);
    let amqp =
        crate::common::amqp_url().replacen("127.0.0.1:5672", &format!("127.0.0.1:{}", mq.port), 1);
    let ports = [free_port(), free_port(), free_port(), free_port()];
    let public = format!("http://127.0.0.1:{}", ports[0]);
    // WeChat in a process of its own: it outlives every scanpay process the test kills. Its
    // notifies come twice at once; it resends what is not answered SUCCESS (fast: time scale).
    let wechat = format!("http://127.0.0.1:{}/sandbox/", ports[3]);
    let sandbox = spawn(
        dir.path(),
        "sandbox",
        ports[3],
        &[
            ("SCANPAY_SANDBOX_TIME_SCALE", "0.01".into()),
            ("SCANPAY_SANDBOX_CLOSE_FLOOR", "1s".into()),
            ("SCANPAY_SANDBOX_FAULTS", "notify=concurrent:2".into()),
        ],
        &["sandbox"],
    );
    let env = vec![
        ("SCANPAY_DATABASE_URL", db_url),
        ("SCANPAY_AMQP_URL", amqp),
        ("SCANPAY_AMQP_PREFIX", prefix.clone()),
        ("SCANPAY_AMQP_PUBLISH_TIMEOUT", "1s".into()),
        (
            "SCANPAY_REDIS_URL",
            format!("redis://127.0.0.1:{}/0", redis.port),
        ),
        ("SCANPAY_REDIS_PREFIX", prefix.clone()),
        ("SCANPAY_PUBLIC_URL", public.clone()),
        ("SCANPAY_WXPAY_BASE_URL", wechat.clone()),
        ("SCANPAY_ORDER_TTL", "10s".into()),
        ("SCANPAY_SWEEP_INTERVAL", "300ms".into()),
        ("SCANPAY_WXPAY_CLOSE_FLOOR", "1s".into()),
        ("SCANPAY_DATABASE_TIMEOUT", "1s".into()),
    ];
    struct Engines(String);
    impl Drop for Engines {
        fn drop(&mut self) {
            let p = Some(self.0.clone());
            crate::common::remove_queues_and_keys(p.clone(), p, vec![10]);
        }
    }
    let _engines = Engines(prefix.clone());
    let http = reqwest::Client::new();
    wait_healthy(&http, &sandbox, dir.path(), "sandbox").await;
    let mut web = spawn(dir.path(), "web", ports[0], &env, &["--role", "web"]);
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
    for (p, name) in [
        (&web, "web"),
        (&worker_a, "worker_a"),
        (&worker_b, "worker_b"),
    ] {
        wait_healthy(&http, p, dir.path(), name).await;
    }
    let db = crate::common::raw_db(&testdb.url).await;
    sqlx::query("UPDATE products SET stock = 100000 WHERE sku = 'PIN-PANDA'")
        .execute(&db)
        .await
        .unwrap();
    let cookie = session(&http, &web.base).await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(place(&http, &web.base, &cookie, "PIN-PANDA").await);
    }
    // Every order has its QR (WeChat holds it) before the faults begin.
    let start = Instant::now();
    loop {
        let missing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM orders WHERE code_url IS NULL")
            .fetch_one(&db)
            .await
            .unwrap();
        if missing == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{missing} orders without a QR"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Two of three are paid at WeChat, one after another while the faults come; a fifth of
    // those never get a notify (only the sweep's orderquery can find them). The rest close at
    // their deadline.
    let paid: Vec<String> = ids
        .iter()
        .enumerate()
        .filter(|(i, _)| i % 3 != 2)
        .map(|(_, id)| id.clone())
        .collect();
    let started = Instant::now();
    for (i, id) in paid.iter().enumerate() {
        match i {
            2 => mq.cut(),
            4 => mq.restore(),
            6 => redis.cut(),
            8 => {
                worker_a.child.kill().unwrap(); // SIGKILL while Redis is away
                let _ = worker_a.child.wait();
                worker_a = spawn(
                    dir.path(),
                    "worker_a",
                    ports[1],
                    &env,
                    &["--role", "worker"],
                );
            }
            10 => {
                pg.cut();
                // PostgreSQL comes back 3 s later, whatever the test is doing then.
                let up = pg.handle();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_secs(3)).await;
                    up.send_replace(true);
                });
            }
            11 => {
                web.child.kill().unwrap(); // SIGKILL while PostgreSQL is away
                let _ = web.child.wait();
                web = spawn(dir.path(), "web", ports[0], &env, &["--role", "web"]);
            }
            16 => redis.restore(),
            _ => {}
        }
        if i % 5 == 3 {
            let r = http
                .post(format!("{wechat}admin/faults"))
                .form(&[("spec", "notify=drop"), ("out_trade_no", id.as_str())])
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200);
        }
        let r = http
            .post(format!("{wechat}admin/pay"))
            .form(&[("out_trade_no", id.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    redis.restore();
    mq.restore();
    pg.restore();
    wait_healthy(&http, &web, dir.path(), "web").await;
    for id in &ids {
        let want = if paid.contains(id) { "paid" } else { "closed" };
        let end = Instant::now() + Duration::from_secs(40);
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
                Instant::now() < end,
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
        // The shopper's poll (Redis first, SQL behind it) says what SQL says.
        let r = http
            .post(format!("{}/api/order_status", web.base))
            .header("cookie", &cookie)
            .form(&[("id", id.as_str())])
            .send()
            .await
            .unwrap();
        let v: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
        let shown = v["status"].as_str().unwrap_or_default().to_lowercase();
        assert_eq!(shown, want, "the poll of {id}: {v}");
    }
    let held: i64 =
        sqlx::query_scalar("SELECT 100000 - stock FROM products WHERE sku = 'PIN-PANDA'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(held, paid.len() as i64, "stock held = paid orders");
    let anomalies: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM anomalies")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(anomalies, 0);
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
    assert_eq!(ready["dead_letters"], 0, "{ready}");
    eprintln!(
        "faults: {} paid once, {} closed, all cuts and kills survived in {:.1}s",
        paid.len(),
        ids.len() - paid.len(),
        started.elapsed().as_secs_f64()
    );
    drop(db);
    drop((web, worker_a, worker_b, sandbox));
    testdb.remove().await;
}
