//! Simplified Chinese and English. The texts live in `locales/<lang>.json`; `build.rs` turns them
//! into one `Key` per text and a table per language, so a missing key is a build error and the
//! tables are plain static strings in the WASM.
//!
//! The language is chosen on the server (the `lang` cookie, else `Accept-Language`: zh* → zh-CN,
//! else en), written into `<html lang>`, and read back from there when the page hydrates — the
//! same language in both renders, so nothing flashes. Switching remembers the choice in the cookie
//! through `set_language` and reloads the page in the other language.

use leptos::prelude::*;
use serde::{Deserialize, Serialize};

include!(concat!(env!("OUT_DIR"), "/i18n.rs"));

/// The cookie that remembers a shopper's choice.
pub const COOKIE: &str = "lang";

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Lang {
    #[default]
    En,
    ZhCn,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::ZhCn];

    /// The BCP 47 tag, as in `<html lang>` and the cookie.
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::ZhCn => "zh-CN",
        }
    }

    /// `en`, `zh-CN` (any case; any `zh…` tag is Simplified Chinese here).
    pub fn parse(code: &str) -> Option<Lang> {
        let code = code.trim().to_ascii_lowercase();
        if code == "en" || code.starts_with("en-") {
            Some(Lang::En)
        } else if code == "zh" || code.starts_with("zh-") {
            Some(Lang::ZhCn)
        } else {
            None
        }
    }

    /// The shopper's most preferred language in an `Accept-Language` header: zh* → zh-CN, else en.
    pub fn from_accept_language(header: &str) -> Lang {
        let best = header
            .split(',')
            .filter_map(|part| {
                let mut bits = part.split(';');
                let tag = bits.next()?.trim();
                let q = bits
                    .find_map(|b| b.trim().strip_prefix("q="))
                    .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())?;
                (!tag.is_empty() && q > 0.0).then_some((tag, q))
            })
            // The first of the highest weight wins (a stable max).
            .fold(None::<(&str, f32)>, |best, (tag, q)| match best {
                Some((_, bq)) if bq >= q => best,
                _ => Some((tag, q)),
            });
        match best {
            Some((tag, _)) if tag.to_ascii_lowercase().starts_with("zh") => Lang::ZhCn,
            _ => Lang::En,
        }
    }

    /// The other language (the switch offers it).
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::ZhCn,
            Lang::ZhCn => Lang::En,
        }
    }
}

/// The text for `key` in `lang`.
pub fn text(lang: Lang, key: Key) -> &'static str {
    match lang {
        Lang::En => EN[key as usize],
        Lang::ZhCn => ZH_CN[key as usize],
    }
}

/// The text with its `{{ name }}` placeholders filled in.
pub fn text_with(lang: Lang, key: Key, args: &[(&str, &str)]) -> String {
    let mut s = text(lang, key).to_string();
    for (name, value) in args {
        s = s.replace(&format!("{{{{ {name} }}}}"), value);
    }
    s
}

/// What the shopper got back, when anything: "Refunded" (all of it) or "Refunded ¥12.00".
pub fn refunded_text(
    lang: Lang,
    amount: super::types::Fen,
    refunded: super::types::Fen,
) -> Option<String> {
    match refunded.get() {
        0 => None,
        r if r >= amount.get() => Some(text(lang, Key::refunded_full).to_string()),
        _ => Some(text_with(
            lang,
            Key::refunded_part,
            &[("amount", &refunded.yuan())],
        )),
    }
}

/// The page's language. The server renders a page in one language; switching reloads it in the
/// other (see `LanguageSwitch`), so the language never changes under a hydrated island.
#[derive(Clone, Copy)]
pub struct I18n(pub Lang);

impl I18n {
    pub fn lang(self) -> Lang {
        self.0
    }
    pub fn t(self, key: Key) -> &'static str {
        text(self.0, key)
    }
    pub fn t_with(self, key: Key, args: &[(&str, &str)]) -> String {
        text_with(self.0, key, args)
    }
}

/// The page's language: provided by `App` on the server. An island hydrating in the browser has
/// no parent to inherit it from, so it reads `<html lang>` (which the server wrote).
pub fn use_i18n() -> I18n {
    use_context::<I18n>().unwrap_or_else(|| {
        let i18n = I18n(initial_lang());
        provide_context(i18n);
        i18n
    })
}

/// The language this render starts in: from the request on the server, from `<html lang>` (which
/// the server wrote) in the browser.
pub fn initial_lang() -> Lang {
    #[cfg(feature = "ssr")]
    {
        use_context::<axum::http::request::Parts>()
            .map(|p| from_headers(&p.headers))
            .unwrap_or_default()
    }
    #[cfg(not(feature = "ssr"))]
    {
        document()
            .document_element()
            .and_then(|e| e.get_attribute("lang"))
            .and_then(|l| Lang::parse(&l))
            .unwrap_or_default()
    }
}

/// The `lang` cookie if it names a language, else `Accept-Language`.
#[cfg(feature = "ssr")]
pub fn from_headers(headers: &axum::http::HeaderMap) -> Lang {
    let from_cookie = headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .find_map(Lang::parse);
    from_cookie.unwrap_or_else(|| {
        headers
            .get(axum::http::header::ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .map(Lang::from_accept_language)
            .unwrap_or_default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_chinese_for_any_zh_and_english_otherwise() {
        let cases = [
            ("zh-CN,zh;q=0.9,en;q=0.8", Lang::ZhCn),
            ("zh-TW", Lang::ZhCn),
            ("ZH", Lang::ZhCn),
            ("en-US,en;q=0.9,zh-CN;q=0.8", Lang::En),
            ("fr-FR, zh;q=0.9", Lang::En),
            ("de;q=0.5, zh-CN;q=0.9", Lang::ZhCn),
            ("zh;q=0, en", Lang::En),
            ("", Lang::En),
            ("*", Lang::En),
            ("garbage;q=x, zh", Lang::ZhCn),
        ];
        for (header, want) in cases {
            assert_eq!(Lang::from_accept_language(header), want, "{header:?}");
        }
    }

    #[test]
    fn codes_round_trip_and_unknown_codes_are_refused() {
        for l in Lang::ALL {
            assert_eq!(Lang::parse(l.code()), Some(l));
        }
        assert_eq!(Lang::parse("zh-cn"), Some(Lang::ZhCn));
        assert_eq!(Lang::parse("fr"), None);
        assert_eq!(Lang::parse(""), None);
    }

    /// Every key is in every language file, with the same placeholders, and no text is empty.
    #[test]
    fn every_language_file_has_every_key_with_the_same_placeholders() {
        let files = [
            ("en", include_str!("../../locales/en.json")),
            ("zh-CN", include_str!("../../locales/zh-CN.json")),
        ];
        let parsed: Vec<(&str, std::collections::BTreeMap<String, String>)> = files
            .iter()
            .map(|(name, text)| (*name, serde_json::from_str(text).unwrap()))
            .collect();
        let placeholders = |s: &str| -> Vec<String> {
            let mut out: Vec<String> = s
                .split("{{")
                .skip(1)
                .filter_map(|rest| rest.split_once("}}").map(|(p, _)| p.trim().to_string()))
                .collect();
            out.sort();
            out
        };
        let (base_name, base) = &parsed[0];
        for (name, table) in &parsed[1..] {
            for (key, text) in base {
                let other = table.get(key).unwrap_or_else(|| {
                    panic!("locales/{name}.json lacks {key:?} (in {base_name})")
                });
                assert_eq!(
                    placeholders(text),
                    placeholders(other),
                    "{key}: placeholders differ"
                );
            }
            for key in table.keys() {
                assert!(
                    base.contains_key(key),
                    "locales/{name}.json has {key:?}, {base_name} does not"
                );
            }
        }
        for (name, table) in &parsed {
            for (key, text) in table {
                assert!(
                    !text.trim().is_empty(),
                    "locales/{name}.json: {key} is empty"
                );
            }
        }
        assert_eq!(Key::ALL.len(), base.len());
        for k in Key::ALL {
            assert_eq!(text(Lang::En, *k), base[k.name()]);
        }
    }

    #[test]
    fn placeholders_are_filled() {
        assert_eq!(
            text_with(Lang::En, Key::stock_left, &[("count", "3")]),
            "3 left"
        );
        assert_eq!(
            text_with(Lang::ZhCn, Key::stock_left, &[("count", "3")]),
            "剩余 3 件"
        );
    }
}

/// The console's texts (and the server's own messages): a table of their own, server-only, so
/// the shopper's WASM does not carry them.
#[cfg(feature = "ssr")]
pub mod console {
    use super::Lang;
    use leptos::prelude::use_context;

    include!(concat!(env!("OUT_DIR"), "/ops_i18n.rs"));

    /// The console's text for `key` in `lang`.
    pub fn t(lang: Lang, key: OpsKey) -> &'static str {
        match lang {
            Lang::En => OPS_EN[key as usize],
            Lang::ZhCn => OPS_ZH_CN[key as usize],
        }
    }

    /// The text with its `{{ name }}` placeholders filled in.
    pub fn t_with(lang: Lang, key: OpsKey, args: &[(&str, &str)]) -> String {
        let mut s = t(lang, key).to_string();
        for (name, value) in args {
            s = s.replace(&format!("{{{{ {name} }}}}"), value);
        }
        s
    }

    /// What a caller reads when a server function's arguments do not parse (`status` 400) or are
    /// too large (413), in the request's language; sets the response's status.
    pub fn bad_arguments(status: u16) -> String {
        let lang = use_context::<axum::http::request::Parts>()
            .map(|p| crate::app::i18n::from_headers(&p.headers))
            .unwrap_or_default();
        if let Some(opts) = use_context::<leptos_axum::ResponseOptions>() {
            opts.set_status(
                axum::http::StatusCode::from_u16(status)
                    .unwrap_or(axum::http::StatusCode::BAD_REQUEST),
            );
        }
        t(
            lang,
            if status == 413 {
                OpsKey::err_too_large
            } else {
                OpsKey::err_bad_arguments
            },
        )
        .to_string()
    }
}
