//! RabbitMQ and Redis for real (the shared services on 127.0.0.1, each test under names of its
//! own): the bus and the delay queues, the Redis index and status cache, each held to its
//! contract, the flows on them end to end, and their faults through a proxy the test cuts.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use scanpay::app::types::OrderStatus;
use scanpay::server::cache::RedisCache;
use scanpay::server::orders::state::OrderRow;
use scanpay::server::rabbit::{self, Handled, Rabbit, RabbitError, RabbitSettings, DELIVERY_LIMIT};
use scanpay::server::store::now_ms;
use scanpay::server::workers::Stop;
use scanpay::server::wxpay::notify::REPLY_SUCCESS;

use crate::common::{
    amqp_url, redis_url, remove_queues_and_keys, spawn_app, unique_prefix, Proxy, TestApp,
};
use crate::notify::{notify_params, signed};

fn rabbit_settings(url: &str, prefix: &str) -> RabbitSettings {
    RabbitSettings {
        url: url.to_string(),
        prefix: prefix.to_string(),
        prefetch: 16,
        publish_timeout: Duration::from_secs(3),
    }
}

/// Removes a test's queues and exchanges however the test ends.
struct RabbitCleanup(RabbitSettings, Vec<u64>);

impl Drop for RabbitCleanup {
    fn drop(&mut self) {
        remove_queues_and_keys(Some(self.0.prefix.clone()), None, self.1.clone());
    }
}

async fn test_rabbit(delays: &[u64]) -> (Rabbit, RabbitCleanup) {
    let s = rabbit_settings(&amqp_url(), &unique_prefix());
    let cleanup = RabbitCleanup(s.clone(), delays.to_vec());
    (
        Rabbit::connect(s)
            .await
            .expect("RabbitMQ on 127.0.0.1:5672"),
        cleanup,
    )
}

/// Consumes `queue` in the background, recording each body; the handler decides the outcome.
fn consumer(
    s: &RabbitSettings,
    queue: &str,
    outcome: impl Fn() -> Handled + Clone + Send + Sync + 'static,
) -> (
    tokio::sync::watch::Sender<bool>,
    Arc<Mutex<Vec<(Instant, Vec<u8>)>>>,
) {
    let (stop_tx, stop) = Stop::manual();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let rec = seen.clone();
    tokio::spawn(rabbit::consume(
        s.clone(),
        queue.to_string(),
        stop,
        move |body| {
            let (rec, outcome) = (rec.clone(), outcome.clone());
            async move {
                rec.lock().unwrap().push((Instant::now(), body));
                outcome()
            }
        },
    ));
    (stop_tx, seen)
}

async fn eventually(what: &str, within: Duration, f: impl Fn() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < within, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---- RabbitMQ: the contract of the bus and the delay queues

#[tokio::test]
async fn rabbitmq_refuses_an_unroutable_publish_and_confirms_a_routed_one() {
    let (r, _cleanup) = test_rabbit(&[]).await;
    let n = r.names();
    let e = r
        .publish(&n.pay_exchange, "no_such_binding", "m1", b"{}")
        .await
        .unwrap_err();
    assert!(matches!(e, RabbitError::Unroutable(_)), "{e}");
    r.publish(&n.pay_exchange, "pay_result", "m2", b"{}")
        .await
        .unwrap();
    // A missing exchange closes the channel: that publish fails, the next one reconnects.
    assert!(r
        .publish("scanpay_no_such_exchange", "k", "m3", b"{}")
        .await
        .is_err());
    r.publish(&n.pay_exchange, "pay_result", "m4", b"{}")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_message_a_consumer_took_but_never_acked_goes_to_another() {
    let (r, _cleanup) = test_rabbit(&[]).await;
    let n = r.names();
    r.publish(&n.pay_exchange, "pay_result", "m1", b"hello")
        .await
        .unwrap();
    // The first consumer takes it and dies before its ack (a crash mid-transaction).
    let (stop_a, seen_a) = {
        let (stop_tx, stop) = Stop::manual();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let rec = seen.clone();
        tokio::spawn(rabbit::consume(
            r.settings().clone(),
            n.pay_queue.clone(),
            stop,
            move |body| {
                let rec = rec.clone();
                async move {
                    rec.lock().unwrap().push(body);
                    std::future::pending::<Handled>().await
                }
            },
        ));
        (stop_tx, seen)
    };
    eventually("the first delivery", Duration::from_secs(5), || {
        seen_a.lock().unwrap().len() == 1
    })
    .await;
    let _ = stop_a.send(true);
    let (_stop_b, seen_b) = consumer(r.settings(), &n.pay_queue, || Handled::Done);
    eventually("the redelivery", Duration::from_secs(10), || {
        seen_b.lock().unwrap().len() == 1
    })
    .await;
    assert_eq!(seen_b.lock().unwrap()[0].1, b"hello");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        seen_b.lock().unwrap().len(),
        1,
        "acked once, delivered once"
    );
}

#[tokio::test]
async fn a_message_that_keeps_failing_is_dead_lettered_at_the_delivery_limit() {
    let (r, _cleanup) = test_rabbit(&[]).await;
    let n = r.names();
    r.publish(&n.pay_exchange, "pay_result", "m1", b"always fails")
        .await
        .unwrap();
    let (_stop, seen) = consumer(r.settings(), &n.pay_queue, || {
        Handled::Retry("the database is on fire".into())
    });
    let start = Instant::now();
    while r.dead_letters().await.unwrap() == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "never dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let tries = seen.lock().unwrap().len() as i64;
    assert_eq!(
        tries,
        DELIVERY_LIMIT + 1,
        "delivered once, then redelivered up to the limit"
    );
    assert_eq!(r.dead_letters().await.unwrap(), 1);
    // An unreadable message goes there at once.
    let (_stop2, _) = consumer(r.settings(), &n.timeout_queue, || {
        Handled::Poison("not json".into())
    });
    r.publish(&n.timeout_exchange, "timeout", "m2", b"garbage")
        .await
        .unwrap();
    let start = Instant::now();
    while r.dead_letters().await.unwrap() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "poison not dead-lettered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn delay_queues_deliver_different_deadlines_each_on_time() {
    let (r, _cleanup) = test_rabbit(&[1, 2, 3]).await;
    let n = r.names();
    let (_stop, seen) = consumer(r.settings(), &n.timeout_queue, || Handled::Done);
    let start = Instant::now();
    // Longest first: a per-message TTL would hold the short ones behind it.
    for (ms, body) in [(3000, "3"), (1000, "1"), (2000, "2")] {
        r.publish_delayed(Duration::from_millis(ms), body, body.as_bytes())
            .await
            .unwrap();
    }
    eventually("three deadlines", Duration::from_secs(8), || {
        seen.lock().unwrap().len() == 3
    })
    .await;
    for (at, body) in seen.lock().unwrap().iter() {
        let due = std::str::from_utf8(body).unwrap().parse::<f64>().unwrap();
        let took = at.duration_since(start).as_secs_f64();
        assert!(
            took >= due - 0.05 && took <= due + 1.0,
            "deadline {due}s delivered after {took:.2}s"
        );
    }
}

// ---- Redis: the contract of the index and the status cache

fn row(id: &str, status: OrderStatus, qr: bool) -> OrderRow {
    OrderRow {
        id: id.into(),
        session_id: "s1".into(),
        status,
        total_fee: 100,
        body: "b".into(),
        created_at: 0,
        deadline_at: 1_000_000,
        code_url: qr.then(|| "weixin://wxpay/bizpayurl?pr=x".into()),
        transaction_id: None,
        paid_at: None,
        failure_reason: None,
        parked: false,
        next_check_at: None,
    }
}

/// The row, due a check at `at`.
fn due(mut r: OrderRow, at: i64) -> OrderRow {
    r.next_check_at = Some(at);
    r
}

struct RedisCleanup(String);

impl Drop for RedisCleanup {
    fn drop(&mut self) {
        remove_queues_and_keys(None, Some(self.0.clone()), vec![]);
    }
}

async fn test_cache() -> (Arc<RedisCache>, RedisCleanup) {
    let prefix = unique_prefix();
    let c = RedisCache::connect(&redis_url(), &prefix)
        .await
        .expect("Redis on 127.0.0.1:6379");
    (Arc::new(c), RedisCleanup(prefix))
}

#[tokio::test]
async fn redis_claims_are_disjoint_and_a_dead_claimers_orders_come_back() {
    let (c, _cleanup) = test_cache().await;
    for i in 0..40 {
        c.mirror(&due(
            row(&format!("C{i:02}"), OrderStatus::Pending, true),
            1000 + i,
        ))
        .await
        .unwrap();
    }
    let claims = futures::future::join_all((0..4).map(|_| c.claim(10_000, 15, 20_000))).await;
    let mut seen = HashSet::new();
    for claim in claims {
        for (id, attempts) in claim.unwrap() {
            assert_eq!(attempts, 0);
            assert!(seen.insert(id.clone()), "{id} claimed twice");
        }
    }
    assert_eq!(seen.len(), 40);
    assert!(
        c.claim(19_999, 100, 30_000).await.unwrap().is_empty(),
        "leased"
    );
    // Nobody finished them: after the lease they are due again, one check later.
    let again = c.claim(20_000, 100, 30_000).await.unwrap();
    assert_eq!(again.len(), 40);
    assert!(again.iter().all(|(_, attempts)| *attempts == 1));
    // A finished order leaves the index.
    c.mirror(&row("C00", OrderStatus::Paid, true))
        .await
        .unwrap();
    let ids: HashSet<String> = c
        .claim(i64::MAX, 100, i64::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids.len(), 39);
    assert!(!ids.contains("C00"));
}

#[tokio::test]
async fn redis_status_only_moves_forward_and_answers_for_its_session() {
    let (c, _cleanup) = test_cache().await;
    assert_eq!(c.status("S1").await.unwrap(), None);
    c.mirror(&due(row("S1", OrderStatus::Pending, false), 5))
        .await
        .unwrap();
    c.mirror(&due(row("S1", OrderStatus::Pending, true), 5))
        .await
        .unwrap();
    let s = c.status("S1").await.unwrap().unwrap();
    assert_eq!(
        (s.status, s.qr_ready, s.session_id.as_str()),
        (OrderStatus::Pending, true, "s1")
    );
    c.mirror(&row("S1", OrderStatus::Paid, true)).await.unwrap();
    // A slower writer that read the order before it was paid does not undo it.
    c.mirror(&due(row("S1", OrderStatus::Pending, true), 5))
        .await
        .unwrap();
    assert_eq!(
        c.status("S1").await.unwrap().unwrap().status,
        OrderStatus::Paid
    );
}

#[tokio::test]
async fn redis_repair_adds_what_sql_holds_and_drops_what_it_finished() {
    let (c, _cleanup) = test_cache().await;
    c.mirror(&due(row("KEEP", OrderStatus::Pending, true), 10))
        .await
        .unwrap();
    c.mirror(&due(row("GONE", OrderStatus::Pending, true), 10))
        .await
        .unwrap();
    let sql = vec![("KEEP".to_string(), 99), ("MISSING".to_string(), 20)];
    let (added, removed) = c.repair(|| async { Ok(sql) }).await.unwrap();
    assert_eq!((added, removed), (1, 1));
    let claimed: Vec<(String, i64)> = c.claim(i64::MAX, 100, i64::MAX).await.unwrap();
    let ids: HashSet<&str> = claimed.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, HashSet::from(["KEEP", "MISSING"]));
}

// ---- The flows on RabbitMQ + Redis (and the embedded bus, for the same contract)

fn on_engines(prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("SCANPAY_AMQP_URL", amqp_url()),
        ("SCANPAY_AMQP_PREFIX", prefix.to_string()),
        ("SCANPAY_REDIS_URL", redis_url()),
        ("SCANPAY_REDIS_PREFIX", prefix.to_string()),
    ]
}

async fn app_with(extra: &[(&str, String)], more: &[(&str, &str)]) -> TestApp {
    let mut o: Vec<(&str, &str)> = extra.iter().map(|(k, v)| (*k, v.as_str())).collect();
    o.extend_from_slice(more);
    spawn_app(&o).await
}

async fn count_events(app: &TestApp, id: &str, kind: &str) -> usize {
    app.ctx()
        .store
        .events(id)
        .await
        .unwrap()
        .iter()
        .filter(|e| e.kind == kind)
        .count()
}

/// The bus contract, held by the embedded inbox and by RabbitMQ alike: duplicate and concurrent
/// notifies are each answered SUCCESS and pay the order once; the poll sees it.
#[tokio::test]
async fn each_bus_applies_duplicate_notifies_once() {
    let prefix = unique_prefix();
    for engines in [vec![], on_engines(&prefix)] {
        let app = app_with(&engines, &[]).await;
        let shopper = app.shopper().await;
        let id = shopper.place_ok(&[("TEA-OOLONG", 1)]).await;
        let fee = app.order(&id).await.total_fee;
        let m = app.ctx().settings.merchant.clone();
        let body = signed(
            &m,
            notify_params(&m, &id, fee, "4200000001202611270000000777"),
        );
        let replies =
            futures::future::join_all((0..3).map(|_| app.post_xml("/wxpay/notify", body.clone())))
                .await;
        for (status, reply) in replies {
            assert_eq!((status, reply.as_str()), (200, REPLY_SUCCESS));
        }
        app.wait_for(&id, "paid", |o| o.status == OrderStatus::Paid)
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(count_events(&app, &id, "paid").await, 1);
        assert_eq!(count_events(&app, &id, "notify_received").await, 1);
        let (code, status) = shopper.call("order_status", &[("id", &id)]).await;
        assert_eq!(
            (code, status["status"].as_str()),
            (200, Some("Paid")),
            "{engines:?}"
        );
        if let Some(cache) = app.ctx().store.mirror() {
            let cached = cache.status(&id).await.unwrap().unwrap();
            assert_eq!(cached.status, OrderStatus::Paid, "written after the commit");
            // Another shopper's poll is refused from the cache as from SQL.
            let (code, _) = app
                .shopper()
                .await
                .call("order_status", &[("id", &id)])
                .await;
            assert_eq!(code, 404);
        }
    }
}

#[tokio::test]
async fn an_order_closes_at_its_deadline_through_the_delay_queue() {
    let prefix = unique_prefix();
    // The SQL safety net looks 4 × 30 s behind and the sweep every 30 s: only the delay queue
    // can close this order within seconds.
    let app = app_with(
        &on_engines(&prefix),
        &[
            ("SCANPAY_ORDER_TTL", "2s"),
            ("SCANPAY_SWEEP_INTERVAL", "30s"),
            ("SCANPAY_WXPAY_CLOSE_FLOOR", "1s"),
            ("SCANPAY_SANDBOX_CLOSE_FLOOR", "1s"),
        ],
    )
    .await;
    let id = app.shopper().await.place_ok(&[("TEA-OOLONG", 1)]).await;
    let placed = now_ms();
    let start = Instant::now();
    loop {
        let o = app.order(&id).await;
        if o.status == OrderStatus::Closed {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "not closed: {o:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = app.ctx().store.events(&id).await.unwrap();
    let closing = events
        .iter()
        .find(|e| e.kind == "closing")
        .expect("closing event");
    assert_eq!(closing.cause, "timeout");
    assert!(closing.at >= placed + 1_900, "closed before its deadline");
}

// ---- Faults

/// RabbitMQ cut in the middle of a burst of notifies: each notify is answered FAIL (and WeChat
/// sends it again) or ends in a paid order; once the broker is back, every order is paid once.
#[tokio::test]
async fn rabbitmq_cut_during_a_burst_loses_no_payment() {
    let proxy = Proxy::start("127.0.0.1:5672").await;
    let prefix = unique_prefix();
    let via_proxy = format!("amqp://guest:guest@127.0.0.1:{}/%2f", proxy.port);
    let app = app_with(
        &[
            ("SCANPAY_AMQP_URL", via_proxy),
            ("SCANPAY_AMQP_PREFIX", prefix.clone()),
        ],
        &[("SCANPAY_AMQP_PUBLISH_TIMEOUT", "1s")],
    )
    .await;
    sqlx::query("UPDATE products SET stock = 100000 WHERE sku = 'PIN-PANDA'")
        .execute(&app.db)
        .await
        .unwrap();
    let shopper = app.shopper().await;
    let mut orders = Vec::new();
    for _ in 0..60 {
        let id = shopper.place_ok(&[("PIN-PANDA", 1)]).await;
        let fee = app.order(&id).await.total_fee;
        orders.push((id, fee));
    }
    let m = app.ctx().settings.merchant.clone();
    let bodies: Vec<String> = orders
        .iter()
        .enumerate()
        .map(|(i, (id, fee))| {
            signed(
                &m,
                notify_params(&m, id, *fee, &format!("42000000012026112700{i:08}")),
            )
        })
        .collect();
    // The burst: 4 notifies in flight at a time; the broker is cut off once 15 are answered
    // and comes back 700 ms later, while the rest are still coming in.
    let answered = std::sync::atomic::AtomicUsize::new(0);
    let replies: Vec<(u16, String)> = {
        use futures::StreamExt;
        let (answered, proxy) = (&answered, &proxy);
        let app = &app;
        futures::stream::iter(bodies.iter().cloned())
            .map(|body| async move {
                let r = app.post_xml("/wxpay/notify", body).await;
                let n = answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                if n == 15 {
                    proxy.cut();
                    tokio::spawn({
                        let up = proxy.handle();
                        async move {
                            tokio::time::sleep(Duration::from_millis(700)).await;
                            up.send_replace(true);
                        }
                    });
                }
                r
            })
            .buffered(4)
            .collect()
            .await
    };
    for (status, reply) in &replies {
        assert!(
            *status == 200 && reply == REPLY_SUCCESS || *status == 503,
            "{status} {reply}"
        );
    }
    let mut pending: Vec<usize> = (0..bodies.len()).filter(|&i| replies[i].0 != 200).collect();
    let failed = pending.len();
    let mut round = 0;
    while !pending.is_empty() {
        round += 1;
        assert!(round < 40, "notifies still failing: {pending:?}");
        // WeChat sends again what was not answered SUCCESS.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let replies = futures::future::join_all(
            pending
                .iter()
                .map(|&i| app.post_xml("/wxpay/notify", bodies[i].clone())),
        )
        .await;
        for (status, reply) in &replies {
            assert!(
                *status == 200 && reply == REPLY_SUCCESS || *status == 503,
                "{status} {reply}"
            );
        }
        pending = pending
            .into_iter()
            .zip(replies)
            .filter(|(_, (status, _))| *status != 200)
            .map(|(i, _)| i)
            .collect();
    }
    assert!(failed > 0, "the cut should have failed some notifies");
    let start = Instant::now();
    for (id, _) in &orders {
        loop {
            if app.order(id).await.status == OrderStatus::Paid {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(20), "{id} never paid");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(count_events(&app, id, "paid").await, 1, "{id} paid twice");
    }
    eprintln!(
        "rabbitmq cut: {failed} of {} notifies answered FAIL first, 0 lost, 0 doubled",
        orders.len()
    );
}

/// Redis unreachable: polls still answer (from SQL) and orders still close; readiness says so.
#[tokio::test]
async fn redis_down_polls_answer_and_orders_close_from_sql() {
    let proxy = Proxy::start("127.0.0.1:6379").await;
    let prefix = unique_prefix();
    let app = app_with(
        &[
            (
                "SCANPAY_REDIS_URL",
                format!("redis://127.0.0.1:{}/0", proxy.port),
            ),
            ("SCANPAY_REDIS_PREFIX", prefix.clone()),
        ],
        &[
            ("SCANPAY_ORDER_TTL", "3s"),
            ("SCANPAY_SWEEP_INTERVAL", "200ms"),
            ("SCANPAY_WXPAY_CLOSE_FLOOR", "1s"),
            ("SCANPAY_SANDBOX_CLOSE_FLOOR", "1s"),
        ],
    )
    .await;
    let _cleanup = RedisCleanup(prefix);
    let shopper = app.shopper().await;
    let id = shopper.place_ok(&[("TEA-OOLONG", 1)]).await;
    proxy.cut();
    let (code, status) = shopper.call("order_status", &[("id", &id)]).await;
    assert_eq!((code, status["status"].as_str()), (200, Some("Pending")));
    let ready = readyz(&app).await;
    assert_eq!(ready["status"], "degraded", "{ready}");
    assert!(ready["dependencies"]["redis"]
        .as_str()
        .unwrap()
        .starts_with("unavailable"));
    let start = Instant::now();
    loop {
        let (code, status) = shopper.call("order_status", &[("id", &id)]).await;
        assert_eq!(code, 200);
        if status["status"] == "Closed" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "not closed: {status}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Back again: the poll reads the cache, which the repair brings up to date.
    proxy.restore();
    let start = Instant::now();
    loop {
        let ready = readyz(&app).await;
        if ready["status"] == "ok" {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "Redis not back: {ready}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (code, status) = shopper.call("order_status", &[("id", &id)]).await;
    assert_eq!((code, status["status"].as_str()), (200, Some("Closed")));
}

async fn readyz(app: &TestApp) -> serde_json::Value {
    let text = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    serde_json::from_str(&text).unwrap()
}

/// A malformed URL stops start-up naming the variable; so does a service that does not answer,
/// without showing the password.
#[tokio::test]
async fn malformed_or_unreachable_engines_are_named_at_start_up() {
    use scanpay::server::config::Settings;
    use std::collections::BTreeMap;
    for (var, value) in [
        ("SCANPAY_AMQP_URL", "http://127.0.0.1:5672"),
        ("SCANPAY_REDIS_URL", "127.0.0.1:6379"),
        ("SCANPAY_AMQP_URL", "amqps://guest:guest@127.0.0.1:5671/%2f"),
        ("SCANPAY_REDIS_URL", "rediss://127.0.0.1:6380/0"),
    ] {
        let env = BTreeMap::from([(var.to_string(), value.to_string())]);
        let e = Settings::from_sources(
            include_str!("../../Leptos.toml"),
            "Leptos.toml",
            &env,
            "127.0.0.1:3000".parse().unwrap(),
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains(var), "{e}");
    }
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let e = Rabbit::connect(rabbit_settings(
        &format!("amqp://guest:s3cret@127.0.0.1:{closed}/%2f"),
        "scanpay_never",
    ))
    .await
    .err()
    .expect("refused")
    .to_string();
    assert!(
        e.starts_with("SCANPAY_AMQP_URL=amqp://guest:***@127.0.0.1:"),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "{e}");
    let e = RedisCache::connect(
        &format!("redis://:s3cret@127.0.0.1:{closed}/0"),
        "scanpay_never",
    )
    .await
    .err()
    .expect("refused")
    .to_string();
    assert!(
        e.starts_with("SCANPAY_REDIS_URL=redis://:***@127.0.0.1:"),
        "{e}"
    );
    assert!(!e.contains("s3cret"), "{e}");
}
