//! How a josefk connection behaves when the broker misbehaves or goes away: every failure reaches
//! the right callers with the right error, promptly, and the connection closes when it must and
//! only then.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use josefk::net::{Connection, ConnectionOptions};
use josefk::protocol::encode_request;
use josefk::Error;
use kafka_protocol::messages::{ApiKey, MetadataResponse, ProduceRequest};
use protocol_tests::{
    echo_metadata, metadata_for, metadata_topic, test_options, Action, Prng, ScriptedBroker,
};
use tokio::sync::Notify;

/// Upper bound for anything that should happen "at once".
const PROMPT: Duration = Duration::from_secs(2);

fn topic_of(response: &MetadataResponse) -> String {
    let name = response.topics[0].name.as_ref().expect("topic name");
    name.0.to_string()
}

/// Sends a Metadata request tagged `topic`, failing the test if it takes longer than [`PROMPT`].
async fn metadata(conn: &Connection, topic: &str) -> josefk::Result<MetadataResponse> {
    tokio::time::timeout(PROMPT, conn.send(&metadata_for(topic)))
        .await
        .unwrap_or_else(|_| panic!("request {topic} got no answer within {PROMPT:?}"))
}

/// The correlation ids of the Metadata requests the broker received, in order.
fn metadata_ids(broker: &ScriptedBroker) -> Vec<i32> {
    broker
        .requests()
        .iter()
        .filter(|h| h.request_api_key == ApiKey::Metadata as i16)
        .map(|h| h.correlation_id)
        .collect()
}

fn assert_lost(result: josefk::Result<MetadataResponse>, outcome_unknown: bool, what: &str) {
    match result {
        Err(Error::ConnectionLost {
            api: Some(josefk::ApiKey::Metadata),
            outcome_unknown: unknown,
            ..
        }) if unknown == outcome_unknown => {}
        other => panic!("{what}: expected ConnectionLost {{ outcome_unknown: {outcome_unknown} }}, got {other:?}"),
    }
}

/// The system allocator, recording the largest single allocation this test binary asks for, so a
/// test can prove a huge length prefix was never turned into a buffer (an untouched reservation
/// would not show in the resident set size).
struct LargestAllocation;

static LARGEST_ALLOCATION: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded unchanged to `System`; only sizes are recorded.
unsafe impl GlobalAlloc for LargestAllocation {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(layout.size(), Ordering::Relaxed);
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LARGEST_ALLOCATION.fetch_max(new_size, Ordering::Relaxed);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: LargestAllocation = LargestAllocation;

/// Peak resident set size of this process, in bytes.
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .expect("VmHWM line");
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .expect("VmHWM value");
    kib * 1024
}

#[tokio::test]
async fn oversized_response_is_refused_before_allocating() {
    let broker = ScriptedBroker::start(|header, _| {
        if header.request_api_key == ApiKey::Metadata as i16 {
            // A 2 GiB frame (the largest an i32 prefix can announce); no body follows, and the
            // connection stays open, so only the length check can end the request.
            Action::OversizedLength(i32::MAX)
        } else {
            Action::Default
        }
    })
    .await;
    let conn = broker.connect(test_options()).await.unwrap();
    let started = Instant::now();
    let error = metadata(&conn, "big").await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "refusal took {:?}: it must not wait for the body or the request timeout",
        started.elapsed()
    );
    match &error {
        Error::Protocol {
            api: Some(josefk::ApiKey::Metadata),
            message,
            ..
        } => {
            assert!(message.contains("2147483647"), "size not named: {message}");
            assert!(message.contains("1048576"), "cap not named: {message}");
        }
        other => panic!("expected a protocol error naming the size, got {other:?}"),
    }
    assert!(conn.is_closed());
    // No test in this binary needs a buffer above the 1 MiB cap (plus read-chunk slack).
    let largest = LARGEST_ALLOCATION.load(Ordering::Relaxed);
    assert!(
        largest < 8 << 20,
        "an allocation of {largest} bytes was made: the announced size was reserved"
    );
    let peak = peak_rss();
    assert!(
        peak < 512 << 20,
        "peak RSS {peak} bytes: the announced 2 GiB were (partly) allocated"
    );
}

#[tokio::test]
async fn correlation_id_mismatch_fails_the_request_and_closes_the_connection() {
    let broker = ScriptedBroker::start(|header, body| match metadata_topic(header, body) {
        Some(t) if t == "first" => Action::WrongCorrelationId,
        Some(_) => Action::NoReply,
        None => Action::Default,
    })
    .await;
    let conn = broker.connect(test_options()).await.unwrap();
    let (first, second) = tokio::join!(
        biased;
        metadata(&conn, "first"),
        metadata(&conn, "second"),
    );
    match first {
        Err(Error::Protocol {
            api: Some(josefk::ApiKey::Metadata),
            message,
            ..
        }) => assert!(
            message.contains("correlation id 2 does not match")
                && message.contains("in flight (1)"),
            "error does not say what was wrong: {message}"
        ),
        other => panic!("expected a correlation-id protocol error, got {other:?}"),
    }
    assert_lost(second, true, "request behind the bad response");
    assert!(conn.is_closed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_is_closed_by_the_time_a_caller_sees_it_fail() {
    // A caller that retries through the pool right after an error must not be handed the dead
    // connection again: `is_closed()` has to be true before any caller learns of the failure.
    let broker = ScriptedBroker::start(|header, _| {
        if header.request_api_key == ApiKey::Metadata as i16 {
            Action::WrongCorrelationId
        } else {
            Action::Default
        }
    })
    .await;
    for round in 0..200 {
        let conn = broker.connect(test_options()).await.unwrap();
        assert!(metadata(&conn, "t").await.is_err());
        assert!(conn.is_closed(), "round {round}: error seen before close");
    }
}

#[tokio::test]
async fn cut_mid_frame_fails_every_request_in_flight_as_outcome_unknown() {
    // The broker only reads "c" once the client wrote a, b and c, so all three are in flight
    // when it writes half a frame and hangs up.
    let broker = ScriptedBroker::start(|header, body| match metadata_topic(header, body) {
        Some(t) if t == "c" => Action::CloseMidFrame(10),
        Some(_) => Action::NoReply,
        None => Action::Default,
    })
    .await;
    let conn = broker.connect(test_options()).await.unwrap();
    let (a, b, c) = tokio::join!(
        biased;
        metadata(&conn, "a"),
        metadata(&conn, "b"),
        metadata(&conn, "c"),
    );
    assert_lost(a, true, "a");
    assert_lost(b, true, "b");
    assert_lost(c, true, "c");
    assert!(conn.is_closed());
}

#[tokio::test]
async fn requests_queued_behind_a_full_window_fail_as_not_sent() {
    let gate = Arc::new(Notify::new());
    let broker_gate = gate.clone();
    let broker =
        ScriptedBroker::start(
            move |header, body| match metadata_topic(header, body.clone()) {
                Some(t) if t == "a" => {
                    Action::WaitFor(broker_gate.clone(), Box::new(Action::Close))
                }
                Some(_) => echo_metadata(header, body),
                None => Action::Default,
            },
        )
        .await;
    let conn = broker
        .connect(ConnectionOptions {
            max_in_flight: 1,
            ..test_options()
        })
        .await
        .unwrap();
    // `biased` polls in order: "a" takes the only in-flight slot, "b" and "c" are queued in the
    // connection's channel before the broker is allowed to hang up.
    let (a, b, c, ()) = tokio::join!(
        biased;
        metadata(&conn, "a"),
        metadata(&conn, "b"),
        metadata(&conn, "c"),
        async { gate.notify_one() },
    );
    assert_lost(a, true, "a (written)");
    for (name, result) in [("b", b), ("c", c)] {
        match result {
            Err(Error::ConnectionLost {
                outcome_unknown: false,
                reason,
                ..
            }) => assert!(
                reason.contains("broker closed the connection"),
                "{name} was not failed by the drain: {reason}"
            ),
            other => panic!("{name}: expected ConnectionLost (not sent), got {other:?}"),
        }
    }
    assert_eq!(metadata_ids(&broker), vec![1], "only a reached the broker");
}

#[tokio::test]
async fn close_stops_the_connection_at_once_and_sends_nothing_more() {
    let gate = Arc::new(Notify::new());
    let broker_gate = gate.clone();
    let broker =
        ScriptedBroker::start(
            move |header, body| match metadata_topic(header, body.clone()) {
                Some(t) if t == "a" => {
                    Action::WaitFor(broker_gate.clone(), Box::new(echo_metadata(header, body)))
                }
                Some(_) => echo_metadata(header, body),
                None => Action::Default,
            },
        )
        .await;
    let conn = broker
        .connect(ConnectionOptions {
            max_in_flight: 1,
            ..test_options()
        })
        .await
        .unwrap();
    // "a" is written and held by the broker; "b" waits for the only in-flight slot.
    let (a, b, ()) = tokio::join!(
        biased;
        metadata(&conn, "a"),
        metadata(&conn, "b"),
        async {
            while metadata_ids(&broker).is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            tokio::time::timeout(PROMPT, conn.close())
                .await
                .expect("close returns at once");
            assert!(conn.is_closed());
            // The broker answers "a" now; "b" must not follow it.
            gate.notify_one();
        },
    );
    assert_lost(a, true, "a (written)");
    assert_lost(b, false, "b (queued)");
    assert_lost(metadata(&conn, "c").await, false, "c (after close)");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(metadata_ids(&broker), vec![1], "only a reached the broker");
}

#[tokio::test]
async fn timed_out_request_fails_with_timeout_and_closes_the_connection() {
    let broker = ScriptedBroker::start(|header, _| {
        if header.request_api_key == ApiKey::Metadata as i16 {
            Action::NoReply
        } else {
            Action::Default
        }
    })
    .await;
    let timeout = Duration::from_millis(150);
    let conn = broker
        .connect(ConnectionOptions {
            request_timeout: timeout,
            ..test_options()
        })
        .await
        .unwrap();
    let started = Instant::now();
    let (first, second) = tokio::join!(
        biased;
        metadata(&conn, "first"),
        metadata(&conn, "second"),
    );
    let elapsed = started.elapsed();
    match first {
        Err(Error::Timeout {
            api: Some(josefk::ApiKey::Metadata),
            after,
            ..
        }) => assert_eq!(after, timeout),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(elapsed >= timeout, "failed before its timeout: {elapsed:?}");
    assert!(elapsed < PROMPT, "timeout not enforced: {elapsed:?}");
    assert_lost(second, true, "request in flight behind the timed-out one");
    assert!(conn.is_closed());
    match metadata(&conn, "later").await {
        Err(Error::ConnectionLost {
            outcome_unknown: false,
            ..
        }) => {}
        other => panic!("a closed connection must refuse new requests as not sent: {other:?}"),
    }
}

#[tokio::test]
async fn pipelined_requests_each_get_their_own_response() {
    const N: usize = 64;
    let prng = Mutex::new(Prng::new(0x5eed));
    let broker = ScriptedBroker::start(move |header, body| {
        if header.request_api_key != ApiKey::Metadata as i16 {
            return Action::Default;
        }
        let delay = Duration::from_micros(prng.lock().unwrap().below(2_000));
        Action::Delay(delay, Box::new(echo_metadata(header, body)))
    })
    .await;
    let conn = broker
        .connect(ConnectionOptions {
            max_in_flight: 8,
            ..test_options()
        })
        .await
        .unwrap();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..N {
        let conn = conn.clone();
        tasks.spawn(async move {
            let topic = format!("topic-{i}");
            let response = metadata(&conn, &topic).await.unwrap();
            assert_eq!(topic_of(&response), topic, "got another request's response");
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.unwrap();
    }
    let ids = metadata_ids(&broker);
    assert_eq!(ids, (1..=N as i32).collect::<Vec<_>>(), "correlation ids");
    assert!(!conn.is_closed());
}

#[tokio::test]
async fn dropped_callers_leave_the_connection_usable() {
    let broker = ScriptedBroker::start(|header, body| match metadata_topic(header, body.clone()) {
        Some(t) if t == "slow" => Action::Delay(
            Duration::from_millis(100),
            Box::new(echo_metadata(header, body)),
        ),
        Some(_) => echo_metadata(header, body),
        None => Action::Default,
    })
    .await;
    let conn = broker
        .connect(ConnectionOptions {
            max_in_flight: 1,
            ..test_options()
        })
        .await
        .unwrap();
    // "slow" is written and then abandoned; "queued" waits behind it for the single slot and is
    // abandoned before reaching the wire; "after" must get its own answer, not slow's.
    let abandon = |topic: &'static str| {
        let conn = conn.clone();
        async move {
            let request = metadata_for(topic);
            let send = tokio::time::timeout(Duration::from_millis(20), conn.send(&request));
            assert!(send.await.is_err(), "{topic} answered too early");
        }
    };
    tokio::join!(biased; abandon("slow"), abandon("queued"));
    let response = metadata(&conn, "after").await.unwrap();
    assert_eq!(topic_of(&response), "after");
    assert!(!conn.is_closed());
    // The abandoned "queued" request took no correlation id and never reached the broker.
    assert_eq!(metadata_ids(&broker), vec![1, 2], "slow then after");
}

#[tokio::test]
async fn request_without_response_completes_once_written() {
    let broker = ScriptedBroker::start(|header, body| {
        if header.request_api_key == ApiKey::Produce as i16 {
            // acks=0: a Kafka broker never answers.
            Action::NoReply
        } else if header.request_api_key == ApiKey::Metadata as i16 {
            echo_metadata(header, body)
        } else {
            Action::Default
        }
    })
    .await;
    let conn = broker.connect(test_options()).await.unwrap();
    let version = conn.version_for::<ProduceRequest>().unwrap();
    let mut request = encode_request(
        &ProduceRequest::default().with_acks(0).with_timeout_ms(1000),
        version,
        "protocol-tests",
    )
    .unwrap();
    request.expects_response = false;
    let written = tokio::time::timeout(PROMPT, conn.send_encoded(request, None))
        .await
        .expect("acks=0 request must complete once written")
        .unwrap();
    assert!(written.is_empty());
    // The next request is matched by its own correlation id, not the unanswered one's.
    let response = metadata(&conn, "next").await.unwrap();
    assert_eq!(topic_of(&response), "next");
    let ids: Vec<_> = broker
        .requests()
        .iter()
        .filter(|h| h.correlation_id > 0)
        .map(|h| (h.request_api_key, h.correlation_id))
        .collect();
    assert_eq!(
        ids,
        vec![(ApiKey::Produce as i16, 1), (ApiKey::Metadata as i16, 2)]
    );
}
