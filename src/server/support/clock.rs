//! Time: scanpay keeps UTC milliseconds since the Unix epoch everywhere; WeChat's
//! `yyyyMMddHHmmss` timestamps are Beijing time (UTC+8, no daylight saving).

/// `500ms`, `30s`, `15m`, `2h`, `1h30m` (humantime's syntax); zero is refused.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let d = humantime::parse_duration(s)
        .map_err(|_| format!("{s:?} is not a duration like 30s, 15m or 500ms"))?;
    if d.is_zero() {
        return Err(format!("{s:?} must be longer than zero"));
    }
    Ok(d)
}

/// Now, in UTC epoch milliseconds.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis() as i64
}

/// `2026-11-27 10:31:05` in Beijing time, as WeChat and shop staff read it.
pub fn beijing_display(utc_ms: i64) -> String {
    let s = format_beijing(utc_ms);
    format!(
        "{}-{}-{} {}:{}:{}",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[8..10],
        &s[10..12],
        &s[12..14]
    )
}

use std::time::Duration;

const BEIJING_OFFSET_S: i64 = 8 * 3600;

/// Formats UTC epoch milliseconds as Beijing `yyyyMMddHHmmss`.
pub fn format_beijing(utc_ms: i64) -> String {
    let secs = utc_ms.div_euclid(1000) + BEIJING_OFFSET_S;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses Beijing `yyyyMMddHHmmss` into UTC epoch milliseconds.
pub fn parse_beijing(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not a yyyyMMddHHmmss time");
    if s.len() != 14 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let n = |r: std::ops::Range<usize>| s[r].parse::<i64>().expect("digits");
    let (y, mo, d, h, mi, se) = (n(0..4), n(4..6), n(6..8), n(8..10), n(10..12), n(12..14));
    if !(1..=12).contains(&mo) || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 || se > 59
    {
        return Err(bad());
    }
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + se - BEIJING_OFFSET_S;
    Ok(secs * 1000)
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

// Howard Hinnant's civil calendar algorithms (days relative to 1970-01-01).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn beijing_is_utc_plus_eight() {
        // 2025-10-29 15:38:52 Beijing = 07:38:52 UTC (the real notify of WxJava #3750).
        let utc_ms = 1_761_723_532_000;
        assert_eq!(format_beijing(utc_ms), "20251029153852");
        assert_eq!(parse_beijing("20251029153852"), Ok(utc_ms));
        // Crossing midnight and a leap day.
        assert_eq!(
            format_beijing(parse_beijing("20240301000000").unwrap() - 1000),
            "20240229235959"
        );
        assert_eq!(format_beijing(0), "19700101080000");
    }

    #[test]
    fn rejects_malformed_times() {
        for s in [
            "2025102915385",
            "2025-10-29 15",
            "20251329153852",
            "20250229120000",
            "20251029246000",
            "2025102915385a",
        ] {
            assert!(parse_beijing(s).is_err(), "{s}");
        }
    }
}
