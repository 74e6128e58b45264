//! The due index in Redis. Keys, under `SCANPAY_REDIS_PREFIX`:
//! - `{p}:due` — sorted set of unfinished order ids scored by next-check time (epoch ms). The
//!   claim is one script: take the due ids and push each one's score to a lease, so of N workers
//!   each due order goes to exactly one, and an order whose worker dies comes back.
//! - `{p}:attempts` — hash: checks made of each indexed order (the sweep's backoff).
//!
//! SQL's `next_check_at` stays the truth: claimed orders are loaded and re-scheduled there, and
//! `repair` makes the set hold exactly what SQL lists. While Redis does not answer, claims come
//! from SQL.

use std::collections::HashSet;
use std::sync::Arc;

use ::redis::{AsyncCommands, Script};

use super::{DueIndex, NextAt};
use crate::server::domain::OrderRow;
use crate::server::redis_conn::RedisConn;
use crate::server::store::Store;
use crate::server::support::BoxFuture;

pub struct RedisDueIndex {
    conn: Arc<RedisConn>,
    store: Store,
    /// How long a claim holds an order before it comes back (one sweep interval).
    lease_ms: i64,
    claim: Script,
}

impl RedisDueIndex {
    pub fn new(conn: Arc<RedisConn>, store: Store, lease_ms: i64) -> Self {
        RedisDueIndex {
            conn,
            store,
            lease_ms,
            claim: Script::new(
                r"local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
                  local out = {}
                  for _, id in ipairs(ids) do
                    redis.call('ZADD', KEYS[1], ARGV[3], id)
                    out[#out + 1] = id
                    out[#out + 1] = tostring(redis.call('HINCRBY', KEYS[2], id, 1) - 1)
                  end
                  return out",
            ),
        }
    }

    /// Claims from the set: (id, checks made before), each leased until `lease_until`.
    async fn claim_ids(
        &self,
        now: i64,
        limit: i64,
        lease_until: i64,
    ) -> Result<Vec<(String, i64)>, String> {
        let mut c = self.conn.conn();
        let (due, attempts) = (self.conn.key("due"), self.conn.key("attempts"));
        let flat: Vec<String> = self
            .conn
            .run(async {
                self.claim
                    .key(due)
                    .key(attempts)
                    .arg(now)
                    .arg(limit)
                    .arg(lease_until)
                    .invoke_async(&mut c)
                    .await
            })
            .await
            .map_err(|e| e.to_string())?;
        Ok(flat
            .chunks(2)
            .map(|p| (p[0].clone(), p[1].parse().unwrap_or(0)))
            .collect())
    }

    /// Puts each order at its next check, or takes the finished and parked ones out: one round
    /// trip for the lot.
    async fn place(&self, rows: &[(&OrderRow, Option<i64>)]) -> Result<(), String> {
        if rows.is_empty() {
            return Ok(());
        }
        let (due, attempts) = (self.conn.key("due"), self.conn.key("attempts"));
        let mut pipe = ::redis::pipe();
        for (row, at) in rows {
            match at {
                Some(at) => pipe.zadd(&due, &row.id, *at).ignore(),
                None => pipe
                    .zrem(&due, &row.id)
                    .ignore()
                    .hdel(&attempts, &row.id)
                    .ignore(),
            };
        }
        let mut c = self.conn.conn();
        self.conn
            .run(async move { pipe.query_async::<()>(&mut c).await })
            .await
            .map_err(|e| e.to_string())
    }
}

/// Where an order belongs in the index: at its next check while unfinished and unparked.
fn slot(row: &OrderRow) -> Option<i64> {
    row.next_check_at
        .filter(|_| !row.status.is_final() && !row.parked)
}

impl DueIndex for RedisDueIndex {
    fn enabled(&self) -> bool {
        true
    }

    fn claim<'a>(
        &'a self,
        now: i64,
        limit: i64,
        next_at: NextAt<'a>,
    ) -> BoxFuture<'a, Result<Vec<OrderRow>, sqlx::Error>> {
        Box::pin(async move {
            let claimed = match self.claim_ids(now, limit, now + self.lease_ms).await {
                Ok(claimed) => claimed,
                Err(_) => return self.store.claim_due(now, limit, next_at).await,
            };
            // One read for the lot, one write for their next checks: no order-by-order trips.
            let ids: Vec<String> = claimed.iter().map(|(id, _)| id.clone()).collect();
            let attempts: std::collections::HashMap<&str, i64> =
                claimed.iter().map(|(id, n)| (id.as_str(), *n)).collect();
            let mut due = Vec::with_capacity(claimed.len());
            let mut gone = Vec::new();
            for mut row in self.store.load_many(&ids).await? {
                if row.status.is_final() || row.parked {
                    // Finished or parked since it was indexed: out of the index.
                    gone.push(row);
                    continue;
                }
                let next = next_at(&row, attempts.get(row.id.as_str()).copied().unwrap_or(0));
                row.next_check_at = Some(next);
                due.push(row);
            }
            let checks: Vec<(String, i64)> = due
                .iter()
                .map(|r| (r.id.clone(), r.next_check_at.unwrap_or(now)))
                .collect();
            self.store.schedule_checks(&checks).await?;
            let mut slots: Vec<(&OrderRow, Option<i64>)> =
                due.iter().map(|r| (r, r.next_check_at)).collect();
            slots.extend(gone.iter().map(|r| (r, None)));
            // Left at its lease, an order is simply claimed again then.
            let _ = self.place(&slots).await;
            Ok(due)
        })
    }

    fn changed<'a>(&'a self, row: &'a OrderRow) -> BoxFuture<'a, ()> {
        Box::pin(async move {
            // A failure leaves the set behind SQL; `repair` brings it back.
            let _ = self.place(&[(row, slot(row))]).await;
        })
    }

    /// Adds the missing ones at their SQL time, removes the ones SQL says are finished. Members
    /// are read before SQL, so an order placed in between is never removed.
    fn repair(&self) -> BoxFuture<'_, Result<(usize, usize), String>> {
        Box::pin(async move {
            let mut c = self.conn.conn();
            let (due, attempts) = (self.conn.key("due"), self.conn.key("attempts"));
            let members: Vec<String> = {
                let due = due.clone();
                self.conn
                    .run(async move { c.zrange(due, 0, -1).await })
                    .await
                    .map_err(|e| e.to_string())?
            };
            let sql = self.store.unfinished().await.map_err(|e| e.to_string())?;
            let have: HashSet<&str> = members.iter().map(String::as_str).collect();
            let want: HashSet<&str> = sql.iter().map(|(id, _)| id.as_str()).collect();
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
                let mut c = self.conn.conn();
                self.conn
                    .run(async move { pipe.query_async::<()>(&mut c).await })
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok((missing.len(), extra.len()))
        })
    }

    fn recoveries(&self) -> u64 {
        self.conn.recoveries()
    }

    fn health(&self) -> BoxFuture<'_, Option<bool>> {
        Box::pin(async move { Some(self.conn.ping().await.is_ok()) })
    }
}
