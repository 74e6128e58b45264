use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use leptos::prelude::LeptosOptions;
use scanpay::server::config::Settings;
use scanpay::server::domain::OrderRow;
use scanpay::server::store::testing::{engine_under_test, TestDb};
use scanpay::server::{start, Ctx, Running};
use serde_json::{json, Value};

const SETTINGS_FILE: &str = include_str!("../../Leptos.toml");

pub struct TestApp {
    pub base: String,
    /// The same database, for tests that look at or arrange rows directly.
    pub db: sqlx::AnyPool,
    pub running: Running,
    pub http: reqwest::Client,
    /// The test's own database (removed when the app is dropped); None for a second app on
    /// another's database.
    pub testdb: Option<TestDb>,
    /// Whether this app's RabbitMQ queues and Redis keys are removed when it is dropped.
    owns_engines: bool,
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.running.abort();
        if self.owns_engines {
            let ttl = self.running.ctx.settings.order_ttl.as_secs();
            remove_engines(&self.running.ctx.settings, vec![ttl]);
        }
    }
}

/// Starts scanpay on 127.0.0.1:<random> with a database of its own (`TEST_DATABASE`: SQLite by
/// default, or PostgreSQL) and the given SCANPAY_* overrides.
pub async fn spawn_app(overrides: &[(&str, &str)]) -> TestApp {
    let testdb = TestDb::new(&engine_under_test()).await;
    let url = testdb.url.clone();
    spawn_app_on(Some(testdb), &url, overrides).await
}

/// Like [`spawn_app`] on a given database (to restart "the same" app, or run a second one).
pub async fn spawn_app_on(
    testdb: Option<TestDb>,
    db_url: &str,
    overrides: &[(&str, &str)],
) -> TestApp {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("SCANPAY_DATABASE_URL".into(), db_url.to_string());
    env.insert("SCANPAY_SANDBOX_TIME_SCALE".into(), "0.001".into());
    // Tests use short deadlines and place many orders from one address and session; the limits
    // have tests of their own that set them.
    env.insert("SCANPAY_SANDBOX_MIN_EXPIRE".into(), "1s".into());
    env.insert("SCANPAY_LIMIT_OPEN_ORDERS".into(), "1000".into());
    env.insert("SCANPAY_LIMIT_ORDERS_PER_MINUTE".into(), "100000".into());
    env.insert("SCANPAY_LIMIT_CANCELS_PER_MINUTE".into(), "100000".into());
    env.insert("SCANPAY_LIMIT_ITEM_QTY".into(), "99".into());
    env.insert(
        "SCANPAY_SESSION_SECRET".into(),
        "integration-tests-session-secret-0123456789".into(),
    );
    // The API the suite speaks (TEST_WXPAY_API=v3 runs the same tests on API v3).
    if let Ok(api) = std::env::var("TEST_WXPAY_API") {
        env.insert("SCANPAY_WXPAY_API".into(), api);
    }
    let owns_engines = testdb.is_some() || full_engines();
    if full_engines() {
        let prefix = unique_prefix();
        env.insert("SCANPAY_AMQP_URL".into(), amqp_url());
        env.insert("SCANPAY_AMQP_PREFIX".into(), prefix.clone());
        env.insert("SCANPAY_REDIS_URL".into(), redis_url());
        env.insert("SCANPAY_REDIS_PREFIX".into(), prefix);
    }
    for (k, v) in overrides {
        env.insert(k.to_string(), v.to_string());
    }
    let settings =
        Settings::from_sources(SETTINGS_FILE, "Leptos.toml", &env, addr).expect("test settings");
    let options = LeptosOptions::builder()
        .output_name("scanpay")
        .site_addr(addr)
        .build();
    let running = start(settings, options, listener)
        .await
        .expect("app starts");
    TestApp {
        db: raw_db(db_url).await,
        base: format!("http://{addr}"),
        running,
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        testdb,
        owns_engines,
    }
}

/// "The same" app started again after a crash (the old one aborted at once): the same database,
/// and the same RabbitMQ queues and Redis keys — so what the first process left there (durable
/// deadlines in the delay queues, the due index) is what the second one finds.
pub async fn restart(mut app: TestApp, overrides: &[(&str, &str)]) -> TestApp {
    app.running.abort();
    let testdb = app.testdb.take();
    let url = (*app.running.ctx.settings.database_url).to_string(); // not Display: redacted
    let s = &app.running.ctx.settings;
    let amqp = s.amqp.as_ref().map(|a| a.prefix.clone());
    let redis = s.redis.as_ref().map(|(_, p)| p.clone());
    app.owns_engines = false; // the restarted app removes them
    drop(app);
    let mut o: Vec<(&str, &str)> = overrides.to_vec();
    if let Some(p) = &amqp {
        o.push(("SCANPAY_AMQP_PREFIX", p));
    }
    if let Some(p) = &redis {
        o.push(("SCANPAY_REDIS_PREFIX", p));
    }
    spawn_app_on(testdb, &url, &o).await
}

impl TestApp {
    pub fn ctx(&self) -> &Arc<Ctx> {
        &self.running.ctx
    }

    /// A new anonymous shopper: a session cookie fetched from the home page.
    pub async fn shopper(&self) -> Shopper {
        let resp = self
            .http
            .get(format!("{}/", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let cookie = resp.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        Shopper {
            base: self.base.clone(),
            http: self.http.clone(),
            cookie,
        }
    }

    pub async fn order(&self, id: &str) -> OrderRow {
        self.ctx()
            .store
            .load(id)
            .await
            .unwrap()
            .expect("order exists")
    }

    pub async fn stock(&self, sku: &str) -> i64 {
        sqlx::query_scalar(&sql("SELECT stock FROM products WHERE sku = ?"))
            .bind(sku)
            .fetch_one(&self.db)
            .await
            .unwrap()
    }

    pub async fn count(&self, sql: &str) -> i64 {
        sqlx::query_scalar(sql).fetch_one(&self.db).await.unwrap()
    }

    pub async fn post_xml(&self, path: &str, body: String) -> (u16, String) {
        let r = self
            .http
            .post(format!("{}{}", self.base, path))
            .header("content-type", "text/xml")
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Waits (up to 5 s) until the order satisfies `f`.
    pub async fn wait_for(&self, id: &str, what: &str, f: impl Fn(&OrderRow) -> bool) -> OrderRow {
        let start = Instant::now();
        loop {
            let o = self.order(id).await;
            if f(&o) {
                return o;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "timed out waiting for {what}: {o:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

pub struct Shopper {
    pub base: String,
    pub http: reqwest::Client,
    pub cookie: String,
}

impl Shopper {
    /// Calls a server function with form-encoded arguments; returns (HTTP status, JSON body).
    pub async fn call(&self, endpoint: &str, form: &[(&str, &str)]) -> (u16, Value) {
        let body = form
            .iter()
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    v.replace('%', "%25")
                        .replace('&', "%26")
                        .replace('+', "%2B")
                )
            })
            .collect::<Vec<_>>()
            .join("&");
        self.post(endpoint, "application/x-www-form-urlencoded", body)
            .await
    }

    pub async fn place(&self, lines: &[(&str, i64)]) -> (u16, Value) {
        let lines: Vec<Value> = lines
            .iter()
            .map(|(s, q)| json!({"sku": s, "qty": q}))
            .collect();
        self.post(
            "place_order",
            "application/json",
            json!({ "lines": lines }).to_string(),
        )
        .await
    }

    async fn post(&self, endpoint: &str, content_type: &str, body: String) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}/api/{endpoint}", self.base))
            .header("cookie", &self.cookie)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (
            status,
            serde_json::from_str(&r.text().await.unwrap()).unwrap_or(Value::Null),
        )
    }

    /// Places an order that must succeed; returns its id.
    pub async fn place_ok(&self, lines: &[(&str, i64)]) -> String {
        let (status, body) = self.place(lines).await;
        assert_eq!(status, 200, "{body}");
        body.as_str().expect("order id").to_string()
    }

    pub async fn page(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{}", self.base, path))
            .header("cookie", &self.cookie)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }
}

/// The same SQL for the test database's engine: `?` parameters become `$1…` on PostgreSQL, and
/// MySQL casts to `SIGNED` where the others cast to `BIGINT`.
pub fn sql(q: &str) -> String {
    match engine_under_test().as_str() {
        "postgres" => {}
        "mysql" => return q.replace("AS BIGINT)", "AS SIGNED)"),
        _ => return q.to_string(),
    }
    let mut n = 0;
    q.chars()
        .map(|c| match c {
            '?' => {
                n += 1;
                format!("${n}")
            }
            c => c.to_string(),
        })
        .collect()
}

/// A plain connection pool on a test's database, for arranging and inspecting rows directly.
pub async fn raw_db(url: &str) -> sqlx::AnyPool {
    sqlx::any::install_default_drivers();
    sqlx::AnyPool::connect(url).await.expect("test database")
}

/// RabbitMQ and Redis for tests (`TEST_AMQP_URL`, `TEST_REDIS_URL`), each test under names of
/// its own.
pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".into())
}

/// A prefix no other test run uses.
pub fn unique_prefix() -> String {
    format!(
        "scanpay_t{}_{}",
        std::process::id(),
        scanpay::server::support::ids::random_alnum(8).to_lowercase()
    )
}

/// Whether this run puts the integration suite on RabbitMQ + Redis (`TEST_ENGINES=rabbitmq+redis`).
pub fn full_engines() -> bool {
    std::env::var("TEST_ENGINES").is_ok_and(|v| v == "rabbitmq+redis")
}

/// Removes a test's RabbitMQ topology and Redis keys (from a thread of its own: it runs from
/// `Drop`, when the test's runtime may be gone).
pub fn remove_engines(settings: &Settings, delays: Vec<u64>) {
    remove_queues_and_keys(
        settings.amqp.as_ref().map(|s| s.prefix.clone()),
        settings.redis.as_ref().map(|(_, prefix)| prefix.clone()),
        delays,
    );
}

/// Removes the RabbitMQ topology (with these delay queues) and the Redis keys under the given
/// prefixes, straight at the services — never through a test's proxy: the proxy runs on the
/// test's runtime, which is blocked while this runs.
pub fn remove_queues_and_keys(
    amqp_prefix: Option<String>,
    redis_prefix: Option<String>,
    delays: Vec<u64>,
) {
    if amqp_prefix.is_none() && redis_prefix.is_none() {
        return;
    }
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let work = async move {
            if let Some(prefix) = amqp_prefix {
                let s = scanpay::server::amqp::RabbitSettings {
                    url: amqp_url(),
                    prefix,
                    prefetch: 1,
                    publish_timeout: Duration::from_secs(3),
                };
                match scanpay::server::amqp::Rabbit::connect(s).await {
                    Ok(r) => {
                        // An aborted consumer that was reconnecting may declare its queue once
                        // more while this runs: delete again after a moment (deleting what is
                        // gone is a no-op).
                        for pass in 0..2 {
                            if pass > 0 {
                                tokio::time::sleep(Duration::from_millis(300)).await;
                            }
                            if let Err(e) = r.delete_topology(&delays).await {
                                eprintln!("test clean-up: RabbitMQ topology not removed: {e}");
                            }
                        }
                    }
                    Err(e) => eprintln!("test clean-up: {e}"),
                }
            }
            if let Some(prefix) = redis_prefix {
                if let Ok(c) =
                    scanpay::server::redis_conn::RedisConn::connect(&redis_url(), &prefix).await
                {
                    // A task the test spawned (a close, a QR request) may still write once more
                    // while this runs: delete until a pass finds nothing.
                    for _ in 0..10 {
                        if matches!(c.delete_all().await, Ok(0) | Err(_)) {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                }
            }
        };
        // Never hang a test run on clean-up.
        rt.block_on(async { tokio::time::timeout(Duration::from_secs(20), work).await })
    })
    .join();
}

/// A TCP proxy the test controls, to cut a service's connections without touching the service.
pub struct Proxy {
    pub port: u16,
    up: Arc<tokio::sync::watch::Sender<bool>>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    pub async fn start(target: &str) -> Proxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, _) = tokio::sync::watch::channel(true);
        let up = Arc::new(tx);
        let target = target.to_string();
        let task = tokio::spawn({
            let up = up.clone();
            async move {
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        return;
                    };
                    if !*up.borrow() {
                        drop(client); // down: refuse by closing at once
                        continue;
                    }
                    let mut down = up.subscribe();
                    let target = target.clone();
                    tokio::spawn(async move {
                        let Ok(mut server) = tokio::net::TcpStream::connect(&target).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut server) => {}
                            _ = down.wait_for(|up| !*up) => {} // cut: both sides dropped
                        }
                    });
                }
            }
        });
        Proxy { port, up, task }
    }

    /// Drops every open connection and refuses new ones until `restore`.
    pub fn cut(&self) {
        self.up.send_replace(false);
    }

    /// The switch itself, for a task that restores the proxy later.
    pub fn handle(&self) -> Arc<tokio::sync::watch::Sender<bool>> {
        self.up.clone()
    }

    pub fn restore(&self) {
        self.up.send_replace(true);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
        self.task.abort();
    }
}
