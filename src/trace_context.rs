//! W3C trace context (`traceparent`) carried in record headers, so a consumer's work can be linked
//! to the producer's. Off by default: a producer adds the header only when given a
//! [`TraceContext`] ([`ProducerConfig::trace_context`]), which asks the application's tracing
//! (an OpenTelemetry propagator, say) for the current context at each `send`. A consumer reads it
//! back with [`ConsumerRecord::trace_parent`]. josefk depends on no tracing backend for this.
//!
//! [`ProducerConfig::trace_context`]: crate::producer::ProducerConfig::trace_context
//! [`ConsumerRecord::trace_parent`]: crate::consumer::ConsumerRecord::trace_parent

use std::fmt;
use std::sync::Arc;

/// The record header W3C trace context uses.
pub const TRACEPARENT: &str = "traceparent";

/// A parsed `traceparent` value (W3C Trace Context, version 00): trace id, parent span id and
/// flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceParent {
    /// 16 bytes, not all zero.
    pub trace_id: [u8; 16],
    /// The id of the span that sent the record: 8 bytes, not all zero.
    pub parent_id: [u8; 8],
    /// Trace flags; bit 0 is "sampled".
    pub flags: u8,
}

impl TraceParent {
    /// Parses a `traceparent` value. Version 00 must be exactly `00-<32 hex>-<16 hex>-<2 hex>`;
    /// a later version is read by its first four fields and may carry more after a `-`, as the
    /// specification asks. Lower-case hex only; all-zero ids and version `ff` are invalid.
    pub fn parse(value: &str) -> Option<TraceParent> {
        let b = value.as_bytes();
        if b.len() < 55 || b[2] != b'-' || b[35] != b'-' || b[52] != b'-' {
            return None;
        }
        let version = hex::<1>(&b[0..2])?[0];
        match version {
            0xff => return None,
            0 if b.len() != 55 => return None,
            0 => {}
            _ if b.len() > 55 && b[55] != b'-' => return None,
            _ => {}
        }
        let trace_id = hex::<16>(&b[3..35])?;
        let parent_id = hex::<8>(&b[36..52])?;
        let flags = hex::<1>(&b[53..55])?[0];
        if trace_id == [0; 16] || parent_id == [0; 8] {
            return None;
        }
        Some(TraceParent {
            trace_id,
            parent_id,
            flags,
        })
    }

    /// Whether the sender sampled this trace (flag bit 0).
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// Version 00 text: `00-<trace id>-<parent id>-<flags>`.
impl fmt::Display for TraceParent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("00-")?;
        self.trace_id
            .iter()
            .try_for_each(|x| write!(f, "{x:02x}"))?;
        f.write_str("-")?;
        self.parent_id
            .iter()
            .try_for_each(|x| write!(f, "{x:02x}"))?;
        write!(f, "-{:02x}", self.flags)
    }
}

/// `N` bytes from `2N` lower-case hex digits.
fn hex<const N: usize>(digits: &[u8]) -> Option<[u8; N]> {
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = nibble(pair[0])? << 4 | nibble(pair[1])?;
    }
    Some(out)
}

/// Where a producer gets the current trace context for each record it sends: a function the
/// application supplies (typically reading its OpenTelemetry context). Returning `None` sends the
/// record without a `traceparent` header.
#[derive(Clone)]
pub struct TraceContext(Arc<dyn Fn() -> Option<TraceParent> + Send + Sync>);

impl TraceContext {
    /// A context source calling `current` at each `send`.
    pub fn new(current: impl Fn() -> Option<TraceParent> + Send + Sync + 'static) -> Self {
        TraceContext(Arc::new(current))
    }

    pub(crate) fn current(&self) -> Option<TraceParent> {
        (self.0)()
    }
}

impl fmt::Debug for TraceContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TraceContext(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn the_specification_example_round_trips() {
        let tp = TraceParent::parse(SAMPLE).expect("valid");
        assert_eq!(tp.trace_id[0], 0x4b);
        assert_eq!(tp.parent_id[7], 0xb7);
        assert!(tp.sampled());
        assert_eq!(tp.to_string(), SAMPLE);
    }

    #[test]
    fn invalid_values_are_refused() {
        for bad in [
            "",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
            "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",
        ] {
            assert_eq!(TraceParent::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_later_version_is_read_by_its_first_fields() {
        let later = "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00-what-comes-next";
        let tp = TraceParent::parse(later).expect("future versions are read");
        assert!(!tp.sampled());
        assert_eq!(TraceParent::parse(&later[..55]), Some(tp));
    }
}
