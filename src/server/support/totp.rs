//! TOTP (RFC 6238: HMAC-SHA1, 30-second steps, 6 digits — what every authenticator app reads
//! from an `otpauth://` QR code) and its base32 (RFC 4648). The HMAC and SHA-1 are RustCrypto's;
//! here only the few lines the RFC specifies around them.

use hmac::{Hmac, Mac};
use sha1::Sha1;

pub const STEP_SECS: i64 = 30;
const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// A new 160-bit secret (RFC 4226's recommended length).
pub fn new_secret() -> Vec<u8> {
    (0..20).map(|_| rand::random::<u8>()).collect()
}

/// RFC 4648 base32, unpadded (as authenticator apps take it).
pub fn base32(bytes: &[u8]) -> String {
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let n = u64::from_be_bytes([0, 0, 0, buf[0], buf[1], buf[2], buf[3], buf[4]]);
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..chars {
            out.push(ALPHABET[((n >> (35 - 5 * i)) & 31) as usize] as char);
        }
    }
    out
}

pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let (mut bits, mut value, mut out) = (0u32, 0u64, Vec::new());
    for c in s.trim_end_matches('=').bytes() {
        let v = ALPHABET.iter().position(|a| *a == c.to_ascii_uppercase())? as u64;
        value = (value << 5) | v;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push((value >> bits) as u8);
            value &= (1 << bits) - 1;
        }
    }
    Some(out)
}

/// The code for time step `step` (RFC 4226 §5.3's dynamic truncation), `digits` long.
pub fn code(secret: &[u8], step: i64, digits: u32) -> String {
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("any key length");
    mac.update(&step.to_be_bytes());
    let h = mac.finalize().into_bytes();
    let offset = (h[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([
        h[offset] & 0x7f,
        h[offset + 1],
        h[offset + 2],
        h[offset + 3],
    ]);
    format!(
        "{:0width$}",
        bin % 10u32.pow(digits),
        width = digits as usize
    )
}

/// The step `code` (six digits) belongs to, now or one step either side (clocks drift), and
/// later than `after` (a code is used once); None when it is none of them.
pub fn verify(secret: &[u8], code_given: &str, now_secs: i64, after: Option<i64>) -> Option<i64> {
    let given = code_given.trim().replace(' ', "");
    if given.len() != 6 || !given.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let now = now_secs.div_euclid(STEP_SECS);
    [now - 1, now, now + 1].into_iter().find(|s| {
        after.is_none_or(|a| *s > a) && {
            use subtle::ConstantTimeEq;
            bool::from(code(secret, *s, 6).as_bytes().ct_eq(given.as_bytes()))
        }
    })
}

/// What an authenticator app scans.
pub fn otpauth_url(issuer: &str, account: &str, secret_b32: &str) -> String {
    let enc = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    format!(
        "otpauth://totp/{}:{}?secret={secret_b32}&issuer={}&algorithm=SHA1&digits=6&period=30",
        enc(issuer),
        enc(account),
        enc(issuer)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 6238 Appendix B (SHA-1, the 20-byte ASCII secret), 8 digits.
    #[test]
    fn rfc_6238_vectors() {
        let secret = b"12345678901234567890";
        for (t, want) in [
            (59, "94287082"),
            (1111111109, "07081804"),
            (1111111111, "14050471"),
            (1234567890, "89005924"),
            (2000000000, "69279037"),
            (20000000000, "65353130"),
        ] {
            assert_eq!(code(secret, t / STEP_SECS, 8), want, "T={t}");
        }
        // Six digits are the last six; one step either side is accepted, a used step is not.
        assert_eq!(verify(secret, "287082", 59, None), Some(1));
        assert_eq!(verify(secret, "287082", 59 + 30, None), Some(1));
        assert_eq!(verify(secret, "287082", 59 + 90, None), None);
        assert_eq!(verify(secret, "287082", 59, Some(1)), None, "replayed");
        assert_eq!(verify(secret, "28708x", 59, None), None);
    }

    /// RFC 4648 §10.
    #[test]
    fn rfc_4648_base32_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(plain.as_bytes()), enc);
            assert_eq!(base32_decode(enc).unwrap(), plain.as_bytes());
        }
        assert_eq!(base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
        assert!(base32_decode("M1").is_none());
        let s = new_secret();
        assert_eq!(base32_decode(&base32(&s)).unwrap(), s);
        assert!(otpauth_url("scanpay", "alice", "MZXW6")
            .starts_with("otpauth://totp/scanpay:alice?secret=MZXW6&issuer=scanpay"));
    }
}
