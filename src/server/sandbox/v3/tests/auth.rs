use super::{app, now_s, order, otn, MCH, NOWHERE};
use crate::server::sandbox::v3::certs::NO_CERTIFICATE;
use crate::server::sandbox::v3::V3Mode;
use crate::server::wxpay::v3::crypto::{decrypt, MerchantSigner};
use crate::server::wxpay::v3::throwaway::{SANDBOX_APIV3_KEY, SANDBOX_MERCHANT_KEY};

const NATIVE: &str = "/v3/pay/transactions/native";

#[tokio::test]
async fn bad_signatures_wrong_serials_and_stale_times_are_sign_errors() {
    let app = app(V3Mode::PublicKey).await;
    let no = otn();
    let body = order(&no, 100, NOWHERE).to_string();
    let signed = |ts: i64, b: &str| {
        app.signer
            .authorization("POST", "/sandbox/v3/pay/transactions/native", ts, "ABC", b)
    };
    // Signed over another body than the one sent.
    let auth = signed(now_s(), &body.replace("100", "101"));
    let a = app.raw("POST", NATIVE, &body, Some(&auth), &[]).await;
    assert_eq!(a.code(401), "SIGN_ERROR");
    app.assert_signed_by(&a, &app.v3.public_key.id);
    let info = &a.json()["detail"]["sign_information"];
    assert_eq!(info["method"], "POST");
    assert_eq!(info["url"], "/sandbox/v3/pay/transactions/native");
    assert!(info["truncated_sign_message"]
        .as_str()
        .unwrap()
        .starts_with("POST\n/sandbox/v3/pay/transactions/native\n"));
    // Without the /sandbox prefix the signed URL is not the one requested.
    let auth = app
        .signer
        .authorization("POST", NATIVE, now_s(), "ABC", &body);
    let a = app.raw("POST", NATIVE, &body, Some(&auth), &[]).await;
    assert_eq!(a.code(401), "SIGN_ERROR");
    // Stale, and from the future.
    for ts in [now_s() - 301, now_s() + 301] {
        let a = app
            .raw("POST", NATIVE, &body, Some(&signed(ts, &body)), &[])
            .await;
        assert_eq!(a.code(401), "SIGN_ERROR", "{ts}");
    }
    // Another serial_no, another mchid.
    let other = MerchantSigner::from_pem(SANDBOX_MERCHANT_KEY, MCH, "0123456789ABCDEF").unwrap();
    let auth = other.authorization(
        "POST",
        "/sandbox/v3/pay/transactions/native",
        now_s(),
        "N",
        &body,
    );
    let a = app.raw("POST", NATIVE, &body, Some(&auth), &[]).await;
    assert_eq!(a.code(401), "SIGN_ERROR");
    let auth = signed(now_s(), &body).replace(MCH, "1900000001");
    let a = app.raw("POST", NATIVE, &body, Some(&auth), &[]).await;
    assert_eq!(a.code(401), "SIGN_ERROR");
    // No header, a malformed one, a missing pair.
    let good = signed(now_s(), &body);
    for auth in [
        None,
        Some("Bearer x".to_string()),
        Some(good.replace(",serial_no=", ",serial=")),
    ] {
        let a = app.raw("POST", NATIVE, &body, auth.as_deref(), &[]).await;
        assert_eq!(a.code(401), "SIGN_ERROR", "{auth:?}");
    }
    // A GET signed without its query string.
    let url = format!("/v3/pay/transactions/out-trade-no/{no}?mchid={MCH}");
    let auth = app.signer.authorization(
        "GET",
        &format!("/sandbox/v3/pay/transactions/out-trade-no/{no}"),
        now_s(),
        "N",
        "",
    );
    assert_eq!(
        app.raw("GET", &url, "", Some(&auth), &[]).await.code(401),
        "SIGN_ERROR"
    );
    assert!(app.sb.order(MCH, &no).is_none(), "nothing placed");
    // And the good one, pairs in another order, goes through.
    let a = app.raw("POST", NATIVE, &body, Some(&good), &[]).await;
    assert_eq!(a.status, 200);
}

#[tokio::test]
async fn certificates_by_mode() {
    // Certificate mode: the certificate, encrypted with the merchant's APIv3 key.
    let app = app(V3Mode::Certificate).await;
    let a = app.call("GET", "/v3/certificates", None).await;
    assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
    app.assert_signed_by(&a, &app.v3.certificate.id);
    let d = &a.json()["data"][0];
    assert_eq!(d["serial_no"], app.v3.certificate.id.as_str());
    assert!(d["expire_time"].as_str().unwrap().ends_with("+08:00"));
    let e = &d["encrypt_certificate"];
    assert_eq!(
        (e["algorithm"].as_str(), e["associated_data"].as_str()),
        (Some("AEAD_AES_256_GCM"), Some("certificate"))
    );
    assert_eq!(e["nonce"].as_str().unwrap().len(), 12);
    let key = crate::server::wxpay::v3::crypto::ApiV3Key::new(SANDBOX_APIV3_KEY).unwrap();
    let pem = decrypt(
        &key,
        e["nonce"].as_str().unwrap(),
        "certificate",
        e["ciphertext"].as_str().unwrap(),
    )
    .unwrap();
    let pem = String::from_utf8(pem).unwrap();
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    {
        use rsa::pkcs8::DecodePublicKey;
        use x509_cert::der::{DecodePem, Encode};
        let cert = x509_cert::Certificate::from_pem(&pem).unwrap();
        let serial: String = cert
            .tbs_certificate
            .serial_number
            .as_bytes()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect();
        assert_eq!(serial, app.v3.certificate.id);
        assert_eq!(serial.len(), 40);
        assert!(cert
            .tbs_certificate
            .subject
            .to_string()
            .contains("Tenpay.com sign"));
        // Its key is the one that signs: verify the answer with the certificate's key alone.
        let spki = cert
            .tbs_certificate
            .subject_public_key_info
            .to_der()
            .unwrap();
        let public = rsa::RsaPublicKey::from_public_key_der(&spki).unwrap();
        let mut keys = crate::server::wxpay::v3::crypto::WechatKeys::default();
        keys.add(&serial, rsa::pkcs1v15::VerifyingKey::new(public));
        keys.verify(&a.signed_by(), &a.body, now_s()).unwrap();
    }
    // Public-key mode: WeChat's 404, signed by the public key.
    let app = super::app(V3Mode::PublicKey).await;
    let a = app.call("GET", "/v3/certificates", None).await;
    assert_eq!(a.code(404), "RESOURCE_NOT_EXISTS");
    assert_eq!(a.json()["message"], NO_CERTIFICATE);
    app.assert_signed_by(&a, &app.v3.public_key.id);
    assert!(app.v3.public_key.id.starts_with("PUB_KEY_ID_") && app.v3.public_key.id.len() == 45);
    // What a client in another process reads to trust the sandbox.
    let k = app
        .http
        .get(format!("{}/sandbox/admin/v3/public-key", app.base))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    let k: serde_json::Value = serde_json::from_slice(&k).unwrap();
    assert_eq!(k["public_key_id"], app.v3.public_key.id.as_str());
    assert_eq!(k["public_key_pem"], app.v3.public_key.public_pem.as_str());
}

#[tokio::test]
async fn the_migration_window_answers_with_the_key_the_request_names() {
    let app = app(V3Mode::Both).await;
    let url = "/v3/certificates";
    let auth = |app: &super::App| {
        app.signer
            .authorization("GET", "/sandbox/v3/certificates", now_s(), "N", "")
    };
    let pk = app.v3.public_key.id.clone();
    let cert = app.v3.certificate.id.clone();
    let a = app
        .raw(
            "GET",
            url,
            "",
            Some(&auth(&app)),
            &[("wechatpay-serial", &pk)],
        )
        .await;
    assert_eq!(a.status, 200);
    app.assert_signed_by(&a, &pk);
    let a = app
        .raw(
            "GET",
            url,
            "",
            Some(&auth(&app)),
            &[("wechatpay-serial", &cert)],
        )
        .await;
    app.assert_signed_by(&a, &cert);
    // Naming nothing (or something unknown): the certificate.
    let a = app.raw("GET", url, "", Some(&auth(&app)), &[]).await;
    app.assert_signed_by(&a, &cert);
    let a = app
        .raw(
            "GET",
            url,
            "",
            Some(&auth(&app)),
            &[("wechatpay-serial", "F00")],
        )
        .await;
    app.assert_signed_by(&a, &cert);
    // Errors too.
    let a = app
        .raw("GET", url, "", None, &[("wechatpay-serial", &pk)])
        .await;
    assert_eq!(a.code(401), "SIGN_ERROR");
    app.assert_signed_by(&a, &pk);
}
