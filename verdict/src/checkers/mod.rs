//! Checkers: pure functions from a finished [`History`] (and, for durability, the
//! [`EndState`] read at the end of the liveness phase) to one [`Verdict`] per invariant.
//!
//! Checkers are peers of the cluster, not part of it (TigerBeetle's
//! `testing/cluster/*_checker`): they never steer a run and nothing in the simulated system
//! reads them. Each lives in its own file, states its invariant (docs/design.md §4) at its
//! definition, and reports `checked`, the number of items it examined, so a vacuous pass
//! (nothing to examine) is visible in a report instead of passing silently.

mod api_acknowledged_writes;
mod api_writes;
mod awaited;
mod backup_restore_equality;
mod controller_single_leader;
mod durability;
mod epochs;
mod garbage_collection;
mod informer_continuity;
mod lease_expiry;
mod linearizability;
mod no_lost_update;
pub mod permissions;
mod pod_bound_once;
mod raft_election_safety;
mod raft_state_machine_safety;
mod replica_count;
pub mod restore;
mod restore_durability;
mod revisions_monotonic;
mod rollout_bound;
mod service_ips_unique;
mod store_single_writer;
pub mod testing;
mod watch_guarantees;

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use store::api::{KeyValue, Revision};

use crate::history::History;
use crate::views::{ApiOps, StoreOps};

/// The invariants kubesim proves or refutes (docs/design.md §4), and the ones a user's
/// scenario brings ([`Invariant::Custom`]). Names are the kebab-case strings of
/// [`Invariant::name`], used on the command line, in reports and in JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Invariant {
    /// §4.1: every committed store mutation was issued by an apiserver principal, from an
    /// address an apiserver runs on. Reproduces Kubernetes' "only the apiserver talks to
    /// etcd" (etcd client-cert auth / RBAC on the etcd port): a component that got hold of
    /// the apiserver's credential and writes the store directly bypasses admission, so a
    /// successful mutating `Applied` from a non-apiserver role or a non-apiserver address is
    /// a violation. Requests the store refused (`StoreRejected`, or an apply that failed
    /// with PermissionDenied) changed nothing and are fine.
    StoreSingleWriter,
    /// §4.2, Raft election safety (Raft paper §5.2, Figure 3): at most one member becomes
    /// leader in any term. etcd-io/raft guarantees it with one vote per term, persisted
    /// before the vote is sent.
    RaftElectionSafety,
    /// §4.2, Raft state machine safety (Raft paper §5.4.3, Figure 3): if a member applied an
    /// entry at an index, no member ever applies a different entry at that index; every
    /// member applies the same proposals in the same order with no gaps (etcd applies
    /// committed entries strictly in index order), re-applies the same entries after a
    /// restart, and reaches the same store revision after each index.
    RaftStateMachineSafety,
    /// §4.9: store operations are linearizable. Checked the way etcd's robustness tests'
    /// fast path does: writes are totally ordered by revision, every read equals the state
    /// at its revision, and no operation's revision predates one that completed before it
    /// began. Failed writes never took effect; timed-out writes may or may not have.
    Linearizability,
    /// §4.11: a write the store acknowledged is never lost: the final keyspace still shows
    /// it (etcd acknowledges a put only after a quorum fsynced its log entry); and a write
    /// the apiserver acknowledged was committed by the store at the revision it named
    /// (Kubernetes answers a write only after etcd's transaction returned).
    NoAcknowledgedWriteLost,
    /// §4.3: for each leader-elected component, writes the apiserver accepts come from one
    /// leader epoch at a time (epochs ordered by the lease revision each acquisition
    /// committed at). Reproduces client-go leader election (Lease, 15 s / 10 s / 2 s);
    /// kubesim fences writes with the lease's resourceVersion, which Kubernetes does not,
    /// so with fencing off a paused leader must be able to expose two writers.
    ControllerSingleLeader,
    /// §4.10: etcd's watch guarantees as the apiserver's watch cache passes them on:
    /// ordered, unique, in range, and reliable (every committed write of the watched
    /// resource in `(since, resourceVersion]` delivered, with its key and kind) (etcd
    /// `api/v3rpc` watch semantics, as tested by etcd's robustness `validate/watch.go`).
    WatchGuarantees,
    /// §4.12: a pod's `spec.nodeName` is set at most once per pod life and no pod runs on
    /// two kubelets at once (the apiserver's binding subresource refuses a second bind
    /// with 409 Conflict).
    PodBoundOnce,
    /// §4.13: after faults heal, every goal the user awaited is met within its bound, as
    /// the user saw it: the deployment's desired number of Running pods, exactly the
    /// desired pods at rest, store members agreeing on one keyspace (`awaited.rs`, from the
    /// scenario's `Awaited`/`Looked` records); and at no revision does a ReplicaSet have
    /// more live pods than its deployment was ever asked for (`replica_count.rs`:
    /// ReplicaSet expectations prevent over-creation from a stale informer cache).
    Convergence,
    /// §4.4: a backup taken at revision R and restored into a new cluster holds exactly
    /// the keyspace of revision R, key by key (value, create and mod revision, version).
    /// The reference keyspace is rebuilt from the history's `Committed` records, never from
    /// the backup (etcd: `snapshot save` is a consistent copy of the backend at R).
    BackupRestoreEquality,
    /// §4.5: no client ever observes a revision lower than one it observed before, across
    /// a restore too: an operation that begins after another of the same client ended
    /// answers at a revision at least as high, and each watch stream's resourceVersion
    /// never decreases. etcd's `--bump-revision --mark-compacted` restore exists for
    /// this: without it Kubernetes watchers see revisions reused and miss events.
    RevisionsNeverGoBackwards,
    /// §4.6: every write acknowledged at or below the restored backup's revision R
    /// survives the restore; writes acknowledged after R form the data-loss window
    /// (expected, counted); a backup whose bytes were corrupted is never restored
    /// (etcdutl refuses it: "snapshot file integrity check failed"). That nothing
    /// acknowledged after the restore is lost is no-acknowledged-write-lost, per epoch.
    RestoreDurability,
    /// §4.20: every watch a component makes resumes from a resourceVersion the apiserver
    /// gave it (a list's or a previous watch answer's, for the same resource and
    /// namespace), as client-go's reflector does: after 410 Gone an informer relists rather
    /// than resuming elsewhere, or its cache silently misses what changed in between.
    InformerContinuity,
    /// §4.18: the store expires a lease only on its leader, and only once the lease's TTL
    /// has run on that leader's clock since its promotion, the grant or the last keep-alive
    /// it acknowledged (etcd `lessor.go`: `Promote` refreshes every lease, `Renew` and
    /// `Grant` start a TTL, `revokeExpiredLeases` runs on the primary only). Kubernetes
    /// relies on it for Events (`--event-ttl`): an early expiry deletes objects clients
    /// still read.
    LeaseExpiry,
    /// §4.15: the garbage collector deletes what Kubernetes' would, and only that
    /// (`pkg/controller/garbagecollector`): at rest no object names an owner (by uid) that
    /// is gone (dependents orphaned on purpose had the reference removed), and the
    /// collector never removes or marks for deletion an object that, just before, had an
    /// owner that existed and was not deleting its dependents in the foreground. The exact
    /// rule is in `checkers/garbage_collection.rs`. Judged only in runs whose control plane
    /// runs the collector.
    GarbageCollection,
    /// §4.17: no two live Services ever hold the same ClusterIP, at any revision of the
    /// store, across apiserver restarts, partitions and restores (Kubernetes' ClusterIP
    /// allocator: one bitmap in etcd changed by compare-and-swap, and its repair loop).
    /// The exact rule is in `checkers/service_ips_unique.rs`.
    ServiceIpsUnique,
    /// §4.14: every acknowledged Update or UpdateStatus was applied to exactly the version
    /// its writer read (the resourceVersion it carried), and no acknowledged update is
    /// overwritten by a write that did not read it. End to end, a counter that users
    /// increment by read-modify-write holds every acknowledged increment and at most the
    /// ones in doubt too. Kubernetes' optimistic concurrency: the apiserver's
    /// `GuaranteedUpdate` commits under `mod_revision == resourceVersion` and answers 409
    /// Conflict otherwise; writers retry with client-go's `RetryOnConflict`. The exact
    /// rule is in `checkers/no_lost_update.rs`. Judged only in runs that record update
    /// preconditions (the read-modify-write scenario).
    NoLostUpdate,
    /// §4.16: the deployment controller never asks for more pods than `replicas +
    /// maxSurge`, nor takes the available ones more than `maxUnavailable` below
    /// `replicas`, judged against what its own informer had observed (Kubernetes'
    /// `pkg/controller/deployment` rolling and recreate arithmetic). The exact rule is in
    /// `checkers/rollout_bound.rs`. Judged for deployments that name a strategy.
    RolloutBound,
    /// §4.19: no request is admitted that the RBAC objects its authorizer had seen deny
    /// (Kubernetes' RBAC authorizer, `plugin/pkg/auth/authorizer/rbac`, decides from its
    /// informers' Roles, RoleBindings, ClusterRoles and ClusterRoleBindings; rules only
    /// add). The objects are rebuilt at the revision each decision's informers had synced
    /// to, from the committed store writes, and evaluated by the checker's own evaluator. A
    /// restore that brings back permissions revoked after its backup is the *security
    /// window*: reported and counted, not a violation. The exact rule is in
    /// `checkers/permissions.rs`. Judged only in runs that record authorizations (the
    /// permissions scenario).
    Permissions,
    /// An invariant a user's scenario defines and judges with its own [`Checker`] (the
    /// example `Database` operator's single primary, say).
    Custom(CustomInvariant),
}

impl Invariant {
    pub const ALL: [Invariant; 19] = [
        Invariant::StoreSingleWriter,
        Invariant::RaftElectionSafety,
        Invariant::RaftStateMachineSafety,
        Invariant::Linearizability,
        Invariant::NoAcknowledgedWriteLost,
        Invariant::ControllerSingleLeader,
        Invariant::WatchGuarantees,
        Invariant::PodBoundOnce,
        Invariant::Convergence,
        Invariant::LeaseExpiry,
        Invariant::GarbageCollection,
        Invariant::BackupRestoreEquality,
        Invariant::RevisionsNeverGoBackwards,
        Invariant::RestoreDurability,
        Invariant::InformerContinuity,
        Invariant::ServiceIpsUnique,
        Invariant::NoLostUpdate,
        Invariant::RolloutBound,
        Invariant::Permissions,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Invariant::StoreSingleWriter => "store-single-writer",
            Invariant::RaftElectionSafety => "raft-election-safety",
            Invariant::RaftStateMachineSafety => "raft-state-machine-safety",
            Invariant::Linearizability => "linearizability",
            Invariant::NoAcknowledgedWriteLost => "no-acknowledged-write-lost",
            Invariant::ControllerSingleLeader => "controller-single-leader",
            Invariant::WatchGuarantees => "watch-guarantees",
            Invariant::PodBoundOnce => "pod-bound-once",
            Invariant::Convergence => "convergence",
            Invariant::BackupRestoreEquality => "backup-restore-equality",
            Invariant::RevisionsNeverGoBackwards => "revisions-never-go-backwards",
            Invariant::RestoreDurability => "restore-durability",
            Invariant::InformerContinuity => "informer-continuity",
            Invariant::LeaseExpiry => "lease-expiry",
            Invariant::GarbageCollection => "garbage-collection",
            Invariant::ServiceIpsUnique => "service-ips-unique",
            Invariant::NoLostUpdate => "no-lost-update",
            Invariant::RolloutBound => "rollout-bound",
            Invariant::Permissions => "permissions",
            Invariant::Custom(custom) => custom.name(),
        }
    }

    /// The built-in invariant called `name`, else the custom one of that name if one was
    /// declared in this process ([`CustomInvariant::new`]).
    pub fn named(name: &str) -> Option<Invariant> {
        Invariant::ALL
            .into_iter()
            .find(|i| i.name() == name)
            .or_else(|| CustomInvariant::declared(name).map(Invariant::Custom))
    }

    /// Every invariant this process knows: the built-ins, then the declared custom ones.
    pub fn known() -> Vec<Invariant> {
        let mut known = Invariant::ALL.to_vec();
        known.extend(CustomInvariant::all_declared().into_iter().map(Invariant::Custom));
        known
    }
}

/// The name of an invariant a user's checker judges: kebab-case, unique, and not one of
/// kubesim's own. Declaring it (a `const` is enough: [`CustomInvariant::new`] is `const`)
/// and registering the checker that judges it lets `--invariant`, corpus cases and results
/// files name it like a built-in.
///
/// ```
/// use verdict::checkers::{CustomInvariant, Invariant};
/// const SINGLE_PRIMARY: CustomInvariant = CustomInvariant::new("database-single-primary");
/// let invariant = Invariant::Custom(SINGLE_PRIMARY);
/// assert_eq!(invariant.name(), "database-single-primary");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CustomInvariant(&'static str);

/// Every custom invariant name this process has seen: declared by a registered checker,
/// or read back from a results file or a case. Names are interned (leaked once each), so
/// an [`Invariant`] stays `Copy`.
static CUSTOM_NAMES: std::sync::Mutex<std::collections::BTreeSet<&'static str>> =
    std::sync::Mutex::new(std::collections::BTreeSet::new());

impl CustomInvariant {
    /// The invariant called `name`. Its form is checked when it is declared
    /// ([`CustomInvariant::declare`]), which registering its checker does.
    pub const fn new(name: &'static str) -> Self {
        CustomInvariant(name)
    }

    pub fn name(self) -> &'static str {
        self.0
    }

    /// Makes the name known to this process (for parsing `--invariant`, cases and
    /// results), after checking its form: lower-case kebab-case, not a built-in's name.
    pub fn declare(self) -> Result<Self, InvariantNameError> {
        let name = self.0;
        let well_formed = !name.is_empty()
            && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.starts_with('-')
            && !name.ends_with('-');
        if !well_formed {
            return Err(InvariantNameError::NotKebabCase(name));
        }
        if Invariant::ALL.iter().any(|i| i.name() == name) || ["no-panic", "time-limit"].contains(&name) {
            return Err(InvariantNameError::BuiltIn(name));
        }
        CUSTOM_NAMES.lock().expect("custom invariant names").insert(name);
        Ok(self)
    }

    /// The declared custom invariant called `name`.
    pub fn declared(name: &str) -> Option<Self> {
        CUSTOM_NAMES.lock().expect("custom invariant names").get(name).copied().map(CustomInvariant)
    }

    fn all_declared() -> Vec<Self> {
        CUSTOM_NAMES.lock().expect("custom invariant names").iter().copied().map(CustomInvariant).collect()
    }

    /// The custom invariant a results file or a case names, declared now if this process
    /// has not seen it (`kubesim merge` reads a user's campaign without the user's code).
    fn read_back(name: &str) -> Result<Self, InvariantNameError> {
        if let Some(known) = Self::declared(name) {
            return Ok(known);
        }
        let leaked: &'static str = Box::leak(name.to_string().into_boxed_str());
        CustomInvariant(leaked).declare()
    }
}

/// Why a custom invariant's name cannot be declared ([`CustomInvariant::declare`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum InvariantNameError {
    #[error("custom invariant '{0}': a name is lower-case kebab-case (a-z, 0-9, '-')")]
    NotKebabCase(&'static str),
    #[error("custom invariant '{0}': the name is one of kubesim's own")]
    BuiltIn(&'static str),
}

impl Serialize for Invariant {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

impl<'de> Deserialize<'de> for Invariant {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        match Invariant::ALL.into_iter().find(|i| i.name() == name) {
            Some(builtin) => Ok(builtin),
            None => CustomInvariant::read_back(&name).map(Invariant::Custom).map_err(serde::de::Error::custom),
        }
    }
}

impl fmt::Display for Invariant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Invariant {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Invariant::named(s).ok_or_else(|| {
            let names: Vec<&str> = Invariant::known().iter().map(|i| i.name()).collect();
            format!("unknown invariant '{s}' (known: {})", names.join(", "))
        })
    }
}

/// One piece of evidence that an invariant was broken.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Violation {
    pub invariant: Invariant,
    /// Names the concrete evidence: members, terms, indexes, keys, revisions, op ids.
    pub message: String,
    /// Simulated time of the record that exposed the violation, if one did.
    pub at_ns: Option<u64>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.at_ns {
            Some(at_ns) => write!(f, "{} at {:.6}s: {}", self.invariant, at_ns as f64 / 1e9, self.message),
            None => write!(f, "{}: {}", self.invariant, self.message),
        }
    }
}

/// Bound on the violations one checker reports; beyond it only a count is kept, so a
/// badly broken run cannot produce an unbounded report.
pub const MAX_VIOLATIONS_PER_INVARIANT: usize = 100;

/// The outcome of checking one invariant on one history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    pub invariant: Invariant,
    /// At most [`MAX_VIOLATIONS_PER_INVARIANT`], in the order the checker found them.
    pub violations: Vec<Violation>,
    /// Violations found beyond the bound and left out of `violations`.
    pub n_violations_omitted: usize,
    /// How many items the checker examined (operations, applied entries, leader
    /// elections...): 0 means the pass is vacuous.
    pub checked: usize,
    /// What was examined, in words, for the report ("812 operations, 301 writes...").
    pub summary: String,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }
}

/// The final state of the store, read (linearizably) at the end of the liveness phase.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EndState {
    /// The store revision the keyspace was read at.
    pub revision: Revision,
    /// Every key of the store at `revision`.
    pub keyspace: Vec<KeyValue>,
    /// Simulated time at which the final read began. Writes acknowledged after it may
    /// linearize after the read, so they are not judged against it (`u64::MAX`: judge
    /// every write, for a quiescent end).
    pub read_at_ns: u64,
}

/// Everything a checker may look at.
#[derive(Clone, Debug)]
pub struct CheckInput<'a> {
    pub history: &'a History,
    /// None if the store was unavailable at the end (checkers that need it say so).
    pub end_state: Option<&'a EndState>,
    /// Addresses apiserver principals may legitimately write the store from.
    pub apiserver_sources: Vec<IpAddr>,
}

/// The views of one history that its checkers share (`crate::views`), each built once.
pub(crate) struct Views<'h> {
    pub store_ops: StoreOps<'h>,
    pub api_ops: ApiOps<'h>,
}

impl<'h> Views<'h> {
    pub(crate) fn of(history: &'h History) -> Self {
        Views { store_ops: StoreOps::of(history), api_ops: ApiOps::of(history) }
    }
}

/// A user's invariant, judged from a finished history: what a scenario registers beside
/// its workload so that `run`, `campaign`, `shrink` and the corpus judge it like a
/// built-in. It must be a pure function of its input (no clock, no randomness), as every
/// checker is; it sees the whole history, restores included ([`HistoryEvent::Restored`]
/// starts a new cluster epoch).
///
/// The history holds what each layer did: store writes with their keys and revisions
/// ([`HistoryEvent::StoreWrite`], [`HistoryEvent::Committed`]), API requests and answers,
/// watch deliveries, kubelets' pod starts and stops ([`HistoryEvent::PodStarted`]), faults.
///
/// ```
/// use verdict::checkers::{CheckInput, Checker, CustomInvariant, Invariant, Verdict, Violations};
/// use verdict::history::HistoryEvent;
///
/// /// No pod named `db-primary-*` was ever started by a kubelet.
/// struct NoPrimaryStarted;
/// impl Checker for NoPrimaryStarted {
///     fn invariant(&self) -> Invariant {
///         Invariant::Custom(CustomInvariant::new("no-primary-started"))
///     }
///     fn check(&self, input: &CheckInput) -> Verdict {
///         let mut violations = Violations::new(self.invariant());
///         let mut checked = 0;
///         for (at_ns, event) in input.history.events() {
///             if let HistoryEvent::PodStarted { name, node, .. } = event {
///                 checked += 1;
///                 if name.starts_with("db-primary-") {
///                     violations.push(Some(at_ns), format!("{name} started on {node}"));
///                 }
///             }
///         }
///         violations.into_verdict(checked, format!("{checked} pod starts"))
///     }
/// }
/// ```
///
/// [`HistoryEvent::Restored`]: crate::history::HistoryEvent::Restored
/// [`HistoryEvent::StoreWrite`]: crate::history::HistoryEvent::StoreWrite
/// [`HistoryEvent::Committed`]: crate::history::HistoryEvent::Committed
/// [`HistoryEvent::PodStarted`]: crate::history::HistoryEvent::PodStarted
pub trait Checker: Send + Sync {
    /// The invariant this checker judges (usually [`Invariant::Custom`]).
    fn invariant(&self) -> Invariant;
    /// Its verdict on one finished run.
    fn check(&self, input: &CheckInput) -> Verdict;
}

/// [`check_all`], then each of `more` (a scenario's own checkers), one verdict each, in
/// order.
pub fn check_all_with(input: &CheckInput, more: &[std::sync::Arc<dyn Checker>]) -> Vec<Verdict> {
    let mut verdicts = check_all(input);
    for checker in more {
        let mut verdict = checker.check(input);
        // The checker's word on which invariant it judged is its `invariant()`: a verdict
        // built for another name would be counted under the wrong one.
        verdict.invariant = checker.invariant();
        for violation in &mut verdict.violations {
            violation.invariant = verdict.invariant;
        }
        verdicts.push(verdict);
    }
    verdicts
}

/// Runs every checker: one verdict per invariant of [`Invariant::ALL`]. The
/// checkers of one cluster's behaviour run per cluster epoch (see `epochs.rs`), with the
/// end state given to the last epoch only; the backup checkers read the whole history.
/// Each history's views are built once, for all its checkers.
pub fn check_all(input: &CheckInput) -> Vec<Verdict> {
    type Checker = fn(&CheckInput, &Views) -> Verdict;
    const PER_EPOCH: [Checker; 11] = [
        |input, _| store_single_writer::check(input),
        |input, _| raft_election_safety::check(input),
        |input, _| raft_state_machine_safety::check(input),
        |_, views| linearizability::check(views),
        durability::check,
        controller_single_leader::check,
        |input, _| watch_guarantees::check(input),
        |input, _| pod_bound_once::check(input),
        replica_count::check,
        |input, _| lease_expiry::check(input),
        |input, _| garbage_collection::check(input),
    ];
    let views = Views::of(input.history);
    let epochs = epochs::split(input.history, &views);
    let last = epochs.len() - 1;
    let epoch_inputs: Vec<CheckInput> = epochs
        .iter()
        .enumerate()
        .map(|(epoch, history)| CheckInput {
            history: history.as_ref(),
            end_state: if epoch == last { input.end_state } else { None },
            apiserver_sources: input.apiserver_sources.clone(),
        })
        .collect();
    // Without a restore the one epoch is the history itself, whose views are built already.
    let restored_epoch_views: Vec<Views> =
        if epochs.len() > 1 { epochs.iter().map(|history| Views::of(history.as_ref())).collect() } else { Vec::new() };
    let epoch_views = |epoch: usize| restored_epoch_views.get(epoch).unwrap_or(&views);
    let mut verdicts: Vec<Verdict> = PER_EPOCH
        .iter()
        .map(|checker| {
            epochs::merge(
                epoch_inputs.iter().enumerate().map(|(epoch, input)| checker(input, epoch_views(epoch))).collect(),
            )
        })
        .collect();
    // Convergence's liveness half judges the user's waits over the whole run, restores
    // and all: a wait begun before a restore ends after it.
    // Its findings come first: what the user saw not happen.
    let convergence = verdicts.iter_mut().find(|v| v.invariant == Invariant::Convergence).expect("a per-epoch checker");
    let safety = std::mem::replace(convergence, awaited::check(input.history));
    absorb(convergence, safety);
    let restores = restore::restores(input.history, &views.store_ops);
    verdicts.push(backup_restore_equality::check(&restores));
    verdicts.push(revisions_monotonic::check(input, &views));
    verdicts.push(restore_durability::check(&restores));
    verdicts.push(informer_continuity::check(input, &views));
    verdicts.push(service_ips_unique::check(input));
    verdicts.push(no_lost_update::check(input));
    verdicts.push(rollout_bound::check(input));
    verdicts.push(permissions::check(input));
    // Every declared invariant gets exactly one verdict: none is left unchecked or judged twice.
    debug_assert_eq!(
        verdicts.iter().map(|v| v.invariant).collect::<std::collections::BTreeSet<_>>().len(),
        verdicts.len()
    );
    debug_assert_eq!(verdicts.len(), Invariant::ALL.len());
    verdicts
}

/// Adds `other`'s findings and figures to `verdict` (two halves of one invariant), under
/// the report bound.
pub(crate) fn absorb(verdict: &mut Verdict, other: Verdict) {
    debug_assert_eq!(verdict.invariant, other.invariant);
    verdict.checked += other.checked;
    verdict.summary = format!("{}; {}", verdict.summary, other.summary);
    verdict.n_violations_omitted += other.n_violations_omitted;
    for violation in other.violations {
        if verdict.violations.len() < MAX_VIOLATIONS_PER_INVARIANT {
            verdict.violations.push(violation);
        } else {
            verdict.n_violations_omitted += 1;
        }
    }
}

/// A checker's findings as it collects them, turned into its [`Verdict`] at the end: keeps
/// the first [`MAX_VIOLATIONS_PER_INVARIANT`] and counts the rest. A user's [`Checker`]
/// uses it as the built-ins do.
pub struct Violations {
    invariant: Invariant,
    found: Vec<Violation>,
    n_omitted: usize,
}

impl Violations {
    /// No findings yet, for `invariant`.
    pub fn new(invariant: Invariant) -> Self {
        Self { invariant, found: Vec::new(), n_omitted: 0 }
    }

    /// One finding: what was broken, and the simulated time of the record that showed it.
    pub fn push(&mut self, at_ns: Option<u64>, message: String) {
        if self.found.len() >= MAX_VIOLATIONS_PER_INVARIANT {
            self.n_omitted += 1;
            return;
        }
        self.found.push(Violation { invariant: self.invariant, message, at_ns });
    }

    /// The verdict: `checked` is how many items were examined (so that a vacuous pass is
    /// visible), `summary` one line saying what they were.
    pub fn into_verdict(self, checked: usize, summary: String) -> Verdict {
        Verdict {
            invariant: self.invariant,
            violations: self.found,
            n_violations_omitted: self.n_omitted,
            checked,
            summary,
        }
    }
}
