//! v3 notifies: the reference's pay notify (V3-C6) end to end, a refund notify made with the
//! same key, and every way one is refused.

use super::*;
use crate::server::wxpay::v3::crypto::{encrypt, MerchantSigner};
use crate::server::wxpay::v3::throwaway::TEST_KEY;

const APIV3: &str = "a7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb";
const APPID: &str = "wxd678efh567hg6787";
const MCHID: &str = "1900000001";
const SERIAL: &str = "PUB_KEY_ID_0000000000000024101100397200000006";

fn key() -> ApiV3Key {
    ApiV3Key::new(APIV3).unwrap()
}

/// WeChat's side: the test key signs, as the platform key would.
fn wechat() -> MerchantSigner {
    MerchantSigner::from_pem(TEST_KEY, MCHID, SERIAL).unwrap()
}

fn keys() -> WechatKeys {
    let mut k = WechatKeys::default();
    k.add(SERIAL, wechat().verifying_key());
    k
}

/// An envelope of `event` around `resource` (encrypted), signed at `ts`.
fn notify(event: &str, aad: &str, resource: &str, ts: i64) -> (SignedBy, Vec<u8>) {
    let ct = encrypt(&key(), "Kj7QIyUiYx1q", aad, resource.as_bytes());
    let body = format!(
        r#"{{"id":"EV-1","create_time":"2018-06-08T10:34:56+08:00","resource_type":"encrypt-resource","event_type":"{event}","summary":"s","resource":{{"original_type":"{aad}","algorithm":"AEAD_AES_256_GCM","ciphertext":"{ct}","associated_data":"{aad}","nonce":"Kj7QIyUiYx1q"}}}}"#
    );
    let h = signed(ts, body.as_bytes());
    (h, body.into_bytes())
}

fn signed(ts: i64, body: &[u8]) -> SignedBy {
    let nonce = "fdasflkja484w";
    SignedBy {
        timestamp: ts.to_string(),
        nonce: nonce.into(),
        signature: wechat().sign(&crypto::answer_message(&ts.to_string(), nonce, body)),
        serial: SERIAL.into(),
    }
}

const PAID: &str = r#"{"mchid":"1900000001","appid":"wxd678efh567hg6787","out_trade_no":"1217752501201407033233368018","transaction_id":"4200000001201806080000000001","trade_type":"NATIVE","trade_state":"SUCCESS","trade_state_desc":"支付成功","bank_type":"OTHERS","attach":"","success_time":"2018-06-08T10:34:56+08:00","payer":{"openid":"oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},"amount":{"total":100,"payer_total":100,"currency":"CNY","payer_currency":"CNY"}}"#;

const REFUNDED: &str = r#"{"mchid":"1900000001","out_trade_no":"1217752501201407033233368018","transaction_id":"4200000001201806080000000001","out_refund_no":"R1217752501201407033233368018","refund_id":"50000000382019052709732678859","refund_status":"SUCCESS","success_time":"2018-06-08T10:44:56+08:00","user_received_account":"支付用户零钱","amount":{"total":100,"refund":40,"payer_total":100,"payer_refund":40}}"#;

fn parse_at(h: &SignedBy, body: &[u8], now: i64) -> Result<V3Notify, V3NotifyError> {
    parse(h, body, &keys(), &key(), APPID, MCHID, now)
}

#[test]
fn the_reference_pay_notify_reads_as_v2s() {
    // V3-C6: the same ciphertext as the reference's (deterministic GCM with its nonce).
    let (h, body) = notify("TRANSACTION.SUCCESS", "transaction", PAID, 1528425296);
    assert!(String::from_utf8_lossy(&body).contains("ZiFG86Z5OdDQHZ0FtvC2kpuO5QMidEhi"));
    let got = parse_at(&h, &body, 1528425296 + 30).unwrap();
    assert_eq!(
        got,
        V3Notify::Pay(PayNotify {
            out_trade_no: "1217752501201407033233368018".into(),
            transaction_id: "4200000001201806080000000001".into(),
            total_fee: 100,
            time_end: "20180608103456".into(),
            paid_at_ms: crate::server::support::clock::parse_beijing("20180608103456").unwrap(),
            openid: Some("oUpF8uMuAJO_M2pxb1Q9zNjWeS6o".into()),
        })
    );
}

#[test]
fn a_refund_notify_reads_as_v2s() {
    let (h, body) = notify("REFUND.SUCCESS", "refund", REFUNDED, 1528425896);
    let V3Notify::Refund(r) = parse_at(&h, &body, 1528425896).unwrap() else {
        panic!("not a refund");
    };
    assert_eq!(r.out_refund_no, "R1217752501201407033233368018");
    assert_eq!((r.total_fee, r.refund_fee), (100, 40));
    assert_eq!(r.state, RefundState::Success);
    assert_eq!(r.success_time.as_deref(), Some("2018-06-08 10:44:56"));
    assert_eq!(r.recv_account.as_deref(), Some("支付用户零钱"));
    let abnormal = REFUNDED.replace(
        r#""refund_status":"SUCCESS""#,
        r#""refund_status":"ABNORMAL""#,
    );
    let (h, body) = notify("REFUND.ABNORMAL", "refund", &abnormal, 1528425896);
    let V3Notify::Refund(r) = parse_at(&h, &body, 1528425896).unwrap() else {
        panic!("not a refund");
    };
    assert_eq!((r.state, r.success_time), (RefundState::Change, None));
}

#[test]
fn forged_replayed_or_foreign_notifies_are_refused() {
    let now = 1528425296;
    let (h, body) = notify("TRANSACTION.SUCCESS", "transaction", PAID, now);
    // Replayed ten minutes later.
    assert!(matches!(
        parse_at(&h, &body, now + 600),
        Err(V3NotifyError::Signature(VerifyError::Stale(_)))
    ));
    // Signed by another key (same serial claimed).
    let mut other = h.clone();
    other.signature = wechat().sign(b"something else");
    assert_eq!(
        parse_at(&other, &body, now),
        Err(V3NotifyError::Signature(VerifyError::BadSignature))
    );
    // An unknown serial.
    let mut unknown = h.clone();
    unknown.serial = "5DEA10EF55877E3CF6C33255C2E7DEFFF7E427EC".into();
    assert!(matches!(
        parse_at(&unknown, &body, now),
        Err(V3NotifyError::Signature(VerifyError::UnknownSerial(_)))
    ));
    // A ciphertext altered and signed again (by WeChat's key): the tag refuses it.
    let text = String::from_utf8(body.clone()).unwrap();
    let at = text.find("ZiFG86").unwrap();
    let tampered = format!("{}Y{}", &text[..at], &text[at + 1..]).into_bytes();
    assert_eq!(
        parse_at(&signed(now, &tampered), &tampered, now),
        Err(V3NotifyError::Decrypt(DecryptError::Tag))
    );
    // The wrong APIv3 key.
    let wrong = ApiV3Key::new("b7cde1ZJB1kG2e7VfTs3jQzaWizur8Gb").unwrap();
    assert_eq!(
        parse(&h, &body, &keys(), &wrong, APPID, MCHID, now),
        Err(V3NotifyError::Decrypt(DecryptError::Tag))
    );
    // Another merchant's payment, or another app's.
    assert_eq!(
        parse(&h, &body, &keys(), &key(), APPID, "1900000002", now),
        Err(V3NotifyError::WrongMerchant)
    );
    assert_eq!(
        parse(&h, &body, &keys(), &key(), "wxother", MCHID, now),
        Err(V3NotifyError::WrongMerchant)
    );
    // Not a success, no amount, an event we do not take, not JSON.
    let notpay = PAID.replace(r#""trade_state":"SUCCESS""#, r#""trade_state":"NOTPAY""#);
    let (h2, b2) = notify("TRANSACTION.SUCCESS", "transaction", &notpay, now);
    assert_eq!(
        parse_at(&h2, &b2, now),
        Err(V3NotifyError::Field("trade_state"))
    );
    let free = PAID.replace(r#""total":100,"#, r#""total":0,"#);
    let (h3, b3) = notify("TRANSACTION.SUCCESS", "transaction", &free, now);
    assert_eq!(
        parse_at(&h3, &b3, now),
        Err(V3NotifyError::Field("amount.total"))
    );
    let (h4, b4) = notify("PAYSCORE.USER_OPEN_SERVICE", "payscore", "{}", now);
    assert_eq!(
        parse_at(&h4, &b4, now),
        Err(V3NotifyError::UnknownEvent(
            "PAYSCORE.USER_OPEN_SERVICE".into()
        ))
    );
    let junk = b"<xml>not json</xml>".to_vec();
    assert!(matches!(
        parse_at(&signed(now, &junk), &junk, now),
        Err(V3NotifyError::Envelope(_))
    ));
}
