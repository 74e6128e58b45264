//! The Redis status cache. Keys, under `SCANPAY_REDIS_PREFIX`:
//! `{p}:status:{id}` — hash `rank`, `v` (the `CachedStatus` as JSON). Written after every commit
//! that changes the order, never older than what is there (states only move forward); finished
//! orders' entries live a day, unfinished ones' one reconciliation period (a stale entry left by
//! a write that failed elsewhere cannot outlive it).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ::redis::{AsyncCommands, Script};

use super::{CacheError, CachedStatus, StatusCache};
use crate::app::types::OrderStatus;
use crate::server::domain::OrderRow;
use crate::server::redis_conn::RedisConn;
use crate::server::store::Store;
use crate::server::support::BoxFuture;

/// How long a finished order's cached status lives.
const FINAL_TTL: Duration = Duration::from_secs(24 * 3600);
/// Most orders remembered as dirty; past it, repair drops every cached status instead.
const DIRTY_LIMIT: usize = 100_000;
/// The dirty set's marker for "too many to track".
const ALL: &str = "";

/// States only move forward: a late writer never replaces a later state.
fn rank(row: &OrderRow) -> i64 {
    match row.status {
        OrderStatus::Pending if row.code_url.is_some() => 1,
        OrderStatus::Pending => 0,
        OrderStatus::Closing => 2,
        _ => 3,
    }
}

#[derive(Default)]
struct Dirty {
    ids: HashMap<String, u64>,
    generation: u64,
}

pub struct RedisCache {
    conn: Arc<RedisConn>,
    /// TTL of an unfinished order's entry: one reconciliation period.
    unfinished_ttl: Duration,
    /// Orders whose change could not be written here, each with the generation of its last
    /// failed write: a miss until `repair` rewrites it from SQL read after that failure. Only
    /// `repair` takes an id out, and only if no write failed again while it read and wrote.
    dirty: Mutex<Dirty>,
    /// Built once (its SHA is computed here, not per call).
    write: Script,
}

impl RedisCache {
    pub fn new(conn: Arc<RedisConn>, unfinished_ttl: Duration) -> Self {
        RedisCache {
            conn,
            unfinished_ttl,
            dirty: Mutex::default(),
            write: Script::new(
                r"local cur = redis.call('HGET', KEYS[1], 'rank')
                  if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
                  redis.call('HSET', KEYS[1], 'rank', ARGV[1], 'v', ARGV[2])
                  redis.call('PEXPIRE', KEYS[1], ARGV[3])
                  return 1",
            ),
        }
    }

    fn mark_dirty(&self, id: &str) {
        let mut d = self.dirty.lock().unwrap();
        d.generation += 1;
        let g = d.generation;
        if d.ids.len() < DIRTY_LIMIT || d.ids.contains_key(id) {
            d.ids.insert(id.to_string(), g);
        } else {
            d.ids.insert(ALL.to_string(), g);
        }
    }

    async fn write(&self, row: &OrderRow) -> Result<(), CacheError> {
        let json = serde_json::to_string(&CachedStatus::of(row)).expect("serializable");
        let ttl = if row.status.is_final() {
            FINAL_TTL
        } else {
            self.unfinished_ttl
        };
        let mut c = self.conn.conn();
        let key = self.conn.key(&format!("status:{}", row.id));
        let r = rank(row);
        self.conn
            .run(async {
                self.write
                    .key(key)
                    .arg(r)
                    .arg(json)
                    .arg(ttl.as_millis() as i64)
                    .invoke_async::<i64>(&mut c)
                    .await
                    .map(|_| ())
            })
            .await
            .map_err(|e| CacheError::Unavailable(e.to_string()))
    }
}

impl StatusCache for RedisCache {
    fn enabled(&self) -> bool {
        true
    }

    fn get<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<Option<CachedStatus>, CacheError>> {
        Box::pin(async move {
            {
                let dirty = self.dirty.lock().unwrap();
                if dirty.ids.contains_key(id) || dirty.ids.contains_key(ALL) {
                    return Ok(None);
                }
            }
            let mut c = self.conn.conn();
            let key = self.conn.key(&format!("status:{id}"));
            let raw: Option<String> = self
                .conn
                .run(async move { c.hget(key, "v").await })
                .await
                .map_err(|e| CacheError::Unavailable(e.to_string()))?;
            Ok(raw.and_then(|s| serde_json::from_str(&s).ok()))
        })
    }

    fn changed<'a>(&'a self, row: &'a OrderRow) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // A write that worked leaves a dirty mark alone: this row may be older than the one
            // whose write failed (only `repair`, reading SQL afterwards, may clear it).
            if self.write(row).await.is_err() {
                self.mark_dirty(&row.id);
            }
        })
    }

    fn mark_stale(&self, id: &str) {
        self.mark_dirty(id);
    }

    fn repair<'a>(&'a self, store: &'a Store) -> BoxFuture<'a, Result<usize, CacheError>> {
        Box::pin(async move {
            let marks: Vec<(String, u64)> = self
                .dirty
                .lock()
                .unwrap()
                .ids
                .iter()
                .map(|(id, g)| (id.clone(), *g))
                .collect();
            if let Some((_, g)) = marks.iter().find(|(id, _)| id == ALL) {
                // Too many to rewrite one by one: drop every status; polls refill from SQL.
                let pattern = self.conn.key("status:*");
                self.conn
                    .delete_matching(&pattern)
                    .await
                    .map_err(|e| CacheError::Unavailable(e.to_string()))?;
                let mut d = self.dirty.lock().unwrap();
                let before = d.ids.len();
                let g = *g;
                d.ids.retain(|_, mark| *mark > g);
                return Ok(before - d.ids.len());
            }
            let mut rewritten = 0;
            for (id, g) in marks {
                // Read after the failed write (its mark is older than this read). Gone (a test
                // database dropped): nothing to rewrite.
                if let Some(row) = store.load(&id).await? {
                    self.write(&row).await?;
                }
                let mut d = self.dirty.lock().unwrap();
                if d.ids.get(&id) == Some(&g) {
                    d.ids.remove(&id);
                    rewritten += 1;
                }
            }
            Ok(rewritten)
        })
    }

    fn dirty(&self) -> usize {
        self.dirty.lock().unwrap().ids.len()
    }

    fn health(&self) -> BoxFuture<'_, Option<bool>> {
        Box::pin(async move { Some(self.conn.ping().await.is_ok()) })
    }
}
