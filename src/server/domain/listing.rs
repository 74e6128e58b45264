//! The console's orders list: what a filter may select, and one line of the list.

use crate::app::types::OrderStatus;

/// What the orders list shows: every field optional, all of them together (AND). Parsed from
/// the page's query string at the edge (`http::console`), so here every value is valid.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    pub status: Option<OrderStatus>,
    /// Placed at or after (ms), and before (ms): a Beijing-time date range, turned into instants.
    pub from_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub min_fee: Option<i64>,
    pub max_fee: Option<i64>,
    pub has_anomaly: bool,
    pub refunded: bool,
    /// The start of an out_trade_no (ASCII letters and digits only).
    pub id_prefix: Option<String>,
    /// Keyset pagination: the page after the line (created_at, id).
    pub after: Option<(i64, String)>,
}

/// One order in the list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLine {
    pub id: String,
    pub status: OrderStatus,
    pub total_fee: i64,
    pub refunded_fee: i64,
    pub body: String,
    pub created_at: i64,
    pub paid_at: Option<i64>,
    pub transaction_id: Option<String>,
    pub anomalies: i64,
}

/// `12`, `12.3`, `12.30`, `¥12.30` (yuan) → 1230 fen; None for anything else (more than two
/// decimals, a sign, an exponent, beyond a billion yuan). A decimal parse: no float rounding.
pub fn parse_yuan(s: &str) -> Option<i64> {
    let s = s.trim().trim_start_matches(['¥', '￥']).trim();
    let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
    if whole.is_empty()
        || whole.len() > 10
        || frac.len() > 2
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
        || (s.contains('.') && frac.is_empty())
    {
        return None;
    }
    let frac_fen = match frac.len() {
        0 => 0,
        1 => frac.parse::<i64>().ok()? * 10,
        _ => frac.parse::<i64>().ok()?,
    };
    Some(whole.parse::<i64>().ok()? * 100 + frac_fen)
}

/// An anomaly as the console lists it: open or resolved, with who resolved it and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnomalyItem {
    pub id: String,
    pub order_id: String,
    pub transaction_id: String,
    pub kind: String,
    pub detail: String,
    pub at: i64,
    pub resolved_at: Option<i64>,
    pub resolution: Option<String>,
}

/// One call to WeChat Pay for an order, as the client saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallRow {
    pub at: i64,
    pub order_id: String,
    pub api: String,
    pub result: String,
    pub latency_ms: i64,
}

/// One notify received, with its verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyRow {
    pub at: i64,
    pub kind: String,
    pub order_id: String,
    pub reference: String,
    pub outcome: String,
    pub reason: String,
}

/// What waits, read at scrape time: unfinished orders whose check is due (and how late the most
/// overdue is), pending orders past their deadline, pay results in the inbox not yet applied.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Backlog {
    pub due: i64,
    pub lag_ms: i64,
    pub deadlines_due: i64,
    pub inbox_waiting: i64,
}

/// The overview's counts (one Beijing day, and what is open now).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverviewCounts {
    pub placed: i64,
    pub placed_paid: i64,
    pub paid: i64,
    pub paid_fen: i64,
    pub refunds: i64,
    pub refunded_fen: i64,
    pub unfinished: i64,
    pub oldest_unfinished_at: Option<i64>,
    pub anomalies_open: i64,
}

#[cfg(test)]
mod tests {
    use super::parse_yuan;

    #[test]
    fn yuan_parse_exactly() {
        assert_eq!(parse_yuan("12"), Some(1200));
        assert_eq!(parse_yuan("12.3"), Some(1230));
        assert_eq!(parse_yuan("¥0.01"), Some(1));
        assert_eq!(parse_yuan("￥ 12.5"), Some(1250));
        assert_eq!(parse_yuan("0.07"), Some(7));
        for bad in [
            "",
            "-1",
            "1e3",
            "1.234",
            "1.",
            ".5",
            "1,000",
            "abc",
            "99999999999",
        ] {
            assert_eq!(parse_yuan(bad), None, "{bad}");
        }
    }
}
