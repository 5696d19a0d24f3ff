//! Campaigns beyond one machine: shards `K/N` of a seed range are disjoint, cover it, and
//! merged (`kubesim merge`) give exactly the per-seed results of one unsharded run; merging
//! refuses duplicate, conflicting, missing and mixed-campaign records with a clear error.

use std::collections::BTreeMap;
use std::io::Write;
use std::time::Duration;

use kubesim::campaign::{run_campaign, run_campaign_shard, CampaignOptions, SeedResult};
use kubesim::merge::{merge, read_results, MergeError, Shard};
use sim::runner::RunOptions;
use sim::scenario::Scenario;
use verdict::checkers::Invariant;
use verdict::outcome::{Finding, Outcome, Violated};

fn options(seeds: std::ops::Range<u64>) -> CampaignOptions {
    CampaignOptions {
        seeds,
        jobs: 2,
        template: RunOptions::new(0, Scenario::DeployNginx),
        repro_flags: String::new(),
        wall_limit: Duration::from_secs(600),
    }
}

/// A record without its measurement, which two runs of a seed never share.
fn comparable(result: &SeedResult) -> SeedResult {
    SeedResult { wall_ms: 0, ..result.clone() }
}

#[test]
fn shards_are_disjoint_balanced_and_cover_the_range() {
    let range = 10..47;
    let shards: Vec<Vec<u64>> = (0..4).map(|k| Shard { index: k, count: 4 }.seeds(range.clone()).collect()).collect();
    let mut all: Vec<u64> = shards.concat();
    all.sort();
    assert_eq!(all, range.clone().collect::<Vec<_>>());
    let sizes: Vec<usize> = shards.iter().map(Vec::len).collect();
    assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1, "{sizes:?}");
    assert_eq!("3/4".parse::<Shard>(), Ok(Shard { index: 3, count: 4 }));
    for bad in ["4/4", "1/0", "1", "a/4", "-1/4", ""] {
        let error = bad.parse::<Shard>().unwrap_err();
        assert!(error.to_string().contains("expected K/N"), "{bad}: {error}");
    }
}

#[test]
fn four_shards_merged_equal_one_unsharded_run() {
    let range = 0..8;
    let whole = run_campaign(&options(range.clone()), None, &|_, _| {}).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for index in 0..4 {
        let path = dir.path().join(format!("shard-{index}.jsonl"));
        let mut file = std::fs::File::create(&path).unwrap();
        let shard = Shard { index, count: 4 };
        let summary = run_campaign_shard(&options(range.clone()), shard, Some(&mut file), &|_, _| {}).unwrap();
        file.flush().unwrap();
        assert!(summary.results.iter().all(|r| shard.contains(r.seed)));
        files.push((path.display().to_string(), read_results(&path).unwrap()));
    }
    let merged = merge(&files, Some(range)).unwrap();
    let expected: Vec<SeedResult> = whole.results.iter().map(comparable).collect();
    let got: Vec<SeedResult> = merged.results.iter().map(comparable).collect();
    assert_eq!(got, expected);
    assert_eq!(merged.n_failed(), whole.n_failed());
    let counts = |s: &kubesim::campaign::CampaignSummary| -> BTreeMap<String, usize> {
        s.by_invariant().into_iter().map(|(k, v)| (k, v.len())).collect()
    };
    assert_eq!(counts(&merged), counts(&whole));
}

/// A shard's seeds are computed, not listed: counting and indexing them agree with
/// filtering the range, and a range as large as the seeds themselves costs nothing.
#[test]
fn shards_of_any_range_are_counted_and_indexed_without_listing_them() {
    for count in 1..6 {
        for index in 0..count {
            let shard = Shard { index, count };
            for range in [0..0, 0..1, 3..4, 7..23, 10..47] {
                let filtered: Vec<u64> = range.clone().filter(|&seed| shard.contains(seed)).collect();
                assert_eq!(shard.seeds(range.clone()).collect::<Vec<_>>(), filtered, "{shard} of {range:?}");
                assert_eq!(shard.count_in(range.clone()), filtered.len() as u64, "{shard} of {range:?}");
                for (idx, seed) in filtered.iter().enumerate() {
                    assert_eq!(shard.nth_in(range.clone(), idx as u64), Some(*seed));
                }
                assert_eq!(shard.nth_in(range.clone(), filtered.len() as u64), None);
            }
        }
    }
    let everything = 0..u64::MAX;
    assert_eq!(Shard::WHOLE.count_in(everything.clone()), u64::MAX);
    let last = Shard { index: 0, count: u64::MAX };
    assert_eq!(last.seeds(everything.clone()).collect::<Vec<_>>(), vec![0]);
    assert_eq!(last.count_in(everything.clone()), 1);
    let odd = Shard { index: 1, count: 2 };
    assert_eq!(odd.nth_in(everything.clone(), u64::MAX / 2 - 1), Some(u64::MAX - 2));
    assert_eq!(odd.nth_in(everything, u64::MAX / 2), None);
}

fn record(seed: u64, verdict: &str, hash: &str, flags: &str) -> SeedResult {
    let outcome = match verdict {
        "pass" => Outcome::Pass,
        "fail" => Outcome::Fail {
            violated: vec![Violated::of(
                Invariant::Linearizability,
                [Finding { at_ns: Some(1_500_000_000), message: "a read saw the future".into() }],
                0,
            )],
        },
        other => panic!("no record for verdict {other}"),
    };
    SeedResult {
        seed,
        scenario: "deploy-nginx".into(),
        outcome,
        faults: Vec::new(),
        trace_hash: hash.into(),
        simulated_secs: 60.0,
        wall_ms: seed.wrapping_mul(7),
        messages_delivered: 1000,
        stats: BTreeMap::new(),
        repro: format!("kubesim run --seed {seed}{flags}"),
        coverage: BTreeMap::new(),
        built_from: kubesim::campaign::BUILD.to_string(),
    }
}

fn file(name: &str, records: Vec<SeedResult>) -> (String, Vec<SeedResult>) {
    (name.to_string(), records)
}

#[test]
fn merging_refuses_a_seed_recorded_twice() {
    let mut again = record(1, "pass", "aa", "");
    again.wall_ms = 99;
    let error = merge(
        &[file("a", vec![record(0, "pass", "00", ""), record(1, "pass", "aa", "")]), file("b", vec![again])],
        None,
    )
    .unwrap_err();
    assert!(matches!(error, MergeError::Duplicate { seed: 1, .. }), "{error}");
    assert!(error.to_string().contains("seed 1 is recorded twice (a and b)"), "{error}");
}

#[test]
fn merging_refuses_conflicting_records_of_a_seed() {
    let error =
        merge(&[file("a", vec![record(1, "pass", "aa", "")]), file("b", vec![record(1, "fail", "bb", "")])], None)
            .unwrap_err();
    assert!(matches!(error, MergeError::Conflict { seed: 1, .. }), "{error}");
    assert!(error.to_string().contains("a: pass, trace-hash aa; b: fail, trace-hash bb"), "{error}");
}

#[test]
fn merging_refuses_missing_seeds() {
    let files = [file("a", vec![record(0, "pass", "0", ""), record(3, "pass", "3", "")])];
    let error = merge(&files, None).unwrap_err();
    assert_eq!(error.to_string(), "2 seed(s) of 0..4 missing (first: 1); is a shard's file missing?");
    let error = merge(&[file("a", vec![record(0, "pass", "0", "")])], Some(0..2)).unwrap_err();
    assert!(matches!(error, MergeError::Missing { count: 1, .. }), "{error}");
    let error = merge(&[file("a", vec![record(5, "pass", "5", "")])], Some(0..2)).unwrap_err();
    assert!(matches!(error, MergeError::OutOfRange { seed: 5, .. }), "{error}");
}

/// Missing seeds are counted, never listed: a range far larger than memory, or a file
/// with seeds four billion apart, gives one line; a seed of u64::MAX is in its range.
#[test]
fn merging_huge_ranges_counts_the_missing_seeds() {
    let error = merge(&[file("a", vec![record(0, "pass", "0", "")])], Some(0..u64::MAX)).unwrap_err();
    assert_eq!(
        error.to_string(),
        format!("{} seed(s) of 0..{} missing (first: 1); is a shard's file missing?", u64::MAX - 1, u64::MAX)
    );
    let far = [file("a", vec![record(4_000_000_000, "pass", "1", ""), record(0, "pass", "0", "")])];
    let error = merge(&far, None).unwrap_err();
    assert_eq!(error.to_string(), "3999999999 seed(s) of 0..4000000001 missing (first: 1); is a shard's file missing?");
    let merged = merge(&[file("a", vec![record(u64::MAX, "pass", "f", "")])], None).unwrap();
    assert_eq!(merged.results.len(), 1);
    let error = merge(&[file("a", vec![record(u64::MAX - 1, "pass", "e", "")])], Some(0..3)).unwrap_err();
    assert_eq!(error.to_string(), format!("seed {} (a) lies outside the expected range 0..3", u64::MAX - 1));
}

#[test]
fn merging_refuses_results_of_different_campaigns() {
    let files = [
        file("a", vec![record(0, "pass", "0", "")]),
        file("b", vec![record(1, "pass", "1", " --bug vote-not-persisted")]),
    ];
    let error = merge(&files, None).unwrap_err();
    assert!(matches!(error, MergeError::MixedCampaigns { .. }), "{error}");
    assert!(error.to_string().contains("--bug vote-not-persisted"), "{error}");
}

#[test]
fn merging_reads_results_files_line_by_line_and_names_a_bad_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.jsonl");
    let line = serde_json::to_string(&record(0, "pass", "0", "")).unwrap();
    std::fs::write(&good, format!("{line}\n\n")).unwrap();
    assert_eq!(read_results(&good).unwrap(), vec![record(0, "pass", "0", "")]);
    let empty = dir.path().join("empty.jsonl");
    std::fs::write(&empty, "").unwrap();
    assert!(read_results(&empty).unwrap().is_empty(), "an empty shard is not an error");
    assert!(matches!(merge(&[file("e", Vec::new())], None), Err(MergeError::NoResults)));
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, format!("{line}\n{{\"seed\": 1\n")).unwrap();
    let error = read_results(&bad).unwrap_err().to_string();
    assert!(error.starts_with(&format!("{}:2: not a campaign result line", bad.display())), "{error}");
    let error = read_results(&dir.path().join("absent.jsonl")).unwrap_err().to_string();
    assert!(error.contains("cannot read"), "{error}");
    // A file that is no results file at all is refused at its first long line, unread.
    let error = read_results(std::path::Path::new("/dev/zero")).unwrap_err();
    assert!(matches!(error, MergeError::LineTooLong { line: 1, .. }), "{error}");
}

/// The Indexed Job manifest in ci/k8s runs shard `JOB_COMPLETION_INDEX/SHARDS` with as
/// many completions as shards, and the merge job covers the same seed range.
#[test]
fn the_kubernetes_indexed_job_runs_one_shard_per_completion_index() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ci/k8s");
    let campaign = std::fs::read_to_string(dir.join("campaign-job.yaml")).unwrap();
    let merge_job = std::fs::read_to_string(dir.join("merge-job.yaml")).unwrap();
    let value_after = |text: &str, key: &str| -> String {
        let at = text.find(key).unwrap_or_else(|| panic!("{key} missing"));
        let line = text[at + key.len()..].lines().next().unwrap();
        line.trim().trim_matches('"').to_string()
    };
    assert!(campaign.contains("completionMode: Indexed"));
    assert!(campaign.contains(r#"--shard "$JOB_COMPLETION_INDEX/$SHARDS""#));
    let completions = value_after(&campaign, "completions:");
    let shards = value_after(&campaign, "name: SHARDS\n              value:");
    assert_eq!(completions, shards, "one pod per shard");
    let seeds = value_after(&campaign, "name: SEEDS\n              value:");
    assert_eq!(value_after(&merge_job, "name: SEEDS\n              value:"), seeds);
    kubesim::cli::parse_seed_range(&seeds).map_err(|e| e.0).unwrap();
    format!("0/{shards}").parse::<Shard>().unwrap();
}
