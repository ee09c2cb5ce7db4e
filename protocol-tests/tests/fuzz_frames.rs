//! Random bytes from the broker, in place of a response and in place of the handshake reply,
//! never panic josefk and always end the request with an error, promptly.
//!
//! The bytes are drawn from a fixed-seed PRNG, so every run replays the same cases. They exercise
//! framing and correlation: random length prefixes (negative, over the cap, longer or shorter than
//! what follows), random correlation ids, frames cut short by a hang-up. Bodies with the right
//! correlation id are covered by `hostile_responses.rs` (huge counts in every response type) and
//! by the fuzz corpora replayed in `fuzz_corpus.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use josefk::Error;
use kafka_protocol::messages::ApiKey;
use protocol_tests::{metadata_for, test_options, Action, Prng, ScriptedBroker};

/// Cases per test.
const ITERATIONS: usize = 1500;

/// Time allowed for each case; the request timeout is far longer, so an error within this bound
/// comes from the bytes, not from waiting.
const PROMPT: Duration = Duration::from_secs(2);

/// Bytes a broker could send instead of a well-formed answer to the request `correlation_id`.
///
/// Four shapes, so most cases reach past the length check: pure noise; a small length prefix
/// followed by noise (a complete or truncated frame with a random correlation id); a frame with
/// the correlation id of another request; a negative or oversized length prefix.
fn garbage(prng: &mut Prng, correlation_id: i32) -> Vec<u8> {
    let noise_len = prng.below(48) as usize;
    let mut bytes = Vec::new();
    match prng.below(4) {
        0 => {}
        1 => bytes.extend_from_slice(&(prng.below(64) as i32).to_be_bytes()),
        2 => {
            let len = 4 + prng.below(32) as i32;
            bytes.extend_from_slice(&len.to_be_bytes());
            let other = correlation_id.wrapping_add(1 + prng.below(1000) as i32);
            bytes.extend_from_slice(&other.to_be_bytes());
        }
        _ => {
            let len = if prng.below(2) == 0 {
                -(1 + prng.below(i32::MAX as u64) as i32)
            } else {
                (1 << 20) + 1 + prng.below((i32::MAX - (1 << 20) - 1) as u64) as i32
            };
            bytes.extend_from_slice(&len.to_be_bytes());
        }
    }
    bytes.extend(prng.bytes(noise_len));
    bytes
}

/// A broker whose answer to `api` is garbage followed by a hang-up; other requests get the
/// built-in answer. Returns the broker and the bytes it sent last (for failure messages).
async fn garbage_broker(api: ApiKey, seed: u64) -> (ScriptedBroker, Arc<Mutex<Vec<u8>>>) {
    let prng = Mutex::new(Prng::new(seed));
    let last = Arc::new(Mutex::new(Vec::new()));
    let sent = last.clone();
    let broker = ScriptedBroker::start(move |header, _| {
        if header.request_api_key != api as i16 {
            return Action::Default;
        }
        let bytes = garbage(&mut prng.lock().unwrap(), header.correlation_id);
        *sent.lock().unwrap() = bytes.clone();
        Action::Many(vec![Action::ReplyRaw(bytes), Action::Close])
    })
    .await;
    (broker, last)
}

#[tokio::test]
async fn random_bytes_instead_of_a_response_fail_the_request() {
    let (broker, last) = garbage_broker(ApiKey::Metadata, 0x00c0_ffee).await;
    let mut protocol_errors = 0;
    for case in 0..ITERATIONS {
        let conn = broker.connect(test_options()).await.unwrap();
        let result = tokio::time::timeout(PROMPT, conn.send(&metadata_for("t")))
            .await
            .unwrap_or_else(|_| panic!("case {case}: no error within {PROMPT:?}"));
        let sent = last.lock().unwrap().clone();
        match result {
            Err(Error::Protocol { .. }) => protocol_errors += 1,
            Err(Error::ConnectionLost {
                outcome_unknown: true,
                ..
            }) => {}
            other => panic!("case {case}: bytes {sent:02x?} gave {other:?}"),
        }
        assert!(conn.is_closed(), "case {case}: connection left open");
    }
    // Most shapes break the protocol before the hang-up is seen; make sure that path ran.
    assert!(
        protocol_errors > ITERATIONS / 4,
        "{protocol_errors} protocol errors"
    );
}

#[tokio::test]
async fn random_bytes_instead_of_the_handshake_reply_fail_the_connect() {
    let (broker, last) = garbage_broker(ApiKey::ApiVersions, 0x0bad_5eed).await;
    let mut protocol_errors = 0;
    for case in 0..ITERATIONS {
        let result = tokio::time::timeout(PROMPT, broker.connect(test_options()))
            .await
            .unwrap_or_else(|_| panic!("case {case}: no error within {PROMPT:?}"));
        let sent = last.lock().unwrap().clone();
        match result {
            Err(Error::Protocol {
                api: Some(josefk::ApiKey::ApiVersions),
                ..
            }) => protocol_errors += 1,
            Err(Error::ConnectionLost {
                api: Some(josefk::ApiKey::ApiVersions),
                ..
            }) => {}
            Ok(_) => panic!("case {case}: bytes {sent:02x?} were taken for a handshake"),
            Err(other) => panic!("case {case}: bytes {sent:02x?} gave {other:?}"),
        }
    }
    assert!(
        protocol_errors > ITERATIONS / 4,
        "{protocol_errors} protocol errors"
    );
}
