//! Generates the translation tables from `locales/<lang>.json` (flat objects of key → text):
//! one `Key` variant per key and one table per language, in `OUT_DIR/i18n.rs`. A key missing
//! from one language stops the build, naming it (a unit test checks the same).

use std::fmt::Write as _;
use std::path::Path;

/// The languages, in `Lang` order: (file stem, table name).
const LANGS: [(&str, &str); 2] = [("en", "EN"), ("zh-CN", "ZH_CN")];

fn main() {
    println!("cargo:rerun-if-changed=locales");
    // sqlx::migrate! embeds migrations/<engine>/: a new file there must rebuild the binary.
    println!("cargo:rerun-if-changed=migrations");
    // The shopper's texts (compiled into the WASM too) and the console's (server only, so the
    // shopper's bundle does not carry them).
    generate("locales/", "Key", "A text the shopper reads", "i18n.rs");
    generate(
        "locales/ops/",
        "OpsKey",
        "A text of the operator console",
        "ops_i18n.rs",
    );
}

/// One enum `name` of the keys in `<dir><lang>.json` and one table per language (`EN`, `ZH_CN`;
/// the console's `OPS_EN`, `OPS_ZH_CN`), written to `OUT_DIR/<out>`.
fn generate(dir: &str, name: &str, doc: &str, out_file: &str) {
    let prefix = if name == "Key" { "" } else { "OPS_" };
    let tables: Vec<Vec<(String, String)>> = LANGS
        .iter()
        .map(|(stem, _)| {
            let path = format!("{dir}{stem}.json");
            println!("cargo:rerun-if-changed={path}");
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
            parse_flat_json(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
        })
        .collect();
    let keys: Vec<&String> = tables[0].iter().map(|(k, _)| k).collect();
    for ((stem, _), table) in LANGS.iter().zip(&tables).skip(1) {
        for k in &keys {
            assert!(
                table.iter().any(|(t, _)| t == *k),
                "{dir}{stem}.json: key {k:?} is missing"
            );
        }
        for (k, _) in table {
            assert!(
                keys.contains(&k),
                "{dir}{stem}.json: key {k:?} is not in {dir}en.json"
            );
        }
    }
    let mut out = format!(
        "/// {doc}, by its key in `{dir}*.json`.\n\
         #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]\n#[allow(non_camel_case_types)]\npub enum {name} {{\n",
    );
    for k in &keys {
        writeln!(out, "    {k},").unwrap();
    }
    write!(
        out,
        "}}\n\nimpl {name} {{\n    pub const ALL: &'static [{name}] = &["
    )
    .unwrap();
    for k in &keys {
        write!(out, "{name}::{k}, ").unwrap();
    }
    writeln!(
        out,
        "];\n    pub fn name(self) -> &'static str {{\n        {prefix}NAMES[self as usize]\n    }}\n}}\n"
    )
    .unwrap();
    write!(out, "const {prefix}NAMES: [&str; {}] = [", keys.len()).unwrap();
    for k in &keys {
        write!(out, "{k:?}, ").unwrap();
    }
    out.push_str("];\n");
    for ((_, table_name), table) in LANGS.iter().zip(&tables) {
        write!(
            out,
            "\nconst {prefix}{table_name}: [&str; {}] = [",
            keys.len()
        )
        .unwrap();
        for k in &keys {
            let text = &table.iter().find(|(t, _)| t == *k).unwrap().1;
            write!(out, "{text:?}, ").unwrap();
        }
        out.push_str("];\n");
    }
    let dest = Path::new(&std::env::var("OUT_DIR").unwrap()).join(out_file);
    std::fs::write(dest, out).unwrap();
}

/// `{"key": "text", …}` with string values only (the escapes JSON allows in them).
fn parse_flat_json(s: &str) -> Result<Vec<(String, String)>, String> {
    let mut chars = s.chars().peekable();
    let mut out = Vec::new();
    let skip_ws = |c: &mut std::iter::Peekable<std::str::Chars>| {
        while c.peek().is_some_and(|c| c.is_whitespace()) {
            c.next();
        }
    };
    let string = |c: &mut std::iter::Peekable<std::str::Chars>| -> Result<String, String> {
        if c.next() != Some('"') {
            return Err("expected a string".into());
        }
        let mut v = String::new();
        loop {
            match c.next().ok_or("unterminated string")? {
                '"' => return Ok(v),
                '\\' => match c.next().ok_or("bad escape")? {
                    'n' => v.push('\n'),
                    't' => v.push('\t'),
                    'u' => {
                        let hex: String = (0..4).filter_map(|_| c.next()).collect();
                        let code = u32::from_str_radix(&hex, 16).map_err(|e| e.to_string())?;
                        v.push(char::from_u32(code).ok_or("bad \\u escape")?);
                    }
                    other => v.push(other),
                },
                ch => v.push(ch),
            }
        }
    };
    skip_ws(&mut chars);
    if chars.next() != Some('{') {
        return Err("expected an object".into());
    }
    loop {
        skip_ws(&mut chars);
        if chars.peek() == Some(&'}') {
            break;
        }
        let k = string(&mut chars)?;
        if !k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || k.starts_with(|c: char| c.is_ascii_digit())
        {
            return Err(format!("key {k:?}: letters, digits and _ only"));
        }
        if out.iter().any(|(o, _)| *o == k) {
            return Err(format!("key {k:?} twice"));
        }
        skip_ws(&mut chars);
        if chars.next() != Some(':') {
            return Err(format!("expected ':' after {k:?}"));
        }
        skip_ws(&mut chars);
        let v = string(&mut chars)?;
        out.push((k, v));
        skip_ws(&mut chars);
        match chars.next() {
            Some(',') => continue,
            Some('}') => break,
            _ => return Err("expected ',' or '}'".into()),
        }
    }
    Ok(out)
}
