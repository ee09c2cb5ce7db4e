//! SASL/PLAIN (RFC 4616): one message, `authzid \0 username \0 password`, with an empty authzid.

use crate::net::sasl::{SaslSession, Step};
use crate::security::Password;

/// A PLAIN exchange.
pub(crate) struct PlainSession {
    username: String,
    password: Password,
    sent: bool,
}

impl PlainSession {
    pub(crate) fn new(username: String, password: Password) -> Self {
        PlainSession {
            username,
            password,
            sent: false,
        }
    }
}

impl SaslSession for PlainSession {
    fn initial(&mut self) -> Result<Vec<u8>, String> {
        if self.username.contains('\0') || self.password.expose().contains('\0') {
            return Err("PLAIN username and password must not contain NUL characters".into());
        }
        self.sent = true;
        let mut message =
            Vec::with_capacity(2 + self.username.len() + self.password.expose().len());
        message.push(0);
        message.extend_from_slice(self.username.as_bytes());
        message.push(0);
        message.extend_from_slice(self.password.expose().as_bytes());
        Ok(message)
    }

    fn step(&mut self, challenge: &[u8]) -> Result<Step, String> {
        if !self.sent || !challenge.is_empty() {
            return Err("the broker sent a PLAIN challenge; PLAIN has none".into());
        }
        Ok(Step::Done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_message_is_nul_separated_and_done_after_one_round() {
        let mut s = PlainSession::new("alice".into(), Password::new("pw"));
        assert_eq!(s.initial().unwrap(), b"\0alice\0pw");
        assert!(matches!(s.step(b"").unwrap(), Step::Done));
        let mut s = PlainSession::new("alice".into(), Password::new("p\0w"));
        assert!(s.initial().is_err());
        let mut s = PlainSession::new("alice".into(), Password::new("pw"));
        s.initial().unwrap();
        assert!(s.step(b"unexpected").is_err());
    }
}
