//! A seed's run as one self-contained HTML page (`kubesim run --seed N --html FILE`,
//! `kubesim campaign --html-dir DIR` for failing seeds): an SVG of swimlanes over simulated
//! time, with no script, font or style fetched from anywhere.
//!
//! - One lane per node: store members, named as everywhere else (`member 4`; their Raft
//!   role as bands: leader, candidate, follower; term and leader on hover; down while
//!   crashed), apiservers,
//!   controller-managers, the scheduler, kubelets, kubectl, store clients, the operator.
//! - Faults as bands over the lanes of the nodes they name (a store slot's, `store-<slot>`,
//!   on the lane of the member running in it then; a crash until its restart, a
//!   pause until its resume, a skew until its reset, others as marks), on the `nemesis` lane
//!   too, with the nemesis's own words on hover.
//! - Client operations as invoke→return bars coloured by outcome (ok, refused or failed,
//!   unknown: no answer), store commits as ticks with their revision and keys, watch
//!   answers as dots.
//! - Each violation as a red line across every lane at its simulated time, with the
//!   invariant and message on hover, listed again under the picture with its explanation
//!   (see [`crate::explain`]); the explanation's causal slice highlighted: each of its
//!   events ringed in orange on the lanes of the nodes and members it names (a dashed orange line when
//!   it names none), numbered as in the list.
//!
//! Zoom with the mouse wheel, pan by dragging (a few lines of inline script); hover for
//! details (SVG `<title>`). Every element carries `data-kind` so that tools and tests can
//! count what the page shows.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use sim::report::RunReport;
use store::api::MemberId;
use verdict::history::{ApiOutcome, History, HistoryEvent, StoreOpOutcome};

/// Width of the time axis in SVG units.
const WIDTH: f64 = 1600.0;
/// Left margin for lane names.
const LABEL: f64 = 170.0;
const LANE_HEIGHT: f64 = 22.0;
const AXIS_HEIGHT: f64 = 26.0;

/// Each violation of the report's failed checks with its time and words (a check whose
/// detail has no time at the run's end).
fn violations(report: &RunReport) -> Vec<(f64, String, String)> {
    let mut found = Vec::new();
    for check in report.failures() {
        let timed: Vec<(f64, String, String)> = sim::report::timed_violations(&check.detail)
            .filter_map(|(at, message)| at.map(|secs| (secs, check.name.clone(), message.to_string())))
            .collect();
        if timed.is_empty() {
            found.push((report.simulated_secs, check.name.clone(), check.detail.clone()));
        }
        found.extend(timed);
    }
    found
}

/// Escapes text for HTML and SVG content and attributes.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

struct Page {
    svg: String,
    lanes: Vec<String>,
    end_secs: f64,
}

impl Page {
    fn x(&self, secs: f64) -> f64 {
        LABEL + (secs / self.end_secs.max(1e-9)) * WIDTH
    }

    fn lane_y(&mut self, lane: &str) -> f64 {
        let index = match self.lanes.iter().position(|l| l == lane) {
            Some(index) => index,
            None => {
                self.lanes.push(lane.to_string());
                self.lanes.len() - 1
            }
        };
        AXIS_HEIGHT + index as f64 * LANE_HEIGHT
    }

    fn rect(&mut self, lane: &str, kind: &str, from: f64, to: f64, fill: &str, title: &str) {
        let y = self.lane_y(lane);
        let (x0, x1) = (self.x(from), self.x(to.max(from)));
        let _ = write!(
            self.svg,
            r#"<rect data-kind="{kind}" x="{x0:.2}" y="{:.1}" width="{:.2}" height="{:.1}" fill="{fill}"><title>{}</title></rect>"#,
            y + 3.0,
            (x1 - x0).max(0.6),
            LANE_HEIGHT - 6.0,
            escape(title)
        );
        self.svg.push('\n');
    }

    fn mark(&mut self, lane: &str, kind: &str, at: f64, fill: &str, title: &str) {
        let y = self.lane_y(lane);
        let x = self.x(at);
        let _ = write!(
            self.svg,
            r#"<circle data-kind="{kind}" cx="{x:.2}" cy="{:.1}" r="3.5" fill="{fill}"><title>{}</title></circle>"#,
            y + LANE_HEIGHT / 2.0,
            escape(title)
        );
        self.svg.push('\n');
    }
}

/// The page of one seed's run: the lanes in a fixed order, then each layer drawn over
/// them (roles, faults, operations, the causal slices, the violations), then the page
/// around the picture.
pub fn render(report: &RunReport, history: &History) -> String {
    let end_secs = history.records.last().map_or(report.simulated_secs, |r| r.at_ns as f64 / 1e9).max(1.0);
    let mut page = Page { svg: String::new(), lanes: Vec::new(), end_secs };
    order_lanes(&mut page, history);
    draw_roles(&mut page, history);
    let slots = Slots::of(history);
    draw_faults(&mut page, history, &slots);
    draw_operations(&mut page, history);
    let violations = violations(report);
    let explanations = crate::explain::explain(report, history);
    let height = AXIS_HEIGHT + page.lanes.len() as f64 * LANE_HEIGHT + 10.0;
    draw_slices(&mut page, &explanations, &slots, height);
    draw_violations(&mut page, &violations, height);
    let picture = Picture { lanes: lanes_svg(&page), axis: axis_svg(&page, height), events: page.svg, height };
    document(report, history, &picture, &listed(&violations, &explanations))
}

fn secs(at_ns: u64) -> f64 {
    at_ns as f64 / 1e9
}

/// Lanes in a fixed order first: the store, then the control plane as it appears.
fn order_lanes(page: &mut Page, history: &History) {
    let mut store_members: Vec<MemberId> = history
        .events()
        .filter_map(|(_, e)| match e {
            HistoryEvent::RoleChanged { member, .. } | HistoryEvent::MemberStarted { member, .. } => Some(*member),
            _ => None,
        })
        .collect();
    store_members.sort_unstable();
    store_members.dedup();
    for member in &store_members {
        page.lane_y(&member_lane(*member));
    }
    page.lane_y("nemesis");
    page.lane_y("commits");
}

/// The lane of a store member: its one printed form (`member 4`).
fn member_lane(member: MemberId) -> String {
    member.to_string()
}

/// Which member ran in each store slot, and from when. Faults and the explanation's words
/// name a member's node (`store-<slot>`, see `explain::member_nodes`); a member
/// that replaced another runs in its slot, so a slot's fault lands on the lane of the
/// member running there at the time.
struct Slots {
    /// Per node, its members by the time each first shows in the history.
    members: BTreeMap<String, Vec<(f64, MemberId)>>,
}

impl Slots {
    fn of(history: &History) -> Self {
        let node_of = crate::explain::member_nodes(history);
        let mut first_seen: BTreeMap<MemberId, f64> = BTreeMap::new();
        for (at_ns, event) in history.events() {
            if let HistoryEvent::RoleChanged { member, .. } | HistoryEvent::MemberStarted { member, .. } = event {
                first_seen.entry(*member).or_insert(secs(at_ns));
            }
        }
        let mut members: BTreeMap<String, Vec<(f64, MemberId)>> = BTreeMap::new();
        for (member, since) in first_seen {
            if let Some(node) = node_of.get(&member) {
                members.entry(node.clone()).or_default().push((since, member));
            }
        }
        for running in members.values_mut() {
            running.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
        Slots { members }
    }

    /// The lane of `node` at `at` seconds: the member running in it then (the first one,
    /// before any started), or the node's own lane.
    fn lane(&self, node: &str, at: f64) -> String {
        let Some(running) = self.members.get(node) else { return node.to_string() };
        let current = running.iter().rev().find(|(since, _)| *since <= at).or(running.first());
        current.map_or_else(|| node.to_string(), |(_, member)| member_lane(*member))
    }
}

/// Store roles as bands, from each role change to the next of the same member.
fn draw_roles(page: &mut Page, history: &History) {
    let mut role_since: BTreeMap<MemberId, (f64, String, String)> = BTreeMap::new();
    let role_fill = |role: &str| match role {
        "Leader" => "#2e7d32",
        "Candidate" => "#f9a825",
        _ => "#cfd8dc",
    };
    for (at_ns, event) in history.events() {
        if let HistoryEvent::RoleChanged { member, term, role, leader } = event {
            let role = format!("{role:?}");
            let title = format!("{}: {role} in term {term}, leader {leader:?}", member_lane(*member));
            if let Some((since, old_role, old_title)) = role_since.insert(*member, (secs(at_ns), role, title)) {
                page.rect(&member_lane(*member), "role", since, secs(at_ns), role_fill(&old_role), &old_title);
            }
        }
    }
    let end_secs = page.end_secs;
    for (member, (since, role, title)) in role_since {
        page.rect(&member_lane(member), "role", since, end_secs, role_fill(&role), &title);
    }
}

/// Faults: every one on the nemesis lane; bands or marks on the nodes they name.
fn draw_faults(page: &mut Page, history: &History, slots: &Slots) {
    let mut open: BTreeMap<(String, crate::explain::Lasting), (String, f64, String)> = BTreeMap::new();
    for (at_ns, event) in history.events() {
        let HistoryEvent::Fault { description } = event else { continue };
        let at = secs(at_ns);
        page.mark("nemesis", "fault", at, "#c62828", description);
        let nodes = crate::explain::nodes_in(description);
        match crate::explain::lasting(description) {
            Some((band, true)) => {
                for node in nodes {
                    let lane = slots.lane(&node, at);
                    open.entry((node, band)).or_insert((lane, at, description.clone()));
                }
            }
            Some((band, false)) => {
                for node in nodes {
                    if let Some((lane, since, title)) = open.remove(&(node, band)) {
                        let title = format!("{title} (until {at:.3}s)");
                        page.rect(&lane, band.name(), since, at, "rgba(198,40,40,0.45)", &title);
                    }
                }
            }
            None => {
                for node in nodes {
                    page.mark(&slots.lane(&node, at), "fault", at, "#c62828", description);
                }
            }
        }
    }
    let end_secs = page.end_secs;
    for ((_, band), (lane, since, title)) in open {
        page.rect(&lane, band.name(), since, end_secs, "rgba(198,40,40,0.45)", &title);
    }
}

/// Commits, client operations (invoke→return bars; those still waiting at the end got no
/// answer) and watch answers.
fn draw_operations(page: &mut Page, history: &History) {
    let mut api_open: BTreeMap<(&str, u64), (f64, String)> = BTreeMap::new();
    let mut store_open: BTreeMap<(&str, u64), (f64, String)> = BTreeMap::new();
    for (at_ns, event) in history.events() {
        let at = secs(at_ns);
        match event {
            HistoryEvent::Committed { revision, changes } => {
                let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
                page.rect("commits", "commit", at, at, "#455a64", &format!("revision {revision}: {}", keys.join(", ")));
            }
            HistoryEvent::ApiInvoked { client, request_id, verb, resource, namespace, name } => {
                api_open.insert(
                    (client.as_str(), *request_id),
                    (at, format!("{client} {verb:?} {resource} {namespace}/{name}")),
                );
            }
            HistoryEvent::ApiReturned { client, request_id, outcome } => {
                if let Some((since, title)) = api_open.remove(&(client.as_str(), *request_id)) {
                    let (fill, said) = match outcome {
                        ApiOutcome::Ok { resource_version } => {
                            ("#43a047", format!("ok, resourceVersion {resource_version}"))
                        }
                        ApiOutcome::Error { status, message } => ("#e53935", format!("{status}: {message}")),
                    };
                    page.rect(
                        client.as_str(),
                        "api",
                        since,
                        at,
                        fill,
                        &format!("{title} → {said} ({since:.3}s to {at:.3}s)"),
                    );
                }
            }
            HistoryEvent::StoreOpInvoked { client, op_id, op } => {
                store_open.insert((client.as_str(), *op_id), (at, format!("{client} #{op_id} {op:?}")));
            }
            HistoryEvent::StoreOpReturned { client, op_id, outcome } => {
                if let Some((since, title)) = store_open.remove(&(client.as_str(), *op_id)) {
                    let fill = match outcome {
                        StoreOpOutcome::Written { succeeded: true, .. } | StoreOpOutcome::Read { .. } => "#43a047",
                        StoreOpOutcome::Written { succeeded: false, .. } | StoreOpOutcome::Failed { .. } => "#e53935",
                        StoreOpOutcome::Unknown { .. } => "#9e9e9e",
                    };
                    page.rect(client.as_str(), "store-op", since, at, fill, &format!("{title} → {outcome:?}"));
                }
            }
            HistoryEvent::WatchDelivered { client, resource, since, resource_version, events, .. }
                if !events.is_empty() =>
            {
                let title =
                    format!("{client} watch {resource} from {since}: {} events to {resource_version}", events.len());
                page.mark(client.as_str(), "watch", at, "#1e88e5", &title);
            }
            HistoryEvent::Note { text } => page.mark("nemesis", "note", at, "#6a1b9a", text),
            _ => {}
        }
    }
    // Operations still waiting at the end: no answer ever came.
    let end_secs = page.end_secs;
    for ((client, _), (since, title)) in api_open.into_iter() {
        page.rect(client, "api", since, end_secs, "#9e9e9e", &format!("{title} → no answer"));
    }
    for ((client, _), (since, title)) in store_open.into_iter() {
        page.rect(client, "store-op", since, end_secs, "#9e9e9e", &format!("{title} → no answer"));
    }
}

/// The causal slice highlighted: each of its events ringed in orange on the lanes of the
/// nodes it names (a dashed line across every lane when it names none that has a lane),
/// numbered as in the list under the picture.
fn draw_slices(page: &mut Page, explanations: &[crate::explain::Explanation], slots: &Slots, height: f64) {
    for (e, explanation) in explanations.iter().enumerate() {
        for (i, (at, words)) in explanation.slice.iter().enumerate() {
            let x = page.x(*at);
            let title = escape(&format!("why #{}.{}: {at:.3}s {words}", e + 1, i + 1));
            let named: BTreeSet<String> = crate::explain::nodes_in(words)
                .iter()
                .map(|node| slots.lane(node, *at))
                .chain(crate::explain::members_in(words).into_iter().map(member_lane))
                .collect();
            let lanes: Vec<f64> = named
                .iter()
                .filter_map(|node| page.lanes.iter().position(|lane| lane == node))
                .map(|index| AXIS_HEIGHT + index as f64 * LANE_HEIGHT + LANE_HEIGHT / 2.0)
                .collect();
            if lanes.is_empty() {
                let _ = write!(
                    page.svg,
                    r##"<line data-kind="slice" x1="{x:.2}" y1="{AXIS_HEIGHT}" x2="{x:.2}" y2="{height:.1}" stroke="#ff6d00" stroke-width="1.5" stroke-dasharray="4 3"><title>{title}</title></line>"##
                );
            }
            for y in lanes {
                let _ = write!(
                    page.svg,
                    r##"<circle data-kind="slice" cx="{x:.2}" cy="{y:.1}" r="7" fill="none" stroke="#ff6d00" stroke-width="2.5"><title>{title}</title></circle>"##
                );
            }
            let _ = write!(
                page.svg,
                r##"<text x="{:.2}" y="{:.1}" font-size="10" style="fill:#ff6d00">{}.{}</text>"##,
                x + 3.0,
                AXIS_HEIGHT - 2.0,
                e + 1,
                i + 1
            );
            page.svg.push('\n');
        }
    }
}

/// Each violation as a red line across every lane at its simulated time.
fn draw_violations(page: &mut Page, violations: &[(f64, String, String)], height: f64) {
    for (at, invariant, message) in violations {
        let x = page.x(*at);
        let _ = write!(
            page.svg,
            r##"<line data-kind="violation" x1="{x:.2}" y1="{AXIS_HEIGHT}" x2="{x:.2}" y2="{height:.1}" stroke="#d50000" stroke-width="2"><title>{}</title></line>"##,
            escape(&format!("{at:.6}s {invariant}: {message}"))
        );
        page.svg.push('\n');
    }
}

/// The lanes' backgrounds and names.
fn lanes_svg(page: &Page) -> String {
    let mut lanes_svg = String::new();
    for (index, lane) in page.lanes.iter().enumerate() {
        let y = AXIS_HEIGHT + index as f64 * LANE_HEIGHT;
        let _ = write!(
            lanes_svg,
            r##"<rect data-lane="{0}" x="0" y="{y:.1}" width="{1:.1}" height="{LANE_HEIGHT}" fill="{2}"/><text x="6" y="{3:.1}" font-size="12">{0}</text>"##,
            escape(lane),
            LABEL + WIDTH,
            if index % 2 == 0 { "#fafafa" } else { "#f0f0f0" },
            y + 15.0
        );
        lanes_svg.push('\n');
    }
    lanes_svg
}

/// The time axis: a gridline and a label every step, about twenty over the run.
fn axis_svg(page: &Page, height: f64) -> String {
    let end_secs = page.end_secs;
    let mut axis = String::new();
    let step = [0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0].into_iter().find(|s| end_secs / s <= 20.0).unwrap_or(120.0);
    let mut t = 0.0;
    while t <= end_secs {
        let x = page.x(t);
        let _ = write!(
            axis,
            r##"<line x1="{x:.1}" y1="{AXIS_HEIGHT}" x2="{x:.1}" y2="{height:.1}" stroke="#e0e0e0"/><text x="{x:.1}" y="16" font-size="11" text-anchor="middle">{t}s</text>"##
        );
        axis.push('\n');
        t += step;
    }
    axis
}

/// The violations and their explanations as listed under the picture.
fn listed(violations: &[(f64, String, String)], explanations: &[crate::explain::Explanation]) -> String {
    let mut listed = String::new();
    for (at, invariant, message) in violations {
        let _ = writeln!(
            listed,
            "<li data-kind=\"violation-item\"><b>{at:.6}s {}</b>: {}</li>",
            escape(invariant),
            escape(message)
        );
    }
    for (e, explanation) in explanations.iter().enumerate() {
        let _ =
            write!(listed, "<li data-kind=\"explanation\"><i>why #{}</i>: {}<ol>", e + 1, escape(&explanation.text));
        for (at, words) in &explanation.slice {
            let _ = write!(listed, "<li data-kind=\"slice-item\">{at:.3}s {}</li>", escape(words));
        }
        listed.push_str("</ol></li>\n");
    }
    listed
}

/// The SVG's parts, drawn.
struct Picture {
    lanes: String,
    axis: String,
    events: String,
    height: f64,
}

/// The page around the picture: the title, the legend, the lists and the zoom script.
fn document(report: &RunReport, history: &History, picture: &Picture, listed: &str) -> String {
    let verdict = if report.passed() { "pass".to_string() } else { "FAIL".to_string() };
    let mut faults = String::new();
    for line in &report.faults {
        let _ = writeln!(faults, "<li>{}</li>", escape(line));
    }
    let total_width = LABEL + WIDTH;
    let Picture { lanes: lanes_svg, axis, events, height } = picture;
    format!(
        r##"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>kubesim seed {seed}: {verdict}</title>
<style>
body {{ font-family: sans-serif; margin: 12px; }}
#view {{ border: 1px solid #bbb; overflow: hidden; cursor: grab; }}
svg text {{ fill: #333; pointer-events: none; }}
.legend span {{ display: inline-block; padding: 1px 6px; margin-right: 6px; color: #fff; }}
</style></head>
<body>
<h1>kubesim seed {seed} ({scenario}): {verdict}</h1>
<p>trace-hash {trace_hash}; {simulated:.1}s simulated; {records} history records. Wheel: zoom; drag: pan; hover: details.</p>
<p class="legend"><span style="background:#2e7d32">leader</span><span style="background:#f9a825">candidate</span><span style="background:#90a4ae">follower</span><span style="background:#c62828">fault</span><span style="background:#43a047">ok</span><span style="background:#e53935">refused/failed</span><span style="background:#9e9e9e">unknown</span><span style="background:#1e88e5">watch answer</span><span style="background:#d50000">violation</span><span style="background:#ff6d00">why: causal slice</span></p>
<div id="view"><svg id="plot" xmlns="http://www.w3.org/2000/svg" width="100%" viewBox="0 0 {total_width} {height:.1}" preserveAspectRatio="none" style="height:{height:.0}px">
<g id="lanes">{lanes_svg}</g><g id="axis">{axis}</g><g id="events">{events}</g>
</svg></div>
<h2>Violations</h2><ul id="violations">{listed}</ul>
<h2>Faults</h2><ul>{faults}</ul>
<script>
(function () {{
  var svg = document.getElementById('plot');
  var full = {total_width};
  var view = {{ x: 0, w: full }};
  function apply() {{ svg.setAttribute('viewBox', view.x + ' 0 ' + view.w + ' {height:.1}'); }}
  svg.addEventListener('wheel', function (e) {{
    e.preventDefault();
    var r = svg.getBoundingClientRect();
    var at = view.x + (e.clientX - r.left) / r.width * view.w;
    var w = Math.min(full, Math.max(20, view.w * (e.deltaY > 0 ? 1.25 : 0.8)));
    view.x = Math.min(full - w, Math.max(0, at - (at - view.x) * w / view.w));
    view.w = w; apply();
  }}, {{ passive: false }});
  var drag = null;
  svg.addEventListener('mousedown', function (e) {{ drag = {{ x: e.clientX, from: view.x }}; }});
  window.addEventListener('mouseup', function () {{ drag = null; }});
  window.addEventListener('mousemove', function (e) {{
    if (!drag) return;
    var r = svg.getBoundingClientRect();
    view.x = Math.min(full - view.w, Math.max(0, drag.from - (e.clientX - drag.x) / r.width * view.w));
    apply();
  }});
  document.body.setAttribute('data-rendered', 'yes');
}})();
</script>
</body></html>
"##,
        seed = report.seed,
        scenario = escape(&report.scenario),
        trace_hash = report.trace_hash,
        simulated = report.simulated_secs,
        records = history.records.len(),
    )
}

/// What a page shows, counted: its lanes and how many elements of each kind (for tests).
pub fn structure(html: &str) -> String {
    let mut lanes = Vec::new();
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for piece in html.split("data-lane=\"").skip(1) {
        lanes.push(piece.split('"').next().unwrap_or(""));
    }
    for piece in html.split("data-kind=\"").skip(1) {
        *kinds.entry(piece.split('"').next().unwrap_or("")).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(kind, n)| format!("{kind}: {n}")).collect();
    format!("lanes: {}\nelements: {}\n", lanes.join(", "), kinds.join(", "))
}
