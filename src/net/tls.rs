//! The TLS step of connection set-up: a rustls connector built once per client from its
//! [`TlsConfig`], the handshake, and turning TLS failures into errors that say what to check.
//!
//! Crypto comes from `rustls-graviola` (Rust and assembly, no C compiler needed); see
//! ARCHITECTURE.md for why not ring, aws-lc-rs or rustls-rustcrypto.

use std::fmt;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{AlertDescription, CertificateError, DigitallySignedStruct, RootCertStore};
use tokio::io::{BufReader, ReadHalf, WriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::client::TlsStream;
use tracing::warn;

use crate::error::{BrokerRef, Error, Result};
use crate::security::tls::TlsConfig;

use super::transport::Transport;

/// A TLS client configuration shared by every connection of one client.
#[derive(Clone)]
pub struct TlsConnector {
    inner: tokio_rustls::TlsConnector,
    verify_hostname: bool,
}

impl fmt::Debug for TlsConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConnector")
            .field("verify_hostname", &self.verify_hostname)
            .finish_non_exhaustive()
    }
}

impl TlsConnector {
    /// Reads the trust and key material `config` names and builds the connector.
    pub fn new(config: &TlsConfig) -> Result<TlsConnector> {
        let material = config.load()?;
        let provider = Arc::new(rustls_graviola::default_provider());
        let mut versions: Vec<&'static rustls::SupportedProtocolVersion> = Vec::new();
        if config.versions.tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if config.versions.tls12 {
            versions.push(&rustls::version::TLS12);
        }
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| Error::Config(format!("TLS versions: {e}")))?;
        let mut roots = RootCertStore::empty();
        match material.roots {
            Some(certs) => {
                for cert in certs {
                    roots.add(cert).map_err(|e| {
                        Error::Config(format!("`ssl.truststore.*`: unusable CA certificate: {e}"))
                    })?;
                }
            }
            None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
        }
        let webpki = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .map_err(|e| Error::Config(format!("`ssl.truststore.*`: {e}")))?;
        let builder = if config.verify_hostname {
            builder.with_webpki_verifier(webpki)
        } else {
            warn!(
                "ssl.endpoint.identification.algorithm is empty: broker certificates are not \
                 checked against the host name (the chain and expiry still are)"
            );
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyHostName(webpki)))
        };
        let client_config = match material.client {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
                Error::Config(format!(
                    "`ssl.keystore.*`: unusable client certificate or key: {e}"
                ))
            })?,
            None => builder.with_no_client_auth(),
        };
        Ok(TlsConnector {
            inner: tokio_rustls::TlsConnector::from(Arc::new(client_config)),
            verify_hostname: config.verify_hostname,
        })
    }

    /// Runs the TLS handshake over a connected socket. The broker's certificate must name the
    /// host in `broker.addr` (unless host-name checks are off).
    pub(crate) async fn handshake(
        &self,
        tcp: TcpStream,
        broker: &BrokerRef,
    ) -> Result<TlsStream<BufReader<TcpStream>>> {
        let name = server_name(&broker.addr).ok_or_else(|| Error::Tls {
            broker: broker.clone(),
            message: format!("`{}` is not a valid host name for TLS", broker.addr),
        })?;
        self.inner
            .connect(name, BufReader::with_capacity(SOCKET_READ_BUFFER, tcp))
            .await
            .map_err(|e| explain(&e, broker, true))
    }
}

/// Bytes read from the socket at once under TLS. rustls asks its source for 4 KiB at a time, so
/// reading the socket directly costs four or more `read` calls per 16 KiB record; through this
/// buffer a large fetch response takes one call per 64 KiB, and rustls copies out of memory.
const SOCKET_READ_BUFFER: usize = 64 * 1024;

impl Transport for TlsStream<BufReader<TcpStream>> {
    type Reader = ReadHalf<TlsStream<BufReader<TcpStream>>>;
    type Writer = WriteHalf<TlsStream<BufReader<TcpStream>>>;
    const NEEDS_FLUSH: bool = true;

    fn split(self) -> (Self::Reader, Self::Writer) {
        tokio::io::split(self)
    }
}

/// The TLS server name for a `host:port` (`[v6]:port` too).
fn server_name(addr: &str) -> Option<ServerName<'static>> {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    ServerName::try_from(host.to_owned()).ok()
}

/// The TLS error inside an I/O error, if there is one.
pub(crate) fn tls_cause(e: &std::io::Error) -> Option<&rustls::Error> {
    e.get_ref()?.downcast_ref::<rustls::Error>()
}

/// An I/O error from a TLS stream during set-up, as an error saying what to check.
/// `in_handshake`: whether the TLS handshake itself was running (an EOF then means the peer is
/// not speaking TLS).
pub(crate) fn explain(e: &std::io::Error, broker: &BrokerRef, in_handshake: bool) -> Error {
    let tls = |message: String| Error::Tls {
        broker: broker.clone(),
        message,
    };
    let Some(cause) = tls_cause(e) else {
        if in_handshake && e.kind() == std::io::ErrorKind::UnexpectedEof {
            return tls(
                "the broker closed the connection during the TLS handshake: is this a TLS \
                 listener? (a PLAINTEXT or SASL_PLAINTEXT listener drops a TLS ClientHello; \
                 check the port and `security.protocol`)"
                    .into(),
            );
        }
        if in_handshake {
            return tls(format!("TLS handshake failed: {e}"));
        }
        return Error::ConnectionLost {
            api: None,
            broker: broker.clone(),
            outcome_unknown: true,
            reason: e.to_string(),
        };
    };
    let message = match cause {
        rustls::Error::InvalidCertificate(cert) => match cert {
            CertificateError::UnknownIssuer => "the broker's certificate is not signed by a \
                trusted CA: check `ssl.truststore.location` / `ssl.truststore.certificates` \
                (they must hold the CA that signed the broker's certificate)"
                .to_owned(),
            CertificateError::NotValidForName => format!(
                "the broker's certificate does not name the host dialled ({}): dial a name the \
                 certificate lists, or (not recommended) set \
                 `ssl.endpoint.identification.algorithm=` to skip host-name checks",
                broker.addr
            ),
            CertificateError::NotValidForNameContext {
                expected,
                presented,
            } => format!(
                "the broker's certificate does not name the host dialled ({}); it names {}: \
                 dial a name the certificate lists, or (not recommended) set \
                 `ssl.endpoint.identification.algorithm=` to skip host-name checks",
                expected.to_str(),
                presented.join(", ")
            ),
            CertificateError::Expired => "the broker's certificate has expired: renew it \
                (check the broker's ssl.keystore and the clocks)"
                .to_owned(),
            CertificateError::ExpiredContext { time, not_after } => format!(
                "the broker's certificate expired on {} (now {}): renew it (check the broker's \
                 ssl.keystore and the clocks)",
                utc_date(not_after.as_secs()),
                utc_date(time.as_secs())
            ),
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "the broker's certificate is not valid yet: check the clocks".to_owned()
            }
            other => format!("the broker's certificate was refused: {other:?}"),
        },
        rustls::Error::AlertReceived(
            alert @ (AlertDescription::CertificateRequired
            | AlertDescription::BadCertificate
            | AlertDescription::UnknownCA
            | AlertDescription::CertificateUnknown
            | AlertDescription::HandshakeFailure
            | AlertDescription::AccessDenied),
        ) => format!(
            "the broker refused the connection (TLS alert {alert:?}): if its listener requires \
             client certificates (ssl.client.auth=required), set `ssl.keystore.location` or \
             `ssl.keystore.certificate.chain` + `ssl.keystore.key` to a certificate its \
             truststore accepts"
        ),
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => format!(
            "the broker does not speak TLS on this port ({cause}): check the port and \
             `security.protocol`"
        ),
        other => format!("TLS failed: {other}"),
    };
    tls(message)
}

/// `YYYY-MM-DD` (UTC) of a Unix time, for messages (days to civil date, proleptic Gregorian).
fn utc_date(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_index = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_index + 2) / 5 + 1;
    let month = if month_index < 10 {
        month_index + 3
    } else {
        month_index - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Verifies the chain, expiry and signatures as usual but accepts any host name
/// (`ssl.endpoint.identification.algorithm=` empty, as in Java).
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> std::result::Result<ServerCertVerified, rustls::Error> {
        // webpki checks the name last, after the chain, so a name error means all else passed.
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> std::result::Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_names_come_from_host_port() {
        assert_eq!(
            server_name("localhost:9093"),
            Some(ServerName::try_from("localhost").unwrap())
        );
        assert!(matches!(
            server_name("127.0.0.1:9093"),
            Some(ServerName::IpAddress(_))
        ));
        assert!(matches!(
            server_name("[::1]:9093"),
            Some(ServerName::IpAddress(_))
        ));
    }

    #[test]
    fn dates_in_messages_are_utc_calendar_dates() {
        assert_eq!(utc_date(0), "1970-01-01");
        assert_eq!(utc_date(1_580_515_200), "2020-02-01");
        assert_eq!(utc_date(951_782_400), "2000-02-29");
        assert_eq!(utc_date(1_796_564_938), "2026-12-06");
    }

    #[test]
    fn connector_builds_with_bundled_roots() {
        let c = TlsConnector::new(&TlsConfig::new()).unwrap();
        assert!(c.verify_hostname);
    }
}
