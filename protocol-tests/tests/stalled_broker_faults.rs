//! A broker that stops reading the socket (its process hung or stopped, while its kernel keeps the
//! TCP connection open): the socket buffers fill and a write then neither completes nor fails.
//! Every request must still settle within its timeout, acks=0 ones too (they expect no answer,
//! so only the write can time them out), and the connection must close so a fresh one is dialled.

mod producer_support;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use tokio::sync::Notify;

use josefk::net::{Connection, PendingResponse};
use josefk::producer::Acks;
use josefk::protocol::encode_request;
use josefk::{Error, ProducerRecord};
use protocol_tests::{test_options, Action, ScriptedBroker};

use producer_support::{within, Cluster, Req, TOPIC};

/// Far more than loopback buffers hold while the broker does not read: a send buffer of at most
/// 4 MiB plus a receive window that grows only as the broker reads.
const FRAMES: usize = 16;
const FRAME_RECORDS: usize = 4 << 20;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// A broker that reads its first Produce request, then never reads that connection again.
async fn broker_that_stops_reading_after_a_produce() -> ScriptedBroker {
    // Never notified: the broker's connection task waits on it without reading.
    let never = Arc::new(Notify::new());
    ScriptedBroker::start(move |header, _| {
        if header.request_api_key == ApiKey::Produce as i16 {
            Action::WaitFor(never.clone(), Box::new(Action::NoReply))
        } else {
            Action::Default
        }
    })
    .await
}

/// Queues a Produce whose records are `records` bytes (not a valid batch: the broker does not
/// look), answered or not.
async fn submit_produce(
    conn: &Connection,
    records: usize,
    expects_response: bool,
) -> josefk::Result<PendingResponse> {
    // Topic names are gone from Produce v13.
    let version = conn.version_for::<ProduceRequest>()?.min(12);
    let request = ProduceRequest::default()
        .with_acks(if expects_response { 1 } else { 0 })
        .with_timeout_ms(1000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(0)
                .with_records(Some(Bytes::from(vec![0u8; records])))])]);
    let mut encoded = encode_request(&request, version, "protocol-tests")?;
    encoded.expects_response = expects_response;
    conn.submit(encoded, None).await
}

#[tokio::test]
async fn acks0_frame_the_broker_never_reads_times_out_and_closes_the_connection() {
    let broker = broker_that_stops_reading_after_a_produce().await;
    let mut options = test_options();
    options.request_timeout = REQUEST_TIMEOUT;
    let conn = broker.connect(options).await.unwrap();
    let mut pending = vec![submit_produce(&conn, 1024, false).await.unwrap()];
    for _ in 0..FRAMES {
        pending.push(submit_produce(&conn, FRAME_RECORDS, false).await.unwrap());
    }
    let mut outcomes = Vec::new();
    for response in pending {
        outcomes.push(within(response).await);
    }
    let summary: Vec<String> = outcomes
        .iter()
        .map(|o| match o {
            Ok(_) => "written".to_owned(),
            Err(e) => format!("{e:?}"),
        })
        .collect();
    eprintln!("{summary:#?}");
    // Written in order: the frames the buffers took, then the one being written times out as
    // outcome unknown (part of it may be in the broker's buffer; not sent, if the buffers filled
    // exactly at its start), then the ones behind it fail as never sent.
    let written = outcomes.iter().take_while(|o| o.is_ok()).count();
    assert!(written >= 1, "the first frame reached the broker");
    match &outcomes[written] {
        Err(Error::Timeout {
            api: Some(josefk::ApiKey::Produce),
            after,
            ..
        }) => assert_eq!(*after, REQUEST_TIMEOUT),
        other => panic!("the frame being written: expected a Produce timeout, got {other:?}"),
    }
    let behind = &outcomes[written + 1..];
    assert!(
        !behind.is_empty(),
        "the buffers took every frame: {summary:?}"
    );
    for outcome in behind {
        assert!(
            matches!(
                outcome,
                Err(Error::ConnectionLost {
                    api: Some(josefk::ApiKey::Produce),
                    outcome_unknown: false,
                    ..
                })
            ),
            "a frame behind the stuck one: {outcome:?}"
        );
    }
    assert!(
        conn.is_closed(),
        "a connection whose writes stall is broken"
    );
}

/// A request that expects an answer is timed from when the connection takes it, so a stall while
/// it is still being written ends it too.
#[tokio::test]
async fn answered_frame_the_broker_never_reads_times_out_while_being_written() {
    let broker = broker_that_stops_reading_after_a_produce().await;
    let mut options = test_options();
    options.request_timeout = REQUEST_TIMEOUT;
    let conn = broker.connect(options).await.unwrap();
    let first = submit_produce(&conn, 1024, false).await.unwrap();
    let large = submit_produce(&conn, FRAMES * FRAME_RECORDS, true)
        .await
        .unwrap();
    within(first).await.expect("the first frame is written");
    match within(large).await {
        Err(Error::Timeout {
            api: Some(josefk::ApiKey::Produce),
            outcome_unknown: true,
            ..
        }) => {}
        other => panic!("expected a Produce timeout, got {other:?}"),
    }
    assert!(conn.is_closed());
}

/// An acks=0 producer whose broker stops reading its produce connection: every delivery settles
/// (as written, or with an error) and `flush` returns, instead of both hanging until the broker
/// reads again; the producer dials a new produce connection for the retries.
#[tokio::test]
async fn acks0_producer_settles_every_delivery_when_the_broker_stops_reading() {
    let never = Arc::new(Notify::new());
    let cluster = Cluster::start(move |req, _| {
        matches!(req, Req::Produce(_))
            .then(|| Action::WaitFor(never.clone(), Box::new(Action::NoReply)))
    })
    .await;
    let mut config = cluster.config();
    config.acks = Acks::None;
    config.enable_idempotence = false;
    config.client = config.client.request_timeout(REQUEST_TIMEOUT);
    config.delivery_timeout = Duration::from_secs(4);
    config.batch_size = 1 << 20;
    config.max_request_size = 2 << 20;
    config.buffer_memory = 256 << 20;
    let producer = within(josefk::producer::Producer::connect(config))
        .await
        .expect("connect");
    // 64 MiB in 1 MiB requests: far more than the buffers of the two or three connections
    // tried within the 4 s take.
    const RECORDS: usize = 512;
    let value = Bytes::from(vec![b'x'; 128 << 10]);
    let mut deliveries = Vec::with_capacity(RECORDS);
    for _ in 0..RECORDS {
        let mut record = ProducerRecord::new(TOPIC, "");
        record.value = Some(value.clone());
        deliveries.push(within(producer.send(record)).await.expect("queued"));
    }
    within(producer.flush()).await.expect("flush");
    let (mut written, mut failed) = (0, 0);
    for delivery in deliveries {
        match within(delivery).await {
            // acks=0: written, with no offset to tell.
            Ok(metadata) => {
                assert_eq!(metadata.offset, None);
                written += 1;
            }
            Err(error) => {
                assert!(
                    matches!(&error, Error::Undelivered { topic, partition: 0, .. } if topic == TOPIC),
                    "{error:?}"
                );
                failed += 1;
            }
        }
    }
    eprintln!("{written} written, {failed} failed");
    assert_eq!(written + failed, RECORDS);
    assert!(
        failed > 0,
        "the broker read nothing after the first Produce"
    );
    let produces = cluster
        .log()
        .iter()
        .filter(|(_, r)| matches!(r, Req::Produce(_)))
        .count();
    // The broker reads one Produce per connection: a second means the stalled one was replaced.
    assert!(produces >= 2, "no new produce connection: {produces}");
    within(producer.close(Duration::from_secs(5)))
        .await
        .expect("close");
}
