//! Coverage points: named states of the system under test (or of the harness) that a
//! campaign should reach, like FoundationDB's `CODE_PROBE` and Antithesis' "sometimes"
//! assertions. A point says "we got here", never "this must hold": a campaign's report
//! counts, for every point, the seeds that reached it, and names the points no seed
//! reached (blind spots: paths whose bugs no seed could show).
//!
//! ```
//! coverage::reached!("store.snapshot.installed");
//! ```
//!
//! Every point is declared once, in [`POINTS`] (name, description, the campaign menu that
//! must reach it); `reached!` with a name missing there panics in debug builds, and a test
//! of this crate checks that every declared point is marked somewhere in the workspace and
//! every marked name is declared.
//!
//! Recording is a per-thread counter: a kubesim seed runs on a thread of its own (madsim
//! runs the whole simulation on it), so the runner [`reset`]s the counters before the seed
//! and [`take`]s them after. Recording never changes what the system does, and it is not
//! part of a seed's history or trace hash: a point added or moved changes no trace hash.

use std::cell::RefCell;
use std::collections::BTreeMap;

mod points;

pub use points::POINTS;

/// Which campaign must reach a point for CI to pass (`kubesim merge --require-coverage MENU`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Required {
    /// The default campaign (`deploy-nginx`, `--faults all`).
    Default,
    /// The disk-loss campaign (`--faults disk-loss,disk-loss-majority,disk-loss-all,snapshot-corruption`).
    DiskLoss,
    /// No campaign is required to reach it (rare by nature, or only reachable under a
    /// planted bug); its description says why.
    No,
}

impl Required {
    /// The name `--require` takes.
    pub fn name(self) -> &'static str {
        match self {
            Required::Default => "default",
            Required::DiskLoss => "disk-loss",
            Required::No => "none",
        }
    }

    /// Parses a `--require` value.
    pub fn parse(name: &str) -> Option<Self> {
        [Required::Default, Required::DiskLoss, Required::No].into_iter().find(|r| r.name() == name)
    }
}

/// One declared coverage point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Point {
    /// Dotted name, `<component>.<area>.<state>`, as `reached!` names it.
    pub name: &'static str,
    /// What reaching it means, for the report.
    pub description: &'static str,
    /// The campaign that must reach it.
    pub required: Required,
}

/// The number of declared points.
pub const N_POINTS: usize = POINTS.len();

thread_local! {
    static COUNTS: RefCell<[u64; N_POINTS]> = const { RefCell::new([0; N_POINTS]) };
}

/// The position of `name` in [`POINTS`] (which is sorted by name).
pub fn index_of(name: &str) -> Option<usize> {
    POINTS.binary_search_by(|point| point.name.cmp(name)).ok()
}

/// The declared point named `name`.
pub fn point(name: &str) -> Option<&'static Point> {
    index_of(name).map(|i| &POINTS[i])
}

/// Records that this thread reached the point `name`. Use [`reached!`].
///
/// # Panics
/// In debug builds, if `name` is not declared in [`POINTS`] (release builds ignore it).
#[inline]
pub fn reach(name: &'static str) {
    match index_of(name) {
        Some(i) => COUNTS.with(|counts| counts.borrow_mut()[i] += 1),
        None => debug_assert!(false, "coverage point {name:?} is not declared in coverage::POINTS"),
    }
}

/// Marks a coverage point reached: `coverage::reached!("store.snapshot.installed")`.
#[macro_export]
macro_rules! reached {
    ($name:literal) => {
        $crate::reach($name)
    };
}

/// Forgets every point this thread reached (the runner calls it before a seed).
pub fn reset() {
    COUNTS.with(|counts| *counts.borrow_mut() = [0; N_POINTS]);
}

/// The points this thread reached since the last [`reset`], with how many times each,
/// and resets the counters.
pub fn take() -> BTreeMap<String, u64> {
    COUNTS.with(|counts| {
        let mut counts = counts.borrow_mut();
        let reached = POINTS
            .iter()
            .zip(counts.iter())
            .filter(|(_, &n)| n > 0)
            .map(|(point, &n)| (point.name.to_string(), n))
            .collect();
        *counts = [0; N_POINTS];
        reached
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_sorted_unique_and_described() {
        for pair in POINTS.windows(2) {
            assert!(
                pair[0].name < pair[1].name,
                "POINTS must be sorted by name: {} then {}",
                pair[0].name,
                pair[1].name
            );
        }
        for point in POINTS {
            assert!(!point.description.is_empty(), "{} has no description", point.name);
            assert!(point.name.split('.').count() >= 3, "{}: expected <component>.<area>.<state>", point.name);
            assert!(
                point.name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-'),
                "{}: lowercase, digits, dots and dashes only",
                point.name
            );
        }
    }

    #[test]
    fn counts_are_per_thread_and_taken_once() {
        reset();
        reach(POINTS[0].name);
        reach(POINTS[0].name);
        let other = std::thread::spawn(|| {
            reach(POINTS[1].name);
            take()
        })
        .join()
        .unwrap();
        assert_eq!(other.into_iter().collect::<Vec<_>>(), vec![(POINTS[1].name.to_string(), 1)]);
        assert_eq!(take().into_iter().collect::<Vec<_>>(), vec![(POINTS[0].name.to_string(), 2)]);
        assert!(take().is_empty());
    }

    #[test]
    #[cfg(debug_assertions)]
    #[should_panic(expected = "not declared")]
    fn an_undeclared_point_panics_in_debug_builds() {
        reach("no.such.point");
    }

    /// Every `reached!("...")` in the workspace's sources names a declared point, and every
    /// declared point is marked somewhere: no point can be reported that no code reaches.
    #[test]
    fn every_declared_point_is_marked_and_every_mark_declared() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut marked = std::collections::BTreeSet::new();
        let mut stack = vec![root.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_string_lossy().to_string();
                if path.is_dir() {
                    if !name.starts_with('.') && name != "target" && name != "coverage" {
                        stack.push(path);
                    }
                } else if name.ends_with(".rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    for (_, rest) in text.match_indices("reached!(\"").map(|(i, m)| ((), &text[i + m.len()..])) {
                        let end = rest.find('"').unwrap();
                        marked.insert(rest[..end].to_string());
                    }
                }
            }
        }
        let declared: std::collections::BTreeSet<String> = POINTS.iter().map(|p| p.name.to_string()).collect();
        let undeclared: Vec<&String> = marked.difference(&declared).collect();
        let unmarked: Vec<&String> = declared.difference(&marked).collect();
        assert!(undeclared.is_empty(), "marked but not declared in POINTS: {undeclared:?}");
        assert!(unmarked.is_empty(), "declared in POINTS but marked nowhere: {unmarked:?}");
    }
}
