//! A scripted fake Kafka broker for josefk's connection tests.
//!
//! [`ScriptedBroker`] listens on `127.0.0.1:0`, decodes each request frame the client sends, and asks
//! a test-supplied hook what to do about it: answer normally, answer late, answer with the wrong
//! correlation id, cut the connection in the middle of a frame, announce an absurd frame length, or
//! say nothing at all. It exists for faults a real broker cannot be made to produce on demand; it is
//! never a stand-in for a real broker (the live-broker tests use the harness for that).
//!
//! Each connection is served by one task that handles its requests strictly in order, as a Kafka
//! broker does: a [`Action::Delay`] on one request delays every answer behind it on that connection.
//!
//! ApiVersions is answered from a version table ([`default_versions`] unless the test gives its own)
//! whenever the hook returns [`Action::Default`]. A request for an ApiVersions version outside the
//! table gets what Kafka sends (KIP-511): error UNSUPPORTED_VERSION in the v0 format, listing the
//! ApiVersions versions the table has.

#![deny(missing_docs)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::metadata_response::MetadataResponseTopic;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsResponse, MetadataRequest, MetadataResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{decode_request_header_from_buffer, Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::task::{JoinHandle, JoinSet};

use josefk::net::{Connection, ConnectionOptions};

/// Kafka error code UNSUPPORTED_VERSION.
pub const UNSUPPORTED_VERSION: i16 = 35;

/// Largest request frame the scripted broker reads; a larger one closes the connection.
const MAX_REQUEST_SIZE: usize = 64 << 20;

/// Length of the body of the frame that [`Action::CloseMidFrame`] starts writing.
const MID_FRAME_BODY: usize = 1024;

/// What the broker does about one request. Returned by the test's hook.
#[derive(Debug)]
pub enum Action {
    /// The built-in answer: ApiVersions from the version table; for any other API there is none,
    /// and the broker closes the connection so a forgotten case fails loudly.
    Default,
    /// Answers with this response body; the broker adds the length prefix and the response header
    /// (correlation id, and tagged fields where the API's header version has them).
    Reply(Bytes),
    /// Writes these bytes to the socket exactly as given, with no framing added.
    ReplyRaw(Vec<u8>),
    /// Waits, then does the inner action. Later requests on the connection wait too.
    Delay(Duration, Box<Action>),
    /// Waits until the test calls [`Notify::notify_one`] (a permit given earlier counts), then does
    /// the inner action.
    WaitFor(Arc<Notify>, Box<Action>),
    /// Answers with a header-only frame whose correlation id is the request's plus one.
    WrongCorrelationId,
    /// Writes the first `n` bytes of a frame announcing a body of 1 KiB, then closes the connection.
    CloseMidFrame(usize),
    /// Closes the connection without answering.
    Close,
    /// Does nothing; the connection stays open and later requests are still served.
    NoReply,
    /// Writes only a length prefix announcing this many bytes, and keeps the connection open.
    OversizedLength(i32),
    /// Does each action in turn (for example [`Action::ReplyRaw`] then [`Action::Close`]).
    Many(Vec<Action>),
}

impl Action {
    /// An [`Action::Reply`] with `message` encoded as `version`.
    ///
    /// # Panics
    /// If `message` cannot be encoded at `version` (a mistake in the test).
    pub fn reply<M: Encodable>(message: &M, version: i16) -> Action {
        let mut body = BytesMut::new();
        message
            .encode(&mut body, version)
            .expect("scripted response must encode at the requested version");
        Action::Reply(body.freeze())
    }
}

/// One row of the broker's ApiVersions table: an API and the versions advertised for it.
pub type VersionRow = (ApiKey, i16, i16);

/// The version table a [`ScriptedBroker`] uses unless told otherwise: every API at the versions
/// `kafka-protocol` knows, but the KIP-714 telemetry APIs, which a real broker advertises only with
/// a client-telemetry plugin (a client would otherwise push metrics to every scripted broker).
pub fn default_versions() -> Vec<VersionRow> {
    ApiKey::iter()
        .filter(|key| {
            !matches!(
                key,
                ApiKey::GetTelemetrySubscriptions | ApiKey::PushTelemetry
            )
        })
        .map(|key| {
            let range = key.valid_versions();
            (key, range.min, range.max)
        })
        .collect()
}

/// The hook a test scripts the broker with. It sees every request, ApiVersions included.
type Hook = dyn Fn(&RequestHeader, Bytes) -> Action + Send + Sync;

/// State shared by the accept loop and every connection task.
struct Shared {
    hook: Box<Hook>,
    versions: Vec<VersionRow>,
    /// Every request header received, in arrival order, across connections.
    log: Mutex<Vec<RequestHeader>>,
    connections: AtomicUsize,
}

/// An in-process fake broker on a loopback port, scripted per request. Stops when dropped.
#[derive(Debug)]
pub struct ScriptedBroker {
    addr: SocketAddr,
    shared: Arc<Shared>,
    /// The accept loop; it owns the connection tasks, so aborting it ends them too.
    accept: JoinHandle<()>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("versions", &self.versions.len())
            .field("connections", &self.connections)
            .finish_non_exhaustive()
    }
}

impl ScriptedBroker {
    /// Starts a broker with [`default_versions`] and `hook`.
    pub async fn start(
        hook: impl Fn(&RequestHeader, Bytes) -> Action + Send + Sync + 'static,
    ) -> ScriptedBroker {
        ScriptedBroker::start_with_versions(default_versions(), hook).await
    }

    /// Starts a broker that advertises `versions` in ApiVersions, and answers with `hook`.
    ///
    /// # Panics
    /// If no loopback port can be bound.
    pub async fn start_with_versions(
        versions: Vec<VersionRow>,
        hook: impl Fn(&RequestHeader, Bytes) -> Action + Send + Sync + 'static,
    ) -> ScriptedBroker {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("bound address");
        let shared = Arc::new(Shared {
            hook: Box::new(hook),
            versions,
            log: Mutex::new(Vec::new()),
            connections: AtomicUsize::new(0),
        });
        let accept = tokio::spawn(accept_loop(listener, shared.clone()));
        ScriptedBroker {
            addr,
            shared,
            accept,
        }
    }

    /// `host:port` to dial.
    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    /// Dials this broker with josefk's [`Connection::connect`] (node id 1).
    pub async fn connect(&self, options: ConnectionOptions) -> josefk::Result<Connection> {
        Connection::connect(&self.addr(), Some(1), options).await
    }

    /// Every request header received so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestHeader> {
        self.shared.log.lock().expect("log lock").clone()
    }

    /// How many connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }
}

impl Drop for ScriptedBroker {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

/// Connection options for tests: short timeouts, a 1 MiB response cap, 16 requests in flight.
pub fn test_options() -> ConnectionOptions {
    ConnectionOptions {
        client_id: Arc::from("protocol-tests"),
        request_timeout: Duration::from_secs(5),
        setup_timeout: Duration::from_secs(5),
        max_response_size: 1 << 20,
        max_in_flight: 16,
        security: Default::default(),
        metrics: Default::default(),
    }
}

/// A Metadata request for one topic, so its response can be told apart from others.
pub fn metadata_for(topic: &str) -> MetadataRequest {
    use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
    MetadataRequest::default()
        .with_topics(Some(vec![MetadataRequestTopic::default()
            .with_name(Some(StrBytes::from_string(topic.to_owned()).into()))]))
        .with_allow_auto_topic_creation(false)
}

/// Answers a Metadata request with a response naming the same topics (no partitions), so each
/// caller can check it got its own answer.
///
/// # Panics
/// If the body is not a Metadata request of the header's version.
pub fn echo_metadata(header: &RequestHeader, mut body: Bytes) -> Action {
    let version = header.request_api_version;
    let request = MetadataRequest::decode(&mut body, version).expect("a Metadata request");
    let topics = request
        .topics
        .unwrap_or_default()
        .into_iter()
        .map(|t| MetadataResponseTopic::default().with_name(t.name))
        .collect();
    Action::reply(&MetadataResponse::default().with_topics(topics), version)
}

/// The first topic named by a Metadata request, or `None` for any other request (or a Metadata
/// request without topics). Lets a hook script each tagged request differently.
pub fn metadata_topic(header: &RequestHeader, mut body: Bytes) -> Option<String> {
    if header.request_api_key != ApiKey::Metadata as i16 {
        return None;
    }
    let request = MetadataRequest::decode(&mut body, header.request_api_version).ok()?;
    let name = request.topics?.into_iter().next()?.name?;
    Some(name.0.to_string())
}

/// A small deterministic PRNG (xorshift64*), so fuzz and delay patterns repeat run to run.
#[derive(Debug, Clone)]
pub struct Prng(u64);

impl Prng {
    /// A generator from `seed` (zero is replaced, xorshift cannot leave it).
    pub fn new(seed: u64) -> Prng {
        Prng(seed.max(1))
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next_u64() as u8).collect()
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    // Dropped (and every connection task aborted) when the accept loop is aborted.
    let mut connections = JoinSet::new();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        shared.connections.fetch_add(1, Ordering::SeqCst);
        let _ = stream.set_nodelay(true);
        connections.spawn(serve(stream, shared.clone()));
        // Reap finished connections so the set does not grow without bound.
        while connections.try_join_next().is_some() {}
    }
}

/// Serves one connection: one request at a time, in order, until an action closes it or the
/// client goes away.
async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    while let Some((header, body)) = read_request(&mut stream).await {
        shared.log.lock().expect("log lock").push(header.clone());
        let action = (shared.hook)(&header, body);
        if !perform(&mut stream, &header, action, &shared.versions).await {
            break;
        }
    }
    let _ = stream.shutdown().await;
}

/// Reads one request frame and splits it into header and body; `None` on EOF or garbage.
async fn read_request(stream: &mut TcpStream) -> Option<(RequestHeader, Bytes)> {
    let len = stream.read_i32().await.ok()?;
    let len = usize::try_from(len)
        .ok()
        .filter(|&l| l <= MAX_REQUEST_SIZE)?;
    let mut frame = vec![0; len];
    stream.read_exact(&mut frame).await.ok()?;
    if len < 4 {
        return None;
    }
    let mut frame = Bytes::from(frame);
    let header = decode_request_header_from_buffer(&mut frame).ok()?;
    Some((header, frame))
}

/// Carries out `action` for the request `header`. Returns false when the connection must close.
async fn perform(
    stream: &mut TcpStream,
    header: &RequestHeader,
    action: Action,
    versions: &[VersionRow],
) -> bool {
    let mut todo = VecDeque::from([action]);
    while let Some(action) = todo.pop_front() {
        let bytes = match action {
            Action::Default if header.request_api_key == ApiKey::ApiVersions as i16 => {
                let (body, version) = api_versions_answer(versions, header.request_api_version);
                response_frame(header.correlation_id, ApiKey::ApiVersions, version, &body)
            }
            Action::Default | Action::Close => return false,
            Action::NoReply => continue,
            Action::Reply(body) => {
                let Ok(api) = ApiKey::try_from(header.request_api_key) else {
                    return false;
                };
                response_frame(
                    header.correlation_id,
                    api,
                    header.request_api_version,
                    &body,
                )
            }
            Action::ReplyRaw(bytes) => bytes,
            Action::Delay(wait, next) => {
                tokio::time::sleep(wait).await;
                todo.push_front(*next);
                continue;
            }
            Action::WaitFor(notify, next) => {
                notify.notified().await;
                todo.push_front(*next);
                continue;
            }
            Action::Many(actions) => {
                for a in actions.into_iter().rev() {
                    todo.push_front(a);
                }
                continue;
            }
            Action::WrongCorrelationId => {
                let mut frame = Vec::with_capacity(8);
                frame.extend_from_slice(&4i32.to_be_bytes());
                frame.extend_from_slice(&header.correlation_id.wrapping_add(1).to_be_bytes());
                frame
            }
            Action::OversizedLength(len) => len.to_be_bytes().to_vec(),
            Action::CloseMidFrame(n) => {
                let mut frame = Vec::with_capacity(8 + MID_FRAME_BODY);
                frame.extend_from_slice(&(4 + MID_FRAME_BODY as i32).to_be_bytes());
                frame.extend_from_slice(&header.correlation_id.to_be_bytes());
                frame.resize(8 + MID_FRAME_BODY, 0);
                frame.truncate(n.min(frame.len() - 1));
                let _ = stream.write_all(&frame).await;
                let _ = stream.flush().await;
                return false;
            }
        };
        if stream.write_all(&bytes).await.is_err() {
            return false;
        }
    }
    true
}

/// The ApiVersions answer for a request at `requested`: the table at that version, or (for a
/// version the table lacks) UNSUPPORTED_VERSION in the v0 format. Returns the body and its version.
fn api_versions_answer(versions: &[VersionRow], requested: i16) -> (Bytes, i16) {
    let row = |&(key, min, max): &VersionRow| {
        ApiVersion::default()
            .with_api_key(key as i16)
            .with_min_version(min)
            .with_max_version(max)
    };
    let own = versions.iter().find(|(k, _, _)| *k == ApiKey::ApiVersions);
    let encodable = ApiKey::ApiVersions.valid_versions();
    let supported = own.is_some_and(|&(_, min, max)| {
        (min..=max).contains(&requested) && (encodable.min..=encodable.max).contains(&requested)
    });
    let (response, version) = if supported {
        let all = versions.iter().map(row).collect();
        (ApiVersionsResponse::default().with_api_keys(all), requested)
    } else {
        let own = own.map(row).into_iter().collect();
        let refusal = ApiVersionsResponse::default()
            .with_error_code(UNSUPPORTED_VERSION)
            .with_api_keys(own);
        (refusal, 0)
    };
    let mut body = BytesMut::new();
    response
        .encode(&mut body, version)
        .expect("ApiVersions response encodes");
    (body.freeze(), version)
}

/// A whole response frame: length prefix, the response header `api` uses at `version`, `body`.
fn response_frame(correlation_id: i32, api: ApiKey, version: i16, body: &[u8]) -> Vec<u8> {
    let mut header = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut header, api.response_header_version(version))
        .expect("response header encodes");
    let mut frame = BytesMut::with_capacity(4 + header.len() + body.len());
    frame.put_i32((header.len() + body.len()) as i32);
    frame.put_slice(&header);
    frame.put_slice(body);
    frame.to_vec()
}

/// The scripted brokers' view of a Produce request's records: (producer id, epoch, base sequence, record count) of each v2 record batch in `records`.
pub fn batches(mut records: &[u8]) -> Vec<(i64, i16, i32, i32)> {
    let mut out = Vec::new();
    while records.len() >= 61 {
        let len = i32::from_be_bytes(records[8..12].try_into().unwrap()) as usize + 12;
        let at = |o: usize, n: usize| &records[o..o + n];
        out.push((
            i64::from_be_bytes(at(43, 8).try_into().unwrap()),
            i16::from_be_bytes(at(51, 2).try_into().unwrap()),
            i32::from_be_bytes(at(53, 4).try_into().unwrap()),
            i32::from_be_bytes(at(57, 4).try_into().unwrap()),
        ));
        records = &records[len.min(records.len())..];
    }
    out
}
