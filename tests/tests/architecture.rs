//! Architecture invariants that the build can check (ARCHITECTURE.md): only the
//! apiserver reaches the store, the sans-IO cores stay free of the simulator, and the
//! harness's modules import each other in one direction.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn read(relative: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    std::fs::read_to_string(root.join(relative)).unwrap_or_else(|e| panic!("reading {relative}: {e}"))
}

fn dependencies(manifest: &str) -> Vec<String> {
    let text = read(manifest);
    let deps = text.split("[dependencies]").nth(1).unwrap_or("");
    let deps = deps.split("\n[").next().unwrap_or("");
    deps.lines()
        .filter_map(|l| l.split(['=', '.']).next())
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .collect()
}

/// The example of testing one's own controller uses only what a user outside this
/// repository would have: the `kubesim` crate's public API (and serde for its own types),
/// never a kubesim crate's internals directly.
#[test]
fn the_example_operator_depends_on_kubesim_alone() {
    let deps = dependencies("examples/database-operator/Cargo.toml");
    assert_eq!(deps, ["kubesim", "serde"], "examples/database-operator depends on {deps:?}");
}

#[test]
fn controllers_and_api_do_not_depend_on_store() {
    for manifest in ["controllers/Cargo.toml", "api/Cargo.toml"] {
        let deps = dependencies(manifest);
        assert!(!deps.iter().any(|d| d == "store" || d == "apiserver"), "{manifest} depends on {deps:?}");
    }
}

#[test]
fn raft_mvcc_and_wal_know_nothing_of_the_simulator() {
    for dir in ["store/src/raft", "store/src/mvcc", "store/src/wal"] {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir);
        for entry in std::fs::read_dir(&root).unwrap() {
            let path = entry.unwrap().path();
            let text = std::fs::read_to_string(&path).unwrap();
            let code = text.lines().filter(|l| !l.trim_start().starts_with("//"));
            for line in code {
                for forbidden in ["madsim", "std::time", "HashMap", "thread::spawn"] {
                    assert!(!line.contains(forbidden), "{} uses {forbidden}: {line}", path.display());
                }
            }
        }
    }
}

/// The nemesis is a sans-IO core and a thin driver: only `driver.rs` touches madsim (its
/// clock, its tasks), and nothing in the nemesis draws a random number, since a plan holds
/// every choice it makes.
#[test]
fn the_nemesis_core_knows_nothing_of_the_simulator_and_draws_nothing() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../faults/src/nemesis");
    let mut files = 0;
    for entry in std::fs::read_dir(&root).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let code: Vec<&str> = text.lines().filter(|l| !l.trim_start().starts_with("//")).collect();
        let is_driver = path.file_name().is_some_and(|name| name == "driver.rs");
        for line in &code {
            for forbidden in ["rand::", "thread_rng", "random("] {
                assert!(!line.contains(forbidden), "{} draws a random number: {line}", path.display());
            }
            if !is_driver {
                for forbidden in ["madsim", "std::time", "HashMap", "thread::spawn"] {
                    assert!(!line.contains(forbidden), "{} uses {forbidden}: {line}", path.display());
                }
            }
        }
        files += 1;
    }
    assert!(files >= 5, "the nemesis's files moved: {}", root.display());
}

/// The `verdict` crate (history types, checkers) never reaches the simulator: it depends on
/// no madsim crate, and on the store and API crates only without their `runtime` feature,
/// the only feature that brings madsim in. So a checker is a pure function of a finished
/// history: the compiler refuses one that looks into a running simulation.
#[test]
fn the_verdict_crate_depends_on_no_simulator() {
    let deps = dependencies("verdict/Cargo.toml");
    for forbidden in ["madsim", "simtime", "sim", "faults", "apiserver", "controllers", "coverage"] {
        assert!(!deps.iter().any(|d| d == forbidden), "verdict depends on {forbidden}: {deps:?}");
    }
    let manifest = read("verdict/Cargo.toml");
    for data_crate in ["store", "api"] {
        let line = manifest
            .lines()
            .find(|l| l.starts_with(&format!("{data_crate} ")))
            .unwrap_or_else(|| panic!("verdict/Cargo.toml names no {data_crate} dependency"));
        assert!(line.contains("default-features = false"), "verdict takes {data_crate} with its runtime: {line}");
        let theirs = read(&format!("{data_crate}/Cargo.toml"));
        let madsim = theirs.lines().find(|l| l.starts_with("madsim")).expect("the crate's madsim line");
        assert!(madsim.contains("optional = true"), "{data_crate} needs madsim without its runtime: {madsim}");
        let default = theirs.lines().find(|l| l.starts_with("default = ")).expect("a default feature set");
        assert_eq!(default, "default = [\"runtime\"]", "{data_crate}'s features moved");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../verdict/src");
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            for line in text.lines().filter(|l| !l.trim_start().starts_with("//")) {
                assert!(!line.contains("madsim"), "{} uses madsim: {line}", path.display());
            }
        }
    }
}

/// Which modules of a crate each module refers to: module → the top-level modules named by
/// its `crate::<module>` paths (a folder such as `scenario/` is one module).
type ModuleGraph = BTreeMap<String, BTreeSet<String>>;

/// The harness's modules refer to each other in one direction (ARCHITECTURE.md: runner →
/// scenario → world → control plane → store cluster → operator → membership → nodes and
/// addresses): no module reaches, through others, back to itself. A circle is how a layer
/// comes to depend on what it serves (the control plane on a scenario, the store cluster
/// on the runner), so the test names the circle it finds.
#[test]
fn the_harness_modules_import_no_circle() {
    let graph = module_graph("sim/src");
    let runner = graph.get("runner").expect("sim/src/runner.rs is read");
    assert!(runner.contains("scenario"), "the reader missed `use crate::scenario` in runner.rs: {runner:?}");
    assert!(graph.len() >= 10, "sim's modules moved: {:?}", graph.keys().collect::<Vec<_>>());
    if let Some(circle) = find_circle(&graph) {
        panic!("sim's modules import each other in a circle: {}", circle.join(" -> "));
    }
}

/// The graph reader and the circle finder on small inputs: a circle is found and named, a
/// DAG passes, and references in comments and strings do not count.
#[test]
fn the_module_circle_finder_names_a_planted_circle() {
    let source = r#"
        //! Uses `crate::commented` only in prose.
        use crate::{alpha, beta::Thing, gamma::{self, Other}};
        use crate::delta::Item; // crate::trailing is a comment
        /* crate::blocked */
        fn f() -> char { let _ = "crate::quoted"; let _ = crate::epsilon::call(); '"' }
        fn g<'a>(x: &'a str) -> &'a str { crate::zeta::h(x) }
    "#;
    let expected: BTreeSet<String> =
        ["alpha", "beta", "gamma", "delta", "epsilon", "zeta"].into_iter().map(String::from).collect();
    assert_eq!(crate_references(source), expected);

    let graph = |edges: &[(&str, &str)]| {
        let mut graph = ModuleGraph::new();
        for (from, to) in edges {
            graph.entry(from.to_string()).or_default().insert(to.to_string());
            graph.entry(to.to_string()).or_default();
        }
        graph
    };
    let circle = find_circle(&graph(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]));
    assert_eq!(circle, Some(vec!["a".to_string(), "b".into(), "c".into(), "a".into()]));
    assert_eq!(find_circle(&graph(&[("a", "b"), ("b", "c"), ("a", "c"), ("d", "a")])), None);
}

/// The graph of `crate::` references among the modules of the crate whose sources are under
/// `src` (relative to the workspace root), self-references left out.
fn module_graph(src: &str) -> ModuleGraph {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(src);
    let mut graph = ModuleGraph::new();
    let mut stack = vec![root.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("reading {}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().is_none_or(|extension| extension != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).expect("under the source root");
            let first = relative.components().next().expect("a file name").as_os_str().to_string_lossy();
            let module = first.strip_suffix(".rs").unwrap_or(&first).to_string();
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
            let references = graph.entry(module.clone()).or_default();
            references.extend(crate_references(&text).into_iter().filter(|name| *name != module));
        }
    }
    graph
}

/// The top-level module names of every `crate::name` and `crate::{name, ...}` path in
/// `source`, outside comments, string and character literals.
fn crate_references(source: &str) -> BTreeSet<String> {
    let code: Vec<char> = code_only(source).chars().collect();
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let ident_at = |mut at: usize| {
        let start = at;
        while at < code.len() && is_ident(code[at]) {
            at += 1;
        }
        (code[start..at].iter().collect::<String>(), at)
    };
    let prefix: Vec<char> = "crate::".chars().collect();
    let mut names = BTreeSet::new();
    let mut at = 0;
    while at + prefix.len() <= code.len() {
        let starts_path = code[at..at + prefix.len()] == prefix[..]
            && (at == 0 || !(is_ident(code[at - 1]) || code[at - 1] == '$' || code[at - 1] == ':'));
        if !starts_path {
            at += 1;
            continue;
        }
        at += prefix.len();
        if code.get(at) != Some(&'{') {
            let (name, end) = ident_at(at);
            names.insert(name);
            at = end;
            continue;
        }
        // A group: the first segment of each path at its top level.
        let mut depth = 0;
        let mut expect_name = true;
        while at < code.len() {
            match code[at] {
                '{' => {
                    depth += 1;
                    expect_name = depth == 1;
                }
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ',' if depth == 1 => expect_name = true,
                c if expect_name && is_ident(c) => {
                    let (name, end) = ident_at(at);
                    if name != "self" {
                        names.insert(name);
                    }
                    expect_name = false;
                    at = end;
                    continue;
                }
                _ => {}
            }
            at += 1;
        }
    }
    names.retain(|name| !name.is_empty());
    names
}

/// `source` with its comments (line, block, doc) and the contents of its string and
/// character literals blanked out; lifetimes are kept as code.
fn code_only(source: &str) -> String {
    let chars: Vec<char> = source.chars().collect();
    let mut code = String::with_capacity(source.len());
    let mut at = 0;
    while at < chars.len() {
        let next = chars.get(at + 1).copied();
        match chars[at] {
            '/' if next == Some('/') => {
                while at < chars.len() && chars[at] != '\n' {
                    at += 1;
                }
            }
            '/' if next == Some('*') => {
                let mut depth = 0;
                while at < chars.len() {
                    if chars[at] == '/' && chars.get(at + 1) == Some(&'*') {
                        depth += 1;
                        at += 2;
                    } else if chars[at] == '*' && chars.get(at + 1) == Some(&'/') {
                        depth -= 1;
                        at += 2;
                        if depth == 0 {
                            break;
                        }
                    } else {
                        at += 1;
                    }
                }
                code.push(' ');
            }
            'r' if (next == Some('"') || next == Some('#'))
                && (at == 0 || !(chars[at - 1].is_alphanumeric() || chars[at - 1] == '_')) =>
            {
                // A raw string: r"..." or r#"..."#, with as many hashes at both ends.
                let mut hashes = 0;
                let mut open = at + 1;
                while chars.get(open) == Some(&'#') {
                    hashes += 1;
                    open += 1;
                }
                if chars.get(open) != Some(&'"') {
                    code.push('r');
                    at += 1;
                    continue;
                }
                at = open + 1;
                while at < chars.len() {
                    if chars[at] == '"' && (1..=hashes).all(|k| chars.get(at + k) == Some(&'#')) {
                        at += 1 + hashes;
                        break;
                    }
                    at += 1;
                }
                code.push_str("\"\"");
            }
            '"' => {
                at += 1;
                while at < chars.len() && chars[at] != '"' {
                    at += if chars[at] == '\\' { 2 } else { 1 };
                }
                at += 1;
                code.push_str("\"\"");
            }
            '\'' if next == Some('\\') => {
                // An escaped character literal: '\n', '\'', '\u{..}'.
                at += 2;
                while at < chars.len() && chars[at] != '\'' {
                    at += 1;
                }
                at += 1;
                code.push_str("' '");
            }
            '\'' if chars.get(at + 2) == Some(&'\'') => {
                at += 3;
                code.push_str("' '");
            }
            c => {
                code.push(c);
                at += 1;
            }
        }
    }
    code
}

/// A circle in `graph`, as the modules along it with the first repeated at the end, or
/// `None` when the graph is acyclic. Depth-first, in name order, so the answer is stable.
fn find_circle(graph: &ModuleGraph) -> Option<Vec<String>> {
    fn visit<'a>(
        module: &'a str,
        graph: &'a ModuleGraph,
        path: &mut Vec<&'a str>,
        done: &mut BTreeSet<&'a str>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|on_path| *on_path == module) {
            let mut circle: Vec<String> = path[start..].iter().map(|m| m.to_string()).collect();
            circle.push(module.to_string());
            return Some(circle);
        }
        if !done.insert(module) {
            return None;
        }
        path.push(module);
        for next in graph.get(module).into_iter().flatten() {
            if let Some(circle) = visit(next, graph, path, done) {
                return Some(circle);
            }
        }
        path.pop();
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}
