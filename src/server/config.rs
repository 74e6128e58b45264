//! Typed settings from `Leptos.toml` (or `SCANPAY_CONFIG`), each key overridable by `SCANPAY_<KEY>`.
//! Any value that does not parse stops start-up with a message naming where it came from.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use super::wxpay::{ApiKey, Merchant, SignType};

/// The settings file compiled into the binary, used when no file is found at run time.
const EMBEDDED: &str = include_str!("../../Leptos.toml");

#[derive(Debug, Clone)]
pub struct Settings {
    pub site_addr: SocketAddr,
    pub public_url: String,
    pub database_url: String,
    pub shop_name: String,
    pub order_ttl: Duration,
    pub sweep_interval: Duration,
    pub session_secret: Option<ApiKey>,
    pub ops_token: Option<ApiKey>,
    pub merchant: Merchant,
    pub wxpay_base_url: String,
    pub wxpay_timeout: Duration,
    pub wxpay_close_floor: Duration,
    pub wxpay_server_ip: String,
    pub sandbox: bool,
    pub sandbox_time_scale: f64,
    pub sandbox_close_floor: Duration,
    pub sandbox_faults: super::sandbox::faults::Faults,
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
        for var in env
            .keys()
            .filter(|k| k.starts_with("SCANPAY_") && *k != "SCANPAY_CONFIG")
        {
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
        let wxpay_base_url = {
            let r = raw("wxpay_base_url");
            if r.value.is_empty() {
                format!("{public_url}/sandbox/")
            } else if r.value.starts_with("http://") || r.value.starts_with("https://") {
                r.value
            } else {
                return Err(err(&r, "must start with http:// or https://"));
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
        let merchant = Merchant {
            appid: nonempty("wxpay_appid")?,
            mch_id: nonempty("wxpay_mch_id")?,
            api_key,
            sign_type,
        };
        let settings = Settings {
            site_addr,
            database_url: nonempty("database_url")?,
            shop_name: nonempty("shop_name")?,
            order_ttl: duration(&raw("order_ttl"))?,
            sweep_interval: duration(&raw("sweep_interval"))?,
            session_secret,
            ops_token,
            merchant,
            wxpay_timeout: duration(&raw("wxpay_timeout"))?,
            wxpay_close_floor: duration(&raw("wxpay_close_floor"))?,
            wxpay_server_ip: nonempty("wxpay_server_ip")?,
            sandbox: boolean(&raw("sandbox"))?,
            sandbox_time_scale,
            sandbox_close_floor: duration(&raw("sandbox_close_floor"))?,
            sandbox_faults: {
                let r = raw("sandbox_faults");
                super::sandbox::faults::Faults::parse(&r.value).map_err(|e| err(&r, &e))?
            },
            public_url,
            wxpay_base_url,
        };
        if settings.order_ttl < Duration::from_secs(2) {
            return Err(ConfigError(format!(
                "{}: must be at least 2s",
                raw("order_ttl").source
            )));
        }
        let sandbox_key = known["wxpay_api_key"].as_str().unwrap_or_default();
        if settings.wxpay_base_url.contains("api.mch.weixin.qq.com")
            && settings.merchant.api_key.expose() == sandbox_key
        {
            return Err(ConfigError(
                "SCANPAY_WXPAY_API_KEY: the sandbox's throwaway key cannot be used with the real WeChat Pay".into(),
            ));
        }
        Ok(settings)
    }

    /// Where WeChat (or the sandbox) posts pay results.
    pub fn notify_url(&self) -> String {
        format!("{}/wxpay/notify", self.public_url)
    }
}

fn err(r: &Raw, why: &str) -> ConfigError {
    // Values are not echoed: some of them are secrets.
    ConfigError(format!("{}: {why}", r.source))
}

/// An optional secret: empty means unset; otherwise it must be at least `min` characters.
fn optional_secret(r: &Raw, min: usize) -> Result<Option<ApiKey>, ConfigError> {
    match r.value.chars().count() {
        0 => Ok(None),
        n if n < min => Err(err(r, &format!("must be at least {min} characters"))),
        _ => Ok(Some(ApiKey::new(r.value.clone()))),
    }
}

fn boolean(r: &Raw) -> Result<bool, ConfigError> {
    match r.value.as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(err(r, &format!("{:?} is not true or false", r.value))),
    }
}

fn duration(r: &Raw) -> Result<Duration, ConfigError> {
    parse_duration(&r.value).map_err(|e| err(r, &e))
}

/// `500ms`, `30s`, `15m`, `2h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 15m or 500ms"))?;
    let d = match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        "h" => Duration::from_secs(n * 3600),
        _ => return Err(format!("{s:?} is not a duration like 30s, 15m or 500ms")),
    };
    if d.is_zero() {
        return Err(format!("{s:?} must be longer than zero"));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
        let env = env
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
            ("SCANPAY_ORDER_TTL", "2m"),
            ("SCANPAY_WXPAY_SIGN_TYPE", "HMAC-SHA256"),
        ])
        .unwrap();
        assert_eq!(s.order_ttl, Duration::from_secs(120));
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
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        for bad in ["", "15", "m", "1.5s", "-1s", "0s", "10d"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }
}
