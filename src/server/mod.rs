//! Everything that runs only on the server: configuration, the WeChat Pay client, the sandbox,
//! the store, the order flows and the HTTP wiring.

pub mod assets;
pub mod bus;
pub mod cache;
pub mod config;
pub mod http;
pub mod limits;
pub mod orders;
pub mod qr;
pub mod rabbit;
pub mod sandbox;
pub mod session;
pub mod store;
pub mod workers;
pub mod wxpay;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::HeaderValue;
use axum::routing::{get, post};
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::app::{shell, App};
use config::Settings;
use sandbox::{Sandbox, SandboxConfig};
use session::SessionKeys;
use wxpay::{Gateway, WxPayClient};

/// Shared by every handler and server function.
pub struct Ctx {
    pub settings: Settings,
    pub store: store::Store,
    pub wxpay: Arc<dyn Gateway>,
    pub bus: bus::PayResultBus,
    /// RabbitMQ when configured (pay results and deadlines go through it).
    pub rabbit: Option<Arc<rabbit::Rabbit>>,
    pub sandbox: Option<Sandbox>,
    pub workers: workers::Workers,
    pub order_rate: limits::RateLimiter,
    /// Wait before re-sending an uncertain unifiedorder inside the request.
    pub retry_delay: std::time::Duration,
}

impl Ctx {
    /// A context without background workers (tests and tools drive the flows themselves).
    pub fn new(
        settings: Settings,
        store: store::Store,
        wxpay: Arc<dyn Gateway>,
        sandbox: Option<Sandbox>,
    ) -> Self {
        Ctx {
            order_rate: limits::RateLimiter::new(settings.limits.orders_per_minute),
            bus: bus::PayResultBus::embedded(store.clone()),
            rabbit: None,
            settings,
            store,
            wxpay,
            sandbox,
            workers: workers::Workers::default(),
            retry_delay: std::time::Duration::from_millis(200),
        }
    }
}

impl Ctx {
    /// Pay results and deadlines through RabbitMQ instead of the embedded bus.
    pub fn with_rabbit(mut self, r: Arc<rabbit::Rabbit>) -> Self {
        self.bus = bus::PayResultBus::rabbit(r.clone(), self.store.clone());
        self.rabbit = Some(r);
        self
    }

    /// The close flow, wired to this process's store and WeChat Pay client.
    pub fn closer(&self) -> orders::close::Closer<'_> {
        orders::close::Closer {
            store: &self.store,
            wechat: &*self.wxpay,
            close_floor: self.settings.wxpay_close_floor,
            retry_after: self.settings.sweep_interval,
        }
    }
}

#[derive(Clone, FromRef)]
pub struct AppState {
    pub leptos_options: LeptosOptions,
    pub ctx: Arc<Ctx>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot keep the generated session secret in the database: {0}")]
    Secret(sqlx::Error),
    #[error(transparent)]
    Rabbit(#[from] rabbit::RabbitError),
    #[error(transparent)]
    Redis(#[from] cache::CacheError),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
}

/// A running scanpay: its address, its shared context and its server task.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub ctx: Arc<Ctx>,
    pub server: tokio::task::JoinHandle<()>,
    stop_serving: tokio::sync::watch::Sender<bool>,
    served: tokio::sync::watch::Receiver<bool>,
}

impl Running {
    /// Stops the server and its background workers at once (a process crash, as far as they know).
    pub fn abort(&self) {
        self.server.abort();
        self.ctx.workers.abort();
    }

    /// Graceful stop: no new connections, in-flight requests finish and workers finish their
    /// current item, each within `grace`. True when everything finished in time.
    pub async fn shutdown(&self, grace: std::time::Duration) -> bool {
        let _ = self.stop_serving.send(true);
        let deadline = tokio::time::Instant::now() + grace;
        let mut served = self.served.clone();
        let server_done = tokio::time::timeout_at(deadline, served.wait_for(|d| *d))
            .await
            .is_ok();
        let workers_done = self
            .ctx
            .workers
            .shutdown(deadline.saturating_duration_since(tokio::time::Instant::now()))
            .await;
        server_done && workers_done
    }
}

/// Connects, migrates, starts the background workers and serves on `listener`.
pub async fn start(
    settings: Settings,
    leptos_options: LeptosOptions,
    listener: TcpListener,
) -> Result<Running, StartError> {
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Listen(settings.site_addr.to_string(), e))?;
    let mut db = store::connect(&settings.database_url, &settings.database_pool).await?;
    db.migrate().await?;
    if let Some((url, prefix)) = &settings.redis {
        let cache = Arc::new(cache::RedisCache::connect(url, prefix).await?);
        // The index starts as SQL says; the sweep keeps repairing it.
        match cache.repair(|| db.unfinished()).await {
            Ok((added, removed)) => {
                tracing::info!(added, removed, "Redis index of unfinished orders rebuilt")
            }
            Err(e) => tracing::warn!(error = %e, "Redis index not rebuilt; the sweep will"),
        }
        db = db.with_mirror(cache);
    }
    let rabbit = match &settings.amqp {
        Some(s) => Some(Arc::new(rabbit::Rabbit::connect(s.clone()).await?)),
        None => None,
    };
    // Without a configured key, one generated once and kept in the database: every process on it
    // signs alike, and shoppers keep their sessions across restarts.
    let session_secret = match &settings.session_secret {
        Some(k) => k.expose().to_string(),
        None => db
            .generated_secret("session")
            .await
            .map_err(StartError::Secret)?,
    };

    let sandbox = settings.sandbox.then(|| {
        Sandbox::new(SandboxConfig {
            merchants: vec![settings.merchant.clone()],
            payee: settings.shop_name.clone(),
            time_scale: settings.sandbox_time_scale,
            close_floor: settings.sandbox_close_floor,
            min_expire: settings.sandbox_min_expire,
            faults: settings.sandbox_faults,
        })
    });
    let wxpay: Arc<dyn Gateway> = Arc::new(WxPayClient::new(
        &settings.wxpay_base_url,
        settings.merchant.clone(),
        settings.wxpay_timeout,
    ));
    let sessions = Arc::new(SessionKeys::new(
        Some(&session_secret),
        settings.public_url.starts_with("https://"),
    ));
    let mut ctx = Ctx::new(settings, db, wxpay, sandbox);
    if let Some(r) = rabbit {
        ctx = ctx.with_rabbit(r);
    }
    let ctx = Arc::new(ctx);

    if ctx.settings.role.runs_workers() {
        let bus = ctx.bus.clone();
        ctx.workers.supervise("pay_results", move |stop| {
            orders::consumer::run(bus.clone(), stop)
        });
        let c = ctx.clone();
        ctx.workers.supervise("timeouts", move |stop| {
            orders::timeout::run(c.clone(), stop)
        });
        if ctx.rabbit.is_some() {
            let c = ctx.clone();
            ctx.workers.supervise("timeout_queue", move |stop| {
                orders::timeout::run_queue(c.clone(), stop)
            });
        }
        let c = ctx.clone();
        ctx.workers
            .supervise("sweep", move |stop| orders::sweep::run(c.clone(), stop));
    }

    let state = AppState {
        leptos_options,
        ctx: ctx.clone(),
    };
    let app = router(state, sessions);
    let (stop_serving, mut stopping) = tokio::sync::watch::channel(false);
    let (served_tx, served) = tokio::sync::watch::channel(false);
    let server = tokio::spawn(async move {
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            let _ = stopping.wait_for(|s| *s).await;
        })
        .await;
        if let Err(e) = served {
            tracing::error!(error = %e, "server stopped");
        }
        let _ = served_tx.send(true);
    });
    Ok(Running {
        addr,
        ctx,
        server,
        stop_serving,
        served,
    })
}

fn router(state: AppState, sessions: Arc<SessionKeys>) -> Router {
    // Every role answers health and readiness; a worker serves nothing else.
    let probes = Router::new()
        .route("/healthz", get(http::live))
        .route("/readyz", get(http::ready));
    if !state.ctx.settings.role.serves_web() {
        return probes.with_state(state);
    }
    let routes = generate_route_list(App);
    let reload = format!(
        "ws://{}:{}",
        state.leptos_options.site_addr.ip(),
        state.leptos_options.reload_port
    );
    let pages: Router<AppState> = Router::new()
        .leptos_routes(&state, routes, {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn_with_state(
            sessions,
            session::layer,
        ))
        .layer(axum::middleware::from_fn_with_state(
            state.ctx.settings.public_url.clone(),
            http::same_origin,
        ));
    let mut app = pages
        .route(
            "/wxpay/notify",
            post(http::notify).layer(DefaultBodyLimit::max(wxpay::xml::MAX_BODY)),
        )
        .merge(probes)
        .route("/ops/anomalies", get(http::anomalies))
        .route("/ops/orders/{id}", get(http::order_timeline));
    if let Some(sb) = &state.ctx.sandbox {
        app = app.nest(
            "/sandbox",
            sb.router()
                .layer(DefaultBodyLimit::max(wxpay::xml::MAX_BODY)),
        );
    }
    let policy = assets::AssetPolicy {
        pkg_prefix: format!("/{}/", state.leptos_options.site_pkg_dir),
        hashed: state.leptos_options.hash_files,
    };
    // Pages and server-function answers compressed on the fly (the front end's files come
    // precompressed from the build; an answer with a Content-Encoding is left as it is).
    let app = app
        .layer(axum::middleware::from_fn_with_state(policy, assets::layer))
        .layer(tower_http::compression::CompressionLayer::new());
    with_security_headers(app.with_state(state), &reload)
}

/// Headers every answer carries unless a handler set its own: what the page may load and run
/// (Leptos hydrates with inline module scripts and WASM), that no other site may frame it, no
/// MIME sniffing, and no full URL (order ids) leaking to other sites in `Referer`.
fn with_security_headers(app: Router, reload_ws: &str) -> Router {
    use axum::http::header::{
        CONTENT_SECURITY_POLICY, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
    };
    let csp = format!(
        "default-src 'self'; script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'; \
         style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self' {reload_ws}; \
         object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
    );
    let header = |name, value: HeaderValue| SetResponseHeaderLayer::if_not_present(name, value);
    app.layer(header(
        CONTENT_SECURITY_POLICY,
        HeaderValue::from_str(&csp).expect("a valid header value"),
    ))
    .layer(header(X_FRAME_OPTIONS, HeaderValue::from_static("DENY")))
    .layer(header(
        X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ))
    .layer(header(
        REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    ))
}

/// The `scanpay` binary: settings from Leptos.toml + environment, listen, serve until Ctrl-C/SIGTERM.
pub async fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,hyper=warn".into()),
        )
        .init();
    let mut leptos_options = match get_configuration(None) {
        Ok(conf) => conf.leptos_options,
        Err(e) => fail(&format!("leptos configuration: {e}")),
    };
    // A front end built with hashed file names (cargo-leptos `hash-files`) is served by them,
    // unless LEPTOS_HASH_FILES says otherwise.
    if std::env::var_os("LEPTOS_HASH_FILES").is_none() {
        leptos_options.hash_files = assets::hashed_build(&leptos_options.hash_file);
    }
    let mut settings =
        Settings::load(leptos_options.site_addr).unwrap_or_else(|e| fail(&e.to_string()));
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("purge-engines") {
        if args.get(1).map(String::as_str) != Some("--yes") || args.len() > 2 {
            fail("usage: scanpay purge-engines --yes (deletes this deployment's RabbitMQ queues and Redis keys)");
        }
        return purge_engines(settings).await;
    }
    if args.first().map(String::as_str) == Some("sandbox") {
        if args.len() > 1 {
            fail("usage: scanpay sandbox (settings come from the environment, see README)");
        }
        return run_sandbox(settings).await;
    }
    settings.role = role_from_args(args).unwrap_or_else(|e| fail(&e));
    let addr = settings.site_addr;
    let listener = TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| fail(&format!("cannot listen on {addr}: {e}")));
    let running = start(settings, leptos_options, listener)
        .await
        .unwrap_or_else(|e| fail(&e.to_string()));
    tracing::info!(
        "scanpay listening on http://{} (WeChat Pay: {}{})",
        running.addr,
        running.ctx.settings.wxpay_base_url,
        if running.ctx.sandbox.is_some() {
            ", sandbox mounted at /sandbox/"
        } else {
            ""
        }
    );
    shutdown_signal().await;
    let grace = running.ctx.settings.shutdown_grace;
    tracing::info!(
        grace_ms = grace.as_millis() as u64,
        "shutting down: finishing in-flight work"
    );
    if running.shutdown(grace).await {
        tracing::info!("stopped cleanly");
    } else {
        tracing::warn!("stopped with work still running after the grace period");
    }
}

/// `scanpay purge-engines --yes`: deletes every RabbitMQ queue and exchange and every Redis key
/// under the configured prefixes (taking a deployment down for good, or after a test run).
async fn purge_engines(settings: Settings) {
    if let Some(s) = &settings.amqp {
        let rabbit = rabbit::Rabbit::connect(s.clone())
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
        // Deadlines are published a few milliseconds after placing: their delay rounds up to the
        // order time, or just under it.
        let ttl = settings.order_ttl.as_millis().div_ceil(1000) as u64;
        rabbit
            .delete_topology(&[ttl, ttl.saturating_sub(1).max(1)])
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
        tracing::info!(prefix = %s.prefix, "RabbitMQ queues and exchanges deleted");
    }
    if let Some((url, prefix)) = &settings.redis {
        let cache = cache::RedisCache::connect(url, prefix)
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
        let n = cache
            .delete_all()
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
        tracing::info!(%prefix, keys = n, "Redis keys deleted");
    }
}

/// `scanpay sandbox`: the WeChat Pay simulator as its own process, at `<LEPTOS_SITE_ADDR>/sandbox/`
/// (point the app's `SCANPAY_WXPAY_BASE_URL` there). It signs with the configured merchant.
async fn run_sandbox(settings: Settings) {
    let sb = Sandbox::new(SandboxConfig {
        merchants: vec![settings.merchant.clone()],
        payee: settings.shop_name.clone(),
        time_scale: settings.sandbox_time_scale,
        close_floor: settings.sandbox_close_floor,
        min_expire: settings.sandbox_min_expire,
        faults: settings.sandbox_faults.clone(),
    });
    let app: Router = Router::new()
        .nest(
            "/sandbox",
            sb.router()
                .layer(DefaultBodyLimit::max(wxpay::xml::MAX_BODY)),
        )
        .route("/healthz", get(http::live));
    let addr = settings.site_addr;
    let listener = TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| fail(&format!("cannot listen on {addr}: {e}")));
    tracing::info!("WeChat Pay sandbox listening on http://{addr}/sandbox/");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    if let Err(e) = served {
        fail(&format!("sandbox stopped: {e}"));
    }
}

/// `--role web|worker|all` (or `--role=…`); anything else on the command line is refused.
pub fn role_from_args(args: impl IntoIterator<Item = String>) -> Result<config::Role, String> {
    let mut role = config::Role::All;
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let value = match a.strip_prefix("--role=") {
            Some(v) => v.to_string(),
            None if a == "--role" => args.next().ok_or("--role needs web, worker or all")?,
            None => return Err(format!(
                "unknown argument {a:?}; usage: scanpay [--role web|worker|all] | scanpay sandbox | scanpay purge-engines --yes"
            )),
        };
        role = config::Role::parse(&value)?;
    }
    Ok(role)
}

fn fail(msg: &str) -> ! {
    eprintln!("scanpay: {msg}");
    std::process::exit(2);
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = ctrl_c => {}
        _ = term.recv() => {}
    }
}
