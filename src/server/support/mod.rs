//! The helper layer: small pure pieces every other layer may use (and that import nothing of
//! scanpay's own above them): time, ids, redaction for logs, backoff schedules.

pub mod backoff;
pub mod clock;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod password;
pub mod redact;
pub mod session;
pub mod totp;

/// A boxed, sendable future: what the seams' trait methods return (object-safe traits).
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;
