//! Platform certificates (wxpay-v3.md §3.1): fetched from `/v3/certificates`, each decrypted with
//! the APIv3 key and read (its serial must be the one announced, its validity current), kept by
//! serial beside any public key, fetched again every 12 hours — well inside the overlap WeChat
//! gives a new certificate before the old expires — and when an answer names a serial not held
//! (at most once a minute, so a forged serial cannot make us hammer WeChat).

use std::sync::Mutex;

use reqwest::Method;
use rsa::pkcs1v15::VerifyingKey;
use rsa::pkcs8::DecodePublicKey;

use super::client::V3Client;
use super::crypto::{self, WechatKeys};
use crate::server::support::clock::{now_ms, parse_rfc3339};

const REFRESH_EVERY_MS: i64 = 12 * 3600 * 1000;
const UNKNOWN_SERIAL_EVERY_MS: i64 = 60 * 1000;

/// What is known of the certificates fetched so far.
#[derive(Default)]
pub struct Certificates {
    state: Mutex<State>,
    /// One fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct State {
    fetched_ms: Option<i64>,
    /// The last fetch made because an answer named a serial not held.
    for_unknown_ms: Option<i64>,
    /// The serial of the certificate that expires last (asked for in `Wechatpay-Serial`).
    newest: Option<String>,
    /// The certificates held now (a fetch replaces them; the public key stays).
    held: Vec<String>,
}

#[derive(serde::Deserialize)]
struct List {
    data: Vec<Item>,
}

#[derive(serde::Deserialize)]
struct Item {
    serial_no: String,
    #[serde(default)]
    expire_time: String,
    encrypt_certificate: Encrypted,
}

#[derive(serde::Deserialize)]
struct Encrypted {
    #[serde(default)]
    associated_data: String,
    nonce: String,
    ciphertext: String,
}

/// A certificate's serial number in upper-case hex, as `serial_no` wants it.
pub fn serial_of(cert_pem: &str) -> Result<String, String> {
    use x509_cert::der::DecodePem;
    let cert = x509_cert::Certificate::from_pem(cert_pem.trim().as_bytes())
        .map_err(|_| "is not a PEM certificate (apiclient_cert.pem)".to_string())?;
    Ok(hex_upper(cert.tbs_certificate.serial_number.as_bytes()))
}

fn hex_upper(bytes: &[u8]) -> String {
    // DER keeps a leading zero on serials whose top bit is set; WeChat's serials do not show it.
    let bytes = match bytes {
        [0, rest @ ..] if !rest.is_empty() => rest,
        b => b,
    };
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

/// A platform certificate's serial, key and end of validity (epoch ms).
type Cert = (String, VerifyingKey<sha2::Sha256>, i64);

/// A downloaded certificate's serial (upper-case hex), verifying key and end of validity, or why
/// it is refused.
pub fn read_certificate(pem: &str, announced: &str, now_ms: i64) -> Result<Cert, String> {
    use x509_cert::der::{DecodePem, Encode};
    let cert = x509_cert::Certificate::from_pem(pem.trim().as_bytes())
        .map_err(|_| "not a PEM certificate".to_string())?;
    let tbs = &cert.tbs_certificate;
    let serial = serial_of(pem)?;
    if !serial.eq_ignore_ascii_case(announced) {
        return Err(format!(
            "announced as {announced} but its serial is {serial}"
        ));
    }
    let not_after = tbs.validity.not_after.to_unix_duration().as_millis() as i64;
    let not_before = tbs.validity.not_before.to_unix_duration().as_millis() as i64;
    if now_ms > not_after || now_ms < not_before {
        return Err(format!("{serial} is not valid now"));
    }
    let spki = tbs
        .subject_public_key_info
        .to_der()
        .map_err(|_| "unreadable public key".to_string())?;
    let key = rsa::RsaPublicKey::from_public_key_der(&spki)
        .map_err(|_| format!("{serial} does not hold an RSA key"))?;
    Ok((serial, VerifyingKey::new(key), not_after))
}

impl V3Client {
    /// The serial of the newest platform certificate held, if any.
    pub(super) fn newest_certificate(&self) -> Option<String> {
        self.certificates
            .state
            .lock()
            .expect("certs lock")
            .newest
            .clone()
    }

    /// In certificate mode, fetches them when none were fetched yet; in either mode, again once
    /// the last fetch is 12 hours old (with a public key, only once certificates were in use).
    pub(super) async fn ensure_certificates(&self) {
        if self.ask_sandbox {
            return self.adopt_sandbox_keys().await;
        }
        if self.certificates_due() {
            self.refresh_certificates(None).await;
        }
    }

    /// In certificate mode, none fetched yet; in either, the last good fetch 12 hours old.
    fn certificates_due(&self) -> bool {
        let s = self.certificates.state.lock().expect("certs lock");
        match s.fetched_ms {
            None => self.certificate_mode,
            Some(t) => now_ms() - t > REFRESH_EVERY_MS,
        }
    }

    /// A sandbox's keys, asked of it once (again a minute after a failure).
    async fn adopt_sandbox_keys(&self) {
        let c = &self.certificates;
        let _one = c.fetching.lock().await;
        let held = self.keys.read().expect("keys lock").ids().next().is_some();
        let asked = c.state.lock().expect("certs lock").fetched_ms;
        if held || asked.is_some_and(|t| now_ms() - t < UNKNOWN_SERIAL_EVERY_MS) {
            return;
        }
        c.state.lock().expect("certs lock").fetched_ms = Some(now_ms());
        #[derive(serde::Deserialize)]
        struct SandboxKeys {
            mode: String,
            public_key_id: String,
            public_key_pem: String,
            certificate_serial: String,
            certificate_pem: Option<String>,
        }
        let got = async {
            let url = self.url("admin/v3/public-key").map_err(|e| e.to_string())?;
            let r = self.http.get(url).send().await.map_err(|e| e.to_string())?;
            let body = r.bytes().await.map_err(|e| e.to_string())?;
            serde_json::from_slice::<SandboxKeys>(&body).map_err(|e| e.to_string())
        }
        .await;
        match got {
            Ok(k) => {
                let mut held = self.keys.write().expect("keys lock");
                if let Err(e) = held.add_public_key_pem(&k.public_key_id, &k.public_key_pem) {
                    tracing::error!(error = %e, "the sandbox's public key");
                }
                if let Some(pem) = &k.certificate_pem {
                    match read_certificate(pem, &k.certificate_serial, now_ms()) {
                        Ok((serial, key, until)) => held.add_until(&serial, key, until),
                        Err(e) => tracing::error!(error = %e, "the sandbox's certificate"),
                    }
                }
                if k.mode == "Certificate" {
                    c.state.lock().expect("certs lock").newest = Some(k.certificate_serial);
                }
                tracing::info!(mode = %k.mode, "WeChat Pay sandbox keys adopted (a sandbox, not WeChat)");
            }
            Err(e) => tracing::error!(error = %e, "the sandbox's keys could not be had"),
        }
    }

    /// Fetches the certificates now (for `unknown`: unless it became known meanwhile or a fetch
    /// was made within the minute). Failures are logged: answers then stay unverifiable.
    pub(super) async fn refresh_certificates(&self, unknown: Option<&str>) {
        if self.ask_sandbox {
            // A notify may come before this process made a call: the sandbox's keys, once.
            return self.adopt_sandbox_keys().await;
        }
        let c = &self.certificates;
        // A public key id is configured or not: no download brings one.
        if unknown.is_some_and(|s| s.starts_with("PUB_KEY_ID_")) {
            return;
        }
        let _one = c.fetching.lock().await;
        // Another caller may have fetched while this one waited.
        if unknown.is_none() && !self.certificates_due() {
            return;
        }
        if let Some(serial) = unknown {
            if self
                .keys
                .read()
                .expect("keys lock")
                .holds_valid(serial, now_ms() / 1000)
            {
                return;
            }
            let mut s = c.state.lock().expect("certs lock");
            if s.for_unknown_ms
                .is_some_and(|t| now_ms() - t < UNKNOWN_SERIAL_EVERY_MS)
            {
                return;
            }
            s.for_unknown_ms = Some(now_ms());
        }
        match self.fetch_certificates().await {
            Ok((certs, newest)) => {
                let n = certs.len();
                let mut s = c.state.lock().expect("certs lock");
                {
                    // The list is the truth: certificates WeChat no longer lists are dropped.
                    let mut held = self.keys.write().expect("keys lock");
                    for old in &s.held {
                        held.remove(old);
                    }
                    s.held.clear();
                    for (serial, key, until) in certs {
                        held.add_until(&serial, key, until);
                        s.held.push(serial);
                    }
                }
                s.fetched_ms = Some(now_ms());
                if newest.is_some() {
                    s.newest = newest;
                }
                tracing::info!(certificates = n, "WeChat Pay platform certificates fetched");
            }
            Err(e) => {
                // In certificate mode tried again in a minute (not on every call meanwhile); with
                // a public key, only when another answer names a certificate (a forged notify's
                // made-up serial must not start a schedule).
                if self.certificate_mode {
                    let mut s = c.state.lock().expect("certs lock");
                    if s.held.is_empty() {
                        s.fetched_ms = Some(now_ms() - REFRESH_EVERY_MS + UNKNOWN_SERIAL_EVERY_MS);
                    }
                }
                tracing::error!(error = %e, "WeChat Pay platform certificates not fetched");
            }
        }
    }

    /// `GET /v3/certificates`: the answer is signed by one of the certificates it carries, so it
    /// is verified with them (and with any key already held) once they are decrypted.
    async fn fetch_certificates(&self) -> Result<(Vec<Cert>, Option<String>), String> {
        let url = self.url("v3/certificates").map_err(|e| e.to_string())?;
        let answer = self
            .request(Method::GET, url, None, 256 * 1024, None)
            .await
            .map_err(|e| e.to_string())?;
        if answer.status != 200 {
            return Err(format!(
                "HTTP {}: {}",
                answer.status,
                String::from_utf8_lossy(&answer.body)
            ));
        }
        let list: List = serde_json::from_slice(&answer.body)
            .map_err(|e| format!("unreadable certificate list: {e}"))?;
        let now = now_ms();
        let mut got = Vec::new();
        let mut newest: Option<(i64, String)> = None;
        for item in list.data {
            let e = &item.encrypt_certificate;
            let pem = crypto::decrypt(&self.apiv3_key, &e.nonce, &e.associated_data, &e.ciphertext)
                .map_err(|err| err.to_string())
                .and_then(|p| String::from_utf8(p).map_err(|_| "not text".to_string()));
            let read = pem.and_then(|pem| read_certificate(&pem, &item.serial_no, now));
            match read {
                Ok((serial, key, until)) => {
                    let expires = parse_rfc3339(&item.expire_time).unwrap_or(until);
                    if newest.as_ref().is_none_or(|(t, _)| expires > *t) {
                        newest = Some((expires, serial.clone()));
                    }
                    got.push((serial, key, until));
                }
                Err(why) => tracing::warn!(%why, "WeChat Pay platform certificate skipped"),
            }
        }
        if got.is_empty() {
            return Err("the answer held no usable certificate".into());
        }
        // The answer itself must verify, with what it brought or what was held.
        let mut keys: WechatKeys = self.keys.read().expect("keys lock").clone();
        for (serial, key, until) in &got {
            keys.add_until(serial, key.clone(), *until);
        }
        keys.verify(&answer.signed_by, &answer.body, now / 1000)
            .map_err(|e| format!("the certificate list's signature: {e}"))?;
        Ok((got, newest.map(|(_, s)| s)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::wxpay::v3::crypto::ApiV3Key;

    /// V3-T6: wechatpay-java's `TestConfig.DOWNLOAD_CERTIFICATE_RESPONSE`, a published test
    /// vector: the certificate list's item, decrypted with its APIv3 key, is Tenpay's certificate.
    const CIPHERTEXT: &str = "Mr/AxbvY+WL9hKlD5nIa03LOMPpn5f+CWeNxE4ujl0f5gXZ9XLJ9CldkArCOTsbU62XgKnTc3YvRMZQ7wCmE2fzwmAenAySTYsPms72JhggPWfdqVxri9YD5wBYKn8Ck0Fc5JIiVw9WlN2oxHBz83mRVsjoTGC5+cX1CdYqKuZ8pkvi0aCJIq07ZC8MHoTowUz+4jYJy9XeKqip83Z7BmUYxsePpNM+HtihBqTJIUYXJfX7Col5X0ACsApRoU9l6swfW/kzvqNpDJavhDBGasLrr5822+Fk5nVkcTi53f8Wbue7ODWjJxj1yhRYcxFCvXLtpYNB+Qa1aXtrBSdBdBI2p7o+6Imn+auHLBCzkrZqF/yd+d4vTn4tqHPLUj89XcHsMf96uBo3T/HQV8LEDeIO+6YvOK9FrIDYsvp+imN4n/mnF7eJKo9mpN/QqWJiawrFpAmMMxFKBjIdpgMnVUl3Z11RcWKyfOJ3kcmItTWcnZFNyDgR9cS0aU6QPlefa3uUW89uzBuHjcFdDl43yU3LE4qZnHLDcDgx4qt0OFCLiy51GXtEpyYs5k99YJBvKK+RyIs4Yc1/smBmClQUhxW+8bsPNOcXfDvH2yX4YzESoO4TV0RqiCgnsSd4zIFyJPiMKIGzVHiw6Kg0eGCmB4mGHEEZCQ0eN3SSPO0QVjjtBYfgXDZfVHSaAB8PjWBVNFimoViZZQrwT6Ygo0LU0Dd8+F5aHFYr4OPHPslr3hrgutEYXDTv1vTA6ABJGqknJ9Y2vtyWpy7aIwxc0kQq/1ezjs+RMVL/LRpGDnbx1/CGPDjZhYgZypKa55+PDhoaQxqkF3xCLz2DGoNHZYmFqxzAOsAK0vJZw4VcAk6ssbA6YIaMuiemEpxfLC9ZiXtRqsX9s+GWjjtA8JywOFMO+NKZm9BH/E5YNg2DDD3sHG9Mciwn7yJ6sdf8h2lAWlEExAOeiBNyshOHAQ0/S+x1ncWNiqY+Uh5n0rtonvePV2MsxVlEWR3AVHn1abcEWkzivd+G5kg7LYO0goqzGClcQfnFfZdO6KwcMXsBCnm9A1Bl4+k5LLokTIYH5/36SRIZ9j0CHGD77BQLE7x8AlNsoFS2m263tLLq78TFqvZUTIZIQcVIl+NInscS3xQbA38qqFqutCWIwoF1azuJ7woiJyMvnS3xzIpNzP+rzJ8VDXxjLjpEUBOC9WDs74+QMtsAdmh6g0KDclHEk8WJ4P2bnso4z3VCGoDT5X/0bS1C+jMZMKaOCNB21FZ08qgUHmKeDeg8ylENu+mh2Y/AaEDSGkGBHIfFbhMYO3uRxhk9hldiHEnHgdkXiVAAUWk/IhtmGijibO/L76vB74Xpes973uK+2iFKgNBk8qTLLZZnuWbcMQuA6VsFULRb/C+q9B21YuAWPMzvgBwr4EX2m/OpF5w8Q0HL7v1H5H0mIGJbrjnklUPoBYrw30W3uk7yF0KE6sfMukafFx0S9rBOL0RykGDPwC0lHSNySkXDeM5XvDJ+dtHK+RDwhJR+azfrWAHGMtZcQ+YVamjWVmHxXM03j3GeCXgqae1upwHzkPL5OwojcQ5MQi3Kv/1xtwY0cRN/yeZTOsXfujtqhkJj/Vltby4lnW4SCj4LjWQF19BY6zhzF4yybBA8bhhtoNP/zx8QkhHAkIROkK2ZVgfocCAPvfQ+vSrsIBO+L5cmg6mzFn4g84lsHscgXnszIlzUrzx/4Tam0uwuS9J1gddZ0I0QUt9SJzfsoBCTU0OgNMUtXKS5HvgXe7abexMtFH5eulOsAuFZkQ5LYJa/m4yHFInXzL/t3hjdTi2NmxUufvYzwIyffRTu5vS9vjscARD9lUQDHFQ/xgWe1i8EkRlrSfjlXt00+4//h2bcJKyTBT3IXwvKNsuY29V9/vU3HkvWKZ99zpSlmcZRuBa1BHbyPEvc0NlqIIoKidxqUvOR64MzudHhAjgWFP+IXojfhS3Gj9OJhBL7s";
    const SERIAL: &str = "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC";

    #[test]
    fn v3_t6_a_downloaded_certificate_decrypts_and_reads() {
        let key = ApiV3Key::new("a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb").unwrap();
        assert_eq!(CIPHERTEXT.len(), 1988);
        let pem = crypto::decrypt(&key, "14b16c03dc1b", "certificate", CIPHERTEXT).unwrap();
        let pem = String::from_utf8(pem).unwrap();
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"), "{pem}");
        {
            use x509_cert::der::DecodePem;
            let cert = x509_cert::Certificate::from_pem(pem.trim().as_bytes()).unwrap();
            let subject = cert.tbs_certificate.subject.to_string();
            assert!(subject.contains("CN=Tenpay.com sign"), "{subject}");
        }
        // 2026: inside its validity (2023-09-19 → 2028-09-17).
        let now = parse_rfc3339("2026-12-07T12:00:00+08:00").unwrap();
        let (serial, _key, until) = read_certificate(&pem, SERIAL, now).unwrap();
        assert_eq!(serial, SERIAL);
        // Its notAfter, within the day of the list's expire_time (2028-09-17T23:15:58+08:00).
        let listed = parse_rfc3339("2028-09-17T23:15:58+08:00").unwrap();
        assert!((until - listed).abs() < 86_400_000, "{until} vs {listed}");
        // Announced under another serial, or read after it expired: refused.
        assert!(read_certificate(&pem, "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427ED", now).is_err());
        let later = parse_rfc3339("2028-09-18T00:00:00+08:00").unwrap();
        assert!(read_certificate(&pem, SERIAL, later).is_err());
        // Another APIv3 key or associated data: nothing decrypts.
        let other = ApiV3Key::new("b7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb").unwrap();
        assert!(crypto::decrypt(&other, "14b16c03dc1b", "certificate", CIPHERTEXT).is_err());
        assert!(crypto::decrypt(&key, "14b16c03dc1b", "transaction", CIPHERTEXT).is_err());
    }

    /// A client of WeChat itself (nothing listens there: only the schedule is looked at).
    fn client(public_key: bool) -> V3Client {
        use crate::server::wxpay::v3::throwaway as t;
        let signer = crypto::MerchantSigner::from_pem(
            t::SANDBOX_MERCHANT_KEY,
            "1900000001",
            t::SANDBOX_MERCHANT_SERIAL,
        )
        .unwrap();
        let public = public_key.then(|| {
            use rsa::pkcs8::{DecodePrivateKey, EncodePublicKey};
            let key = rsa::RsaPrivateKey::from_pkcs8_pem(t::SANDBOX_MERCHANT_KEY).unwrap();
            let pem = rsa::RsaPublicKey::from(&key)
                .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
                .unwrap();
            (
                "PUB_KEY_ID_0000000000000024101100397200000006".to_string(),
                pem,
            )
        });
        V3Client::new(
            "https://api.mch.weixin.qq.com/",
            "wxd678efh567hg6787",
            signer,
            ApiV3Key::new(t::SANDBOX_APIV3_KEY).unwrap(),
            public,
            std::time::Duration::from_secs(1),
            None,
        )
        .unwrap()
    }

    #[test]
    fn certificates_are_fetched_first_and_again_every_twelve_hours() {
        let c = client(false);
        assert!(c.certificates_due(), "certificate mode: none fetched yet");
        let fetched = |at: i64| c.certificates.state.lock().unwrap().fetched_ms = Some(at);
        fetched(now_ms() - REFRESH_EVERY_MS + 60_000);
        assert!(!c.certificates_due(), "fetched under 12 hours ago");
        fetched(now_ms() - REFRESH_EVERY_MS - 1);
        assert!(c.certificates_due(), "12 hours on: fetched again");
        // Public-key mode: nothing to fetch until a certificate signs something (the window).
        let p = client(true);
        assert!(!p.certificates_due());
        p.certificates.state.lock().unwrap().fetched_ms = Some(now_ms() - REFRESH_EVERY_MS - 1);
        assert!(
            p.certificates_due(),
            "certificates once fetched are kept fresh"
        );
    }
}
