//! KIP-714 push against a scripted broker that advertises the telemetry APIs: the request
//! sequence a client's telemetry task makes for the answers Java handles specially
//! (UNKNOWN_SUBSCRIPTION_ID re-subscribes at once with the assigned instance id; INVALID_RECORD
//! turns the push off for good), the terminating push when the client goes away, and no telemetry
//! request at all to a broker that does not advertise the APIs.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::messages::metadata_response::MetadataResponseBroker;
use kafka_protocol::messages::{
    ApiKey, BrokerId, GetTelemetrySubscriptionsRequest, GetTelemetrySubscriptionsResponse,
    MetadataResponse, PushTelemetryRequest, PushTelemetryResponse, RequestHeader,
};
use kafka_protocol::protocol::{Decodable, StrBytes};

use josefk::admin::Admin;
use josefk::ClientConfig;
use protocol_tests::{default_versions, Action, ScriptedBroker};

const INSTANCE: [u8; 16] = [9; 16];
const UNKNOWN_SUBSCRIPTION_ID: i16 = 117;
const INVALID_RECORD: i16 = 87;

/// What the broker saw of the telemetry requests, in order.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    /// GetTelemetrySubscriptions with this instance id.
    Get([u8; 16]),
    /// PushTelemetry: subscription id, terminating, payload bytes.
    Push(i32, bool, usize),
}

/// A one-node cluster answering Metadata, GetTelemetrySubscriptions (subscription ids 1, 2, …;
/// every metric, every 100 ms) and PushTelemetry with `push_codes` in turn (then 0).
fn broker_hook(
    port: Arc<Mutex<i32>>,
    seen: Arc<Mutex<Vec<Seen>>>,
    push_codes: Vec<i16>,
) -> impl Fn(&RequestHeader, Bytes) -> Action + Send + Sync + 'static {
    let subscriptions = Arc::new(Mutex::new(0));
    let pushes = Arc::new(Mutex::new(0usize));
    move |header, mut body| {
        let v = header.request_api_version;
        match ApiKey::try_from(header.request_api_key) {
            Ok(ApiKey::Metadata) => Action::reply(
                &MetadataResponse::default()
                    .with_brokers(vec![MetadataResponseBroker::default()
                        .with_node_id(BrokerId(1))
                        .with_host(StrBytes::from_static_str("127.0.0.1"))
                        .with_port(*port.lock().unwrap())])
                    .with_controller_id(BrokerId(1)),
                v,
            ),
            Ok(ApiKey::GetTelemetrySubscriptions) => {
                let r = GetTelemetrySubscriptionsRequest::decode(&mut body, v).unwrap();
                seen.lock()
                    .unwrap()
                    .push(Seen::Get(*r.client_instance_id.as_bytes()));
                let mut id = subscriptions.lock().unwrap();
                *id += 1;
                Action::reply(
                    &GetTelemetrySubscriptionsResponse::default()
                        .with_client_instance_id(uuid::Uuid::from_bytes(INSTANCE))
                        .with_subscription_id(*id)
                        .with_accepted_compression_types(vec![0])
                        .with_push_interval_ms(100)
                        .with_telemetry_max_bytes(1 << 20)
                        .with_delta_temporality(true)
                        .with_requested_metrics(vec![StrBytes::from_static_str("*")]),
                    v,
                )
            }
            Ok(ApiKey::PushTelemetry) => {
                let r = PushTelemetryRequest::decode(&mut body, v).unwrap();
                seen.lock().unwrap().push(Seen::Push(
                    r.subscription_id,
                    r.terminating,
                    r.metrics.len(),
                ));
                let mut n = pushes.lock().unwrap();
                let code = push_codes.get(*n).copied().unwrap_or(0);
                *n += 1;
                Action::reply(&PushTelemetryResponse::default().with_error_code(code), v)
            }
            _ => Action::Default,
        }
    }
}

fn telemetry_versions() -> Vec<protocol_tests::VersionRow> {
    let mut versions = default_versions();
    versions.push((ApiKey::GetTelemetrySubscriptions, 0, 0));
    versions.push((ApiKey::PushTelemetry, 0, 0));
    versions
}

async fn start(
    versions: Vec<protocol_tests::VersionRow>,
    push_codes: Vec<i16>,
) -> (ScriptedBroker, Arc<Mutex<Vec<Seen>>>) {
    let port = Arc::new(Mutex::new(0));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let broker = ScriptedBroker::start_with_versions(
        versions,
        broker_hook(port.clone(), seen.clone(), push_codes),
    )
    .await;
    *port.lock().unwrap() = broker.addr().rsplit(':').next().unwrap().parse().unwrap();
    (broker, seen)
}

/// Waits (up to 20 s) until `done` holds for what the broker saw.
async fn wait_for(seen: &Arc<Mutex<Vec<Seen>>>, done: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = seen.lock().unwrap().clone();
        if done(&now) {
            return now;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "telemetry requests so far: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn unknown_subscription_resubscribes_with_the_instance_id_and_drop_terminates() {
    let (broker, seen) = start(telemetry_versions(), vec![UNKNOWN_SUBSCRIPTION_ID]).await;
    let admin = Admin::connect(ClientConfig::new(&broker.addr()))
        .await
        .unwrap();
    // Get, Push (refused), Get again, then at least two good pushes.
    let before_close = wait_for(&seen, |s| s.len() >= 5).await;
    drop(admin);
    let all = wait_for(&seen, |s| {
        s.iter().any(|x| matches!(x, Seen::Push(_, true, _)))
    })
    .await;
    assert_eq!(before_close[0], Seen::Get([0; 16]), "{all:?}");
    assert!(
        matches!(before_close[1], Seen::Push(1, false, n) if n > 0),
        "{all:?}"
    );
    assert_eq!(before_close[2], Seen::Get(INSTANCE), "{all:?}");
    assert!(
        matches!(before_close[3], Seen::Push(2, false, _)),
        "{all:?}"
    );
    assert!(
        matches!(before_close[4], Seen::Push(2, false, _)),
        "{all:?}"
    );
    // Exactly one terminating push, the last request.
    assert!(
        matches!(all.last(), Some(Seen::Push(2, true, _))),
        "{all:?}"
    );
    assert_eq!(
        all.iter()
            .filter(|x| matches!(x, Seen::Push(_, true, _)))
            .count(),
        1
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(seen.lock().unwrap().len(), all.len(), "nothing after it");
}

#[tokio::test]
async fn invalid_record_turns_the_push_off_for_good() {
    let (broker, seen) = start(telemetry_versions(), vec![INVALID_RECORD]).await;
    let admin = Admin::connect(ClientConfig::new(&broker.addr()))
        .await
        .unwrap();
    wait_for(&seen, |s| s.len() >= 2).await;
    // With a 100 ms interval, several more requests would come in a second if it were still on.
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(admin);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let all = seen.lock().unwrap().clone();
    assert_eq!(all.len(), 2, "no request after INVALID_RECORD: {all:?}");
}

#[tokio::test]
async fn a_broker_without_the_apis_gets_no_telemetry_request() {
    let (broker, seen) = start(default_versions(), vec![]).await;
    let admin = Admin::connect(ClientConfig::new(&broker.addr()))
        .await
        .unwrap();
    // The task asks at once when the APIs are there (see the tests above).
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(admin);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(seen.lock().unwrap().is_empty());
}
