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
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::server::domain::recon::{
    self, BillDate, DayResult, FollowUp, LocalFacts, LocalTotals, ReconDayRow, ReconLine, WechatRow,
};
use crate::server::domain::{Cause, RefundStatus};
use crate::server::orders::{recheck, refund};
use crate::server::state::Ctx;
use crate::server::support::clock::now_ms;
use crate::server::support::ids::random_alnum;

mod bill;
pub use bill::wechat_rows;

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
    /// back — with a later attempt when trying again can help, `failed` (a person re-runs it)
    /// when WeChat refused or the bill is unusable; the reason.
    Unavailable(String),
    /// Another process has the day, or it is not due.
    NotClaimed,
    /// The claim ran out and another process took the day: nothing of this run was written.
    Superseded,
}

/// After this many attempts a day stops being retried on its own (about two days at the
/// longest backoff): a person looks at its last error and runs it again.
const MAX_ATTEMPTS: i64 = 48;
/// WeChat's file is kept (gzipped) up to this size; past it only its SHA-256 (a statement of
/// this size would pass MariaDB's default max_allowed_packet, 16 MiB).
const MAX_RAW_KEPT: usize = 12 * 1024 * 1024;

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
    let (rows, wechat, raw) = match bill::fetch(ctx, date).await {
        Ok(b) => b,
        Err(no) => return give_back(ctx, day, &run_id, no).await,
    };
    // The download may have been slow: the claim is renewed before the work that writes.
    if !ctx
        .store
        .recon_renew(day, &run_id, now_ms() + LEASE_MS)
        .await?
    {
        return Ok(RunOutcome::Superseded);
    }
    let local = facts(ctx, date, &rows).await?;
    // A hundred thousand lines are most of a second of CPU: off the async threads.
    let (local, (mut lines, follows)) = tokio::task::spawn_blocking(move || {
        let compared = recon::compare(&rows, &local);
        (local, compared.into_iter().unzip::<_, _, Vec<_>, Vec<_>>())
    })
    .await
    .expect("the comparison does not panic");
    let follows = asked(&mut lines, follows);
    let raw = raw.map(|(gz, sha)| {
        if gz.len() > MAX_RAW_KEPT {
            tracing::warn!(
                bill_date = day,
                bytes = gz.len(),
                "trade bill too large to keep; its SHA-256 is"
            );
            (None, sha)
        } else {
            (Some(gz), sha)
        }
    });
    let result = DayResult {
        local: LocalTotals {
            paid_count: local.paid.len() as i64,
            paid_fen: local.paid.iter().map(|o| o.total_fee).sum(),
            refund_count: refunds_held(&local).count() as i64,
            refund_fen: refunds_held(&local).map(|r| r.refund_fee).sum(),
        },
        wechat,
        raw_sha256: raw.as_ref().map(|(_, sha)| sha.clone()),
        raw_gzip: raw.and_then(|(gz, _)| gz),
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
    // Saved: what follows only adds notes, and a failure there does not undo the day.
    follow_up(ctx, day, &lines, &follows).await;
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

/// Gives the day back: due again after a backoff while trying again can help and attempts are
/// left, else `failed` until a person runs it (a day finished before stays `done`).
async fn give_back(
    ctx: &Ctx,
    day: &str,
    run_id: &str,
    no: bill::NoBill,
) -> Result<RunOutcome, sqlx::Error> {
    let attempts = ctx.store.recon_day(day).await?.map_or(1, |d| d.attempts);
    let next = (no.retry && attempts < MAX_ATTEMPTS)
        .then(|| now_ms() + backoff(ctx.settings.recon.retry, attempts).as_millis() as i64);
    match next {
        Some(_) => {
            tracing::warn!(bill_date = day, attempts, why = %no.why, "no trade bill yet; trying again later");
            crate::server::support::metrics::recon_run("unavailable");
        }
        None => {
            tracing::error!(bill_date = day, attempts, why = %no.why, "no trade bill: the day needs a person (run it again once fixed)");
            crate::server::support::metrics::recon_run("failed");
        }
    }
    ctx.store
        .recon_give_back(day, run_id, &cut(&no.why, 500), next, now_ms())
        .await?;
    Ok(RunOutcome::Unavailable(no.why))
}

/// What scanpay holds for the day, and for every payment and refund the bill names.
pub async fn facts(
    ctx: &Ctx,
    date: &BillDate,
    rows: &[WechatRow],
) -> Result<LocalFacts, sqlx::Error> {
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

/// The follow-ups this run makes (line index, what to ask): at most `MAX_FOLLOW_UPS`; the
/// lines past them say so in their note before the save (no statement each).
fn asked(lines: &mut [ReconLine], follows: Vec<Option<FollowUp>>) -> Vec<(usize, FollowUp)> {
    let mut out = Vec::new();
    for (i, f) in follows.into_iter().enumerate() {
        let Some(f) = f else { continue };
        if out.len() < MAX_FOLLOW_UPS {
            out.push((i, f));
        } else {
            let l = &mut lines[i];
            l.note = format!(
                "{} — not asked: more than {MAX_FOLLOW_UPS} differences in one run",
                l.note
            );
        }
    }
    out
}

/// Asks WeChat about the differences that call for it, `sweep_concurrency` at a time (WeChat
/// takes a few hundred milliseconds an answer), and notes its answer on the line; one that
/// fails is noted as such and the rest go on.
pub async fn follow_up(ctx: &Ctx, day: &str, lines: &[ReconLine], follows: &[(usize, FollowUp)]) {
    use futures::stream::{self, StreamExt};
    stream::iter(follows)
        .for_each_concurrent(ctx.settings.sweep_concurrency.max(1), |(i, f)| async move {
            let line = &lines[*i];
            let said = ask(ctx, f).await.unwrap_or_else(|e| {
                tracing::warn!(bill_date = day, key = %line.key, error = %e, "reconciliation follow-up failed");
                format!("could not ask WeChat: {e}")
            });
            let note = cut(&format!("{} — {said}", line.note), 500);
            if let Err(e) = ctx.store.recon_note(day, &line.key, &note).await {
                tracing::warn!(bill_date = day, key = %line.key, error = %e, "reconciliation note not written");
            }
        })
        .await;
}

async fn ask(ctx: &Ctx, f: &FollowUp) -> Result<String, sqlx::Error> {
    Ok(match f {
        FollowUp::QueryOrder(id) => recheck::order(ctx, id, Cause::Reconciliation)
            .await?
            .unwrap_or_else(|| "no such order".into()),
        FollowUp::CheckRefund(no) => match ctx.store.refund(no).await? {
            // Still being sent: the sweep holds it (claimed in SQL) and sends the same refund
            // again; asking here too would put two requests in flight.
            Some(r) if r.status == RefundStatus::Requested => {
                "left to the sweep, which sends the same refund again".into()
            }
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
    })
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
