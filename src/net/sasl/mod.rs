//! SASL authentication of broker connections.
//!
//! - Mechanisms ([`plain`], [`scram`], [`oauthbearer`]) are IO-free [`SaslSession`]s: bytes from
//!   the broker in, bytes to send out.
//! - [`exchange::SaslExchange`] wraps a session in Kafka's SaslHandshake (v1) and
//!   SaslAuthenticate (v0–v2) requests, also IO-free. It is driven over the raw stream during
//!   connection set-up ([`exchange::authenticate`]) and by the connection task when it
//!   re-authenticates (KIP-368), so both speak the same protocol code.
//! - [`Authenticator`] is one client's SASL state, shared by all its connections: the resolved
//!   login, the OAUTHBEARER token cache, and the re-authentication counter.
//!
//! Adding a mechanism (AWS MSK IAM, for instance) means a session type here and a
//! [`SaslLogin`] variant; [`Authenticator::session`] is async and gets the broker, so a mechanism
//! that signs per host or fetches credentials fits without touching the exchange.

pub(crate) mod exchange;
pub(crate) mod oauthbearer;
pub mod oidc;
pub(crate) mod plain;
pub(crate) mod reauth;
pub(crate) mod scram;

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{BrokerRef, Error, Result};
use crate::security::sasl::TokenSource;
use crate::security::{OAuthBearerToken, OAuthBearerTokenProvider, SaslLogin, SaslMechanism};

/// What a mechanism does with the broker's latest message. `Debug` shows the response's length
/// only: it carries the PLAIN password or the bearer token.
pub(crate) enum Step {
    /// Send these bytes in the next SaslAuthenticate.
    Respond(Vec<u8>),
    /// The exchange succeeded.
    Done,
}

impl std::fmt::Debug for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Step::Respond(bytes) => write!(f, "Respond({} bytes)", bytes.len()),
            Step::Done => f.write_str("Done"),
        }
    }
}

/// One authentication exchange of one mechanism, IO-free. Errors are messages for
/// [`Error::Authentication`] and never contain a secret.
pub(crate) trait SaslSession: Send {
    /// The first message.
    fn initial(&mut self) -> std::result::Result<Vec<u8>, String>;
    /// The reply to the broker's message `challenge` (its SaslAuthenticate `auth_bytes`).
    fn step(&mut self, challenge: &[u8]) -> std::result::Result<Step, String>;
    /// What the broker said when it refused, if the mechanism carries that in-band.
    fn failure_detail(&self) -> Option<String> {
        None
    }
}

/// One client's SASL state, shared by every connection of its pool.
pub struct Authenticator {
    /// The login, or why the SASL settings are invalid (then every connection fails with it;
    /// `ClientConfig::validate` normally refuses such a config before any pool exists).
    login: std::result::Result<SaslLogin, String>,
    tokens: Option<TokenCache>,
    /// Time allowed to fetch a token (the connection set-up timeout).
    token_timeout: Duration,
    reauthentications: AtomicU64,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("mechanism", &self.mechanism())
            .field("reauthentications", &self.reauthentications())
            .finish_non_exhaustive()
    }
}

/// The OAUTHBEARER token shared by every connection, refreshed at 80 % of its lifetime.
struct TokenCache {
    provider: Arc<dyn OAuthBearerTokenProvider>,
    cached: tokio::sync::Mutex<Option<(OAuthBearerToken, Instant)>>,
}

impl Authenticator {
    /// The authenticator for the resolved SASL settings; `token_timeout` bounds each token
    /// fetch.
    pub fn new(login: Result<SaslLogin>, token_timeout: Duration) -> Self {
        let login = login.map_err(|e| e.to_string());
        let provider: Option<Arc<dyn OAuthBearerTokenProvider>> = match &login {
            Ok(SaslLogin::OAuthBearer { source, .. }) => Some(match source {
                TokenSource::Unsecured(p) => Arc::new(p.clone()),
                TokenSource::ClientCredentials(settings) => {
                    Arc::new(oidc::ClientCredentialsProvider::new(settings.clone()))
                }
                TokenSource::Custom(handle) => handle.0.clone(),
            }),
            _ => None,
        };
        Authenticator {
            login,
            tokens: provider.map(|provider| TokenCache {
                provider,
                cached: tokio::sync::Mutex::new(None),
            }),
            token_timeout,
            reauthentications: AtomicU64::new(0),
        }
    }

    /// The authenticator for a client's `sasl.*` settings. An `https://` token endpoint is
    /// verified with the client's `ssl.*` trust settings, as Java's OIDC login does.
    pub fn from_config(config: &crate::ClientConfig) -> Result<Self> {
        #[allow(unused_mut)]
        let mut authenticator =
            Authenticator::new(config.sasl.login(), config.connection_setup_timeout);
        #[cfg(feature = "tls")]
        if let Ok(SaslLogin::OAuthBearer {
            source: TokenSource::ClientCredentials(settings),
            ..
        }) = &authenticator.login
        {
            if settings.token_endpoint_url.starts_with("https://") {
                let connector = crate::net::tls::TlsConnector::new(&config.tls)?;
                let provider =
                    oidc::ClientCredentialsProvider::new(settings.clone()).with_tls(connector);
                authenticator.tokens = Some(TokenCache {
                    provider: Arc::new(provider),
                    cached: tokio::sync::Mutex::new(None),
                });
            }
        }
        Ok(authenticator)
    }

    /// The mechanism this client authenticates with (`None` if the settings are invalid).
    pub fn mechanism(&self) -> Option<SaslMechanism> {
        self.login.as_ref().ok().map(SaslLogin::mechanism)
    }

    /// Successful re-authentications (KIP-368) on all connections so far.
    pub fn reauthentications(&self) -> u64 {
        self.reauthentications.load(Ordering::Relaxed)
    }

    pub(crate) fn count_reauthentication(&self) {
        self.reauthentications.fetch_add(1, Ordering::Relaxed);
    }

    /// A fresh session for one exchange with `broker` (fetching a token first if needed), and
    /// its mechanism.
    pub(crate) async fn session(
        &self,
        broker: &BrokerRef,
    ) -> Result<(SaslMechanism, Box<dyn SaslSession>)> {
        let login = self.login.as_ref().map_err(|e| Error::Config(e.clone()))?;
        let session = self.session_for(login, broker).await?;
        Ok((login.mechanism(), session))
    }

    async fn session_for(
        &self,
        login: &SaslLogin,
        broker: &BrokerRef,
    ) -> Result<Box<dyn SaslSession>> {
        let auth_error = |message: String| Error::Authentication {
            broker: broker.clone(),
            message,
        };
        match login {
            SaslLogin::Plain { username, password } => Ok(Box::new(plain::PlainSession::new(
                username.clone(),
                password.clone(),
            ))),
            SaslLogin::Scram {
                mechanism,
                username,
                password,
            } => {
                let hash = if *mechanism == SaslMechanism::ScramSha512 {
                    scram::ScramHash::Sha512
                } else {
                    scram::ScramHash::Sha256
                };
                scram::ScramSession::new(hash, username.clone(), password.clone())
                    .map(|s| Box::new(s) as Box<dyn SaslSession>)
                    .map_err(auth_error)
            }
            SaslLogin::OAuthBearer { extensions, .. } => {
                let token = self.token(broker).await?;
                oauthbearer::OAuthBearerSession::new(token.value, extensions.clone())
                    .map(|s| Box::new(s) as Box<dyn SaslSession>)
                    .map_err(auth_error)
            }
        }
    }

    /// The cached token, or a fresh one once the cached one is past 80 % of its lifetime.
    async fn token(&self, broker: &BrokerRef) -> Result<OAuthBearerToken> {
        let cache = self
            .tokens
            .as_ref()
            .expect("OAUTHBEARER login has a token cache");
        // Held across the fetch on purpose: connections opening together share one fetch.
        let mut cached = cache.cached.lock().await;
        if let Some((token, refresh_at)) = cached.as_ref() {
            if Instant::now() < *refresh_at {
                return Ok(token.clone());
            }
        }
        let fetched = tokio::time::timeout(self.token_timeout, cache.provider.token()).await;
        let token = match fetched {
            Ok(Ok(token)) => token,
            Ok(Err(e)) => {
                return Err(Error::Authentication {
                    broker: broker.clone(),
                    message: format!("OAUTHBEARER token provider failed: {e}"),
                })
            }
            Err(_) => {
                return Err(Error::Authentication {
                    broker: broker.clone(),
                    message: format!(
                        "OAUTHBEARER token provider gave no token within {:?}",
                        self.token_timeout
                    ),
                })
            }
        };
        if token.lifetime.is_zero() {
            return Err(Error::Authentication {
                broker: broker.clone(),
                message: "OAUTHBEARER token provider returned an already expired token".into(),
            });
        }
        let refresh_at = crate::clock::from_now(token.lifetime.mul_f64(0.8));
        *cached = Some((token.clone(), refresh_at));
        Ok(token)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::security::sasl::TokenProviderHandle;
    use crate::security::token::TokenFuture;

    /// Hands out `tok0`, `tok1`, ... valid for 100 s, counting calls; or never answers.
    #[derive(Debug, Default)]
    struct Counting {
        calls: AtomicUsize,
        hang: bool,
    }

    impl OAuthBearerTokenProvider for Counting {
        fn token(&self) -> TokenFuture<'_> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let hang = self.hang;
            Box::pin(async move {
                if hang {
                    std::future::pending::<()>().await;
                }
                Ok(OAuthBearerToken::new(
                    format!("tok{n}"),
                    Duration::from_secs(100),
                ))
            })
        }
    }

    fn authenticator(provider: Arc<Counting>) -> Authenticator {
        let login = SaslLogin::OAuthBearer {
            source: TokenSource::Custom(TokenProviderHandle(provider)),
            extensions: Vec::new(),
        };
        Authenticator::new(Ok(login), Duration::from_secs(5))
    }

    fn broker() -> BrokerRef {
        BrokerRef {
            node_id: Some(1),
            addr: "127.0.0.1:9".into(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn one_token_serves_every_connection_until_80_percent_of_its_lifetime() {
        let provider = Arc::new(Counting::default());
        let auth = authenticator(provider.clone());
        for _ in 0..3 {
            let (mechanism, _) = auth.session(&broker()).await.unwrap();
            assert_eq!(mechanism, SaslMechanism::OAuthBearer);
        }
        assert_eq!(provider.calls.load(Ordering::SeqCst), 1);
        tokio::time::advance(Duration::from_secs(79)).await;
        auth.session(&broker()).await.unwrap();
        assert_eq!(
            provider.calls.load(Ordering::SeqCst),
            1,
            "still fresh at 79 %"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        auth.session(&broker()).await.unwrap();
        assert_eq!(
            provider.calls.load(Ordering::SeqCst),
            2,
            "refreshed past 80 %"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_provider_that_never_answers_fails_within_the_timeout() {
        let provider = Arc::new(Counting {
            hang: true,
            ..Counting::default()
        });
        let started = Instant::now();
        let e = authenticator(provider)
            .session(&broker())
            .await
            .err()
            .unwrap();
        assert!(matches!(e, Error::Authentication { .. }), "{e}");
        assert!(e.to_string().contains("no token within"), "{e}");
        assert_eq!(started.elapsed(), Duration::from_secs(5));
    }

    #[tokio::test]
    async fn invalid_settings_fail_every_session_with_the_config_error() {
        let auth = Authenticator::new(
            Err(Error::Config("`sasl.mechanism` is required".into())),
            Duration::from_secs(5),
        );
        assert_eq!(auth.mechanism(), None);
        let e = auth.session(&broker()).await.err().unwrap();
        assert!(matches!(e, Error::Config(_)), "{e}");
    }
}
