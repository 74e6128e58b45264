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

/// API v3's times: RFC 3339 with an offset (`2018-06-08T10:34:56+08:00`, `…Z`, fractional
/// seconds allowed) → UTC epoch milliseconds.
pub fn parse_rfc3339(s: &str) -> Result<i64, String> {
    let bad = || format!("{s:?} is not an RFC 3339 time like 2018-06-08T10:34:56+08:00");
    let b = s.as_bytes();
    // Slicing below is by byte: anything but ASCII is not such a time anyway.
    if !s.is_ascii()
        || b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err(bad());
    }
    let digits = |r: std::ops::Range<usize>| -> Result<String, String> {
        let d = &s[r];
        if d.bytes().all(|c| c.is_ascii_digit()) {
            Ok(d.to_string())
        } else {
            Err(bad())
        }
    };
    let compact = format!(
        "{}{}{}{}{}{}",
        digits(0..4)?,
        digits(5..7)?,
        digits(8..10)?,
        digits(11..13)?,
        digits(14..16)?,
        digits(17..19)?
    );
    // The wall time read as if Beijing, then moved by the difference of offsets.
    let wall = parse_beijing(&compact).map_err(|_| bad())? + BEIJING_OFFSET_S * 1000;
    let mut rest = &s[19..];
    let mut ms = 0;
    if let Some(frac) = rest.strip_prefix('.') {
        let n = frac.bytes().take_while(u8::is_ascii_digit).count();
        if n == 0 {
            return Err(bad());
        }
        ms = format!("{:0<3}", &frac[..n.min(3)])
            .parse::<i64>()
            .map_err(|_| bad())?;
        rest = &frac[n..];
    }
    let offset_s = match rest.as_bytes() {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let n = |a: &u8, b: &u8| -> Result<i64, String> {
                if a.is_ascii_digit() && b.is_ascii_digit() {
                    Ok(i64::from((a - b'0') * 10 + (b - b'0')))
                } else {
                    Err(bad())
                }
            };
            let (h, m) = (n(h1, h2)?, n(m1, m2)?);
            if h > 23 || m > 59 {
                return Err(bad());
            }
            let v = h * 3600 + m * 60;
            if *sign == b'-' {
                -v
            } else {
                v
            }
        }
        _ => return Err(bad()),
    };
    Ok(wall - offset_s * 1000 + ms)
}

/// UTC epoch milliseconds as API v3 writes Beijing time: `2018-06-08T10:34:56+08:00`.
pub fn format_rfc3339_beijing(utc_ms: i64) -> String {
    let s = format_beijing(utc_ms);
    format!(
        "{}-{}-{}T{}:{}:{}+08:00",
        &s[0..4],
        &s[4..6],
        &s[6..8],
        &s[8..10],
        &s[10..12],
        &s[12..14]
    )
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
    fn rfc3339_times_as_api_v3_writes_them() {
        let beijing = parse_beijing("20180608103456").unwrap();
        assert_eq!(parse_rfc3339("2018-06-08T10:34:56+08:00"), Ok(beijing));
        assert_eq!(parse_rfc3339("2018-06-08T02:34:56Z"), Ok(beijing));
        assert_eq!(parse_rfc3339("2018-06-07T21:34:56-05:00"), Ok(beijing));
        assert_eq!(
            parse_rfc3339("2018-06-08T10:34:56.250+08:00"),
            Ok(beijing + 250)
        );
        assert_eq!(format_rfc3339_beijing(beijing), "2018-06-08T10:34:56+08:00");
        for bad in [
            "",
            "20180608103456",
            "2018-06-08 10:34:56+08:00x",
            "2018-06-08T10:34:56",
            "2018-02-30T10:34:56+08:00",
            "2018-06-08T10:34:56+8:00",
            "2018-06-08T10:34:56.+08:00",
            "2018-06-08T25:34:56+08:00",
        ] {
            assert!(parse_rfc3339(bad).is_err(), "{bad}");
        }
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
