//! etcd-robustness-style store traffic: clients doing puts with unique values,
//! linearizable gets and compare-and-puts on a few keys, each operation recorded with its
//! invoke and return, which gives the store-level linearizability and durability checkers
//! a dense single-key history. store-smoke's workload is made of these clients
//! ([`run_worker`]); in the whole control plane they run beside apiserver-0 (`spawn`).

use std::time::Duration;

use bytes::Bytes;
use madsim::rand::Rng;
use store::api::{Compare, CompareOp, KeyRange, Principal, PutRequest, RangeRequest, RequestOp, TxnRequest};
use store::client::{StoreClient, StoreClientConfig};

use crate::history::{HistoryEvent, StoreOpKind, StoreOpOutcome};
use crate::membership::{follow_endpoints, Endpoints};
use crate::recorder::Recorder;

/// The keys one client works on (`<key_prefix>key-00` and up).
pub const N_KEYS: usize = 16;

/// etcd-robustness-style traffic from the apiserver's node: two clients with the
/// apiserver's principal doing [`run_worker`]'s operations on keys outside `/registry/`
/// (the apiserver ignores them) until simulated time `until`. Kubernetes' own store
/// traffic is mostly conditional writes and lists; this mixes in "etcd" traffic as etcd's
/// robustness tests mix "kubernetes" and "etcd" traffic. It restarts with its node, under a
/// new client name per incarnation so operation ids stay unique. Runs on the caller's node.
pub(crate) fn spawn(apiserver: &str, endpoints: Endpoints, until: Duration, recorder: Recorder, incarnation: u64) {
    let now = madsim::time::TimeHandle::current().elapsed();
    let Some(duration) = until.checked_sub(now) else { return };
    for worker in 0..2 {
        let (endpoints, recorder) = (endpoints.clone(), recorder.clone());
        let name = format!("{apiserver}/etcd-traffic-{worker}.{incarnation}");
        let principal = Principal::apiserver(apiserver);
        madsim::task::spawn(async move {
            let members = endpoints.lock().expect("endpoints lock").clone();
            let Ok(client) = StoreClient::connect(members, principal, StoreClientConfig::default()).await else {
                return;
            };
            follow_endpoints(client.clone(), endpoints);
            run_worker(&client, &recorder, &name, "/kubesim/traffic/", duration, 20..80).await;
        });
    }
}

/// One client's loop of etcd-robustness-style operations on `N_KEYS` keys under
/// `key_prefix` (puts with unique values, linearizable gets, compare-and-puts), each
/// recorded with its invoke and return; returns the number of acknowledged writes.
pub async fn run_worker(
    client: &StoreClient,
    recorder: &Recorder,
    client_name: &str,
    key_prefix: &str,
    duration: Duration,
    think_ms: std::ops::Range<u64>,
) -> usize {
    let client_name = client_name.to_string();
    let mut n_acknowledged = 0;
    let mut op_id = 0u64;
    let start = madsim::time::Instant::now();
    while start.elapsed() < duration {
        op_id += 1;
        let (key_idx, choice, think_ms) = {
            let mut rng = madsim::rand::thread_rng();
            (rng.gen_range(0..N_KEYS), rng.gen_range(0..10u32), rng.gen_range(think_ms.clone()))
        };
        let key = format!("{key_prefix}key-{key_idx:02}");
        let value = format!("{client_name}-{op_id}");
        let op = match choice {
            0..=4 => StoreOpKind::Put { key: key.clone(), value },
            5..=7 => StoreOpKind::Get { key: key.clone() },
            _ => {
                // Compare-and-put against the revision this client last read.
                let expected = match client.range(RangeRequest::new(KeyRange::Key(key.clone()))).await {
                    Ok(r) => r.kvs.first().map_or(0, |kv| kv.mod_revision),
                    Err(_) => 0,
                };
                StoreOpKind::CompareAndPut { key: key.clone(), expected_mod_revision: expected, value }
            }
        };
        recorder.record(HistoryEvent::StoreOpInvoked { client: client_name.clone().into(), op_id, op: op.clone() });
        let outcome = execute(client, &op).await;
        if matches!(outcome, StoreOpOutcome::Written { succeeded: true, .. }) {
            n_acknowledged += 1;
        }
        recorder.record(HistoryEvent::StoreOpReturned { client: client_name.clone().into(), op_id, outcome });
        madsim::time::sleep(Duration::from_millis(think_ms)).await;
    }
    n_acknowledged
}

/// Sends `op` to the store and says what came back: a write whose outcome is unknown (it
/// may have been applied) is `Unknown`, any other error `Failed`.
pub async fn execute(client: &StoreClient, op: &StoreOpKind) -> StoreOpOutcome {
    use store::api::StoreError;
    let classify = |e: StoreError| match e {
        StoreError::UnknownOutcome { .. } => StoreOpOutcome::Unknown { error: e.to_string() },
        other => StoreOpOutcome::Failed { error: other.to_string() },
    };
    match op {
        StoreOpKind::Put { key, value } => {
            let put = PutRequest { key: key.clone(), value: Bytes::from(value.clone()), prev_kv: false };
            match client.put(put).await {
                Ok(r) => StoreOpOutcome::Written { revision: r.header.revision, succeeded: true },
                Err(e) => classify(e),
            }
        }
        StoreOpKind::Get { key } => match client.range(RangeRequest::new(KeyRange::Key(key.clone()))).await {
            Ok(r) => {
                let kv = r.kvs.first();
                StoreOpOutcome::Read {
                    revision: r.header.revision,
                    value: kv.map(|kv| String::from_utf8_lossy(&kv.value).into_owned()),
                    mod_revision: kv.map_or(0, |kv| kv.mod_revision),
                    served_by: r.header.member_id,
                }
            }
            Err(e) => StoreOpOutcome::Failed { error: e.to_string() },
        },
        StoreOpKind::CompareAndPut { key, expected_mod_revision, value } => {
            let txn = TxnRequest {
                compare: vec![Compare::mod_revision(key.clone(), CompareOp::Equal, *expected_mod_revision)],
                success: vec![RequestOp::Put(PutRequest {
                    key: key.clone(),
                    value: Bytes::from(value.clone()),
                    prev_kv: false,
                })],
                failure: vec![],
            };
            match client.txn(txn).await {
                Ok(r) => StoreOpOutcome::Written { revision: r.header.revision, succeeded: r.succeeded },
                Err(e) => classify(e),
            }
        }
    }
}
