//! Failure signatures: which failures of a campaign are the same failure.
//!
//! A campaign of thousands of seeds finds the same bug many times, each time with other
//! numbers in its message (members, revisions, times, generated names). Grouping only by
//! invariant hides two bugs behind one name; grouping by message makes every seed its own
//! group. A signature sits between, as TigerBeetle's VOPR hub and Antithesis deduplicate
//! failures: the invariant, the *shape* of its first violation (the message with every
//! number and generated name replaced by a placeholder), and the fault kinds the nemesis
//! had applied before the violation.
//!
//! Shape rules (applied to the first violation of a check's detail, after its `[time]`):
//! - within each word, a segment (between `-`, `/`, `.`, `:`, `,`, `(`, `)`) holding a digit
//!   becomes `N`: `store-3` → `store-N`, `revision 235` → `revision N`, `0x1f` → `N`;
//! - a five-character segment drawn from Kubernetes' random-name alphabet (consonants and
//!   the digits 2 and 4–9, `k8s.io/apimachinery` `rand.String`), the suffix of a generated
//!   pod name, becomes `*`.

use std::collections::BTreeSet;

use xxhash_rust::xxh3::xxh3_64;

use crate::campaign::SeedResult;

/// One failure's signature. Ordered by its text, so that groups list stably.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Signature {
    pub invariant: String,
    /// The first violation's message with numbers and generated names normalized.
    pub shape: String,
    /// The fault kinds applied before the violation, sorted, deduplicated.
    pub faults: Vec<String>,
}

impl Signature {
    /// A short stable id: 8 hex digits of the signature's hash.
    pub fn id(&self) -> String {
        let text = format!("{}\n{}\n{}", self.invariant, self.shape, self.faults.join(","));
        format!("{:08x}", xxh3_64(text.as_bytes()) as u32)
    }

    /// `invariant: shape [faults: a, b]`, for summaries and reports.
    pub fn describe(&self) -> String {
        let faults = if self.faults.is_empty() { "none".to_string() } else { self.faults.join(", ") };
        format!("{}: {} [faults: {faults}]", self.invariant, self.shape)
    }
}

/// The signatures of a seed's failures, one per broken property (from its first finding).
pub fn of_result(result: &SeedResult) -> Vec<Signature> {
    result
        .outcome
        .first_findings()
        .into_iter()
        .map(|(property, at_ns, first)| Signature {
            invariant: property.name().to_string(),
            shape: shape(first),
            faults: fault_kinds(&result.faults, at_ns.map(|ns| ns as f64 / 1e9)),
        })
        .collect()
}

/// Kubernetes' `rand.String` alphabet (generated name suffixes).
const RANDOM_NAME_ALPHABET: &str = "bcdfghjklmnpqrstvwxz2456789";

/// A message with its numbers and generated names replaced (see the module's rules).
pub fn shape(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut segment = String::new();
    let flush = |segment: &mut String, out: &mut String| {
        if segment.chars().any(|c| c.is_ascii_digit()) {
            out.push('N');
        } else if segment.len() == 5 && segment.chars().all(|c| RANDOM_NAME_ALPHABET.contains(c)) {
            out.push('*');
        } else {
            out.push_str(segment);
        }
        segment.clear();
    };
    for c in message.chars() {
        if c.is_alphanumeric() || c == '_' {
            segment.push(c);
        } else {
            flush(&mut segment, &mut out);
            out.push(c);
        }
    }
    flush(&mut segment, &mut out);
    out
}

/// The fault kind a nemesis history line reports applying, by its first word (the lines
/// of `faults/src/nemesis/calls.rs` and the operator's); heals, restarts, resumes, clock
/// resets, reached failpoints, skipped faults and the operator's own steps report none.
fn kind_of_line(words: &[&str]) -> Option<&'static str> {
    let kind = match *words.first()? {
        "partition" | "partition:" => "partition",
        "bridge:" => "bridge",
        "majorities-ring:" => "majorities-ring",
        "one-way" => "one-way",
        "isolate" if words.get(1) == Some(&"apiserver") => "isolate-apiserver",
        "isolate" => "isolate-store-leader",
        "packet-loss" => "packet-loss",
        "latency-spike" => "latency",
        "clog-link" => "clog",
        "crash" if words.contains(&"(power") => return None,
        "crash" => "crash",
        "pause" => "pause",
        "power-loss" => "power-loss",
        "corrupt-record" => "corruption",
        "clock-skew" => "clock-skew",
        "arm" => "crash-at-failpoint",
        "leader-chase" | "leader-chase:" => "leader-chase",
        "disk-crash" => "disk-crash",
        "disk-loss" => "disk-loss",
        "disk-loss-majority" => "disk-loss-majority",
        "disk-loss-all" => "disk-loss-all",
        "snapshot-corruption:" => "snapshot-corruption",
        "operator:" if words.get(1) == Some(&"snapshot") => "backup",
        _ => return None,
    };
    Some(kind)
}

/// The kinds of the faults applied at or before `at_secs` (all of them when the violation
/// has no time). A fault line reads `12.345s t=12345ms WHAT ...` (the operator's lines
/// have no `t=`); skipped faults are left out.
fn fault_kinds(faults: &[String], at_secs: Option<f64>) -> Vec<String> {
    let mut kinds = BTreeSet::new();
    for line in faults {
        if line.ends_with("skipped") || line.ends_with("already crashed") {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let applied_secs = words.first().and_then(|w| w.strip_suffix('s')).and_then(|w| w.parse::<f64>().ok());
        if let (Some(applied), Some(at)) = (applied_secs, at_secs) {
            if applied > at {
                continue;
            }
        }
        let what: Vec<&str> = words.iter().skip(1).skip_while(|w| w.starts_with("t=")).copied().collect();
        if let Some(kind) = kind_of_line(&what) {
            kinds.insert(kind.to_string());
        }
    }
    kinds.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_hide_numbers_and_generated_names_but_keep_words() {
        assert_eq!(
            shape("store-3 expired lease 1a (TTL 10 s) at 10357 ms"),
            "store-N expired lease N (TTL N s) at N ms"
        );
        assert_eq!(
            shape("ReplicaSet default/nginx-deployment-7c5b9 had 6 live pods (nginx-deployment-7c5b9-xkq2z)"),
            "ReplicaSet default/nginx-deployment-N had N live pods (nginx-deployment-N-N)"
        );
        assert_eq!(shape("pod web-bcdfg and store while"), "pod web-* and store while");
    }

    #[test]
    fn two_seeds_of_one_bug_share_a_signature_and_other_faults_make_another() {
        let result = |seed: u64, message: &str, faults: &[&str]| SeedResult {
            faults: faults.iter().map(|f| f.to_string()).collect(),
            ..SeedResult::failing(seed, verdict::checkers::Invariant::LeaseExpiry, message)
        };
        let a = of_result(&result(
            1,
            "[15.5s] store-3 expired lease 1 at 15925 ms; [16.0s] store-3 expired lease 2",
            &[
                "1.0s t=1000ms crash store-2",
                "1.5s t=1500ms restart store-2",
                "2.0s t=2000ms partition: no leader known, skipped",
                "20.0s t=20000ms pause kubelet-1",
            ],
        ));
        let b = of_result(&result(9, "[9.1s] store-1 expired lease 7 at 9100 ms", &["0.5s t=500ms crash store-1"]));
        assert_eq!(a, b);
        assert_eq!(a[0].faults, vec!["crash"]);
        assert_eq!(a[0].shape, "store-N expired lease N at N ms");
        let c = of_result(&result(4, "[9.1s] store-1 expired lease 7 at 9100 ms", &["0.5s t=500ms partition"]));
        assert_ne!(a[0].id(), c[0].id());
    }
}
