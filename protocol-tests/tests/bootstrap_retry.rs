//! Bootstrapping as Java's clients wait for their first metadata: while no broker answers,
//! `Producer::connect`, `Consumer::connect` and `Admin::connect` ask again after the backoff
//! until their bound (`max.block.ms`, `default.api.timeout.ms`), so a service that starts a
//! moment before Kafka connects; past the bound they fail with the last cause, retriable. A
//! `bootstrap.servers` of which no address resolves is a configuration error at once.
//!
//! The broker is josefk's mock cluster with its connections cut on Metadata a counted number of
//! times: the tests count requests, not time.

use std::time::Duration;

use josefk::admin::Admin;
use josefk::consumer::{Consumer, ConsumerConfig};
use josefk::producer::{Producer, ProducerConfig};
use josefk::testing::{Api, Fault, MockCluster};
use josefk::{ClientConfig, Error, ErrorClass};

/// A guard against hangs only.
const HANG_GUARD: Duration = Duration::from_secs(60);

fn client(cluster: &MockCluster) -> ClientConfig {
    ClientConfig::new(&cluster.bootstrap_servers())
        .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_client_connects_after_the_first_metadata_requests_fail() {
    let cluster = MockCluster::start(1).await.unwrap();
    let cut = 3;
    cluster.inject(Fault::drop_connection(Api::Metadata).times(cut));
    let admin = tokio::time::timeout(HANG_GUARD, Admin::connect(client(&cluster)))
        .await
        .expect("hang guard")
        .expect("connects once the broker answers");
    assert_eq!(cluster.pending_faults(), 0, "every cut was met");
    assert!(cluster.requests(Api::Metadata) > u64::from(cut));
    drop(admin);

    cluster.inject(Fault::drop_connection(Api::Metadata).times(cut));
    let producer = ProducerConfig::with_client(client(&cluster)).idempotence(false);
    let producer = tokio::time::timeout(HANG_GUARD, Producer::connect(producer))
        .await
        .expect("hang guard")
        .expect("the producer connects too");
    assert_eq!(cluster.pending_faults(), 0);
    drop(producer);

    cluster.inject(Fault::drop_connection(Api::Metadata).times(cut));
    let consumer = ConsumerConfig::with_client(client(&cluster));
    let consumer = tokio::time::timeout(HANG_GUARD, Consumer::connect(consumer))
        .await
        .expect("hang guard")
        .expect("the consumer connects too");
    assert_eq!(cluster.pending_faults(), 0);
    drop(consumer);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_bound_the_connect_fails_with_the_last_cause_after_asking_again() {
    let cluster = MockCluster::start(1).await.unwrap();
    cluster.inject(Fault::drop_connection(Api::Metadata).times(1_000_000));
    let config = client(&cluster).default_api_timeout(Duration::from_secs(2));
    let e = tokio::time::timeout(HANG_GUARD, Admin::connect(config))
        .await
        .expect("hang guard")
        .map(drop)
        .expect_err("no Metadata is ever answered");
    assert_eq!(e.class(), ErrorClass::Retriable, "{e}");
    // A hang-up on Metadata after ApiVersions is what a SASL listener does to a client that does
    // not authenticate: the error says what to check.
    assert!(e.to_string().contains("security.protocol"), "{e}");
    assert!(
        cluster.requests(Api::Metadata) >= 5,
        "asked {} time(s) before giving up: {e}",
        cluster.requests(Api::Metadata)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bootstrap_address_that_does_not_resolve_is_a_configuration_error() {
    // `.invalid` never resolves (RFC 2606).
    let config = ClientConfig::new("no-such-broker.invalid:9092");
    let e = tokio::time::timeout(HANG_GUARD, Admin::connect(config))
        .await
        .expect("hang guard")
        .map(drop)
        .expect_err("nothing to connect to");
    assert!(matches!(e, Error::Config(_)), "{e:?}");
    assert!(e.to_string().contains("no-such-broker.invalid:9092"), "{e}");
}
