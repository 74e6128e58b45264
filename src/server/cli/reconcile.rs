//! `scanpay reconcile --date 2026-11-30|today|yesterday`: reconciles one Beijing day against
//! WeChat's trade bill now, whatever the day's state (a re-run replaces its result), and prints
//! the day as JSON with a count per class. Exits 1 when the bill could not be had (not ready,
//! refused, no answer, unusable), 2 for bad arguments or settings.

use std::sync::Arc;

use crate::server::config::Settings;
use crate::server::domain::recon::BillDate;
use crate::server::orders::reconcile::{self, RunOutcome};
use crate::server::redis_conn::RedisConn;
use crate::server::state::Ctx;
use crate::server::store;

const USAGE: &str =
    "usage: scanpay reconcile --date YYYY-MM-DD|today|yesterday (a Beijing day, not in the future)";

/// The day the command line names, checked against `now`.
pub fn parse(args: &[String], now: i64) -> Result<BillDate, String> {
    let usage = |why: &str| format!("{why}\n{USAGE}");
    let value = match args {
        [flag, v] if flag == "--date" => v.clone(),
        [flag] if flag.starts_with("--date=") => flag["--date=".len()..].to_string(),
        _ => return Err(usage("reconcile needs --date")),
    };
    let today = BillDate::of_ms(now);
    let date = match value.as_str() {
        "today" => today.clone(),
        "yesterday" => today.prev(),
        v => BillDate::parse(v).map_err(|e| usage(&e))?,
    };
    date.runnable(now).map_err(|e| usage(&e))?;
    Ok(date)
}

/// Runs the day; Ok(json) when it was reconciled, Err((json or message, exit code)) otherwise.
pub async fn run(settings: Settings, date: &BillDate) -> Result<String, (String, i32)> {
    let setup = |e: String| (e, 2);
    let db = store::connect(&settings.database_url, &settings.database_pool)
        .await
        .map_err(|e| setup(e.to_string()))?;
    db.migrate().await.map_err(|e| setup(e.to_string()))?;
    let wxpay =
        crate::server::startup::gateway(&settings, None, Default::default()).map_err(setup)?;
    // The status cache (if any) hears of what a recheck applies, as in the server.
    let redis = match &settings.redis {
        Some((url, prefix)) => Some(Arc::new(
            RedisConn::connect(url, prefix)
                .await
                .map_err(|e| setup(e.to_string()))?,
        )),
        None => None,
    };
    let mut ctx = Ctx::new(settings, db, wxpay, None);
    if let Some(r) = redis {
        ctx = ctx.with_redis(r);
    }
    let outcome = reconcile::run_day(&ctx, date, "cli", true)
        .await
        .map_err(|e| (format!("database: {e}"), 1))?;
    let pretty = |v: serde_json::Value| serde_json::to_string_pretty(&v).expect("JSON");
    match outcome {
        RunOutcome::Done(day) => Ok(pretty(day.to_json())),
        RunOutcome::Unavailable(why) => Err((
            pretty(serde_json::json!({ "date": date.as_str(), "error": why })),
            1,
        )),
        RunOutcome::NotClaimed | RunOutcome::Superseded => Err((
            pretty(serde_json::json!({
                "date": date.as_str(),
                "error": "another run took the day; see its result",
            })),
            1,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    fn args(a: &[&str]) -> Vec<String> {
        a.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dates_by_name_and_by_day() {
        // 2026-12-07 12:00 Beijing.
        let now = crate::server::support::clock::parse_beijing("20261207120000").unwrap();
        assert_eq!(
            parse(&args(&["--date", "today"]), now).unwrap().as_str(),
            "2026-12-07"
        );
        assert_eq!(
            parse(&args(&["--date=yesterday"]), now).unwrap().as_str(),
            "2026-12-06"
        );
        assert_eq!(
            parse(&args(&["--date", "2026-11-30"]), now)
                .unwrap()
                .as_str(),
            "2026-11-30"
        );
        for bad in [
            &["--date", "2026-12-08"][..],
            &["--date", "2026-02-30"],
            &["--date", "2025-12-01"],
            &["--date", "0001-01-01"],
            &["--date", "30/11/2026"],
            &["--date"],
            &[],
            &["--day", "today"],
        ] {
            assert!(parse(&args(bad), now).is_err(), "{bad:?}");
        }
    }
}
