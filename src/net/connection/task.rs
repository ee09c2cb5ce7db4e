//! The connection task: the only code that reads or writes the socket once set up. Requests come
//! in over the channel, go out pipelined in order, and each answer is matched to the oldest
//! request in flight; failures end the task as described in the parent module.

use super::reader::FrameReader;
use super::*;

/// A request on the wire (or being written), waiting for its response.
struct InFlight {
    correlation_id: i32,
    api: ApiKey,
    /// When the connection task took the request (request latency starts here).
    accepted: Instant,
    deadline: Instant,
    timeout: Duration,
    /// `None` for the connection's own re-authentication requests, answered inside the task.
    reply: Option<oneshot::Sender<Result<Bytes>>>,
}

/// A frame waiting to be written.
struct PendingWrite {
    frame: Bytes,
    /// Some bytes of the frame were handed to the stream.
    started: bool,
    /// Set only for requests that expect no response (acks=0 Produce). A request that expects one
    /// is timed through its `InFlight` entry, from the moment it is taken.
    no_answer: Option<NoAnswer>,
}

/// A request that expects no response: answered once its last byte is written.
struct NoAnswer {
    correlation_id: i32,
    api: ApiKey,
    /// A broker that stops reading (hung, stopped) leaves a write pending forever without
    /// failing it: past this deadline the connection is broken, as for a request timeout.
    deadline: Instant,
    timeout: Duration,
    reply: oneshot::Sender<Result<Bytes>>,
}

/// Why the connection task stopped.
enum Closed {
    /// All handles were dropped and nothing was left in flight.
    Finished,
    /// [`Connection::close`]: stop writing at once.
    Stopped,
    /// I/O error or EOF: everything in flight has an unknown outcome.
    Broken(Error),
    /// The response to the oldest request in flight broke the protocol (over the size cap, wrong
    /// correlation id): that request gets this error, the rest have an unknown outcome.
    Violation(Error),
    /// A request passed its deadline: one expecting an answer got none, or one expecting none
    /// could not be written.
    TimedOut {
        correlation_id: i32,
        api: ApiKey,
        after: Duration,
        /// No byte of the request was written (only possible for a request expecting no answer).
        unsent: bool,
    },
}

/// The state owned by the connection task.
pub(super) struct ConnectionTask {
    pub(super) broker: BrokerRef,
    pub(super) max_response_size: usize,
    pub(super) max_in_flight: usize,
    /// Deadline of the connection's own re-authentication requests.
    pub(super) request_timeout: Duration,
    pub(super) metrics: ClientMetrics,
    /// This broker's request cells (`None` with `metrics.enabled=false`).
    pub(super) node: Option<Arc<NodeCells>>,
    /// Request latency in ms as a `metrics` facade histogram (`kafka.request.latency`; a no-op
    /// without a recorder), registered once per connection so each answer costs one `record`.
    pub(super) latency: Option<::metrics::Histogram>,
}

impl ConnectionTask {
    /// `reauth` is set for SASL connections (kept out of `self`: the session it holds is `Send`
    /// but not `Sync`).
    pub(super) async fn run<S: Transport>(
        self,
        stream: S,
        mut rx: mpsc::Receiver<Envelope>,
        mut reauth: Option<Reauthenticator>,
        stop: Arc<Notify>,
    ) {
        let (mut reader, mut writer) = stream.split();
        // Bytes a TLS writer accepted but may not have sent yet (see `Transport::NEEDS_FLUSH`).
        let mut unflushed = false;
        let mut in_flight: VecDeque<InFlight> = VecDeque::new();
        let mut writes: VecDeque<PendingWrite> = VecDeque::new();
        let mut frames = FrameReader::new(self.max_response_size);
        let mut next_correlation_id: i32 = 0;
        let mut accepting = true;
        // Requests of this connection counted in the node's `requests-in-flight`.
        let mut counted_in_flight: i64 = 0;

        let closed = 'task: loop {
            if let Some(node) = &self.node {
                let now_in_flight = in_flight.len() as i64;
                if now_in_flight != counted_in_flight {
                    node.requests_in_flight
                        .fetch_add(now_in_flight - counted_in_flight, Relaxed);
                    counted_in_flight = now_in_flight;
                }
            }
            if !accepting && in_flight.is_empty() && writes.is_empty() {
                break Closed::Finished;
            }
            // Requests may carry different timeouts (a long-polling Fetch), so the earliest
            // deadline is not necessarily the oldest request's.
            let deadline = in_flight
                .iter()
                .map(|f| f.deadline)
                .chain(
                    writes
                        .iter()
                        .filter_map(|w| w.no_answer.as_ref().map(|n| n.deadline)),
                )
                .min();
            // A request that expects an answer is counted once, in `in_flight`, while it is also
            // being written; `writes` bounds the rest (acks=0 frames).
            let room = in_flight.len() < self.max_in_flight && writes.len() < self.max_in_flight;
            // While re-authenticating (KIP-368) the connection takes no new requests; the ones
            // already queued go out first and are answered before the re-authentication.
            let reauth_idle = reauth.as_ref().is_none_or(Reauthenticator::is_idle);
            tokio::select! {
                biased;
                _ = stop.notified() => break Closed::Stopped,
                read = reader.read_buf(frames.read_target()) => match read {
                    Ok(0) => break Closed::Broken(self.lost("broker closed the connection")),
                    Ok(_) => loop {
                        match self.dispatch_responses(&mut frames, &mut in_flight) {
                            Ok(None) => break,
                            Ok(Some(reauth_answer)) => {
                                let next = match reauth.as_mut() {
                                    Some(reauth) => reauth.on_response(reauth_answer),
                                    None => Ok(None),
                                };
                                match next {
                                    Ok(Some(request)) => {
                                        next_correlation_id = next_correlation_id.wrapping_add(1);
                                        push_own_request(
                                            request,
                                            next_correlation_id,
                                            self.request_timeout,
                                            &mut in_flight,
                                            &mut writes,
                                        );
                                    }
                                    Ok(None) => {}
                                    Err(e) => break 'task Closed::Broken(e),
                                }
                            }
                            Err(e) => break 'task Closed::Violation(e),
                        }
                    },
                    Err(e) => break Closed::Broken(self.lost(&e.to_string())),
                },
                step = write_or_flush(&mut writer, writes.front().map(|w| &w.frame[..])),
                    if !writes.is_empty() || unflushed =>
                {
                    match step {
                        Ok(WriteStep::Wrote(0)) => {
                            break Closed::Broken(self.lost("socket closed while writing"))
                        }
                        Ok(WriteStep::Wrote(n)) => {
                            unflushed = S::NEEDS_FLUSH;
                            let front = writes.front_mut().expect("checked non-empty");
                            front.frame.advance(n);
                            front.started = true;
                            if front.frame.is_empty() {
                                let done = writes.pop_front().expect("checked non-empty");
                                if let Some(done) = done.no_answer {
                                    let _ = done.reply.send(Ok(Bytes::new()));
                                }
                            }
                        }
                        Ok(WriteStep::Flushed) => unflushed = false,
                        Err(e) => break Closed::Broken(self.lost(&e.to_string())),
                    }
                }
                request = next_reauth_request(reauth.as_mut()), if accepting => match request {
                    Ok(request) => {
                        next_correlation_id = next_correlation_id.wrapping_add(1);
                        push_own_request(
                            request,
                            next_correlation_id,
                            self.request_timeout,
                            &mut in_flight,
                            &mut writes,
                        );
                    }
                    Err(e) => break Closed::Broken(e),
                },
                envelope = rx.recv(), if accepting && room && reauth_idle => match envelope {
                    None => accepting = false,
                    Some(envelope) => {
                        // The caller gave up before its request reached the wire: do not send it.
                        if envelope.reply.is_closed() {
                            continue;
                        }
                        next_correlation_id = next_correlation_id.wrapping_add(1);
                        let Envelope { mut request, timeout, reply, span } = envelope;
                        request.set_correlation_id(next_correlation_id);
                        span.record("correlation_id", next_correlation_id);
                        trace!(api = ?request.api_key, correlation_id = next_correlation_id, "send");
                        let frame = request.frame.freeze();
                        if let Some(node) = &self.node {
                            node.requests_sent.fetch_add(1, Relaxed);
                            node.outgoing_bytes.fetch_add(frame.len() as u64, Relaxed);
                        }
                        let accepted = Instant::now();
                        if request.expects_response {
                            in_flight.push_back(InFlight {
                                correlation_id: next_correlation_id,
                                api: request.api_key,
                                accepted,
                                deadline: crate::clock::after(accepted, timeout),
                                timeout,
                                reply: Some(reply),
                            });
                            writes.push_back(PendingWrite {
                                frame,
                                started: false,
                                no_answer: None,
                            });
                        } else {
                            let no_answer = NoAnswer {
                                correlation_id: next_correlation_id,
                                api: request.api_key,
                                deadline: crate::clock::after(accepted, timeout),
                                timeout,
                                reply,
                            };
                            writes.push_back(PendingWrite {
                                frame,
                                started: false,
                                no_answer: Some(no_answer),
                            });
                        }
                    }
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    let answered = in_flight
                        .iter()
                        .map(|f| (f.deadline, f.correlation_id, f.api, f.timeout, false));
                    let unanswered = writes.iter().filter_map(|w| {
                        let n = w.no_answer.as_ref()?;
                        Some((n.deadline, n.correlation_id, n.api, n.timeout, !w.started))
                    });
                    let (_, correlation_id, api, after, unsent) = answered
                        .chain(unanswered)
                        .min_by_key(|expired| expired.0)
                        .expect("a deadline implies a request that has it");
                    break Closed::TimedOut { correlation_id, api, after, unsent };
                }
            }
        };
        if let Some(node) = &self.node {
            node.requests_in_flight
                .fetch_sub(counted_in_flight, Relaxed);
        }
        let net = &self.metrics.0.net;
        net.connection_close_total.fetch_add(1, Relaxed);
        net.connection_count.fetch_sub(1, Relaxed);
        self.fail_all(closed, in_flight, writes, rx).await;
    }

    /// Answers every complete response frame read so far, in order, stopping early at an answer
    /// to the connection's own re-authentication, which it returns.
    fn dispatch_responses(
        &self,
        frames: &mut FrameReader,
        in_flight: &mut VecDeque<InFlight>,
    ) -> Result<Option<Bytes>> {
        loop {
            let frame = match frames.next_frame() {
                Ok(Some(frame)) => frame,
                Ok(None) => return Ok(None),
                Err(e) => {
                    return Err(self.violation(in_flight.front().map(|f| f.api), e.to_string()))
                }
            };
            let Some(id) = response_correlation_id(&frame) else {
                return Err(self.violation(
                    in_flight.front().map(|f| f.api),
                    "response shorter than its correlation id".into(),
                ));
            };
            let Some(expected) = in_flight.pop_front() else {
                return Err(self.violation(
                    None,
                    format!("response with correlation id {id} while no request is in flight"),
                ));
            };
            if id != expected.correlation_id {
                let message = format!(
                    "response correlation id {id} does not match the oldest request in flight ({})",
                    expected.correlation_id
                );
                let api = Some(expected.api);
                in_flight.push_front(expected);
                return Err(self.violation(api, message));
            }
            trace!(api = ?expected.api, correlation_id = id, len = frame.len(), "receive");
            if let Some(node) = &self.node {
                let took = expected.accepted.elapsed();
                // Before the stat: a snapshot never counts more answers than the histogram.
                if let Some(latency) = &self.latency {
                    latency.record(took.as_secs_f64() * 1e3);
                }
                node.request_latency.record(nanos(took));
                node.incoming_bytes.fetch_add(frame.len() as u64, Relaxed);
            }
            match expected.reply {
                Some(reply) => {
                    let _ = reply.send(Ok(frame));
                }
                None => return Ok(Some(frame)),
            }
        }
    }

    /// Fails everything the task still holds, with errors that say whether each request may have
    /// reached the broker, then drains the channel so queued callers hear back too.
    async fn fail_all(
        &self,
        closed: Closed,
        in_flight: VecDeque<InFlight>,
        writes: VecDeque<PendingWrite>,
        mut rx: mpsc::Receiver<Envelope>,
    ) {
        // The request whose own failure closed the connection (by correlation id; `None` means the
        // oldest in flight), and its error.
        let mut culprit: Option<i32> = None;
        let (reason, mut own_error) = match closed {
            Closed::Finished => {
                debug!(broker = %self.broker, "connection closed by its handles");
                return;
            }
            Closed::Stopped => {
                debug!(broker = %self.broker, "connection stopped by its owner");
                ("connection closed by its owner".to_owned(), None)
            }
            Closed::Broken(e) => {
                warn!(broker = %self.broker, error = %e, "connection failed");
                // Each request's own error names the connection and the request; the reason
                // adds only why, so the message says each thing once.
                let reason = match e {
                    Error::ConnectionLost { reason, .. } => reason,
                    other => other.to_string(),
                };
                (reason, None)
            }
            Closed::Violation(e) => {
                warn!(broker = %self.broker, error = %e, "connection failed");
                (e.to_string(), Some(e))
            }
            Closed::TimedOut {
                correlation_id,
                api,
                after,
                unsent,
            } => {
                culprit = Some(correlation_id);
                warn!(broker = %self.broker, ?api, "request timed out; closing connection");
                let api_key = crate::error::ApiKey::from_protocol(api);
                let error = Error::Timeout {
                    api: Some(api_key),
                    broker: Some(self.broker.clone()),
                    after,
                    outcome_unknown: !unsent && !api_key.only_reads(),
                };
                (format!("{api:?} request timed out"), Some(error))
            }
        };
        // Closed before anyone is answered: a caller woken by its error may run on another thread
        // and must already see `is_closed()`, or a retry through the pool reuses this connection.
        rx.close();
        for f in in_flight {
            let is_culprit = culprit.is_none_or(|id| id == f.correlation_id);
            let error =
                own_error
                    .take_if(|_| is_culprit)
                    .unwrap_or_else(|| Error::ConnectionLost {
                        api: Some(crate::error::ApiKey::from_protocol(f.api)),
                        broker: self.broker.clone(),
                        outcome_unknown: true,
                        reason: reason.clone(),
                    });
            if let Some(reply) = f.reply {
                let _ = reply.send(Err(error));
            }
        }
        for w in writes {
            let Some(n) = w.no_answer else { continue };
            let error = own_error
                .take_if(|_| culprit == Some(n.correlation_id))
                .unwrap_or_else(|| Error::ConnectionLost {
                    api: Some(crate::error::ApiKey::from_protocol(n.api)),
                    broker: self.broker.clone(),
                    // A frame not started never reached the broker, whatever follows.
                    outcome_unknown: w.started,
                    reason: reason.clone(),
                });
            let _ = n.reply.send(Err(error));
        }
        while let Some(envelope) = rx.recv().await {
            let _ = envelope.reply.send(Err(Error::ConnectionLost {
                api: Some(crate::error::ApiKey::from_protocol(
                    envelope.request.api_key,
                )),
                broker: self.broker.clone(),
                outcome_unknown: false,
                reason: reason.clone(),
            }));
        }
    }

    /// The error for the connection as a whole breaking.
    fn lost(&self, reason: &str) -> Error {
        Error::ConnectionLost {
            api: None,
            broker: self.broker.clone(),
            outcome_unknown: true,
            reason: reason.to_owned(),
        }
    }

    /// The error for a broker that broke the protocol.
    fn violation(&self, api: Option<ApiKey>, message: String) -> Error {
        Error::Protocol {
            api: api.map(crate::error::ApiKey::from_protocol),
            broker: Some(self.broker.clone()),
            message,
        }
    }
}

/// Queues one of the connection's own requests (re-authentication) behind everything queued.
fn push_own_request(
    mut request: EncodedRequest,
    correlation_id: i32,
    timeout: Duration,
    in_flight: &mut VecDeque<InFlight>,
    writes: &mut VecDeque<PendingWrite>,
) {
    request.set_correlation_id(correlation_id);
    trace!(api = ?request.api_key, correlation_id, "send (re-authentication)");
    let accepted = Instant::now();
    in_flight.push_back(InFlight {
        correlation_id,
        api: request.api_key,
        accepted,
        deadline: crate::clock::after(accepted, timeout),
        timeout,
        reply: None,
    });
    writes.push_back(PendingWrite {
        frame: request.frame.freeze(),
        started: false,
        no_answer: None,
    });
}

/// The next re-authentication request, or never for a connection without SASL.
async fn next_reauth_request(reauth: Option<&mut Reauthenticator>) -> Result<EncodedRequest> {
    match reauth {
        Some(reauth) => reauth.next_request().await,
        None => std::future::pending().await,
    }
}

/// What one turn of the write side did.
enum WriteStep {
    /// Bytes of the front frame handed to the stream.
    Wrote(usize),
    /// Everything handed over before is on the socket.
    Flushed,
}

/// Writes part of `front`, or, with nothing left to write, flushes what the stream buffered (only
/// TLS buffers: while frames remain, each `write` also pushes out what it buffered). Both are
/// cancellation-safe: a write not completed wrote nothing.
async fn write_or_flush<W: tokio::io::AsyncWrite + Unpin>(
    writer: &mut W,
    front: Option<&[u8]>,
) -> std::io::Result<WriteStep> {
    match front {
        Some(bytes) => writer.write(bytes).await.map(WriteStep::Wrote),
        None => writer.flush().await.map(|()| WriteStep::Flushed),
    }
}

/// Sleeps until `deadline`, or forever without one (the `select!` guard disables that branch).
async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
