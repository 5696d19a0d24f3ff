//! Architecture invariants that the build can check (ARCHITECTURE.md): only the
//! apiserver reaches the store, and the sans-IO cores stay free of the simulator.

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
