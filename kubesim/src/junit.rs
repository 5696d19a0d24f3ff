//! JUnit XML of a campaign (`kubesim campaign --junit FILE`, `kubesim merge --junit`): one
//! test case per failure signature (see [`crate::signature`]) and one for the passing
//! seeds, the format GitHub, GitLab and Jenkins render as test results.

use quick_xml::events::{BytesCData, BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;

use crate::campaign::{CampaignSummary, SeedResult};
use crate::signature::Signature;

/// The summary as a JUnit document; `suite` names the test suite (the campaign's flags).
pub fn render(summary: &CampaignSummary, suite: &str) -> String {
    let groups = summary.by_signature();
    let n_passed = summary.results.iter().filter(|r| r.passed()).count();
    let n_cases = groups.len() + 1;
    let built_from = summary.results.first().map_or("", |r| r.built_from.as_str());
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    write(&mut writer, Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)));
    let counts = |mut start: BytesStart<'static>| {
        start.push_attribute(("tests", n_cases.to_string().as_str()));
        start.push_attribute(("failures", groups.len().to_string().as_str()));
        start.push_attribute(("time", format!("{:.3}", summary.wall_secs).as_str()));
        start
    };
    let mut suites = counts(BytesStart::new("testsuites"));
    suites.push_attribute(("name", "kubesim"));
    write(&mut writer, Event::Start(suites));
    let mut suite_start = counts(BytesStart::new("testsuite"));
    suite_start.push_attribute(("name", suite));
    write(&mut writer, Event::Start(suite_start));

    write(&mut writer, Event::Start(BytesStart::new("properties")));
    for (name, value) in [("built_from", built_from.to_string()), ("seeds", summary.results.len().to_string())] {
        let mut property = BytesStart::new("property");
        property.push_attribute(("name", name));
        property.push_attribute(("value", value.as_str()));
        write(&mut writer, Event::Empty(property));
    }
    write(&mut writer, Event::End(BytesEnd::new("properties")));

    for (signature, seeds) in &groups {
        write_failing_case(&mut writer, signature, seeds);
    }

    let mut passing = BytesStart::new("testcase");
    passing.push_attribute(("classname", "kubesim"));
    passing.push_attribute(("name", format!("{n_passed} passing seeds").as_str()));
    write(&mut writer, Event::Start(passing));
    write(&mut writer, Event::Start(BytesStart::new("system-out")));
    write(&mut writer, Event::Text(BytesText::new(&format!("{n_passed} of {} seeds passed", summary.results.len()))));
    write(&mut writer, Event::End(BytesEnd::new("system-out")));
    write(&mut writer, Event::End(BytesEnd::new("testcase")));
    write(&mut writer, Event::End(BytesEnd::new("testsuite")));
    write(&mut writer, Event::End(BytesEnd::new("testsuites")));
    let mut xml = String::from_utf8(writer.into_inner()).expect("the writer wrote UTF-8");
    xml.push('\n');
    xml
}

fn write(writer: &mut Writer<Vec<u8>>, event: Event<'_>) {
    writer.write_event(event).expect("writing XML to memory cannot fail");
}

/// One failure signature's test case: its smallest seed's repro as the failure message,
/// and the signature, its seeds and that seed's first violation and faults as the body.
fn write_failing_case(writer: &mut Writer<Vec<u8>>, signature: &Signature, seeds: &[&SeedResult]) {
    let smallest = seeds[0];
    let mut case = BytesStart::new("testcase");
    case.push_attribute(("classname", format!("kubesim.{}", signature.invariant).as_str()));
    case.push_attribute(("name", format!("{} {}", signature.id(), signature.describe()).as_str()));
    case.push_attribute(("time", format!("{:.3}", smallest.wall_ms as f64 / 1000.0).as_str()));
    write(writer, Event::Start(case));
    let mut failure = BytesStart::new("failure");
    failure.push_attribute((
        "message",
        format!("{} seed(s), the smallest {}: {}", seeds.len(), smallest.seed, smallest.repro).as_str(),
    ));
    failure.push_attribute(("type", signature.invariant.as_str()));
    write(writer, Event::Start(failure));
    let body = failure_body(signature, seeds);
    write(writer, Event::CData(BytesCData::new(body.replace("]]>", "]] >"))));
    write(writer, Event::End(BytesEnd::new("failure")));
    write(writer, Event::End(BytesEnd::new("testcase")));
}

/// The text of a failing case: the signature, every seed it groups, and the smallest
/// seed's repro, first violation of the signature's invariant and faults.
fn failure_body(signature: &Signature, seeds: &[&SeedResult]) -> String {
    let smallest = seeds[0];
    let lines = smallest.violations();
    let first_message =
        lines.iter().find(|v| v.invariant.name() == signature.invariant).map_or("", |v| v.message.as_str());
    let seed_list: Vec<String> = seeds.iter().map(|r| r.seed.to_string()).collect();
    format!(
        "signature {}: {}\nseeds: {}\nrepro: {}\nfirst violation of seed {}: {}\nfaults of seed {}:\n{}\n",
        signature.id(),
        signature.describe(),
        seed_list.join(" "),
        smallest.repro,
        smallest.seed,
        first_message,
        smallest.seed,
        smallest.faults.join("\n"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::campaign::SeedResult;
    use verdict::checkers::Invariant;

    #[test]
    fn one_case_per_signature_and_one_for_the_passing_seeds() {
        let failing = |seed: u64, message: &str| SeedResult {
            repro: format!("kubesim run --seed {seed}"),
            ..SeedResult::failing(seed, Invariant::Convergence, message)
        };
        let summary = CampaignSummary {
            results: vec![
                SeedResult::empty(0),
                failing(1, "[3.0s] had 6 live pods <of> 5"),
                failing(2, "[4.0s] had 7 live pods <of> 5"),
                failing(3, "[4.0s] never reached 5 pods"),
            ],
            wall_secs: 1.5,
        };
        let xml = render(&summary, "kubesim campaign --seeds 0..4");
        assert!(xml.contains(r#"<testsuites tests="3" failures="2" time="1.500" name="kubesim">"#), "{xml}");
        assert_eq!(xml.matches("<testcase ").count(), 3, "{xml}");
        assert!(xml.contains("2 seed(s), the smallest 1: kubesim run --seed 1"), "{xml}");
        assert!(xml.contains("had N live pods &lt;of&gt; N"), "the shape is escaped in attributes: {xml}");
        assert!(xml.contains("1 passing seeds"), "{xml}");
        // Well-formed: quick-xml reads it back to the end.
        let mut reader = quick_xml::Reader::from_str(&xml);
        loop {
            match reader.read_event() {
                Ok(Event::Eof) => break,
                Ok(_) => {}
                Err(e) => panic!("not well-formed: {e}\n{xml}"),
            }
        }
    }
}
