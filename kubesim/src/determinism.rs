//! Finding where two runs of the same seed part ways. A seed that does not replay
//! identically is a broken promise; this names the first event that differs so the
//! source of non-determinism (a HashMap's order, the wall clock, a thread) can be found.

use sim::runner::{run_seed_with_history, RunOptions};
use verdict::history::History;

/// Runs the seed twice in fresh runtimes and describes the first differing record, or
/// `None` if both histories are identical.
pub fn first_divergence(options: &RunOptions) -> Option<String> {
    let (_, first) = run_seed_with_history(options);
    let (_, second) = run_seed_with_history(options);
    compare(&first, &second)
}

pub fn compare(first: &History, second: &History) -> Option<String> {
    let n = first.records.len().min(second.records.len());
    for idx in 0..n {
        let (a, b) = (&first.records[idx], &second.records[idx]);
        if a != b {
            return Some(format!(
                "first divergence at record {idx}:\n  run 1: {:.6}s {:?}\n  run 2: {:.6}s {:?}",
                a.at_ns as f64 / 1e9,
                a.event,
                b.at_ns as f64 / 1e9,
                b.event
            ));
        }
    }
    if first.records.len() != second.records.len() {
        return Some(format!(
            "the runs recorded {} and {} events; identical up to record {n}",
            first.records.len(),
            second.records.len()
        ));
    }
    (first.trace_hash != second.trace_hash).then(|| "identical records but different trace hashes".to_string())
}
