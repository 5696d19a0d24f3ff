//! The example's regression cases (`regressions/`), replayed as `kubesim corpus` replays
//! kubesim's own: a shrunk seed of the buggy operator must still be caught by
//! `database-single-primary`, and the same seed and plan must pass on the correct one.

use std::path::Path;
use std::time::Duration;

use kubesim::cli::EXIT_PASS;
use kubesim::cli_regress::corpus_command;

#[test]
fn every_case_gives_its_expected_verdict() {
    database_operator::register();
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("regressions");
    match corpus_command(Some(&corpus), Duration::from_secs(600)) {
        Ok(code) => assert_eq!(code, EXIT_PASS, "a case of {} did not give its expected verdict", corpus.display()),
        Err(e) => panic!("the corpus did not run: {}", e.message()),
    }
}
