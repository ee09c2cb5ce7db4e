//! The `sasl` fuzz target: the SASL mechanisms, Kafka's SaslHandshake / SaslAuthenticate framing
//! (first exchange and re-authentication) and the OIDC token endpoint's answer, fed bytes a broker
//! or an identity provider could send.
//!
//! Input: `[target][rest]`, the target being the first byte modulo 7 (see [`SaslTarget`]):
//!
//! - SCRAM-SHA-256, SCRAM-SHA-512, PLAIN, OAUTHBEARER: `rest` is the broker's messages separated
//!   by NUL, fed to the mechanism in turn after its first message.
//! - Exchange, Reauth: `[mechanism][SaslAuthenticate version][frames]`, each frame a big-endian
//!   u16 length and a response frame without its length prefix; the first answers SaslHandshake
//!   v1, the rest SaslAuthenticate. Mechanism and version are taken modulo 4 and 3.
//! - OidcAnswer: `rest` is the whole HTTP answer of the token endpoint.
//!
//! Checked: no panic; every error is a short printable text; SCRAM accepts no server signature
//! but the one it computed; nothing is accepted after an exchange ended.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use base64::engine::general_purpose::{STANDARD as B64, URL_SAFE_NO_PAD};
use base64::Engine;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::{ApiKey, ApiVersionsResponse};

use crate::error::BrokerRef;
use crate::net::sasl::exchange::{Progress, SaslExchange};
use crate::net::sasl::oauthbearer::OAuthBearerSession;
use crate::net::sasl::oidc::{parse_http_response, token_from_json};
use crate::net::sasl::plain::PlainSession;
use crate::net::sasl::reauth::Reauthenticator;
use crate::net::sasl::scram::{ScramHash, ScramSession};
use crate::net::sasl::{Authenticator, SaslSession, Step};
use crate::protocol::versions::ApiVersions;
use crate::security::{Password, SaslLogin, SaslMechanism};

/// RFC 7677's example credentials and client nonce, so a seed can hold a complete exchange.
const USER: &str = "user";
const PASSWORD: &str = "pencil";
const NONCE: &str = "rOprNGfwEbeRWgbNEkqO";

/// Longest error text (in characters) that still counts as a clear error.
const MAX_ERROR_CHARS: usize = 2048;

/// How a SASL fuzz input ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslOutcome {
    /// Authenticated, or the token endpoint's answer held a token.
    Accepted,
    /// A clear error.
    Refused,
    /// The input ended before the exchange did.
    Unfinished,
}

/// What a SASL fuzz input drives (its first byte modulo the count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslTarget {
    ScramSha256,
    ScramSha512,
    Plain,
    OAuthBearer,
    Exchange,
    Reauth,
    OidcAnswer,
}

const SASL_TARGETS: [SaslTarget; 7] = [
    SaslTarget::ScramSha256,
    SaslTarget::ScramSha512,
    SaslTarget::Plain,
    SaslTarget::OAuthBearer,
    SaslTarget::Exchange,
    SaslTarget::Reauth,
    SaslTarget::OidcAnswer,
];

/// A SASL fuzz input: never panics; see the module documentation for the layout.
pub fn fuzz_sasl(data: &[u8]) {
    let _ = sasl_input(data);
}

/// Runs one SASL fuzz input; `None` for an empty one.
pub fn sasl_input(data: &[u8]) -> Option<SaslOutcome> {
    let (&target, rest) = data.split_first()?;
    Some(
        match SASL_TARGETS[usize::from(target) % SASL_TARGETS.len()] {
            SaslTarget::ScramSha256 => drive_scram(ScramHash::Sha256, rest),
            SaslTarget::ScramSha512 => drive_scram(ScramHash::Sha512, rest),
            SaslTarget::Plain => drive_session(Box::new(plain_session()), rest),
            SaslTarget::OAuthBearer => drive_session(Box::new(oauthbearer_session()), rest),
            SaslTarget::Exchange => drive_exchange(rest, false),
            SaslTarget::Reauth => drive_exchange(rest, true),
            SaslTarget::OidcAnswer => drive_oidc(rest),
        },
    )
}

fn assert_clear(error: &str) {
    assert!(!error.is_empty(), "an empty error");
    let chars = error.chars().count();
    assert!(chars <= MAX_ERROR_CHARS, "an error of {chars} characters");
    assert!(
        !error.chars().any(char::is_control),
        "control characters in the error {error:?}"
    );
}

fn scram_session(hash: ScramHash) -> ScramSession {
    ScramSession::with_nonce(hash, USER.into(), Password::new(PASSWORD), NONCE.into())
}

fn plain_session() -> PlainSession {
    PlainSession::new(USER.into(), Password::new(PASSWORD))
}

fn oauthbearer_session() -> OAuthBearerSession {
    OAuthBearerSession::new(
        Password::new("eyJhbGciOiJub25lIn0.eyJzdWIiOiJ1c2VyIn0."),
        vec![("traceId".into(), "t1".into())],
    )
    .expect("a valid token")
}

/// The server signature in a SCRAM server-final message, decoded.
fn given_signature(message: &[u8]) -> Option<Vec<u8>> {
    std::str::from_utf8(message)
        .ok()?
        .split(',')
        .find_map(|a| a.strip_prefix("v="))
        .and_then(|v| B64.decode(v).ok())
}

fn drive_scram(hash: ScramHash, messages: &[u8]) -> SaslOutcome {
    let mut session = scram_session(hash);
    session.initial().expect("the client-first message");
    for message in messages.split(|b| *b == 0) {
        let expected = session.expected_server_signature().map(<[u8]>::to_vec);
        match session.step(message) {
            Ok(Step::Respond(reply)) => {
                assert!(expected.is_none(), "SCRAM answered its server-final");
                let reply = String::from_utf8(reply).expect("a UTF-8 client-final");
                assert!(reply.starts_with(&format!("c=biws,r={NONCE}")), "{reply}");
            }
            Ok(Step::Done) => {
                let expected = expected.expect("SCRAM finished before its client-final");
                assert_eq!(
                    given_signature(message).as_ref(),
                    Some(&expected),
                    "SCRAM accepted a server signature it did not compute"
                );
                assert!(session.step(b"").is_err(), "a message after the end");
                return SaslOutcome::Accepted;
            }
            Err(e) => {
                assert_clear(&e);
                return SaslOutcome::Refused;
            }
        }
    }
    SaslOutcome::Unfinished
}

fn drive_session(mut session: Box<dyn SaslSession>, messages: &[u8]) -> SaslOutcome {
    session.initial().expect("the first message");
    for message in messages.split(|b| *b == 0) {
        match session.step(message) {
            Ok(Step::Respond(_)) => {}
            Ok(Step::Done) => return SaslOutcome::Accepted,
            Err(e) => {
                assert_clear(&e);
                if let Some(detail) = session.failure_detail() {
                    assert_clear(&detail);
                }
                return SaslOutcome::Refused;
            }
        }
    }
    if let Some(detail) = session.failure_detail() {
        assert_clear(&detail);
    }
    SaslOutcome::Unfinished
}

fn fuzz_broker() -> BrokerRef {
    BrokerRef {
        node_id: Some(1),
        addr: "broker:9092".into(),
    }
}

/// A broker offering SaslHandshake v1 and SaslAuthenticate up to `authenticate_version`.
fn sasl_versions(authenticate_version: i16) -> ApiVersions {
    let keys = [
        (ApiKey::SaslHandshake, 1),
        (ApiKey::SaslAuthenticate, authenticate_version),
    ]
    .into_iter()
    .map(|(key, max)| {
        ApiVersion::default()
            .with_api_key(key as i16)
            .with_min_version(0)
            .with_max_version(max)
    })
    .collect();
    ApiVersions::from_response(&ApiVersionsResponse::default().with_api_keys(keys))
}

fn mechanism_session(choice: u8) -> (SaslMechanism, Box<dyn SaslSession>) {
    match choice % 4 {
        0 => (SaslMechanism::Plain, Box::new(plain_session())),
        1 => (
            SaslMechanism::ScramSha256,
            Box::new(scram_session(ScramHash::Sha256)),
        ),
        2 => (
            SaslMechanism::ScramSha512,
            Box::new(scram_session(ScramHash::Sha512)),
        ),
        _ => (SaslMechanism::OAuthBearer, Box::new(oauthbearer_session())),
    }
}

/// Splits `[u16 length][frame]...`; a last frame shorter than its length is taken as it is.
fn frames(mut rest: &[u8]) -> Vec<Bytes> {
    let mut out = Vec::new();
    while let Some((len, tail)) = rest.split_first_chunk::<2>() {
        let len = usize::from(u16::from_be_bytes(*len)).min(tail.len());
        out.push(Bytes::copy_from_slice(&tail[..len]));
        rest = &tail[len..];
    }
    out
}

/// One client's SASL state and metric cells, shared by every re-authentication input.
fn reauth_parts() -> &'static (Arc<Authenticator>, crate::metrics::ClientMetrics) {
    static PARTS: OnceLock<(Arc<Authenticator>, crate::metrics::ClientMetrics)> = OnceLock::new();
    PARTS.get_or_init(|| {
        let login = SaslLogin::Plain {
            username: USER.into(),
            password: Password::new(PASSWORD),
        };
        (
            Arc::new(Authenticator::new(Ok(login), Duration::from_secs(1))),
            crate::metrics::ClientMetrics::new("fuzz", false),
        )
    })
}

fn drive_exchange(data: &[u8], reauth: bool) -> SaslOutcome {
    let Some((&[mechanism, version], rest)) = data.split_first_chunk::<2>() else {
        return SaslOutcome::Unfinished;
    };
    let (mechanism, session) = mechanism_session(mechanism);
    let versions = sasl_versions(i16::from(version % 3));
    let broker = fuzz_broker();
    let client_id: Arc<str> = "fuzz".into();
    let (exchange, _) =
        SaslExchange::start(mechanism, session, &versions, &broker, client_id.clone())
            .expect("the broker offers SaslHandshake v1");
    if reauth {
        let (authenticator, metrics) = reauth_parts();
        let mut reauth = Reauthenticator::exchanging(
            authenticator.clone(),
            versions,
            broker,
            client_id,
            exchange,
            metrics.clone(),
        );
        assert!(!reauth.is_idle(), "idle during an exchange");
        for frame in frames(rest) {
            match reauth.on_response(frame) {
                Ok(Some(_)) => {}
                Ok(None) => {
                    let late = reauth.on_response(Bytes::new());
                    assert!(late.is_err(), "an answer after re-authenticating");
                    return SaslOutcome::Accepted;
                }
                Err(e) => {
                    assert_clear(&e.to_string());
                    return SaslOutcome::Refused;
                }
            }
        }
        return SaslOutcome::Unfinished;
    }
    let mut exchange = exchange;
    for frame in frames(rest) {
        match exchange.on_response(frame) {
            Ok(Progress::Send(_)) => {}
            Ok(Progress::Done { session_lifetime }) => {
                assert!(
                    session_lifetime.is_none_or(|d| !d.is_zero()),
                    "a zero session lifetime"
                );
                let late = exchange.on_response(Bytes::new());
                assert!(late.is_err(), "an answer after the exchange ended");
                return SaslOutcome::Accepted;
            }
            Err(e) => {
                assert_clear(&e.to_string());
                return SaslOutcome::Refused;
            }
        }
    }
    SaslOutcome::Unfinished
}

fn drive_oidc(answer: &[u8]) -> SaslOutcome {
    let Some((status, body)) = parse_http_response(answer) else {
        return SaslOutcome::Refused;
    };
    assert!(body.len() <= answer.len(), "a body longer than the answer");
    match token_from_json(&body) {
        Ok(token) => {
            assert!(!token.value.expose().is_empty(), "an empty token");
            if status == 200 {
                SaslOutcome::Accepted
            } else {
                SaslOutcome::Refused
            }
        }
        Err(e) => {
            assert_clear(&e);
            SaslOutcome::Refused
        }
    }
}

// Seed inputs.

fn input(target: SaslTarget, parts: &[&[u8]]) -> Vec<u8> {
    let mut out = vec![target as u8];
    for part in parts {
        out.extend_from_slice(part);
    }
    out
}

/// A SCRAM server-first extending the fixed client nonce, and the matching server-final.
fn scram_server_messages(hash: ScramHash) -> (String, String) {
    let server_first =
        format!("r={NONCE}%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096");
    let mut session = scram_session(hash);
    session.initial().expect("client-first");
    session
        .step(server_first.as_bytes())
        .expect("the server-first is valid");
    let signature = session
        .expected_server_signature()
        .expect("the client-final was sent");
    (server_first, format!("v={}", B64.encode(signature)))
}

fn handshake_frame(error_code: i16, mechanisms: &[&str]) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_i32(1); // correlation id
    buf.put_i16(error_code);
    buf.put_i32(mechanisms.len() as i32);
    for m in mechanisms {
        buf.put_i16(m.len() as i16);
        buf.put_slice(m.as_bytes());
    }
    buf.to_vec()
}

fn put_uvarint(buf: &mut BytesMut, mut n: u32) {
    while n >= 0x80 {
        buf.put_u8((n as u8) | 0x80);
        n >>= 7;
    }
    buf.put_u8(n as u8);
}

/// A SaslAuthenticate answer in `version` (v2 is the flexible format).
fn authenticate_frame(
    version: i16,
    error_code: i16,
    message: Option<&str>,
    auth: &[u8],
    lifetime_ms: i64,
) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.put_i32(2); // correlation id
    let flexible = version >= 2;
    if flexible {
        buf.put_u8(0); // no tagged fields in the header
    }
    buf.put_i16(error_code);
    match (message, flexible) {
        (Some(m), true) => {
            put_uvarint(&mut buf, m.len() as u32 + 1);
            buf.put_slice(m.as_bytes());
        }
        (None, true) => buf.put_u8(0),
        (Some(m), false) => {
            buf.put_i16(m.len() as i16);
            buf.put_slice(m.as_bytes());
        }
        (None, false) => buf.put_i16(-1),
    }
    if flexible {
        put_uvarint(&mut buf, auth.len() as u32 + 1);
    } else {
        buf.put_i32(auth.len() as i32);
    }
    buf.put_slice(auth);
    if version >= 1 {
        buf.put_i64(lifetime_ms);
    }
    if flexible {
        buf.put_u8(0);
    }
    buf.to_vec()
}

fn framed(target: SaslTarget, mechanism: u8, version: i16, frames: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![target as u8, mechanism, version as u8];
    for frame in frames {
        out.extend_from_slice(&(frame.len() as u16).to_be_bytes());
        out.extend_from_slice(frame);
    }
    out
}

/// Seed inputs for the `sasl` target: `(name, input, outcome)`, complete exchanges and refusals
/// of every mechanism, framing version and answer shape.
pub fn sasl_seed_inputs() -> Vec<(String, Vec<u8>, SaslOutcome)> {
    use SaslOutcome::{Accepted, Refused};
    use SaslTarget::*;
    let mut seeds: Vec<(String, Vec<u8>, SaslOutcome)> = Vec::new();
    let mut add = |name: &str, input: Vec<u8>, outcome| seeds.push((name.into(), input, outcome));

    for (target, hash, name) in [
        (ScramSha256, ScramHash::Sha256, "scram256"),
        (ScramSha512, ScramHash::Sha512, "scram512"),
    ] {
        let (first, last) = scram_server_messages(hash);
        add(
            &format!("{name}-ok"),
            input(target, &[first.as_bytes(), b"\0", last.as_bytes()]),
            Accepted,
        );
        let wrong = format!("v={}", B64.encode([7u8; 32]));
        add(
            &format!("{name}-wrong-signature"),
            input(target, &[first.as_bytes(), b"\0", wrong.as_bytes()]),
            Refused,
        );
        add(
            &format!("{name}-server-final-error"),
            input(target, &[first.as_bytes(), b"\0e=invalid-proof"]),
            Refused,
        );
    }
    add(
        "scram256-server-first-error",
        input(ScramSha256, &[b"e=unknown-user"]),
        Refused,
    );
    add("plain-ok", input(Plain, &[]), Accepted);
    add("oauthbearer-ok", input(OAuthBearer, &[]), Accepted);
    add(
        "oauthbearer-refused",
        input(
            OAuthBearer,
            &[br#"{"status":"invalid_token","scope":"kafka","openid-configuration":"https://idp/.well-known"}"#, b"\0"],
        ),
        Refused,
    );

    for (target, base) in [(Exchange, "exchange"), (Reauth, "reauth")] {
        let handshake = handshake_frame(
            0,
            &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"],
        );
        for version in 0..=2i16 {
            let ok = authenticate_frame(version, 0, None, b"", 3_600_000);
            add(
                &format!("{base}-plain-v{version}"),
                framed(target, 0, version, &[handshake.clone(), ok]),
                Accepted,
            );
        }
        for (mechanism, hash, version) in [(1, ScramHash::Sha256, 2i16), (2, ScramHash::Sha512, 1)]
        {
            let (first, last) = scram_server_messages(hash);
            add(
                &format!(
                    "{base}-scram{}-v{version}",
                    if mechanism == 1 { 256 } else { 512 }
                ),
                framed(
                    target,
                    mechanism,
                    version,
                    &[
                        handshake.clone(),
                        authenticate_frame(version, 0, None, first.as_bytes(), 0),
                        authenticate_frame(version, 0, None, last.as_bytes(), 900_000),
                    ],
                ),
                Accepted,
            );
        }
        add(
            &format!("{base}-oauthbearer-refused"),
            framed(
                target,
                3,
                2,
                &[
                    handshake.clone(),
                    authenticate_frame(2, 0, None, br#"{"status":"invalid_token"}"#, 0),
                    authenticate_frame(
                        2,
                        58,
                        Some("Authentication failed during authentication due to invalid credentials with SASL mechanism OAUTHBEARER"),
                        b"",
                        0,
                    ),
                ],
            ),
            Refused,
        );
        add(
            &format!("{base}-unsupported-mechanism"),
            framed(target, 2, 1, &[handshake_frame(33, &["PLAIN", "GSSAPI"])]),
            Refused,
        );
        add(
            &format!("{base}-bad-password"),
            framed(
                target,
                0,
                1,
                &[
                    handshake.clone(),
                    authenticate_frame(
                        1,
                        58,
                        Some("Authentication failed: Invalid username or password"),
                        b"",
                        0,
                    ),
                ],
            ),
            Refused,
        );
    }

    let token = r#"{"access_token":"eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJjbGllbnQifQ.c2ln","token_type":"Bearer","expires_in":3600,"scope":"kafka"}"#;
    add(
        "oidc-200",
        input(
            OidcAnswer,
            &[format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\r\n{token}",
                token.len()
            )
            .as_bytes()],
        ),
        Accepted,
    );
    let (a, b) = token.split_at(40);
    add(
        "oidc-200-chunked",
        input(
            OidcAnswer,
            &[format!(
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/json\r\n\r\n{:x}\r\n{a}\r\n{:x};ext=1\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            )
            .as_bytes()],
        ),
        Accepted,
    );
    let claims = URL_SAFE_NO_PAD.encode(r#"{"sub":"client","exp":4000000000}"#);
    let jwt_only = format!(r#"{{"access_token":"e30.{claims}.c2ln"}}"#);
    add(
        "oidc-200-jwt-exp-to-eof",
        input(
            OidcAnswer,
            &[
                b"HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n",
                jwt_only.as_bytes(),
            ],
        ),
        Accepted,
    );
    let error = r#"{"error":"invalid_client","error_description":"Invalid client or Invalid client credentials"}"#;
    add(
        "oidc-401-error",
        input(
            OidcAnswer,
            &[format!(
                "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{error}",
                error.len()
            )
            .as_bytes()],
        ),
        Refused,
    );
    add(
        "oidc-200-cut",
        input(
            OidcAnswer,
            &[b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n{\"access_token\":\"abc\""],
        ),
        Refused,
    );
    seeds
}
