//! Start-up: connect, migrate, choose each seam's implementation, start the jobs, serve. Returns
//! a handle (`Running`) that tests drive too: port 0, a fresh database, their own engines.

use std::sync::Arc;
use std::time::Duration;

use leptos::prelude::LeptosOptions;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::server::amqp::{Rabbit, RabbitError};
use crate::server::config::{self, Settings};
use crate::server::orders;
use crate::server::redis_conn::{RedisConn, RedisError};
use crate::server::sandbox::{Sandbox, SandboxConfig};
use crate::server::state::{AppState, Ctx};
use crate::server::store::{self, StoreError};
use crate::server::support::session::SessionKeys;
use crate::server::wxpay::{Gateway, WxPayClient};

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot keep the generated session secret in the database: {0}")]
    Secret(sqlx::Error),
    #[error(transparent)]
    Rabbit(#[from] RabbitError),
    #[error(transparent)]
    Redis(#[from] RedisError),
    #[error("cannot listen on {0}: {1}")]
    Listen(String, std::io::Error),
    #[error("the WeChat Pay client: {0}")]
    WeChatClient(String),
}

/// A running scanpay: its address, its shared context and its server task.
pub struct Running {
    pub addr: std::net::SocketAddr,
    pub ctx: Arc<Ctx>,
    pub server: tokio::task::JoinHandle<()>,
    stop_serving: CancellationToken,
    served: CancellationToken,
}

impl Running {
    /// Stops the server and its background jobs at once (a process crash, as far as they know).
    pub fn abort(&self) {
        self.server.abort();
        self.ctx.jobs.abort();
    }

    /// Graceful stop: no new connections, in-flight requests finish and jobs finish their
    /// current item, each within `grace`. True when everything finished in time.
    pub async fn shutdown(&self, grace: Duration) -> bool {
        self.stop_serving.cancel();
        let deadline = tokio::time::Instant::now() + grace;
        let server_done = tokio::time::timeout_at(deadline, self.served.cancelled())
            .await
            .is_ok();
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let jobs_done = self.ctx.jobs.shutdown(left).await;
        server_done && jobs_done
    }
}

pub fn sandbox_config(settings: &Settings) -> SandboxConfig {
    SandboxConfig {
        merchants: vec![settings.merchant.clone()],
        payee: settings.shop_name.clone(),
        time_scale: settings.sandbox_time_scale,
        // Proposed setting: SCANPAY_SANDBOX_REFUND_DELAY (scaled by the time scale).
        refund_delay: settings.sandbox_refund_delay,
        bill_ready_after: settings.sandbox_bill_ready_after,
        require_client_cert: settings
            .sandbox_tls
            .as_ref()
            .is_some_and(|t| t.client_ca_pem.is_some()),
        close_floor: settings.sandbox_close_floor,
        min_expire: settings.sandbox_min_expire,
        faults: settings.sandbox_faults,
        v3: Some(Arc::new(sandbox_v3(settings))),
    }
}

/// The sandbox's v3 side: the merchant as configured (its key's public half, its serial, its
/// APIv3 key — the throwaway ones unless the shop speaks v3 with its own), in the configured mode.
fn sandbox_v3(settings: &Settings) -> crate::server::sandbox::v3::SandboxV3 {
    use crate::server::sandbox::v3::{SandboxV3, V3Merchant};
    let v = &settings.wxpay_v3;
    let merchant = V3Merchant {
        mchid: settings.merchant.mch_id.clone(),
        appid: settings.merchant.appid.clone(),
        serial_no: v.signer.serial_no.clone(),
        key: v.signer.verifying_key(),
        apiv3_key: v.apiv3_key.clone(),
    };
    SandboxV3::generate(vec![merchant], settings.sandbox_v3_mode)
}

/// The payment provider the settings choose (`wxpay_api`): the v2 or the v3 client, noting its
/// calls in `oplog`. With the in-process sandbox and no WeChat Pay public key configured, v3
/// trusts the sandbox's public key (known here) or, in its certificate mode, fetches its
/// certificates as from WeChat.
pub fn gateway(
    settings: &Settings,
    sandbox: Option<&Sandbox>,
    oplog: crate::server::oplog::OpLog,
) -> Result<Arc<dyn Gateway>, String> {
    use crate::server::config::WxPayApi;
    use crate::server::sandbox::v3::V3Mode;
    if settings.wxpay_api == WxPayApi::V2 {
        return Ok(Arc::new(wechat_client(settings)?.with_oplog(oplog)));
    }
    let v = &settings.wxpay_v3;
    // The in-process sandbox's key only when it is the one called (never beside WeChat).
    let own_sandbox =
        sandbox.filter(|_| settings.wxpay_base_url == format!("{}/sandbox/", settings.public_url));
    let public_key = match (&v.public_key, own_sandbox.and_then(|s| s.v3())) {
        (Some(k), _) => Some(k.clone()),
        (None, Some(sb)) if sb.mode != V3Mode::Certificate => {
            Some((sb.public_key.id.clone(), sb.public_key.public_pem.clone()))
        }
        (None, _) => None,
    };
    // A sandbox in another process (any base that is not WeChat's), no key configured.
    let ask_sandbox = public_key.is_none()
        && sandbox.is_none()
        && !crate::server::config::is_wechat_host(&settings.wxpay_base_url);
    let client = crate::server::wxpay::v3::V3Client::new(
        &settings.wxpay_base_url,
        &settings.merchant.appid,
        v.signer.clone(),
        v.apiv3_key.clone(),
        public_key,
        settings.wxpay_timeout,
        settings.wxpay_tls.extra_root_pem.as_deref(),
    )?;
    let client = if ask_sandbox {
        client.asking_the_sandbox_for_its_keys()
    } else {
        client
    };
    Ok(Arc::new(client.with_oplog(oplog)))
}

/// The v2 client the settings describe (base URL, merchant, time limit, TLS material).
pub fn wechat_client(settings: &Settings) -> Result<WxPayClient, String> {
    WxPayClient::with_tls(
        &settings.wxpay_base_url,
        settings.merchant.clone(),
        settings.wxpay_timeout,
        &settings.wxpay_tls,
    )
}

/// Connects, migrates, starts the background jobs and serves on `listener`. Redis or RabbitMQ
/// away is not a reason to stay down: the process starts degraded and connects in the background.
pub async fn start(
    settings: Settings,
    leptos_options: LeptosOptions,
    listener: TcpListener,
) -> Result<Running, StartError> {
    settings.check_role()?;
    // The metrics recorder, before anything is counted.
    crate::server::support::metrics::handle();
    let addr = listener
        .local_addr()
        .map_err(|e| StartError::Listen(settings.site_addr.to_string(), e))?;
    let db = store::connect(&settings.database_url, &settings.database_pool).await?;
    db.migrate().await?;
    let redis = match &settings.redis {
        Some((url, prefix)) => Some(Arc::new(RedisConn::connect(url, prefix).await?)),
        None => None,
    };
    let rabbit = match &settings.amqp {
        Some(s) => Some(Arc::new(Rabbit::connect(s.clone()).await?)),
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
    // Mounted here, the sandbox is served over this process's plain HTTP: no client certificate
    // can reach it (mutual TLS is `scanpay sandbox`'s).
    let sandbox = settings.sandbox.then(|| {
        Sandbox::new(SandboxConfig {
            require_client_cert: false,
            ..sandbox_config(&settings)
        })
    });
    let oplog = crate::server::oplog::OpLog::start(db.clone());
    let wxpay =
        gateway(&settings, sandbox.as_ref(), oplog.clone()).map_err(StartError::WeChatClient)?;
    let sessions = Arc::new(SessionKeys::new(
        Some(&session_secret),
        settings.public_url.starts_with("https://"),
    ));
    let mut ctx = Ctx::new(settings, db, wxpay, sandbox);
    ctx.oplog = oplog;
    if let Some(r) = rabbit {
        ctx = ctx.with_rabbit(r);
    }
    if let Some(c) = redis {
        ctx = ctx.with_redis(c);
    }
    let ctx = Arc::new(ctx);
    start_jobs(&ctx).await;

    let state = AppState {
        leptos_options: Arc::new(leptos_options),
        ctx: ctx.clone(),
    };
    let app = crate::server::http::router(state, sessions);
    let (stop_serving, served) = (CancellationToken::new(), CancellationToken::new());
    let server = tokio::spawn({
        let (stop, served) = (stop_serving.clone(), served.clone());
        async move {
            let result = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<std::net::SocketAddr>(),
            )
            .with_graceful_shutdown(stop.cancelled_owned())
            .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "server stopped");
            }
            served.cancel();
        }
    });
    Ok(Running {
        addr,
        ctx,
        server,
        stop_serving,
        served,
    })
}

/// Every role keeps its metrics folded and repairs the status entries it could not write; workers consume pay results, act
/// on deadlines and sweep.
async fn start_jobs(ctx: &Arc<Ctx>) {
    if ctx.due.enabled() && ctx.settings.role.runs_workers() {
        // The index starts as SQL says; the sweep keeps repairing it.
        match tokio::time::timeout(Duration::from_secs(5), ctx.due.repair()).await {
            Ok(Ok((added, removed))) => {
                tracing::info!(added, removed, "due index rebuilt from SQL")
            }
            _ => tracing::warn!("due index not rebuilt at start-up; the sweep will"),
        }
    }
    // Housekeeping, not a worker: not listed among the jobs readiness reports.
    tokio::spawn(crate::server::support::metrics::run_upkeep(
        Duration::from_secs(5),
        ctx.jobs.token().clone(),
    ));
    if ctx.cache.enabled() {
        let c = ctx.clone();
        ctx.jobs.supervise("cache_repair", move |token| {
            crate::server::cache::run_repair(
                c.cache.clone(),
                c.store.clone(),
                Duration::from_secs(1),
                token,
            )
        });
    }
    if !ctx.settings.role.runs_workers() {
        return;
    }
    let c = ctx.clone();
    ctx.jobs.supervise("pay_results", move |token| {
        orders::consume::run(c.clone(), token)
    });
    let c = ctx.clone();
    ctx.jobs.supervise("timeouts", move |token| {
        orders::timeout::run(c.clone(), token)
    });
    let c = ctx.clone();
    ctx.jobs
        .supervise("sweep", move |token| orders::sweep::run(c.clone(), token));
    let c = ctx.clone();
    ctx.jobs.supervise("reconcile", move |token| {
        orders::reconcile::run(c.clone(), token)
    });
}
