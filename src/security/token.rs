//! OAUTHBEARER tokens: the [`OAuthBearerTokenProvider`] trait users plug their own token source
//! into, the [`OAuthBearerToken`] it returns, and the unsecured JWS provider for tests and
//! development (what Java's `unsecuredLoginStringClaim_sub` builds).
//!
//! The trait uses only standard-library types, so no dependency's version leaks into josefk's
//! public API. The built-in OIDC client-credentials provider does HTTP, so it lives in
//! `net::sasl::oidc`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// How far an unsecured token's `iat` is set before the time it is made.
const ISSUED_AT_BACKDATE_SECS: u64 = 1;

use base64::Engine;

use crate::security::Password;

/// What a token provider fails with: any error, shown to the user inside
/// [`Error::Authentication`](crate::Error::Authentication). It must not contain the secret.
pub type TokenError = Box<dyn std::error::Error + Send + Sync>;

/// The future a token provider returns.
pub type TokenFuture<'a> =
    Pin<Box<dyn Future<Output = Result<OAuthBearerToken, TokenError>> + Send + 'a>>;

/// A bearer token and how long it stays valid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OAuthBearerToken {
    /// The token sent to the broker (a JWT for the OIDC and unsecured providers).
    pub value: Password,
    /// How long from now the token is valid. josefk asks for a new one at 80 % of it.
    pub lifetime: Duration,
}

impl OAuthBearerToken {
    /// A token valid for `lifetime` from now.
    pub fn new(value: impl Into<Password>, lifetime: Duration) -> Self {
        OAuthBearerToken {
            value: value.into(),
            lifetime,
        }
    }
}

/// A source of OAUTHBEARER tokens (an identity provider, a secrets manager, a file).
///
/// josefk calls [`token`](OAuthBearerTokenProvider::token) when it needs a token and none is
/// cached, or the cached one has passed 80 % of its lifetime; every connection of a client shares
/// the cached token. Implementations should fail rather than hang: a call that takes longer than
/// `socket.connection.setup.timeout.ms` fails the connection attempt.
pub trait OAuthBearerTokenProvider: Send + Sync + fmt::Debug {
    /// Fetches a fresh token.
    fn token(&self) -> TokenFuture<'_>;
}

/// The unsecured JWS provider: a token `b64url({"alg":"none"}).b64url(claims).` that brokers with
/// the default (unsecured) OAUTHBEARER validator accept. For tests and development only: anyone
/// can claim any principal.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsecuredJwsProvider {
    /// The `sub` claim: the principal name the broker sees.
    pub subject: String,
    /// The token's lifetime (`unsecuredLoginLifetimeSeconds`, default 3600 s).
    pub lifetime: Duration,
    /// The `scope` claim, if any (`unsecuredLoginListClaim_scope`).
    pub scope: Vec<String>,
}

impl UnsecuredJwsProvider {
    /// A provider for `subject` with Java's default lifetime of one hour.
    pub fn new(subject: impl Into<String>) -> Self {
        UnsecuredJwsProvider {
            subject: subject.into(),
            lifetime: Duration::from_secs(3600),
            scope: Vec::new(),
        }
    }

    /// The token as of `now` (seconds since the epoch are in `iat` and `exp`; `iat` is `now`
    /// in whole seconds, one second back).
    pub fn token_at(&self, now: SystemTime) -> OAuthBearerToken {
        // Whole seconds, one second back: Kafka's unsecured validator allows no clock skew by
        // default and refuses an `iat` even a fraction of a millisecond after its own clock, so a
        // token made "now" could be refused by a broker whose clock reads a hair earlier.
        // `exp` stays `now` + the lifetime the token is declared with, so refreshes are timed
        // right.
        let since_epoch = now.duration_since(UNIX_EPOCH).unwrap_or_default();
        let iat = since_epoch
            .as_secs()
            .saturating_sub(ISSUED_AT_BACKDATE_SECS) as f64;
        let exp = (since_epoch + self.lifetime).as_secs_f64();
        let mut claims = serde_json::Map::new();
        claims.insert("sub".into(), self.subject.clone().into());
        claims.insert("iat".into(), serde_json::json!(iat));
        claims.insert("exp".into(), serde_json::json!(exp));
        if !self.scope.is_empty() {
            claims.insert("scope".into(), serde_json::json!(self.scope));
        }
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header = b64.encode(br#"{"alg":"none"}"#);
        let body = b64.encode(serde_json::Value::Object(claims).to_string());
        OAuthBearerToken::new(format!("{header}.{body}."), self.lifetime)
    }
}

impl OAuthBearerTokenProvider for UnsecuredJwsProvider {
    fn token(&self) -> TokenFuture<'_> {
        let token = self.token_at(SystemTime::now());
        Box::pin(async move { Ok(token) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsecured_jws_has_none_header_claims_and_empty_signature() {
        let mut p = UnsecuredJwsProvider::new("ali\"ce");
        p.scope = vec!["a".into(), "b".into()];
        let t = p.token_at(UNIX_EPOCH + Duration::from_secs(1_000));
        let text = t.value.expose();
        let parts: Vec<&str> = text.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "", "unsecured JWS has an empty signature");
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let header: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "none"}));
        let claims: serde_json::Value =
            serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(claims["sub"], "ali\"ce");
        assert_eq!(claims["iat"].as_f64(), Some(999.0));
        assert_eq!(claims["exp"].as_f64(), Some(4600.0));
        assert_eq!(claims["scope"], serde_json::json!(["a", "b"]));
        assert_eq!(t.lifetime, Duration::from_secs(3600));
    }
}
