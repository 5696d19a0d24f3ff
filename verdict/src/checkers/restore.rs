//! What the history says about each restore, shared by the backup checkers and the run
//! report: the backup restored, the epoch it was taken in, the keyspace of that epoch at
//! the backup's revision R rebuilt from `Committed` records, the restored keyspace, and
//! the data-loss window (writes acknowledged after R, before the restore).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use store::api::Revision;

use super::epochs::has_restore;
use crate::history::{History, HistoryEvent, KeyState, StoreOpKind, StoreOpOutcome};
use crate::views::StoreOps;

/// The expected data loss of one restore (docs/design.md §4, invariant 6).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataLossWindow {
    /// The restored backup's revision R.
    pub backup_revision: Revision,
    /// The highest revision the lost cluster committed.
    pub lost_revision: Revision,
    /// Writes acknowledged (by the store to its clients, or by the apiserver) at a
    /// revision above R, before the restore.
    pub n_writes: usize,
    /// Their values' total size in bytes.
    pub bytes: u64,
}

/// One write acknowledged to a client, at the store or at the apiserver.
#[derive(Clone, Debug)]
pub(crate) struct AckedWrite {
    pub who: String,
    pub key: String,
    pub revision: Revision,
    pub at_ns: u64,
    /// A delete (its absence is what must survive).
    pub delete: bool,
}

/// One restore as the history tells it.
#[derive(Clone, Debug)]
pub(crate) struct RestoreFacts {
    pub at_ns: u64,
    pub backup: u32,
    /// `None`: no `BackupTaken` record for the backup (itself a violation).
    pub backup_revision: Option<Revision>,
    /// The epoch the backup was taken in (0 before any restore).
    pub backup_epoch: usize,
    /// The epoch the restore ended (the cluster it replaced).
    pub lost_epoch: usize,
    pub corrupted_before: bool,
    /// The keyspace of `backup_epoch` at `backup_revision`, from `Committed` records.
    pub reference: BTreeMap<String, KeyState>,
    /// Every committed change of the lost epoch, by revision (to tell a delete from a loss).
    pub lost_changes: BTreeMap<Revision, Vec<KeyState>>,
    pub restored: BTreeMap<String, KeyState>,
    pub acked_in_lost_epoch: Vec<AckedWrite>,
}

/// Every restore of the history, in order (`store_ops` are the whole history's).
pub(crate) fn restores(history: &History, store_ops: &StoreOps) -> Vec<RestoreFacts> {
    // Most runs restore nothing: skip building every epoch's keyspace for them.
    if !has_restore(history) {
        return Vec::new();
    }
    let mut epochs = Epochs {
        epoch_start: vec![BTreeMap::new()],
        epoch_changes: vec![BTreeMap::new()],
        acked: vec![Vec::new()],
        backups: BTreeMap::new(),
        corrupted: BTreeMap::new(),
        epoch_began_at: None,
    };
    let mut facts = Vec::new();
    for (record_idx, record) in history.records.iter().enumerate() {
        let epoch = epochs.current();
        match &record.event {
            HistoryEvent::Committed { revision, changes } => {
                epochs.epoch_changes[epoch].entry(*revision).or_default().extend(changes.iter().cloned());
            }
            HistoryEvent::BackupTaken { backup, revision, .. } => {
                epochs.backups.insert(*backup, (*revision, epoch));
            }
            HistoryEvent::BackupCorrupted { backup, .. } => {
                epochs.corrupted.insert(*backup, record.at_ns);
            }
            HistoryEvent::StoreOpReturned {
                outcome: StoreOpOutcome::Written { revision, succeeded: true }, ..
            } => {
                let write = acked_store_write(store_ops, record_idx, *revision, record.at_ns, epochs.epoch_began_at);
                epochs.acked[epoch].extend(write);
            }
            HistoryEvent::StoreWrite { apiserver, user, verb, key, revision } => {
                epochs.acked[epoch].push(AckedWrite {
                    who: format!("{verb:?} by {user} via {apiserver}"),
                    key: key.clone(),
                    revision: *revision,
                    at_ns: record.at_ns,
                    delete: *verb == api::Verb::Delete,
                });
            }
            HistoryEvent::Restored { backup, keyspace, .. } => {
                facts.push(epochs.restore(record_idx, record.at_ns, *backup, keyspace));
            }
            _ => {}
        }
    }
    facts
}

/// The history's epochs so far (one per cluster: a restore ends one and begins the next),
/// with the backups taken in them.
struct Epochs {
    /// Per epoch: the starting keyspace and its committed changes.
    epoch_start: Vec<BTreeMap<String, KeyState>>,
    epoch_changes: Vec<BTreeMap<Revision, Vec<KeyState>>>,
    /// Per epoch: the writes acknowledged in it.
    acked: Vec<Vec<AckedWrite>>,
    /// Each backup's revision and the epoch it was taken in.
    backups: BTreeMap<u32, (Revision, usize)>,
    /// When each corrupted backup was corrupted.
    corrupted: BTreeMap<u32, u64>,
    /// The position of the `Restored` record the current epoch began with, if it did: a
    /// write invoked before it and answered after it is no epoch's acknowledged write.
    epoch_began_at: Option<usize>,
}

impl Epochs {
    fn current(&self) -> usize {
        self.epoch_start.len() - 1
    }

    /// The restore of `backup` at record `record_idx` ends the current epoch and begins
    /// one holding `keyspace`: what the history says about it.
    fn restore(&mut self, record_idx: usize, at_ns: u64, backup: u32, keyspace: &[KeyState]) -> RestoreFacts {
        let epoch = self.current();
        let taken = self.backups.get(&backup).copied();
        let backup_epoch = taken.map_or(epoch, |(_, taken_epoch)| taken_epoch);
        let reference = match taken {
            Some((revision, _)) => {
                keyspace_at(&self.epoch_start[backup_epoch], &self.epoch_changes[backup_epoch], revision)
            }
            None => BTreeMap::new(),
        };
        let restored: BTreeMap<String, KeyState> =
            keyspace.iter().map(|state| (state.key.clone(), state.clone())).collect();
        let facts = RestoreFacts {
            at_ns,
            backup,
            backup_revision: taken.map(|(revision, _)| revision),
            backup_epoch,
            lost_epoch: epoch,
            corrupted_before: self.corrupted.contains_key(&backup),
            reference,
            lost_changes: self.epoch_changes[epoch].clone(),
            restored: restored.clone(),
            acked_in_lost_epoch: self.acked[epoch].clone(),
        };
        self.epoch_start.push(restored);
        self.epoch_changes.push(BTreeMap::new());
        self.acked.push(Vec::new());
        self.epoch_began_at = Some(record_idx);
        facts
    }
}

/// The write a store operation's successful answer (record `record_idx`, at `revision`)
/// acknowledged, unless it was invoked before the `Restored` record its epoch began with
/// (`epoch_began_at`), which makes it no epoch's acknowledged write.
fn acked_store_write(
    store_ops: &StoreOps,
    record_idx: usize,
    revision: Revision,
    at_ns: u64,
    epoch_began_at: Option<usize>,
) -> Option<AckedWrite> {
    let op = &store_ops[store_ops.returned_at(record_idx)?];
    let (StoreOpKind::Put { key, .. } | StoreOpKind::CompareAndPut { key, .. }) = op.invocation else {
        return None;
    };
    epoch_began_at.is_none_or(|began_at| op.invoked.record_idx > began_at).then(|| AckedWrite {
        who: format!("store op {}#{}", op.client, op.id),
        key: key.clone(),
        revision,
        at_ns,
        // The store workload never deletes.
        delete: false,
    })
}

/// The keyspace at `revision`: `start` with every change at or below it applied.
pub(crate) fn keyspace_at(
    start: &BTreeMap<String, KeyState>,
    changes: &BTreeMap<Revision, Vec<KeyState>>,
    revision: Revision,
) -> BTreeMap<String, KeyState> {
    let mut keyspace = start.clone();
    for states in changes.range(..=revision).map(|(_, states)| states) {
        for state in states {
            if state.value_hash.is_some() {
                keyspace.insert(state.key.clone(), state.clone());
            } else {
                keyspace.remove(&state.key);
            }
        }
    }
    keyspace
}

impl RestoreFacts {
    /// Writes acknowledged in the lost epoch above the backup's revision: the expected loss.
    pub(crate) fn window(&self) -> DataLossWindow {
        let backup_revision = self.backup_revision.unwrap_or(0);
        let mut window = DataLossWindow {
            backup_revision,
            lost_revision: self.lost_changes.keys().next_back().copied().unwrap_or(backup_revision),
            ..DataLossWindow::default()
        };
        if self.backup_epoch != self.lost_epoch {
            return window;
        }
        for write in self.acked_in_lost_epoch.iter().filter(|write| write.revision > backup_revision) {
            window.n_writes += 1;
            let size = self
                .lost_changes
                .get(&write.revision)
                .and_then(|states| states.iter().find(|state| state.key == write.key))
                .map_or(0, |state| state.value_len);
            window.bytes += size;
        }
        window
    }
}

/// What a run's history says about backups and restores, for reports and campaigns.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecoveryStats {
    pub backups: usize,
    pub disk_losses: usize,
    pub replacements: usize,
    pub restores: usize,
    pub windows: Vec<DataLossWindow>,
    /// Set when the run ended in `total-loss` (its last `TotalLoss` record): the
    /// acknowledged objects lost, and why.
    pub total_loss: Option<(usize, String)>,
}

impl RecoveryStats {
    pub fn of(history: &History) -> Self {
        let mut stats = RecoveryStats::default();
        for (_, event) in history.events() {
            match event {
                HistoryEvent::BackupTaken { .. } => stats.backups += 1,
                HistoryEvent::DiskLost { .. } => stats.disk_losses += 1,
                HistoryEvent::MemberReplaced { error: None, .. } => stats.replacements += 1,
                HistoryEvent::TotalLoss { acknowledged_objects_lost, reason } => {
                    stats.total_loss = Some((*acknowledged_objects_lost, reason.clone()))
                }
                _ => {}
            }
        }
        // The store operations are paired only for a run that restored.
        let restores = if has_restore(history) { restores(history, &StoreOps::of(history)) } else { Vec::new() };
        stats.restores = restores.len();
        stats.windows = restores.iter().map(RestoreFacts::window).collect();
        stats
    }
}

impl RecoveryStats {
    /// Adds the run's figures to a report's stats (summed over a campaign). Nothing is
    /// added for a run without backups or disk losses, so other runs' lines are unchanged.
    pub fn add_to(&self, stats: &mut BTreeMap<String, i64>) {
        if *self == RecoveryStats::default() {
            return;
        }
        let mut add = |name: &str, value: usize| {
            *stats.entry(name.to_string()).or_default() += value as i64;
        };
        add("backups", self.backups);
        add("disk-losses", self.disk_losses);
        add("replacements", self.replacements);
        add("restores", self.restores);
        add("data-loss-windows", self.windows.iter().filter(|window| window.n_writes > 0).count());
        add("data-loss-writes", self.windows.iter().map(|window| window.n_writes).sum());
        add("data-loss-bytes", self.windows.iter().map(|window| window.bytes as usize).sum());
        add("total-loss-runs", usize::from(self.total_loss.is_some()));
        add("total-loss-objects", self.total_loss.as_ref().map_or(0, |(lost, _)| *lost));
    }
}
