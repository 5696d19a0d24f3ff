//! Seeds of a scenario from `cargo test`: the entry point a user's own test suite calls.
//!
//! [`Seeds::of`] registers the scenario, runs a range of its seeds under the default fault
//! menu (across the machine's cores, each on its own thread, exactly as `kubesim campaign`
//! runs them) and, when a seed fails, panics with what broke and the commands that replay
//! it. The range can be changed without editing the test, as madsim's
//! `MADSIM_TEST_SEED`/`MADSIM_TEST_NUM` do:
//!
//! - `KUBESIM_TEST_SEED=N`: start at seed N (and run one seed, unless `KUBESIM_TEST_NUM`
//!   says more) — the replay of a failure;
//! - `KUBESIM_TEST_NUM=M`: run M seeds.
//!
//! ```no_run
//! # struct Database;
//! # impl sim::scenario::CustomScenario for Database {
//! #     fn name(&self) -> &'static str { "database" }
//! #     fn about(&self) -> &'static str { "" }
//! #     fn configure(&self, _: &mut sim::control_plane::ControlPlaneOptions) {}
//! #     fn workload(&self, _: sim::scenario::custom::Session) -> futures::future::BoxFuture<'static, ()> {
//! #         Box::pin(async {})
//! #     }
//! # }
//! // tests/seeds.rs of the user's crate
//! #[test]
//! fn the_database_operator_holds_its_invariants() {
//!     kubesim::testing::Seeds::of(Database).range(0..20).check();
//! }
//! ```

use std::collections::BTreeSet;
use std::ops::Range;
use std::time::Duration;

use faults::FaultKind;
use sim::runner::{Faults, RunOptions};
use sim::scenario::{CustomScenario, Scenario};
use verdict::outcome::Property;

use crate::campaign::{run_campaign_shard, CampaignOptions, CampaignSummary, SeedResult};
use crate::merge::Shard;

/// The environment variable that sets the first seed.
pub const SEED_VAR: &str = "KUBESIM_TEST_SEED";
/// The environment variable that sets how many seeds run.
pub const NUM_VAR: &str = "KUBESIM_TEST_NUM";

/// A range of seeds of one scenario, to check from a test. See the module documentation.
#[derive(Clone, Debug)]
pub struct Seeds {
    scenario: Scenario,
    range: Range<u64>,
    faults: BTreeSet<FaultKind>,
    wall_limit: Duration,
}

impl Seeds {
    /// Seeds 0..20 of `scenario` under every default fault kind, registering the scenario
    /// (registering it again is harmless).
    ///
    /// # Panics
    /// If the scenario cannot be registered (a malformed or taken name).
    pub fn of(scenario: impl CustomScenario) -> Self {
        let name = scenario.name();
        if let Err(e) = sim::scenario::register(scenario) {
            panic!("cannot register the scenario: {e}");
        }
        let scenario: Scenario = name.parse().expect("a registered scenario parses");
        Self { scenario, range: 0..20, faults: FaultKind::all(), wall_limit: Duration::from_secs(600) }
    }

    /// The seeds to run when the environment does not say otherwise.
    pub fn range(mut self, range: Range<u64>) -> Self {
        self.range = range;
        self
    }

    /// The fault kinds each seed's plan draws from (default: [`FaultKind::all`]).
    pub fn faults(mut self, kinds: impl IntoIterator<Item = FaultKind>) -> Self {
        self.faults = kinds.into_iter().collect();
        self
    }

    /// The fault menu called `name` (`disks`, or one registered with
    /// `faults::menus::register_menu`).
    ///
    /// # Panics
    /// If no menu has that name.
    pub fn menu(self, name: &str) -> Self {
        let menu = faults::menus::menu(name).unwrap_or_else(|| panic!("no fault menu is called '{name}'"));
        self.faults(menu.kinds)
    }

    /// The seeds that run: the range, unless `KUBESIM_TEST_SEED` or `KUBESIM_TEST_NUM`
    /// say otherwise.
    ///
    /// # Panics
    /// If either variable is set to something other than a number.
    pub fn effective_range(&self) -> Range<u64> {
        let read = |var: &str| {
            std::env::var(var)
                .ok()
                .map(|value| value.trim().parse::<u64>().unwrap_or_else(|_| panic!("{var}={value}: expected a number")))
        };
        match (read(SEED_VAR), read(NUM_VAR)) {
            (Some(first), num) => first..first.saturating_add(num.unwrap_or(1)),
            (None, Some(num)) => self.range.start..self.range.start.saturating_add(num),
            (None, None) => self.range.clone(),
        }
    }

    /// Runs the seeds and returns every seed's result, whatever it was.
    pub fn run(&self) -> CampaignSummary {
        self.run_range(self.effective_range())
    }

    fn run_range(&self, range: Range<u64>) -> CampaignSummary {
        let mut template = RunOptions::new(range.start, self.scenario.clone());
        template.faults = Faults::Swarm(self.faults.clone());
        let options = CampaignOptions {
            seeds: range,
            jobs: std::thread::available_parallelism().map_or(1, |n| n.get()),
            template,
            repro_flags: self.repro_flags(),
            wall_limit: self.wall_limit,
        };
        run_campaign_shard(&options, Shard::WHOLE, None, &|_, _| {}).expect("no results file is written")
    }

    /// Runs the seeds; panics at the end if any failed, naming each failed seed, what it
    /// broke and how to replay it.
    pub fn check(&self) -> CampaignSummary {
        let summary = self.run();
        let failed: Vec<&SeedResult> = summary.results.iter().filter(|r| !r.passed()).collect();
        if !failed.is_empty() {
            panic!("{}", self.failure_report(&summary, &failed));
        }
        summary
    }

    /// Runs the seeds in order, a core's worth at a time, and returns the first (lowest)
    /// seed whose outcome broke `property`, without running the seeds after it; panics if
    /// none did. For a test that a bug in the user's code is caught within a range.
    pub fn first_caught_by(&self, property: impl Into<Property>) -> SeedResult {
        let property = property.into();
        let range = self.effective_range();
        let chunk = 4 * std::thread::available_parallelism().map_or(1, |n| n.get()) as u64;
        let mut start = range.start;
        while start < range.end {
            let end = start.saturating_add(chunk).min(range.end);
            let summary = self.run_range(start..end);
            let caught =
                summary.results.into_iter().filter(|r| r.outcome.broken().contains(&property)).min_by_key(|r| r.seed);
            if let Some(first) = caught {
                return first;
            }
            start = end;
        }
        panic!("no seed of {}..{} of {} broke {property}", range.start, range.end, self.scenario)
    }

    fn repro_flags(&self) -> String {
        let mut flags = format!(" --scenario {}", self.scenario);
        let menu = faults::menus::menus().into_iter().find(|menu| menu.kinds == self.faults);
        if let Some(menu) = menu.filter(|menu| menu.name != "all") {
            flags.push_str(&format!(" --faults {}", menu.name));
        } else if self.faults != FaultKind::all() {
            let names: Vec<&str> = self.faults.iter().map(|kind| kind.name()).collect();
            flags.push_str(&format!(" --faults {}", names.join(",")));
        }
        flags
    }

    fn failure_report(&self, summary: &CampaignSummary, failed: &[&SeedResult]) -> String {
        let mut text = format!("{} of {} seeds of {} failed\n", failed.len(), summary.results.len(), self.scenario);
        for result in failed {
            text.push_str(&format!("\nseed {} ({}):\n", result.seed, result.verdict()));
            for (property, line) in result.outcome.lines() {
                text.push_str(&format!("  {property}: {line}\n"));
            }
            text.push_str(&format!(
                "  replay in this test: {SEED_VAR}={} cargo test ...\n  or from your kubesim binary: {}\n",
                result.seed, result.repro
            ));
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The smallest scenario there is: the default control plane and no workload.
    struct Idle;
    impl CustomScenario for Idle {
        fn name(&self) -> &'static str {
            "testing-idle"
        }
        fn about(&self) -> &'static str {
            "the control plane alone"
        }
        fn configure(&self, _: &mut sim::control_plane::ControlPlaneOptions) {}
        fn workload(&self, _: sim::scenario::custom::Session) -> futures::future::BoxFuture<'static, ()> {
            Box::pin(async {})
        }
    }

    #[test]
    fn repro_lines_name_the_scenario_and_a_menu_by_its_name() {
        let seeds = Seeds::of(Idle);
        assert_eq!(seeds.repro_flags(), " --scenario testing-idle");
        assert_eq!(seeds.clone().menu("disks").repro_flags(), " --scenario testing-idle --faults disks");
        let custom = seeds.faults([FaultKind::Crash, FaultKind::Pause]).repro_flags();
        assert_eq!(custom, " --scenario testing-idle --faults crash,pause");
    }

    #[test]
    #[should_panic(expected = "no fault menu is called 'nosuch'")]
    fn an_unknown_menu_is_refused_by_name() {
        let _ = Seeds::of(Idle).menu("nosuch");
    }
}
