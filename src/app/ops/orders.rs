//! `/ops/orders`: newest first, one search box, filters in the URL, pages by cursor.

use leptos::prelude::*;

use super::{status_text, t, when, yuan, OpsKey};
use crate::app::i18n::Lang;
use crate::app::types::OrderStatus;
use crate::server::domain::{OrderFilter, OrderLine};

/// The list's query string as typed (kept to fill the form in again and to build links).
#[derive(Debug, Clone, Default, serde::Deserialize, serde::Serialize, PartialEq, Eq)]
#[serde(default)]
pub struct OrdersQuery {
    pub q: String,
    pub status: String,
    pub from: String,
    pub to: String,
    pub min: String,
    pub max: String,
    pub anomaly: String,
    pub refunded: String,
    pub after: String,
}

impl OrdersQuery {
    /// The filter it selects, or what is wrong with it (a key of the console's texts).
    pub fn filter(&self) -> Result<OrderFilter, OpsKey> {
        use crate::server::support::clock::parse_beijing;
        let day = |s: &str| -> Result<Option<i64>, OpsKey> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            let digits: String = s.chars().filter(|c| *c != '-').collect();
            if digits.len() != 8 || s.len() != 10 {
                return Err(OpsKey::bad_date);
            }
            parse_beijing(&format!("{digits}000000"))
                .map(Some)
                .map_err(|_| OpsKey::bad_date)
        };
        let fen = |s: &str| -> Result<Option<i64>, OpsKey> {
            let s = s.trim();
            if s.is_empty() {
                return Ok(None);
            }
            crate::server::domain::parse_yuan(s)
                .map(Some)
                .ok_or(OpsKey::bad_amount)
        };
        let q = self.q.trim();
        let id_prefix = match q {
            "" => None,
            q if q.len() <= 64 && q.bytes().all(|b| b.is_ascii_alphanumeric()) => {
                Some(q.to_string())
            }
            _ => return Err(OpsKey::bad_search),
        };
        let after = match self.after.split_once('_') {
            None if self.after.is_empty() => None,
            Some((at, id)) if id.bytes().all(|b| b.is_ascii_alphanumeric()) && id.len() <= 32 => {
                Some((
                    at.parse::<i64>().map_err(|_| OpsKey::bad_cursor)?,
                    id.to_string(),
                ))
            }
            _ => return Err(OpsKey::bad_cursor),
        };
        Ok(OrderFilter {
            status: match self.status.as_str() {
                "" => None,
                s => Some(OrderStatus::parse(s).ok_or(OpsKey::bad_status)?),
            },
            from_ms: day(&self.from)?,
            // The "to" day is included: up to the start of the day after it.
            until_ms: day(&self.to)?.map(|d| d + 86_400_000),
            min_fee: fen(&self.min)?,
            max_fee: fen(&self.max)?,
            has_anomaly: !self.anomaly.is_empty(),
            refunded: !self.refunded.is_empty(),
            id_prefix,
            after,
        })
    }

    /// This query as a URL query string (without `after`), for the next page and the CSV.
    pub fn to_query(&self) -> String {
        let mut s = self.clone();
        s.after.clear();
        let pairs = [
            ("q", &s.q),
            ("status", &s.status),
            ("from", &s.from),
            ("to", &s.to),
            ("min", &s.min),
            ("max", &s.max),
            ("anomaly", &s.anomaly),
            ("refunded", &s.refunded),
        ];
        pairs
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .map(|(k, v)| {
                format!(
                    "{k}={}",
                    percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC)
                )
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

#[component]
pub fn OrdersPageView(
    lang: Lang,
    query: OrdersQuery,
    lines: Vec<OrderLine>,
    next: Option<(i64, String)>,
    error: Option<OpsKey>,
) -> impl IntoView {
    let base = query.to_query();
    let next_href = next.map(|(at, id)| {
        let sep = if base.is_empty() { "" } else { "&" };
        format!("/ops/orders?{base}{sep}after={at}_{id}")
    });
    let csv = format!("/ops/orders.csv?{base}");
    let statuses = ["", "pending", "closing", "paid", "closed", "failed"];
    let empty = lines.is_empty();
    view! {
        <h1>{t(lang, OpsKey::orders_title)}</h1>
        <form method="get" action="/ops/orders" class="filters" role="search">
            <div class="field wide">
                <label for="q">{t(lang, OpsKey::search_label)}</label>
                <input id="q" name="q" type="search" value=query.q.clone() data-testid="ops-search"
                    placeholder=t(lang, OpsKey::search_hint) spellcheck="false" autocapitalize="none"/>
            </div>
            <div class="field">
                <label for="status">{t(lang, OpsKey::filter_status)}</label>
                <select id="status" name="status">
                    {statuses.into_iter().map(|s| {
                        let label = OrderStatus::parse(s).map(|st| status_text(lang, st)).unwrap_or(t(lang, OpsKey::filter_any));
                        view! { <option value=s selected=query.status == s>{label}</option> }
                    }).collect_view()}
                </select>
            </div>
            <div class="field">
                <label for="from">{t(lang, OpsKey::filter_from)}</label>
                <input id="from" name="from" type="date" value=query.from.clone()/>
            </div>
            <div class="field">
                <label for="to">{t(lang, OpsKey::filter_to)}</label>
                <input id="to" name="to" type="date" value=query.to.clone()/>
            </div>
            <div class="field">
                <label for="min">{t(lang, OpsKey::filter_min)}</label>
                <input id="min" name="min" type="text" inputmode="decimal" size="8" value=query.min.clone()/>
            </div>
            <div class="field">
                <label for="max">{t(lang, OpsKey::filter_max)}</label>
                <input id="max" name="max" type="text" inputmode="decimal" size="8" value=query.max.clone()/>
            </div>
            <div class="field check">
                <input id="anomaly" name="anomaly" type="checkbox" value="1" checked=!query.anomaly.is_empty()/>
                <label for="anomaly">{t(lang, OpsKey::filter_anomaly)}</label>
            </div>
            <div class="field check">
                <input id="refunded" name="refunded" type="checkbox" value="1" checked=!query.refunded.is_empty()/>
                <label for="refunded">{t(lang, OpsKey::filter_refunded)}</label>
            </div>
            <button type="submit" class="button primary" data-testid="ops-filter">{t(lang, OpsKey::filter_apply)}</button>
            <a href="/ops/orders" class="button link">{t(lang, OpsKey::filter_clear)}</a>
            <a href=csv class="button link" data-testid="ops-csv">{t(lang, OpsKey::export_csv)}</a>
        </form>
        {error.map(|e| view! { <p class="notice error" role="alert" data-testid="ops-error">{t(lang, e)}</p> })}
        <table class="grid orders" data-testid="ops-orders">
            <caption class="sr-only">{t(lang, OpsKey::orders_title)}</caption>
            <thead>
                <tr>
                    <th scope="col">{t(lang, OpsKey::col_placed)}</th>
                    <th scope="col">{t(lang, OpsKey::col_order)}</th>
                    <th scope="col">{t(lang, OpsKey::col_status)}</th>
                    <th scope="col" class="num">{t(lang, OpsKey::col_amount)}</th>
                    <th scope="col" class="num">{t(lang, OpsKey::col_refunded)}</th>
                    <th scope="col">{t(lang, OpsKey::col_transaction)}</th>
                </tr>
            </thead>
            <tbody>
                {lines.into_iter().map(|o| view! {
                    <tr data-testid="ops-order-row" data-order=o.id.clone()>
                        <td>{when(o.created_at)}</td>
                        <td><a class="mono" href=format!("/ops/orders/{}", o.id)>{o.id.clone()}</a>
                            {(o.anomalies > 0).then(|| view! { " " <span class="pill failed">{t(lang, OpsKey::has_anomaly)}</span> })}</td>
                        <td><span class=format!("pill {}", o.status.as_str())>{status_text(lang, o.status)}</span></td>
                        <td class="num">{yuan(o.total_fee)}</td>
                        <td class="num">{(o.refunded_fee > 0).then(|| yuan(o.refunded_fee))}</td>
                        <td class="mono small">{o.transaction_id.clone()}</td>
                    </tr>
                }).collect_view()}
            </tbody>
        </table>
        {empty.then(|| view! { <p class="muted" data-testid="ops-no-orders">{t(lang, OpsKey::orders_none)}</p> })}
        {next_href.map(|h| view! { <p><a href=h class="button" data-testid="ops-next">{t(lang, OpsKey::next_page)}</a></p> })}
    }
}
