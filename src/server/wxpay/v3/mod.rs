//! WeChat Pay API v3 (reference: wxpay-v3.md): JSON over HTTPS, every request signed
//! SHA256-RSA with the merchant's private key, every answer and notify signed by WeChat (a
//! platform certificate or, for merchants set up since 2024, the WeChat Pay public key), notify
//! resources encrypted AES-256-GCM with the APIv3 key. `crypto` holds the primitives; the client,
//! the notify endpoint and the sandbox's v3 build on them.

pub mod crypto;
pub mod notify;
pub mod throwaway;
