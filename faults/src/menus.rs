//! Fault menus by name: the sets of fault kinds a campaign's swarm plans draw from, named
//! so that `--faults NAME` picks one, as a user's scenario may need a menu of its own.
//!
//! kubesim's own: `all` (the default: [`FaultKind::DEFAULT`], every fault a correct cluster
//! survives without an operator), `disks` (the kinds that wipe disks and bring in the
//! operator's backups and restores) and `every-kind` (both). A user registers more with
//! [`register_menu`]; a menu's name may not be a fault kind's (`--faults` also takes a
//! comma-separated list of kinds) nor `none` (no nemesis).
//!
//! ```
//! use faults::menus::{menu, register_menu};
//! use faults::FaultKind;
//! register_menu("network", "partitions and lossy links", [FaultKind::Partition, FaultKind::PacketLoss]).unwrap();
//! assert_eq!(menu("network").unwrap().kinds.len(), 2);
//! assert_eq!(menu("all").unwrap().kinds, FaultKind::all());
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::RwLock;

use crate::kinds::FaultKind;

/// A named set of fault kinds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultMenu {
    pub name: &'static str,
    /// One line saying what it is for.
    pub about: &'static str,
    pub kinds: BTreeSet<FaultKind>,
}

/// The disk-wiping kinds, kubesim's `disks` menu.
pub const DISKS: [FaultKind; 4] =
    [FaultKind::DiskLoss, FaultKind::DiskLossMajority, FaultKind::DiskLossAll, FaultKind::SnapshotCorruption];

/// Menus users registered in this process, by name.
static REGISTERED: RwLock<BTreeMap<&'static str, FaultMenu>> = RwLock::new(BTreeMap::new());

fn built_in() -> [FaultMenu; 3] {
    [
        FaultMenu {
            name: "all",
            about: "the default: every fault a correct cluster survives without an operator",
            kinds: FaultKind::all(),
        },
        FaultMenu {
            name: "disks",
            about: "disk losses (one member, a majority, all) and backup corruption: the operator restores",
            kinds: DISKS.into_iter().collect(),
        },
        FaultMenu {
            name: "every-kind",
            about: "every fault kind there is",
            kinds: FaultKind::ALL.into_iter().collect(),
        },
    ]
}

/// Why a menu could not be registered.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum MenuError {
    #[error("fault menu '{0}': a name is lower-case kebab-case (a-z, 0-9, '-')")]
    BadName(&'static str),
    #[error("fault menu '{0}': the name is taken (a fault kind, `none`, or another menu)")]
    Taken(&'static str),
    #[error("fault menu '{0}' holds no fault kind")]
    Empty(&'static str),
}

/// Registers a menu for this process. Registering the same menu again does nothing.
pub fn register_menu(
    name: &'static str,
    about: &'static str,
    kinds: impl IntoIterator<Item = FaultKind>,
) -> Result<(), MenuError> {
    let kinds: BTreeSet<FaultKind> = kinds.into_iter().collect();
    let well_formed =
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if !well_formed {
        return Err(MenuError::BadName(name));
    }
    if kinds.is_empty() {
        return Err(MenuError::Empty(name));
    }
    let new = FaultMenu { name, about, kinds };
    if name == "none" || name.parse::<FaultKind>().is_ok() || built_in().iter().any(|m| m.name == name) {
        return Err(MenuError::Taken(name));
    }
    let mut registered = REGISTERED.write().expect("fault menus");
    match registered.get(name) {
        Some(existing) if *existing != new => Err(MenuError::Taken(name)),
        Some(_) => Ok(()),
        None => {
            registered.insert(name, new);
            Ok(())
        }
    }
}

/// The menu called `name`, kubesim's or a registered one.
pub fn menu(name: &str) -> Option<FaultMenu> {
    built_in()
        .into_iter()
        .find(|m| m.name == name)
        .or_else(|| REGISTERED.read().expect("fault menus").get(name).cloned())
}

/// Every menu: kubesim's, then the registered ones by name.
pub fn menus() -> Vec<FaultMenu> {
    let mut all = built_in().to_vec();
    all.extend(REGISTERED.read().expect("fault menus").values().cloned());
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_menu_name_may_not_shadow_a_kind_none_or_a_built_in_menu() {
        for name in ["partition", "disk-loss", "none", "all", "disks"] {
            assert_eq!(register_menu(name, "", [FaultKind::Crash]), Err(MenuError::Taken(name)));
        }
        assert_eq!(register_menu("Bad Name", "", [FaultKind::Crash]), Err(MenuError::BadName("Bad Name")));
        assert_eq!(register_menu("empty", "", []), Err(MenuError::Empty("empty")));
    }

    #[test]
    fn registering_the_same_menu_twice_is_harmless_and_a_different_one_is_refused() {
        register_menu("crashes-only", "crashes", [FaultKind::Crash]).unwrap();
        register_menu("crashes-only", "crashes", [FaultKind::Crash]).unwrap();
        assert_eq!(register_menu("crashes-only", "crashes", [FaultKind::Pause]), Err(MenuError::Taken("crashes-only")));
        assert_eq!(menu("crashes-only").unwrap().kinds, [FaultKind::Crash].into_iter().collect());
    }
}
