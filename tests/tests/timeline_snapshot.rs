//! The stage timeline of one fixed seed of the default scenario, kept as a snapshot: a
//! change in what the control plane writes, when, or on whose behalf shows up here.
//! Accept a deliberate change with `cargo insta review` (or `INSTA_UPDATE=always`).

use sim::runner::{run_seed, RunOptions};
use sim::scenario::Scenario;

#[test]
fn deploy_nginx_seed_1_stage_timeline() {
    let report = run_seed(&RunOptions::without_faults(1, Scenario::DeployNginx));
    assert!(report.passed(), "{}", report.render());
    let mut text = report.timeline.join("\n");
    text.push_str("\n\n");
    text.push_str(
        &report.checks.iter().map(|c| format!("{:?} {} {}", c.status, c.name, c.detail)).collect::<Vec<_>>().join("\n"),
    );
    text.push_str(&format!("\ntrace-hash: {}", report.trace_hash));
    insta::assert_snapshot!(text);
}
