//! Live runs of the `at_most_once` and `at_least_once` examples against the shared broker: each
//! must exit successfully (its own checks passed) and its summary must show the guarantee's
//! promise kept and its stated weakness actually exercised by the simulated crash:
//!
//! - at most once: no sample processed twice; the crashed member's batch is lost, and nothing else
//!   the broker has is;
//! - at least once: no order lost; the crashed member's uncommitted batch is processed again.
//!
//! The test builds each example itself (`cargo test --test guarantee_examples` alone does not
//! build examples, and a stale binary would be tested otherwise).

mod common;

/// Runs example `name` against the shared broker; returns its stdout once it succeeded.
fn run_example(name: &str) -> String {
    let stdout = common::run_example(name, &[]);
    assert!(stdout.contains("check: OK"), "{name} reports its check");
    stdout
}

/// The number right after the first occurrence of `label` in `text`.
fn number_after(text: &str, label: &str) -> i64 {
    let at = text
        .find(label)
        .unwrap_or_else(|| panic!("`{label}` missing from:\n{text}"))
        + label.len();
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number after `{label}` in:\n{text}"))
}

#[test]
fn at_most_once_example_processes_nothing_twice_and_loses_only_the_crashed_batch() {
    let out = run_example("at_most_once");
    let sent = number_after(&out, "sent ");
    let in_log = number_after(&out, "in the log ");
    let crashed = number_after(&out, "consumer A polled ");
    assert!(crashed > 0 && in_log > crashed && in_log <= sent);
    assert_eq!(number_after(&out, "duplicates "), 0);
    assert_eq!(number_after(&out, "lost by consumer A's crash "), crashed);
    // Everything the broker has, except the batch committed before the crash, was processed.
    assert_eq!(number_after(&out, "\nprocessed "), in_log - crashed);
    assert!(out.contains("committed offsets at the log end: true"));
}

#[test]
fn at_least_once_example_loses_nothing_and_redelivers_the_uncommitted_batch() {
    let out = run_example("at_least_once");
    let sent = number_after(&out, "sent ");
    let uncommitted = number_after(&out, "consumer A processed ");
    let written_twice = number_after(&out, "written twice by producer retries ");
    assert_eq!(number_after(&out, "\nprocessed "), sent, "distinct orders");
    assert_eq!(number_after(&out, "lost "), 0);
    let duplicates = number_after(&out, "duplicates ");
    // A's batch was never committed, so B processes it again: the duplicates at-least-once allows.
    assert!(
        duplicates >= uncommitted && duplicates <= uncommitted + written_twice,
        "duplicates {duplicates}, A's uncommitted batch {uncommitted}"
    );
    assert!(out.contains("committed offsets at the log end: true"));
}
