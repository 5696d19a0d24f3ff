//! The thin async driver: feeds the [`Nemesis`] core madsim's time and the failpoints
//! members report, and makes the calls it hands out on the [`World`].

use std::time::Duration;

use futures::channel::mpsc;
use futures::StreamExt;
use madsim::time::{Instant, TimeHandle};

use super::calls::{history_line, Call, Reached, Reported};
use super::core::Nemesis;
use super::{Refused, SharedWorld, World};
use crate::plan::FaultPlan;

/// Runs `plan` against `world`, with time counted from the call, and returns at the end
/// of the safety phase once every fault has healed ("all faults healed" is the last line
/// it records). It does not wait through the liveness phase.
///
/// All steps of a plan run on one timeline in one task, rather than one task per event,
/// so that steps due at the same instant run in a fixed order that does not depend on the
/// scheduler (see the nemesis module doc).
pub async fn run(plan: &FaultPlan, world: SharedWorld) {
    let time = TimeHandle::current();
    let start = time.now_instant();
    let now_ms = || (time.now_instant() - start).as_millis() as u64;
    let mut nemesis = Nemesis::new(plan);
    let (reached_tx, mut reached) = reached_channel();
    while let Some(next_ms) = nemesis.next_wakeup_ms() {
        let deadline = start + Duration::from_millis(next_ms);
        if nemesis.listens_for_failpoints() && time.now_instant() < deadline {
            // An armed failpoint may be reached before the next step is due.
            let next_reached = {
                let sleep = std::pin::pin!(time.sleep_until(deadline));
                match futures::future::select(reached.next(), sleep).await {
                    futures::future::Either::Left((next_reached, _)) => next_reached,
                    futures::future::Either::Right(_) => None,
                }
            };
            if let Some(next_reached) = next_reached {
                nemesis.failpoint_reached(now_ms(), next_reached, &*world);
                perform_all(&mut nemesis, &*world, &reached_tx);
                continue;
            }
        }
        sleep_until(&time, deadline).await;
        nemesis.step(&*world, &mut queued(&mut reached));
        perform_all(&mut nemesis, &*world, &reached_tx);
    }
    sleep_until(&time, start + Duration::from_millis(plan.safety_phase_ms)).await;
    nemesis.heal_all(&*world, &mut queued(&mut reached));
    perform_all(&mut nemesis, &*world, &reached_tx);
}

/// The queue of failpoints members reached and the nemesis has not handled yet. It is
/// bounded: futures' channel gives each sender one slot of its own besides the shared
/// `buffer` (none here), and each armed failpoint holds its own sender and sends once, so
/// the queue never holds more than the failpoints armed at once and a member's report
/// never fails for want of room.
fn reached_channel() -> (mpsc::Sender<Reached>, mpsc::Receiver<Reached>) {
    mpsc::channel(0)
}

/// The failpoints reached and waiting in the queue, taken as the core reads them.
fn queued(reached: &mut mpsc::Receiver<Reached>) -> impl Iterator<Item = Reached> + '_ {
    std::iter::from_fn(|| reached.try_recv().ok())
}

fn perform_all(nemesis: &mut Nemesis, world: &dyn World, reached_tx: &mpsc::Sender<Reached>) {
    for call in nemesis.take_calls() {
        perform(call, world, reached_tx);
    }
}

/// Makes one call of the core on the world. A failpoint armed by
/// [`Call::ArmFailpoint`] reports back on `reached_tx`.
pub fn perform(call: Call, world: &dyn World, reached_tx: &mpsc::Sender<Reached>) {
    match call {
        Call::Kill(node) => world.kill(&node),
        Call::Restart(node) => world.restart(&node),
        Call::Pause(node) => world.pause(&node),
        Call::Resume(node) => world.resume(&node),
        Call::CrashStoreMember { slot, tear } => world.crash_store_member(slot, tear),
        Call::RestartStoreMember(slot) => world.restart_store_member(slot),
        Call::Clog { from, to } => world.clog(&from, &to),
        Call::Unclog { from, to } => world.unclog(&from, &to),
        Call::SetPacketLoss(rate) => world.set_packet_loss(rate),
        Call::SetLatency { min_ms, max_ms } => world.set_latency_ms(min_ms, max_ms),
        Call::ResetNetworkConditions => world.reset_network_conditions(),
        Call::SetClockSkew { node, offset_ms, drift_ms_per_s } => {
            world.set_clock_skew(&node, offset_ms, drift_ms_per_s)
        }
        Call::ResetClock(node) => world.reset_clock(&node),
        Call::ArmFailpoint { slot, failpoint, passes, reached } => {
            let mut reached_tx = reached_tx.clone();
            let on_reached = Box::new(move || match reached_tx.try_send(reached) {
                Ok(()) => {}
                // The nemesis is done: nobody is waiting any more.
                Err(error) if error.is_disconnected() => {}
                Err(error) => panic!("the failpoint queue refused {reached:?}: {error}"),
            });
            world.arm_failpoint(slot, failpoint, passes, on_reached);
        }
        Call::DisarmFailpoint { slot, failpoint } => world.disarm_failpoint(slot, failpoint),
        Call::LoseDisk(slot) => world.lose_disk(slot),
        Call::Record { at_ms, line } => record(world, history_line(at_ms, &line)),
        Call::Reported { at_ms, action } => {
            let outcome = match &action {
                Reported::CorruptStoreRecord { slot, flip } => {
                    world.corrupt_store_record(*slot, *flip).ok_or(Refused::NothingToCorrupt)
                }
                Reported::TakeBackup { slot } => world.take_backup(*slot),
                Reported::CorruptBackup { flip } => world.corrupt_backup(*flip).ok_or(Refused::NothingToCorrupt),
                Reported::ReplaceMember { slot } => world.replace_member(*slot),
                Reported::RestoreFromBackup => world.restore_from_backup(),
            };
            record(world, history_line(at_ms, &action.line(outcome)));
        }
    }
}

fn record(world: &dyn World, line: String) {
    tracing::info!(target: "nemesis", "{line}");
    world.record(line);
}

/// madsim's `sleep_until` sleeps at least 1 ms even when the deadline has passed; steps
/// due now must run now, so only sleep for a deadline in the future.
async fn sleep_until(time: &TimeHandle, deadline: Instant) {
    if time.now_instant() < deadline {
        time.sleep_until(deadline).await;
    }
}
