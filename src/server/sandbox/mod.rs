//! A protocol-faithful WeChat Pay v2 simulator for Native payments (reference §3, §9).
//!
//! Served under `/sandbox/` so a standard client whose base URL is `http://HOST:PORT/sandbox/`
//! works unchanged. State is kept per (mch_id, out_trade_no). A phone page plays the shopper's
//! WeChat app, and a notifier posts signed pay results with the documented retry schedule.
//! Paid orders can be refunded (`refunds.rs`): each refund settles after a delay and its
//! encrypted refund notify is posted on the same schedule. `pay/downloadbill` serves each
//! Beijing day's trade bill, made from the orders held (`bill.rs`).
//! With `SandboxConfig::v3` set it also speaks API v3 (`v3/`, `/sandbox/v3/…`) over the same
//! orders, refunds, bills and fault knobs; each order and refund remembers which API made it, and
//! its notifies go out in that API's format.

mod admin;
mod api;
pub mod bill;
pub mod faults;
mod notifier;
mod phone;
mod refund_notifier;
pub mod refunds;
pub mod tls;
pub mod v3;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::routing::{get, post};
use axum::Router;

use crate::server::wxpay::xml::Params;
use crate::server::wxpay::Merchant;

pub use notifier::RETRY_SCHEDULE;
pub use refunds::{RefundStatus, SandboxRefund};

#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Merchants the sandbox knows, with their keys.
    pub merchants: Vec<Merchant>,
    /// Payee name shown on the phone page.
    pub payee: String,
    /// Multiplies the notifier's waits (0.01 turns 15 s into 150 ms), the refunds' settling
    /// delay and the minute between two refunds of an order.
    pub time_scale: f64,
    /// How long a refund stays PROCESSING before its outcome (then scaled by `time_scale`).
    pub refund_delay: Duration,
    /// A Beijing day's trade bill is ready this long after the day ends (WeChat: 9 h; zero: at
    /// once, so tests may fetch today's).
    pub bill_ready_after: Duration,
    /// `secapi/` (refunds) only over a connection that presented a client certificate the
    /// sandbox verified (`scanpay sandbox` with SCANPAY_SANDBOX_CLIENT_CA; see `tls`).
    pub require_client_cert: bool,
    /// closeorder is refused this soon after unifiedorder.
    pub close_floor: Duration,
    /// unifiedorder refuses a time_expire less than this after time_start.
    pub min_expire: Duration,
    /// Faults applied to every order without faults of its own.
    pub faults: faults::Faults,
    /// API v3 beside v2 (`/sandbox/v3/…`); None: v2 only.
    pub v3: Option<v3::SharedV3>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TradeState {
    NotPay,
    Success {
        transaction_id: String,
        time_end: String,
        openid: String,
    },
    Closed,
}

/// Which API created an order or a refund: its notifies go out in that API's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiVersion {
    #[default]
    V2,
    V3,
}

#[derive(Debug, Clone)]
pub struct SandboxOrder {
    /// The API that placed it (v2 `pay/unifiedorder` or v3 `transactions/native`).
    pub api: ApiVersion,
    pub mch_id: String,
    pub out_trade_no: String,
    /// The business parameters of the first unifiedorder, for the re-entry rule.
    pub params: Params,
    pub sign_type: crate::server::wxpay::SignType,
    pub prepay_id: String,
    pub code_url: String,
    pub created_ms: i64,
    pub expire_ms: Option<i64>,
    pub state: TradeState,
    pub notify_attempts: u32,
    pub notify_acked: bool,
    /// Oldest first. Any refund at all makes orderquery answer `REFUND`.
    pub refunds: Vec<SandboxRefund>,
}

impl SandboxOrder {
    pub fn total_fee(&self) -> i64 {
        self.params
            .get("total_fee")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }
    pub fn param(&self, k: &str) -> &str {
        self.params.get(k).map(String::as_str).unwrap_or("")
    }
    /// Applies `time_expire`: an unpaid order past it is closed.
    fn refresh(&mut self, now_ms: i64) {
        if self.state == TradeState::NotPay && self.expire_ms.is_some_and(|e| now_ms >= e) {
            self.state = TradeState::Closed;
        }
    }
}

#[derive(Default)]
struct Inner {
    orders: HashMap<(String, String), SandboxOrder>,
    by_code: HashMap<String, (String, String)>,
    by_transaction: HashMap<String, (String, String)>,
    /// (mch_id, out_refund_no) → the order: out_refund_no is unique per merchant.
    by_refund_no: HashMap<(String, String), (String, String)>,
    by_refund_id: HashMap<String, (String, String)>,
    global_faults: Option<faults::Faults>,
    order_faults: HashMap<String, faults::Faults>,
    /// v3 bill download tokens (`download_url`'s `token`) → the bill they serve.
    bill_tokens: HashMap<String, v3::BillToken>,
    /// v3 notifies built so far: in the migration window they alternate between the keys.
    v3_notifies: u64,
}

#[derive(Clone)]
pub struct Sandbox {
    cfg: Arc<SandboxConfig>,
    inner: Arc<Mutex<Inner>>,
    http: reqwest::Client,
    /// v3 platform-certificate lists served (tests: how often a client fetched them).
    certificate_downloads: Arc<std::sync::atomic::AtomicU64>,
}

impl Sandbox {
    pub fn new(cfg: SandboxConfig) -> Self {
        let http = reqwest::Client::builder()
            // WeChat waits 5 s for a notify reply.
            .timeout(Duration::from_secs(5))
            .build()
            .expect("a TLS backend is compiled in");
        Sandbox {
            cfg: Arc::new(cfg),
            inner: Arc::default(),
            http,
            certificate_downloads: Arc::default(),
        }
    }

    pub fn router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let router = Router::new()
            .route("/pay/unifiedorder", post(api::unified_order))
            .route("/pay/orderquery", post(api::order_query))
            .route("/pay/closeorder", post(api::close_order))
            .route("/secapi/pay/refund", post(api::refund))
            .route("/pay/refundquery", post(api::refund_query))
            .route("/pay/downloadbill", post(api::download_bill))
            .route("/scan", get(phone::scan_page))
            .route("/scan/pay", post(phone::pay))
            .route("/scan/decline", post(phone::decline))
            .route(
                "/admin/faults",
                post(admin::set_faults).delete(admin::clear_faults),
            )
            .route("/admin/pay", post(admin::pay))
            .route("/admin/refunds", get(admin::refunds));
        // API v3 beside v2 over the same state, when configured.
        let router = match &self.cfg.v3 {
            Some(_) => v3::routes(router),
            None => router,
        };
        router.with_state(self.clone())
    }

    /// The merchant admin calls mean when they name none: the first v2 merchant, else the first
    /// v3 one (a sandbox may speak v3 only); empty when there is none (no order is found).
    fn default_mch_id(&self) -> String {
        let v3 = self.cfg.v3.as_ref().and_then(|v| v.merchants.first());
        self.cfg
            .merchants
            .first()
            .map(|m| m.mch_id.clone())
            .or_else(|| v3.map(|m| m.mchid.clone()))
            .unwrap_or_default()
    }

    /// The v3 API alone at the host's root (`/v3/…`, where WeChat serves it), for SDKs whose
    /// gateway is a bare host and who sign the path with no prefix; empty without v3.
    pub fn v3_root_router<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        match &self.cfg.v3 {
            Some(_) => v3::api_routes(Router::new()).with_state(self.clone()),
            None => Router::new(),
        }
    }

    /// The simulator as scanpay and `scanpay sandbox` serve it: everything under `/sandbox`,
    /// and v3's API at the root too.
    pub fn mounted<S: Clone + Send + Sync + 'static>(&self) -> Router<S> {
        let limit = || axum::extract::DefaultBodyLimit::max(crate::server::wxpay::xml::MAX_BODY);
        Router::new()
            .nest("/sandbox", self.router().layer(limit()))
            .merge(self.v3_root_router().layer(limit()))
    }

    /// How many v3 certificate lists this sandbox has served.
    pub fn certificate_downloads(&self) -> u64 {
        self.certificate_downloads
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The v3 side (its mode and keys), when it speaks v3.
    pub fn v3(&self) -> Option<&v3::SandboxV3> {
        self.cfg.v3.as_deref()
    }

    fn merchant(&self, appid: &str, mch_id: &str) -> Option<&Merchant> {
        self.cfg
            .merchants
            .iter()
            .find(|m| m.appid == appid && m.mch_id == mch_id)
    }

    /// A snapshot of one order, for tests and operators.
    pub fn order(&self, mch_id: &str, out_trade_no: &str) -> Option<SandboxOrder> {
        let now = crate::server::support::clock::now_ms();
        let mut inner = self.inner.lock().expect("sandbox lock");
        let o = inner
            .orders
            .get_mut(&(mch_id.to_string(), out_trade_no.to_string()))?;
        o.refresh(now);
        Some(o.clone())
    }

    /// The `kind` trade bill of `mch_id`'s Beijing day `bill_date` (`yyyyMMdd`) as it would be
    /// served now, whether or not it is ready yet; None: `No Bill Exist`.
    pub fn trade_bill(
        &self,
        mch_id: &str,
        bill_date: &str,
        kind: bill::BillType,
    ) -> Option<String> {
        let now = crate::server::support::clock::now_ms();
        // A snapshot, so the lock is not held while the text is written.
        let (orders, own, default) = {
            let mut inner = self.inner.lock().expect("sandbox lock");
            let orders: Vec<SandboxOrder> = inner
                .orders
                .values_mut()
                .filter(|o| o.mch_id == mch_id)
                .map(|o| {
                    o.refresh(now);
                    o.clone()
                })
                .collect();
            let default = inner.global_faults.unwrap_or(self.cfg.faults);
            (orders, inner.order_faults.clone(), default)
        };
        // Each order's knobs are its own (else the global ones); the phantom is global.
        let fault_of = |otn: &str| own.get(otn).copied().unwrap_or(default).bill;
        bill::trade_bill(
            &orders,
            mch_id,
            bill_date,
            kind,
            fault_of,
            default.bill.extra,
        )
    }

    /// Moves an order's payment and refunds `by_ms` into the past (tests: yesterday's bill, a
    /// payment before Beijing midnight). False when there is no such order.
    pub fn backdate(&self, mch_id: &str, out_trade_no: &str, by_ms: i64) -> bool {
        use crate::server::support::clock::{beijing_display, format_beijing, parse_beijing};
        let mut inner = self.inner.lock().expect("sandbox lock");
        let key = (mch_id.to_string(), out_trade_no.to_string());
        let Some(o) = inner.orders.get_mut(&key) else {
            return false;
        };
        o.created_ms -= by_ms;
        o.expire_ms = o.expire_ms.map(|e| e - by_ms);
        if let TradeState::Success { time_end, .. } = &mut o.state {
            if let Ok(ms) = parse_beijing(time_end) {
                *time_end = format_beijing(ms - by_ms);
            }
        }
        for r in &mut o.refunds {
            r.created_ms -= by_ms;
            if let Some(t) = &mut r.success_time {
                let compact: String = t.chars().filter(char::is_ascii_digit).collect();
                if let Ok(ms) = parse_beijing(&compact) {
                    *t = beijing_display(ms - by_ms);
                }
            }
        }
        true
    }

    /// The faults in force for an order (its own, else the global ones).
    pub fn faults_for(&self, out_trade_no: Option<&str>) -> faults::Faults {
        let inner = self.inner.lock().expect("sandbox lock");
        out_trade_no
            .and_then(|n| inner.order_faults.get(n).copied())
            .or(inner.global_faults)
            .unwrap_or(self.cfg.faults)
    }

    /// Sets faults for one order, or globally when `out_trade_no` is None.
    pub fn set_faults(&self, out_trade_no: Option<&str>, f: faults::Faults) {
        let mut inner = self.inner.lock().expect("sandbox lock");
        match out_trade_no {
            Some(n) => {
                inner.order_faults.insert(n.to_string(), f);
            }
            None => inner.global_faults = Some(f),
        }
    }

    pub fn clear_faults(&self) {
        let mut inner = self.inner.lock().expect("sandbox lock");
        inner.order_faults.clear();
        inner.global_faults = Some(faults::Faults::default());
    }

    /// Pays an order as a shopper would by scanning its code and pressing Pay; starts the
    /// notifier. Returns the new state, or why it cannot be paid.
    pub fn pay_code(&self, code_url: &str) -> Result<SandboxOrder, &'static str> {
        let key = {
            let inner = self.inner.lock().expect("sandbox lock");
            inner
                .by_code
                .get(code_url)
                .cloned()
                .ok_or("This QR code is not a sandbox payment code.")?
        };
        self.pay(&key.0, &key.1)
    }

    /// Pays (mch_id, out_trade_no) now, as if its code had been scanned.
    pub fn pay(&self, mch_id: &str, out_trade_no: &str) -> Result<SandboxOrder, &'static str> {
        let now = crate::server::support::clock::now_ms();
        let key = (mch_id.to_string(), out_trade_no.to_string());
        let order = {
            let mut inner = self.inner.lock().expect("sandbox lock");
            let o = inner
                .orders
                .get_mut(&key)
                .ok_or("No such order in the sandbox.")?;
            o.refresh(now);
            match o.state {
                TradeState::NotPay if now > o.created_ms + CODE_URL_VALIDITY_MS => {
                    return Err("This QR code has expired.")
                }
                TradeState::NotPay => {}
                TradeState::Success { .. } => return Err("This order has already been paid."),
                TradeState::Closed => {
                    return Err("This order is closed and can no longer be paid.")
                }
            }
            let transaction_id = new_transaction_id(now);
            o.state = TradeState::Success {
                transaction_id: transaction_id.clone(),
                time_end: crate::server::support::clock::format_beijing(now),
                openid: format!("oSandbox{}", crate::server::support::ids::random_alnum(20)),
            };
            let snapshot = o.clone();
            inner.by_transaction.insert(transaction_id, key);
            snapshot
        };
        let fault = self.faults_for(Some(out_trade_no)).notify;
        notifier::start(
            self.clone(),
            order.mch_id.clone(),
            order.out_trade_no.clone(),
            fault,
        );
        Ok(order)
    }
}

/// code_url and prepay_id stay valid for two hours (reference §6).
const CODE_URL_VALIDITY_MS: i64 = 2 * 3600 * 1000;

/// 28 digits, like real ones: 4200 + yyyyMMdd + 16 random digits.
fn new_transaction_id(now_ms: i64) -> String {
    use rand::Rng;
    let date = &crate::server::support::clock::format_beijing(now_ms)[..8];
    let mut rng = rand::thread_rng();
    let digits: String = (0..16)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect();
    format!("4200{date}{digits}")
}
