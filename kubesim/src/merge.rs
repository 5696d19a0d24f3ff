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

    /// The first seed of `range` in this shard, if any.
    fn first_in(self, range: &std::ops::Range<u64>) -> Option<u64> {
        // The distance from `range.start` up to the next seed with `seed % count == index`.
        let offset = (u128::from(self.index) + u128::from(self.count) - u128::from(range.start % self.count))
            % u128::from(self.count);
        let first = u128::from(range.start) + offset;
        (first < u128::from(range.end)).then_some(first as u64)
    }

    /// How many seeds of `range` are in this shard (computed, not counted).
    pub fn count_in(self, range: std::ops::Range<u64>) -> u64 {
        match self.first_in(&range) {
            Some(first) => (range.end - 1 - first) / self.count + 1,
            None => 0,
        }
    }

    /// The `idx`-th seed (0-based) of `range` in this shard, if the shard has that many.
    pub fn nth_in(self, range: std::ops::Range<u64>, idx: u64) -> Option<u64> {
        let seed = u128::from(self.first_in(&range)?) + u128::from(idx) * u128::from(self.count);
        (seed < u128::from(range.end)).then_some(seed as u64)
    }

    /// The seeds of `range` in this shard, in order, produced one at a time.
    pub fn seeds(self, range: std::ops::Range<u64>) -> impl Iterator<Item = u64> {
        let first = self.first_in(&range);
        let step = usize::try_from(self.count).unwrap_or(usize::MAX);
        first.map(|first| first..range.end).into_iter().flat_map(move |seeds| seeds.step_by(step))
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A `--shard` value that is not `K/N` with `0 <= K < N`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("--shard: expected K/N with 0 <= K < N, like 0/4, got '{0}'")]
pub struct BadShard(pub String);

impl FromStr for Shard {
    type Err = BadShard;
    /// `K/N` with `0 <= K < N` (K is 0-based, like a Kubernetes Indexed Job's
    /// `JOB_COMPLETION_INDEX`).
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || BadShard(text.to_string());
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
    Missing { count: u128, range: String, first: String },
    #[error("{path}: more than {max} result lines in all; merge at most {max} seeds in one run")]
    TooManyRecords { path: String, max: u64 },
    #[error("{path}:{line}: a line longer than {max} bytes is not a campaign result line")]
    LineTooLong { path: String, line: usize, max: usize },
    #[error("seed {seed} ({path}) lies outside the expected range {range}")]
    OutOfRange { seed: u64, path: String, range: String },
    #[error(
        "the files come from different builds: {first} ran kubesim {first_build}, {second} ran {second_build}; \
         replay seeds at the commit that found them, or pass --allow-mixed-builds"
    )]
    MixedBuilds { first: String, first_build: String, second: String, second_build: String },
}

/// Refuses results of different kubesim builds (`SeedResult::built_from`): a seed's
/// record means something only at the commit that ran it. Records from before builds were
/// stamped (empty) count as one build of their own.
pub fn check_one_build(files: &[(String, Vec<SeedResult>)]) -> Result<(), MergeError> {
    let mut seen: Option<(&str, &str)> = None;
    for (file, results) in files {
        for result in results {
            match seen {
                None => seen = Some((file, &result.built_from)),
                Some((first, build)) if build != result.built_from => {
                    let shown = |b: &str| if b.is_empty() { "an unstamped build".to_string() } else { b.to_string() };
                    return Err(MergeError::MixedBuilds {
                        first: first.to_string(),
                        first_build: shown(build),
                        second: file.clone(),
                        second_build: shown(&result.built_from),
                    });
                }
                Some(_) => {}
            }
        }
    }
    Ok(())
}

/// The longest result line read: a seed's record is a few KB (its faults, violations and
/// figures); a megabyte is no campaign's.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// Reads one campaign results file (JSON lines). Blank lines are skipped; an empty file is
/// fine (a shard of a short range may hold no seed). `budget` is how many more records the
/// merge may hold ([`crate::campaign::MAX_SEEDS_PER_RUN`] in all); a file past it, or a
/// line longer than [`MAX_LINE_BYTES`] (`/dev/zero`, a binary file), is refused without
/// being read whole.
pub fn read_results(path: &Path) -> Result<Vec<SeedResult>, MergeError> {
    read_results_within(path, crate::campaign::MAX_SEEDS_PER_RUN)
}

fn read_results_within(path: &Path, budget: u64) -> Result<Vec<SeedResult>, MergeError> {
    use std::io::{BufRead, Read};
    let shown = path.display().to_string();
    let io_error = |source| MergeError::Io { path: shown.clone(), source };
    let mut reader = std::io::BufReader::new(std::fs::File::open(path).map_err(io_error)?);
    let mut results = Vec::new();
    let mut line = Vec::new();
    for line_no in 1.. {
        line.clear();
        let read = (&mut reader).take(MAX_LINE_BYTES as u64 + 1).read_until(b'\n', &mut line).map_err(io_error)?;
        if read == 0 {
            break;
        }
        if line.len() > MAX_LINE_BYTES {
            return Err(MergeError::LineTooLong { path: shown, line: line_no, max: MAX_LINE_BYTES });
        }
        let text = String::from_utf8_lossy(&line);
        if text.trim().is_empty() {
            continue;
        }
        if results.len() as u64 >= budget {
            return Err(MergeError::TooManyRecords { path: shown, max: crate::campaign::MAX_SEEDS_PER_RUN });
        }
        let result = serde_json::from_str(text.trim_end()).map_err(|source| MergeError::BadLine {
            path: shown.clone(),
            line: line_no,
            source,
        })?;
        results.push(result);
    }
    Ok(results)
}

/// Reads every results file of a merge, refusing more than
/// [`crate::campaign::MAX_SEEDS_PER_RUN`] records in all.
pub fn read_all_results(paths: &[std::path::PathBuf]) -> Result<Vec<(String, Vec<SeedResult>)>, MergeError> {
    let mut budget = crate::campaign::MAX_SEEDS_PER_RUN;
    let mut read = Vec::with_capacity(paths.len());
    for path in paths {
        let results = read_results_within(path, budget)?;
        budget -= results.len() as u64;
        read.push((path.display().to_string(), results));
    }
    Ok(read)
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
                let side = |file: &str, r: &SeedResult| format!("{file}: {}, trace-hash {}", r.verdict(), r.trace_hash);
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
    // The range as first..=last: an inferred range may end at u64::MAX, which no
    // half-open range of u64 can include.
    let (first, last) = match &expected {
        Some(range) => (range.start, range.end - 1),
        None => (
            by_seed.keys().next().copied().expect("not empty"),
            by_seed.keys().next_back().copied().expect("not empty"),
        ),
    };
    let shown_range = format!("{first}..{}", u128::from(last) + 1);
    if let Some((&seed, (file, _))) = by_seed.iter().find(|(seed, _)| !(first..=last).contains(*seed)) {
        return Err(MergeError::OutOfRange { seed, path: file.to_string(), range: shown_range });
    }
    // Every seed present is in range, so the missing ones are counted, not listed: the
    // range may be far larger than memory.
    let n_missing = u128::from(last - first) + 1 - by_seed.len() as u128;
    if n_missing > 0 {
        // The first gap: the first seed from `first` on whose successor in the map differs.
        let first_missing = (first..=last).zip(by_seed.keys()).find(|(want, have)| want != *have).map_or_else(
            || u128::from(*by_seed.keys().next_back().expect("not empty")) + 1,
            |(want, _)| u128::from(want),
        );
        return Err(MergeError::Missing { count: n_missing, range: shown_range, first: first_missing.to_string() });
    }
    let results: Vec<SeedResult> = by_seed.into_values().map(|(_, result)| result.clone()).collect();
    let wall_secs = results.iter().map(|r| r.wall_ms as f64 / 1000.0).sum();
    Ok(CampaignSummary { results, wall_secs })
}
