//! Topic and broker configs: describe them (with where each value comes from) and change them
//! incrementally (IncrementalAlterConfigs: set or delete single keys, leaving the rest alone).
//!
//! Sensitive values (passwords, keys) are never returned: the broker sends them as null and
//! [`ConfigEntry::value`] stays `None` with [`ConfigEntry::sensitive`] set.

use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{ApiKey, DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

use super::Admin;
use crate::error::Result;

/// What a config belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigResource {
    /// A topic, by name.
    Topic(String),
    /// A broker, by node id.
    Broker(i32),
    /// A client-metrics subscription (KIP-714), by name: `metrics` (comma-separated metric-name
    /// prefixes, `*` for all), `interval.ms`, `match` (client selectors). Clients with
    /// `enable.metrics.push` push what it names.
    ClientMetrics(String),
}

impl ConfigResource {
    fn wire(&self) -> (i8, String) {
        match self {
            ConfigResource::Topic(name) => (2, name.clone()),
            ConfigResource::Broker(id) => (4, id.to_string()),
            ConfigResource::ClientMetrics(name) => (16, name.clone()),
        }
    }
}

/// Where a config's value comes from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigSource {
    /// Set on this topic.
    Topic,
    /// Set on this broker, dynamically.
    DynamicBroker,
    /// Set for every broker, dynamically.
    DynamicDefaultBroker,
    /// Set in the broker's `server.properties`.
    StaticBroker,
    /// The built-in default.
    Default,
    /// Another source (a newer broker's, or unknown).
    Other(i8),
}

impl ConfigSource {
    fn from_wire(source: i8) -> ConfigSource {
        match source {
            1 => ConfigSource::Topic,
            2 => ConfigSource::DynamicBroker,
            3 => ConfigSource::DynamicDefaultBroker,
            4 => ConfigSource::StaticBroker,
            5 => ConfigSource::Default,
            other => ConfigSource::Other(other),
        }
    }
}

/// One config of a described resource.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigEntry {
    /// The key, e.g. `retention.ms`.
    pub name: String,
    /// The value; `None` when unset or sensitive.
    pub value: Option<String>,
    /// Where the value comes from.
    pub source: ConfigSource,
    /// Whether it cannot be changed.
    pub read_only: bool,
    /// Whether it is a secret (its value is then withheld).
    pub sensitive: bool,
}

/// One change of [`Admin::alter_configs`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigChange {
    /// Set a key to a value.
    Set(String, String),
    /// Remove a key (back to the broker's default).
    Delete(String),
}

impl Admin {
    /// Every config of `resource`, sorted by key.
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// use josefk::admin::ConfigResource;
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// let topic = ConfigResource::Topic("orders".into());
    /// for entry in admin.describe_configs(&topic).await? {
    ///     println!("{} = {:?}", entry.name, entry.value);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// Cancellation: dropping the future changes nothing (it only reads).
    #[tracing::instrument(
        name = "kafka.admin.describe_configs",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn describe_configs(&self, resource: &ConfigResource) -> Result<Vec<ConfigEntry>> {
        let (kind, name) = resource.wire();
        let request = DescribeConfigsRequest::default().with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(StrBytes::from_string(name.clone()))
                .with_configuration_keys(None),
        ]);
        let call = self.call(ApiKey::DescribeConfigs);
        let describe_configs = self.config_request(resource, |conn| {
            let request = request.clone();
            let name = name.clone();
            async move {
                let response = conn.send(&request).await?;
                for r in &response.results {
                    super::resource_error(
                        ApiKey::DescribeConfigs,
                        conn.broker(),
                        r.error_code,
                        &describe(r.error_message.as_deref(), &name),
                    )?;
                }
                Ok(response)
            }
        });
        let response = call.run(describe_configs).await?;
        let mut out: Vec<ConfigEntry> = response
            .results
            .into_iter()
            .flat_map(|r| r.configs)
            .map(|c| ConfigEntry {
                name: c.name.to_string(),
                value: if c.is_sensitive {
                    None
                } else {
                    c.value.map(|v| v.to_string())
                },
                source: ConfigSource::from_wire(c.config_source),
                read_only: c.read_only,
                sensitive: c.is_sensitive,
            })
            .collect();
        out.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(out)
    }

    /// Sets and deletes configs of `resource`; keys not named are left as they are. An unknown
    /// key or a bad value fails the whole call (INVALID_CONFIG naming it) and changes nothing.
    ///
    /// ```no_run
    /// use josefk::admin::Admin;
    /// use josefk::ClientConfig;
    /// use josefk::admin::{ConfigChange, ConfigResource};
    /// # async fn demo() -> josefk::Result<()> {
    /// # let admin = Admin::connect(ClientConfig::new("127.0.0.1:9092")).await?;
    /// let topic = ConfigResource::Topic("orders".into());
    /// admin
    ///     .alter_configs(&topic, &[ConfigChange::Set("retention.ms".into(), "86400000".into())])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    ///
    /// Cancellation: if dropped after the request was sent, the configs may have been changed.
    #[tracing::instrument(
        name = "kafka.admin.alter_configs",
        level = "debug",
        skip_all,
        err(level = "debug")
    )]
    pub async fn alter_configs(
        &self,
        resource: &ConfigResource,
        changes: &[ConfigChange],
    ) -> Result<()> {
        const SET: i8 = 0;
        const DELETE: i8 = 1;
        let (kind, name) = resource.wire();
        let configs = changes
            .iter()
            .map(|c| match c {
                ConfigChange::Set(k, v) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(SET)
                    .with_value(Some(StrBytes::from_string(v.clone()))),
                ConfigChange::Delete(k) => AlterableConfig::default()
                    .with_name(StrBytes::from_string(k.clone()))
                    .with_config_operation(DELETE)
                    .with_value(None),
            })
            .collect();
        let request = IncrementalAlterConfigsRequest::default().with_resources(vec![
            AlterConfigsResource::default()
                .with_resource_type(kind)
                .with_resource_name(StrBytes::from_string(name.clone()))
                .with_configs(configs),
        ]);
        let call = self.call(ApiKey::IncrementalAlterConfigs);
        let alter = self.config_request(resource, |conn| {
            let request = request.clone();
            let name = name.clone();
            let call = &call;
            async move {
                let response = call.send(&conn, &request).await?;
                for r in &response.responses {
                    super::resource_error(
                        ApiKey::IncrementalAlterConfigs,
                        conn.broker(),
                        r.error_code,
                        &describe(r.error_message.as_deref(), &name),
                    )?;
                }
                Ok(())
            }
        });
        call.run(alter).await
    }

    /// A broker's configs are answered by that broker; a topic's by any.
    async fn config_request<T, F, Fut>(&self, resource: &ConfigResource, op: F) -> Result<T>
    where
        F: Fn(crate::net::Connection) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        match resource {
            ConfigResource::Broker(id) => self.retrying_on(*id, op).await,
            ConfigResource::Topic(_) | ConfigResource::ClientMetrics(_) => self.retrying(op).await,
        }
    }
}

fn describe(message: Option<&str>, name: &str) -> String {
    match message {
        Some(m) => format!("`{name}`: {m}"),
        None => format!("`{name}`"),
    }
}
