//! The `scanpay` binary's command line: serve (`--role web|worker|all`), `scanpay sandbox` (the
//! WeChat Pay simulator as its own process), `scanpay operator …` (console accounts),
//! `scanpay reconcile --date …` (the daily reconciliation, now) and
//! `scanpay purge-engines --yes`.

mod operator;
mod reconcile;

use axum::routing::get;
use axum::Router;
use leptos::prelude::get_configuration;
use tokio::net::TcpListener;

use crate::server::amqp::Rabbit;
use crate::server::config::{Role, Settings};
use crate::server::http::{assets, probes};
use crate::server::redis_conn::RedisConn;
use crate::server::sandbox::{tls, Sandbox};
use crate::server::startup::{sandbox_config, start};

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
    if args.first().map(String::as_str) == Some("operator") {
        let cmd = operator::parse(&args[1..]).unwrap_or_else(|e| fail(&e));
        match operator::run(&settings, cmd).await {
            Ok(done) => return println!("{done}"),
            Err(e) => fail(&e),
        }
    }
    if args.first().map(String::as_str) == Some("reconcile") {
        let date = reconcile::parse(&args[1..], crate::server::support::clock::now_ms())
            .unwrap_or_else(|e| fail(&e));
        match reconcile::run(settings, &date).await {
            Ok(json) => return println!("{json}"),
            Err((out, code)) => {
                println!("{out}");
                std::process::exit(code);
            }
        }
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
        let rabbit = Rabbit::connect(s.clone())
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
        if !rabbit.is_up() {
            fail("SCANPAY_AMQP_URL: RabbitMQ does not answer; nothing was deleted");
        }
        rabbit
            .delete_topology(&[settings.order_ttl.as_secs()])
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
        tracing::info!(prefix = %s.prefix, "RabbitMQ queues and exchanges deleted");
    }
    if let Some((url, prefix)) = &settings.redis {
        let conn = RedisConn::connect(url, prefix)
            .await
            .unwrap_or_else(|e| fail(&e.to_string()));
        let n = conn
            .delete_all()
            .await
            .unwrap_or_else(|e| fail(&format!("SCANPAY_REDIS_URL: {e}; nothing was deleted")));
        tracing::info!(%prefix, keys = n, "Redis keys deleted");
    }
}

/// `scanpay sandbox`: the WeChat Pay simulator as its own process, at `<LEPTOS_SITE_ADDR>/sandbox/`
/// (point the app's `SCANPAY_WXPAY_BASE_URL` there). It signs with the configured merchant.
async fn run_sandbox(settings: Settings) {
    let sb = Sandbox::new(sandbox_config(&settings));
    let app: Router = Router::new()
        .merge(sb.mounted())
        .route("/healthz", get(probes::live));
    let addr = settings.site_addr;
    let listener = TcpListener::bind(addr)
        .await
        .unwrap_or_else(|e| fail(&format!("cannot listen on {addr}: {e}")));
    if let Some(files) = &settings.sandbox_tls {
        let config = tls::server_config(files).unwrap_or_else(|e| fail(&e));
        let mtls = if files.client_ca_pem.is_some() {
            ", secapi/ with mutual TLS"
        } else {
            ""
        };
        tracing::info!("WeChat Pay sandbox listening on https://{addr}/sandbox/{mtls}");
        let stop = tokio_util::sync::CancellationToken::new();
        let serving = tokio::spawn(tls::serve(listener, app, config, stop.clone()));
        shutdown_signal().await;
        stop.cancel();
        let _ = serving.await;
        return;
    }
    tracing::info!("WeChat Pay sandbox listening on http://{addr}/sandbox/");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    if let Err(e) = served {
        fail(&format!("sandbox stopped: {e}"));
    }
}

/// `--role web|worker|all` (or `--role=…`); anything else on the command line is refused.
pub fn role_from_args(args: impl IntoIterator<Item = String>) -> Result<Role, String> {
    let mut role = Role::All;
    let mut args = args.into_iter();
    while let Some(a) = args.next() {
        let value = match a.strip_prefix("--role=") {
            Some(v) => v.to_string(),
            None if a == "--role" => args.next().ok_or("--role needs web, worker or all")?,
            None => return Err(format!(
                "unknown argument {a:?}; usage: scanpay [--role web|worker|all] | scanpay sandbox | scanpay operator add|disable … | scanpay purge-engines --yes"
            )),
        };
        role = Role::parse(&value)?;
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
