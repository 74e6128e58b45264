//! Readers of a v3 request's JSON fields: each refusal is PARAM_ERROR naming the field
//! (`detail.field` a JSON pointer, as WeChat's).

use serde_json::{json, Value};

use super::proto::V3Error;

/// PARAM_ERROR naming the missing field `ptr` (a JSON pointer, or `/query/…`).
pub(super) fn missing(ptr: &str, location: &str) -> V3Error {
    V3Error::param(format!("缺少参数 {ptr}"))
        .with_detail(json!({"field": ptr, "location": location, "issue": "required"}))
}

/// PARAM_ERROR: the field `ptr` breaks a rule.
pub(super) fn invalid(ptr: &str, issue: &str) -> V3Error {
    V3Error::param(format!("输入源“/body{ptr}”校验失败: {issue}"))
        .with_detail(json!({"field": ptr, "location": "body", "issue": issue}))
}

/// An optional string field of at most `max` UTF-8 bytes (null counts as absent).
pub(super) fn opt_str<'a>(v: &'a Value, ptr: &str, max: usize) -> Result<Option<&'a str>, V3Error> {
    match v.pointer(ptr) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.len() > max => {
            Err(invalid(ptr, &format!("at most {max} bytes")))
        }
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(invalid(ptr, "must be a string")),
    }
}

/// A required, non-empty string field of at most `max` UTF-8 bytes.
pub(super) fn req_str<'a>(v: &'a Value, ptr: &str, max: usize) -> Result<&'a str, V3Error> {
    opt_str(v, ptr, max)?
        .filter(|s| !s.is_empty())
        .ok_or_else(|| missing(ptr, "body"))
}

/// A required whole number of fen above 0.
pub(super) fn req_fen(v: &Value, ptr: &str) -> Result<i64, V3Error> {
    match v.pointer(ptr) {
        None | Some(Value::Null) => Err(missing(ptr, "body")),
        Some(n) => n
            .as_i64()
            .filter(|f| *f > 0)
            .ok_or_else(|| invalid(ptr, "must be a whole number of fen above 0")),
    }
}

/// An optional object field (null counts as absent).
pub(super) fn opt_object<'a>(v: &'a Value, ptr: &str) -> Result<Option<&'a Value>, V3Error> {
    match v.pointer(ptr) {
        None | Some(Value::Null) => Ok(None),
        Some(o @ Value::Object(_)) => Ok(Some(o)),
        Some(_) => Err(invalid(ptr, "must be an object")),
    }
}

/// `notify_url`: http(s) (the sandbox allows http, for local tests), no query string.
pub(super) fn check_notify_url(ptr: &str, url: &str) -> Result<(), V3Error> {
    if !(url.starts_with("http://") || url.starts_with("https://")) || url.contains('?') {
        return Err(invalid(
            ptr,
            "an https URL without a query string (the sandbox also takes http)",
        ));
    }
    Ok(())
}
