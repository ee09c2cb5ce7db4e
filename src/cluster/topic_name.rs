//! Kafka's rules for topic names, checked before anything is sent (Java `Topic.validate`), so a
//! name the broker would refuse fails the one call at once instead of being retried.

use crate::error::{Error, Result};

/// The longest topic name Kafka allows (Java `Topic.MAX_NAME_LENGTH`).
pub const MAX_TOPIC_NAME_LENGTH: usize = 249;

/// Checks `name` against Kafka's rules: not empty, at most 249 characters, only ASCII letters,
/// digits, `.`, `_` and `-`, and neither `.` nor `..`. Fails with [`Error::InvalidArgument`]
/// ([`ErrorClass::Rejected`](crate::ErrorClass::Rejected)) saying which rule was broken.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let invalid = |why: String| Err(Error::InvalidArgument(format!("topic name {why}")));
    if name.is_empty() {
        return invalid("is empty".into());
    }
    if name == "." || name == ".." {
        return invalid(format!("`{name}` is not allowed"));
    }
    if name.len() > MAX_TOPIC_NAME_LENGTH {
        return invalid(format!(
            "is {} characters long; the limit is {MAX_TOPIC_NAME_LENGTH}",
            name.chars().count()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return invalid(format!(
            "`{}` contains {bad:?}; only ASCII letters, digits, '.', '_' and '-' are allowed",
            name.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_kafka_names_and_refuses_the_rest() {
        for ok in ["t", "a.b_c-D9", "..a", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "ä", "t\n", &"x".repeat(250)] {
            let e = validate_topic_name(bad).unwrap_err();
            assert!(matches!(e, Error::InvalidArgument(_)), "{bad}: {e}");
            assert_eq!(e.class(), crate::ErrorClass::Rejected);
        }
        let e = validate_topic_name("a b").unwrap_err().to_string();
        assert!(e.contains("' '"), "{e}");
    }
}
