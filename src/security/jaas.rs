//! A parser for `sasl.jaas.config`, the one-line JAAS configuration Java clients carry:
//! `<LoginModuleClass> <flag> key="value" key2=value2;`.
//!
//! It follows `org.apache.kafka.common.security.JaasConfig` (a `StreamTokenizer`): values are
//! quoted with `"` or `'` (backslash escapes as in Java string literals: `\"`, `\\`, `\n`, `\t`,
//! octal) or are bare words; `//` and `/* */` comments are skipped; exactly one login module is
//! allowed, ended by `;`. Option values may be secrets, so neither the parsed form's `Debug` nor
//! any parse error shows a value.

use std::fmt;

use crate::error::{Error, Result};

/// One parsed login module entry.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct JaasConfig {
    /// The login module's Java class name.
    pub login_module: String,
    /// `required`, `requisite`, `sufficient` or `optional`.
    pub flag: String,
    /// Options in the order written.
    pub options: Vec<(String, String)>,
}

impl fmt::Debug for JaasConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let keys: Vec<&str> = self.options.iter().map(|(k, _)| k.as_str()).collect();
        f.debug_struct("JaasConfig")
            .field("login_module", &self.login_module)
            .field("flag", &self.flag)
            .field("option_keys", &keys)
            .finish()
    }
}

impl JaasConfig {
    /// The value of option `key`, if present (the last one wins, as in a Java map).
    pub fn option(&self, key: &str) -> Option<&str> {
        self.options
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Parses one `sasl.jaas.config` value.
    pub fn parse(text: &str) -> Result<JaasConfig> {
        let mut tokens = Tokenizer::new(text);
        let login_module = match tokens.next()? {
            Some(Token::Word(w)) => w,
            _ => return Err(bad("it must start with a login module class name")),
        };
        let flag = match tokens.next()? {
            Some(Token::Word(w)) => w.to_ascii_lowercase(),
            _ => return Err(bad("the login module must be followed by a control flag")),
        };
        if !matches!(
            flag.as_str(),
            "required" | "requisite" | "sufficient" | "optional"
        ) {
            return Err(bad(&format!(
                "control flag `{flag}` is not required, requisite, sufficient or optional"
            )));
        }
        let mut options = Vec::new();
        loop {
            let key = match tokens.next()? {
                Some(Token::Semicolon) => break,
                Some(Token::Word(k)) => k,
                Some(_) => return Err(bad("expected an option name or `;`")),
                None => return Err(bad("it must end with `;`")),
            };
            if tokens.next()? != Some(Token::Equals) {
                return Err(bad(&format!("option `{key}` must be followed by `=`")));
            }
            let value = match tokens.next()? {
                Some(Token::Word(v)) | Some(Token::Quoted(v)) => v,
                _ => return Err(bad(&format!("option `{key}` has no value"))),
            };
            options.push((key, value));
        }
        if tokens.next()?.is_some() {
            return Err(bad("only one login module is allowed"));
        }
        Ok(JaasConfig {
            login_module,
            flag,
            options,
        })
    }
}

fn bad(why: &str) -> Error {
    Error::Config(format!("`sasl.jaas.config` is malformed: {why}"))
}

#[derive(Debug, PartialEq, Eq)]
enum Token {
    Word(String),
    Quoted(String),
    Equals,
    Semicolon,
}

struct Tokenizer<'a> {
    chars: std::iter::Peekable<std::str::Chars<'a>>,
}

impl<'a> Tokenizer<'a> {
    fn new(text: &'a str) -> Self {
        Tokenizer {
            chars: text.chars().peekable(),
        }
    }

    fn is_word_char(c: char) -> bool {
        c.is_alphanumeric() || matches!(c, '.' | '-' | '_' | '$')
    }

    fn next(&mut self) -> Result<Option<Token>> {
        loop {
            let Some(&c) = self.chars.peek() else {
                return Ok(None);
            };
            if c.is_whitespace() {
                self.chars.next();
                continue;
            }
            if c == '/' {
                self.chars.next();
                match self.chars.next() {
                    Some('/') => {
                        for c in self.chars.by_ref() {
                            if c == '\n' {
                                break;
                            }
                        }
                    }
                    Some('*') => {
                        let mut star = false;
                        loop {
                            match self.chars.next() {
                                Some('/') if star => break,
                                Some(c) => star = c == '*',
                                None => return Err(bad("a `/*` comment is not closed")),
                            }
                        }
                    }
                    _ => return Err(bad("unexpected `/`")),
                }
                continue;
            }
            self.chars.next();
            return match c {
                '=' => Ok(Some(Token::Equals)),
                ';' => Ok(Some(Token::Semicolon)),
                '"' | '\'' => self.quoted(c).map(|s| Some(Token::Quoted(s))),
                c if Self::is_word_char(c) => {
                    let mut word = String::from(c);
                    while let Some(&c) = self.chars.peek() {
                        if !Self::is_word_char(c) {
                            break;
                        }
                        word.push(c);
                        self.chars.next();
                    }
                    Ok(Some(Token::Word(word)))
                }
                // The character is not echoed: it may be part of a secret.
                _ => Err(bad("unexpected character outside quotes")),
            };
        }
    }

    /// The rest of a quoted value, after its opening quote.
    fn quoted(&mut self, quote: char) -> Result<String> {
        let mut out = String::new();
        loop {
            let c = self
                .chars
                .next()
                .ok_or_else(|| bad("a quoted value is not closed"))?;
            if c == quote {
                return Ok(out);
            }
            if c != '\\' {
                out.push(c);
                continue;
            }
            let e = self
                .chars
                .next()
                .ok_or_else(|| bad("a quoted value ends in a backslash"))?;
            match e {
                'n' => out.push('\n'),
                't' => out.push('\t'),
                'r' => out.push('\r'),
                'b' => out.push('\u{8}'),
                'f' => out.push('\u{c}'),
                'a' => out.push('\u{7}'),
                'v' => out.push('\u{b}'),
                '0'..='7' => {
                    // Java's StreamTokenizer: up to three octal digits, the first ≤ 3 for three.
                    let mut n = e.to_digit(8).expect("octal digit");
                    let max_digits = if e <= '3' { 2 } else { 1 };
                    for _ in 0..max_digits {
                        match self.chars.peek().and_then(|c| c.to_digit(8)) {
                            Some(d) => {
                                n = n * 8 + d;
                                self.chars.next();
                            }
                            None => break,
                        }
                    }
                    out.push(char::from_u32(n).expect("octal escape ≤ 0o377"));
                }
                other => out.push(other),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_java_style_lines_with_quotes_escapes_and_comments() {
        let j = JaasConfig::parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule required
               username="alice" /* who */ password="p\"a\\ss;w=rd\n" // trailing
               extra=bare-word_1.0 single='it''s';"#,
        );
        // `'it''s'` is two adjacent quoted tokens, which Java rejects too (no `=` after the first).
        assert!(j.is_err());
        let j = JaasConfig::parse(
            r#"org.apache.kafka.common.security.plain.PlainLoginModule Required
               username="alice" /* who */ password="p\"a\\ss;w=rd\n" // trailing
               extra=bare-word_1.0 single='it\'s' oct="\101\7";"#,
        )
        .unwrap();
        assert_eq!(
            j.login_module,
            "org.apache.kafka.common.security.plain.PlainLoginModule"
        );
        assert_eq!(j.flag, "required");
        assert_eq!(j.option("username"), Some("alice"));
        assert_eq!(j.option("password"), Some("p\"a\\ss;w=rd\n"));
        assert_eq!(j.option("extra"), Some("bare-word_1.0"));
        assert_eq!(j.option("single"), Some("it's"));
        assert_eq!(j.option("oct"), Some("A\u{7}"));
        assert_eq!(j.option("missing"), None);
    }

    #[test]
    fn rejects_malformed_lines_without_echoing_values() {
        for text in [
            "",
            "Module",
            "Module bogus;",
            "Module required user=\"x\"",
            "Module required password=\"s3cret",
            "Module required password s3cret;",
            "Module required password=;",
            "Module required; Other required;",
            "Module required password=\"s3cret\" ?;",
        ] {
            let e = JaasConfig::parse(text).unwrap_err();
            assert!(matches!(e, Error::Config(_)), "{text}: {e}");
            assert!(!e.to_string().contains("s3cret"), "{text}: {e}");
        }
    }

    #[test]
    fn debug_shows_option_names_only() {
        let j = JaasConfig::parse("M required username=\"u\" password=\"hunter2\";").unwrap();
        let shown = format!("{j:?}");
        assert!(shown.contains("password"), "{shown}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
