//! A component's view of wall time: `simtime`'s per-node [`Clock`], re-exported here so
//! that components keep reaching it through `api`.

pub use simtime::clock::{Clock, ClockSkew};
