//! How josefk protects and authenticates its broker connections: the `security.protocol` choice,
//! and the [`Password`] type that keeps secrets out of `Debug`, `Display`, errors and logs.
//!
//! TLS settings (`ssl.*`) and SASL settings (`sasl.*`) live in their own submodules; the `net`
//! layer applies them when it sets up a connection (TCP connect → TLS handshake → ApiVersions →
//! SASL → ready).

pub(crate) mod tls;

use std::fmt;
use std::str::FromStr;

use crate::error::{Error, Result};

mod jaas;
pub(crate) mod sasl;
pub(crate) mod token;

pub use sasl::{
    OAuthBearerConfig, OidcSettings, SaslConfig, SaslLogin, SaslMechanism, TokenProviderHandle,
    TokenSource,
};
pub use tls::{StoreType, TlsConfig, TlsVersions};
pub use token::{
    OAuthBearerToken, OAuthBearerTokenProvider, TokenError, TokenFuture, UnsecuredJwsProvider,
};

/// `security.protocol`: how a connection to a broker is set up. Default `PLAINTEXT`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum SecurityProtocol {
    /// TCP only: no encryption, no authentication.
    #[default]
    Plaintext,
    /// TLS (encryption, broker authentication, optionally client certificates).
    Ssl,
    /// SASL authentication over plain TCP.
    SaslPlaintext,
    /// SASL authentication over TLS.
    SaslSsl,
}

impl SecurityProtocol {
    /// Whether connections start with a TLS handshake.
    pub fn uses_tls(self) -> bool {
        matches!(self, SecurityProtocol::Ssl | SecurityProtocol::SaslSsl)
    }

    /// Whether connections authenticate with SASL after the ApiVersions handshake.
    pub fn uses_sasl(self) -> bool {
        matches!(
            self,
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
        )
    }

    /// The Java client's name (`PLAINTEXT`, `SSL`, `SASL_PLAINTEXT`, `SASL_SSL`).
    pub fn name(self) -> &'static str {
        match self {
            SecurityProtocol::Plaintext => "PLAINTEXT",
            SecurityProtocol::Ssl => "SSL",
            SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
            SecurityProtocol::SaslSsl => "SASL_SSL",
        }
    }
}

impl fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SecurityProtocol {
    type Err = Error;

    /// Parses the Java names, case-insensitively as Java does.
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Ok(SecurityProtocol::Plaintext),
            "SSL" => Ok(SecurityProtocol::Ssl),
            "SASL_PLAINTEXT" => Ok(SecurityProtocol::SaslPlaintext),
            "SASL_SSL" => Ok(SecurityProtocol::SaslSsl),
            _ => Err(Error::Config(format!(
                "`security.protocol` must be PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, got `{s}`"
            ))),
        }
    }
}

/// A secret (a password, a client secret, a private key's passphrase, a token).
///
/// Its `Debug` and `Display` print `[hidden]`, so a config or an error that holds one can be
/// logged safely. The text is reachable only through [`Password::expose`], which makes every
/// place that reads a secret easy to find.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Password(String);

impl Password {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Password(secret.into())
    }

    /// The secret itself. Never log or format the result.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the secret is the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<&str> for Password {
    fn from(secret: &str) -> Self {
        Password::new(secret)
    }
}

impl From<String> for Password {
    fn from(secret: String) -> Self {
        Password(secret)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password([hidden])")
    }
}

impl fmt::Display for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn security_protocol_parses_java_names_case_insensitively() {
        assert_eq!(
            "sasl_ssl".parse::<SecurityProtocol>().unwrap(),
            SecurityProtocol::SaslSsl
        );
        assert_eq!(
            "PLAINTEXT".parse::<SecurityProtocol>().unwrap(),
            SecurityProtocol::Plaintext
        );
        let e = "TLS".parse::<SecurityProtocol>().unwrap_err();
        assert!(e.to_string().contains("`TLS`"), "{e}");
        assert!(SecurityProtocol::SaslSsl.uses_tls() && SecurityProtocol::SaslSsl.uses_sasl());
        assert!(!SecurityProtocol::Ssl.uses_sasl() && !SecurityProtocol::SaslPlaintext.uses_tls());
    }

    #[test]
    fn password_never_formats_its_text() {
        let p = Password::new("hunter2");
        assert!(!format!("{p:?}").contains("hunter2"));
        assert!(!format!("{p}").contains("hunter2"));
        assert_eq!(p.expose(), "hunter2");
    }
}
