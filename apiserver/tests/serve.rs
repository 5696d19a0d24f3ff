//! The apiserver on a simulated node, reached by `api::ApiClient` from another node over
//! madsim's network: the canonical flow of docs/design.md §1 and the refusals along it.

mod common;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use api::{ApiClient, ClientConfig, Clock, PodPhase, Resource, Verb, WatchEventKind};
use apiserver::{serve, ApiServerObserver, InMemoryBackend, Termination};
use common::*;
use madsim::runtime::Runtime;

const APISERVER_ADDR: &str = "10.0.0.1:6443";

async fn client(user: &str) -> ApiClient {
    let server: SocketAddr = APISERVER_ADDR.parse().unwrap();
    ApiClient::connect(vec![server], credential(user), ClientConfig::default(), None).await.expect("client endpoint")
}

/// Starts an apiserver node over `store` and runs `body` on a client node.
fn run_with_apiserver<F, Fut>(store: InMemoryBackend, writes: Arc<RecordedWrites>, body: F)
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let runtime = Runtime::new();
    let apiserver_node = runtime.create_node().name("apiserver-0").ip("10.0.0.1".parse().unwrap()).build();
    let client_node = runtime.create_node().name("client").ip("10.0.0.2".parse().unwrap()).build();
    let observer = writes as Arc<dyn ApiServerObserver>;
    let _server = apiserver_node.spawn(async move {
        serve(config("apiserver-0", APISERVER_ADDR), store, Clock::new(), Some(observer), Termination::new())
            .await
            .expect("bind");
    });
    runtime
        .block_on(client_node.spawn(async move {
            // Let the apiserver bind and create the system namespaces.
            madsim::time::sleep(Duration::from_millis(100)).await;
            body().await;
        }))
        .expect("client task");
}

#[test]
fn deployment_flow_through_the_network() {
    let store = InMemoryBackend::new();
    let writes = Arc::new(RecordedWrites::default());
    let observed = writes.clone();
    run_with_apiserver(store.clone(), writes, move || async move {
        let kubectl = client(ADMIN).await;
        let controllers = client(CONTROLLER_MANAGER).await;
        let scheduler = client(SCHEDULER).await;
        let kubelet_1 = client(KUBELET_1).await;
        let kubelet_2 = client(KUBELET_2).await;

        let (_, listed_at) = controllers.list(Resource::Pods, "").await.unwrap();
        let created = kubectl.create(deployment("default", "nginx-deployment", 3).into(), None).await.unwrap();
        assert_eq!(created.metadata().resource_version, store.current_revision());
        assert_eq!(kubectl.get(Resource::Deployments, "default", "nginx-deployment").await.unwrap(), created);
        check(&scheduler.create(deployment("default", "rogue", 1).into(), None).await, "403 Forbidden");

        controllers.create(pod("default", "nginx-deployment-1").into(), None).await.unwrap();
        let bound = scheduler.bind("default", "nginx-deployment-1", "worker-1", None).await.unwrap();
        check(&scheduler.bind("default", "nginx-deployment-1", "worker-2", None).await, "409 Conflict");

        let mut running = bound.into_pod().unwrap();
        running.status.phase = PodPhase::Running;
        let before = store.current_revision();
        check(&kubelet_2.update_status(running.clone().into(), None).await, "403 Forbidden");
        assert_eq!(store.current_revision(), before);
        check(&kubelet_1.update_status(running.into(), None).await, "ok");

        // An informer watching pods from its list sees the pod's three stages.
        let (events, _) = controllers.watch(Resource::Pods, "default", listed_at, 1000).await.unwrap();
        let kinds: Vec<_> = events.iter().map(|e| e.kind).collect();
        assert_eq!(kinds, [WatchEventKind::Added, WatchEventKind::Modified, WatchEventKind::Modified]);
        let phase = events[2].object.as_pod().unwrap().status.phase;
        assert_eq!(phase, PodPhase::Running);
    });

    // The stage timeline: who wrote what, in revision order. The apiserver's own bootstrap
    // writes (system namespaces, the default RBAC policy) come first.
    let writes = observed.0.lock().unwrap().clone();
    let bootstrap_rbac = writes
        .iter()
        .filter(|(user, _, key, _)| user == "system:apiserver" && !key.starts_with("/registry/namespaces/"))
        .count();
    assert_eq!(bootstrap_rbac, apiserver::rbac::RbacPolicy::bootstrap().objects().len());
    let timeline: Vec<(String, Verb, String)> = writes
        .into_iter()
        .filter(|(user, _, _, _)| user != "system:apiserver")
        .map(|(user, verb, key, _)| (user, verb, key))
        .collect();
    let pod_key = "/registry/pods/default/nginx-deployment-1".to_string();
    assert_eq!(
        timeline,
        [
            (ADMIN.to_string(), Verb::Create, "/registry/deployments/default/nginx-deployment".to_string()),
            (CONTROLLER_MANAGER.to_string(), Verb::Create, pod_key.clone()),
            (SCHEDULER.to_string(), Verb::Bind, pod_key.clone()),
            (KUBELET_1.to_string(), Verb::UpdateStatus, pod_key),
        ]
    );
}

#[test]
fn unknown_token_over_the_network_is_unauthorized() {
    let store = InMemoryBackend::new();
    run_with_apiserver(store, Arc::default(), || async {
        let server: SocketAddr = APISERVER_ADDR.parse().unwrap();
        let intruder = ApiClient::connect(
            vec![server],
            api::Credential { user: ADMIN.into(), token: "stolen?".into() },
            ClientConfig::default(),
            None,
        )
        .await
        .unwrap();
        check(&intruder.list(Resource::Pods, "").await, "401 Unauthorized");
    });
}

/// Two runs of the same seed make the same random choices in the same order (madsim's
/// determinism check), and assign the same uids.
#[test]
fn a_seed_replays_exactly() {
    async fn body() -> Vec<String> {
        let handle = madsim::runtime::Handle::current();
        let apiserver_node = handle.create_node().ip("10.0.0.1".parse().unwrap()).build();
        let client_node = handle.create_node().ip("10.0.0.2".parse().unwrap()).build();
        let _server = apiserver_node.spawn(async {
            let config = config("apiserver-0", APISERVER_ADDR);
            serve(config, InMemoryBackend::new(), Clock::new(), None, Termination::new()).await.expect("bind");
        });
        client_node
            .spawn(async {
                madsim::time::sleep(Duration::from_millis(100)).await;
                let kubectl = client(ADMIN).await;
                let mut uids = Vec::new();
                for idx in 0..5 {
                    let created = kubectl.create(pod("default", &format!("web-{idx}")).into(), None).await.unwrap();
                    uids.push(created.metadata().uid.clone());
                }
                uids
            })
            .await
            .expect("client task")
    }
    let first = Runtime::check_determinism(7, madsim::Config::default(), body);
    let second = Runtime::check_determinism(7, madsim::Config::default(), body);
    assert_eq!(first, second);
    assert_eq!(first.len(), 5);
}

/// What a client waiting on a watch sees when the apiserver process goes away.
#[derive(Debug)]
struct PendingWatchEnd {
    /// The watch's answer: (events, resourceVersion), or the error's text.
    answer: Result<(usize, i64), String>,
    /// Simulated time from the stop to the watch's answer.
    answered_after: Duration,
    /// A list sent after the answer, while the process is still up.
    list_after: Result<(), String>,
}

/// Starts an apiserver, parks a 5 s watch on it, then stops it at 200 ms: gracefully
/// (`Termination::terminate`, then the node is killed 100 ms later) or by crashing the
/// node at once. The client makes one attempt per request, so a lost answer shows as the
/// client's own timeout (request_timeout + the watch's wait).
fn stop_apiserver_under_a_pending_watch(graceful: bool) -> PendingWatchEnd {
    let runtime = Runtime::new();
    runtime.block_on(async move {
        let handle = madsim::runtime::Handle::current();
        let apiserver_node = handle.create_node().name("apiserver-0").ip("10.0.0.1".parse().unwrap()).build();
        let client_node = handle.create_node().name("client").ip("10.0.0.2".parse().unwrap()).build();
        let termination = Termination::new();
        let served = termination.clone();
        let _server = apiserver_node.spawn(async move {
            let config = config("apiserver-0", APISERVER_ADDR);
            serve(config, InMemoryBackend::new(), Clock::new(), None, served).await.expect("bind");
        });
        let watcher = client_node.spawn(async move {
            madsim::time::sleep(Duration::from_millis(100)).await;
            let server: SocketAddr = APISERVER_ADDR.parse().unwrap();
            let config = ClientConfig { max_read_attempts: 1, ..ClientConfig::default() };
            let kubelet = ApiClient::connect(vec![server], credential(KUBELET_1), config, None).await.unwrap();
            let (_, since) = kubelet.list(Resource::Pods, "").await.unwrap();
            let answer = kubelet.watch(Resource::Pods, "", since, 5_000).await;
            let answered_at = madsim::time::Instant::now();
            let list_after = kubelet.list(Resource::Pods, "").await.map(drop).map_err(|e| e.to_string());
            let answer = answer.map(|(events, rv)| (events.len(), rv)).map_err(|e| e.to_string());
            (answer, answered_at, list_after)
        });
        madsim::time::sleep(Duration::from_millis(200)).await;
        let stopped_at = madsim::time::Instant::now();
        if graceful {
            assert!(termination.terminate(), "an apiserver instance was serving");
            assert!(!termination.terminate(), "termination is delivered once per instance");
            madsim::time::sleep(Duration::from_millis(100)).await;
        }
        handle.kill(apiserver_node.id());
        let (answer, answered_at, list_after) = watcher.await.expect("client task");
        PendingWatchEnd { answer, answered_after: answered_at - stopped_at, list_after }
    })
}

/// kube-apiserver's graceful termination (SIGTERM): the watch cache closes every watch and
/// the server stops accepting requests, so a watcher learns at once that it must watch
/// again (elsewhere, or after the restart): 503 Unavailable, which clients retry.
#[test]
fn graceful_termination_answers_a_pending_watch_at_once_and_refuses_new_requests() {
    let end = stop_apiserver_under_a_pending_watch(true);
    let closed = end.answer.as_ref().expect_err("a closed watch is answered Unavailable");
    assert!(closed.starts_with("503 ServiceUnavailable"), "{end:?}");
    assert!(closed.contains(apiserver::watch_cache::WATCH_CLOSED), "{end:?}");
    // The answer is back within the network's latency; the client then still sleeps its
    // 50 ms backoff after its one (and last) attempt.
    assert!(end.answered_after < Duration::from_millis(100), "{end:?}");
    let refused = end.list_after.as_ref().expect_err("a terminating apiserver refuses new requests");
    assert!(refused.starts_with("503 ServiceUnavailable"), "{end:?}");
    assert!(refused.contains("shutting down"), "{end:?}");
}

/// A crash is abrupt: nothing answers the pending watch, and the client finds out only
/// when its own timeout (request_timeout 5 s + the watch's 5 s wait) expires.
#[test]
fn a_crashed_apiserver_leaves_a_pending_watch_to_time_out() {
    let end = stop_apiserver_under_a_pending_watch(false);
    let error = end.answer.as_ref().expect_err("nobody answers for a crashed apiserver");
    assert!(error.starts_with("503 ServiceUnavailable"), "{end:?}");
    assert!(end.answered_after >= Duration::from_millis(9_000), "{end:?}");
}
