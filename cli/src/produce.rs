//! `josefk produce`: records read from stdin or a file, split by a delimiter byte, optionally
//! parsed into headers, key and value, written by an idempotent (or transactional) producer.
//!
//! Input is read on its own thread and handed over through a bounded channel, and acknowledgements
//! are awaited behind a bounded window, so memory stays bounded however large the input.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read};
use std::time::Duration;

use bytes::Bytes;
use josefk::producer::{DeliveryFuture, Producer};
use josefk::{Header, ProducerRecord};
use tokio::sync::mpsc;

use crate::args::ProduceArgs;
use crate::exit::{CliError, CliResult};
use crate::format::unescape;
use crate::progress::Progress;
use crate::props::{parse_pairs, Properties};

/// Acknowledgements awaited behind at most this many records sent.
const ACK_WINDOW: usize = 50_000;

/// How one input record is cut into headers, key and value.
#[derive(Debug, Clone)]
pub struct RecordParser {
    topic: String,
    partition: Option<i32>,
    key_delimiter: Option<Vec<u8>>,
    headers: Option<HeaderSyntax>,
    static_headers: Vec<Header>,
    null_marker: Option<Vec<u8>>,
}

#[derive(Debug, Clone)]
struct HeaderSyntax {
    end: Vec<u8>,
    separator: Vec<u8>,
    key_separator: Vec<u8>,
}

impl RecordParser {
    /// From the command's options; bad escapes are usage errors.
    pub fn new(args: &ProduceArgs) -> CliResult<RecordParser> {
        let esc = |s: &str, what: &str| {
            let bytes = unescape(s).map_err(|e| CliError::usage(format!("{what}: {e}")))?;
            if bytes.is_empty() {
                return Err(CliError::usage(format!("{what} must not be empty")));
            }
            Ok(bytes)
        };
        Ok(RecordParser {
            topic: args.topic.clone(),
            partition: args.partition,
            key_delimiter: args
                .key_delimiter
                .as_deref()
                .map(|d| esc(d, "--key-delimiter"))
                .transpose()?,
            headers: if args.parse_headers {
                Some(HeaderSyntax {
                    end: esc(&args.headers_delimiter, "--headers-delimiter")?,
                    separator: esc(&args.headers_separator, "--headers-separator")?,
                    key_separator: esc(&args.headers_key_separator, "--headers-key-separator")?,
                })
            } else {
                None
            },
            static_headers: parse_pairs(&args.headers, "--header")?
                .into_iter()
                .map(|(k, v)| Header::new(k, v))
                .collect(),
            null_marker: args.null_marker.as_ref().map(|m| m.as_bytes().to_vec()),
        })
    }

    /// Cuts one input record; the error names what is missing.
    pub fn parse(&self, input: &[u8]) -> Result<ProducerRecord, String> {
        let mut rest = input;
        let mut headers = self.static_headers.clone();
        if let Some(syntax) = &self.headers {
            let (head, tail) = split_once(rest, &syntax.end)
                .ok_or("no headers delimiter (--parse-headers expects headers first)")?;
            rest = tail;
            if !head.is_empty() {
                for h in split_all(head, &syntax.separator) {
                    let header = match split_once(h, &syntax.key_separator) {
                        Some((k, v)) => Header::new(utf8(k)?, Bytes::copy_from_slice(v)),
                        None => Header::null(utf8(h)?),
                    };
                    headers.push(header);
                }
            }
        }
        let (key, value) = match &self.key_delimiter {
            Some(d) => {
                let (k, v) = split_once(rest, d).ok_or("no key delimiter")?;
                (Some(k), v)
            }
            None => (None, rest),
        };
        let nullable = |b: &[u8]| -> Option<Bytes> {
            match &self.null_marker {
                Some(m) if m == b => None,
                _ => Some(Bytes::copy_from_slice(b)),
            }
        };
        Ok(ProducerRecord {
            topic: self.topic.clone(),
            partition: self.partition,
            key: key.and_then(nullable),
            value: nullable(value),
            headers,
            timestamp: None,
        })
    }
}

fn utf8(b: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(b).map_err(|_| "a header key is not UTF-8".to_owned())
}

fn split_once<'a>(s: &'a [u8], sep: &[u8]) -> Option<(&'a [u8], &'a [u8])> {
    s.windows(sep.len())
        .position(|w| w == sep)
        .map(|i| (&s[..i], &s[i + sep.len()..]))
}

fn split_all<'a>(mut s: &'a [u8], sep: &'a [u8]) -> impl Iterator<Item = &'a [u8]> + 'a {
    let mut done = false;
    std::iter::from_fn(move || {
        if done {
            return None;
        }
        match split_once(s, sep) {
            Some((part, rest)) => {
                s = rest;
                Some(part)
            }
            None => {
                done = true;
                Some(s)
            }
        }
    })
}

/// Reads records ending with `delimiter` (the last may lack it), each at most `max` bytes.
pub fn read_record(
    reader: &mut impl BufRead,
    delimiter: u8,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    let mut record = Vec::new();
    loop {
        let buf = reader.fill_buf()?;
        if buf.is_empty() {
            return Ok((!record.is_empty()).then_some(record));
        }
        let (take, done) = match buf.iter().position(|b| *b == delimiter) {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        if record.len() + take > max {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!("a record is longer than --max-record-bytes ({max})"),
            ));
        }
        record.extend_from_slice(&buf[..take]);
        reader.consume(take + usize::from(done));
        if done {
            return Ok(Some(record));
        }
    }
}

/// Runs `produce`.
pub async fn run(args: ProduceArgs, mut props: Properties, quiet: bool) -> CliResult {
    for (key, value) in [
        ("acks", &args.acks),
        ("compression.type", &args.compression),
        ("transactional.id", &args.transactional_id),
        (
            "enable.idempotence",
            &args.idempotence.map(|b| b.to_string()),
        ),
    ] {
        if let Some(v) = value {
            props.set(key, v);
        }
    }
    let config = props.producer()?;
    let transactional = config.transactional_id.is_some();
    if args.transaction_records.is_some() && !transactional {
        return Err(CliError::usage(
            "--transaction-records needs --transactional-id",
        ));
    }
    let delimiter = match unescape(&args.delimiter).map_err(CliError::usage)?[..] {
        [b] => b,
        _ => return Err(CliError::usage("--delimiter must be exactly one byte")),
    };
    let parser = RecordParser::new(&args)?;
    let input: Box<dyn Read + Send> = match &args.file {
        Some(path) => Box::new(
            std::fs::File::open(path)
                .map_err(|e| CliError::usage(format!("cannot open {}: {e}", path.display())))?,
        ),
        None => Box::new(std::io::stdin()),
    };
    let (tx, mut rx) = mpsc::channel::<std::io::Result<Vec<u8>>>(1024);
    let max = args.max_record_bytes;
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(256 * 1024, input);
        loop {
            let item = read_record(&mut reader, delimiter, max).transpose();
            let Some(item) = item else { break };
            let failed = item.is_err();
            if tx.blocking_send(item).is_err() || failed {
                break;
            }
        }
    });

    check_topic(&config.client, &args.topic, args.partition).await?;
    let producer = Producer::connect(config).await?;
    if transactional {
        producer.init_transactions().await?;
        producer.begin_transaction()?;
    }
    let mut progress = Progress::new("produce", quiet);
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut sent: u64 = 0;
    let mut acked: u64 = 0;
    let mut in_transaction: u64 = 0;
    let mut failure: Option<CliError> = None;
    while let Some(item) = rx.recv().await {
        let bytes = match item {
            Ok(b) => b,
            Err(e) => {
                failure = Some(CliError::runtime(format!(
                    "reading record {}: {e}",
                    sent + 1
                )));
                break;
            }
        };
        let record = match parser.parse(&bytes) {
            Ok(r) => r,
            Err(e) => {
                failure = Some(CliError::runtime(format!("record {}: {e}", sent + 1)));
                break;
            }
        };
        match producer.send(record).await {
            Ok(delivery) => pending.push_back(delivery),
            Err(e) => {
                failure = Some(e.into());
                break;
            }
        }
        sent += 1;
        in_transaction += 1;
        while pending.len() > ACK_WINDOW {
            if let Err(e) = pending.pop_front().expect("non-empty").await {
                failure = Some(e.into());
                break;
            }
            acked += 1;
        }
        if failure.is_some() {
            break;
        }
        if transactional && args.transaction_records == Some(in_transaction) {
            if let Err(e) = settle(&mut pending, &mut acked).await {
                failure = Some(e);
                break;
            }
            producer.commit_transaction().await?;
            producer.begin_transaction()?;
            in_transaction = 0;
        }
        progress.tick(sent, 0);
    }
    if failure.is_none() {
        failure = settle(&mut pending, &mut acked).await.err();
    }
    if transactional && failure.is_none() {
        failure = producer
            .commit_transaction()
            .await
            .err()
            .map(CliError::from);
    }
    if transactional && failure.is_some() {
        // The failure that made the transaction abort is the one to report.
        if let Err(e) = producer.abort_transaction().await {
            eprintln!("josefk: aborting the transaction failed too: {e}");
        }
    }
    let closed = producer.close(Duration::from_secs(30)).await;
    if let Some(e) = failure {
        return Err(e);
    }
    closed?;
    progress.finish(&format!(
        "{acked} records acknowledged by topic `{}`",
        args.topic
    ));
    Ok(())
}

/// Fails at once, naming the topic, when it (or the partition) does not exist: the producer
/// itself would wait `max.block.ms` for it to appear.
pub async fn check_topic(
    client: &josefk::ClientConfig,
    topic: &str,
    partition: Option<i32>,
) -> CliResult {
    let admin = josefk::admin::Admin::connect(client.clone()).await?;
    let described = admin.describe_topics(&[topic]).await?;
    let count = described[0].partitions.len();
    match partition {
        Some(p) if p < 0 || p as usize >= count => Err(CliError::usage(format!(
            "topic `{topic}` has {count} partitions; there is no partition {p}"
        ))),
        _ => Ok(()),
    }
}

/// Awaits every outstanding acknowledgement; the first failure is returned.
async fn settle(pending: &mut VecDeque<DeliveryFuture>, acked: &mut u64) -> CliResult {
    while let Some(delivery) = pending.pop_front() {
        delivery.await?;
        *acked += 1;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ProduceArgs {
        use clap::Parser;
        let mut argv = vec!["josefk", "produce", "-t", "t"];
        argv.extend_from_slice(extra);
        match crate::args::Cli::parse_from(argv).command {
            crate::args::Command::Produce(a) => a,
            _ => unreachable!(),
        }
    }

    #[test]
    fn headers_key_and_value_are_cut_at_the_first_delimiters() {
        let p = RecordParser::new(&args(&[
            "--parse-headers",
            "-K",
            ":",
            "-H",
            "s=1",
            "--null-marker",
            "NULL",
        ]))
        .unwrap();
        let r = p.parse(b"a:1,b,c:x:y\tk:v:w").unwrap();
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"v:w"[..]));
        assert_eq!(
            r.headers,
            vec![
                Header::new("s", "1"),
                Header::new("a", "1"),
                Header::null("b"),
                Header::new("c", "x:y")
            ]
        );
        let r = p.parse(b"\tNULL:NULL").unwrap();
        assert_eq!((r.key, r.value), (None, None));
        assert!(p.parse(b"no-tab").unwrap_err().contains("headers"));
        assert!(p.parse(b"\tno-key").unwrap_err().contains("key"));
    }

    #[test]
    fn records_are_read_up_to_the_limit() {
        let mut input = &b"one\ntwo\n\nlast"[..];
        let mut got = Vec::new();
        while let Some(r) = read_record(&mut input, b'\n', 8).unwrap() {
            got.push(r);
        }
        assert_eq!(
            got,
            vec![b"one".to_vec(), b"two".to_vec(), vec![], b"last".to_vec()]
        );
        let mut long = &b"0123456789\n"[..];
        assert!(read_record(&mut long, b'\n', 8).is_err());
    }
}
