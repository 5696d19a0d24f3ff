//! The `kubesim` command line: flags, their validation, and what each command prints.
//!
//! Exit codes: 0 every check held; 1 a violation was found; 2 bad input (one clear line,
//! never a panic); 3 internal error, such as a results file or the report that could not be
//! written. A verdict is never turned into 0: when stdout is closed early (`kubesim ... |
//! head -1`) kubesim stops printing and runs on, and exits with the verdict; when stdout
//! cannot be written for another reason (`>/dev/full`), a failing verdict still exits 1
//! and a passing one exits 3 (the report the user asked for was lost). See
//! `docs/bad-input.md`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Parser, Subcommand};
use faults::{FaultKind, PlanFile};

use crate::campaign::{run_campaign_shard, run_guarded, CampaignOptions, CampaignSummary, MAX_SEEDS_PER_RUN};
use sim::bugs::PlantedBug;
use sim::runner::{Faults, RunOptions};
use sim::scenario::Scenario;
use verdict::outcome::Property;

/// The name this command line goes by in the commands it prints (repro lines, the echo
/// of what runs): `kubesim`, or the name of the user's binary that called
/// [`crate::main`] (`database-kubesim`), so that a printed command can be pasted as is.
pub fn program() -> &'static str {
    PROGRAM.get().map_or("kubesim", String::as_str)
}

static PROGRAM: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Names the command line after the binary at `argv0` (its file name), unless already
/// named.
pub fn set_program_from(argv0: &std::ffi::OsStr) {
    if let Some(name) = std::path::Path::new(argv0).file_name().and_then(|n| n.to_str()) {
        let _ = PROGRAM.set(name.to_string());
    }
}

pub const EXIT_PASS: u8 = 0;
pub const EXIT_VIOLATION: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_INTERNAL: u8 = 3;

#[derive(Parser, Debug)]
#[command(
    name = "kubesim",
    version,
    about = "Deterministic simulation testing for the storage path of a Kubernetes control plane"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// What one seed runs: the flags `run`, `repro` and `campaign` share.
#[derive(Args, Debug, Clone)]
pub struct SeedFlags {
    #[arg(long, default_value = "deploy-nginx", help = scenario_help())]
    pub scenario: Scenario,
    #[arg(long, default_value = "all", help = faults_help())]
    pub faults: String,
    /// Replay this saved fault plan (JSON) instead of generating one.
    #[arg(long, conflicts_with = "faults")]
    pub plan: Option<PathBuf>,
    #[arg(long = "bug", help = bugs_help())]
    pub bugs: Vec<PlantedBug>,
    #[arg(long, value_name = "MENU", conflicts_with = "plan", help = workload_help())]
    pub workload: Option<String>,
    /// Worker nodes (kubelets, 4 CPUs each) in the control plane: 3 by default, at most 1000.
    #[arg(long, value_name = "N")]
    pub kubelets: Option<u32>,
    /// The replicas `kubectl scale` asks for (`kubectl create` asks for the lesser of 3 and
    /// N): 5 by default; each pod asks 100 millicores, so N needs N/40 kubelets.
    #[arg(long, value_name = "N")]
    pub replicas: Option<i32>,
    /// Store members, instead of the 3 or 5 each seed draws: 1 to 7.
    #[arg(long, value_name = "N")]
    pub store_members: Option<usize>,
}

/// `--faults`'s help: every kind, from the one list the parser reads.
/// `--scenario`'s help: every built-in scenario with what it runs, from the scenarios
/// themselves so that it cannot fall behind.
fn scenario_help() -> String {
    let built_in: Vec<String> =
        Scenario::BUILT_IN.iter().map(|scenario| format!("{} ({})", scenario.name(), scenario.about())).collect();
    format!("Which scenario to run: {}; or one a user registered (`kubesim scenarios` lists them)", built_in.join("; "))
}

fn faults_help() -> String {
    let names = |kinds: &[FaultKind]| kinds.iter().map(|kind| kind.name()).collect::<Vec<_>>().join(", ");
    let by_name: Vec<FaultKind> =
        FaultKind::ALL.into_iter().filter(|kind| !FaultKind::DEFAULT.contains(kind)).collect();
    let menus: Vec<String> = faults::menus::menus()
        .iter()
        .map(|menu| format!("`{}` ({})", menu.name, names(&menu.kinds.iter().copied().collect::<Vec<_>>())))
        .collect();
    format!(
        "Fault kinds the seed's swarm plan may use: a menu's name, comma-separated kind names, or `none`. \
         `all` (the default) is {}; these are asked for by name: {}. Menus: {}",
        names(&FaultKind::DEFAULT),
        names(&by_name),
        menus.join("; ")
    )
}

/// `--workload`'s help: every action group, from the list the parser reads.
fn workload_help() -> String {
    let groups: Vec<String> = faults::actions::ActionGroup::ALL
        .iter()
        .map(|group| format!("`{}` ({})", group.name(), group.about()))
        .collect();
    format!(
        "The generated workload: users' actions each seed draws beside deploy-nginx's own user, saved in its plan. \
         `all` (deploy-nginx's default; no other scenario runs one), `none`, or comma-separated groups: {}",
        groups.join("; ")
    )
}

/// `--bug`'s help: every planted bug, from the table `kubesim bugs` prints.
fn bugs_help() -> String {
    let names: Vec<&str> = PlantedBug::ALL.iter().map(|bug| bug.name()).collect();
    format!("Switch a planted bug on (repeatable; `kubesim bugs` says what catches each): {}", names.join(", "))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one seed; print its timeline, faults, checks and trace hash.
    Run {
        /// The seed: the whole run is a function of it and the flags.
        #[arg(long, required_unless_present = "case")]
        seed: Option<u64>,
        /// Replay a regression case (`ci/regressions/NAME.json`): its seed, scenario,
        /// planted bugs, store knobs and plan. Says whether the case gave its expected
        /// verdict and exits as `kubesim corpus` does: 0 if it did, 1 if not.
        #[arg(long, conflicts_with_all = ["seed", "plan", "faults", "bugs", "print_plan", "save"])]
        case: Option<PathBuf>,
        #[command(flatten)]
        flags: SeedFlags,
        /// Print the detailed log (tracing, filtered by RUST_LOG, default "info").
        #[arg(long)]
        trace: bool,
        /// Print the seed's fault plan as JSON and exit without running it.
        #[arg(long)]
        print_plan: bool,
        /// Save the run as a regression case here (`ci/regressions/NAME.json`): its seed,
        /// scenario, bugs and plan, expecting the verdict it gave (pass, or caught by the
        /// planted bug's invariant if violated, else by the first violated invariant).
        /// Refuses an existing file unless --force.
        #[arg(long, conflicts_with = "print_plan")]
        save: Option<PathBuf>,
        /// Let --save replace an existing file.
        #[arg(long, requires = "save")]
        force: bool,
        /// Write the seed's whole history here as JSON lines (schema `kubesim.history`
        /// version 1: a header line, then one record per line; see `sim::export`).
        #[arg(long, conflicts_with = "print_plan")]
        history: Option<PathBuf>,
        /// Write the store clients' operations here as a Jepsen EDN history for Elle's
        /// rw-register model (store-smoke's workload; see `sim::export`).
        #[arg(long, conflicts_with = "print_plan")]
        history_edn: Option<PathBuf>,
        /// Write the run as one self-contained HTML page here: swimlanes per node, faults,
        /// operations, commits and violations over simulated time (see `sim::html`).
        #[arg(long, conflicts_with = "print_plan")]
        html: Option<PathBuf>,
    },
    /// Run a range of seeds across worker threads.
    Campaign {
        /// Seed range `A..B` (B excluded); one campaign runs at most 1 000 000 of its seeds
        /// (after --shard): shard a larger range.
        #[arg(long)]
        seeds: String,
        /// Worker threads (default: all cores; at most 256). Each runs one seed at a time.
        #[arg(long)]
        jobs: Option<usize>,
        #[command(flatten)]
        flags: SeedFlags,
        /// Write one JSON line per seed here, flushed as each seed finishes. An existing
        /// file is replaced, as `-o` does elsewhere.
        #[arg(long)]
        out: Option<PathBuf>,
        /// A seed running longer than this (wall-clock seconds, at least 1) fails as a
        /// timeout and is stopped.
        #[arg(long, default_value_t = 120)]
        seed_timeout_secs: u64,
        /// Run only the K-th of N disjoint slices of the range: the seeds with
        /// `seed % N == K` (0 <= K < N). `kubesim merge` joins the shards' --out files.
        #[arg(long)]
        shard: Option<crate::merge::Shard>,
        /// Write the campaign as JUnit XML here when it ends: a test case per failure
        /// signature and one for the passing seeds (GitHub, GitLab and Jenkins render it).
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Write an HTML report (as `run --html`) of each failing seed into this directory
        /// (created if missing), `seed-N.html`, replaying the seed once more (at most 20
        /// seeds, the smallest first).
        #[arg(long)]
        html_dir: Option<PathBuf>,
    },
    /// Minimize a failing seed's fault plan, replaying the same seed, keeping only
    /// candidates that still violate the same invariant.
    Shrink {
        /// The failing seed; every candidate plan replays it.
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        flags: SeedFlags,
        /// The invariant to keep violating (default: the planted bug's, if violated, else
        /// the first one the seed violates).
        #[arg(long)]
        invariant: Option<String>,
        /// At most this many runs; the search stops there and says so.
        #[arg(long, default_value_t = crate::shrink::DEFAULT_MAX_RUNS)]
        max_runs: usize,
        /// Save the shrunk plan here (replay: `kubesim run --seed N --plan FILE`); an
        /// existing file is replaced. Checked before the search starts.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Save a regression case here (`ci/regressions/NAME.json`). Refuses an existing
        /// file unless --force; checked before the search starts.
        #[arg(long)]
        save: Option<PathBuf>,
        /// Let --save replace an existing file.
        #[arg(long, requires = "save")]
        force: bool,
        /// A run longer than this (wall-clock seconds, at least 1) fails as a timeout.
        #[arg(long, default_value_t = 120)]
        seed_timeout_secs: u64,
    },
    /// Merge campaign result files (JSON lines, e.g. one per shard) into one summary.
    Merge {
        /// Result files written by `kubesim campaign --out`.
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The range the files must cover exactly (default: from their lowest to their
        /// highest seed, without gaps).
        #[arg(long)]
        seeds: Option<String>,
        /// Write the merged records here, sorted by seed; an existing file is replaced.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Fail (exit 1) when a coverage point required of this campaign menu (`default`
        /// or `disk-loss`, see the `coverage` crate's registry) was reached by no seed.
        #[arg(long, value_name = "MENU")]
        require_coverage: Option<String>,
        /// Write the merged campaign as JUnit XML here: a test case per failure signature
        /// and one for the passing seeds.
        #[arg(long)]
        junit: Option<PathBuf>,
        /// Merge results of different kubesim builds (commits); refused by default, since a
        /// seed replays only at the commit that ran it.
        #[arg(long)]
        allow_mixed_builds: bool,
    },
    /// Replay the regression corpus: every case must give its expected verdict.
    Corpus {
        /// A directory of cases, or one case file (default: the repository's
        /// `ci/regressions`, found from the current directory or any parent).
        path: Option<PathBuf>,
        /// A case running longer than this (wall-clock seconds, at least 1) fails as a
        /// timeout.
        #[arg(long, default_value_t = 120)]
        seed_timeout_secs: u64,
    },
    /// Run one seed in a fresh runtime and print its result as JSON; with
    /// --check-determinism, run it twice and compare everything they recorded.
    Repro {
        /// The seed: the whole run is a function of it and the flags.
        #[arg(long)]
        seed: u64,
        #[command(flatten)]
        flags: SeedFlags,
        /// Run the seed twice, in fresh runtimes, and compare the two runs' trace hashes
        /// and reports; fail loudly on any difference.
        #[arg(long)]
        check_determinism: bool,
    },
    /// List the planted bugs and the invariant that must catch each.
    Bugs,
    /// List the scenarios this kubesim runs (its own and the registered ones) and the
    /// invariants it judges.
    Scenarios,
    /// Measure the default campaign's speed against bare madsim messaging, in one process.
    Bench {
        /// Seed range of the campaign part, run on one core (at most 1 000 000 seeds).
        #[arg(long, default_value = "0..20")]
        seeds: String,
        /// Instead: the scaling table, the seeds run at each cluster size (kubelets 3, 30,
        /// 300; pods 5, 100, 1000), with the cost per simulated second of each.
        #[arg(long, conflicts_with_all = ["kubelets", "replicas"])]
        scale: bool,
        #[command(flatten)]
        flags: SeedFlags,
    },
}

/// A user mistake: printed as one line, exit code 2.
#[derive(Debug)]
pub struct BadInput(pub String);

/// Why a command ended without a verdict: bad input (exit 2) or an operational failure of
/// the machine it ran on, such as a results file that could not be written (exit 3).
#[derive(Debug)]
pub enum CliError {
    BadInput(String),
    Operational(String),
}

impl CliError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::BadInput(_) => EXIT_BAD_INPUT,
            CliError::Operational(_) => EXIT_INTERNAL,
        }
    }

    pub fn message(&self) -> &str {
        match self {
            CliError::BadInput(message) | CliError::Operational(message) => message,
        }
    }
}

impl From<BadInput> for CliError {
    fn from(bad: BadInput) -> Self {
        CliError::BadInput(bad.0)
    }
}

/// The most worker threads a campaign starts: more only queue on the cores, and each holds
/// a seed's whole simulation in memory.
pub const MAX_JOBS: usize = 256;

impl SeedFlags {
    /// The options of one seed, or a clear message naming what was wrong.
    pub fn to_options(&self, seed: u64) -> Result<RunOptions, BadInput> {
        let shape = self.shape();
        shape.validate().map_err(|e| BadInput(e.to_string()))?;
        let mut options = RunOptions::new(seed, self.scenario.clone()).with_shape(shape);
        options.faults = match &self.plan {
            Some(path) => {
                let file = PlanFile::load(path).map_err(|e| BadInput(e.to_string()))?;
                let plan = file
                    .fit(&options.topology())
                    .map_err(|e| BadInput(format!("plan {} does not fit {}: {e}", path.display(), self.scenario)))?;
                Faults::Plan(plan)
            }
            None => parse_fault_menu(&self.faults)?,
        };
        options.faults.check_supported_by(&self.scenario).map_err(|e| match &self.plan {
            Some(path) => BadInput(format!("plan {}: {e}", path.display())),
            None => BadInput(format!("--faults: {e}")),
        })?;
        if let Some(menu) = &self.workload {
            options.workload = faults::actions::parse_menu(menu).map_err(|e| BadInput(format!("--workload: {e}")))?;
        }
        let plan_has_workload = matches!(&options.faults, Faults::Plan(plan) if !plan.workload.is_empty());
        if (!options.workload.is_empty() || plan_has_workload) && self.scenario != Scenario::DeployNginx {
            let source = match &self.plan {
                Some(path) => format!("plan {}: its workload", path.display()),
                None => "--workload".to_string(),
            };
            return Err(BadInput(format!(
                "{source}: only the deploy-nginx scenario runs a generated workload, not {}",
                self.scenario
            )));
        }
        for bug in &self.bugs {
            bug.plant(&mut options);
        }
        Ok(options)
    }

    /// The options template of the seeds of `seeds` in `shard` (`campaign`, `bench`): as
    /// [`Self::to_options`] for the first seed, with a `--plan` checked against the store
    /// size of every seed that runs: seeds pick 3 or 5 members, and a plan may name
    /// store-5. The seeds are looked at only until every size a seed can pick was seen.
    pub fn to_range_options(
        &self,
        seeds: &std::ops::Range<u64>,
        shard: crate::merge::Shard,
    ) -> Result<RunOptions, BadInput> {
        let template = self.to_options(shard.seeds(seeds.clone()).next().unwrap_or(seeds.start))?;
        if let (Faults::Plan(plan), Some(path)) = (&template.faults, &self.plan) {
            let sizes: BTreeSet<usize> = if template.seed_picks_knobs {
                sim::knobs::STORE_SIZES.into_iter().collect()
            } else {
                BTreeSet::from([template.cluster.store.n_members])
            };
            // `to_options` checked the first seed's size.
            let mut sizes_checked = BTreeSet::from([template.cluster.store.n_members]);
            for seed in shard.seeds(seeds.clone()) {
                if sizes_checked.len() == sizes.len() {
                    break;
                }
                let n_members = template.knobs_of(seed).store_members;
                if !sizes_checked.insert(n_members) {
                    continue;
                }
                let mut options = template.clone();
                options.cluster.store.n_members = n_members;
                plan.validate(&options.topology()).map_err(|e| {
                    BadInput(format!(
                        "plan {} does not fit seed {seed} of {} ({n_members} store members): {e}",
                        path.display(),
                        self.scenario
                    ))
                })?;
            }
        }
        Ok(template)
    }

    /// The flags that, after `--seed N`, replay a seed of this configuration, quoted for a
    /// POSIX shell (a plan path with a space pastes as one word).
    /// The cluster size these flags fix.
    pub fn shape(&self) -> sim::workload::Shape {
        sim::workload::Shape { kubelets: self.kubelets, replicas: self.replicas, store_members: self.store_members }
    }

    pub fn repro_flags(&self) -> String {
        let mut flags = String::new();
        if self.scenario != Scenario::DeployNginx {
            flags.push_str(&format!(" --scenario {}", self.scenario));
        }
        if let Some(n) = self.kubelets {
            flags.push_str(&format!(" --kubelets {n}"));
        }
        if let Some(n) = self.replicas {
            flags.push_str(&format!(" --replicas {n}"));
        }
        if let Some(n) = self.store_members {
            flags.push_str(&format!(" --store-members {n}"));
        }
        match &self.plan {
            Some(path) => flags.push_str(&format!(" --plan {}", shell_quote(&path.display().to_string()))),
            None if self.faults != "all" => flags.push_str(&format!(" --faults {}", shell_quote(&self.faults))),
            None => {}
        }
        if let Some(menu) = &self.workload {
            flags.push_str(&format!(" --workload {}", shell_quote(menu)));
        }
        for bug in &self.bugs {
            flags.push_str(&format!(" --bug {bug}"));
        }
        flags
    }
}

/// `word` quoted for a POSIX shell, as pasted into a terminal: unchanged when every
/// character is one no shell treats specially (so a fault menu's commas stay as they are,
/// and repro lines, which `kubesim merge` compares across files, read as they always
/// have); otherwise quoted by `shlex`. (A path holding a NUL byte cannot exist, so it is
/// printed as is.)
pub fn shell_quote(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || ",._+:@%/=-".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        return word.to_string();
    }
    shlex::try_quote(word).map_or_else(|_| word.to_string(), |quoted| quoted.into_owned())
}

fn parse_fault_menu(text: &str) -> Result<Faults, BadInput> {
    match text {
        "none" => Ok(Faults::None),
        name if faults::menus::menu(name).is_some() => {
            Ok(Faults::Swarm(faults::menus::menu(name).expect("just found").kinds))
        }
        list => {
            let menu: BTreeSet<FaultKind> = FaultKind::parse_list(list).map_err(|e| {
                let menus: Vec<&str> = faults::menus::menus().iter().map(|menu| menu.name).collect();
                BadInput(format!("--faults: {e}; or a menu: {}, or none", menus.join(", ")))
            })?;
            Ok(Faults::Swarm(menu))
        }
    }
}

/// Parses `A..B` into a non-empty range.
pub fn parse_seed_range(text: &str) -> Result<std::ops::Range<u64>, BadInput> {
    let bad = || BadInput(format!("--seeds: expected a range like 0..500, got '{text}'"));
    let (a, b) = text.split_once("..").ok_or_else(bad)?;
    let start: u64 = a.trim().parse().map_err(|_| bad())?;
    let end: u64 = b.trim().parse().map_err(|_| bad())?;
    if start >= end {
        return Err(BadInput(format!("--seeds: the range {text} is empty")));
    }
    Ok(start..end)
}

/// Refuses to run more than [`MAX_SEEDS_PER_RUN`] seeds in one process: the campaign's
/// summary keeps every seed's result (a few KB each).
fn check_seed_count(seeds: &std::ops::Range<u64>, shard: crate::merge::Shard) -> Result<u64, BadInput> {
    let n_seeds = shard.count_in(seeds.clone());
    if n_seeds > MAX_SEEDS_PER_RUN {
        let of_shard = if shard == crate::merge::Shard::WHOLE { String::new() } else { format!(" (shard {shard})") };
        return Err(BadInput(format!(
            "--seeds: {}..{}{of_shard} holds {n_seeds} seeds; one run takes at most {MAX_SEEDS_PER_RUN}: \
             split the range, or run it in shards (--shard K/N) and join them with kubesim merge",
            seeds.start, seeds.end
        )));
    }
    Ok(n_seeds)
}

/// A seed's wall-clock limit: at least one second (0 would time out every seed unrun).
fn seed_timeout(secs: u64) -> Result<Duration, BadInput> {
    if secs == 0 {
        return Err(BadInput("--seed-timeout-secs: must be at least 1".into()));
    }
    Ok(Duration::from_secs(secs))
}

/// `kubesim scenarios`: each scenario with what it runs, then every invariant judged.
fn render_scenarios() -> String {
    let scenarios = Scenario::all();
    let width = scenarios.iter().map(|s| s.name().len()).max().unwrap_or(0);
    let mut text = String::from("scenarios:\n");
    for scenario in &scenarios {
        text.push_str(&format!("  {:width$}  {}\n", scenario.name(), scenario.about()));
        for checker in scenario.checkers() {
            text.push_str(&format!("  {:width$}    + invariant {}\n", "", checker.invariant()));
        }
    }
    let invariants: Vec<&str> = verdict::checkers::Invariant::ALL.iter().map(|i| i.name()).collect();
    text.push_str(&format!("invariants judged on every scenario: {}", invariants.join(", ")));
    text
}

/// Runs the parsed command and returns the process exit code.
pub fn execute(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Run { seed, case: Some(case), trace, flags, .. } => {
            debug_assert!(seed.is_none());
            if flags.scenario != Scenario::DeployNginx {
                return Err(BadInput("--case: the case names its scenario; drop --scenario".into()).into());
            }
            run_case_command(&case, trace)
        }
        Command::Run { seed, case: None, flags, trace, print_plan, save, force, history, history_edn, html } => {
            let seed = seed.ok_or_else(|| BadInput("--seed or --case is required".into()))?;
            let save = save.map(|path| crate::cli_regress::Destination::case(path, force)).transpose()?;
            for (flag, path) in [("--history", &history), ("--history-edn", &history_edn), ("--html", &html)] {
                if let Some(path) = path {
                    crate::cli_regress::check_writable(path, flag)?;
                }
            }
            let exports = HistoryExports { jsonl: history, edn: history_edn, html };
            run_command(seed, &flags, trace, print_plan, save.as_ref(), &exports)
        }
        Command::Campaign { seeds, jobs, flags, out, seed_timeout_secs, shard, junit, html_dir } => {
            campaign_command(&seeds, jobs, &flags, CampaignOutputs { out, junit, html_dir }, seed_timeout_secs, shard)
        }
        Command::Shrink { seed, flags, invariant, max_runs, out, save, force, seed_timeout_secs } => {
            let request = crate::cli_regress::ShrinkRequest {
                seed,
                flags,
                invariant,
                max_runs,
                out: out.map(crate::cli_regress::Destination::file).transpose()?,
                save: save.map(|path| crate::cli_regress::Destination::case(path, force)).transpose()?,
                wall_limit: seed_timeout(seed_timeout_secs)?,
            };
            crate::cli_regress::shrink_command(&request)
        }
        Command::Merge { files, seeds, out, require_coverage, junit, allow_mixed_builds } => {
            let request = crate::cli_regress::MergeRequest {
                seeds: seeds.as_deref(),
                out,
                require_coverage: require_coverage.as_deref(),
                junit,
                allow_mixed_builds,
            };
            crate::cli_regress::merge_command(&files, request)
        }
        Command::Corpus { path, seed_timeout_secs } => {
            crate::cli_regress::corpus_command(path.as_deref(), seed_timeout(seed_timeout_secs)?)
        }
        Command::Repro { seed, flags, check_determinism } => repro_command(seed, &flags, check_determinism),
        Command::Bugs => {
            out(sim::bugs::render_table().trim_end());
            Ok(EXIT_PASS)
        }
        Command::Scenarios => {
            out(&render_scenarios());
            Ok(EXIT_PASS)
        }
        Command::Bench { seeds, scale: true, flags } => {
            let seeds = parse_seed_range(&seeds)?;
            check_seed_count(&seeds, crate::merge::Shard::WHOLE)?;
            let template = flags.to_range_options(&seeds, crate::merge::Shard::WHOLE)?;
            out(&format!("{} bench --scale --seeds {}..{}{}", program(), seeds.start, seeds.end, flags.repro_flags()));
            let rows = crate::bench::measure_scale(&template, &crate::bench::SCALE_SIZES, seeds);
            out(&crate::bench::render_scale(&rows));
            Ok(EXIT_PASS)
        }
        Command::Bench { seeds, scale: false, flags } => {
            let seeds = parse_seed_range(&seeds)?;
            let n_seeds = check_seed_count(&seeds, crate::merge::Shard::WHOLE)?;
            let template = flags.to_range_options(&seeds, crate::merge::Shard::WHOLE)?;
            out(&format!("{} bench --seeds {}..{}{}", program(), seeds.start, seeds.end, flags.repro_flags()));
            let campaign = crate::bench::measure_campaign(&template, seeds);
            // As many messages as the campaign delivered, so both runs are of a size.
            let bare = crate::bench::measure_bare_madsim(campaign.messages.max(1000), 1);
            out(&crate::bench::render(&campaign, n_seeds, &bare));
            Ok(EXIT_PASS)
        }
    }
}

/// Where `kubesim run` writes the seed's history, if asked.
#[derive(Default)]
struct HistoryExports {
    jsonl: Option<PathBuf>,
    edn: Option<PathBuf>,
    html: Option<PathBuf>,
}

fn run_command(
    seed: u64,
    flags: &SeedFlags,
    trace: bool,
    print_plan: bool,
    save: Option<&crate::cli_regress::Destination>,
    exports: &HistoryExports,
) -> Result<u8, CliError> {
    let options = flags.to_options(seed)?;
    if print_plan {
        match options.plan() {
            Some(plan) => out(&plan.to_json_pretty()),
            None => out("null"),
        }
        return Ok(EXIT_PASS);
    }
    let program = program();
    let command = format!("{program} run --seed {seed}{}", flags.repro_flags());
    let (code, report) = run_and_print(&options, &command, trace, exports)?;
    if let Some(destination) = save {
        // The planted bug's invariant when the run broke it, else the first broken property.
        let broken: Vec<Property> = report.outcome.lines().into_iter().map(|(property, _)| property).collect();
        let bug_invariant =
            flags.bugs.iter().map(|bug| Property::from(bug.caught_by())).find(|caught_by| broken.contains(caught_by));
        let expect = match (broken.first(), bug_invariant) {
            (None, _) => "pass".to_string(),
            (Some(_), Some(property)) | (Some(&property), None) => format!("caught-by: {property}"),
        };
        let description = format!("{command}: {expect}");
        crate::cli_regress::save_new_case(destination, description, seed, flags, options.plan(), expect)?;
    }
    Ok(code)
}

/// `kubesim run --case FILE`: one regression case, run and printed like a seed, then
/// whether it gave its expected verdict; the exit code follows that, as in `kubesim
/// corpus` (0 expected verdict, 1 changed).
fn run_case_command(path: &std::path::Path, trace: bool) -> Result<u8, CliError> {
    let case = crate::corpus::load_case(path).map_err(|e| BadInput(e.to_string()))?;
    let command = crate::corpus::Case::repro(path);
    out(&format!("case {}: {} (expect {})", case.case.name, case.case.description, case.expect));
    let (_, report) = run_and_print(&case.options, &command, trace, &HistoryExports::default())?;
    let broken = report.outcome.broken();
    let held = case.expect.holds(&broken);
    let got = if broken.is_empty() {
        report.outcome.name().to_string()
    } else {
        format!("violated {}", crate::shrink::names(&broken))
    };
    if held {
        out(&format!("case {}: expectation met (expected {}, got {got})", case.case.name, case.expect));
        Ok(EXIT_PASS)
    } else {
        out(&format!(
            "case {}: CHANGED verdict: expected {}, got {got} (fix the regression, or update the case's \"expect\")",
            case.case.name, case.expect
        ));
        Ok(EXIT_VIOLATION)
    }
}

/// Runs one seed, prints its report (the command first, the repro command on failure) and
/// returns the exit code.
fn run_and_print(
    options: &RunOptions,
    command: &str,
    trace: bool,
    exports: &HistoryExports,
) -> Result<(u8, sim::report::RunReport), CliError> {
    if trace {
        init_tracing();
    }
    out(command);
    let store = &options.cluster.store;
    let picked_by = if options.seed_picks_knobs { "picked by the seed" } else { "set by the case" };
    out(&format!("store: {} members; knobs ({picked_by}): {}", store.n_members, options.knobs()));
    let wall = Instant::now();
    let (report, history) = sim::runner::run_seed_with_history(options);
    let history = Some(history);
    let wall_secs = wall.elapsed().as_secs_f64();
    if let Some(history) = history.as_ref().filter(|_| !report.passed()) {
        out("why it failed (the history's slice that leads to each violation):");
        for explanation in crate::explain::explain(&report, history) {
            out(&format!("  {}", explanation.text));
        }
    }
    out(run_summary(command, &report).trim_end());
    // The only wall-clock figure, kept out of `run_summary` so that it stays a pure
    // function of the run (and snapshot-testable).
    out(&format!(
        "wall time {:.3}s ({:.0}x simulated time per wall second)",
        wall_secs,
        report.simulated_secs / wall_secs.max(1e-9)
    ));
    if let Some(history) = &history {
        if let Some(path) = &exports.jsonl {
            crate::cli_regress::write_file(
                path,
                &crate::export::history_jsonl(history, options.seed, &report.scenario),
            )?;
            out(&format!("history: {} ({} records)", path.display(), history.records.len()));
        }
        if let Some(path) = &exports.edn {
            crate::cli_regress::write_file(path, &crate::export::store_ops_edn(history))?;
            out(&format!("store operations (Jepsen EDN): {}", path.display()));
        }
        if let Some(path) = &exports.html {
            crate::cli_regress::write_file(path, &crate::html::render(&report, history))?;
            out(&format!("html report: {}", path.display()));
        }
    }
    Ok((if report.passed() { EXIT_PASS } else { EXIT_VIOLATION }, report))
}

/// What `kubesim run` prints after its command line, wall time aside: the report and, on a
/// failure, the repro command.
pub fn run_summary(command: &str, report: &sim::report::RunReport) -> String {
    let mut text = report.render();
    if !report.passed() {
        text.push_str(&format!("repro: {command}\n"));
    }
    text
}

/// Where a campaign writes besides its summary.
struct CampaignOutputs {
    /// One JSON line per seed.
    out: Option<PathBuf>,
    /// JUnit XML, written at the end.
    junit: Option<PathBuf>,
    /// A directory for the failing seeds' HTML reports.
    html_dir: Option<PathBuf>,
}

/// The most failing seeds `campaign --html-dir` writes a report of.
const MAX_HTML_REPORTS: usize = 20;

fn campaign_command(
    seeds: &str,
    jobs: Option<usize>,
    flags: &SeedFlags,
    outputs: CampaignOutputs,
    seed_timeout_secs: u64,
    shard: Option<crate::merge::Shard>,
) -> Result<u8, CliError> {
    let CampaignOutputs { out: out_path, junit, html_dir } = outputs;
    if let Some(path) = &junit {
        crate::cli_regress::check_writable(path, "--junit")?;
    }
    if let Some(dir) = &html_dir {
        prepare_html_dir(dir)?;
    }
    let seeds = parse_seed_range(seeds)?;
    let shard_flag = shard.map_or(String::new(), |shard| format!(" --shard {shard}"));
    let shard = shard.unwrap_or(crate::merge::Shard::WHOLE);
    let n_seeds = check_seed_count(&seeds, shard)?;
    let template = flags.to_range_options(&seeds, shard)?;
    let jobs = worker_count(jobs)?;
    let wall_limit = seed_timeout(seed_timeout_secs)?;
    let mut file = match &out_path {
        Some(path) => Some(std::io::BufWriter::new(
            std::fs::File::create(path).map_err(|e| crate::cli_regress::destination_error("--out", path, &e))?,
        )),
        None => None,
    };
    let program = program();
    out(&format!(
        "{program} campaign --seeds {}..{}{shard_flag} --jobs {jobs}{}{}",
        seeds.start,
        seeds.end,
        flags.repro_flags(),
        out_path.as_ref().map_or(String::new(), |path| format!(" --out {}", shell_quote(&path.display().to_string())))
    ));
    let options = CampaignOptions { seeds, jobs, template, repro_flags: flags.repro_flags(), wall_limit };
    let summary = run_with_progress(&options, shard, n_seeds, file.as_mut().map(|f| f as &mut dyn std::io::Write));
    let summary = summary.map_err(|e| {
        let path = out_path.as_ref().map_or("the results file".to_string(), |p| p.display().to_string());
        CliError::Operational(format!(
            "--out {path}: cannot write: {}; the campaign stopped after {} seed(s), {} of them failed",
            e.error, e.done, e.failed
        ))
    })?;
    out(summary.render().trim_end());
    if let Some(path) = out_path {
        out(&format!("results: {}", path.display()));
    }
    if let Some(dir) = html_dir {
        write_html_reports(&dir, &summary, &options)?;
    }
    if let Some(path) = junit {
        let program = crate::cli::program();
        let suite = format!(
            "{program} campaign --seeds {}..{}{shard_flag}{}",
            options.seeds.start,
            options.seeds.end,
            flags.repro_flags()
        );
        crate::cli_regress::write_file(&path, &crate::junit::render(&summary, &suite))?;
        out(&format!("junit: {}", path.display()));
    }
    Ok(if summary.n_failed() == 0 { EXIT_PASS } else { EXIT_VIOLATION })
}

/// Runs the campaign's shard under a progress bar (its rate and failures so far), with
/// seeds' panics kept off stderr: a panicking seed is a finding, reported in its result.
fn run_with_progress(
    options: &CampaignOptions,
    shard: crate::merge::Shard,
    n_seeds: u64,
    file: Option<&mut dyn std::io::Write>,
) -> Result<crate::campaign::CampaignSummary, crate::campaign::CampaignWriteError> {
    let bar = progress_bar(n_seeds);
    let failures = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    std::panic::set_hook(Box::new(|_| {}));
    let summary = run_campaign_shard(options, shard, file, &|result, done| {
        if !result.passed() {
            failures.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        let rate = done as f64 / started.elapsed().as_secs_f64().max(1e-9);
        bar.set_position(done as u64);
        bar.set_message(format!("{rate:.1} seeds/s, {} failed", failures.load(std::sync::atomic::Ordering::Relaxed)));
    });
    let _ = std::panic::take_hook();
    bar.finish_and_clear();
    summary
}

/// `--html-dir`: created if missing, refused if it names something else than a directory.
fn prepare_html_dir(dir: &std::path::Path) -> Result<(), CliError> {
    if dir.exists() && !dir.is_dir() {
        return Err(BadInput(format!("--html-dir {}: not a directory", dir.display())).into());
    }
    std::fs::create_dir_all(dir).map_err(|e| crate::cli_regress::destination_error("--html-dir", dir, &e))?;
    Ok(())
}

/// `--jobs`, checked (1 to `MAX_JOBS`); every core when absent.
fn worker_count(jobs: Option<usize>) -> Result<usize, CliError> {
    match jobs {
        Some(0) => Err(BadInput("--jobs: must be at least 1".into()).into()),
        Some(jobs) if jobs > MAX_JOBS => {
            Err(BadInput(format!("--jobs: at most {MAX_JOBS} workers, got {jobs}")).into())
        }
        Some(jobs) => Ok(jobs),
        None => Ok(std::thread::available_parallelism().map_or(1, |n| n.get()).min(MAX_JOBS)),
    }
}

/// `--html-dir`: the smallest failing seeds (at most `MAX_HTML_REPORTS`) replayed once
/// more, each drawn as `seed-N.html`.
fn write_html_reports(
    dir: &std::path::Path,
    summary: &CampaignSummary,
    options: &CampaignOptions,
) -> Result<(), CliError> {
    let failing: Vec<u64> =
        summary.results.iter().filter(|r| !r.passed()).map(|r| r.seed).take(MAX_HTML_REPORTS).collect();
    for seed in &failing {
        let (report, history) = sim::runner::run_seed_with_history(&options.template.for_seed(*seed));
        let path = dir.join(format!("seed-{seed}.html"));
        crate::cli_regress::write_file(&path, &crate::html::render(&report, &history))?;
    }
    out(&format!("html reports: {} failing seed(s) in {}", failing.len(), dir.display()));
    Ok(())
}

fn progress_bar(n_seeds: u64) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(n_seeds);
    let style = indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} seeds  {msg}  [{elapsed}]")
        .expect("a valid progress template");
    bar.set_style(style);
    bar
}

fn repro_command(seed: u64, flags: &SeedFlags, check_determinism: bool) -> Result<u8, CliError> {
    let options = flags.to_options(seed)?;
    let check_flag = if check_determinism { " --check-determinism" } else { "" };
    let program = program();
    out(&format!("{program} repro --seed {seed}{}{check_flag}", flags.repro_flags()));
    let repro = format!("{program} run --seed {seed}{}", flags.repro_flags());
    let first = run_guarded(&options, Duration::from_secs(600), repro.clone());
    if !check_determinism {
        out(&serde_json::to_string_pretty(&first).expect("serializes"));
        return Ok(if first.passed() { EXIT_PASS } else { EXIT_VIOLATION });
    }
    let second = run_guarded(&options, Duration::from_secs(600), repro);
    out(&format!("run 1: verdict {}, trace-hash {}", first.verdict(), first.trace_hash));
    out(&format!("run 2: verdict {}, trace-hash {}", second.verdict(), second.trace_hash));
    if first.trace_hash != second.trace_hash || first.outcome != second.outcome {
        out("NON-DETERMINISM: the two runs of this seed differ.");
        if let Some(divergence) = crate::determinism::first_divergence(&options) {
            out(&divergence);
        }
        return Ok(EXIT_VIOLATION);
    }
    out("deterministic: both runs recorded the same history");
    Ok(EXIT_PASS)
}

/// What has become of stdout (see [`out`]).
enum StdoutState {
    Open,
    /// The reader went away (`| head -1`): nothing more is printed, and that is no error.
    ClosedByReader,
    /// Writing failed otherwise (`>/dev/full`, an I/O error): the report was lost.
    Failed(String),
}

static STDOUT: std::sync::Mutex<StdoutState> = std::sync::Mutex::new(StdoutState::Open);

/// Prints a line to stdout. Output never decides the verdict: once stdout is closed by its
/// reader or fails, kubesim stops printing, keeps running to its verdict, and
/// [`exit_code`] reports what was lost. (Rust ignores SIGPIPE, so a closed pipe is an
/// `EPIPE` error here rather than a signal that would end the process with no verdict.)
pub fn out(text: &str) {
    use std::io::Write;
    let mut state = STDOUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if !matches!(*state, StdoutState::Open) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = writeln!(stdout, "{text}").and_then(|()| stdout.flush()) {
        *state = match e.kind() {
            std::io::ErrorKind::BrokenPipe => StdoutState::ClosedByReader,
            _ => StdoutState::Failed(e.to_string()),
        };
    }
}

/// Prints a line to stderr, if stderr can be written at all (there is nowhere else to
/// report that it cannot).
pub fn err(text: &str) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "{text}");
}

/// The process's exit code for a command that ended with `code`, given what became of its
/// output: a verdict stands whatever happened to stdout, except that a pass whose report
/// could not be written (other than by its reader going away) is an internal error (3),
/// said on stderr.
pub fn exit_code(code: u8) -> u8 {
    out_flush();
    let state = STDOUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    match &*state {
        StdoutState::Open | StdoutState::ClosedByReader => code,
        StdoutState::Failed(error) => {
            let (meaning, code) = match code {
                EXIT_PASS => ("every invariant held, but the report was lost", EXIT_INTERNAL),
                EXIT_VIOLATION => ("a violation was found", EXIT_VIOLATION),
                _ => ("", code),
            };
            if meaning.is_empty() {
                err(&format!("error: writing to stdout: {error}"));
            } else {
                err(&format!("error: writing to stdout: {error}; {meaning} (exit {code})"));
            }
            code
        }
    }
}

fn out_flush() {
    use std::io::Write;
    let mut state = STDOUT.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let StdoutState::Open = *state {
        if let Err(e) = std::io::stdout().lock().flush() {
            if e.kind() != std::io::ErrorKind::BrokenPipe {
                *state = StdoutState::Failed(e.to_string());
            }
        }
    }
}

/// Logs through tracing with simulated time and the node's name on every line.
fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_timer(SimTime)
        .with_writer(std::io::stderr)
        // Colour only on a terminal: a trace redirected to a file stays plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// tracing's timestamp: the simulated time of the current runtime (madsim adds the node
/// name as a span on every line).
struct SimTime;

impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match madsim::time::TimeHandle::try_current() {
            Some(time) => write!(w, "{:>11.6}s", time.elapsed().as_secs_f64()),
            None => write!(w, "{:>12}", "-"),
        }
    }
}
