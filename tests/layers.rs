//! The layer check (docs/ARCHITECTURE.md, "Layers"): a module may name only modules of its own
//! layer and the layers below it (the order flows not even each other), and the server's
//! modules never name each other in a circle.
//! It reads the sources as text: every `crate::server::<m>` / `crate::app::<m>` path and every
//! `super::` path that leaves the module's own folder.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Top to bottom. A module is named by its first path segment under `server` (or `app::<m>`).
const LAYERS: &[(&str, &[&str])] = &[
    // The composition root: it mounts the pages, so it stands above them.
    (
        "wiring",
        &["server::cli", "server::startup", "server::http"],
    ),
    ("pages and server functions", &["app"]),
    // Inside `orders`: the flows beside each other, then the steps, each only above the next.
    (
        "flows",
        &[
            "server::orders::place",
            "server::orders::cancel",
            "server::orders::consume",
            "server::orders::sweep",
            "server::orders::timeout",
            "server::orders::query",
            "server::orders::reconcile",
        ],
    ),
    ("the refund step", &["server::orders::refund"]),
    ("the recheck step", &["server::orders::recheck"]),
    ("the QR step", &["server::orders::qr"]),
    ("the close step", &["server::orders::close"]),
    (
        "apply (transitions + the after-commit hook)",
        &["server::orders::apply"],
    ),
    ("the seams the flows see (Ctx)", &["server::state"]),
    ("decide (pure)", &["server::orders::decide"]),
    (
        "seams",
        &[
            "server::store",
            "server::bus",
            "server::schedule",
            "server::cache",
            "server::wxpay",
            "server::amqp",
            "server::redis_conn",
            "server::sandbox",
            "server::config",
            "server::jobs",
            "server::qr",
            // Beside the client it serves (the client notes its calls there).
            "server::oplog",
        ],
    ),
    (
        "helpers",
        &[
            "server::domain",
            "server::support",
            "app::types",
            "app::i18n",
        ],
    ),
];

fn layer_of(module: &str) -> Option<usize> {
    // The most specific prefix wins (`app::types` before `app`).
    let mut best: Option<(usize, usize)> = None;
    for (i, (_, mods)) in LAYERS.iter().enumerate() {
        for m in *mods {
            if module == *m || module.starts_with(&format!("{m}::")) {
                let len = m.len();
                if best.is_none_or(|(_, l)| len > l) {
                    best = Some((i, len));
                }
            }
        }
    }
    best.map(|(i, _)| i)
}

/// `src/server/orders/place.rs` → `server::orders::place`; `mod.rs` names its folder.
fn module_of(root: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    parts.join("::")
}

/// The top module (`server::store`, `server::orders::place`, `app::types`) a full path names.
fn top(path: &str) -> String {
    let segs: Vec<&str> = path.split("::").collect();
    match segs.as_slice() {
        ["server", "orders", m, ..] => format!("server::orders::{m}"),
        ["server", m, ..] => format!("server::{m}"),
        ["app", m, ..] if matches!(*m, "types" | "i18n") => format!("app::{m}"),
        ["app", ..] => "app".into(),
        _ => path.into(),
    }
}

fn rs_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            rs_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The code of a file without its comments (line comments; doc comments included) and without
/// its unit tests (a `super::` inside an inline `mod tests` names the file's own module).
fn code(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) if !l[..i].contains('"') => &l[..i],
            _ => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every module a file names: `crate::server::x::…`, `crate::app::x`, and `super::…` paths
/// resolved against the file's own module.
fn named(module: &str, text: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let text = code(text);
    let bytes = text.as_bytes();
    for (i, _) in text.match_indices("crate::") {
        if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
            continue;
        }
        let after = &text[i + "crate::".len()..];
        let rest: String = after
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
            .collect();
        if !(rest.starts_with("server") || rest.starts_with("app")) {
            continue;
        }
        let base = rest.trim_end_matches(':');
        // `crate::server::{orders, store::Store}`: every name in the group.
        if rest.ends_with("::") && after[rest.len()..].starts_with('{') {
            let group = &after[rest.len() + 1..];
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for name in group.split(',') {
                let name: String = name
                    .trim()
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_' || *c == ':')
                    .collect();
                if !name.is_empty() && name != "self" {
                    out.insert(top(&format!("{base}::{name}")));
                }
            }
        } else {
            out.insert(top(base));
        }
    }
    // `super::super::x` from server::a::b names server::x.
    let own: Vec<&str> = module.split("::").collect();
    for (i, _) in text.match_indices("super::") {
        if i > 0
            && (bytes[i - 1].is_ascii_alphanumeric()
                || bytes[i - 1] == b'_'
                || bytes[i - 1] == b':')
        {
            continue;
        }
        let mut rest = &text[i..];
        let mut up = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            up += 1;
            rest = r;
        }
        let name: String = rest
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        // A file's `super` is its parent module (for mod.rs, the folder's parent).
        if up >= own.len() || name.is_empty() {
            continue;
        }
        let base = &own[..own.len() - up];
        let full = format!("{}::{name}", base.join("::"));
        out.insert(top(&full));
    }
    out
}

#[test]
fn no_module_names_a_layer_above_it_and_the_server_has_no_circles() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rs_files(&root.join("server"), &mut files);
    rs_files(&root.join("app"), &mut files);
    files.sort();
    let mut wrong = Vec::new();
    let mut unplaced = Vec::new();
    let mut edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let module = module_of(&root, file);
        let from = top(&module);
        if from == "server" || from == "server::orders" {
            continue; // the module lists (server/mod.rs, orders/mod.rs)
        }
        let Some(at) = layer_of(&from) else {
            unplaced.push(from);
            continue;
        };
        let text = std::fs::read_to_string(file).unwrap();
        for to in named(&module, &text) {
            if to == from || to == "server" || to == "server::orders" {
                continue;
            }
            let Some(layer) = layer_of(&to) else {
                unplaced.push(to);
                continue;
            };
            // Flows sit beside each other: none of them calls another.
            if layer == at && LAYERS[at].0 == "flows" {
                wrong.push(format!(
                    "{} (a flow) names {to} (another flow)",
                    file.strip_prefix(&root).unwrap().display()
                ));
            }
            if layer < at {
                wrong.push(format!(
                    "{} ({}) names {to} ({})",
                    file.strip_prefix(&root).unwrap().display(),
                    LAYERS[at].0,
                    LAYERS[layer].0
                ));
            }
            if from.starts_with("server::") && to.starts_with("server::") {
                edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    unplaced.sort();
    unplaced.dedup();
    assert!(
        unplaced.is_empty(),
        "modules with no layer in tests/layers.rs: {unplaced:?}"
    );
    assert!(
        wrong.is_empty(),
        "imports that run up a layer:\n{}",
        wrong.join("\n")
    );
    // Circles among the server's modules (depth-first search for a back edge).
    fn visit(
        n: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == n) {
            let mut circle = path[i..].to_vec();
            circle.push(n.to_string());
            return Some(circle);
        }
        if done.contains(n) {
            return None;
        }
        path.push(n.to_string());
        for next in edges.get(n).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in edges.keys() {
        if let Some(circle) = visit(n, &edges, &mut Vec::new(), &mut done) {
            panic!("modules in a circle: {}", circle.join(" → "));
        }
    }
}

#[test]
fn the_check_sees_what_it_should() {
    let found = named(
        "server::store::sqlite::orders",
        "use crate::server::orders::place::X;\nuse super::super::pool::retrying;\n// crate::server::http in a comment\nlet x = crate::app::types::OrderStatus::Paid;\nuse crate::server::{cache, bus::PayResults};",
    );
    assert_eq!(
        found.into_iter().collect::<Vec<_>>(),
        [
            "app::types",
            "server::bus",
            "server::cache",
            "server::orders::place",
            "server::store"
        ]
    );
    let at = |m| layer_of(m).unwrap();
    assert!(at("app") < at("server::orders::sweep"));
    assert!(at("server::orders::sweep") < at("server::orders::qr"));
    assert!(at("server::orders::qr") < at("server::orders::close"));
    assert!(at("server::orders::apply") < at("server::state"));
    assert!(at("server::orders::decide") < at("server::store"));
    assert_eq!(
        at("server::orders::place"),
        at("server::orders::cancel"),
        "flows beside each other"
    );
    assert!(at("server::store") < at("app::types"));
}
