//! `kubesim bench`: throughput of the default campaign and of bare madsim messaging,
//! measured in the same process, so the framework's overhead is a ratio rather than an
//! absolute figure that depends on the machine (docs/design.md §6).
//!
//! Wall-clock time is read here, outside the simulation, only to report speed.

use std::time::{Duration, Instant};

use madsim::net::Endpoint;
use madsim::runtime::Runtime;

use sim::runner::{run_seed, RunOptions};

/// Figures from one measurement.
#[derive(Clone, Debug)]
pub struct Throughput {
    pub wall: Duration,
    pub simulated: Duration,
    pub messages: u64,
}

impl Throughput {
    pub fn wall_ns_per_message(&self) -> f64 {
        self.wall.as_nanos() as f64 / self.messages.max(1) as f64
    }
    pub fn simulated_per_wall(&self) -> f64 {
        self.simulated.as_secs_f64() / self.wall.as_secs_f64().max(1e-9)
    }
}

/// Runs `seeds` one after another on this thread (one core, as a campaign worker does).
pub fn measure_campaign(template: &RunOptions, seeds: std::ops::Range<u64>) -> Throughput {
    let started = Instant::now();
    let (mut simulated, mut messages) = (0.0, 0);
    for seed in seeds {
        let options = template.for_seed(seed);
        let report = run_seed(&options);
        simulated += report.simulated_secs;
        messages += report.messages_delivered;
    }
    Throughput { wall: started.elapsed(), simulated: Duration::from_secs_f64(simulated), messages }
}

/// Bare madsim: two nodes exchange `n_messages` request/response messages over the
/// simulated network with the default latency, doing nothing else. This is the floor the
/// executor and network simulator set.
pub fn measure_bare_madsim(n_messages: u64, seed: u64) -> Throughput {
    const TAG: u64 = 7;
    let runtime = Runtime::with_seed_and_config(seed, madsim::Config::default());
    let started = Instant::now();
    let (simulated, messages) = runtime.block_on(async move {
        let handle = madsim::runtime::Handle::current();
        let a: std::net::SocketAddr = "10.9.0.1:1".parse().expect("address");
        let b: std::net::SocketAddr = "10.9.0.2:1".parse().expect("address");
        let server = handle.create_node().name("echo").ip(a.ip()).build();
        let client = handle.create_node().name("ping").ip(b.ip()).build();
        server.spawn(async move {
            let ep = Endpoint::bind(a).await.expect("bind echo");
            while let Ok((payload, from)) = ep.recv_from_raw(TAG).await {
                let _ = ep.send_to_raw(from, TAG, payload).await;
            }
        });
        let rounds = n_messages / 2;
        client
            .spawn(async move {
                let ep = Endpoint::bind(b).await.expect("bind ping");
                for i in 0..rounds {
                    ep.send_to_raw(a, TAG, Box::new(i)).await.expect("send");
                    ep.recv_from_raw(TAG).await.expect("receive");
                }
            })
            .await
            .expect("ping node");
        let simulated = madsim::time::TimeHandle::current().elapsed();
        (simulated, madsim::net::NetSim::current().stat().msg_count)
    });
    Throughput { wall: started.elapsed(), simulated, messages }
}

/// The report `kubesim bench` prints.
pub fn render(campaign: &Throughput, n_seeds: u64, bare: &Throughput) -> String {
    let ratio = campaign.wall_ns_per_message() / bare.wall_ns_per_message().max(1e-9);
    format!(
        "default campaign: {n_seeds} seeds in {:.2}s wall on one core: {:.1} seeds/s, {:.0}x simulated time per wall second, \
         {} messages, {:.0} ns wall per delivered message\n\
         bare madsim messaging: {} messages in {:.2}s wall, {:.0} ns wall per delivered message\n\
         framework overhead: {ratio:.2}x bare madsim's wall time per delivered message (target: within 2x)",
        campaign.wall.as_secs_f64(),
        n_seeds as f64 / campaign.wall.as_secs_f64().max(1e-9),
        campaign.simulated_per_wall(),
        campaign.messages,
        campaign.wall_ns_per_message(),
        bare.messages,
        bare.wall.as_secs_f64(),
        bare.wall_ns_per_message(),
    )
}

/// The cluster sizes `kubesim bench --scale` measures: (kubelets, replicas), nodes 3 → 30
/// → 300 and pods 5 → 100 → 1000, leaving out 1000 pods on 3 nodes (no room:
/// [`sim::workload::Shape::validate`]).
pub const SCALE_SIZES: [(u32, i32); 8] =
    [(3, 5), (30, 5), (300, 5), (3, 100), (30, 100), (300, 100), (30, 1000), (300, 1000)];

/// One size's measurement: the seeds run one after another on this thread.
#[derive(Clone, Debug)]
pub struct ScaleRow {
    pub kubelets: u32,
    pub replicas: i32,
    pub seeds: u64,
    pub throughput: Throughput,
    /// Seeds that did not pass (a size too large to converge in the bound shows here).
    pub failed: u64,
    /// The slowest seed's wall time.
    pub slowest: Duration,
}

impl ScaleRow {
    /// Wall milliseconds per simulated second: the cost the table compares across sizes.
    pub fn wall_ms_per_simulated_s(&self) -> f64 {
        self.throughput.wall.as_secs_f64() * 1e3 / self.throughput.simulated.as_secs_f64().max(1e-9)
    }
}

/// Measures `template` (its faults, bugs and store size) at every size of `sizes`, over
/// `seeds` each.
pub fn measure_scale(template: &RunOptions, sizes: &[(u32, i32)], seeds: std::ops::Range<u64>) -> Vec<ScaleRow> {
    sizes
        .iter()
        .map(|&(kubelets, replicas)| {
            let shape = sim::workload::Shape { kubelets: Some(kubelets), replicas: Some(replicas), ..template.shape };
            let sized = template.clone().with_shape(shape);
            let (mut simulated, mut messages, mut failed, mut slowest) = (0.0, 0, 0, Duration::ZERO);
            let started = Instant::now();
            for seed in seeds.clone() {
                let seed_started = Instant::now();
                let report = run_seed(&sized.for_seed(seed));
                slowest = slowest.max(seed_started.elapsed());
                simulated += report.simulated_secs;
                messages += report.messages_delivered;
                failed += u64::from(!report.passed());
            }
            let throughput =
                Throughput { wall: started.elapsed(), simulated: Duration::from_secs_f64(simulated), messages };
            ScaleRow { kubelets, replicas, seeds: seeds.end - seeds.start, throughput, failed, slowest }
        })
        .collect()
}

/// The scaling table: per size, cost per simulated second and per message, and the cost
/// per simulated second relative to the first row and to its node and pod counts.
pub fn render_scale(rows: &[ScaleRow]) -> String {
    let mut out = String::from(
        "kubelets  pods  seeds  failed  wall s/seed  slowest s  sim s/seed  wall ms/sim s  x first  messages/seed  ns/message\n",
    );
    let first = rows.first().map_or(1.0, ScaleRow::wall_ms_per_simulated_s);
    for row in rows {
        let n = row.seeds.max(1) as f64;
        out.push_str(&format!(
            "{:>8}  {:>4}  {:>5}  {:>6}  {:>11.2}  {:>9.2}  {:>10.1}  {:>13.1}  {:>7.1}  {:>13.0}  {:>10.0}\n",
            row.kubelets,
            row.replicas,
            row.seeds,
            row.failed,
            row.throughput.wall.as_secs_f64() / n,
            row.slowest.as_secs_f64(),
            row.throughput.simulated.as_secs_f64() / n,
            row.wall_ms_per_simulated_s(),
            row.wall_ms_per_simulated_s() / first.max(1e-9),
            row.throughput.messages as f64 / n,
            row.throughput.wall_ns_per_message(),
        ));
    }
    out
}
