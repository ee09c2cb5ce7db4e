//! The scripted cluster the producer fault tests run against: a minimal model of one broker
//! (ApiVersions, Metadata, InitProducerId, Produce, SASL), a per-test fault hook, and the log of
//! every request with what it carried.

#![allow(dead_code)] // each test binary uses part of it

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, BrokerId, InitProducerIdResponse, MetadataRequest,
    MetadataResponse, ProduceRequest, ProduceResponse, ProducerId, RequestHeader,
    SaslAuthenticateResponse, SaslHandshakeResponse, TopicName,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use josefk::producer::{DeliveryFuture, Producer, ProducerConfig};
use josefk::ClientConfig;
pub use protocol_tests::batches;
use protocol_tests::{default_versions, Action, ScriptedBroker};

/// The topic every test produces to: one partition, led by [`Model::leader`].
pub const TOPIC: &str = "t";
/// A name valid locally that the model's broker refuses with INVALID_TOPIC_EXCEPTION.
pub const REFUSED_TOPIC: &str = "refused";
/// A topic the model lists without an error and with no partitions.
pub const EMPTY_TOPIC: &str = "empty";
/// The producer id InitProducerId hands out.
pub const PRODUCER_ID: i64 = 4000;
/// Kafka error INVALID_TOPIC_EXCEPTION.
pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
/// Kafka error SASL_AUTHENTICATION_FAILED.
pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
/// The producer's `request.timeout.ms` and `delivery.timeout.ms` in the delivery tests.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(3);
/// Slack on every upper bound: two cores shared with other builds and brokers.
pub const SLACK: Duration = Duration::from_secs(3);
/// A guard against hangs only.
pub const HANG_GUARD: Duration = Duration::from_secs(60);

/// One request as the broker saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Req {
    /// One batch per partition: (producer id, epoch, base sequence, record count).
    Produce(Vec<(i64, i16, i32, i32)>),
    Metadata,
    InitProducerId,
    ApiVersions,
    SaslHandshake,
    SaslAuthenticate,
}

/// The model's state, which hooks may read and change.
#[derive(Debug)]
pub struct Model {
    /// The partition's leader: 1 is the scripted broker; 2 is an address that refuses.
    pub leader: i32,
    /// Next offset of the partition.
    pub offset: i64,
    /// A switch for hooks whose fault a test turns off midway.
    pub faulty: bool,
    /// SaslAuthenticate refuses every client while set.
    pub credentials_revoked: bool,
    /// Metadata answers wait this long first (answers behind them on the connection too).
    pub metadata_delay: Option<Duration>,
}

pub type Fault = dyn Fn(&Req, &mut Model) -> Option<Action> + Send + Sync;

pub struct Script {
    pub port: Mutex<i32>,
    pub model: Mutex<Model>,
    pub log: Mutex<Vec<(Instant, Req)>>,
    pub fault: Box<Fault>,
}

/// The scripted broker and its model.
pub struct Cluster {
    pub broker: ScriptedBroker,
    pub script: Arc<Script>,
}

impl Cluster {
    pub async fn start(
        fault: impl Fn(&Req, &mut Model) -> Option<Action> + Send + Sync + 'static,
    ) -> Cluster {
        let script = Arc::new(Script {
            port: Mutex::new(0),
            model: Mutex::new(Model {
                leader: 1,
                offset: 0,
                faulty: true,
                credentials_revoked: false,
                metadata_delay: None,
            }),
            log: Mutex::new(Vec::new()),
            fault: Box::new(fault),
        });
        let answering = script.clone();
        let broker =
            ScriptedBroker::start(move |header, body| answering.answer(header, body)).await;
        *script.port.lock().unwrap() = broker.addr().rsplit(':').next().unwrap().parse().unwrap();
        Cluster { broker, script }
    }

    /// An idempotent producer's settings: short timeouts, no linger, quick retries.
    pub fn config(&self) -> ProducerConfig {
        let client = ClientConfig::new(&self.broker.addr())
            .client_id("producer-faults")
            .request_timeout(REQUEST_TIMEOUT)
            .retry_backoff(Duration::from_millis(50), Duration::from_millis(200))
            .reconnect_backoff(Duration::from_millis(50), Duration::from_millis(200));
        let mut config = ProducerConfig::with_client(client);
        config.linger = Duration::ZERO;
        config.delivery_timeout = DELIVERY_TIMEOUT;
        config.max_block = Duration::from_secs(10);
        config
    }

    pub async fn producer(&self) -> Producer {
        within(Producer::connect(self.config()))
            .await
            .expect("connect")
    }

    pub fn log(&self) -> Vec<(Instant, Req)> {
        self.script.log.lock().unwrap().clone()
    }

    /// Every produced batch: (producer id, epoch, base sequence, records), in arrival order.
    pub fn produced(&self) -> Vec<(i64, i16, i32, i32)> {
        self.log()
            .into_iter()
            .filter_map(|(_, r)| match r {
                Req::Produce(batches) => Some(batches),
                _ => None,
            })
            .flatten()
            .collect()
    }

    pub fn set_faulty(&self, faulty: bool) {
        self.script.model.lock().unwrap().faulty = faulty;
    }

    pub fn revoke_credentials(&self, revoked: bool) {
        self.script.model.lock().unwrap().credentials_revoked = revoked;
    }
}

/// Settings whose `buffer.memory` (4 KiB) holds four one-record batches of 1 KiB (or one small
/// batch and a 3.5 KB record), with the given `max.block.ms` and `delivery.timeout.ms`, and a
/// request timeout (30 s) no loaded machine reaches.
pub fn small_buffer_config(
    cluster: &Cluster,
    max_block: Duration,
    delivery_timeout: Duration,
) -> ProducerConfig {
    let mut config = cluster.config();
    config.batch_size = 1024;
    config.max_request_size = 4096;
    config.buffer_memory = 4096;
    config.max_block = max_block;
    config.delivery_timeout = delivery_timeout;
    config.client = config.client.request_timeout(Duration::from_secs(30));
    config
}

/// A producer allowed one request in flight (delivery timeout 60 s, `request_timeout`) whose
/// first record, `first`, the broker has received: a test whose hook holds that Produce then
/// has the only slot taken.
pub async fn producer_with_one_request_out(
    cluster: &Cluster,
    request_timeout: Duration,
    first: &'static str,
) -> (Producer, DeliveryFuture) {
    let mut config = cluster.config();
    config.max_in_flight = 1;
    config.delivery_timeout = Duration::from_secs(60);
    config.client = config.client.request_timeout(request_timeout);
    let producer = within(Producer::connect(config)).await.expect("connect");
    let delivery = producer
        .send(josefk::ProducerRecord::new(TOPIC, first))
        .await
        .expect("queued");
    within(async {
        while cluster.produced().is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    (producer, delivery)
}

/// Waits for `f`, failing the test if it hangs.
pub async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("call still pending after {HANG_GUARD:?}"))
}

pub fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

impl Script {
    pub fn answer(&self, header: &RequestHeader, mut body: Bytes) -> Action {
        let version = header.request_api_version;
        let Ok(api) = ApiKey::try_from(header.request_api_key) else {
            return Action::Close;
        };
        let mut asked = None;
        let req = match api {
            ApiKey::ApiVersions => Req::ApiVersions,
            ApiKey::Metadata => {
                let r = MetadataRequest::decode(&mut body, version).unwrap();
                asked = r.topics.map(|ts| {
                    ts.into_iter()
                        .filter_map(|t| t.name.map(|n| n.0.to_string()))
                        .collect::<Vec<_>>()
                });
                Req::Metadata
            }
            ApiKey::InitProducerId => Req::InitProducerId,
            ApiKey::SaslHandshake => Req::SaslHandshake,
            ApiKey::SaslAuthenticate => Req::SaslAuthenticate,
            ApiKey::Produce => {
                let r = ProduceRequest::decode(&mut body, version).unwrap();
                Req::Produce(
                    r.topic_data
                        .iter()
                        .flat_map(|t| &t.partition_data)
                        .flat_map(|p| batches(p.records.as_deref().unwrap_or(&[])))
                        .collect(),
                )
            }
            _ => return Action::Close,
        };
        self.log.lock().unwrap().push((Instant::now(), req.clone()));
        let mut model = self.model.lock().unwrap();
        if let Some(action) = (self.fault)(&req, &mut model) {
            return action;
        }
        match req {
            Req::ApiVersions => {
                // InitProducerId v6 (KIP-939) is unstable: Kafka does not advertise it, and
                // kafka-protocol 0.18 lists it but cannot encode it.
                let keys = default_versions()
                    .into_iter()
                    .map(|(k, min, max)| {
                        let max = if k == ApiKey::InitProducerId {
                            max.min(5)
                        } else {
                            max
                        };
                        ApiVersion::default()
                            .with_api_key(k as i16)
                            .with_min_version(min)
                            .with_max_version(max)
                    })
                    .collect();
                Action::reply(&ApiVersionsResponse::default().with_api_keys(keys), version)
            }
            Req::Metadata => match model.metadata_delay {
                Some(wait) => {
                    Action::Delay(wait, Box::new(self.metadata(version, asked, model.leader)))
                }
                None => self.metadata(version, asked, model.leader),
            },
            Req::InitProducerId => Action::reply(
                &InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(PRODUCER_ID))
                    .with_producer_epoch(0),
                version,
            ),
            Req::SaslHandshake => Action::reply(
                &SaslHandshakeResponse::default().with_mechanisms(vec![sb("PLAIN")]),
                version,
            ),
            Req::SaslAuthenticate if model.credentials_revoked => Action::reply(
                &SaslAuthenticateResponse::default()
                    .with_error_code(SASL_AUTHENTICATION_FAILED)
                    .with_error_message(Some(sb("credentials revoked"))),
                version,
            ),
            Req::SaslAuthenticate => Action::reply(&SaslAuthenticateResponse::default(), version),
            Req::Produce(batches) => {
                let base = model.offset;
                model.offset += batches.iter().map(|b| i64::from(b.3)).sum::<i64>();
                produce_answer(base, version)
            }
        }
    }

    /// Node 1 (this broker) and node 2 (an address that refuses connections), [`TOPIC`] led by
    /// `leader`, [`REFUSED_TOPIC`] refused as invalid, and [`EMPTY_TOPIC`] with no partitions.
    pub fn metadata(&self, version: i16, asked: Option<Vec<String>>, leader: i32) -> Action {
        let port = *self.port.lock().unwrap();
        // Port 1 (tcpmux) is privileged and unused on test machines: dialling it is refused.
        let brokers = [(1, port), (2, 1)]
            .into_iter()
            .map(|(node, port)| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(node))
                    .with_host(sb("127.0.0.1"))
                    .with_port(port)
            })
            .collect();
        let asked = asked.unwrap_or_else(|| vec![TOPIC.to_owned()]);
        let topics = asked
            .iter()
            .map(|name| {
                let topic = MetadataResponseTopic::default().with_name(Some(TopicName(sb(name))));
                match name.as_str() {
                    TOPIC => topic.with_partitions(vec![MetadataResponsePartition::default()
                        .with_partition_index(0)
                        .with_leader_id(BrokerId(leader))
                        .with_replica_nodes(vec![BrokerId(leader)])
                        .with_isr_nodes(vec![BrokerId(leader)])]),
                    REFUSED_TOPIC => topic.with_error_code(INVALID_TOPIC_EXCEPTION),
                    EMPTY_TOPIC => topic,
                    // UNKNOWN_TOPIC_OR_PARTITION
                    _ => topic.with_error_code(3),
                }
            })
            .collect();
        Action::reply(
            &MetadataResponse::default()
                .with_brokers(brokers)
                .with_topics(topics),
            version,
        )
    }
}

/// A successful answer for partition 0 of [`TOPIC`] at `base`.
pub fn produce_answer(base: i64, version: i16) -> Action {
    Action::reply(
        &ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_name(TopicName(sb(TOPIC)))
            .with_partition_responses(vec![PartitionProduceResponse::default()
                .with_index(0)
                .with_base_offset(base)])]),
        version,
    )
}

/// While the model is faulty, every Produce gets `fault` instead of its answer.
pub fn while_faulty(fault: fn() -> Action) -> impl Fn(&Req, &mut Model) -> Option<Action> {
    move |req, model| (model.faulty && matches!(req, Req::Produce(_))).then(fault)
}

/// Kafka's NOT_LEADER_OR_FOLLOWER error code.
pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;

/// Partition 0 of [`TOPIC`] refuses its batch with `code`.
pub fn produce_refusal(code: i16) -> Action {
    Action::reply(
        &ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_name(TopicName(sb(TOPIC)))
            .with_partition_responses(vec![PartitionProduceResponse::default()
                .with_index(0)
                .with_error_code(code)
                .with_base_offset(-1)])]),
        9,
    )
}
