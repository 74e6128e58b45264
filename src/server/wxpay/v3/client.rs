//! The v3 client's transport (wxpay-v3.md §1–§2): each request signed over the exact bytes sent
//! (method, the path and query as on the wire, timestamp, nonce, body), each 2xx answer verified
//! over its raw body against the key its `Wechatpay-Serial` names (a platform certificate
//! unknown so far makes it fetch the certificates once, then refuse), and each error answer read
//! into the same `WxPayError` the v2 client gives, so the flows decide alike on either API.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use reqwest::Method;

use super::certs::Certificates;
use super::crypto::{ApiV3Key, MerchantSigner, SignedBy, VerifyError, WechatKeys};
use super::errors::{error_of, ErrorBody};
use crate::server::wxpay::error::WxPayError;

/// Most a JSON answer may be (an order or refund is a few hundred bytes).
const MAX_JSON: usize = 256 * 1024;

/// A WeChat Pay v3 client. `base_url` as v2's: `https://api.mch.weixin.qq.com/` or a sandbox's
/// `http://HOST:PORT/sandbox/`; the v3 paths (`v3/…`) go after it.
#[derive(Clone)]
pub struct V3Client {
    pub(super) http: reqwest::Client,
    pub(super) base: reqwest::Url,
    pub(super) appid: String,
    pub(super) signer: MerchantSigner,
    pub(super) apiv3_key: ApiV3Key,
    /// WeChat's keys: the configured public key, and platform certificates once fetched.
    pub(super) keys: Arc<RwLock<WechatKeys>>,
    /// Platform certificates: fetched up front when no public key is configured (certificate
    /// mode), else only once an answer or notify names a certificate (the migration window).
    pub(super) certificates: Arc<Certificates>,
    pub(super) certificate_mode: bool,
    /// The key id asked for in `Wechatpay-Serial` (the public key's, when configured).
    pub(super) prefer: Option<String>,
    pub(super) timeout: Duration,
    pub(super) oplog: crate::server::oplog::OpLog,
    /// Against a sandbox (a base that is not WeChat's) with no key configured: its keys are
    /// asked of it, as a merchant downloads them from the merchant platform.
    pub(super) ask_sandbox: bool,
    /// Answers no WeChat Pay host gives (an HTTP error page, not WeChat's JSON) since the last
    /// protocol answer.
    misdirected: Arc<std::sync::Mutex<Option<Foreign>>>,
}

impl std::fmt::Debug for V3Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "V3Client({}, {:?})", self.base, self.signer)
    }
}

/// Answers from something that does not speak WeChat Pay v3: (first, last) epoch ms, how many,
/// and the last one's kind.
type Foreign = (i64, i64, u32, String);

/// One verified (or error) answer: its status and raw body.
#[derive(Debug)]
pub(super) struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
    /// Its signature headers (checked already unless it was asked unsigned).
    pub signed_by: SignedBy,
}

impl V3Client {
    /// Err names what could not be set up (never key material).
    pub fn new(
        base_url: &str,
        appid: &str,
        signer: MerchantSigner,
        apiv3_key: ApiV3Key,
        public_key: Option<(String, String)>,
        timeout: Duration,
        extra_root_pem: Option<&[u8]>,
    ) -> Result<Self, String> {
        let mut base_url = base_url.to_string();
        if !base_url.ends_with('/') {
            base_url.push('/');
        }
        let base = reqwest::Url::parse(&base_url).map_err(|e| format!("{base_url}: {e}"))?;
        let mut b = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("scanpay/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = extra_root_pem {
            b = b
                .add_root_certificate(reqwest::Certificate::from_pem(pem).map_err(|_| {
                    "the extra CA certificate is not a PEM certificate".to_string()
                })?);
        }
        let http = b.build().map_err(|e| e.to_string())?;
        let mut keys = WechatKeys::default();
        if let Some((id, pem)) = &public_key {
            keys.add_public_key_pem(id, pem)?;
        }
        Ok(V3Client {
            http,
            base,
            appid: appid.to_string(),
            signer,
            apiv3_key,
            keys: Arc::new(RwLock::new(keys)),
            certificates: Arc::default(),
            certificate_mode: public_key.is_none(),
            prefer: public_key.map(|(id, _)| id),
            timeout,
            oplog: Default::default(),
            ask_sandbox: false,
            misdirected: Default::default(),
        })
    }

    /// Asks a sandbox for its keys (`admin/v3/public-key`) instead of WeChat's certificates.
    pub fn asking_the_sandbox_for_its_keys(mut self) -> Self {
        self.ask_sandbox = true;
        self
    }

    /// As v2's: since when the base has answered only what no WeChat Pay host answers, once
    /// three times and lately.
    pub fn misdirected(&self, recent_ms: i64) -> Option<(i64, String)> {
        let m = self.misdirected.lock().expect("lock");
        let (first, last, count, why) = m.as_ref()?;
        let now = crate::server::support::clock::now_ms();
        (*count >= 3 && now - last < recent_ms).then(|| (*first, why.clone()))
    }

    /// Notes whether an answer came from something that speaks WeChat Pay v3.
    fn note_foreign(&self, r: &Result<Answer, WxPayError>) {
        let foreign = match r {
            Ok(a) if (200..300).contains(&a.status) => None,
            // WeChat's errors are JSON with a code; a page without one is someone else's.
            Ok(a) if a.status < 500 => {
                let e: ErrorBody = serde_json::from_slice(&a.body).unwrap_or_default();
                e.code.is_empty().then(|| format!("HTTP {}", a.status))
            }
            // A 5xx or no answer at all can be a passing fault: neither proves nor clears.
            _ => return,
        };
        let mut m = self.misdirected.lock().expect("lock");
        let now = crate::server::support::clock::now_ms();
        match (foreign, m.as_mut()) {
            (Some(why), Some(f)) => *f = (f.0, now, f.2 + 1, why),
            (Some(why), None) => *m = Some((now, now, 1, why)),
            (None, _) => *m = None,
        }
    }

    /// Notes every call made for an order in `log`.
    pub fn with_oplog(mut self, log: crate::server::oplog::OpLog) -> Self {
        self.oplog = log;
        self
    }

    pub fn mchid(&self) -> &str {
        &self.signer.mchid
    }

    /// WeChat's keys as they stand (for verifying notifies).
    pub fn keys(&self) -> WechatKeys {
        self.keys.read().expect("keys lock").clone()
    }

    pub fn apiv3_key(&self) -> &ApiV3Key {
        &self.apiv3_key
    }

    /// The absolute URL of `rel` (`v3/…` with its query) under the base.
    pub(super) fn url(&self, rel: &str) -> Result<reqwest::Url, WxPayError> {
        self.base
            .join(rel)
            .map_err(|e| WxPayError::InvalidResponse(format!("URL {rel}: {e}")))
    }

    /// Signs and sends one request and reads its answer (at most `cap` bytes). 2xx answers are
    /// verified unless `signed` is false (the bill file, which WeChat does not sign).
    pub(super) async fn send(
        &self,
        method: Method,
        url: reqwest::Url,
        body: Option<String>,
        cap: usize,
        timeout: Option<Duration>,
        signed: bool,
    ) -> Result<Answer, WxPayError> {
        let answer = self.request(method, url, body, cap, timeout).await;
        self.note_foreign(&answer);
        let answer = answer?;
        if (200..300).contains(&answer.status) {
            if signed {
                self.verify(&answer.signed_by, &answer.body).await?;
            }
            return Ok(answer);
        }
        // Error answers: WeChat does not always sign them (§2.2); one that is signed must verify,
        // as a forged "not found" would otherwise be believed.
        if !answer.signed_by.signature.is_empty() {
            self.verify(&answer.signed_by, &answer.body).await?;
        }
        Err(error_of(&answer))
    }

    /// Signs and sends one request and reads its answer, verifying nothing.
    pub(super) async fn request(
        &self,
        method: Method,
        url: reqwest::Url,
        body: Option<String>,
        cap: usize,
        timeout: Option<Duration>,
    ) -> Result<Answer, WxPayError> {
        // The canonical URL is the path and query exactly as the request line carries them.
        let canonical = match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_string(),
        };
        let ts = crate::server::support::clock::now_ms() / 1000;
        let nonce = crate::server::support::ids::random_alnum(32).to_ascii_uppercase();
        let payload = body.unwrap_or_default();
        let auth = self
            .signer
            .authorization(method.as_str(), &canonical, ts, &nonce, &payload);
        let mut req = self
            .http
            .request(method.clone(), url)
            .header("Authorization", auth)
            .header("Accept", "application/json");
        if let Some(id) = self
            .prefer
            .as_deref()
            .or(self.newest_certificate().as_deref())
        {
            req = req.header("Wechatpay-Serial", id.to_string());
        }
        if method == Method::POST {
            req = req.header("Content-Type", "application/json").body(payload);
        }
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let mut resp = req
            .send()
            .await
            .map_err(|e| WxPayError::Transport(e.to_string()))?;
        let status = resp.status().as_u16();
        let signed_by = signed_by(resp.headers());
        if resp.content_length().is_some_and(|n| n as usize > cap) {
            return Err(WxPayError::InvalidResponse(format!(
                "an answer of {} bytes",
                resp.content_length().unwrap_or(0)
            )));
        }
        let mut raw = Vec::new();
        while let Some(chunk) = resp
            .chunk()
            .await
            .map_err(|e| WxPayError::Transport(e.to_string()))?
        {
            if raw.len() + chunk.len() > cap {
                return Err(WxPayError::InvalidResponse("an answer too large".into()));
            }
            raw.extend_from_slice(&chunk);
        }
        Ok(Answer {
            status,
            body: raw,
            signed_by,
        })
    }

    /// `send` for a JSON API answer.
    pub(super) async fn json(
        &self,
        method: Method,
        rel: &str,
        body: Option<String>,
    ) -> Result<Answer, WxPayError> {
        self.ensure_certificates().await;
        let url = self.url(rel)?;
        self.send(method, url, body, MAX_JSON, None, true).await
    }

    /// Verifies an answer; a platform certificate not held yet makes it fetch them once.
    async fn verify(&self, h: &SignedBy, body: &[u8]) -> Result<(), WxPayError> {
        let now = crate::server::support::clock::now_ms() / 1000;
        let first = self.keys.read().expect("keys lock").verify(h, body, now);
        match first {
            Ok(()) => Ok(()),
            Err(VerifyError::UnknownSerial(serial)) => {
                self.refresh_certificates(Some(&serial)).await;
                self.keys
                    .read()
                    .expect("keys lock")
                    .verify(h, body, now)
                    .map_err(|e| {
                        tracing::warn!(error = %e, "WeChat Pay answer refused");
                        WxPayError::BadSignature
                    })
            }
            Err(e) => {
                tracing::warn!(error = %e, "WeChat Pay answer refused");
                Err(WxPayError::BadSignature)
            }
        }
    }
}

impl V3Client {
    /// Runs one call, counting it by API and how it ended, with its latency, and noting it for
    /// its order (the console's order page), as the v2 client does — under v2's name for the
    /// same call (`unifiedorder` for the Native order), so dashboards read alike on either API.
    pub(super) async fn observed<T>(
        &self,
        api: &'static str,
        order: Option<&str>,
        call: impl std::future::Future<Output = Result<T, WxPayError>>,
    ) -> Result<T, WxPayError> {
        let started = std::time::Instant::now();
        let r = call.await;
        let result = match &r {
            Ok(_) => "success".to_string(),
            Err(e) => crate::server::wxpay::client::result_label(e),
        };
        self.observe_as(api, order.map(str::to_string), result, started);
        r
    }

    pub(super) fn observe_as(
        &self,
        api: &'static str,
        order: Option<String>,
        result: String,
        started: std::time::Instant,
    ) {
        let took = started.elapsed();
        crate::server::support::metrics::wxpay_call(api, &result, took.as_secs_f64());
        if let Some(order_id) = order {
            self.oplog.record(crate::server::oplog::Entry::Call(
                crate::server::domain::CallRow {
                    at: crate::server::support::clock::now_ms(),
                    order_id,
                    api: api.rsplit('/').next().unwrap_or(api).to_string(),
                    result,
                    latency_ms: took.as_millis() as i64,
                },
            ));
        }
    }
}

/// The signature headers of an answer or notify (empty where absent).
pub fn signed_by(h: &reqwest::header::HeaderMap) -> SignedBy {
    let get = |k: &str| {
        h.get(k)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    SignedBy {
        timestamp: get("Wechatpay-Timestamp"),
        nonce: get("Wechatpay-Nonce"),
        signature: get("Wechatpay-Signature"),
        serial: get("Wechatpay-Serial"),
    }
}
