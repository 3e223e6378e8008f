//! The house rules of `ARCHITECTURE.md`, checked: the modules of `src/` import each other
//! without a cycle, and every import between rooms points down the layer list written in that
//! document (a room's handlers, listed there, may import any room below the top). The imports are
//! read from the source text (`crate::…`, `use crate::{…}`, `super::…`), tests excluded.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Module path (`""` for the crate root, `sessions::store`, …) → source text without tests
/// and comments.
fn modules() -> BTreeMap<String, String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, String>) {
        for entry in std::fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                walk(&path, root, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let rel = path.strip_prefix(root).expect("under src/").with_extension("");
                let mut parts: Vec<String> = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
                if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
                    parts.pop();
                }
                let text = std::fs::read_to_string(&path).expect("a source file");
                out.insert(parts.join("::"), strip(&text));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut out = BTreeMap::new();
    walk(&root, &root, &mut out);
    out.remove("architecture"); // this checker: its examples are not imports
    out
}

/// The code of a file without its `#[cfg(test)]` tests and without comments.
fn strip(text: &str) -> String {
    let code = text.split("#[cfg(test)]\nmod ").next().unwrap_or(text);
    code.lines().map(|l| l.split("//").next().unwrap_or("")).collect::<Vec<_>>().join("\n")
}

fn ident_len(s: &str) -> usize {
    s.bytes().take_while(|b| b.is_ascii_alphanumeric() || *b == b'_').count()
}

/// The paths a `use` group names: `{a::b, c::{d, e}, f as g}` → `a::b`, `c::d`, `c::e`, `f`.
fn group_paths(prefix: &str, group: &str, out: &mut Vec<String>) {
    let (mut depth, mut start) = (0, 0);
    let bytes = group.as_bytes();
    for i in 0..=bytes.len() {
        let end = i == bytes.len();
        match if end { b',' } else { bytes[i] } {
            b'{' => depth += 1,
            b'}' => depth -= 1,
            b',' if depth == 0 => {
                let item = group[start..i].trim();
                start = i + 1;
                if let Some(open) = item.find('{') {
                    let head = item[..open].trim_end_matches("::");
                    let inner = &item[open + 1..item.rfind('}').unwrap_or(item.len())];
                    group_paths(&join(prefix, head), inner, out);
                    out.push(join(prefix, head));
                } else if !item.is_empty() {
                    let item = item.split(" as ").next().unwrap_or(item).trim_end_matches("::*");
                    out.push(join(prefix, item));
                }
            }
            _ => {}
        }
    }
}

fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty() || b == "self") {
        (_, true) => a.to_string(),
        (true, false) => b.to_string(),
        (false, false) => format!("{a}::{b}"),
    }
}

/// The paths (from the crate root) that module `name`'s code names.
fn paths(name: &str, code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let parent = |levels: usize| -> Option<String> {
        let mut segs: Vec<&str> = if name.is_empty() { vec![] } else { name.split("::").collect() };
        for _ in 0..levels {
            segs.pop()?;
        }
        Some(segs.join("::"))
    };
    for (at, _) in code.match_indices("crate::").chain(code.match_indices("super::")) {
        if at > 0 && (code.as_bytes()[at - 1].is_ascii_alphanumeric() || code.as_bytes()[at - 1] == b'_') {
            continue;
        }
        let mut rest = &code[at..];
        let base = if rest.starts_with("crate::") {
            rest = &rest[7..];
            String::new()
        } else {
            let mut levels = 0;
            while let Some(r) = rest.strip_prefix("super::") {
                rest = r;
                levels += 1;
            }
            if at >= 6 && &code[at - 6..at] == "super::" {
                continue; // counted from the first `super::`
            }
            match parent(levels) {
                Some(p) => p,
                None => continue,
            }
        };
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find("};").unwrap_or(group.len());
            group_paths(&base, &group[..end], &mut out);
            continue;
        }
        let mut path = base;
        loop {
            let n = ident_len(rest);
            if n == 0 {
                break;
            }
            path = join(&path, &rest[..n]);
            rest = &rest[n..];
            match rest.strip_prefix("::") {
                Some(r) if r.starts_with('{') => {
                    let end = r.find('}').unwrap_or(r.len());
                    group_paths(&path, &r[1..end], &mut out);
                    break;
                }
                Some(r) => rest = r,
                None => break,
            }
        }
        out.push(path);
    }
    out
}

/// The module a path lands in: the longest listed prefix (the root itself does not count).
fn resolve<'a>(path: &str, names: &'a BTreeSet<String>) -> Option<&'a str> {
    let segs: Vec<&str> = path.split("::").collect();
    (1..=segs.len()).rev().map(|n| segs[..n].join("::")).find_map(|p| names.get(&p).map(String::as_str))
}

fn room(module: &str) -> &str {
    if module.is_empty() {
        "lib"
    } else {
        module.split("::").next().unwrap_or(module)
    }
}

/// The layer list of ARCHITECTURE.md: rooms top first, the top rooms, and the handlers.
fn layers() -> (Vec<String>, BTreeSet<String>, BTreeSet<String>) {
    let doc = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("ARCHITECTURE.md"))
        .expect("ARCHITECTURE.md is readable");
    let (mut order, mut top, mut handlers) = (Vec::new(), BTreeSet::new(), BTreeSet::new());
    for line in doc.lines() {
        let Some((label, names)) = line.split_once(':') else { continue };
        let names = names.split_whitespace().map(str::to_string);
        match label.trim() {
            "top" => {
                let names: Vec<String> = names.collect();
                top.extend(names.iter().cloned());
                order.extend(names);
            }
            "features" | "foundation" => order.extend(names),
            "handlers" => handlers.extend(names),
            _ => {}
        }
    }
    (order, top, handlers)
}

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let modules = modules();
    let names: BTreeSet<String> = modules.keys().filter(|k| !k.is_empty()).cloned().collect();
    modules
        .iter()
        .map(|(name, code)| {
            let targets = paths(name, code)
                .iter()
                .filter_map(|p| resolve(p, &names))
                .filter(|t| *t != name)
                // A module's own children are its business (`mod.rs` naming what it declares).
                .filter(|t| name.is_empty() || !t.starts_with(&format!("{name}::")))
                .map(str::to_string)
                .collect();
            (name.clone(), targets)
        })
        .collect()
}

#[test]
fn modules_import_each_other_without_a_cycle() {
    let edges = edges();
    // Depth-first search with colours; a grey target is a cycle.
    fn visit<'a>(
        n: &'a str,
        edges: &'a BTreeMap<String, BTreeSet<String>>,
        colour: &mut BTreeMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
    ) -> Option<Vec<String>> {
        colour.insert(n, 1);
        stack.push(n);
        for t in edges.get(n).into_iter().flatten() {
            match colour.get(t.as_str()) {
                Some(1) => {
                    let from = stack.iter().position(|s| *s == t.as_str()).unwrap_or(0);
                    return Some(stack[from..].iter().map(|s| s.to_string()).chain([t.clone()]).collect());
                }
                Some(_) => {}
                None => {
                    if let Some(c) = visit(t, edges, colour, stack) {
                        return Some(c);
                    }
                }
            }
        }
        stack.pop();
        colour.insert(n, 2);
        None
    }
    let mut colour = BTreeMap::new();
    for n in edges.keys() {
        if !colour.contains_key(n.as_str()) {
            if let Some(cycle) = visit(n, &edges, &mut colour, &mut Vec::new()) {
                panic!("import cycle: {}", cycle.join(" → "));
            }
        }
    }
}

#[test]
fn imports_between_rooms_point_down_the_layers() {
    let (order, top, handlers) = layers();
    let edges = edges();
    let pos = |r: &str| order.iter().position(|o| o == r);
    for module in edges.keys() {
        assert!(pos(room(module)).is_some(), "room `{}` is not in ARCHITECTURE.md's layer list", room(module));
    }
    for h in &handlers {
        assert!(edges.contains_key(h), "handler `{h}` of ARCHITECTURE.md is not a module");
    }
    let mut upward = Vec::new();
    for (from, targets) in &edges {
        for to in targets {
            let (a, b) = (room(from), room(to));
            if a == b {
                continue;
            }
            let allowed = if handlers.contains(from) { !top.contains(b) } else { pos(b) > pos(a) };
            if !allowed {
                upward.push(format!("{from} → {to}"));
            }
        }
    }
    assert!(upward.is_empty(), "imports against the layers of ARCHITECTURE.md:\n{}", upward.join("\n"));
}

#[test]
fn the_import_reader_reads_groups_and_super() {
    let code = "use crate::{http::{ApiError, Ctx}, time::iso, db::Query as _};\nuse super::store::find;\nlet x = crate::jobs::send(env);";
    let found = paths("channels::routes", code);
    for p in ["http::ApiError", "http::Ctx", "time::iso", "db::Query", "channels::store::find", "jobs::send"] {
        assert!(found.iter().any(|f| f == p), "{p} in {found:?}");
    }
    assert_eq!(paths("sessions", "super::x::y"), vec!["x::y".to_string()]);
}
