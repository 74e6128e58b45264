//! The settings' unit tests: defaults, overrides, and every refusal naming its source.

use super::*;
use crate::server::support::clock::parse_duration;

fn load(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let mut env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    // The real WeChat Pay needs the merchant's API certificate: a throwaway one, unless the test
    // says what it wants.
    if env.get("SCANPAY_WXPAY_BASE_URL").map(String::as_str) == Some(REAL.1)
        && !env.contains_key("SCANPAY_WXPAY_CERT_PEM")
    {
        let (cert, key) = test_certificate();
        env.insert("SCANPAY_WXPAY_CERT_PEM".into(), cert.clone());
        env.insert("SCANPAY_WXPAY_KEY_PEM".into(), key.clone());
    }
    Settings::from_sources(
        EMBEDDED,
        "Leptos.toml",
        &env,
        "127.0.0.1:3000".parse().unwrap(),
    )
}

#[test]
fn embedded_defaults_load() {
    let s = load(&[]).unwrap();
    assert_eq!(s.order_ttl, Duration::from_secs(900));
    assert_eq!(s.wxpay_base_url, "http://127.0.0.1:3000/sandbox/");
    assert_eq!(s.notify_url(), "http://127.0.0.1:3000/wxpay/notify");
    assert!(s.sandbox);
    assert!(
        !format!("{s:?}").contains(s.merchant.api_key.expose()),
        "Debug must not print the key"
    );
}

#[test]
fn env_overrides_and_errors_name_the_variable() {
    let s = load(&[
        ("SCANPAY_ORDER_TTL", "20m"),
        ("SCANPAY_WXPAY_SIGN_TYPE", "HMAC-SHA256"),
    ])
    .unwrap();
    assert_eq!(s.order_ttl, Duration::from_secs(1200));
    assert_eq!(s.merchant.sign_type, SignType::HmacSha256);
    let e = load(&[("SCANPAY_ORDER_TTL", "fifteen")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("SCANPAY_ORDER_TTL"), "{e}");
    let e = load(&[("SCANPAY_WXPAY_SIGN_TYPE", "SHA1")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("SCANPAY_WXPAY_SIGN_TYPE"), "{e}");
    let e = load(&[("SCANPAY_ORDR_TTL", "1m")]).unwrap_err().to_string();
    assert!(e.contains("SCANPAY_ORDR_TTL"), "{e}");
    let e = load(&[("SCANPAY_WXPAY_BASE_URL", "https://api.mch.weixin.qq.com/")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("throwaway"), "{e}");
    for host in [
        "https://api2.mch.weixin.qq.com",
        "https://API.MCH.weixin.qq.com./pay/",
    ] {
        let e = load(&[("SCANPAY_WXPAY_BASE_URL", host)])
            .unwrap_err()
            .to_string();
        assert!(e.contains("throwaway"), "{host}: {e}");
    }
    let e = load(&[("SCANPAY_LIMIT_ITEM_QTY", "0")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SCANPAY_LIMIT_ITEM_QTY") && e.contains("1 to 99"),
        "{e}"
    );
    let e = load(&[("SCANPAY_CLIENT_IP_HEADER", "X Forwarded")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("SCANPAY_CLIENT_IP_HEADER"), "{e}");
}

#[test]
fn kubernetes_service_variables_are_not_settings_but_typos_still_stop() {
    let s = load(&[
        ("SCANPAY_SERVICE_HOST", "10.0.0.7"),
        ("SCANPAY_SERVICE_PORT", "80"),
        ("SCANPAY_SERVICE_PORT_HTTP", "80"),
        ("SCANPAY_PORT", "tcp://10.0.0.7:80"),
        ("SCANPAY_PORT_80_TCP_ADDR", "10.0.0.7"),
    ]);
    assert!(s.is_ok(), "{:?}", s.err());
    assert!(load(&[("SCANPAY_SERVICE_HOSTS", "x")]).is_err());
}

const REAL: (&str, &str) = ("SCANPAY_WXPAY_BASE_URL", "https://api.mch.weixin.qq.com/");

/// Paths of a throwaway certificate and key (made once per test binary, never a real one).
fn test_certificate() -> &'static (String, String) {
    static FILES: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["1900000109".to_string()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let (c, k) = (
            dir.join("apiclient_cert.pem"),
            dir.join("apiclient_key.pem"),
        );
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        (c.display().to_string(), k.display().to_string())
    })
}

/// A throwaway apiclient_cert.p12 under `password`; its path.
fn test_p12(password: &str) -> String {
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["1900000109".to_string()])
        .unwrap()
        .self_signed(&key)
        .unwrap();
    let pfx = p12::PFX::new(
        cert.der(),
        &key.serialize_der(),
        None,
        password,
        "Tenpay Certificate",
    )
    .unwrap();
    let dir = tempfile::tempdir().unwrap().keep();
    let path = dir.join("apiclient_cert.p12");
    std::fs::write(&path, pfx.to_der()).unwrap();
    path.display().to_string()
}

#[test]
fn the_real_api_needs_the_merchants_api_certificate_for_refunds() {
    let none = ("SCANPAY_WXPAY_CERT_PEM", "");
    let e = load(&[REAL, KEY, PUBLIC, none]).unwrap_err().to_string();
    assert!(
        e.contains("SCANPAY_WXPAY_CERT_PEM") && e.contains("mutual TLS"),
        "{e}"
    );
    let (cert, key) = test_certificate();
    let s = load(&[
        REAL,
        KEY,
        PUBLIC,
        ("SCANPAY_WXPAY_CERT_PEM", cert),
        ("SCANPAY_WXPAY_KEY_PEM", key),
    ])
    .unwrap();
    assert!(s.wxpay_tls.has_identity());
    assert!(
        !format!("{s:?}").contains("PRIVATE KEY"),
        "the key is never printed"
    );
    // One without the other, an unreadable file, a file that is not PEM, a P12: each refused by name.
    let e = load(&[REAL, KEY, PUBLIC, ("SCANPAY_WXPAY_CERT_PEM", cert)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("SCANPAY_WXPAY_KEY_PEM"), "{e}");
    let e = load(&[
        REAL,
        KEY,
        PUBLIC,
        ("SCANPAY_WXPAY_CERT_PEM", "/nonexistent/cert.pem"),
        ("SCANPAY_WXPAY_KEY_PEM", key),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("SCANPAY_WXPAY_CERT_PEM") && e.contains("/nonexistent/cert.pem"),
        "{e}"
    );
    let e = load(&[
        REAL,
        KEY,
        PUBLIC,
        ("SCANPAY_WXPAY_CERT_PEM", key),
        ("SCANPAY_WXPAY_KEY_PEM", key),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("SCANPAY_WXPAY_CERT_PEM") && e.contains("PEM certificate"),
        "{e}"
    );
    // apiclient_cert.p12, its password the mch_id, as WeChat hands it out.
    let p12 = test_p12("1900000109");
    let s = load(&[
        REAL,
        KEY,
        PUBLIC,
        ("SCANPAY_WXPAY_CERT_PEM", ""),
        ("SCANPAY_WXPAY_CERT_P12", &p12),
    ])
    .unwrap();
    assert!(s.wxpay_tls.has_identity());
    let other = test_p12("another-password");
    let e = load(&[("SCANPAY_WXPAY_CERT_P12", &other)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SCANPAY_WXPAY_CERT_P12") && e.contains("mch_id"),
        "{e}"
    );
    let e = load(&[("SCANPAY_WXPAY_CERT_P12", cert)])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SCANPAY_WXPAY_CERT_P12") && e.contains("PKCS#12"),
        "{e}"
    );
    let e = load(&[
        ("SCANPAY_WXPAY_CERT_P12", &p12),
        ("SCANPAY_WXPAY_CERT_PEM", cert),
        ("SCANPAY_WXPAY_KEY_PEM", key),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("not both"), "{e}");
    // WeChat's minute between refunds cannot be shortened against the real API.
    let e = load(&[REAL, KEY, PUBLIC, ("SCANPAY_REFUND_SPACING", "10s")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("SCANPAY_REFUND_SPACING"), "{e}");
    assert!(
        load(&[("SCANPAY_REFUND_SPACING", "10ms")]).is_ok(),
        "the sandbox takes less"
    );
    let e = load(&[("SCANPAY_REFUND_AUTOMATIC", "maybe")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("SCANPAY_REFUND_AUTOMATIC"), "{e}");
}

#[test]
fn the_sandboxs_https_needs_its_certificate_and_key_together() {
    let (cert, key) = test_certificate();
    let s = load(&[
        ("SCANPAY_SANDBOX_TLS_CERT", cert),
        ("SCANPAY_SANDBOX_TLS_KEY", key),
    ])
    .unwrap();
    assert!(s
        .sandbox_tls
        .as_ref()
        .is_some_and(|t| t.client_ca_pem.is_none()));
    let s = load(&[
        ("SCANPAY_SANDBOX_TLS_CERT", cert),
        ("SCANPAY_SANDBOX_TLS_KEY", key),
        ("SCANPAY_SANDBOX_CLIENT_CA", cert),
    ])
    .unwrap();
    assert!(s
        .sandbox_tls
        .as_ref()
        .is_some_and(|t| t.client_ca_pem.is_some()));
    let e = load(&[("SCANPAY_SANDBOX_TLS_CERT", cert)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("SCANPAY_SANDBOX_TLS_KEY"), "{e}");
    let e = load(&[
        ("SCANPAY_SANDBOX_TLS_CERT", key),
        ("SCANPAY_SANDBOX_TLS_KEY", key),
    ])
    .unwrap_err()
    .to_string();
    assert!(e.contains("SCANPAY_SANDBOX_TLS_CERT"), "{e}");
    let e = load(&[("SCANPAY_SANDBOX_CLIENT_CA", cert)])
        .unwrap_err()
        .to_string();
    assert!(e.contains("SCANPAY_SANDBOX_TLS_CERT"), "{e}");
}
const KEY: (&str, &str) = ("SCANPAY_WXPAY_API_KEY", "a-real-key-from-the-environment-0");
const PUBLIC: (&str, &str) = ("SCANPAY_PUBLIC_URL", "https://shop.example.com");

#[test]
fn the_real_api_needs_a_public_https_address_for_its_notifies() {
    let e = load(&[REAL, KEY]).unwrap_err().to_string();
    assert!(e.contains("public_url") && e.contains("https://"), "{e}");
    for (url, why) in [
        ("http://shop.example.com", "https://"),
        ("https://127.0.0.1:8443", "public host"),
        ("https://10.1.2.3", "public host"),
        ("https://192.168.0.9", "public host"),
        ("https://[::1]:443", "public host"),
        ("https://[fe80::1]", "public host"),
        ("https://[::ffff:10.0.0.1]", "public host"),
        ("https://100.64.0.1", "public host"),
        ("https://localhost", "public host"),
    ] {
        let e = load(&[REAL, KEY, ("SCANPAY_PUBLIC_URL", url)])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("SCANPAY_PUBLIC_URL") && e.contains(why),
            "{url}: {e}"
        );
    }
    assert!(load(&[REAL, KEY, PUBLIC]).is_ok());
    // The sandbox takes any address.
    assert!(load(&[("SCANPAY_PUBLIC_URL", "http://127.0.0.1:9")]).is_ok());
}

#[test]
fn a_process_of_several_must_be_told_the_public_url() {
    let mut s = load(&[]).unwrap();
    assert!(
        s.check_role().is_ok(),
        "one process may assume its own address"
    );
    for role in [Role::Web, Role::Worker] {
        s.role = role;
        let e = s.check_role().unwrap_err().to_string();
        assert!(e.contains("SCANPAY_PUBLIC_URL"), "{e}");
    }
    let mut s = load(&[("SCANPAY_PUBLIC_URL", "http://shop.internal:3000")]).unwrap();
    s.role = Role::Worker;
    assert!(s.check_role().is_ok());
    assert_eq!(s.wxpay_base_url, "http://shop.internal:3000/sandbox/");
}

#[test]
fn urls_with_passwords_are_redacted_in_debug() {
    let s = load(&[
        ("SCANPAY_DATABASE_URL", "postgres://app:hunter2pw@db/shop"),
        ("SCANPAY_REDIS_URL", "redis://:redispw99@cache:6379/0"),
        ("SCANPAY_AMQP_URL", "amqp://app:rabbitpw77@mq:5672/%2f"),
    ])
    .unwrap();
    let shown = format!("{s:?}");
    for secret in ["hunter2pw", "redispw99", "rabbitpw77"] {
        assert!(!shown.contains(secret), "{secret} in {shown}");
    }
    assert_eq!(&*s.database_url, "postgres://app:hunter2pw@db/shop");
}

#[test]
fn the_real_api_takes_only_orders_wechat_accepts() {
    let s = load(&[REAL, KEY, PUBLIC]).unwrap();
    assert!(
        !s.sandbox,
        "the sandbox is off by default when WeChat is elsewhere"
    );
    let e = load(&[REAL, KEY, PUBLIC, ("SCANPAY_ORDER_TTL", "5m")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SCANPAY_ORDER_TTL") && e.contains("4m30s") && e.contains("5m34s"),
        "{e}"
    );
    assert!(load(&[REAL, KEY, PUBLIC, ("SCANPAY_ORDER_TTL", "334s")]).is_ok());
    let e = load(&[REAL, KEY, PUBLIC, ("SCANPAY_ORDER_TTL", "3h")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("2 hours"), "{e}");
    let other = ("SCANPAY_WXPAY_BASE_URL", "http://127.0.0.1:9/sandbox/");
    assert!(!load(&[other]).unwrap().sandbox);
    assert!(load(&[other, ("SCANPAY_SANDBOX", "true")]).unwrap().sandbox);
}

#[test]
fn the_in_process_sandbox_refuses_settings_it_would_refuse_orders_for() {
    let e = load(&[("SCANPAY_ORDER_TTL", "3s")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SCANPAY_ORDER_TTL") && e.contains("SCANPAY_SANDBOX_MIN_EXPIRE"),
        "{e}"
    );
    assert!(load(&[
        ("SCANPAY_ORDER_TTL", "3s"),
        ("SCANPAY_SANDBOX_MIN_EXPIRE", "1s")
    ])
    .is_ok());
    assert_eq!(show(Duration::from_secs(334)), "5m34s");
}

#[test]
fn durations() {
    assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
    assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
    for bad in ["", "15", "m", "-1s", "0s", "10 parsecs"] {
        assert!(parse_duration(bad).is_err(), "{bad}");
    }
}
