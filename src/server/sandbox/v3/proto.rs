//! v3's answers, shared by its endpoints: WeChat's error JSON, the v2 outcomes in v3's words,
//! answers signed over the exact bytes sent by the key the mode (and in the migration window the
//! request's `Wechatpay-Serial`) selects (§2, §3.3), and the API faults.

use axum::body::Body;
use axum::http::{header, StatusCode};
use axum::response::Response;
use serde_json::{json, Value};

pub(super) use super::auth::{authenticate, Ctx, V3Request};
pub(super) use super::fields::{
    check_notify_url, invalid, missing, opt_object, opt_str, req_fen, req_str,
};
use super::SandboxV3;
use crate::server::sandbox::api::{BizError, HANG};
use crate::server::sandbox::faults::ApiFault;
use crate::server::support::clock::now_ms;
use crate::server::support::ids::random_alnum;
use crate::server::wxpay::v3::crypto::{answer_message, SCHEME};

/// A refusal: HTTP status, WeChat's code and message, and an optional `detail`.
#[derive(Debug, Clone)]
pub(super) struct V3Error {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub detail: Option<Value>,
}

impl V3Error {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        V3Error {
            status: StatusCode::from_u16(status).expect("a valid status"),
            code,
            message: message.into(),
            detail: None,
        }
    }

    /// 400 PARAM_ERROR.
    pub fn param(message: impl Into<String>) -> Self {
        V3Error::new(400, "PARAM_ERROR", message)
    }

    pub fn with_detail(mut self, detail: Value) -> Self {
        self.detail = Some(detail);
        self
    }
}

pub(super) fn system_error() -> V3Error {
    V3Error::new(500, "SYSTEM_ERROR", "系统错误 (sandbox fault)")
}

/// A v2 business outcome in v3's words (wxpay-v3.md §5 tables). The too-soon second refund
/// (v2 INVALID_REQ_TOO_MUCH, "wait a minute") becomes 429: back off, retry the same number.
pub(super) fn from_v2(e: BizError) -> V3Error {
    let BizError(code, message) = e;
    let (status, code) = match code {
        "ORDERNOTEXIST" => (404, "ORDER_NOT_EXIST"),
        "REFUNDNOTEXIST" => (404, "RESOURCE_NOT_EXISTS"),
        "ORDERPAID" => (400, "ORDER_PAID"),
        "ORDERCLOSED" => (400, "ORDER_CLOSED"),
        "OUT_TRADE_NO_USED" => (403, "OUT_TRADE_NO_USED"),
        "NOTENOUGH" => (403, "NOT_ENOUGH"),
        "SYSTEMERROR" => (500, "SYSTEM_ERROR"),
        "FREQUENCY_LIMITED" | "INVALID_REQ_TOO_MUCH" => (429, "FREQUENCY_LIMITED"),
        "LACK_PARAMS" | "PARAM_ERROR" => (400, "PARAM_ERROR"),
        // INVALID_REQUEST, REFUND_FEE_MISMATCH, TRADE_OVERDUE, ERROR (fully refunded, 50
        // refunds): the request cannot succeed as it is.
        _ => (400, "INVALID_REQUEST"),
    };
    V3Error::new(status, code, message)
}

/// What an endpoint answers.
pub(super) enum Reply {
    Json(Value),
    NoContent,
}

pub(super) type Outcome = Result<Reply, V3Error>;

fn error_body(e: &V3Error) -> Vec<u8> {
    let mut v = json!({"code": e.code, "message": e.message});
    if let Some(d) = &e.detail {
        v["detail"] = d.clone();
    }
    serde_json::to_vec(&v).expect("JSON values serialize")
}

/// An answer signed over exactly `body` (§2.2) by the key `serial` selects (§3.3).
pub(super) fn signed(
    v3: &SandboxV3,
    serial: Option<&str>,
    status: StatusCode,
    body: Vec<u8>,
) -> Response {
    let key = v3.answer_key(serial);
    let timestamp = (now_ms() / 1000).to_string();
    let nonce = random_alnum(32);
    let signature = key.signer.sign(&answer_message(&timestamp, &nonce, &body));
    let mut b = Response::builder()
        .status(status)
        .header("Wechatpay-Timestamp", timestamp)
        .header("Wechatpay-Nonce", nonce)
        .header("Wechatpay-Signature", signature)
        .header("Wechatpay-Serial", key.id.as_str())
        .header("Wechatpay-Signature-Type", SCHEME)
        .header("Request-ID", request_id());
    if !body.is_empty() {
        b = b.header(header::CONTENT_TYPE, "application/json; charset=utf-8");
    }
    b.body(Body::from(body)).expect("valid headers")
}

/// An unsigned answer (the bill file, §5.6).
pub(super) fn unsigned(content_type: &str, body: Vec<u8>) -> Response {
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header("Request-ID", request_id())
        .body(Body::from(body))
        .expect("valid headers")
}

fn request_id() -> String {
    random_alnum(32).to_ascii_uppercase()
}

pub(super) fn error_response(v3: &SandboxV3, serial: Option<&str>, e: &V3Error) -> Response {
    signed(v3, serial, e.status, error_body(e))
}

impl Ctx {
    /// The signed answer of an outcome.
    pub fn answer(&self, outcome: Outcome) -> Response {
        let serial = self.serial.as_deref();
        match outcome {
            Ok(Reply::Json(v)) => signed(
                &self.v3,
                serial,
                StatusCode::OK,
                serde_json::to_vec(&v).expect("JSON values serialize"),
            ),
            Ok(Reply::NoContent) => signed(&self.v3, serial, StatusCode::NO_CONTENT, Vec::new()),
            Err(e) => error_response(&self.v3, serial, &e),
        }
    }

    /// Refuses `mchid` (body or query) when it is not the signing merchant's.
    pub fn same_mchid(&self, mchid: Option<&str>, location: &str) -> Result<(), V3Error> {
        match mchid {
            None | Some("") => Err(missing(&format!("/{location}/mchid"), location)),
            Some(m) if m == self.merchant.mchid => Ok(()),
            Some(_) => Err(V3Error::param("mchid与请求头Authorization中的mchid不一致")
                .with_detail(json!({"field": "mchid", "location": location}))),
        }
    }
}

/// Applies the API fault in force: SYSTEM_ERROR without effect, or the effect with no timely
/// answer, or the answer late (as v2's `with_fault`).
pub(super) async fn with_fault(
    ctx: &Ctx,
    fault: ApiFault,
    apply: impl FnOnce() -> Outcome,
) -> Response {
    match fault {
        ApiFault::SystemError => ctx.answer(Err(system_error())),
        ApiFault::Timeout => {
            let response = ctx.answer(apply());
            tokio::time::sleep(HANG).await;
            response
        }
        ApiFault::Latency(d) => {
            tokio::time::sleep(d).await;
            ctx.answer(apply())
        }
        ApiFault::None => ctx.answer(apply()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_outcomes_in_v3_words() {
        let m = |c| {
            let e = from_v2(BizError(c, String::new()));
            (e.status.as_u16(), e.code)
        };
        assert_eq!(m("ORDERNOTEXIST"), (404, "ORDER_NOT_EXIST"));
        assert_eq!(m("ORDERPAID"), (400, "ORDER_PAID"));
        assert_eq!(m("ORDERCLOSED"), (400, "ORDER_CLOSED"));
        assert_eq!(m("OUT_TRADE_NO_USED"), (403, "OUT_TRADE_NO_USED"));
        assert_eq!(m("NOTENOUGH"), (403, "NOT_ENOUGH"));
        assert_eq!(m("SYSTEMERROR"), (500, "SYSTEM_ERROR"));
        assert_eq!(m("LACK_PARAMS"), (400, "PARAM_ERROR"));
        assert_eq!(m("REFUND_FEE_MISMATCH"), (400, "INVALID_REQUEST"));
        assert_eq!(m("INVALID_REQ_TOO_MUCH"), (429, "FREQUENCY_LIMITED"));
    }
}
