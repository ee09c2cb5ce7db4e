//! The external programs the harness needs, `java` (17+) and `mvn`, and reading
//! the environment. Failures become errors that say how to install what is missing.

use std::path::PathBuf;
use std::process::Command;
use std::sync::OnceLock;

use crate::error::{HarnessError, Result};

/// An environment variable's value, trimmed; `None` when unset or blank.
pub(crate) fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
}

/// Why no usable `java` was found (kept to replay the same error on every call).
#[derive(Clone, Debug)]
enum JavaProblem {
    NotFound(String),
    TooOld(String),
}

/// Finds `java` (`$JAVA_HOME/bin/java`, else `java` on PATH) and checks it is 17+.
pub(crate) fn find_java() -> Result<PathBuf> {
    static FOUND: OnceLock<std::result::Result<PathBuf, JavaProblem>> = OnceLock::new();
    let found = FOUND.get_or_init(|| {
        let java = env_nonempty("JAVA_HOME")
            .map(|h| PathBuf::from(h).join("bin").join("java"))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("java"));
        let out = Command::new(&java).arg("-version").output().map_err(|e| {
            JavaProblem::NotFound(format!("running `{} -version`: {e}", java.display()))
        })?;
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        let first = text.lines().next().unwrap_or("").trim().to_string();
        match parse_java_major(&text) {
            Some(major) if major >= 17 => Ok(java),
            Some(_) => Err(JavaProblem::TooOld(first)),
            None => Err(JavaProblem::NotFound(format!(
                "unrecognised `java -version` output `{first}`"
            ))),
        }
    });
    match found.clone() {
        Ok(java) => Ok(java),
        Err(JavaProblem::TooOld(found)) => Err(HarnessError::JavaTooOld { found }),
        Err(JavaProblem::NotFound(detail)) => Err(HarnessError::JavaNotFound { detail }),
    }
}

/// Major version from `java -version` output: `"17.0.15"` → 17, `"1.8.0_292"` → 8.
pub(crate) fn parse_java_major(version_output: &str) -> Option<u32> {
    let line = version_output.lines().find(|l| l.contains("version"))?;
    let quoted = line.split('"').nth(1)?;
    let mut parts = quoted.split(|c: char| !c.is_ascii_digit());
    let first: u32 = parts.next()?.parse().ok()?;
    if first == 1 {
        parts.next()?.parse().ok()
    } else {
        Some(first)
    }
}

pub(crate) fn check_maven() -> Result<()> {
    match Command::new("mvn").arg("-v").output() {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => Err(HarnessError::MavenNotFound {
            detail: format!("`mvn -v` exited with {}", out.status),
        }),
        Err(e) => Err(HarnessError::MavenNotFound {
            detail: format!("running `mvn -v`: {e}"),
        }),
    }
}

/// Removes ANSI colour sequences, which some Maven setups emit even with `-B`.
pub(crate) fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' && chars.peek() == Some(&'[') {
            chars.next();
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_java_versions() {
        let openjdk17 = "openjdk version \"17.0.15\" 2025-04-15\nOpenJDK Runtime Environment";
        assert_eq!(parse_java_major(openjdk17), Some(17));
        assert_eq!(parse_java_major("java version \"1.8.0_292\""), Some(8));
        assert_eq!(
            parse_java_major("openjdk version \"21\" 2023-09-19"),
            Some(21)
        );
        assert_eq!(parse_java_major("openjdk version \"25-ea\""), Some(25));
        assert_eq!(parse_java_major("nonsense"), None);
    }

    #[test]
    fn strips_colours() {
        assert_eq!(strip_ansi("\u{1b}[0m\u{1b}[1;31mERR\u{1b}[m x"), "ERR x");
    }
}
