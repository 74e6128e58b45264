//! Everything that runs only on the server: configuration, the WeChat Pay client, the sandbox,
//! the store, the order flows and the HTTP wiring.

pub mod bus;
pub mod config;
pub mod http;
pub mod orders;
pub mod qr;
pub mod sandbox;
pub mod session;
pub mod store;
pub mod wxpay;

use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, FromRef};
use axum::routing::{get, post};
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tokio::net::TcpListener;

use crate::app::{shell, App};
use config::Settings;
use sandbox::{Sandbox, SandboxConfig};
use session::SessionKeys;
use wxpay::{Gateway, WxPayClient};

/// Shared by every handler and server function.
pub struct Ctx {
    pub settings: Settings,
    pub db: store::Db,
    pub wxpay: Arc<dyn Gateway>,
    pub bus: bus::PayResultBus,
    pub sandbox: Option<Sandbox>,
}

impl Ctx {
    /// The close flow, wired to this process's store and WeChat Pay client.
    pub fn closer(&self) -> orders::close::Closer<'_> {
        orders::close::Closer {
            db: &self.db,
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
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
}

/// A running scanpay: its address, its shared context and its server task.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub ctx: Arc<Ctx>,
    pub server: tokio::task::JoinHandle<()>,
    workers: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops the server and its background workers (a process crash, as far as they know).
    pub fn abort(&self) {
        self.server.abort();
        for w in &self.workers {
            w.abort();
        }
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
    let db = store::connect(&settings.database_url).await?;
    store::migrate(&db).await?;

    let sandbox = settings.sandbox.then(|| {
        Sandbox::new(SandboxConfig {
            merchants: vec![settings.merchant.clone()],
            payee: settings.shop_name.clone(),
            time_scale: settings.sandbox_time_scale,
            close_floor: settings.sandbox_close_floor,
            faults: settings.sandbox_faults,
        })
    });
    let wxpay: Arc<dyn Gateway> = Arc::new(WxPayClient::new(
        &settings.wxpay_base_url,
        settings.merchant.clone(),
        settings.wxpay_timeout,
    ));
    let bus = bus::PayResultBus::new(db.clone());
    let sessions = Arc::new(SessionKeys::new(
        settings.session_secret.as_ref().map(|k| k.expose()),
        settings.public_url.starts_with("https://"),
    ));
    if settings.session_secret.is_none() {
        tracing::warn!(
            "SCANPAY_SESSION_SECRET is not set: shopper sessions end when this process restarts"
        );
    }
    let ctx = Arc::new(Ctx {
        settings,
        db,
        wxpay,
        bus,
        sandbox,
    });

    let workers = vec![
        tokio::spawn(orders::consumer::run(ctx.bus.clone())),
        tokio::spawn(orders::timeout::run(ctx.clone())),
        tokio::spawn(orders::sweep::run(ctx.clone())),
    ];

    let state = AppState {
        leptos_options,
        ctx: ctx.clone(),
    };
    let app = router(state, sessions);
    let server = tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app.into_make_service()).await {
            tracing::error!(error = %e, "server stopped");
        }
    });
    Ok(Running {
        addr,
        ctx,
        server,
        workers,
    })
}

fn router(state: AppState, sessions: Arc<SessionKeys>) -> Router {
    let routes = generate_route_list(App);
    let pages: Router<AppState> = Router::new()
        .leptos_routes(&state, routes, {
            let options = state.leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler::<AppState, _>(shell))
        .layer(axum::middleware::from_fn_with_state(
            sessions,
            session::layer,
        ));
    let mut app = pages
        .route(
            "/wxpay/notify",
            post(http::notify).layer(DefaultBodyLimit::max(wxpay::xml::MAX_BODY)),
        )
        .route("/healthz", get(http::health))
        .route("/ops/anomalies", get(http::anomalies))
        .route("/ops/orders/{id}", get(http::order_timeline));
    if let Some(sb) = &state.ctx.sandbox {
        app = app.nest(
            "/sandbox",
            sb.router()
                .layer(DefaultBodyLimit::max(wxpay::xml::MAX_BODY)),
        );
    }
    app.with_state(state)
}

/// The `scanpay` binary: settings from Leptos.toml + environment, listen, serve until Ctrl-C/SIGTERM.
pub async fn run() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn,hyper=warn".into()),
        )
        .init();
    let leptos_options = match get_configuration(None) {
        Ok(conf) => conf.leptos_options,
        Err(e) => fail(&format!("leptos configuration: {e}")),
    };
    let settings =
        Settings::load(leptos_options.site_addr).unwrap_or_else(|e| fail(&e.to_string()));
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
    tracing::info!("shutting down");
    running.abort();
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
