//! Benchmark: the daily reconciliation of one Beijing day of 100,000 paid orders on PostgreSQL —
//! `reconcile::run_day` end to end (bill answer → parse → facts → compare → save → follow-ups),
//! each of its phases timed on its own in the same run, and beside them the ceilings, measured
//! on the same database in the same run: the day's orders read by one hand-written SELECT, the
//! same lines written by one `INSERT … SELECT FROM unnest(…)` and by `COPY`, and deleted by one
//! DELETE.
//!
//! The bill is WeChat's exact text as the sandbox writes it (`sandbox::bill::trade_bill`) from
//! sandbox orders that match the seeded ones, with differences made on purpose through the
//! sandbox's per-order bill knobs, so the run also writes differences and asks WeChat about
//! some; every run's counts are checked.
//!
//! Run: `scripts/bench.sh recon` (release build; a database of its own on the local PostgreSQL).
//! Figures: docs/BENCHMARKS.md.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::Digest as _;
use sqlx::postgres::PgPoolCopyExt as _;

use scanpay::server::config::Settings;
use scanpay::server::domain::recon::{
    self, BillDate, DayResult, FollowUp, LocalFacts, LocalTotals, ReconClass, ReconLine,
};
use scanpay::server::orders::reconcile::{self, RunOutcome};
use scanpay::server::sandbox::bill::{self as sandbox_bill, BillType};
use scanpay::server::sandbox::faults::BillFault;
use scanpay::server::sandbox::{
    RefundStatus as SbRefundStatus, SandboxOrder, SandboxRefund, TradeState,
};
use scanpay::server::store::testing::TestDb;
use scanpay::server::store::{self, PoolSettings};
use scanpay::server::support::clock::{beijing_display, format_beijing, now_ms};
use scanpay::server::wxpay::bill::{self as wx_bill, BillAnswer};
use scanpay::server::wxpay::{
    BoxFuture, Gateway, OrderQueryResponse, RefundAccepted, RefundRecord, RefundRequest, SignType,
    UnifiedOrderRequest, UnifiedOrderResponse, WxPayError,
};
use scanpay::server::Ctx;

const ORDERS: i64 = 100_000;
/// Orders of the day that were never paid (closed or pending): not in the bill.
const UNPAID: i64 = 300;
const RUNS: usize = 5;
const DAY: &str = "2025-12-01";
/// A date no run uses: where the ceilings write their lines.
const CEILING_DAY: &str = "2099-12-31";

/// Order `g` (1-based) has one refund.
fn refunded(g: i64) -> bool {
    g % 50 == 0
}
/// The bill's knobs for order `g`: payments charged a fen more, payments missing from the bill,
/// refunds shown in another state — disjoint sets.
fn fault(g: i64) -> BillFault {
    BillFault {
        amount_off: g % 1000 == 7,
        drop: g % 2500 == 11,
        refund_state: g % 5000 == 0,
        extra: false,
    }
}
fn order_id(g: i64) -> String {
    format!("SP{g:026}")
}
fn transaction_id(g: i64) -> String {
    format!("420020251201{g:016}")
}
fn total_fee(g: i64) -> i64 {
    100 + (g * 37) % 20_000
}
/// WeChat's time_end, whole seconds through the day.
fn paid_at(start: i64, g: i64) -> i64 {
    start + (g * 86_399 / ORDERS) * 1000
}
fn refund_at(start: i64, g: i64) -> i64 {
    (paid_at(start, g) + 60_000).min(start + 86_399_000)
}

/// WeChat: the day's bill (gzip, answered as the real client does: `classify` gunzips it);
/// orderquery answers "no answer" at once (uncertain: the recheck leaves the order to the sweep);
/// anything else is an error.
struct CannedBill {
    gz: Vec<u8>,
    compact_day: String,
    queries: AtomicUsize,
}

fn no(what: &str) -> WxPayError {
    WxPayError::Transport(format!("bench: no {what}"))
}

impl Gateway for CannedBill {
    fn unified_order<'a>(
        &'a self,
        _req: &'a UnifiedOrderRequest,
    ) -> BoxFuture<'a, Result<UnifiedOrderResponse, WxPayError>> {
        Box::pin(async { Err(no("unifiedorder")) })
    }
    fn order_query<'a>(
        &'a self,
        _id: &'a str,
    ) -> BoxFuture<'a, Result<OrderQueryResponse, WxPayError>> {
        self.queries.fetch_add(1, Ordering::Relaxed);
        Box::pin(async { Err(no("orderquery")) })
    }
    fn close_order<'a>(&'a self, _id: &'a str) -> BoxFuture<'a, Result<(), WxPayError>> {
        Box::pin(async { Err(no("closeorder")) })
    }
    fn refund<'a>(
        &'a self,
        _req: &'a RefundRequest,
    ) -> BoxFuture<'a, Result<RefundAccepted, WxPayError>> {
        Box::pin(async { Err(no("refund")) })
    }
    fn refund_query<'a>(&'a self, _no: &'a str) -> BoxFuture<'a, Result<RefundRecord, WxPayError>> {
        Box::pin(async { Err(no("refundquery")) })
    }
    fn download_bill<'a>(
        &'a self,
        bill_date: &'a str,
    ) -> BoxFuture<'a, Result<BillAnswer, WxPayError>> {
        Box::pin(async move {
            assert_eq!(bill_date, self.compact_day);
            wx_bill::classify(&self.gz)
                .map_err(|e| WxPayError::InvalidResponse(format!("trade bill: {e}")))
        })
    }
}

/// The seed: the paid orders, their refunds and the unpaid orders of the day, in SQL.
async fn seed(pool: &sqlx::PgPool, start: i64) {
    sqlx::query(
        "INSERT INTO orders (id, session_id, status, total_fee, body, created_at, deadline_at, \
         updated_at, transaction_id, paid_at, refunded_fee) \
         SELECT 'SP' || lpad(g::text, 26, '0'), 's' || (g % 1000), 'paid', \
           100 + (g * 37) % 20000, 'Tea x1', p - 60000, p + 840000, p, \
           '420020251201' || lpad(g::text, 16, '0'), p, \
           CASE WHEN g % 50 = 0 THEN (100 + (g * 37) % 20000) / 2 ELSE 0 END \
         FROM (SELECT g, $1 + (g * 86399 / $2) * 1000 AS p FROM generate_series(1, $2) g) s",
    )
    .bind(start)
    .bind(ORDERS)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO refunds (out_refund_no, order_id, transaction_id, total_fee, refund_fee, \
         reason, requested_by, status, refund_id, success_time, created_at, updated_at, finished_at) \
         SELECT o.id || 'R01', o.id, o.transaction_id, o.total_fee, o.total_fee / 2, 'bench', \
           'system', 'success', '50' || lpad(substr(o.id, 3)::bigint::text, 27, '0'), '', \
           LEAST(o.paid_at + 60000, $1 + 86399000), LEAST(o.paid_at + 60000, $1 + 86399000), \
           LEAST(o.paid_at + 60000, $1 + 86399000) \
         FROM orders o WHERE o.status = 'paid' AND o.refunded_fee > 0",
    )
    .bind(start)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO orders (id, session_id, status, total_fee, body, created_at, deadline_at, \
         updated_at) \
         SELECT 'SX' || lpad(g::text, 26, '0'), 'u' || g, \
           CASE WHEN g % 3 = 0 THEN 'pending' ELSE 'closed' END, 500, 'Tea x1', \
           $1 + g * 280000, $1 + g * 280000 + 900000, $1 + g * 280000 \
         FROM generate_series(1, $2) g",
    )
    .bind(start)
    .bind(UNPAID)
    .execute(pool)
    .await
    .unwrap();
    sqlx::query("ANALYZE").execute(pool).await.unwrap();
}

/// The same orders as WeChat (the sandbox) holds them.
fn sandbox_orders(start: i64, mch_id: &str, appid: &str) -> Vec<SandboxOrder> {
    (1..=ORDERS)
        .map(|g| {
            let id = order_id(g);
            let params: BTreeMap<String, String> = [
                ("appid", appid.to_string()),
                ("mch_id", mch_id.to_string()),
                ("body", "Tea x1".to_string()),
                ("out_trade_no", id.clone()),
                ("total_fee", total_fee(g).to_string()),
                ("trade_type", "NATIVE".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            let refunds = if refunded(g) {
                let at = refund_at(start, g);
                vec![SandboxRefund {
                    api: Default::default(),
                    out_refund_no: format!("{id}R01"),
                    refund_id: format!("50{g:027}"),
                    refund_fee: total_fee(g) / 2,
                    total_fee: total_fee(g),
                    refund_desc: "bench".into(),
                    refund_account: "REFUND_SOURCE_UNSETTLED_FUNDS".into(),
                    notify_url: String::new(),
                    created_ms: at,
                    status: SbRefundStatus::Success,
                    success_time: Some(beijing_display(at)),
                    notify_attempts: 0,
                    notify_acked: true,
                }]
            } else {
                Vec::new()
            };
            SandboxOrder {
                api: Default::default(),
                mch_id: mch_id.to_string(),
                out_trade_no: id,
                params,
                sign_type: SignType::Md5,
                prepay_id: format!("wx{g:030}"),
                code_url: format!("weixin://wxpay/bizpayurl?pr=b{g}"),
                created_ms: paid_at(start, g) - 60_000,
                expire_ms: None,
                state: TradeState::Success {
                    transaction_id: transaction_id(g),
                    time_end: format_beijing(paid_at(start, g)),
                    openid: format!("oBench{g:022}"),
                },
                notify_attempts: 1,
                notify_acked: true,
                refunds,
            }
        })
        .collect()
}

/// The raw bill as the run keeps it: gzipped, and the SHA-256 of its text (as `fetch` does).
fn keep_raw(text: &str) -> (Vec<u8>, String) {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(text.as_bytes()).unwrap();
    let gz = gz.finish().unwrap();
    let sha: String = sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    (gz, sha)
}

/// An order as the ceiling's hand-written SELECT reads it.
type OrderTuple = (String, String, i64, Option<String>, Option<i64>);

/// What every run must find: [matched, wechat_only, local_only, amount_differs, refund_differs].
fn expected() -> [i64; 5] {
    let (mut pay, mut refunds, mut off, mut dropped, mut flipped) = (0, 0, 0, 0, 0);
    for g in 1..=ORDERS {
        let f = fault(g);
        assert!(!(f.drop && f.amount_off) && !(refunded(g) && (f.drop || f.amount_off)));
        match (f.drop, f.amount_off) {
            (true, _) => dropped += 1,
            (_, true) => off += 1,
            _ => pay += 1,
        }
        if refunded(g) {
            if f.refund_state {
                flipped += 1;
            } else {
                refunds += 1;
            }
        }
    }
    // The phantom payment (`extra`): paid at WeChat, no such order here.
    [pay + refunds, 1, dropped, off, flipped]
}

fn check(day: &scanpay::server::domain::recon::ReconDayRow, want: [i64; 5]) {
    assert_eq!(day.counts, want, "{day:?}");
    assert_eq!(day.open, want[1..].iter().sum::<i64>(), "{day:?}");
    assert_eq!(day.local.paid_count, ORDERS);
    assert_eq!(day.wechat.rows, want.iter().sum::<i64>() - want[2]);
}

/// The day's refunds WeChat accepted (as `reconcile::refunds_held`).
fn held(l: &LocalFacts) -> impl Iterator<Item = &recon::LocalRefund> {
    l.refunds_of_day
        .iter()
        .filter(|r| recon::wechat_refund_state(r.status).is_some())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// p50 and min in ms.
fn stats(v: &[Duration]) -> (f64, f64) {
    let mut v = v.to_vec();
    v.sort();
    (ms(v[v.len() / 2]), ms(v[0]))
}

/// COPY's text format: tab-separated, `\N` for NULL, backslash escapes.
fn copy_field(out: &mut String, v: Option<&str>) {
    match v {
        None => out.push_str("\\N"),
        Some(s) => {
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\t' => out.push_str("\\t"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    c => out.push(c),
                }
            }
        }
    }
}

const LINE_COLUMNS: &str = "bill_date, line_key, kind, class, out_trade_no, transaction_id, \
     out_refund_no, trade_time, wechat_fen, local_fen, wechat_state, local_state, fee_millifen, \
     note, resolved_at, resolved_by, resolution";

/// Ceiling: the lines in one statement over 17 arrays.
async fn insert_unnest(pool: &sqlx::PgPool, lines: &[ReconLine]) -> Duration {
    let t = Instant::now();
    let text = |f: fn(&ReconLine) -> &str| lines.iter().map(f).collect::<Vec<&str>>();
    let int = |f: fn(&ReconLine) -> Option<i64>| lines.iter().map(f).collect::<Vec<Option<i64>>>();
    let n = sqlx::query(&format!(
        "INSERT INTO recon_lines ({LINE_COLUMNS}) \
         SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[], $5::text[], $6::text[], \
           $7::text[], $8::text[], $9::int8[], $10::int8[], $11::text[], $12::text[], \
           $13::int8[], $14::text[], $15::int8[], $16::text[], $17::text[])"
    ))
    .bind(CEILING_DAY)
    .bind(text(|l| l.key.as_str()))
    .bind(text(|l| l.kind.as_str()))
    .bind(text(|l| l.class.as_str()))
    .bind(text(|l| l.out_trade_no.as_str()))
    .bind(text(|l| l.transaction_id.as_str()))
    .bind(text(|l| l.out_refund_no.as_str()))
    .bind(text(|l| l.trade_time.as_str()))
    .bind(int(|l| l.wechat_fen))
    .bind(int(|l| l.local_fen))
    .bind(text(|l| l.wechat_state.as_str()))
    .bind(text(|l| l.local_state.as_str()))
    .bind(lines.iter().map(|l| l.fee_millifen).collect::<Vec<i64>>())
    .bind(text(|l| l.note.as_str()))
    .bind(int(|l| l.resolved_at))
    .bind(
        lines
            .iter()
            .map(|l| l.resolved_by.as_deref())
            .collect::<Vec<Option<&str>>>(),
    )
    .bind(
        lines
            .iter()
            .map(|l| l.resolution.as_deref())
            .collect::<Vec<Option<&str>>>(),
    )
    .execute(pool)
    .await
    .unwrap()
    .rows_affected();
    assert_eq!(n as usize, lines.len());
    t.elapsed()
}

/// Ceiling: the lines through `COPY … FROM STDIN` (text format), the buffer written in the time.
async fn insert_copy(pool: &sqlx::PgPool, lines: &[ReconLine]) -> Duration {
    let t = Instant::now();
    let mut buf = String::with_capacity(lines.len() * 160);
    for l in lines {
        let num = |v: Option<i64>| v.map(|v| v.to_string());
        let fields: [Option<String>; 17] = [
            Some(CEILING_DAY.into()),
            Some(l.key.clone()),
            Some(l.kind.as_str().into()),
            Some(l.class.as_str().into()),
            Some(l.out_trade_no.clone()),
            Some(l.transaction_id.clone()),
            Some(l.out_refund_no.clone()),
            Some(l.trade_time.clone()),
            num(l.wechat_fen),
            num(l.local_fen),
            Some(l.wechat_state.clone()),
            Some(l.local_state.clone()),
            Some(l.fee_millifen.to_string()),
            Some(l.note.clone()),
            num(l.resolved_at),
            l.resolved_by.clone(),
            l.resolution.clone(),
        ];
        for (i, f) in fields.iter().enumerate() {
            if i > 0 {
                buf.push('\t');
            }
            copy_field(&mut buf, f.as_deref());
        }
        buf.push('\n');
    }
    let mut copy = pool
        .copy_in_raw(&format!("COPY recon_lines ({LINE_COLUMNS}) FROM STDIN"))
        .await
        .unwrap();
    copy.send(buf.as_bytes()).await.unwrap();
    let n = copy.finish().await.unwrap();
    assert_eq!(n as usize, lines.len());
    t.elapsed()
}

async fn delete_ceiling_day(pool: &sqlx::PgPool) -> Duration {
    let t = Instant::now();
    let n = sqlx::query("DELETE FROM recon_lines WHERE bill_date = $1")
        .bind(CEILING_DAY)
        .execute(pool)
        .await
        .unwrap()
        .rows_affected();
    assert!(n > 0);
    t.elapsed()
}

#[derive(Default)]
struct Times {
    run: Vec<Duration>,
    gunzip: Vec<Duration>,
    parse: Vec<Duration>,
    raw: Vec<Duration>,
    facts: Vec<Duration>,
    compare: Vec<Duration>,
    clone: Vec<Duration>,
    free: Vec<Duration>,
    save: Vec<Duration>,
    follow: Vec<Duration>,
    select: Vec<Duration>,
    unnest: Vec<Duration>,
    copy: Vec<Duration>,
    delete: Vec<Duration>,
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(bench());
}

async fn bench() {
    let date = BillDate::parse(DAY).unwrap();
    let start = date.start_ms();
    let db = TestDb::new("postgres").await;
    let env: BTreeMap<String, String> = [("SCANPAY_DATABASE_URL", db.url.as_str())]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let settings = Settings::from_sources(
        include_str!("../Leptos.toml"),
        "Leptos.toml",
        &env,
        "127.0.0.1:0".parse().unwrap(),
    )
    .unwrap();
    let s = store::connect(&db.url, &PoolSettings::default())
        .await
        .unwrap();
    s.migrate().await.unwrap();
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(4)
        .connect(&db.url)
        .await
        .unwrap();

    let t = Instant::now();
    seed(&pool, start).await;
    let seeded = t.elapsed();
    let t = Instant::now();
    let (mch, appid) = (
        settings.merchant.mch_id.clone(),
        settings.merchant.appid.clone(),
    );
    let orders = sandbox_orders(start, &mch, &appid);
    let text = sandbox_bill::trade_bill(
        &orders,
        &mch,
        &date.compact(),
        BillType::All,
        |otn| fault(otn[2..].parse().unwrap()),
        true,
    )
    .expect("a bill");
    drop(orders);
    let gz = sandbox_bill::gzip(&text);
    let made = t.elapsed();
    let want = expected();
    let differences: i64 = want[1..].iter().sum();
    println!(
        "scanpay reconciliation benchmark (PostgreSQL, one Beijing day, {ORDERS} paid orders, \
         {UNPAID} unpaid; median of {RUNS} after a warm-up)"
    );
    println!(
        "seeded in {:.1} s; bill made in {:.1} s: {} rows, {:.1} MB of text, {:.1} MB gzipped",
        seeded.as_secs_f64(),
        made.as_secs_f64(),
        want.iter().sum::<i64>() - want[2],
        text.len() as f64 / 1e6,
        gz.len() as f64 / 1e6
    );
    println!(
        "expected lines: {} matched, {} wechat_only (the phantom), {} local_only (dropped from \
         the bill), {} amount_differs (a fen more), {} refund_differs (state shown otherwise): \
         {differences} differences",
        want[0], want[1], want[2], want[3], want[4]
    );

    let wechat = Arc::new(CannedBill {
        gz: gz.clone(),
        compact_day: date.compact(),
        queries: AtomicUsize::new(0),
    });
    let ctx = Ctx::new(settings, s, wechat.clone(), None);

    // The first run: no earlier lines to replace (the scheduled run of a day).
    let t = Instant::now();
    let first = match reconcile::run_day(&ctx, &date, "bench", true)
        .await
        .unwrap()
    {
        RunOutcome::Done(day) => day,
        other => panic!("not reconciled: {other:?}"),
    };
    let first_run = t.elapsed();
    check(&first, want);
    let asked = wechat.queries.swap(0, Ordering::Relaxed);
    assert_eq!(
        asked as i64,
        want[2].min(100),
        "one orderquery per local_only line"
    );
    let open = ctx.store.recon_lines(DAY, true, "", 10_000).await.unwrap();
    assert_eq!(open.len() as i64, differences);
    let noted = open
        .iter()
        .filter(|l| {
            l.class == ReconClass::LocalOnly && l.note.contains("no answer from WeChat Pay")
        })
        .count();
    assert_eq!(noted as i64, want[2], "each follow-up noted on its line");

    let mut times = Times::default();
    for round in 0..=RUNS {
        let keep = round > 0; // round 0 warms everything up
        let mut push = |v: fn(&mut Times) -> &mut Vec<Duration>, d: Duration| {
            if keep {
                v(&mut times).push(d)
            }
        };

        // End to end (replacing the day's lines).
        let t = Instant::now();
        let day = match reconcile::run_day(&ctx, &date, "bench", true)
            .await
            .unwrap()
        {
            RunOutcome::Done(day) => day,
            other => panic!("not reconciled: {other:?}"),
        };
        push(|t| &mut t.run, t.elapsed());
        check(&day, want);
        assert_eq!(
            wechat.queries.swap(0, Ordering::Relaxed) as i64,
            want[2].min(100)
        );

        // The phases, one at a time.
        let t = Instant::now();
        let BillAnswer::Text(text) = wx_bill::classify(&gz).unwrap() else {
            panic!("a bill")
        };
        push(|t| &mut t.gunzip, t.elapsed());
        let t = Instant::now();
        let bill = wx_bill::parse(&text).unwrap();
        let (rows, totals) = reconcile::wechat_rows(&bill, &date).unwrap();
        push(|t| &mut t.parse, t.elapsed());
        let t = Instant::now();
        let (raw_gz, sha) = keep_raw(&text);
        push(|t| &mut t.raw, t.elapsed());

        let t = Instant::now();
        let local = reconcile::facts(&ctx, &date, &rows).await.unwrap();
        push(|t| &mut t.facts, t.elapsed());

        let t = Instant::now();
        let compared = recon::compare(&rows, &local);
        push(|t| &mut t.compare, t.elapsed());
        // `run_day` splits the comparison into its lines and what to ask (no copy).
        let t = Instant::now();
        let (lines, follows): (Vec<ReconLine>, Vec<Option<FollowUp>>) =
            compared.into_iter().unzip();
        let follows: Vec<(usize, FollowUp)> = follows
            .into_iter()
            .enumerate()
            .filter_map(|(i, f)| f.map(|f| (i, f)))
            .take(100)
            .collect();
        push(|t| &mut t.clone, t.elapsed());
        let counts = recon::totals(&lines).map(|c| c.count);
        assert_eq!(counts, want);

        let result = DayResult {
            local: LocalTotals {
                paid_count: local.paid.len() as i64,
                paid_fen: local.paid.iter().map(|o| o.total_fee).sum(),
                refund_count: held(&local).count() as i64,
                refund_fen: held(&local).map(|r| r.refund_fee).sum(),
            },
            wechat: Some(totals),
            raw_gzip: Some(raw_gz),
            raw_sha256: Some(sha),
            run_by: "bench".into(),
        };
        let run_id = format!("bench{round}");
        assert!(ctx
            .store
            .recon_claim(DAY, &run_id, now_ms(), now_ms() + 600_000, true)
            .await
            .unwrap());
        let t = Instant::now();
        assert!(ctx
            .store
            .recon_save(DAY, &run_id, &result, &lines, now_ms())
            .await
            .unwrap());
        push(|t| &mut t.save, t.elapsed());

        // The follow-ups, as the run makes them.
        let t = Instant::now();
        assert!(follows
            .iter()
            .all(|(_, f)| matches!(f, FollowUp::QueryOrder(_))));
        reconcile::follow_up(&ctx, DAY, &lines, &follows).await;
        push(|t| &mut t.follow, t.elapsed());
        wechat.queries.swap(0, Ordering::Relaxed);

        // Ceilings on the same database.
        let t = Instant::now();
        let got: Vec<OrderTuple> = sqlx::query_as(
            "SELECT id, status, total_fee, transaction_id, paid_at FROM orders \
             WHERE paid_at >= $1 AND paid_at < $2",
        )
        .bind(date.start_ms())
        .bind(date.end_ms())
        .fetch_all(&pool)
        .await
        .unwrap();
        push(|t| &mut t.select, t.elapsed());
        assert_eq!(got.len() as i64, ORDERS);
        drop(got);

        let d = insert_unnest(&pool, &lines).await;
        push(|t| &mut t.unnest, d);
        let d = delete_ceiling_day(&pool).await;
        push(|t| &mut t.delete, d);
        let d = insert_copy(&pool, &lines).await;
        push(|t| &mut t.copy, d);
        let d = delete_ceiling_day(&pool).await;
        push(|t| &mut t.delete, d);

        // What `run_day` frees as it returns.
        let t = Instant::now();
        drop((text, bill, rows, local, lines, follows, result));
        push(|t| &mut t.free, t.elapsed());
    }

    let run = stats(&times.run);
    let row = |what: &str, v: &[Duration]| {
        let (p50, min) = stats(v);
        println!(
            "| {what} | {p50:.0} ms | {min:.0} ms | {:.0} % |",
            p50 / run.0 * 100.0
        );
        p50
    };
    println!("\n| step | p50 | min | of the run's p50 |");
    println!("|---|---|---|---|");
    println!(
        "| first run of the day (no lines to replace; once, cold) | {:.0} ms | | |",
        ms(first_run)
    );
    row(
        "**`run_day`, force: a re-run replacing the day's lines**",
        &times.run,
    );
    let gunzip = row("  bill: gunzip (`classify`)", &times.gunzip);
    let parse = row("  bill: `parse` + `reconcile::wechat_rows`", &times.parse);
    let raw = row("  bill: kept raw (gzip again + SHA-256)", &times.raw);
    let facts_p50 = row("  facts: the SQL reads", &times.facts);
    let compare = row("  `compare`", &times.compare);
    let clone = row("  the lines copied for `recon_save`", &times.clone);
    let save = row(
        "  `recon_save` (DELETE + 200-line INSERTs + the day row)",
        &times.save,
    );
    let follow = row(
        &format!(
            "  follow-ups: {} orderquery (answered at once: no answer) + notes",
            want[2].min(100)
        ),
        &times.follow,
    );
    let free = row(
        "  the day's data freed (bill, rows, facts, lines)",
        &times.free,
    );
    let sum = gunzip + parse + raw + facts_p50 + compare + clone + save + follow + free;
    println!(
        "| the phases' sum (each timed alone; the run also claims the day and reads its row back) | {sum:.0} ms | | {:.0} % |",
        sum / run.0 * 100.0
    );
    println!("\n| ceiling, same database, same run | p50 | min |");
    println!("|---|---|---|");
    let c = |what: &str, v: &[Duration]| {
        let (p50, min) = stats(v);
        println!("| {what} | {p50:.0} ms | {min:.0} ms |");
        p50
    };
    let select = c(
        "read the day's 100,000 orders: one hand-written SELECT",
        &times.select,
    );
    let unnest = c(
        &format!(
            "write the {} lines: one INSERT … SELECT FROM unnest",
            want.iter().sum::<i64>()
        ),
        &times.unnest,
    );
    let copy = c("write them: COPY FROM STDIN (text)", &times.copy);
    let delete = c("delete them: one DELETE", &times.delete);
    let write = unnest.min(copy);
    println!("\n| ratio (p50) | |");
    println!("|---|---|");
    println!("| facts / SELECT ceiling | {:.2} |", facts_p50 / select);
    println!("| save / fastest write | {:.2} |", save / write);
    println!(
        "| save / (fastest write + DELETE), what a re-run replaces | {:.2} |",
        save / (write + delete)
    );
    println!(
        "\nfollow-ups: the {} local_only lines (payments dropped from the bill) each make an \
         orderquery; this benchmark's WeChat answers it at once with no answer (Transport), so \
         the recheck leaves the order to the sweep and the note says so. amount_differs, \
         refund_differs (our refund settled) and the phantom payment need no query.",
        want[2]
    );
    pool.close().await;
    ctx.store.close_pool().await;
    db.remove().await;
}
