//! The sandbox's own WeChat keys: throwaway RSA-2048 keys made once per process, never written
//! anywhere. One stands for the WeChat Pay public key, the other for a platform certificate's
//! key, with a self-signed certificate over it (rcgen) as `/v3/certificates` serves it.

use std::sync::OnceLock;

use rand::Rng;
use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey, LineEnding};

use super::PlatformKey;
use crate::server::support::clock::{format_beijing, now_ms};
use crate::server::wxpay::v3::crypto::MerchantSigner;

static KEYS: OnceLock<(PlatformKey, PlatformKey)> = OnceLock::new();

/// (public key, certificate), the same for every sandbox of this process.
pub(super) fn platform_keys() -> (PlatformKey, PlatformKey) {
    KEYS.get_or_init(|| (public_key(), certificate())).clone()
}

/// A fresh RSA-2048 key: (PKCS#8 PEM, SubjectPublicKeyInfo PEM).
fn rsa_key() -> (String, String) {
    let key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).expect("RSA-2048 generation");
    let private = key
        .to_pkcs8_pem(LineEnding::LF)
        .expect("PKCS#8 encoding")
        .to_string();
    let public = key
        .to_public_key()
        .to_public_key_pem(LineEnding::LF)
        .expect("SPKI encoding");
    (private, public)
}

fn digits(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// `PUB_KEY_ID_` + 34 digits, as WeChat's (§3.2).
fn public_key() -> PlatformKey {
    let id = format!("PUB_KEY_ID_{}", digits(34));
    let (private, public_pem) = rsa_key();
    PlatformKey {
        signer: MerchantSigner::from_pem(&private, "", &id).expect("a fresh RSA key"),
        id,
        public_pem,
        cert_pem: None,
    }
}

/// A platform certificate: subject like Tenpay's, a 20-byte serial (40 hex characters, its id),
/// valid five years from today (UTC).
fn certificate() -> PlatformKey {
    let mut serial = [0u8; 20];
    rand::thread_rng().fill(&mut serial[..]);
    // Positive and without a leading zero byte, so the DER integer is exactly these 20 bytes.
    serial[0] = 0x10 | (serial[0] & 0x6f);
    let id: String = serial.iter().map(|b| format!("{b:02X}")).collect();
    let (private, public_pem) = rsa_key();
    let pair = rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&private, &rcgen::PKCS_RSA_SHA256)
        .expect("rcgen takes an RSA PKCS#8 key");
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(
        rcgen::DnType::CommonName,
        "Tenpay.com sign (scanpay sandbox)",
    );
    dn.push(
        rcgen::DnType::OrganizationalUnitName,
        "Tenpay.com CA Center",
    );
    dn.push(rcgen::DnType::OrganizationName, "Tenpay.com");
    params.distinguished_name = dn;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    // Today's UTC date: Beijing's wall time eight hours back.
    let today = format_beijing(now_ms() - 8 * 3600 * 1000);
    let n = |r: std::ops::Range<usize>| today[r].parse::<u8>().expect("digits");
    let year: i32 = today[0..4].parse().expect("digits");
    let (month, day) = (n(4..6), n(6..8));
    params.not_before = rcgen::date_time_ymd(year, month, day);
    // Day 28 at most, so 29 February has a date five years on.
    params.not_after = rcgen::date_time_ymd(year + 5, month, day.min(28));
    let cert = params.self_signed(&pair).expect("self-signing");
    PlatformKey {
        signer: MerchantSigner::from_pem(&private, "", &id).expect("a fresh RSA key"),
        id,
        public_pem,
        cert_pem: Some(cert.pem()),
    }
}

/// A certificate's validity as Unix milliseconds (not before, not after).
pub(super) fn validity(cert_pem: &str) -> Option<(i64, i64)> {
    use x509_cert::der::DecodePem;
    let cert = x509_cert::Certificate::from_pem(cert_pem).ok()?;
    let v = &cert.tbs_certificate.validity;
    let ms = |t: &x509_cert::time::Time| t.to_unix_duration().as_millis() as i64;
    Some((ms(&v.not_before), ms(&v.not_after)))
}
