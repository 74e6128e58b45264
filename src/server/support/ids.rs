//! Identifiers scanpay makes: order numbers, nonces, session ids, generated secrets.

use super::clock::format_beijing;

/// `n` random ASCII letters and digits from the thread's CSPRNG.
pub fn random_alnum(n: usize) -> String {
    use rand::distributions::{Alphanumeric, DistString};
    Alphanumeric.sample_string(&mut rand::thread_rng(), n)
}

/// A fresh out_trade_no: `SP` + Beijing date-time + 12 random alphanumerics (28 characters,
/// inside WeChat's charset and 32-character limit, unguessable).
pub fn new_order_id(now_ms: i64) -> String {
    format!("SP{}{}", format_beijing(now_ms), random_alnum(12))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_ids_fit_wechat_rules() {
        let id = new_order_id(1_761_723_532_000);
        assert_eq!(id.len(), 28);
        assert!(id.starts_with("SP20251029153852"));
        assert!(id.bytes().all(|b| b.is_ascii_alphanumeric()));
    }
}
