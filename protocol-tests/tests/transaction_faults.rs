//! The transactional producer against coordinator faults a real broker cannot be made to produce
//! on demand: the coordinator moving mid-transaction (NOT_COORDINATOR), the connection cut after
//! EndTxn was written but before its answer, and the producer epoch running out under KIP-890
//! transactions v2 (EndTxn v5 hands out a new producer id).
//!
//! Two [`ScriptedBroker`]s (nodes 1 and 2) play a tiny cluster through [`TxnCluster`]: a minimal
//! model answers every request the producer makes (metadata, FindCoordinator, InitProducerId,
//! AddPartitionsToTxn, Produce, AddOffsetsToTxn, TxnOffsetCommit, EndTxn), and each test injects
//! its fault through a hook that may replace the model's answer. Every request is logged with the
//! node it reached and what it carried (producer id, epoch, base sequence, partitions), so tests
//! assert what was sent and what the caller got, never how long it took.

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

use josefk::producer::{ConsumerGroupMetadata, Producer, ProducerConfig};
use josefk::{ClientConfig, Error, ErrorClass, ProducerRecord, TopicPartition};
use protocol_tests::{default_versions, Action, ScriptedBroker};

/// The topic every test produces to; it has [`PARTITIONS`] partitions, all led by node 1.
const TOPIC: &str = "t";
const PARTITIONS: i32 = 2;
const TXN_ID: &str = "tid";
const GROUP: &str = "g";
/// Error codes the hooks answer with.
const NOT_COORDINATOR: i16 = 16;
const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
const CONCURRENT_TRANSACTIONS: i16 = 51;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
/// A guard against hangs only: every call here must end well before it (the producer's own
/// `max.block.ms` is far shorter).
const HANG_GUARD: Duration = Duration::from_secs(30);

/// One request as the cluster saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Req {
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
struct Model {
    /// Node that FindCoordinator names, for the transactional id and the group.
    txn_coordinator: i32,
    group_coordinator: i32,
    /// The producer id and epoch InitProducerId hands out (and EndTxn v5 bumps).
    producer: (i64, i16),
    /// Next offset per partition.
    offsets: BTreeMap<i32, i64>,
    /// How many requests of each API (by key) arrived so far, counting the one being answered.
    seen: BTreeMap<i16, usize>,
    /// The version of the request being answered.
    version: i16,
    /// A switch for hooks whose fault a test turns off midway.
    faulty: bool,
}

impl Model {
    /// How many requests of `api` arrived so far, this one included.
    fn nth(&self, api: ApiKey) -> usize {
        self.seen.get(&(api as i16)).copied().unwrap_or(0)
    }
}

type Fault = dyn Fn(i32, &Req, &mut Model) -> Option<Action> + Send + Sync;

struct Script {
    /// (node id, port) of each broker, filled in once both listen.
    ports: Mutex<Vec<(i32, i32)>>,
    transactions_v2: bool,
    model: Mutex<Model>,
    log: Mutex<Vec<(i32, Req)>>,
    fault: Box<Fault>,
}

/// Two scripted brokers sharing one model.
struct TxnCluster {
    brokers: Vec<ScriptedBroker>,
    script: Arc<Script>,
}

impl TxnCluster {
    /// Starts nodes 1 and 2. `transactions_v2` finalizes `transaction.version=2` in ApiVersions
    /// (the brokers advertise Produce v13, EndTxn v5 and TxnOffsetCommit v5 either way).
    async fn start(
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

    fn config(&self) -> ProducerConfig {
        let client = ClientConfig::new(&self.brokers[0].addr())
            .client_id("txn-faults")
            .request_timeout(Duration::from_secs(2))
            .retry_backoff(Duration::from_millis(10), Duration::from_millis(50))
            .reconnect_backoff(Duration::from_millis(10), Duration::from_millis(50));
        let mut config = ProducerConfig::with_client(client).transactional_id(TXN_ID);
        config.max_block = Duration::from_secs(10);
        config
    }

    async fn producer(&self) -> Producer {
        let producer = Producer::connect(self.config()).await.expect("connect");
        within(producer.init_transactions())
            .await
            .expect("init_transactions");
        producer
    }

    /// Every request but ApiVersions and Metadata, with the node it reached, in arrival order.
    fn log(&self) -> Vec<(i32, Req)> {
        self.script.log.lock().unwrap().clone()
    }

    fn requests(&self, pick: impl Fn(&Req) -> bool) -> Vec<(i32, Req)> {
        self.log().into_iter().filter(|(_, r)| pick(r)).collect()
    }

    fn end_txns(&self) -> Vec<(i32, Req)> {
        self.requests(|r| matches!(r, Req::EndTxn { .. }))
    }

    fn find_coordinators(&self, key_type: i8) -> usize {
        self.requests(|r| *r == Req::FindCoordinator { key_type })
            .len()
    }

    /// Every produced batch: (partition, producer id, epoch, base sequence, records).
    fn produced(&self) -> Vec<(i32, i64, i16, i32, i32)> {
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
async fn within<T>(f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(HANG_GUARD, f)
        .await
        .unwrap_or_else(|_| panic!("call still pending after {HANG_GUARD:?}"))
}

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// (producer id, epoch, base sequence, record count) of each v2 record batch in `records`.
fn batches(mut records: &[u8]) -> Vec<(i64, i16, i32, i32)> {
    let mut out = Vec::new();
    while records.len() >= 61 {
        let len = i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize + 12;
        let at = |o: usize, n: usize| &records[o..o + n];
        out.push((
            i64::from_be_bytes(at(43, 8).try_into().unwrap()),
            i16::from_be_bytes(at(51, 2).try_into().unwrap()),
            i32::from_be_bytes(at(53, 4).try_into().unwrap()),
            i32::from_be_bytes(at(57, 4).try_into().unwrap()),
        ));
        records = &records[len.min(records.len())..];
    }
    out
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
            (_, Req::AddPartitions { partitions, .. }) => Action::reply(
                &AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(vec![
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(TopicName(sb(TOPIC)))
                        .with_results_by_partition(
                            partitions
                                .iter()
                                .map(|p| {
                                    AddPartitionsToTxnPartitionResult::default()
                                        .with_partition_index(*p)
                                })
                                .collect(),
                        ),
                ]),
                version,
            ),
            (_, Req::Produce { batches, .. }) => {
                let partitions = batches
                    .iter()
                    .map(|&(p, _, _, _, n)| {
                        let next = model.offsets.entry(p).or_default();
                        let base = *next;
                        *next += i64::from(n);
                        PartitionProduceResponse::default()
                            .with_index(p)
                            .with_base_offset(base)
                    })
                    .collect();
                Action::reply(
                    &ProduceResponse::default().with_responses(vec![
                        TopicProduceResponse::default()
                            .with_name(TopicName(sb(TOPIC)))
                            .with_partition_responses(partitions),
                    ]),
                    version,
                )
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
fn txn_offset_commit_answer(partitions: impl Iterator<Item = (i32, i16)>, version: i16) -> Action {
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

/// The refusal of `req` with `code`, in the shape of its API's response.
fn refuse(req: &Req, code: i16, model: &Model) -> Action {
    let version = model.version;
    match req {
        Req::InitProducerId { .. } => Action::reply(
            &InitProducerIdResponse::default()
                .with_error_code(code)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
            version,
        ),
        Req::AddPartitions { partitions, .. } => Action::reply(
            &AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(vec![
                AddPartitionsToTxnTopicResult::default()
                    .with_name(TopicName(sb(TOPIC)))
                    .with_results_by_partition(
                        partitions
                            .iter()
                            .map(|p| {
                                AddPartitionsToTxnPartitionResult::default()
                                    .with_partition_index(*p)
                                    .with_partition_error_code(code)
                            })
                            .collect(),
                    ),
            ]),
            version,
        ),
        Req::AddOffsets { .. } => Action::reply(
            &AddOffsetsToTxnResponse::default().with_error_code(code),
            version,
        ),
        Req::TxnOffsetCommit { partitions, .. } => {
            txn_offset_commit_answer(partitions.iter().map(|&(p, _)| (p, code)), version)
        }
        Req::Produce { batches, .. } => Action::reply(
            &ProduceResponse::default().with_responses(vec![TopicProduceResponse::default()
                .with_name(TopicName(sb(TOPIC)))
                .with_partition_responses(
                    batches
                        .iter()
                        .map(|&(p, ..)| {
                            PartitionProduceResponse::default()
                                .with_index(p)
                                .with_error_code(code)
                                .with_base_offset(-1)
                        })
                        .collect(),
                )]),
            version,
        ),
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
async fn send_all(
    producer: &Producer,
    partitions: &[i32],
) -> Vec<josefk::producer::DeliveryFuture> {
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

async fn delivered(futures: Vec<josefk::producer::DeliveryFuture>) {
    for f in futures {
        within(f).await.expect("record delivered");
    }
}

fn end_txn(node: i32, producer_id: i64, epoch: i16, commit: bool, version: i16) -> (i32, Req) {
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

/// The highest EndTxn version josefk sends under the classic protocol.
const V1_END_TXN: i16 = 4;

// ---- (a) the transaction coordinator moves ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_txn_not_coordinator_finds_the_new_coordinator_and_commits_there() {
    let cluster = TxnCluster::start(false, (7, 3), |node, req, model| match req {
        Req::EndTxn { .. } if node == 1 => {
            // The transaction log partition moved to node 2.
            model.txn_coordinator = 2;
            Some(refuse(req, NOT_COORDINATOR, model))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0]).await;
    within(producer.commit_transaction())
        .await
        .expect("commit succeeds at the new coordinator");
    delivered(futures).await;
    assert_eq!(
        cluster.end_txns(),
        vec![
            end_txn(1, 7, 3, true, V1_END_TXN),
            end_txn(2, 7, 3, true, V1_END_TXN)
        ],
        "EndTxn retried once, at node 2, with the same producer id and epoch"
    );
    // init_transactions found node 1; NOT_COORDINATOR made the producer look again.
    assert_eq!(cluster.find_coordinators(1), 2);
    // The next transaction talks to node 2 straight away.
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[1]).await;
    within(producer.commit_transaction()).await.expect("commit");
    delivered(futures).await;
    let adds = cluster.requests(|r| matches!(r, Req::AddPartitions { .. }));
    assert_eq!(adds.last().map(|(n, _)| *n), Some(2));
    assert_eq!(
        cluster.end_txns().last(),
        Some(&end_txn(2, 7, 3, true, V1_END_TXN))
    );
    assert_eq!(cluster.find_coordinators(1), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_partitions_not_coordinator_is_retried_at_the_new_coordinator_before_producing() {
    let cluster = TxnCluster::start(false, (7, 0), |node, req, model| match req {
        Req::AddPartitions { .. } if node == 1 => {
            model.txn_coordinator = 2;
            Some(refuse(req, NOT_COORDINATOR, model))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0]).await;
    within(producer.commit_transaction()).await.expect("commit");
    delivered(futures).await;
    let log: Vec<(i32, Req)> = cluster
        .log()
        .into_iter()
        .filter(|(_, r)| !matches!(r, Req::FindCoordinator { .. }))
        .collect();
    assert_eq!(
        log,
        vec![
            (
                1,
                Req::InitProducerId {
                    producer_id: -1,
                    epoch: -1
                }
            ),
            (
                1,
                Req::AddPartitions {
                    producer_id: 7,
                    epoch: 0,
                    partitions: vec![0]
                }
            ),
            (
                2,
                Req::AddPartitions {
                    producer_id: 7,
                    epoch: 0,
                    partitions: vec![0]
                }
            ),
            (
                1,
                Req::Produce {
                    version: 11,
                    batches: vec![(0, 7, 0, 0, 1)]
                }
            ),
            end_txn(2, 7, 0, true, V1_END_TXN),
        ],
        "the batch waited for the partition to be added at the new coordinator"
    );
    assert_eq!(cluster.find_coordinators(1), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_offset_commit_not_coordinator_finds_the_new_group_coordinator() {
    let cluster = TxnCluster::start(false, (7, 0), |node, req, model| match req {
        Req::TxnOffsetCommit { .. } if node == 1 => {
            model.group_coordinator = 2;
            Some(refuse(req, NOT_COORDINATOR, model))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let offsets = [(TopicPartition::new(TOPIC, 0), 42, None)];
    within(producer.send_offsets_to_transaction(&offsets, &ConsumerGroupMetadata::new(GROUP)))
        .await
        .expect("offsets committed at the new group coordinator");
    within(producer.commit_transaction()).await.expect("commit");
    let commits = cluster.requests(|r| matches!(r, Req::TxnOffsetCommit { .. }));
    let expected = Req::TxnOffsetCommit {
        producer_id: 7,
        epoch: 0,
        partitions: vec![(0, 42)],
    };
    assert_eq!(commits, vec![(1, expected.clone()), (2, expected)]);
    // The group coordinator was looked up twice, the transaction coordinator once.
    assert_eq!(cluster.find_coordinators(0), 2);
    assert_eq!(cluster.find_coordinators(1), 1);
    assert_eq!(cluster.end_txns(), vec![end_txn(1, 7, 0, true, V1_END_TXN)]);
}

// ---- (b) the connection is cut after EndTxn was written ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_txn_cut_before_the_answer_is_retried_and_the_commit_succeeds() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        // The coordinator received the commit, then the connection died before it answered.
        Req::EndTxn { .. } if model.nth(ApiKey::EndTxn) == 1 => Some(Action::Close),
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0, 1]).await;
    within(producer.commit_transaction())
        .await
        .expect("the retried EndTxn completes the commit");
    delivered(futures).await;
    assert_eq!(
        cluster.end_txns(),
        vec![
            end_txn(1, 7, 0, true, V1_END_TXN),
            end_txn(1, 7, 0, true, V1_END_TXN)
        ],
        "the same EndTxn(commit) again, never an abort"
    );
    // The outcome of the first EndTxn was unknown: under v1 the epoch is bumped before the next
    // transaction (see `unknown_outcome_never_lets_a_late_copy_touch_the_next_transaction`).
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0]).await;
    within(producer.commit_transaction()).await.expect("commit");
    delivered(futures).await;
    assert_eq!(
        cluster.produced().last(),
        Some(&(0, 7, 1, 0, 1)),
        "the next transaction starts at sequence 0 under the bumped epoch"
    );
}

// ---- unknown outcomes: a late copy of a request must not reach the next transaction ----

/// The (producer id, epoch) each request of the transactional protocol carries; `None` for the
/// others.
fn carried(req: &Req) -> Vec<(i64, i16)> {
    match req {
        Req::AddPartitions {
            producer_id, epoch, ..
        }
        | Req::AddOffsets { producer_id, epoch }
        | Req::TxnOffsetCommit {
            producer_id, epoch, ..
        }
        | Req::EndTxn {
            producer_id, epoch, ..
        } => vec![(*producer_id, *epoch)],
        Req::Produce { batches, .. } => batches.iter().map(|b| (b.1, b.2)).collect(),
        _ => Vec::new(),
    }
}

/// A transactional request of the first transaction is cut after the coordinator received it
/// (`cut` picks it), so its outcome is unknown and a copy of it may still be applied late: Kafka
/// matches transactional requests to a transaction by producer id and epoch only. Whatever the
/// protocol, every request of the next transaction must carry a newer epoch than the cut one, so
/// the coordinator fences the late copy instead of letting it end the next transaction or add
/// the earlier offsets to it (Jepsen's Bufstream analysis, 2024; franz-go v1.21.6). Under v1
/// josefk bumps the epoch with InitProducerId once the transaction ends; under v2 EndTxn v5 does.
async fn late_copy_is_fenced(v2: bool, cut: fn(&Req) -> bool) {
    let cluster = TxnCluster::start(v2, (7, 0), move |_, req, model| {
        if model.faulty && cut(req) {
            model.faulty = false;
            return Some(Action::Close);
        }
        None
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0, 1]).await;
    let offsets = [(TopicPartition::new(TOPIC, 0), 1, None)];
    within(producer.send_offsets_to_transaction(&offsets, &ConsumerGroupMetadata::new(GROUP)))
        .await
        .expect("offsets");
    within(producer.commit_transaction())
        .await
        .expect("the retried request completes the commit");
    delivered(futures).await;
    let first = cluster.log().len();
    let (_, cut_request) = cluster
        .log()
        .into_iter()
        .find(|(_, r)| cut(r))
        .expect("the cut request was sent");
    let stale = carried(&cut_request)[0];
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0, 1]).await;
    let offsets = [(TopicPartition::new(TOPIC, 0), 2, None)];
    within(producer.send_offsets_to_transaction(&offsets, &ConsumerGroupMetadata::new(GROUP)))
        .await
        .expect("offsets");
    within(producer.commit_transaction()).await.expect("commit");
    delivered(futures).await;
    let next: Vec<(i64, i16)> = cluster.log()[first..]
        .iter()
        .flat_map(|(_, r)| carried(r))
        .collect();
    assert!(!next.is_empty());
    assert!(
        next.iter()
            .all(|&(pid, epoch)| pid != stale.0 || epoch > stale.1),
        "a request of the next transaction carries the cut request's id and epoch {stale:?}, so \
         a late copy of {cut_request:?} would act on it: {next:?}"
    );
    let bumps = cluster
        .requests(|r| matches!(r, Req::InitProducerId { producer_id: 7, .. }))
        .len();
    assert_eq!(bumps, usize::from(!v2), "v1 bumps once; v2 needs no bump");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_outcome_never_lets_a_late_copy_touch_the_next_transaction() {
    let end_txn: fn(&Req) -> bool = |r| matches!(r, Req::EndTxn { .. });
    let offsets: fn(&Req) -> bool = |r| matches!(r, Req::TxnOffsetCommit { .. });
    let add_partitions: fn(&Req) -> bool = |r| matches!(r, Req::AddPartitions { .. });
    for (v2, name, cut) in [
        (false, "v1 EndTxn", end_txn),
        (false, "v1 TxnOffsetCommit", offsets),
        (false, "v1 AddPartitionsToTxn", add_partitions),
        (true, "v2 EndTxn", end_txn),
        (true, "v2 TxnOffsetCommit", offsets),
    ] {
        eprintln!("case: {name}");
        late_copy_is_fenced(v2, cut).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_txn_never_answered_fails_the_commit_within_max_block_and_a_later_call_finishes_it() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::EndTxn { .. } if model.faulty => Some(Action::Close),
        _ => None,
    })
    .await;
    let mut config = cluster.config();
    config.max_block = Duration::from_secs(2);
    let producer = Producer::connect(config).await.expect("connect");
    within(producer.init_transactions()).await.expect("init");
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0]).await;
    let e = within(producer.commit_transaction())
        .await
        .expect_err("no EndTxn answer within max.block.ms");
    assert!(
        matches!(e, Error::Timeout { .. }),
        "a timeout, not a failed transaction: {e:?}"
    );
    assert_eq!(e.class(), ErrorClass::Retriable, "{e}");
    let attempts = cluster.end_txns();
    assert!(attempts.len() >= 2, "EndTxn was retried: {attempts:?}");
    assert!(attempts
        .iter()
        .all(|a| *a == end_txn(1, 7, 0, true, V1_END_TXN)));
    // The commit is still under way: it cannot become an abort or make room for a new
    // transaction (Java's "previous call timed out and must be retried").
    let e = within(producer.abort_transaction())
        .await
        .expect_err("a pending commit cannot be aborted");
    assert!(e.to_string().contains("commit_transaction again"), "{e}");
    assert!(producer.begin_transaction().is_err());
    // The coordinator recovers; calling commit again waits for the same commit (Java: retry the
    // blocking call after a timeout).
    cluster.script.model.lock().unwrap().faulty = false;
    within(producer.commit_transaction())
        .await
        .expect("the resumed commit succeeds");
    delivered(futures).await;
    assert!(cluster
        .end_txns()
        .iter()
        .all(|a| *a == end_txn(1, 7, 0, true, V1_END_TXN)));
    producer
        .begin_transaction()
        .expect("ready for the next transaction");
}

// ---- (c) transactions v2: EndTxn v5 hands out the next epoch, and a new id on overflow ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_epoch_overflow_moves_the_next_transaction_to_the_new_producer_id() {
    // Epoch 32765: the first commit bumps to 32766, which is exhausted, so the second commit gets
    // a new producer id with epoch 0.
    let cluster = TxnCluster::start(true, (1000, i16::MAX - 2), |_, _, _| None).await;
    let producer = cluster.producer().await;
    for round in 0..3 {
        producer.begin_transaction().unwrap();
        let mut futures = send_all(&producer, &[0]).await;
        futures.extend(send_all(&producer, &[0]).await);
        within(producer.commit_transaction())
            .await
            .unwrap_or_else(|e| panic!("commit {round}: {e}"));
        delivered(futures).await;
    }
    let produced = cluster.produced();
    let per_txn: Vec<(i64, i16, i32)> = produced
        .iter()
        .filter(|b| b.3 == 0)
        .map(|&(_, pid, epoch, seq, _)| (pid, epoch, seq))
        .collect();
    assert_eq!(
        per_txn,
        vec![
            (1000, i16::MAX - 2, 0),
            (1000, i16::MAX - 1, 0),
            (2000, 0, 0)
        ],
        "each transaction starts at sequence 0 under the epoch EndTxn v5 returned: {produced:?}"
    );
    assert!(
        produced.iter().all(|b| b.0 == 0),
        "only partition 0 was written: {produced:?}"
    );
    assert_eq!(
        cluster.end_txns(),
        vec![
            end_txn(1, 1000, i16::MAX - 2, true, 5),
            end_txn(1, 1000, i16::MAX - 1, true, 5),
            end_txn(1, 2000, 0, true, 5),
        ]
    );
    // v2: partitions join implicitly through Produce v12, and the client never bumps the epoch.
    assert!(cluster
        .requests(|r| matches!(r, Req::AddPartitions { .. }))
        .is_empty());
    assert!(cluster
        .requests(|r| matches!(r, Req::Produce { version, .. } if *version != 12))
        .is_empty());
    assert_eq!(
        cluster
            .requests(|r| matches!(r, Req::InitProducerId { .. }))
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_end_txn_cut_at_the_overflow_is_retried_and_the_new_producer_id_is_adopted() {
    // The commit that exhausts the epoch loses its answer; the retry (old id, old epoch) gets the
    // new producer id, as Kafka's `retryOnOverflow` answers.
    let cluster = TxnCluster::start(true, (1000, i16::MAX - 1), |_, req, model| match req {
        Req::EndTxn { .. } if model.nth(ApiKey::EndTxn) == 1 => {
            model.producer = (2000, 0);
            Some(Action::Close)
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[1]).await;
    within(producer.commit_transaction()).await.expect("commit");
    delivered(futures).await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[1]).await;
    within(producer.commit_transaction()).await.expect("commit");
    delivered(futures).await;
    assert_eq!(
        cluster.produced(),
        vec![(1, 1000, i16::MAX - 1, 0, 1), (1, 2000, 0, 0, 1)]
    );
    assert_eq!(
        cluster.end_txns(),
        vec![
            end_txn(1, 1000, i16::MAX - 1, true, 5),
            end_txn(1, 1000, i16::MAX - 1, true, 5),
            end_txn(1, 2000, 0, true, 5),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_end_txn_cut_after_the_commit_is_retried_and_the_bumped_epoch_is_adopted() {
    // The coordinator committed (and bumped the epoch) but its answer was lost; the retry with
    // the old epoch gets the bumped one (Kafka's `retryOnEpochBump`), not a second bump.
    let cluster = TxnCluster::start(true, (1000, 4), |_, req, model| match req {
        Req::EndTxn { .. } if model.nth(ApiKey::EndTxn) == 1 => {
            model.producer = (1000, 5);
            Some(Action::Close)
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    for _ in 0..2 {
        producer.begin_transaction().unwrap();
        let futures = send_all(&producer, &[0]).await;
        within(producer.commit_transaction()).await.expect("commit");
        delivered(futures).await;
    }
    assert_eq!(
        cluster.end_txns(),
        vec![
            end_txn(1, 1000, 4, true, 5),
            end_txn(1, 1000, 4, true, 5),
            end_txn(1, 1000, 5, true, 5),
        ]
    );
    assert_eq!(
        cluster.produced(),
        vec![(0, 1000, 4, 0, 1), (0, 1000, 5, 0, 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v2_produce_concurrent_transactions_is_retried_not_made_abortable() {
    // Kafka 4.x: the leader adds the partition to the transaction itself and, while the previous
    // transaction's markers are still being written, answers CONCURRENT_TRANSACTIONS once its
    // own retries (add.partitions.to.txn.retry.backoff.max.ms) run out. Kafka and Java treat it
    // as retriable.
    let cluster = TxnCluster::start(true, (1000, 0), |_, req, model| match req {
        Req::Produce { .. } if model.nth(ApiKey::Produce) == 1 => {
            Some(refuse(req, CONCURRENT_TRANSACTIONS, model))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0]).await;
    within(producer.commit_transaction())
        .await
        .expect("the produce is retried and the commit succeeds");
    for f in futures {
        let md = within(f).await.expect("record delivered");
        assert_eq!(md.offset, Some(0));
    }
    assert_eq!(
        cluster.produced(),
        vec![(0, 1000, 0, 0, 1), (0, 1000, 0, 0, 1)],
        "the same batch again: same producer id, epoch and sequence"
    );
    assert_eq!(cluster.end_txns(), vec![end_txn(1, 1000, 0, true, 5)]);
}

// ---- v1: the client bumps the epoch after an abortable send failure (KIP-360) ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_abort_after_a_failed_send_bumps_the_epoch_and_a_timed_out_abort_is_resumed() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::Produce { .. } if model.nth(ApiKey::Produce) == 1 => {
            Some(refuse(req, OUT_OF_ORDER_SEQUENCE_NUMBER, model))
        }
        // The bump that ends the abort gets no answer until the test heals the coordinator.
        Req::InitProducerId { producer_id: 7, .. } if model.faulty => Some(Action::Close),
        Req::InitProducerId {
            producer_id: 7,
            epoch: 0,
        } => {
            model.producer = (7, 1);
            None
        }
        _ => None,
    })
    .await;
    let mut config = cluster.config();
    config.max_block = Duration::from_secs(2);
    let producer = Producer::connect(config).await.expect("connect");
    within(producer.init_transactions()).await.expect("init");
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0]).await;
    for f in futures {
        let e = within(f).await.expect_err("the broker refused the batch");
        assert_eq!(e.class(), ErrorClass::Abortable, "{e}");
    }
    let e = within(producer.commit_transaction())
        .await
        .expect_err("a transaction with a failed send cannot commit");
    assert_eq!(e.class(), ErrorClass::Abortable, "{e}");
    let e = within(producer.abort_transaction())
        .await
        .expect_err("the epoch bump gets no answer within max.block.ms");
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    assert!(
        producer.begin_transaction().is_err(),
        "the abort is not over"
    );
    cluster.script.model.lock().unwrap().faulty = false;
    within(producer.abort_transaction())
        .await
        .expect("calling abort again finishes the same abort");
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0]).await;
    within(producer.commit_transaction()).await.expect("commit");
    delivered(futures).await;
    assert_eq!(
        cluster.end_txns(),
        vec![
            end_txn(1, 7, 0, false, V1_END_TXN),
            end_txn(1, 7, 1, true, V1_END_TXN)
        ],
        "one EndTxn(abort) at the old epoch, then the commit at the bumped one"
    );
    let inits = cluster.requests(|r| matches!(r, Req::InitProducerId { .. }));
    assert!(inits.len() >= 3, "{inits:?}");
    assert_eq!(
        inits[0].1,
        Req::InitProducerId {
            producer_id: -1,
            epoch: -1
        }
    );
    assert!(
        inits[1..].iter().all(|(_, r)| *r
            == Req::InitProducerId {
                producer_id: 7,
                epoch: 0
            }),
        "the bump names the current id and epoch (KIP-360): {inits:?}"
    );
    assert_eq!(
        cluster.produced(),
        vec![(0, 7, 0, 0, 1), (0, 7, 1, 0, 1)],
        "the next transaction starts at sequence 0 under the bumped epoch"
    );
}

// ---- TxnOffsetCommit: only the partitions that failed are sent again ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_offset_commit_retries_only_the_partitions_that_failed() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::TxnOffsetCommit { partitions, .. } if model.nth(ApiKey::TxnOffsetCommit) == 1 => {
            // Partition 0 is committed; partition 1's group coordinator is still loading.
            let codes = partitions.iter().map(|&(p, _)| {
                (
                    p,
                    if p == 1 {
                        COORDINATOR_LOAD_IN_PROGRESS
                    } else {
                        0
                    },
                )
            });
            Some(txn_offset_commit_answer(codes, model.version))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let offsets = [
        (TopicPartition::new(TOPIC, 0), 10, None),
        (TopicPartition::new(TOPIC, 1), 20, None),
    ];
    within(producer.send_offsets_to_transaction(&offsets, &ConsumerGroupMetadata::new(GROUP)))
        .await
        .expect("offsets committed");
    within(producer.commit_transaction()).await.expect("commit");
    let commits: Vec<Vec<(i32, i64)>> = cluster
        .requests(|r| matches!(r, Req::TxnOffsetCommit { .. }))
        .into_iter()
        .map(|(_, r)| match r {
            Req::TxnOffsetCommit { partitions, .. } => partitions,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(commits, vec![vec![(0, 10), (1, 20)], vec![(1, 20)]]);
}

// ---- a Produce that is never answered: the delivery times out inside a transaction ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_produce_never_answered_times_out_as_unknown_and_the_abort_bumps_the_epoch() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::Produce { .. } if model.faulty => Some(Action::NoReply),
        Req::InitProducerId {
            producer_id: 7,
            epoch: 0,
        } => {
            model.producer = (7, 1);
            None
        }
        _ => None,
    })
    .await;
    let mut config = cluster.config();
    config.delivery_timeout = Duration::from_secs(4);
    let producer = Producer::connect(config).await.expect("connect");
    within(producer.init_transactions()).await.expect("init");
    producer.begin_transaction().unwrap();
    let started = std::time::Instant::now();
    for f in send_all(&producer, &[0]).await {
        let e = within(f).await.expect_err("the broker never answers");
        assert!(e.outcome_unknown(), "{e}");
        assert!(matches!(e, Error::Undelivered { .. }), "{e:?}");
    }
    // delivery.timeout.ms (4 s) plus one request timeout (2 s), with slack for a loaded machine.
    let took = started.elapsed();
    assert!(took <= Duration::from_secs(9), "settled after {took:?}");
    let e = within(producer.commit_transaction())
        .await
        .expect_err("a transaction with an undelivered record cannot commit");
    assert_eq!(e.class(), ErrorClass::Abortable, "{e}");
    cluster.script.model.lock().unwrap().faulty = false;
    within(producer.abort_transaction()).await.expect("abort");
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0]).await;
    within(producer.commit_transaction()).await.expect("commit");
    delivered(futures).await;
    let produced = cluster.produced();
    assert!(
        produced[..produced.len() - 1]
            .iter()
            .all(|b| *b == (0, 7, 0, 0, 1)),
        "every attempt of the stuck batch: {produced:?}"
    );
    assert_eq!(
        produced.last(),
        Some(&(0, 7, 1, 0, 1)),
        "the next transaction starts at sequence 0 under the bumped epoch"
    );
    assert_eq!(
        cluster.end_txns(),
        vec![
            end_txn(1, 7, 0, false, V1_END_TXN),
            end_txn(1, 7, 1, true, V1_END_TXN)
        ]
    );
}

// ---- answers that leave requested partitions out ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn txn_offset_commit_answer_leaving_a_partition_out_sends_it_again_before_the_commit() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::TxnOffsetCommit { partitions, .. } if model.nth(ApiKey::TxnOffsetCommit) == 1 => {
            // Partition 0 committed; partition 1 not in the answer at all.
            let codes = partitions
                .iter()
                .filter(|&&(p, _)| p != 1)
                .map(|&(p, _)| (p, 0));
            Some(txn_offset_commit_answer(codes, model.version))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let offsets = [
        (TopicPartition::new(TOPIC, 0), 10, None),
        (TopicPartition::new(TOPIC, 1), 20, None),
    ];
    within(producer.send_offsets_to_transaction(&offsets, &ConsumerGroupMetadata::new(GROUP)))
        .await
        .expect("offsets committed");
    // Before the call returned, partition 1 was sent again and answered.
    let commits: Vec<Vec<(i32, i64)>> = cluster
        .requests(|r| matches!(r, Req::TxnOffsetCommit { .. }))
        .into_iter()
        .map(|(_, r)| match r {
            Req::TxnOffsetCommit { partitions, .. } => partitions,
            _ => unreachable!(),
        })
        .collect();
    assert_eq!(commits, vec![vec![(0, 10), (1, 20)], vec![(1, 20)]]);
    within(producer.commit_transaction()).await.expect("commit");
    assert_eq!(cluster.end_txns(), vec![end_txn(1, 7, 0, true, V1_END_TXN)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn add_partitions_answer_leaving_a_partition_out_is_asked_again_after_the_backoff() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::AddPartitions { partitions, .. } if model.faulty => {
            // Partition 1 is never in the answer while the fault lasts.
            let results = partitions
                .iter()
                .filter(|&&p| p != 1)
                .map(|&p| AddPartitionsToTxnPartitionResult::default().with_partition_index(p))
                .collect();
            Some(Action::reply(
                &AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(vec![
                    AddPartitionsToTxnTopicResult::default()
                        .with_name(TopicName(sb(TOPIC)))
                        .with_results_by_partition(results),
                ]),
                model.version,
            ))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    producer.begin_transaction().unwrap();
    let futures = send_all(&producer, &[0, 1]).await;
    let window = Duration::from_millis(500);
    tokio::time::sleep(window).await;
    let asked = cluster
        .requests(|r| matches!(r, Req::AddPartitions { .. }))
        .len();
    // With retry.backoff.ms 10..50 ms about a dozen; paced by the round trip alone, thousands.
    assert!(
        (2..=30).contains(&asked),
        "{asked} AddPartitionsToTxn in {window:?}"
    );
    assert!(
        cluster.produced().iter().all(|&(p, ..)| p != 1),
        "partition 1 was never added: nothing may be produced to it"
    );
    cluster.script.model.lock().unwrap().faulty = false;
    within(producer.commit_transaction()).await.expect("commit");
    delivered(futures).await;
    let log = cluster.log();
    // The last AddPartitionsToTxn is the one answered for partition 1.
    let added = log
        .iter()
        .rposition(
            |(_, r)| matches!(r, Req::AddPartitions { partitions, .. } if partitions == &[1]),
        )
        .expect("partition 1 asked for alone");
    let produced = log
        .iter()
        .position(
            |(_, r)| matches!(r, Req::Produce { batches, .. } if batches.iter().any(|b| b.0 == 1)),
        )
        .expect("partition 1 produced");
    assert!(added < produced);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_refused_then_aborted_do_not_block_the_next_transactions_offsets() {
    const ILLEGAL_GENERATION: i16 = 22;
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::TxnOffsetCommit { .. } if model.nth(ApiKey::TxnOffsetCommit) == 1 => {
            Some(refuse(req, ILLEGAL_GENERATION, model))
        }
        _ => None,
    })
    .await;
    let producer = cluster.producer().await;
    let group = ConsumerGroupMetadata::new(GROUP);
    producer.begin_transaction().unwrap();
    let offsets = [(TopicPartition::new(TOPIC, 0), 10, None)];
    let err = within(producer.send_offsets_to_transaction(&offsets, &group))
        .await
        .expect_err("the group refused the generation");
    assert_eq!(err.class(), ErrorClass::Abortable, "{err}");
    within(producer.abort_transaction()).await.expect("abort");
    producer.begin_transaction().unwrap();
    let offsets = [(TopicPartition::new(TOPIC, 0), 11, None)];
    within(producer.send_offsets_to_transaction(&offsets, &group))
        .await
        .expect("the next transaction's offsets are sent");
    within(producer.commit_transaction()).await.expect("commit");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_still_retried_when_aborted_do_not_block_the_next_transactions_offsets() {
    let cluster = TxnCluster::start(false, (7, 0), |_, req, model| match req {
        Req::TxnOffsetCommit { .. } if model.faulty => {
            Some(refuse(req, COORDINATOR_LOAD_IN_PROGRESS, model))
        }
        _ => None,
    })
    .await;
    let mut config = cluster.config();
    config.max_block = Duration::from_millis(500);
    let producer = Producer::connect(config).await.expect("connect");
    within(producer.init_transactions()).await.expect("init");
    let group = ConsumerGroupMetadata::new(GROUP);
    producer.begin_transaction().unwrap();
    let offsets = [(TopicPartition::new(TOPIC, 0), 10, None)];
    let err = within(producer.send_offsets_to_transaction(&offsets, &group))
        .await
        .expect_err("the group coordinator is still loading");
    assert!(matches!(err, Error::Timeout { .. }), "{err}");
    within(producer.abort_transaction()).await.expect("abort");
    cluster.script.model.lock().unwrap().faulty = false;
    producer.begin_transaction().unwrap();
    let offsets = [(TopicPartition::new(TOPIC, 0), 11, None)];
    within(producer.send_offsets_to_transaction(&offsets, &group))
        .await
        .expect("the next transaction's offsets are sent");
    within(producer.commit_transaction()).await.expect("commit");
    let last = cluster
        .requests(|r| matches!(r, Req::TxnOffsetCommit { .. }))
        .pop()
        .map(|(_, r)| r);
    assert!(
        matches!(last, Some(Req::TxnOffsetCommit { ref partitions, .. }) if partitions == &[(0, 11)]),
        "{last:?}"
    );
}
