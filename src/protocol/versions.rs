//! Which version of each API to speak with a broker: the highest both sides support.
//!
//! The broker's ranges come from its ApiVersions response (sent first on every connection); josefk's
//! come from `kafka-protocol`'s message definitions, capped where josefk deliberately stays lower:
//!
//! - Produce ≤ 12 and Fetch ≤ 12: later versions identify topics by id only, and `kafka-protocol`
//!   silently drops the topic name when encoding them (see eos-reference.md §7).
//! - AddPartitionsToTxn ≤ 3: versions 4 and up are broker-to-broker only (KIP-890 part 1).
//! - OffsetCommit ≤ 9 and OffsetFetch ≤ 9: version 10 identifies topics by id (KIP-848).
//! - Never above what `kafka-protocol`'s message types can encode and decode: its API table lists
//!   versions (InitProducerId v6, OffsetFetch v10) that its messages do not implement.
//!
//! The response also carries the cluster's finalized features (`transaction.version`,
//! `group.version`), which decide the transaction protocol.

use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};
use kafka_protocol::protocol::VersionRange;

use crate::error::{BrokerRef, Error, Result};

/// The versions josefk speaks for `api`.
pub fn client_versions(api: ApiKey) -> VersionRange {
    let mut full = api.valid_versions();
    if let Some(codable) = super::codec::message_versions(api) {
        full.min = full.min.max(codable.min);
        full.max = full.max.min(codable.max);
    }
    let cap = match api {
        ApiKey::Produce | ApiKey::Fetch => 12,
        ApiKey::AddPartitionsToTxn => 3,
        ApiKey::OffsetCommit | ApiKey::OffsetFetch => 9,
        _ => full.max,
    };
    VersionRange {
        min: full.min,
        max: full.max.min(cap),
    }
}

/// What one broker advertised in ApiVersions.
#[derive(Debug, Clone, Default)]
pub struct ApiVersions {
    /// Indexed by API key; `None` where the broker does not support the API.
    ranges: Vec<Option<(i16, i16)>>,
    /// Finalized feature levels: (name, max level).
    finalized_features: Vec<(String, i16)>,
}

impl ApiVersions {
    /// Reads a broker's ApiVersions response.
    pub fn from_response(response: &ApiVersionsResponse) -> Self {
        let mut ranges = Vec::new();
        for v in &response.api_keys {
            let Ok(key) = usize::try_from(v.api_key) else {
                continue;
            };
            if ranges.len() <= key {
                ranges.resize(key + 1, None);
            }
            ranges[key] = Some((v.min_version, v.max_version));
        }
        let finalized_features = response
            .finalized_features
            .iter()
            .map(|f| (f.name.to_string(), f.max_version_level))
            .collect();
        ApiVersions {
            ranges,
            finalized_features,
        }
    }

    /// The versions the broker advertised for `api`, if any.
    pub fn broker_range(&self, api: ApiKey) -> Option<(i16, i16)> {
        self.ranges.get(api as i16 as usize).copied().flatten()
    }

    /// The highest version of `api` that both josefk and the broker speak, or an error naming the
    /// API and both ranges.
    pub fn choose(&self, api: ApiKey, broker: &BrokerRef) -> Result<i16> {
        self.choose_within(api, client_versions(api), broker)
    }

    /// Like [`ApiVersions::choose`], within a narrower client range (a role that needs a feature
    /// only some versions have passes its own minimum or maximum).
    pub fn choose_within(
        &self,
        api: ApiKey,
        client: VersionRange,
        broker: &BrokerRef,
    ) -> Result<i16> {
        let unsupported = |broker_range| Error::UnsupportedVersion {
            api: crate::error::ApiKey::from_protocol(api),
            broker: broker.clone(),
            broker_range,
            client_min: client.min,
            client_max: client.max,
        };
        let (min, max) = self.broker_range(api).ok_or_else(|| unsupported(None))?;
        let both = client.intersect(&VersionRange { min, max });
        if both.is_empty() {
            return Err(unsupported(Some((min, max))));
        }
        Ok(both.max)
    }

    /// The finalized maximum level of a cluster feature (`transaction.version`, `group.version`),
    /// or `None` if the cluster did not finalize it.
    pub fn finalized_feature(&self, name: &str) -> Option<i16> {
        self.finalized_features
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, level)| *level)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::{ApiVersion, FinalizedFeatureKey};

    fn broker() -> BrokerRef {
        BrokerRef {
            node_id: Some(1),
            addr: "b:1".into(),
        }
    }

    fn response(keys: &[(ApiKey, i16, i16)]) -> ApiVersionsResponse {
        ApiVersionsResponse::default()
            .with_api_keys(
                keys.iter()
                    .map(|&(k, min, max)| {
                        ApiVersion::default()
                            .with_api_key(k as i16)
                            .with_min_version(min)
                            .with_max_version(max)
                    })
                    .collect(),
            )
            .with_finalized_features(vec![FinalizedFeatureKey::default()
                .with_name("transaction.version".into())
                .with_min_version_level(0)
                .with_max_version_level(2)])
    }

    #[test]
    fn picks_highest_common_version_with_josefk_caps() {
        let v = ApiVersions::from_response(&response(&[
            (ApiKey::Metadata, 0, 100),
            (ApiKey::Produce, 3, 13),
            (ApiKey::AddPartitionsToTxn, 0, 5),
            (ApiKey::Fetch, 4, 8),
        ]));
        assert_eq!(
            v.choose(ApiKey::Metadata, &broker()).unwrap(),
            ApiKey::Metadata.valid_versions().max
        );
        assert_eq!(v.choose(ApiKey::Produce, &broker()).unwrap(), 12);
        assert_eq!(v.choose(ApiKey::AddPartitionsToTxn, &broker()).unwrap(), 3);
        assert_eq!(v.choose(ApiKey::Fetch, &broker()).unwrap(), 8);
        assert_eq!(v.finalized_feature("transaction.version"), Some(2));
        // Listed by kafka-protocol's API table, not implemented by its message types.
        let v = ApiVersions::from_response(&response(&[
            (ApiKey::InitProducerId, 0, 6),
            (ApiKey::OffsetFetch, 1, 10),
        ]));
        assert_eq!(v.choose(ApiKey::InitProducerId, &broker()).unwrap(), 5);
        assert_eq!(v.choose(ApiKey::OffsetFetch, &broker()).unwrap(), 9);
        assert_eq!(v.finalized_feature("group.version"), None);
    }

    #[test]
    fn too_old_or_missing_api_is_an_error_naming_it() {
        let v = ApiVersions::from_response(&response(&[(ApiKey::Produce, 0, 2)]));
        let e = v.choose(ApiKey::Produce, &broker()).unwrap_err();
        assert!(matches!(
            e,
            Error::UnsupportedVersion {
                api: crate::error::ApiKey::Produce,
                broker_range: Some((0, 2)),
                ..
            }
        ));
        let e = v.choose(ApiKey::EndTxn, &broker()).unwrap_err();
        assert!(e.to_string().contains("EndTxn"), "{e}");
    }
}
