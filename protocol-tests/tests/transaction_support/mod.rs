//! The scripted two-broker cluster the transactional producer's fault tests run against.
//!
//! Two [`ScriptedBroker`]s (nodes 1 and 2) play a tiny cluster through [`TxnCluster`]: a minimal
//! model answers every request the producer makes (metadata, FindCoordinator, InitProducerId,
//! AddPartitionsToTxn, Produce, AddOffsetsToTxn, TxnOffsetCommit, EndTxn), and each test injects
//! its fault through a hook that may replace the model's answer. Every request is logged with the
//! node it reached and what it carried (producer id, epoch, base sequence, partitions), so tests
//! assert what was sent and what the caller got, never how long it took.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::api_versions_response::{ApiVersion, FinalizedFeatureKey};
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::produce_response::{PartitionProduceResponse, TopicProduceResponse};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddOffsetsToTxnResponse, AddPartitionsToTxnRequest,
    AddPartitionsToTxnResponse, ApiKey, ApiVersionsResponse, BrokerId, EndTxnRequest,
    EndTxnResponse, FindCoordinatorRequest, FindCoordinatorResponse, InitProducerIdRequest,
    InitProducerIdResponse, MetadataRequest, MetadataResponse, ProduceRequest, ProduceResponse,
    ProducerId, RequestHeader, TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use josefk::producer::{ConsumerGroupMetadata, DeliveryFuture, Producer, ProducerConfig};
use josefk::{ClientConfig, ProducerRecord, TopicPartition};
use protocol_tests::{batches, default_versions, Action, ScriptedBroker};

/// The topic every test produces to; it has [`PARTITIONS`] partitions, all led by node 1.
pub const TOPIC: &str = "t";
pub const PARTITIONS: i32 = 2;
pub const TXN_ID: &str = "tid";
pub const GROUP: &str = "g";
/// Error codes the hooks answer with.
pub const NOT_COORDINATOR: i16 = 16;
pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
pub const CONCURRENT_TRANSACTIONS: i16 = 51;
pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
/// A guard against hangs only: every call here must end well before it (the producer's own
/// `max.block.ms` is far shorter).
pub const HANG_GUARD: Duration = Duration::from_secs(30);
/// The highest EndTxn version josefk sends under the classic protocol.
pub const V1_END_TXN: i16 = 4;

/// One request as the cluster saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Req {
    FindCoordinator {
        key_type: i8,
    },
    InitProducerId {
        producer_id: i64,
        epoch: i16,
    },
    AddPartitions {
        producer_id: i64,
        epoch: i16,
        partitions: Vec<i32>,
    },
    /// One batch per partition: (partition, producer id, epoch, base sequence, record count).
    Produce {
        version: i16,
        batches: Vec<(i32, i64, i16, i32, i32)>,
    },
    AddOffsets {
        producer_id: i64,
        epoch: i16,
    },
    TxnOffsetCommit {
        producer_id: i64,
        epoch: i16,
        partitions: Vec<(i32, i64)>,
    },
    EndTxn {
        version: i16,
        producer_id: i64,
        epoch: i16,
        commit: bool,
    },
    /// ApiVersions, Metadata: answered by the model, never faulted here.
    Other,
}

/// The model's state, which hooks may read and change.
#[derive(Debug)]
pub struct Model {
    /// Node that FindCoordinator names, for the transactional id and the group.
    pub txn_coordinator: i32,
    pub group_coordinator: i32,
    /// The producer id and epoch InitProducerId hands out (and EndTxn v5 bumps).
    pub producer: (i64, i16),
    /// Next offset per partition.
    pub offsets: BTreeMap<i32, i64>,
    /// How many requests of each API (by key) arrived so far, counting the one being answered.
    pub seen: BTreeMap<i16, usize>,
    /// The version of the request being answered.
    pub version: i16,
    /// A switch for hooks whose fault a test turns off midway.
    pub faulty: bool,
}

impl Model {
    /// How many requests of `api` arrived so far, this one included.
    pub fn nth(&self, api: ApiKey) -> usize {
        self.seen.get(&(api as i16)).copied().unwrap_or(0)
    }
}

pub type Fault = dyn Fn(i32, &Req, &mut Model) -> Option<Action> + Send + Sync;

pub struct Script {
    /// (node id, port) of each broker, filled in once both listen.
    ports: Mutex<Vec<(i32, i32)>>,
    transactions_v2: bool,
    model: Mutex<Model>,
    log: Mutex<Vec<(i32, Req)>>,
    fault: Box<Fault>,
}

/// Two scripted brokers sharing one model.
pub struct TxnCluster {
    brokers: Vec<ScriptedBroker>,
    script: Arc<Script>,
}

impl TxnCluster {
    /// Starts nodes 1 and 2. `transactions_v2` finalizes `transaction.version=2` in ApiVersions
    /// (the brokers advertise Produce v13, EndTxn v5 and TxnOffsetCommit v5 either way).
    pub async fn start(
        transactions_v2: bool,
        producer: (i64, i16),
        fault: impl Fn(i32, &Req, &mut Model) -> Option<Action> + Send + Sync + 'static,
    ) -> TxnCluster {
        let script = Arc::new(Script {
            ports: Mutex::new(Vec::new()),
            transactions_v2,
            model: Mutex::new(Model {
                txn_coordinator: 1,
                group_coordinator: 1,
                producer,
                offsets: BTreeMap::new(),
                seen: BTreeMap::new(),
                version: 0,
                faulty: true,
            }),
            log: Mutex::new(Vec::new()),
            fault: Box::new(fault),
        });
        let mut brokers = Vec::new();
        for node in [1, 2] {
            let script = script.clone();
            let broker =
                ScriptedBroker::start(move |header, body| script.answer(node, header, body)).await;
            brokers.push(broker);
        }
        for (i, b) in brokers.iter().enumerate() {
            let port: i32 = b.addr().rsplit(':').next().unwrap().parse().unwrap();
            script.ports.lock().unwrap().push((i as i32 + 1, port));
        }
        TxnCluster { brokers, script }
    }

    pub fn config(&self) -> ProducerConfig {
        let client = ClientConfig::new(&self.brokers[0].addr())
            .client_id("txn-faults")
            .request_timeout(Duration::from_secs(2))
            .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
            .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(50));
        let mut config = ProducerConfig::with_client(client).transactional_id(TXN_ID);
        config.max_block = Duration::from_secs(10);
        config
    }

    /// A producer with transactions initialized.
    pub async fn producer(&self) -> Producer {
        self.producer_with(|_| {}).await
    }

    /// A producer of [`TxnCluster::config`] changed by `tune`, with transactions initialized.
    pub async fn producer_with(&self, tune: impl FnOnce(&mut ProducerConfig)) -> Producer {
        let mut config = self.config();
        tune(&mut config);
        let producer = Producer::connect(config).await.expect("connect");
        within(producer.init_transactions())
            .await
            .expect("init_transactions");
        producer
    }

    /// Turns off the fault of hooks that check [`Model::faulty`].
    pub fn heal(&self) {
        self.script.model.lock().unwrap().faulty = false;
    }

    /// Every request but ApiVersions and Metadata, with the node it reached, in arrival order.
    pub fn log(&self) -> Vec<(i32, Req)> {
        self.script.log.lock().unwrap().clone()
    }

    pub fn requests(&self, pick: impl Fn(&Req) -> bool) -> Vec<(i32, Req)> {
        self.log().into_iter().filter(|(_, r)| pick(r)).collect()
    }

    pub fn end_txns(&self) -> Vec<(i32, Req)> {
        self.requests(|r| matches!(r, Req::EndTxn { .. }))
    }

    pub fn find_coordinators(&self, key_type: i8) -> usize {
        self.requests(|r| *r == Req::FindCoordinator { key_type })
            .len()
    }

    /// The (partition, offset) pairs of each TxnOffsetCommit, in arrival order.
    pub fn offset_commits(&self) -> Vec<Vec<(i32, i64)>> {
        self.log()
            .into_iter()
            .filter_map(|(_, r)| match r {
                Req::TxnOffsetCommit { partitions, .. } => Some(partitions),
                _ => None,
            })
            .collect()
    }

    /// Every produced batch: (partition, producer id, epoch, base sequence, records).
    pub fn produced(&self) -> Vec<(i32, i64, i16, i32, i32)> {
        self.log()
            .into_iter()
            .filter_map(|(_, r)| match r {
                Req::Produce { batches, .. } => Some(batches),
                _ => None,
            })
            .flatten()
            .collect()
    }
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
    fn answer(&self, node: i32, header: &RequestHeader, mut body: Bytes) -> Action {
        let version = header.request_api_version;
        let Ok(api) = ApiKey::try_from(header.request_api_key) else {
            return Action::Close;
        };
        let mut metadata_topics = None;
        let req = match api {
            ApiKey::Metadata => {
                let r = MetadataRequest::decode(&mut body, version).unwrap();
                metadata_topics = r.topics.map(|ts| {
                    ts.into_iter()
                        .filter_map(|t| t.name.map(|n| n.0.to_string()))
                        .collect::<Vec<_>>()
                });
                Req::Other
            }
            ApiKey::FindCoordinator => {
                let r = FindCoordinatorRequest::decode(&mut body, version).unwrap();
                Req::FindCoordinator {
                    key_type: r.key_type,
                }
            }
            ApiKey::InitProducerId => {
                let r = InitProducerIdRequest::decode(&mut body, version).unwrap();
                Req::InitProducerId {
                    producer_id: r.producer_id.0,
                    epoch: r.producer_epoch,
                }
            }
            ApiKey::AddPartitionsToTxn => {
                let r = AddPartitionsToTxnRequest::decode(&mut body, version).unwrap();
                Req::AddPartitions {
                    producer_id: r.v3_and_below_producer_id.0,
                    epoch: r.v3_and_below_producer_epoch,
                    partitions: r
                        .v3_and_below_topics
                        .iter()
                        .flat_map(|t| t.partitions.clone())
                        .collect(),
                }
            }
            ApiKey::Produce => {
                let r = ProduceRequest::decode(&mut body, version).unwrap();
                let mut out = Vec::new();
                for t in &r.topic_data {
                    for p in &t.partition_data {
                        for (pid, epoch, seq, n) in batches(p.records.as_deref().unwrap_or(&[])) {
                            out.push((p.index, pid, epoch, seq, n));
                        }
                    }
                }
                Req::Produce {
                    version,
                    batches: out,
                }
            }
            ApiKey::AddOffsetsToTxn => {
                let r = AddOffsetsToTxnRequest::decode(&mut body, version).unwrap();
                Req::AddOffsets {
                    producer_id: r.producer_id.0,
                    epoch: r.producer_epoch,
                }
            }
            ApiKey::TxnOffsetCommit => {
                let r = TxnOffsetCommitRequest::decode(&mut body, version).unwrap();
                Req::TxnOffsetCommit {
                    producer_id: r.producer_id.0,
                    epoch: r.producer_epoch,
                    partitions: r
                        .topics
                        .iter()
                        .flat_map(|t| {
                            t.partitions
                                .iter()
                                .map(|p| (p.partition_index, p.committed_offset))
                        })
                        .collect(),
                }
            }
            ApiKey::EndTxn => {
                let r = EndTxnRequest::decode(&mut body, version).unwrap();
                Req::EndTxn {
                    version,
                    producer_id: r.producer_id.0,
                    epoch: r.producer_epoch,
                    commit: r.committed,
                }
            }
            _ => Req::Other,
        };
        if req != Req::Other {
            self.log.lock().unwrap().push((node, req.clone()));
        }
        let mut model = self.model.lock().unwrap();
        *model.seen.entry(api as i16).or_default() += 1;
        model.version = version;
        if let Some(action) = (self.fault)(node, &req, &mut model) {
            return action;
        }
        if api == ApiKey::Metadata {
            return self.metadata(version, metadata_topics);
        }
        self.model_answer(api, version, &req, &mut model)
    }

    /// The answer of a healthy cluster.
    fn model_answer(&self, api: ApiKey, version: i16, req: &Req, model: &mut Model) -> Action {
        match (api, req) {
            (ApiKey::ApiVersions, _) => {
                // InitProducerId v6 (KIP-939) is unstable: Kafka does not advertise it, and
                // kafka-protocol 0.18 lists it but cannot encode it.
                let keys = default_versions()
                    .into_iter()
                    .map(|(k, min, max)| match k {
                        ApiKey::InitProducerId => (k, min, max.min(5)),
                        _ => (k, min, max),
                    })
                    .map(|(k, min, max)| {
                        ApiVersion::default()
                            .with_api_key(k as i16)
                            .with_min_version(min)
                            .with_max_version(max)
                    })
                    .collect();
                let mut r = ApiVersionsResponse::default().with_api_keys(keys);
                if self.transactions_v2 && version >= 3 {
                    r = r.with_finalized_features(vec![FinalizedFeatureKey::default()
                        .with_name(sb("transaction.version"))
                        .with_min_version_level(2)
                        .with_max_version_level(2)]);
                }
                Action::reply(&r, version)
            }
            (_, Req::FindCoordinator { key_type }) => {
                let node = if *key_type == 1 {
                    model.txn_coordinator
                } else {
                    model.group_coordinator
                };
                let port = self.port(node);
                let mut r = FindCoordinatorResponse::default();
                if version >= 4 {
                    // A broker names each key it answers (KIP-699).
                    let key = if *key_type == 1 { TXN_ID } else { GROUP };
                    r.coordinators = vec![Coordinator::default()
                        .with_key(sb(key))
                        .with_node_id(BrokerId(node))
                        .with_host(sb("127.0.0.1"))
                        .with_port(port)];
                } else {
                    r = r
                        .with_node_id(BrokerId(node))
                        .with_host(sb("127.0.0.1"))
                        .with_port(port);
                }
                Action::reply(&r, version)
            }
            (_, Req::InitProducerId { producer_id, epoch }) => {
                // KIP-360: naming the current id and epoch bumps the epoch (a request naming an
                // older epoch is answered with the current one here; tests that need a refusal
                // script it).
                if (*producer_id, *epoch) == model.producer {
                    model.producer.1 += 1;
                }
                let (pid, epoch) = model.producer;
                Action::reply(
                    &InitProducerIdResponse::default()
                        .with_producer_id(ProducerId(pid))
                        .with_producer_epoch(epoch),
                    version,
                )
            }
            (_, Req::AddPartitions { partitions, .. }) => {
                add_partitions_answer(partitions.iter().map(|&p| (p, 0)), version)
            }
            (_, Req::Produce { batches, .. }) => {
                let partitions = batches.iter().map(|&(p, _, _, _, n)| {
                    let next = model.offsets.entry(p).or_default();
                    let base = *next;
                    *next += i64::from(n);
                    (p, 0, base)
                });
                produce_answer(partitions, version)
            }
            (_, Req::AddOffsets { .. }) => {
                Action::reply(&AddOffsetsToTxnResponse::default(), version)
            }
            (_, Req::TxnOffsetCommit { partitions, .. }) => {
                txn_offset_commit_answer(partitions.iter().map(|&(p, _)| (p, 0)), version)
            }
            (_, Req::EndTxn { epoch, .. }) => {
                // KIP-890: EndTxn v5 bumps the epoch for the next transaction, and hands out a new
                // producer id with epoch 0 once the epoch is exhausted (Short.MAX_VALUE - 1). A
                // retry of an EndTxn that already completed (its epoch is the one before) gets
                // the current id and epoch again (Kafka's `retryOnEpochBump`/`retryOnOverflow`).
                if version >= 5 && *epoch == model.producer.1 {
                    let (pid, epoch) = model.producer;
                    model.producer = if epoch >= i16::MAX - 1 {
                        (pid + 1000, 0)
                    } else {
                        (pid, epoch + 1)
                    };
                }
                let (pid, epoch) = model.producer;
                Action::reply(
                    &EndTxnResponse::default()
                        .with_producer_id(ProducerId(pid))
                        .with_producer_epoch(epoch),
                    version,
                )
            }
            _ => Action::Close,
        }
    }

    /// Both brokers, and [`TOPIC`] (every partition led by node 1) when asked for it or for all
    /// topics.
    fn metadata(&self, version: i16, topics: Option<Vec<String>>) -> Action {
        let brokers = self
            .ports
            .lock()
            .unwrap()
            .iter()
            .map(|&(node, port)| {
                MetadataResponseBroker::default()
                    .with_node_id(BrokerId(node))
                    .with_host(sb("127.0.0.1"))
                    .with_port(port)
            })
            .collect();
        let wanted = topics.is_none_or(|ts| ts.iter().any(|t| t == TOPIC));
        let topics = if wanted {
            vec![MetadataResponseTopic::default()
                .with_name(Some(TopicName(sb(TOPIC))))
                .with_partitions(
                    (0..PARTITIONS)
                        .map(|p| {
                            MetadataResponsePartition::default()
                                .with_partition_index(p)
                                .with_leader_id(BrokerId(1))
                                .with_replica_nodes(vec![BrokerId(1)])
                                .with_isr_nodes(vec![BrokerId(1)])
                        })
                        .collect(),
                )]
        } else {
            Vec::new()
        };
        Action::reply(
            &MetadataResponse::default()
                .with_brokers(brokers)
                .with_controller_id(BrokerId(1))
                .with_topics(topics),
            version,
        )
    }

    fn port(&self, node: i32) -> i32 {
        self.ports
            .lock()
            .unwrap()
            .iter()
            .find(|(n, _)| *n == node)
            .map(|(_, p)| *p)
            .expect("known node")
    }
}

/// A TxnOffsetCommit answer with each partition's error code.
pub fn txn_offset_commit_answer(
    partitions: impl Iterator<Item = (i32, i16)>,
    version: i16,
) -> Action {
    Action::reply(
        &TxnOffsetCommitResponse::default().with_topics(vec![
            TxnOffsetCommitResponseTopic::default()
                .with_name(TopicName(sb(TOPIC)))
                .with_partitions(
                    partitions
                        .map(|(p, code)| {
                            TxnOffsetCommitResponsePartition::default()
                                .with_partition_index(p)
                                .with_error_code(code)
                        })
                        .collect(),
                ),
        ]),
        version,
    )
}

/// An AddPartitionsToTxn answer with each partition's error code.
pub fn add_partitions_answer(partitions: impl Iterator<Item = (i32, i16)>, version: i16) -> Action {
    Action::reply(
        &AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(vec![
            AddPartitionsToTxnTopicResult::default()
                .with_name(TopicName(sb(TOPIC)))
                .with_results_by_partition(
                    partitions
                        .map(|(p, code)| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(code)
                        })
                        .collect(),
                ),
        ]),
        version,
    )
}

/// A Produce answer with each partition's error code and base offset.
fn produce_answer(partitions: impl Iterator<Item = (i32, i16, i64)>, version: i16) -> Action {
    Action::reply(
        &ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
            .with_name(TopicName(sb(TOPIC)))
            .with_partition_responses(
                partitions
                    .map(|(p, code, base)| {
                        PartitionProduceResponse::default()
                            .with_index(p)
                            .with_error_code(code)
                            .with_base_offset(base)
                    })
                    .collect(),
            )]),
        version,
    )
}

pub fn refuse(req: &Req, code: i16, model: &Model) -> Action {
    let version = model.version;
    match req {
        Req::InitProducerId { .. } => Action::reply(
            &InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            version,
        ),
        Req::AddPartitions { partitions, .. } => {
            add_partitions_answer(partitions.iter().map(|&p| (p, code)), version)
        }
        Req::AddOffsets { .. } => Action::reply(
            &AddOffsetsToTxnResponse::default().with_error_code(code),
            version,
        ),
        Req::TxnOffsetCommit { partitions, .. } => {
            txn_offset_commit_answer(partitions.iter().map(|&(p, _)| (p, code)), version)
        }
        Req::Produce { batches, .. } => {
            produce_answer(batches.iter().map(|&(p, ..)| (p, code, -1)), version)
        }
        Req::EndTxn { .. } => Action::reply(
            &EndTxnResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            version,
        ),
        other => panic!("no refusal scripted for {other:?}"),
    }
}

fn record(partition: i32, value: &str) -> ProducerRecord {
    ProducerRecord::new(TOPIC, Bytes::from(value.to_owned())).partition(partition)
}

/// Sends one record per partition in `partitions` and returns their delivery futures.
pub async fn send_all(producer: &Producer, partitions: &[i32]) -> Vec<DeliveryFuture> {
    let mut futures = Vec::new();
    for &p in partitions {
        futures.push(
            within(producer.send(record(p, &format!("v{p}"))))
                .await
                .expect("send"),
        );
    }
    futures
}

pub async fn delivered(futures: Vec<DeliveryFuture>) {
    for f in futures {
        within(f).await.expect("record delivered");
    }
}

/// One whole transaction: begins it, sends one record to each of `partitions`, commits, and
/// waits for every record to be delivered.
pub async fn commit_records(producer: &Producer, partitions: &[i32]) {
    producer.begin_transaction().unwrap();
    let futures = send_all(producer, partitions).await;
    within(producer.commit_transaction()).await.expect("commit");
    delivered(futures).await;
}

/// `send_offsets_to_transaction` of `offsets` ((partition of [`TOPIC`], offset)) for [`GROUP`].
pub async fn send_offsets(producer: &Producer, offsets: &[(i32, i64)]) -> josefk::Result<()> {
    let offsets: Vec<_> = offsets
        .iter()
        .map(|&(p, offset)| (TopicPartition::new(TOPIC, p), offset, None))
        .collect();
    within(producer.send_offsets_to_transaction(&offsets, &ConsumerGroupMetadata::new(GROUP))).await
}

pub fn end_txn(node: i32, producer_id: i64, epoch: i16, commit: bool, version: i16) -> (i32, Req) {
    (
        node,
        Req::EndTxn {
            version,
            producer_id,
            epoch,
            commit,
        },
    )
}
