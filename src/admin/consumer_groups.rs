//! Describing KIP-848 `consumer` groups (ConsumerGroupDescribe, Java's `describeConsumerGroups`
//! for groups of the new protocol): group epoch, assignment epoch, the server-side assignor, and
//! per member its epoch, subscription (names and regex), current and target assignment.
//!
//! Classic groups are described by [`Admin::describe_groups`] (DescribeGroups); asked about a
//! classic group or one that does not exist, the broker answers GROUP_ID_NOT_FOUND, which this
//! call returns naming the group.

use kafka_protocol::messages::consumer_group_describe_response::Assignment;
use kafka_protocol::messages::{ApiKey, ConsumerGroupDescribeRequest};

use super::deadline::Call;
use super::groups::group_id;
use super::Admin;
use crate::error::{Error, Result};
use crate::record::TopicPartition;

/// What [`Admin::describe_consumer_groups`] returns for one `consumer` group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupDescription {
    /// The group id.
    pub group_id: String,
    /// `Empty`, `Assigning`, `Reconciling`, `Stable` or `Dead`.
    pub state: String,
    /// The group epoch: bumped whenever membership or subscriptions change.
    pub group_epoch: i32,
    /// The epoch of the target assignment (equal to the group epoch once it is computed).
    pub assignment_epoch: i32,
    /// The server-side assignor that computed the target assignment (`uniform`, `range`).
    pub assignor: String,
    /// The members, in the coordinator's order.
    pub members: Vec<ConsumerGroupMember>,
    /// The node id of the broker coordinating the group.
    pub coordinator: i32,
}

/// One member of a described `consumer` group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMember {
    /// The member id.
    pub member_id: String,
    /// Its `group.instance.id` (static membership), if any.
    pub group_instance_id: Option<String>,
    /// Its `client.rack`, if any.
    pub rack: Option<String>,
    /// The member epoch: the group epoch of the assignment it last reconciled.
    pub member_epoch: i32,
    /// Its `client.id`.
    pub client_id: String,
    /// The address it connected from, as the broker saw it.
    pub client_host: String,
    /// The topics it subscribed to by name.
    pub subscribed_topics: Vec<String>,
    /// The regex it subscribed with (`subscribe_pattern`), if any.
    pub subscribed_topic_regex: Option<String>,
    /// The partitions it owns now, sorted.
    pub assignment: Vec<TopicPartition>,
    /// The partitions the group's target assignment gives it, sorted; different from
    /// `assignment` while it reconciles.
    pub target_assignment: Vec<TopicPartition>,
    /// Whether it speaks the `consumer` protocol (`Some(false)`: a classic member in a group
    /// being migrated); `None` from brokers before ConsumerGroupDescribe v1.
    pub uses_consumer_protocol: Option<bool>,
}

impl Admin {
    /// Describes `consumer` (KIP-848) groups: epochs, assignor, and every member's epoch,
    /// subscription and current and target assignment. Fails naming the group when it is not a
    /// `consumer` group or does not exist (GROUP_ID_NOT_FOUND; describe classic groups with
    /// [`Admin::describe_groups`]) or when the broker is older than Kafka 3.7.
    ///
    /// Cancellation: dropping the future abandons the lookup; nothing is changed.
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// for group in admin.describe_consumer_groups(&["billing"]).await? {
    ///     for m in &group.members {
    ///         println!("{} epoch {}: {:?}", m.member_id, m.member_epoch, m.assignment);
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        name = "kafka.admin.describe_consumer_groups",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn describe_consumer_groups(
        &self,
        groups: &[&str],
    ) -> Result<Vec<ConsumerGroupDescription>> {
        super::groups::check_group_ids(groups)?;
        let call = self.call(ApiKey::ConsumerGroupDescribe);
        call.run(self.describe_consumer_groups_in(&call, groups))
            .await
    }

    async fn describe_consumer_groups_in(
        &self,
        call: &Call,
        groups: &[&str],
    ) -> Result<Vec<ConsumerGroupDescription>> {
        let mut out = Vec::with_capacity(groups.len());
        for group in groups {
            let (node, described) = self
                .with_group_coordinator(call, group, |conn| async move {
                    let request = ConsumerGroupDescribeRequest::default()
                        .with_group_ids(vec![group_id(group)]);
                    let response = conn.send(&request).await?;
                    let described =
                        response
                            .groups
                            .into_iter()
                            .next()
                            .ok_or_else(|| Error::Protocol {
                                api: Some(crate::error::ApiKey::ConsumerGroupDescribe),
                                broker: Some(conn.broker().clone()),
                                message: format!("no answer for group `{group}`"),
                            })?;
                    let context = format!(
                        "group `{group}`{}",
                        described
                            .error_message
                            .as_ref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    );
                    Error::check_code(
                        ApiKey::ConsumerGroupDescribe,
                        Some(conn.broker()),
                        described.error_code,
                        Some(&context),
                    )?;
                    Ok(described)
                })
                .await?;
            let members = described
                .members
                .into_iter()
                .map(|m| ConsumerGroupMember {
                    member_id: m.member_id.to_string(),
                    group_instance_id: m.instance_id.map(|s| s.to_string()),
                    rack: m.rack_id.map(|s| s.to_string()),
                    member_epoch: m.member_epoch,
                    client_id: m.client_id.to_string(),
                    client_host: m.client_host.to_string(),
                    subscribed_topics: m
                        .subscribed_topic_names
                        .iter()
                        .map(|t| t.0.to_string())
                        .collect(),
                    // Kafka 4.x answers "" for a member without one.
                    subscribed_topic_regex: m
                        .subscribed_topic_regex
                        .filter(|s| !s.is_empty())
                        .map(|s| s.to_string()),
                    assignment: partitions(&m.assignment),
                    target_assignment: partitions(&m.target_assignment),
                    // Java's MemberType: -1 unknown (v0), 0 classic, 1 consumer.
                    uses_consumer_protocol: match m.member_type {
                        0 => Some(false),
                        1 => Some(true),
                        _ => None,
                    },
                })
                .collect();
            out.push(ConsumerGroupDescription {
                group_id: described.group_id.0.to_string(),
                state: described.group_state.to_string(),
                group_epoch: described.group_epoch,
                assignment_epoch: described.assignment_epoch,
                assignor: described.assignor_name.to_string(),
                members,
                coordinator: node,
            });
        }
        Ok(out)
    }
}

/// An assignment's partitions by topic name, sorted.
fn partitions(assignment: &Assignment) -> Vec<TopicPartition> {
    let mut out: Vec<TopicPartition> = assignment
        .topic_partitions
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|p| TopicPartition::new(t.topic_name.0.to_string(), *p))
        })
        .collect();
    out.sort();
    out
}
