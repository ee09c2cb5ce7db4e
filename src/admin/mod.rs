//! Cluster administration: create and delete topics, describe the cluster and its topics, and look
//! up partition offsets. Consumer groups are in `groups.rs`, configs in `configs.rs`, adding
//! partitions and deleting records in `partitions.rs`, transactions and producers in
//! `transactions.rs`, ACLs in `acls.rs`, feature levels in
//! `features.rs`.
//!
//! Semantics follow the Java `Admin` client, with one convenience: [`Admin::create_topics`] returns
//! only once every new partition's leader answers for it, so the topic can be produced to at once
//! (Java's returns when the controller has accepted the topic, and callers poll).
//!
//! Timeouts: every call is bounded as a whole by `default.api.timeout.ms`
//! ([`ClientConfig`]'s `default_api_timeout`, 60 s by default), across its metadata and coordinator
//! lookups, its retries of retriable errors (each after the retry backoff) and its waits; when that
//! passes the call fails with [`Error::Timeout`] naming the call's API and the time allowed. Its
//! `outcome_unknown` is true when a request that changes something (CreateTopics, an ACL or
//! config change, ...) was sent and its answer never came: the change may have been applied. Each
//! request inside is still bounded by `request.timeout.ms`; one left unanswered that long ends the
//! call with its own [`Error::Timeout`] rather than being sent again blindly (a change may have
//! been applied), except the metadata waits and ListOffsets lookups, which only read and ask
//! again. Calls whose timeout says more note it in their docs.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, DeleteTopicsRequest, ListOffsetsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use tracing::debug;

use crate::cluster::{is_stale_metadata_error, validate_topic_name, Cluster, TopicsQuery};
use crate::config::ClientConfig;
use crate::error::{Error, ErrorClass, Result};
use crate::net::Lane;
use crate::record::{IsolationLevel, TopicPartition};

mod acls;
mod configs;
mod consumer_groups;
mod deadline;
mod features;
mod groups;
mod partitions;
mod transactions;

pub use crate::cluster::{BrokerInfo, PartitionInfo};
pub use acls::{AclBinding, AclFilter, AclOperation, AclPermission, PatternType, ResourceType};
pub use configs::{ConfigChange, ConfigEntry, ConfigResource, ConfigSource};
pub use consumer_groups::{ConsumerGroupDescription, ConsumerGroupMember};
pub use features::{FeatureMetadata, FeatureRange};
pub use groups::{CommittedOffset, GroupDescription, GroupListing, MemberDescription};
pub use transactions::{
    AbortTransactionSpec, ListTransactionsOptions, ProducerState, TransactionDescription,
    TransactionListing, TransactionState,
};

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Number of partitions.
    pub num_partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// Topic configs (`cleanup.policy`, `min.insync.replicas`, `max.message.bytes`, ...).
    pub configs: Vec<(String, String)>,
}

impl NewTopic {
    /// A topic with `num_partitions` partitions of `replication_factor` replicas each.
    pub fn new(name: impl Into<String>, num_partitions: i32, replication_factor: i16) -> Self {
        NewTopic {
            name: name.into(),
            num_partitions,
            replication_factor,
            configs: Vec::new(),
        }
    }

    /// Adds a topic config.
    pub fn config(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.configs.push((key.into(), value.into()));
        self
    }
}

/// What [`Admin::describe_cluster`] returns.
#[derive(Debug, Clone)]
pub struct ClusterDescription {
    /// The cluster id.
    pub cluster_id: Option<String>,
    /// The node id metadata names as controller.
    pub controller_id: Option<i32>,
    /// Every broker, ordered by node id.
    pub brokers: Vec<BrokerInfo>,
}

/// What [`Admin::describe_topics`] returns for one topic.
#[derive(Debug, Clone)]
pub struct TopicDescription {
    /// Name.
    pub name: String,
    /// Topic id (KIP-516).
    pub id: [u8; 16],
    /// Whether it is internal.
    pub internal: bool,
    /// Partitions, ordered by index.
    pub partitions: Vec<PartitionInfo>,
}

/// Which offset [`Admin::list_offsets`] looks up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset.
    Earliest,
    /// The log end offset (high watermark), or the last stable offset under read_committed.
    Latest,
    /// The earliest offset whose timestamp is at or after this many ms since the epoch.
    Timestamp(i64),
}

impl OffsetSpec {
    fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(ts) => ts,
        }
    }
}

/// One answer of [`Admin::list_offsets`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListedOffset {
    /// The offset; `-1` when a timestamp lookup found no record at or after the timestamp.
    pub offset: i64,
    /// The record timestamp for timestamp lookups, when the broker gives one.
    pub timestamp: Option<i64>,
    /// The leader epoch of the record at `offset`, when known.
    pub leader_epoch: Option<i32>,
}

/// An admin client. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Admin {
    cluster: Cluster,
    /// The KIP-714 push task (`enable.metrics.push`), shared by the clones; the last one dropped
    /// ends it with a terminating push.
    _telemetry: Option<std::sync::Arc<crate::cluster::telemetry::TelemetryHandle>>,
}

impl Admin {
    /// Connects to the cluster (a Metadata request), within `default.api.timeout.ms` like every
    /// call: while no bootstrap broker answers it asks again after the backoff, then fails with
    /// the last cause (a retriable [`Error::Connect`] naming each address). A `bootstrap.servers`
    /// of which no address resolves, refused credentials and TLS failures fail at once.
    ///
    /// Cancellation: dropping the future drops the connections opened so far; nothing is changed.
    pub async fn connect(mut config: ClientConfig) -> Result<Admin> {
        config.validate()?;
        crate::config::default_client_id(&mut config, crate::config::ClientKind::Admin, None, None);
        let deadline = crate::clock::from_now(config.default_api_timeout);
        let cluster = Cluster::connect_by(config, deadline).await?;
        let registry = std::sync::Arc::downgrade(&cluster.pool().metrics().0);
        let enabled = cluster.config().metrics_enabled;
        let exported = registry.clone();
        crate::metrics::spawn_exporter(enabled, move || {
            let registry = exported.upgrade()?;
            Some(crate::metrics::AdminMetrics::read(&registry).to_metrics())
        });
        let telemetry = crate::cluster::telemetry::spawn(cluster.clone(), move || {
            let registry = registry.upgrade()?;
            Some(crate::metrics::AdminMetrics::read(&registry).to_metrics())
        })
        .map(std::sync::Arc::new);
        Ok(Admin {
            cluster,
            _telemetry: telemetry,
        })
    }

    /// A snapshot of this client's metrics (connections and requests per broker; see
    /// [`crate::metrics`]). An admin client a producer or consumer made internally shares them
    /// with that client.
    pub fn metrics(&self) -> crate::metrics::AdminMetrics {
        crate::metrics::AdminMetrics::read(&self.cluster.pool().metrics().0)
    }

    internal_fn! {
        /// An admin client sharing an existing cluster view and its connections.
        fn from_cluster(cluster: Cluster) -> Admin {
            // The client that owns the cluster view pushes its own metrics.
            Admin {
                cluster,
                _telemetry: None,
            }
        }
    }

    internal_fn! {
        /// The cluster view.
        fn cluster(&self) -> &Cluster {
            &self.cluster
        }
    }

    fn request_timeout(&self) -> Duration {
        self.cluster.config().request_timeout
    }

    /// Creates topics, then waits until each of their partitions has a leader that answers for it.
    /// A topic that exists already fails with TOPIC_ALREADY_EXISTS. When the controller refuses
    /// some topics, the others are still created and waited for, and then the first refusal is
    /// returned (Java reports each topic apart).
    ///
    /// Cancellation: if dropped after the request was sent, the topics may have been created.
    ///
    /// Timeout: one naming Metadata or ListOffsets (not CreateTopics) means the topics were created
    /// and the wait for their leaders ran out.
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// use josefk::admin::NewTopic;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// admin
    ///     .create_topics(&[NewTopic::new("orders", 6, 3).config("retention.ms", "604800000")])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        name = "kafka.admin.create_topics",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn create_topics(&self, topics: &[NewTopic]) -> Result<()> {
        for t in topics {
            validate_topic_name(&t.name)?;
        }
        if topics.is_empty() {
            return Ok(());
        }
        let call = self.call(ApiKey::CreateTopics);
        call.run(self.create_topics_in(&call, topics)).await
    }

    async fn create_topics_in(&self, call: &deadline::Call, topics: &[NewTopic]) -> Result<()> {
        let request = CreateTopicsRequest::default().with_topics(
            topics
                .iter()
                .map(|t| {
                    CreatableTopic::default()
                        .with_name(topic_name(&t.name))
                        .with_num_partitions(t.num_partitions)
                        .with_replication_factor(t.replication_factor)
                        .with_configs(
                            t.configs
                                .iter()
                                .map(|(k, v)| {
                                    CreatableTopicConfig::default()
                                        .with_name(StrBytes::from_string(k.clone()))
                                        .with_value(Some(StrBytes::from_string(v.clone())))
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
        let response = self
            .retrying(|conn| {
                let request = request
                    .clone()
                    .with_timeout_ms(call.broker_timeout_ms(self.request_timeout()));
                async move {
                    let response = call.send(&conn, &request).await?;
                    // NOT_CONTROLLER and friends are retriable for the whole request.
                    for t in &response.topics {
                        if let Some(code) = ResponseError::try_from_code(t.error_code) {
                            if code.is_retriable() {
                                return Err(Error::from_code(
                                    ApiKey::CreateTopics,
                                    Some(conn.broker().clone()),
                                    code,
                                    t.error_message
                                        .as_ref()
                                        .map(|m| format!("{}: {m}", t.name.0)),
                                ));
                            }
                        }
                    }
                    Ok((conn.broker().clone(), response))
                }
            })
            .await?;
        let (broker, response) = response;
        // Topics the controller refused do not stop the others, which it created: those are
        // still waited for (as the docs promise), and the first refusal is returned after.
        let mut refused = None;
        let mut refused_names = Vec::new();
        for t in &response.topics {
            if t.error_code == 0 {
                continue;
            }
            refused_names.push(t.name.0.as_str());
            let message = t
                .error_message
                .as_ref()
                .map(|m| format!("topic `{}`: {m}", t.name.0))
                .unwrap_or_else(|| format!("topic `{}`", t.name.0));
            if let Err(e) = Error::check_code(
                ApiKey::CreateTopics,
                Some(&broker),
                t.error_code,
                Some(&message),
            ) {
                refused.get_or_insert(e);
            }
        }
        let topics: Vec<&NewTopic> = topics
            .iter()
            .filter(|t| !refused_names.contains(&t.name.as_str()))
            .collect();
        if !topics.is_empty() {
            self.wait_until_created(call, &topics).await?;
        }
        match refused {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits until every partition of `topics`, just created, has a leader that serves it.
    async fn wait_until_created(&self, call: &deadline::Call, topics: &[&NewTopic]) -> Result<()> {
        call.waiting_for(ApiKey::Metadata);
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        self.topics_ready(call, &names).await?;
        // Metadata names a leader a moment before that broker serves the partition (a Produce
        // right then gets NOT_LEADER_OR_FOLLOWER); a ListOffsets per partition, retried on
        // stale-metadata errors, waits out that window.
        let partitions: Vec<(TopicPartition, OffsetSpec)> = topics
            .iter()
            .flat_map(|t| {
                (0..t.num_partitions)
                    .map(move |p| (TopicPartition::new(t.name.clone(), p), OffsetSpec::Latest))
            })
            .collect();
        call.waiting_for(ApiKey::ListOffsets);
        self.list_offsets_in(call, &partitions, IsolationLevel::ReadUncommitted)
            .await?;
        Ok(())
    }

    /// Deletes topics. A topic that does not exist fails with UNKNOWN_TOPIC_OR_PARTITION (class
    /// [`ErrorClass::Rejected`]); the others named are still deleted, and the first refusal is
    /// returned once their deletion is seen.
    ///
    /// Cancellation: if dropped after the request was sent, the topics may have been deleted.
    ///
    /// Timeout: one naming Metadata means the topics were deleted and the metadata refresh after
    /// it ran out.
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// admin.delete_topics(&["scratch"]).await?;
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        name = "kafka.admin.delete_topics",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn delete_topics(&self, names: &[&str]) -> Result<()> {
        for name in names {
            validate_topic_name(name)?;
        }
        if names.is_empty() {
            return Ok(());
        }
        let call = self.call(ApiKey::DeleteTopics);
        call.run(self.delete_topics_in(&call, names)).await
    }

    async fn delete_topics_in(&self, call: &deadline::Call, names: &[&str]) -> Result<()> {
        let (broker, response) = self
            .retrying(|conn| async move {
                let version = conn.version_for::<DeleteTopicsRequest>()?;
                let timeout_ms = call.broker_timeout_ms(self.request_timeout());
                let mut request = DeleteTopicsRequest::default().with_timeout_ms(timeout_ms);
                // Version 6 names topics in a list of (name, id) states (KIP-516).
                if version >= 6 {
                    request.topics = names
                        .iter()
                        .map(|n| DeleteTopicState::default().with_name(Some(topic_name(n))))
                        .collect();
                } else {
                    request.topic_names = names.iter().map(|n| topic_name(n)).collect();
                }
                let response = call.send_version(&conn, &request, version).await?;
                Ok((conn.broker().clone(), response))
            })
            .await?;
        // As for creation: one topic's refusal (UNKNOWN_TOPIC_OR_PARTITION for one that does not
        // exist, not retriable here) is returned after the others' deletion is seen.
        let mut refused = None;
        for t in &response.responses {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            let message = match &t.error_message {
                Some(m) => format!("topic `{name}`: {m}"),
                None => format!("topic `{name}`"),
            };
            if let Err(e) = resource_error(ApiKey::DeleteTopics, &broker, t.error_code, &message) {
                refused.get_or_insert(e);
            }
        }
        call.waiting_for(ApiKey::Metadata);
        self.cluster
            .refresh_metadata(TopicsQuery::Some(names))
            .await?;
        match refused {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Fresh metadata, asked again after the backoff while the failure is retriable (a broker
    /// restarting, a connection lost), as Java's admin client retries; the call's deadline ends it.
    async fn fresh_metadata(
        &self,
        query: TopicsQuery<'_>,
    ) -> Result<std::sync::Arc<crate::cluster::MetadataSnapshot>> {
        let mut backoff = self.cluster.retry_backoff();
        loop {
            match self.cluster.refresh_metadata(query).await {
                Err(e) if e.is_retriable() => {
                    debug!(error = %e, "metadata will be asked again");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                answered => return answered,
            }
        }
    }

    /// The cluster id, controller and brokers, from fresh metadata.
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// let cluster = admin.describe_cluster().await?;
    /// println!("{} brokers", cluster.brokers.len());
    /// # Ok(()) }
    /// ```
    ///
    /// Cancellation: dropping the future changes nothing (it only reads).
    #[tracing::instrument(
        name = "kafka.admin.describe_cluster",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn describe_cluster(&self) -> Result<ClusterDescription> {
        let call = self.call(ApiKey::Metadata);
        let snapshot = call.run(self.fresh_metadata(TopicsQuery::None)).await?;
        Ok(ClusterDescription {
            cluster_id: snapshot.cluster_id.clone(),
            controller_id: snapshot.controller_id,
            brokers: snapshot.brokers.values().cloned().collect(),
        })
    }

    /// Every topic's name, from fresh metadata, internal topics included, sorted.
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// for name in admin.list_topics().await? {
    ///     println!("{name}");
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// Cancellation: dropping the future changes nothing (it only reads).
    #[tracing::instrument(
        name = "kafka.admin.list_topics",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn list_topics(&self) -> Result<Vec<String>> {
        let call = self.call(ApiKey::Metadata);
        let snapshot = call.run(self.fresh_metadata(TopicsQuery::All)).await?;
        let mut names: Vec<String> = snapshot.topics.keys().cloned().collect();
        names.sort();
        Ok(names)
    }

    /// Partitions, leaders and replicas of the named topics, from fresh metadata. A topic that does
    /// not exist fails with UNKNOWN_TOPIC_OR_PARTITION.
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// for topic in admin.describe_topics(&["orders"]).await? {
    ///     println!("{}: {} partitions", topic.name, topic.partitions.len());
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// Cancellation: dropping the future changes nothing (it only reads).
    #[tracing::instrument(
        name = "kafka.admin.describe_topics",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn describe_topics(&self, names: &[&str]) -> Result<Vec<TopicDescription>> {
        for name in names {
            validate_topic_name(name)?;
        }
        let call = self.call(ApiKey::Metadata);
        let snapshot = call
            .run(self.fresh_metadata(TopicsQuery::Some(names)))
            .await?;
        names
            .iter()
            .map(|name| match snapshot.topics.get(*name) {
                Some(t) => Ok(TopicDescription {
                    name: t.name.clone(),
                    id: t.id,
                    internal: t.internal,
                    partitions: t.partitions.clone(),
                }),
                None => Err(Error::from_code(
                    ApiKey::Metadata,
                    None,
                    snapshot
                        .topic_errors
                        .get(*name)
                        .copied()
                        .unwrap_or(ResponseError::UnknownTopicOrPartition),
                    Some(format!("topic `{name}`")),
                )),
            })
            .collect()
    }

    /// Looks up offsets of partitions from their leaders, waiting for a topic that does not
    /// exist yet and retrying stale-metadata errors until the call's timeout. Every partition asked
    /// for is in the answer (a leader that leaves one out is a protocol error).
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// use josefk::admin::OffsetSpec;
    /// use josefk::{IsolationLevel, TopicPartition};
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// let tp = TopicPartition::new("orders", 0);
    /// let ends = admin
    ///     .list_offsets(&[(tp.clone(), OffsetSpec::Latest)], IsolationLevel::ReadCommitted)
    ///     .await?;
    /// println!("end of {tp}: {}", ends[&tp].offset);
    /// # Ok(()) }
    /// ```
    ///
    /// Cancellation: dropping the future changes nothing (it only reads).
    #[tracing::instrument(
        name = "kafka.admin.list_offsets",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn list_offsets(
        &self,
        specs: &[(TopicPartition, OffsetSpec)],
        isolation: IsolationLevel,
    ) -> Result<HashMap<TopicPartition, ListedOffset>> {
        let mut seen = std::collections::HashSet::new();
        for (tp, spec) in specs {
            validate_topic_name(&tp.topic)?;
            // On the wire -1 and -2 mean latest and earliest, other negatives other lookups.
            if let OffsetSpec::Timestamp(ts) = spec {
                if *ts < 0 {
                    return Err(Error::InvalidArgument(format!(
                        "timestamp {ts} for {tp} is negative: use OffsetSpec::Earliest or Latest"
                    )));
                }
            }
            // The broker refuses a request naming a partition twice (INVALID_REQUEST).
            if !seen.insert(tp) {
                return Err(Error::InvalidArgument(format!("{tp} is listed twice")));
            }
        }
        let call = self.call(ApiKey::ListOffsets);
        call.run(self.list_offsets_in(&call, specs, isolation))
            .await
    }

    /// [`Admin::list_offsets`] within `call`, retrying until its deadline ends it.
    async fn list_offsets_in(
        &self,
        call: &deadline::Call,
        specs: &[(TopicPartition, OffsetSpec)],
        isolation: IsolationLevel,
    ) -> Result<HashMap<TopicPartition, ListedOffset>> {
        let mut backoff = self.cluster.retry_backoff();
        let mut pending: Vec<(TopicPartition, OffsetSpec)> = specs.to_vec();
        let mut found = HashMap::new();
        loop {
            let topics: Vec<&str> = pending.iter().map(|(tp, _)| tp.topic.as_str()).collect();
            let snapshot = self.topics_ready(call, &topics).await?;
            let mut by_leader: BTreeMap<i32, Vec<&(TopicPartition, OffsetSpec)>> = BTreeMap::new();
            for item in &pending {
                let leader = snapshot.leader(&item.0).ok_or_else(|| {
                    Error::from_code(
                        ApiKey::ListOffsets,
                        None,
                        ResponseError::UnknownTopicOrPartition,
                        Some(format!("partition {}", item.0)),
                    )
                })?;
                by_leader.entry(leader).or_default().push(item);
            }
            let mut retry = Vec::new();
            for (leader, items) in by_leader {
                match self.list_offsets_from(leader, &items, isolation).await {
                    Ok(answers) => {
                        for (tp, answer) in answers {
                            match answer {
                                Ok(offset) => {
                                    found.insert(tp, offset);
                                }
                                Err(e) => {
                                    if !e.is_retriable() {
                                        return Err(e);
                                    }
                                    debug!(error = %e, "ListOffsets will be retried");
                                    retry.extend(
                                        items
                                            .iter()
                                            .filter(|(t, _)| *t == tp)
                                            .map(|i| (*i).clone()),
                                    );
                                }
                            }
                        }
                    }
                    Err(e) if e.is_retriable() => {
                        debug!(error = %e, leader, "ListOffsets will be retried");
                        retry.extend(items.into_iter().cloned());
                    }
                    Err(e) => return Err(e),
                }
            }
            missing_answer(ApiKey::ListOffsets, &pending, |tp| {
                found.contains_key(tp) || retry.iter().any(|(t, _)| t == tp)
            })?;
            if retry.is_empty() {
                return Ok(found);
            }
            self.refresh_for_retry(&topics).await?;
            tokio::time::sleep(backoff.next_delay()).await;
            pending = retry;
        }
    }

    /// One ListOffsets request to one leader; per-partition answers.
    async fn list_offsets_from(
        &self,
        leader: i32,
        items: &[&(TopicPartition, OffsetSpec)],
        isolation: IsolationLevel,
    ) -> Result<Vec<(TopicPartition, Result<ListedOffset>)>> {
        let conn = self.cluster.connection(leader, Lane::Control).await?;
        let mut topics: BTreeMap<&str, Vec<ListOffsetsPartition>> = BTreeMap::new();
        for (tp, spec) in items.iter().map(|i| (&i.0, i.1)) {
            topics.entry(tp.topic.as_str()).or_default().push(
                ListOffsetsPartition::default()
                    .with_partition_index(tp.partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(spec.wire()),
            );
        }
        let request = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation.wire())
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, partitions)| {
                        ListOffsetsTopic::default()
                            .with_name(topic_name(name))
                            .with_partitions(partitions)
                    })
                    .collect(),
            );
        let response = conn.send(&request).await?;
        let mut out = Vec::new();
        for t in &response.topics {
            for p in &t.partitions {
                let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                let answer = match ResponseError::try_from_code(p.error_code) {
                    None => Ok(ListedOffset {
                        offset: p.offset,
                        timestamp: (p.timestamp >= 0).then_some(p.timestamp),
                        leader_epoch: (p.leader_epoch >= 0).then_some(p.leader_epoch),
                    }),
                    Some(code) => {
                        let mut e = Error::from_code(
                            ApiKey::ListOffsets,
                            Some(conn.broker().clone()),
                            code,
                            Some(format!("partition {tp}")),
                        );
                        if is_stale_metadata_error(code) {
                            if let Error::Broker { class, .. } = &mut e {
                                *class = ErrorClass::Retriable;
                            }
                        }
                        Err(e)
                    }
                };
                out.push((tp, answer));
            }
        }
        Ok(out)
    }

    /// Runs `op` against some broker, retrying retriable errors (on another connection) after
    /// each backoff until the call's deadline ends it. A request that timed out is not sent again:
    /// its outcome is unknown.
    async fn retrying<T, F, Fut>(&self, op: F) -> Result<T>
    where
        F: Fn(crate::net::Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut backoff = self.cluster.retry_backoff();
        loop {
            let attempt = match self.cluster.any_connection(Lane::Control).await {
                Ok(conn) => op(conn).await,
                Err(e) => Err(e),
            };
            match attempt {
                Err(e) if e.is_retriable() && !matches!(e, Error::Timeout { .. }) => {
                    debug!(error = %e, "admin request will be retried");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                other => return other,
            }
        }
    }

    /// Fresh metadata for `topics` before a retry; a failed refresh leaves the retry to find out
    /// again (the next round's wait refreshes too).
    async fn refresh_for_retry(&self, topics: &[&str]) -> Result<()> {
        match self
            .cluster
            .refresh_metadata(TopicsQuery::Some(topics))
            .await
        {
            Err(e) if !e.is_retriable() => Err(e),
            _ => Ok(()),
        }
    }
}

/// A per-resource error code of an admin answer (CreatePartitions, DescribeConfigs,
/// IncrementalAlterConfigs). UNKNOWN_TOPIC_OR_PARTITION there is the controller's answer about
/// the topic, not a stale view to wait out: refused at once, as Java's admin client does (it was
/// retried until `default.api.timeout.ms` and then reported as a timeout).
pub(crate) fn resource_error(
    api: ApiKey,
    broker: &crate::BrokerRef,
    code: i16,
    message: &str,
) -> Result<()> {
    Error::check_code(api, Some(broker), code, Some(message)).map_err(|mut e| {
        if e.kafka_code() == Some(crate::error::ErrorCode::UnknownTopicOrPartition) {
            if let Error::Broker { class, .. } = &mut e {
                *class = ErrorClass::Rejected;
            }
        }
        e
    })
}

/// A protocol error naming the first partition of `asked` that a response left out (neither
/// answered nor failed), so callers can rely on every partition being in the result.
fn missing_answer<T>(
    api: ApiKey,
    asked: &[(TopicPartition, T)],
    answered: impl Fn(&TopicPartition) -> bool,
) -> Result<()> {
    match asked.iter().find(|(tp, _)| !answered(tp)) {
        Some((tp, _)) => Err(Error::Protocol {
            api: Some(crate::error::ApiKey::from_protocol(api)),
            broker: None,
            message: format!("the leader's answer left out partition {tp}"),
        }),
        None => Ok(()),
    }
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_owned()))
}
