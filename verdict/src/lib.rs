//! kubesim's judgement of a run, apart from the simulator that produced it.
//!
//! - [`history`]: what a seed recorded — every observable event, stamped with simulated
//!   time — and the trace hash over it;
//! - [`views`]: a history's invocation and return records paired into operations, once,
//!   for every checker to read;
//! - [`checkers`]: one pure function per invariant from a finished history (and the
//!   store's end state) to a [`checkers::Verdict`];
//! - [`outcome`]: what a seed came to, the one result type every layer passes on.
//!
//! Nothing here depends on madsim (the architecture test keeps it so): a checker cannot
//! reach into a running simulation, only read what it recorded.

pub mod checkers;
pub mod history;
pub mod outcome;
pub mod views;
