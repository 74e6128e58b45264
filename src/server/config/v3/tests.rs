//! v3's settings: the sandbox's throwaway credentials by default (refused with the real WeChat
//! Pay), the merchant's files read and checked, every refusal naming its setting.

use std::collections::BTreeMap;

use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use super::super::{ConfigError, Settings, EMBEDDED};
use super::*;

fn load(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let env: BTreeMap<String, String> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::from_sources(
        EMBEDDED,
        "Leptos.toml",
        &env,
        "127.0.0.1:3000".parse().unwrap(),
    )
}

const V3: (&str, &str) = ("SCANPAY_WXPAY_API", "v3");
const REAL: (&str, &str) = ("SCANPAY_WXPAY_BASE_URL", "https://api.mch.weixin.qq.com/");
const PUBLIC: (&str, &str) = ("SCANPAY_PUBLIC_URL", "https://shop.example.com");
const APIV3: (&str, &str) = (
    "SCANPAY_WXPAY_APIV3_KEY",
    "0123456789abcdefghijABCDEFGHIJ01",
);

/// A merchant's files, made from keys known to be throwaway: (key, public key, a non-key).
fn files() -> &'static (String, String, String) {
    static FILES: std::sync::OnceLock<(String, String, String)> = std::sync::OnceLock::new();
    FILES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        // A key of the test's own: the published throwaway one is refused with the real API.
        let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
        let pem = key.to_pkcs8_pem(LineEnding::LF).unwrap().to_string();
        let public = key
            .to_public_key()
            .to_public_key_pem(LineEnding::LF)
            .unwrap();
        let paths = (
            dir.join("apiclient_key.pem"),
            dir.join("pub_key.pem"),
            dir.join("not_a_key.pem"),
        );
        std::fs::write(&paths.0, pem).unwrap();
        std::fs::write(&paths.1, public).unwrap();
        std::fs::write(&paths.2, "hello").unwrap();
        (
            paths.0.display().to_string(),
            paths.1.display().to_string(),
            paths.2.display().to_string(),
        )
    })
}

#[test]
fn v2_is_the_default_and_v3_runs_on_the_sandboxs_throwaway_credentials() {
    let s = load(&[]).unwrap();
    assert_eq!(s.wxpay_api, WxPayApi::V2);
    assert_eq!(s.notify_url(), "http://127.0.0.1:3000/wxpay/notify");
    let s = load(&[V3]).unwrap();
    assert_eq!(s.wxpay_api, WxPayApi::V3);
    assert_eq!(s.notify_url(), "http://127.0.0.1:3000/wxpay/v3/notify");
    assert_eq!(
        s.refund_notify_url(),
        "http://127.0.0.1:3000/wxpay/v3/notify"
    );
    assert_eq!(
        s.wxpay_v3.signer.serial_no,
        throwaway::SANDBOX_MERCHANT_SERIAL
    );
    assert_eq!(s.wxpay_v3.signer.mchid, s.merchant.mch_id);
    assert!(s.wxpay_v3.public_key.is_none());
    let shown = format!("{s:?}");
    assert!(!shown.contains("PRIVATE KEY") && !shown.contains(throwaway::SANDBOX_APIV3_KEY));
    let e = load(&[("SCANPAY_WXPAY_API", "v4")])
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("SCANPAY_WXPAY_API") && e.contains("v2 or v3"),
        "{e}"
    );
}

#[test]
fn the_real_api_on_v3_needs_the_merchants_own_credentials_and_no_mutual_tls() {
    let e = load(&[V3, REAL, PUBLIC]).unwrap_err().to_string();
    assert!(
        e.contains("throwaway") && e.contains("SCANPAY_WXPAY_KEY_PEM"),
        "{e}"
    );
    // The throwaway serial given as a value is throwaway all the same.
    let (key, _, _) = files();
    let e = load(&[
        V3,
        REAL,
        PUBLIC,
        APIV3,
        ("SCANPAY_WXPAY_KEY_PEM", key.as_str()),
        (
            "SCANPAY_WXPAY_CERT_SERIAL",
            throwaway::SANDBOX_MERCHANT_SERIAL,
        ),
    ])
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("throwaway") && e.contains("SCANPAY_WXPAY_CERT_SERIAL"),
        "{e}"
    );
    let (key, public, _) = files();
    let own = [
        V3,
        REAL,
        PUBLIC,
        APIV3,
        ("SCANPAY_WXPAY_KEY_PEM", key.as_str()),
        ("SCANPAY_WXPAY_CERT_SERIAL", "444f4864ea9b34415"),
        ("SCANPAY_WXPAY_PUBLIC_KEY_PEM", public.as_str()),
        (
            "SCANPAY_WXPAY_PUBLIC_KEY_ID",
            "PUB_KEY_ID_0000000000000024101100397200000006",
        ),
    ];
    // Only the API key check of v2 would name the throwaway v2 key: v3 does not use it. But
    // v2's notify endpoints would take notifies signed with that published key: not served.
    let s = load(&own).unwrap();
    assert!(s.wxpay_v3.throwaway.is_empty());
    assert!(
        !s.v2_notifies,
        "v2 notifies checked with the sandbox's published key"
    );
    let mut with_v2_key = own.to_vec();
    with_v2_key.push(("SCANPAY_WXPAY_API_KEY", "the0merchant0own0v2key0000000000"));
    assert!(
        load(&with_v2_key).unwrap().v2_notifies,
        "a merchant's own v2 key: orders placed on v2 are still told"
    );
    assert!(load(&[V3]).unwrap().v2_notifies, "the sandbox: both APIs");
    assert_eq!(s.wxpay_v3.signer.serial_no, "444F4864EA9B34415");
    assert!(
        !s.wxpay_tls.has_identity(),
        "v3 refunds need no client certificate"
    );
    assert!(s
        .wxpay_v3
        .configured_keys()
        .holds("PUB_KEY_ID_0000000000000024101100397200000006"));
    // Without the public key: platform-certificate mode.
    let s = load(&own[..6]).unwrap();
    assert!(s.wxpay_v3.public_key.is_none());
    // Still the sandbox's APIv3 key: refused.
    let mut with_builtin = own.to_vec();
    with_builtin.retain(|(k, _)| *k != "SCANPAY_WXPAY_APIV3_KEY");
    let e = load(&with_builtin).unwrap_err().to_string();
    assert!(e.contains("SCANPAY_WXPAY_APIV3_KEY"), "{e}");
}

#[test]
fn bad_v3_settings_are_refused_by_name() {
    let (key, public, not_key) = files();
    let refused = |extra: &[(&str, &str)], name: &str| {
        let mut env = vec![V3];
        env.extend_from_slice(extra);
        let e = load(&env).unwrap_err().to_string();
        // Named as the environment variable, or as the settings file's key.
        let key = name.trim_start_matches("SCANPAY_").to_ascii_lowercase();
        assert!(e.contains(name) || e.contains(&key), "{name}: {e}");
        assert!(!e.contains("MIIE"), "no key material in errors: {e}");
    };
    refused(
        &[("SCANPAY_WXPAY_APIV3_KEY", "too-short")],
        "SCANPAY_WXPAY_APIV3_KEY",
    );
    const SERIAL: (&str, &str) = ("SCANPAY_WXPAY_CERT_SERIAL", "ABCD");
    refused(
        &[("SCANPAY_WXPAY_KEY_PEM", not_key), SERIAL],
        "SCANPAY_WXPAY_KEY_PEM",
    );
    refused(
        &[("SCANPAY_WXPAY_KEY_PEM", "/nonexistent/key.pem")],
        "SCANPAY_WXPAY_KEY_PEM",
    );
    // A key of its own needs the certificate's serial (or the certificate to read it from).
    refused(
        &[("SCANPAY_WXPAY_KEY_PEM", key)],
        "SCANPAY_WXPAY_CERT_SERIAL",
    );
    refused(
        &[("SCANPAY_WXPAY_CERT_SERIAL", "not hex!")],
        "SCANPAY_WXPAY_CERT_SERIAL",
    );
    refused(
        &[("SCANPAY_WXPAY_PUBLIC_KEY_PEM", public)],
        "SCANPAY_WXPAY_PUBLIC_KEY_ID",
    );
    refused(
        &[("SCANPAY_WXPAY_PUBLIC_KEY_ID", "PUB_KEY_ID_1")],
        "SCANPAY_WXPAY_PUBLIC_KEY_PEM",
    );
    refused(
        &[
            ("SCANPAY_WXPAY_PUBLIC_KEY_PEM", public),
            ("SCANPAY_WXPAY_PUBLIC_KEY_ID", "F5765756"),
        ],
        "SCANPAY_WXPAY_PUBLIC_KEY_ID",
    );
    refused(
        &[
            ("SCANPAY_WXPAY_PUBLIC_KEY_PEM", not_key),
            ("SCANPAY_WXPAY_PUBLIC_KEY_ID", "PUB_KEY_ID_1"),
        ],
        "SCANPAY_WXPAY_PUBLIC_KEY_PEM",
    );
    refused(
        &[("SCANPAY_SANDBOX_V3_MODE", "maybe")],
        "SCANPAY_SANDBOX_V3_MODE",
    );
}

#[test]
fn the_serial_is_read_from_the_certificate() {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["1900000109".to_string()]).unwrap();
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&[
        0x44, 0x4F, 0x48, 0x64, 0xEA,
    ]));
    let cert = params.self_signed(&key).unwrap();
    assert_eq!(serial_of(&cert.pem()).unwrap(), "444F4864EA");
    assert!(serial_of("not a certificate").is_err());
}
