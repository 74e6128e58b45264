//! Fault knobs: rehearse every unhappy path before going live. Set globally (settings key
//! `sandbox_faults`, or `POST /sandbox/admin/faults` without `out_trade_no`) or per order.
//!
//! Written as `key=value` pairs separated by commas:
//! - `notify=normal|drop|delay:2s|duplicate:3|concurrent:3`
//! - `unifiedorder=…`, `orderquery=…`, `closeorder=…` with `none|systemerror|timeout|latency:<d>`
//!   (`systemerror`: nothing happens, SYSTEMERROR is answered; `timeout`: the call takes effect but
//!   the answer never comes back in time — the uncertain case; `latency:100ms`: answered normally,
//!   that much later — for load tests and benchmarks).

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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Faults {
    pub notify: NotifyFault,
    pub unified_order: ApiFault,
    pub order_query: ApiFault,
    pub close_order: ApiFault,
}

impl Faults {
    pub fn api(&self, api: Api) -> ApiFault {
        match api {
            Api::UnifiedOrder => self.unified_order,
            Api::OrderQuery => self.order_query,
            Api::CloseOrder => self.close_order,
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
                other => {
                    return Err(format!(
                        "unknown fault {other:?}: notify, unifiedorder, orderquery or closeorder"
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
        assert_eq!(
            Faults::parse("notify=concurrent:5").unwrap().notify,
            NotifyFault::Concurrent(5)
        );
        for bad in [
            "notify",
            "notify=explode",
            "refund=timeout",
            "closeorder=slow",
            "notify=delay",
            "notify=duplicate:0",
            "orderquery=latency:",
            "orderquery=latency:fast",
        ] {
            assert!(Faults::parse(bad).is_err(), "{bad}");
        }
    }
}
