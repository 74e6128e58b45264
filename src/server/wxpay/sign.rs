//! Request/response signing for WeChat Pay v2 (reference §1).
//!
//! The signed string is every non-empty parameter except `sign`, sorted by name in byte order,
//! joined as raw `k=v` pairs with `&`, then `&key=<API key>`.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use md5::{Digest, Md5};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// The two v2 signature algorithms. `MD5` is the protocol default when `sign_type` is absent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SignType {
    #[default]
    Md5,
    HmacSha256,
}

impl SignType {
    pub fn as_str(self) -> &'static str {
        match self {
            SignType::Md5 => "MD5",
            SignType::HmacSha256 => "HMAC-SHA256",
        }
    }
}

impl fmt::Display for SignType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SignType {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "MD5" => Ok(SignType::Md5),
            "HMAC-SHA256" => Ok(SignType::HmacSha256),
            other => Err(format!(
                "unknown sign type {other:?}: expected MD5 or HMAC-SHA256"
            )),
        }
    }
}

/// The exact string that gets hashed (exposed for tests and debugging; it contains the key,
/// so never log it).
pub fn string_to_sign(params: &BTreeMap<String, String>, key: &str) -> String {
    let mut s = String::with_capacity(256);
    for (k, v) in params {
        if k == "sign" || v.is_empty() {
            continue;
        }
        s.push_str(k);
        s.push('=');
        s.push_str(v);
        s.push('&');
    }
    s.push_str("key=");
    s.push_str(key);
    s
}

/// Upper-case hex signature of `params` under `key`.
pub fn sign(params: &BTreeMap<String, String>, key: &str, sign_type: SignType) -> String {
    let msg = string_to_sign(params, key);
    match sign_type {
        SignType::Md5 => upper_hex(&Md5::digest(msg.as_bytes())),
        SignType::HmacSha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes())
                .expect("HMAC accepts any key length");
            mac.update(msg.as_bytes());
            upper_hex(&mac.finalize().into_bytes())
        }
    }
}

/// Checks `params["sign"]` in constant time. A missing `sign` never verifies.
pub fn verify(params: &BTreeMap<String, String>, key: &str, sign_type: SignType) -> bool {
    let Some(given) = params.get("sign") else {
        return false;
    };
    let expected = sign(params, key, sign_type);
    // Case-insensitive hex: WeChat sends upper case, some clients lower.
    let given = given.to_ascii_uppercase();
    given.len() == expected.len() && bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

fn upper_hex(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(HEX[(b >> 4) as usize] as char);
        out.push(HEX[(b & 0xf) as usize] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "192006250b4c09247ec02edce69f6a2d";

    fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn v1() -> BTreeMap<String, String> {
        map(&[
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("device_info", "1000"),
            ("body", "test"),
            ("nonce_str", "ibuaiVcKdpRxkhJA"),
        ])
    }

    fn v3() -> BTreeMap<String, String> {
        map(&[
            ("appid", "wxd930ea5d5a258f4f"),
            ("mch_id", "10000100"),
            ("nonce_str", "ibuaiVcKdpRxkhJA"),
            ("body", "测试商品"),
            ("out_trade_no", "20150806125346"),
            ("total_fee", "1"),
            ("spbill_create_ip", "123.12.12.123"),
            ("notify_url", "https://example.com/wxpay/notify"),
            ("trade_type", "NATIVE"),
            ("product_id", "12235413214070356458058"),
            ("attach", ""),
        ])
    }

    #[test]
    fn v1_official_doc_example() {
        assert_eq!(
            string_to_sign(&v1(), KEY),
            "appid=wxd930ea5d5a258f4f&body=test&device_info=1000&mch_id=10000100&nonce_str=ibuaiVcKdpRxkhJA&key=192006250b4c09247ec02edce69f6a2d"
        );
        assert_eq!(
            sign(&v1(), KEY, SignType::Md5),
            "9A0A8659F005D6984697E2CA0A9CF3B7"
        );
        assert_eq!(
            sign(&v1(), KEY, SignType::HmacSha256),
            "6A9AE1657590FD6257D693A078E1C3E4BB6BA4DC30B23E0EE2496E54170DACD6"
        );
    }

    #[test]
    fn v2_wechatpy_vector() {
        let p = map(&[("test1", "test1"), ("test2", "test2")]);
        assert_eq!(
            sign(&p, KEY, SignType::Md5),
            "1E3A8D73B5A4AEE787C0F68B5DAB8520"
        );
        assert_eq!(
            sign(&p, KEY, SignType::HmacSha256),
            "EDAC6D70D2FDF5A2382F8204FC96A1918017E46ACC5297F565ED1A7610ACF659"
        );
    }

    #[test]
    fn v3_chinese_body_and_empty_attach() {
        assert_eq!(
            sign(&v3(), KEY, SignType::Md5),
            "09DDA84DA68A0FAD10C400E36B309C93"
        );
        assert_eq!(
            sign(&v3(), KEY, SignType::HmacSha256),
            "907570FC5743C9C860DC4717FE03B7F722167E7FB06631BA921B46A37E1E47C6"
        );
        let mut with_type = v3();
        with_type.insert("sign_type".into(), "HMAC-SHA256".into());
        assert_eq!(
            sign(&with_type, KEY, SignType::HmacSha256),
            "326B5E7E840DD3B9AC0EE78F6605F5E066A1AD96E62D9A839C043555055031E8"
        );
    }

    #[test]
    fn verify_requires_sign_and_rejects_tampering() {
        let mut p = v1();
        assert!(
            !verify(&p, KEY, SignType::Md5),
            "a missing sign must not verify"
        );
        p.insert("sign".into(), sign(&p, KEY, SignType::Md5));
        assert!(verify(&p, KEY, SignType::Md5));
        assert!(!verify(&p, KEY, SignType::HmacSha256), "wrong algorithm");
        assert!(!verify(&p, "another-key", SignType::Md5), "wrong key");
        p.insert("body".into(), "test2".into());
        assert!(!verify(&p, KEY, SignType::Md5), "tampered field");
    }

    #[test]
    fn sign_type_parses_only_known_names() {
        assert_eq!("MD5".parse::<SignType>(), Ok(SignType::Md5));
        assert_eq!("HMAC-SHA256".parse::<SignType>(), Ok(SignType::HmacSha256));
        assert!("md5".parse::<SignType>().is_err());
        assert!("SHA1".parse::<SignType>().is_err());
    }
}
