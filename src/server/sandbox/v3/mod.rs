//! The sandbox's API v3 (wxpay-v3.md §8): the same orders, refunds, bills and fault knobs as
//! v2, spoken as JSON over signed requests, every answer and notify signed by the sandbox's own
//! throwaway platform keys, notify resources encrypted with the merchant's APIv3 key.
//!
//! Routes, under the sandbox's prefix (`/sandbox`; the signed URL includes it):
//! - `POST /v3/pay/transactions/native` → 200 `{code_url}`
//! - `GET /v3/pay/transactions/out-trade-no/{no}?mchid=` and `GET /v3/pay/transactions/id/{id}?mchid=`
//!   → 200 Transaction
//! - `POST /v3/pay/transactions/out-trade-no/{no}/close` `{mchid}` → 204
//! - `POST /v3/refund/domestic/refunds` → 200 Refund; `GET /v3/refund/domestic/refunds/{no}`
//! - `GET /v3/bill/tradebill?bill_date=yyyy-MM-dd[&bill_type=ALL][&tar_type=GZIP]` →
//!   `{hash_type, hash_value, download_url}`; `GET /v3/billdownload/file?token=` (unsigned answer)
//! - `GET /v3/certificates` (certificate and migration modes; 404 RESOURCE_NOT_EXISTS with a
//!   public key only)
//! - `GET /admin/v3/public-key`: the keys' ids and PEMs, for a client in another process
//!
//! Layout: `auth` (the request's signature), `fields` (JSON field rules), `proto` (answers,
//! errors, faults), one file per endpoint group, `notify` (the envelopes), `keys`.

use std::sync::Arc;

use rsa::pkcs1v15::VerifyingKey;
use sha2::Sha256;

use crate::server::wxpay::v3::crypto::{ApiV3Key, MerchantSigner};

/// Which of WeChat's keys signs the sandbox's answers and notifies (§3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V3Mode {
    /// The WeChat Pay public key (`PUB_KEY_ID_…`): merchants set up since 2024.
    PublicKey,
    /// A platform certificate, downloaded from `/v3/certificates`.
    Certificate,
    /// The migration window: answers signed by the key the request's `Wechatpay-Serial` names,
    /// notifies by either.
    Both,
}

impl V3Mode {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s {
            "public_key" => Ok(V3Mode::PublicKey),
            "certificate" => Ok(V3Mode::Certificate),
            "both" => Ok(V3Mode::Both),
            other => Err(format!("{other:?}: public_key, certificate or both")),
        }
    }
}

/// A merchant as the sandbox's v3 knows it.
#[derive(Clone)]
pub struct V3Merchant {
    pub mchid: String,
    pub appid: String,
    /// The serial of the merchant API certificate its requests name (`serial_no`).
    pub serial_no: String,
    /// The public half of its API key: verifies its requests.
    pub key: VerifyingKey<Sha256>,
    pub apiv3_key: ApiV3Key,
}

/// One of WeChat's signing keys: its id (`PUB_KEY_ID_…` or a certificate serial), its private
/// half (a `MerchantSigner` whose `serial_no` is the id) and its public half as PEM.
#[derive(Clone)]
pub struct PlatformKey {
    pub id: String,
    pub signer: MerchantSigner,
    /// SubjectPublicKeyInfo PEM (`pub_key.pem`).
    pub public_pem: String,
    /// The self-signed platform certificate (certificate mode), PEM.
    pub cert_pem: Option<String>,
}

/// WeChat's side of v3 in the sandbox.
#[derive(Clone)]
pub struct SandboxV3 {
    pub merchants: Vec<V3Merchant>,
    pub mode: V3Mode,
    pub public_key: PlatformKey,
    pub certificate: PlatformKey,
}

pub type SharedV3 = Arc<SandboxV3>;

impl std::fmt::Debug for SandboxV3 {
    /// Ids only: no key material.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxV3")
            .field(
                "merchants",
                &self.merchants.iter().map(|m| &m.mchid).collect::<Vec<_>>(),
            )
            .field("mode", &self.mode)
            .field("public_key", &self.public_key.id)
            .field("certificate", &self.certificate.id)
            .finish()
    }
}

mod auth;
mod bill;
mod certs;
mod fields;
mod keys;
pub(super) mod notify;
mod pay;
mod proto;
mod refund;
#[cfg(test)]
mod tests;

use axum::routing::{get, post};
use axum::Router;

use super::Sandbox;
use crate::server::wxpay::v3::throwaway::{
    SANDBOX_APIV3_KEY, SANDBOX_MERCHANT_KEY, SANDBOX_MERCHANT_SERIAL,
};

pub(super) use bill::BillToken;

impl SandboxV3 {
    /// WeChat's side for `merchants` in `mode`, with the process's throwaway platform keys: an
    /// RSA-2048 WeChat Pay public key (`PUB_KEY_ID_…`) and an RSA-2048 key with a self-signed
    /// platform certificate (40 hex serial = its id, valid 5 years). Made once per process
    /// (every test app builds a sandbox, and RSA key generation is slow); they exist nowhere
    /// else and sign nothing but the sandbox's answers and notifies.
    pub fn generate(merchants: Vec<V3Merchant>, mode: V3Mode) -> SandboxV3 {
        let (public_key, certificate) = keys::platform_keys();
        SandboxV3 {
            merchants,
            mode,
            public_key,
            certificate,
        }
    }

    pub fn merchant(&self, mchid: &str) -> Option<&V3Merchant> {
        self.merchants.iter().find(|m| m.mchid == mchid)
    }

    /// The key that signs an answer: the mode's; in the migration window the one the request's
    /// `Wechatpay-Serial` names, else the certificate (§3.3).
    pub fn answer_key(&self, request_serial: Option<&str>) -> &PlatformKey {
        match self.mode {
            V3Mode::PublicKey => &self.public_key,
            V3Mode::Certificate => &self.certificate,
            V3Mode::Both if request_serial == Some(self.public_key.id.as_str()) => &self.public_key,
            V3Mode::Both => &self.certificate,
        }
    }

    /// The key that signs the `turn`th notify: the mode's; in the migration window each in
    /// turn, so a merchant sees both (§3.3: notifies switch gradually).
    pub fn notify_key(&self, turn: u64) -> &PlatformKey {
        match self.mode {
            V3Mode::PublicKey => &self.public_key,
            V3Mode::Certificate => &self.certificate,
            V3Mode::Both if turn % 2 == 1 => &self.public_key,
            V3Mode::Both => &self.certificate,
        }
    }
}

/// The sandbox's default v3 merchant: `mchid`/`appid` with the published throwaway API key
/// (`SANDBOX_MERCHANT_KEY`, wechatpay-go's test key), its made-up certificate serial and the
/// throwaway APIv3 key. Known to the world: for the sandbox only, never for WeChat Pay.
pub fn sandbox_merchant(mchid: &str, appid: &str) -> V3Merchant {
    let signer = MerchantSigner::from_pem(SANDBOX_MERCHANT_KEY, mchid, SANDBOX_MERCHANT_SERIAL)
        .expect("the throwaway merchant key is a valid PKCS#8 RSA key");
    V3Merchant {
        mchid: mchid.to_string(),
        appid: appid.to_string(),
        serial_no: SANDBOX_MERCHANT_SERIAL.to_string(),
        key: signer.verifying_key(),
        apiv3_key: ApiV3Key::new(SANDBOX_APIV3_KEY).expect("32 ASCII characters"),
    }
}

/// The v3 routes, relative to where the sandbox is nested (`/sandbox`).
pub(super) fn routes(router: Router<Sandbox>) -> Router<Sandbox> {
    api_routes(router).route("/admin/v3/public-key", get(certs::public_key))
}

/// The v3 API alone (`/v3/…`).
pub(super) fn api_routes(router: Router<Sandbox>) -> Router<Sandbox> {
    router
        .route("/v3/pay/transactions/native", post(pay::native))
        .route(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}",
            get(pay::query_by_out_trade_no),
        )
        .route(
            "/v3/pay/transactions/id/{transaction_id}",
            get(pay::query_by_transaction_id),
        )
        .route(
            "/v3/pay/transactions/out-trade-no/{out_trade_no}/close",
            post(pay::close),
        )
        .route("/v3/refund/domestic/refunds", post(refund::refund))
        .route(
            "/v3/refund/domestic/refunds/{out_refund_no}",
            get(refund::query),
        )
        .route("/v3/bill/tradebill", get(bill::tradebill))
        .route("/v3/billdownload/file", get(bill::download))
        .route("/v3/certificates", get(certs::certificates))
}
