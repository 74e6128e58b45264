//! `/pay/downloadbill` (wxpay-refund-bill.md §4): a signed request for one Beijing day's bill.
//! The bill itself is neither XML nor signed; every refusal is a small unsigned XML in an HTTP
//! 200 answer, plain even when gzip was asked for.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::{authenticate, get, xml_response, Authed, HANG};
use crate::server::sandbox::bill::{self, BillType};
use crate::server::sandbox::faults::{Api, ApiFault};
use crate::server::sandbox::Sandbox;
use crate::server::support::clock::now_ms;

const DAY_MS: i64 = 86_400_000;

/// `return_code=FAIL` with WeChat's `error_code` (not `err_code`), fields in WeChat's order.
/// Known codes: 20001 (a bad parameter) and 20002 (No Bill Exist); 20003 for `Bill Creating`
/// and 20007 for SYSTEMERROR are [unverified] (clients go by `return_msg`).
fn bill_error(msg: &str, code: &str) -> Response {
    xml_response(format!(
        "<xml><return_code><![CDATA[FAIL]]></return_code><return_msg><![CDATA[{msg}]]></return_msg>\
         <error_code><![CDATA[{code}]]></error_code></xml>"
    ))
}

pub(in crate::server::sandbox) async fn download_bill(
    State(sb): State<Sandbox>,
    body: Bytes,
) -> Response {
    let a = match authenticate(&sb, &body) {
        Ok(a) => a,
        Err(r) => return r,
    };
    // A bill names no order: the global knob.
    match sb.faults_for(None).api(Api::DownloadBill) {
        ApiFault::SystemError => bill_error("SYSTEMERROR", "20007"),
        ApiFault::Timeout => {
            let response = answer(&sb, &a);
            tokio::time::sleep(HANG).await;
            response
        }
        ApiFault::Latency(d) => {
            tokio::time::sleep(d).await;
            answer(&sb, &a)
        }
        ApiFault::None => answer(&sb, &a),
    }
}

fn answer(sb: &Sandbox, a: &Authed) -> Response {
    let gzip = match get(&a.p, "tar_type") {
        None => Ok(false),
        Some("GZIP") => Ok(true),
        Some(_) => Err(()),
    };
    let text = bill_for(
        sb,
        &a.merchant.mch_id,
        get(&a.p, "bill_date"),
        get(&a.p, "bill_type"),
        gzip.is_ok(),
    );
    match (text, gzip) {
        (Err(BillRefusal::BadDate), _) => bill_error("invalid bill_date", "20001"),
        (Err(BillRefusal::BadType), _) => bill_error("invalid bill_type", "20001"),
        (Err(BillRefusal::BadTarType), _) => bill_error("invalid tar_type", "20001"),
        (Err(BillRefusal::Creating), _) => bill_error("Bill Creating", "20003"),
        (Err(BillRefusal::NoBill), _) => bill_error("No Bill Exist", "20002"),
        (Ok(t), Ok(true)) => {
            ([(CONTENT_TYPE, "application/x-gzip")], bill::gzip(&t)).into_response()
        }
        (Ok(t), _) => ([(CONTENT_TYPE, "text/plain; charset=utf-8")], t).into_response(),
    }
}

/// Why a bill is not served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(in crate::server::sandbox) enum BillRefusal {
    BadDate,
    BadType,
    BadTarType,
    Creating,
    NoBill,
}

/// The bill merchant `mch_id` asks for (`bill_date` as `yyyyMMdd`), or why not, checked in
/// WeChat's order: the date, the type, the tar type (`tar_ok`), a day to come, a day not yet
/// ready, a day without rows. Shared by v2's downloadbill and v3's tradebill.
pub(in crate::server::sandbox) fn bill_for(
    sb: &Sandbox,
    mch_id: &str,
    bill_date: Option<&str>,
    bill_type: Option<&str>,
    tar_ok: bool,
) -> Result<String, BillRefusal> {
    let date = bill_date.ok_or(BillRefusal::BadDate)?;
    let day_start = bill::day_start_ms(date).ok_or(BillRefusal::BadDate)?;
    let kind = match bill_type {
        Some("RECHARGE_REFUND") => None,
        Some(t) => Some(BillType::parse(t).ok_or(BillRefusal::BadType)?),
        // The doc says ALL by default; in practice WeChat requires it (jasl/wx_pay #37).
        None => return Err(BillRefusal::BadType),
    };
    if !tar_ok {
        return Err(BillRefusal::BadTarType);
    }
    let now = now_ms();
    if day_start > now {
        return Err(BillRefusal::BadDate);
    }
    // Ready when the day is over plus the configured delay; zero serves even today's at once.
    let after = i64::try_from(sb.cfg.bill_ready_after.as_millis()).unwrap_or(i64::MAX);
    if after > 0 && now < (day_start + DAY_MS).saturating_add(after) {
        return Err(BillRefusal::Creating);
    }
    // No recharge coupons here: a RECHARGE_REFUND bill never has rows.
    kind.and_then(|k| sb.trade_bill(mch_id, date, k))
        .ok_or(BillRefusal::NoBill)
}
