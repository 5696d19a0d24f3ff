//! The structure of the HTML report of one failing planted-bug seed, kept as a snapshot:
//! its lanes and how many elements of each kind it draws (roles, faults, operations,
//! commits, watch answers, violations). A change in what the page shows shows up here;
//! `ci/check-html` opens the same page in a real browser. Accept a deliberate change with
//! `cargo insta review` (or `INSTA_UPDATE=always`).

use sim::bugs::PlantedBug;
use sim::runner::{run_seed_with_history, RunOptions};
use sim::scenario::Scenario;

#[test]
fn lease_expiry_seed_14_html_report_structure() {
    // deploy-nginx's own flow: seed 14 is pinned from a sweep without the generated workload.
    let mut options = RunOptions { workload: Default::default(), ..RunOptions::new(14, Scenario::DeployNginx) };
    PlantedBug::LeaseExpiryIgnoresPromotion.plant(&mut options);
    let (report, history) = run_seed_with_history(&options);
    assert!(!report.passed(), "seed 14 fails lease-expiry with the bug");
    let page = kubesim::html::render(&report, &history);
    assert!(page.len() < 2_000_000, "{} bytes", page.len());
    insta::assert_snapshot!(kubesim::html::structure(&page));
}
