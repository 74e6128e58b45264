//! Fault knobs: rehearse every unhappy path before going live. Set globally (settings key
//! `sandbox_faults`, or `POST /sandbox/admin/faults` without `out_trade_no`) or per order.
//!
//! Written as `key=value` pairs separated by commas:
//! - `notify=normal|drop|delay:2s|duplicate:3|concurrent:3`
//! - `unifiedorder=…`, `orderquery=…`, `closeorder=…` with `none|systemerror|timeout|latency:<d>`
//!   (`systemerror`: nothing happens, SYSTEMERROR is answered; `timeout`: the call takes effect but
//!   the answer never comes back in time — the uncertain case; `latency:100ms`: answered normally,
//!   that much later — for load tests and benchmarks).
//! - `refundquery=…` the same four.
//! - `refund=none|systemerror|systemerror_applied|timeout|latency:<d>|notenough`
//!   (`systemerror`: SYSTEMERROR, no refund recorded; `systemerror_applied`: SYSTEMERROR, yet the
//!   refund *was* recorded — a retry with the same out_refund_no must find it, not refund twice;
//!   `timeout`: recorded, the answer held back; `notenough`: NOTENOUGH, the merchant's balance
//!   cannot pay it, nothing recorded).
//! - `refund_outcome=success|change|close|processing`: how new refunds end (SUCCESS, CHANGE,
//!   REFUNDCLOSE, or never leaving PROCESSING, as a bank-card refund may for days).
//! - `refund_notify=…`: the refund notify, with the values of `notify`.
//! - `downloadbill=none|systemerror|timeout|latency:<d>`: the bill download, set globally (a
//!   bill names no order; `systemerror`: the XML error `SYSTEMERROR`; `timeout`: held back).
//! - `bill=none|drop|amount_off|refund_state|extra`, several joined by `+`
//!   (`bill=drop+extra`): the trade bill disagrees with what the merchant holds, as a
//!   reconciliation must notice. Per order: `drop` leaves its payment row out, `amount_off`
//!   shows its payment one fen more than paid, `refund_state` shows each of its refunds in
//!   another state (SUCCESS↔PROCESSING, others as SUCCESS). `extra`: a bill also carries a
//!   0.01 yuan payment of an order never placed (`PHANTOM…`) — set globally, in every bill that
//!   has rows; set for an order, in the bill of the day it was paid. The bill stays
//!   self-consistent (its summary adds up).

use std::time::Duration;

use crate::server::support::clock::parse_duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NotifyFault {
    #[default]
    Normal,
    Drop,
    Delay(Duration),
    Duplicate(u32),
    Concurrent(u32),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ApiFault {
    #[default]
    None,
    SystemError,
    Timeout,
    Latency(Duration),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    UnifiedOrder,
    OrderQuery,
    CloseOrder,
    RefundQuery,
    DownloadBill,
}

/// How the trade bill misrepresents an order (see the module doc); flags, as several may apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BillFault {
    pub drop: bool,
    pub amount_off: bool,
    pub refund_state: bool,
    pub extra: bool,
}

/// `/secapi/pay/refund`: the API faults, plus the two ways a refund is refused or half-done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefundFault {
    #[default]
    None,
    SystemError,
    /// SYSTEMERROR answered, but the refund was recorded.
    SystemErrorApplied,
    Timeout,
    Latency(Duration),
    NotEnough,
}

/// How a new refund ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RefundOutcome {
    #[default]
    Success,
    Change,
    Close,
    /// Stays PROCESSING: no outcome, no notify.
    Processing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Faults {
    pub notify: NotifyFault,
    pub unified_order: ApiFault,
    pub order_query: ApiFault,
    pub close_order: ApiFault,
    pub refund_query: ApiFault,
    pub refund: RefundFault,
    pub refund_outcome: RefundOutcome,
    pub refund_notify: NotifyFault,
    pub download_bill: ApiFault,
    pub bill: BillFault,
}

impl Faults {
    pub fn api(&self, api: Api) -> ApiFault {
        match api {
            Api::UnifiedOrder => self.unified_order,
            Api::OrderQuery => self.order_query,
            Api::CloseOrder => self.close_order,
            Api::RefundQuery => self.refund_query,
            Api::DownloadBill => self.download_bill,
        }
    }

    /// Parses `notify=drop,closeorder=systemerror`; an empty string is no fault.
    pub fn parse(spec: &str) -> Result<Faults, String> {
        let mut f = Faults::default();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("{part:?}: expected key=value"))?;
            match key.trim() {
                "notify" => f.notify = notify(value.trim())?,
                "unifiedorder" => f.unified_order = api(value.trim())?,
                "orderquery" => f.order_query = api(value.trim())?,
                "closeorder" => f.close_order = api(value.trim())?,
                "refundquery" => f.refund_query = api(value.trim())?,
                "refund" => f.refund = refund(value.trim())?,
                "refund_outcome" => f.refund_outcome = outcome(value.trim())?,
                "refund_notify" => f.refund_notify = notify(value.trim())?,
                "downloadbill" => f.download_bill = api(value.trim())?,
                "bill" => f.bill = bill(value.trim())?,
                other => {
                    return Err(format!(
                        "unknown fault {other:?}: notify, unifiedorder, orderquery, closeorder, \
                         refund, refundquery, refund_outcome, refund_notify, downloadbill or bill"
                    ))
                }
            }
        }
        Ok(f)
    }
}

fn notify(v: &str) -> Result<NotifyFault, String> {
    let (kind, arg) = v.split_once(':').map_or((v, None), |(k, a)| (k, Some(a)));
    let count = |a: Option<&str>| {
        a.unwrap_or("2")
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=50).contains(n))
            .ok_or_else(|| format!("{v:?}: count must be 1..50"))
    };
    Ok(match kind {
        "normal" => NotifyFault::Normal,
        "drop" => NotifyFault::Drop,
        "delay" => NotifyFault::Delay(parse_duration(
            arg.ok_or_else(|| format!("{v:?}: delay needs a duration, e.g. delay:2s"))?,
        )?),
        "duplicate" => NotifyFault::Duplicate(count(arg)?),
        "concurrent" => NotifyFault::Concurrent(count(arg)?),
        _ => {
            return Err(format!(
            "notify fault {v:?}: normal, drop, delay:<duration>, duplicate:<n> or concurrent:<n>"
        ))
        }
    })
}

fn api(v: &str) -> Result<ApiFault, String> {
    match v {
        "none" => Ok(ApiFault::None),
        "systemerror" => Ok(ApiFault::SystemError),
        "timeout" => Ok(ApiFault::Timeout),
        _ => match v.strip_prefix("latency:") {
            Some(d) => Ok(ApiFault::Latency(parse_duration(d)?)),
            None => Err(format!(
                "API fault {v:?}: none, systemerror, timeout or latency:<duration>"
            )),
        },
    }
}

fn refund(v: &str) -> Result<RefundFault, String> {
    Ok(match v {
        "systemerror_applied" => RefundFault::SystemErrorApplied,
        "notenough" => RefundFault::NotEnough,
        _ => match api(v).map_err(|_| {
            format!(
                "refund fault {v:?}: none, systemerror, systemerror_applied, timeout, \
                 latency:<duration> or notenough"
            )
        })? {
            ApiFault::None => RefundFault::None,
            ApiFault::SystemError => RefundFault::SystemError,
            ApiFault::Timeout => RefundFault::Timeout,
            ApiFault::Latency(d) => RefundFault::Latency(d),
        },
    })
}

fn outcome(v: &str) -> Result<RefundOutcome, String> {
    match v {
        "success" => Ok(RefundOutcome::Success),
        "change" => Ok(RefundOutcome::Change),
        "close" => Ok(RefundOutcome::Close),
        "processing" => Ok(RefundOutcome::Processing),
        _ => Err(format!(
            "refund_outcome {v:?}: success, change, close or processing"
        )),
    }
}

fn bill(v: &str) -> Result<BillFault, String> {
    let mut f = BillFault::default();
    for part in v.split('+').map(str::trim) {
        match part {
            "none" => {}
            "drop" => f.drop = true,
            "amount_off" => f.amount_off = true,
            "refund_state" => f.refund_state = true,
            "extra" => f.extra = true,
            _ => {
                return Err(format!(
                    "bill fault {v:?}: none, drop, amount_off, refund_state or extra \
                     (several joined by +)"
                ))
            }
        }
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_specs_and_names_what_is_wrong() {
        let f =
            Faults::parse("notify=delay:2s, closeorder=systemerror,orderquery=timeout").unwrap();
        assert_eq!(f.notify, NotifyFault::Delay(Duration::from_secs(2)));
        assert_eq!(f.api(Api::CloseOrder), ApiFault::SystemError);
        assert_eq!(f.api(Api::OrderQuery), ApiFault::Timeout);
        assert_eq!(f.api(Api::UnifiedOrder), ApiFault::None);
        assert_eq!(
            Faults::parse("orderquery=latency:100ms")
                .unwrap()
                .order_query,
            ApiFault::Latency(Duration::from_millis(100))
        );
        assert_eq!(Faults::parse("").unwrap(), Faults::default());
        let r = Faults::parse(
            "refund=systemerror_applied,refund_outcome=close,refund_notify=duplicate:3,refundquery=timeout",
        )
        .unwrap();
        assert_eq!(r.refund, RefundFault::SystemErrorApplied);
        assert_eq!(r.refund_outcome, RefundOutcome::Close);
        assert_eq!(r.refund_notify, NotifyFault::Duplicate(3));
        assert_eq!(r.api(Api::RefundQuery), ApiFault::Timeout);
        assert_eq!(
            r.notify,
            NotifyFault::Normal,
            "the pay notify is its own knob"
        );
        for (spec, want) in [
            ("refund=none", RefundFault::None),
            ("refund=systemerror", RefundFault::SystemError),
            ("refund=timeout", RefundFault::Timeout),
            ("refund=notenough", RefundFault::NotEnough),
            (
                "refund=latency:2s",
                RefundFault::Latency(Duration::from_secs(2)),
            ),
        ] {
            assert_eq!(Faults::parse(spec).unwrap().refund, want, "{spec}");
        }
        assert_eq!(
            Faults::parse("refund_outcome=change")
                .unwrap()
                .refund_outcome,
            RefundOutcome::Change
        );
        assert_eq!(
            Faults::parse("notify=concurrent:5").unwrap().notify,
            NotifyFault::Concurrent(5)
        );
        for bad in [
            "notify",
            "notify=explode",
            "refund=explode",
            "refund=latency:",
            "refund_outcome=lost",
            "refund_notify=twice",
            "refundquery=notenough",
            "closeorder=slow",
            "notify=delay",
            "notify=duplicate:0",
            "orderquery=latency:",
            "orderquery=latency:fast",
            "bill=",
            "bill=lost",
            "bill=drop+",
            "bill=drop+lost",
            "downloadbill=drop",
        ] {
            assert!(Faults::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn bill_knobs_combine_with_plus() {
        let f = Faults::parse("bill=drop+extra, downloadbill=systemerror").unwrap();
        let want = BillFault {
            drop: true,
            extra: true,
            ..BillFault::default()
        };
        assert_eq!(f.bill, want);
        assert_eq!(f.api(Api::DownloadBill), ApiFault::SystemError);
        let f = Faults::parse("bill=amount_off+refund_state").unwrap().bill;
        assert!(f.amount_off && f.refund_state && !f.drop && !f.extra);
        assert_eq!(
            Faults::parse("bill=none").unwrap().bill,
            BillFault::default()
        );
        assert_eq!(
            Faults::parse("downloadbill=latency:1s")
                .unwrap()
                .download_bill,
            ApiFault::Latency(Duration::from_secs(1))
        );
    }
}
