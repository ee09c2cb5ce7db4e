//! Consumer group administration: list the groups every broker coordinates, describe groups
//! (members, their subscriptions and assignments), read, set and delete a group's committed
//! offsets, and delete groups.
//!
//! Each group call goes to the group's coordinator (FindCoordinator through [`Cluster`]) and
//! retries what Java's admin client retries there (coordinator loading, moved or unavailable) until
//! the call's timeout (`default.api.timeout.ms`, see [`crate::admin`]).

use std::collections::{BTreeMap, BTreeSet};

use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::OffsetFetchRequestGroup;
use kafka_protocol::messages::{
    ApiKey, DeleteGroupsRequest, DescribeGroupsRequest, GroupId, ListGroupsRequest,
    OffsetCommitRequest, OffsetDeleteRequest, OffsetFetchRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use super::deadline::Call;
use super::Admin;
use crate::cluster::{CoordinatorKind, TopicsQuery};
use crate::error::{Error, Result};
use crate::net::{Connection, Lane};
use crate::record::TopicPartition;
use crate::state::consumer_protocol::{decode_assignment, decode_subscription};

/// One group as [`Admin::list_groups`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// The group id.
    pub group_id: String,
    /// `consumer` for consumer groups; connect workers and others use their own; empty for groups
    /// that only commit offsets.
    pub protocol_type: String,
    /// `Stable`, `Empty`, `PreparingRebalance`, ... when the broker says (ListGroups v4+).
    pub state: Option<String>,
    /// `classic` or `consumer` (KIP-848) when the broker says (ListGroups v5+).
    pub group_type: Option<String>,
    /// The node id of the broker coordinating the group.
    pub coordinator: i32,
}

/// What [`Admin::describe_groups`] returns for one group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// The group id.
    pub group_id: String,
    /// `Stable`, `Empty`, `PreparingRebalance`, `CompletingRebalance`, or `Dead` for a group that
    /// does not exist.
    pub state: String,
    /// `consumer` for consumer groups.
    pub protocol_type: String,
    /// The protocol chosen for the current generation: for consumer groups, the assignor
    /// (`range`, `cooperative-sticky`, ...).
    pub protocol: String,
    /// The members, in the coordinator's order.
    pub members: Vec<MemberDescription>,
    /// The node id of the broker coordinating the group.
    pub coordinator: i32,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    /// The member id the coordinator gave it.
    pub member_id: String,
    /// Its `group.instance.id` (static membership), if any.
    pub group_instance_id: Option<String>,
    /// Its `client.id`.
    pub client_id: String,
    /// The address it connected from, as the broker saw it.
    pub client_host: String,
    /// The topics it subscribed to, decoded from its ConsumerProtocol subscription. `None` when the
    /// group is not a consumer group or the bytes do not decode.
    pub subscription: Option<Vec<String>>,
    /// The partitions assigned to it, decoded from its ConsumerProtocol assignment (empty while
    /// a rebalance is in progress). `None` when the group is not a consumer group or the bytes do
    /// not decode.
    pub assignment: Option<Vec<TopicPartition>>,
}

/// One committed offset of a group, from [`Admin::list_group_offsets`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    /// The offset of the next record the group will read.
    pub offset: i64,
    /// The leader epoch committed with it, if any.
    pub leader_epoch: Option<i32>,
    /// The metadata string committed with it (often empty).
    pub metadata: Option<String>,
}

impl Admin {
    /// Every group the cluster knows: one ListGroups per broker (each lists the groups it
    /// coordinates), sorted by group id. Fails if any broker cannot be asked, as Java's
    /// `listConsumerGroups` reports per-broker failures.
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// for group in admin.list_groups().await? {
    ///     println!("{}", group.group_id);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// Cancellation: dropping the future changes nothing (it only reads).
    #[tracing::instrument(
        name = "kafka.admin.list_groups",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn list_groups(&self) -> Result<Vec<GroupListing>> {
        let call = self.call(ApiKey::ListGroups);
        call.run(self.list_groups_in()).await
    }

    async fn list_groups_in(&self) -> Result<Vec<GroupListing>> {
        let snapshot = self.cluster.refresh_metadata(TopicsQuery::None).await?;
        let brokers: Vec<i32> = snapshot.brokers.keys().copied().collect();
        let mut out = Vec::new();
        for node in brokers {
            let response = self
                .retrying_on(node, |conn| async move {
                    let response = conn.send(&ListGroupsRequest::default()).await?;
                    Error::check_code(
                        ApiKey::ListGroups,
                        Some(conn.broker()),
                        response.error_code,
                        None,
                    )?;
                    Ok(response)
                })
                .await?;
            for g in response.groups {
                out.push(GroupListing {
                    group_id: g.group_id.0.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    state: Some(g.group_state.to_string()).filter(|s| !s.is_empty()),
                    group_type: Some(g.group_type.to_string()).filter(|s| !s.is_empty()),
                    coordinator: node,
                });
            }
        }
        out.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        Ok(out)
    }

    /// Describes classic groups: state, chosen assignor, members with their subscriptions and
    /// assigned partitions. A group that does not exist is described with state `Dead` and no
    /// members (as the coordinator answers), and so is a KIP-848 `consumer` group, which this
    /// API does not describe (use [`Admin::describe_consumer_groups`]). Any other error the
    /// coordinator gives for a group (GROUP_AUTHORIZATION_FAILED, ...) fails the call; a moved or
    /// loading coordinator is asked again until `default.api.timeout.ms`.
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// for group in admin.describe_groups(&["billing"]).await? {
    ///     println!("{}: {} members", group.group_id, group.members.len());
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// Cancellation: dropping the future changes nothing (it only reads).
    #[tracing::instrument(
        name = "kafka.admin.describe_groups",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn describe_groups(&self, groups: &[&str]) -> Result<Vec<GroupDescription>> {
        check_group_ids(groups)?;
        let call = self.call(ApiKey::DescribeGroups);
        call.run(self.describe_groups_in(&call, groups)).await
    }

    async fn describe_groups_in(
        &self,
        call: &Call,
        groups: &[&str],
    ) -> Result<Vec<GroupDescription>> {
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            let (node, described) = self
                .with_group_coordinator(call, group, |conn| async move {
                    let request =
                        DescribeGroupsRequest::default().with_groups(vec![group_id(group)]);
                    let response = conn.send(&request).await?;
                    let described =
                        response
                            .groups
                            .into_iter()
                            .next()
                            .ok_or_else(|| Error::Protocol {
                                api: Some(crate::error::ApiKey::DescribeGroups),
                                broker: Some(conn.broker().clone()),
                                message: format!("no answer for group `{group}`"),
                            })?;
                    // GROUP_ID_NOT_FOUND (DescribeGroups v6+) is the documented `Dead`
                    // description; any other error is the group's: a moved or loading
                    // coordinator is retried, an authorization failure reaches the caller.
                    const GROUP_ID_NOT_FOUND: i16 = 69;
                    if described.error_code != GROUP_ID_NOT_FOUND {
                        Error::check_code(
                            ApiKey::DescribeGroups,
                            Some(conn.broker()),
                            described.error_code,
                            described.error_message.as_ref().map(|m| m.as_str()),
                        )?;
                    }
                    Ok(described)
                })
                .await?;
            let consumer = described.protocol_type.as_str() == "consumer";
            let members = described
                .members
                .into_iter()
                .map(|m| MemberDescription {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.group_instance_id.map(|s| s.to_string()),
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    subscription: consumer
                        .then(|| decode_subscription(&m.member_metadata).ok())
                        .flatten()
                        .map(|s| s.topics),
                    assignment: consumer
                        .then(|| {
                            // A member between JoinGroup and SyncGroup has no assignment bytes yet.
                            if m.member_assignment.is_empty() {
                                Some(Vec::new())
                            } else {
                                decode_assignment(&m.member_assignment)
                                    .ok()
                                    .map(|a| a.partitions)
                            }
                        })
                        .flatten(),
                })
                .collect();
            out.push(GroupDescription {
                group_id: described.group_id.0.to_string(),
                state: described.group_state.to_string(),
                protocol_type: described.protocol_type.to_string(),
                protocol: described.protocol_data.to_string(),
                members,
                coordinator: node,
            });
        }
        Ok(out)
    }

    /// Every offset `group` has committed, by partition (Java `listConsumerGroupOffsets`). Empty
    /// for a group that has committed nothing or does not exist.
    ///
    /// Cancellation: dropping the future changes nothing (it only reads).
    #[tracing::instrument(
        name = "kafka.admin.list_group_offsets",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn list_group_offsets(
        &self,
        group: &str,
    ) -> Result<BTreeMap<TopicPartition, CommittedOffset>> {
        check_group_ids(&[group])?;
        let call = self.call(ApiKey::OffsetFetch);
        let (_, response) = call
            .run(
                self.with_group_coordinator(&call, group, |conn| async move {
                    let version = conn.version_for::<OffsetFetchRequest>()?;
                    let mut request = OffsetFetchRequest::default();
                    // `topics: None` asks for every partition the group has committed.
                    if version >= 8 {
                        request.groups = vec![OffsetFetchRequestGroup::default()
                            .with_group_id(group_id(group))
                            .with_topics(None)];
                    } else {
                        request.group_id = group_id(group);
                        request.topics = None;
                    }
                    let response = conn.send_version(&request, version, None).await?;
                    let mut group_error = response.error_code;
                    let mut offsets = BTreeMap::new();
                    let mut add = |topic: &str, partition: i32, offset, epoch: i32, meta, code| {
                        let tp = TopicPartition::new(topic, partition);
                        Error::check_code(
                            ApiKey::OffsetFetch,
                            Some(conn.broker()),
                            code,
                            Some(&format!("group `{group}`, partition {tp}")),
                        )?;
                        if offset >= 0 {
                            offsets.insert(
                                tp,
                                CommittedOffset {
                                    offset,
                                    leader_epoch: (epoch >= 0).then_some(epoch),
                                    metadata: meta,
                                },
                            );
                        }
                        Ok::<(), Error>(())
                    };
                    if version >= 8 {
                        for g in &response.groups {
                            if g.error_code != 0 {
                                group_error = g.error_code;
                            }
                            for t in &g.topics {
                                for p in &t.partitions {
                                    add(
                                        t.name.0.as_str(),
                                        p.partition_index,
                                        p.committed_offset,
                                        p.committed_leader_epoch,
                                        p.metadata.as_ref().map(|m| m.to_string()),
                                        p.error_code,
                                    )?;
                                }
                            }
                        }
                    } else {
                        for t in &response.topics {
                            for p in &t.partitions {
                                add(
                                    t.name.0.as_str(),
                                    p.partition_index,
                                    p.committed_offset,
                                    p.committed_leader_epoch,
                                    p.metadata.as_ref().map(|m| m.to_string()),
                                    p.error_code,
                                )?;
                            }
                        }
                    }
                    Error::check_code(
                        ApiKey::OffsetFetch,
                        Some(conn.broker()),
                        group_error,
                        Some(&format!("group `{group}`")),
                    )?;
                    Ok(offsets)
                }),
            )
            .await?;
        Ok(response)
    }

    /// Deletes groups with no active members, with their committed offsets. A group that still
    /// has members fails with NON_EMPTY_GROUP, one that does not exist with GROUP_ID_NOT_FOUND.
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// admin.delete_groups(&["old-group"]).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Cancellation: if dropped after the request was sent, the groups may have been deleted.
    #[tracing::instrument(
        name = "kafka.admin.delete_groups",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn delete_groups(&self, groups: &[&str]) -> Result<()> {
        check_group_ids(groups)?;
        let call = self.call(ApiKey::DeleteGroups);
        call.run(self.delete_groups_in(&call, groups)).await
    }

    async fn delete_groups_in(&self, call: &Call, groups: &[&str]) -> Result<()> {
        let unique: BTreeSet<&str> = groups.iter().copied().collect();
        for group in unique {
            self.with_group_coordinator(call, group, |conn| async move {
                let request =
                    DeleteGroupsRequest::default().with_groups_names(vec![group_id(group)]);
                let response = call.send(&conn, &request).await?;
                for r in &response.results {
                    Error::check_code(
                        ApiKey::DeleteGroups,
                        Some(conn.broker()),
                        r.error_code,
                        Some(&format!("group `{}`", r.group_id.0)),
                    )?;
                }
                Ok(())
            })
            .await?;
        }
        Ok(())
    }

    /// Sets `group`'s committed offsets (Java `alterConsumerGroupOffsets`, the tools'
    /// `--reset-offsets`). The group must have no active members, or the coordinator refuses
    /// with UNKNOWN_MEMBER_ID; offsets of partitions not named are left as they are.
    ///
    /// Cancellation: if dropped after the request was sent, the offsets may have been committed.
    #[tracing::instrument(
        name = "kafka.admin.alter_group_offsets",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn alter_group_offsets(
        &self,
        group: &str,
        offsets: &[(TopicPartition, i64)],
    ) -> Result<()> {
        check_group_ids(&[group])?;
        // Java refuses these before sending ("Invalid negative offset"): committed, a negative
        // offset reads back as no offset, and the group silently falls back to its reset policy.
        if let Some((tp, offset)) = offsets.iter().find(|(_, o)| *o < 0) {
            return Err(Error::InvalidArgument(format!(
                "offset {offset} for {tp} is negative; nothing was changed"
            )));
        }
        let mut by_topic: BTreeMap<&str, Vec<OffsetCommitRequestPartition>> = BTreeMap::new();
        for (tp, offset) in offsets {
            by_topic.entry(&tp.topic).or_default().push(
                OffsetCommitRequestPartition::default()
                    .with_partition_index(tp.partition)
                    .with_committed_offset(*offset)
                    .with_committed_leader_epoch(-1),
            );
        }
        // Generation -1 and no member id: an admin commit, accepted only by an empty group.
        let request = OffsetCommitRequest::default()
            .with_group_id(group_id(group))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_owned())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let call = self.call(ApiKey::OffsetCommit);
        let commit = self.with_group_coordinator(&call, group, |conn| {
            let request = request.clone();
            let call = &call;
            async move {
                let response = call.send(&conn, &request).await?;
                check_partition_codes(
                    ApiKey::OffsetCommit,
                    &conn,
                    group,
                    response.topics.iter().flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(move |p| (t.name.0.as_str(), p.partition_index, p.error_code))
                    }),
                )
            }
        });
        call.run(commit).await?;
        Ok(())
    }

    /// Deletes `group`'s committed offsets of `partitions` (Java `deleteConsumerGroupOffsets`).
    /// Refused with GROUP_SUBSCRIBED_TO_TOPIC while a member of the group consumes the topic.
    ///
    /// Cancellation: if dropped after the request was sent, the offsets may have been deleted.
    #[tracing::instrument(
        name = "kafka.admin.delete_group_offsets",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn delete_group_offsets(
        &self,
        group: &str,
        partitions: &[TopicPartition],
    ) -> Result<()> {
        check_group_ids(&[group])?;
        let mut by_topic: BTreeMap<&str, Vec<OffsetDeleteRequestPartition>> = BTreeMap::new();
        for tp in partitions {
            by_topic
                .entry(&tp.topic)
                .or_default()
                .push(OffsetDeleteRequestPartition::default().with_partition_index(tp.partition));
        }
        let request = OffsetDeleteRequest::default()
            .with_group_id(group_id(group))
            .with_topics(
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        OffsetDeleteRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_string(t.to_owned())))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let call = self.call(ApiKey::OffsetDelete);
        let delete = self.with_group_coordinator(&call, group, |conn| {
            let request = request.clone();
            let call = &call;
            async move {
                let response = call.send(&conn, &request).await?;
                Error::check_code(
                    ApiKey::OffsetDelete,
                    Some(conn.broker()),
                    response.error_code,
                    Some(&format!("group `{group}`")),
                )?;
                check_partition_codes(
                    ApiKey::OffsetDelete,
                    &conn,
                    group,
                    response.topics.iter().flat_map(|t| {
                        t.partitions
                            .iter()
                            .map(move |p| (t.name.0.as_str(), p.partition_index, p.error_code))
                    }),
                )
            }
        });
        call.run(delete).await?;
        Ok(())
    }

    /// Runs `op` against `group`'s coordinator, finding it again and retrying while the answer is
    /// a coordinator error (loading, moved, unavailable) or the connection failed, after each
    /// backoff until `call`'s deadline ends it. Returns the coordinator's node id with the result.
    pub(super) async fn with_group_coordinator<T, F, Fut>(
        &self,
        call: &Call,
        group: &str,
        op: F,
    ) -> Result<(i32, T)>
    where
        F: Fn(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        self.with_coordinator(call, CoordinatorKind::Group, group, op)
            .await
    }

    /// Runs `op` against the `kind` coordinator of `key`, as
    /// [`Admin::with_group_coordinator`] does for groups.
    pub(super) async fn with_coordinator<T, F, Fut>(
        &self,
        call: &Call,
        kind: CoordinatorKind,
        key: &str,
        op: F,
    ) -> Result<(i32, T)>
    where
        F: Fn(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let group = key;
        let mut backoff = self.cluster.retry_backoff();
        loop {
            let (node, conn) = match self
                .cluster
                .coordinator_by(kind, group, call.deadline())
                .await
            {
                Ok(found) => found,
                // The lookup's own retries ran to the deadline, or no broker answered: the
                // call's deadline decides when to stop.
                Err(e) if e.is_retriable() && !matches!(e, Error::Timeout { .. }) => {
                    debug!(error = %e, ?kind, key, "coordinator lookup will be retried");
                    tokio::time::sleep(backoff.next_delay()).await;
                    continue;
                }
                Err(e) => return Err(e),
            };
            let error = match op(conn).await {
                Ok(value) => return Ok((node, value)),
                Err(e) => e,
            };
            let moved = matches!(
                error,
                Error::Broker {
                    code: crate::error::ErrorCode::NotCoordinator
                        | crate::error::ErrorCode::CoordinatorNotAvailable,
                    ..
                }
            );
            let loading = matches!(
                error,
                Error::Broker {
                    code: crate::error::ErrorCode::CoordinatorLoadInProgress,
                    ..
                }
            );
            let connection = matches!(error, Error::Connect { .. } | Error::ConnectionLost { .. });
            if !(moved || loading || connection) {
                return Err(error);
            }
            if moved || connection {
                self.cluster.invalidate_coordinator(kind, group, node);
            }
            debug!(error = %error, ?kind, key, "coordinator request will be retried");
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// Runs `op` against broker `node`, retrying connection failures and retriable broker errors
    /// after each backoff until the call's deadline ends it.
    pub(super) async fn retrying_on<T, F, Fut>(&self, node: i32, op: F) -> Result<T>
    where
        F: Fn(Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut backoff = self.cluster.retry_backoff();
        loop {
            let attempt = match self.cluster.connection(node, Lane::Control).await {
                Ok(conn) => op(conn).await,
                Err(e) => Err(e),
            };
            match attempt {
                Err(e) if e.is_retriable() && !matches!(e, Error::Timeout { .. }) => {
                    debug!(error = %e, node, "admin request will be retried");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                other => return other,
            }
        }
    }
}

pub(super) fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_owned()))
}

/// Fails with the first partition error code in an offset answer, naming group and partition.
fn check_partition_codes<'a>(
    api: ApiKey,
    conn: &Connection,
    group: &str,
    codes: impl Iterator<Item = (&'a str, i32, i16)>,
) -> Result<()> {
    for (topic, partition, code) in codes {
        Error::check_code(
            api,
            Some(conn.broker()),
            code,
            Some(&format!("group `{group}`, partition {topic}-{partition}")),
        )?;
    }
    Ok(())
}

/// An empty group id names no group (Java: `InvalidGroupIdException` before sending): refused,
/// where the coordinator would describe it as a `Dead` group.
pub(crate) fn check_group_ids(groups: &[&str]) -> Result<()> {
    if groups.iter().any(|g| g.is_empty()) {
        return Err(Error::InvalidArgument(
            "a group id must not be empty".into(),
        ));
    }
    Ok(())
}
