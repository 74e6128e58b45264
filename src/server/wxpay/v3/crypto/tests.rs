//! The vectors of wxpay-v3.md §7: the official SDKs' (V3-T*) and those computed with the V3-T1
//! key (V3-C*), and the negative cases the reference lists.

use super::*;

use crate::server::wxpay::v3::throwaway::TEST_KEY;

fn signer(mchid: &str, serial: &str) -> MerchantSigner {
    MerchantSigner::from_pem(TEST_KEY, mchid, serial).unwrap()
}

/// The same key's public half, as a WeChat Pay public key (PEM) under `id`.
fn keys(id: &str) -> WechatKeys {
    use rsa::pkcs8::EncodePublicKey;
    let pem = rsa::RsaPublicKey::from(&rsa::RsaPrivateKey::from_pkcs8_pem(TEST_KEY).unwrap())
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let mut k = WechatKeys::default();
    k.add_public_key_pem(id, &pem).unwrap();
    k
}

fn signed(ts: &str, nonce: &str, sig: &str, serial: &str) -> SignedBy {
    SignedBy {
        timestamp: ts.into(),
        nonce: nonce.into(),
        signature: sig.into(),
        serial: serial.into(),
    }
}

const C_NONCE: &str = "593BEC0C930BF1AFEB40B4A08C8FB242";
const C_ORDER: &str = "1217752501201407033233368018";

#[test]
fn v3_t1_the_sdk_signature() {
    assert_eq!(
        signer("1234567890", "F5765756002FDD77").sign(b"source"),
        "BKyAfU4iMCuvXMXS0Wzam3V/cnxZ+JaqigPM5OhljS2iOT95OO6Fsuml2JkFANJU9K6q9bLlDhPXuoVz+pp4hAm6pHU4ld815U4jsKu1RkyaII+1CYBUYC8TK0XtJ8FwUXXz8vZHh58rrAVN1XwNyvD1vfpxrMT4SL536GLwvpUHlCqIMzoZUguLli/K8V29QiOhuH6IEqLNJn8e9b3nwNcQ7be3CzYGpDAKBfDGPCqCv8Rw5zndhlffk2FEA70G4hvMwe51qMN/RAJbknXG23bSlObuTCN7Ndj1aJGH6/L+hdwfLpUtJm4QYVazzW7DFD27EpSQEqA8bX9+8m1rLg=="
    );
}

#[test]
fn v3_t2_the_signed_message_and_the_header() {
    assert_eq!(
        request_message("GET", "/v3/certificates", 1624523846, "A1B2C3D4E5F6G7", ""),
        "GET\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\n\n"
    );
    // The body's own newline is kept, then the terminator.
    assert_eq!(
        request_message(
            "POST",
            "/v3/certificates",
            1624523846,
            "A1B2C3D4E5F6G7",
            "Hello World!\n"
        ),
        "POST\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\nHello World!\n\n"
    );
    let s = signer("1234567890", "0123456789ABC");
    let h = s.authorization("GET", "/v3/certificates", 1624523846, "A1B2C3D4E5F6G7", "");
    let sig = s.sign(b"GET\n/v3/certificates\n1624523846\nA1B2C3D4E5F6G7\n\n");
    assert_eq!(
        h,
        format!(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1234567890\",nonce_str=\"A1B2C3D4E5F6G7\",\
             signature=\"{sig}\",timestamp=\"1624523846\",serial_no=\"0123456789ABC\""
        )
    );
}

#[test]
fn v3_c1_to_c3_order_query_and_close_are_signed_exactly() {
    let s = signer("1900000001", "F5765756002FDD77");
    let body = r#"{"appid":"wxd678efh567hg6787","mchid":"1900000001","description":"Image形象店-深圳腾大-QQ公仔","out_trade_no":"1217752501201407033233368018","time_expire":"2018-06-08T10:34:56+08:00","notify_url":"https://www.weixin.qq.com/wxpay/pay.php","amount":{"total":100,"currency":"CNY"}}"#;
    assert_eq!(body.len(), 287);
    let c1 = "MC6nwUmRqU489Gs+SavHTtUIp14uAurdLs7N0ahzJ1Olu8QkSB9wl1xcfODBHhaCfxA4z1zu6vNC7uzLK5QVgX0umFIsyzDxiTzvlZXsmRzWAghj4AigXiwOoXMSthPbknD47d0RiGsCQg6SLTXtEDD2kA/8CmD7ztHUt/cqlJov0oZ9PwzctPs+F4LWD/GF1JQIlG5QRhceWFcw5V45Kuegk89evPto1U+WnXA1ls1Yy+TRl5wNXEZtIOvkURgPkXfykNi0xOtavdfjeBfDJ+6i5oqCzm/jVdpWt3oUc5KXyt7v6A783JP3maQR15uzMeBZbe+SgpQ7DMWf+7MEog==";
    let h = s.authorization(
        "POST",
        "/v3/pay/transactions/native",
        1554208460,
        C_NONCE,
        body,
    );
    assert_eq!(
        h,
        format!(
            "WECHATPAY2-SHA256-RSA2048 mchid=\"1900000001\",nonce_str=\"{C_NONCE}\",\
             signature=\"{c1}\",timestamp=\"1554208460\",serial_no=\"F5765756002FDD77\""
        )
    );
    let query = format!("/v3/pay/transactions/out-trade-no/{C_ORDER}?mchid=1900000001");
    assert_eq!(
        s.sign(request_message("GET", &query, 1554208460, C_NONCE, "").as_bytes()),
        "x0W2yNdpEony3CwFDiqKPgi2rpinqYZrGbMlxqg3wsOFOujLX+MxYu68TVuUihY8m/17PQVPATKhSF6rccHjE+MbVsiQLi7GHi10s2vGGhbp8uqHZ6jFEbK5zXK7kHk1ZIlqu5oarqariHDeIMTo3ahVzZqkdN0iufy0Oj4UEyM6pmwr7SaOq5IRGk3gSe5Pr2pHyGDmH5K4P3LNkndIebUk+UmUu1WR8PNULPCP22AwsAO7L+jvWKV+NoObhc4Xuke9a+Nec5qpjyw26FKrpq3qXL+xuT+tZ2jHarxiY5YqjbicpZS3QPPlOdtGT5Rvg17W/sz0HNOWkVGCwOUoww=="
    );
    // Without its query the URL signs something else.
    assert_ne!(
        s.sign(
            request_message(
                "GET",
                query.split('?').next().unwrap(),
                1554208460,
                C_NONCE,
                ""
            )
            .as_bytes()
        ),
        s.sign(request_message("GET", &query, 1554208460, C_NONCE, "").as_bytes())
    );
    let close = format!("/v3/pay/transactions/out-trade-no/{C_ORDER}/close");
    assert_eq!(
        s.sign(request_message("POST", &close, 1554208460, C_NONCE, r#"{"mchid":"1900000001"}"#).as_bytes()),
        "q+Q1CXZmCDuGck6eCk17TnGbylCQaVYe1Pyzsset9992zAaJ0srjIJp2xJo8G5X9WCAQj0ZXCMUkw/U4VGylYg2CN4I2xfwzx68Ibi4pPfJvh72CEMmX0jVAyRP2SbVke817vEmqkUGSNs8OFT83buvETnpoOjo2dL4Y8ULQ6GvObN54dk85hFV5aUgAMTjTPT/1z1bIlKIwF0rfhvSmyIGUKBoYia7YBVhW4Tbo7oddUmADuYvFts24t16hxZKUwrUizRnm4CLEztVvTVLc0e5zPnbsyJWj6JUJ6FiGZXQafPoVFk672CBh3wXrt4tk9E+2IOiVl9OVQIZHt4Vw3A=="
    );
}

const C4_SIG: &str = "HO/3LheBOsGictbOrmtUpnxCB1BjnW81ZVJ7h8E2XehnRBgwvVnCSlJTpk1/j8rPpZjU52iQV0FVgpAlH4oOqa6h2qnnYPCYkjXobFPGCs72R6UfXUEGerUaAPAyu7oB8sehrgune92kOkz3KRzo9zxP+AShRH1PdGLxkQWyWdaRXuDJhucQMCLjLrSCU1gntVht8p/k5e2tYaGWBXoZsQe6Ot1RHj/K7c5NfZtvGuEA3qHzFf7Qc5QTFp1LC+7PaFsIJa6mqOTXBa0AqYnzr4wHtAZYh+TJclll8mJg3f1+IZIBfQN62actcRl3IHakLOe0FN0saA+gb4DXOkq7yA==";
const C4_BODY: &[u8] = br#"{"code_url":"weixin://wxpay/bizpayurl?pr=JyC91EIz1"}"#;
const C4_NONCE: &str = "d824f2e086d3c1df967785d13fcd22ef";

#[test]
fn v3_c4_c5_answers_verify_over_their_raw_bodies() {
    let k = keys("PUB_KEY_ID_0000000000000024101100397200000006");
    let id = "PUB_KEY_ID_0000000000000024101100397200000006";
    let h = signed("1722850421", C4_NONCE, C4_SIG, id);
    assert_eq!(k.verify(&h, C4_BODY, 1722850421 + 10), Ok(()));
    // The 204's empty body.
    let c5 = "q/wfA+iwq9bQpWWQJtjcJTwfsociH8VZbbGrVMxt85R1m4UcFLtUvpQIt28dtAier2TdyPZUTyvIZp6TZ9T+S3rExgt0qc5dv1DFMasKJ7t/dllSrSeCyEpXJyTASATDFfBO0oLkQdxt6LUAhTpbAkXpoHVsgti+kz+kA1PJxIE+Z6CL5jdhbg7cVZkl+AOj1eeVtJzUOiG56ChLscmaO+Fqj01kjyc3tZ0RVbFPJ0hZyzIkfr6AY5jpn6IUW24V2MwkKguvkta+ldL2VqWCpzFZopOmaOyj/HAtSiF1KiihWaXZZBcpc79GxSFksmkLEvABA5HquyOPpt50HN1IwQ==";
    assert_eq!(
        k.verify(&signed("1722850421", C4_NONCE, c5, id), b"", 1722850421),
        Ok(())
    );
    // What the sandbox will sign is what the client verifies.
    let s = signer("1900000001", "F5765756002FDD77");
    assert_eq!(
        s.sign(&answer_message("1722850421", C4_NONCE, C4_BODY)),
        C4_SIG
    );
}

#[test]
fn tampered_stale_probed_or_unknown_answers_are_refused() {
    let id = "PUB_KEY_ID_1";
    let k = keys(id);
    let now = 1722850421;
    let ok = signed("1722850421", C4_NONCE, C4_SIG, id);
    let mut flipped = C4_BODY.to_vec();
    flipped[5] ^= 1;
    assert_eq!(k.verify(&ok, &flipped, now), Err(VerifyError::BadSignature));
    // A body re-serialized with a space, or a newline more.
    assert_eq!(
        k.verify(
            &ok,
            br#"{"code_url": "weixin://wxpay/bizpayurl?pr=JyC91EIz1"}"#,
            now
        ),
        Err(VerifyError::BadSignature)
    );
    let mut nl = C4_BODY.to_vec();
    nl.push(b'\n');
    assert_eq!(k.verify(&ok, &nl, now), Err(VerifyError::BadSignature));
    assert_eq!(
        k.verify(&ok, C4_BODY, now + 300),
        Err(VerifyError::Stale("1722850421".into()))
    );
    assert_eq!(
        k.verify(&ok, C4_BODY, now - 301),
        Err(VerifyError::Stale("1722850421".into()))
    );
    assert_eq!(k.verify(&ok, C4_BODY, now + 299), Ok(()));
    let probe = signed(
        "1722850421",
        C4_NONCE,
        &format!("{PROBE_PREFIX}{C4_SIG}"),
        id,
    );
    assert_eq!(k.verify(&probe, C4_BODY, now), Err(VerifyError::Probe));
    let other = signed(
        "1722850421",
        C4_NONCE,
        C4_SIG,
        "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC",
    );
    assert_eq!(
        k.verify(&other, C4_BODY, now),
        Err(VerifyError::UnknownSerial(
            "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC".into()
        ))
    );
    let none = signed("1722850421", C4_NONCE, "", id);
    assert_eq!(
        k.verify(&none, C4_BODY, now),
        Err(VerifyError::Missing("Wechatpay-Signature"))
    );
    let garbage = signed("1722850421", C4_NONCE, "not base64!", id);
    assert_eq!(
        k.verify(&garbage, C4_BODY, now),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn the_migration_window_holds_a_certificate_serial_and_a_public_key_id() {
    // Two keys, each under its own id: an answer verifies only under the id that names its key.
    // 2048 bits: WeChat's keys are, and shorter ones are refused outright.
    let cert_key = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 2048).unwrap();
    let cert_signer = rsa::pkcs1v15::SigningKey::<Sha256>::new(cert_key.clone());
    let mut k = keys("PUB_KEY_ID_1");
    k.add(
        "D7CE59D1F522D701",
        VerifyingKey::new(cert_key.to_public_key()),
    );
    use rsa::signature::{SignatureEncoding, Signer};
    let by_cert = B64.encode(
        cert_signer
            .sign(&answer_message("1722850421", C4_NONCE, C4_BODY))
            .to_bytes(),
    );
    let ok = |sig: &str, id: &str| {
        k.verify(
            &signed("1722850421", C4_NONCE, sig, id),
            C4_BODY,
            1722850421,
        )
    };
    assert_eq!(ok(C4_SIG, "PUB_KEY_ID_1"), Ok(()));
    assert_eq!(ok(&by_cert, "D7CE59D1F522D701"), Ok(()));
    assert_eq!(
        ok(C4_SIG, "D7CE59D1F522D701"),
        Err(VerifyError::BadSignature)
    );
    assert_eq!(ok(&by_cert, "PUB_KEY_ID_1"), Err(VerifyError::BadSignature));
}

const APIV3_KEY: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";

#[test]
fn v3_t3_the_sdk_notify_verifies_and_decrypts() {
    let body = r#"{"id":"3119dfba-e649-5eec-ab1e-3412bc4d2e17","create_time":"2021-06-24T16:37:26+08:00","resource_type":"encrypt-resource","event_type":"PAYSCORE.USER_OPEN_SERVICE","summary":"签约成功","resource":{"original_type":"payscore","algorithm":"AEAD_AES_256_GCM","ciphertext":"YDS3lKPaC4Y52Gf3uhft5qUBlIa8b428AWTtTauHQfQrRw+X1WpiuHIDy0vo1Vd6VEq67aVyqPdDYMkRVSDaZL3iZttevRMOoPKMifozg6XPWjIZumks/GpT48lI4NizyeaqLBokNebthah3o1H76qSlO9NkDjp9bzmKLEYYH9TEklFUpsvPqOTOcgSLgh21YJXYR7dEBXFgRLiNIKRgO5JdXh1hccRUAlyVWxE54PXpnQ==","associated_data":"payscore","nonce":"Kj7QIyUiYx1q"}}"#.as_bytes();
    assert_eq!(body.len(), 568);
    let h = signed(
        "1624523846",
        "EcZ9Cmy4Xyx1i6RlJQzLcCyEqDa26NBz",
        "tJHIiIS9eB2hAYstmAmbbD3ZE5LiIm/Ug5tuL4fC0YOFRWIHV39UFIZXC0e9Wl6lBu6sKvkqDkzpqzBsVHyXFlbYZTOQrVdG4b6LfTnK4mikv9++ixJMd3vTf2yCqvBkh98zs3Ds5zsYQakzbcwhmw4fMJs4nPLws28H0UW9FjDR//rxELLwXvV1VEA1IBLX70xptjL8hrfUjEE8kkry6yNJTHZRU8CAc7qHli2Ng1V1qb9ARbK8A3ThmFmPQvRGrapI/jS2laKKgYUmfdEdkNO6B2Cke5e8VTxY406ArAmQ90GAihDwIcb16TQMnzCMBoutnwZKNiKRACrFmtxw2Q==",
        "D7CE59D1F522D701",
    );
    assert_eq!(
        keys("D7CE59D1F522D701").verify(&h, body, 1624523846),
        Ok(())
    );
    // The SDK's key is 16 bytes (AES-128-GCM): the GCM path, not the 32-byte rule.
    let plain = open(
        &ring::aead::AES_128_GCM,
        b"testMchAPIv3Key0",
        "Kj7QIyUiYx1q",
        "payscore",
        "YDS3lKPaC4Y52Gf3uhft5qUBlIa8b428AWTtTauHQfQrRw+X1WpiuHIDy0vo1Vd6VEq67aVyqPdDYMkRVSDaZL3iZttevRMOoPKMifozg6XPWjIZumks/GpT48lI4NizyeaqLBokNebthah3o1H76qSlO9NkDjp9bzmKLEYYH9TEklFUpsvPqOTOcgSLgh21YJXYR7dEBXFgRLiNIKRgO5JdXh1hccRUAlyVWxE54PXpnQ==",
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(plain).unwrap(),
        r#"{"mchid":"1234567890","appid":"054aa7d7a2a54ab5898df65bd96f001c","create_time":"2020-06-30T12:12:00+08:00","out_contract_code":"21640bdbd08e473e828f3206a2741c6e"}"#
    );
}

#[test]
fn v3_t4_t5_aes_gcm() {
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    assert_eq!(
        decrypt(
            &key,
            "uluk4a9R25RW",
            "associatedData",
            "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI="
        )
        .unwrap(),
        b"message"
    );
    assert_eq!(
        encrypt(&key, "uluk4a9R25RW", "associatedData", b"message"),
        "ulwSiIajGClcvcOYvOQ7+l+0PAbzzwI="
    );
    let t5 = open(
        &ring::aead::AES_128_GCM,
        b"testAPIv3Key0000",
        "wCq51qZv4Yfg",
        "Dl56FrqWQJF1t9LtC3vEUsniZKvbqdR8",
        "FsdXzxryWfKwvLJKf8LG/ToRPTRh8RN9wROC",
    )
    .unwrap();
    assert_eq!(t5, b"Hello World");
}

const C6_CIPHERTEXT: &str = "ZiFG86Z5OdDQHZ0FtvC2kpuO5QMidEhi/iiYkiuBYOHKvl7gyQ2QHeBcq9lDfat9zbgrvqvu2u5/HUGe2r2t+XAih/OebXd+KTZmcePlvTBd/z7pUlUOBuyETKa8xq7faSs1jKe6WlCzkB6/E8McdR7OAlcyb3zzZkU0F02Jch/7QCEmC+ZS9W3S6hc9WBM7GVA01bDK/HRmT+wevnmCehfonf/UDPSkHapQf4wqckoog1TjOiL+FEaHVJZ4FblGEJDLqr5TL+RaBgk6n0KE+trqAVFQ/927W4sm/KhaAThSyY3KLoTGI8J7URchSoiEkgi5n2OrcU/V05IiVkCZ86yhi4QFjlYC1oFEXBMo0urLam/InTpWRxOMQqouO6zLWwEBwzCo/jO74CREVylQsqPzXL+6nrxEyvBmylJ1sAnfvgDWRaUjI+xbsLq7mVZo8Gw7Qz/noLlzuC0o0LbLXsBom67TISs8KW4k6rvGCN0iUkWIUC5+QIM6u7b/4GDL8I7hNVMy8FGmqpo2xpwRVpj0lE623jEyo4Gy6ulTEWqPEilHtiINvwVUfadRCEUfMWMineb2yvQQOnWKLrjBZw==";

#[test]
fn v3_c6_a_pay_notify_end_to_end() {
    let envelope = format!(
        r#"{{"id":"EV-2018022511223320873","create_time":"2018-06-08T10:34:56+08:00","resource_type":"encrypt-resource","event_type":"TRANSACTION.SUCCESS","summary":"支付成功","resource":{{"original_type":"transaction","algorithm":"AEAD_AES_256_GCM","ciphertext":"{C6_CIPHERTEXT}","associated_data":"transaction","nonce":"Kj7QIyUiYx1q"}}}}"#
    );
    let h = signed(
        "1528425296",
        "fdasflkja484w",
        "y6tgLrc29G9SjGU42+RULyzklLTuQzRnNgjg3t/2T2EcJE/vHZqo39i3Hsg+1XB4Genmydg5Cvrutm6/egxlNVEAdeHSGOizwUch1x01uL29eoP4aDVWWMZaLd5cbem5Ujt8M1e65QDqRuy/Vt4HQDfoA6GJh4wR+OXyzfWEKvr9aUPmMM7xT/3Jl+zwFY/rN11ngRjqZ4A2Zt/oQxPi8+th7eZkbAqTKnMQ8sejLaPAv1zpwJyTQ1APqgCYGUvqw+XQyT6oUIkVYfpyeUYaookwxpG8aKBM9zr1qrciH9SL/himJlhv3Wz63yCNDoKfYK38dgnWWJDaPtY+eKxdww==",
        "F5765756002FDD77",
    );
    let k = keys("F5765756002FDD77");
    // "Now" pinned to the vector's time; ten minutes later it is a replay.
    assert_eq!(k.verify(&h, envelope.as_bytes(), 1528425296), Ok(()));
    assert!(matches!(
        k.verify(&h, envelope.as_bytes(), 1528425296 + 600),
        Err(VerifyError::Stale(_))
    ));
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    let plain = decrypt(&key, "Kj7QIyUiYx1q", "transaction", C6_CIPHERTEXT).unwrap();
    assert_eq!(
        String::from_utf8(plain).unwrap(),
        r#"{"mchid":"1900000001","appid":"wxd678efh567hg6787","out_trade_no":"1217752501201407033233368018","transaction_id":"4200000001201806080000000001","trade_type":"NATIVE","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"OTHERS","attach":"","success_time":"2018-06-08T10:34:56+08:00","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"amount":{"total":100,"payer_total":100,"currency":"CNY","payer_currency":"CNY"}}"#
    );
    // Another key, another AAD, an altered byte: the tag refuses them all.
    let wrong = ApiV3Key::new("b7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb").unwrap();
    assert_eq!(
        decrypt(&wrong, "Kj7QIyUiYx1q", "transaction", C6_CIPHERTEXT),
        Err(DecryptError::Tag)
    );
    assert_eq!(
        decrypt(&key, "Kj7QIyUiYx1q", "refund", C6_CIPHERTEXT),
        Err(DecryptError::Tag)
    );
    let mut raw = B64.decode(C6_CIPHERTEXT).unwrap();
    raw[3] ^= 1;
    assert_eq!(
        decrypt(&key, "Kj7QIyUiYx1q", "transaction", &B64.encode(raw)),
        Err(DecryptError::Tag)
    );
    assert_eq!(
        decrypt(&key, "short", "transaction", C6_CIPHERTEXT),
        Err(DecryptError::Nonce)
    );
    assert_eq!(
        decrypt(&key, "Kj7QIyUiYx1q", "transaction", "%%%"),
        Err(DecryptError::Encoding)
    );
}

#[test]
fn v3_c7_a_refund_resource() {
    let key = ApiV3Key::new(APIV3_KEY).unwrap();
    let plain = decrypt(
        &key,
        "6Ggp2QvNRQ5h",
        "refund",
        "vg3c0kyDJPW9w0XR3GNnX1689EdRsdjWZOrAraR1sIahzGTsrACSd06KTnGlhkmg+Ua7yGkO9Pl85caIVC6sdgtl0JxSiRBueYUe0Fas/asMYWHnrbmEHH4rszLPhhPQOUZZp3SxISWaxNB4Zo4ad2W5XZspNI+ienqDW5Qk+M0qNfbHt6E/BkUiqV3RqLCKcwNzPn7PZJ/VtImyBoqIF/CMy1tEYCluBazEbmMCyXIlvLj+avs9nsYY/glqNDWuNE5QTO4SHuurtreIZz9dwxuogTK+iU5tTsVXP0GK3NZSn/hapv/7xsc8FHw4SRG9oC/5SnhcEzbaHzATejxqNzNEiY+DOY9/1wr2V7UYXhR5CM6MMdqZfo5pIvdDDasmoIMmsvpDpeHBoviCZT0EJv0YrbgHFOujBOzh4XFqwZ8ekylO8h/434+jyvJ0UyNEHl6qWEiJnT5MbN6EaIj2MmC3FhtN/aQ6IpkkSma11w7OQ6+Sp9ZzCiVAS22jCTDqQO/sA7kRy5+3JQSmZBXHG2r0wsHQvObQYg==",
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(plain).unwrap(),
        r#"{"mchid":"1900000001","out_trade_no":"1217752501201407033233368018","transaction_id":"4200000001201806080000000001","out_refund_no":"R1217752501201407033233368018","refund_id":"50000000382019052709732678859","refund_status":"SUCCESS","success_time":"2018-06-08T10:44:56+08:00","user_received_account":"支付用户零钱","amount":{"total":100,"refund":40,"payer_total":100,"payer_refund":40}}"#
    );
}

#[test]
fn keys_are_checked_when_read() {
    assert!(ApiV3Key::new("short").is_err());
    assert!(ApiV3Key::new("a7cde1ZJB1kG2e7VfTs3jQzaWizur8G").is_err());
    assert!(ApiV3Key::new("a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gbb").is_err());
    let e = MerchantSigner::from_pem(
        "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
        "1",
        "2",
    )
    .unwrap_err();
    assert!(e.contains("PKCS#8") && !e.contains("AAAA"), "{e}");
    assert!(WechatKeys::default()
        .add_public_key_pem("x", "nope")
        .is_err());
    // Debug never shows a key.
    assert_eq!(
        format!("{:?}", signer("1", "S")),
        "MerchantSigner(1, serial S, key redacted)"
    );
    assert_eq!(
        format!("{:?}", ApiV3Key::new(APIV3_KEY).unwrap()),
        "ApiV3Key(<32 bytes, redacted>)"
    );
    // A key too small to sign with.
    use rsa::pkcs8::EncodePrivateKey;
    let small = rsa::RsaPrivateKey::new(&mut rand::thread_rng(), 1024).unwrap();
    let pem = small.to_pkcs8_pem(rsa::pkcs8::LineEnding::LF).unwrap();
    assert!(MerchantSigner::from_pem(&pem, "1", "2")
        .unwrap_err()
        .contains("2048"));
    // A timestamp that is not Unix seconds.
    let k = keys("PUB_KEY_ID_1");
    for ts in ["+1722850421", "-1", "1722850421.0", "99999999999999999999"] {
        assert_eq!(
            k.verify(
                &signed(ts, C4_NONCE, C4_SIG, "PUB_KEY_ID_1"),
                C4_BODY,
                1722850421
            ),
            Err(VerifyError::BadTimestamp(ts.into()))
        );
    }
}
