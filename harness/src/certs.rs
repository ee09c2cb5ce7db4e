//! Test certificates made at test time with the `openssl` CLI (and `keytool` for the Java
//! trust store): a CA, a broker certificate for `localhost` / 127.0.0.1, a client certificate, a
//! broker certificate for the wrong host and an expired one; PEM and PKCS#12.
//!
//! Keys are RSA-2048 in PKCS#8 (what Kafka's PEM loader reads). The directory is deleted on drop
//! (kept with `JOSEFK_KEEP_KAFKA_LOGS=1`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::{HarnessError, Result};

/// The password of every PKCS#12 store made here.
pub const STORE_PASSWORD: &str = "changeit";

/// A directory of test certificates. See the module docs.
#[derive(Debug)]
pub struct TestCertificates {
    dir: PathBuf,
}

impl TestCertificates {
    /// Makes a fresh CA and every certificate below in a new temporary directory.
    pub fn generate() -> Result<TestCertificates> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("josefk-certs-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir)
            .map_err(|e| HarnessError::io(format!("creating {}", dir.display()), e))?;
        let certs = TestCertificates { dir };
        certs.make_all()?;
        Ok(certs)
    }

    /// The directory holding the files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A file in the directory, e.g. `ca.crt`, `client.p12`.
    pub fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The text of a file in the directory (PEM files).
    pub fn text(&self, file: &str) -> Result<String> {
        let path = self.path(file);
        fs::read_to_string(&path)
            .map_err(|e| HarnessError::io(format!("reading {}", path.display()), e))
    }

    fn make_all(&self) -> Result<()> {
        self.openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "365",
            "-subj",
            "/CN=josefk-test-ca",
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
        ])?;
        self.leaf("broker", "localhost", "DNS:localhost,IP:127.0.0.1", None)?;
        self.leaf("client", "client1", "DNS:client1", None)?;
        self.leaf(
            "wronghost",
            "wrong.example.com",
            "DNS:wrong.example.com",
            None,
        )?;
        self.leaf(
            "expired",
            "localhost",
            "DNS:localhost,IP:127.0.0.1",
            Some(("20200101000000Z", "20200201000000Z")),
        )?;
        // keytool, not openssl: Java only trusts PKCS#12 certificate entries that carry its
        // trusted-key-usage attribute.
        let keytool = keytool();
        self.run(
            Command::new(&keytool).args([
                "-importcert",
                "-noprompt",
                "-alias",
                "ca",
                "-file",
                "ca.crt",
                "-keystore",
                "truststore.p12",
                "-storetype",
                "PKCS12",
                "-storepass",
                STORE_PASSWORD,
            ]),
            "keytool -importcert (is a JDK installed?)",
        )?;
        // An encrypted PKCS#8 copy of the client key (PBES2, AES-256-CBC).
        self.openssl(&[
            "pkcs8",
            "-topk8",
            "-in",
            "client.key",
            "-v2",
            "aes-256-cbc",
            "-passout",
            "pass:keypass",
            "-out",
            "client-encrypted.key",
        ])?;
        Ok(())
    }

    /// `name.key`, `name.crt` (signed by the CA), `name.pem` (key, leaf, CA: Kafka's PEM key
    /// store), `name.p12` (key and chain). `validity`: fixed notBefore/notAfter instead of
    /// 365 days from now.
    fn leaf(&self, name: &str, cn: &str, san: &str, validity: Option<(&str, &str)>) -> Result<()> {
        let (key, csr, ext, crt) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.ext"),
            format!("{name}.crt"),
        );
        self.openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ])?;
        let ext_text = format!("subjectAltName={san}\nextendedKeyUsage=serverAuth,clientAuth\n");
        self.write(&ext, &ext_text)?;
        match validity {
            None => self.openssl(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.crt",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-extfile",
                &ext,
                "-days",
                "365",
                "-out",
                &crt,
            ])?,
            Some((start, end)) => {
                // `openssl x509` (3.0) cannot set dates in the past; `openssl ca` can.
                self.write("ca.cnf", CA_CONFIG)?;
                self.write("index.txt", "")?;
                self.write("serial", "1000\n")?;
                self.openssl(&[
                    "ca",
                    "-batch",
                    "-notext",
                    "-config",
                    "ca.cnf",
                    "-cert",
                    "ca.crt",
                    "-keyfile",
                    "ca.key",
                    "-in",
                    &csr,
                    "-out",
                    &crt,
                    "-startdate",
                    start,
                    "-enddate",
                    end,
                    "-extfile",
                    &ext,
                ])?;
            }
        }
        let pem = [self.text(&key)?, self.text(&crt)?, self.text("ca.crt")?].concat();
        self.write(&format!("{name}.pem"), &pem)?;
        self.openssl(&[
            "pkcs12",
            "-export",
            "-in",
            &crt,
            "-inkey",
            &key,
            "-certfile",
            "ca.crt",
            "-name",
            name,
            "-passout",
            &format!("pass:{STORE_PASSWORD}"),
            "-out",
            &format!("{name}.p12"),
        ])
    }

    fn write(&self, file: &str, text: &str) -> Result<()> {
        let path = self.path(file);
        fs::write(&path, text)
            .map_err(|e| HarnessError::io(format!("writing {}", path.display()), e))
    }

    fn openssl(&self, args: &[&str]) -> Result<()> {
        self.run(
            Command::new("openssl").args(args),
            &format!("openssl {} (is the openssl CLI installed?)", args[0]),
        )
    }

    fn run(&self, command: &mut Command, what: &str) -> Result<()> {
        let output = command
            .current_dir(&self.dir)
            .output()
            .map_err(|e| HarnessError::io(what.to_owned(), e))?;
        if output.status.success() {
            return Ok(());
        }
        Err(HarnessError::io(
            what.to_owned(),
            std::io::Error::other(format!(
                "{}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )),
        ))
    }
}

impl Drop for TestCertificates {
    fn drop(&mut self) {
        if std::env::var_os("JOSEFK_KEEP_KAFKA_LOGS").is_some_and(|v| v != "0") {
            return;
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// `keytool` beside `$JAVA_HOME/bin/java`, else from `PATH`.
fn keytool() -> PathBuf {
    std::env::var_os("JAVA_HOME")
        .map(|home| PathBuf::from(home).join("bin").join("keytool"))
        .filter(|p| p.exists())
        .unwrap_or_else(|| PathBuf::from("keytool"))
}

/// The smallest `openssl ca` configuration that signs a CSR with the extensions given by
/// `-extfile`.
const CA_CONFIG: &str = "\
[ca]
default_ca = test
[test]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = any
unique_subject = no
[any]
commonName = supplied
";
