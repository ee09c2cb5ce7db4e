//! Pattern subscriptions on classic groups (Java's `subscribe(Pattern)`): which topic names a
//! pattern selects, decided here so the consumer only feeds it topic lists from metadata.
//!
//! A topic matches when the whole name matches (Java's `Matcher.matches()`, not `find()`), and
//! internal topics (`__consumer_offsets`, `__transaction_state`) are never selected, as Java's
//! default `exclude.internal.topics=true` does.
//!
//! Syntax: the `regex` crate's, which is RE2's. Java's classic consumer matches with
//! `java.util.regex` (backreferences and lookaround allowed); on `consumer` groups the broker
//! matches with RE2/J (KIP-848), which, like this module, has neither. Patterns without those
//! constructs select the same topics everywhere.

use regex::Regex;

/// A compiled topic pattern.
#[derive(Debug, Clone)]
pub struct TopicPattern {
    regex: Regex,
}

impl TopicPattern {
    /// Compiles `source`; the error says why it is not a valid pattern.
    pub fn new(source: &str) -> Result<TopicPattern, String> {
        if source.is_empty() {
            return Err("a topic pattern must not be empty".into());
        }
        // Anchored: the whole topic name must match, as Java's Matcher.matches() requires.
        let anchored = format!("^(?:{source})$");
        let regex = regex::RegexBuilder::new(&anchored)
            // Bounds the compiled size, so a hostile pattern fails instead of eating memory.
            .size_limit(1 << 20)
            .build()
            .map_err(|e| format!("invalid topic pattern `{source}`: {e}"))?;
        Ok(TopicPattern { regex })
    }

    /// Whether the whole of `topic` matches.
    pub fn matches(&self, topic: &str) -> bool {
        self.regex.is_match(topic)
    }

    /// The matching non-internal topics among `(name, internal)` pairs, sorted and deduplicated.
    pub fn select<'a>(&self, topics: impl IntoIterator<Item = (&'a str, bool)>) -> Vec<String> {
        let mut out: Vec<String> = topics
            .into_iter()
            .filter(|(name, internal)| !internal && self.matches(name))
            .map(|(name, _)| name.to_owned())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_name_must_match() {
        let p = TopicPattern::new("orders-.*").unwrap();
        assert!(p.matches("orders-eu"));
        assert!(p.matches("orders-"));
        assert!(
            !p.matches("old-orders-eu"),
            "a match inside the name is not enough"
        );
        let p = TopicPattern::new("a|b").unwrap();
        assert!(p.matches("a") && p.matches("b"));
        assert!(!p.matches("ab"), "alternation is anchored as a whole");
    }

    #[test]
    fn internal_topics_are_excluded_and_the_result_sorted() {
        let p = TopicPattern::new(".*").unwrap();
        let got = p.select([
            ("zeta", false),
            ("__consumer_offsets", true),
            ("alpha", false),
            ("__transaction_state", true),
            ("alpha", false),
            ("__not_internal", false),
        ]);
        assert_eq!(got, vec!["__not_internal", "alpha", "zeta"]);
    }

    #[test]
    fn invalid_or_empty_patterns_are_refused_with_the_reason() {
        let e = TopicPattern::new("orders-(").unwrap_err();
        assert!(e.contains("orders-("), "{e}");
        assert!(TopicPattern::new("").is_err());
        // RE2 syntax: no backreferences (java.util.regex has them, RE2/J on the broker not).
        assert!(TopicPattern::new(r"(a)\1").is_err());
        // A pattern whose compiled form is huge fails instead of eating memory.
        assert!(TopicPattern::new("(?:a{1000}){1000}").is_err());
    }
}
