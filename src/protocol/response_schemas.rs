//! josefk's own description of every response it decodes, field by field and version by version,
//! for the bounds pre-check ([`super::precheck`]). Written from Kafka's message definitions
//! (`clients/src/main/resources/common/message/*Response.json`) for the versions `kafka-protocol`
//! can decode; `precheck::tests` encodes responses with `kafka-protocol` for every version josefk
//! may choose and fails if a description disagrees, so an upgrade that changes a message is caught.
//!
//! Order matters (it is the wire order); tagged fields may sit anywhere in their struct.

use kafka_protocol::messages::ApiKey;

use super::precheck::Kind::*;
use super::precheck::{f, Field, Schema};

/// The description of `api`'s responses, if josefk has one.
pub(crate) fn schema(api: ApiKey) -> Option<&'static Schema> {
    Some(match api {
        ApiKey::ApiVersions => &API_VERSIONS,
        ApiKey::Metadata => &METADATA,
        ApiKey::Produce => &PRODUCE,
        ApiKey::Fetch => &FETCH,
        ApiKey::ListOffsets => &LIST_OFFSETS,
        ApiKey::OffsetCommit => &OFFSET_COMMIT,
        ApiKey::OffsetFetch => &OFFSET_FETCH,
        ApiKey::FindCoordinator => &FIND_COORDINATOR,
        ApiKey::JoinGroup => &JOIN_GROUP,
        ApiKey::Heartbeat => &HEARTBEAT,
        ApiKey::LeaveGroup => &LEAVE_GROUP,
        ApiKey::SyncGroup => &SYNC_GROUP,
        ApiKey::DescribeGroups => &DESCRIBE_GROUPS,
        ApiKey::CreateTopics => &CREATE_TOPICS,
        ApiKey::DeleteTopics => &DELETE_TOPICS,
        ApiKey::InitProducerId => &INIT_PRODUCER_ID,
        ApiKey::AddPartitionsToTxn => &ADD_PARTITIONS_TO_TXN,
        ApiKey::AddOffsetsToTxn => &ADD_OFFSETS_TO_TXN,
        ApiKey::EndTxn => &END_TXN,
        ApiKey::TxnOffsetCommit => &TXN_OFFSET_COMMIT,
        ApiKey::DescribeCluster => &DESCRIBE_CLUSTER,
        ApiKey::DescribeConfigs => &DESCRIBE_CONFIGS,
        ApiKey::DescribeProducers => &DESCRIBE_PRODUCERS,
        ApiKey::ListTransactions => &LIST_TRANSACTIONS,
        ApiKey::DescribeTransactions => &DESCRIBE_TRANSACTIONS,
        ApiKey::CreateAcls => &CREATE_ACLS,
        ApiKey::DescribeAcls => &DESCRIBE_ACLS,
        ApiKey::DeleteAcls => &DELETE_ACLS,
        ApiKey::WriteTxnMarkers => &WRITE_TXN_MARKERS,
        ApiKey::ListGroups => &LIST_GROUPS,
        ApiKey::DeleteGroups => &DELETE_GROUPS,
        ApiKey::OffsetDelete => &OFFSET_DELETE,
        ApiKey::CreatePartitions => &CREATE_PARTITIONS,
        ApiKey::DeleteRecords => &DELETE_RECORDS,
        ApiKey::IncrementalAlterConfigs => &INCREMENTAL_ALTER_CONFIGS,
        ApiKey::SaslHandshake => &SASL_HANDSHAKE,
        ApiKey::SaslAuthenticate => &SASL_AUTHENTICATE,
        ApiKey::ConsumerGroupHeartbeat => &CONSUMER_GROUP_HEARTBEAT,
        ApiKey::ConsumerGroupDescribe => &CONSUMER_GROUP_DESCRIBE,
        ApiKey::GetTelemetrySubscriptions => &GET_TELEMETRY_SUBSCRIPTIONS,
        ApiKey::PushTelemetry => &PUSH_TELEMETRY,
        _ => return None,
    })
}

const THROTTLE: Field = f("throttle_time_ms", Int32);
const ERROR_CODE: Field = f("error_code", Int16);
const ERROR_MESSAGE: Field = f("error_message", Str).null();

/// A broker's endpoint as Produce and Fetch return it for a new leader (KIP-951).
const NODE_ENDPOINT: &[Field] = &[
    f("node_id", Int32),
    f("host", Str),
    f("port", Int32),
    f("rack", Str).null(),
];

/// Leader id and epoch (KIP-951).
const LEADER_ID_AND_EPOCH: &[Field] = &[f("leader_id", Int32), f("leader_epoch", Int32)];

const API_VERSIONS: Schema = Schema {
    flexible_from: 3,
    fields: &[
        ERROR_CODE,
        f(
            "api_keys",
            Array(&[
                f("api_key", Int16),
                f("min_version", Int16),
                f("max_version", Int16),
            ]),
        ),
        THROTTLE.since(1),
        f(
            "supported_features",
            Array(&[
                f("name", Str),
                f("min_version", Int16),
                f("max_version", Int16),
            ]),
        )
        .since(3)
        .tag(0),
        f("finalized_features_epoch", Int64).since(3).tag(1),
        f(
            "finalized_features",
            Array(&[
                f("name", Str),
                f("max_version_level", Int16),
                f("min_version_level", Int16),
            ]),
        )
        .since(3)
        .tag(2),
        f("zk_migration_ready", Bool).since(3).tag(3),
    ],
};

const METADATA: Schema = Schema {
    flexible_from: 9,
    fields: &[
        THROTTLE.since(3),
        f(
            "brokers",
            Array(&[
                f("node_id", Int32),
                f("host", Str),
                f("port", Int32),
                f("rack", Str).since(1).null(),
            ]),
        ),
        f("cluster_id", Str).since(2).null(),
        f("controller_id", Int32).since(1),
        f(
            "topics",
            Array(&[
                ERROR_CODE,
                f("name", Str).null_from(12),
                f("topic_id", Uuid).since(10),
                f("is_internal", Bool).since(1),
                f(
                    "partitions",
                    Array(&[
                        ERROR_CODE,
                        f("partition_index", Int32),
                        f("leader_id", Int32),
                        f("leader_epoch", Int32).since(7),
                        f("replica_nodes", Int32s),
                        f("isr_nodes", Int32s),
                        f("offline_replicas", Int32s).since(5),
                    ]),
                ),
                f("topic_authorized_operations", Int32).since(8),
            ]),
        ),
        f("cluster_authorized_operations", Int32).since(8).until(10),
        ERROR_CODE.since(13),
    ],
};

const PRODUCE: Schema = Schema {
    flexible_from: 9,
    fields: &[
        f(
            "responses",
            Array(&[
                f("name", Str).until(12),
                f("topic_id", Uuid).since(13),
                f(
                    "partition_responses",
                    Array(&[
                        f("index", Int32),
                        ERROR_CODE,
                        f("base_offset", Int64),
                        f("log_append_time_ms", Int64).since(2),
                        f("log_start_offset", Int64).since(5),
                        f(
                            "record_errors",
                            Array(&[
                                f("batch_index", Int32),
                                f("batch_index_error_message", Str).null(),
                            ]),
                        )
                        .since(8),
                        ERROR_MESSAGE.since(8),
                        f("current_leader", Struct(LEADER_ID_AND_EPOCH))
                            .since(10)
                            .tag(0),
                    ]),
                ),
            ]),
        ),
        THROTTLE.since(1),
        f("node_endpoints", Array(NODE_ENDPOINT)).since(10).tag(0),
    ],
};

const FETCH: Schema = Schema {
    flexible_from: 12,
    fields: &[
        THROTTLE.since(1),
        ERROR_CODE.since(7),
        f("session_id", Int32).since(7),
        f(
            "responses",
            Array(&[
                f("topic", Str).until(12),
                f("topic_id", Uuid).since(13),
                f(
                    "partitions",
                    Array(&[
                        f("partition_index", Int32),
                        ERROR_CODE,
                        f("high_watermark", Int64),
                        f("last_stable_offset", Int64).since(4),
                        f("log_start_offset", Int64).since(5),
                        f(
                            "diverging_epoch",
                            Struct(&[f("epoch", Int32), f("end_offset", Int64)]),
                        )
                        .since(12)
                        .tag(0),
                        f("current_leader", Struct(LEADER_ID_AND_EPOCH))
                            .since(12)
                            .tag(1),
                        f(
                            "snapshot_id",
                            Struct(&[f("end_offset", Int64), f("epoch", Int32)]),
                        )
                        .since(12)
                        .tag(2),
                        f(
                            "aborted_transactions",
                            Array(&[f("producer_id", Int64), f("first_offset", Int64)]),
                        )
                        .since(4)
                        .null(),
                        f("preferred_read_replica", Int32).since(11),
                        f("records", Records).null(),
                    ]),
                ),
            ]),
        ),
        f("node_endpoints", Array(NODE_ENDPOINT)).since(16).tag(0),
    ],
};

const LIST_OFFSETS: Schema = Schema {
    flexible_from: 6,
    fields: &[
        THROTTLE.since(2),
        f(
            "topics",
            Array(&[
                f("name", Str),
                f(
                    "partitions",
                    Array(&[
                        f("partition_index", Int32),
                        ERROR_CODE,
                        // v0's old_style_offsets is not described: kafka-protocol starts at v1.
                        f("timestamp", Int64).since(1),
                        f("offset", Int64).since(1),
                        f("leader_epoch", Int32).since(4),
                    ]),
                ),
            ]),
        ),
    ],
};

/// Partition results as OffsetCommit and TxnOffsetCommit return them.
const PARTITION_ERRORS: &[Field] = &[f("partition_index", Int32), ERROR_CODE];

const OFFSET_COMMIT: Schema = Schema {
    flexible_from: 8,
    fields: &[
        THROTTLE.since(3),
        f(
            "topics",
            Array(&[
                f("name", Str).until(9),
                f("topic_id", Uuid).since(10),
                f("partitions", Array(PARTITION_ERRORS)),
            ]),
        ),
    ],
};

const OFFSET_FETCH: Schema = Schema {
    flexible_from: 6,
    fields: &[
        THROTTLE.since(3),
        f(
            "topics",
            Array(&[
                f("name", Str),
                f(
                    "partitions",
                    Array(&[
                        f("partition_index", Int32),
                        f("committed_offset", Int64),
                        f("committed_leader_epoch", Int32).since(5),
                        f("metadata", Str).null(),
                        ERROR_CODE,
                    ]),
                ),
            ]),
        )
        .until(7),
        ERROR_CODE.since(2).until(7),
        f(
            "groups",
            Array(&[
                f("group_id", Str),
                f(
                    "topics",
                    Array(&[
                        f("name", Str).until(9),
                        f("topic_id", Uuid).since(10),
                        f(
                            "partitions",
                            Array(&[
                                f("partition_index", Int32),
                                f("committed_offset", Int64),
                                f("committed_leader_epoch", Int32),
                                f("metadata", Str).null(),
                                ERROR_CODE,
                            ]),
                        ),
                    ]),
                ),
                ERROR_CODE,
            ]),
        )
        .since(8),
    ],
};

const FIND_COORDINATOR: Schema = Schema {
    flexible_from: 3,
    fields: &[
        THROTTLE.since(1),
        ERROR_CODE.until(3),
        ERROR_MESSAGE.since(1).until(3),
        f("node_id", Int32).until(3),
        f("host", Str).until(3),
        f("port", Int32).until(3),
        f(
            "coordinators",
            Array(&[
                f("key", Str),
                f("node_id", Int32),
                f("host", Str),
                f("port", Int32),
                ERROR_CODE,
                ERROR_MESSAGE,
            ]),
        )
        .since(4),
    ],
};

const JOIN_GROUP: Schema = Schema {
    flexible_from: 6,
    fields: &[
        THROTTLE.since(2),
        ERROR_CODE,
        f("generation_id", Int32),
        f("protocol_type", Str).since(7).null(),
        f("protocol_name", Str).null_from(7),
        f("leader", Str),
        f("skip_assignment", Bool).since(9),
        f("member_id", Str),
        f(
            "members",
            Array(&[
                f("member_id", Str),
                f("group_instance_id", Str).since(5).null(),
                f("metadata", Bytes),
            ]),
        ),
    ],
};

/// KIP-848's heartbeat: the member's epoch, the interval, and the target assignment by topic id
/// when it changed.
const CONSUMER_GROUP_HEARTBEAT: Schema = Schema {
    flexible_from: 0,
    fields: &[
        THROTTLE,
        ERROR_CODE,
        ERROR_MESSAGE,
        f("member_id", Str).null(),
        f("member_epoch", Int32),
        f("heartbeat_interval_ms", Int32),
        f(
            "assignment",
            NullableStruct(&[f(
                "topic_partitions",
                Array(&[f("topic_id", Uuid), f("partitions", Int32s)]),
            )]),
        )
        .null(),
    ],
};

/// A member's assignment in ConsumerGroupDescribe: topic id, name and partitions.
const DESCRIBED_ASSIGNMENT: &[Field] = &[f(
    "topic_partitions",
    Array(&[
        f("topic_id", Uuid),
        f("topic_name", Str),
        f("partitions", Int32s),
    ]),
)];

const CONSUMER_GROUP_DESCRIBE: Schema = Schema {
    flexible_from: 0,
    fields: &[
        THROTTLE,
        f(
            "groups",
            Array(&[
                ERROR_CODE,
                ERROR_MESSAGE,
                f("group_id", Str),
                f("group_state", Str),
                f("group_epoch", Int32),
                f("assignment_epoch", Int32),
                f("assignor_name", Str),
                f(
                    "members",
                    Array(&[
                        f("member_id", Str),
                        f("instance_id", Str).null(),
                        f("rack_id", Str).null(),
                        f("member_epoch", Int32),
                        f("client_id", Str),
                        f("client_host", Str),
                        f("subscribed_topic_names", Strs),
                        f("subscribed_topic_regex", Str).null(),
                        f("assignment", Struct(DESCRIBED_ASSIGNMENT)),
                        f("target_assignment", Struct(DESCRIBED_ASSIGNMENT)),
                        f("member_type", Int8).since(1),
                    ]),
                ),
                f("authorized_operations", Int32),
            ]),
        ),
    ],
};

const HEARTBEAT: Schema = Schema {
    flexible_from: 4,
    fields: &[THROTTLE.since(1), ERROR_CODE],
};

const LEAVE_GROUP: Schema = Schema {
    flexible_from: 4,
    fields: &[
        THROTTLE.since(1),
        ERROR_CODE,
        f(
            "members",
            Array(&[
                f("member_id", Str),
                f("group_instance_id", Str).null(),
                ERROR_CODE,
            ]),
        )
        .since(3),
    ],
};

const SYNC_GROUP: Schema = Schema {
    flexible_from: 4,
    fields: &[
        THROTTLE.since(1),
        ERROR_CODE,
        f("protocol_type", Str).since(5).null(),
        f("protocol_name", Str).since(5).null(),
        f("assignment", Bytes),
    ],
};

const DESCRIBE_GROUPS: Schema = Schema {
    flexible_from: 5,
    fields: &[
        THROTTLE.since(1),
        f(
            "groups",
            Array(&[
                ERROR_CODE,
                ERROR_MESSAGE.since(6),
                f("group_id", Str),
                f("group_state", Str),
                f("protocol_type", Str),
                f("protocol_data", Str),
                f(
                    "members",
                    Array(&[
                        f("member_id", Str),
                        f("group_instance_id", Str).since(4).null(),
                        f("client_id", Str),
                        f("client_host", Str),
                        f("member_metadata", Bytes),
                        f("member_assignment", Bytes),
                    ]),
                ),
                f("authorized_operations", Int32).since(3),
            ]),
        ),
    ],
};

const CREATE_TOPICS: Schema = Schema {
    flexible_from: 5,
    fields: &[
        THROTTLE.since(2),
        f(
            "topics",
            Array(&[
                f("name", Str),
                f("topic_id", Uuid).since(7),
                ERROR_CODE,
                ERROR_MESSAGE.since(1),
                f("topic_config_error_code", Int16).since(5).tag(0),
                f("num_partitions", Int32).since(5),
                f("replication_factor", Int16).since(5),
                f(
                    "configs",
                    Array(&[
                        f("name", Str),
                        f("value", Str).null(),
                        f("read_only", Bool),
                        f("config_source", Int8),
                        f("is_sensitive", Bool),
                    ]),
                )
                .since(5)
                .null(),
            ]),
        ),
    ],
};

const DELETE_TOPICS: Schema = Schema {
    flexible_from: 4,
    fields: &[
        THROTTLE.since(1),
        f(
            "responses",
            Array(&[
                f("name", Str).null_from(6),
                f("topic_id", Uuid).since(6),
                ERROR_CODE,
                ERROR_MESSAGE.since(5),
            ]),
        ),
    ],
};

const INIT_PRODUCER_ID: Schema = Schema {
    flexible_from: 2,
    fields: &[
        THROTTLE,
        ERROR_CODE,
        f("producer_id", Int64),
        f("producer_epoch", Int16),
        f("ongoing_txn_producer_id", Int64).since(6),
        f("ongoing_txn_producer_epoch", Int16).since(6),
    ],
};

/// AddPartitionsToTxn's per-topic results, in both the v3-and-below and the v4+ layout.
const ADD_PARTITIONS_TOPIC_RESULTS: &[Field] = &[
    f("name", Str),
    f(
        "results_by_partition",
        Array(&[
            f("partition_index", Int32),
            f("partition_error_code", Int16),
        ]),
    ),
];

const ADD_PARTITIONS_TO_TXN: Schema = Schema {
    flexible_from: 3,
    fields: &[
        THROTTLE,
        ERROR_CODE.since(4),
        f(
            "results_by_transaction",
            Array(&[
                f("transactional_id", Str),
                f("topic_results", Array(ADD_PARTITIONS_TOPIC_RESULTS)),
            ]),
        )
        .since(4),
        f(
            "results_by_topic_v3_and_below",
            Array(ADD_PARTITIONS_TOPIC_RESULTS),
        )
        .until(3),
    ],
};

const ADD_OFFSETS_TO_TXN: Schema = Schema {
    flexible_from: 3,
    fields: &[THROTTLE, ERROR_CODE],
};

const END_TXN: Schema = Schema {
    flexible_from: 3,
    fields: &[
        THROTTLE,
        ERROR_CODE,
        f("producer_id", Int64).since(5),
        f("producer_epoch", Int16).since(5),
    ],
};

const TXN_OFFSET_COMMIT: Schema = Schema {
    flexible_from: 3,
    fields: &[
        THROTTLE,
        f(
            "topics",
            Array(&[f("name", Str), f("partitions", Array(PARTITION_ERRORS))]),
        ),
    ],
};

const DESCRIBE_CLUSTER: Schema = Schema {
    flexible_from: 0,
    fields: &[
        THROTTLE,
        ERROR_CODE,
        ERROR_MESSAGE,
        f("endpoint_type", Int8).since(1),
        f("cluster_id", Str),
        f("controller_id", Int32),
        f(
            "brokers",
            Array(&[
                f("broker_id", Int32),
                f("host", Str),
                f("port", Int32),
                f("rack", Str).null(),
                f("is_fenced", Bool).since(2),
            ]),
        ),
        f("cluster_authorized_operations", Int32),
    ],
};

const DESCRIBE_CONFIGS: Schema = Schema {
    flexible_from: 4,
    fields: &[
        THROTTLE,
        f(
            "results",
            Array(&[
                ERROR_CODE,
                ERROR_MESSAGE,
                f("resource_type", Int8),
                f("resource_name", Str),
                f(
                    "configs",
                    Array(&[
                        f("name", Str),
                        f("value", Str).null(),
                        f("read_only", Bool),
                        // v0's is_default is not described: kafka-protocol starts at v1.
                        f("config_source", Int8).since(1),
                        f("is_sensitive", Bool),
                        f(
                            "synonyms",
                            Array(&[f("name", Str), f("value", Str).null(), f("source", Int8)]),
                        )
                        .since(1),
                        f("config_type", Int8).since(3),
                        f("documentation", Str).since(3).null(),
                    ]),
                ),
            ]),
        ),
    ],
};

const DESCRIBE_PRODUCERS: Schema = Schema {
    flexible_from: 0,
    fields: &[
        THROTTLE,
        f(
            "topics",
            Array(&[
                f("name", Str),
                f(
                    "partitions",
                    Array(&[
                        f("partition_index", Int32),
                        ERROR_CODE,
                        ERROR_MESSAGE,
                        f(
                            "active_producers",
                            Array(&[
                                f("producer_id", Int64),
                                f("producer_epoch", Int32),
                                f("last_sequence", Int32),
                                f("last_timestamp", Int64),
                                f("coordinator_epoch", Int32),
                                f("current_txn_start_offset", Int64),
                            ]),
                        ),
                    ]),
                ),
            ]),
        ),
    ],
};

const LIST_GROUPS: Schema = Schema {
    flexible_from: 3,
    fields: &[
        THROTTLE.since(1),
        ERROR_CODE,
        f(
            "groups",
            Array(&[
                f("group_id", Str),
                f("protocol_type", Str),
                f("group_state", Str).since(4),
                f("group_type", Str).since(5),
            ]),
        ),
    ],
};

const DELETE_GROUPS: Schema = Schema {
    flexible_from: 2,
    fields: &[
        THROTTLE,
        // v3 adds a per-group error message; kafka-protocol stops at v2.
        f("results", Array(&[f("group_id", Str), ERROR_CODE])),
    ],
};

const OFFSET_DELETE: Schema = Schema {
    // v1 (flexible, KIP-1313) is not in kafka-protocol, which stops at v0.
    flexible_from: 1,
    fields: &[
        ERROR_CODE,
        THROTTLE,
        f(
            "topics",
            Array(&[f("name", Str), f("partitions", Array(PARTITION_ERRORS))]),
        ),
    ],
};

/// A per-resource outcome: name, error code, nullable message (CreatePartitions).
const NAMED_RESULT: &[Field] = &[f("name", Str), ERROR_CODE, ERROR_MESSAGE];

const CREATE_PARTITIONS: Schema = Schema {
    flexible_from: 2,
    fields: &[THROTTLE, f("results", Array(NAMED_RESULT))],
};

const DELETE_RECORDS: Schema = Schema {
    flexible_from: 2,
    fields: &[
        THROTTLE,
        f(
            "topics",
            Array(&[
                f("name", Str),
                f(
                    "partitions",
                    Array(&[
                        f("partition_index", Int32),
                        f("low_watermark", Int64),
                        ERROR_CODE,
                    ]),
                ),
            ]),
        ),
    ],
};

const INCREMENTAL_ALTER_CONFIGS: Schema = Schema {
    flexible_from: 1,
    fields: &[
        THROTTLE,
        f(
            "responses",
            Array(&[
                ERROR_CODE,
                ERROR_MESSAGE,
                f("resource_type", Int8),
                f("resource_name", Str),
            ]),
        ),
    ],
};

const SASL_HANDSHAKE: Schema = Schema {
    // Never flexible (KAFKA-9577 keeps it at v1).
    flexible_from: i16::MAX,
    fields: &[ERROR_CODE, f("mechanisms", Strs)],
};

const SASL_AUTHENTICATE: Schema = Schema {
    flexible_from: 2,
    fields: &[
        ERROR_CODE,
        ERROR_MESSAGE,
        f("auth_bytes", Bytes),
        f("session_lifetime_ms", Int64).since(1),
    ],
};

/// KIP-714: the client's metrics subscription.
const GET_TELEMETRY_SUBSCRIPTIONS: Schema = Schema {
    flexible_from: 0,
    fields: &[
        THROTTLE,
        ERROR_CODE,
        f("client_instance_id", Uuid),
        f("subscription_id", Int32),
        f("accepted_compression_types", Int8s),
        f("push_interval_ms", Int32),
        f("telemetry_max_bytes", Int32),
        f("delta_temporality", Bool),
        f("requested_metrics", Strs),
    ],
};

/// KIP-714: the answer to a metrics push.
const PUSH_TELEMETRY: Schema = Schema {
    flexible_from: 0,
    fields: &[THROTTLE, ERROR_CODE],
};

const LIST_TRANSACTIONS: Schema = Schema {
    flexible_from: 0,
    fields: &[
        THROTTLE,
        ERROR_CODE,
        f("unknown_state_filters", Strs),
        f(
            "transaction_states",
            Array(&[
                f("transactional_id", Str),
                f("producer_id", Int64),
                f("transaction_state", Str),
            ]),
        ),
    ],
};

const DESCRIBE_TRANSACTIONS: Schema = Schema {
    flexible_from: 0,
    fields: &[
        THROTTLE,
        f(
            "transaction_states",
            Array(&[
                ERROR_CODE,
                f("transactional_id", Str),
                f("transaction_state", Str),
                f("transaction_timeout_ms", Int32),
                f("transaction_start_time_ms", Int64),
                f("producer_id", Int64),
                f("producer_epoch", Int16),
                f("topics", Array(&[f("topic", Str), f("partitions", Int32s)])),
            ]),
        ),
    ],
};

const CREATE_ACLS: Schema = Schema {
    flexible_from: 2,
    fields: &[THROTTLE, f("results", Array(&[ERROR_CODE, ERROR_MESSAGE]))],
};

const DESCRIBE_ACLS: Schema = Schema {
    flexible_from: 2,
    fields: &[
        THROTTLE,
        ERROR_CODE,
        ERROR_MESSAGE,
        f(
            "resources",
            Array(&[
                f("resource_type", Int8),
                f("resource_name", Str),
                f("pattern_type", Int8),
                f(
                    "acls",
                    Array(&[
                        f("principal", Str),
                        f("host", Str),
                        f("operation", Int8),
                        f("permission_type", Int8),
                    ]),
                ),
            ]),
        ),
    ],
};

const DELETE_ACLS: Schema = Schema {
    flexible_from: 2,
    fields: &[
        THROTTLE,
        f(
            "filter_results",
            Array(&[
                ERROR_CODE,
                ERROR_MESSAGE,
                f(
                    "matching_acls",
                    Array(&[
                        ERROR_CODE,
                        ERROR_MESSAGE,
                        f("resource_type", Int8),
                        f("resource_name", Str),
                        f("pattern_type", Int8),
                        f("principal", Str),
                        f("host", Str),
                        f("operation", Int8),
                        f("permission_type", Int8),
                    ]),
                ),
            ]),
        ),
    ],
};

const WRITE_TXN_MARKERS: Schema = Schema {
    flexible_from: 1,
    fields: &[f(
        "markers",
        Array(&[
            f("producer_id", Int64),
            f(
                "topics",
                Array(&[
                    f("name", Str),
                    f(
                        "partitions",
                        Array(&[f("partition_index", Int32), ERROR_CODE]),
                    ),
                ]),
            ),
        ]),
    )],
};
