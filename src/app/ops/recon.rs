//! `/ops/reconciliation`: the days WeChat's trade bill was compared with what scanpay holds, and
//! one day — its totals beside WeChat's, and each difference with what was done and, while it is
//! open, a form to resolve it with a reason. The order page lists an order's differences too.

use std::collections::HashSet;

use leptos::prelude::*;

use super::{t, t_with, when, yuan, Flash, OpsKey};
use crate::app::i18n::Lang;
use crate::server::domain::recon::{
    ClassTotal, DayStatus, LineKind, ReconClass, ReconDayRow, ReconLine,
};

pub fn class_text(lang: Lang, c: ReconClass) -> &'static str {
    t(
        lang,
        match c {
            ReconClass::Matched => OpsKey::class_matched,
            ReconClass::WechatOnly => OpsKey::class_wechat_only,
            ReconClass::LocalOnly => OpsKey::class_local_only,
            ReconClass::AmountDiffers => OpsKey::class_amount_differs,
            ReconClass::RefundDiffers => OpsKey::class_refund_differs,
        },
    )
}

fn kind_text(lang: Lang, k: LineKind) -> &'static str {
    t(
        lang,
        match k {
            LineKind::Payment => OpsKey::kind_payment,
            LineKind::Refund => OpsKey::kind_refund,
        },
    )
}

fn bill_text(lang: Lang, bill: Option<&str>) -> &'static str {
    t(
        lang,
        match bill {
            Some("bill") => OpsKey::bill_bill,
            Some(_) => OpsKey::bill_no_bill,
            None => OpsKey::bill_not_yet,
        },
    )
}

/// WeChat's fees are in thousandths of a fen: yuan with 2 to 5 decimals, as many as needed.
pub fn yuan_millifen(m: i64) -> String {
    let sign = if m < 0 { "-" } else { "" };
    let m = m.abs();
    let mut frac = format!("{:05}", m % 100_000);
    while frac.len() > 2 && frac.ends_with('0') {
        frac.pop();
    }
    format!("{sign}¥{}.{frac}", m / 100_000)
}

fn amount(fen: Option<i64>) -> String {
    fen.map(yuan).unwrap_or_else(|| "—".into())
}

/// The day's state: a pill, and for a day still waiting its attempts and last error.
fn day_state(lang: Lang, d: &ReconDayRow) -> impl IntoView {
    let (class, key) = match d.status {
        DayStatus::Done => ("pill paid", OpsKey::day_done),
        DayStatus::Running => ("pill pending", OpsKey::day_running),
        DayStatus::Due => ("pill pending", OpsKey::day_due),
        DayStatus::Failed => ("pill failed", OpsKey::day_failed),
    };
    let waiting = (d.status != DayStatus::Done && d.attempts > 0).then(|| {
        let error = d.last_error.clone().unwrap_or_else(|| "—".into());
        let n = d.attempts.to_string();
        view! { <div class="small muted">{t_with(lang, OpsKey::recon_attempts, &[("n", &n), ("error", &error)])}</div> }
    });
    view! { <span class=class data-testid="recon-status" data-status=d.status.as_str()>{t(lang, key)}</span>{waiting} }
}

fn open_badge(lang: Lang, open: i64) -> impl IntoView {
    if open > 0 {
        let n = open.to_string();
        view! { <span class="pill failed" data-testid="recon-open">{t_with(lang, OpsKey::recon_open_n, &[("n", &n)])}</span> }.into_any()
    } else {
        view! { <span class="muted small">{t(lang, OpsKey::recon_none_open)}</span> }.into_any()
    }
}

/// What the list of days shows (read by `http::console::recon::list`).
#[derive(Debug, Clone)]
pub struct ReconListData {
    pub days: Vec<ReconDayRow>,
    /// The `before=` of the next page, when there is one.
    pub next: Option<String>,
    /// The operator may start a run (operator or admin).
    pub may_run: bool,
    /// Today and yesterday, Beijing time: the run form's limit and its first choice.
    pub today: String,
    pub yesterday: String,
    pub done: Option<String>,
    pub error: Option<String>,
}

#[component]
pub fn ReconListPage(lang: Lang, d: ReconListData) -> impl IntoView {
    let empty = d.days.is_empty();
    view! {
        <h1>{t(lang, OpsKey::recon_title)}</h1>
        <p class="muted">{t(lang, OpsKey::recon_intro)}</p>
        <Flash lang=lang done=d.done.clone() error=d.error.clone()/>
        {d.may_run.then(|| view! {
            <section class="card" aria-labelledby="recon-run-h">
                <h2 id="recon-run-h">{t(lang, OpsKey::recon_run_title)}</h2>
                <p class="muted small">{t(lang, OpsKey::recon_run_hint)}</p>
                <form method="post" action="/ops/reconciliation" class="filters">
                    <div class="field">
                        <label for="recon-date">{t(lang, OpsKey::recon_run_date)}</label>
                        <input id="recon-date" name="date" type="date" required max=d.today.clone() value=d.yesterday.clone() data-testid="recon-date"/>
                    </div>
                    <button type="submit" class="button primary" data-testid="recon-run">{t(lang, OpsKey::recon_run_submit)}</button>
                </form>
            </section>
        })}
        {empty.then(|| view! { <p class="muted" data-testid="recon-no-days">{t(lang, OpsKey::recon_none)}</p> })}
        {(!empty).then(|| view! {
            <div class="scroll-x"><table class="grid" data-testid="recon-days">
                <caption class="sr-only">{t(lang, OpsKey::recon_title)}</caption>
                <thead><tr>
                    <th scope="col">{t(lang, OpsKey::col_day)}</th>
                    <th scope="col">{t(lang, OpsKey::col_status)}</th>
                    <th scope="col">{t(lang, OpsKey::col_bill)}</th>
                    {ReconClass::ALL.into_iter().map(|c| view! { <th scope="col" class="num">{class_text(lang, c)}</th> }).collect_view()}
                    <th scope="col" class="amounts">{t(lang, OpsKey::col_paid_pair)}</th>
                    <th scope="col" class="amounts">{t(lang, OpsKey::col_refunded_pair)}</th>
                    <th scope="col" class="amounts">{t(lang, OpsKey::col_fees)}</th>
                    <th scope="col">{t(lang, OpsKey::col_open)}</th>
                </tr></thead>
                <tbody>
                    {d.days.iter().map(|day| view! {
                        <tr data-testid="recon-day" data-date=day.bill_date.clone()>
                            <td class="nowrap"><a href=format!("/ops/reconciliation/{}", day.bill_date)>{day.bill_date.clone()}</a></td>
                            <td>{day_state(lang, day)}</td>
                            <td>{bill_text(lang, day.bill.as_deref())}</td>
                            {ReconClass::ALL.into_iter().map(|c| {
                                let n = day.counts[c.index()];
                                let flagged = c != ReconClass::Matched && n > 0;
                                view! { <td class=if flagged { "num bad" } else { "num" } data-class=c.as_str()>{n}</td> }
                            }).collect_view()}
                            {day_amounts(day)}
                            <td>{open_badge(lang, day.open)}</td>
                        </tr>
                    }).collect_view()}
                </tbody>
            </table></div>
        })}
        {d.next.map(|n| view! { <p><a class="button" href=format!("/ops/reconciliation?before={n}") data-testid="ops-next">{t(lang, OpsKey::next_page)}</a></p> })}
    }
}

/// A day's money in the list: paid and refunded, WeChat's beside ours, and WeChat's fees (blank
/// until WeChat has said). Paid compares 订单金额 (before coupons, as the lines do; the old
/// layout has only the settled amount) and is flagged where it differs; refunded shows WeChat's
/// 退款金额, which a coupon may make lower than what was asked, so it is not flagged (its lines
/// are compared on the asked amounts).
fn day_amounts(day: &ReconDayRow) -> impl IntoView {
    let said = day.bill.is_some();
    let pair = |theirs: i64, ours: i64, flag: bool, testid: &'static str| {
        let (text, class) = if said {
            let class = if flag && theirs != ours {
                "num bad"
            } else {
                "num"
            };
            (format!("{} / {}", yuan(theirs), yuan(ours)), class)
        } else {
            (format!("— / {}", yuan(ours)), "num")
        };
        view! { <td class=class data-testid=testid>{text}</td> }
    };
    let w = &day.wechat;
    let fees = if said {
        yuan_millifen(w.fee_millifen)
    } else {
        "—".into()
    };
    view! {
        {pair(w.order_fen.unwrap_or(w.settlement_fen), day.local.paid_fen, true, "recon-day-paid")}
        {pair(w.refund_fen, day.local.refund_fen, false, "recon-day-refunded")}
        <td class="num">{fees}</td>
    }
}

/// What one day's page shows (read by `http::console::recon::day`).
#[derive(Debug, Clone)]
pub struct ReconDayData {
    pub day: ReconDayRow,
    pub totals: [ClassTotal; 5],
    /// The differences, in key order, at most `cap` of them.
    pub lines: Vec<ReconLine>,
    /// Set when there are more differences than shown: how many are shown.
    pub capped: Option<usize>,
    /// The orders among the lines that scanpay holds (linked to their page).
    pub orders: HashSet<String>,
    /// The operator may run the day again and resolve differences.
    pub may_act: bool,
    /// WeChat's raw bill is stored.
    pub has_raw: bool,
    pub done: Option<String>,
    pub error: Option<String>,
}

#[component]
pub fn ReconDayPage(lang: Lang, d: ReconDayData) -> impl IntoView {
    let date = d.day.bill_date.clone();
    let base = format!("/ops/reconciliation/{date}");
    let run_by = d.day.finished_at.map(|at| {
        let by = d.day.run_by.clone().unwrap_or_default();
        t_with(
            lang,
            OpsKey::recon_run_by,
            &[("when", &when(at)), ("by", &by)],
        )
    });
    view! {
        <p><a href="/ops/reconciliation">{t(lang, OpsKey::recon_back)}</a></p>
        <h1 data-testid="recon-day-title">{t_with(lang, OpsKey::recon_day_title, &[("date", &date)])}</h1>
        <Flash lang=lang done=d.done.clone() error=d.error.clone()/>
        <section class="card">
            <dl class="facts">
                <dt>{t(lang, OpsKey::recon_facts_status)}</dt><dd>{day_state(lang, &d.day)}</dd>
                <dt>{t(lang, OpsKey::col_bill)}</dt><dd>{bill_text(lang, d.day.bill.as_deref())}</dd>
                {run_by.map(|r| view! { <dt>{t(lang, OpsKey::recon_facts_run)}</dt><dd>{r}</dd> })}
                <dt>{t(lang, OpsKey::recon_open_total)}</dt><dd data-testid="recon-open-total">{open_badge(lang, d.day.open)}</dd>
            </dl>
            <p>
                <a class="button link" href=format!("{base}.csv") data-testid="recon-csv">{t(lang, OpsKey::recon_csv)}</a>
                {d.has_raw.then(|| view! { " " <a class="button link" href=format!("{base}/bill") data-testid="recon-raw">{t(lang, OpsKey::recon_raw)}</a> })}
            </p>
            {d.may_act.then(|| view! {
                <form method="post" action=format!("{base}/run") class="inline">
                    <button type="submit" class="button" data-testid="recon-run-again">{t(lang, OpsKey::recon_run_again)}</button>
                </form>
                <p class="muted small">{t(lang, OpsKey::recon_run_again_hint)}</p>
            })}
        </section>
        <Totals lang=lang totals=d.totals.clone()/>
        <Summary lang=lang day=d.day.clone()/>
        <Differences lang=lang base=base lines=d.lines capped=d.capped orders=d.orders may_act=d.may_act/>
    }
}

#[component]
fn Totals(lang: Lang, totals: [ClassTotal; 5]) -> impl IntoView {
    view! {
        <section class="card" aria-labelledby="recon-totals-h">
            <h2 id="recon-totals-h">{t(lang, OpsKey::recon_totals_title)}</h2>
            <table class="grid" data-testid="recon-totals">
                <caption class="sr-only">{t(lang, OpsKey::recon_totals_caption)}</caption>
                <thead><tr>
                    <th scope="col">{t(lang, OpsKey::col_class)}</th>
                    <th scope="col" class="num">{t(lang, OpsKey::col_lines)}</th>
                    <th scope="col" class="num">{t(lang, OpsKey::col_wechat)}</th>
                    <th scope="col" class="num">{t(lang, OpsKey::col_ours)}</th>
                    <th scope="col" class="num">{t(lang, OpsKey::col_open)}</th>
                </tr></thead>
                <tbody>
                    {ReconClass::ALL.into_iter().map(|c| {
                        let x = totals[c.index()].clone();
                        view! {
                            <tr data-class=c.as_str()>
                                <th scope="row">{class_text(lang, c)}</th>
                                <td class="num">{x.count}</td>
                                <td class="num">{yuan(x.wechat_fen)}</td>
                                <td class="num">{yuan(x.local_fen)}</td>
                                <td class=if x.open == 0 { "num" } else { "num bad" }>{x.open}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
        </section>
    }
}

/// WeChat's summary line beside scanpay's own figures for the day.
#[component]
fn Summary(lang: Lang, day: ReconDayRow) -> impl IntoView {
    // Before a finished run WeChat has said nothing; "no bill" is WeChat saying zero.
    let said = day.bill.is_some();
    let w = move |v: String| if said { v } else { "—".into() };
    let (wx, ours) = (&day.wechat, &day.local);
    let rows = [
        (
            OpsKey::sum_rows,
            w(wx.rows.to_string()),
            (ours.paid_count + ours.refund_count).to_string(),
        ),
        (
            OpsKey::sum_order,
            w(wx.order_fen.map(yuan).unwrap_or_else(|| "—".into())),
            yuan(ours.paid_fen),
        ),
        (
            OpsKey::sum_settlement,
            w(yuan(wx.settlement_fen)),
            yuan(ours.paid_fen),
        ),
        (
            OpsKey::sum_refunds,
            w(yuan(wx.refund_fen)),
            format!("{} ({})", yuan(ours.refund_fen), ours.refund_count),
        ),
        (
            OpsKey::sum_fees,
            w(yuan_millifen(wx.fee_millifen)),
            "—".to_string(),
        ),
    ];
    view! {
        <section class="card" aria-labelledby="recon-summary-h">
            <h2 id="recon-summary-h">{t(lang, OpsKey::recon_summary_title)}</h2>
            <table class="grid" data-testid="recon-summary">
                <caption class="sr-only">{t(lang, OpsKey::recon_summary_title)}</caption>
                <thead><tr>
                    <th scope="col">{t(lang, OpsKey::col_figure)}</th>
                    <th scope="col" class="num">{t(lang, OpsKey::col_wechat)}</th>
                    <th scope="col" class="num">{t(lang, OpsKey::col_ours)}</th>
                </tr></thead>
                <tbody>
                    {rows.into_iter().map(|(key, theirs, mine)| view! {
                        <tr><th scope="row">{t(lang, key)}</th><td class="num">{theirs}</td><td class="num">{mine}</td></tr>
                    }).collect_view()}
                </tbody>
            </table>
            <p class="muted small">{t(lang, OpsKey::recon_summary_note)}</p>
        </section>
    }
}

#[component]
fn Differences(
    lang: Lang,
    base: String,
    lines: Vec<ReconLine>,
    capped: Option<usize>,
    orders: HashSet<String>,
    may_act: bool,
) -> impl IntoView {
    let empty = lines.is_empty();
    let action = format!("{base}/resolve");
    view! {
        <section class="card" aria-labelledby="recon-diffs-h">
            <h2 id="recon-diffs-h">{t(lang, OpsKey::recon_diffs_title)}</h2>
            {capped.map(|n| view! { <p class="notice" data-testid="recon-capped">{t_with(lang, OpsKey::recon_diffs_capped, &[("n", &n.to_string())])}</p> })}
            {empty.then(|| view! { <p class="muted" data-testid="recon-no-diffs">{t(lang, OpsKey::recon_diffs_none)}</p> })}
            {(!empty).then(|| view! {
                <table class="grid" data-testid="recon-lines">
                    <caption class="sr-only">{t(lang, OpsKey::recon_diffs_title)}</caption>
                    <thead><tr>
                        <th scope="col">{t(lang, OpsKey::col_difference)}</th>
                        <th scope="col">{t(lang, OpsKey::col_ids)}</th>
                        <th scope="col">{t(lang, OpsKey::col_time)}</th>
                        <th scope="col" class="num">{t(lang, OpsKey::col_wechat)}</th>
                        <th scope="col" class="num">{t(lang, OpsKey::col_ours)}</th>
                        <th scope="col">{t(lang, OpsKey::col_note)}</th>
                    </tr></thead>
                    <tbody>
                        {lines.into_iter().enumerate().map(|(i, l)| {
                            let open = l.is_open();
                            let ours = orders.contains(&l.out_trade_no);
                            let order = if ours {
                                view! { <a class="mono" href=format!("/ops/orders/{}", l.out_trade_no)>{l.out_trade_no.clone()}</a> }.into_any()
                            } else {
                                view! { <span class="mono">{l.out_trade_no.clone()}</span> }.into_any()
                            };
                            let field = format!("recon-reason-{i}");
                            // `num`: the grid's no-wrap, so a Chinese class name stays whole.
                            let pill = if open { "pill failed num" } else { "pill num" };
                            view! {
                                <tr data-testid="recon-line" data-key=l.key.clone() data-class=l.class.as_str() data-open=open.to_string()>
                                    <td>
                                        <span class=pill>{class_text(lang, l.class)}</span>
                                        <div class="small">{kind_text(lang, l.kind)}</div>
                                    </td>
                                    <td>
                                        {order}
                                        {(!l.transaction_id.is_empty()).then(|| view! { <div class="mono small">{l.transaction_id.clone()}</div> })}
                                        {(!l.out_refund_no.is_empty()).then(|| view! { <div class="mono small">{l.out_refund_no.clone()}</div> })}
                                    </td>
                                    <td class="small">{l.trade_time.clone()}</td>
                                    <td class="num">{amount(l.wechat_fen)}<div class="small muted">{l.wechat_state.clone()}</div></td>
                                    <td class="num">{amount(l.local_fen)}<div class="small muted">{l.local_state.clone()}</div></td>
                                    <td>
                                        <p class="small" data-testid="recon-note">{l.note.clone()}</p>
                                        {l.resolved_at.map(|at| {
                                            let by = l.resolved_by.clone().unwrap_or_default();
                                            view! {
                                                <p class="small" data-testid="recon-resolution">
                                                    {t_with(lang, OpsKey::recon_resolved_by, &[("by", &by), ("when", &when(at))])}" "{l.resolution.clone()}
                                                </p>
                                            }
                                        })}
                                        {(open && may_act).then(|| view! {
                                            <form method="post" action=action.clone() class="stack">
                                                <input type="hidden" name="key" value=l.key.clone()/>
                                                <label for=field.clone()>{t(lang, OpsKey::recon_resolve_reason)}</label>
                                                <input id=field.clone() name="reason" type="text" required maxlength="512"/>
                                                <button type="submit" class="button small" data-testid="recon-resolve">{t(lang, OpsKey::resolve_submit)}</button>
                                            </form>
                                        })}
                                    </td>
                                </tr>
                            }
                        }).collect_view()}
                    </tbody>
                </table>
            })}
        </section>
    }
}

/// The order page's part: the reconciliation differences naming the order, newest day first.
#[component]
pub fn OrderRecon(lang: Lang, lines: Vec<(String, ReconLine)>) -> impl IntoView {
    (!lines.is_empty()).then(|| {
        view! {
            <section class="card" aria-labelledby="order-recon-h" data-testid="ops-order-recon">
                <h2 id="order-recon-h">{t(lang, OpsKey::order_recon_title)}</h2>
                <ul class="plain">
                    {lines.into_iter().map(|(date, l)| {
                        let open = l.is_open();
                        view! {
                            <li data-testid="ops-order-recon-line" data-open=open.to_string()>
                                <a href=format!("/ops/reconciliation/{date}")>{t_with(lang, OpsKey::order_recon_day, &[("date", &date)])}</a>
                                " · "<span class=if open { "pill failed" } else { "pill" }>{class_text(lang, l.class)}</span>
                                " "<span class="small">{kind_text(lang, l.kind)}</span>
                                " · "<span class="small">{t(lang, if open { OpsKey::recon_open } else { OpsKey::recon_resolved })}</span>
                                <div class="small muted">{l.note.clone()}</div>
                            </li>
                        }
                    }).collect_view()}
                </ul>
            </section>
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fees_show_as_many_decimals_as_they_need() {
        assert_eq!(yuan_millifen(0), "¥0.00");
        assert_eq!(yuan_millifen(6_000), "¥0.06");
        assert_eq!(yuan_millifen(6), "¥0.00006");
        assert_eq!(yuan_millifen(123_450), "¥1.2345");
        assert_eq!(yuan_millifen(-100_000), "-¥1.00");
    }
}
