//! Benchmark: what API v3 costs per call, beside its ceilings in the same run.
//! - signing a request (the message built, RSA-2048 PKCS#1 v1.5 with ring, the header written)
//!   beside ring's bare signature of the same bytes;
//! - verifying an answer (headers checked, the message built, ring's verification) beside ring's
//!   bare verification of the same bytes, and RustCrypto `rsa`'s (six times slower: replaced);
//! - opening a notify resource (AES-256-GCM) and reading a whole notify (verify + decrypt + read);
//! - a whole order query against the in-process sandbox, v3 beside v2 (the sandbox signs and
//!   verifies too: both ends of the protocol are in the figure).
//!
//! Run: `scripts/bench.sh v3` (release build). Figures: docs/BENCHMARKS.md.

use std::collections::BTreeMap;
use std::time::Instant;

mod support;

use leptos::prelude::LeptosOptions;
use rsa::signature::Verifier;
use scanpay::server::config::Settings;
use scanpay::server::start;
use scanpay::server::wxpay::v3::crypto::{self, ApiV3Key, MerchantSigner, SignedBy, WechatKeys};
use scanpay::server::wxpay::v3::throwaway;
use support::percentile;

const N: usize = 2000;

/// Runs `f` N times: (p50, p99) in µs.
fn time(mut f: impl FnMut()) -> (f64, f64) {
    for _ in 0..50 {
        f();
    }
    let mut t: Vec<f64> = (0..N)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    t.sort_by(f64::total_cmp);
    (percentile(&t, 0.5), percentile(&t, 0.99))
}

fn row(what: &str, (p50, p99): (f64, f64), ceiling: Option<(f64, f64)>) {
    match ceiling {
        Some((c50, _)) => println!(
            "{what:<44} p50 {p50:>8.1} µs  p99 {p99:>8.1} µs  ceiling p50 {c50:>8.1} µs  ratio {:.2}",
            p50 / c50
        ),
        None => println!("{what:<44} p50 {p50:>8.1} µs  p99 {p99:>8.1} µs"),
    }
}

const BODY: &str = r#"{"appid":"wxd678efh567hg6787","mchid":"1900000001","description":"Image形象店-深圳腾大-QQ公仔","out_trade_no":"1217752501201407033233368018","time_expire":"2018-06-08T10:34:56+08:00","notify_url":"https://www.weixin.qq.com/wxpay/pay.php","amount":{"total":100,"currency":"CNY"}}"#;

fn main() {
    let signer = MerchantSigner::from_pem(
        throwaway::SANDBOX_MERCHANT_KEY,
        "1900000001",
        "F5765756002FDD77",
    )
    .unwrap();
    let url = "/v3/pay/transactions/native";
    let nonce = "593BEC0C930BF1AFEB40B4A08C8FB242";
    let message = crypto::request_message("POST", url, 1554208460, nonce, BODY);
    println!("API v3 per call, {N} runs each (RSA-2048; release build)");
    let bare_sign = time(|| {
        std::hint::black_box(signer.sign(message.as_bytes()));
    });
    row(
        "sign a request (message + signature + header)",
        time(|| {
            std::hint::black_box(signer.authorization("POST", url, 1554208460, nonce, BODY));
        }),
        Some(bare_sign),
    );
    row("  ceiling: ring's bare signature", bare_sign, None);

    // An answer signed by "WeChat" (the same throwaway key stands in, as in the reference's V3-C4).
    let answer = br#"{"code_url":"weixin://wxpay/bizpayurl?pr=JyC91EIz1"}"#;
    let now = scanpay::server::support::clock::now_ms() / 1000;
    let ts = now.to_string();
    let h = SignedBy {
        timestamp: ts.clone(),
        nonce: "d824f2e086d3c1df967785d13fcd22ef".into(),
        signature: signer.sign(&crypto::answer_message(
            &ts,
            "d824f2e086d3c1df967785d13fcd22ef",
            answer,
        )),
        serial: "PUB_KEY_ID_0000000000000024101100397200000006".into(),
    };
    let mut keys = WechatKeys::default();
    keys.add(&h.serial, signer.verifying_key());
    let key = signer.verifying_key();
    let msg = crypto::answer_message(&h.timestamp, &h.nonce, answer);
    let sig = {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(&h.signature)
            .unwrap();
        rsa::pkcs1v15::Signature::try_from(raw.as_slice()).unwrap()
    };
    // ring's bare verification of the same bytes: the ceiling (WechatKeys verifies with ring).
    let ring_key = {
        use rsa::pkcs1::EncodeRsaPublicKey;
        let public: &rsa::RsaPublicKey = key.as_ref();
        public.to_pkcs1_der().unwrap().into_vec()
    };
    let raw_sig = {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(&h.signature)
            .unwrap()
    };
    let bare_ring = time(|| {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            &ring_key,
        )
        .verify(&msg, &raw_sig)
        .unwrap()
    });
    row(
        "verify an answer (headers, message, signature)",
        time(|| keys.verify(&h, answer, now).unwrap()),
        Some(bare_ring),
    );
    row("  ceiling: ring's bare verification", bare_ring, None);
    row(
        "  RustCrypto rsa's (used before; the sandbox's)",
        time(|| {
            key.verify(&msg, &sig).unwrap();
        }),
        None,
    );

    // A TRANSACTION.SUCCESS notify of the usual size.
    let apiv3 = ApiV3Key::new(throwaway::SANDBOX_APIV3_KEY).unwrap();
    let resource = r#"{"mchid":"1900000001","appid":"wxd678efh567hg6787","out_trade_no":"1217752501201407033233368018","transaction_id":"4200000001201806080000000001","trade_type":"NATIVE","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"OTHERS","attach":"","success_time":"2018-06-08T10:34:56+08:00","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"amount":{"total":100,"payer_total":100,"currency":"CNY","payer_currency":"CNY"}}"#;
    let ciphertext = crypto::encrypt(&apiv3, "Kj7QIyUiYx1q", "transaction", resource.as_bytes());
    row(
        "open a notify resource (AES-256-GCM)",
        time(|| {
            std::hint::black_box(
                crypto::decrypt(&apiv3, "Kj7QIyUiYx1q", "transaction", &ciphertext).unwrap(),
            );
        }),
        None,
    );
    let envelope = format!(
        r#"{{"id":"EV-2018022511223320873","create_time":"2018-06-08T10:34:56+08:00","resource_type":"encrypt-resource","event_type":"TRANSACTION.SUCCESS","summary":"支付成功","resource":{{"original_type":"transaction","algorithm":"AEAD_AES_256_GCM","ciphertext":"{ciphertext}","associated_data":"transaction","nonce":"Kj7QIyUiYx1q"}}}}"#
    );
    let nh = SignedBy {
        signature: signer.sign(&crypto::answer_message(&ts, &h.nonce, envelope.as_bytes())),
        ..h.clone()
    };
    row(
        "read a whole notify (verify, decrypt, read)",
        time(|| {
            std::hint::black_box(
                scanpay::server::wxpay::v3::notify::parse(
                    &nh,
                    envelope.as_bytes(),
                    &keys,
                    &apiv3,
                    "wxd678efh567hg6787",
                    "1900000001",
                    now,
                )
                .unwrap(),
            );
        }),
        None,
    );

    // Whole calls over HTTP to the in-process sandbox.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut figures = Vec::new();
        for api in ["v2", "v3"] {
            let dir = tempfile::tempdir().unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let env: BTreeMap<String, String> = [
                ("SCANPAY_DATABASE_URL", format!("sqlite://{}/v3.db", dir.path().display())),
                ("SCANPAY_WXPAY_API", api.to_string()),
                ("SCANPAY_RECON_AT", "off".into()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let settings = Settings::from_sources(
                include_str!("../Leptos.toml"),
                "Leptos.toml",
                &env,
                addr,
            )
            .unwrap();
            let options = LeptosOptions::builder()
                .output_name("scanpay")
                .site_addr(addr)
                .build();
            let app = start(settings, options, listener).await.unwrap();
            let gw = app.ctx.wxpay.clone();
            let no = format!("B{api}{}", scanpay::server::support::clock::now_ms());
            gw.unified_order(&scanpay::server::wxpay::UnifiedOrderRequest {
                body: "tea".into(),
                out_trade_no: no.clone(),
                total_fee: 100,
                spbill_create_ip: "127.0.0.1".into(),
                notify_url: format!("http://{addr}/wxpay/notify"),
                product_id: "TEA".into(),
                time_start: None,
                time_expire: None,
                attach: None,
            })
            .await
            .unwrap();
            for _ in 0..50 {
                gw.order_query(&no).await.unwrap();
            }
            let mut t = Vec::with_capacity(N);
            for _ in 0..N {
                let s = Instant::now();
                gw.order_query(&no).await.unwrap();
                t.push(s.elapsed().as_secs_f64() * 1e6);
            }
            t.sort_by(f64::total_cmp);
            figures.push((api, percentile(&t, 0.5), percentile(&t, 0.99)));
            app.abort();
        }
        let v2 = figures[0].1;
        for (api, p50, p99) in figures {
            println!(
                "order query over HTTP to the sandbox, {api}     p50 {p50:>8.1} µs  p99 {p99:>8.1} µs  ratio to v2 {:.2}",
                p50 / v2
            );
        }
    });
}
