//! Helpers of the security tests (`security_tls.rs`, `security_sasl.rs`): a TCP proxy that counts
//! connection attempts (the "no retry storm" checks), and a one-route OIDC token endpoint, over
//! HTTP or HTTPS with the test broker certificate, for the client-credentials provider.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use josefk::security::UnsecuredJwsProvider;
use josefk_harness::TestCertificates;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// A TCP proxy to `target` on 127.0.0.1 that counts the connections made through it; stops when
/// dropped.
pub struct CountingProxy {
    pub addr: String,
    accepted: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    pub async fn start(target: String) -> CountingProxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let accepted = Arc::new(AtomicUsize::new(0));
        let count = accepted.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut inbound, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::SeqCst);
                let target = target.clone();
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&target).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            }
        });
        CountingProxy {
            addr,
            accepted,
            task,
        }
    }

    /// Connections accepted so far.
    pub fn attempts(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A one-route OIDC token endpoint: `POST /token` with the expected basic auth and
/// `grant_type=client_credentials` gets an unsecured JWS for `sub=app1`; anything else gets 401.
/// With `tls`, it speaks HTTPS. Returns its URL and how many token requests it served.
pub async fn token_endpoint(
    client_id: &str,
    client_secret: &str,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> (String, Arc<AtomicUsize>) {
    use base64::Engine;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{}/token", listener.local_addr().unwrap());
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{client_id}:{client_secret}"))
    );
    let served = Arc::new(AtomicUsize::new(0));
    let counter = served.clone();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let expected = expected.clone();
            let counter = counter.clone();
            let tls = tls.clone();
            tokio::spawn(async move {
                match tls {
                    Some(acceptor) => {
                        if let Ok(socket) = acceptor.accept(socket).await {
                            serve_token(socket, &expected, &counter).await;
                        }
                    }
                    None => serve_token(socket, &expected, &counter).await,
                }
            });
        }
    });
    (url, served)
}

/// Answers one token request on `socket`.
async fn serve_token<S>(mut socket: S, expected: &str, counter: &AtomicUsize)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    // Headers, then the body by Content-Length.
    let (head, body_start, length) = loop {
        let n = socket.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buf[..n]);
        if let Some(end) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&request[..end]).to_string();
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().unwrap())
                })
                .unwrap_or(0);
            break (head, end + 4, length);
        }
    };
    while request.len() < body_start + length {
        let n = socket.read(&mut buf).await.unwrap_or(0);
        if n == 0 {
            return;
        }
        request.extend_from_slice(&buf[..n]);
    }
    let body = String::from_utf8_lossy(&request[body_start..]).to_string();
    counter.fetch_add(1, Ordering::SeqCst);
    let authorized = head.starts_with("POST /token ")
        && head
            .lines()
            .any(|l| l == format!("Authorization: {expected}"))
        && body
            .split('&')
            .any(|p| p == "grant_type=client_credentials")
        && body.split('&').any(|p| p == "scope=kafka");
    let answer = if authorized {
        let token = UnsecuredJwsProvider::new("app1")
            .token_at(std::time::SystemTime::now())
            .value;
        let json = format!(
            r#"{{"access_token":"{}","token_type":"Bearer","expires_in":3600}}"#,
            token.expose()
        );
        format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        )
    } else {
        let json = r#"{"error":"invalid_client"}"#;
        format!(
            "HTTP/1.1 401 Unauthorized\r\nContent-Length: {}\r\n\r\n{json}",
            json.len()
        )
    };
    let _ = socket.write_all(answer.as_bytes()).await;
    let _ = socket.shutdown().await;
}

/// A TLS acceptor serving the test broker certificate (`127.0.0.1`, `localhost`).
pub fn https_acceptor(certs: &TestCertificates) -> tokio_rustls::TlsAcceptor {
    use rustls_pki_types::pem::PemObject;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let pem = certs.path("broker.pem");
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&pem)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let key = PrivateKeyDer::from_pem_file(&pem).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls_graviola::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}
