//! Authentication (bearer tokens) and authorization (an RBAC-like rule table plus
//! Kubernetes' Node authorizer and NodeRestriction admission for kubelets).
//!
//! Both are pure functions of the request and the configuration. The one decision that
//! depends on stored state, "is this pod bound to the kubelet's node?", is returned as
//! [`Decision::AllowIfPodBoundTo`] and checked by the registry against the stored pod it
//! is about to write, inside the same optimistic-concurrency transaction.
//!
//! | group (user)                              | may                                                                                      |
//! |-------------------------------------------|------------------------------------------------------------------------------------------|
//! | `system:masters` (admin, kubectl)         | everything                                                                               |
//! | `system:kube-controller-manager`          | get/list/watch everything; every verb but bind on deployments, replicasets, pods; every verb on leases; update node status |
//! | `system:kube-scheduler`                   | get/list/watch everything but secrets; bind pods; get/create/update lease `kube-system/kube-scheduler` |
//! | `system:nodes` (`system:node:<nodeName>`) | get/list/watch pods and nodes; update status of and delete pods bound to `<nodeName>`; create/update/update status of Node `<nodeName>`; get/create/update Lease `kube-node-lease/<nodeName>` |
//! | every component above                   | create and update Events (Kubernetes' `system:controller:*`, `system:kube-scheduler` and `system:node` roles may create, update and patch events) |
//! | anyone else                               | nothing                                                                                  |
//!
//! Custom kinds ([`Resource::Custom`]) fall under the same table: every component that
//! may read everything reads them, only `system:masters` writes them.
//!
//! Choices where Kubernetes' roles differ or were unclear:
//! - The controller-manager may update pod status: the node lifecycle controller marks the
//!   pods of a lost node Failed (`reason: NodeLost`) before deleting them (eviction). It may
//!   not bind; only the scheduler assigns nodes (invariant 12 has one writer of nodeName).
//! - The controller-manager may update Node *status* (NotReady on a lapsed heartbeat) but
//!   not Node spec or metadata, and may not create or delete Nodes.
//! - Kubelets may read every pod, not only their own (Kubernetes' Node authorizer allows
//!   list/watch of all pods too; kubelets filter by `spec.nodeName`).

use std::collections::BTreeMap;

use api::{ApiError, Credential, Resource, Verb};

use crate::config::UserInfo;

pub const GROUP_MASTERS: &str = "system:masters";
pub const GROUP_CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
pub const GROUP_SCHEDULER: &str = "system:kube-scheduler";
pub const GROUP_NODES: &str = "system:nodes";
/// Kubelets authenticate as `system:node:<nodeName>` (Kubernetes' node identity).
pub const NODE_USER_PREFIX: &str = "system:node:";
/// Node heartbeats live here (Kubernetes `kube-node-lease`).
pub const NODE_LEASE_NAMESPACE: &str = "kube-node-lease";
pub const SCHEDULER_LEASE_NAMESPACE: &str = "kube-system";
pub const SCHEDULER_LEASE_NAME: &str = "kube-scheduler";

impl UserInfo {
    pub fn admin() -> Self {
        Self::new("admin", &[GROUP_MASTERS])
    }
    pub fn controller_manager() -> Self {
        Self::new("system:kube-controller-manager", &[GROUP_CONTROLLER_MANAGER])
    }
    pub fn scheduler() -> Self {
        Self::new("system:kube-scheduler", &[GROUP_SCHEDULER])
    }
    /// The kubelet of node `node_name`.
    pub fn node(node_name: &str) -> Self {
        Self::new(format!("{NODE_USER_PREFIX}{node_name}"), &[GROUP_NODES])
    }
}

/// Bearer-token authentication: the token names the user. A credential whose claimed user
/// is not the token's user is refused too, so that a misconfigured component is found at
/// its first request rather than acting under another identity.
pub fn authenticate(tokens: &BTreeMap<String, UserInfo>, credential: &Credential) -> Result<UserInfo, ApiError> {
    match tokens.get(&credential.token) {
        None => Err(ApiError::Unauthorized { reason: format!("unknown bearer token for user {:?}", credential.user) }),
        Some(user) if user.name != credential.user => Err(ApiError::Unauthorized {
            reason: format!("token belongs to user {:?}, not {:?}", user.name, credential.user),
        }),
        Some(user) => Ok(user.clone()),
    }
}

/// What a request asks to do (Kubernetes `authorizer.Attributes`). `name` is empty for
/// list and watch; `namespace` is empty for cluster-scoped resources and all-namespace
/// lists.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Attributes<'a> {
    pub verb: Verb,
    pub resource: Resource,
    pub namespace: &'a str,
    pub name: &'a str,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Allowed only if the stored pod is bound to this node (NodeRestriction). The
    /// registry checks it against the pod it is about to write.
    AllowIfPodBoundTo(String),
}

/// Decides whether `user` may do `attrs`. Allowed if any of the user's groups allows it;
/// otherwise 403 naming the user, verb, resource and why.
pub fn authorize(user: &UserInfo, attrs: &Attributes<'_>) -> Result<Decision, ApiError> {
    let mut conditional = None;
    let mut reasons = Vec::new();
    for group in &user.groups {
        let rule = match group.as_str() {
            GROUP_MASTERS => Ok(Decision::Allow),
            GROUP_CONTROLLER_MANAGER => controller_manager(attrs),
            GROUP_SCHEDULER => scheduler(attrs),
            GROUP_NODES => match user.name.strip_prefix(NODE_USER_PREFIX) {
                Some(node_name) if !node_name.is_empty() => node(node_name, attrs),
                _ => Err(format!("members of {GROUP_NODES} must be named {NODE_USER_PREFIX}<nodeName>")),
            },
            _ => continue,
        };
        match rule {
            Ok(Decision::Allow) => return Ok(Decision::Allow),
            Ok(decision) => conditional = Some(decision),
            Err(reason) => reasons.push(reason),
        }
    }
    if let Some(decision) = conditional {
        return Ok(decision);
    }
    if reasons.is_empty() {
        reasons.push("no role grants this user anything".to_string());
    }
    Err(ApiError::Forbidden {
        user: user.name.clone(),
        verb: attrs.verb,
        resource: attrs.resource,
        reason: reasons.join("; "),
    })
}

type Rule = Result<Decision, String>;

fn is_read(verb: Verb) -> bool {
    matches!(verb, Verb::Get | Verb::List | Verb::Watch)
}

fn controller_manager(attrs: &Attributes<'_>) -> Rule {
    use Resource::*;
    match (attrs.resource, attrs.verb) {
        (_, verb) if is_read(verb) => Ok(Decision::Allow),
        (Pods, Verb::Bind) => Err("only the scheduler binds pods".into()),
        (Events, Verb::Create | Verb::Update) => Ok(Decision::Allow),
        (Deployments | ReplicaSets | Pods | Leases, _) => Ok(Decision::Allow),
        (Nodes, Verb::UpdateStatus) => Ok(Decision::Allow),
        (resource, _) => Err(format!("kube-controller-manager may only read {resource}")),
    }
}

fn scheduler(attrs: &Attributes<'_>) -> Rule {
    use Resource::*;
    match (attrs.resource, attrs.verb) {
        (Secrets, _) => Err("kube-scheduler may not access secrets".into()),
        (_, verb) if is_read(verb) => Ok(Decision::Allow),
        (Pods, Verb::Bind) => Ok(Decision::Allow),
        (Events, Verb::Create | Verb::Update) => Ok(Decision::Allow),
        (Leases, Verb::Create | Verb::Update)
            if attrs.namespace == SCHEDULER_LEASE_NAMESPACE && attrs.name == SCHEDULER_LEASE_NAME =>
        {
            Ok(Decision::Allow)
        }
        (Leases, _) => {
            Err(format!("kube-scheduler may only write lease {SCHEDULER_LEASE_NAMESPACE}/{SCHEDULER_LEASE_NAME}"))
        }
        (resource, _) => Err(format!("kube-scheduler may only read {resource} (and bind pods)")),
    }
}

/// Kubernetes' Node authorizer + NodeRestriction admission, for the kubelet of `node_name`.
fn node(node_name: &str, attrs: &Attributes<'_>) -> Rule {
    use Resource::*;
    let own_object = attrs.name == node_name;
    match (attrs.resource, attrs.verb) {
        (Pods | Nodes, verb) if is_read(verb) => Ok(Decision::Allow),
        (Events, Verb::Create | Verb::Update) => Ok(Decision::Allow),
        (Pods, Verb::UpdateStatus | Verb::Delete) => Ok(Decision::AllowIfPodBoundTo(node_name.to_string())),
        (Pods, _) => Err(format!("node {node_name} may only update the status of and delete pods bound to it")),
        (Nodes, Verb::Create | Verb::Update | Verb::UpdateStatus) if own_object => Ok(Decision::Allow),
        (Nodes, _) => Err(format!("node {node_name} may only create and update its own Node object")),
        (Leases, Verb::Get | Verb::Create | Verb::Update) if attrs.namespace == NODE_LEASE_NAMESPACE && own_object => {
            Ok(Decision::Allow)
        }
        (Leases, _) => {
            Err(format!("node {node_name} may only get, create and update lease {NODE_LEASE_NAMESPACE}/{node_name}"))
        }
        (resource, _) => Err(format!("node {node_name} may not access {resource}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use Resource::*;
    use Verb::*;

    /// One row of the authorization table: who, what, and the expected decision
    /// ("allow", "allow-if-bound:<node>" or "deny").
    fn check(user: &UserInfo, verb: Verb, resource: Resource, ns: &str, name: &str, expect: &str) {
        let attrs = Attributes { verb, resource, namespace: ns, name };
        let actual = match authorize(user, &attrs) {
            Ok(Decision::Allow) => "allow".to_string(),
            Ok(Decision::AllowIfPodBoundTo(node)) => format!("allow-if-bound:{node}"),
            Err(ApiError::Forbidden { user: u, verb: v, resource: r, reason }) => {
                assert_eq!((u.as_str(), v, r), (user.name.as_str(), verb, resource));
                assert!(!reason.is_empty());
                "deny".to_string()
            }
            Err(other) => panic!("authorize returned a non-403 error: {other}"),
        };
        assert_eq!(actual, expect, "{} {verb:?} {resource} {ns}/{name}", user.name);
    }

    #[test]
    fn masters_may_do_anything() {
        for resource in Resource::ALL {
            for verb in [Get, List, Watch, Create, Update, UpdateStatus, Delete, Bind] {
                check(&UserInfo::admin(), verb, resource, "default", "x", "allow");
            }
        }
    }

    #[test]
    fn controller_manager_table() {
        let cm = UserInfo::controller_manager();
        let table = [
            (Create, Deployments, "default", "d", "allow"),
            (Update, ReplicaSets, "default", "rs", "allow"),
            (Create, Pods, "default", "p", "allow"),
            (UpdateStatus, Pods, "default", "p", "allow"),
            (Delete, Pods, "default", "p", "allow"),
            (Bind, Pods, "default", "p", "deny"),
            (Update, Leases, "kube-system", "kube-controller-manager", "allow"),
            (List, Secrets, "", "", "allow"),
            (Watch, Nodes, "", "", "allow"),
            (UpdateStatus, Nodes, "", "worker-1", "allow"),
            (Update, Nodes, "", "worker-1", "deny"),
            (Delete, Nodes, "", "worker-1", "deny"),
            (Create, Namespaces, "", "ns", "deny"),
            (Create, Secrets, "default", "s", "deny"),
            (Create, Events, "default", "rs.1", "allow"),
            (Delete, Events, "default", "rs.1", "deny"),
        ];
        for (verb, resource, ns, name, expect) in table {
            check(&cm, verb, resource, ns, name, expect);
        }
    }

    #[test]
    fn scheduler_table() {
        let s = UserInfo::scheduler();
        let table = [
            (List, Pods, "", "", "allow"),
            (Watch, Nodes, "", "", "allow"),
            (Bind, Pods, "default", "p", "allow"),
            (Create, Deployments, "default", "d", "deny"),
            (Update, Pods, "default", "p", "deny"),
            (UpdateStatus, Pods, "default", "p", "deny"),
            (Get, Secrets, "default", "s", "deny"),
            (Create, Leases, "kube-system", "kube-scheduler", "allow"),
            (Update, Leases, "kube-system", "kube-scheduler", "allow"),
            (Update, Leases, "kube-system", "kube-controller-manager", "deny"),
            (Delete, Leases, "kube-system", "kube-scheduler", "deny"),
            (Update, Events, "default", "p.1", "allow"),
        ];
        for (verb, resource, ns, name, expect) in table {
            check(&s, verb, resource, ns, name, expect);
        }
    }

    #[test]
    fn node_restriction_table() {
        let n = UserInfo::node("worker-1");
        let table = [
            (Get, Pods, "default", "p", "allow"),
            (Watch, Pods, "", "", "allow"),
            (List, Nodes, "", "", "allow"),
            (UpdateStatus, Pods, "default", "p", "allow-if-bound:worker-1"),
            (Delete, Pods, "default", "p", "allow-if-bound:worker-1"),
            (Update, Pods, "default", "p", "deny"),
            (Create, Pods, "default", "p", "deny"),
            (Bind, Pods, "default", "p", "deny"),
            (Create, Nodes, "", "worker-1", "allow"),
            (UpdateStatus, Nodes, "", "worker-1", "allow"),
            (UpdateStatus, Nodes, "", "worker-2", "deny"),
            (Delete, Nodes, "", "worker-1", "deny"),
            (Create, Leases, "kube-node-lease", "worker-1", "allow"),
            (Update, Leases, "kube-node-lease", "worker-1", "allow"),
            (Get, Leases, "kube-node-lease", "worker-1", "allow"),
            (Update, Leases, "kube-node-lease", "worker-2", "deny"),
            (Update, Leases, "kube-system", "worker-1", "deny"),
            (Get, Secrets, "default", "s", "deny"),
            (Create, Deployments, "default", "d", "deny"),
            (Create, Events, "default", "p.1", "allow"),
            (Get, Events, "default", "p.1", "deny"),
        ];
        for (verb, resource, ns, name, expect) in table {
            check(&n, verb, resource, ns, name, expect);
        }
    }

    #[test]
    fn unknown_groups_and_malformed_node_identities_are_denied() {
        let nobody = UserInfo::new("mallory", &["system:authenticated"]);
        check(&nobody, Get, Pods, "default", "p", "deny");
        let bad_node = UserInfo::new("worker-1", &[GROUP_NODES]);
        check(&bad_node, Get, Pods, "default", "p", "deny");
    }

    #[test]
    fn authentication_needs_a_known_token_of_the_claimed_user() {
        let tokens: BTreeMap<String, UserInfo> = [("t-admin".to_string(), UserInfo::admin())].into();
        let cred = |user: &str, token: &str| Credential { user: user.into(), token: token.into() };
        assert_eq!(authenticate(&tokens, &cred("admin", "t-admin")), Ok(UserInfo::admin()));
        for bad in [cred("admin", "wrong"), cred("system:kube-scheduler", "t-admin")] {
            let err = authenticate(&tokens, &bad).unwrap_err();
            assert_eq!(err.status_code(), 401, "{err}");
        }
    }
}
