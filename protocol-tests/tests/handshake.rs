//! The ApiVersions handshake every josefk connection starts with: version negotiation with old
//! brokers (KIP-511), APIs a broker lacks or only speaks too new, and handshakes that go wrong.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use josefk::net::ConnectionOptions;
use josefk::protocol::client_versions;
use josefk::Error;
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, EndTxnRequest, MetadataRequest, ProduceRequest,
};
use kafka_protocol::protocol::Decodable;
use protocol_tests::{
    default_versions, echo_metadata, metadata_for, test_options, Action, ScriptedBroker,
    VersionRow, UNSUPPORTED_VERSION,
};

/// Upper bound for a handshake that must fail "at once".
const PROMPT: Duration = Duration::from_secs(2);

/// The default table with `api`'s row replaced by `row` (or removed with `None`).
fn versions_with(api: ApiKey, row: Option<(i16, i16)>) -> Vec<VersionRow> {
    let mut table: Vec<VersionRow> = default_versions()
        .into_iter()
        .filter(|(k, _, _)| *k != api)
        .collect();
    if let Some((min, max)) = row {
        table.push((api, min, max));
    }
    table
}

fn answer_metadata(header: &kafka_protocol::messages::RequestHeader, body: Bytes) -> Action {
    if header.request_api_key == ApiKey::Metadata as i16 {
        echo_metadata(header, body)
    } else {
        Action::Default
    }
}

#[tokio::test]
async fn old_broker_gets_api_versions_retried_at_the_version_it_lists() {
    // The broker knows ApiVersions 0..=2 only: it refuses josefk's v4 with UNSUPPORTED_VERSION in
    // the v0 format, listing 0..=2, and josefk must ask again at v2.
    let first_body = Arc::new(Mutex::new(None));
    let seen = first_body.clone();
    let broker = ScriptedBroker::start_with_versions(
        versions_with(ApiKey::ApiVersions, Some((0, 2))),
        move |header, body| {
            if header.correlation_id == -1 {
                *seen.lock().unwrap() = Some(body.clone());
            }
            answer_metadata(header, body)
        },
    )
    .await;
    let conn = broker.connect(test_options()).await.unwrap();

    let ours = ApiKey::ApiVersions.valid_versions().max;
    let handshake: Vec<_> = broker
        .requests()
        .iter()
        .map(|h| {
            (
                h.request_api_key,
                h.request_api_version,
                h.correlation_id,
                h.client_id.as_ref().map(|c| c.to_string()),
            )
        })
        .collect();
    let key = ApiKey::ApiVersions as i16;
    let client = Some("protocol-tests".to_owned());
    assert_eq!(
        handshake,
        vec![(key, ours, -1, client.clone()), (key, 2, -2, client)]
    );
    // The first attempt carried the client's name and version (KIP-511, v3+).
    let mut body = first_body.lock().unwrap().take().unwrap();
    let first = ApiVersionsRequest::decode(&mut body, ours).unwrap();
    assert_eq!(first.client_software_name.as_str(), "josefk");
    assert!(!first.client_software_version.is_empty());

    assert_eq!(
        conn.versions().broker_range(ApiKey::ApiVersions),
        Some((0, 2))
    );
    assert_eq!(
        conn.version_for::<MetadataRequest>().unwrap(),
        client_versions(ApiKey::Metadata).max
    );
    // The connection works, and its correlation ids start at 1.
    conn.send(&metadata_for("t")).await.unwrap();
    assert_eq!(broker.requests().last().unwrap().correlation_id, 1);
}

#[tokio::test]
async fn api_the_broker_lacks_is_unsupported_and_never_sent() {
    let broker =
        ScriptedBroker::start_with_versions(versions_with(ApiKey::EndTxn, None), answer_metadata)
            .await;
    let conn = broker.connect(test_options()).await.unwrap();
    let error = conn.version_for::<EndTxnRequest>().unwrap_err();
    match &error {
        Error::UnsupportedVersion {
            api: josefk::ApiKey::EndTxn,
            broker_range: None,
            ..
        } => {}
        other => panic!("expected UnsupportedVersion for EndTxn, got {other:?}"),
    }
    assert!(error.to_string().contains("EndTxn"), "{error}");
    let error = conn.send(&EndTxnRequest::default()).await.unwrap_err();
    assert!(
        matches!(
            error,
            Error::UnsupportedVersion {
                api: josefk::ApiKey::EndTxn,
                ..
            }
        ),
        "{error:?}"
    );
    assert!(
        broker
            .requests()
            .iter()
            .all(|h| h.request_api_key != ApiKey::EndTxn as i16),
        "an unsupported request reached the broker"
    );
    assert!(
        !conn.is_closed(),
        "an unsupported API must not close the connection"
    );
}

#[tokio::test]
async fn broker_whose_minimum_is_above_josefk_maximum_is_unsupported() {
    let ours = client_versions(ApiKey::Produce);
    let theirs = (ours.max + 1, ours.max + 2);
    let broker = ScriptedBroker::start_with_versions(
        versions_with(ApiKey::Produce, Some(theirs)),
        answer_metadata,
    )
    .await;
    let conn = broker.connect(test_options()).await.unwrap();
    match conn.version_for::<ProduceRequest>().unwrap_err() {
        Error::UnsupportedVersion {
            api: josefk::ApiKey::Produce,
            broker_range,
            client_min,
            client_max,
            ..
        } => {
            assert_eq!(broker_range, Some(theirs));
            assert_eq!((client_min, client_max), (ours.min, ours.max));
        }
        other => panic!("expected UnsupportedVersion for Produce, got {other:?}"),
    }
}

#[tokio::test]
async fn broker_listing_no_api_versions_row_fails_the_handshake() {
    // Every ApiVersions request is refused, and the refusal lists nothing to retry with.
    let broker =
        ScriptedBroker::start_with_versions(versions_with(ApiKey::ApiVersions, None), |_, _| {
            Action::Default
        })
        .await;
    match broker.connect(test_options()).await.unwrap_err() {
        Error::UnsupportedVersion {
            api: josefk::ApiKey::ApiVersions,
            broker_range: None,
            ..
        } => {}
        other => panic!("expected UnsupportedVersion for ApiVersions, got {other:?}"),
    }
}

#[tokio::test]
async fn broker_refusing_every_version_offered_fails_the_handshake() {
    // The refusal lists v4, so josefk retries v4, and is refused again.
    let refusal = ApiVersionsResponse::default()
        .with_error_code(UNSUPPORTED_VERSION)
        .with_api_keys(vec![
            kafka_protocol::messages::api_versions_response::ApiVersion::default()
                .with_api_key(ApiKey::ApiVersions as i16)
                .with_min_version(0)
                .with_max_version(4),
        ]);
    let broker = ScriptedBroker::start(move |_, _| Action::reply(&refusal, 0)).await;
    match broker.connect(test_options()).await.unwrap_err() {
        Error::Protocol {
            api: Some(josefk::ApiKey::ApiVersions),
            message,
            ..
        } => assert!(message.contains("refused every"), "{message}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
    assert_eq!(broker.requests().len(), 2, "exactly one retry");
}

#[tokio::test]
async fn handshake_error_code_is_a_broker_error() {
    const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    let broker = ScriptedBroker::start(|header, _| {
        let refusal = ApiVersionsResponse::default().with_error_code(CLUSTER_AUTHORIZATION_FAILED);
        Action::reply(&refusal, header.request_api_version)
    })
    .await;
    match broker.connect(test_options()).await.unwrap_err() {
        Error::Broker {
            api: josefk::ApiKey::ApiVersions,
            code,
            ..
        } => assert_eq!(code.code(), CLUSTER_AUTHORIZATION_FAILED),
        other => panic!("expected a broker error, got {other:?}"),
    }
}

#[tokio::test]
async fn handshake_reply_with_wrong_correlation_id_is_a_protocol_error() {
    let broker = ScriptedBroker::start(|_, _| Action::WrongCorrelationId).await;
    match broker.connect(test_options()).await.unwrap_err() {
        Error::Protocol {
            api: Some(josefk::ApiKey::ApiVersions),
            message,
            ..
        } => assert!(message.contains("correlation id"), "{message}"),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[tokio::test]
async fn oversized_handshake_reply_is_refused_at_once() {
    let broker = ScriptedBroker::start(|_, _| Action::OversizedLength(i32::MAX)).await;
    let started = Instant::now();
    match broker.connect(test_options()).await.unwrap_err() {
        Error::Protocol {
            api: Some(josefk::ApiKey::ApiVersions),
            message,
            ..
        } => assert!(message.contains("2147483647"), "{message}"),
        other => panic!("expected a protocol error naming the size, got {other:?}"),
    }
    assert!(started.elapsed() < PROMPT, "took {:?}", started.elapsed());
}

/// A bootstrap address that is an HTTP server (a proxy, a REST port) answers ApiVersions with
/// text; its first four bytes, read as a frame length, are far over the cap. The error must say
/// the peer is not Kafka, not only that a frame was too large.
#[tokio::test]
async fn an_http_server_is_named_as_such_not_only_as_an_oversized_frame() {
    let broker = ScriptedBroker::start(|_, _| {
        Action::ReplyRaw(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n".to_vec())
    })
    .await;
    match broker.connect(test_options()).await.unwrap_err() {
        Error::Protocol {
            api: Some(josefk::ApiKey::ApiVersions),
            message,
            ..
        } => {
            assert!(message.contains("HTTP server"), "{message}");
            assert!(message.contains("HTTP/1.1 400"), "{message}");
            assert!(message.contains("bootstrap.servers"), "{message}");
        }
        other => panic!("expected a protocol error naming HTTP, got {other:?}"),
    }
}

#[tokio::test]
async fn broker_hanging_up_during_handshake_loses_the_connection() {
    let broker = ScriptedBroker::start(|_, _| Action::CloseMidFrame(6)).await;
    match broker.connect(test_options()).await.unwrap_err() {
        Error::ConnectionLost {
            api: Some(josefk::ApiKey::ApiVersions),
            ..
        } => {}
        other => panic!("expected ConnectionLost, got {other:?}"),
    }
}

#[tokio::test]
async fn silent_broker_fails_the_handshake_at_the_setup_timeout() {
    let broker = ScriptedBroker::start(|_, _| Action::NoReply).await;
    let setup_timeout = Duration::from_millis(200);
    let started = Instant::now();
    let error = broker
        .connect(ConnectionOptions {
            setup_timeout,
            ..test_options()
        })
        .await
        .unwrap_err();
    let elapsed = started.elapsed();
    match &error {
        Error::Connect { source, .. } => {
            assert_eq!(source.kind(), std::io::ErrorKind::TimedOut, "{error}")
        }
        other => panic!("expected Connect (timed out), got {other:?}"),
    }
    assert!(elapsed >= setup_timeout && elapsed < PROMPT, "{elapsed:?}");
}
