//! A tiny builder of hand-made histories, for the checkers' must-fire / must-not-fire
//! tests: `h().put("c1", 1, "/k", "v1").written("c1", 1, 2).build()`.
//!
//! Each record is stamped 10 ns after the previous one unless [`HistoryBuilder::at`] moves
//! the clock; checkers order operations by record position, so the order of calls is the
//! real-time order.

use api::{Resource, Verb, WatchEventKind};
use store::api::{MemberId, PrincipalRole, Revision};
use store::raft::Role;

use super::{check_all, CheckInput, EndState, Invariant, Verdict};

use crate::history::{ApiOutcome, History, HistoryEvent, KeyState, Record, StoreOpKind, StoreOpOutcome, WatchedEvent};

/// Runs every checker and returns `invariant`'s verdict. Panics if it has no checker.
pub fn check_one(
    invariant: Invariant,
    history: &History,
    end_state: Option<&EndState>,
    apiserver_sources: Vec<std::net::IpAddr>,
) -> Verdict {
    let input = CheckInput { history, end_state, apiserver_sources };
    check_all(&input)
        .into_iter()
        .find(|v| v.invariant == invariant)
        .unwrap_or_else(|| panic!("{invariant} has no checker"))
}

/// Starts an empty history.
pub fn h() -> HistoryBuilder {
    HistoryBuilder::default()
}

/// The source address an apiserver's writes come from in hand-made histories.
pub const APISERVER_SOURCE: &str = "10.0.2.1:40001";

#[derive(Default)]
pub struct HistoryBuilder {
    records: Vec<Record>,
    now_ns: u64,
}

impl HistoryBuilder {
    /// Stamps the following records from `at_ns` on.
    pub fn at(mut self, at_ns: u64) -> Self {
        self.now_ns = at_ns;
        self
    }

    pub fn event(mut self, event: HistoryEvent) -> Self {
        self.records.push(Record { at_ns: self.now_ns, event });
        self.now_ns += 10;
        self
    }

    pub fn build(self) -> History {
        History { records: self.records, trace_hash: 0, overflowed: false }
    }

    // Client operations.

    pub fn invoke(self, client: &str, op_id: u64, op: StoreOpKind) -> Self {
        self.event(HistoryEvent::StoreOpInvoked { client: client.into(), op_id, op })
    }

    pub fn ret(self, client: &str, op_id: u64, outcome: StoreOpOutcome) -> Self {
        self.event(HistoryEvent::StoreOpReturned { client: client.into(), op_id, outcome })
    }

    pub fn put(self, client: &str, op_id: u64, key: &str, value: &str) -> Self {
        self.invoke(client, op_id, StoreOpKind::Put { key: key.to_string(), value: value.to_string() })
    }

    pub fn get(self, client: &str, op_id: u64, key: &str) -> Self {
        self.invoke(client, op_id, StoreOpKind::Get { key: key.to_string() })
    }

    pub fn cas(self, client: &str, op_id: u64, key: &str, expected: Revision, value: &str) -> Self {
        self.invoke(
            client,
            op_id,
            StoreOpKind::CompareAndPut {
                key: key.to_string(),
                expected_mod_revision: expected,
                value: value.to_string(),
            },
        )
    }

    /// An acknowledged write (a put, or a compare-and-put whose compare held).
    pub fn written(self, client: &str, op_id: u64, revision: Revision) -> Self {
        self.ret(client, op_id, StoreOpOutcome::Written { revision, succeeded: true })
    }

    /// A compare-and-put whose compare failed, answered at `revision`.
    pub fn compare_failed(self, client: &str, op_id: u64, revision: Revision) -> Self {
        self.ret(client, op_id, StoreOpOutcome::Written { revision, succeeded: false })
    }

    pub fn read(
        self,
        client: &str,
        op_id: u64,
        revision: Revision,
        value: Option<&str>,
        mod_revision: Revision,
    ) -> Self {
        self.ret(
            client,
            op_id,
            StoreOpOutcome::Read { revision, value: value.map(str::to_string), mod_revision, served_by: MemberId(1) },
        )
    }

    pub fn failed(self, client: &str, op_id: u64) -> Self {
        self.ret(client, op_id, StoreOpOutcome::Failed { error: "not leader".into() })
    }

    pub fn unknown(self, client: &str, op_id: u64) -> Self {
        self.ret(client, op_id, StoreOpOutcome::Unknown { error: "request timed out".into() })
    }

    // Store members.

    pub fn started(self, member: MemberId) -> Self {
        self.event(HistoryEvent::MemberStarted { member, recovered_entries: 0, torn_bytes: 0 })
    }

    pub fn role(self, member: MemberId, term: u64, role: Role) -> Self {
        let leader = (role == Role::Leader).then_some(member);
        self.event(HistoryEvent::RoleChanged { member, term, role, leader })
    }

    pub fn leader(self, member: MemberId, term: u64) -> Self {
        self.role(member, term, Role::Leader)
    }

    /// A successful one-key write by the apiserver, applied at `index` by `member`,
    /// leaving the store at `revision`.
    pub fn applied(self, member: MemberId, index: u64, term: u64, proposal_id: u64, revision: Revision) -> Self {
        self.event(applied_event(member, index, term, proposal_id, revision))
    }
}

/// The `Applied` record [`HistoryBuilder::applied`] adds, to tweak fields in a test.
pub fn applied_event(member: MemberId, index: u64, term: u64, proposal_id: u64, revision: Revision) -> HistoryEvent {
    HistoryEvent::Applied {
        member,
        index,
        term,
        proposal_id,
        principal: "apiserver-1".into(),
        principal_role: PrincipalRole::ApiServer,
        source: APISERVER_SOURCE.into(),
        revision,
        succeeded: true,
        n_events: 1,
    }
}

/// Kubernetes-level records: apiserver store writes, API calls, watch answers, leader
/// elections, pods on kubelets and the user's desired replicas.
impl HistoryBuilder {
    /// The apiserver committed `verb` on `key` at `revision` for `user`.
    pub fn store_write(self, user: &str, verb: Verb, key: &str, revision: Revision) -> Self {
        self.event(HistoryEvent::StoreWrite {
            apiserver: "apiserver-0".into(),
            user: user.to_string(),
            verb,
            key: key.to_string(),
            revision,
        })
    }

    pub fn api_invoke(
        self,
        client: &str,
        request_id: u64,
        verb: Verb,
        resource: Resource,
        namespace: &str,
        name: &str,
    ) -> Self {
        self.event(HistoryEvent::ApiInvoked {
            client: client.into(),
            request_id,
            verb,
            resource,
            namespace: namespace.to_string(),
            name: name.to_string(),
        })
    }

    /// An API request answered with an object or list at `resource_version`.
    pub fn api_ok(self, client: &str, request_id: u64, resource_version: i64) -> Self {
        self.event(HistoryEvent::ApiReturned {
            client: client.into(),
            request_id,
            outcome: ApiOutcome::Ok { resource_version },
        })
    }

    pub fn api_error(self, client: &str, request_id: u64, status: u16) -> Self {
        self.event(HistoryEvent::ApiReturned {
            client: client.into(),
            request_id,
            outcome: ApiOutcome::Error { status, message: format!("HTTP {status}") },
        })
    }

    /// `client` wrote `resource` `namespace/name` through the API and was told it
    /// committed at `revision`, and the apiserver's record of the store write agrees.
    #[allow(clippy::too_many_arguments)]
    pub fn api_write(
        self,
        client: &str,
        user: &str,
        request_id: u64,
        verb: Verb,
        resource: Resource,
        namespace: &str,
        name: &str,
        revision: Revision,
    ) -> Self {
        self.api_invoke(client, request_id, verb, resource, namespace, name)
            .store_write(user, verb, &resource.key(namespace, name), revision)
            .api_ok(client, request_id, revision)
    }

    /// One watch answer: `events` are (kind, key, resourceVersion).
    pub fn watch(
        self,
        client: &str,
        resource: Resource,
        namespace: &str,
        since: i64,
        resource_version: i64,
        events: &[(WatchEventKind, &str, i64)],
    ) -> Self {
        let events = events
            .iter()
            .map(|(kind, key, rv)| WatchedEvent { kind: *kind, key: key.to_string(), resource_version: *rv })
            .collect();
        self.event(HistoryEvent::WatchDelivered {
            client: client.into(),
            resource,
            namespace: namespace.to_string(),
            since,
            resource_version,
            events,
        })
    }

    pub fn leader_acquired(self, component: &str, identity: &str, transitions: u32, lease_rv: i64) -> Self {
        self.event(HistoryEvent::LeaderAcquired {
            component: component.to_string(),
            identity: identity.to_string(),
            transitions,
            lease_resource_version: lease_rv,
        })
    }

    pub fn pod_started(self, node: &str, name: &str, uid: &str) -> Self {
        self.event(HistoryEvent::PodStarted {
            node: node.into(),
            namespace: "default".into(),
            name: name.to_string(),
            uid: uid.to_string(),
        })
    }

    pub fn pod_stopped(self, node: &str, name: &str, uid: &str) -> Self {
        self.event(HistoryEvent::PodStopped {
            node: node.into(),
            namespace: "default".into(),
            name: name.to_string(),
            uid: uid.to_string(),
            reason: "deleted".into(),
        })
    }

    pub fn desired_replicas(self, deployment: &str, replicas: i32) -> Self {
        self.event(HistoryEvent::DesiredReplicas {
            namespace: "default".into(),
            deployment: deployment.to_string(),
            replicas,
        })
    }

    // Backups and restores.

    /// Revision `revision` put `key` = `value` (the key's `version`-th write, created at
    /// `create_revision`), as the first member to apply it recorded.
    pub fn committed_put(
        self,
        revision: Revision,
        key: &str,
        value: &str,
        create_revision: Revision,
        version: i64,
    ) -> Self {
        self.event(HistoryEvent::Committed {
            revision,
            changes: vec![key_state(key, value, create_revision, revision, version)],
        })
    }

    pub fn committed_delete(self, revision: Revision, key: &str) -> Self {
        self.event(HistoryEvent::Committed { revision, changes: vec![KeyState::deleted(key, revision)] })
    }

    pub fn backup_taken(self, backup: u32, revision: Revision) -> Self {
        self.event(HistoryEvent::BackupTaken {
            backup,
            member: MemberId(1),
            cluster_id: 1,
            revision,
            n_keys: 0,
            checksum_ok: true,
        })
    }

    pub fn backup_corrupted(self, backup: u32) -> Self {
        self.event(HistoryEvent::BackupCorrupted { backup, description: "flipped bits".into() })
    }

    /// A restore of `backup` (taken at `backup_revision`) starting from `keyspace`.
    pub fn restored(self, backup: u32, backup_revision: Revision, bump: u64, keyspace: Vec<KeyState>) -> Self {
        self.event(HistoryEvent::Restored {
            backup,
            backup_revision,
            bump,
            new_revision: backup_revision + bump as i64,
            new_cluster_id: 2,
            members: vec![MemberId(4), MemberId(5), MemberId(6)],
            keyspace,
        })
    }
}

/// A key's state with `value` hashed as the recorder hashes it.
pub fn key_state(key: &str, value: &str, create_revision: Revision, mod_revision: Revision, version: i64) -> KeyState {
    KeyState {
        key: key.to_string(),
        value_hash: Some(xxhash_rust::xxh3::xxh3_64(value.as_bytes())),
        value_len: value.len() as u64,
        create_revision,
        mod_revision,
        version,
    }
}
