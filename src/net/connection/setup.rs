//! A fresh connection's set-up before the socket task takes it: TCP dial, the ApiVersions
//! exchange (with the KIP-511 fallback), and the errors for a TLS/plaintext mix-up.

use super::*;

/// Exchanges ApiVersions on a fresh socket, before the connection task takes it over.
///
/// Sends the highest ApiVersions version josefk knows; a broker that does not know it answers with
/// error UNSUPPORTED_VERSION in the v0 format, listing the ApiVersions versions it does speak, and the
/// request is sent once more at that version (KIP-511).
pub(super) async fn handshake<S: Transport>(
    stream: &mut S,
    broker: &BrokerRef,
    options: &ConnectionOptions,
) -> Result<ApiVersions> {
    let mut version = ApiKey::ApiVersions.valid_versions().max;
    let mut buf = BytesMut::with_capacity(4096);
    for correlation_id in [-1, -2] {
        let request = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("josefk"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut encoded = encode_request(&request, version, &options.client_id)?;
        encoded.set_correlation_id(correlation_id);
        let io_lost = |e: std::io::Error| {
            // TLS 1.3 lets the broker refuse a client certificate only after the client's
            // handshake finished: the refusal arrives here, as an alert.
            #[cfg(feature = "tls")]
            if S::NEEDS_FLUSH && crate::net::tls::tls_cause(&e).is_some() {
                return crate::net::tls::explain(&e, broker, false);
            }
            Error::ConnectionLost {
                api: Some(crate::error::ApiKey::ApiVersions),
                broker: broker.clone(),
                outcome_unknown: true,
                reason: e.to_string(),
            }
        };
        stream.write_all(&encoded.frame).await.map_err(io_lost)?;
        stream.flush().await.map_err(io_lost)?;
        let frame = loop {
            match split_frame(&mut buf, options.max_response_size) {
                Ok(Some(frame)) => break frame.freeze(),
                Ok(None) => {}
                Err(e) => {
                    return Err(not_tls_expected::<S>(&buf, broker).unwrap_or_else(|| {
                        Error::Protocol {
                            api: Some(crate::error::ApiKey::ApiVersions),
                            broker: Some(broker.clone()),
                            message: format!("{e}{}", not_kafka_hint(&buf)),
                        }
                    }))
                }
            }
            if stream.read_buf(&mut buf).await.map_err(io_lost)? == 0 {
                if let Some(e) = not_tls_expected::<S>(&buf, broker) {
                    return Err(e);
                }
                let mut e = io_lost(std::io::ErrorKind::UnexpectedEof.into());
                if let Error::ConnectionLost { reason, .. } = &mut e {
                    reason.push_str(
                        ": the broker closed the connection before answering ApiVersions (a TLS \
                         or SASL listener does this to a client that skips its handshake: check \
                         the port and `security.protocol`)",
                    );
                }
                return Err(e);
            }
        };
        if response_correlation_id(&frame) != Some(correlation_id) {
            return Err(Error::Protocol {
                api: Some(crate::error::ApiKey::ApiVersions),
                broker: Some(broker.clone()),
                message: "ApiVersions response carries the wrong correlation id".into(),
            });
        }
        let response =
            match decode_response::<ApiVersionsRequest>(frame.clone(), version, Some(broker)) {
                Ok(r) if r.error_code == 0 => return Ok(ApiVersions::from_response(&r)),
                Ok(r) => r,
                // An error answer is in the v0 format whatever version was asked for. If it is
                // not that either, the first error (at the version asked) says more.
                Err(first) => decode_v0_api_versions(frame, broker).map_err(|_| first)?,
            };
        const UNSUPPORTED_VERSION: i16 = 35;
        if response.error_code != UNSUPPORTED_VERSION {
            return Error::check_code(ApiKey::ApiVersions, Some(broker), response.error_code, None)
                .map(|()| ApiVersions::from_response(&response));
        }
        let theirs = ApiVersions::from_response(&response);
        version = theirs.choose(ApiKey::ApiVersions, broker)?;
    }
    Err(Error::Protocol {
        api: Some(crate::error::ApiKey::ApiVersions),
        broker: Some(broker.clone()),
        message: "broker refused every ApiVersions version offered".into(),
    })
}

/// The error for `security.protocol=SSL` in a build without TLS.
#[cfg(not(feature = "tls"))]
pub(crate) fn tls_not_built() -> Error {
    Error::Config(
        "`security.protocol=SSL` needs josefk's `tls` cargo feature (on by default; its crypto \
         provider builds on x86_64 and aarch64)"
            .into(),
    )
}

/// On a plaintext set-up, an answer that starts like a TLS record (handshake or alert, version
/// 3.x) means the port is a TLS listener: say so instead of reporting a 350 MB frame.
fn not_tls_expected<S: Transport>(received: &[u8], broker: &BrokerRef) -> Option<Error> {
    let looks_like_tls = matches!(received, [0x15 | 0x16, 0x03, ..]);
    (!S::NEEDS_FLUSH && looks_like_tls).then(|| Error::Tls {
        broker: broker.clone(),
        message: "the broker answered with TLS: this port is a TLS listener; set \
                  `security.protocol=SSL` (or SASL_SSL) and the `ssl.*` settings"
            .into(),
    })
}

/// When the bytes where a frame length belongs are text (an HTTP server's `HTTP/1.1 400`, an SSH
/// banner, an SMTP greeting), the peer is not a Kafka listener: say what it sent, so the user
/// checks the address instead of `receive.message.max.bytes`.
fn not_kafka_hint(received: &[u8]) -> String {
    let Some(start) = received.first_chunk::<4>() else {
        return String::new();
    };
    if !start.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        return String::new();
    }
    let text: String = received
        .iter()
        .take(24)
        .take_while(|b| b.is_ascii_graphic() || **b == b' ')
        .map(|b| char::from(*b))
        .collect();
    let what = if start == b"HTTP" {
        "an HTTP server or proxy"
    } else {
        "not a Kafka listener"
    };
    format!(
        ": the peer answered with text ({text:?}), so it is {what}: check the address and port of \
         `bootstrap.servers` (or what the cluster advertises)"
    )
}

/// Dials `addr` over TCP.
pub(super) async fn dial(addr: &str, broker: &BrokerRef) -> Result<TcpStream> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| Error::Connect {
            broker: broker.clone(),
            source,
        })?;
    // Requests are written whole; Nagle would only delay small ones.
    let _ = stream.set_nodelay(true);
    Ok(stream)
}

/// Decodes an ApiVersions response frame in the v0 format (header: correlation id only), through
/// the same bounds pre-check as every other response.
fn decode_v0_api_versions(frame: Bytes, broker: &BrokerRef) -> Result<ApiVersionsResponse> {
    decode_response::<ApiVersionsRequest>(frame, 0, Some(broker))
}
