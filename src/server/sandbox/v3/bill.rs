//! `GET /v3/bill/tradebill` and `GET /v3/billdownload/file` (wxpay-v3.md §5.6): the same bill
//! as v2's downloadbill (`api::bill_for`), kept under a token for five minutes, its SHA1 in the
//! first answer, the file itself unsigned (gzip when asked) from the second.

use axum::extract::State;
use axum::response::Response;
use serde_json::json;
use sha1::{Digest, Sha1};

use super::proto::{authenticate, missing, unsigned, with_fault, Ctx, Reply, V3Error, V3Request};
use crate::server::sandbox::api::{bill_for, BillRefusal};
use crate::server::sandbox::bill;
use crate::server::sandbox::faults::Api;
use crate::server::sandbox::Sandbox;
use crate::server::support::clock::now_ms;
use crate::server::support::ids::random_alnum;

/// download_url is valid this long (JV; some doc copies say 30 s).
pub(super) const TOKEN_TTL_MS: i64 = 5 * 60 * 1000;

/// A bill served under a download token.
#[derive(Debug, Clone)]
pub struct BillToken {
    mchid: String,
    text: String,
    gzip: bool,
    expires_ms: i64,
}

/// `yyyy-MM-dd` → `yyyyMMdd`.
fn compact_date(d: &str) -> Option<String> {
    let b = d.as_bytes();
    let digits_at = |r: std::ops::Range<usize>| b[r].iter().all(u8::is_ascii_digit);
    (b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && digits_at(0..4)
        && digits_at(5..7)
        && digits_at(8..10))
    .then(|| format!("{}{}{}", &d[0..4], &d[5..7], &d[8..10]))
}

fn bad(field: &str, issue: &str) -> V3Error {
    V3Error::param(format!("{field}参数错误: {issue}"))
        .with_detail(json!({"field": field, "location": "query", "issue": issue}))
}

fn tradebill_rules(sb: &Sandbox, ctx: &Ctx) -> Result<Reply, V3Error> {
    let q = &ctx.query;
    let date = q
        .get("bill_date")
        .ok_or_else(|| missing("bill_date", "query"))?;
    let date = compact_date(date).ok_or_else(|| bad("bill_date", "yyyy-MM-dd"))?;
    // ALL by default (v3 documents it; v2 requires the field).
    let kind =
        match q.get("bill_type").map(String::as_str) {
            None | Some("ALL") => "ALL",
            Some(k @ ("SUCCESS" | "REFUND" | "RECHARGE_REFUND")) => k,
            // Special-rate bills: never any rows here.
            Some("ALL_SPECIAL" | "SUC_SPECIAL" | "REF_SPECIAL") => "RECHARGE_REFUND",
            Some(_) => return Err(bad(
                "bill_type",
                "ALL, SUCCESS, REFUND, RECHARGE_REFUND, ALL_SPECIAL, SUC_SPECIAL or REF_SPECIAL",
            )),
        };
    let gzip = match q.get("tar_type").map(String::as_str) {
        None => false,
        Some("GZIP") => true,
        Some(_) => return Err(bad("tar_type", "GZIP")),
    };
    let text =
        bill_for(sb, &ctx.merchant.mchid, Some(&date), Some(kind), true).map_err(|r| match r {
            BillRefusal::BadDate => bad("bill_date", "a past day within three months, yyyy-MM-dd"),
            BillRefusal::BadType | BillRefusal::BadTarType => bad("bill_type", "unknown"),
            BillRefusal::Creating => V3Error::new(400, "STATEMENT_CREATING", "账单生成中"),
            BillRefusal::NoBill => V3Error::new(400, "NO_STATEMENT_EXIST", "请求的账单文件不存在"),
        })?;
    let hash = Sha1::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<String>();
    let token = random_alnum(48);
    let now = now_ms();
    {
        let mut inner = sb.inner.lock().expect("sandbox lock");
        inner.bill_tokens.retain(|_, t| t.expires_ms > now);
        inner.bill_tokens.insert(
            token.clone(),
            BillToken {
                mchid: ctx.merchant.mchid.clone(),
                text,
                gzip,
                expires_ms: now + TOKEN_TTL_MS,
            },
        );
    }
    // Back at this sandbox, however it is reached and wherever it is nested.
    let prefix = ctx.path.strip_suffix("/v3/bill/tradebill").unwrap_or("");
    Ok(Reply::Json(json!({
        "hash_type": "SHA1",
        "hash_value": hash,
        "download_url": format!("{}{prefix}/v3/billdownload/file?token={token}", ctx.origin),
    })))
}

pub(in crate::server::sandbox) async fn tradebill(
    State(sb): State<Sandbox>,
    req: V3Request,
) -> Response {
    let ctx = match authenticate(&sb, req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    // A bill names no order: the global knob, as v2's downloadbill.
    let fault = sb.faults_for(None).api(Api::DownloadBill);
    with_fault(&ctx, fault, || tradebill_rules(&sb, &ctx)).await
}

/// The file: a signed request, an unsigned answer (§5.6). An unknown, expired or another
/// merchant's token is refused alike (400 INVALID_REQUEST [sandbox wording]).
pub(in crate::server::sandbox) async fn download(
    State(sb): State<Sandbox>,
    req: V3Request,
) -> Response {
    let ctx = match authenticate(&sb, req) {
        Ok(c) => c,
        Err(r) => return r,
    };
    let now = now_ms();
    let found = ctx.query.get("token").and_then(|t| {
        let inner = sb.inner.lock().expect("sandbox lock");
        inner
            .bill_tokens
            .get(t)
            .filter(|b| b.expires_ms > now && b.mchid == ctx.merchant.mchid)
            .cloned()
    });
    match found {
        None => ctx.answer(Err(V3Error::new(
            400,
            "INVALID_REQUEST",
            "账单下载链接不存在或已过期，请重新申请 (token unknown or older than 5 minutes)",
        ))),
        Some(b) if b.gzip => unsigned("application/x-gzip", bill::gzip(&b.text)),
        Some(b) => unsigned("text/plain; charset=utf-8", b.text.into_bytes()),
    }
}
