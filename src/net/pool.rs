//! Connections to every broker, one per (broker, lane), opened lazily and replaced when they die.
//!
//! A broker answers the requests of one connection strictly in order, so a long-polling Fetch or a
//! JoinGroup that waits for a rebalance would hold up everything queued behind it. Each kind of
//! traffic therefore gets its own connection ([`Lane`]), as franz-go does.
//!
//! A broker that cannot be reached is redialled no sooner than its backoff allows
//! (`reconnect.backoff.ms` doubling to `reconnect.backoff.max.ms`); callers asking for it meanwhile
//! wait out the backoff and then try once, so a dead broker costs one dial per backoff period, not
//! one per request.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::time::Instant;
use tracing::debug;

use crate::config::ClientConfig;
use crate::error::Result;
use crate::net::connection::{Connection, ConnectionOptions};
use crate::state::backoff::Backoff;

/// Which connection to a broker a request travels on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Lane {
    /// Metadata, admin and offset lookups.
    Control,
    /// Produce requests only.
    Produce,
    /// Fetch requests only (long polls).
    Fetch,
    /// Group and transaction coordinator requests (JoinGroup waits for a rebalance).
    Coordinator,
}

/// Where a connection goes: a known broker, or a bootstrap address before any metadata.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// A broker by node id; its address comes from metadata.
    Node(i32),
    /// A bootstrap address.
    Bootstrap(String),
}

/// One pooled connection and its reconnect state. Guarded by an async mutex so concurrent callers
/// share one dial instead of racing to open several.
#[derive(Debug)]
struct Slot {
    connection: Option<Connection>,
    backoff: Backoff,
    /// No dial before this instant (set after a failed dial).
    next_dial: Option<Instant>,
    /// The slot's connection died and has not been replaced yet (the next dial is a reconnect).
    lost_one: bool,
}

/// Pooled slots by (endpoint, lane).
type SlotMap = HashMap<(Endpoint, Lane), Arc<tokio::sync::Mutex<Slot>>>;

/// Every connection of one client.
#[derive(Debug)]
pub struct BrokerPool {
    options: ConnectionOptions,
    reconnect_backoff: (std::time::Duration, std::time::Duration),
    slots: Mutex<SlotMap>,
    /// Node id → `host:port`, kept current by the cluster layer from metadata.
    addresses: Mutex<HashMap<i32, String>>,
    /// Set by [`BrokerPool::close`]: no connection is handed out or dialled afterwards.
    closed: AtomicBool,
}

impl BrokerPool {
    /// An empty pool. Fails if the TLS material the config names cannot be read.
    pub fn new(config: &ClientConfig) -> Result<Self> {
        Ok(BrokerPool {
            options: ConnectionOptions::from_config(config)?,
            reconnect_backoff: (config.reconnect_backoff, config.reconnect_backoff_max),
            slots: Mutex::new(HashMap::new()),
            addresses: Mutex::new(HashMap::new()),
            closed: AtomicBool::new(false),
        })
    }

    /// Records the brokers' addresses from metadata.
    pub fn set_addresses(&self, addresses: impl IntoIterator<Item = (i32, String)>) {
        let mut map = self.addresses.lock().expect("pool lock poisoned");
        for (id, addr) in addresses {
            map.insert(id, addr);
        }
    }

    /// The address of a broker, if metadata named it.
    pub fn address(&self, node_id: i32) -> Option<String> {
        self.addresses
            .lock()
            .expect("pool lock poisoned")
            .get(&node_id)
            .cloned()
    }

    /// A live connection to `endpoint` on `lane`, dialling if there is none.
    ///
    /// Cancellation: dropping the future while it dials abandons that dial; the next caller dials
    /// again.
    pub async fn get(&self, endpoint: Endpoint, lane: Lane) -> Result<Connection> {
        let slot = {
            let mut slots = self.slots.lock().expect("pool lock poisoned");
            slots
                .entry((endpoint.clone(), lane))
                .or_insert_with(|| {
                    let (first, max) = self.reconnect_backoff;
                    Arc::new(tokio::sync::Mutex::new(Slot {
                        connection: None,
                        backoff: Backoff::new(first, max, seed(&endpoint, lane)),
                        next_dial: None,
                        lost_one: false,
                    }))
                })
                .clone()
        };
        let mut slot = slot.lock().await;
        // Checked under the slot lock that `close` takes too: a dial that began before `close`
        // stores its connection before `close` looks, and is closed with the rest.
        if self.closed.load(Ordering::SeqCst) {
            return Err(crate::Error::Closed);
        }
        if let Some(conn) = &slot.connection {
            if !conn.is_closed() {
                return Ok(conn.clone());
            }
            debug!(?endpoint, ?lane, "replacing closed connection");
            slot.connection = None;
            slot.lost_one = true;
        }
        let replacing = slot.lost_one;
        if let Some(at) = slot.next_dial {
            tokio::time::sleep_until(at).await;
        }
        let (addr, node_id) = match &endpoint {
            Endpoint::Node(id) => match self.address(*id) {
                Some(addr) => (addr, Some(*id)),
                None => {
                    return Err(crate::Error::InvalidState(format!(
                        "broker {id} is not in the cluster metadata"
                    )))
                }
            },
            Endpoint::Bootstrap(addr) => (addr.clone(), None),
        };
        match Connection::connect(&addr, node_id, self.options.clone()).await {
            // `close` gave up waiting for this dial: the connection must not be used.
            Ok(conn) if self.closed.load(Ordering::SeqCst) => {
                conn.close().await;
                Err(crate::Error::Closed)
            }
            Ok(conn) => {
                if replacing {
                    self.options
                        .metrics
                        .0
                        .net
                        .reconnect_total
                        .fetch_add(1, Ordering::Relaxed);
                    slot.lost_one = false;
                }
                slot.backoff.reset();
                slot.next_dial = None;
                slot.connection = Some(conn.clone());
                Ok(conn)
            }
            Err(e) => {
                slot.next_dial = Some(crate::clock::from_now(slot.backoff.next_delay()));
                Err(e)
            }
        }
    }

    /// Closes every connection of the pool and refuses new ones ([`Error::Closed`](crate::Error)),
    /// for a client whose `close` promises that nothing more is sent. When this returns no
    /// connection of the pool writes anything more. Only for a pool its caller owns alone: other
    /// users of the pool would lose their connections too.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::SeqCst);
        let slots: Vec<_> = self
            .slots
            .lock()
            .expect("pool lock poisoned")
            .values()
            .cloned()
            .collect();
        for slot in slots {
            let connection = slot.lock().await.connection.take();
            if let Some(connection) = connection {
                connection.close().await;
            }
        }
    }

    /// The metric cells of this pool's client.
    pub fn metrics(&self) -> &crate::metrics::ClientMetrics {
        &self.options.metrics
    }

    /// Live connections currently pooled, for choosing a broker that is known to answer.
    pub fn live_nodes(&self) -> Vec<i32> {
        let slots = self.slots.lock().expect("pool lock poisoned");
        let mut nodes: Vec<i32> = slots
            .iter()
            .filter_map(|((endpoint, _), slot)| match endpoint {
                Endpoint::Node(id) => slot
                    .try_lock()
                    .ok()
                    .filter(|s| s.connection.as_ref().is_some_and(|c| !c.is_closed()))
                    .map(|_| *id),
                Endpoint::Bootstrap(_) => None,
            })
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }
}

/// A jitter seed that differs per slot and per process, so brokers are not redialled in lock-step.
fn seed(endpoint: &Endpoint, lane: Lane) -> u64 {
    use std::hash::{BuildHasher, Hash, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    endpoint.hash(&mut h);
    lane.hash(&mut h);
    h.finish()
}
