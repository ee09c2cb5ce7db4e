//! Changing a topic's partitions: add partitions (CreatePartitions, to the controller through any
//! broker) and delete records before an offset (DeleteRecords, to each partition's leader).

use std::collections::{BTreeMap, HashMap};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::{ApiKey, CreatePartitionsRequest, DeleteRecordsRequest};
use tracing::debug;

use super::deadline::Call;
use super::{topic_name, Admin};
use crate::cluster::is_stale_metadata_error;
use crate::error::{Error, Result};
use crate::net::Lane;
use crate::record::TopicPartition;

impl Admin {
    /// Raises `topic`'s partition count to `total` (partitions can only be added), then waits
    /// until the new partitions have leaders. Fails with INVALID_PARTITIONS if `total` is not
    /// above the current count.
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// admin.create_partitions("orders", 12).await?; // grow to 12 partitions in total
    /// # Ok(()) }
    /// ```
    ///
    /// Cancellation: if dropped after the request was sent, the partitions may have been created.
    ///
    /// Timeout: one naming Metadata (not CreatePartitions) means the partitions were created and
    /// the wait for their leaders ran out.
    #[tracing::instrument(
        name = "kafka.admin.create_partitions",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn create_partitions(&self, topic: &str, total: i32) -> Result<()> {
        crate::cluster::validate_topic_name(topic)?;
        let call = self.call(ApiKey::CreatePartitions);
        call.run(self.create_partitions_in(&call, topic, total))
            .await
    }

    async fn create_partitions_in(&self, call: &Call, topic: &str, total: i32) -> Result<()> {
        let request =
            CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name(topic))
                .with_count(total)
                .with_assignments(None)]);
        self.retrying(|conn| {
            let request = request
                .clone()
                .with_timeout_ms(call.broker_timeout_ms(self.request_timeout()));
            async move {
                let response = call.send(&conn, &request).await?;
                for r in &response.results {
                    let message = match &r.error_message {
                        Some(m) => format!("topic `{topic}`: {m}"),
                        None => format!("topic `{topic}`"),
                    };
                    super::resource_error(
                        ApiKey::CreatePartitions,
                        conn.broker(),
                        r.error_code,
                        &message,
                    )?;
                }
                Ok(())
            }
        })
        .await?;
        call.waiting_for(ApiKey::Metadata);
        let mut backoff = self.cluster.retry_backoff();
        loop {
            let snapshot = self.topics_ready(call, &[topic]).await?;
            let count = snapshot.topics.get(topic).map_or(0, |t| t.partitions.len());
            if count >= total as usize {
                return Ok(());
            }
            tokio::time::sleep(backoff.next_delay()).await;
            self.refresh_for_retry(&[topic]).await?;
        }
    }

    /// Deletes the records of each partition before the given offset (`-1`: up to the high
    /// watermark, i.e. everything), by moving its log start offset. Returns each partition's new
    /// log start offset (low watermark); every partition asked for is in the answer.
    ///
    /// Cancellation: if dropped after the request was sent, the records may have been deleted.
    #[tracing::instrument(
        name = "kafka.admin.delete_records",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn delete_records(
        &self,
        before: &[(TopicPartition, i64)],
    ) -> Result<HashMap<TopicPartition, i64>> {
        let call = self.call(ApiKey::DeleteRecords);
        call.run(self.delete_records_in(&call, before)).await
    }

    async fn delete_records_in(
        &self,
        call: &Call,
        before: &[(TopicPartition, i64)],
    ) -> Result<HashMap<TopicPartition, i64>> {
        let mut backoff = self.cluster.retry_backoff();
        let mut pending: Vec<(TopicPartition, i64)> = before.to_vec();
        let mut done = HashMap::new();
        loop {
            let topics: Vec<&str> = pending.iter().map(|(tp, _)| tp.topic.as_str()).collect();
            let snapshot = self.topics_ready(call, &topics).await?;
            let mut by_leader: BTreeMap<i32, Vec<&(TopicPartition, i64)>> = BTreeMap::new();
            for item in &pending {
                let leader = snapshot.leader(&item.0).ok_or_else(|| {
                    Error::from_code(
                        ApiKey::DeleteRecords,
                        None,
                        ResponseError::UnknownTopicOrPartition,
                        Some(format!("partition {}", item.0)),
                    )
                })?;
                by_leader.entry(leader).or_default().push(item);
            }
            let mut retry = Vec::new();
            for (leader, items) in by_leader {
                let conn = match self.cluster.connection(leader, Lane::Control).await {
                    Ok(c) => c,
                    Err(e) if e.is_retriable() => {
                        debug!(error = %e, leader, "DeleteRecords will be retried");
                        retry.extend(items.into_iter().cloned());
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let mut topics: BTreeMap<&str, Vec<DeleteRecordsPartition>> = BTreeMap::new();
                for (tp, offset) in items.iter().map(|i| (&i.0, i.1)) {
                    topics.entry(tp.topic.as_str()).or_default().push(
                        DeleteRecordsPartition::default()
                            .with_partition_index(tp.partition)
                            .with_offset(offset),
                    );
                }
                let request = DeleteRecordsRequest::default()
                    .with_timeout_ms(call.broker_timeout_ms(self.request_timeout()))
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(name, partitions)| {
                                DeleteRecordsTopic::default()
                                    .with_name(topic_name(name))
                                    .with_partitions(partitions)
                            })
                            .collect(),
                    );
                let response = match call.send(&conn, &request).await {
                    Ok(r) => r,
                    Err(e) if e.is_retriable() && !matches!(e, Error::Timeout { .. }) => {
                        debug!(error = %e, leader, "DeleteRecords will be retried");
                        retry.extend(items.into_iter().cloned());
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                for t in &response.topics {
                    for p in &t.partitions {
                        let tp = TopicPartition::new(t.name.0.to_string(), p.partition_index);
                        match ResponseError::try_from_code(p.error_code) {
                            None => {
                                done.insert(tp, p.low_watermark);
                            }
                            Some(code) if is_stale_metadata_error(code) => {
                                debug!(%tp, ?code, "DeleteRecords will be retried");
                                retry.extend(
                                    items.iter().filter(|i| i.0 == tp).map(|i| (*i).clone()),
                                );
                            }
                            Some(code) => {
                                return Err(Error::from_code(
                                    ApiKey::DeleteRecords,
                                    Some(conn.broker().clone()),
                                    code,
                                    Some(format!("partition {tp}")),
                                ))
                            }
                        }
                    }
                }
            }
            super::missing_answer(ApiKey::DeleteRecords, &pending, |tp| {
                done.contains_key(tp) || retry.iter().any(|(t, _)| t == tp)
            })?;
            if retry.is_empty() {
                return Ok(done);
            }
            tokio::time::sleep(backoff.next_delay()).await;
            self.refresh_for_retry(&topics).await?;
            pending = retry;
        }
    }
}
