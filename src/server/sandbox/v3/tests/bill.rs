use std::io::Read;
use std::time::Duration;

use sha1::{Digest, Sha1};

use super::{app, app_with, otn, MCH, NOWHERE};
use crate::server::sandbox::bill::BillType;
use crate::server::sandbox::faults::Faults;
use crate::server::sandbox::v3::V3Mode;
use crate::server::support::clock::{format_beijing, now_ms};

/// Today in Beijing: (`yyyy-MM-dd`, `yyyyMMdd`).
fn today() -> (String, String) {
    let d = format_beijing(now_ms())[..8].to_string();
    (format!("{}-{}-{}", &d[0..4], &d[4..6], &d[6..8]), d)
}

fn sha1_hex(b: &[u8]) -> String {
    Sha1::digest(b).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn tradebill_then_the_unsigned_file_whose_sha1_matches() {
    let app = app(V3Mode::PublicKey).await;
    let no = otn();
    app.native(&no, 123, NOWHERE).await;
    app.sb.pay(MCH, &no).unwrap();
    let (day, compact) = today();
    for gzip in [true, false] {
        let tar = if gzip { "&tar_type=GZIP" } else { "" };
        let a = app
            .call(
                "GET",
                &format!("/v3/bill/tradebill?bill_date={day}&bill_type=ALL{tar}"),
                None,
            )
            .await;
        assert_eq!(a.status, 200, "{}", String::from_utf8_lossy(&a.body));
        app.assert_signed_by(&a, &app.v3.public_key.id);
        let j = a.json();
        assert_eq!(j["hash_type"], "SHA1");
        let url = j["download_url"].as_str().unwrap();
        let prefix = format!("{}/sandbox/v3/billdownload/file?token=", app.base);
        assert!(url.starts_with(&prefix), "{url}");
        let relative = url.strip_prefix(&format!("{}/sandbox", app.base)).unwrap();
        // Unsigned requests do not get it; signed ones get it unsigned.
        assert_eq!(
            app.raw("GET", relative, "", None, &[]).await.code(401),
            "SIGN_ERROR"
        );
        let f = app.call("GET", relative, None).await;
        assert_eq!(f.status, 200);
        assert!(f.header("wechatpay-signature").is_empty());
        let text = if gzip {
            assert_eq!(f.header("content-type"), "application/x-gzip");
            let mut t = Vec::new();
            flate2::read::GzDecoder::new(&f.body[..])
                .read_to_end(&mut t)
                .unwrap();
            t
        } else {
            f.body.clone()
        };
        assert_eq!(sha1_hex(&text), j["hash_value"].as_str().unwrap());
        // The same bill as v2's downloadbill.
        let v2 = app.sb.trade_bill(MCH, &compact, BillType::All).unwrap();
        assert_eq!(text, v2.as_bytes());
        assert!(v2.contains(&no));
    }
    let a = app
        .call("GET", "/v3/billdownload/file?token=NOSUCHTOKEN", None)
        .await;
    assert_eq!(a.code(400), "INVALID_REQUEST");
}

#[tokio::test]
async fn tradebill_refusals() {
    let app = app(V3Mode::PublicKey).await;
    let (day, compact) = today();
    let tradebill = |q: String| format!("/v3/bill/tradebill?{q}");
    // v2's date format, an unknown type, an unknown tar type.
    for q in [
        format!("bill_date={compact}"),
        format!("bill_date={day}&bill_type=EVERYTHING"),
        format!("bill_date={day}&tar_type=ZIP"),
        "bill_type=ALL".to_string(),
    ] {
        assert_eq!(
            app.call("GET", &tradebill(q.clone()), None).await.code(400),
            "PARAM_ERROR",
            "{q}"
        );
    }
    // Nothing paid that day.
    let a = app
        .call("GET", &tradebill(format!("bill_date={day}")), None)
        .await;
    assert_eq!(a.code(400), "NO_STATEMENT_EXIST");
    // Today's bill is not ready before tomorrow morning.
    let late = app_with(V3Mode::PublicKey, |c| {
        c.bill_ready_after = Duration::from_secs(9 * 3600)
    })
    .await;
    let a = late
        .call("GET", &tradebill(format!("bill_date={day}")), None)
        .await;
    assert_eq!(a.code(400), "STATEMENT_CREATING");
    // The downloadbill fault applies to tradebill.
    app.sb
        .set_faults(None, Faults::parse("downloadbill=systemerror").unwrap());
    let a = app
        .call("GET", &tradebill(format!("bill_date={day}")), None)
        .await;
    assert_eq!(a.code(500), "SYSTEM_ERROR");
}
