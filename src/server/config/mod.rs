//! Typed settings from `Leptos.toml` (or `SCANPAY_CONFIG`), each key overridable by `SCANPAY_<KEY>`.
//! Any value that does not parse stops start-up with a message naming where it came from.
//! This file holds the settings and their loading; `checks` the rules each raw value must meet.

mod addresses;
mod checks;
mod role;
mod v3;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::support::redact::SecretUrl;
use super::wxpay::{ApiKey, Merchant, SignType};
use checks::{boolean, duration, err, int, optional_secret, show};

pub use crate::server::wxpay::v3::certs::serial_of;
pub use checks::{is_wechat_host, WECHAT_CODE_URL_LIFE, WECHAT_MIN_EXPIRE};
pub use role::Role;
pub use v3::{WxPayApi, WxPayV3};

/// The settings file compiled into the binary, used when no file is found at run time.
const EMBEDDED: &str = include_str!("../../../Leptos.toml");

#[derive(Debug, Clone)]
pub struct Settings {
    /// From the command line (`--role`), not the settings file: `all` unless given.
    pub role: Role,
    pub site_addr: SocketAddr,
    pub public_url: String,
    /// Whether `public_url` was configured, not derived from the listen address.
    pub public_url_set: bool,
    pub database_url: SecretUrl,
    pub database_pool: super::store::PoolSettings,
    /// RabbitMQ; None = the embedded inbox bus and SQL timeout scheduler.
    pub amqp: Option<super::amqp::RabbitSettings>,
    /// Redis (URL, key prefix); None = SQL answers polls and claims.
    pub redis: Option<(SecretUrl, String)>,
    pub shop_name: String,
    pub order_ttl: Duration,
    pub sweep_interval: Duration,
    pub sweep_concurrency: usize,
    pub session_secret: Option<ApiKey>,
    pub shutdown_grace: Duration,
    pub limits: Limits,
    /// Where the client address comes from behind a trusted proxy; None = the TCP peer.
    pub client_ip_header: Option<axum::http::HeaderName>,
    pub ops_token: Option<ApiKey>,
    pub console: Console,
    pub merchant: Merchant,
    /// Which API the shop speaks (`wxpay_api`).
    pub wxpay_api: WxPayApi,
    /// v3's credentials (the sandbox's throwaway ones unless configured).
    pub wxpay_v3: WxPayV3,
    pub wxpay_base_url: String,
    /// Whether v2's notify endpoints are served: always on v2; on v3 against the real WeChat Pay
    /// only with a merchant v2 API key of its own (for orders placed on v2 before a switch).
    /// With the sandbox's published key they would take anyone's signature.
    pub v2_notifies: bool,
    /// The API client certificate (refunds' mutual TLS) and any extra CA, read from files.
    pub wxpay_tls: super::wxpay::ClientTls,
    pub wxpay_timeout: Duration,
    pub wxpay_close_floor: Duration,
    pub wxpay_server_ip: String,
    pub refund_automatic: bool,
    pub refund_spacing: Duration,
    pub recon: Recon,
    pub sandbox: bool,
    pub sandbox_time_scale: f64,
    pub sandbox_close_floor: Duration,
    pub sandbox_min_expire: Duration,
    /// How long a sandbox refund stays PROCESSING (× the time scale).
    pub sandbox_refund_delay: Duration,
    /// How long after a Beijing day ends its sandbox bill is ready (zero: at once).
    pub sandbox_bill_ready_after: Duration,
    pub sandbox_faults: super::sandbox::faults::Faults,
    /// Which of WeChat's keys the sandbox's v3 signs with.
    pub sandbox_v3_mode: super::sandbox::v3::V3Mode,
    /// `scanpay sandbox` over HTTPS (and mutual TLS for secapi/ when a client CA is given).
    pub sandbox_tls: Option<super::sandbox::tls::TlsFiles>,
}

/// The operator console's sessions, and who may read /metrics.
/// The daily reconciliation against WeChat's trade bill.
#[derive(Debug, Clone)]
pub struct Recon {
    /// Minutes after Beijing midnight when yesterday's bill is fetched; None: only on demand.
    pub at_minute: Option<u32>,
    /// The first wait after a bill that is not ready or a failed download (doubling to 1 h).
    pub retry: Duration,
    /// How many days back from yesterday a worker catches up.
    pub catch_up_days: u32,
}

#[derive(Debug, Clone)]
pub struct Console {
    pub idle_timeout: Duration,
    pub session_lifetime: Duration,
    pub metrics_token: Option<ApiKey>,
}

/// What one shopper may do (see `Leptos.toml`).
#[derive(Debug, Clone)]
pub struct Limits {
    pub item_qty: i64,
    pub open_orders: i64,
    pub orders_per_minute: u32,
    pub cancels_per_minute: u32,
}

/// Variables Kubernetes injects for a Service named `scanpay`; not settings, so not refused.
fn injected_by_kubernetes(var: &str) -> bool {
    var == "SCANPAY_SERVICE_HOST"
        || var == "SCANPAY_PORT"
        || var.starts_with("SCANPAY_SERVICE_PORT")
        || var.starts_with("SCANPAY_PORT_")
}

#[derive(Debug, thiserror::Error)]
#[error("configuration: {0}")]
pub struct ConfigError(pub String);

/// Where a raw value came from, for error messages.
struct Raw {
    value: String,
    source: String,
}

impl Settings {
    /// Reads the file named by `SCANPAY_CONFIG` (else `./Leptos.toml`, else the embedded copy),
    /// then the environment.
    pub fn load(site_addr: SocketAddr) -> Result<Self, ConfigError> {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let (text, file) = match env.get("SCANPAY_CONFIG") {
            Some(path) => (
                std::fs::read_to_string(path)
                    .map_err(|e| ConfigError(format!("SCANPAY_CONFIG={path}: cannot read: {e}")))?,
                path.clone(),
            ),
            None => match std::fs::read_to_string("Leptos.toml") {
                Ok(t) => (t, "Leptos.toml".to_string()),
                Err(_) => (EMBEDDED.to_string(), "built-in Leptos.toml".to_string()),
            },
        };
        Self::from_sources(&text, &file, &env, site_addr)
    }

    pub fn from_sources(
        file_text: &str,
        file_name: &str,
        env: &BTreeMap<String, String>,
        site_addr: SocketAddr,
    ) -> Result<Self, ConfigError> {
        let table: toml::Table = file_text
            .parse()
            .map_err(|e| ConfigError(format!("{file_name}: {e}")))?;
        let section = table
            .get("scanpay")
            .and_then(|v| v.as_table())
            .ok_or_else(|| ConfigError(format!("{file_name}: missing [scanpay] table")))?;
        let defaults: toml::Table = EMBEDDED.parse().expect("the built-in settings parse");
        let known = defaults["scanpay"].as_table().expect("[scanpay]").clone();
        for key in section.keys() {
            if !known.contains_key(key) {
                return Err(ConfigError(format!(
                    "{file_name}: unknown key scanpay.{key}"
                )));
            }
        }
        for var in env.keys().filter(|k| {
            k.starts_with("SCANPAY_") && *k != "SCANPAY_CONFIG" && !injected_by_kubernetes(k)
        }) {
            let key = var["SCANPAY_".len()..].to_ascii_lowercase();
            if !known.contains_key(&key) {
                return Err(ConfigError(format!(
                    "{var}: not a scanpay setting (see README)"
                )));
            }
        }

        let raw = |key: &str| -> Raw {
            let var = format!("SCANPAY_{}", key.to_ascii_uppercase());
            if let Some(v) = env.get(&var) {
                return Raw {
                    value: v.clone(),
                    source: var,
                };
            }
            let (v, src) = match section.get(key) {
                Some(v) => (v, format!("{file_name}: scanpay.{key}")),
                None => (&known[key], format!("built-in scanpay.{key}")),
            };
            let value = match v {
                toml::Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            Raw { value, source: src }
        };

        let public_url_set = !raw("public_url").value.is_empty();
        let public_url = {
            let r = raw("public_url");
            let url = if r.value.is_empty() {
                format!("http://{site_addr}")
            } else {
                r.value.clone()
            };
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(err(&r, "must start with http:// or https://"));
            }
            url.trim_end_matches('/').to_string()
        };
        let sign_type = {
            let r = raw("wxpay_sign_type");
            r.value.parse::<SignType>().map_err(|e| err(&r, &e))?
        };
        let api_key = {
            let r = raw("wxpay_api_key");
            if r.value.is_empty() {
                return Err(err(&r, "must not be empty"));
            }
            ApiKey::new(r.value)
        };
        let session_secret = optional_secret(&raw("session_secret"), 32)?;
        let ops_token = optional_secret(&raw("ops_token"), 16)?;
        let base_raw = raw("wxpay_base_url");
        let in_process_wechat = base_raw.value.is_empty();
        let wxpay_base_url = {
            let r = &base_raw;
            if r.value.is_empty() {
                format!("{public_url}/sandbox/")
            } else if (r.value.starts_with("http://") || r.value.starts_with("https://"))
                && reqwest::Url::parse(&r.value).is_ok()
            {
                let mut u = r.value.clone();
                if !u.ends_with('/') {
                    u.push('/');
                }
                u
            } else {
                return Err(err(r, "must be an http:// or https:// URL"));
            }
        };
        let sandbox = {
            let r = raw("sandbox");
            match r.value.as_str() {
                "auto" => in_process_wechat,
                _ => boolean(&r)?,
            }
        };
        let sandbox_time_scale = {
            let r = raw("sandbox_time_scale");
            r.value
                .parse::<f64>()
                .ok()
                .filter(|f| f.is_finite() && *f > 0.0)
                .ok_or_else(|| err(&r, "must be a number above 0"))?
        };
        let nonempty = |key: &str| -> Result<String, ConfigError> {
            let r = raw(key);
            if r.value.trim().is_empty() {
                Err(err(&r, "must not be empty"))
            } else {
                Ok(r.value)
            }
        };
        let wxpay_api = v3::api(&raw("wxpay_api"))?;
        let merchant = Merchant {
            appid: nonempty("wxpay_appid")?,
            mch_id: nonempty("wxpay_mch_id")?,
            api_key,
            sign_type,
        };
        let mut settings = Settings {
            role: Role::All,
            site_addr,
            database_url: SecretUrl::new(nonempty("database_url")?),
            database_pool: super::store::PoolSettings {
                max_connections: int(&raw("database_max_connections"), 1, 1000)? as u32,
                acquire_timeout: duration(&raw("database_timeout"))?,
                startup_wait: duration(&raw("database_startup_wait"))?,
                statement_timeout: duration(&raw("database_statement_timeout"))?,
                lock_timeout: duration(&raw("database_lock_timeout"))?,
            },
            amqp: {
                let r = raw("amqp_url");
                match r.value.trim() {
                    "" => None,
                    url if url.starts_with("amqps://") => {
                        return Err(err(&r, "amqps:// (TLS) is not built into this scanpay; use amqp:// on a private network or through a TLS tunnel"))
                    }
                    url if url.starts_with("amqp://") => {
                        Some(super::amqp::RabbitSettings {
                            url: url.to_string(),
                            prefix: nonempty("amqp_prefix")?,
                            prefetch: int(&raw("amqp_prefetch"), 1, 10_000)? as u16,
                            publish_timeout: duration(&raw("amqp_publish_timeout"))?,
                        })
                    }
                    _ => {
                        return Err(err(
                            &r,
                            "must be an amqp:// URL (or empty for the embedded bus)",
                        ))
                    }
                }
            },
            redis: {
                let r = raw("redis_url");
                match r.value.trim() {
                    "" => None,
                    url if url.starts_with("rediss://") => {
                        return Err(err(&r, "rediss:// (TLS) is not built into this scanpay; use redis:// on a private network or through a TLS tunnel"))
                    }
                    url if url.starts_with("redis://") || url.starts_with("unix://") => {
                        Some((SecretUrl::new(url), nonempty("redis_prefix")?))
                    }
                    _ => return Err(err(&r, "must be a redis:// URL (or empty for none)")),
                }
            },
            shop_name: nonempty("shop_name")?,
            order_ttl: duration(&raw("order_ttl"))?,
            sweep_interval: duration(&raw("sweep_interval"))?,
            sweep_concurrency: int(&raw("sweep_concurrency"), 1, 1000)? as usize,
            session_secret,
            shutdown_grace: duration(&raw("shutdown_grace"))?,
            limits: Limits {
                item_qty: int(&raw("limit_item_qty"), 1, 99)?,
                open_orders: int(&raw("limit_open_orders"), 1, 1000)?,
                orders_per_minute: int(&raw("limit_orders_per_minute"), 1, 1_000_000)? as u32,
                cancels_per_minute: int(&raw("limit_cancels_per_minute"), 1, 1_000_000)? as u32,
            },
            client_ip_header: {
                let r = raw("client_ip_header");
                match r.value.trim() {
                    "" => None,
                    h => Some(
                        axum::http::HeaderName::try_from(h)
                            .map_err(|_| err(&r, "is not an HTTP header name"))?,
                    ),
                }
            },
            ops_token,
            console: Console {
                idle_timeout: duration(&raw("ops_idle_timeout"))?,
                session_lifetime: duration(&raw("ops_session_lifetime"))?,
                metrics_token: optional_secret(&raw("metrics_token"), 16)?,
            },
            wxpay_tls: {
                // v3 signs with the key alone: a key without its certificate is no mutual TLS.
                let cert = raw("wxpay_cert_pem");
                let mut key = raw("wxpay_key_pem");
                if wxpay_api == WxPayApi::V3 && cert.value.trim().is_empty() {
                    key.value.clear();
                }
                checks::client_tls(
                    &cert,
                    &key,
                    &raw("wxpay_cert_p12"),
                    &raw("wxpay_ca_pem"),
                    &merchant.mch_id,
                )?
            },
            wxpay_v3: v3::wxpay_v3(
                v3::V3Raw {
                    key_pem: raw("wxpay_key_pem"),
                    cert_pem: raw("wxpay_cert_pem"),
                    serial: raw("wxpay_cert_serial"),
                    apiv3_key: raw("wxpay_apiv3_key"),
                    public_key_pem: raw("wxpay_public_key_pem"),
                    public_key_id: raw("wxpay_public_key_id"),
                    mch_id: merchant.mch_id.clone(),
                    builtin_apiv3: known["wxpay_apiv3_key"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string(),
                },
                wxpay_api,
            )?,
            wxpay_api,
            merchant,
            refund_automatic: boolean(&raw("refund_automatic"))?,
            refund_spacing: duration(&raw("refund_spacing"))?,
            recon: Recon {
                at_minute: checks::time_of_day(&raw("recon_at"))?,
                retry: duration(&raw("recon_retry"))?,
                catch_up_days: int(&raw("recon_catch_up_days"), 1, 90)? as u32,
            },
            wxpay_timeout: duration(&raw("wxpay_timeout"))?,
            wxpay_close_floor: duration(&raw("wxpay_close_floor"))?,
            wxpay_server_ip: nonempty("wxpay_server_ip")?,
            sandbox,
            sandbox_time_scale,
            sandbox_close_floor: duration(&raw("sandbox_close_floor"))?,
            sandbox_min_expire: duration(&raw("sandbox_min_expire"))?,
            sandbox_refund_delay: duration(&raw("sandbox_refund_delay"))?,
            sandbox_bill_ready_after: checks::duration_or_zero(&raw("sandbox_bill_ready_after"))?,
            sandbox_faults: {
                let r = raw("sandbox_faults");
                super::sandbox::faults::Faults::parse(&r.value).map_err(|e| err(&r, &e))?
            },
            sandbox_v3_mode: {
                let r = raw("sandbox_v3_mode");
                super::sandbox::v3::V3Mode::parse(r.value.trim()).map_err(|e| err(&r, &e))?
            },
            sandbox_tls: checks::sandbox_tls(
                &raw("sandbox_tls_cert"),
                &raw("sandbox_tls_key"),
                &raw("sandbox_client_ca"),
            )?,
            public_url,
            public_url_set,
            wxpay_base_url,
            v2_notifies: true,
        };
        if settings.order_ttl < Duration::from_secs(2) {
            return Err(ConfigError(format!(
                "{}: must be at least 2s",
                raw("order_ttl").source
            )));
        }
        let sandbox_key = known["wxpay_api_key"].as_str().unwrap_or_default();
        // How long WeChat takes payment for an order (its time_expire - time_start).
        let ttl_ms = settings.order_ttl.as_millis() as i64;
        let span = Duration::from_millis(super::domain::pay_by(0, ttl_ms) as u64);
        let ttl_src = raw("order_ttl").source;
        if is_wechat_host(&settings.wxpay_base_url) {
            checks::for_real_wechat(&mut settings, &raw, sandbox_key, span)?;
        }
        if settings.sandbox && in_process_wechat && span < settings.sandbox_min_expire {
            return Err(ConfigError(format!(
                "{ttl_src}: the sandbox, like WeChat Pay, refuses orders that stop taking payment \
                 less than {} ({}) after they are placed, and this order time ({}) gives {}; \
                 lengthen it or shorten SCANPAY_SANDBOX_MIN_EXPIRE",
                show(settings.sandbox_min_expire),
                raw("sandbox_min_expire").source,
                show(settings.order_ttl),
                show(span)
            )));
        }
        Ok(settings)
    }
}

#[cfg(test)]
mod tests;
