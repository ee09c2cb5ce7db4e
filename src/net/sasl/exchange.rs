//! Kafka's SASL framing around a mechanism: SaslHandshake v1 names the mechanism, then
//! SaslAuthenticate (v0–v2) carries the mechanism's messages until it is done.
//!
//! [`SaslExchange`] is IO-free (requests out, response frames in), so the same code runs during
//! set-up over the raw stream ([`authenticate`]) and inside the connection task when it
//! re-authenticates. Request bodies hold credentials, so they are never logged or formatted.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, SaslAuthenticateRequest, SaslHandshakeRequest};
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::error::{BrokerRef, Error, Result};
use crate::net::sasl::{Authenticator, SaslSession, Step};
use crate::protocol::codec::{
    decode_response, encode_request, response_correlation_id, EncodedRequest,
};
use crate::protocol::frame::split_frame;
use crate::protocol::versions::ApiVersions;
use crate::security::SaslMechanism;

const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// Rounds allowed before the exchange is declared broken: SCRAM needs 2, the others 1 or 2, so a
/// broker that keeps challenging cannot loop the client forever.
const MAX_ROUNDS: u32 = 8;

/// Most characters of broker-chosen text (its error message, its mechanism list) put in an
/// error: the broker may send up to 32 KiB of anything, terminal escapes included, and the error
/// ends up in logs.
const MAX_BROKER_TEXT: usize = 300;

/// `text` without control characters, cut at [`MAX_BROKER_TEXT`] characters.
fn broker_text(text: &str) -> String {
    let mut printable = text.chars().filter(|c| !c.is_control());
    let mut out: String = printable.by_ref().take(MAX_BROKER_TEXT).collect();
    if printable.next().is_some() {
        out.push('…');
    }
    out
}

/// What to do after a response.
#[derive(Debug)]
pub(crate) enum Progress {
    /// Send this request and feed its response back.
    Send(EncodedRequest),
    /// Authenticated. The broker ends the session after `session_lifetime` unless the client
    /// re-authenticates first (KIP-368); `None` means no limit.
    Done { session_lifetime: Option<Duration> },
}

enum Awaiting {
    Handshake,
    Authenticate,
    Finished,
}

/// One SASL exchange in Kafka framing.
pub(crate) struct SaslExchange {
    mechanism: SaslMechanism,
    session: Box<dyn SaslSession>,
    authenticate_version: i16,
    handshake_version: i16,
    client_id: std::sync::Arc<str>,
    broker: BrokerRef,
    awaiting: Awaiting,
    rounds: u32,
}

impl SaslExchange {
    /// Starts an exchange: returns it and the SaslHandshake to send.
    pub(crate) fn start(
        mechanism: SaslMechanism,
        session: Box<dyn SaslSession>,
        versions: &ApiVersions,
        broker: &BrokerRef,
        client_id: std::sync::Arc<str>,
    ) -> Result<(SaslExchange, EncodedRequest)> {
        let handshake_version = versions.choose(ApiKey::SaslHandshake, broker)?;
        let authenticate_version = versions.choose(ApiKey::SaslAuthenticate, broker)?;
        if handshake_version < 1 {
            // v0 sends raw mechanism tokens without SaslAuthenticate (Kafka < 1.0).
            return Err(Error::Authentication {
                broker: broker.clone(),
                message:
                    "the broker only speaks SaslHandshake v0 (Kafka before 1.0); josefk needs v1"
                        .into(),
            });
        }
        let request = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(mechanism.name()));
        let encoded = encode_request(&request, handshake_version, &client_id)?;
        Ok((
            SaslExchange {
                mechanism,
                session,
                authenticate_version,
                handshake_version,
                client_id,
                broker: broker.clone(),
                awaiting: Awaiting::Handshake,
                rounds: 0,
            },
            encoded,
        ))
    }

    fn refused(&self, message: String) -> Error {
        Error::Authentication {
            broker: self.broker.clone(),
            message,
        }
    }

    fn authenticate_request(&mut self, auth_bytes: Vec<u8>) -> Result<EncodedRequest> {
        self.rounds += 1;
        if self.rounds > MAX_ROUNDS {
            return Err(self.refused(format!(
                "{} exchange did not finish within {MAX_ROUNDS} rounds",
                self.mechanism
            )));
        }
        let request = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(auth_bytes));
        self.awaiting = Awaiting::Authenticate;
        encode_request(&request, self.authenticate_version, &self.client_id)
    }

    /// Feeds the response frame (length prefix removed) to the last request sent.
    pub(crate) fn on_response(&mut self, frame: Bytes) -> Result<Progress> {
        match std::mem::replace(&mut self.awaiting, Awaiting::Finished) {
            Awaiting::Handshake => {
                let response = decode_response::<SaslHandshakeRequest>(
                    frame,
                    self.handshake_version,
                    Some(&self.broker),
                )?;
                match response.error_code {
                    0 => {}
                    UNSUPPORTED_SASL_MECHANISM => {
                        let enabled: Vec<&str> =
                            response.mechanisms.iter().map(|m| m.as_str()).collect();
                        return Err(self.refused(format!(
                            "SASL mechanism {} is not enabled on this listener; it offers [{}] \
                             (check `sasl.mechanism` and that the port is the SASL listener's)",
                            self.mechanism,
                            broker_text(&enabled.join(", "))
                        )));
                    }
                    // The broker's request handler answers SaslHandshake this way only on a
                    // connection it already counts as authenticated: a PLAINTEXT or SSL listener.
                    ILLEGAL_SASL_STATE => {
                        return Err(self.refused(
                            "the broker refused SaslHandshake (ILLEGAL_SASL_STATE): this port is \
                             not a SASL listener (a PLAINTEXT or SSL listener answers so); check \
                             the port and `security.protocol`"
                                .into(),
                        ))
                    }
                    code => {
                        Error::check_code(ApiKey::SaslHandshake, Some(&self.broker), code, None)?;
                    }
                }
                let first = self.session.initial().map_err(|m| self.refused(m))?;
                self.authenticate_request(first).map(Progress::Send)
            }
            Awaiting::Authenticate => {
                let response = decode_response::<SaslAuthenticateRequest>(
                    frame,
                    self.authenticate_version,
                    Some(&self.broker),
                )?;
                if response.error_code != 0 {
                    let said = response
                        .error_message
                        .as_ref()
                        .map(|m| broker_text(m.as_str()))
                        .unwrap_or_else(|| format!("Kafka error {}", response.error_code));
                    let what = match response.error_code {
                        SASL_AUTHENTICATION_FAILED => "authentication failed",
                        ILLEGAL_SASL_STATE => "illegal SASL state",
                        _ => "SaslAuthenticate failed",
                    };
                    let detail = self
                        .session
                        .failure_detail()
                        .map(|d| format!(" ({d})"))
                        .unwrap_or_default();
                    return Err(self.refused(format!("{} {what}: {said}{detail}", self.mechanism)));
                }
                match self
                    .session
                    .step(&response.auth_bytes)
                    .map_err(|m| self.refused(format!("{}: {m}", self.mechanism)))?
                {
                    Step::Respond(bytes) => self.authenticate_request(bytes).map(Progress::Send),
                    Step::Done => Ok(Progress::Done {
                        session_lifetime: u64::try_from(response.session_lifetime_ms)
                            .ok()
                            .filter(|ms| *ms > 0)
                            .map(Duration::from_millis),
                    }),
                }
            }
            Awaiting::Finished => {
                Err(self.refused("SASL response after the exchange ended".into()))
            }
        }
    }
}

/// Authenticates a fresh connection over its raw stream, after ApiVersions and before the
/// connection task starts. Returns the session lifetime the broker granted.
///
/// The caller bounds the whole set-up with its timeout.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn authenticate<S>(
    stream: &mut S,
    authenticator: &Authenticator,
    versions: &ApiVersions,
    broker: &BrokerRef,
    client_id: std::sync::Arc<str>,
    max_response_size: usize,
) -> Result<Option<Duration>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mechanism, session) = authenticator.session(broker).await?;
    let (mut exchange, mut request) =
        SaslExchange::start(mechanism, session, versions, broker, client_id)?;
    let mut buf = BytesMut::with_capacity(1024);
    // ApiVersions used -1 and -2; the connection task counts up from 1.
    let mut correlation_id = -3i32;
    loop {
        let api = request.api_key;
        request.set_correlation_id(correlation_id);
        let io_lost = |e: std::io::Error| Error::ConnectionLost {
            api: Some(crate::error::ApiKey::from_protocol(api)),
            broker: broker.clone(),
            outcome_unknown: true,
            reason: e.to_string(),
        };
        stream.write_all(&request.frame).await.map_err(io_lost)?;
        // A TLS stream may hold the bytes in its buffer until flushed.
        stream.flush().await.map_err(io_lost)?;
        let frame = loop {
            match split_frame(&mut buf, max_response_size) {
                Ok(Some(frame)) => break frame.freeze(),
                Ok(None) => {}
                Err(e) => {
                    return Err(Error::Protocol {
                        api: Some(crate::error::ApiKey::from_protocol(api)),
                        broker: Some(broker.clone()),
                        message: e.to_string(),
                    })
                }
            }
            if stream.read_buf(&mut buf).await.map_err(io_lost)? == 0 {
                // Brokers close the socket on a failed SASL exchange they cannot answer in-band.
                return Err(io_lost(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the broker closed the connection during SASL authentication",
                )));
            }
        };
        if response_correlation_id(&frame) != Some(correlation_id) {
            return Err(Error::Protocol {
                api: Some(crate::error::ApiKey::from_protocol(api)),
                broker: Some(broker.clone()),
                message: format!("{api:?} response carries the wrong correlation id"),
            });
        }
        match exchange.on_response(frame)? {
            Progress::Send(next) => request = next,
            Progress::Done { session_lifetime } => return Ok(session_lifetime),
        }
        correlation_id -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::ApiVersionsResponse;

    use crate::security::Password;

    fn broker() -> BrokerRef {
        BrokerRef {
            node_id: Some(1),
            addr: "127.0.0.1:9".into(),
        }
    }

    fn versions() -> ApiVersions {
        let keys = [
            (ApiKey::SaslHandshake, 0, 1),
            (ApiKey::SaslAuthenticate, 0, 1),
        ]
        .into_iter()
        .map(|(k, min, max)| {
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
        ApiVersions::from_response(&ApiVersionsResponse::default().with_api_keys(keys))
    }

    // kafka-protocol encodes responses only with its `broker` feature, so the tests write the
    // two (non-flexible) response formats by hand: SaslHandshake v1 and SaslAuthenticate v1.
    fn handshake(error_code: i16, mechanisms: &[&str]) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i32(0); // correlation id
        buf.put_i16(error_code);
        buf.put_i32(mechanisms.len() as i32);
        for m in mechanisms {
            buf.put_i16(m.len() as i16);
            buf.put_slice(m.as_bytes());
        }
        buf.freeze()
    }

    fn authenticate(
        error_code: i16,
        message: Option<&str>,
        auth: &[u8],
        lifetime_ms: i64,
    ) -> Bytes {
        let mut buf = BytesMut::new();
        buf.put_i32(0);
        buf.put_i16(error_code);
        match message {
            Some(m) => {
                buf.put_i16(m.len() as i16);
                buf.put_slice(m.as_bytes());
            }
            None => buf.put_i16(-1),
        }
        buf.put_i32(auth.len() as i32);
        buf.put_slice(auth);
        buf.put_i64(lifetime_ms);
        buf.freeze()
    }

    fn plain_exchange() -> SaslExchange {
        let session = Box::new(super::super::plain::PlainSession::new(
            "alice".into(),
            Password::new("pw"),
        ));
        SaslExchange::start(
            SaslMechanism::Plain,
            session,
            &versions(),
            &broker(),
            "c".into(),
        )
        .unwrap()
        .0
    }

    #[test]
    fn plain_succeeds_and_reports_the_session_lifetime() {
        let mut x = plain_exchange();
        let Progress::Send(auth) = x.on_response(handshake(0, &[])).unwrap() else {
            panic!()
        };
        assert_eq!(auth.api_key, ApiKey::SaslAuthenticate);
        assert_eq!(auth.api_version, 1);
        match x.on_response(authenticate(0, None, b"", 10_000)).unwrap() {
            Progress::Done { session_lifetime } => {
                assert_eq!(session_lifetime, Some(Duration::from_secs(10)))
            }
            Progress::Send(_) => panic!("PLAIN is one round"),
        }
    }

    #[test]
    fn unsupported_mechanism_lists_what_the_listener_offers() {
        let mut x = plain_exchange();
        let refused = handshake(
            UNSUPPORTED_SASL_MECHANISM,
            &["SCRAM-SHA-256", "SCRAM-SHA-512"],
        );
        let e = x.on_response(refused).unwrap_err();
        assert!(matches!(e, Error::Authentication { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("PLAIN is not enabled"), "{text}");
        assert!(text.contains("[SCRAM-SHA-256, SCRAM-SHA-512]"), "{text}");
    }

    #[test]
    fn a_listener_without_sasl_is_named_with_what_to_check() {
        let mut x = plain_exchange();
        let e = x
            .on_response(handshake(ILLEGAL_SASL_STATE, &[]))
            .unwrap_err();
        assert!(matches!(e, Error::Authentication { .. }), "{e}");
        let text = e.to_string();
        assert!(text.contains("not a SASL listener"), "{text}");
        assert!(text.contains("security.protocol"), "{text}");
    }

    #[test]
    fn bad_credentials_carry_the_brokers_message() {
        let mut x = plain_exchange();
        x.on_response(handshake(0, &[])).unwrap();
        let refused = authenticate(
            SASL_AUTHENTICATION_FAILED,
            Some("Authentication failed: Invalid username or password"),
            b"",
            0,
        );
        let e = x.on_response(refused).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains(
                "PLAIN authentication failed: Authentication failed: Invalid username or password"
            ),
            "{text}"
        );
        assert!(!text.contains("pw"), "{text}");
    }

    #[test]
    fn oauthbearer_refusal_names_the_brokers_status() {
        let session = Box::new(
            super::super::oauthbearer::OAuthBearerSession::new(Password::new("tok"), vec![])
                .unwrap(),
        );
        let (mut x, _) = SaslExchange::start(
            SaslMechanism::OAuthBearer,
            session,
            &versions(),
            &broker(),
            "c".into(),
        )
        .unwrap();
        x.on_response(handshake(0, &[])).unwrap();
        let json = authenticate(0, None, br#"{"status":"invalid_token"}"#, 0);
        let Progress::Send(ack) = x.on_response(json).unwrap() else {
            panic!("the refusal is acknowledged")
        };
        assert_eq!(ack.api_key, ApiKey::SaslAuthenticate);
        let failed = authenticate(
            SASL_AUTHENTICATION_FAILED,
            Some("Authentication failed during authentication due to invalid credentials with SASL mechanism OAUTHBEARER"),
            b"",
            0,
        );
        let text = x.on_response(failed).unwrap_err().to_string();
        assert!(text.contains("broker status `invalid_token`"), "{text}");
        assert!(text.contains("OAUTHBEARER authentication failed"), "{text}");
    }

    #[test]
    fn broker_text_in_errors_is_printable_and_bounded() {
        // Found by the `sasl` fuzz target: the broker's error message went into the error as
        // sent, NULs and escapes included.
        let long = format!("bad\u{1b}[31mred\0{}", "x".repeat(30_000));
        let mut x = plain_exchange();
        x.on_response(handshake(0, &[])).unwrap();
        let refused = authenticate(SASL_AUTHENTICATION_FAILED, Some(&long), b"", 0);
        let text = x.on_response(refused).unwrap_err().to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.contains("bad[31mredxxx"), "{text}");
        assert!(
            text.chars().count() < 500,
            "{} characters",
            text.chars().count()
        );

        let mechanism = format!("M\u{7}{}", "E".repeat(100));
        let offered = vec![mechanism.as_str(); 300];
        let mut x = plain_exchange();
        let text = x
            .on_response(handshake(UNSUPPORTED_SASL_MECHANISM, &offered))
            .unwrap_err()
            .to_string();
        assert!(!text.chars().any(char::is_control), "{text:?}");
        assert!(text.contains("[MEEE"), "{text}");
        assert!(
            text.chars().count() < 600,
            "{} characters",
            text.chars().count()
        );
    }

    #[test]
    fn a_broker_that_keeps_challenging_is_cut_off() {
        struct Endless;
        impl SaslSession for Endless {
            fn initial(&mut self) -> std::result::Result<Vec<u8>, String> {
                Ok(vec![1])
            }
            fn step(&mut self, _: &[u8]) -> std::result::Result<Step, String> {
                Ok(Step::Respond(vec![1]))
            }
        }
        let (mut x, _) = SaslExchange::start(
            SaslMechanism::Plain,
            Box::new(Endless),
            &versions(),
            &broker(),
            "c".into(),
        )
        .unwrap();
        x.on_response(handshake(0, &[])).unwrap();
        let mut rounds = 0;
        let e = loop {
            match x.on_response(authenticate(0, None, b"x", 0)) {
                Ok(Progress::Send(_)) => rounds += 1,
                Ok(Progress::Done { .. }) => panic!("never done"),
                Err(e) => break e,
            }
        };
        assert!(rounds < MAX_ROUNDS as usize, "{rounds}");
        assert!(e.to_string().contains("did not finish"), "{e}");
    }
}
