//! The simulated nodes of one seed: every node a seed creates is built through the seed's
//! [`SeedNodes`], so that the runner can kill them all when the seed ends
//! ([`SeedNodes::tear_down`]); and [`restart_node`], how a node's process restarts.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use madsim::runtime::{Handle, NodeBuilder, NodeHandle};
use madsim::task::NodeId;

/// Every simulated node one seed created, in the order it created them. The runner makes
/// one per seed and hands it to whatever builds nodes (the store cluster, the operator,
/// the control plane, the scenarios); clones share the same list.
///
/// Every node a seed creates is registered here so that its tasks can be killed and
/// dropped before the seed's runtime is: madsim's run queue is kept alive by the senders
/// inside the queued tasks' own wakers, and a task waiting on a timer holds the time
/// runtime that holds its waker, so a runtime dropped with tasks alive never freed them,
/// nor the simulated world they reference. A campaign kept about 3 MB of every seed it ran
/// until, 8 800 seeds on, the machine's 24 GB ran out and the kernel killed it
/// (docs/design.md §6: memory bounded per worker).
#[derive(Clone, Debug, Default)]
pub struct SeedNodes {
    ids: Arc<Mutex<Vec<NodeId>>>,
}

/// How far simulated time runs on after every node is dead: past every timer a seed arms
/// (the components' longest timeouts and periods are minutes; a plan's latency at most 60 s).
pub const DRAIN_TIMERS_FOR: Duration = Duration::from_secs(3_600);

impl SeedNodes {
    /// An empty registry, for one seed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the node `builder` describes and registers it as one of the seed's, as in
    /// `nodes.build(Handle::current().create_node().name("operator").ip(addresses::OPERATOR))`.
    pub fn build(&self, builder: NodeBuilder<'_>) -> NodeHandle {
        let node = builder.build();
        self.ids.lock().expect("seed nodes lock").push(node.id());
        node
    }

    /// Kills every node of the seed and lets the executor drop their tasks (a killed task
    /// is dropped the next time the executor reaches it), then lets simulated time run
    /// until every pending timer has fired. A timer still pending when the runtime is
    /// dropped is never freed: a message in flight is a timer whose callback holds the
    /// payload, and an RPC's payload holds the network simulator, which holds the timer
    /// wheel (a cycle); a sleeping task's timer holds its waker (one per timeout, even one
    /// that finished early: madsim cannot cancel a timer). With every node dead the firing
    /// timers wake nothing and deliver to closed sockets, so nothing the seed recorded
    /// changes; its simulated time and message count were read before.
    pub async fn tear_down(&self) {
        let handle = Handle::current();
        let ids = std::mem::take(&mut *self.ids.lock().expect("seed nodes lock"));
        for node in ids {
            handle.kill(node);
        }
        for _ in 0..2 {
            YieldOnce(false).await;
        }
        madsim::time::sleep(DRAIN_TIMERS_FOR).await;
    }
}

/// Restarts a node's process: kills it first, because madsim's `restart` alone keeps the
/// old process's sockets bound and the new process could not bind its port again.
pub fn restart_node(id: NodeId) {
    let handle = Handle::current();
    handle.kill(id);
    handle.restart(id);
}

/// Pending once, then ready: lets every other ready task run first.
struct YieldOnce(bool);

impl std::future::Future for YieldOnce {
    type Output = ();
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<()> {
        if self.0 {
            return std::task::Poll::Ready(());
        }
        self.0 = true;
        cx.waker().wake_by_ref();
        std::task::Poll::Pending
    }
}
