//! WeChat Pay API v3 (reference: wxpay-v3.md): JSON over HTTPS, every request signed
//! SHA256-RSA with the merchant's private key, every answer and notify signed by WeChat (a
//! platform certificate or, for merchants set up since 2024, the WeChat Pay public key), notify
//! resources encrypted AES-256-GCM with the APIv3 key. `crypto` holds the primitives; `client` (transport),
//! `calls` (the endpoints), `certs` (platform certificates) and `gateway` make the v3 `Gateway`.

mod calls;
pub mod certs;
pub mod client;
pub mod crypto;
mod errors;
mod gateway;
pub mod notify;
pub mod throwaway;

pub use client::V3Client;
pub use errors::code_of;
