//! The "phone": what WeChat shows after scanning a code_url, with Pay and Decline.

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::Html;
use axum::Form;
use serde::Deserialize;

use super::{RefundStatus, Sandbox, TradeState};
use crate::app::i18n::{from_headers, text, text_with, Key, Lang};
use crate::app::types::Fen;

#[derive(Deserialize)]
pub(super) struct Code {
    code_url: Option<String>,
}

/// WeChat speaks the phone's language: the same choice as the shop's pages (cookie, else
/// `Accept-Language`).
pub(super) async fn scan_page(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Query(q): Query<Code>,
) -> Html<String> {
    let lang = from_headers(&headers);
    let t = |k| text(lang, k);
    let Some(code_url) = q.code_url.filter(|c| !c.is_empty()) else {
        return page(
            lang,
            t(Key::sb_scan_title),
            &notice(t(Key::sb_no_code), t(Key::sb_no_code_body)),
        );
    };
    let snapshot = {
        let inner = sb.inner.lock().expect("sandbox lock");
        inner
            .by_code
            .get(&code_url)
            .and_then(|k| inner.orders.get(k))
            .map(|o| (o.mch_id.clone(), o.out_trade_no.clone()))
    };
    let Some(o) = snapshot.and_then(|(m, n)| sb.order(&m, &n)) else {
        return page(
            lang,
            t(Key::sb_scan_title),
            &notice(t(Key::sb_unknown_code), t(Key::sb_unknown_code_body)),
        );
    };
    let amount = Fen::new(o.total_fee()).map(Fen::yuan).unwrap_or_default();
    let state = match &o.state {
        TradeState::NotPay => None,
        TradeState::Success { .. } => Some(t(Key::sb_already_paid)),
        TradeState::Closed => Some(t(Key::sb_closed)),
    };
    let actions = match state {
        None => format!(
            r#"<form method="post" action="/sandbox/scan/pay"><input type="hidden" name="code_url" value="{c}">
<button class="pay" type="submit">{pay}</button></form>
<form method="post" action="/sandbox/scan/decline"><input type="hidden" name="code_url" value="{c}">
<button class="decline" type="submit">{decline}</button></form>"#,
            c = esc(&code_url),
            pay = esc(&text_with(lang, Key::sb_pay, &[("amount", &amount)])),
            decline = t(Key::sb_decline),
        ),
        Some(msg) => format!(r#"<p class="state">{msg}</p>{}"#, refund_list(lang, &o)),
    };
    let body = format!(
        r#"<div class="card">
<p class="payee-label">{pay_to}</p>
<p class="payee">{payee}</p>
<p class="amount" data-testid="phone-amount">{amount}</p>
<dl><dt>{item_label}</dt><dd>{item}</dd><dt>{order_label}</dt><dd class="mono">{otn}</dd><dt>API</dt><dd data-testid="phone-api">{api}</dd></dl>
{actions}
</div>"#,
        payee = esc(&sb.cfg.payee),
        item = esc(o.param("body")),
        otn = esc(&o.out_trade_no),
        // Which API the shop placed the order over (a developer's check that v3 is on).
        api = match o.api {
            super::ApiVersion::V2 => "v2",
            super::ApiVersion::V3 => "v3",
        },
        pay_to = t(Key::sb_pay_to),
        item_label = t(Key::sb_item),
        order_label = t(Key::sb_order),
    );
    page(lang, t(Key::sb_confirm), &body)
}

pub(super) async fn pay(
    State(sb): State<Sandbox>,
    headers: HeaderMap,
    Form(form): Form<Code>,
) -> Html<String> {
    let lang = from_headers(&headers);
    let t = |k| text(lang, k);
    let code_url = form.code_url.unwrap_or_default();
    match sb.pay_code(&code_url) {
        Ok(o) => {
            let amount = Fen::new(o.total_fee()).map(Fen::yuan).unwrap_or_default();
            page(
                lang,
                t(Key::sb_done),
                &format!(
                    r#"<div class="card done"><div class="tick" aria-hidden="true">✓</div><p class="title" data-testid="phone-result">{done}</p>
<p class="amount">{amount}</p><p>{body}</p></div>"#,
                    done = t(Key::sb_done),
                    body = esc(&text_with(
                        lang,
                        Key::sb_done_body,
                        &[("payee", &sb.cfg.payee)]
                    )),
                ),
            )
        }
        Err(why) => page(
            lang,
            t(Key::sb_cannot_pay),
            &notice(t(Key::sb_cannot_pay), why),
        ),
    }
}

pub(super) async fn decline(headers: HeaderMap, Form(_form): Form<Code>) -> Html<String> {
    let lang = from_headers(&headers);
    let t = |k| text(lang, k);
    page(
        lang,
        t(Key::sb_cancelled),
        &format!(
            r#"<div class="card"><p class="title" data-testid="phone-result">{}</p><p>{}</p></div>"#,
            t(Key::sb_cancelled),
            t(Key::sb_cancelled_body)
        ),
    )
}

/// The order's refunds, as WeChat lists them under the payment. The words are here rather than
/// in the locale files: they are the simulator's developer aid, not the shop's text.
fn refund_list(lang: Lang, o: &super::SandboxOrder) -> String {
    if o.refunds.is_empty() {
        return String::new();
    }
    let zh = lang == Lang::ZhCn;
    let title = if zh { "退款" } else { "Refunds" };
    let rows: String = o
        .refunds
        .iter()
        .map(|r| {
            let state = match (r.status, zh) {
                (RefundStatus::Processing, true) => "退款中",
                (RefundStatus::Processing, false) => "Processing",
                (RefundStatus::Success, true) => "已退款",
                (RefundStatus::Success, false) => "Refunded",
                (RefundStatus::Change, true) => "退款异常",
                (RefundStatus::Change, false) => "Needs attention (CHANGE)",
                (RefundStatus::Closed, true) => "退款关闭",
                (RefundStatus::Closed, false) => "Closed",
            };
            let amount = Fen::new(r.refund_fee).map(Fen::yuan).unwrap_or_default();
            format!(
                r#"<li data-testid="phone-refund" data-status="{code}"><span>{amount}</span> <span>{state}</span> <span class="mono">{no}</span></li>"#,
                code = r.status.as_str(),
                no = esc(&r.out_refund_no),
            )
        })
        .collect();
    format!(r#"<div class="refunds"><p class="refunds-title">{title}</p><ul>{rows}</ul></div>"#)
}

fn notice(title: &str, text: &str) -> String {
    format!(
        r#"<div class="card"><p class="title" data-testid="phone-result">{}</p><p>{}</p></div>"#,
        esc(title),
        esc(text)
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn page(lang: Lang, title: &str, body: &str) -> Html<String> {
    let title = esc(&text_with(lang, Key::sb_page_title, &[("title", title)]));
    let (wechat_pay, sandbox) = (text(lang, Key::sb_wechat_pay), text(lang, Key::sb_sandbox));
    let code = lang.code();
    Html(format!(
        r#"<!DOCTYPE html><html lang="{code}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>{title}</title><style>
body{{margin:0;font-family:-apple-system,"PingFang SC","Noto Sans CJK SC",system-ui,sans-serif;background:#ededed;color:#111}}
header{{background:#2e2e2e;color:#fff;padding:14px 16px;font-size:15px;display:flex;justify-content:space-between}}
header .tag{{background:#fa9d3b;color:#111;border-radius:4px;padding:1px 6px;font-size:12px}}
.card{{background:#fff;margin:16px;border-radius:10px;padding:24px 20px;text-align:center}}
.payee-label{{color:#666;margin:0;font-size:14px}} .payee{{font-size:17px;margin:6px 0 18px}}
.amount{{font-size:40px;font-weight:600;margin:0 0 18px}} .title{{font-size:20px;font-weight:600}}
dl{{display:grid;grid-template-columns:auto 1fr;gap:6px 12px;text-align:left;font-size:14px;color:#555;border-top:1px solid #eee;padding-top:14px}}
dt{{color:#666}} dd{{margin:0;word-break:break-all}} .mono{{font-family:ui-monospace,monospace;font-size:13px}}
button{{width:100%;border:0;border-radius:8px;padding:14px;font-size:17px;margin-top:12px;cursor:pointer}}
.pay{{background:#067a3e;color:#fff}} .decline{{background:#f2f2f2;color:#333}}
.tick{{width:64px;height:64px;border-radius:50%;background:#07c160;color:#fff;font-size:36px;line-height:64px;margin:0 auto 12px}}
.state{{color:#c00}}
.refunds{{border-top:1px solid #eee;margin-top:14px;text-align:left;font-size:14px}} .refunds-title{{color:#666}}
.refunds ul{{list-style:none;padding:0;margin:0}} .refunds li{{display:flex;gap:8px;padding:4px 0}}
</style></head><body><header><span>{wechat_pay}</span><span class="tag">{sandbox}</span></header><main>{body}</main></body></html>"#
    ))
}
