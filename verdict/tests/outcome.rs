//! The seed's outcome: how the checkers' verdicts and a total loss add up to one, and that it reads back as it was written.

use std::collections::BTreeSet;

use verdict::checkers::{Invariant, Verdict, Violation};
use verdict::outcome::{Finding, Limit, Outcome, Property, Violated};

fn verdict(invariant: Invariant, violations: &[(u64, &str)], n_omitted: usize) -> Verdict {
    Verdict {
        invariant,
        violations: violations
            .iter()
            .map(|(at_ns, message)| Violation { invariant, message: message.to_string(), at_ns: Some(*at_ns) })
            .collect(),
        n_violations_omitted: n_omitted,
        checked: 10,
        summary: "10 items".into(),
    }
}

#[test]
fn every_checker_passing_is_a_pass_and_a_total_loss_says_what_was_lost() {
    let verdicts = [verdict(Invariant::Linearizability, &[], 0), verdict(Invariant::Convergence, &[], 0)];
    assert_eq!(Outcome::of_run(&verdicts, None), Outcome::Pass);
    let lost = Outcome::of_run(&verdicts, Some((7, "every disk lost".into())));
    assert_eq!(lost, Outcome::TotalLoss { acknowledged_objects_lost: 7, reason: "every disk lost".into() });
    assert!(lost.passed() && lost.broken().is_empty());
    assert_eq!(lost.name(), "total-loss");
}

#[test]
fn a_total_loss_never_excuses_a_checker() {
    let broken = [verdict(Invariant::Linearizability, &[(5, "a read saw the future")], 0)];
    let failed = Outcome::of_run(&broken, Some((3, "lost".into())));
    assert_eq!(failed.broken(), BTreeSet::from([Property::Invariant(Invariant::Linearizability)]));
}

#[test]
fn findings_of_one_invariant_merge_in_order_and_keep_three() {
    let verdicts = [
        verdict(Invariant::Convergence, &[(1_000_000_000, "only 2 Running")], 0),
        verdict(Invariant::Linearizability, &[(1_000_000_000, "read 1")], 0),
        verdict(Invariant::Convergence, &[(2_000_000_000, "6 pods"), (3_000_000_000, "7 pods"), (4, "8 pods")], 4),
    ];
    let outcome = Outcome::of_run(&verdicts, None);
    let Outcome::Fail { violated } = &outcome else { panic!("{outcome:?}") };
    // One entry per invariant, in the order the verdicts first name them.
    assert_eq!(
        violated.iter().map(|v| v.invariant).collect::<Vec<_>>(),
        [Invariant::Convergence, Invariant::Linearizability]
    );
    assert_eq!(violated[0].first.len(), Violated::KEPT);
    assert_eq!(violated[0].first[0].message, "only 2 Running");
    // One kept beyond the three and four the checker had already left out.
    assert_eq!(violated[0].n_more, 5);
    assert_eq!(
        outcome.lines()[0],
        (
            Property::Invariant(Invariant::Convergence),
            "[1.000000s] only 2 Running; [2.000000s] 6 pods; [3.000000s] 7 pods; and 5 more".into()
        )
    );
    assert_eq!(
        outcome.first_findings()[1],
        (Property::Invariant(Invariant::Linearizability), Some(1_000_000_000), "read 1")
    );
}

#[test]
fn panics_and_timeouts_break_the_seeds_own_properties() {
    let panic = Outcome::Panic { message: "assertion failed".into() };
    assert_eq!(panic.broken(), BTreeSet::from([Property::NoPanic]));
    let timeout = Outcome::Timeout { limit: Limit::WallClock, detail: "exceeded 120 s".into() };
    assert_eq!(timeout.broken(), BTreeSet::from([Property::TimeLimit]));
    assert!(!panic.passed() && !timeout.passed());
    assert_eq!((panic.name(), timeout.name()), ("panic", "timeout"));
}

#[test]
fn an_outcome_reads_back_as_written_with_its_verdict_as_tag() {
    let outcomes = [
        Outcome::Pass,
        Outcome::TotalLoss { acknowledged_objects_lost: 2, reason: "r".into() },
        Outcome::Fail {
            violated: vec![Violated::of(
                Invariant::PodBoundOnce,
                [Finding { at_ns: None, message: "bound twice".into() }],
                0,
            )],
        },
        Outcome::Panic { message: "m".into() },
        Outcome::Timeout { limit: Limit::SimulatedTime, detail: "d".into() },
    ];
    for outcome in outcomes {
        let json = serde_json::to_value(&outcome).unwrap();
        assert_eq!(json["verdict"], outcome.name());
        assert_eq!(serde_json::from_value::<Outcome>(json).unwrap(), outcome);
    }
}

#[test]
fn properties_are_named_as_invariants_are_and_unknown_names_are_refused() {
    for name in Property::names() {
        assert_eq!(name.parse::<Property>().unwrap().name(), name);
    }
    assert_eq!("no-panic".parse::<Property>(), Ok(Property::NoPanic));
    let error = "no-such".parse::<Property>().unwrap_err();
    assert!(error.contains("unknown invariant 'no-such'") && error.contains("time-limit"), "{error}");
    assert_eq!(serde_json::to_string(&Property::TimeLimit).unwrap(), "\"time-limit\"");
}
