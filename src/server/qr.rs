//! QR codes as inline SVG, drawn on the server from WeChat's `code_url`.

use qrcode::render::svg;
use qrcode::{EcLevel, QrCode};

/// An `<svg>` element (no XML declaration) for `data`. The output contains only numbers and
/// fixed markup, never `data` itself, so it is safe to inline.
pub fn svg(data: &str) -> Option<String> {
    let code = QrCode::with_error_correction_level(data.as_bytes(), EcLevel::M).ok()?;
    let out = code
        .render::<svg::Color>()
        .min_dimensions(232, 232)
        .quiet_zone(true)
        .dark_color(svg::Color("#111111"))
        .light_color(svg::Color("#ffffff"))
        .build();
    let start = out.find("<svg")?;
    Some(out[start..].to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn renders_an_svg_without_declaration() {
        let s = super::svg("weixin://wxpay/bizpayurl?pr=GkbUkg4").unwrap();
        assert!(s.starts_with("<svg") && s.ends_with("</svg>"));
        assert!(!s.contains("weixin"));
    }
}
