//! No status cache: every poll reads SQL.

use super::{CacheError, CachedStatus, StatusCache};
use crate::server::domain::OrderRow;
use crate::server::store::Store;
use crate::server::support::BoxFuture;

pub struct NoCache;

impl StatusCache for NoCache {
    fn enabled(&self) -> bool {
        false
    }
    fn get<'a>(&'a self, _: &'a str) -> BoxFuture<'a, Result<Option<CachedStatus>, CacheError>> {
        Box::pin(async { Ok(None) })
    }
    fn changed<'a>(&'a self, _: &'a OrderRow) -> BoxFuture<'a, ()> {
        Box::pin(async {})
    }
    fn mark_stale(&self, _: &str) {}
    fn repair<'a>(&'a self, _: &'a Store) -> BoxFuture<'a, Result<usize, CacheError>> {
        Box::pin(async { Ok(0) })
    }
    fn dirty(&self) -> usize {
        0
    }
    fn health(&self) -> BoxFuture<'_, Option<bool>> {
        Box::pin(async { None })
    }
}
