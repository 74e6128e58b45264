//! Abuse limits that need memory of recent requests: orders placed per minute per client
//! address, cancels per minute per session and per address. (Per-order and per-session order
//! limits are checked where the order is written.)

use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::HeaderName;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::HashMapStateStore;
use governor::Quota;

/// Who a limit counts: a client address, a shopper's session, or every request whose address is
/// unknown (a configured proxy header missing) together.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Ip(IpAddr),
    Session(String),
    Unknown,
}

impl From<Option<IpAddr>> for Key {
    fn from(ip: Option<IpAddr>) -> Self {
        ip.map_or(Key::Unknown, Key::Ip)
    }
}

/// How often idle keys are forgotten (each check is O(1); forgetting is O(keys), so not per call).
const PRUNE_EVERY: Duration = Duration::from_secs(60);
/// Most keys remembered: past it idle keys are forgotten at once, and while it is still full a
/// new key is refused (memory stays bounded whatever a client rotates).
const MAX_KEYS: usize = 200_000;

/// `per_minute` attempts a minute per key, as a GCRA (governor): a burst of `per_minute`, then one
/// more each `60 s / per_minute`. Keys idle long enough to be full again are forgotten, so a
/// client rotating addresses cannot grow it without bound.
pub struct RateLimiter<C: Clock = DefaultClock> {
    inner: governor::RateLimiter<Key, HashMapStateStore<Key>, C, NoOpMiddleware<C::Instant>>,
    pruned_at: Mutex<Instant>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        Self::with_clock(per_minute, DefaultClock::default())
    }
}

impl<C: Clock> RateLimiter<C> {
    pub fn with_clock(per_minute: u32, clock: C) -> Self {
        let n = NonZeroU32::new(per_minute.max(1)).expect("at least 1");
        RateLimiter {
            inner: governor::RateLimiter::new(
                Quota::per_minute(n),
                HashMapStateStore::default(),
                clock,
            ),
            pruned_at: Mutex::new(Instant::now()),
        }
    }

    /// Counts one attempt; false when the key already used its allowance.
    pub fn allow(&self, key: impl Into<Key>) -> bool {
        self.allow_within(key, MAX_KEYS)
    }

    fn allow_within(&self, key: impl Into<Key>, max_keys: usize) -> bool {
        {
            let mut at = self.pruned_at.lock().unwrap();
            if at.elapsed() >= PRUNE_EVERY || self.inner.len() >= max_keys {
                *at = Instant::now();
                self.inner.retain_recent();
            }
        }
        if self.inner.len() >= max_keys {
            return false;
        }
        self.inner.check_key(&key.into()).is_ok()
    }

    /// Keys remembered now.
    pub fn len(&self) -> usize {
        self.inner.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Forgets every key that is back to its full allowance.
    pub fn forget_idle(&self) {
        self.inner.retain_recent();
    }
}

/// The client's address: from `header` when scanpay is configured to trust a proxy's header
/// (the last `X-Forwarded-For` entry, the one the proxy added; if that one is not an address —
/// `ip:port`, `unknown` — None, never an earlier entry the client may have written), else the
/// TCP peer.
pub fn client_ip(parts: &Parts, header: Option<&HeaderName>) -> Option<IpAddr> {
    if let Some(h) = header {
        return parts
            .headers
            .get_all(h)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .next_back()
            .and_then(|s| s.trim().parse::<IpAddr>().ok());
    }
    parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allows_a_burst_then_one_per_share_of_the_minute_per_key_and_forgets_idle_keys() {
        use governor::clock::FakeRelativeClock;
        let clock = FakeRelativeClock::default();
        let l = RateLimiter::with_clock(2, clock.clone());
        let a: Key = Some("10.0.0.1".parse::<IpAddr>().unwrap()).into();
        let b: Key = Some("10.0.0.2".parse::<IpAddr>().unwrap()).into();
        assert!(l.allow(a.clone()));
        assert!(l.allow(a.clone()));
        assert!(!l.allow(a.clone()), "the burst is used");
        assert!(l.allow(b.clone()), "per key");
        assert!(l.allow(Key::Session("s1".into())));
        clock.advance(Duration::from_secs(30));
        assert!(l.allow(a.clone()), "one back after half a minute");
        assert!(!l.allow(a.clone()));
        assert!(l.allow(Key::Unknown));
        assert_eq!(l.len(), 4);
        clock.advance(Duration::from_secs(120));
        l.forget_idle();
        assert!(l.is_empty(), "idle keys are forgotten");
    }

    #[test]
    fn it_remembers_at_most_so_many_keys() {
        use governor::clock::FakeRelativeClock;
        let l = RateLimiter::with_clock(5, FakeRelativeClock::default());
        for i in 0..3 {
            assert!(l.allow_within(Key::Session(format!("s{i}")), 3));
        }
        assert!(
            !l.allow_within(Key::Session("s3".into()), 3),
            "full of keys still in use"
        );
        assert_eq!(l.len(), 3);
    }

    #[test]
    fn requests_without_an_address_share_one_allowance() {
        let l = RateLimiter::new(1);
        assert!(l.allow(None::<IpAddr>));
        assert!(
            !l.allow(None::<IpAddr>),
            "a missing proxy header is no way around the limit"
        );
    }

    #[test]
    fn the_header_is_used_only_when_configured() {
        let req = axum::http::Request::builder()
            .header("x-forwarded-for", "1.2.3.4, 5.6.7.8")
            .body(())
            .unwrap();
        let (mut parts, _) = req.into_parts();
        parts
            .extensions
            .insert(ConnectInfo::<SocketAddr>("127.0.0.1:9".parse().unwrap()));
        assert_eq!(client_ip(&parts, None), Some("127.0.0.1".parse().unwrap()));
        let h = HeaderName::from_static("x-forwarded-for");
        assert_eq!(
            client_ip(&parts, Some(&h)),
            Some("5.6.7.8".parse().unwrap())
        );
        let h = HeaderName::from_static("x-real-ip");
        assert_eq!(client_ip(&parts, Some(&h)), None);
        // The proxy's own entry is not an address: no earlier (client-written) one is taken.
        let req = axum::http::Request::builder()
            .header("x-forwarded-for", "1.2.3.4, unknown")
            .body(())
            .unwrap();
        let (parts, _) = req.into_parts();
        let h = HeaderName::from_static("x-forwarded-for");
        assert_eq!(client_ip(&parts, Some(&h)), None);
    }
}
