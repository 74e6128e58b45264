//! The status cache the 3-second polls read: `none` (every poll reads SQL) or `redis`. It is a
//! read-through cache with SQL as the truth:
//!
//! - `changed(row)` after every commit that changes an order (the flows' after-commit hook);
//!   states only move forward, so a late writer never replaces a later state;
//! - an entry this process could not write (Redis away) is remembered as dirty: a miss here
//!   until it is rewritten, and rewritten by `repair`, which every role runs (`run_repair`), so
//!   what a process marked is repaired by that process. An id leaves the dirty set only once
//!   rewritten;
//! - other processes may still read an entry that a dirty write left stale: unfinished orders'
//!   entries expire after one reconciliation period, so a stale one cannot outlive it.
//!
//! `status` is the one read path: the cache, else SQL (and the answer written back).

pub mod contract;
pub mod none;
pub mod redis;

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::app::types::{OrderStatus, StatusView};
use crate::server::domain::{pay_by, OrderRow};
use crate::server::store::Store;
use crate::server::support::BoxFuture;

/// What a status poll needs to answer, without SQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedStatus {
    pub session_id: String,
    pub status: OrderStatus,
    /// When WeChat stops taking payment (its `time_expire`), epoch ms.
    pub pay_by: i64,
    pub qr_ready: bool,
}

impl CachedStatus {
    pub fn of(row: &OrderRow) -> Self {
        CachedStatus {
            session_id: row.session_id.clone(),
            status: row.status,
            pay_by: pay_by(row.created_at, row.deadline_at),
            qr_ready: row.code_url.is_some(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The cache did not answer: callers use SQL.
    #[error("status cache unavailable: {0}")]
    Unavailable(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

pub trait StatusCache: Send + Sync {
    /// False for `none`: the after-commit hook then skips reading rows back for it.
    fn enabled(&self) -> bool;

    /// The cached status, if any; a miss for an entry this process marked dirty.
    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<CachedStatus>, CacheError>>;

    /// Writes what the order is now (just committed). Never fails: an entry that could not be
    /// written is marked dirty.
    fn changed<'a>(&'a self, row: &'a OrderRow) -> BoxFuture<'a, ()>;

    /// Marks an entry stale without writing it (its order changed but could not be read back).
    fn mark_stale(&self, id: &str);

    /// Rewrites every entry marked dirty from SQL; how many. Stops at the first failure, leaving
    /// that one and the rest marked.
    fn repair<'a>(&'a self, store: &'a Store) -> BoxFuture<'a, Result<usize, CacheError>>;

    /// How many entries wait to be rewritten.
    fn dirty(&self) -> usize;

    /// None without a cache; else whether it answers now.
    fn health(&self) -> BoxFuture<'_, Option<bool>>;
}

/// The poll's read: the cache, else SQL, writing the answer back on a miss.
pub async fn status(
    cache: &dyn StatusCache,
    store: &Store,
    id: &str,
) -> Result<Option<CachedStatus>, sqlx::Error> {
    if let Ok(Some(hit)) = cache.get(id).await {
        return Ok(Some(hit));
    }
    let Some(row) = store.load(id).await? else {
        return Ok(None);
    };
    cache.changed(&row).await;
    Ok(Some(CachedStatus::of(&row)))
}

/// The checkout's poll: the order's status if it exists and belongs to `session` (None for an
/// id out of shape, unknown or another session's: the caller cannot tell which). One
/// definition for the server function and for its fast path (`http::poll`).
pub async fn poll(
    cache: &dyn StatusCache,
    store: &Store,
    session: &str,
    id: &str,
) -> Result<Option<StatusView>, sqlx::Error> {
    if id.is_empty() || id.len() > 32 {
        return Ok(None);
    }
    Ok(match status(cache, store, id).await? {
        Some(c) if c.session_id == session => Some(StatusView {
            status: c.status,
            remaining_ms: (c.pay_by - crate::server::support::clock::now_ms()).max(0),
            qr_ready: c.qr_ready,
        }),
        _ => None,
    })
}

/// Repairs what this process marked dirty, every `every` while there is any (every role runs it:
/// web processes mark entries too). Ends when `token` is cancelled.
pub async fn run_repair(
    cache: Arc<dyn StatusCache>,
    store: Store,
    every: Duration,
    token: CancellationToken,
) {
    loop {
        if cache.dirty() > 0 {
            match cache.repair(&store).await {
                Ok(0) => {}
                Ok(n) => {
                    tracing::info!(rewritten = n, left = cache.dirty(), "status cache repaired")
                }
                Err(e) => tracing::debug!(error = %e, "status cache not repaired yet"),
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = token.cancelled() => return,
        }
    }
}
