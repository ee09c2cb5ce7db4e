//! Which broker coordinates a consumer group or a transactional id, found with FindCoordinator and
//! remembered until a request says otherwise (NOT_COORDINATOR, COORDINATOR_NOT_AVAILABLE, or a lost
//! connection).

use std::collections::HashMap;
use std::sync::Mutex;

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

#[cfg(test)]
mod tests {
    use super::*;

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
