//! Model-based property test of the order lifecycle against the real store (the engine under
//! test) and the real flows (place, notify → bus → consumer, sweep, timeout, cancel, restart) —
//! over the embedded seams, or with `TEST_ENGINES=rabbitmq+redis` over RabbitMQ (the bus, a
//! consumer running in the background) and Redis (the status cache and the due index) for real,
//! each case under names of its own, a restart finding what the crashed process left there. WeChat is a scripted
//! model behind the `Gateway` seam whose answers the generated steps choose: OK, ORDERPAID (after
//! a payment), SYSTEMERROR, or a timeout whose effect happened but whose answer was lost.
//! Invariants I2, I3, I4, I6 of design.md, and "every poll agrees with SQL", are checked after
//! every step, I1 and I5 once the faults stop and time runs out.

use crate::common::sql;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use proptest_state_machine::{ReferenceStateMachine, StateMachineTest};

use scanpay::app::types::{CartLine, OrderStatus};
use scanpay::server::config::Settings;
use scanpay::server::http::notify::handle_notify;
use scanpay::server::http::notify_v3::handle_notify_v3;
use scanpay::server::http::refund_notify::handle_refund_notify;
use scanpay::server::orders::{place, refund, sweep, timeout};
use scanpay::server::store;
use scanpay::server::support::clock::format_beijing;
use scanpay::server::support::clock::now_ms;
use scanpay::server::wxpay::xml::{self, Params};
use scanpay::server::wxpay::{
    sign, BoxFuture, ErrCode, Gateway, OrderQueryResponse, RefundAccepted, RefundRecord,
    RefundRequest, RefundState, TradeState, UnifiedOrderRequest, UnifiedOrderResponse, WxPayError,
};

use crate::model_refunds::{self, RefundDesk, RefundFault};
use scanpay::server::Ctx;
use tokio_util::sync::CancellationToken;

const SKUS: [(&str, i64); 3] = [("NB-GRID", 3), ("MUG-CELADON", 8), ("PIN-PANDA", 50)];

// ---------------------------------------------------------------- scripted WeChat

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    SystemError,
    /// The call takes effect at WeChat, but its answer never arrives.
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Wx {
    NotPay,
    Success { txn: String },
    Closed,
}

#[derive(Default)]
struct WechatModel {
    orders: HashMap<String, (Wx, i64)>,
    refunds: RefundDesk,
    close_faults: VecDeque<Fault>,
    query_faults: VecDeque<Fault>,
    unified_faults: VecDeque<Fault>,
    txn_seq: u64,
}

#[derive(Default)]
struct Scripted(Mutex<WechatModel>, v3::Wechat);

/// With `TEST_WXPAY_API=v3` pay notifies arrive as API v3's: signed by the model's WeChat key
/// (the published throwaway test key standing in, as in the reference's vectors), the resource
/// encrypted with the shop's APIv3 key, read by the v3 endpoint's own path.
mod v3 {
    use scanpay::server::config::Settings;
    use scanpay::server::support::clock::{format_rfc3339_beijing, now_ms};
    use scanpay::server::wxpay::v3::crypto::{self, MerchantSigner, SignedBy, WechatKeys};
    use scanpay::server::wxpay::v3::notify::{self, V3Notify, V3NotifyError};
    use scanpay::server::wxpay::v3::throwaway;

    const ID: &str = "PUB_KEY_ID_0000000000000000000000000000000001";

    pub fn on() -> bool {
        std::env::var("TEST_WXPAY_API").is_ok_and(|a| a == "v3")
    }

    pub struct Wechat {
        signer: MerchantSigner,
        keys: WechatKeys,
    }

    impl Default for Wechat {
        fn default() -> Self {
            let signer = MerchantSigner::from_pem(throwaway::SANDBOX_MERCHANT_KEY, "", ID).unwrap();
            let mut keys = WechatKeys::default();
            keys.add(ID, signer.verifying_key());
            Wechat { signer, keys }
        }
    }

    /// Another key, not WeChat's (made once: RSA key generation is slow).
    fn forger() -> &'static MerchantSigner {
        static F: std::sync::OnceLock<MerchantSigner> = std::sync::OnceLock::new();
        F.get_or_init(|| {
            use rsa::pkcs8::{EncodePrivateKey, LineEnding};
            let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
            MerchantSigner::from_pem(&key.to_pkcs8_pem(LineEnding::LF).unwrap(), "", ID).unwrap()
        })
    }

    impl Wechat {
        pub fn read(&self, signed: &SignedBy, body: &[u8]) -> Result<V3Notify, V3NotifyError> {
            let s = crate::model::settings_for_v3();
            notify::parse(
                signed,
                body,
                &self.keys,
                &s.wxpay_v3.apiv3_key,
                &s.merchant.appid,
                &s.merchant.mch_id,
                now_ms() / 1000,
            )
        }

        /// A TRANSACTION.SUCCESS for `id` as WeChat posts it (or signed by a forger).
        pub fn notify(
            &self,
            s: &Settings,
            id: &str,
            txn: &str,
            fee: i64,
            forged: bool,
        ) -> (axum::http::HeaderMap, Vec<u8>) {
            let resource = serde_json::json!({
                "mchid": s.merchant.mch_id, "appid": s.merchant.appid, "out_trade_no": id,
                "transaction_id": txn, "trade_type": "NATIVE", "trade_state": "SUCCESS",
                "success_time": format_rfc3339_beijing(now_ms()),
                "payer": {"openid": "oModel"}, "amount": {"total": fee, "currency": "CNY"},
            })
            .to_string();
            let nonce = "Kj7QIyUiYx1q";
            let ciphertext = crypto::encrypt(
                &s.wxpay_v3.apiv3_key,
                nonce,
                "transaction",
                resource.as_bytes(),
            );
            let body = serde_json::json!({
                "id": format!("EV-{txn}"), "create_time": format_rfc3339_beijing(now_ms()),
                "resource_type": "encrypt-resource", "event_type": "TRANSACTION.SUCCESS",
                "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                    "ciphertext": ciphertext, "associated_data": "transaction", "nonce": nonce},
            })
            .to_string()
            .into_bytes();
            let ts = (now_ms() / 1000).to_string();
            let n = "MODEL0NONCE0000000000000000000000";
            let by = if forged { forger() } else { &self.signer };
            let mut h = axum::http::HeaderMap::new();
            h.insert("Wechatpay-Timestamp", ts.parse().unwrap());
            h.insert("Wechatpay-Nonce", n.parse().unwrap());
            h.insert(
                "Wechatpay-Signature",
                by.sign(&crypto::answer_message(&ts, n, &body))
                    .parse()
                    .unwrap(),
            );
            h.insert("Wechatpay-Serial", ID.parse().unwrap());
            (h, body)
        }
    }
}

/// The shop's settings as every case has them (merchant and v3 credentials do not vary).
fn settings_for_v3() -> &'static Settings {
    static S: std::sync::OnceLock<Settings> = std::sync::OnceLock::new();
    S.get_or_init(|| settings("sqlite::memory:", None))
}

fn biz(code: ErrCode) -> WxPayError {
    WxPayError::Business {
        code,
        description: String::new(),
    }
}

impl Gateway for Scripted {
    /// v3 notifies are read as the v3 client reads them, against the model's WeChat key.
    fn read_v3_notify<'a>(
        &'a self,
        signed: &'a scanpay::server::wxpay::v3::crypto::SignedBy,
        body: &'a [u8],
    ) -> BoxFuture<
        'a,
        Result<
            scanpay::server::wxpay::v3::notify::V3Notify,
            scanpay::server::wxpay::v3::notify::V3NotifyError,
        >,
    > {
        Box::pin(async move { self.1.read(signed, body) })
    }
    fn download_bill<'a>(
        &'a self,
        _bill_date: &'a str,
    ) -> BoxFuture<'a, Result<scanpay::server::wxpay::bill::BillAnswer, WxPayError>> {
        // No bills in this script: an uncertain answer.
        Box::pin(async { Err(WxPayError::Transport("bills are not scripted here".into())) })
    }
    fn unified_order<'a>(
        &'a self,
        req: &'a UnifiedOrderRequest,
    ) -> BoxFuture<'a, Result<UnifiedOrderResponse, WxPayError>> {
        Box::pin(async move {
            let mut m = self.0.lock().unwrap();
            let fault = m.unified_faults.pop_front();
            if fault == Some(Fault::SystemError) {
                return Err(biz(ErrCode::SystemError));
            }
            let known = m.orders.get(&req.out_trade_no).map(|o| o.0.clone());
            match known {
                None => {
                    m.orders
                        .insert(req.out_trade_no.clone(), (Wx::NotPay, req.total_fee));
                }
                // WeChat's re-entry rule: the same request again is answered only while unpaid.
                Some(Wx::Success { .. }) if fault.is_none() => return Err(biz(ErrCode::OrderPaid)),
                Some(Wx::Closed) if fault.is_none() => return Err(biz(ErrCode::OrderClosed)),
                Some(_) => {}
            }
            if fault == Some(Fault::Timeout) {
                // Applied at WeChat; the answer is lost on the way back.
                return Err(WxPayError::Transport("timed out".into()));
            }
            Ok(UnifiedOrderResponse {
                prepay_id: format!("wx{}", req.out_trade_no),
                code_url: format!("weixin://wxpay/bizpayurl?pr={}", req.out_trade_no),
            })
        })
    }

    fn order_query<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<OrderQueryResponse, WxPayError>> {
        Box::pin(async move {
            let mut m = self.0.lock().unwrap();
            match m.query_faults.pop_front() {
                Some(Fault::SystemError) => return Err(biz(ErrCode::SystemError)),
                Some(Fault::Timeout) => return Err(WxPayError::Transport("timed out".into())),
                None => {}
            }
            let (wx, fee) = m
                .orders
                .get(id)
                .cloned()
                .ok_or_else(|| biz(ErrCode::OrderNotExist))?;
            let mut r = OrderQueryResponse {
                trade_state: TradeState::NotPay,
                out_trade_no: id.to_string(),
                trade_state_desc: None,
                transaction_id: None,
                total_fee: Some(fee),
                time_end: None,
            };
            match wx {
                Wx::NotPay => {}
                Wx::Closed => r.trade_state = TradeState::Closed,
                Wx::Success { txn } => {
                    r.trade_state = TradeState::Success;
                    r.transaction_id = Some(txn);
                    r.time_end = Some(format_beijing(now_ms()));
                }
            }
            Ok(r)
        })
    }

    fn close_order<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<(), WxPayError>> {
        Box::pin(async move {
            let mut m = self.0.lock().unwrap();
            let fault = m.close_faults.pop_front();
            if fault == Some(Fault::SystemError) {
                return Err(biz(ErrCode::SystemError));
            }
            let answer = match m.orders.get_mut(id) {
                None => Err(biz(ErrCode::OrderNotExist)),
                Some((Wx::Success { .. }, _)) => Err(biz(ErrCode::OrderPaid)),
                Some((Wx::Closed, _)) => Err(biz(ErrCode::OrderClosed)),
                Some((wx @ Wx::NotPay, _)) => {
                    *wx = Wx::Closed;
                    Ok(())
                }
            };
            match fault {
                Some(Fault::Timeout) => Err(WxPayError::Transport("timed out".into())),
                _ => answer,
            }
        })
    }

    fn refund<'a>(
        &'a self,
        req: &'a RefundRequest,
    ) -> BoxFuture<'a, Result<RefundAccepted, WxPayError>> {
        Box::pin(async move {
            let mut m = self.0.lock().unwrap();
            let paid = match m.orders.get(&req.out_trade_no) {
                Some((Wx::Success { txn }, fee)) => Some((txn.clone(), *fee)),
                _ => None,
            };
            m.refunds.refund(req, paid)
        })
    }

    fn refund_query<'a>(&'a self, no: &'a str) -> BoxFuture<'a, Result<RefundRecord, WxPayError>> {
        Box::pin(async move { self.0.lock().unwrap().refunds.query(no) })
    }
}

// ---------------------------------------------------------------- reference model

#[derive(Debug, Clone)]
struct Model {
    placed: usize,
}

#[derive(Debug, Clone)]
enum Step {
    /// A cart of one to three lines (sku index, quantity).
    Place(Vec<(usize, i64)>),
    /// The shopper pays at WeChat (if WeChat still takes payment).
    Pay(usize),
    /// WeChat delivers the notify `copies` times (duplicates; late when the order moved on).
    Notify {
        order: usize,
        copies: u8,
    },
    Forged(usize),
    Sweep,
    /// Time passes the order's deadline (WeChat's time_expire first); the timer fires.
    Deadline(usize),
    Cancel(usize),
    CloseAnswer(Fault),
    QueryAnswer(Fault),
    /// The next unifiedorder calls (placing, its one retry, the sweep asking again) fail.
    UnifiedAnswer(Fault, u8),
    Restart,
    /// An operator refunds a third, two thirds or all of the order (all: with restock).
    Refund {
        order: usize,
        part: u8,
    },
    /// The same refund asked again at once (a double click).
    RefundAgain(usize),
    /// The next refund call fails so.
    RefundAnswer(RefundFault),
    /// WeChat finishes the order's refunds in progress (SUCCESS, REFUNDCLOSE or CHANGE) and
    /// sends the refund notify `copies` times (0: lost).
    RefundOutcome {
        order: usize,
        to: u8,
        copies: u8,
    },
    /// A refund notify that is not WeChat's: another key, or another amount.
    RefundForged {
        order: usize,
        wrong_key: bool,
    },
    /// WeChat's minute between two refunds of one order passes.
    RefundTime,
}

impl ReferenceStateMachine for Model {
    type State = Model;
    type Transition = Step;

    fn init_state() -> BoxedStrategy<Model> {
        Just(Model { placed: 0 }).boxed()
    }

    fn transitions(s: &Model) -> BoxedStrategy<Step> {
        let place =
            proptest::collection::vec((0..SKUS.len(), 1i64..=3), 1..=3).prop_map(Step::Place);
        if s.placed == 0 {
            return place.boxed();
        }
        let n = s.placed;
        let fault = prop_oneof![Just(Fault::SystemError), Just(Fault::Timeout)];
        prop_oneof![
            2 => place,
            3 => (0..n).prop_map(Step::Pay),
            3 => (0..n, 1u8..=3).prop_map(|(order, copies)| Step::Notify { order, copies }),
            1 => (0..n).prop_map(Step::Forged),
            3 => Just(Step::Sweep),
            2 => (0..n).prop_map(Step::Deadline),
            2 => (0..n).prop_map(Step::Cancel),
            2 => fault.clone().prop_map(Step::CloseAnswer),
            1 => fault.clone().prop_map(Step::QueryAnswer),
            2 => (fault, 1u8..=3).prop_map(|(f, n)| Step::UnifiedAnswer(f, n)),
            1 => Just(Step::Restart),
            2 => (0..n, 1u8..=3).prop_map(|(order, part)| Step::Refund { order, part }),
            1 => (0..n).prop_map(Step::RefundAgain),
            1 => prop_oneof![Just(RefundFault::SystemError), Just(RefundFault::Timeout), Just(RefundFault::RefusedButApplied)].prop_map(Step::RefundAnswer),
            2 => (0..n, 0u8..=2, 0u8..=2).prop_map(|(order, to, copies)| Step::RefundOutcome { order, to, copies }),
            1 => (0..n, any::<bool>()).prop_map(|(order, wrong_key)| Step::RefundForged { order, wrong_key }),
            1 => Just(Step::RefundTime),
        ]
        .boxed()
    }

    fn apply(mut s: Model, t: &Step) -> Model {
        if let Step::Place(_) = t {
            s.placed += 1;
        }
        s
    }

    fn preconditions(s: &Model, t: &Step) -> bool {
        match t {
            Step::Pay(i) | Step::Forged(i) | Step::Deadline(i) | Step::Cancel(i) => *i < s.placed,
            Step::RefundAgain(i) => *i < s.placed,
            Step::Notify { order, .. }
            | Step::Refund { order, .. }
            | Step::RefundOutcome { order, .. }
            | Step::RefundForged { order, .. } => *order < s.placed,
            _ => true,
        }
    }
}

// ---------------------------------------------------------------- system under test

struct Sut {
    rt: tokio::runtime::Runtime,
    ctx: Arc<Ctx>,
    /// The same database, for the invariant checks and for moving time.
    db: sqlx::AnyPool,
    wechat: Arc<Scripted>,
    orders: Vec<Option<String>>,
    /// Each order's last refund request (amount, restock) and the refund it made or found.
    last_refund: HashMap<usize, (i64, bool, String)>,
    /// With `TEST_ENGINES=rabbitmq+redis`: the case's RabbitMQ/Redis prefix, and the running
    /// consumer's token (the bus is RabbitMQ, the cache and due index Redis).
    engines: Option<(String, CancellationToken)>,
    _dir: tempfile::TempDir,
    _testdb: Option<scanpay::server::store::testing::TestDb>,
}

fn settings(db_url: &str, prefix: Option<&str>) -> Settings {
    let mut env: std::collections::BTreeMap<String, String> = [
        ("SCANPAY_DATABASE_URL", db_url),
        ("SCANPAY_SANDBOX", "false"),
        ("SCANPAY_WXPAY_CLOSE_FLOOR", "1ms"),
        ("SCANPAY_SWEEP_INTERVAL", "1s"),
        ("SCANPAY_LIMIT_OPEN_ORDERS", "1000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if let Ok(api) = std::env::var("TEST_WXPAY_API") {
        env.insert("SCANPAY_WXPAY_API".into(), api);
    }
    if let Some(prefix) = prefix {
        env.insert("SCANPAY_AMQP_URL".into(), crate::common::amqp_url());
        env.insert("SCANPAY_AMQP_PREFIX".into(), prefix.into());
        env.insert("SCANPAY_REDIS_URL".into(), crate::common::redis_url());
        env.insert("SCANPAY_REDIS_PREFIX".into(), prefix.into());
    }
    let addr: SocketAddr = "127.0.0.1:3999".parse().unwrap();
    Settings::from_sources(include_str!("../../Leptos.toml"), "Leptos.toml", &env, addr).unwrap()
}

/// The flows over the embedded seams, or (with a prefix) over RabbitMQ and Redis for real: the
/// pay-result consumer then runs in the background, on the case's runtime.
async fn boot(
    db_url: &str,
    wechat: Arc<Scripted>,
    prefix: Option<&str>,
) -> (Arc<Ctx>, sqlx::AnyPool, Option<CancellationToken>) {
    let store = store::connect(db_url, &Default::default()).await.unwrap();
    store.migrate().await.unwrap();
    let settings = settings(db_url, prefix);
    let mut ctx = Ctx::new(settings.clone(), store, wechat, None);
    ctx.retry_delay = std::time::Duration::ZERO;
    let mut consumer = None;
    if let (Some(a), Some((url, p))) = (&settings.amqp, &settings.redis) {
        let rabbit = scanpay::server::amqp::Rabbit::connect(a.clone())
            .await
            .unwrap();
        let redis = scanpay::server::redis_conn::RedisConn::connect(url, p)
            .await
            .unwrap();
        ctx = ctx
            .with_rabbit(Arc::new(rabbit))
            .with_redis(Arc::new(redis));
    }
    let ctx = Arc::new(ctx);
    if ctx.bus.name() != "inbox" {
        ctx.due.repair().await.unwrap(); // what start-up does
        let token = CancellationToken::new();
        let hook = scanpay::server::orders::consume::on_applied(ctx.clone());
        tokio::spawn(ctx.bus.consume(hook, token.clone()));
        consumer = Some(token);
    }
    (ctx, crate::common::raw_db(db_url).await, consumer)
}

impl Sut {
    fn id(&self, i: usize) -> Option<String> {
        self.orders.get(i).cloned().flatten()
    }

    fn notify_body(&self, id: &str, txn: &str, fee: i64, key: &str) -> Vec<u8> {
        let m = &self.ctx.settings.merchant;
        let mut p: Params = [
            ("return_code", "SUCCESS"),
            ("result_code", "SUCCESS"),
            ("appid", m.appid.as_str()),
            ("mch_id", m.mch_id.as_str()),
            ("nonce_str", "n0nce"),
            ("out_trade_no", id),
            ("transaction_id", txn),
            ("total_fee", &fee.to_string()),
            ("time_end", &format_beijing(now_ms())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = sign::sign(&p, key, m.sign_type);
        p.insert("sign".into(), s);
        xml::to_xml(&p).into_bytes()
    }

    async fn snapshot(&self) -> Vec<String> {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(&sql(
            "SELECT id, status, transaction_id FROM orders ORDER BY id",
        ))
        .fetch_all(&self.db)
        .await
        .unwrap();
        let stock: Vec<(String, i64)> =
            sqlx::query_as(&sql("SELECT sku, stock FROM products ORDER BY sku"))
                .fetch_all(&self.db)
                .await
                .unwrap();
        let inbox: i64 = sqlx::query_scalar(&sql("SELECT COUNT(*) FROM pay_inbox"))
            .fetch_one(&self.db)
            .await
            .unwrap();
        vec![format!("{rows:?}"), format!("{stock:?}"), inbox.to_string()]
    }

    async fn step(&mut self, t: Step) {
        let ctx = self.ctx.clone();
        match t {
            Step::Place(lines) => {
                let cart: Vec<CartLine> = lines
                    .iter()
                    .map(|(sku, qty)| CartLine {
                        sku: SKUS[*sku].0.to_string(),
                        qty: *qty,
                    })
                    .collect();
                PLACE_STEPS.fetch_add(1, Ordering::Relaxed);
                let id = match place::place_order(&ctx, "shopper", &cart).await {
                    Ok(id) => {
                        PLACED.fetch_add(1, Ordering::Relaxed);
                        Some(id)
                    }
                    // Only what a shopper can be told: not enough stock (the catalogue is small
                    // on purpose). Anything else is a defect, never a case that tests nothing.
                    Err(place::PlaceError::Invalid(
                        place::Refusal::SoldOut(_) | place::Refusal::OnlyLeft { .. },
                    )) => None,
                    Err(e) => panic!("placing {cart:?} failed: {e:?}"),
                };
                self.orders.push(id);
            }
            Step::Pay(i) => {
                let Some(id) = self.id(i) else { return };
                let mut m = self.wechat.0.lock().unwrap();
                m.txn_seq += 1;
                let txn = format!("4200{:024}", m.txn_seq);
                if let Some((wx @ Wx::NotPay, _)) = m.orders.get_mut(&id) {
                    *wx = Wx::Success { txn };
                }
            }
            Step::Notify { order, copies } => {
                let Some(id) = self.id(order) else { return };
                let paid = self.wechat.0.lock().unwrap().orders.get(&id).cloned();
                let Some((Wx::Success { txn }, fee)) = paid else {
                    return;
                };
                if v3::on() {
                    // API v3: a signed, encrypted TRANSACTION.SUCCESS through the v3 endpoint.
                    let (headers, body) =
                        self.wechat.1.notify(&ctx.settings, &id, &txn, fee, false);
                    for _ in 0..copies {
                        let status = handle_notify_v3(&ctx, &headers, &body).await;
                        assert_eq!(status, 204, "verified v3 notify acknowledged");
                    }
                    self.drain(&ctx, Some(&txn)).await;
                    return;
                }
                let body = self.notify_body(&id, &txn, fee, ctx.settings.merchant.api_key.expose());
                for _ in 0..copies {
                    let (status, reply) =
                        handle_notify(&ctx.settings.merchant, &*ctx.bus, &body).await;
                    assert_eq!(status, 200, "verified notify acknowledged: {reply}");
                }
                self.drain(&ctx, Some(&txn)).await;
            }
            Step::Forged(i) => {
                let Some(id) = self.id(i) else { return };
                let fee = ctx.store.load(&id).await.unwrap().unwrap().total_fee;
                let before = self.snapshot().await;
                if v3::on() {
                    // Signed by a key that is not WeChat's, under WeChat's key id.
                    let (headers, body) = self.wechat.1.notify(
                        &ctx.settings,
                        &id,
                        "4200999999999999999999999999",
                        fee,
                        true,
                    );
                    let status = handle_notify_v3(&ctx, &headers, &body).await;
                    assert_eq!(status, 401, "I6: a forged v3 notify is refused");
                    self.drain(&ctx, None).await;
                    assert_eq!(
                        self.snapshot().await,
                        before,
                        "I6: a forged v3 notify changes nothing"
                    );
                    return;
                }
                let body = self.notify_body(
                    &id,
                    "4200999999999999999999999999",
                    fee,
                    "not-the-merchant-key-000000000000",
                );
                let (status, _) = handle_notify(&ctx.settings.merchant, &*ctx.bus, &body).await;
                assert_eq!(status, 400, "I6: a forged notify is refused");
                self.drain(&ctx, None).await;
                assert_eq!(
                    self.snapshot().await,
                    before,
                    "I6: a forged notify changes nothing"
                );
            }
            Step::Sweep => {
                self.make_due().await;
                sweep::pass(&ctx).await.unwrap();
                refund::pass(&ctx).await.unwrap();
            }
            Step::Deadline(i) => {
                let Some(id) = self.id(i) else { return };
                {
                    let mut m = self.wechat.0.lock().unwrap();
                    if let Some((wx @ Wx::NotPay, _)) = m.orders.get_mut(&id) {
                        *wx = Wx::Closed; // time_expire (before our deadline) has passed
                    }
                }
                sqlx::query(&sql("UPDATE orders SET deadline_at = ? WHERE id = ?"))
                    .bind(now_ms() - 1)
                    .bind(&id)
                    .execute(&self.db)
                    .await
                    .unwrap();
                timeout::tick(&ctx).await.unwrap();
            }
            Step::Cancel(i) => {
                let Some(id) = self.id(i) else { return };
                use scanpay::server::orders::cancel::{self, CancelError};
                let order = ctx.store.load(&id).await.unwrap().unwrap();
                match cancel::cancel(&ctx, order).await {
                    Ok(_) | Err(CancelError::AlreadyPaid | CancelError::PaidBeforeCancel) => {}
                    Err(e) => panic!("cancelling {id}: {e}"),
                }
            }
            Step::CloseAnswer(f) => self.wechat.0.lock().unwrap().close_faults.push_back(f),
            Step::QueryAnswer(f) => self.wechat.0.lock().unwrap().query_faults.push_back(f),
            Step::UnifiedAnswer(f, n) => {
                let mut m = self.wechat.0.lock().unwrap();
                m.unified_faults.extend(std::iter::repeat_n(f, n as usize));
            }
            Step::Refund { order, part } => {
                let Some(id) = self.id(order) else { return };
                let total = ctx.store.load(&id).await.unwrap().unwrap().total_fee;
                let fee = (total * i64::from(part) / 3).max(1);
                let restock = part == 3;
                if let Some(no) = self.refund(&id, fee, restock).await {
                    self.last_refund.insert(order, (fee, restock, no));
                }
            }
            Step::RefundAgain(order) => {
                let Some(id) = self.id(order) else { return };
                let Some((fee, restock, no)) = self.last_refund.get(&order).cloned() else {
                    return;
                };
                let before = ctx.store.refunds_of(&id).await.unwrap().len();
                let created: i64 = ctx.store.refund(&no).await.unwrap().unwrap().created_at;
                let again = self.refund(&id, fee, restock).await;
                if now_ms() - created < ctx.settings.refund_spacing.as_millis() as i64 {
                    assert_eq!(
                        again.as_deref(),
                        Some(no.as_str()),
                        "a double click is the same refund"
                    );
                    assert_eq!(
                        ctx.store.refunds_of(&id).await.unwrap().len(),
                        before,
                        "and writes nothing"
                    );
                }
            }
            Step::RefundAnswer(f) => self.wechat.0.lock().unwrap().refunds.faults.push_back(f),
            Step::RefundOutcome { order, to, copies } => {
                let Some(id) = self.id(order) else { return };
                let to = [
                    RefundState::Success,
                    RefundState::Closed,
                    RefundState::Change,
                ][to as usize]
                    .clone();
                let (done, bodies) = {
                    let mut m = self.wechat.0.lock().unwrap();
                    let done = m.refunds.finish(&id, to);
                    let key = ctx.settings.merchant.api_key.expose().to_string();
                    let bodies: Vec<Vec<u8>> = done
                        .iter()
                        .map(|no| m.refunds.notify_body(&ctx.settings.merchant, no, &key, 0))
                        .collect();
                    (done, bodies)
                };
                for body in bodies.iter() {
                    for _ in 0..copies {
                        let (status, reply) = handle_refund_notify(&ctx, body).await;
                        assert_eq!(
                            status, 200,
                            "a refund notify WeChat sent is acknowledged: {reply}"
                        );
                    }
                }
                let _ = done;
            }
            Step::RefundForged { order, wrong_key } => {
                let Some(id) = self.id(order) else { return };
                let body = {
                    let m = self.wechat.0.lock().unwrap();
                    let Some(no) = m
                        .refunds
                        .refunds
                        .iter()
                        .find(|(_, r)| r.order == id)
                        .map(|(no, _)| no.clone())
                    else {
                        return;
                    };
                    let key = if wrong_key {
                        "not-the-merchant-key-000000000000".to_string()
                    } else {
                        ctx.settings.merchant.api_key.expose().to_string()
                    };
                    m.refunds.notify_body(
                        &ctx.settings.merchant,
                        &no,
                        &key,
                        if wrong_key { 0 } else { 1 },
                    )
                };
                let before = self.refund_snapshot().await;
                let (status, _) = handle_refund_notify(&ctx, &body).await;
                assert_eq!(status, 400, "a forged refund notify is refused");
                assert_eq!(
                    self.refund_snapshot().await,
                    before,
                    "a forged refund notify changes nothing"
                );
            }
            Step::RefundTime => {
                sqlx::query(&sql("UPDATE refunds SET created_at = created_at - 60000"))
                    .execute(&self.db)
                    .await
                    .unwrap();
            }
            Step::Restart => {
                let url = ctx.settings.database_url.clone();
                drop(ctx);
                // A crash: the consumer stops wherever it is (RabbitMQ redelivers what it held).
                if let Some((_, token)) = &self.engines {
                    token.cancel();
                }
                self.ctx.store.close_pool().await;
                self.db.close().await;
                // The same queues and keys: what the first process left is what this one finds.
                let prefix = self.engines.as_ref().map(|(p, _)| p.clone());
                let consumer;
                (self.ctx, self.db, consumer) =
                    boot(&url, self.wechat.clone(), prefix.as_deref()).await;
                if let (Some(p), Some(t)) = (prefix, consumer) {
                    self.engines = Some((p, t));
                }
            }
        }
    }

    /// An operator's refund request; the refund's number when one was made or found.
    async fn refund(&self, id: &str, fee: i64, restock: bool) -> Option<String> {
        use scanpay::server::domain::{Cause, RefundOf, RefundRefusal};
        let ask = refund::Ask {
            order_id: id.to_string(),
            of: RefundOf::Order,
            refund_fee: Some(fee),
            reason: "model".into(),
            requested_by: "operator".into(),
            restock,
            cause: Cause::Operator,
        };
        match refund::request(&self.ctx, ask).await.unwrap() {
            Ok(r) => Some(r.out_refund_no),
            Err(RefundRefusal::NotPaid(s)) => {
                assert_ne!(s, OrderStatus::Paid);
                None
            }
            Err(
                RefundRefusal::OverRefundable { .. }
                | RefundRefusal::TooSoon { .. }
                | RefundRefusal::TooMany,
            ) => None,
            Err(e) => panic!("refunding {id}: {e}"),
        }
    }

    async fn refund_snapshot(&self) -> String {
        let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(&sql(
            "SELECT out_refund_no, status, refund_id FROM refunds ORDER BY out_refund_no",
        ))
        .fetch_all(&self.db)
        .await
        .unwrap();
        format!("{rows:?} {:?}", self.snapshot().await)
    }

    /// The pay results handed over are applied: the inbox drained as the consumer job would, or,
    /// with RabbitMQ, the background consumer seen to have recorded `txn`.
    async fn drain(&self, ctx: &Arc<Ctx>, txn: Option<&str>) {
        if ctx.bus.name() == "inbox" {
            let inbox = scanpay::server::bus::inbox::InboxBus::new(ctx.store.clone());
            let hook = scanpay::server::orders::consume::on_applied(ctx.clone());
            inbox.drain(&hook).await.unwrap();
            return;
        }
        let Some(txn) = txn else { return };
        let q = sql(
            "SELECT COUNT(*) FROM pay_inbox WHERE transaction_id = ? AND processed_at IS NOT NULL",
        );
        let started = std::time::Instant::now();
        loop {
            let n: i64 = sqlx::query_scalar(&q)
                .bind(txn)
                .fetch_one(&self.db)
                .await
                .unwrap();
            if n > 0 {
                // The hook (cache, index) runs right after the commit: give it that moment.
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                return;
            }
            assert!(
                started.elapsed().as_secs() < 20,
                "pay result {txn} never applied"
            );
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Every unfinished order due a check now: in SQL, and in the Redis index when there is one
    /// (rebuilt from SQL, as the sweep's repair does after an outage).
    async fn make_due(&self) {
        sqlx::query(&sql(
            "UPDATE orders SET next_check_at = 0 WHERE status IN ('pending', 'closing') AND parked_at IS NULL",
        ))
        .execute(&self.db)
        .await
        .unwrap();
        sqlx::query(&sql(
            "UPDATE refunds SET next_check_at = 0 WHERE next_check_at IS NOT NULL",
        ))
        .execute(&self.db)
        .await
        .unwrap();
        if let Some((prefix, _)) = &self.engines {
            let conn = scanpay::server::redis_conn::RedisConn::connect(
                &crate::common::redis_url(),
                prefix,
            )
            .await
            .unwrap();
            conn.delete_matching(&conn.key("due")).await.unwrap();
            self.ctx.due.repair().await.unwrap();
        }
    }

    /// I2, I3, I4 and "no anomaly": true after every step (four queries, run thousands of times);
    /// and every poll (through the status cache, when there is one) agrees with SQL.
    async fn check(&self) {
        let db = &self.db;
        let orders: Vec<(String, String, Option<String>)> =
            sqlx::query_as(&sql("SELECT id, status, transaction_id FROM orders"))
                .fetch_all(db)
                .await
                .unwrap();
        let wx = self.wechat.0.lock().unwrap().orders.clone();
        for (id, status, txn) in &orders {
            let at_wechat = wx.get(id).map(|w| &w.0);
            match status.as_str() {
                "paid" => assert_eq!(
                    at_wechat,
                    Some(&Wx::Success {
                        txn: txn.clone().unwrap()
                    }),
                    "paid only with WeChat's own transaction ({id})"
                ),
                "closed" => assert!(
                    !matches!(at_wechat, Some(Wx::Success { .. })),
                    "I4: {id} closed while WeChat says SUCCESS"
                ),
                _ => {}
            }
        }
        let paid_twice: Vec<String> = sqlx::query_scalar(&sql("SELECT order_id FROM order_events WHERE kind = 'paid' GROUP BY order_id HAVING COUNT(*) > 1"))
        .fetch_all(db)
        .await
        .unwrap();
        assert!(
            paid_twice.is_empty(),
            "I2: paid more than once: {paid_twice:?}"
        );
        let stock: Vec<(String, i64, i64)> = sqlx::query_as(&sql("SELECT p.sku, p.stock, (SELECT CAST(COALESCE(SUM(i.qty), 0) AS BIGINT) FROM order_items i JOIN orders o ON o.id = i.order_id \
             WHERE i.sku = p.sku AND (o.status IN ('pending', 'closing') OR (o.status = 'paid' AND o.restocked_at IS NULL))) FROM products p"))
        .fetch_all(db)
        .await
        .unwrap();
        for (sku, initial) in SKUS {
            let (_, now, held) = stock.iter().find(|r| r.0 == sku).unwrap();
            assert_eq!(now + held, initial, "I3: stock of {sku} conserved");
        }
        let paid_at_wechat: HashMap<String, (String, i64)> = wx
            .iter()
            .filter_map(|(id, (w, fee))| match w {
                Wx::Success { txn } => Some((id.clone(), (txn.clone(), *fee))),
                _ => None,
            })
            .collect();
        {
            let desk = self.wechat.0.lock().unwrap().refunds.clone();
            model_refunds::check(db, &desk, &paid_at_wechat).await;
        }
        let anomalies: Vec<String> = sqlx::query_scalar(&sql("SELECT kind FROM anomalies"))
            .fetch_all(db)
            .await
            .unwrap();
        assert!(anomalies.is_empty(), "unexpected anomalies {anomalies:?}");
        for (id, status, _) in &orders {
            let polled = scanpay::server::cache::status(&*self.ctx.cache, &self.ctx.store, id)
                .await
                .unwrap()
                .expect("the order");
            assert_eq!(
                polled.status.as_str(),
                status,
                "the poll of {id} agrees with SQL"
            );
        }
    }

    /// Faults stop, every deadline passes, the sweep and the timer run: I1 and I5 must hold.
    async fn settle(&self) {
        {
            let mut m = self.wechat.0.lock().unwrap();
            m.close_faults.clear();
            m.query_faults.clear();
            m.unified_faults.clear();
            for (wx, _) in m.orders.values_mut() {
                if *wx == Wx::NotPay {
                    *wx = Wx::Closed;
                }
            }
        }
        let db = &self.db;
        sqlx::query(&sql("UPDATE orders SET deadline_at = ?"))
            .bind(now_ms() - 1)
            .execute(db)
            .await
            .unwrap();
        self.wechat.0.lock().unwrap().refunds.faults.clear();
        for _ in 0..3 {
            {
                // WeChat answers every refund it holds.
                let mut m = self.wechat.0.lock().unwrap();
                let orders: Vec<String> = m
                    .refunds
                    .refunds
                    .values()
                    .map(|r| r.order.clone())
                    .collect();
                for o in orders {
                    m.refunds.finish(&o, RefundState::Success);
                }
            }
            self.make_due().await;
            timeout::tick(&self.ctx).await.unwrap();
            sweep::pass(&self.ctx).await.unwrap();
            refund::pass(&self.ctx).await.unwrap();
        }
        self.check().await;
        {
            let desk = self.wechat.0.lock().unwrap().refunds.clone();
            model_refunds::check_final(db, &desk).await;
            let (all, ok): (i64, i64) = sqlx::query_as(&sql(
                "SELECT COUNT(*), CAST(COALESCE(SUM(CASE WHEN status = 'success' THEN 1 ELSE 0 END), 0) AS BIGINT) FROM refunds",
            ))
            .fetch_one(db)
            .await
            .unwrap();
            REFUNDS.fetch_add(all as usize, Ordering::Relaxed);
            REFUNDED.fetch_add(ok as usize, Ordering::Relaxed);
        }
        let wx = self.wechat.0.lock().unwrap().orders.clone();
        let orders: Vec<(String, String)> = sqlx::query_as(&sql("SELECT id, status FROM orders"))
            .fetch_all(db)
            .await
            .unwrap();
        for (id, status) in orders {
            let final_ = OrderStatus::parse(&status).unwrap().is_final();
            assert!(
                final_,
                "I5: {id} still {status} after its deadline and a reconciliation period"
            );
            if matches!(wx.get(&id), Some((Wx::Success { .. }, _))) {
                assert_eq!(
                    status, "paid",
                    "I1: WeChat says SUCCESS, so {id} must be paid"
                );
            }
        }
    }
}

struct Lifecycle;

impl StateMachineTest for Lifecycle {
    type SystemUnderTest = Sut;
    type Reference = Model;

    fn init_test(_: &Model) -> Sut {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        // tmpfs when there is one: thousands of cases, each committing many times.
        let dir = match std::path::Path::new("/dev/shm").is_dir() {
            true => tempfile::tempdir_in("/dev/shm").unwrap(),
            false => tempfile::tempdir().unwrap(),
        };
        // SQLite (the default) on tmpfs; another engine on a database of the case's own.
        let engine = scanpay::server::store::testing::engine_under_test();
        let testdb = (engine != "sqlite")
            .then(|| rt.block_on(scanpay::server::store::testing::TestDb::new(&engine)));
        let url = match &testdb {
            Some(t) => t.url.clone(),
            None => format!("sqlite://{}/model.db", dir.path().display()),
        };
        let wechat = Arc::new(Scripted::default());
        let prefix = crate::common::full_engines().then(crate::common::unique_prefix);
        let (ctx, db, consumer) = rt.block_on(boot(&url, wechat.clone(), prefix.as_deref()));
        let engines = prefix.zip(consumer);
        // The catalogue seeds these stock levels; the conservation check relies on them.
        for (sku, stock) in SKUS {
            rt.block_on(
                sqlx::query(&sql("UPDATE products SET stock = ? WHERE sku = ?"))
                    .bind(stock)
                    .bind(sku)
                    .execute(&db),
            )
            .unwrap();
        }
        Sut {
            rt,
            ctx,
            db,
            wechat,
            orders: Vec::new(),
            last_refund: HashMap::new(),
            engines,
            _dir: dir,
            _testdb: testdb,
        }
    }

    fn apply(mut sut: Sut, _: &Model, t: Step) -> Sut {
        let rt = std::mem::replace(
            &mut sut.rt,
            tokio::runtime::Builder::new_current_thread()
                .build()
                .unwrap(),
        );
        rt.block_on(sut.step(t));
        sut.rt = rt;
        sut
    }

    fn check_invariants(sut: &Sut, _: &Model) {
        sut.rt.block_on(sut.check());
    }

    fn teardown(sut: Sut, _: Model) {
        sut.rt.block_on(sut.settle());
        if let Some((prefix, token)) = &sut.engines {
            token.cancel();
            let ttl = sut.ctx.settings.order_ttl.as_secs();
            crate::common::remove_queues_and_keys(
                Some(prefix.clone()),
                Some(prefix.clone()),
                vec![ttl],
            );
        }
    }
}

static LONGEST: AtomicUsize = AtomicUsize::new(0);
/// Place steps run, and orders they placed (the rest refused for stock), over every case.
static PLACE_STEPS: AtomicUsize = AtomicUsize::new(0);
static PLACED: AtomicUsize = AtomicUsize::new(0);
/// Refunds recorded, and those WeChat returned, over every case.
static REFUNDS: AtomicUsize = AtomicUsize::new(0);
static REFUNDED: AtomicUsize = AtomicUsize::new(0);

#[test]
fn order_lifecycle_model() {
    let cases: u32 = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let config = Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config.clone());
    let started = std::time::Instant::now();
    let result = runner.run(&Model::sequential_strategy(1..40), |(init, steps, seen)| {
        LONGEST.fetch_max(steps.len(), Ordering::Relaxed);
        Lifecycle::test_sequential(config.clone(), init, steps, seen);
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
    let (steps, placed) = (
        PLACE_STEPS.load(Ordering::Relaxed),
        PLACED.load(Ordering::Relaxed),
    );
    // Most carts fit the stock: a run whose placings mostly failed tested the flows on nothing.
    assert!(
        placed * 2 >= steps && placed > 0,
        "only {placed} of {steps} placings placed an order"
    );
    let (refunds, refunded) = (
        REFUNDS.load(Ordering::Relaxed),
        REFUNDED.load(Ordering::Relaxed),
    );
    // The refund steps reached refunds (of paid orders) and WeChat's answers reached them.
    assert!(
        cases < 20 || (refunds * 20 >= cases as usize && refunded > 0),
        "only {refunds} refunds ({refunded} returned) in {cases} cases"
    );
    println!(
        "lifecycle model: {cases} cases passed, {placed} of {steps} placings placed, {refunds} refunds ({refunded} returned), longest sequence {} steps, {:.1}s",
        LONGEST.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
}
