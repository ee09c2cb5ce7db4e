//! SASL/OAUTHBEARER (RFC 7628), client side: the token in one message,
//! `n,,\x01auth=Bearer <token>\x01<ext>=<value>\x01\x01`.
//!
//! A broker that refuses the token does not fail the SaslAuthenticate at once: it answers error 0
//! with a JSON document (`{"status":"invalid_token"}`) and waits for the client's `\x01`, then
//! answers SASL_AUTHENTICATION_FAILED. The session keeps the JSON's status so the final error can
//! say what the broker disliked.

use crate::net::sasl::{SaslSession, Step};
use crate::security::Password;

/// Largest broker error document kept for the error message.
const MAX_DETAIL: usize = 512;

/// One OAUTHBEARER exchange.
pub(crate) struct OAuthBearerSession {
    token: Password,
    extensions: Vec<(String, String)>,
    /// The broker's refusal, once it sent one.
    refusal: Option<String>,
    sent: bool,
}

impl OAuthBearerSession {
    /// A session for `token`; checks the extensions as RFC 7628 restricts them.
    pub(crate) fn new(token: Password, extensions: Vec<(String, String)>) -> Result<Self, String> {
        for (name, value) in &extensions {
            if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphabetic()) || name == "auth" {
                return Err(format!(
                    "SASL extension name `{name}` must be letters only and not `auth`"
                ));
            }
            if value.is_empty()
                || !value.bytes().all(|b| {
                    (0x21..=0x7e).contains(&b) || matches!(b, b' ' | b'\t' | b'\r' | b'\n')
                })
            {
                return Err(format!(
                    "SASL extension `{name}` must have a printable ASCII value"
                ));
            }
        }
        if token.is_empty() || token.expose().bytes().any(|b| !(0x21..=0x7e).contains(&b)) {
            return Err("the OAUTHBEARER token is empty or not printable ASCII".into());
        }
        Ok(OAuthBearerSession {
            token,
            extensions,
            refusal: None,
            sent: false,
        })
    }
}

impl SaslSession for OAuthBearerSession {
    fn initial(&mut self) -> Result<Vec<u8>, String> {
        let mut message = format!("n,,\x01auth=Bearer {}\x01", self.token.expose());
        for (name, value) in &self.extensions {
            message.push_str(name);
            message.push('=');
            message.push_str(value);
            message.push('\x01');
        }
        message.push('\x01');
        self.sent = true;
        Ok(message.into_bytes())
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Step, String> {
        if !self.sent || self.refusal.is_some() {
            return Err("unexpected OAUTHBEARER message from the broker".into());
        }
        if challenge.is_empty() {
            return Ok(Step::Done);
        }
        self.refusal = Some(describe_refusal(challenge));
        // RFC 7628 §3.2.3: acknowledge the error with a lone %x01; the broker then fails the
        // exchange with its own error code.
        Ok(Step::Respond(vec![0x01]))
    }

    fn failure_detail(&self) -> Option<String> {
        self.refusal.clone()
    }
}

/// The broker's error document as text for an error message: its `status` (and `scope`) when it
/// is the JSON RFC 7628 describes, else the raw text, bounded.
fn describe_refusal(document: &[u8]) -> String {
    if let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(document) {
        if let Some(status) = fields.get("status").and_then(|s| s.as_str()) {
            let mut text = format!("broker status `{}`", bounded(status));
            if let Some(scope) = fields.get("scope").and_then(|s| s.as_str()) {
                text.push_str(&format!(", required scope `{}`", bounded(scope)));
            }
            return text;
        }
    }
    format!(
        "broker said `{}`",
        bounded(&String::from_utf8_lossy(document))
    )
}

fn bounded(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control())
        .take(MAX_DETAIL)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_first_message_with_extensions() {
        let mut s = OAuthBearerSession::new(
            Password::new("abc.def."),
            vec![("traceId".into(), "t 1".into())],
        )
        .unwrap();
        assert_eq!(
            s.initial().unwrap(),
            b"n,,\x01auth=Bearer abc.def.\x01traceId=t 1\x01\x01"
        );
        assert!(matches!(s.step(b"").unwrap(), Step::Done));
    }

    #[test]
    fn a_refusal_is_acknowledged_and_its_status_kept() {
        let mut s = OAuthBearerSession::new(Password::new("tok"), vec![]).unwrap();
        s.initial().unwrap();
        let Step::Respond(ack) = s.step(br#"{"status":"invalid_token"}"#).unwrap() else {
            panic!("expected the %x01 acknowledgement")
        };
        assert_eq!(ack, [0x01]);
        assert_eq!(
            s.failure_detail().as_deref(),
            Some("broker status `invalid_token`")
        );
        assert!(s.step(b"").is_err(), "nothing follows a refusal");
    }

    #[test]
    fn bad_extensions_and_tokens_are_refused() {
        assert!(
            OAuthBearerSession::new(Password::new("t"), vec![("auth".into(), "x".into())]).is_err()
        );
        assert!(
            OAuthBearerSession::new(Password::new("t"), vec![("a1".into(), "x".into())]).is_err()
        );
        assert!(
            OAuthBearerSession::new(Password::new("t"), vec![("a".into(), "\x01".into())]).is_err()
        );
        assert!(OAuthBearerSession::new(Password::new(""), vec![]).is_err());
        assert!(OAuthBearerSession::new(Password::new("a\x01b"), vec![]).is_err());
    }
}
