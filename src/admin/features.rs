//! The cluster's feature levels (Java `Admin.describeFeatures`): the finalized level of each
//! feature (`metadata.version`, `transaction.version`, `group.version`, ...) and the range each
//! broker supports, read from a fresh ApiVersions answer.

use std::collections::BTreeMap;

use kafka_protocol::messages::{ApiKey, ApiVersionsRequest};
use kafka_protocol::protocol::StrBytes;

use super::Admin;
use crate::error::{Error, Result};

/// A range of feature levels, both ends included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FeatureRange {
    /// The lowest level.
    pub min: i16,
    /// The highest level.
    pub max: i16,
}

/// What [`Admin::describe_features`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FeatureMetadata {
    /// The finalized level of each feature the cluster has enabled: what every broker acts on
    /// (for `transaction.version` ≥ 2, the transaction protocol of KIP-890 part 2). `min` is 0
    /// from brokers that do not send it.
    pub finalized: BTreeMap<String, FeatureRange>,
    /// The epoch of the finalized levels, when the broker says.
    pub finalized_epoch: Option<i64>,
    /// The levels the answering broker supports, by feature.
    pub supported: BTreeMap<String, FeatureRange>,
    /// The node id of the broker that answered, when the connection was to a known node.
    pub broker: Option<i32>,
}

impl Admin {
    /// The cluster's finalized feature levels and the levels one broker supports (one ApiVersions
    /// to any broker, as Java's `describeFeatures`).
    ///
    /// Cancellation: dropping the future changes nothing (it only reads).
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// let features = admin.describe_features().await?;
    /// if let Some(level) = features.finalized.get("transaction.version") {
    ///     println!("transaction.version {}", level.max);
    /// }
    /// # Ok(()) }
    /// ```
    #[tracing::instrument(
        name = "kafka.admin.describe_features",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn describe_features(&self) -> Result<FeatureMetadata> {
        let call = self.call(ApiKey::ApiVersions);
        let ask = self.retrying(|conn| async move {
            // v3+ requests must name the client software with these characters only.
            let request = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("josefk"))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
            let response = conn.send(&request).await?;
            Error::check_code(
                ApiKey::ApiVersions,
                Some(conn.broker()),
                response.error_code,
                None,
            )?;
            Ok((conn.broker().node_id, response))
        });
        let (broker, response) = call.run(ask).await?;
        let range = |min, max| FeatureRange { min, max };
        Ok(FeatureMetadata {
            finalized: response
                .finalized_features
                .iter()
                .map(|f| {
                    let level = range(f.min_version_level, f.max_version_level);
                    (f.name.to_string(), level)
                })
                .collect(),
            finalized_epoch: (response.finalized_features_epoch >= 0)
                .then_some(response.finalized_features_epoch),
            supported: response
                .supported_features
                .iter()
                .map(|f| (f.name.to_string(), range(f.min_version, f.max_version)))
                .collect(),
            broker,
        })
    }
}
