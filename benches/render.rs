//! Benchmark: the checkout page's server render (the whole HTML, QR code as SVG included) beside
//! an axum hello-world in the same process and run: latency p50/p99 and pages per second with 8
//! clients on keep-alive connections, SQLite, no Redis.
//!
//! Run: `scripts/bench.sh render` (release build). Figures: docs/BENCHMARKS.md.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

mod support;

use futures::stream::{self, StreamExt};
use leptos::prelude::LeptosOptions;
use scanpay::server::config::Settings;
use scanpay::server::start;
use support::percentile;

const CLIENTS: usize = 8;
const REQUESTS: usize = 4000;

/// GETs `url` REQUESTS times from CLIENTS clients: (latencies in ms sorted, requests per second).
async fn load(url: &str, cookie: &str, must_contain: &str) -> (Vec<f64>, f64) {
    let http = reqwest::Client::new();
    let started = Instant::now();
    let mut lat: Vec<f64> = stream::iter(0..REQUESTS)
        .map(|_| {
            let http = http.clone();
            async move {
                let t = Instant::now();
                let r = http.get(url).header("cookie", cookie).send().await.unwrap();
                assert_eq!(r.status(), 200);
                let body = r.text().await.unwrap();
                assert!(body.contains(must_contain), "{url}: {must_contain} missing");
                t.elapsed().as_secs_f64() * 1000.0
            }
        })
        .buffer_unordered(CLIENTS)
        .collect()
        .await;
    let rate = REQUESTS as f64 / started.elapsed().as_secs_f64();
    lat.sort_by(f64::total_cmp);
    (lat, rate)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let env: BTreeMap<String, String> = [
            ("SCANPAY_DATABASE_URL", format!("sqlite://{}/render.db", dir.path().display())),
            ("SCANPAY_WXPAY_BASE_URL", format!("http://{addr}/sandbox/")),
            ("SCANPAY_SANDBOX", "true".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let settings =
            Settings::from_sources(include_str!("../Leptos.toml"), "Leptos.toml", &env, addr).unwrap();
        let options = LeptosOptions::builder().output_name("scanpay").site_addr(addr).build();
        let app = start(settings, options, listener).await.unwrap();
        let base = format!("http://{addr}");

        // One shopper's pending order with its QR code.
        let http = reqwest::Client::new();
        let (cookie, id) = support::shopper_with_order(&http, &base).await;
        let checkout = format!("{base}/checkout/{id}");
        for _ in 0..50 {
            let page = http.get(&checkout).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
            if page.contains("<svg") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }

        // The hello-world: axum alone, same runtime, same client.
        let hello = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let hello_addr = hello.local_addr().unwrap();
        tokio::spawn(async move {
            let router = axum::Router::new().route("/", axum::routing::get(|| async { "Hello, world!" }));
            axum::serve(hello, router).await.unwrap();
        });

        // Warm up both, then measure each.
        load(&checkout, &cookie, "<svg").await;
        let (page_lat, page_rate) = load(&checkout, &cookie, "<svg").await;
        let (hello_lat, hello_rate) = load(&format!("http://{hello_addr}/"), "", "Hello").await;
        let size = http.get(&checkout).header("cookie", &cookie).send().await.unwrap().text().await.unwrap().len();

        println!("scanpay render benchmark: {REQUESTS} GETs, {CLIENTS} clients, keep-alive, 2 tokio threads");
        println!("| measure | checkout page (HTML + QR SVG, {:.1} KB) | axum hello-world | ratio |", size as f64 / 1024.0);
        println!("|---|---|---|---|");
        for (name, p) in [("p50", 0.5), ("p99", 0.99)] {
            let (a, b) = (percentile(&page_lat, p), percentile(&hello_lat, p));
            println!("| latency {name} | {a:.2} ms | {b:.2} ms | {:.1}× |", a / b);
        }
        println!("| pages per second | {page_rate:.0} /s | {hello_rate:.0} /s | {:.2} |", page_rate / hello_rate);
        app.abort();
    });
}
