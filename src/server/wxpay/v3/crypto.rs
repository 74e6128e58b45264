//! API v3's cryptography, over well-kept crates (ring signs, with blinding, and seals; RustCrypto's
//! `rsa` reads the PEM keys and verifies WeChat's public-key signatures): the message a
//! request signs (§1.1) and its `Authorization` header (§1.2), the verification of an answer or
//! notify over its raw body against the key its `Wechatpay-Serial` names, within ±5 minutes
//! (§2), and the AES-256-GCM of notify resources and platform certificates (§4.2).

use std::collections::HashMap;
use std::fmt;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine as _;
use std::sync::Arc;

use rsa::pkcs1v15::VerifyingKey;
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey};
use sha2::Sha256;

/// The scheme of the `Authorization` header and of `Wechatpay-Signature-Type`.
pub const SCHEME: &str = "WECHATPAY2-SHA256-RSA2048";
/// WeChat's probes start their signature with this; they must never verify.
pub const PROBE_PREFIX: &str = "WECHATPAY/SIGNTEST/";
/// Answers and notifies older or newer than this are refused (replays).
pub const WINDOW_S: i64 = 5 * 60;

/// `METHOD\nCANONICAL_URL\nTIMESTAMP\nNONCE\nBODY\n`: each line ends with `\n`, the last too;
/// the URL is the path with its query exactly as sent, the body the exact bytes sent.
pub fn request_message(method: &str, url: &str, timestamp: i64, nonce: &str, body: &str) -> String {
    format!("{method}\n{url}\n{timestamp}\n{nonce}\n{body}\n")
}

/// `TIMESTAMP\nNONCE\nBODY\n` over the raw body of an answer or notify.
pub fn answer_message(timestamp: &str, nonce: &str, body: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(body.len() + 64);
    m.extend_from_slice(timestamp.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(nonce.as_bytes());
    m.push(b'\n');
    m.extend_from_slice(body);
    m.push(b'\n');
    m
}

/// The merchant's API private key (`apiclient_key.pem`, PKCS#8) with its certificate's serial
/// and the merchant number: what signs every request. Never printed. Signing is ring's (constant
/// time, blinded): this key signs every call, and RustCrypto's `rsa` is not hardened against
/// timing (RUSTSEC-2023-0071).
#[derive(Clone)]
pub struct MerchantSigner {
    key: Arc<ring::signature::RsaKeyPair>,
    public: VerifyingKey<Sha256>,
    pub mchid: String,
    pub serial_no: String,
}

impl fmt::Debug for MerchantSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "MerchantSigner({}, serial {}, key redacted)",
            self.mchid, self.serial_no
        )
    }
}

impl MerchantSigner {
    /// Err says what is wrong with the key, never what it holds.
    pub fn from_pem(pem: &str, mchid: &str, serial_no: &str) -> Result<Self, String> {
        let key = rsa::RsaPrivateKey::from_pkcs8_pem(pem).map_err(|_| {
            "the merchant API key is not a PKCS#8 PEM private key (apiclient_key.pem: \
             -----BEGIN PRIVATE KEY-----)"
                .to_string()
        })?;
        let der = key
            .to_pkcs8_der()
            .map_err(|_| "the merchant API key cannot be encoded".to_string())?;
        let pair = ring::signature::RsaKeyPair::from_pkcs8(der.as_bytes()).map_err(|_| {
            "the merchant API key must be an RSA key of 2048 bits or more".to_string()
        })?;
        Ok(MerchantSigner {
            key: Arc::new(pair),
            public: VerifyingKey::new(key.to_public_key()),
            mchid: mchid.to_string(),
            serial_no: serial_no.to_string(),
        })
    }

    /// Base64 of RSASSA-PKCS1-v1_5 / SHA-256 over `message` (the signature is deterministic;
    /// the blinding inside is not).
    pub fn sign(&self, message: &[u8]) -> String {
        let mut sig = vec![0u8; self.key.public().modulus_len()];
        self.key
            .sign(
                &ring::signature::RSA_PKCS1_SHA256,
                &ring::rand::SystemRandom::new(),
                message,
                &mut sig,
            )
            .expect("a buffer of the modulus' length");
        B64.encode(sig)
    }

    /// The `Authorization` header for one request (the pairs in the documented order).
    pub fn authorization(
        &self,
        method: &str,
        url: &str,
        timestamp: i64,
        nonce: &str,
        body: &str,
    ) -> String {
        let signature = self.sign(request_message(method, url, timestamp, nonce, body).as_bytes());
        format!(
            "{SCHEME} mchid=\"{}\",nonce_str=\"{nonce}\",signature=\"{signature}\",\
             timestamp=\"{timestamp}\",serial_no=\"{}\"",
            self.mchid, self.serial_no
        )
    }

    /// The public half, for a verifier (the sandbox checks requests with it).
    pub fn verifying_key(&self) -> VerifyingKey<Sha256> {
        self.public.clone()
    }
}

/// The signature headers of an answer or notify.
#[derive(Debug, Clone, Default)]
pub struct SignedBy {
    pub timestamp: String,
    pub nonce: String,
    pub signature: String,
    pub serial: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("the {0} header is missing")]
    Missing(&'static str),
    #[error("signed by {0}, a key this merchant does not hold")]
    UnknownSerial(String),
    #[error("signed at {0}, outside five minutes of now")]
    Stale(String),
    #[error("Wechatpay-Timestamp {0:?} is not Unix seconds")]
    BadTimestamp(String),
    #[error("a signature probe (WECHATPAY/SIGNTEST/)")]
    Probe,
    #[error("the signature does not match")]
    BadSignature,
}

/// WeChat's verification keys by the id `Wechatpay-Serial` names: the WeChat Pay public key's
/// `PUB_KEY_ID_…` and/or platform certificate serials (both during the migration window).
#[derive(Clone, Default)]
pub struct WechatKeys {
    /// Each key as PKCS#1 DER, verified with ring: six times faster than RustCrypto's `rsa`
    /// here (benches/v3.rs), and every answer and notify is verified.
    keys: HashMap<String, Arc<[u8]>>,
    /// When a platform certificate's key stops being good (epoch ms); the public key has none.
    until: HashMap<String, i64>,
}

impl fmt::Debug for WechatKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.keys.keys()).finish()
    }
}

impl WechatKeys {
    /// Adds a public key (`pub_key.pem`, SubjectPublicKeyInfo PEM) under its id.
    pub fn add_public_key_pem(&mut self, id: &str, pem: &str) -> Result<(), String> {
        let key = rsa::RsaPublicKey::from_public_key_pem(pem).map_err(|_| {
            format!("the key for {id} is not a PEM public key (-----BEGIN PUBLIC KEY-----)")
        })?;
        self.add(id, VerifyingKey::new(key));
        Ok(())
    }

    pub fn add(&mut self, id: &str, key: VerifyingKey<Sha256>) {
        use rsa::pkcs1::EncodeRsaPublicKey;
        let public: &rsa::RsaPublicKey = key.as_ref();
        let der = public
            .to_pkcs1_der()
            .expect("an RSA public key encodes")
            .into_vec();
        self.keys.insert(id.to_string(), der.into());
    }

    /// A platform certificate's key, good until `not_after_ms`.
    pub fn add_until(&mut self, id: &str, key: VerifyingKey<Sha256>, not_after_ms: i64) {
        self.add(id, key);
        self.until.insert(id.to_string(), not_after_ms);
    }

    pub fn remove(&mut self, id: &str) {
        self.keys.remove(id);
        self.until.remove(id);
    }

    /// Holds `id`, and (a certificate) not expired at `now_s`.
    pub fn holds_valid(&self, id: &str, now_s: i64) -> bool {
        self.keys.contains_key(id) && self.until.get(id).is_none_or(|t| now_s * 1000 <= *t)
    }

    pub fn holds(&self, id: &str) -> bool {
        self.keys.contains_key(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.keys.keys().map(String::as_str)
    }

    /// Verifies `body` (the raw bytes received) as signed by `h`, at `now_s` (Unix seconds).
    pub fn verify(&self, h: &SignedBy, body: &[u8], now_s: i64) -> Result<(), VerifyError> {
        let need = |v: &str, name| {
            if v.is_empty() {
                Err(VerifyError::Missing(name))
            } else {
                Ok(())
            }
        };
        need(&h.signature, "Wechatpay-Signature")?;
        need(&h.timestamp, "Wechatpay-Timestamp")?;
        need(&h.nonce, "Wechatpay-Nonce")?;
        need(&h.serial, "Wechatpay-Serial")?;
        if h.signature.starts_with(PROBE_PREFIX) {
            return Err(VerifyError::Probe);
        }
        // Digits only (no sign, no overflow): Unix seconds.
        let at = Some(&h.timestamp)
            .filter(|t| t.len() <= 12 && t.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|t| t.parse::<i64>().ok())
            .ok_or_else(|| VerifyError::BadTimestamp(h.timestamp.clone()))?;
        if (now_s - at).abs() >= WINDOW_S {
            return Err(VerifyError::Stale(h.timestamp.clone()));
        }
        let key = self
            .keys
            .get(&h.serial)
            .ok_or_else(|| VerifyError::UnknownSerial(h.serial.clone()))?;
        // An expired certificate is as good as none: WeChat has a newer one by then.
        if self.until.get(&h.serial).is_some_and(|t| now_s * 1000 > *t) {
            return Err(VerifyError::UnknownSerial(h.serial.clone()));
        }
        let sig = B64
            .decode(h.signature.as_bytes())
            .map_err(|_| VerifyError::BadSignature)?;
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA256,
            &key[..],
        )
        .verify(&answer_message(&h.timestamp, &h.nonce, body), &sig)
        .map_err(|_| VerifyError::BadSignature)
    }
}

/// The APIv3 key: exactly 32 ASCII bytes (AES-256). Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiV3Key([u8; 32]);

impl fmt::Debug for ApiV3Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiV3Key(<32 bytes, redacted>)")
    }
}

impl ApiV3Key {
    pub fn new(key: &str) -> Result<Self, String> {
        let b = key.as_bytes();
        if !key.is_ascii() || b.len() != 32 {
            return Err(format!(
                "the APIv3 key must be exactly 32 ASCII characters (this one has {})",
                key.chars().count()
            ));
        }
        let mut k = [0u8; 32];
        k.copy_from_slice(b);
        Ok(ApiV3Key(k))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecryptError {
    #[error("the nonce must be 12 characters")]
    Nonce,
    #[error("the ciphertext is not base64 or too short")]
    Encoding,
    #[error("the resource does not decrypt (wrong APIv3 key, or altered)")]
    Tag,
}

/// AES-GCM open of a resource: `ciphertext` is base64 of (data ‖ 16-byte tag), the IV the 12
/// bytes of `nonce`, the AAD `associated_data`.
pub fn decrypt(
    key: &ApiV3Key,
    nonce: &str,
    associated_data: &str,
    ciphertext: &str,
) -> Result<Vec<u8>, DecryptError> {
    open(
        &ring::aead::AES_256_GCM,
        &key.0,
        nonce,
        associated_data,
        ciphertext,
    )
}

/// The sandbox's side: base64 of (data ‖ tag).
pub fn encrypt(key: &ApiV3Key, nonce: &str, associated_data: &str, plaintext: &[u8]) -> String {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
    let k = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &key.0).expect("32 bytes"));
    let iv: [u8; 12] = nonce.as_bytes().try_into().expect("a 12-character nonce");
    let mut data = plaintext.to_vec();
    k.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(iv),
        Aad::from(associated_data.as_bytes()),
        &mut data,
    )
    .expect("sealing into a Vec does not fail");
    B64.encode(data)
}

pub(crate) fn open(
    alg: &'static ring::aead::Algorithm,
    key: &[u8],
    nonce: &str,
    associated_data: &str,
    ciphertext: &str,
) -> Result<Vec<u8>, DecryptError> {
    use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey};
    let iv: [u8; 12] = nonce
        .as_bytes()
        .try_into()
        .map_err(|_| DecryptError::Nonce)?;
    let mut data = B64
        .decode(ciphertext.as_bytes())
        .map_err(|_| DecryptError::Encoding)?;
    if data.len() < 16 {
        return Err(DecryptError::Encoding);
    }
    let k = LessSafeKey::new(UnboundKey::new(alg, key).map_err(|_| DecryptError::Tag)?);
    let plain = k
        .open_in_place(
            Nonce::assume_unique_for_key(iv),
            Aad::from(associated_data.as_bytes()),
            &mut data,
        )
        .map_err(|_| DecryptError::Tag)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests;
