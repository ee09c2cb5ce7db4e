//! Sample response bodies written from josefk's descriptions, for the conformance test (which
//! checks `kafka-protocol` decodes and re-encodes them byte for byte) and as fuzzing seeds.

use kafka_protocol::messages::ApiKey;

use super::{Field, Kind};
use crate::protocol::response_schemas::schema;

/// How a sample is filled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fill {
    /// Two elements in every array, nullable fields set, every known tagged field present (with
    /// values that differ from its default, so an encoder writes it back), and two bytes of
    /// garbage under every tag below 8 the description does not know in any version and under
    /// tag 90: a decoder that knows one of those tags fails or reads it differently.
    Full,
    /// Like `Full`, but the tagged field of this name declares one byte more than its content
    /// (a zero). A decoder that knows the tag reads the content and then misreads the padding;
    /// one that does not keeps the bytes as an unknown tag and writes them back unchanged.
    Padded(&'static str),
    /// Nullable fields null, one element in other arrays, no tagged fields.
    Nulls,
}

/// Tags below this that a struct does not describe get garbage in a `Full` sample.
const PROBED_TAGS: u32 = 8;

/// A tag no response defines.
const UNKNOWN_TAG: u32 = 90;

struct Writer {
    out: Vec<u8>,
    version: i16,
    flexible: bool,
    fill: Fill,
}

impl Writer {
    fn uvarint(&mut self, mut v: u32) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    /// A length (or -1 for null) in the form the version uses.
    fn length(&mut self, n: i32, wide: bool) {
        if self.flexible {
            self.uvarint((n + 1) as u32);
        } else if wide {
            self.out.extend_from_slice(&n.to_be_bytes());
        } else {
            self.out.extend_from_slice(&(n as i16).to_be_bytes());
        }
    }

    fn fields(&mut self, fields: &[Field]) {
        for field in fields {
            if field.tag.is_none() && field.in_version(self.version) {
                self.field(field);
            }
        }
        if !self.flexible {
            return;
        }
        if self.fill == Fill::Nulls {
            self.uvarint(0);
            return;
        }
        let known: Vec<&Field> = fields
            .iter()
            .filter(|f| f.tag.is_some() && f.in_version(self.version))
            .collect();
        let mut tags: Vec<(u32, Vec<u8>)> = Vec::new();
        for field in &known {
            let outer = std::mem::take(&mut self.out);
            self.field(field);
            let mut content = std::mem::replace(&mut self.out, outer);
            if self.fill == Fill::Padded(field.name) {
                content.push(0);
            }
            tags.push((field.tag.expect("tagged"), content));
        }
        for tag in (0..PROBED_TAGS).chain([UNKNOWN_TAG]) {
            // A tag described for other versions only is left out: kafka-protocol refuses it.
            if !fields.iter().any(|f| f.tag == Some(tag)) {
                tags.push((tag, vec![0xab, 0xcd]));
            }
        }
        tags.sort_by_key(|(tag, _)| *tag);
        self.uvarint(tags.len() as u32);
        for (tag, content) in tags {
            self.uvarint(tag);
            self.uvarint(content.len() as u32);
            self.out.extend_from_slice(&content);
        }
    }

    fn field(&mut self, field: &Field) {
        let null = self.fill == Fill::Nulls && self.version >= field.null_from;
        match field.kind {
            Kind::Int8 => self.out.push(7),
            Kind::Bool => self.out.push(1),
            Kind::Int16 => self.out.extend_from_slice(&7i16.to_be_bytes()),
            Kind::Int32 => self.out.extend_from_slice(&7i32.to_be_bytes()),
            Kind::Int64 => self.out.extend_from_slice(&7i64.to_be_bytes()),
            Kind::Uuid => self.out.extend_from_slice(&[0x5a; 16]),
            Kind::Str if null => self.length(-1, false),
            Kind::Str => {
                self.length(2, false);
                self.out.extend_from_slice(b"ab");
            }
            Kind::Bytes | Kind::Records if null => self.length(-1, true),
            Kind::Bytes | Kind::Records => {
                self.length(3, true);
                self.out.extend_from_slice(&[1, 2, 3]);
            }
            Kind::Struct(fields) => self.fields(fields),
            Kind::NullableStruct(_) if null => self.out.push(0xff),
            Kind::NullableStruct(fields) => {
                self.out.push(1);
                self.fields(fields);
            }
            Kind::Array(_) | Kind::Int8s | Kind::Int32s | Kind::Strs if null => {
                self.length(-1, true)
            }
            Kind::Array(fields) => {
                let n = if self.fill == Fill::Nulls { 1 } else { 2 };
                self.length(n, true);
                for _ in 0..n {
                    self.fields(fields);
                }
            }
            Kind::Int8s => {
                self.length(2, true);
                self.out.extend_from_slice(&[4, 1]);
            }
            Kind::Int32s => {
                self.length(2, true);
                self.out.extend_from_slice(&7i32.to_be_bytes());
                self.out.extend_from_slice(&8i32.to_be_bytes());
            }
            Kind::Strs => {
                self.length(2, true);
                for s in [&b"ab"[..], b"cde"] {
                    self.length(s.len() as i32, false);
                    self.out.extend_from_slice(s);
                }
            }
        }
    }
}

/// A response body (no header) for `api` at `version`, if josefk describes `api`.
pub fn sample_body(api: ApiKey, version: i16, fill: Fill) -> Option<Vec<u8>> {
    let schema = schema(api)?;
    let mut writer = Writer {
        out: Vec::new(),
        version,
        flexible: version >= schema.flexible_from,
        fill,
    };
    writer.fields(schema.fields);
    Some(writer.out)
}
