//! The "phone": what WeChat shows after scanning a code_url, with Pay and Decline.

use axum::extract::{Query, State};
use axum::response::Html;
use axum::Form;
use serde::Deserialize;

use super::{Sandbox, TradeState};
use crate::app::types::Fen;

#[derive(Deserialize)]
pub(super) struct Code {
    code_url: Option<String>,
}

pub(super) async fn scan_page(State(sb): State<Sandbox>, Query(q): Query<Code>) -> Html<String> {
    let Some(code_url) = q.code_url.filter(|c| !c.is_empty()) else {
        return page(
            "Scan",
            &notice(
                "No code",
                "Open this page from a checkout's “scan with the sandbox phone” link.",
            ),
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
            "Scan",
            &notice(
                "Unknown code",
                "This QR code is not a sandbox payment code.",
            ),
        );
    };
    let amount = Fen::new(o.total_fee()).map(Fen::yuan).unwrap_or_default();
    let state = match &o.state {
        TradeState::NotPay => None,
        TradeState::Success { .. } => Some("This order has already been paid."),
        TradeState::Closed => Some("This order is closed and can no longer be paid."),
    };
    let actions = match state {
        None => format!(
            r#"<form method="post" action="/sandbox/scan/pay"><input type="hidden" name="code_url" value="{c}">
<button class="pay" type="submit">Pay {amount}</button></form>
<form method="post" action="/sandbox/scan/decline"><input type="hidden" name="code_url" value="{c}">
<button class="decline" type="submit">Decline</button></form>"#,
            c = esc(&code_url)
        ),
        Some(msg) => format!(r#"<p class="state">{msg}</p>"#),
    };
    let body = format!(
        r#"<div class="card">
<p class="payee-label">Pay to</p>
<p class="payee">{payee}</p>
<p class="amount" data-testid="phone-amount">{amount}</p>
<dl><dt>Item</dt><dd>{item}</dd><dt>Order</dt><dd class="mono">{otn}</dd></dl>
{actions}
</div>"#,
        payee = esc(&sb.cfg.payee),
        item = esc(o.param("body")),
        otn = esc(&o.out_trade_no),
    );
    page("Confirm payment", &body)
}

pub(super) async fn pay(State(sb): State<Sandbox>, Form(form): Form<Code>) -> Html<String> {
    let code_url = form.code_url.unwrap_or_default();
    match sb.pay_code(&code_url) {
        Ok(o) => {
            let amount = Fen::new(o.total_fee()).map(Fen::yuan).unwrap_or_default();
            page(
                "Payment complete",
                &format!(
                    r#"<div class="card done"><div class="tick">✓</div><p class="title" data-testid="phone-result">Payment complete</p>
<p class="amount">{amount}</p><p>Paid to {payee}. You can return to the shop's page.</p></div>"#,
                    payee = esc(&sb.cfg.payee)
                ),
            )
        }
        Err(why) => page("Cannot pay", &notice("Cannot pay", why)),
    }
}

pub(super) async fn decline(Form(_form): Form<Code>) -> Html<String> {
    page(
        "Payment cancelled",
        r#"<div class="card"><p class="title" data-testid="phone-result">Payment cancelled</p><p>Nothing was charged. The shop's page keeps waiting until its order expires.</p></div>"#,
    )
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

fn page(title: &str, body: &str) -> Html<String> {
    Html(format!(
        r#"<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,"><title>{title} · WeChat Pay sandbox</title><style>
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
</style></head><body><header><span>WeChat Pay</span><span class="tag">SANDBOX</span></header>{body}</body></html>"#
    ))
}
