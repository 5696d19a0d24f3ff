//! [`Invariant::Permissions`] (docs/design.md §4.19): no request is admitted that the RBAC
//! objects its authorizer had seen deny; and the *security window* of each restore.
//!
//! Kubernetes' RBAC authorizer (`plugin/pkg/auth/authorizer/rbac/rbac.go`,
//! `RBACAuthorizer.Authorize` with `VisitRulesFor`) decides from the Roles, RoleBindings,
//! ClusterRoles and ClusterRoleBindings its informers hold. Rules only add, so a request
//! is allowed exactly when some binding grants it; the informers may lag the store (a
//! revoked binding stays in effect until the apiserver has seen its delete), but whatever
//! they hold is the store's state as of the revision they synced to.
//!
//! The exact rule, judged from the history. Each [`HistoryEvent::Authorized`] record names
//! the request (user, groups, verb, resource, namespace, name), the decision, and the
//! revision up to which the apiserver's informer of each of the four kinds had applied
//! changes. The checker rebuilds each kind's objects at that revision from the committed
//! store writes ([`HistoryEvent::RbacObjectCommitted`], one per RBAC key a committed
//! revision put or deleted, with the value the store applied), in the cluster epoch the
//! decision was made in, and evaluates the request with its own evaluator, written from
//! `rbac.go` and `pkg/apis/rbac/v1/evaluation_helpers.go` (it calls no apiserver code):
//! - the request's attributes: verb `get`, `list`, `watch`, `create`, `update`, `delete`;
//!   an UpdateStatus is `update` of subresource `status`, a Bind is `create` of
//!   subresource `binding`; the resource is its API plural (`nodes`) in its API group;
//!   the namespace is empty for a cluster-scoped resource;
//! - a subject applies to the user (`User` with the user's name) or to one of its groups
//!   (`Group`) (`appliesTo`);
//! - a rule allows the request when a verb is `*` or the verb, an API group is `*` or the
//!   group, a resource is `*`, the resource (`pods`, or `pods/status` for a subresource) or
//!   `*/<subresource>`, and its resourceNames are empty or hold the name (`RuleAllows`).
//!   kubesim's create carries the object's name, so resourceNames limit creates too (the
//!   bootstrap policy relies on it; Kubernetes' create has no name);
//! - the request is granted when a ClusterRoleBinding whose subject applies names an
//!   existing ClusterRole with an allowing rule, or, for a namespaced request, a
//!   RoleBinding of the request's namespace whose subject applies names an existing Role
//!   of that namespace or ClusterRole with one. A binding naming a missing role grants
//!   nothing.
//!
//! An allowed request that is not granted is a violation. A denied request that is
//! granted is not (the cache had not yet seen the grant, or denies for a reason of its
//! own); it is counted in the summary.
//!
//! **Restores.** A [`HistoryEvent::Restored`] record begins a new epoch whose RBAC objects
//! are the restored keyspace's (each known from the record of the value hash it carries:
//! the backup holds values committed earlier in the history). A decision is judged in the
//! epoch its record falls in (the operator stops every apiserver before the restore and
//! starts them after it, so their caches are rebuilt from the restored store); a revision
//! below the epoch's own changes sees the restored state.
//!
//! **Security window.** A restore brings back the RBAC objects of the backup's revision,
//! so a permission revoked after it is granted again (etcd's and Kubernetes' documented
//! consequence of restoring an older snapshot). That is expected, like the data-loss
//! window, and reported, not judged: for each restore, each grant (subject, role,
//! namespace, through which binding) that the restored objects hold and the lost cluster's
//! last objects did not, from the restore until the first revision of the new epoch that
//! removes it again (or the next restore, or the end of the run). See
//! [`security_windows`].
//!
//! Cost: O(decisions × RBAC objects × log versions).

use std::collections::{BTreeMap, BTreeSet};

use api::rbac::{PolicyRule, RoleRef, RoleRefKind, Subject, SubjectKind};
use api::{Resource, Verb};
use serde::{Deserialize, Serialize};
use store::api::Revision;

use super::{CheckInput, Invariant, Verdict, Violations};
use crate::history::{History, HistoryEvent, RbacObjectRecord, RbacRevisions};

/// The most security windows listed in a verdict's summary (all are counted).
const MAX_WINDOWS_LISTED: usize = 10;

/// The four RBAC kinds, ordered so that an object's identity sorts by kind first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Role,
    RoleBinding,
    ClusterRole,
    ClusterRoleBinding,
}

impl Kind {
    fn of(resource: Resource) -> Option<Kind> {
        match resource {
            Resource::Roles => Some(Kind::Role),
            Resource::RoleBindings => Some(Kind::RoleBinding),
            Resource::ClusterRoles => Some(Kind::ClusterRole),
            Resource::ClusterRoleBindings => Some(Kind::ClusterRoleBinding),
            _ => None,
        }
    }

    /// The revision the decision's informer of this kind had synced to.
    fn view(self, revisions: &RbacRevisions) -> Revision {
        match self {
            Kind::Role => revisions.roles,
            Kind::RoleBinding => revisions.role_bindings,
            Kind::ClusterRole => revisions.cluster_roles,
            Kind::ClusterRoleBinding => revisions.cluster_role_bindings,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Role => "Role",
            Kind::RoleBinding => "RoleBinding",
            Kind::ClusterRole => "ClusterRole",
            Kind::ClusterRoleBinding => "ClusterRoleBinding",
        }
    }
}

/// One RBAC object's identity: kind, namespace (empty for the cluster-scoped kinds), name.
type ObjectId = (Kind, String, String);

/// The object as a report names it: kind, namespace/name and store key (which the
/// explanation of a failing run follows to its commits).
fn describe(id: &ObjectId) -> String {
    let resource = match id.0 {
        Kind::Role => Resource::Roles,
        Kind::RoleBinding => Resource::RoleBindings,
        Kind::ClusterRole => Resource::ClusterRoles,
        Kind::ClusterRoleBinding => Resource::ClusterRoleBindings,
    };
    let key = resource.key(&id.1, &id.2);
    match id.1.is_empty() {
        true => format!("{} {} ({key})", id.0.name(), id.2),
        false => format!("{} {}/{} ({key})", id.0.name(), id.1, id.2),
    }
}

/// One version of an object: the revision that wrote it and what it held (`None`: deleted).
type Version<'h> = (Revision, Option<&'h RbacObjectRecord>);

/// The RBAC objects of one cluster epoch: those it began with and every committed change.
#[derive(Default)]
struct Epoch<'h> {
    start: BTreeMap<ObjectId, &'h RbacObjectRecord>,
    /// Each object's versions in revision order.
    versions: BTreeMap<ObjectId, Vec<Version<'h>>>,
    /// Restored values whose record was not found (the epoch's objects are then unknown).
    n_unknown: usize,
}

impl<'h> Epoch<'h> {
    fn ids(&self, kind: Kind) -> BTreeSet<&ObjectId> {
        let in_kind = |id: &&ObjectId| id.0 == kind;
        self.start.keys().filter(in_kind).chain(self.versions.keys().filter(in_kind)).collect()
    }

    /// The object `id` as of `revision`.
    fn at(&self, id: &ObjectId, revision: Revision) -> Option<&'h RbacObjectRecord> {
        if let Some(versions) = self.versions.get(id) {
            let n_at_or_below = versions.partition_point(|(r, _)| *r <= revision);
            if n_at_or_below > 0 {
                return versions[n_at_or_below - 1].1;
            }
        }
        self.start.get(id).copied()
    }

    /// The rules of the role a binding in `namespace` refers to, as of the view.
    fn role_rules(&self, namespace: &str, role_ref: &RoleRef, view: &RbacRevisions) -> Option<&'h [PolicyRule]> {
        let (kind, namespace) = match role_ref.kind {
            RoleRefKind::Role => (Kind::Role, namespace.to_string()),
            RoleRefKind::ClusterRole => (Kind::ClusterRole, String::new()),
        };
        match self.at(&(kind, namespace, role_ref.name.clone()), kind.view(view))? {
            RbacObjectRecord::Rules(rules) => Some(rules),
            RbacObjectRecord::Binding { .. } => None,
        }
    }

    /// Every binding of `kind` as of `revision`, with its id.
    fn bindings(&self, kind: Kind, revision: Revision) -> Vec<(&ObjectId, &'h [Subject], &'h RoleRef)> {
        self.ids(kind)
            .into_iter()
            .filter_map(|id| match self.at(id, revision)? {
                RbacObjectRecord::Binding { subjects, role_ref } => Some((id, subjects.as_slice(), role_ref)),
                RbacObjectRecord::Rules(_) => None,
            })
            .collect()
    }

    /// The binding that grants `request` as of `view`, if one does (see the module doc).
    fn granted_by(&self, request: &Request<'_>, view: &RbacRevisions) -> Option<ObjectId> {
        let applies = |subjects: &[Subject]| subjects.iter().any(|s| applies_to(s, request.user, request.groups));
        let allows = |rules: &[PolicyRule]| rules.iter().any(|rule| rule_allows(rule, request));
        for (id, subjects, role_ref) in self.bindings(Kind::ClusterRoleBinding, view.cluster_role_bindings) {
            if role_ref.kind == RoleRefKind::ClusterRole
                && applies(subjects)
                && self.role_rules("", role_ref, view).is_some_and(allows)
            {
                return Some(id.clone());
            }
        }
        if request.namespace.is_empty() {
            return None;
        }
        self.bindings(Kind::RoleBinding, view.role_bindings)
            .into_iter()
            .filter(|(id, _, _)| id.1 == request.namespace)
            .find(|(_, subjects, role_ref)| {
                applies(subjects) && self.role_rules(request.namespace, role_ref, view).is_some_and(allows)
            })
            .map(|(id, _, _)| id.clone())
    }

    /// The latest delete, at or below the view, of a binding that had named the
    /// request's user or one of its groups: the likely revocation a stale view missed.
    fn last_revocation(&self, request: &Request<'_>, view: &RbacRevisions) -> Option<(ObjectId, Revision)> {
        let mut found: Option<(ObjectId, Revision)> = None;
        for (id, versions) in &self.versions {
            let Some(view) = (match id.0 {
                Kind::RoleBinding if id.1 == request.namespace => Some(view.role_bindings),
                Kind::ClusterRoleBinding => Some(view.cluster_role_bindings),
                _ => None,
            }) else {
                continue;
            };
            for (idx, (revision, object)) in versions.iter().enumerate() {
                if object.is_some() || *revision > view {
                    continue;
                }
                let before = if idx == 0 { self.start.get(id).copied() } else { versions[idx - 1].1 };
                let named = matches!(before, Some(RbacObjectRecord::Binding { subjects, .. })
                    if subjects.iter().any(|s| applies_to(s, request.user, request.groups)));
                if named && found.as_ref().is_none_or(|(_, r)| r < revision) {
                    found = Some((id.clone(), *revision));
                }
            }
        }
        found
    }

    /// Every grant the objects hold as of `revision` (every kind at that revision).
    fn grants(&self, revision: Revision) -> BTreeSet<Grant> {
        let view = RbacRevisions {
            roles: revision,
            role_bindings: revision,
            cluster_roles: revision,
            cluster_role_bindings: revision,
        };
        let mut grants = BTreeSet::new();
        for kind in [Kind::ClusterRoleBinding, Kind::RoleBinding] {
            for (id, subjects, role_ref) in self.bindings(kind, revision) {
                if kind == Kind::ClusterRoleBinding && role_ref.kind != RoleRefKind::ClusterRole {
                    continue;
                }
                if self.role_rules(&id.1, role_ref, &view).is_none() {
                    continue;
                }
                for subject in subjects {
                    grants.insert(Grant {
                        subject: subject.clone(),
                        namespace: id.1.clone(),
                        role: role_ref.clone(),
                        binding: id.2.clone(),
                    });
                }
            }
        }
        grants
    }
}

/// A request as RBAC sees it (Kubernetes `authorizer.Attributes` of a resource request).
struct Request<'a> {
    user: &'a str,
    groups: &'a [String],
    verb: &'static str,
    api_group: &'static str,
    resource: &'static str,
    subresource: &'static str,
    namespace: &'a str,
    name: &'a str,
}

impl<'a> Request<'a> {
    fn of(
        user: &'a str,
        groups: &'a [String],
        verb: Verb,
        resource: Resource,
        namespace: &'a str,
        name: &'a str,
    ) -> Self {
        let (verb, subresource) = match verb {
            Verb::Get => ("get", ""),
            Verb::List => ("list", ""),
            Verb::Watch => ("watch", ""),
            Verb::Create => ("create", ""),
            Verb::Update => ("update", ""),
            Verb::UpdateStatus => ("update", "status"),
            Verb::Delete => ("delete", ""),
            Verb::Bind => ("create", "binding"),
        };
        let api_group = match resource {
            Resource::Deployments | Resource::ReplicaSets => "apps",
            Resource::Leases => "coordination.k8s.io",
            Resource::Roles | Resource::RoleBindings | Resource::ClusterRoles | Resource::ClusterRoleBindings => {
                "rbac.authorization.k8s.io"
            }
            Resource::Custom(definition) => definition.group,
            _ => "",
        };
        // Nodes are stored as `minions` but named `nodes` in the API and in rules.
        let resource_name = if resource == Resource::Nodes { "nodes" } else { resource.plural() };
        Request {
            user,
            groups,
            verb,
            api_group,
            resource: resource_name,
            subresource,
            namespace: if resource.namespaced() { namespace } else { "" },
            name,
        }
    }

    fn describe(&self) -> String {
        let sub = if self.subresource.is_empty() { String::new() } else { format!("/{}", self.subresource) };
        let place = if self.namespace.is_empty() { String::new() } else { format!(" in namespace {}", self.namespace) };
        let name = if self.name.is_empty() { String::new() } else { format!(" {:?}", self.name) };
        format!("{} {}{sub}{name}{place}", self.verb, self.resource)
    }
}

/// `appliesTo` (rbac.go): a User subject by the user's name, a Group by membership.
fn applies_to(subject: &Subject, user: &str, groups: &[String]) -> bool {
    match subject.kind {
        SubjectKind::User => subject.name == user,
        SubjectKind::Group => groups.contains(&subject.name),
    }
}

/// `RuleAllows` (evaluation_helpers.go): `VerbMatches`, `APIGroupMatches`,
/// `ResourceMatches` and `ResourceNameMatches`.
fn rule_allows(rule: &PolicyRule, request: &Request<'_>) -> bool {
    let any = |items: &[String], value: &str| items.iter().any(|item| item == "*" || item == value);
    let combined = match request.subresource {
        "" => request.resource.to_string(),
        sub => format!("{}/{sub}", request.resource),
    };
    let resource_matches = rule.resources.iter().any(|r| {
        r == "*"
            || *r == combined
            || (!request.subresource.is_empty() && r.strip_prefix("*/") == Some(request.subresource))
    });
    any(&rule.verbs, request.verb)
        && any(&rule.api_groups, request.api_group)
        && resource_matches
        && (rule.resource_names.is_empty() || rule.resource_names.iter().any(|n| n == request.name))
}

/// One permission a binding gives: `subject` holds `role` in `namespace` (empty: cluster
/// wide) through the binding named `binding`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Grant {
    subject: Subject,
    namespace: String,
    role: RoleRef,
    binding: String,
}

/// A permission a restore gave back (see the module doc): who regained which role where,
/// from the restore until it was revoked again.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityWindow {
    /// The restored backup and its revision.
    pub backup: u32,
    pub backup_revision: Revision,
    /// `User alice` or `Group g`.
    pub subject: String,
    /// `Role default/configmap-editor` or `ClusterRole view`.
    pub role: String,
    /// The binding's namespace (empty: a ClusterRoleBinding, cluster wide).
    pub namespace: String,
    /// The binding's name.
    pub binding: String,
    /// When the restore gave it back (simulated ns).
    pub from_ns: u64,
    /// When it was taken away again (simulated ns), and at which revision (`None`: by the
    /// next restore); `None`: still held at the end of the run.
    pub until: Option<(u64, Option<Revision>)>,
}

impl SecurityWindow {
    fn of(grant: &Grant, backup: u32, backup_revision: Revision, from_ns: u64) -> Self {
        let subject = match grant.subject.kind {
            SubjectKind::User => format!("User {}", grant.subject.name),
            SubjectKind::Group => format!("Group {}", grant.subject.name),
        };
        let role = match grant.role.kind {
            RoleRefKind::Role => format!("Role {}/{}", grant.namespace, grant.role.name),
            RoleRefKind::ClusterRole => format!("ClusterRole {}", grant.role.name),
        };
        SecurityWindow {
            backup,
            backup_revision,
            subject,
            role,
            namespace: grant.namespace.clone(),
            binding: grant.binding.clone(),
            from_ns,
            until: None,
        }
    }
}

impl std::fmt::Display for SecurityWindow {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let place =
            if self.namespace.is_empty() { "cluster-wide".to_string() } else { format!("in {}", self.namespace) };
        write!(
            f,
            "{} regained {} {place} (binding {}) by the restore of backup {} (rev {}) at {:.3}s, ",
            self.subject,
            self.role,
            self.binding,
            self.backup,
            self.backup_revision,
            self.from_ns as f64 / 1e9
        )?;
        match self.until {
            None => write!(f, "until the end of the run"),
            Some((at_ns, Some(revision))) => write!(f, "until revoked at rev {revision} at {:.3}s", at_ns as f64 / 1e9),
            Some((at_ns, None)) => write!(f, "until the next restore at {:.3}s", at_ns as f64 / 1e9),
        }
    }
}

/// A decision to judge, in the epoch its record fell in.
struct Decision<'h> {
    at_ns: u64,
    epoch: usize,
    apiserver: &'h str,
    request: Request<'h>,
    allowed: bool,
    view: RbacRevisions,
}

/// The history read once: every epoch's RBAC objects, the decisions and the windows.
struct Reading<'h> {
    epochs: Vec<Epoch<'h>>,
    decisions: Vec<Decision<'h>>,
    windows: Vec<SecurityWindow>,
}

fn read(history: &History) -> Reading<'_> {
    // Every committed RBAC value by its hash, for reading a restored keyspace.
    let by_hash: BTreeMap<u64, (ObjectId, &RbacObjectRecord)> = history
        .events()
        .filter_map(|(_, event)| match event {
            HistoryEvent::RbacObjectCommitted {
                resource,
                namespace,
                name,
                object: Some(object),
                value_hash: Some(hash),
                ..
            } => Some((*hash, ((Kind::of(*resource)?, namespace.clone(), name.clone()), object))),
            _ => None,
        })
        .collect();
    let mut reading = Reading { epochs: vec![Epoch::default()], decisions: Vec::new(), windows: Vec::new() };
    let mut backups: BTreeMap<u32, Revision> = BTreeMap::new();
    // The windows of the current epoch still open, with the grant each follows.
    let mut open: Vec<(usize, Grant)> = Vec::new();
    for (at_ns, event) in history.events() {
        let epoch = reading.epochs.len() - 1;
        match event {
            HistoryEvent::RbacObjectCommitted { revision, resource, namespace, name, object, .. } => {
                let Some(kind) = Kind::of(*resource) else { continue };
                let id = (kind, namespace.clone(), name.clone());
                let current = &mut reading.epochs[epoch];
                current.versions.entry(id).or_default().push((*revision, object.as_ref()));
                if !open.is_empty() {
                    let grants = current.grants(*revision);
                    open.retain(|(window, grant)| {
                        let held = grants.contains(grant);
                        if !held {
                            reading.windows[*window].until = Some((at_ns, Some(*revision)));
                        }
                        held
                    });
                }
            }
            HistoryEvent::BackupTaken { backup, revision, .. } => {
                backups.insert(*backup, *revision);
            }
            HistoryEvent::Restored { backup, keyspace, .. } => {
                for (window, _) in open.drain(..) {
                    reading.windows[window].until = Some((at_ns, None));
                }
                let mut restored = Epoch::default();
                for state in keyspace {
                    let Some(resource) = Resource::from_key(&state.key) else { continue };
                    if Kind::of(resource).is_none() {
                        continue;
                    }
                    match state.value_hash.and_then(|hash| by_hash.get(&hash)) {
                        Some((id, object)) => {
                            restored.start.insert(id.clone(), *object);
                        }
                        None => restored.n_unknown += 1,
                    }
                }
                let lost = reading.epochs[epoch].grants(Revision::MAX);
                let backup_revision = backups.get(backup).copied().unwrap_or(0);
                for grant in restored.grants(Revision::MAX).difference(&lost) {
                    open.push((reading.windows.len(), grant.clone()));
                    reading.windows.push(SecurityWindow::of(grant, *backup, backup_revision, at_ns));
                }
                reading.epochs.push(restored);
            }
            HistoryEvent::Authorized {
                apiserver,
                user,
                groups,
                verb,
                resource,
                namespace,
                name,
                allowed,
                rbac_revisions,
            } => reading.decisions.push(Decision {
                at_ns,
                epoch,
                apiserver: apiserver.as_str(),
                request: Request::of(user, groups, *verb, *resource, namespace, name),
                allowed: *allowed,
                view: *rbac_revisions,
            }),
            _ => {}
        }
    }
    reading
}

/// Every security window of the run (see the module doc), in the order the restores
/// opened them.
pub fn security_windows(history: &History) -> Vec<SecurityWindow> {
    let has_rbac_records = history.events().any(|(_, event)| matches!(event, HistoryEvent::RbacObjectCommitted { .. }));
    if !has_rbac_records {
        return Vec::new();
    }
    read(history).windows
}

pub(super) fn check(input: &CheckInput) -> Verdict {
    let mut violations = Violations::new(Invariant::Permissions);
    let judged = input
        .history
        .events()
        .any(|(_, event)| matches!(event, HistoryEvent::Authorized { .. } | HistoryEvent::RbacObjectCommitted { .. }));
    if !judged {
        return violations.into_verdict(
            0,
            "no authorization decisions recorded (only the permissions scenario and a generated workload that grants record them)".to_string(),
        );
    }
    let reading = read(input.history);
    let (mut n_allowed, mut n_denied, mut n_denied_granted, mut n_unjudged) = (0, 0, 0, 0);
    for decision in &reading.decisions {
        let epoch = &reading.epochs[decision.epoch];
        if epoch.n_unknown > 0 {
            n_unjudged += 1;
            continue;
        }
        let granted = epoch.granted_by(&decision.request, &decision.view);
        match (decision.allowed, granted) {
            (true, Some(_)) => n_allowed += 1,
            (true, None) => {
                n_allowed += 1;
                let request = &decision.request;
                let revoked = match epoch.last_revocation(request, &decision.view) {
                    Some((id, revision)) => format!("; {} was deleted at revision {revision}", describe(&id)),
                    None => String::new(),
                };
                let view = &decision.view;
                violations.push(
                    Some(decision.at_ns),
                    format!(
                        "{} allowed user {:?} (groups {:?}) to {}, but no binding grants it in the RBAC objects it \
                         had synced (roles at rev {}, rolebindings at rev {}, clusterroles at rev {}, \
                         clusterrolebindings at rev {}){revoked}",
                        decision.apiserver,
                        request.user,
                        request.groups,
                        request.describe(),
                        view.roles,
                        view.role_bindings,
                        view.cluster_roles,
                        view.cluster_role_bindings
                    ),
                );
            }
            (false, Some(_)) => {
                n_denied += 1;
                n_denied_granted += 1;
            }
            (false, None) => n_denied += 1,
        }
    }
    let mut summary = format!(
        "{} RBAC decisions ({n_allowed} allowed, {n_denied} denied, {n_denied_granted} of them granted by the \
         objects seen) across {} cluster epochs",
        n_allowed + n_denied,
        reading.epochs.len()
    );
    if n_unjudged > 0 {
        summary.push_str(&format!(", {n_unjudged} unjudged (restored RBAC values not in the history)"));
    }
    if !reading.windows.is_empty() {
        let listed: Vec<String> = reading.windows.iter().take(MAX_WINDOWS_LISTED).map(|w| w.to_string()).collect();
        let more = reading.windows.len().saturating_sub(MAX_WINDOWS_LISTED);
        summary.push_str(&format!("; {} security windows: {}", reading.windows.len(), listed.join("; ")));
        if more > 0 {
            summary.push_str(&format!("; and {more} more"));
        }
    }
    violations.into_verdict(n_allowed + n_denied, summary)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkers::testing::{check_one, h, HistoryBuilder};
    use crate::history::KeyState;

    const NS: &str = "team";

    fn editor_role() -> RbacObjectRecord {
        RbacObjectRecord::Rules(vec![PolicyRule::new(&["get", "list", "update", "create"], &[""], &["configmaps"])])
    }

    fn binding_of(user: &str) -> RbacObjectRecord {
        RbacObjectRecord::Binding {
            subjects: vec![Subject::user(user)],
            role_ref: RoleRef { kind: RoleRefKind::Role, name: "editor".into() },
        }
    }

    fn committed(
        revision: Revision,
        resource: Resource,
        name: &str,
        object: Option<RbacObjectRecord>,
        value_hash: u64,
    ) -> HistoryEvent {
        let namespace = if resource.namespaced() { NS.to_string() } else { String::new() };
        let value_hash = object.as_ref().map(|_| value_hash);
        HistoryEvent::RbacObjectCommitted { revision, resource, namespace, name: name.into(), object, value_hash }
    }

    fn authorized(user: &str, verb: Verb, allowed: bool, revision: Revision) -> HistoryEvent {
        HistoryEvent::Authorized {
            apiserver: "apiserver-0".into(),
            user: user.into(),
            groups: vec!["system:authenticated".into()],
            verb,
            resource: Resource::ConfigMaps,
            namespace: NS.into(),
            name: "settings".into(),
            allowed,
            rbac_revisions: RbacRevisions {
                roles: revision,
                role_bindings: revision,
                cluster_roles: revision,
                cluster_role_bindings: revision,
            },
        }
    }

    /// The role at revision 1, alice's binding at 2, deleted at 5.
    fn granted_then_revoked() -> HistoryBuilder {
        h().event(committed(1, Resource::Roles, "editor", Some(editor_role()), 11))
            .event(committed(2, Resource::RoleBindings, "alice-editor", Some(binding_of("alice")), 12))
            .event(committed(5, Resource::RoleBindings, "alice-editor", None, 0))
    }

    fn verdict(history: HistoryBuilder) -> Verdict {
        check_one(Invariant::Permissions, &history.build(), None, vec![])
    }

    #[test]
    fn a_request_admitted_from_a_view_that_saw_the_revocation_is_a_violation() {
        let v = verdict(granted_then_revoked().event(authorized("alice", Verb::Update, true, 6)));
        assert_eq!(v.violations.len(), 1, "{v:?}");
        let message = &v.violations[0].message;
        assert!(
            message.contains(
                "RoleBinding team/alice-editor (/registry/rolebindings/team/alice-editor) was deleted at revision 5"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_request_admitted_from_a_view_before_the_revocation_is_not() {
        // A cache that had synced only to revision 4 still held the binding: stale, but
        // exactly what the store said at 4.
        let v = verdict(granted_then_revoked().event(authorized("alice", Verb::Update, true, 4)).event(authorized(
            "alice",
            Verb::Update,
            false,
            6,
        )));
        assert!(v.passed(), "{v:?}");
        assert_eq!(v.checked, 2);
    }

    #[test]
    fn rules_and_subjects_must_match_the_request() {
        // Delete is not in the role; bob is not bound; a subresource needs its own rule.
        for (user, verb) in [("alice", Verb::Delete), ("bob", Verb::Get), ("alice", Verb::UpdateStatus)] {
            let v = verdict(granted_then_revoked().event(authorized(user, verb, true, 3)));
            assert_eq!(v.violations.len(), 1, "{user} {verb:?}: {v:?}");
        }
        let v = verdict(granted_then_revoked().event(authorized("alice", Verb::Get, true, 3)));
        assert!(v.passed(), "{v:?}");
    }

    #[test]
    fn a_group_bound_cluster_role_grants_in_every_namespace() {
        let reader = RbacObjectRecord::Rules(vec![PolicyRule::new(&["*"], &["*"], &["configmaps"])]);
        let binding = RbacObjectRecord::Binding {
            subjects: vec![Subject::group("system:authenticated")],
            role_ref: RoleRef { kind: RoleRefKind::ClusterRole, name: "cm-admin".into() },
        };
        let v = verdict(
            h().event(committed(1, Resource::ClusterRoles, "cm-admin", Some(reader), 21))
                .event(committed(2, Resource::ClusterRoleBindings, "everyone", Some(binding), 22))
                .event(authorized("carol", Verb::Delete, true, 2))
                // Its view of clusterroles predates the role: the binding grants nothing.
                .event(HistoryEvent::Authorized {
                    apiserver: "apiserver-1".into(),
                    user: "carol".into(),
                    groups: vec!["system:authenticated".into()],
                    verb: Verb::Get,
                    resource: Resource::ConfigMaps,
                    namespace: NS.into(),
                    name: "x".into(),
                    allowed: true,
                    rbac_revisions: RbacRevisions {
                        roles: 2,
                        role_bindings: 2,
                        cluster_roles: 0,
                        cluster_role_bindings: 2,
                    },
                }),
        );
        assert_eq!(v.violations.len(), 1, "{v:?}");
        assert!(v.violations[0].message.contains("apiserver-1"), "{v:?}");
    }

    fn restored(backup: u32, keyspace: Vec<KeyState>) -> HistoryEvent {
        HistoryEvent::Restored {
            backup,
            backup_revision: 3,
            bump: 1000,
            new_revision: 1003,
            new_cluster_id: 2,
            members: vec![],
            keyspace,
        }
    }

    fn key_state(key: &str, hash: u64, revision: Revision) -> KeyState {
        KeyState {
            key: key.into(),
            value_hash: Some(hash),
            value_len: 10,
            create_revision: revision,
            mod_revision: revision,
            version: 1,
        }
    }

    /// Backup at revision 3 (alice bound), revoked at 5, restored: alice's binding is back.
    fn restored_after_revocation() -> HistoryBuilder {
        granted_then_revoked()
            .event(HistoryEvent::BackupTaken {
                backup: 0,
                member: store::api::MemberId(1),
                cluster_id: 1,
                revision: 3,
                n_keys: 2,
                checksum_ok: true,
            })
            .at(1_000)
            .event(restored(
                0,
                vec![
                    key_state("/registry/roles/team/editor", 11, 1),
                    key_state("/registry/rolebindings/team/alice-editor", 12, 2),
                ],
            ))
    }

    #[test]
    fn after_a_restore_the_view_is_the_restored_state_and_the_regained_grant_is_a_window() {
        // Allowed from the restored state: not a violation, but a security window.
        let history = restored_after_revocation().event(authorized("alice", Verb::Update, true, 1003)).build();
        let v = check_one(Invariant::Permissions, &history, None, vec![]);
        assert!(v.passed(), "{v:?}");
        assert!(v.summary.contains("1 security windows"), "{}", v.summary);
        let windows = security_windows(&history);
        assert_eq!(windows.len(), 1);
        let window = &windows[0];
        assert_eq!((window.subject.as_str(), window.role.as_str()), ("User alice", "Role team/editor"));
        assert_eq!((window.backup_revision, window.from_ns, window.until), (3, 1_000, None));
    }

    #[test]
    fn a_window_ends_when_the_grant_is_revoked_again() {
        let history = restored_after_revocation()
            .at(2_000)
            .event(committed(1010, Resource::RoleBindings, "alice-editor", None, 0))
            .event(authorized("alice", Verb::Update, true, 1010))
            .build();
        let windows = security_windows(&history);
        assert_eq!(windows.len(), 1);
        assert_eq!(windows[0].until, Some((2_000, Some(1010))));
        // And admitting alice from a view that saw the second revocation is a violation.
        let v = check_one(Invariant::Permissions, &history, None, vec![]);
        assert_eq!(v.violations.len(), 1, "{v:?}");
    }

    #[test]
    fn a_restore_that_gives_nothing_back_opens_no_window() {
        let history = h()
            .event(committed(1, Resource::Roles, "editor", Some(editor_role()), 11))
            .event(committed(2, Resource::RoleBindings, "alice-editor", Some(binding_of("alice")), 12))
            .event(HistoryEvent::BackupTaken {
                backup: 0,
                member: store::api::MemberId(1),
                cluster_id: 1,
                revision: 3,
                n_keys: 2,
                checksum_ok: true,
            })
            .event(restored(
                0,
                vec![
                    key_state("/registry/roles/team/editor", 11, 1),
                    key_state("/registry/rolebindings/team/alice-editor", 12, 2),
                ],
            ))
            .build();
        assert!(security_windows(&history).is_empty());
    }

    #[test]
    fn no_records_is_a_vacuous_pass() {
        let v = verdict(h());
        assert!(v.passed());
        assert_eq!(v.checked, 0);
    }
}
