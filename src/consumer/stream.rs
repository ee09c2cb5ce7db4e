//! [`Consumer::stream`]: the consumer as a `futures::Stream` of records, one at a time.
//!
//! Each item is taken from the consumer with a limit of one record, so the stream never holds
//! records of its own: dropping it (or the task polling it) between items loses nothing, and
//! positions stand right after the last record it yielded. Dropping it during an item is a
//! dropped `poll` (see the module docs of [`consumer`](super)).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_core::Stream;

use super::{Consumer, ConsumerRecord};
use crate::error::Result;

/// How long one inner poll waits before looping (nothing is returned for an empty poll).
const INNER_POLL: Duration = Duration::from_secs(1);

type NextRecord<'a> =
    Pin<Box<dyn Future<Output = (&'a mut Consumer, Result<ConsumerRecord>)> + Send + 'a>>;

/// The stream returned by [`Consumer::stream`]. It ends never: an error is an item, and the
/// stream goes on after it (stop on the errors your application cannot handle).
pub struct RecordStream<'a> {
    idle: Option<&'a mut Consumer>,
    next: Option<NextRecord<'a>>,
}

impl std::fmt::Debug for RecordStream<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecordStream")
            .field("waiting", &self.next.is_some())
            .finish()
    }
}

impl Consumer {
    /// The records as a `futures::Stream`, one record per item, with the consumer's settings
    /// (group membership, commits, isolation) applying as for [`Consumer::poll`]. Under
    /// [`CommitMode::BeforeProcessing`](super::CommitMode::BeforeProcessing) that is one commit
    /// per record: use `poll` for batches.
    ///
    /// ```no_run
    /// use josefk::consumer::{Consumer, ConsumerConfig};
    /// # async fn demo() -> josefk::Result<()> {
    /// # let mut consumer = Consumer::connect(ConsumerConfig::new("k:9092").group_id("g")).await?;
    /// # consumer.subscribe(&["orders"])?;
    /// // Any `futures::Stream` adapter works (`StreamExt::next` from `futures`); by hand:
    /// use futures_core::Stream;
    /// let mut stream = consumer.stream();
    /// let next = std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await;
    /// if let Some(record) = next {
    ///     let record = record?;
    ///     println!("{}@{}", record.partition, record.offset);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn stream(&mut self) -> RecordStream<'_> {
        RecordStream {
            idle: Some(self),
            next: None,
        }
    }
}

impl RecordStream<'_> {
    /// The consumer behind the stream, to commit, seek or pause between items.
    ///
    /// `None` only while an item is in progress: a `next()` was polled and dropped before it
    /// finished (in a `select!`, say). The consumer comes back when the stream is polled again
    /// and that item is ready.
    ///
    /// ```no_run
    /// use josefk::consumer::{Consumer, ConsumerConfig};
    /// # async fn demo(mut consumer: Consumer) -> josefk::Result<()> {
    /// use futures_core::Stream;
    /// let mut stream = consumer.stream();
    /// while let Some(record) =
    ///     std::future::poll_fn(|cx| std::pin::Pin::new(&mut stream).poll_next(cx)).await
    /// {
    ///     println!("{}", record?.offset);
    ///     if let Some(consumer) = stream.consumer() {
    ///         consumer.commit().await?;
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn consumer(&mut self) -> Option<&mut Consumer> {
        self.idle.as_deref_mut()
    }
}

impl<'a> Stream for RecordStream<'a> {
    type Item = Result<ConsumerRecord>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.next.is_none() {
            let consumer = this.idle.take().expect("idle when no item is pending");
            this.next = Some(Box::pin(async move {
                loop {
                    match consumer.poll_limited(INNER_POLL, 1).await {
                        Ok(mut records) => {
                            if let Some(record) = records.pop() {
                                return (consumer, Ok(record));
                            }
                        }
                        Err(e) => return (consumer, Err(e)),
                    }
                }
            }));
        }
        let next = this.next.as_mut().expect("just set");
        match next.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready((consumer, item)) => {
                this.next = None;
                this.idle = Some(consumer);
                Poll::Ready(Some(item))
            }
        }
    }
}
