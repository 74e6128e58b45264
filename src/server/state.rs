//! `Ctx`: what every handler, server function and flow shares — the settings, the store, and one
//! implementation per seam, chosen at start-up from the configuration. Nothing outside this file
//! and `startup` knows which implementation runs.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::FromRef;
use leptos::prelude::LeptosOptions;

use crate::server::amqp::Rabbit;
use crate::server::bus::{self, PayResults};
use crate::server::cache::{self, StatusCache};
use crate::server::config::Settings;
use crate::server::jobs::Jobs;
use crate::server::redis_conn::RedisConn;
use crate::server::sandbox::Sandbox;
use crate::server::schedule::{self, Deadlines, DueIndex};
use crate::server::store::Store;
use crate::server::support::limits::RateLimiter;
use crate::server::wxpay::Gateway;

pub struct Ctx {
    pub settings: Settings,
    pub store: Store,
    pub wxpay: Arc<dyn Gateway>,
    /// Where verified pay results go before WeChat is told SUCCESS.
    pub bus: Arc<dyn PayResults>,
    /// When pending orders' deadlines come.
    pub deadlines: Arc<dyn Deadlines>,
    /// Which unfinished orders the sweep checks next.
    pub due: Arc<dyn DueIndex>,
    /// What the status polls read.
    pub cache: Arc<dyn StatusCache>,
    pub sandbox: Option<Sandbox>,
    pub jobs: Jobs,
    /// Orders placed per minute per client address.
    pub order_rate: RateLimiter,
    /// Cancels per minute per session and per client address.
    pub cancel_rate: RateLimiter,
    /// Wait before re-sending an uncertain unifiedorder inside the request.
    pub retry_delay: Duration,
    /// The notifies received, for the console (the client notes its own calls).
    pub oplog: crate::server::oplog::OpLog,
}

impl Ctx {
    /// The embedded defaults: the inbox bus, the SQL schedule, no status cache. No background
    /// jobs run until started (tests and tools drive the flows themselves).
    pub fn new(
        settings: Settings,
        store: Store,
        wxpay: Arc<dyn Gateway>,
        sandbox: Option<Sandbox>,
    ) -> Self {
        Ctx {
            order_rate: RateLimiter::new(settings.limits.orders_per_minute),
            cancel_rate: RateLimiter::new(settings.limits.cancels_per_minute),
            bus: Arc::new(bus::inbox::InboxBus::new(store.clone())),
            deadlines: Arc::new(schedule::sql::SqlDeadlines::new(
                store.clone(),
                settings.sweep_concurrency,
            )),
            due: Arc::new(schedule::sql::SqlDueIndex::new(store.clone())),
            cache: Arc::new(cache::none::NoCache),
            settings,
            store,
            wxpay,
            sandbox,
            jobs: Jobs::default(),
            retry_delay: Duration::from_millis(200),
            oplog: Default::default(),
        }
    }

    /// One reconciliation period: four sweep intervals.
    pub fn reconciliation_period(&self) -> Duration {
        self.settings.sweep_interval * 4
    }

    /// Pay results and deadlines through RabbitMQ; the SQL deadline poller stays on, one
    /// reconciliation period behind, as the safety net.
    pub fn with_rabbit(mut self, rabbit: Arc<Rabbit>) -> Self {
        self.bus = Arc::new(bus::amqp::AmqpBus::new(rabbit.clone(), self.store.clone()));
        let net =
            schedule::sql::SqlDeadlines::new(self.store.clone(), self.settings.sweep_concurrency)
                .behind(self.reconciliation_period(), self.settings.sweep_interval);
        self.deadlines = Arc::new(schedule::amqp_delay::AmqpDeadlines::new(
            rabbit,
            self.settings.order_ttl,
            net,
        ));
        self
    }

    /// The status cache and the due index in Redis.
    pub fn with_redis(mut self, conn: Arc<RedisConn>) -> Self {
        self.cache = Arc::new(cache::redis::RedisCache::new(
            conn.clone(),
            self.reconciliation_period(),
        ));
        self.due = Arc::new(schedule::redis::RedisDueIndex::new(
            conn,
            self.store.clone(),
            self.settings.sweep_interval.as_millis() as i64,
        ));
        self
    }
}

/// The router's state. Every request clones it (each route's service carries a copy), so it is
/// two pointers: the Leptos options behind an `Arc` are copied out only where a page asks.
#[derive(Clone)]
pub struct AppState {
    pub leptos_options: Arc<LeptosOptions>,
    pub ctx: Arc<Ctx>,
}

impl FromRef<AppState> for LeptosOptions {
    fn from_ref(state: &AppState) -> Self {
        (*state.leptos_options).clone()
    }
}

impl FromRef<AppState> for Arc<Ctx> {
    fn from_ref(state: &AppState) -> Self {
        state.ctx.clone()
    }
}
