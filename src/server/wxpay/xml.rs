//! The flat `<xml>` documents of WeChat Pay v2 (reference §2), read defensively.
//!
//! Reading refuses anything a payment message never needs and an attacker might use: a DOCTYPE
//! (and so any entity definition), processing instructions, nested elements, entities other than
//! the five predefined ones, non-UTF-8 input and bodies over [`MAX_BODY`]. Unknown fields are kept:
//! a signature covers every field received.

use std::collections::BTreeMap;

use quick_xml::events::Event;
use quick_xml::Reader;

/// Largest document accepted anywhere (notify, API responses, sandbox requests). Real messages
/// are well under 4 KiB; `detail` may hold up to 6,000 characters of JSON.
pub const MAX_BODY: usize = 32 * 1024;

pub type Params = BTreeMap<String, String>;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("body is {0} bytes; the limit is {MAX_BODY}")]
    TooLarge(usize),
    #[error("body is empty")]
    Empty,
    #[error("body is not UTF-8")]
    NotUtf8,
    #[error("DOCTYPE declarations are refused")]
    Doctype,
    #[error("unsupported XML construct: {0}")]
    Unsupported(&'static str),
    #[error("entity reference &{0}; is not allowed")]
    Entity(String),
    #[error("root element must be <xml>, found <{0}>")]
    WrongRoot(String),
    #[error("element <{0}> is nested; only flat children of <xml> are allowed")]
    Nested(String),
    #[error("field <{0}> appears twice")]
    Duplicate(String),
    #[error("malformed XML: {0}")]
    Malformed(String),
}

/// Serialises params as `<xml><k><![CDATA[v]]></k>…</xml>`. Every value goes in CDATA so `&`
/// and `<` need no escaping; a `]]>` inside a value is split across two CDATA sections.
/// Empty values are left out: they are not signed and WeChat treats them as absent.
pub fn to_xml(params: &Params) -> String {
    let mut out = String::with_capacity(64 + params.len() * 48);
    out.push_str("<xml>");
    for (k, v) in params {
        if v.is_empty() {
            continue;
        }
        debug_assert!(is_field_name(k), "field names are ours and plain: {k}");
        out.push('<');
        out.push_str(k);
        out.push('>');
        out.push_str("<![CDATA[");
        out.push_str(&v.replace("]]>", "]]]]><![CDATA[>"));
        out.push_str("]]>");
        out.push_str("</");
        out.push_str(k);
        out.push('>');
    }
    out.push_str("</xml>");
    out
}

fn is_field_name(k: &str) -> bool {
    !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Parses a flat `<xml>` document into name → text.
pub fn parse(body: &[u8]) -> Result<Params, XmlError> {
    parse_rooted(body, "xml")
}

/// The same for a flat document under another root (the refund notify's `<root>`).
pub fn parse_rooted(body: &[u8], root: &str) -> Result<Params, XmlError> {
    if body.len() > MAX_BODY {
        return Err(XmlError::TooLarge(body.len()));
    }
    let text = std::str::from_utf8(body).map_err(|_| XmlError::NotUtf8)?;
    // WeChat's own clients tolerate a BOM (wechatpy decodes with utf-8-sig).
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    if text.trim().is_empty() {
        return Err(XmlError::Empty);
    }

    let mut reader = Reader::from_str(text);
    reader.config_mut().trim_text(false);
    reader.config_mut().check_end_names = true;

    let mut params = Params::new();
    let mut in_root = false;
    let mut root_done = false;
    let mut field: Option<(String, String)> = None;

    loop {
        let event = reader
            .read_event()
            .map_err(|e| XmlError::Malformed(e.to_string()))?;
        match event {
            Event::Decl(_) if !in_root && params.is_empty() => {}
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::PI(_) | Event::Decl(_) => {
                return Err(XmlError::Unsupported("processing instruction"))
            }
            Event::Comment(_) => {}
            Event::Start(start) => {
                let name = utf8(start.name().as_ref())?;
                if root_done {
                    return Err(XmlError::Malformed("content after </xml>".into()));
                }
                if !in_root {
                    if name != root {
                        return Err(XmlError::WrongRoot(name));
                    }
                    in_root = true;
                } else if field.is_some() {
                    return Err(XmlError::Nested(name));
                } else {
                    field = Some((name, String::new()));
                }
            }
            Event::Empty(start) => {
                let name = utf8(start.name().as_ref())?;
                if !in_root {
                    return Err(XmlError::WrongRoot(name));
                }
                if field.is_some() {
                    return Err(XmlError::Nested(name));
                }
                insert(&mut params, name, String::new())?;
            }
            Event::End(_) => {
                if let Some((name, value)) = field.take() {
                    insert(&mut params, name, value)?;
                } else if in_root {
                    in_root = false;
                    root_done = true;
                }
            }
            Event::Text(t) => {
                let s = t.decode().map_err(|e| XmlError::Malformed(e.to_string()))?;
                match field.as_mut() {
                    Some((_, value)) => value.push_str(&s),
                    None if s.trim().is_empty() => {}
                    None => return Err(XmlError::Malformed("text outside a field".into())),
                }
            }
            Event::CData(c) => {
                let s = c.decode().map_err(|e| XmlError::Malformed(e.to_string()))?;
                match field.as_mut() {
                    Some((_, value)) => value.push_str(&s),
                    None => return Err(XmlError::Malformed("CDATA outside a field".into())),
                }
            }
            Event::GeneralRef(r) => {
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(ch)) => ch.to_string(),
                    _ => {
                        let name = r.decode().map_err(|e| XmlError::Malformed(e.to_string()))?;
                        match quick_xml::escape::resolve_predefined_entity(&name) {
                            Some(s) => s.to_string(),
                            None => return Err(XmlError::Entity(name.into_owned())),
                        }
                    }
                };
                match field.as_mut() {
                    Some((_, value)) => value.push_str(&resolved),
                    None => return Err(XmlError::Malformed("reference outside a field".into())),
                }
            }
            Event::Eof => break,
        }
    }
    if in_root || !root_done {
        return Err(XmlError::Malformed("document ended before </xml>".into()));
    }
    Ok(params)
}

fn utf8(bytes: &[u8]) -> Result<String, XmlError> {
    std::str::from_utf8(bytes)
        .map(str::to_owned)
        .map_err(|_| XmlError::NotUtf8)
}

fn insert(params: &mut Params, name: String, value: String) -> Result<(), XmlError> {
    if params.contains_key(&name) {
        return Err(XmlError::Duplicate(name));
    }
    params.insert(name, value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(pairs: &[(&str, &str)]) -> Params {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn round_trip_with_chinese_and_markup_characters() {
        let original = p(&[
            ("body", "测试商品 — 奶茶 & <小> 蛋糕"),
            ("attach", "a]]>b]]>]]>c"),
            ("detail", r#"{"goods":[{"name":"<b>&amp;</b>"}]}"#),
            ("total_fee", "101"),
        ]);
        let xml = to_xml(&original);
        assert_eq!(parse(xml.as_bytes()).unwrap(), original);
    }

    #[test]
    fn empty_values_are_not_written() {
        let xml = to_xml(&p(&[("a", "1"), ("b", "")]));
        assert_eq!(xml, "<xml><a><![CDATA[1]]></a></xml>");
    }

    #[test]
    fn reads_escaped_text_declaration_whitespace_and_bom() {
        let doc = "\u{feff}<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<xml>\n  <body>A &amp; B &lt;c&gt; &#20013;&#x6587;</body>\n  <total_fee>1</total_fee>\n  <mixed>x<![CDATA[&y]]></mixed>\n  <empty/>\n</xml>\n";
        let parsed = parse(doc.as_bytes()).unwrap();
        assert_eq!(parsed["body"], "A & B <c> 中文");
        assert_eq!(parsed["total_fee"], "1");
        assert_eq!(parsed["mixed"], "x&y");
        assert_eq!(parsed["empty"], "");
    }

    #[test]
    fn keeps_unknown_fields() {
        let parsed = parse(b"<xml><rate_value>6.5</rate_value><x_new>1</x_new></xml>").unwrap();
        assert_eq!(parsed.len(), 2);
    }

    #[test]
    fn refuses_doctype_and_entity_expansion() {
        let xxe = br#"<?xml version="1.0"?><!DOCTYPE xml [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><xml><a>&xxe;</a></xml>"#;
        assert_eq!(parse(xxe), Err(XmlError::Doctype));
        let lol = br#"<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><xml><a>&lol2;</a></xml>"#;
        assert_eq!(parse(lol), Err(XmlError::Doctype));
        // Without a DOCTYPE an undeclared entity is still refused, never expanded or dropped.
        assert_eq!(
            parse(b"<xml><a>&xxe;</a></xml>"),
            Err(XmlError::Entity("xxe".into()))
        );
    }

    #[test]
    fn refuses_oversized_bodies() {
        let big = format!("<xml><a>{}</a></xml>", "x".repeat(MAX_BODY));
        assert_eq!(parse(big.as_bytes()), Err(XmlError::TooLarge(big.len())));
    }

    #[test]
    fn refuses_structure_it_does_not_expect() {
        assert_eq!(parse(b""), Err(XmlError::Empty));
        assert_eq!(
            parse(b"<root><a>1</a></root>"),
            Err(XmlError::WrongRoot("root".into()))
        );
        assert_eq!(
            parse(b"<xml><a><b>1</b></a></xml>"),
            Err(XmlError::Nested("b".into()))
        );
        assert_eq!(
            parse(b"<xml><a>1</a><a>2</a></xml>"),
            Err(XmlError::Duplicate("a".into()))
        );
        assert!(matches!(
            parse(b"<xml><a>1</a>"),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"<xml><a>1</b></xml>"),
            Err(XmlError::Malformed(_))
        ));
        assert!(matches!(
            parse(b"<xml><a>1</a></xml><xml></xml>"),
            Err(XmlError::Malformed(_))
        ));
        assert_eq!(
            parse(b"<xml><?php x?></xml>"),
            Err(XmlError::Unsupported("processing instruction"))
        );
        assert_eq!(parse(&[0x3c, 0x78, 0xff, 0xfe]), Err(XmlError::NotUtf8));
    }
}
