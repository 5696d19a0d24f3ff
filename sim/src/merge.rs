//! Campaigns beyond one machine: shards of a seed range, and merging their result files.
//!
//! `kubesim campaign --seeds A..B --shard K/N` runs the seeds of `A..B` with
//! `seed % N == K`. Striding by the seed (rather than cutting the range in N blocks) keeps
//! shards balanced when cost varies along the range, and a seed's shard does not depend
//! on the range it came from, so shards of different ranges never overlap either. A seed's
//! result does not depend on which shard, machine or worker ran it (each seed runs in a
//! fresh runtime), so `kubesim merge` of N shards' JSON lines gives exactly the per-seed
//! records of one unsharded run (`wall_ms` aside, which is a measurement, not a result).
//!
//! Merging refuses what would make the summary lie: a seed recorded twice (the same
//! shard collected twice; conflicting records of one seed are non-determinism or mixed
//! campaigns, and are named as such), records of different campaigns (different flags in
//! their repro commands), seeds missing from the range, and malformed lines.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

use crate::campaign::{CampaignSummary, SeedResult};

/// The K-th of N disjoint slices of a seed range: the seeds with `seed % n == index`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    pub index: u64,
    pub count: u64,
}

impl Shard {
    /// The whole range as one shard.
    pub const WHOLE: Shard = Shard { index: 0, count: 1 };

    pub fn contains(self, seed: u64) -> bool {
        seed % self.count == self.index
    }

    /// The seeds of `range` in this shard, in order.
    pub fn seeds(self, range: std::ops::Range<u64>) -> Vec<u64> {
        range.filter(|&seed| self.contains(seed)).collect()
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl FromStr for Shard {
    type Err = String;
    /// `K/N` with `0 <= K < N` (K is 0-based, like a Kubernetes Indexed Job's
    /// `JOB_COMPLETION_INDEX`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("--shard: expected K/N with 0 <= K < N, like 0/4, got '{text}'");
        let (k, n) = text.split_once('/').ok_or_else(bad)?;
        let index: u64 = k.trim().parse().map_err(|_| bad())?;
        let count: u64 = n.trim().parse().map_err(|_| bad())?;
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

/// Why result files cannot be merged. Each message names the file, line or seeds at fault.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    #[error("{path}: cannot read: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a campaign result line: {source}")]
    BadLine {
        path: String,
        line: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("none of the files holds a result line")]
    NoResults,
    #[error("seed {seed} is recorded twice ({first} and {second}); was a shard collected twice?")]
    Duplicate { seed: u64, first: String, second: String },
    /// Each side reads `FILE: VERDICT, trace-hash HASH`.
    #[error(
        "seed {seed} has conflicting records ({first}; {second}): the files come from different \
         campaigns or a seed did not replay deterministically"
    )]
    Conflict { seed: u64, first: String, second: String },
    #[error("the files come from different campaigns: {first} ran `{first_flags}`, {second} ran `{second_flags}`")]
    MixedCampaigns { first: String, first_flags: String, second: String, second_flags: String },
    #[error("{count} seed(s) of {range} missing (first: {first}); is a shard's file missing?")]
    Missing { count: usize, range: String, first: String },
    #[error("seed {seed} ({path}) lies outside the expected range {range}")]
    OutOfRange { seed: u64, path: String, range: String },
}

/// Reads one campaign results file (JSON lines). Blank lines are skipped; an empty file is
/// fine (a shard of a short range may hold no seed).
pub fn read_results(path: &Path) -> Result<Vec<SeedResult>, MergeError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| MergeError::Io { path: shown.clone(), source })?;
    let mut results = Vec::new();
    for (line_idx, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let result = serde_json::from_str(line).map_err(|source| MergeError::BadLine {
            path: shown.clone(),
            line: line_idx + 1,
            source,
        })?;
        results.push(result);
    }
    Ok(results)
}

/// The flags of a repro command after its `--seed N`: equal for every seed of one campaign.
fn campaign_flags(result: &SeedResult) -> String {
    let mut words = result.repro.split_whitespace().peekable();
    let mut flags = Vec::new();
    while let Some(word) = words.next() {
        if word == "--seed" {
            words.next();
        } else {
            flags.push(word);
        }
    }
    flags.join(" ")
}

/// A record without its measurement: what must be equal for two records of one seed.
fn without_wall_time(result: &SeedResult) -> SeedResult {
    SeedResult { wall_ms: 0, ..result.clone() }
}

/// Merges results read from `files` (name, results) into one summary, as a single
/// campaign over `expected` (or, if `None`, over the smallest range holding every seed)
/// would have produced: records sorted by seed. `wall_secs` is the sum of the seeds' wall
/// times, what one worker would have spent.
pub fn merge(
    files: &[(String, Vec<SeedResult>)],
    expected: Option<std::ops::Range<u64>>,
) -> Result<CampaignSummary, MergeError> {
    let mut by_seed: BTreeMap<u64, (&str, &SeedResult)> = BTreeMap::new();
    let mut flags_seen: Option<(&str, String)> = None;
    for (file, results) in files {
        for result in results {
            let flags = campaign_flags(result);
            match &flags_seen {
                None => flags_seen = Some((file, flags)),
                Some((first, first_flags)) if *first_flags != flags => {
                    return Err(MergeError::MixedCampaigns {
                        first: first.to_string(),
                        first_flags: first_flags.clone(),
                        second: file.clone(),
                        second_flags: flags,
                    });
                }
                Some(_) => {}
            }
            if let Some((first, earlier)) = by_seed.get(&result.seed) {
                if without_wall_time(earlier) == without_wall_time(result) {
                    return Err(MergeError::Duplicate {
                        seed: result.seed,
                        first: first.to_string(),
                        second: file.clone(),
                    });
                }
                let side = |file: &str, r: &SeedResult| format!("{file}: {}, trace-hash {}", r.verdict, r.trace_hash);
                return Err(MergeError::Conflict {
                    seed: result.seed,
                    first: side(first, earlier),
                    second: side(file, result),
                });
            }
            by_seed.insert(result.seed, (file, result));
        }
    }
    if by_seed.is_empty() {
        return Err(MergeError::NoResults);
    }
    let range = match expected {
        Some(range) => range,
        None => {
            let first = by_seed.keys().next().copied().expect("not empty");
            let last = by_seed.keys().next_back().copied().expect("not empty");
            first..last + 1
        }
    };
    let shown_range = format!("{}..{}", range.start, range.end);
    if let Some((&seed, (file, _))) = by_seed.iter().find(|(seed, _)| !range.contains(seed)) {
        return Err(MergeError::OutOfRange { seed, path: file.to_string(), range: shown_range });
    }
    let missing: Vec<u64> = range.clone().filter(|seed| !by_seed.contains_key(seed)).collect();
    if let Some(first) = missing.first() {
        return Err(MergeError::Missing { count: missing.len(), range: shown_range, first: first.to_string() });
    }
    let results: Vec<SeedResult> = by_seed.into_values().map(|(_, result)| result.clone()).collect();
    let wall_secs = results.iter().map(|r| r.wall_ms as f64 / 1000.0).sum();
    Ok(CampaignSummary { results, wall_secs })
}
