//! SASL/SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), client side, as Kafka speaks it:
//! no channel binding (`n,,`), no SASLprep (Kafka's `ScramFormatter` uses the UTF-8 bytes as they
//! are), and the server's signature checked, so a broker that does not know the password cannot
//! pretend the exchange succeeded.
//!
//! Messages: client-first `n,,n=<user>,r=<nonce>` → server-first `r=<nonce+server>,s=<salt>,i=<n>`
//! → client-final `c=biws,r=<nonce>,p=<proof>` → server-final `v=<server signature>`.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::net::sasl::{SaslSession, Step};
use crate::security::Password;

/// Kafka's own bounds on the iteration count (`ScramMechanism.minIterations`/`maxIterations`).
/// The upper one also stops a hostile broker from making the client hash for minutes.
const MIN_ITERATIONS: u32 = 4096;
const MAX_ITERATIONS: u32 = 16384;

/// The hash of a SCRAM mechanism.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScramHash {
    Sha256,
    Sha512,
}

impl ScramHash {
    fn hmac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
            ScramHash::Sha512 => {
                let mut mac = Hmac::<Sha512>::new_from_slice(key).expect("HMAC takes any key");
                mac.update(data);
                mac.finalize().into_bytes().to_vec()
            }
        }
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => Sha256::digest(data).to_vec(),
            ScramHash::Sha512 => Sha512::digest(data).to_vec(),
        }
    }

    fn salted_password(self, password: &[u8], salt: &[u8], iterations: u32) -> Vec<u8> {
        match self {
            ScramHash::Sha256 => {
                let mut out = vec![0; 32];
                pbkdf2::pbkdf2_hmac::<Sha256>(password, salt, iterations, &mut out);
                out
            }
            ScramHash::Sha512 => {
                let mut out = vec![0; 64];
                pbkdf2::pbkdf2_hmac::<Sha512>(password, salt, iterations, &mut out);
                out
            }
        }
    }
}

enum State {
    Initial,
    /// Client-first sent; its bare part is kept for the AuthMessage.
    SentFirst {
        client_first_bare: String,
    },
    /// Client-final sent; the server's signature we expect back.
    SentFinal {
        server_signature: Vec<u8>,
    },
    Done,
}

/// One SCRAM exchange.
pub(crate) struct ScramSession {
    hash: ScramHash,
    username: String,
    password: Password,
    nonce: String,
    state: State,
}

impl ScramSession {
    /// A session with a fresh random nonce.
    pub(crate) fn new(
        hash: ScramHash,
        username: String,
        password: Password,
    ) -> Result<Self, String> {
        let mut raw = [0u8; 24];
        getrandom::fill(&mut raw)
            .map_err(|e| format!("no OS randomness for the SCRAM nonce: {e}"))?;
        Ok(Self::with_nonce(hash, username, password, B64.encode(raw)))
    }

    /// A session with the client nonce `nonce` (tests and fuzzing replay fixed exchanges).
    pub(crate) fn with_nonce(hash: ScramHash, username: String, password: Password, nonce: String) -> Self {
        ScramSession {
            hash,
            username,
            password,
            nonce,
            state: State::Initial,
        }
    }

    fn client_final(
        &mut self,
        client_first_bare: &str,
        server_first: &[u8],
    ) -> Result<Vec<u8>, String> {
        let server_first = std::str::from_utf8(server_first)
            .map_err(|_| "the SCRAM server-first message is not UTF-8".to_owned())?;
        let mut nonce = None;
        let mut salt = None;
        let mut iterations = None;
        for attribute in server_first.split(',') {
            match attribute.split_once('=') {
                Some(("r", v)) => nonce = Some(v),
                Some(("s", v)) => salt = Some(v),
                Some(("i", v)) => iterations = Some(v),
                Some(("m", _)) => {
                    return Err("the broker requires a SCRAM extension josefk does not know".into())
                }
                Some(("e", v)) => return Err(format!("the broker refused: {}", bounded(v))),
                _ => {}
            }
        }
        let (Some(nonce), Some(salt), Some(iterations)) = (nonce, salt, iterations) else {
            return Err(
                "the SCRAM server-first message lacks a nonce, salt or iteration count".into(),
            );
        };
        if !nonce.starts_with(&self.nonce) || nonce.len() == self.nonce.len() {
            return Err("the SCRAM server nonce does not extend the client's".into());
        }
        let salt = B64
            .decode(salt)
            .map_err(|_| "the SCRAM salt is not base64".to_owned())?;
        let iterations: u32 = iterations
            .parse()
            .map_err(|_| "the SCRAM iteration count is not a number".to_owned())?;
        if !(MIN_ITERATIONS..=MAX_ITERATIONS).contains(&iterations) {
            return Err(format!(
                "the SCRAM iteration count {iterations} is outside Kafka's {MIN_ITERATIONS}..={MAX_ITERATIONS}"
            ));
        }
        let h = self.hash;
        let salted = h.salted_password(self.password.expose().as_bytes(), &salt, iterations);
        let client_key = h.hmac(&salted, b"Client Key");
        let stored_key = h.hash(&client_key);
        // "biws" is base64 of the GS2 header "n,,": no channel binding, no authzid.
        let without_proof = format!("c=biws,r={nonce}");
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = h.hmac(&stored_key, auth_message.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&client_signature)
            .map(|(k, s)| k ^ s)
            .collect();
        let server_key = h.hmac(&salted, b"Server Key");
        self.state = State::SentFinal {
            server_signature: h.hmac(&server_key, auth_message.as_bytes()),
        };
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// The server signature this session will accept, once it has sent its client-final; the
    /// fuzz target checks that nothing else is ever accepted.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn expected_server_signature(&self) -> Option<&[u8]> {
        match &self.state {
            State::SentFinal { server_signature } => Some(server_signature),
            _ => None,
        }
    }
}

/// A broker's SCRAM error text, printable and at most 200 characters, for an error message.
fn bounded(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(200).collect()
}

/// RFC 5802 `saslname`: `,` and `=` escaped.
fn sasl_name(name: &str) -> String {
    name.replace('=', "=3D").replace(',', "=2C")
}

impl SaslSession for ScramSession {
    fn initial(&mut self) -> Result<Vec<u8>, String> {
        let client_first_bare = format!("n={},r={}", sasl_name(&self.username), self.nonce);
        let message = format!("n,,{client_first_bare}").into_bytes();
        self.state = State::SentFirst { client_first_bare };
        Ok(message)
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Step, String> {
        match std::mem::replace(&mut self.state, State::Done) {
            State::SentFirst { client_first_bare } => self
                .client_final(&client_first_bare, challenge)
                .map(Step::Respond),
            State::SentFinal { server_signature } => {
                let text = std::str::from_utf8(challenge)
                    .map_err(|_| "the SCRAM server-final message is not UTF-8".to_owned())?;
                if let Some(error) = text.strip_prefix("e=") {
                    return Err(format!("the broker refused: {}", bounded(error)));
                }
                let given = text
                    .split(',')
                    .find_map(|a| a.strip_prefix("v="))
                    .and_then(|v| B64.decode(v).ok())
                    .ok_or_else(|| "the SCRAM server-final message has no signature".to_owned())?;
                // Not secret-dependent timing worth guarding: the signature is the broker's to
                // prove, and a mismatch ends the connection.
                if given != server_signature {
                    return Err(
                        "the broker's SCRAM signature is wrong: it does not know this user's \
                         credentials (a man in the middle, or a misconfigured broker)"
                            .into(),
                    );
                }
                Ok(Step::Done)
            }
            State::Initial | State::Done => Err("unexpected SCRAM message from the broker".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677 section 3: user "user", password "pencil".
    #[test]
    fn rfc7677_test_vector_and_server_signature() {
        let mut s = ScramSession::with_nonce(
            ScramHash::Sha256,
            "user".into(),
            Password::new("pencil"),
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        assert_eq!(s.initial().unwrap(), b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO");
        let server_first =
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096";
        let Step::Respond(client_final) = s.step(server_first).unwrap() else {
            panic!("expected client-final")
        };
        assert_eq!(
            String::from_utf8(client_final).unwrap(),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        assert!(matches!(
            s.step(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
                .unwrap(),
            Step::Done
        ));
    }

    #[test]
    fn a_wrong_server_signature_is_refused() {
        let mut s = ScramSession::with_nonce(
            ScramHash::Sha256,
            "user".into(),
            Password::new("pencil"),
            "rOprNGfwEbeRWgbNEkqO".into(),
        );
        s.initial().unwrap();
        s.step(b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096")
            .unwrap();
        let e = s
            .step(b"v=AAAATRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .unwrap_err();
        assert!(e.contains("signature"), "{e}");
    }

    #[test]
    fn hostile_server_first_messages_are_refused() {
        for bad in [
            &b"r=other-nonce,s=QUJD,i=4096"[..],
            b"r=abcXYZ,s=QUJD,i=99999999",
            b"r=abcXYZ,s=QUJD,i=10",
            b"r=abcXYZ,s=not base64!,i=4096",
            b"r=abcXYZ,i=4096",
            b"r=abc,s=QUJD,i=4096",
            b"m=ext,r=abcXYZ,s=QUJD,i=4096",
            b"e=other-error",
            b"\xff\xfe",
        ] {
            let mut s = ScramSession::with_nonce(
                ScramHash::Sha512,
                "u".into(),
                Password::new("p"),
                "abc".into(),
            );
            s.initial().unwrap();
            assert!(s.step(bad).is_err(), "{}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn sha512_exchange_round_trips_against_a_reference_server_computation() {
        // The server side of RFC 5802 computed independently here: StoredKey check of the proof.
        let h = ScramHash::Sha512;
        let mut s =
            ScramSession::with_nonce(h, "a,b=c".into(), Password::new("secret"), "cnonce".into());
        let first = String::from_utf8(s.initial().unwrap()).unwrap();
        assert_eq!(first, "n,,n=a=2Cb=3Dc,r=cnonce");
        let server_first = "r=cnonceSNONCE,s=c2FsdA==,i=4096";
        let Step::Respond(final_msg) = s.step(server_first.as_bytes()).unwrap() else {
            panic!()
        };
        let final_msg = String::from_utf8(final_msg).unwrap();
        let (without_proof, proof) = final_msg.rsplit_once(",p=").unwrap();
        let salted = h.salted_password(b"secret", b"salt", 4096);
        let stored_key = h.hash(&h.hmac(&salted, b"Client Key"));
        let auth = format!("n=a=2Cb=3Dc,r=cnonce,{server_first},{without_proof}");
        let signature = h.hmac(&stored_key, auth.as_bytes());
        let client_key: Vec<u8> = B64
            .decode(proof)
            .unwrap()
            .iter()
            .zip(&signature)
            .map(|(p, s)| p ^ s)
            .collect();
        assert_eq!(h.hash(&client_key), stored_key, "the proof verifies");
        let server_sig = h.hmac(&h.hmac(&salted, b"Server Key"), auth.as_bytes());
        let reply = format!("v={}", B64.encode(server_sig));
        assert!(matches!(s.step(reply.as_bytes()).unwrap(), Step::Done));
    }
}
