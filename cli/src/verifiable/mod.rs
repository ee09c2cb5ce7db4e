//! `verifiable-producer`, `verifiable-consumer` and `transactional-message-copier`: Kafka's system
//! test tools (`org.apache.kafka.tools.VerifiableProducer`, `VerifiableConsumer`,
//! `TransactionalMessageCopier` of kafka-tools 4.4) spoken by josefk: the same arguments and the
//! same JSON lines on stdout, so Kafka's own system tests (and scripts written for them) can
//! drive josefk. This module owns what the three share: the JSON-line writer (fields in Java's
//! order) and the clock. The process's stop listener (`crate::stop`, SIGTERM or Ctrl-C) stands
//! for the tools' shutdown hook.

pub mod consumer;
pub mod copier;
pub mod producer;

use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// One JSON object, built field by field so the fields come out in the order Java's Jackson
/// writes them (serde would need a dependency in the binary for what is a few dozen lines).
#[derive(Debug)]
pub struct Json {
    text: String,
    empty: bool,
}

impl Json {
    /// An empty object.
    pub fn object() -> Json {
        Json {
            text: String::from("{"),
            empty: true,
        }
    }

    /// An event of the verifiable tools: `timestamp` (ms since the epoch) then `name`, as their
    /// `@JsonPropertyOrder({"timestamp", "name"})` says.
    pub fn event(name: &str) -> Json {
        Json::object()
            .num("timestamp", now_ms())
            .str("name", Some(name))
    }

    fn key(&mut self, key: &str) {
        if !self.empty {
            self.text.push(',');
        }
        self.empty = false;
        crate::format::json_string(&mut self.text, key);
        self.text.push(':');
    }

    /// A string field; `None` is JSON `null`.
    pub fn str(mut self, key: &str, value: Option<&str>) -> Json {
        self.key(key);
        match value {
            Some(v) => crate::format::json_string(&mut self.text, v),
            None => self.text.push_str("null"),
        }
        self
    }

    /// An integer field.
    pub fn num(mut self, key: &str, value: i64) -> Json {
        self.key(key);
        let _ = write!(self.text, "{value}");
        self
    }

    /// A floating-point field, written as Java writes a `double` (`12.0`, not `12`). NaN and
    /// infinities, which JSON has no number for, are written as `0.0`.
    pub fn float(mut self, key: &str, value: f64) -> Json {
        self.key(key);
        let value = if value.is_finite() { value } else { 0.0 };
        let _ = write!(self.text, "{value:?}");
        self
    }

    /// A boolean field.
    pub fn bool(mut self, key: &str, value: bool) -> Json {
        self.key(key);
        self.text.push_str(if value { "true" } else { "false" });
        self
    }

    /// An array field of objects.
    pub fn array(mut self, key: &str, items: impl IntoIterator<Item = Json>) -> Json {
        self.key(key);
        self.text.push('[');
        for (i, item) in items.into_iter().enumerate() {
            if i > 0 {
                self.text.push(',');
            }
            self.text.push_str(&item.finish());
        }
        self.text.push(']');
        self
    }

    /// The object's text.
    pub fn finish(mut self) -> String {
        self.text.push('}');
        self.text
    }

    /// Prints the object as one line on stdout. Every line is flushed at once (Rust's stdout is
    /// line buffered), as Java's `System.out.println` is: the system tests read it live.
    pub fn emit(self) {
        let line = self.finish();
        // As Java's `System.out`, which swallows write errors: a closed stdout neither panics nor
        // stops the tool (SIGTERM does).
        let _ = crate::output::outln!("{line}");
    }
}

/// Bytes as Java's `StringDeserializer` turns them into a string (invalid UTF-8 becomes U+FFFD).
pub fn text(bytes: Option<&[u8]>) -> Option<String> {
    bytes.map(|b| String::from_utf8_lossy(b).into_owned())
}

/// Milliseconds since the epoch, as `System.currentTimeMillis()`.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_keep_their_order_and_strings_are_escaped() {
        let line = Json::object()
            .str("b", Some("q\"\\\n\u{1}é"))
            .num("a", -1)
            .str("k", None)
            .float("f", 12.0)
            .bool("ok", true)
            .array("xs", [Json::object().num("p", 0)])
            .finish();
        assert_eq!(
            line,
            r#"{"b":"q\"\\\n\u0001é","a":-1,"k":null,"f":12.0,"ok":true,"xs":[{"p":0}]}"#
        );
    }
}
