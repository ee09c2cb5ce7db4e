//! Which broker coordinates a consumer group or a transactional id, found with FindCoordinator and
//! remembered until a request says otherwise (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, or a lost
//! connection).

use std::collections::HashMap;
use std::sync::Mutex;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ApiKey, FindCoordinatorResponse};

use crate::error::{BrokerRef, Error, Result};

/// The kind of coordinator, as FindCoordinator's `key_type` numbers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CoordinatorKind {
    /// A consumer group's coordinator (key: the group id).
    Group,
    /// A transactional producer's coordinator (key: the transactional id).
    Transaction,
}

impl CoordinatorKind {
    /// The wire value of `key_type`.
    pub fn key_type(self) -> i8 {
        match self {
            CoordinatorKind::Group => 0,
            CoordinatorKind::Transaction => 1,
        }
    }
}

/// Coordinator node ids by (kind, key).
#[derive(Debug, Default)]
pub struct CoordinatorCache {
    nodes: Mutex<HashMap<(CoordinatorKind, String), i32>>,
}

impl CoordinatorCache {
    /// The cached coordinator, if any.
    pub fn get(&self, kind: CoordinatorKind, key: &str) -> Option<i32> {
        self.nodes
            .lock()
            .expect("coordinator cache poisoned")
            .get(&(kind, key.to_owned()))
            .copied()
    }

    /// Remembers a coordinator.
    pub fn set(&self, kind: CoordinatorKind, key: &str, node_id: i32) {
        self.nodes
            .lock()
            .expect("coordinator cache poisoned")
            .insert((kind, key.to_owned()), node_id);
    }

    /// Forgets a coordinator, but only if it is still `node_id`: a concurrent lookup that already
    /// found the new one must not be undone by a late error about the old one.
    pub fn invalidate(&self, kind: CoordinatorKind, key: &str, node_id: i32) {
        let mut nodes = self.nodes.lock().expect("coordinator cache poisoned");
        if nodes.get(&(kind, key.to_owned())) == Some(&node_id) {
            nodes.remove(&(kind, key.to_owned()));
        }
    }
}

/// The coordinator a FindCoordinator answer of `version` names for `key`: its node id and
/// `host:port`. From version 4 the answer is a list per key (KIP-699): one without `key` leaves
/// the top-level fields of versions 0-3 at their defaults (no error, node 0 at `:0`), which must
/// not be read as an answer. Neither that nor a node no client can reach (negative id, empty
/// host, port outside 1..=65535) is ever cached or dialled: each is COORDINATOR_NOT_AVAILABLE,
/// which the caller retries with backoff until its deadline (`request.timeout.ms`, or an admin
/// call's timeout).
pub(crate) fn coordinator_in(
    response: &FindCoordinatorResponse,
    version: i16,
    key: &str,
    broker: Option<&BrokerRef>,
) -> Result<(i32, String)> {
    let not_available = |message: String| {
        Err(Error::from_code(
            ApiKey::FindCoordinator,
            broker.cloned(),
            ResponseError::CoordinatorNotAvailable,
            Some(message),
        ))
    };
    let (error_code, message, node, host, port) = if version >= 4 {
        match response.coordinators.iter().find(|c| &*c.key == key) {
            Some(c) => (c.error_code, &c.error_message, c.node_id.0, &c.host, c.port),
            None => return not_available(format!("the answer names no coordinator for `{key}`")),
        }
    } else {
        (
            response.error_code,
            &response.error_message,
            response.node_id.0,
            &response.host,
            response.port,
        )
    };
    Error::check_code(
        ApiKey::FindCoordinator,
        broker,
        error_code,
        message.as_deref(),
    )?;
    if node < 0 || host.is_empty() || !(1..=i32::from(u16::MAX)).contains(&port) {
        return not_available(format!(
            "the answer names node {node} at `{host}:{port}` as the coordinator of `{key}`, \
             which no client can reach"
        ));
    }
    Ok((node, format!("{host}:{port}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::find_coordinator_response::Coordinator;
    use kafka_protocol::messages::BrokerId;

    fn coordinator(key: &str, node: i32, host: &str, port: i32) -> Coordinator {
        Coordinator::default()
            .with_key(key.to_owned().into())
            .with_node_id(BrokerId(node))
            .with_host(host.to_owned().into())
            .with_port(port)
    }

    fn is_not_available(r: &Result<(i32, String)>) -> bool {
        matches!(r, Err(e @ Error::Broker { code: crate::ErrorCode::CoordinatorNotAvailable, .. }) if e.is_retriable())
    }

    /// A v4+ answer without our key, and any answer naming a node no client can reach, are
    /// COORDINATOR_NOT_AVAILABLE (retriable), never node 0 at `:0`; a good answer is read from
    /// the list (v4+) or the top-level fields (v0-3).
    #[test]
    fn an_answer_without_our_key_or_with_an_unreachable_node_is_coordinator_not_available() {
        let empty = FindCoordinatorResponse::default();
        for version in [4, 5, 6] {
            let r = coordinator_in(&empty, version, "g", None);
            assert!(is_not_available(&r), "v{version}: {r:?}");
        }
        let other_key = empty
            .clone()
            .with_coordinators(vec![coordinator("other", 1, "h", 9092)]);
        assert!(is_not_available(&coordinator_in(&other_key, 4, "g", None)));
        for (node, host, port) in [
            (0, "", 0),
            (-1, "h", 9092),
            (1, "", 9092),
            (1, "h", 0),
            (1, "h", 70000),
        ] {
            let list = empty
                .clone()
                .with_coordinators(vec![coordinator("g", node, host, port)]);
            let r = coordinator_in(&list, 4, "g", None);
            assert!(is_not_available(&r), "v4 {node} {host}:{port}: {r:?}");
            let top = empty
                .clone()
                .with_node_id(BrokerId(node))
                .with_host(host.to_owned().into())
                .with_port(port);
            let r = coordinator_in(&top, 3, "g", None);
            assert!(is_not_available(&r), "v3 {node} {host}:{port}: {r:?}");
        }
        let good = empty.clone().with_coordinators(vec![
            coordinator("other", 2, "x", 1),
            coordinator("g", 0, "h", 9092),
        ]);
        assert_eq!(
            coordinator_in(&good, 4, "g", None).unwrap(),
            (0, "h:9092".to_owned())
        );
        let good = empty
            .clone()
            .with_node_id(BrokerId(3))
            .with_host("h".into())
            .with_port(9093);
        assert_eq!(
            coordinator_in(&good, 0, "g", None).unwrap(),
            (3, "h:9093".to_owned())
        );
        // The broker's own error still wins, with its class.
        let loading =
            empty.with_coordinators(vec![coordinator("g", -1, "", -1).with_error_code(14)]);
        let r = coordinator_in(&loading, 4, "g", None);
        assert!(
            matches!(
                &r,
                Err(Error::Broker {
                    code: crate::ErrorCode::CoordinatorLoadInProgress,
                    ..
                })
            ),
            "{r:?}"
        );
    }

    #[test]
    fn invalidate_only_forgets_the_node_that_failed() {
        let c = CoordinatorCache::default();
        c.set(CoordinatorKind::Group, "g", 1);
        c.set(CoordinatorKind::Transaction, "g", 2);
        c.invalidate(CoordinatorKind::Group, "g", 3);
        assert_eq!(c.get(CoordinatorKind::Group, "g"), Some(1));
        c.invalidate(CoordinatorKind::Group, "g", 1);
        assert_eq!(c.get(CoordinatorKind::Group, "g"), None);
        assert_eq!(c.get(CoordinatorKind::Transaction, "g"), Some(2));
        assert_eq!(CoordinatorKind::Transaction.key_type(), 1);
    }
}
