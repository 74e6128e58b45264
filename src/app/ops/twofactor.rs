//! `/ops/2fa`: the operator's own second factor — set up with a QR code an authenticator app
//! scans, confirmed with its first code; ten single-use recovery codes shown once; turned off
//! with a current code.

use leptos::prelude::*;

use super::{t, Flash, OpsKey};
use crate::app::i18n::Lang;

/// Where the operator stands.
#[derive(Debug, Clone)]
pub enum TwoFactorState {
    Off,
    /// Set up but not yet confirmed: the QR code (inline SVG) and the secret as text.
    Pending {
        qr_svg: String,
        secret: String,
    },
    On,
    /// Just confirmed: the recovery codes, shown this once.
    JustOn {
        recovery: Vec<String>,
    },
}

#[component]
pub fn TwoFactorPage(
    lang: Lang,
    state: TwoFactorState,
    done: Option<String>,
    error: Option<String>,
) -> impl IntoView {
    let code_field = move |id: &'static str| {
        view! {
            <label for=id>{t(lang, OpsKey::login_code)}</label>
            <input id=id name="code" type="text" inputmode="numeric" autocomplete="one-time-code" required maxlength="6" pattern="[0-9]{6}"/>
        }
    };
    let body = match state {
        TwoFactorState::Off => view! {
            <p>{t(lang, OpsKey::twofa_off)}</p>
            <form method="post" action="/ops/2fa/start">
                <button type="submit" class="button primary" data-testid="twofa-start">{t(lang, OpsKey::twofa_start)}</button>
            </form>
        }
        .into_any(),
        TwoFactorState::Pending { qr_svg, secret } => view! {
            <p>{t(lang, OpsKey::twofa_scan)}</p>
            <div class="qr" role="img" aria-label=t(lang, OpsKey::twofa_qr_label) inner_html=qr_svg></div>
            <p class="small">{t(lang, OpsKey::twofa_secret)}" "<code class="mono" data-testid="twofa-secret">{secret}</code></p>
            <form method="post" action="/ops/2fa/enable" class="stack">
                {code_field("twofa-code")}
                <button type="submit" class="button primary" data-testid="twofa-enable">{t(lang, OpsKey::twofa_enable)}</button>
            </form>
        }
        .into_any(),
        TwoFactorState::On => view! {
            <p data-testid="twofa-on">{t(lang, OpsKey::twofa_on)}</p>
            <form method="post" action="/ops/2fa/disable" class="stack">
                {code_field("twofa-off-code")}
                <button type="submit" class="button" data-testid="twofa-disable">{t(lang, OpsKey::twofa_disable)}</button>
            </form>
        }
        .into_any(),
        TwoFactorState::JustOn { recovery } => view! {
            <p data-testid="twofa-on">{t(lang, OpsKey::twofa_on)}</p>
            <p class="notice">{t(lang, OpsKey::twofa_recovery)}</p>
            <ul class="plain mono" data-testid="twofa-recovery">
                {recovery.into_iter().map(|c| view! { <li>{c}</li> }).collect_view()}
            </ul>
        }
        .into_any(),
    };
    view! {
        <h1>{t(lang, OpsKey::twofa_title)}</h1>
        <Flash lang=lang done=done error=error/>
        <section class="card narrow">{body}</section>
    }
}
