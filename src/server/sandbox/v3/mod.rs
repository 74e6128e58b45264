//! The sandbox's API v3 (wxpay-v3.md §8): the same orders, refunds, bills and fault knobs as
//! v2, spoken as JSON over signed requests, every answer and notify signed by the sandbox's own
//! throwaway platform keys, notify resources encrypted with the merchant's APIv3 key.

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
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Ids only: the keys are throwaway, but still not printed.
        write!(
            f,
            "SandboxV3({:?}, public key {}, certificate {})",
            self.mode, self.public_key.id, self.certificate.id
        )
    }
}
