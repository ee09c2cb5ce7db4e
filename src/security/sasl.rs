//! SASL settings: `sasl.mechanism`, `sasl.jaas.config` (parsed for the PLAIN, SCRAM and
//! OAUTHBEARER login modules), `sasl.login.callback.handler.class` and the OIDC
//! client-credentials keys (KIP-768), or typed builders for the same.
//!
//! [`SaslConfig`] is plain data; [`SaslConfig::login`] checks it and resolves it into a
//! [`SaslLogin`], which the `net` layer turns into mechanism sessions. Passwords and client
//! secrets are [`Password`]s and the parsed JAAS line never formats its values, so `{:?}` of a
//! config is safe to log.
//!
//! New mechanisms (AWS MSK IAM, say) are added as a [`SaslMechanism`] variant, a [`SaslLogin`]
//! variant carrying their credentials source, and a session type in `net::sasl`; the exchange
//! with the broker does not change.

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::security::jaas::JaasConfig;
use crate::security::token::{OAuthBearerTokenProvider, UnsecuredJwsProvider};
use crate::security::Password;

/// The Java class names josefk understands in `sasl.jaas.config`.
const PLAIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";
const SCRAM_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";
const OAUTHBEARER_MODULE: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";
/// Java's OIDC client-credentials login handler (KIP-768); both package names it has had.
const OIDC_HANDLERS: [&str; 2] = [
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginCallbackHandler",
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerLoginCallbackHandler",
];

/// `sasl.mechanism`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SaslMechanism {
    /// `PLAIN`: username and password sent as they are (use TLS).
    Plain,
    /// `SCRAM-SHA-256` (RFC 7677): the password never crosses the wire.
    ScramSha256,
    /// `SCRAM-SHA-512`.
    ScramSha512,
    /// `OAUTHBEARER` (RFC 7628): a bearer token from a provider.
    OAuthBearer,
}

impl SaslMechanism {
    /// The name sent in SaslHandshake.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

impl fmt::Display for SaslMechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for SaslMechanism {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim() {
            "PLAIN" => Ok(SaslMechanism::Plain),
            "SCRAM-SHA-256" => Ok(SaslMechanism::ScramSha256),
            "SCRAM-SHA-512" => Ok(SaslMechanism::ScramSha512),
            "OAUTHBEARER" => Ok(SaslMechanism::OAuthBearer),
            "GSSAPI" => Err(Error::Config(
                "`sasl.mechanism=GSSAPI` (Kerberos) is not supported; use PLAIN, SCRAM-SHA-256, \
                 SCRAM-SHA-512 or OAUTHBEARER"
                    .into(),
            )),
            other => Err(Error::Config(format!(
                "`sasl.mechanism` must be PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER, got `{other}`"
            ))),
        }
    }
}

/// A user-supplied token provider, compared by identity (so configs stay comparable).
#[derive(Clone, Debug)]
pub struct TokenProviderHandle(pub Arc<dyn OAuthBearerTokenProvider>);

impl PartialEq for TokenProviderHandle {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// OAUTHBEARER settings: where tokens come from, and SASL extensions sent with them. `Debug`
/// shows the extensions' names, not their values (some deployments carry credentials in them).
#[derive(Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct OAuthBearerConfig {
    /// `unsecuredLoginStringClaim_sub` in the JAAS line: use unsecured JWS tokens for this
    /// principal (tests and development).
    pub unsecured_subject: Option<String>,
    /// `unsecuredLoginLifetimeSeconds`: the unsecured token's lifetime. Default 3600 s.
    pub unsecured_lifetime: Option<Duration>,
    /// `unsecuredLoginListClaim_scope`: the unsecured token's `scope` claim (space-separated).
    pub unsecured_scope: Vec<String>,
    /// `sasl.oauthbearer.token.endpoint.url`: the OIDC token endpoint (client-credentials grant).
    pub token_endpoint_url: Option<String>,
    /// `sasl.oauthbearer.client.credentials.client.id` (or `clientId` in the JAAS line).
    pub client_id: Option<String>,
    /// `sasl.oauthbearer.client.credentials.client.secret` (or `clientSecret` in the JAAS line).
    pub client_secret: Option<Password>,
    /// `sasl.oauthbearer.scope` (or `scope` in the JAAS line).
    pub scope: Option<String>,
    /// `sasl.oauthbearer.header.urlencode`: form-encode the client id and secret before they go
    /// into the token request's `Basic` header (RFC 6749 §2.3.1). Default false, as in Java.
    pub header_urlencode: bool,
    /// SASL extensions (`unsecuredLoginExtension_<name>` / `extension_<name>` in the JAAS line).
    pub extensions: Vec<(String, String)>,
    /// A token provider of the user's own; takes precedence over everything above.
    pub provider: Option<TokenProviderHandle>,
}

/// Every SASL setting of a client.
#[derive(Clone, Debug, Default, PartialEq)]
#[non_exhaustive]
pub struct SaslConfig {
    /// `sasl.mechanism`. Required with `SASL_PLAINTEXT` / `SASL_SSL` (Java's default, GSSAPI, is
    /// not supported).
    pub mechanism: Option<SaslMechanism>,
    /// The login module named in `sasl.jaas.config`, if one was set.
    pub login_module: Option<String>,
    /// PLAIN and SCRAM username (`username` in the JAAS line).
    pub username: Option<String>,
    /// PLAIN and SCRAM password (`password` in the JAAS line).
    pub password: Option<Password>,
    /// OAUTHBEARER settings.
    pub oauthbearer: OAuthBearerConfig,
    /// `sasl.login.callback.handler.class`: only Java's OIDC handler is accepted (josefk has it
    /// built in).
    pub login_callback_handler_class: Option<String>,
}

/// What a connection authenticates with: a checked, resolved [`SaslConfig`]. `Debug` hides the
/// password and the extensions' values.
#[derive(Clone)]
#[non_exhaustive]
pub enum SaslLogin {
    /// PLAIN.
    Plain {
        /// Username.
        username: String,
        /// Password.
        password: Password,
    },
    /// SCRAM-SHA-256 or SCRAM-SHA-512.
    Scram {
        /// Which hash.
        mechanism: SaslMechanism,
        /// Username.
        username: String,
        /// Password.
        password: Password,
    },
    /// OAUTHBEARER.
    OAuthBearer {
        /// Where tokens come from.
        source: TokenSource,
        /// SASL extensions sent with the token.
        extensions: Vec<(String, String)>,
    },
}

impl fmt::Debug for OAuthBearerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OAuthBearerConfig")
            .field("unsecured_subject", &self.unsecured_subject)
            .field("unsecured_lifetime", &self.unsecured_lifetime)
            .field("unsecured_scope", &self.unsecured_scope)
            .field(
                "token_endpoint_url",
                &self.token_endpoint_url.as_deref().map(shown_url),
            )
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scope", &self.scope)
            .field("header_urlencode", &self.header_urlencode)
            .field("extensions", &ExtensionNames(&self.extensions))
            .field("provider", &self.provider)
            .finish()
    }
}

impl fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SaslLogin::Plain { username, password } => f
                .debug_struct("Plain")
                .field("username", username)
                .field("password", password)
                .finish(),
            SaslLogin::Scram {
                mechanism,
                username,
                password,
            } => f
                .debug_struct("Scram")
                .field("mechanism", mechanism)
                .field("username", username)
                .field("password", password)
                .finish(),
            SaslLogin::OAuthBearer { source, extensions } => f
                .debug_struct("OAuthBearer")
                .field("source", source)
                .field("extensions", &ExtensionNames(extensions))
                .finish(),
        }
    }
}

/// SASL extensions in `Debug`: their names only.
struct ExtensionNames<'a>(&'a [(String, String)]);

impl fmt::Debug for ExtensionNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|(name, _)| name))
            .finish()
    }
}

impl SaslLogin {
    /// The mechanism this login uses.
    pub fn mechanism(&self) -> SaslMechanism {
        match self {
            SaslLogin::Plain { .. } => SaslMechanism::Plain,
            SaslLogin::Scram { mechanism, .. } => *mechanism,
            SaslLogin::OAuthBearer { .. } => SaslMechanism::OAuthBearer,
        }
    }
}

/// Where OAUTHBEARER tokens come from.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TokenSource {
    /// Unsecured JWS tokens built locally.
    Unsecured(UnsecuredJwsProvider),
    /// The OIDC client-credentials grant against a token endpoint.
    ClientCredentials(OidcSettings),
    /// The user's own provider.
    Custom(TokenProviderHandle),
}

/// The OIDC client-credentials settings, checked. `Debug` shows the endpoint without the
/// credentials its user info or query may hold, and hides the secret.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct OidcSettings {
    /// Token endpoint URL (`https://` verified with the client's `ssl.truststore.*`, or `http://`).
    pub token_endpoint_url: String,
    /// OAuth client id.
    pub client_id: String,
    /// OAuth client secret.
    pub client_secret: Password,
    /// Requested scope, if any.
    pub scope: Option<String>,
    /// Whether id and secret are form-encoded in the `Basic` header
    /// (`sasl.oauthbearer.header.urlencode`).
    pub header_urlencode: bool,
}

impl fmt::Debug for OidcSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OidcSettings")
            .field("token_endpoint_url", &shown_url(&self.token_endpoint_url))
            .field("client_id", &self.client_id)
            .field("client_secret", &self.client_secret)
            .field("scope", &self.scope)
            .field("header_urlencode", &self.header_urlencode)
            .finish()
    }
}

/// `url` without what may hold credentials: everything up to the last `@` before the query
/// (user info, even with an unencoded `/` in a password) becomes `***@`, the query `?…`.
pub(crate) fn shown_url(url: &str) -> String {
    let (scheme, rest) = match url.split_once("://") {
        Some((scheme, rest)) => (format!("{scheme}://"), rest),
        None => (String::new(), url),
    };
    let (main, query) = match rest.split_once('?') {
        Some((main, _)) => (main, "?…"),
        None => (rest, ""),
    };
    let main = match main.rsplit_once('@') {
        Some((_, after)) => format!("***@{after}"),
        None => main.to_owned(),
    };
    format!("{scheme}{main}{query}")
}

impl SaslConfig {
    /// Sets one `sasl.*` property. Returns `Ok(false)` for keys it does not own.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        let o = &mut self.oauthbearer;
        match key {
            "sasl.mechanism" => self.mechanism = Some(value.parse()?),
            "sasl.jaas.config" => self.set_jaas(&JaasConfig::parse(value)?)?,
            "sasl.login.callback.handler.class" => {
                let class = value.trim();
                if !class.is_empty() && !OIDC_HANDLERS.contains(&class) {
                    return Err(Error::Config(format!(
                        "`sasl.login.callback.handler.class={class}` is not supported; josefk \
                         builds in {} (OIDC client credentials); for another token source \
                         implement `OAuthBearerTokenProvider`",
                        OIDC_HANDLERS[0]
                    )));
                }
                self.login_callback_handler_class = (!class.is_empty()).then(|| class.to_owned());
            }
            "sasl.oauthbearer.token.endpoint.url" => o.token_endpoint_url = non_empty(value),
            "sasl.oauthbearer.client.credentials.client.id" => o.client_id = non_empty(value),
            "sasl.oauthbearer.client.credentials.client.secret" => {
                o.client_secret = Some(Password::new(value))
            }
            "sasl.oauthbearer.scope" => o.scope = non_empty(value),
            "sasl.oauthbearer.header.urlencode" => {
                o.header_urlencode = crate::config::parse_bool(key, value)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    fn set_jaas(&mut self, jaas: &JaasConfig) -> Result<()> {
        match jaas.login_module.as_str() {
            PLAIN_MODULE | SCRAM_MODULE => {
                self.username = jaas.option("username").map(str::to_owned);
                self.password = jaas.option("password").map(Password::new);
            }
            OAUTHBEARER_MODULE => {
                let o = &mut self.oauthbearer;
                o.unsecured_subject = jaas.option("unsecuredLoginStringClaim_sub").map(Into::into);
                if let Some(secs) = jaas.option("unsecuredLoginLifetimeSeconds") {
                    let secs: u64 = secs.trim().parse().map_err(|_| {
                        Error::Config(
                            "`unsecuredLoginLifetimeSeconds` in `sasl.jaas.config` must be a \
                             number of seconds"
                                .into(),
                        )
                    })?;
                    o.unsecured_lifetime = Some(Duration::from_secs(secs));
                }
                if let Some(scope) = jaas.option("unsecuredLoginListClaim_scope") {
                    o.unsecured_scope = scope.split_whitespace().map(str::to_owned).collect();
                }
                if let Some(id) = jaas.option("clientId") {
                    o.client_id = Some(id.to_owned());
                }
                if let Some(secret) = jaas.option("clientSecret") {
                    o.client_secret = Some(Password::new(secret));
                }
                if let Some(scope) = jaas.option("scope") {
                    o.scope = non_empty(scope);
                }
                o.extensions = jaas
                    .options
                    .iter()
                    .filter_map(|(k, v)| {
                        k.strip_prefix("unsecuredLoginExtension_")
                            .or_else(|| k.strip_prefix("extension_"))
                            .map(|name| (name.to_owned(), v.clone()))
                    })
                    .collect();
            }
            other => {
                return Err(Error::Config(format!(
                    "`sasl.jaas.config` names login module `{other}`; josefk supports \
                     {PLAIN_MODULE}, {SCRAM_MODULE} and {OAUTHBEARER_MODULE}"
                )))
            }
        }
        self.login_module = Some(jaas.login_module.clone());
        Ok(())
    }

    /// Checks the settings and resolves what to authenticate with.
    pub fn login(&self) -> Result<SaslLogin> {
        let mechanism = self.mechanism.ok_or_else(|| {
            Error::Config(
                "`sasl.mechanism` is required with SASL_PLAINTEXT or SASL_SSL (PLAIN, \
                 SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)"
                    .into(),
            )
        })?;
        let expected_module = match mechanism {
            SaslMechanism::Plain => PLAIN_MODULE,
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => SCRAM_MODULE,
            SaslMechanism::OAuthBearer => OAUTHBEARER_MODULE,
        };
        if let Some(module) = &self.login_module {
            if module != expected_module {
                return Err(Error::Config(format!(
                    "`sasl.mechanism={mechanism}` needs `sasl.jaas.config` with \
                     {expected_module}, not {module}"
                )));
            }
        }
        let credentials = || -> Result<(String, Password)> {
            match (&self.username, &self.password) {
                (Some(u), Some(p)) if !u.is_empty() => Ok((u.clone(), p.clone())),
                _ => Err(Error::Config(format!(
                    "`sasl.mechanism={mechanism}` needs a username and a password: \
                     `sasl.jaas.config={expected_module} required username=\"...\" password=\"...\";`"
                ))),
            }
        };
        match mechanism {
            SaslMechanism::Plain => {
                let (username, password) = credentials()?;
                Ok(SaslLogin::Plain { username, password })
            }
            SaslMechanism::ScramSha256 | SaslMechanism::ScramSha512 => {
                let (username, password) = credentials()?;
                Ok(SaslLogin::Scram {
                    mechanism,
                    username,
                    password,
                })
            }
            SaslMechanism::OAuthBearer => Ok(SaslLogin::OAuthBearer {
                source: self.token_source()?,
                extensions: self.oauthbearer.extensions.clone(),
            }),
        }
    }

    fn token_source(&self) -> Result<TokenSource> {
        let o = &self.oauthbearer;
        if let Some(provider) = &o.provider {
            return Ok(TokenSource::Custom(provider.clone()));
        }
        if let Some(url) = &o.token_endpoint_url {
            if o.unsecured_subject.is_some() {
                return Err(Error::Config(
                    "OAUTHBEARER: set either `unsecuredLoginStringClaim_sub` or \
                     `sasl.oauthbearer.token.endpoint.url`, not both"
                        .into(),
                ));
            }
            let (Some(client_id), Some(client_secret)) = (&o.client_id, &o.client_secret) else {
                return Err(Error::Config(
                    "`sasl.oauthbearer.token.endpoint.url` needs \
                     `sasl.oauthbearer.client.credentials.client.id` and `.client.secret` (or \
                     clientId/clientSecret in `sasl.jaas.config`)"
                        .into(),
                ));
            };
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(Error::Config(format!(
                    "`sasl.oauthbearer.token.endpoint.url` must be an http:// or https:// URL, got `{}`",
                    shown_url(url)
                )));
            }
            return Ok(TokenSource::ClientCredentials(OidcSettings {
                token_endpoint_url: url.clone(),
                client_id: client_id.clone(),
                client_secret: client_secret.clone(),
                scope: o.scope.clone(),
                header_urlencode: o.header_urlencode,
            }));
        }
        if self.login_callback_handler_class.is_some() {
            return Err(Error::Config(
                "`sasl.login.callback.handler.class` is the OIDC handler, which needs \
                 `sasl.oauthbearer.token.endpoint.url`"
                    .into(),
            ));
        }
        if let Some(subject) = &o.unsecured_subject {
            let mut provider = UnsecuredJwsProvider::new(subject.clone());
            if let Some(lifetime) = o.unsecured_lifetime {
                provider.lifetime = lifetime;
            }
            provider.scope = o.unsecured_scope.clone();
            return Ok(TokenSource::Unsecured(provider));
        }
        Err(Error::Config(
            "`sasl.mechanism=OAUTHBEARER` needs a token source: \
             `sasl.oauthbearer.token.endpoint.url` with client credentials, \
             `unsecuredLoginStringClaim_sub` in `sasl.jaas.config` (development only), or a \
             provider set with `ClientConfig::sasl_oauthbearer_provider`"
                .into(),
        ))
    }
}

fn non_empty(value: &str) -> Option<String> {
    let v = value.trim();
    (!v.is_empty()).then(|| v.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(props: &[(&str, &str)]) -> Result<SaslConfig> {
        let mut c = SaslConfig::default();
        for (k, v) in props {
            assert!(c.set(k, v)?, "{k} not owned");
        }
        Ok(c)
    }

    #[test]
    fn plain_and_scram_from_jaas() {
        let c = config(&[
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="alice" password="alice-secret";"#,
            ),
        ])
        .unwrap();
        match c.login().unwrap() {
            SaslLogin::Scram {
                mechanism,
                username,
                password,
            } => {
                assert_eq!(mechanism, SaslMechanism::ScramSha512);
                assert_eq!(username, "alice");
                assert_eq!(password.expose(), "alice-secret");
            }
            other => panic!("{other:?}"),
        }
        let c = config(&[
            ("sasl.mechanism", "PLAIN"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="bob" password="b";"#,
            ),
        ])
        .unwrap();
        assert!(matches!(c.login().unwrap(), SaslLogin::Plain { .. }));
    }

    #[test]
    fn mismatched_or_missing_settings_are_clear_errors() {
        let e = config(&[("sasl.mechanism", "GSSAPI")]).unwrap_err();
        assert!(e.to_string().contains("Kerberos"), "{e}");
        let c = config(&[
            ("sasl.mechanism", "PLAIN"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="a" password="b";"#,
            ),
        ])
        .unwrap();
        let e = c.login().unwrap_err();
        assert!(e.to_string().contains("PlainLoginModule"), "{e}");
        let c = config(&[("sasl.mechanism", "SCRAM-SHA-256")]).unwrap();
        assert!(c.login().unwrap_err().to_string().contains("username"));
        assert!(SaslConfig::default()
            .login()
            .unwrap_err()
            .to_string()
            .contains("sasl.mechanism"));
        let c = config(&[("sasl.mechanism", "OAUTHBEARER")]).unwrap();
        assert!(c.login().unwrap_err().to_string().contains("token source"));
        let e =
            config(&[("sasl.jaas.config", "com.example.Krb5LoginModule required;")]).unwrap_err();
        assert!(e.to_string().contains("Krb5LoginModule"), "{e}");
        let e = config(&[("sasl.login.callback.handler.class", "com.example.Mine")]).unwrap_err();
        assert!(e.to_string().contains("OAuthBearerTokenProvider"), "{e}");
    }

    #[test]
    fn debug_names_extensions_without_their_values() {
        let c = config(&[
            ("sasl.mechanism", "OAUTHBEARER"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="alice" unsecuredLoginExtension_apiKey="s3cr3t";"#,
            ),
        ])
        .unwrap();
        for shown in [format!("{c:?}"), format!("{:?}", c.login().unwrap())] {
            assert!(shown.contains("apiKey"), "{shown}");
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
    }

    #[test]
    fn debug_shows_the_token_endpoint_without_its_credentials() {
        let c = config(&[
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.login.callback.handler.class", OIDC_HANDLERS[0]),
            (
                "sasl.oauthbearer.token.endpoint.url",
                "https://id:hunter2@idp.example/token?key=abc123",
            ),
            ("sasl.oauthbearer.client.credentials.client.id", "app1"),
            (
                "sasl.oauthbearer.client.credentials.client.secret",
                "s3cr3t",
            ),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
            ),
        ])
        .unwrap();
        for shown in [format!("{c:?}"), format!("{:?}", c.login().unwrap())] {
            assert!(shown.contains("idp.example/token"), "{shown}");
            for secret in ["hunter2", "abc123", "s3cr3t"] {
                assert!(!shown.contains(secret), "{secret} in {shown}");
            }
        }
        let mut bad = c.clone();
        bad.oauthbearer.token_endpoint_url = Some("ftp://id:hunter2@idp/t".into());
        let e = bad.login().unwrap_err().to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn oauthbearer_unsecured_and_oidc_sources() {
        let c = config(&[
            ("sasl.mechanism", "OAUTHBEARER"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="alice" unsecuredLoginLifetimeSeconds="60" unsecuredLoginExtension_traceId="t1";"#,
            ),
        ])
        .unwrap();
        match c.login().unwrap() {
            SaslLogin::OAuthBearer {
                source: TokenSource::Unsecured(p),
                extensions,
            } => {
                assert_eq!(p.subject, "alice");
                assert_eq!(p.lifetime, Duration::from_secs(60));
                assert_eq!(extensions, vec![("traceId".to_owned(), "t1".to_owned())]);
            }
            other => panic!("{other:?}"),
        }
        let c = config(&[
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.login.callback.handler.class", OIDC_HANDLERS[0]),
            (
                "sasl.oauthbearer.token.endpoint.url",
                "http://127.0.0.1:1/token",
            ),
            ("sasl.oauthbearer.client.credentials.client.id", "app1"),
            (
                "sasl.oauthbearer.client.credentials.client.secret",
                "app1-secret",
            ),
            ("sasl.oauthbearer.scope", "kafka"),
            ("sasl.oauthbearer.header.urlencode", "true"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
            ),
        ])
        .unwrap();
        match c.login().unwrap() {
            SaslLogin::OAuthBearer {
                source: TokenSource::ClientCredentials(s),
                ..
            } => {
                assert_eq!(s.client_id, "app1");
                assert_eq!(s.client_secret.expose(), "app1-secret");
                assert_eq!(s.scope.as_deref(), Some("kafka"));
                assert!(s.header_urlencode);
            }
            other => panic!("{other:?}"),
        }
        let no_secret = config(&[
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.token.endpoint.url", "http://h/t"),
        ])
        .unwrap();
        assert!(no_secret
            .login()
            .unwrap_err()
            .to_string()
            .contains("client.id"));
    }

    #[test]
    fn debug_of_sasl_config_never_shows_secrets() {
        let c = config(&[
            ("sasl.mechanism", "PLAIN"),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="hunter2";"#,
            ),
            ("sasl.oauthbearer.client.credentials.client.secret", "s3cr3t-client"),
        ])
        .unwrap();
        let shown = format!("{c:?} {:?}", c.login().unwrap());
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("s3cr3t-client"), "{shown}");
    }
}
