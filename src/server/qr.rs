//! QR codes as inline SVG, drawn on the server from WeChat's `code_url`.
//!
//! A payment code is a pure function of its `code_url`, and every checkout render of a pending
//! order needs it, so drawn payment codes are kept (most recently used first, a bounded number). Drawing is
//! our own: the `qrcode` crate's SVG writer gives each dark module a path of its own in pixel
//! units; here each row's runs of dark modules are one rectangle in module units, the same
//! picture in fewer bytes (the checkout page went from 13.5 KB to 8.8 KB).

use std::fmt::Write;
use std::sync::{Arc, Mutex, OnceLock};

use hashlink::LruCache;
use qrcode::{Color, EcLevel, QrCode};

/// Codes kept: a pending order's code is asked for by every render of its checkout; a few KB each.
const KEPT: usize = 2048;
/// Light modules around the code, as the standard asks.
const QUIET_ZONE: usize = 4;
/// The drawn size in CSS pixels (the page scales it to its box).
const SIZE_PX: usize = 232;

/// A payment code's `<svg>`, drawn once per `code_url` and kept (see [`svg`]).
pub fn payment_svg(code_url: &str) -> Option<Arc<str>> {
    static DRAWN: OnceLock<Mutex<LruCache<String, Arc<str>>>> = OnceLock::new();
    let drawn = DRAWN.get_or_init(|| Mutex::new(LruCache::new(KEPT)));
    if let Some(hit) = drawn.lock().unwrap().get(code_url) {
        return Some(hit.clone());
    }
    let svg: Arc<str> = svg(code_url)?.into();
    drawn
        .lock()
        .unwrap()
        .insert(code_url.to_string(), svg.clone());
    Some(svg)
}

/// An `<svg>` element (no XML declaration) for `data`, drawn now and not kept (a two-factor
/// secret's code must not outlive its page). The output contains only numbers and fixed
/// markup, never `data` itself, so it is safe to inline. Error correction M, as WeChat's own.
pub fn svg(data: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).ok()?;
    let n = code.width();
    let colors = code.to_colors();
    let side = n + 2 * QUIET_ZONE;
    let mut out = String::with_capacity(4096);
    write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{SIZE_PX}\" height=\"{SIZE_PX}\" \
         viewBox=\"0 0 {side} {side}\" shape-rendering=\"crispEdges\">\
         <rect width=\"{side}\" height=\"{side}\" fill=\"#ffffff\"/><path fill=\"#111111\" d=\""
    )
    .ok()?;
    for (y, row) in colors.chunks(n).enumerate() {
        let mut x = 0;
        while x < n {
            if row[x] == Color::Light {
                x += 1;
                continue;
            }
            let start = x;
            while x < n && row[x] == Color::Dark {
                x += 1;
            }
            let len = x - start;
            write!(
                out,
                "M{} {}h{len}v1h-{len}z",
                start + QUIET_ZONE,
                y + QUIET_ZONE
            )
            .ok()?;
        }
    }
    out.push_str("\"/></svg>");
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "weixin://wxpay/bizpayurl?pr=GkbUkg4";

    #[test]
    fn renders_an_svg_without_declaration() {
        let s = payment_svg(URL).unwrap();
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(!s.contains("weixin"));
    }

    /// The drawing, read back module by module, is exactly the code (and nothing in the quiet
    /// zone is dark).
    #[test]
    fn the_drawing_is_the_code() {
        for data in [
            URL,
            "weixin://wxpay/bizpayurl?pr=AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
        ] {
            let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).unwrap();
            let n = code.width();
            let side = n + 2 * QUIET_ZONE;
            let s = svg(data).unwrap();
            assert!(s.contains(&format!("viewBox=\"0 0 {side} {side}\"")));
            let d = s
                .split(" d=\"")
                .nth(1)
                .unwrap()
                .trim_end_matches("\"/></svg>");
            let mut dark = vec![false; side * side];
            for rect in d.split('z').filter(|r| !r.is_empty()) {
                let rest = rect.strip_prefix('M').unwrap();
                let (xy, rest) = rest.split_once('h').unwrap();
                let (x, y) = xy.split_once(' ').unwrap();
                let (len, tail) = rest.split_once("v1h-").unwrap();
                assert_eq!(len, tail, "each run is a closed 1-module-high rectangle");
                let (x, y, len): (usize, usize, usize) =
                    (x.parse().unwrap(), y.parse().unwrap(), len.parse().unwrap());
                for cell in &mut dark[y * side + x..y * side + x + len] {
                    assert!(!*cell, "runs do not overlap");
                    *cell = true;
                }
            }
            let colors = code.to_colors();
            for y in 0..side {
                for x in 0..side {
                    let inside = (QUIET_ZONE..QUIET_ZONE + n).contains(&x)
                        && (QUIET_ZONE..QUIET_ZONE + n).contains(&y);
                    let want =
                        inside && colors[(y - QUIET_ZONE) * n + (x - QUIET_ZONE)] == Color::Dark;
                    assert_eq!(dark[y * side + x], want, "module ({x}, {y}) of {data}");
                }
            }
        }
    }

    #[test]
    fn a_payment_code_is_drawn_once_and_kept() {
        let a = payment_svg(URL).unwrap();
        let b = payment_svg(URL).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        let other = payment_svg("weixin://wxpay/bizpayurl?pr=other").unwrap();
        assert!(!Arc::ptr_eq(&a, &other) && *other != *a);
        assert_eq!(svg(URL).as_deref(), Some(&*a), "the same drawing, uncached");
    }
}
