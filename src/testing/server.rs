//! The mock cluster's network side: one listener per broker on loopback, one task per connection
//! that reads request frames, applies injected faults, hands each request to its API's handler
//! and writes the answer. Requests on one connection are handled strictly in order, as a Kafka
//! broker does.

use std::sync::{Arc, Mutex, MutexGuard};

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{oneshot, watch, Notify};
use tokio::task::JoinSet;

use super::faults::{self, FaultAction};
use super::state::State;
use super::{fetch, groups, meta, produce, txn};

/// Largest request frame the mock reads; a larger one closes the connection.
const MAX_REQUEST_SIZE: usize = 100 << 20;

/// State shared by every broker's tasks.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) state: Mutex<State>,
    /// Woken whenever records or markers are appended, for fetches waiting for data.
    pub(crate) appended: Notify,
    /// Bumped to close connections: (generation, broker or -1 for all).
    pub(crate) kill: watch::Sender<(u64, i32)>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // A handler that panicked cannot leave the state half-updated in a way later tests care
        // about more than about the panic itself, which the test sees anyway.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a handler wants written back.
pub(crate) enum Reply {
    /// This response body.
    Now(Bytes),
    /// A response body that another request will complete (JoinGroup, SyncGroup).
    Later(oneshot::Receiver<Bytes>),
    /// Nothing (Produce with acks=0).
    Silent,
    /// The request made no sense: close the connection.
    Close,
}

/// Encodes a response body at `version`.
pub(crate) fn encode<M: Encodable>(message: &M, version: i16) -> Bytes {
    let mut out = BytesMut::new();
    // Handlers only set fields valid at the versions the mock advertises; a failure here is a
    // mock bug, and an empty body makes the client fail loudly instead of the mock panicking.
    if message.encode(&mut out, version).is_err() {
        tracing::error!(version, "mock cluster could not encode a response");
        return Bytes::new();
    }
    out.freeze()
}

/// Decodes a request body.
pub(crate) fn decode<M: Decodable>(body: &mut Bytes, version: i16) -> Option<M> {
    M::decode(body, version).ok()
}

/// Accepts connections for broker `node_id` until the task is aborted.
pub(crate) async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, node_id: i32) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(serve(stream, shared.clone(), node_id));
        while connections.try_join_next().is_some() {}
    }
}

async fn serve(mut stream: TcpStream, shared: Arc<Shared>, node_id: i32) {
    let mut kill = shared.kill.subscribe();
    kill.borrow_and_update();
    loop {
        let request = tokio::select! {
            r = read_request(&mut stream) => r,
            _ = wait_kill(&mut kill, node_id) => None,
        };
        let Some((header, body)) = request else { break };
        let Ok(api) = ApiKey::try_from(header.request_api_key) else {
            break;
        };
        let version = header.request_api_version;
        let fault = {
            let mut state = shared.lock();
            *state.request_counts.entry(api as i16).or_default() += 1;
            faults::take(&mut state.faults, api, node_id)
        };
        let mut close_after = false;
        let reply = match fault {
            Some(FaultAction::Error(code)) => {
                match faults::error_response(api, version, body, code) {
                    Some(body) => Reply::Now(body),
                    None => Reply::Close,
                }
            }
            Some(FaultAction::DropConnection) => Reply::Close,
            Some(FaultAction::Delay(d)) => {
                tokio::time::sleep(d).await;
                handle(&shared, node_id, api, &header, body).await
            }
            Some(FaultAction::DropResponse) => {
                close_after = true;
                handle(&shared, node_id, api, &header, body).await
            }
            None => handle(&shared, node_id, api, &header, body).await,
        };
        let body = match reply {
            Reply::Now(body) => body,
            Reply::Later(rx) => match rx.await {
                Ok(body) => body,
                Err(_) => break,
            },
            Reply::Silent => continue,
            Reply::Close => break,
        };
        if close_after {
            break;
        }
        let frame = response_frame(header.correlation_id, api, version, &body);
        if stream.write_all(&frame).await.is_err() {
            break;
        }
    }
    let _ = stream.shutdown().await;
}

/// Resolves when the test asks to close this broker's connections.
async fn wait_kill(kill: &mut watch::Receiver<(u64, i32)>, node_id: i32) {
    loop {
        if kill.changed().await.is_err() {
            std::future::pending::<()>().await;
        }
        let (_, target) = *kill.borrow_and_update();
        if target == -1 || target == node_id {
            return;
        }
    }
}

async fn handle(
    shared: &Arc<Shared>,
    node_id: i32,
    api: ApiKey,
    header: &RequestHeader,
    mut body: Bytes,
) -> Reply {
    let v = header.request_api_version;
    let client_id = header
        .client_id
        .as_ref()
        .map(|c| c.to_string())
        .unwrap_or_default();
    let b = &mut body;
    macro_rules! sync {
        ($f:path) => {
            match decode(b, v) {
                Some(request) => Reply::Now($f(&mut shared.lock(), node_id, v, request)),
                None => Reply::Close,
            }
        };
    }
    match api {
        ApiKey::ApiVersions => Reply::Now(meta::api_versions(&shared.lock(), v)),
        ApiKey::Metadata => sync!(meta::metadata),
        ApiKey::CreateTopics => sync!(meta::create_topics),
        ApiKey::DeleteTopics => sync!(meta::delete_topics),
        ApiKey::FindCoordinator => sync!(meta::find_coordinator),
        ApiKey::ListOffsets => sync!(meta::list_offsets),
        ApiKey::Produce => match decode(b, v) {
            Some(request) => {
                let reply = produce::produce(&mut shared.lock(), node_id, v, request);
                shared.appended.notify_waiters();
                reply
            }
            None => Reply::Close,
        },
        ApiKey::Fetch => match decode(b, v) {
            Some(request) => Reply::Now(fetch::fetch(shared, node_id, v, request).await),
            None => Reply::Close,
        },
        ApiKey::JoinGroup => match decode(b, v) {
            Some(request) => groups::join(&mut shared.lock(), node_id, v, request, &client_id),
            None => Reply::Close,
        },
        ApiKey::SyncGroup => match decode(b, v) {
            Some(request) => groups::sync(&mut shared.lock(), node_id, v, request),
            None => Reply::Close,
        },
        ApiKey::Heartbeat => sync!(groups::heartbeat),
        ApiKey::LeaveGroup => sync!(groups::leave),
        ApiKey::OffsetCommit => sync!(groups::offset_commit),
        ApiKey::OffsetFetch => sync!(groups::offset_fetch),
        ApiKey::InitProducerId => {
            let reply = sync!(txn::init_producer_id);
            shared.appended.notify_waiters();
            reply
        }
        ApiKey::AddPartitionsToTxn => sync!(txn::add_partitions),
        ApiKey::AddOffsetsToTxn => sync!(txn::add_offsets),
        ApiKey::TxnOffsetCommit => sync!(txn::txn_offset_commit),
        ApiKey::EndTxn => {
            let reply = sync!(txn::end_txn);
            shared.appended.notify_waiters();
            reply
        }
        _ => Reply::Close,
    }
}

/// Reads one request frame and splits it into header and body; `None` on EOF or garbage.
async fn read_request(stream: &mut TcpStream) -> Option<(RequestHeader, Bytes)> {
    let len = stream.read_i32().await.ok()?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| (4..=MAX_REQUEST_SIZE).contains(&l))?;
    // Grown as bytes arrive, so a client announcing a huge frame does not get it allocated.
    let mut frame = Vec::new();
    (&mut *stream)
        .take(len as u64)
        .read_to_end(&mut frame)
        .await
        .ok()?;
    if frame.len() != len {
        return None;
    }
    let mut frame = Bytes::from(frame);
    let header = decode_request_header_from_buffer(&mut frame).ok()?;
    Some((header, frame))
}

/// A whole response frame: length prefix, the response header `api` uses at `version`, `body`.
fn response_frame(correlation_id: i32, api: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    let mut header = BytesMut::new();
    // ApiVersions answers always use header v0 (KIP-511), whatever the request version.
    let header_version = if api == ApiKey::ApiVersions {
        0
    } else {
        api.response_header_version(version)
    };
    let _ = ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut header, header_version);
    let mut frame = BytesMut::with_capacity(4 + header.len() + body.len());
    frame.put_i32((header.len() + body.len()) as i32);
    frame.put_slice(&header);
    frame.put_slice(body);
    frame.to_vec()
}
