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
use crate::output::diagln;
use crate::progress::{records, Progress};
use crate::props::{parse_pairs, Properties};
use crate::stop::Stop;

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

/// With the default delimiter, a line ending `\r\n` (Windows) loses its `\r` too, as Java's
/// console producer (`BufferedReader.readLine`) drops it.
fn strip_line_end(record: &mut Vec<u8>, delimiter: u8) {
    if delimiter == b'\n' && record.last() == Some(&b'\r') {
        record.pop();
    }
}

/// Runs `produce`.
///
/// On SIGINT or SIGTERM it stops reading; the records already read are delivered (flushed) and
/// the producer closed, or, with `--transactional-id`, the open transaction is aborted so
/// read_committed readers are not held up until the broker's transaction timeout.
pub async fn run(args: ProduceArgs, mut props: Properties, quiet: bool, stop: Stop) -> CliResult {
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
    // The thread may stay blocked on a read after a stop; the process ends without it.
    std::thread::spawn(move || {
        let mut reader = BufReader::with_capacity(256 * 1024, input);
        loop {
            let item = read_record(&mut reader, delimiter, max).transpose();
            let Some(mut item) = item else { break };
            if let Ok(record) = &mut item {
                strip_line_end(record, delimiter);
            }
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
    stop.set_up_done();
    let mut progress = Progress::new("produce", quiet);
    let mut run = Sending {
        producer: &producer,
        parser,
        transaction_records: args.transaction_records.filter(|_| transactional),
        pending: VecDeque::new(),
        sent: 0,
        acked: 0,
        in_transaction: 0,
    };
    let mut stopped = None;
    let mut failure: Option<CliError> = None;
    loop {
        let item = tokio::select! {
            // A stop wins over more input: reading ends here.
            biased;
            signal = stop.wait() => {
                stopped = Some(signal);
                break;
            }
            item = rx.recv() => match item {
                Some(item) => item,
                None => break,
            },
        };
        if let Err(e) = run.send(item).await {
            failure = Some(e);
            break;
        }
        progress.tick(run.sent, 0);
    }
    if stopped.is_some() && !transactional && failure.is_none() {
        // What the reader thread has read already is delivered too; nothing more is read.
        rx.close();
        while let Some(item) = rx.recv().await {
            if let Err(e) = run.send(item).await {
                failure = Some(e);
                break;
            }
        }
    }
    let mut aborted = None;
    if transactional && stopped.is_some() && failure.is_none() {
        // Its records were read but the input did not end: the transaction is incomplete.
        aborted = Some(run.in_transaction);
        failure = producer.abort_transaction().await.err().map(CliError::from);
    } else {
        if failure.is_none() {
            failure = run.settle().await.err();
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
                diagln!("josefk: aborting the transaction failed too: {e}");
            }
        }
    }
    let closed = producer.close(Duration::from_secs(30)).await;
    if let Some(e) = failure {
        return Err(e);
    }
    closed?;
    let mut summary = format!(
        "{} acknowledged by topic `{}`",
        records(run.acked),
        args.topic
    );
    if let Some(n) = aborted {
        summary.push_str(&format!(
            "; stopped: the open transaction ({}) was aborted",
            records(n)
        ));
    }
    progress.finish(&summary);
    match stopped {
        Some(signal) => Err(signal.error()),
        None => Ok(()),
    }
}

/// The records sent so far and their outstanding acknowledgements.
struct Sending<'a> {
    producer: &'a Producer,
    parser: RecordParser,
    /// `--transaction-records`, for a transactional producer.
    transaction_records: Option<u64>,
    pending: VecDeque<DeliveryFuture>,
    sent: u64,
    acked: u64,
    in_transaction: u64,
}

impl Sending<'_> {
    /// Parses and sends one input record (committing the transaction when it is full).
    async fn send(&mut self, item: std::io::Result<Vec<u8>>) -> CliResult {
        let bytes =
            item.map_err(|e| CliError::runtime(format!("reading record {}: {e}", self.sent + 1)))?;
        let record = self
            .parser
            .parse(&bytes)
            .map_err(|e| CliError::runtime(format!("record {}: {e}", self.sent + 1)))?;
        self.pending.push_back(self.producer.send(record).await?);
        self.sent += 1;
        self.in_transaction += 1;
        while self.pending.len() > ACK_WINDOW {
            self.pending.pop_front().expect("non-empty").await?;
            self.acked += 1;
        }
        if self.transaction_records == Some(self.in_transaction) {
            self.settle().await?;
            self.producer.commit_transaction().await?;
            self.producer.begin_transaction()?;
            self.in_transaction = 0;
        }
        Ok(())
    }

    /// Awaits every outstanding acknowledgement; the first failure is returned.
    async fn settle(&mut self) -> CliResult {
        while let Some(delivery) = self.pending.pop_front() {
            delivery.await?;
            self.acked += 1;
        }
        Ok(())
    }
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

    #[test]
    fn a_crlf_line_loses_its_cr_as_in_java() {
        let mut input = &b"one\r\ntwo\r\n\r\nin\rside\r"[..];
        let mut got = Vec::new();
        while let Some(mut r) = read_record(&mut input, b'\n', 64).unwrap() {
            strip_line_end(&mut r, b'\n');
            got.push(r);
        }
        assert_eq!(
            got,
            vec![
                b"one".to_vec(),
                b"two".to_vec(),
                vec![],
                b"in\rside".to_vec()
            ]
        );
        // Another delimiter keeps every byte.
        let mut r = b"v\r".to_vec();
        strip_line_end(&mut r, b'\0');
        assert_eq!(r, b"v\r");
    }
}
