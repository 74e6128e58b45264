//! API v3's settings: which API scanpay speaks, and v3's credentials — the merchant's API private
//! key (`apiclient_key.pem`, the same file v2's mutual TLS uses) with its certificate's serial,
//! the APIv3 key, and WeChat's key: the WeChat Pay public key and its id, or none (platform
//! certificates, downloaded). Empty files fall back to the sandbox's published throwaway
//! credentials, which the real WeChat Pay never gets.

use super::checks::err;
use super::{ConfigError, Raw};
use crate::server::wxpay::v3::certs::serial_of;
use crate::server::wxpay::v3::crypto::{ApiV3Key, MerchantSigner, WechatKeys};
use crate::server::wxpay::v3::throwaway;

/// The API the shop speaks to WeChat Pay (`SCANPAY_WXPAY_API`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WxPayApi {
    V2,
    V3,
}

impl WxPayApi {
    pub fn as_str(self) -> &'static str {
        match self {
            WxPayApi::V2 => "v2",
            WxPayApi::V3 => "v3",
        }
    }
}

pub(super) fn api(r: &Raw) -> Result<WxPayApi, ConfigError> {
    match r.value.trim() {
        "v2" => Ok(WxPayApi::V2),
        "v3" => Ok(WxPayApi::V3),
        _ => Err(err(r, "must be v2 or v3")),
    }
}

/// v3's credentials, read and checked at start-up.
#[derive(Debug, Clone)]
pub struct WxPayV3 {
    /// Signs every request (`serial_no` = the merchant API certificate's serial).
    pub signer: MerchantSigner,
    pub apiv3_key: ApiV3Key,
    /// The WeChat Pay public key's id and PEM (public-key mode); None: platform certificates
    /// (or, with the in-process sandbox, whatever keys it signs with).
    pub public_key: Option<(String, String)>,
    /// The settings that hold one of the sandbox's published throwaway credentials.
    pub throwaway: Vec<&'static str>,
}

impl WxPayV3 {
    /// The verification keys configured (the public key, if any); certificates come later.
    pub fn configured_keys(&self) -> WechatKeys {
        let mut keys = WechatKeys::default();
        if let Some((id, pem)) = &self.public_key {
            keys.add_public_key_pem(id, pem)
                .expect("checked when the settings were read");
        }
        keys
    }
}

pub(super) struct V3Raw {
    pub key_pem: Raw,
    pub cert_pem: Raw,
    pub serial: Raw,
    pub apiv3_key: Raw,
    pub public_key_pem: Raw,
    pub public_key_id: Raw,
    pub mch_id: String,
    /// The built-in (throwaway) APIv3 key, to tell it apart.
    pub builtin_apiv3: String,
}

fn read(r: &Raw) -> Result<Option<String>, ConfigError> {
    match r.value.trim() {
        "" => Ok(None),
        path => std::fs::read_to_string(path)
            .map(Some)
            .map_err(|e| err(r, &format!("cannot read {path}: {e}"))),
    }
}

/// v3's credentials: read and checked when the shop speaks v3; otherwise the throwaway ones
/// (which the sandbox's v3 side then knows), whatever files v2 was given.
pub(super) fn wxpay_v3(r: V3Raw, api: WxPayApi) -> Result<WxPayV3, ConfigError> {
    if api == WxPayApi::V2 {
        return Ok(sandbox_credentials(&r.mch_id));
    }
    let mut throwaway = Vec::new();
    let key_pem = match read(&r.key_pem)? {
        Some(pem) => pem,
        None => {
            throwaway.push("SCANPAY_WXPAY_KEY_PEM");
            throwaway::SANDBOX_MERCHANT_KEY.to_string()
        }
    };
    let serial = match (r.serial.value.trim(), read(&r.cert_pem)?) {
        ("", Some(cert)) => serial_of(&cert).map_err(|why| err(&r.cert_pem, &why))?,
        ("", None) if throwaway.is_empty() => {
            return Err(err(
                &r.serial,
                "must be set for v3 (the serial of the merchant API certificate, shown in the \
                 merchant platform), or SCANPAY_WXPAY_CERT_PEM given to read it from",
            ))
        }
        ("", None) => throwaway::SANDBOX_MERCHANT_SERIAL.to_string(),
        (s, _) if s.len() <= 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) => {
            s.to_ascii_uppercase()
        }
        _ => return Err(err(&r.serial, "must be the certificate's serial in hex")),
    };
    // The published throwaway ones given as files or values are throwaway all the same.
    if throwaway.is_empty() && key_pem.trim() == throwaway::SANDBOX_MERCHANT_KEY.trim() {
        throwaway.push("SCANPAY_WXPAY_KEY_PEM");
    }
    if serial == throwaway::SANDBOX_MERCHANT_SERIAL && !throwaway.contains(&"SCANPAY_WXPAY_KEY_PEM")
    {
        throwaway.push("SCANPAY_WXPAY_CERT_SERIAL");
    }
    let signer =
        MerchantSigner::from_pem(&key_pem, &r.mch_id, &serial).map_err(|e| err(&r.key_pem, &e))?;
    let apiv3_key = ApiV3Key::new(&r.apiv3_key.value).map_err(|e| err(&r.apiv3_key, &e))?;
    if r.apiv3_key.value == r.builtin_apiv3 {
        throwaway.push("SCANPAY_WXPAY_APIV3_KEY");
    }
    let public_key = match (read(&r.public_key_pem)?, r.public_key_id.value.trim()) {
        (None, "") => None,
        (Some(pem), id) if id.starts_with("PUB_KEY_ID_") && id.len() <= 64 => {
            WechatKeys::default()
                .add_public_key_pem(id, &pem)
                .map_err(|_| err(&r.public_key_pem, "is not a PEM public key (pub_key.pem: -----BEGIN PUBLIC KEY-----)"))?;
            Some((id.to_string(), pem))
        }
        (Some(_), "") => {
            return Err(err(
                &r.public_key_pem,
                "needs SCANPAY_WXPAY_PUBLIC_KEY_ID too (PUB_KEY_ID_…, shown beside the key in the merchant platform)",
            ))
        }
        (Some(_), _) => return Err(err(&r.public_key_id, "must start with PUB_KEY_ID_")),
        (None, _) => {
            return Err(err(
                &r.public_key_id,
                "needs SCANPAY_WXPAY_PUBLIC_KEY_PEM too (the pub_key.pem file it names)",
            ))
        }
    };
    Ok(WxPayV3 {
        signer,
        apiv3_key,
        public_key,
        throwaway,
    })
}

/// The sandbox's published throwaway merchant (its key, serial and APIv3 key).
pub fn sandbox_credentials(mch_id: &str) -> WxPayV3 {
    WxPayV3 {
        signer: MerchantSigner::from_pem(
            throwaway::SANDBOX_MERCHANT_KEY,
            mch_id,
            throwaway::SANDBOX_MERCHANT_SERIAL,
        )
        .expect("the throwaway key reads"),
        apiv3_key: ApiV3Key::new(throwaway::SANDBOX_APIV3_KEY).expect("32 characters"),
        public_key: None,
        throwaway: vec![
            "SCANPAY_WXPAY_KEY_PEM",
            "SCANPAY_WXPAY_CERT_SERIAL",
            "SCANPAY_WXPAY_APIV3_KEY",
        ],
    }
}

#[cfg(test)]
mod tests;
