//! MySQL/MariaDB: the connection a placing holds its session's named lock (`GET_LOCK`) on, closed
//! rather than pooled unless the lock was released.

use sqlx::MySqlConnection;

/// A pooled connection that may hold a session's named lock. A named lock belongs to the
/// connection's server session, not to a transaction: a placing future dropped half-way (axum
/// drops a handler when its client goes away) would otherwise hand the connection back to the
/// pool still holding it, and every later placing of that session would wait 10 s for it and
/// fail. So unless the lock was released (`release_to_pool`), dropping this closes the
/// connection instead: the server ends the session, rolling back its transaction and freeing its
/// locks, as soon as it is done with the statement in flight (bounded by the lock and statement
/// timeouts). That is what a dropped placing means on the other engines too: nothing written.
/// (Running the locked section in a spawned task that always finishes would release as well, but
/// would place an order nobody is waiting for; closing costs one reconnect, and only then.)
pub(super) struct LockedConn(pub(super) Option<sqlx::pool::PoolConnection<sqlx::MySql>>);

impl LockedConn {
    pub(super) fn conn(&mut self) -> &mut MySqlConnection {
        self.0
            .as_mut()
            .expect("the connection until it is released")
    }

    /// The session holds no named lock: back to the pool like any connection.
    pub(super) fn release_to_pool(mut self) {
        drop(self.0.take());
    }
}

impl Drop for LockedConn {
    fn drop(&mut self) {
        if let Some(conn) = self.0.take() {
            // Out of the pool (which may open another) and closed when dropped.
            drop(conn.detach());
        }
    }
}
