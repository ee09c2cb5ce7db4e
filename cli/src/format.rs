//! How consumed records are printed: kcat-style templates (`%t %p %o %k %v %h %T ...`) compiled
//! once, and JSON lines. Also the backslash escapes shared with `produce`'s delimiters.

use std::io::Write;

use josefk::consumer::ConsumerRecord;

/// One piece of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Piece {
    Text(Vec<u8>),
    Topic,
    Partition,
    Offset,
    Key,
    Value,
    Headers,
    Timestamp,
    KeyLength,
    ValueLength,
}

/// A compiled `--format` template.
#[derive(Debug, Clone)]
pub struct Template {
    pieces: Vec<Piece>,
    null_marker: Vec<u8>,
}

impl Template {
    /// Compiles `format`; an unknown `%x` is an error naming it.
    pub fn parse(format: &str, null_marker: &str) -> Result<Template, String> {
        let format = unescape(format)?;
        let mut pieces = Vec::new();
        let mut text = Vec::new();
        let mut bytes = format.iter().copied();
        while let Some(b) = bytes.next() {
            if b != b'%' {
                text.push(b);
                continue;
            }
            let piece = match bytes.next() {
                Some(b'%') => {
                    text.push(b'%');
                    continue;
                }
                Some(b't') => Piece::Topic,
                Some(b'p') => Piece::Partition,
                Some(b'o') => Piece::Offset,
                Some(b'k') => Piece::Key,
                Some(b'v') => Piece::Value,
                Some(b'h') => Piece::Headers,
                Some(b'T') => Piece::Timestamp,
                Some(b'K') => Piece::KeyLength,
                Some(b'S') => Piece::ValueLength,
                Some(other) => {
                    return Err(format!(
                        "unknown format token `%{}` (known: %t %p %o %k %v %h %T %K %S %%)",
                        other as char
                    ))
                }
                None => return Err("format ends with a lone `%`".into()),
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text)));
            }
            pieces.push(piece);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template {
            pieces,
            null_marker: null_marker.as_bytes().to_vec(),
        })
    }

    /// Writes one record.
    pub fn write(&self, out: &mut impl Write, r: &ConsumerRecord) -> std::io::Result<()> {
        for piece in &self.pieces {
            match piece {
                Piece::Text(t) => out.write_all(t)?,
                Piece::Topic => out.write_all(r.topic.as_bytes())?,
                Piece::Partition => write!(out, "{}", r.partition)?,
                Piece::Offset => write!(out, "{}", r.offset)?,
                Piece::Key => out.write_all(r.key.as_deref().unwrap_or(&self.null_marker))?,
                Piece::Value => out.write_all(r.value.as_deref().unwrap_or(&self.null_marker))?,
                Piece::Headers => {
                    for (i, h) in r.headers.to_vec().iter().enumerate() {
                        if i > 0 {
                            out.write_all(b",")?;
                        }
                        out.write_all(h.key.as_bytes())?;
                        out.write_all(b"=")?;
                        out.write_all(h.value.as_deref().unwrap_or(&self.null_marker))?;
                    }
                }
                Piece::Timestamp => write!(out, "{}", r.timestamp)?,
                Piece::KeyLength => match &r.key {
                    Some(k) => write!(out, "{}", k.len())?,
                    None => out.write_all(b"-1")?,
                },
                Piece::ValueLength => match &r.value {
                    Some(v) => write!(out, "{}", v.len())?,
                    None => out.write_all(b"-1")?,
                },
            }
        }
        Ok(())
    }
}

/// Writes one record as a JSON object and a newline. Bytes that are not UTF-8 are replaced
/// (U+FFFD); null keys, values and header values are JSON `null`.
pub fn write_json(out: &mut impl Write, r: &ConsumerRecord) -> std::io::Result<()> {
    let mut line = String::with_capacity(128);
    line.push_str("{\"topic\":");
    json_string(&mut line, &r.topic);
    line.push_str(&format!(
        ",\"partition\":{},\"offset\":{},\"timestamp\":{},\"key\":",
        r.partition, r.offset, r.timestamp
    ));
    json_bytes(&mut line, r.key.as_deref());
    line.push_str(",\"value\":");
    json_bytes(&mut line, r.value.as_deref());
    line.push_str(",\"headers\":[");
    for (i, h) in r.headers.to_vec().iter().enumerate() {
        if i > 0 {
            line.push(',');
        }
        line.push_str("{\"key\":");
        json_string(&mut line, &h.key);
        line.push_str(",\"value\":");
        json_bytes(&mut line, h.value.as_deref());
        line.push('}');
    }
    line.push_str("]}\n");
    out.write_all(line.as_bytes())
}

fn json_bytes(out: &mut String, bytes: Option<&[u8]>) {
    match bytes {
        Some(b) => json_string(out, &String::from_utf8_lossy(b)),
        None => out.push_str("null"),
    }
}

/// Appends `s` as a JSON string: quotes, backslashes and control characters escaped (control
/// characters as `\uXXXX` with upper-case hex, as Java's Jackson writes them, which the
/// verifiable tools must match).
pub(crate) fn json_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = std::fmt::Write::write_fmt(out, format_args!("\\u{:04X}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Resolves the backslash escapes `\n \t \r \0 \\` of a command-line delimiter or template;
/// any other backslash is an error (so a typo is not silently taken literally).
pub fn unescape(s: &str) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        out.push(match bytes.next() {
            Some(b'n') => b'\n',
            Some(b't') => b'\t',
            Some(b'r') => b'\r',
            Some(b'0') => 0,
            Some(b'\\') => b'\\',
            Some(other) => {
                return Err(format!(
                    "unknown escape `\\{}` in `{s}` (known: \\n \\t \\r \\0 \\\\)",
                    other as char
                ))
            }
            None => return Err(format!("`{s}` ends with a lone backslash")),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_and_escapes() {
        let t = Template::parse("%t/%p@%o %k=%v %%\\t%K\\n", "NULL").unwrap();
        assert_eq!(t.pieces.len(), 12);
        assert!(Template::parse("%x", "").unwrap_err().contains("%x"));
        assert!(unescape("a\\q").is_err());
        assert_eq!(unescape("\\t\\n\\\\").unwrap(), b"\t\n\\");
    }

    #[test]
    fn json_escapes_control_characters() {
        let mut s = String::new();
        json_string(&mut s, "a\"b\\c\nd\u{1}\u{1f}");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001\\u001F\"");
    }
}
