//! The import graph of `src/`, read from its `use` lines and `crate::`/`super::` paths:
//! no module below the HTTP edge (domain, config, context, store, services, embed,
//! llm, metrics, telemetry) imports `http` or `app`, and no two modules import each
//! other, directly or round a longer cycle (a module and its own submodules excepted).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

type Module = Vec<String>;

/// Layers that must not import the HTTP edge or start-up.
const BELOW_THE_EDGE: [&str; 9] = [
    "domain",
    "config",
    "context",
    "store",
    "services",
    "embed",
    "llm",
    "metrics",
    "telemetry",
];
const EDGE: [&str; 2] = ["http", "app"];

fn modules(root: &Path, dir: &Path, out: &mut BTreeMap<Module, String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            modules(root, &path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let relative = path.strip_prefix(root).unwrap().with_extension("");
            let mut module: Module = relative
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect();
            match module.last().map(String::as_str) {
                // The binary is its own crate; it reaches the library by name.
                Some("main") if module.len() == 1 => continue,
                Some("mod" | "lib") => {
                    module.pop();
                }
                _ => {}
            }
            out.insert(module, std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// The code without comments, string and char literals, and test modules.
fn code(source: &str) -> String {
    let source = source.split("#[cfg(test)]").next().unwrap_or_default();
    let chars: Vec<char> = source.chars().collect();
    let (mut out, mut i) = (String::new(), 0);
    let at = |i: usize, s: &str| {
        chars
            .get(i..)
            .is_some_and(|rest| rest.iter().take(s.len()).copied().eq(s.chars()))
    };
    while i < chars.len() {
        let c = chars[i];
        let after_word = i > 0 && (chars[i - 1].is_alphanumeric() || chars[i - 1] == '_');
        if at(i, "//") {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if at(i, "/*") {
            i += 2;
            while i < chars.len() && !at(i, "*/") {
                i += 1;
            }
            i += 2;
        } else if c == 'r' && !after_word && (at(i + 1, "\"") || at(i + 1, "#")) {
            // A raw string: r"…", r#"…"#, …
            let hashes = chars[i + 1..].iter().take_while(|&&c| c == '#').count();
            let close: String = std::iter::once('"')
                .chain("#".repeat(hashes).chars())
                .collect();
            i += 2 + hashes;
            while i < chars.len() && !at(i, &close) {
                i += 1;
            }
            i += close.len();
            out.push_str("\"\"");
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if c == '\''
            && (at(i + 2, "'") || (at(i + 1, "\\") && chars[i + 2..].contains(&'\'')))
        {
            // A char literal ('x', '\n', '\u{..}'), not a lifetime.
            i += 1;
            while i < chars.len() && chars[i] != '\'' {
                i += if chars[i] == '\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

/// Every path a `use` tree names: `a::{b, c::{d}}` gives `a::b` and `a::c::d`.
fn use_paths(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree = tree.trim();
    if let Some(open) = tree.find('{') {
        let head = tree[..open].trim().trim_end_matches("::");
        let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
        let prefix = [prefix, head]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join("::");
        let (mut depth, mut start) = (0, 0);
        for (i, c) in inner.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    use_paths(&prefix, &inner[start..i], out);
                    start = i + 1;
                }
                _ => {}
            }
        }
        use_paths(&prefix, &inner[start..], out);
    } else if !tree.is_empty() {
        let path = tree.split(" as ").next().unwrap_or(tree).trim();
        out.push(if prefix.is_empty() {
            path.to_owned()
        } else {
            format!("{prefix}::{path}")
        });
    }
}

/// The paths starting at `crate`, `super` or `self` in `code`.
fn paths(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    for statement in code.split(';') {
        if let Some(at) = statement.find("use ") {
            let before = &statement[..at];
            if before.trim().is_empty()
                || before.trim_end().ends_with("pub")
                || before.ends_with(')')
            {
                use_paths("", &statement[at + 4..], &mut out);
            }
        }
    }
    let bytes: Vec<char> = code.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        let word_start = i == 0 || !(bytes[i - 1].is_alphanumeric() || bytes[i - 1] == '_');
        let rest: String = bytes[i..bytes.len().min(i + 7)].iter().collect();
        if word_start && (rest.starts_with("crate::") || rest.starts_with("super::")) {
            let mut j = i;
            while j < bytes.len()
                && (bytes[j].is_alphanumeric() || bytes[j] == '_' || bytes[j] == ':')
            {
                j += 1;
            }
            out.push(bytes[i..j].iter().collect());
            i = j;
        } else {
            i += 1;
        }
    }
    out
}

/// The module `path` (as written in `from`) lands in: its longest known prefix.
fn resolve(from: &Module, path: &str, known: &BTreeMap<Module, String>) -> Option<Module> {
    let mut segments = path.split("::").filter(|s| !s.is_empty()).peekable();
    let mut full: Module = match segments.peek().copied() {
        Some("crate") => {
            segments.next();
            Vec::new()
        }
        Some("super") => {
            let mut base = from.clone();
            while segments.peek() == Some(&"super") {
                segments.next();
                base.pop();
            }
            base
        }
        Some("self") => {
            segments.next();
            from.clone()
        }
        _ => return None,
    };
    full.extend(segments.map(str::to_owned));
    (0..=full.len())
        .rev()
        .map(|n| full[..n].to_vec())
        .find(|m| known.contains_key(m))
}

fn graph() -> BTreeMap<Module, BTreeSet<Module>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut known = BTreeMap::new();
    modules(&root, &root, &mut known);
    let mut edges: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (module, source) in &known {
        for path in paths(&code(source)) {
            let Some(target) = resolve(module, &path, &known) else {
                continue;
            };
            // A module and its own submodules are one unit.
            if target.starts_with(module) || module.starts_with(&target) {
                continue;
            }
            edges.entry(module.clone()).or_default().insert(target);
        }
    }
    edges
}

fn name(m: &Module) -> String {
    if m.is_empty() {
        "crate".into()
    } else {
        m.join("::")
    }
}

/// Strongly connected components of more than one module (Tarjan).
fn cycles(edges: &BTreeMap<Module, BTreeSet<Module>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<Module, BTreeSet<Module>>,
        index: BTreeMap<&'a Module, usize>,
        low: BTreeMap<&'a Module, usize>,
        stack: Vec<&'a Module>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Module) {
        let n = s.index.len();
        s.index.insert(v, n);
        s.low.insert(v, n);
        s.stack.push(v);
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                component.push(name(w));
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn no_layer_below_the_http_edge_imports_it() {
    let edges = graph();
    let upward: Vec<String> = edges
        .iter()
        .filter(|(from, _)| {
            from.first()
                .is_some_and(|l| BELOW_THE_EDGE.contains(&l.as_str()))
        })
        .flat_map(|(from, to)| {
            to.iter()
                .filter(|t| t.first().is_some_and(|l| EDGE.contains(&l.as_str())))
                .map(move |t| format!("{} -> {}", name(from), name(t)))
        })
        .collect();
    assert!(
        upward.is_empty(),
        "imports up to the HTTP edge: {upward:#?}"
    );
    // The walk sees real imports: services use the store layer.
    assert!(
        edges[&vec!["services".to_owned(), "vectors".to_owned()]]
            .contains(&vec!["store".to_owned()])
    );
}

#[test]
fn the_module_graph_has_no_cycle() {
    let found = cycles(&graph());
    assert!(found.is_empty(), "import cycles: {found:#?}");
}

#[test]
fn the_layers_form_no_cycle() {
    let mut layers: BTreeMap<Module, BTreeSet<Module>> = BTreeMap::new();
    for (from, to) in graph() {
        let layer = |m: &Module| m.first().cloned().into_iter().collect::<Module>();
        for t in &to {
            if layer(&from) != layer(t) {
                layers.entry(layer(&from)).or_default().insert(layer(t));
            }
        }
    }
    let found = cycles(&layers);
    assert!(
        found.is_empty(),
        "layers that import each other: {found:#?}"
    );
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let m = |s: &str| s.split("::").map(str::to_owned).collect::<Module>();
    let edges = BTreeMap::from([
        (m("a"), BTreeSet::from([m("b")])),
        (m("b"), BTreeSet::from([m("c")])),
        (m("c"), BTreeSet::from([m("a")])),
    ]);
    assert_eq!(cycles(&edges), vec![vec!["a", "b", "c"]]);
}
