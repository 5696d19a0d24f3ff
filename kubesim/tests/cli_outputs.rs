//! What the `kubesim` binary writes for other tools: a campaign's JUnit XML, a seed's
//! history (JSON lines and Jepsen EDN), and the build stamp that keeps `merge` from mixing
//! results of different commits.

mod support;
use support::kubesim;

#[test]
fn a_failing_campaign_writes_junit_with_a_case_per_signature_and_html_pages() {
    let dir = tempfile::tempdir().unwrap();
    let junit = dir.path().join("campaign.xml");
    let pages = dir.path().join("reports/html");
    let out = kubesim(&[
        "campaign",
        "--seeds",
        "14..16",
        "--bug",
        "lease-expiry-ignores-promotion",
        "--junit",
        junit.to_str().unwrap(),
        "--html-dir",
        pages.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    assert!(out.stdout.contains("failure signatures ("), "{}", out.stdout);
    let xml = std::fs::read_to_string(&junit).unwrap();
    assert!(xml.starts_with("<?xml"), "{xml}");
    assert!(xml.contains(r#"<testcase classname="kubesim.lease-expiry""#), "{xml}");
    assert!(xml.contains("kubesim run --seed 14 --bug lease-expiry-ignores-promotion"), "{xml}");
    assert!(xml.contains("passing seeds"), "{xml}");
    // The failing seed's page, in a directory the campaign created.
    let page = std::fs::read_to_string(pages.join("seed-14.html")).unwrap();
    assert!(page.contains("data-kind=\"violation\""), "no violation marked");
}

#[test]
fn a_seed_writes_its_history_as_json_lines_and_its_store_operations_as_edn() {
    let dir = tempfile::tempdir().unwrap();
    let (jsonl, edn) = (dir.path().join("h.jsonl"), dir.path().join("h.edn"));
    let out = kubesim(&[
        "run",
        "--seed",
        "5",
        "--scenario",
        "store-smoke",
        "--history",
        jsonl.to_str().unwrap(),
        "--history-edn",
        edn.to_str().unwrap(),
    ]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let text = std::fs::read_to_string(&jsonl).unwrap();
    let mut lines = text.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap());
    let header = lines.next().unwrap();
    assert_eq!(header["schema"], "kubesim.history");
    let trace_hash = out.stdout.lines().find_map(|l| l.strip_prefix("trace-hash: ")).unwrap();
    assert_eq!(header["trace_hash"], trace_hash, "the file names the run's trace hash");
    assert_eq!(header["records"].as_u64().unwrap() as usize, lines.count());
    let edn = std::fs::read_to_string(&edn).unwrap();
    assert!(edn.lines().count() > 10, "{edn}");
    assert!(edn.lines().all(|l| l.starts_with("{:index ") && l.contains(":f :txn")), "{edn}");
    assert!(edn.contains(":type :ok"), "{edn}");
}

#[test]
fn merge_refuses_results_of_different_builds_unless_told() {
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("a.jsonl");
    let out = kubesim(&["campaign", "--seeds", "0..2", "--faults", "none", "--out", results.to_str().unwrap()]);
    assert_eq!(out.code, 0, "{}{}", out.stdout, out.stderr);
    let text = std::fs::read_to_string(&results).unwrap();
    let mut records: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert!(records[0]["built_from"].as_str().unwrap().contains('+'), "{:?}", records[0]["built_from"]);
    records[1]["built_from"] = "0.0.9+0123456789ab".into();
    let mixed = dir.path().join("mixed.jsonl");
    let lines: Vec<String> = records.iter().map(|r| r.to_string()).collect();
    std::fs::write(&mixed, lines.join("\n")).unwrap();
    let refused = kubesim(&["merge", mixed.to_str().unwrap()]);
    assert_eq!(refused.code, 2, "{}{}", refused.stdout, refused.stderr);
    assert!(refused.stderr.contains("different builds"), "{}", refused.stderr);
    assert!(refused.stderr.contains("0.0.9+0123456789ab"), "{}", refused.stderr);
    let allowed = kubesim(&["merge", mixed.to_str().unwrap(), "--allow-mixed-builds"]);
    assert_eq!(allowed.code, 0, "{}{}", allowed.stdout, allowed.stderr);
}

#[test]
fn a_failing_seed_renders_one_self_contained_html_page_with_its_violation_marked() {
    let dir = tempfile::tempdir().unwrap();
    let html = dir.path().join("seed.html");
    let out =
        kubesim(&["run", "--seed", "14", "--bug", "lease-expiry-ignores-promotion", "--html", html.to_str().unwrap()]);
    assert_eq!(out.code, 1, "{}{}", out.stdout, out.stderr);
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>"), "{}", &page[..200]);
    // Self-contained: nothing fetched from anywhere.
    for remote in ["http://", "https://", "src=", "<link"] {
        let outside_svg_namespace = page.replace("xmlns=\"http://www.w3.org/2000/svg\"", "");
        assert!(!outside_svg_namespace.contains(remote), "the page refers to {remote}");
    }
    let structure = kubesim::html::structure(&page);
    assert!(structure.contains("lanes: member 1, member 2, member 3, nemesis, commits"), "{structure}");
    for kind in ["violation: ", "violation-item: ", "role: ", "api: ", "commit: ", "fault: "] {
        assert!(structure.contains(kind), "no {kind} in {structure}");
    }
    assert!(page.contains("lease-expiry"), "the violation is named");
    assert!(page.len() < 2_000_000, "{} bytes", page.len());
}
