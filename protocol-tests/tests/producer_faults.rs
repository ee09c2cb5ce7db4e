//! The idempotent producer against faults a real broker cannot be made to produce on demand: a
//! Produce never answered, answered after the request timeout, or answered with a frame cut in
//! half; a broker that never answers Metadata; a leader nobody can reach; topic names the broker
//! would refuse; `close` while a delivery is stuck (also behind a full socket); `flush` while a
//! batch that lost its leader expires; `send` with `buffer.memory` full (for `max.block.ms`, and
//! freed by sending a lingering batch at once); and records queued while `max.in.flight`
//! requests are out.
//!
//! One [`ScriptedBroker`] (node 1) plays the cluster through [`Cluster`]: a minimal model answers
//! ApiVersions, Metadata, InitProducerId and Produce, and each test injects its fault through a
//! hook that may replace the model's answer. Every request is logged with when it arrived and
//! what it carried (producer id, epoch, base sequence), so tests assert what was sent and what
//! the caller got. Durations are asserted as generous upper bounds only.

mod producer_support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use kafka_protocol::messages::ApiKey;

use josefk::producer::Producer;
use josefk::{Error, ErrorClass, ProducerRecord};
use protocol_tests::Action;

use producer_support::*;

/// The delivery of a record whose every Produce meets `fault` settles by `delivery.timeout.ms`
/// plus one request timeout, as outcome unknown; the producer then moves to a new epoch and the
/// next record goes out at sequence 0 under it, and is delivered.
async fn gives_up_as_unknown_then_starts_a_new_epoch(fault: fn() -> Action) {
    let cluster = Cluster::start(while_faulty(fault)).await;
    let producer = cluster.producer().await;
    let sent = Instant::now();
    let stuck = producer
        .send(ProducerRecord::new(TOPIC, "stuck"))
        .await
        .expect("queued");
    let error = within(stuck).await.expect_err("no answer ever came");
    let took = sent.elapsed();
    eprintln!("settled after {took:?}: {error}");
    assert!(
        took <= DELIVERY_TIMEOUT + REQUEST_TIMEOUT + SLACK,
        "settled after {took:?}"
    );
    assert!(
        took >= DELIVERY_TIMEOUT - Duration::from_millis(100),
        "settled early: {took:?}"
    );
    assert!(error.outcome_unknown(), "{error}");
    assert!(
        matches!(&error, Error::Undelivered { topic, partition: 0, .. } if topic == TOPIC),
        "{error:?}"
    );
    assert_eq!(error.class(), ErrorClass::Retriable);
    assert!(
        error.to_string().contains("delivery.timeout.ms (3s)"),
        "{error}"
    );
    // The last attempt's error names the broker once (the connection-lost reason used to
    // repeat the whole connection error inside itself).
    assert_eq!(error.to_string().matches("broker 1").count(), 1, "{error}");
    // Every attempt carried the first epoch and sequence 0.
    let attempts = cluster.produced();
    assert!(!attempts.is_empty());
    assert!(
        attempts.iter().all(|&b| b == (PRODUCER_ID, 0, 0, 1)),
        "{attempts:?}"
    );

    cluster.set_faulty(false);
    let next = producer
        .send(ProducerRecord::new(TOPIC, "next"))
        .await
        .expect("queued");
    let delivered = within(next)
        .await
        .expect("delivered once the broker answers");
    assert_eq!(delivered.offset, Some(0));
    let after: Vec<_> = cluster.produced().split_off(attempts.len());
    assert_eq!(
        after,
        vec![(PRODUCER_ID, 1, 0, 1)],
        "a new epoch, from sequence 0"
    );
    within(producer.close(Duration::from_secs(5)))
        .await
        .expect("close");
}

#[tokio::test]
async fn produce_never_answered_settles_at_the_delivery_timeout_then_a_new_epoch_starts() {
    gives_up_as_unknown_then_starts_a_new_epoch(|| Action::NoReply).await;
}

#[tokio::test]
async fn produce_answered_after_the_request_timeout_settles_then_a_new_epoch_starts() {
    gives_up_as_unknown_then_starts_a_new_epoch(|| {
        Action::Delay(
            REQUEST_TIMEOUT + Duration::from_millis(500),
            Box::new(produce_answer(0, 9)),
        )
    })
    .await;
}

#[tokio::test]
async fn produce_reply_cut_mid_frame_settles_then_a_new_epoch_starts() {
    gives_up_as_unknown_then_starts_a_new_epoch(|| Action::CloseMidFrame(6)).await;
}

#[tokio::test]
async fn close_during_a_stuck_delivery_returns_in_time_settles_everything_and_sends_nothing_more() {
    let cluster = Cluster::start(while_faulty(|| Action::NoReply)).await;
    // One request at a time: the second record waits behind the stuck one, never sent. The
    // stuck request would time out only long after close returned.
    let (producer, in_flight) =
        producer_with_one_request_out(&cluster, Duration::from_secs(10), "in flight").await;
    let queued = producer
        .send(ProducerRecord::new(TOPIC, "queued"))
        .await
        .unwrap();
    let timeout = Duration::from_secs(1);
    let started = Instant::now();
    let closed = within(producer.close(timeout)).await;
    let took = started.elapsed();
    eprintln!("close({timeout:?}) returned after {took:?}: {closed:?}");
    let requests_at_close = cluster.broker.requests().len();
    assert!(took <= timeout + SLACK, "close took {took:?}");
    match &closed {
        Err(Error::CloseTimedOut {
            unsent: 1,
            unknown: 1,
            ..
        }) => {}
        other => panic!("expected CloseTimedOut with 1 unsent and 1 unknown, got {other:?}"),
    }
    let text = closed.unwrap_err().to_string();
    assert!(text.contains("after 1s"), "{text}");
    // Both futures have their outcome already.
    let settled = Duration::from_millis(200);
    let in_flight = tokio::time::timeout(settled, in_flight)
        .await
        .expect("the in-flight record is settled when close returns")
        .unwrap_err();
    assert!(in_flight.outcome_unknown(), "{in_flight}");
    let queued = tokio::time::timeout(settled, queued)
        .await
        .expect("the queued record is settled when close returns")
        .unwrap_err();
    assert!(!queued.outcome_unknown(), "{queued}");
    assert!(queued.to_string().contains("closed"), "{queued}");
    // Nothing reaches the broker afterwards: no retry, no metadata refresh, no redial.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let late: Vec<_> = cluster.broker.requests()[requests_at_close..]
        .iter()
        .map(|h| h.request_api_key)
        .collect();
    assert!(late.is_empty(), "requests after close returned: {late:?}");
    assert!(matches!(
        producer.send(ProducerRecord::new(TOPIC, "late")).await,
        Err(Error::Closed)
    ));
}

/// A request the connection task took before `close` but could not yet write (the socket is
/// full: the broker stopped reading while it holds the request before) must not reach the
/// broker once `close` returned, even when the broker reads again.
#[tokio::test]
async fn close_sends_nothing_more_even_of_a_request_stuck_behind_a_full_socket() {
    // The broker sits on the first Produce (reading nothing more) until the gate opens.
    let gate = Arc::new(tokio::sync::Notify::new());
    let held = gate.clone();
    let cluster = Cluster::start(move |req, _| {
        matches!(req, Req::Produce(_))
            .then(|| Action::WaitFor(held.clone(), Box::new(Action::NoReply)))
    })
    .await;
    let mut config = cluster.config();
    // The second request is far larger than what loopback buffers hold while the broker does
    // not read (a send buffer of at most 4 MiB plus a receive window that grows only as the
    // broker reads), so most of it is still in the connection task when `close` is called.
    const LARGE: usize = 24 << 20;
    config.max_request_size = 32 << 20;
    config.buffer_memory = 32 << 20;
    config.delivery_timeout = Duration::from_secs(30);
    config.client = config.client.request_timeout(Duration::from_secs(30));
    let producer = within(Producer::connect(config)).await.expect("connect");
    let first = producer
        .send(ProducerRecord::new(TOPIC, "held"))
        .await
        .unwrap();
    within(async {
        while cluster.produced().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    let large = producer
        .send(ProducerRecord::new(TOPIC, vec![b'x'; LARGE]))
        .await
        .unwrap();
    // Time to encode the large batch and start writing it (a slow start lets this test pass
    // without exercising the window, never fail wrongly).
    tokio::time::sleep(Duration::from_secs(3)).await;
    let timeout = Duration::from_millis(500);
    let started = Instant::now();
    let closed = within(producer.close(timeout)).await;
    let took = started.elapsed();
    let requests_at_close = cluster.broker.requests().len();
    eprintln!("close({timeout:?}) returned after {took:?}: {closed:?}");
    assert!(took <= timeout + SLACK, "close took {took:?}");
    match &closed {
        Err(Error::CloseTimedOut {
            unsent: 0,
            unknown: 2,
            ..
        }) => {}
        other => panic!("expected CloseTimedOut with 2 in flight, got {other:?}"),
    }
    for delivery in [first, large] {
        let error = tokio::time::timeout(Duration::from_millis(200), delivery)
            .await
            .expect("settled when close returns")
            .unwrap_err();
        assert!(error.outcome_unknown(), "{error}");
    }
    // The broker reads again: whatever the client wrote before `close` returned arrives, but
    // no whole request more.
    gate.notify_one();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let late: Vec<_> = cluster.broker.requests()[requests_at_close..]
        .iter()
        .map(|h| h.request_api_key)
        .collect();
    assert!(late.is_empty(), "requests after close returned: {late:?}");
    assert_eq!(cluster.produced().len(), 1, "only the held request arrived");
}

/// `close` closes only the closing producer's connections: another producer of the same
/// process, talking to the same broker, keeps delivering.
#[tokio::test]
async fn closing_one_producer_leaves_another_producers_connections_alone() {
    let cluster = Cluster::start(|_, _| None).await;
    let closing = cluster.producer().await;
    let staying = cluster.producer().await;
    for producer in [&closing, &staying] {
        let delivery = producer.send(ProducerRecord::new(TOPIC, "before")).await;
        within(delivery.unwrap()).await.expect("delivered");
    }
    let connections = cluster.broker.connections();
    within(closing.close(Duration::from_secs(5)))
        .await
        .expect("close");
    for i in 0..3 {
        let delivery = staying
            .send(ProducerRecord::new(TOPIC, format!("after {i}")))
            .await;
        within(delivery.unwrap())
            .await
            .expect("delivered after the other closed");
    }
    assert_eq!(
        cluster.broker.connections(),
        connections,
        "the staying producer needed no new connection"
    );
    assert_eq!(cluster.produced().len(), 5);
    within(staying.close(Duration::from_secs(5)))
        .await
        .expect("close");
}

#[tokio::test]
async fn send_with_buffer_memory_full_for_max_block_says_so_and_queues_nothing() {
    let cluster = Cluster::start(while_faulty(|| Action::NoReply)).await;
    // Room for exactly four one-record batches; none is ever answered, so none is freed.
    let config = small_buffer_config(&cluster, Duration::from_secs(1), Duration::from_secs(30));
    let producer = within(Producer::connect(config)).await.expect("connect");
    let value = vec![b'v'; 900];
    let mut queued = Vec::new();
    for _ in 0..4 {
        let record = ProducerRecord::new(TOPIC, value.clone());
        queued.push(within(producer.send(record)).await.expect("room left"));
    }
    let started = Instant::now();
    let error = within(producer.send(ProducerRecord::new(TOPIC, value.clone())))
        .await
        .expect_err("buffer.memory is full");
    let took = started.elapsed();
    eprintln!("send failed after {took:?}: {error}");
    assert!(
        took >= Duration::from_millis(900) && took <= Duration::from_secs(1) + SLACK,
        "send waited {took:?} for max.block.ms (1s)"
    );
    assert!(
        matches!(
            error,
            Error::BufferExhausted {
                in_use: 4096,
                buffer_memory: 4096,
                ..
            }
        ),
        "{error:?}"
    );
    let text = error.to_string();
    assert!(text.contains("buffer.memory full"), "{text}");
    assert!(text.contains("max.block.ms (1s)"), "{text}");
    assert!(text.contains("4096 of 4096 bytes"), "{text}");
    assert!(!text.contains("timed out"), "{text}");
    assert!(!error.outcome_unknown(), "{error}");
    assert_eq!(error.class(), ErrorClass::Retriable);
    // The refused record was not queued: close fails only the four that were.
    let closed = within(producer.close(Duration::ZERO)).await;
    match closed {
        Err(Error::CloseTimedOut {
            unsent, unknown, ..
        }) => assert_eq!(unsent + unknown, 4, "{closed:?}"),
        other => panic!("expected CloseTimedOut, got {other:?}"),
    }
}

#[tokio::test]
async fn close_with_time_enough_delivers_everything_first() {
    let cluster = Cluster::start(|_, _| None).await;
    let producer = cluster.producer().await;
    let mut futures = Vec::new();
    for i in 0..20 {
        let record = ProducerRecord::new(TOPIC, format!("r{i}"));
        futures.push(producer.send(record).await.unwrap());
    }
    within(producer.close(Duration::from_secs(10)))
        .await
        .expect("everything delivered");
    let mut offsets = Vec::new();
    for f in futures {
        offsets.push(f.await.expect("delivered").offset.unwrap());
    }
    assert_eq!(offsets, (0..20).collect::<Vec<i64>>());
}

/// While `max.in.flight` requests to a leader are out, appends do not wake the sender (it could
/// not send to that leader), so the end of a request must: records queued behind a held Produce
/// go out, in one batch and in order, as soon as it is answered, not when they expire.
#[tokio::test]
async fn records_queued_while_max_in_flight_requests_are_out_go_when_one_ends() {
    let held = Arc::new(tokio::sync::Notify::new());
    let hold = held.clone();
    let cluster = Cluster::start(move |req, model| match req {
        // The first Produce (one record) is held until the test lets it go.
        Req::Produce(_) if model.faulty => {
            model.faulty = false;
            model.offset += 1;
            Some(Action::WaitFor(
                hold.clone(),
                Box::new(produce_answer(0, 9)),
            ))
        }
        _ => None,
    })
    .await;
    let (producer, first) =
        producer_with_one_request_out(&cluster, Duration::from_secs(30), "r0").await;
    // A new batch (no wake-up: the one request allowed is out), then a record joining it.
    let mut queued = Vec::new();
    for i in 1..3 {
        let record = ProducerRecord::new(TOPIC, format!("r{i}"));
        queued.push(producer.send(record).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(cluster.produced().len(), 1, "sent past max.in.flight");
    held.notify_one();
    let mut offsets = vec![within(first).await.expect("r0 delivered").offset];
    for delivery in queued {
        // Far less than the 60 s delivery timeout at which they would otherwise give up.
        let written = tokio::time::timeout(Duration::from_secs(10), delivery)
            .await
            .expect("queued records sent once the request before them ended")
            .expect("delivered");
        offsets.push(written.offset);
    }
    assert_eq!(offsets, vec![Some(0), Some(1), Some(2)]);
    assert_eq!(
        cluster.produced(),
        vec![(PRODUCER_ID, 0, 0, 1), (PRODUCER_ID, 0, 1, 2)]
    );
    within(producer.close(Duration::from_secs(10)))
        .await
        .expect("close");
}

/// A batch waiting in the accumulator for a leader expires in the sender at
/// `delivery.timeout.ms`; `flush` then returns, with the record failed, instead of waiting for a
/// request to end (none will). The partition loses its leader after the first Produce: the
/// broker answers NOT_LEADER_OR_FOLLOWER, and metadata then shows none.
#[tokio::test]
async fn flush_returns_once_a_batch_waiting_for_a_leader_expires() {
    let cluster = Cluster::start(|req, model| match req {
        Req::Produce(_) if model.faulty => {
            model.faulty = false;
            model.leader = -1;
            Some(produce_refusal(NOT_LEADER_OR_FOLLOWER))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    let record = producer
        .send(ProducerRecord::new(TOPIC, "nowhere"))
        .await
        .expect("queued");
    let started = Instant::now();
    within(producer.flush()).await.expect("flush");
    let took = started.elapsed();
    assert!(took <= DELIVERY_TIMEOUT + SLACK, "flush took {took:?}");
    let error = within(record).await.unwrap_err();
    assert!(
        !error.outcome_unknown(),
        "refused, then never sent again: {error}"
    );
    let text = error.to_string();
    assert!(text.contains("delivery.timeout.ms (3s) passed"), "{text}");
    assert!(
        text.contains("NotLeaderOrFollower"),
        "says what was last tried: {text}"
    );
    assert_eq!(cluster.produced().len(), 1, "sent once, then held");
    within(producer.close(Duration::from_secs(1))).await.ok();
}

/// A send refused for `buffer.memory` wakes the sender, which sends the lingering batch ahead of
/// it at once (here closed by the refusal, so sendable either way), and the send waiting for
/// memory goes through long before `linger.ms` (30 s here) would have let that batch go.
#[tokio::test]
async fn a_send_out_of_memory_sends_lingering_batches_at_once_and_goes_through() {
    let cluster = Cluster::start(|_, _| None).await;
    // One small batch plus a record of its own: the second record cannot get its batch's
    // memory until the first batch is sent.
    let mut config =
        small_buffer_config(&cluster, Duration::from_secs(10), Duration::from_secs(60));
    config.linger = Duration::from_secs(30);
    let producer = within(Producer::connect(config)).await.expect("connect");
    let first = producer
        .send(ProducerRecord::new(TOPIC, vec![1u8; 100]))
        .await
        .expect("first record queued");
    // Let the sender see the first batch and settle down to wait out its linger.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(cluster.produced().is_empty(), "sent before its linger");
    let started = Instant::now();
    let second = within(producer.send(ProducerRecord::new(TOPIC, vec![2u8; 3500])))
        .await
        .expect("second record queued once memory was freed");
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(10), "waited {waited:?}");
    let first = within(first).await.expect("first delivered");
    let second = within(second).await.expect("second delivered");
    assert_eq!((first.offset, second.offset), (Some(0), Some(1)));
    assert_eq!(
        cluster.produced(),
        vec![(PRODUCER_ID, 0, 0, 1), (PRODUCER_ID, 0, 1, 1)]
    );
    within(producer.close(Duration::from_secs(10)))
        .await
        .expect("close");
}

/// `Producer::connect` against a broker that never answers `api` fails within `max.block.ms`
/// (2 s), although one unanswered request alone would take longer (8 s).
async fn connect_fails_within_max_block_when_unanswered(api: ApiKey, silent: fn(&Req) -> bool) {
    let cluster = Cluster::start(move |req, _| silent(req).then_some(Action::NoReply)).await;
    let mut config = cluster.config();
    config.max_block = Duration::from_secs(2);
    config.client = config.client.request_timeout(Duration::from_secs(8));
    config.delivery_timeout = Duration::from_secs(10);
    let started = Instant::now();
    let error = within(Producer::connect(config)).await.unwrap_err();
    let took = started.elapsed();
    eprintln!("connect failed after {took:?}: {error}");
    assert!(
        took <= Duration::from_secs(2) + SLACK,
        "connect took {took:?}"
    );
    assert!(
        matches!(error, Error::Timeout { api: Some(a), .. } if a.code() == api as i16),
        "{error:?}"
    );
    assert!(error.to_string().contains("after 2s"), "{error}");
    assert!(
        !error.outcome_unknown(),
        "connecting changes nothing: {error}"
    );
}

#[tokio::test]
async fn connect_to_a_broker_that_never_answers_metadata_fails_within_max_block() {
    connect_fails_within_max_block_when_unanswered(ApiKey::Metadata, |r| *r == Req::Metadata).await;
}

#[tokio::test]
async fn connect_to_a_broker_that_never_grants_a_producer_id_fails_within_max_block() {
    connect_fails_within_max_block_when_unanswered(ApiKey::InitProducerId, |r| {
        *r == Req::InitProducerId
    })
    .await;
}

#[tokio::test]
async fn an_unreachable_leader_fails_the_record_as_not_written_saying_what_was_tried() {
    let cluster = Cluster::start(|_, _| None).await;
    cluster.script.model.lock().unwrap().leader = 2;
    let producer = cluster.producer().await;
    let sent = Instant::now();
    let record = producer
        .send(ProducerRecord::new(TOPIC, "x"))
        .await
        .expect("queued");
    let error = within(record).await.unwrap_err();
    let took = sent.elapsed();
    assert!(
        took <= DELIVERY_TIMEOUT + REQUEST_TIMEOUT + SLACK,
        "took {took:?}"
    );
    assert!(!error.outcome_unknown(), "nothing was sent: {error}");
    let text = error.to_string();
    assert!(text.contains("(not written)"), "{text}");
    assert!(
        text.contains("last attempt: cannot connect to broker 2 (127.0.0.1:1)"),
        "says what was tried: {text}"
    );
    assert!(cluster.produced().is_empty());
    within(producer.close(Duration::from_secs(1))).await.ok();
}

#[tokio::test]
async fn invalid_topic_names_fail_the_call_at_once_and_the_producer_stays_usable() {
    let cluster = Cluster::start(|_, _| None).await;
    let producer = cluster.producer().await;
    let metadata_before = cluster
        .log()
        .iter()
        .filter(|(_, r)| *r == Req::Metadata)
        .count();
    let long = "x".repeat(250);
    for name in ["", ".", "..", "a b", "a/b", long.as_str()] {
        let started = Instant::now();
        let error = producer
            .send(ProducerRecord::new(name, "x"))
            .await
            .expect_err("refused");
        assert!(
            started.elapsed() < Duration::from_secs(1),
            "{name}: not at once"
        );
        assert!(
            matches!(error, Error::InvalidArgument(_)),
            "{name}: {error:?}"
        );
        assert_eq!(error.class(), ErrorClass::Rejected, "{name}");
    }
    let metadata_after = cluster
        .log()
        .iter()
        .filter(|(_, r)| *r == Req::Metadata)
        .count();
    assert_eq!(
        metadata_before, metadata_after,
        "nothing asked of the broker"
    );
    // A name valid here that the broker refuses fails at once too, not after max.block.ms (10 s).
    let started = Instant::now();
    let error = within(producer.send(ProducerRecord::new(REFUSED_TOPIC, "x")))
        .await
        .expect_err("refused by the broker");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "retried: {:?}",
        started.elapsed()
    );
    assert_eq!(
        error.kafka_code(),
        Some(josefk::ErrorCode::InvalidTopicException),
        "{error}"
    );
    assert_eq!(error.class(), ErrorClass::Rejected);
    // The producer is fine.
    let ok = producer
        .send(ProducerRecord::new(TOPIC, "ok"))
        .await
        .unwrap();
    assert_eq!(within(ok).await.unwrap().offset, Some(0));
    within(producer.close(Duration::from_secs(5)))
        .await
        .expect("close");
}

#[tokio::test]
async fn admin_and_consumer_refuse_invalid_topic_names_before_asking_the_broker() {
    use josefk::admin::{Admin, NewTopic, OffsetSpec};
    use josefk::consumer::{Consumer, ConsumerConfig};
    use josefk::{IsolationLevel, TopicPartition};
    let cluster = Cluster::start(|_, _| None).await;
    let client = cluster.config().client;
    let admin = within(Admin::connect(client.clone())).await.expect("admin");
    let mut consumer = within(Consumer::connect(
        ConsumerConfig::with_client(client).group_id("g"),
    ))
    .await
    .expect("consumer");
    let asked_before = cluster.broker.requests().len();
    let rejected = |what: &str, result: josefk::Result<()>| {
        let e = result.expect_err(what);
        assert!(matches!(e, Error::InvalidArgument(_)), "{what}: {e:?}");
        assert_eq!(e.class(), ErrorClass::Rejected, "{what}");
    };
    rejected(
        "create",
        within(admin.create_topics(&[NewTopic::new("a b", 1, 1)])).await,
    );
    rejected("delete", within(admin.delete_topics(&[".."])).await);
    rejected(
        "describe",
        within(admin.describe_topics(&[""])).await.map(|_| ()),
    );
    let bad = TopicPartition::new("a/b", 0);
    rejected(
        "list offsets",
        within(admin.list_offsets(
            &[(bad.clone(), OffsetSpec::Latest)],
            IsolationLevel::ReadUncommitted,
        ))
        .await
        .map(|_| ()),
    );
    rejected("subscribe", consumer.subscribe(&["ok", "no way"]));
    rejected("assign", within(consumer.assign(&[bad])).await);
    assert_eq!(
        cluster.broker.requests().len(),
        asked_before,
        "nothing was asked of the broker"
    );
}

#[tokio::test]
async fn a_refusal_after_an_unanswered_send_still_reports_outcome_unknown() {
    // The first send gets no answer (it may be in the log); its retry is refused for a reason
    // of the broker's own. The refusal says nothing about the first send.
    let cluster = Cluster::start(|req, model| match req {
        Req::Produce(_) if model.faulty && model.offset == 0 => {
            model.offset = -1;
            Some(Action::NoReply)
        }
        Req::Produce(_) if model.faulty => Some(produce_refusal(TOPIC_AUTHORIZATION_FAILED)),
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    let record = producer
        .send(ProducerRecord::new(TOPIC, "x"))
        .await
        .unwrap();
    let error = within(record).await.unwrap_err();
    assert!(error.outcome_unknown(), "{error}");
    let text = error.to_string();
    assert!(text.contains("then a retry was refused"), "{text}");
    assert!(text.contains("TopicAuthorizationFailed"), "{text}");
    // The sequence it used is not reused: the next record starts a new epoch at 0.
    {
        let mut model = cluster.script.model.lock().unwrap();
        model.faulty = false;
        model.offset = 0;
    }
    let next = producer
        .send(ProducerRecord::new(TOPIC, "next"))
        .await
        .unwrap();
    within(next).await.expect("delivered");
    let produced = cluster.produced();
    assert_eq!(produced.first(), Some(&(PRODUCER_ID, 0, 0, 1)));
    assert_eq!(
        produced.last(),
        Some(&(PRODUCER_ID, 1, 0, 1)),
        "{produced:?}"
    );
    within(producer.close(Duration::from_secs(5)))
        .await
        .expect("close");
}

/// Kafka error TOPIC_AUTHORIZATION_FAILED.
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;

#[tokio::test]
async fn credentials_refused_on_a_redial_fail_the_record_at_once_and_the_producer_stays_usable() {
    // Credentials revoked after the producer connected: its produce connection's SASL exchange is
    // refused. Redialling cannot help, so the record fails at once with the broker's refusal
    // (not after delivery.timeout.ms of redials), and the producer is not broken by it.
    let cluster = Cluster::start(|_, _| None).await;
    let mut config = cluster.config();
    config.delivery_timeout = Duration::from_secs(30);
    config.client = config
        .client
        .security_protocol(josefk::security::SecurityProtocol::SaslPlaintext)
        .sasl_plain("alice", "alice-secret");
    let producer = within(Producer::connect(config)).await.expect("connect");
    let authentications = |c: &Cluster| {
        c.log()
            .iter()
            .filter(|(_, r)| *r == Req::SaslAuthenticate)
            .count()
    };
    let before = authentications(&cluster);
    cluster.revoke_credentials(true);

    for attempt in 0..2 {
        let sent = Instant::now();
        let record = producer
            .send(ProducerRecord::new(TOPIC, "x"))
            .await
            .expect("queued");
        let error = within(record).await.unwrap_err();
        let took = sent.elapsed();
        assert!(
            took < Duration::from_secs(10),
            "attempt {attempt} took {took:?}"
        );
        assert!(
            matches!(error, Error::Authentication { .. }),
            "attempt {attempt}: {error:?}"
        );
        assert_eq!(error.class(), ErrorClass::Fatal);
        assert!(error.to_string().contains("credentials revoked"), "{error}");
    }
    let refused = authentications(&cluster) - before;
    assert!(
        (2..=4).contains(&refused),
        "{refused} refused authentications for two records"
    );
    assert!(cluster.produced().is_empty(), "nothing was written");

    // Credentials back: the next record is written (a new dial, a working producer).
    cluster.revoke_credentials(false);
    let record = producer
        .send(ProducerRecord::new(TOPIC, "y"))
        .await
        .expect("queued");
    let written = within(record).await.expect("written once credentials work");
    assert_eq!(written.offset, Some(0));
    assert_eq!(cluster.produced().len(), 1);
    within(producer.close(Duration::from_secs(1))).await.ok();
}

/// `send` to a topic whose metadata never comes times out at `max.block.ms`: nothing was queued,
/// so the timeout says the outcome is known (not written), and the producer goes on.
#[tokio::test]
async fn a_send_that_times_out_waiting_for_metadata_is_not_outcome_unknown() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let silent = Arc::new(AtomicBool::new(false));
    let mute = silent.clone();
    let cluster = Cluster::start(move |req, _| {
        (*req == Req::Metadata && mute.load(Ordering::SeqCst)).then_some(Action::NoReply)
    })
    .await;
    let mut config = cluster.config();
    config.max_block = Duration::from_secs(1);
    let producer = within(Producer::connect(config)).await.expect("connect");
    silent.store(true, Ordering::SeqCst);
    let error = within(producer.send(ProducerRecord::new("not-there", "x")))
        .await
        .expect_err("no metadata for the topic");
    assert!(
        matches!(
            error,
            Error::Timeout {
                api: Some(josefk::ApiKey::Metadata),
                ..
            }
        ),
        "{error:?}"
    );
    assert!(!error.outcome_unknown(), "nothing was queued: {error}");
    assert_eq!(error.class(), ErrorClass::Retriable);
    silent.store(false, Ordering::SeqCst);
    let record = producer.send(ProducerRecord::new(TOPIC, "after")).await;
    within(record.expect("queued")).await.expect("delivered");
}

/// A record over `max.request.size` fails that call as a bad argument (never a made-up broker
/// error, never fatal), and the producer goes on.
#[tokio::test]
async fn a_record_over_max_request_size_is_rejected_and_the_producer_goes_on() {
    let cluster = Cluster::start(|_, _| None).await;
    let mut config = cluster.config();
    config.max_request_size = 4096;
    let producer = within(Producer::connect(config)).await.expect("connect");
    let error = producer
        .send(ProducerRecord::new(TOPIC, vec![0u8; 8192]))
        .await
        .expect_err("too large");
    assert!(matches!(error, Error::InvalidArgument(_)), "{error:?}");
    assert_eq!(error.class(), ErrorClass::Rejected);
    assert!(error.to_string().contains("max.request.size"), "{error}");
    assert!(!error.outcome_unknown());
    let record = producer.send(ProducerRecord::new(TOPIC, "small")).await;
    within(record.expect("queued")).await.expect("delivered");
}
