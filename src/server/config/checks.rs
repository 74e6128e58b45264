//! The rules raw settings must meet: whole numbers, booleans, durations and secrets read from a
//! `Raw` value (each error naming where the value came from, never the value), and what the real
//! WeChat Pay demands of the deployment (a public https address, an order time it accepts).

use std::time::Duration;

use super::super::support::clock::parse_duration;
use super::super::wxpay::ApiKey;
use super::{ConfigError, Raw, Settings, WxPayApi};

/// WeChat refuses a NATIVE `time_expire` less than this after `time_start`.
pub const WECHAT_MIN_EXPIRE: Duration = Duration::from_secs(5 * 60);
/// A `code_url` can be paid for this long; a later `time_expire` would outlive the QR code.
pub const WECHAT_CODE_URL_LIFE: Duration = Duration::from_secs(2 * 3600);

pub use crate::server::wxpay::is_wechat_host;

pub(super) fn err(r: &Raw, why: &str) -> ConfigError {
    // Values are not echoed: some of them are secrets.
    ConfigError(format!("{}: {why}", r.source))
}

/// An optional secret: empty means unset; otherwise it must be at least `min` characters.
pub(super) fn optional_secret(r: &Raw, min: usize) -> Result<Option<ApiKey>, ConfigError> {
    match r.value.chars().count() {
        0 => Ok(None),
        n if n < min => Err(err(r, &format!("must be at least {min} characters"))),
        _ => Ok(Some(ApiKey::new(r.value.clone()))),
    }
}

/// `5m34s`, `900ms`: a duration as a person reads it.
pub(super) fn show(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        return format!("{ms}ms");
    }
    let (h, m, s) = (ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60);
    let mut out = String::new();
    for (n, unit) in [(h, "h"), (m, "m"), (s, "s")] {
        if n > 0 {
            out.push_str(&format!("{n}{unit}"));
        }
    }
    if out.is_empty() {
        "0s".into()
    } else {
        out
    }
}

pub(super) fn int(r: &Raw, min: i64, max: i64) -> Result<i64, ConfigError> {
    r.value
        .trim()
        .parse::<i64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| err(r, &format!("must be a whole number from {min} to {max}")))
}

pub(super) fn boolean(r: &Raw) -> Result<bool, ConfigError> {
    match r.value.as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(err(r, &format!("{:?} is not true or false", r.value))),
    }
}

pub(super) fn duration(r: &Raw) -> Result<Duration, ConfigError> {
    parse_duration(&r.value).map_err(|e| err(r, &e))
}

/// A duration where zero means "at once" (`0s`, `0`).
pub(super) fn duration_or_zero(r: &Raw) -> Result<Duration, ConfigError> {
    match r.value.trim() {
        "0" | "0s" | "0ms" => Ok(Duration::ZERO),
        _ => duration(r),
    }
}

/// `HH:MM` (24-hour, Beijing time) → minutes after midnight; `off` → None.
pub(super) fn time_of_day(r: &Raw) -> Result<Option<u32>, ConfigError> {
    let v = r.value.trim();
    if v.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    let parsed = v.split_once(':').and_then(|(h, m)| {
        let ok = h.len() == 2 && m.len() == 2;
        let (h, m) = (h.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
        (ok && h < 24 && m < 60).then_some(h * 60 + m)
    });
    parsed.map(Some).ok_or_else(|| {
        err(
            r,
            &format!("{v:?} is not a time like 10:00 (HH:MM, Beijing) or off"),
        )
    })
}

/// WeChat delivers notifies only to a public https address.
pub(super) fn check_public_for_wechat(public_url: &str, source: &str) -> Result<(), ConfigError> {
    let why = |w: &str| {
        Err(ConfigError(format!(
            "{source}: with the real WeChat Pay, {w} (WeChat could never deliver a notify there)"
        )))
    };
    let Ok(u) = reqwest::Url::parse(public_url) else {
        return why("must be a URL");
    };
    if u.scheme() != "https" {
        return why("must be an https:// URL");
    }
    let v4_private = |ip: std::net::Ipv4Addr| {
        let o = ip.octets();
        ip.is_loopback()
            || ip.is_private()
            || ip.is_link_local()
            || ip.is_unspecified()
            || (o[0] == 100 && (o[1] & 0xc0) == 64) // 100.64.0.0/10, carrier-grade NAT
    };
    let private = match u.host() {
        Some(url::Host::Ipv4(ip)) => v4_private(ip),
        Some(url::Host::Ipv6(ip)) => {
            let s = ip.segments()[0];
            ip.is_loopback()
                || ip.is_unspecified()
                || (s & 0xfe00) == 0xfc00 // unique local
                || (s & 0xffc0) == 0xfe80 // link-local
                || ip.to_ipv4_mapped().is_some_and(v4_private)
        }
        Some(url::Host::Domain(d)) => {
            let d = d.trim_end_matches('.').to_ascii_lowercase();
            d == "localhost" || d.ends_with(".localhost") || d.ends_with(".local")
        }
        None => true,
    };
    if private {
        return why("must name a public host, not loopback or a private address");
    }
    Ok(())
}

/// The order times WeChat Pay accepts: `span` (how long after placing an order stops taking
/// payment) no shorter than its minimum and no longer than a QR code lives.
pub(super) fn check_order_time_for_wechat(
    order_ttl: Duration,
    span: Duration,
    ttl_src: &str,
) -> Result<(), ConfigError> {
    if span < WECHAT_MIN_EXPIRE {
        return Err(ConfigError(format!(
            "{ttl_src}: WeChat Pay refuses orders that stop taking payment less than 5 minutes \
             after they are placed; this order time ({}) lets shoppers pay for only {}. Use at least 5m34s",
            show(order_ttl),
            show(span)
        )));
    }
    if span > WECHAT_CODE_URL_LIFE {
        return Err(ConfigError(format!(
            "{ttl_src}: a WeChat Pay QR code can be paid for 2 hours; this order time ({}) \
             would outlive it. Use at most 2h",
            show(order_ttl)
        )));
    }
    Ok(())
}

/// Reads the refunds' client certificate and key (PEM files), or says why not. Paths appear in
/// errors; contents never do.
pub(super) fn client_tls(
    cert: &Raw,
    key: &Raw,
    p12: &Raw,
    ca: &Raw,
    mch_id: &str,
) -> Result<super::super::wxpay::ClientTls, ConfigError> {
    let read = |r: &Raw| -> Result<Option<Vec<u8>>, ConfigError> {
        match r.value.trim() {
            "" => Ok(None),
            path => std::fs::read(path)
                .map(Some)
                .map_err(|e| err(r, &format!("cannot read {path}: {e}"))),
        }
    };
    let from_p12 = match read(p12)? {
        None => None,
        Some(_) if !cert.value.trim().is_empty() || !key.value.trim().is_empty() => {
            return Err(err(
                p12,
                "set either it or SCANPAY_WXPAY_CERT_PEM + SCANPAY_WXPAY_KEY_PEM, not both",
            ))
        }
        Some(der) => Some(pem_from_p12(&der, mch_id).map_err(|why| err(p12, &why))?),
    };
    let identity_pem = match (read(cert)?, read(key)?) {
        (None, None) => from_p12,
        (Some(mut c), Some(k)) => {
            c.push(b'\n');
            c.extend_from_slice(&k);
            if reqwest::Identity::from_pem(&c).is_err() {
                return Err(err(
                    cert,
                    "with the key file, is not a PEM certificate and its PEM private key \
                     (apiclient_cert.pem + apiclient_key.pem)",
                ));
            }
            Some(c)
        }
        (Some(_), None) => {
            return Err(err(
                cert,
                "needs SCANPAY_WXPAY_KEY_PEM too (the certificate's private key)",
            ))
        }
        (None, Some(_)) => {
            return Err(err(
                key,
                "needs SCANPAY_WXPAY_CERT_PEM too (the key's certificate)",
            ))
        }
    };
    let extra_root_pem = read(ca)?;
    if let Some(pem) = &extra_root_pem {
        if reqwest::Certificate::from_pem(pem).is_err() {
            return Err(err(ca, "is not a PEM certificate"));
        }
    }
    Ok(super::super::wxpay::ClientTls {
        identity_pem,
        extra_root_pem,
    })
}

/// The sandbox's own HTTPS: certificate and key files together (and an optional client CA),
/// each checked as TLS will use it, so a bad file stops start-up with its setting named.
pub(super) fn sandbox_tls(
    cert: &Raw,
    key: &Raw,
    ca: &Raw,
) -> Result<Option<super::super::sandbox::tls::TlsFiles>, ConfigError> {
    let read = |r: &Raw| -> Result<Option<Vec<u8>>, ConfigError> {
        match r.value.trim() {
            "" => Ok(None),
            path => std::fs::read(path)
                .map(Some)
                .map_err(|e| err(r, &format!("cannot read {path}: {e}"))),
        }
    };
    let files = match (read(cert)?, read(key)?, read(ca)?) {
        (None, None, None) => return Ok(None),
        (Some(cert_pem), Some(key_pem), client_ca_pem) => super::super::sandbox::tls::TlsFiles {
            cert_pem,
            key_pem,
            client_ca_pem,
        },
        (None, Some(_), _) => {
            return Err(err(
                key,
                "needs SCANPAY_SANDBOX_TLS_CERT too (the key's certificate)",
            ))
        }
        (None, None, Some(_)) => {
            return Err(err(
                ca,
                "needs SCANPAY_SANDBOX_TLS_CERT and SCANPAY_SANDBOX_TLS_KEY (mutual TLS is HTTPS)",
            ))
        }
        (Some(_), None, _) => {
            return Err(err(
                cert,
                "needs SCANPAY_SANDBOX_TLS_KEY too (the certificate's private key)",
            ))
        }
    };
    super::super::sandbox::tls::server_config(&files).map_err(|e| err(cert, &e))?;
    Ok(Some(files))
}

/// The certificate and key of the merchant's `apiclient_cert.p12` as one PEM buffer. WeChat's
/// files are protected by the mch_id and encrypted with the legacy PKCS#12 ciphers (RC2-40 for
/// the certificates, 3DES for the key), which is what this reads.
fn pem_from_p12(der: &[u8], mch_id: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let pfx = p12::PFX::parse(der).map_err(|_| "is not a PKCS#12 (.p12) file".to_string())?;
    if !pfx.verify_mac(mch_id) {
        return Err("does not open with the mch_id as its password (SCANPAY_WXPAY_MCH_ID: WeChat's .p12 files use it)".into());
    }
    let unreadable = |_| {
        "holds what this scanpay cannot read (convert it: `openssl pkcs12 -in apiclient_cert.p12 -nodes -legacy -out apiclient.pem`, then use SCANPAY_WXPAY_CERT_PEM and SCANPAY_WXPAY_KEY_PEM)".to_string()
    };
    let keys = pfx.key_bags(mch_id).map_err(unreadable)?;
    let certs = pfx.cert_x509_bags(mch_id).map_err(unreadable)?;
    let (Some(key), false) = (keys.first(), certs.is_empty()) else {
        return Err("holds no certificate with its private key".into());
    };
    let armour = |label: &str, der: &[u8]| {
        let b64 = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = b64
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap_or_default())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    let mut pem = String::new();
    for c in &certs {
        pem.push_str(&armour("CERTIFICATE", c));
    }
    pem.push_str(&armour("PRIVATE KEY", key));
    reqwest::Identity::from_pem(pem.as_bytes())
        .map_err(|_| "holds a certificate or key this scanpay cannot use".to_string())?;
    Ok(pem.into_bytes())
}

/// What the real WeChat Pay demands of the settings: none of the sandbox's published
/// credentials, a public https address, refunds' mutual TLS on v2, WeChat's own roots, its refund
/// spacing and an order time it accepts (`span`: the time it takes payment). On v3 without a v2
/// key of the merchant's own, v2's notify endpoints are turned off: they could not tell a
/// notify from a forgery.
pub(super) fn for_real_wechat(
    settings: &mut Settings,
    raw: &impl Fn(&str) -> Raw,
    sandbox_key: &str,
    span: Duration,
) -> Result<(), ConfigError> {
    if settings.merchant.api_key.expose() == sandbox_key {
        if settings.wxpay_api == WxPayApi::V2 {
            return Err(ConfigError(
                "SCANPAY_WXPAY_API_KEY: the sandbox's throwaway key cannot be used with the real WeChat Pay".into(),
            ));
        }
        settings.v2_notifies = false;
    }
    if settings.wxpay_api == WxPayApi::V3 {
        if let Some(name) = settings.wxpay_v3.throwaway.first() {
            return Err(ConfigError(format!(
                "{name}: the sandbox's published throwaway v3 credentials cannot be used with \
                 the real WeChat Pay (v3 needs apiclient_key.pem, its certificate's serial, \
                 the APIv3 key and, for merchants set up since 2024, pub_key.pem and its id)"
            )));
        }
    }
    check_public_for_wechat(&settings.public_url, &raw("public_url").source)?;
    if settings.wxpay_api == WxPayApi::V2 && !settings.wxpay_tls.has_identity() {
        return Err(ConfigError(
            "SCANPAY_WXPAY_CERT_PEM and SCANPAY_WXPAY_KEY_PEM (or SCANPAY_WXPAY_CERT_P12): \
             the real WeChat Pay refunds only over mutual TLS with the merchant's API client \
             certificate (apiclient_cert.pem + apiclient_key.pem from the merchant platform)"
                .into(),
        ));
    }
    if settings.wxpay_tls.extra_root_pem.is_some() {
        return Err(err(
            &raw("wxpay_ca_pem"),
            "must be empty with the real WeChat Pay (its certificate is checked against the public roots only)",
        ));
    }
    if settings.refund_spacing < Duration::from_secs(60) {
        return Err(err(
            &raw("refund_spacing"),
            "must be at least 60s with the real WeChat Pay (its rule: refunds of one order a minute apart)",
        ));
    }
    check_order_time_for_wechat(settings.order_ttl, span, &raw("order_ttl").source)
}
