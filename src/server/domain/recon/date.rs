//! A bill date: one Beijing calendar day (WeChat's bills run 00:00–24:00 UTC+8).

use crate::server::support::clock::{format_beijing, parse_beijing};

const DAY_MS: i64 = 86_400_000;

/// `YYYY-MM-DD`, a real calendar day; orders as the days do.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BillDate(String);

impl BillDate {
    /// `2026-11-30` (as the CLI, the console and the JSON write it) or `20261130` (WeChat's).
    pub fn parse(s: &str) -> Result<BillDate, String> {
        let s = s.trim();
        let compact = match s.len() {
            10 if s.as_bytes()[4] == b'-' && s.as_bytes()[7] == b'-' => {
                format!("{}{}{}", &s[0..4], &s[5..7], &s[8..10])
            }
            8 => s.to_string(),
            _ => String::new(),
        };
        let bad = || format!("{s:?} is not a date like 2026-11-30");
        if compact.len() != 8 || !compact.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        // A real day: Beijing midnight of it parses.
        parse_beijing(&format!("{compact}000000")).map_err(|_| bad())?;
        Ok(BillDate(format!(
            "{}-{}-{}",
            &compact[0..4],
            &compact[4..6],
            &compact[6..8]
        )))
    }

    /// The Beijing day that holds this instant.
    pub fn of_ms(utc_ms: i64) -> BillDate {
        let s = format_beijing(utc_ms);
        BillDate(format!("{}-{}-{}", &s[0..4], &s[4..6], &s[6..8]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `yyyyMMdd`, as `downloadbill` wants it.
    pub fn compact(&self) -> String {
        self.0.replace('-', "")
    }

    /// Beijing midnight starting the day, in UTC epoch ms.
    pub fn start_ms(&self) -> i64 {
        parse_beijing(&format!("{}000000", self.compact())).expect("checked when made")
    }

    /// Beijing midnight ending it (the next day's start).
    pub fn end_ms(&self) -> i64 {
        self.start_ms() + DAY_MS
    }

    pub fn prev(&self) -> BillDate {
        BillDate::of_ms(self.start_ms() - DAY_MS)
    }

    pub fn next(&self) -> BillDate {
        BillDate::of_ms(self.end_ms())
    }

    /// Whether a run of this day may be asked for at `now_ms`: today or before (a later day
    /// has no bill), and within a year (WeChat keeps bills for months, not longer).
    pub fn runnable(&self, now_ms: i64) -> Result<(), String> {
        let today = BillDate::of_ms(now_ms);
        if *self > today {
            return Err(format!(
                "{self} has not happened yet (today is {today} in Beijing)"
            ));
        }
        if self.end_ms() <= today.start_ms() - OLDEST_DAYS * DAY_MS {
            return Err(format!(
                "{self} is more than {OLDEST_DAYS} days ago: WeChat keeps no bill that old"
            ));
        }
        Ok(())
    }
}

/// How far back a day may be reconciled.
pub const OLDEST_DAYS: i64 = 366;

impl std::fmt::Display for BillDate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}
