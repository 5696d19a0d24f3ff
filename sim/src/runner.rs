//! Runs one seed of one scenario in a fresh madsim runtime and turns its history into a
//! report. Everything a seed does is a function of (scenario, seed, options).

use madsim::runtime::Runtime;

use crate::control_plane::ControlPlaneOptions;
use crate::history::{HistoryEvent, Recorder};
use crate::report::RunReport;
use crate::scenario::{deploy_nginx, store_smoke, Scenario};

#[derive(Clone, Debug)]
pub struct RunOptions {
    pub seed: u64,
    pub scenario: Scenario,
    pub cluster: ControlPlaneOptions,
}

impl RunOptions {
    pub fn new(seed: u64, scenario: Scenario) -> Self {
        Self { seed, scenario, cluster: ControlPlaneOptions::default() }
    }
}

/// Runs the seed to completion in a fresh runtime on the current thread.
pub fn run_seed(options: &RunOptions) -> RunReport {
    let runtime = Runtime::with_seed_and_config(options.seed, madsim::Config::default());
    let recorder = Recorder::new();
    let (outcome, simulated_secs, messages_delivered) = runtime.block_on({
        let recorder = recorder.clone();
        let options = options.clone();
        async move {
            let outcome = match options.scenario {
                Scenario::DeployNginx => deploy_nginx::run(recorder, options.cluster.clone()).await,
                Scenario::StoreSmoke => store_smoke::run(recorder, options.cluster.store.clone()).await,
            };
            let simulated_secs = madsim::time::TimeHandle::current().elapsed().as_secs_f64();
            let messages = madsim::net::NetSim::current().stat().msg_count;
            (outcome, simulated_secs, messages)
        }
    });
    let history = recorder.finish();
    let faults = history
        .events()
        .filter_map(|(at_ns, e)| match e {
            HistoryEvent::Fault { description } => Some(format!("{:.3}s {description}", at_ns as f64 / 1e9)),
            _ => None,
        })
        .collect();
    RunReport {
        seed: options.seed,
        scenario: options.scenario.name().to_string(),
        timeline: outcome.timeline,
        checks: outcome.checks,
        faults,
        stats: outcome.stats,
        trace_hash: format!("{:016x}", history.trace_hash),
        simulated_secs,
        messages_delivered,
        history_records: history.records.len(),
    }
}
