//! `GET /v3/certificates` (wxpay-v3.md §3.1): the platform certificate encrypted with the
//! calling merchant's APIv3 key, or, for a public-key merchant, WeChat's 404.

use axum::extract::State;
use axum::response::Response;
use serde_json::json;

use super::keys::validity;
use super::proto::{authenticate, Reply, V3Error, V3Request};
use super::V3Mode;
use crate::server::sandbox::Sandbox;
use crate::server::support::clock::format_rfc3339_beijing;
use crate::server::support::ids::random_alnum;
use crate::server::wxpay::v3::crypto::encrypt;

/// What WeChat answers merchants who have no platform certificate (wechatpay-java #354).
pub(super) const NO_CERTIFICATE: &str = "无可用的平台证书，请在商户平台-API安全申请使用微信支付公钥。\
可查看指引https://pay.weixin.qq.com/docs/merchant/products/platform-certificate/wxp-pub-key-guide.html";

pub(in crate::server::sandbox) async fn certificates(
    State(sb): State<Sandbox>,
    req: V3Request,
) -> Response {
    let ctx = match authenticate(&sb, req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let cert = &ctx.v3.certificate;
    let pem = match (ctx.v3.mode, &cert.cert_pem) {
        (V3Mode::PublicKey, _) | (_, None) => {
            return ctx.answer(Err(V3Error::new(
                404,
                "RESOURCE_NOT_EXISTS",
                NO_CERTIFICATE,
            )))
        }
        (_, Some(pem)) => pem,
    };
    let Some((not_before, not_after)) = validity(pem) else {
        return ctx.answer(Err(V3Error::new(
            500,
            "SYSTEM_ERROR",
            "平台证书不可读 [sandbox]",
        )));
    };
    sb.certificate_downloads
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nonce = random_alnum(12);
    let ciphertext = encrypt(
        &ctx.merchant.apiv3_key,
        &nonce,
        "certificate",
        pem.as_bytes(),
    );
    ctx.answer(Ok(Reply::Json(json!({"data": [{
        "serial_no": cert.id,
        "effective_time": format_rfc3339_beijing(not_before),
        "expire_time": format_rfc3339_beijing(not_after),
        "encrypt_certificate": {
            "algorithm": "AEAD_AES_256_GCM",
            "associated_data": "certificate",
            "nonce": nonce,
            "ciphertext": ciphertext,
        },
    }]}))))
}

/// `GET /sandbox/admin/v3/public-key`: what the merchant platform would let a merchant download
/// (the WeChat Pay public key and its id), for a client in another process — the sandbox's keys
/// are made afresh by every process. Unsigned and unauthenticated, like the other admin calls:
/// it is a public key.
pub(in crate::server::sandbox) async fn public_key(
    State(sb): State<Sandbox>,
) -> axum::Json<serde_json::Value> {
    let v3 = sb.cfg.v3.as_ref().expect("v3 routes exist only with v3");
    axum::Json(json!({
        "mode": format!("{:?}", v3.mode),
        "public_key_id": v3.public_key.id,
        "public_key_pem": v3.public_key.public_pem,
        "certificate_serial": v3.certificate.id,
        "certificate_pem": v3.certificate.cert_pem,
    }))
}
