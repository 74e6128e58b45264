//! Refunds held by the sandbox, and WeChat's rules for accepting one (wxpay-refund-bill.md §1.3,
//! wxpay-v2.md §4). The rules are a pure function of the order's refunds so far, so each can be
//! tested alone; `api/refund.rs` speaks the protocol around them.

use super::{Sandbox, SandboxOrder};

/// A refund's state (`refund_status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefundStatus {
    Processing,
    Success,
    /// The shopper's account could not take the money; a person must act.
    Change,
    /// `REFUNDCLOSE`: failed, final.
    Closed,
}

impl RefundStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RefundStatus::Processing => "PROCESSING",
            RefundStatus::Success => "SUCCESS",
            RefundStatus::Change => "CHANGE",
            RefundStatus::Closed => "REFUNDCLOSE",
        }
    }
}

/// Where the money goes back to: a Native payment from the shopper's change (零钱).
pub const RECV_ACCOUNT: &str = "支付用户零钱";
/// The default funds account (`refund_account`).
pub const REFUND_ACCOUNT: &str = "REFUND_SOURCE_UNSETTLED_FUNDS";

/// One refund of an order, as WeChat holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SandboxRefund {
    /// The API that asked for it: its notify goes out in that API's format.
    pub api: super::ApiVersion,
    pub out_refund_no: String,
    /// 29 digits starting `50`.
    pub refund_id: String,
    pub refund_fee: i64,
    /// The order's amount as the request gave it (equal to the order's, or it was refused).
    pub total_fee: i64,
    pub refund_desc: String,
    pub refund_account: String,
    /// Empty: no notify (none configured at the "merchant platform" either).
    pub notify_url: String,
    pub created_ms: i64,
    pub status: RefundStatus,
    /// Beijing `yyyy-MM-dd HH:mm:ss`, once SUCCESS.
    pub success_time: Option<String>,
    pub notify_attempts: u32,
    pub notify_acked: bool,
}

/// What a refund request asks, for the rules.
#[derive(Debug, Clone, Copy)]
pub struct Ask<'a> {
    pub out_refund_no: &'a str,
    pub total_fee: i64,
    pub refund_fee: i64,
}

/// The limits the rules apply (the gap is scaled like the sandbox's other waits).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_refunds: usize,
    pub min_gap_ms: i64,
    pub max_age_ms: i64,
}

/// WeChat's: 50 refunds per order, one a minute, within a year of payment (§1.3).
pub const MAX_REFUNDS: usize = 50;
pub const MIN_GAP_MS: i64 = 60_000;
pub const MAX_AGE_MS: i64 = 365 * 24 * 3600 * 1000;

/// A refusal: (err_code, err_code_des).
pub type Refusal = (&'static str, String);

/// The rules' verdict on an acceptable request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The same out_refund_no with the same amounts: that refund (index), answered again.
    Again(usize),
    New,
}

/// The same out_refund_no with other amounts; also what WeChat answers when total_fee is not
/// the order's (both observed: REFUND_FEE_MISMATCH, e.g. the captures quoted at
/// 5ityx.cn/cate109/198585.html and programming.vip "excerpt of wechat payment refund
/// exception"; the reference gives the text, §1.3, not the code).
pub const MISMATCH: &str = "订单金额或退款金额与之前请求不一致，请核实后再试";

/// Whether `order` (paid at `paid_ms`) takes the refund `ask` at `now_ms`.
/// `refund_fee` > `total_fee` is refused before this, at the protocol level ("invalid
/// refund_fee"), as WeChat does.
pub fn check(
    order: &SandboxOrder,
    paid_ms: i64,
    ask: Ask,
    now_ms: i64,
    lim: Limits,
) -> Result<Verdict, Refusal> {
    let refunds = &order.refunds;
    // Idempotency first: a retry after SYSTEMERROR or a timeout must find its refund even when
    // a new one would now be refused (the minute rule, the count).
    if let Some(i) = refunds
        .iter()
        .position(|r| r.out_refund_no == ask.out_refund_no)
    {
        let r = &refunds[i];
        return if r.total_fee == ask.total_fee && r.refund_fee == ask.refund_fee {
            Ok(Verdict::Again(i))
        } else {
            Err(("REFUND_FEE_MISMATCH", MISMATCH.into()))
        };
    }
    if ask.total_fee != order.total_fee() {
        return Err(("REFUND_FEE_MISMATCH", MISMATCH.into()));
    }
    if now_ms - paid_ms > lim.max_age_ms {
        return Err(("TRADE_OVERDUE", "订单已经超过退款期限".into()));
    }
    // A closed refund returned nothing, so its amount can be refunded again [unverified].
    let refunded: i64 = refunds
        .iter()
        .filter(|r| r.status != RefundStatus::Closed)
        .map(|r| r.refund_fee)
        .sum();
    // Observed answers (same captures as MISMATCH): ERROR once the whole amount is refunded,
    // INVALID_REQUEST when this refund would pass it. The reference (§1.3: "the sum of refunds ≤
    // the order total"; wxpay-v2.md §4: ERROR, read err_code_des) names no code.
    if refunded >= order.total_fee() {
        return Err(("ERROR", "订单已全额退款".into()));
    }
    if refunded + ask.refund_fee > order.total_fee() {
        return Err(("INVALID_REQUEST", "refund_fee大于可退金额".into()));
    }
    if refunds.len() >= lim.max_refunds {
        // §1.3: at most 50 partial refunds; the code and text are not documented [unverified].
        return Err((
            "ERROR",
            format!(
                "退款次数超过限制，每个支付订单的部分退款次数不能超过{}次",
                lim.max_refunds
            ),
        ));
    }
    if let Some(last) = refunds.iter().map(|r| r.created_ms).max() {
        if now_ms - last < lim.min_gap_ms {
            // wxpay-v2.md §4: INVALID_REQ_TOO_MUCH, wait ≥ 1 min.
            return Err((
                "INVALID_REQ_TOO_MUCH",
                "无效请求过多，同一笔订单的两次退款须间隔1分钟以上，请稍后再试".into(),
            ));
        }
    }
    Ok(Verdict::New)
}

/// 29 digits like real ones (`50300103182020010413419046597`): 503 + yyyyMMdd + 18 random.
pub fn new_refund_id(now_ms: i64) -> String {
    use rand::Rng;
    let date = &crate::server::support::clock::format_beijing(now_ms)[..8];
    let mut rng = rand::thread_rng();
    let digits: String = (0..18)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect();
    format!("503{date}{digits}")
}

impl Sandbox {
    /// The refunds the sandbox holds for an order, oldest first (empty when none, or no such
    /// order): what tests count to prove each out_refund_no was refunded once.
    pub fn refunds(&self, mch_id: &str, out_trade_no: &str) -> Vec<SandboxRefund> {
        self.order(mch_id, out_trade_no)
            .map(|o| o.refunds)
            .unwrap_or_default()
    }

    /// One refund by the merchant's number, with its order's out_trade_no.
    pub fn refund(&self, mch_id: &str, out_refund_no: &str) -> Option<(String, SandboxRefund)> {
        let inner = self.inner.lock().expect("sandbox lock");
        let key = inner
            .by_refund_no
            .get(&(mch_id.to_string(), out_refund_no.to_string()))?;
        let o = inner.orders.get(key)?;
        let r = o
            .refunds
            .iter()
            .find(|r| r.out_refund_no == out_refund_no)?;
        Some((o.out_trade_no.clone(), r.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::sandbox::TradeState;
    use crate::server::wxpay::SignType;

    const LIM: Limits = Limits {
        max_refunds: MAX_REFUNDS,
        min_gap_ms: MIN_GAP_MS,
        max_age_ms: MAX_AGE_MS,
    };

    fn order(total: i64) -> SandboxOrder {
        SandboxOrder {
            api: Default::default(),
            mch_id: "m".into(),
            out_trade_no: "o".into(),
            params: [("total_fee".to_string(), total.to_string())].into(),
            sign_type: SignType::Md5,
            prepay_id: String::new(),
            code_url: String::new(),
            created_ms: 0,
            expire_ms: None,
            state: TradeState::NotPay,
            notify_attempts: 0,
            notify_acked: false,
            refunds: Vec::new(),
        }
    }

    fn held(no: &str, fee: i64, total: i64, at: i64) -> SandboxRefund {
        SandboxRefund {
            api: Default::default(),
            out_refund_no: no.into(),
            refund_id: new_refund_id(at),
            refund_fee: fee,
            total_fee: total,
            refund_desc: String::new(),
            refund_account: REFUND_ACCOUNT.into(),
            notify_url: String::new(),
            created_ms: at,
            status: RefundStatus::Success,
            success_time: None,
            notify_attempts: 0,
            notify_acked: false,
        }
    }

    fn ask(no: &str, total: i64, fee: i64) -> Ask<'_> {
        Ask {
            out_refund_no: no,
            total_fee: total,
            refund_fee: fee,
        }
    }

    const T0: i64 = 1_700_000_000_000;

    #[test]
    fn amounts_must_match_the_order_and_fit_what_is_left() {
        let mut o = order(1000);
        assert_eq!(
            check(&o, T0, ask("R1", 1000, 1000), T0, LIM),
            Ok(Verdict::New)
        );
        let e = check(&o, T0, ask("R1", 999, 100), T0, LIM).unwrap_err();
        assert_eq!(e, ("REFUND_FEE_MISMATCH", MISMATCH.to_string()));
        o.refunds.push(held("R1", 600, 1000, T0));
        let later = T0 + MIN_GAP_MS;
        assert_eq!(
            check(&o, T0, ask("R2", 1000, 400), later, LIM),
            Ok(Verdict::New)
        );
        assert_eq!(
            check(&o, T0, ask("R2", 1000, 401), later, LIM)
                .unwrap_err()
                .0,
            "INVALID_REQUEST"
        );
        o.refunds.push(held("R2", 400, 1000, later));
        let e = check(&o, T0, ask("R3", 1000, 1), later + MIN_GAP_MS, LIM).unwrap_err();
        assert_eq!(e, ("ERROR", "订单已全额退款".to_string()));
        // A closed refund gave nothing back: its amount is refundable again.
        o.refunds[1].status = RefundStatus::Closed;
        assert_eq!(
            check(&o, T0, ask("R3", 1000, 400), later + MIN_GAP_MS, LIM),
            Ok(Verdict::New)
        );
    }

    #[test]
    fn the_same_number_is_the_same_refund_and_other_amounts_under_it_are_refused() {
        let mut o = order(1000);
        o.refunds.push(held("R1", 300, 1000, T0));
        o.refunds.push(held("R2", 700, 1000, T0 + MIN_GAP_MS));
        // Again at once: neither the minute rule nor "fully refunded" applies to a retry.
        let now = T0 + MIN_GAP_MS + 1;
        assert_eq!(
            check(&o, T0, ask("R1", 1000, 300), now, LIM),
            Ok(Verdict::Again(0))
        );
        assert_eq!(
            check(&o, T0, ask("R2", 1000, 700), now, LIM),
            Ok(Verdict::Again(1))
        );
        for (total, fee) in [(1000, 301), (1001, 300), (999, 300)] {
            let e = check(&o, T0, ask("R1", total, fee), now, LIM).unwrap_err();
            assert_eq!(
                e,
                ("REFUND_FEE_MISMATCH", MISMATCH.to_string()),
                "{total}/{fee}"
            );
        }
    }

    #[test]
    fn refunds_of_one_order_are_a_minute_apart() {
        let mut o = order(1000);
        o.refunds.push(held("R1", 100, 1000, T0));
        let e = check(&o, T0, ask("R2", 1000, 100), T0 + MIN_GAP_MS - 1, LIM).unwrap_err();
        assert_eq!(e.0, "INVALID_REQ_TOO_MUCH");
        assert_eq!(
            check(&o, T0, ask("R2", 1000, 100), T0 + MIN_GAP_MS, LIM),
            Ok(Verdict::New)
        );
        // The gap is the sandbox's (scaled): 60 ms at time_scale 0.001.
        let scaled = Limits {
            min_gap_ms: 60,
            ..LIM
        };
        assert_eq!(
            check(&o, T0, ask("R2", 1000, 100), T0 + 60, scaled),
            Ok(Verdict::New)
        );
    }

    #[test]
    fn at_most_fifty_refunds_per_order() {
        let mut o = order(100);
        for i in 0..MAX_REFUNDS as i64 {
            o.refunds
                .push(held(&format!("R{i}"), 1, 100, T0 + i * MIN_GAP_MS));
        }
        let now = T0 + 100 * MIN_GAP_MS;
        let e = check(&o, T0, ask("R50", 100, 1), now, LIM).unwrap_err();
        assert_eq!(e.0, "ERROR");
        assert!(e.1.contains("50"), "{}", e.1);
        // The 50th was still fine, and retrying one of the fifty still is.
        o.refunds.pop();
        assert_eq!(
            check(&o, T0, ask("R49", 100, 1), now, LIM),
            Ok(Verdict::New)
        );
        assert_eq!(
            check(&o, T0, ask("R0", 100, 1), now, LIM),
            Ok(Verdict::Again(0))
        );
    }

    #[test]
    fn a_year_after_payment_is_too_late() {
        let o = order(100);
        let e = check(&o, T0, ask("R1", 100, 1), T0 + MAX_AGE_MS + 1, LIM).unwrap_err();
        assert_eq!(e.0, "TRADE_OVERDUE");
        assert_eq!(
            check(&o, T0, ask("R1", 100, 1), T0 + MAX_AGE_MS, LIM),
            Ok(Verdict::New)
        );
    }

    #[test]
    fn refund_ids_look_like_wechats() {
        let id = new_refund_id(T0);
        assert_eq!(id.len(), 29);
        assert!(
            id.starts_with("50") && id.bytes().all(|b| b.is_ascii_digit()),
            "{id}"
        );
        assert_ne!(id, new_refund_id(T0));
    }
}
