//! Flow 7, the daily reconciliation: WeChat's trade bill for one Beijing day against the
//! payments and refunds scanpay holds for it.
//!
//! claim the day (SQL) → download the bill → read what we hold → compare (pure,
//! `domain::recon::compare`) → save the lines and totals (replacing an earlier run's) → ask
//! WeChat about what differs: a payment paid there and not here goes through the recheck step
//! (orderquery → decide → apply: a lost notify the sweep never caught is fixed here), a refund
//! whose state differs through the refund step's check. The difference stays recorded, with
//! what was done, until a person resolves it.
//!
//! Run by the `reconcile` job on every worker after `recon_at` Beijing time (one process gets
//! each day), by `scanpay reconcile --date …` and by an operator's "Run again".

use std::collections::{HashMap, HashSet};
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use sha2::Digest as _;
use tokio_util::sync::CancellationToken;

use crate::server::domain::recon::{
    self, BillDate, DayResult, FollowUp, LocalFacts, LocalTotals, ReconDayRow, ReconLine,
    WechatRow, WechatTotals,
};
use crate::server::domain::{Cause, RefundStatus};
use crate::server::orders::{recheck, refund};
use crate::server::state::Ctx;
use crate::server::support::clock::now_ms;
use crate::server::support::ids::random_alnum;
use crate::server::wxpay::bill::{self, BillAnswer};

/// A run holds its day this long; a process that dies mid-run gives it up after it.
const LEASE_MS: i64 = 10 * 60_000;
/// WeChat is asked about at most this many differences per run (a day WeChat has no bill for,
/// or a misconfigured merchant, must not turn into thousands of queries).
const MAX_FOLLOW_UPS: usize = 100;
/// Retries back off to this.
const MAX_RETRY: Duration = Duration::from_secs(3600);

#[derive(Debug)]
pub enum RunOutcome {
    /// The day's comparison, saved.
    Done(Box<ReconDayRow>),
    /// The bill could not be had (not ready, refused, unreadable, no answer): the day is given
    /// back with a later attempt; the reason.
    Unavailable(String),
    /// Another process has the day, or it is not due.
    NotClaimed,
    /// The claim ran out and another process took the day: nothing of this run was written.
    Superseded,
}

/// Runs one day: `force` takes it whatever its state (a re-run on demand); otherwise only when
/// it is due. `by` is who asked: `schedule`, `cli`, or an operator's name.
pub async fn run_day(
    ctx: &Ctx,
    date: &BillDate,
    by: &str,
    force: bool,
) -> Result<RunOutcome, sqlx::Error> {
    let (day, now) = (date.as_str(), now_ms());
    ctx.store.recon_ensure_day(day, now).await?;
    let run_id = random_alnum(24);
    if !ctx
        .store
        .recon_claim(day, &run_id, now, now + LEASE_MS, force)
        .await?
    {
        return Ok(RunOutcome::NotClaimed);
    }
    let got = fetch(ctx, date).await;
    let (rows, wechat, raw) = match got {
        Ok(b) => b,
        Err(why) => {
            let attempts = ctx.store.recon_day(day).await?.map_or(1, |d| d.attempts);
            let next = now_ms() + backoff(ctx.settings.recon.retry, attempts).as_millis() as i64;
            tracing::warn!(bill_date = day, attempts, %why, "no trade bill yet; trying again later");
            crate::server::support::metrics::recon_run("unavailable");
            ctx.store
                .recon_give_back(day, &run_id, &cut(&why, 500), next, now_ms())
                .await?;
            return Ok(RunOutcome::Unavailable(why));
        }
    };
    let local = facts(ctx, date, &rows).await?;
    let compared = recon::compare(&rows, &local);
    let lines: Vec<ReconLine> = compared.iter().map(|(l, _)| l.clone()).collect();
    let result = DayResult {
        local: LocalTotals {
            paid_count: local.paid.len() as i64,
            paid_fen: local.paid.iter().map(|o| o.total_fee).sum(),
            refund_count: refunds_held(&local).count() as i64,
            refund_fen: refunds_held(&local).map(|r| r.refund_fee).sum(),
        },
        wechat,
        raw_gzip: raw.as_ref().map(|(gz, _)| gz.clone()),
        raw_sha256: raw.map(|(_, sha)| sha),
        run_by: by.to_string(),
    };
    if !ctx
        .store
        .recon_save(day, &run_id, &result, &lines, now_ms())
        .await?
    {
        tracing::warn!(bill_date = day, "reconciliation superseded by another run");
        return Ok(RunOutcome::Superseded);
    }
    follow_up(ctx, day, &compared).await?;
    let row = ctx.store.recon_day(day).await?.expect("saved just now");
    crate::server::support::metrics::recon_run(if result.wechat.is_some() {
        "done"
    } else {
        "no_bill"
    });
    if row.open > 0 {
        tracing::warn!(bill_date = day, open = row.open, counts = ?row.counts, "reconciliation found differences");
    } else {
        tracing::info!(bill_date = day, counts = ?row.counts, "reconciliation: every line matched");
    }
    Ok(RunOutcome::Done(Box::new(row)))
}

/// The bill's rows and summary with its raw text (gzipped, and its SHA-256), or none at all
/// when WeChat has no bill for the day; Err: why the bill cannot be had now.
type Fetched = (
    Vec<WechatRow>,
    Option<WechatTotals>,
    Option<(Vec<u8>, String)>,
);

async fn fetch(ctx: &Ctx, date: &BillDate) -> Result<Fetched, String> {
    let text = match ctx.wxpay.download_bill(&date.compact()).await {
        Ok(BillAnswer::Text(t)) => t,
        Ok(BillAnswer::NoBill) => return Ok((Vec::new(), None, None)),
        Ok(BillAnswer::NotReady) => return Err("WeChat: Bill Creating (not ready yet)".into()),
        Ok(BillAnswer::Refused { msg, code }) => {
            return Err(format!("WeChat refused the download: {msg} ({code})"))
        }
        Err(e) => return Err(format!("{e}")),
    };
    // A bill that does not add up (truncated, altered) is refused, loudly: nothing is compared.
    let b = bill::parse(&text).map_err(|e| {
        tracing::error!(bill_date = date.as_str(), error = %e, "WeChat's trade bill is unusable");
        format!("WeChat's bill is unusable: {e}")
    })?;
    let rows = b
        .rows
        .iter()
        .map(|r| WechatRow {
            trade_time: r.trade_time.clone(),
            transaction_id: r.transaction_id.clone(),
            out_trade_no: r.out_trade_no.clone(),
            amount_fen: match &r.out_refund_no {
                Some(_) => r.applied_refund_fen.unwrap_or(r.refund_fen),
                // 订单金额; the old layout has only 应结 (= 订单金额 less coupons).
                None => r.order_fen.unwrap_or(r.settlement_fen + r.coupon_fen),
            },
            out_refund_no: r.out_refund_no.clone(),
            state: match &r.out_refund_no {
                Some(_) => r.refund_status.clone().unwrap_or_default(),
                None => r.trade_state.clone(),
            },
            fee_millifen: r.fee_millifen,
        })
        .collect();
    let s = &b.summary;
    let totals = WechatTotals {
        rows: s.rows,
        settlement_fen: s.settlement_fen,
        refund_fen: s.refund_fen,
        fee_millifen: s.fee_millifen,
        order_fen: s.order_fen,
    };
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(text.as_bytes())
        .and_then(|_| gz.finish())
        .map(|gz| {
            let sha = hex(&sha2::Sha256::digest(text.as_bytes()));
            (rows, Some(totals), Some((gz, sha)))
        })
        .map_err(|e| format!("cannot compress the bill: {e}"))
}

/// What scanpay holds for the day, and for every payment and refund the bill names.
async fn facts(ctx: &Ctx, date: &BillDate, rows: &[WechatRow]) -> Result<LocalFacts, sqlx::Error> {
    let (from, to) = (date.start_ms(), date.end_ms());
    let paid = ctx.store.recon_paid_between(from, to).await?;
    let refunds_of_day = ctx.store.recon_refunds_between(from, to).await?;
    let mut orders: HashMap<String, _> = paid.iter().map(|o| (o.id.clone(), o.clone())).collect();
    let mut refunds: HashMap<String, _> = refunds_of_day
        .iter()
        .map(|r| (r.out_refund_no.clone(), r.clone()))
        .collect();
    let pay_rows = || rows.iter().filter(|r| r.out_refund_no.is_none());
    let missing: Vec<String> = pay_rows()
        .map(|r| r.out_trade_no.clone())
        .filter(|id| !orders.contains_key(id))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    for o in ctx.store.recon_orders(&missing).await? {
        orders.insert(o.id.clone(), o);
    }
    // Payments no order holds as its own may be recorded as anomalies.
    let unkept: Vec<String> = pay_rows()
        .filter(|r| {
            orders
                .get(&r.out_trade_no)
                .and_then(|o| o.transaction_id.as_deref())
                != Some(r.transaction_id.as_str())
        })
        .map(|r| r.transaction_id.clone())
        .collect();
    let anomalies = ctx
        .store
        .recon_anomalies(&unkept)
        .await?
        .into_iter()
        .map(|a| (a.transaction_id.clone(), a))
        .collect();
    let missing: Vec<String> = rows
        .iter()
        .filter_map(|r| r.out_refund_no.clone())
        .filter(|no| !refunds.contains_key(no))
        .collect();
    for r in ctx.store.recon_refunds(&missing).await? {
        refunds.insert(r.out_refund_no.clone(), r);
    }
    Ok(LocalFacts {
        paid,
        refunds_of_day,
        orders,
        anomalies,
        refunds,
    })
}

/// The day's refunds WeChat accepted (what our side of its refund figures holds).
fn refunds_held(l: &LocalFacts) -> impl Iterator<Item = &recon::LocalRefund> {
    l.refunds_of_day
        .iter()
        .filter(|r| recon::wechat_refund_state(r.status).is_some())
}

/// Asks WeChat about the differences that call for it, and notes its answer on the line.
async fn follow_up(
    ctx: &Ctx,
    day: &str,
    compared: &[(ReconLine, Option<FollowUp>)],
) -> Result<(), sqlx::Error> {
    let asks = compared
        .iter()
        .filter_map(|(l, f)| f.as_ref().map(|f| (l, f)));
    for (line, f) in asks.take(MAX_FOLLOW_UPS) {
        let said = match f {
            FollowUp::QueryOrder(id) => recheck::order(ctx, id, Cause::Reconciliation)
                .await?
                .unwrap_or_else(|| "no such order".into()),
            FollowUp::CheckRefund(no) => match ctx.store.refund(no).await? {
                Some(r) => {
                    refund::check(ctx, &r, Cause::Reconciliation).await?;
                    let now = ctx.store.refund(no).await?.map(|r| r.status);
                    format!(
                        "refund checked with WeChat: now {}",
                        now.map_or("unknown", RefundStatus::as_str)
                    )
                }
                None => "no such refund".into(),
            },
        };
        let note = cut(&format!("{} — {said}", line.note), 500);
        ctx.store.recon_note(day, &line.key, &note).await?;
    }
    Ok(())
}

/// The job: after `recon_at` each Beijing day, yesterday (and days missed since) become due;
/// any due day is claimed and run. Every worker runs it; the claim gives each day to one.
pub async fn run(ctx: Arc<Ctx>, token: CancellationToken) {
    let tick = ctx.settings.recon.retry.min(Duration::from_secs(60));
    loop {
        if let Err(e) = pass(&ctx).await {
            tracing::warn!(error = %e, "reconciliation pass failed; trying again");
        }
        tokio::select! {
            _ = token.cancelled() => return,
            _ = tokio::time::sleep(tick) => {}
        }
    }
}

/// One look: makes the days now owed due, then runs each due day. Returns how many it ran.
pub async fn pass(ctx: &Ctx) -> Result<usize, sqlx::Error> {
    let now = now_ms();
    let today = BillDate::of_ms(now);
    let recon = &ctx.settings.recon;
    let owed = recon
        .at_minute
        .is_some_and(|at| now - today.start_ms() >= i64::from(at) * 60_000);
    if owed {
        if let Some(first) = ctx.store.first_order_at().await? {
            let mut d = today.prev();
            for _ in 0..recon.catch_up_days {
                // No day before the first order needs a bill.
                if d.end_ms() <= first {
                    break;
                }
                if ctx.store.recon_day(d.as_str()).await?.is_none() {
                    ctx.store.recon_ensure_day(d.as_str(), now).await?;
                }
                d = d.prev();
            }
        }
    }
    let mut ran = 0;
    for day in ctx.store.recon_due(now).await? {
        let Ok(date) = BillDate::parse(&day) else {
            continue;
        };
        if let RunOutcome::Done(_) = run_day(ctx, &date, "schedule", false).await? {
            ran += 1;
        }
    }
    Ok(ran)
}

/// The first retry after `retry`, doubling with each attempt, at most an hour.
fn backoff(retry: Duration, attempts: i64) -> Duration {
    let doublings = attempts.clamp(1, 16) as u32 - 1;
    retry.saturating_mul(1 << doublings).min(MAX_RETRY)
}

fn cut(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
