//! Abuse limits that need memory of recent requests: orders placed per minute per client address.
//! (Per-order and per-session limits are checked where the order is written.)

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::HeaderName;

const WINDOW: Duration = Duration::from_secs(60);

/// A sliding one-minute window per client address, in this process.
pub struct RateLimiter {
    per_minute: u32,
    hits: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl RateLimiter {
    pub fn new(per_minute: u32) -> Self {
        RateLimiter {
            per_minute,
            hits: Mutex::default(),
        }
    }

    /// Counts one attempt; false when the address already used its allowance this minute.
    pub fn allow(&self, ip: IpAddr) -> bool {
        self.allow_at(ip, Instant::now())
    }

    fn allow_at(&self, ip: IpAddr, now: Instant) -> bool {
        let mut hits = self.hits.lock().unwrap();
        if hits.len() > 10_000 {
            // Forget addresses that have been quiet for a minute, so the map stays small.
            hits.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < WINDOW));
        }
        let q = hits.entry(ip).or_default();
        while q.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
            q.pop_front();
        }
        if q.len() as u32 >= self.per_minute {
            return false;
        }
        q.push_back(now);
        true
    }
}

/// The client's address: from `header` when scanpay is configured to trust a proxy's header
/// (the last `X-Forwarded-For` entry, the one the proxy added), else the TCP peer.
pub fn client_ip(parts: &Parts, header: Option<&HeaderName>) -> Option<IpAddr> {
    if let Some(h) = header {
        return parts
            .headers
            .get_all(h)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back();
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
    fn allows_n_per_sliding_minute_per_address() {
        let l = RateLimiter::new(2);
        let (a, b): (IpAddr, IpAddr) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        assert!(l.allow_at(a, t0));
        assert!(l.allow_at(a, t0 + Duration::from_secs(1)));
        assert!(!l.allow_at(a, t0 + Duration::from_secs(2)));
        assert!(l.allow_at(b, t0 + Duration::from_secs(2)), "per address");
        assert!(
            l.allow_at(a, t0 + Duration::from_secs(60)),
            "the first hit left the window"
        );
        assert!(!l.allow_at(a, t0 + Duration::from_secs(60)));
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
    }
}
