//! Redis (`SCANPAY_REDIS_URL`): the index of unfinished orders and the status cache. SQL stays the
//! truth; everything here is rebuilt from it and repaired by the sweep, and when Redis does not
//! answer the callers fall back to SQL (logged once per outage, shown in `/readyz`).
//!
//! Keys, all under `SCANPAY_REDIS_PREFIX` (`scanpay` unless set):
//! - `{p}:due` — sorted set of unfinished order ids scored by next-check time (epoch ms). The
//!   claim is one Lua script: take the due ids and push each one's score to a lease, so of N
//!   workers each due order goes to exactly one, and an order whose worker dies comes back.
//! - `{p}:attempts` — hash: checks made of each indexed order (the sweep's backoff).
//! - `{p}:status:{id}` — hash: what the 3-second poll answers, written after every commit that
//!   changes the order, never older than what is there (states only move forward).

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::{AsyncCommands, Script};
use serde::{Deserialize, Serialize};

use crate::app::types::OrderStatus;
use crate::server::orders::state::OrderRow;

/// How long a cached status lives without being rewritten.
const STATUS_TTL: Duration = Duration::from_secs(24 * 3600);
/// Longest wait for one Redis command before falling back to SQL.
const COMMAND_TIMEOUT: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("SCANPAY_REDIS_URL={url}: {why}")]
    Connect { url: String, why: String },
    #[error("Redis: {0}")]
    Redis(#[from] ::redis::RedisError),
    #[error("Redis did not answer within {0:?}")]
    Timeout(Duration),
}

/// What a status poll needs to answer, without SQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedStatus {
    pub session_id: String,
    pub status: OrderStatus,
    /// When WeChat stops taking payment (its `time_expire`), epoch ms.
    pub pay_by: i64,
    pub qr_ready: bool,
}

/// States only move forward: a late writer never replaces a later state.
fn rank(row: &OrderRow) -> i64 {
    match row.status {
        OrderStatus::Pending if row.code_url.is_some() => 1,
        OrderStatus::Pending => 0,
        OrderStatus::Closing => 2,
        _ => 3,
    }
}

fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(COMMAND_TIMEOUT))
        .set_response_timeout(Some(COMMAND_TIMEOUT))
        .set_number_of_retries(1)
        .set_max_delay(Duration::from_secs(1))
}

pub struct RedisCache {
    /// Replaced by a fresh one when commands keep failing (see `run`).
    conn: std::sync::Mutex<ConnectionManager>,
    client: ::redis::Client,
    /// When the connection was last replaced.
    replaced_at: std::sync::Mutex<std::time::Instant>,
    prefix: String,
    up: AtomicBool,
    /// Set when Redis answers again after an outage: the index missed writes, repair it.
    recovered: AtomicBool,
    /// Orders whose change could not be written here (Redis was away): rewritten from SQL once
    /// it is back, so no poll reads a stale status.
    dirty: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Most orders remembered as dirty; past it, recovery drops every cached status instead.
const DIRTY_LIMIT: usize = 100_000;

impl RedisCache {
    /// Connects; at start-up an unreachable server or a malformed URL is an error naming
    /// `SCANPAY_REDIS_URL`. Later outages are reconnected in the background.
    pub async fn connect(url: &str, prefix: &str) -> Result<RedisCache, CacheError> {
        let named = |why: String| CacheError::Connect {
            url: crate::server::store::redact(url),
            why,
        };
        let client = ::redis::Client::open(url).map_err(|e| named(e.to_string()))?;
        let conn = ConnectionManager::new_with_config(client.clone(), manager_config())
            .await
            .map_err(|e| named(format!("cannot connect: {e}")))?;
        let cache = RedisCache {
            conn: std::sync::Mutex::new(conn),
            client,
            replaced_at: std::sync::Mutex::new(std::time::Instant::now()),
            prefix: prefix.to_string(),
            up: AtomicBool::new(true),
            recovered: AtomicBool::new(false),
            dirty: Default::default(),
        };
        cache.ping().await.map_err(|e| named(e.to_string()))?;
        Ok(cache)
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Relaxed)
    }

    /// True once after Redis came back from an outage.
    pub fn take_recovered(&self) -> bool {
        self.recovered.swap(false, Ordering::Relaxed)
    }

    /// Remembers an order whose change did not reach Redis.
    pub fn mark_dirty(&self, id: &str) {
        let mut d = self.dirty.lock().unwrap();
        if d.len() < DIRTY_LIMIT {
            d.insert(id.to_string());
        } else {
            d.insert(String::new()); // the marker: too many to track, drop every status
        }
    }

    /// After an outage: rewrites what changed meanwhile (`load` reads an order and its next
    /// check from SQL), then repairs the index. Returns how many orders were rewritten.
    pub async fn recover<L, LF, U, UF>(&self, load: L, unfinished: U) -> Result<usize, String>
    where
        L: Fn(String) -> LF,
        LF: std::future::Future<Output = Result<Option<OrderRow>, sqlx::Error>>,
        U: FnOnce() -> UF,
        UF: std::future::Future<Output = Result<Vec<(String, i64)>, sqlx::Error>>,
    {
        let dirty: Vec<String> = std::mem::take(&mut *self.dirty.lock().unwrap())
            .into_iter()
            .collect();
        if dirty.iter().any(String::is_empty) {
            let mut c = self.conn();
            let pattern = self.key("status:*");
            let keys: Vec<String> = self
                .run(async move { c.keys(pattern).await })
                .await
                .map_err(|e| e.to_string())?;
            for chunk in keys.chunks(500) {
                let mut c = self.conn();
                let chunk = chunk.to_vec();
                self.run(async move { c.del::<_, ()>(chunk).await })
                    .await
                    .map_err(|e| e.to_string())?;
            }
        }
        let mut rewritten = 0;
        for id in dirty.iter().filter(|id| !id.is_empty()) {
            match load(id.clone()).await {
                Ok(Some(row)) => {
                    if let Err(e) = self.mirror(&row).await {
                        self.mark_dirty(id);
                        return Err(e.to_string());
                    }
                    rewritten += 1;
                }
                Ok(None) => {}
                Err(e) => {
                    self.mark_dirty(id);
                    return Err(e.to_string());
                }
            }
        }
        self.repair(unfinished).await?;
        Ok(rewritten)
    }

    fn conn(&self) -> ConnectionManager {
        self.conn.lock().unwrap().clone()
    }

    /// A fresh connection after failures (at most once a second): the manager's own reconnects
    /// can give up for good after a long outage.
    async fn replace_connection(&self) {
        {
            let mut at = self.replaced_at.lock().unwrap();
            if at.elapsed() < Duration::from_secs(1) {
                return;
            }
            *at = std::time::Instant::now();
        }
        let fresh = tokio::time::timeout(
            COMMAND_TIMEOUT,
            ConnectionManager::new_with_config(self.client.clone(), manager_config()),
        )
        .await;
        if let Ok(Ok(conn)) = fresh {
            *self.conn.lock().unwrap() = conn;
        }
    }

    fn key(&self, k: &str) -> String {
        format!("{}:{k}", self.prefix)
    }

    /// Runs one Redis call with a deadline, noting outages and recoveries.
    async fn run<T, F>(&self, f: F) -> Result<T, CacheError>
    where
        F: std::future::Future<Output = Result<T, ::redis::RedisError>>,
    {
        let r = match tokio::time::timeout(COMMAND_TIMEOUT, f).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(CacheError::Redis(e)),
            Err(_) => Err(CacheError::Timeout(COMMAND_TIMEOUT)),
        };
        match &r {
            Ok(_) => {
                if !self.up.swap(true, Ordering::Relaxed) {
                    self.recovered.store(true, Ordering::Relaxed);
                    tracing::info!("Redis answers again: polls and the sweep use it again");
                }
            }
            Err(e) => {
                if self.up.swap(false, Ordering::Relaxed) {
                    tracing::error!(error = %e, "Redis unreachable: polls and the sweep fall back to SQL");
                }
                self.replace_connection().await;
            }
        }
        r
    }

    pub async fn ping(&self) -> Result<(), CacheError> {
        let mut c = self.conn();
        self.run(async move { ::redis::cmd("PING").query_async::<String>(&mut c).await })
            .await
            .map(|_| ())
    }

    /// Writes what the order looks like now (just committed) into the status cache, and keeps it
    /// in the index while unfinished (at its `next_check_at`) or takes it out.
    pub async fn mirror(&self, row: &OrderRow) -> Result<(), CacheError> {
        let next_check_at = row.next_check_at;
        let status = CachedStatus {
            session_id: row.session_id.clone(),
            status: row.status,
            pay_by: crate::server::orders::place::pay_by(row.created_at, row.deadline_at),
            qr_ready: row.code_url.is_some(),
        };
        let json = serde_json::to_string(&status).expect("serializable");
        // One round trip: the status entry (never moved backwards) and the order's place in the
        // due index, which a stale write leaves alone as well.
        let script = Script::new(
            r"local cur = redis.call('HGET', KEYS[1], 'rank')
              if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
              redis.call('HSET', KEYS[1], 'rank', ARGV[1], 'v', ARGV[2])
              redis.call('PEXPIRE', KEYS[1], ARGV[3])
              if ARGV[5] == '' then
                redis.call('ZREM', KEYS[2], ARGV[4])
                redis.call('HDEL', KEYS[3], ARGV[4])
              else
                redis.call('ZADD', KEYS[2], ARGV[5], ARGV[4])
              end
              return 1",
        );
        let mut c = self.conn();
        let key = self.key(&format!("status:{}", row.id));
        let (due, attempts) = (self.key("due"), self.key("attempts"));
        let unfinished = !row.status.is_final() && !row.parked && next_check_at.is_some();
        let score = match next_check_at {
            Some(at) if unfinished => at.to_string(),
            _ => String::new(),
        };
        let id = row.id.clone();
        let ttl = STATUS_TTL.as_millis() as i64;
        let r = rank(row);
        self.run(async move {
            script
                .key(key)
                .key(due)
                .key(attempts)
                .arg(r)
                .arg(json)
                .arg(ttl)
                .arg(id)
                .arg(score)
                .invoke_async::<i64>(&mut c)
                .await
                .map(|_| ())
        })
        .await
    }

    /// The cached status of an order, if any. An order this process could not write here (Redis
    /// was away) is a miss until it is rewritten: its entry may be older than SQL.
    pub async fn status(&self, id: &str) -> Result<Option<CachedStatus>, CacheError> {
        {
            let dirty = self.dirty.lock().unwrap();
            if dirty.contains(id) || dirty.contains("") {
                return Ok(None);
            }
        }
        let mut c = self.conn();
        let key = self.key(&format!("status:{id}"));
        let raw: Option<String> = self.run(async move { c.hget(key, "v").await }).await?;
        Ok(raw.and_then(|s| serde_json::from_str(&s).ok()))
    }

    /// Claims up to `limit` orders due by `now`, moving each one's score to `lease_until` (it comes
    /// back then if its claimer dies); returns each with the checks made before.
    pub async fn claim(
        &self,
        now: i64,
        limit: i64,
        lease_until: i64,
    ) -> Result<Vec<(String, i64)>, CacheError> {
        let script = Script::new(
            r"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
              local out = {}
              for _, id in ipairs(ids) do
                redis.call('ZADD', KEYS[1], ARGV[3], id)
                out[#out + 1] = id
                out[#out + 1] = tostring(redis.call('HINCRBY', KEYS[2], id, 1) - 1)
              end
              return out",
        );
        let mut c = self.conn();
        let (due, attempts) = (self.key("due"), self.key("attempts"));
        let flat: Vec<String> = self
            .run(async move {
                script
                    .key(due)
                    .key(attempts)
                    .arg(now)
                    .arg(limit)
                    .arg(lease_until)
                    .invoke_async(&mut c)
                    .await
            })
            .await?;
        Ok(flat
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].parse().unwrap_or(0)))
            .collect())
    }

    /// Makes the index hold exactly the unfinished orders SQL lists (`(id, next_check_at)`):
    /// adds the missing ones at their SQL time, removes the ones SQL says are finished. Members
    /// are read before SQL, so an order placed in between is never removed.
    pub async fn repair<F, Fut>(&self, unfinished: F) -> Result<(usize, usize), String>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<Vec<(String, i64)>, sqlx::Error>>,
    {
        let mut c = self.conn();
        let (due, attempts) = (self.key("due"), self.key("attempts"));
        let members: Vec<String> = {
            let due = due.clone();
            self.run(async move { c.zrange(due, 0, -1).await })
                .await
                .map_err(|e| e.to_string())?
        };
        let sql = unfinished().await.map_err(|e| e.to_string())?;
        let have: std::collections::HashSet<&str> = members.iter().map(String::as_str).collect();
        let want: std::collections::HashSet<&str> = sql.iter().map(|(id, _)| id.as_str()).collect();
        let missing: Vec<(i64, &str)> = sql
            .iter()
            .filter(|(id, _)| !have.contains(id.as_str()))
            .map(|(id, at)| (*at, id.as_str()))
            .collect();
        let extra: Vec<&str> = members
            .iter()
            .map(String::as_str)
            .filter(|id| !want.contains(id))
            .collect();
        let mut pipe = ::redis::pipe();
        for chunk in missing.chunks(500) {
            pipe.cmd("ZADD").arg(&due).arg("NX");
            for (at, id) in chunk {
                pipe.arg(*at).arg(*id);
            }
            pipe.ignore();
        }
        for chunk in extra.chunks(500) {
            pipe.zrem(&due, chunk).ignore();
            pipe.hdel(&attempts, chunk).ignore();
        }
        if !missing.is_empty() || !extra.is_empty() {
            let mut c = self.conn();
            self.run(async move { pipe.query_async::<()>(&mut c).await })
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok((missing.len(), extra.len()))
    }

    /// Deletes every key under this prefix (tests clean up with it).
    /// Deletes every key under the prefix; how many there were.
    pub async fn delete_all(&self) -> Result<usize, CacheError> {
        let mut c = self.conn();
        let pattern = format!("{}:*", self.prefix);
        let keys: Vec<String> = self.run(async move { c.keys(pattern).await }).await?;
        let n = keys.len();
        if n == 0 {
            return Ok(0);
        }
        let mut c = self.conn();
        self.run(async move { c.del::<_, ()>(keys).await }).await?;
        Ok(n)
    }
}
