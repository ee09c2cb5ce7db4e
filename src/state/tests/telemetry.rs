//! Unit tests for [`super`]: the KIP-714 states, waits and error answers, on a fake clock.

use super::*;

const ID: [u8; 16] = [7; 16];

fn answer(interval_ms: i32, requested: &[&str]) -> SubscriptionAnswer {
    SubscriptionAnswer {
        error_code: 0,
        client_instance_id: ID,
        subscription_id: 11,
        accepted_compression_types: vec![3, 4, 1],
        push_interval_ms: interval_ms,
        telemetry_max_bytes: 1 << 20,
        delta_temporality: false,
        requested_metrics: requested.iter().map(|s| s.to_string()).collect(),
    }
}

/// A machine that has a subscription (interval 1 s) and is waiting for its first push.
fn subscribed(t0: Instant) -> Telemetry {
    let mut m = Telemetry::new(42);
    assert_eq!(
        m.next(t0),
        Next::GetSubscriptions {
            client_instance_id: [0; 16]
        }
    );
    m.on_subscriptions(t0, answer(1000, &["org.apache.kafka.producer."]));
    assert_eq!(m.state(), TelemetryState::PushNeeded);
    m
}

/// Drives `m` to its next push and returns when it came.
fn first_push(m: &mut Telemetry, t0: Instant) -> Instant {
    let Next::WaitUntil(due) = m.next(t0) else {
        panic!("a new subscription waits before its first push");
    };
    assert_eq!(m.next(due), Next::Push { terminating: false });
    due
}

#[test]
fn asks_for_a_subscription_at_once_then_pushes_at_the_jittered_interval() {
    let t0 = Instant::now();
    let mut m = subscribed(t0);
    let due = first_push(&mut m, t0);
    let first = due - t0;
    assert!(
        first >= Duration::from_millis(500) && first <= Duration::from_millis(1500),
        "{first:?}"
    );
    assert_eq!(m.state(), TelemetryState::PushInProgress);
    assert_eq!(m.next(due), Next::AwaitAnswer);
    m.on_push(due, 0);
    // Later pushes come exactly one interval after the previous answer.
    assert_eq!(m.next(due), Next::WaitUntil(due + Duration::from_secs(1)));
    assert_eq!(
        m.next(due + Duration::from_secs(1)),
        Next::Push { terminating: false }
    );
}

#[test]
fn the_first_push_is_spread_over_half_to_one_and_a_half_intervals() {
    let t0 = Instant::now();
    let firsts: Vec<Duration> = (1..50u64)
        .map(|seed| {
            let mut m = Telemetry::new(seed * 7919);
            m.next(t0);
            m.on_subscriptions(t0, answer(1000, &["*"]));
            let Next::WaitUntil(due) = m.next(t0) else {
                panic!()
            };
            due - t0
        })
        .collect();
    assert!(firsts.iter().all(|d| *d >= Duration::from_millis(500)));
    assert!(firsts.iter().all(|d| *d < Duration::from_millis(1500)));
    let distinct: std::collections::BTreeSet<_> = firsts.iter().collect();
    assert!(distinct.len() > 10, "no jitter: {firsts:?}");
}

#[test]
fn a_push_interval_below_what_kafka_allows_is_raised_to_100_ms() {
    let t0 = Instant::now();
    let mut m = Telemetry::new(42);
    m.next(t0);
    m.on_subscriptions(t0, answer(1, &["org.apache.kafka.producer."]));
    let due = first_push(&mut m, t0);
    assert!(due - t0 >= Duration::from_millis(50), "{:?}", due - t0);
    m.next(due);
    m.on_push(due, 0);
    // Pushes then come every 100 ms, not every millisecond.
    assert_eq!(m.next(due), Next::WaitUntil(due + MIN_PUSH_INTERVAL));
}

#[test]
fn the_second_subscription_request_sends_the_assigned_instance_id() {
    let t0 = Instant::now();
    let mut m = subscribed(t0);
    let due = first_push(&mut m, t0);
    m.on_push(due, codes::UNKNOWN_SUBSCRIPTION_ID);
    // Asked again at once, with the id the broker assigned.
    assert_eq!(
        m.next(due),
        Next::GetSubscriptions {
            client_instance_id: ID
        }
    );
}

#[test]
fn no_requested_metrics_means_ask_again_after_the_interval() {
    let t0 = Instant::now();
    let mut m = Telemetry::new(1);
    m.next(t0);
    m.on_subscriptions(t0, answer(2000, &[]));
    assert_eq!(m.state(), TelemetryState::SubscriptionNeeded);
    assert_eq!(m.next(t0), Next::WaitUntil(t0 + Duration::from_secs(2)));
    assert!(matches!(
        m.next(t0 + Duration::from_secs(2)),
        Next::GetSubscriptions { .. }
    ));
}

#[test]
fn selectors_follow_the_requested_metrics() {
    assert_eq!(MetricSelector::from_requested(&[]), MetricSelector::Nothing);
    assert_eq!(
        MetricSelector::from_requested(&["*".to_owned()]),
        MetricSelector::All
    );
    let s = MetricSelector::from_requested(&["org.apache.kafka.producer.record".to_owned()]);
    assert!(s.selects("org.apache.kafka.producer.record.send.total"));
    assert!(!s.selects("org.apache.kafka.producer.byte.total"));
    assert!(!MetricSelector::Nothing.selects("org.apache.kafka.producer.byte.total"));
    assert!(MetricSelector::All.selects("anything"));
}

#[test]
fn push_errors_are_handled_as_java_does() {
    let t0 = Instant::now();
    // Retry the subscription at once.
    for code in [
        codes::UNKNOWN_SUBSCRIPTION_ID,
        codes::UNSUPPORTED_COMPRESSION_TYPE,
    ] {
        let mut m = subscribed(t0);
        let due = first_push(&mut m, t0);
        m.on_push(due, code);
        assert!(m.enabled());
        assert!(
            matches!(m.next(due), Next::GetSubscriptions { .. }),
            "{code}"
        );
    }
    // Retry the subscription after the push interval.
    for code in [codes::TELEMETRY_TOO_LARGE, codes::THROTTLING_QUOTA_EXCEEDED] {
        let mut m = subscribed(t0);
        let due = first_push(&mut m, t0);
        m.on_push(due, code);
        assert_eq!(
            m.next(due),
            Next::WaitUntil(due + Duration::from_secs(1)),
            "{code}"
        );
        assert!(matches!(
            m.next(due + Duration::from_secs(1)),
            Next::GetSubscriptions { .. }
        ));
    }
    // Never retried: telemetry off.
    for code in [
        codes::INVALID_REQUEST,
        codes::INVALID_RECORD,
        codes::UNSUPPORTED_VERSION,
        29,
    ] {
        let mut m = subscribed(t0);
        let due = first_push(&mut m, t0);
        m.on_push(due, code);
        assert!(!m.enabled(), "{code}");
        assert_eq!(m.next(due + Duration::from_secs(3600)), Next::Stop);
    }
}

#[test]
fn a_subscription_error_waits_or_disables() {
    let t0 = Instant::now();
    let mut m = Telemetry::new(3);
    m.next(t0);
    m.on_subscriptions(
        t0,
        SubscriptionAnswer {
            error_code: codes::THROTTLING_QUOTA_EXCEEDED,
            ..Default::default()
        },
    );
    assert_eq!(m.next(t0), Next::WaitUntil(t0 + DEFAULT_PUSH_INTERVAL));
    let later = t0 + DEFAULT_PUSH_INTERVAL;
    assert!(matches!(m.next(later), Next::GetSubscriptions { .. }));
    m.on_subscriptions(
        later,
        SubscriptionAnswer {
            error_code: codes::INVALID_REQUEST,
            ..Default::default()
        },
    );
    assert_eq!(m.next(later), Next::Stop);
}

#[test]
fn a_failed_request_retries_after_the_default_interval() {
    let t0 = Instant::now();
    let mut m = subscribed(t0);
    let due = first_push(&mut m, t0);
    m.on_failed(due, true);
    assert_eq!(m.next(due), Next::WaitUntil(due + DEFAULT_PUSH_INTERVAL));
    assert!(matches!(
        m.next(due + DEFAULT_PUSH_INTERVAL),
        Next::GetSubscriptions { .. }
    ));
    m.on_failed(due + DEFAULT_PUSH_INTERVAL, false);
    assert_eq!(m.next(due + DEFAULT_PUSH_INTERVAL * 2), Next::Stop);
}

#[test]
fn close_sends_one_terminating_push_then_stops() {
    let t0 = Instant::now();
    let mut m = subscribed(t0);
    let due = first_push(&mut m, t0);
    m.on_push(due, 0);
    assert!(m.close());
    assert!(!m.close(), "a second close adds nothing");
    // Due at once, whatever the interval.
    assert_eq!(m.next(due), Next::Push { terminating: true });
    assert_eq!(m.next(due), Next::AwaitAnswer);
    m.on_push(due, 0);
    assert_eq!(m.state(), TelemetryState::Terminated);
    assert_eq!(m.next(due), Next::Stop);
}

#[test]
fn close_while_a_push_is_on_the_wire_still_terminates_with_a_push() {
    let t0 = Instant::now();
    let mut m = subscribed(t0);
    let due = first_push(&mut m, t0);
    assert!(m.close());
    // The answer to the push sent before close changes nothing.
    m.on_push(due, codes::UNKNOWN_SUBSCRIPTION_ID);
    assert_eq!(m.next(due), Next::Push { terminating: true });
    m.on_failed(due, true);
    assert_eq!(m.next(due), Next::Stop);
}

#[test]
fn close_without_a_subscription_pushes_nothing() {
    let t0 = Instant::now();
    let mut m = Telemetry::new(5);
    assert!(!m.close());
    assert_eq!(m.next(t0), Next::Stop);

    let mut m = Telemetry::new(5);
    m.next(t0);
    assert!(!m.close(), "subscription request still on the wire");
    m.on_subscriptions(t0, answer(1000, &["*"]));
    assert_eq!(m.next(t0), Next::Stop);
}

#[test]
fn a_temporality_change_resets_the_last_values() {
    let t0 = Instant::now();
    let mut m = subscribed(t0);
    let due = first_push(&mut m, t0);
    m.on_push(due, codes::UNKNOWN_SUBSCRIPTION_ID);
    m.next(due);
    let mut delta = answer(1000, &["*"]);
    delta.delta_temporality = true;
    assert!(m.on_subscriptions(due, delta.clone()).reset_last_values);
    let due = first_push(&mut m, due);
    m.on_push(due, codes::UNKNOWN_SUBSCRIPTION_ID);
    m.next(due);
    assert!(!m.on_subscriptions(due, delta).reset_last_values);
}

#[test]
fn compression_is_the_brokers_first_choice_josefk_can_encode() {
    let t0 = Instant::now();
    let m = subscribed(t0);
    // Accepted, most preferred first: lz4 (3), zstd (4), gzip (1).
    assert_eq!(m.compression(|_| true), 3);
    assert_eq!(m.compression(|c| c == 1), 1);
    assert_eq!(m.compression(|_| false), 0);
    assert_eq!(Telemetry::new(1).compression(|_| true), 0);
}

#[test]
fn a_push_refused_for_its_codec_pushes_uncompressed_from_then_on() {
    let t0 = Instant::now();
    let mut m = subscribed(t0);
    let due = first_push(&mut m, t0);
    assert_eq!(m.compression(|_| true), 3);
    m.on_push(due, codes::UNSUPPORTED_COMPRESSION_TYPE);
    assert!(matches!(m.next(due), Next::GetSubscriptions { .. }));
    m.on_subscriptions(due, answer(1000, &["org.apache.kafka.producer."]));
    assert_eq!(m.compression(|_| true), 0, "not lz4 again");
}

/// The codes that make a refused push ask for a subscription at once, given to the subscription
/// request itself: asked again after the push interval, not at once for ever.
#[test]
fn a_subscription_answered_with_a_push_only_code_waits_before_asking_again() {
    for code in [
        codes::UNKNOWN_SUBSCRIPTION_ID,
        codes::UNSUPPORTED_COMPRESSION_TYPE,
    ] {
        let t0 = Instant::now();
        let mut m = Telemetry::new(5);
        assert!(matches!(m.next(t0), Next::GetSubscriptions { .. }));
        m.on_subscriptions(
            t0,
            SubscriptionAnswer {
                error_code: code,
                ..Default::default()
            },
        );
        assert_eq!(
            m.next(t0),
            Next::WaitUntil(t0 + DEFAULT_PUSH_INTERVAL),
            "{code}"
        );
    }
}

#[test]
fn an_answer_without_an_instance_id_turns_telemetry_off() {
    let t0 = Instant::now();
    let mut m = Telemetry::new(9);
    m.next(t0);
    let mut a = answer(1000, &["*"]);
    a.client_instance_id = [0; 16];
    m.on_subscriptions(t0, a);
    assert_eq!(m.next(t0), Next::Stop);
}
