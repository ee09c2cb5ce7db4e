//! TLS settings (`ssl.*`, the Java client's names) and reading the trust and key material they
//! point at: PEM files or text, and PKCS#12 stores.
//!
//! This module only turns settings into DER certificates and a private key; `net::tls` builds the
//! rustls connector from them once per client. Passwords and inline private keys are
//! [`Password`]s, so they never reach `Debug`, errors or logs.

#[cfg(feature = "tls")]
use std::path::Path;
use std::path::PathBuf;

#[cfg(feature = "tls")]
use rustls_pki_types::pem::PemObject;
#[cfg(feature = "tls")]
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

use crate::error::{Error, Result};
use crate::security::Password;

/// The format of a trust store or key store (`ssl.truststore.type`, `ssl.keystore.type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StoreType {
    /// PEM text: certificates, and for a key store a PKCS#8 private key.
    Pem,
    /// A PKCS#12 file (`.p12`, `.pfx`), as `keytool` and `openssl pkcs12` write.
    Pkcs12,
}

impl StoreType {
    fn parse(key: &str, value: &str) -> Result<Option<StoreType>> {
        match value.trim().to_ascii_uppercase().as_str() {
            "" => Ok(None),
            "PEM" => Ok(Some(StoreType::Pem)),
            "PKCS12" => Ok(Some(StoreType::Pkcs12)),
            "JKS" => Err(Error::Config(format!(
                "`{key}=JKS` is not supported: convert the store to PKCS12 \
                 (`keytool -importkeystore -srckeystore store.jks -destkeystore store.p12 \
                 -deststoretype PKCS12`) or use PEM"
            ))),
            _ => Err(Error::Config(format!(
                "`{key}` must be PEM or PKCS12, got `{value}`"
            ))),
        }
    }
}

/// The TLS protocol versions a connection may negotiate (`ssl.enabled.protocols`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TlsVersions {
    /// TLS 1.2 allowed.
    pub tls12: bool,
    /// TLS 1.3 allowed.
    pub tls13: bool,
}

impl Default for TlsVersions {
    fn default() -> Self {
        TlsVersions {
            tls12: true,
            tls13: true,
        }
    }
}

/// TLS settings, used when `security.protocol` is `SSL` or `SASL_SSL`.
///
/// Without a trust store, brokers are verified against the public web roots bundled with josefk
/// (`webpki-roots`). Without a key store, no client certificate is offered.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct TlsConfig {
    /// `ssl.truststore.location`: a PEM or PKCS#12 file of trusted CA certificates.
    pub truststore_location: Option<PathBuf>,
    /// `ssl.truststore.type`: PEM or PKCS12. Unset: guessed from the file's contents.
    pub truststore_type: Option<StoreType>,
    /// `ssl.truststore.password`: the PKCS#12 trust store's password.
    pub truststore_password: Option<Password>,
    /// `ssl.truststore.certificates`: trusted CA certificates as PEM text.
    pub truststore_certificates: Option<String>,
    /// `ssl.keystore.location`: the client certificate chain and private key, as a PKCS#12 file
    /// or one PEM file holding a PKCS#8 key and the chain (leaf first).
    pub keystore_location: Option<PathBuf>,
    /// `ssl.keystore.type`: PEM or PKCS12. Unset: guessed from the file's contents.
    pub keystore_type: Option<StoreType>,
    /// `ssl.keystore.password`: the PKCS#12 key store's password.
    pub keystore_password: Option<Password>,
    /// `ssl.key.password`: decrypts an encrypted PKCS#8 PEM key (`ENCRYPTED PRIVATE KEY`).
    pub key_password: Option<Password>,
    /// `ssl.keystore.certificate.chain`: the client certificate chain as PEM text (leaf first).
    pub keystore_certificate_chain: Option<String>,
    /// `ssl.keystore.key`: the client's PKCS#8 private key as PEM text.
    pub keystore_key: Option<Password>,
    /// `ssl.endpoint.identification.algorithm`: `https` (the default) checks that the broker's
    /// certificate names the host dialled; empty disables that check (the chain is still
    /// verified).
    pub verify_hostname: bool,
    /// `ssl.enabled.protocols` (and `ssl.protocol`): TLS 1.2 and 1.3 by default.
    pub versions: TlsVersions,
}

/// What the settings resolve to: DER material ready for the TLS library.
#[cfg(feature = "tls")]
pub(crate) struct TlsMaterial {
    /// Trusted CA certificates; `None` means the bundled public roots.
    pub roots: Option<Vec<CertificateDer<'static>>>,
    /// The client certificate chain (leaf first) and its key, for mutual TLS.
    pub client: Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>,
}

impl TlsConfig {
    /// Defaults: bundled public roots, host names checked, no client certificate.
    pub fn new() -> Self {
        TlsConfig::default()
    }
}

impl Default for TlsConfig {
    fn default() -> Self {
        TlsConfig {
            truststore_location: None,
            truststore_type: None,
            truststore_password: None,
            truststore_certificates: None,
            keystore_location: None,
            keystore_type: None,
            keystore_password: None,
            key_password: None,
            keystore_certificate_chain: None,
            keystore_key: None,
            verify_hostname: true,
            versions: TlsVersions::default(),
        }
    }
}

impl TlsConfig {
    /// Sets one `ssl.*` property. Returns `Ok(false)` for a key that is not one.
    pub(crate) fn set(&mut self, key: &str, value: &str) -> Result<bool> {
        let text = || (!value.is_empty()).then(|| value.to_owned());
        let secret = || (!value.is_empty()).then(|| Password::new(value));
        let path = || (!value.trim().is_empty()).then(|| PathBuf::from(value.trim()));
        match key {
            "ssl.truststore.location" => self.truststore_location = path(),
            "ssl.truststore.type" => self.truststore_type = StoreType::parse(key, value)?,
            "ssl.truststore.password" => self.truststore_password = secret(),
            "ssl.truststore.certificates" => self.truststore_certificates = text(),
            "ssl.keystore.location" => self.keystore_location = path(),
            "ssl.keystore.type" => self.keystore_type = StoreType::parse(key, value)?,
            "ssl.keystore.password" => self.keystore_password = secret(),
            "ssl.key.password" => self.key_password = secret(),
            "ssl.keystore.certificate.chain" => self.keystore_certificate_chain = text(),
            "ssl.keystore.key" => self.keystore_key = secret(),
            "ssl.endpoint.identification.algorithm" => {
                self.verify_hostname = match value.trim().to_ascii_lowercase().as_str() {
                    "" => false,
                    "https" => true,
                    _ => {
                        return Err(Error::Config(format!(
                            "`{key}` must be `https` or empty, got `{value}`"
                        )))
                    }
                }
            }
            "ssl.enabled.protocols" => self.versions = parse_versions(key, value)?,
            // Java's SSLContext protocol: any TLS version josefk speaks is accepted; the versions
            // actually offered come from `ssl.enabled.protocols`.
            "ssl.protocol" => {
                let v = value.trim();
                if !matches!(v, "TLS" | "TLSv1.2" | "TLSv1.3") {
                    return Err(Error::Config(format!(
                        "`{key}` must be TLS, TLSv1.2 or TLSv1.3, got `{value}`"
                    )));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Sets the trust store file and its type (`ssl.truststore.location`, `ssl.truststore.type`).
    pub fn truststore(mut self, path: impl Into<PathBuf>, kind: StoreType) -> Self {
        self.truststore_location = Some(path.into());
        self.truststore_type = Some(kind);
        self
    }

    /// Sets `ssl.truststore.password` (PKCS#12 trust stores).
    pub fn truststore_password(mut self, password: impl Into<Password>) -> Self {
        self.truststore_password = Some(password.into());
        self
    }

    /// Sets `ssl.truststore.certificates`: trusted CA certificates as PEM text.
    pub fn truststore_certificates(mut self, pem: impl Into<String>) -> Self {
        self.truststore_certificates = Some(pem.into());
        self
    }

    /// Sets the key store file and its type (`ssl.keystore.location`, `ssl.keystore.type`).
    pub fn keystore(mut self, path: impl Into<PathBuf>, kind: StoreType) -> Self {
        self.keystore_location = Some(path.into());
        self.keystore_type = Some(kind);
        self
    }

    /// Sets `ssl.keystore.password` (PKCS#12 key stores).
    pub fn keystore_password(mut self, password: impl Into<Password>) -> Self {
        self.keystore_password = Some(password.into());
        self
    }

    /// Sets `ssl.key.password`: the passphrase of an encrypted PEM private key.
    pub fn key_password(mut self, password: impl Into<Password>) -> Self {
        self.key_password = Some(password.into());
        self
    }

    /// Sets the client certificate chain and key as PEM text (`ssl.keystore.certificate.chain`,
    /// `ssl.keystore.key`).
    pub fn client_certificate_pem(
        mut self,
        chain: impl Into<String>,
        key: impl Into<Password>,
    ) -> Self {
        self.keystore_certificate_chain = Some(chain.into());
        self.keystore_key = Some(key.into());
        self
    }

    /// Sets whether the broker's certificate must name the host dialled
    /// (`ssl.endpoint.identification.algorithm`: `https` or empty).
    pub fn verify_hostname(mut self, verify: bool) -> Self {
        self.verify_hostname = verify;
        self
    }

    /// Checks the settings' shape (not the files: those are read when a client is built).
    pub fn validate(&self) -> Result<()> {
        if self.truststore_location.is_some() && self.truststore_certificates.is_some() {
            return Err(Error::Config(
                "set either `ssl.truststore.location` or `ssl.truststore.certificates`, not both"
                    .into(),
            ));
        }
        let inline = (
            self.keystore_certificate_chain.is_some(),
            self.keystore_key.is_some(),
        );
        match inline {
            (true, false) | (false, true) => {
                return Err(Error::Config(
                    "`ssl.keystore.certificate.chain` and `ssl.keystore.key` go together: set both"
                        .into(),
                ))
            }
            (true, true) if self.keystore_location.is_some() => {
                return Err(Error::Config(
                    "set either `ssl.keystore.location` or `ssl.keystore.certificate.chain` + \
                     `ssl.keystore.key`, not both"
                        .into(),
                ))
            }
            _ => {}
        }
        if !self.versions.tls12 && !self.versions.tls13 {
            return Err(Error::Config(
                "`ssl.enabled.protocols` must include TLSv1.2 or TLSv1.3".into(),
            ));
        }
        Ok(())
    }

    /// Reads the trust and key material the settings name.
    #[cfg(feature = "tls")]
    pub(crate) fn load(&self) -> Result<TlsMaterial> {
        self.validate()?;
        let roots = if let Some(pem) = &self.truststore_certificates {
            Some(pem_certificates(
                "ssl.truststore.certificates",
                pem.as_bytes(),
            )?)
        } else if let Some(path) = &self.truststore_location {
            let bytes = read_store("ssl.truststore.location", path)?;
            Some(
                match self.truststore_type.unwrap_or_else(|| guess(&bytes)) {
                    StoreType::Pem => pem_certificates("ssl.truststore.location", &bytes)?,
                    StoreType::Pkcs12 => {
                        let password = self.truststore_password.as_ref();
                        pkcs12_trust("ssl.truststore.location", &bytes, password)?
                    }
                },
            )
        } else {
            None
        };
        if roots.as_ref().is_some_and(Vec::is_empty) {
            return Err(Error::Config(
                "the trust store (`ssl.truststore.*`) holds no certificate".into(),
            ));
        }
        let client = if let (Some(chain), Some(key)) =
            (&self.keystore_certificate_chain, &self.keystore_key)
        {
            let certs = pem_certificates("ssl.keystore.certificate.chain", chain.as_bytes())?;
            let key = pem_private_key(
                "ssl.keystore.key",
                key.expose().as_bytes(),
                self.key_password.as_ref(),
            )?;
            Some((certs, key))
        } else if let Some(path) = &self.keystore_location {
            let bytes = read_store("ssl.keystore.location", path)?;
            Some(match self.keystore_type.unwrap_or_else(|| guess(&bytes)) {
                StoreType::Pem => {
                    let key = "ssl.keystore.location";
                    let certs = pem_certificates(key, &bytes)?;
                    (
                        certs,
                        pem_private_key(key, &bytes, self.key_password.as_ref())?,
                    )
                }
                StoreType::Pkcs12 => {
                    pkcs12_identity(&bytes, self.keystore_password.as_ref(), path)?
                }
            })
        } else {
            None
        };
        if let Some((certs, _)) = &client {
            if certs.is_empty() {
                return Err(Error::Config(
                    "the key store (`ssl.keystore.*`) holds a private key but no certificate"
                        .into(),
                ));
            }
        }
        Ok(TlsMaterial { roots, client })
    }
}

/// Parses `ssl.enabled.protocols` (a comma-separated list; versions josefk does not speak are
/// refused rather than ignored).
fn parse_versions(key: &str, value: &str) -> Result<TlsVersions> {
    let mut versions = TlsVersions {
        tls12: false,
        tls13: false,
    };
    for v in crate::config::split_list(value) {
        match v.as_str() {
            "TLSv1.2" => versions.tls12 = true,
            "TLSv1.3" => versions.tls13 = true,
            _ => {
                return Err(Error::Config(format!(
                    "`{key}`: `{v}` is not supported; josefk speaks TLSv1.2 and TLSv1.3"
                )))
            }
        }
    }
    Ok(versions)
}

/// PEM files start with `-----BEGIN` (after any comment text); anything else is taken as PKCS#12.
#[cfg(feature = "tls")]
fn guess(bytes: &[u8]) -> StoreType {
    if bytes.windows(10).any(|w| w == b"-----BEGIN") {
        StoreType::Pem
    } else {
        StoreType::Pkcs12
    }
}

/// Reads a store file; a missing file is a config error naming the setting.
#[cfg(feature = "tls")]
fn read_store(key: &str, path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| Error::Config(format!("`{key}`: cannot read `{}`: {e}", path.display())))
}

/// Every `CERTIFICATE` section of PEM text, in order.
#[cfg(feature = "tls")]
fn pem_certificates(key: &str, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Config(format!("`{key}`: bad PEM: {e}")))?;
    Ok(certs)
}

/// The private key in PEM text: a PKCS#8 `PRIVATE KEY` (also PKCS#1 and SEC1, which Java would
/// not read), or an `ENCRYPTED PRIVATE KEY` decrypted with `ssl.key.password`.
#[cfg(feature = "tls")]
fn pem_private_key(
    key: &str,
    pem: &[u8],
    password: Option<&Password>,
) -> Result<PrivateKeyDer<'static>> {
    const BEGIN: &str = "-----BEGIN ENCRYPTED PRIVATE KEY-----";
    const END: &str = "-----END ENCRYPTED PRIVATE KEY-----";
    let text = String::from_utf8_lossy(pem);
    if let Some(start) = text.find(BEGIN) {
        let Some(password) = password else {
            return Err(Error::Config(format!(
                "`{key}`: the private key is encrypted; set `ssl.key.password`"
            )));
        };
        let end = text[start..]
            .find(END)
            .map(|e| start + e + END.len())
            .ok_or_else(|| Error::Config(format!("`{key}`: unterminated encrypted key")))?;
        let (label, document) = pkcs8::der::Document::from_pem(&text[start..end])
            .map_err(|e| Error::Config(format!("`{key}`: bad encrypted key PEM: {e}")))?;
        debug_assert_eq!(label, "ENCRYPTED PRIVATE KEY");
        let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(document.as_bytes())
            .map_err(|e| Error::Config(format!("`{key}`: bad encrypted key: {e}")))?;
        // The error text of a failed decryption says nothing about the password itself.
        let plain = info.decrypt(password.expose()).map_err(|_| {
            Error::Config(format!(
                "`{key}`: cannot decrypt the private key: check `ssl.key.password` (PBES2 \
                 with PBKDF2 and AES is supported)"
            ))
        })?;
        return Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            plain.as_bytes().to_vec(),
        )));
    }
    PrivateKeyDer::from_pem_slice(pem).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => Error::Config(format!(
            "`{key}`: no private key found (expected `-----BEGIN PRIVATE KEY-----`)"
        )),
        // The parser's message may quote the input; the input is a secret.
        _ => Error::Config(format!(
            "`{key}`: the private key's PEM is malformed (expected a PKCS#8 \
             `-----BEGIN PRIVATE KEY-----` block)"
        )),
    })
}

/// Opens a PKCS#12 file; a wrong password and a corrupt file are told apart where the parser
/// allows.
#[cfg(feature = "tls")]
fn open_pkcs12(
    key: &str,
    bytes: &[u8],
    password: Option<&Password>,
) -> Result<p12_keystore::Pkcs12Archive> {
    let password = password.map(Password::expose).unwrap_or("");
    p12_keystore::Pkcs12Archive::from_pkcs12(bytes, password).map_err(|e| {
        Error::Config(format!(
            "`{key}`: cannot open the PKCS12 store ({e}); check its password \
             (`{}`) and that it is PKCS12",
            key.replace("location", "password")
        ))
    })
}

/// Every certificate of a PKCS#12 trust store.
#[cfg(feature = "tls")]
fn pkcs12_trust(
    key: &str,
    bytes: &[u8],
    password: Option<&Password>,
) -> Result<Vec<CertificateDer<'static>>> {
    let archive = open_pkcs12(key, bytes, password)?;
    Ok(archive
        .certs
        .iter()
        .map(|bag| CertificateDer::from(bag.cert.as_der().to_vec()))
        .collect())
}

/// The first private key of a PKCS#12 key store and its chain: the certificate with the key's
/// local key id first, then the others (the CA chain) in file order.
#[cfg(feature = "tls")]
fn pkcs12_identity(
    bytes: &[u8],
    password: Option<&Password>,
    path: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let key = "ssl.keystore.location";
    let archive = open_pkcs12(key, bytes, password)?;
    let Some(bag) = archive.keys.first() else {
        return Err(Error::Config(format!(
            "`{key}`: `{}` holds no private key",
            path.display()
        )));
    };
    let is_leaf = |c: &p12_keystore::CertificateBag| match (&c.local_key_id, &bag.local_key_id) {
        (Some(cert_id), Some(key_id)) => cert_id.as_slice() == key_id.as_ref(),
        _ => false,
    };
    let leaf = archive.certs.iter().filter(|c| is_leaf(c));
    let rest = archive.certs.iter().filter(|c| !is_leaf(c));
    let chain = leaf
        .chain(rest)
        .map(|c| CertificateDer::from(c.cert.as_der().to_vec()))
        .collect();
    let private = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(bag.key.as_der().to_vec()));
    Ok((chain, private))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_names_map_onto_fields_and_secrets_stay_hidden() {
        let mut c = TlsConfig::new();
        for (k, v) in [
            ("ssl.truststore.location", "/tmp/ca.crt"),
            ("ssl.truststore.type", "pem"),
            ("ssl.keystore.location", "/tmp/client.p12"),
            ("ssl.keystore.type", "PKCS12"),
            ("ssl.keystore.password", "s3cret-store"),
            ("ssl.key.password", "s3cret-key"),
            ("ssl.endpoint.identification.algorithm", ""),
            ("ssl.enabled.protocols", "TLSv1.3"),
        ] {
            assert!(c.set(k, v).unwrap(), "{k}");
        }
        assert!(!c.set("ssl.bogus", "x").unwrap());
        assert_eq!(c.truststore_type, Some(StoreType::Pem));
        assert_eq!(c.keystore_type, Some(StoreType::Pkcs12));
        assert!(!c.verify_hostname);
        assert!(!c.versions.tls12 && c.versions.tls13);
        let debug = format!("{c:?}");
        assert!(!debug.contains("s3cret"), "{debug}");
        let e = c.set("ssl.keystore.type", "JKS").unwrap_err();
        assert!(e.to_string().contains("PKCS12"), "{e}");
        let e = c.set("ssl.enabled.protocols", "TLSv1.1").unwrap_err();
        assert!(e.to_string().contains("TLSv1.1"), "{e}");
    }

    #[test]
    fn inline_chain_without_key_is_refused() {
        let mut c = TlsConfig::new();
        c.keystore_certificate_chain = Some("x".into());
        let e = c.validate().unwrap_err();
        assert!(e.to_string().contains("ssl.keystore.key"), "{e}");
    }

    #[test]
    #[cfg(feature = "tls")]
    fn unreadable_or_empty_stores_are_config_errors_naming_the_key() {
        let c = TlsConfig::new().truststore("/nonexistent/ca.pem", StoreType::Pem);
        let e = c.load().err().unwrap();
        assert!(e.to_string().contains("ssl.truststore.location"), "{e}");
        let c = TlsConfig::new().truststore_certificates("no pem here");
        let e = c.load().err().unwrap();
        assert!(e.to_string().contains("no certificate"), "{e}");
        let c = TlsConfig::new().client_certificate_pem("", "not a key");
        let e = c.load().err().unwrap();
        assert!(e.to_string().contains("ssl.keystore"), "{e}");
        assert!(!e.to_string().contains("not a key"), "{e}");
    }
}
