//! KIP-368 re-authentication inside the connection task, against a scripted broker that grants
//! 1.5 s SASL sessions: callers keep a connection busy with pipelined requests while it
//! re-authenticates several times. Every request is answered with its own response, nothing fails,
//! no request is written between a SaslHandshake and its SaslAuthenticate (the task stops taking
//! new requests while it re-authenticates), and it all happens on one connection.

use std::time::{Duration, Instant};

use kafka_protocol::messages::{ApiKey, SaslAuthenticateResponse, SaslHandshakeResponse};
use kafka_protocol::protocol::StrBytes;
use protocol_tests::{echo_metadata, metadata_for, Action, ScriptedBroker};

use josefk::net::ConnectionOptions;
use josefk::security::SecurityProtocol;
use josefk::ClientConfig;

const SESSION_MS: i64 = 1500;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthentication_lets_earlier_requests_finish_and_holds_later_ones() {
    let broker = ScriptedBroker::start(|header, body| {
        let version = header.request_api_version;
        match ApiKey::try_from(header.request_api_key) {
            Ok(ApiKey::SaslHandshake) => Action::reply(
                &SaslHandshakeResponse::default()
                    .with_mechanisms(vec![StrBytes::from_static_str("PLAIN")]),
                version,
            ),
            Ok(ApiKey::SaslAuthenticate) => Action::reply(
                &SaslAuthenticateResponse::default().with_session_lifetime_ms(SESSION_MS),
                version,
            ),
            // Slow enough that several requests are in flight when a re-authentication is due.
            Ok(ApiKey::Metadata) => Action::Delay(
                Duration::from_millis(20),
                Box::new(echo_metadata(header, body)),
            ),
            _ => Action::Default,
        }
    })
    .await;
    let config = ClientConfig::new(&broker.addr())
        .security_protocol(SecurityProtocol::SaslPlaintext)
        .sasl_plain("alice", "alice-secret");
    let mut options = ConnectionOptions::from_config(&config).unwrap();
    options.request_timeout = Duration::from_secs(20);
    options.setup_timeout = Duration::from_secs(20);
    let authenticator = options.security.sasl.clone().expect("SASL options");
    let conn = broker.connect(options).await.unwrap();

    let run = Duration::from_secs(5);
    let mut callers = tokio::task::JoinSet::new();
    for caller in 0..4 {
        let conn = conn.clone();
        callers.spawn(async move {
            let started = Instant::now();
            let mut answered = 0;
            while started.elapsed() < run {
                let topic = format!("t{caller}-{answered}");
                let response = conn
                    .send(&metadata_for(&topic))
                    .await
                    .unwrap_or_else(|e| panic!("{topic}: {e}"));
                let name = response.topics[0].name.as_ref().unwrap().0.to_string();
                assert_eq!(name, topic, "each caller gets its own answer");
                answered += 1;
            }
            answered
        });
    }
    let mut answered = 0;
    while let Some(n) = callers.join_next().await {
        answered += n.unwrap();
    }

    let reauths = authenticator.reauthentications();
    let log = broker.requests();
    let keys: Vec<i16> = log.iter().map(|h| h.request_api_key).collect();
    let handshakes = keys
        .iter()
        .filter(|&&k| k == ApiKey::SaslHandshake as i16)
        .count() as u64;
    eprintln!("metadata answered: {answered}, re-authentications: {reauths}");
    assert!(answered > 50, "only {answered} requests answered");
    // 5 s of 1.5 s sessions, re-authenticated at 85-95 %: three expected, two at the least.
    assert!(reauths >= 2, "re-authentications: {reauths}");
    assert_eq!(
        handshakes,
        reauths + 1,
        "one handshake per (re-)authentication"
    );
    for (i, key) in keys.iter().enumerate() {
        if *key == ApiKey::SaslHandshake as i16 {
            assert_eq!(
                keys.get(i + 1).copied(),
                Some(ApiKey::SaslAuthenticate as i16),
                "request {i}: something was sent between SaslHandshake and SaslAuthenticate"
            );
        }
    }
    assert_eq!(broker.connections(), 1, "re-authenticated in place");
    assert!(!conn.is_closed());
}
