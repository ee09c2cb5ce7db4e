//! The built-in OIDC client-credentials token provider (KIP-768): one HTTP/1.1 POST to the token
//! endpoint per token, `grant_type=client_credentials` (and `scope`), the client id and secret in
//! HTTP basic auth, and `access_token` / `expires_in` read from the JSON answer.
//!
//! The HTTP client is deliberately tiny (one request per connection, `Connection: close`,
//! `Content-Length` or chunked bodies, a 1 MiB cap on the answer) because that is all a token
//! endpoint needs. `https://` endpoints are verified with the client's `ssl.*` trust settings (as
//! Java's OIDC login does), through the same TLS connector brokers get; without the `tls` feature
//! they fail with a clear error.

use std::time::Duration;

use base64::Engine;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

#[cfg(feature = "tls")]
use crate::net::tls::TlsConnector;

use crate::security::sasl::{shown_url, OidcSettings};
use crate::security::token::{OAuthBearerToken, OAuthBearerTokenProvider, TokenError, TokenFuture};

/// Largest token endpoint answer read.
const MAX_RESPONSE: usize = 1024 * 1024;

/// Fetches tokens from an OIDC token endpoint with the client-credentials grant.
#[derive(Debug, Clone)]
pub struct ClientCredentialsProvider {
    settings: OidcSettings,
    #[cfg(feature = "tls")]
    tls: Option<TlsConnector>,
}

impl ClientCredentialsProvider {
    /// A provider for these settings (`http://` endpoints; see
    /// [`ClientCredentialsProvider::with_tls`] for `https://`).
    pub fn new(settings: OidcSettings) -> Self {
        ClientCredentialsProvider {
            settings,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }

    /// Verifies `https://` endpoints with `connector`.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, connector: TlsConnector) -> Self {
        self.tls = Some(connector);
        self
    }

    async fn fetch(&self) -> Result<OAuthBearerToken, TokenError> {
        let url = &self.settings.token_endpoint_url;
        // Errors name the endpoint without credentials its user info or query may hold.
        let shown = shown_url(url);
        let (https, rest) = match (url.strip_prefix("http://"), url.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (None, Some(rest)) => (true, rest),
            _ => return Err(format!("token endpoint `{shown}` is not an http(s):// URL").into()),
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let address = if authority
            .rsplit_once(':')
            .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        {
            authority.to_owned()
        } else if https {
            format!("{authority}:443")
        } else {
            format!("{authority}:80")
        };
        let mut body = String::from("grant_type=client_credentials");
        if let Some(scope) = &self.settings.scope {
            body.push_str("&scope=");
            body.push_str(&form_encode(scope));
        }
        let basic = basic_credentials(&self.settings);
        let request = format!(
            "POST {path} HTTP/1.1\r\nHost: {authority}\r\nAuthorization: Basic {basic}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nAccept: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        let stream = TcpStream::connect(&address)
            .await
            .map_err(|e| format!("cannot reach token endpoint `{shown}`: {e}"))?;
        let answer = if https {
            self.over_tls(stream, &address, request.as_bytes()).await?
        } else {
            http_exchange(stream, request.as_bytes()).await
        }
        .map_err(|e| format!("token endpoint `{shown}`: {e}"))?;
        let (status, body) = parse_http_response(&answer)
            .ok_or_else(|| format!("token endpoint `{shown}` sent a malformed HTTP answer"))?;
        if status != 200 {
            let text: String = String::from_utf8_lossy(&body)
                .chars()
                .filter(|c| !c.is_control())
                .take(300)
                .collect();
            return Err(format!("token endpoint `{shown}` answered HTTP {status}: {text}").into());
        }
        token_from_json(&body).map_err(|e| format!("token endpoint `{shown}`: {e}").into())
    }
}

impl ClientCredentialsProvider {
    #[cfg(feature = "tls")]
    async fn over_tls(
        &self,
        tcp: TcpStream,
        address: &str,
        request: &[u8],
    ) -> Result<std::io::Result<Vec<u8>>, TokenError> {
        let Some(tls) = &self.tls else {
            return Err("https:// token endpoint but no TLS connector was configured".into());
        };
        let endpoint = crate::error::BrokerRef {
            node_id: None,
            addr: address.to_owned(),
        };
        let stream = tls
            .handshake(tcp, &endpoint)
            .await
            .map_err(|e| format!("token endpoint: {e}"))?;
        Ok(http_exchange(stream, request).await)
    }

    #[cfg(not(feature = "tls"))]
    async fn over_tls(
        &self,
        _tcp: TcpStream,
        _address: &str,
        _request: &[u8],
    ) -> Result<std::io::Result<Vec<u8>>, TokenError> {
        Err("https:// token endpoints need josefk's `tls` feature".into())
    }
}

/// Writes `request` and reads the whole answer (to EOF), at most 1 MiB.
async fn http_exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut stream: S,
    request: &[u8],
) -> std::io::Result<Vec<u8>> {
    stream.write_all(request).await?;
    stream.flush().await?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(n) => n,
            // Many HTTPS servers close without a TLS close_notify; the body's length (checked
            // when parsing) tells a complete answer from a cut one.
            Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !answer.is_empty() => 0,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(answer);
        }
        if answer.len() + n > MAX_RESPONSE {
            return Err(std::io::Error::other("answer larger than 1 MiB"));
        }
        answer.extend_from_slice(&chunk[..n]);
    }
}

impl OAuthBearerTokenProvider for ClientCredentialsProvider {
    fn token(&self) -> TokenFuture<'_> {
        Box::pin(self.fetch())
    }
}

/// The `Basic` credentials of the token request. RFC 6749 §2.3.1 form-encodes id and secret
/// first; Java does so only with `sasl.oauthbearer.header.urlencode=true` (default false, KIP-1025,
/// because identity providers that decode nothing reject an encoded secret), and josefk follows.
fn basic_credentials(settings: &OidcSettings) -> String {
    let (id, secret) = (&settings.client_id, settings.client_secret.expose());
    let joined = if settings.header_urlencode {
        format!("{}:{}", form_encode(id), form_encode(secret))
    } else {
        format!("{id}:{secret}")
    };
    base64::engine::general_purpose::STANDARD.encode(joined)
}

/// `application/x-www-form-urlencoded` encoding of one value.
fn form_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// Status code and body of a complete HTTP/1.x answer (`Content-Length`, chunked, or to EOF).
pub(crate) fn parse_http_response(answer: &[u8]) -> Option<(u16, Vec<u8>)> {
    let head_end = answer.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&answer[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        }
    }
    let rest = &answer[head_end + 4..];
    if chunked {
        let mut body = Vec::new();
        let mut rest = rest;
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n")?;
            let size_text = std::str::from_utf8(&rest[..line_end]).ok()?;
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            rest = &rest[line_end + 2..];
            if size == 0 {
                return Some((status, body));
            }
            body.extend_from_slice(rest.get(..size)?);
            // A chunk's data ends with CRLF; anything else means its size line lied, and the
            // body read so far would be cut or padded.
            if rest.get(size..size + 2)? != b"\r\n" {
                return None;
            }
            rest = &rest[size + 2..];
        }
    }
    match length {
        Some(n) => Some((status, rest.get(..n)?.to_vec())),
        None => Some((status, rest.to_vec())),
    }
}

/// The token and its lifetime from a token endpoint's JSON: `expires_in`, or else the JWT's `exp`.
pub(crate) fn token_from_json(body: &[u8]) -> Result<OAuthBearerToken, String> {
    let json: serde_json::Value =
        serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_owned())?;
    let token = json
        .get("access_token")
        .and_then(|t| t.as_str())
        .filter(|t| !t.is_empty())
        .ok_or_else(|| "the answer has no `access_token`".to_owned())?;
    let lifetime = match json.get("expires_in").and_then(|e| e.as_f64()) {
        Some(secs) if secs > 0.0 && secs.is_finite() => Duration::from_secs_f64(secs.min(1e9)),
        Some(_) => return Err("`expires_in` must be a positive number of seconds".into()),
        None => jwt_lifetime(token).ok_or_else(|| {
            "the answer has no `expires_in` and the token is not a JWT with `exp`".to_owned()
        })?,
    };
    Ok(OAuthBearerToken::new(token, lifetime))
}

/// Time left until the `exp` claim of a JWT, if it has one in the future.
fn jwt_lifetime(token: &str) -> Option<Duration> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()?
        .as_secs_f64();
    (exp > now).then(|| Duration::from_secs_f64((exp - now).min(1e9)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_show_the_endpoint_without_user_info_or_query() {
        assert_eq!(
            shown_url("https://id:secret@idp.example:8443/token?key=abc"),
            "https://***@idp.example:8443/token?…"
        );
        assert_eq!(shown_url("http://idp/t"), "http://idp/t");
        assert_eq!(shown_url("https://idp?x=1"), "https://idp?…");
        assert_eq!(shown_url("https://id:p/ss@idp/t"), "https://***@idp/t");
    }

    #[test]
    fn reads_content_length_and_chunked_answers() {
        let (status, body) =
            parse_http_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}extra").unwrap();
        assert_eq!((status, body.as_slice()), (200, &b"{}"[..]));
        let (status, body) = parse_http_response(
            b"HTTP/1.1 401 Unauthorized\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n",
        )
        .unwrap();
        assert_eq!((status, body.as_slice()), (401, &b"abcde"[..]));
        assert!(parse_http_response(b"garbage").is_none());
        assert!(parse_http_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"
        )
        .is_none());
        // A chunk size shorter than its data: the data's end is not where CRLF must be.
        assert!(parse_http_response(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabc\r\n0\r\n\r\n"
        )
        .is_none());
    }

    #[test]
    fn token_and_lifetime_from_json() {
        let t =
            token_from_json(br#"{"access_token":"abc","expires_in":300,"token_type":"bearer"}"#)
                .unwrap();
        assert_eq!(t.value.expose(), "abc");
        assert_eq!(t.lifetime, Duration::from_secs(300));
        let claims = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(format!(r#"{{"exp":{}}}"#, 4_000_000_000u64));
        let jwt = format!("e30.{claims}.");
        let t = token_from_json(format!(r#"{{"access_token":"{jwt}"}}"#).as_bytes()).unwrap();
        assert!(t.lifetime > Duration::from_secs(3600));
        assert!(token_from_json(b"{}").is_err());
        assert!(token_from_json(br#"{"access_token":"x","expires_in":-1}"#).is_err());
        assert!(token_from_json(br#"{"access_token":"notajwt"}"#).is_err());
        assert!(token_from_json(b"<html>").is_err());
    }

    #[test]
    fn basic_credentials_are_form_encoded_only_when_asked() {
        use base64::Engine;
        let mut settings = OidcSettings {
            token_endpoint_url: "http://idp/t".into(),
            client_id: "app 1".into(),
            client_secret: crate::security::Password::new("s:e+c/r%t"),
            scope: None,
            header_urlencode: false,
        };
        let decoded = |s: &OidcSettings| {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(basic_credentials(s))
                .unwrap();
            String::from_utf8(raw).unwrap()
        };
        assert_eq!(decoded(&settings), "app 1:s:e+c/r%t", "Java's default");
        settings.header_urlencode = true;
        assert_eq!(decoded(&settings), "app+1:s%3Ae%2Bc%2Fr%25t");
    }

    #[test]
    fn form_encoding() {
        assert_eq!(form_encode("a b:c/d%"), "a+b%3Ac%2Fd%25");
    }
}
