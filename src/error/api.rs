//! Kafka's request APIs as josefk's own type, so errors can name the request without exposing the
//! protocol crate's.

use std::fmt;

macro_rules! api_keys {
    ($(($variant:ident, $code:literal),)*) => {
        /// A Kafka request API (the protocol's `ApiKey`), as named in errors.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[non_exhaustive]
        pub enum ApiKey {
            $(
                #[doc = concat!("The ", stringify!($variant), " API (key ", stringify!($code), ").")]
                $variant,
            )*
        }

        impl ApiKey {
            /// The API for a protocol key number, if josefk knows it.
            pub const fn from_code(code: i16) -> Option<ApiKey> {
                match code {
                    $($code => Some(ApiKey::$variant),)*
                    _ => None,
                }
            }

            /// The protocol's key number.
            pub const fn code(self) -> i16 {
                match self {
                    $(ApiKey::$variant => $code,)*
                }
            }

            /// The same API in the protocol crate's terms (total: generated from its list).
            pub(crate) const fn from_protocol(api: kafka_protocol::messages::ApiKey) -> ApiKey {
                match api {
                    $(kafka_protocol::messages::ApiKey::$variant => ApiKey::$variant,)*
                }
            }

            /// The API's name as the protocol guide writes it (`Produce`, `FindCoordinator`).
            pub const fn name(self) -> &'static str {
                match self {
                    $(ApiKey::$variant => stringify!($variant),)*
                }
            }
        }
    };
}

impl ApiKey {
    /// Whether a request of this API only reads (so a timed-out one changed nothing).
    pub(crate) fn only_reads(self) -> bool {
        matches!(
            self,
            ApiKey::Metadata
                | ApiKey::ApiVersions
                | ApiKey::FindCoordinator
                | ApiKey::ListOffsets
                | ApiKey::Fetch
                | ApiKey::OffsetFetch
                | ApiKey::DescribeGroups
                | ApiKey::ListGroups
                | ApiKey::DescribeConfigs
                | ApiKey::DescribeCluster
                | ApiKey::DescribeAcls
                | ApiKey::DescribeProducers
                | ApiKey::DescribeTransactions
                | ApiKey::ListTransactions
                | ApiKey::DescribeLogDirs
                | ApiKey::OffsetForLeaderEpoch
        )
    }
}

impl fmt::Display for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

api_keys! {
    (Produce, 0),
    (Fetch, 1),
    (ListOffsets, 2),
    (Metadata, 3),
    (OffsetCommit, 8),
    (OffsetFetch, 9),
    (FindCoordinator, 10),
    (JoinGroup, 11),
    (Heartbeat, 12),
    (LeaveGroup, 13),
    (SyncGroup, 14),
    (DescribeGroups, 15),
    (ListGroups, 16),
    (SaslHandshake, 17),
    (ApiVersions, 18),
    (CreateTopics, 19),
    (DeleteTopics, 20),
    (DeleteRecords, 21),
    (InitProducerId, 22),
    (OffsetForLeaderEpoch, 23),
    (AddPartitionsToTxn, 24),
    (AddOffsetsToTxn, 25),
    (EndTxn, 26),
    (WriteTxnMarkers, 27),
    (TxnOffsetCommit, 28),
    (DescribeAcls, 29),
    (CreateAcls, 30),
    (DeleteAcls, 31),
    (DescribeConfigs, 32),
    (AlterConfigs, 33),
    (AlterReplicaLogDirs, 34),
    (DescribeLogDirs, 35),
    (SaslAuthenticate, 36),
    (CreatePartitions, 37),
    (CreateDelegationToken, 38),
    (RenewDelegationToken, 39),
    (ExpireDelegationToken, 40),
    (DescribeDelegationToken, 41),
    (DeleteGroups, 42),
    (ElectLeaders, 43),
    (IncrementalAlterConfigs, 44),
    (AlterPartitionReassignments, 45),
    (ListPartitionReassignments, 46),
    (OffsetDelete, 47),
    (DescribeClientQuotas, 48),
    (AlterClientQuotas, 49),
    (DescribeUserScramCredentials, 50),
    (AlterUserScramCredentials, 51),
    (Vote, 52),
    (BeginQuorumEpoch, 53),
    (EndQuorumEpoch, 54),
    (DescribeQuorum, 55),
    (AlterPartition, 56),
    (UpdateFeatures, 57),
    (Envelope, 58),
    (FetchSnapshot, 59),
    (DescribeCluster, 60),
    (DescribeProducers, 61),
    (BrokerRegistration, 62),
    (BrokerHeartbeat, 63),
    (UnregisterBroker, 64),
    (DescribeTransactions, 65),
    (ListTransactions, 66),
    (AllocateProducerIds, 67),
    (ConsumerGroupHeartbeat, 68),
    (ConsumerGroupDescribe, 69),
    (ControllerRegistration, 70),
    (GetTelemetrySubscriptions, 71),
    (PushTelemetry, 72),
    (AssignReplicasToDirs, 73),
    (ListConfigResources, 74),
    (DescribeTopicPartitions, 75),
    (ShareGroupHeartbeat, 76),
    (ShareGroupDescribe, 77),
    (ShareFetch, 78),
    (ShareAcknowledge, 79),
    (AddRaftVoter, 80),
    (RemoveRaftVoter, 81),
    (UpdateRaftVoter, 82),
    (InitializeShareGroupState, 83),
    (ReadShareGroupState, 84),
    (WriteShareGroupState, 85),
    (DeleteShareGroupState, 86),
    (ReadShareGroupStateSummary, 87),
    (DescribeShareGroupOffsets, 90),
    (AlterShareGroupOffsets, 91),
    (DeleteShareGroupOffsets, 92),
}
