//! The bounds pre-check every response frame passes before `kafka-protocol` decodes it.
//!
//! `kafka-protocol` 0.18 reserves `Vec` capacity from array counts read off the wire, so one
//! corrupt count could make it ask for hundreds of gigabytes and abort the process. This module
//! walks the frame first, against josefk's own description of each response
//! ([`super::response_schemas`]), and checks every length and count against the bytes actually
//! left: an array of `n` elements needs at least `n` bytes and each element is walked in turn,
//! strings and byte fields must fit, tagged fields are skipped by their declared size (known ones
//! are walked within that size). Only a frame that passes is handed to `kafka-protocol`, so what it
//! allocates is bounded by a small multiple of the frame, which the connection already capped.
//!
//! The walk touches every field but never the record bytes of Produce/Fetch (skipped by length),
//! so its cost is a fraction of decoding. Trailing bytes after the last field are allowed, as
//! `kafka-protocol` allows them.

use kafka_protocol::messages::ApiKey;

use super::response_schemas::schema;

/// The wire type of one field. Strings, bytes, records and arrays are in their compact forms
/// (unsigned varint length + 1) in flexible versions, as Kafka's generated code does.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    Int8,
    Int16,
    Int32,
    Int64,
    Bool,
    Uuid,
    /// A string; -1 (or compact 0) is null.
    Str,
    /// A byte array; -1 (or compact 0) is null.
    Bytes,
    /// A record set: nullable bytes that are skipped, never walked.
    Records,
    /// A struct embedded in its parent (only tagged ones occur in responses josefk reads).
    Struct(&'static [Field]),
    /// A nullable struct that is not tagged: an int8 marker (-1 null, 1 present), then the
    /// struct (ConsumerGroupHeartbeat's assignment).
    NullableStruct(&'static [Field]),
    /// An array of structs.
    Array(&'static [Field]),
    /// An array of 32-bit integers.
    Int32s,
    /// An array of 8-bit integers (GetTelemetrySubscriptions' compression types).
    Int8s,
    /// An array of (non-null) strings.
    Strs,
}

/// One field of a response or of a struct inside it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Field {
    pub(crate) name: &'static str,
    pub(crate) kind: Kind,
    /// Lowest version the field is in.
    pub(crate) min: i16,
    /// Highest version the field is in.
    pub(crate) max: i16,
    /// From this version on the field may be null (`i16::MAX`: never).
    pub(crate) null_from: i16,
    /// The tag of a tagged field (in flexible versions only).
    pub(crate) tag: Option<u32>,
}

/// Shorthand for the descriptions: a field present in every version, not nullable, not tagged.
pub(crate) const fn f(name: &'static str, kind: Kind) -> Field {
    Field {
        name,
        kind,
        min: 0,
        max: i16::MAX,
        null_from: i16::MAX,
        tag: None,
    }
}

impl Field {
    /// Present from `version` on.
    pub(crate) const fn since(mut self, version: i16) -> Field {
        self.min = version;
        self
    }

    /// Present up to `version`.
    pub(crate) const fn until(mut self, version: i16) -> Field {
        self.max = version;
        self
    }

    /// Nullable from `version` on.
    pub(crate) const fn null_from(mut self, version: i16) -> Field {
        self.null_from = version;
        self
    }

    /// Nullable in every version it has.
    pub(crate) const fn null(self) -> Field {
        self.null_from(0)
    }

    /// A tagged field with this tag.
    pub(crate) const fn tag(mut self, tag: u32) -> Field {
        self.tag = Some(tag);
        self
    }

    pub(crate) fn in_version(&self, version: i16) -> bool {
        (self.min..=self.max).contains(&version)
    }
}

/// One response message: its fields and the first flexible version (KIP-482).
#[derive(Debug)]
pub(crate) struct Schema {
    pub(crate) flexible_from: i16,
    pub(crate) fields: &'static [Field],
}

/// Why a frame failed the pre-check: where (a path of field names) and what.
#[derive(Debug)]
pub struct Violation {
    /// Innermost first while unwinding; reversed for display.
    path: Vec<String>,
    what: String,
}

impl Violation {
    fn new(what: String) -> Violation {
        Violation {
            path: Vec::new(),
            what,
        }
    }

    fn within(mut self, segment: impl Into<String>) -> Violation {
        self.path.push(segment.into());
        self
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut first = true;
        for segment in self.path.iter().rev() {
            if !first && !segment.starts_with('[') {
                f.write_str(".")?;
            }
            f.write_str(segment)?;
            first = false;
        }
        if !first {
            f.write_str(": ")?;
        }
        f.write_str(&self.what)
    }
}

type Walk<T> = std::result::Result<T, Violation>;

/// A cursor over the frame; every read is checked against what is left.
struct Walker<'a> {
    buf: &'a [u8],
    pos: usize,
    version: i16,
    flexible: bool,
}

impl Walker<'_> {
    fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn skip(&mut self, n: usize, what: &str) -> Walk<()> {
        if n > self.left() {
            return Err(Violation::new(format!(
                "{what} of {n} bytes but only {} left",
                self.left()
            )));
        }
        self.pos += n;
        Ok(())
    }

    fn take<const N: usize>(&mut self) -> Walk<[u8; N]> {
        let bytes = self
            .buf
            .get(self.pos..self.pos + N)
            .ok_or_else(|| Violation::new(format!("{N} bytes needed, {} left", self.left())))?;
        self.pos += N;
        Ok(bytes.try_into().expect("slice of N bytes"))
    }

    /// An unsigned varint of at most 5 bytes that fits in 32 bits.
    fn uvarint(&mut self) -> Walk<u32> {
        let mut value = 0u32;
        for i in 0..5 {
            let [b] = self.take::<1>()?;
            if i == 4 && b > 0x0f {
                return Err(Violation::new("unsigned varint longer than 32 bits".into()));
            }
            value |= u32::from(b & 0x7f) << (7 * i);
            if b < 0x80 {
                return Ok(value);
            }
        }
        unreachable!("the fifth byte either ends the varint or is rejected")
    }

    /// A length or count: compact (varint, 0 = null) in flexible versions, else `i16`/`i32` with
    /// -1 for null. `None` is null; any other negative is an error.
    fn length(&mut self, wide: bool) -> Walk<Option<usize>> {
        let n = if self.flexible {
            i64::from(self.uvarint()?) - 1
        } else if wide {
            i64::from(i32::from_be_bytes(self.take()?))
        } else {
            i64::from(i16::from_be_bytes(self.take()?))
        };
        match n {
            -1 => Ok(None),
            n if n < 0 => Err(Violation::new(format!("negative length {n}"))),
            n => Ok(Some(n as usize)),
        }
    }

    fn fields(&mut self, fields: &'static [Field]) -> Walk<()> {
        for field in fields {
            if field.tag.is_none() && field.in_version(self.version) {
                self.field(field.kind).map_err(|v| v.within(field.name))?;
            }
        }
        if self.flexible {
            self.tagged_fields(fields)?;
        }
        Ok(())
    }

    fn field(&mut self, kind: Kind) -> Walk<()> {
        match kind {
            Kind::Int8 | Kind::Bool => self.skip(1, "int8"),
            Kind::Int16 => self.skip(2, "int16"),
            Kind::Int32 => self.skip(4, "int32"),
            Kind::Int64 => self.skip(8, "int64"),
            Kind::Uuid => self.skip(16, "uuid"),
            Kind::Str => match self.length(false)? {
                Some(n) => self.skip(n, "string"),
                None => Ok(()),
            },
            Kind::Bytes | Kind::Records => match self.length(true)? {
                Some(n) => self.skip(n, "byte array"),
                None => Ok(()),
            },
            Kind::Struct(fields) => self.fields(fields),
            Kind::NullableStruct(fields) => match i8::from_be_bytes(self.take()?) {
                -1 => Ok(()),
                1 => self.fields(fields),
                other => Err(Violation::new(format!(
                    "nullable struct marker {other} (not -1 or 1)"
                ))),
            },
            Kind::Array(fields) => {
                let count = self.count()?;
                for i in 0..count {
                    self.fields(fields)
                        .map_err(|v| v.within(format!("[{i}]")))?;
                }
                Ok(())
            }
            Kind::Int8s => {
                let count = self.count()?;
                self.skip(count, "int8 array")
            }
            Kind::Int32s => {
                let count = self.count()?;
                self.skip(count.saturating_mul(4), "int32 array")
            }
            Kind::Strs => {
                let count = self.count()?;
                for i in 0..count {
                    self.field(Kind::Str)
                        .map_err(|v| v.within(format!("[{i}]")))?;
                }
                Ok(())
            }
        }
    }

    /// An array count, which may not exceed the bytes left (every element takes at least one).
    fn count(&mut self) -> Walk<usize> {
        let Some(count) = self.length(true)? else {
            return Ok(0);
        };
        if count > self.left() {
            return Err(Violation::new(format!(
                "array count {count} exceeds the {} bytes left",
                self.left()
            )));
        }
        Ok(count)
    }

    /// The tagged-field section: known tags are walked within their declared size, unknown ones
    /// skipped by it.
    fn tagged_fields(&mut self, fields: &'static [Field]) -> Walk<()> {
        let count = self.uvarint()? as usize;
        if count > self.left() {
            return Err(Violation::new(format!(
                "{count} tagged fields but only {} bytes left",
                self.left()
            )));
        }
        for _ in 0..count {
            let tag = self.uvarint()?;
            let size = self.uvarint()? as usize;
            let start = self.pos;
            self.skip(size, "tagged field")?;
            let known = fields
                .iter()
                .find(|f| f.tag == Some(tag) && f.in_version(self.version));
            if let Some(field) = known {
                let mut inner = Walker {
                    buf: &self.buf[..start + size],
                    pos: start,
                    version: self.version,
                    flexible: true,
                };
                inner.field(field.kind).map_err(|v| v.within(field.name))?;
                if inner.pos != start + size {
                    return Err(Violation::new(format!(
                        "tagged field of {size} bytes holds {} bytes of content",
                        inner.pos - start
                    ))
                    .within(field.name));
                }
            }
        }
        Ok(())
    }
}

/// Checks a response header (`header_version` 0: correlation id; 1: plus tagged fields) and the
/// body after it against `api`'s description at `version`. Returns the bytes the walk consumed.
pub fn check_response(api: ApiKey, version: i16, header_version: i16, frame: &[u8]) -> Walk<usize> {
    let mut walker = Walker {
        buf: frame,
        pos: 0,
        version,
        flexible: header_version >= 1,
    };
    walker
        .skip(4, "correlation id")
        .map_err(|v| v.within("header"))?;
    if walker.flexible {
        walker.tagged_fields(&[]).map_err(|v| v.within("header"))?;
    }
    let schema = schema(api)
        .ok_or_else(|| Violation::new(format!("josefk has no description of {api:?} responses")))?;
    walker.flexible = version >= schema.flexible_from;
    walker.fields(schema.fields)?;
    Ok(walker.pos)
}

#[cfg(any(test, feature = "fuzzing"))]
pub mod sample;

#[cfg(test)]
mod tests;
