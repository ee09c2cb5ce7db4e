//! A broker's produce sink and what happens to each batch once it is sent: encoding batches,
//! submitting requests in drain order (so sequence numbers reach the broker in order), and
//! settling every partition's outcome — complete, retry in sequence order, or fail — through the
//! idempotence and transaction state.

use super::*;
use crate::net::request_span;
use crate::producer::metrics::{RecordOutcome, SentBatch};
use tracing::Instrument;

/// Encodes one batch's records with its producer id, epoch and sequence.
fn encode(shared: &Shared, batch: &Batch) -> Result<Bytes> {
    let mut options = BatchOptions {
        compression: shared.compression,
        transactional: shared.config.transactional_id.is_some(),
        ..BatchOptions::default()
    };
    if let Some(seq) = batch.sequence() {
        options.producer_id = seq.producer.producer_id;
        options.producer_epoch = seq.producer.epoch;
        options.base_sequence = seq.base_sequence;
    }
    let mut out = BytesMut::with_capacity(batch.size_bytes());
    encode_batch(
        &mut out,
        &options,
        batch.records().iter().map(|r| RecordInput {
            timestamp: r.data.timestamp,
            key: r.data.key.as_deref(),
            value: r.data.value.as_deref(),
            headers: &r.data.headers[..],
        }),
    )
    .map_err(|e| Error::Protocol {
        api: Some(crate::error::ApiKey::Produce),
        broker: None,
        message: format!("cannot encode batch for {}: {e}", batch.tp()),
    })?;
    Ok(out.freeze())
}

/// The produce sink of one broker (franz-go's per-broker sink): takes the sender's requests for
/// `node` in drain order and submits each to the broker's produce connection before taking the
/// next, so requests reach the broker in sequence order; responses are awaited concurrently (up to
/// `max.in.flight.requests.per.connection`, enforced by the sender).
///
/// Once the producer is stopped (`close`), nothing more is submitted: requests not yet submitted
/// fail as never sent, and requests in flight stop waiting and fail as outcome unknown.
pub(super) async fn sink(
    shared: Arc<Shared>,
    node: i32,
    mut requests: mpsc::UnboundedReceiver<Vec<Batch>>,
) {
    loop {
        let batches = tokio::select! {
            biased;
            _ = shared.stopped() => break,
            next = requests.recv() => match next {
                Some(batches) => batches,
                None => return,
            },
        };
        // Identifies the request to the transaction's marker pacing (transactional producers
        // only: the others never take the lock for it).
        let token = shared
            .config
            .transactional_id
            .is_some()
            .then(|| batches.first().map(|b| b.id().0))
            .flatten();
        let (batches, request) = prepare(&shared, batches);
        // No connection wait outlasts the earliest delivery deadline of the request.
        let connect_by = batches
            .iter()
            .map(|b| Instant::from_std(b.created() + shared.config.delivery_timeout))
            .min()
            .unwrap_or_else(Instant::now);
        let submitted = tokio::select! {
            biased;
            _ = shared.stopped() => Err(Error::Closed),
            submitted = submit(&shared, node, &request, connect_by) => submitted,
        };
        match submitted {
            Ok((broker, version, pending, span)) => {
                let task_shared = shared.clone();
                let sent_at = Instant::now().into_std();
                shared.spawn(
                    async move {
                        let shared = task_shared;
                        let answer = tokio::select! {
                            biased;
                            answer = pending => Some(answer),
                            _ = shared.stopped() => None,
                        };
                        if let (Some(token), Some(Ok(_))) = (token, &answer) {
                            let mut state = shared.lock();
                            if state.txn.is_some() {
                                let now = Instant::now().into_std();
                                let before = state.pacing.pause();
                                state.pacing.on_produce_answered(token, sent_at, now);
                                if state.pacing.pause() != before {
                                    tracing::debug!(
                                        pause = ?state.pacing.pause(),
                                        answered_in = ?now.saturating_duration_since(sent_at),
                                        "pause before a transaction's first produce changed"
                                    );
                                }
                            }
                        }
                        let result = match answer {
                            Some(Ok(_)) if shared.config.acks == Acks::None => Ok(None),
                            Some(Ok(frame)) => {
                                decode_response::<ProduceRequest>(frame, version, Some(&broker))
                                    .map(|response| {
                                        let throttle = response.throttle_time_ms.max(0) as u64;
                                        if shared.registry().enabled {
                                            let producer = &shared.registry().producer;
                                            producer.produce_throttle_time.record(throttle);
                                        }
                                        Some((broker, parse_produce_response(&response)))
                                    })
                            }
                            Some(Err(e)) => Err(e),
                            // Dropping `pending` withdraws the request if the connection has not
                            // taken it yet; if it has, it may be written.
                            None => Err(Error::ConnectionLost {
                                api: Some(crate::error::ApiKey::Produce),
                                broker,
                                outcome_unknown: true,
                                reason: "the producer was closed while the request was in flight"
                                    .into(),
                            }),
                        };
                        if let Err(Error::Protocol { .. }) = &result {
                            // An answer came back (undecodable, or breaking the connection's framing),
                            // so the request was written: the broker may have appended the batches,
                            // and their sequences must be treated as possibly used.
                            if let Some(idem) = &mut shared.lock().idempotence {
                                for batch in &batches {
                                    idem.mark_outcome_unknown(batch.tp(), batch.id());
                                }
                            }
                        }
                        if let Err(e) = &result {
                            tracing::Span::current().record("error", tracing::field::display(e));
                        }
                        settle(&shared, node, batches, result);
                        finish_request(&shared, node);
                    }
                    .instrument(span),
                );
            }
            Err(e) => {
                settle(&shared, node, batches, Err(e));
                finish_request(&shared, node);
            }
        }
    }
    // Stopped: what is still queued here was never sent.
    requests.close();
    while let Ok(batches) = requests.try_recv() {
        settle(&shared, node, batches, Err(Error::Closed));
        finish_request(&shared, node);
    }
}

/// Encodes each batch (failing the ones that cannot be encoded) and builds the request.
fn prepare(shared: &Shared, batches: Vec<Batch>) -> (Vec<Batch>, ProduceRequest) {
    let mut encoded = Vec::with_capacity(batches.len());
    let mut sendable = Vec::with_capacity(batches.len());
    for batch in batches {
        match encode(shared, &batch) {
            Ok(bytes) => {
                encoded.push((batch.tp().clone(), bytes));
                sendable.push(batch);
            }
            Err(e) => shared.fail_batch(batch, &|| e.duplicate()),
        }
    }
    if shared.registry().enabled {
        let sent: Vec<SentBatch<'_>> = encoded
            .iter()
            .zip(&sendable)
            .map(|((tp, bytes), batch)| SentBatch {
                topic: &tp.topic,
                records: batch.record_count() as usize,
                bytes: bytes.len(),
                uncompressed: batch.size_bytes(),
            })
            .collect();
        shared.count_sent(&sent);
    }
    let timeout_ms = shared
        .config
        .client
        .request_timeout
        .as_millis()
        .try_into()
        .unwrap_or(i32::MAX);
    let request = build_produce_request(
        shared.config.acks.wire(),
        timeout_ms,
        shared.config.transactional_id.as_deref(),
        encoded.iter().map(|(tp, bytes)| (tp, bytes.clone())),
    );
    (sendable, request)
}

/// Queues the request on `node`'s produce connection; returns what is needed to read the answer.
/// Gives up getting a connection at `connect_by` (nothing was sent then).
async fn submit(
    shared: &Shared,
    node: i32,
    request: &ProduceRequest,
    connect_by: Instant,
) -> Result<(crate::BrokerRef, i16, PendingResponse, tracing::Span)> {
    let connection = shared.cluster.connection(node, Lane::Produce);
    let conn = match tokio::time::timeout_at(connect_by, connection).await {
        Ok(conn) => conn?,
        Err(_) => {
            return Err(Error::Connect {
                broker: crate::BrokerRef {
                    node_id: Some(node),
                    addr: shared.cluster.pool().address(node).unwrap_or_default(),
                },
                source: std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "no connection before the delivery deadline",
                ),
            })
        }
    };
    let version = produce_version(shared, &conn)?;
    let mut frame = encode_request(request, version, &shared.config.client.client_id)?;
    // The broker never answers acks=0: such a request is done once written.
    frame.expects_response = shared.config.acks != Acks::None;
    let span = request_span(ApiKey::Produce, version, conn.broker());
    let pending = conn.submit(frame, None).instrument(span.clone()).await?;
    Ok((conn.broker().clone(), version, pending, span))
}

/// Frees the request's in-flight slot and wakes whoever waits on progress.
pub(super) fn finish_request(shared: &Shared, node: i32) {
    {
        let mut state = shared.lock();
        if let Some(n) = state.in_flight.get_mut(&node) {
            *n = n.saturating_sub(1);
        }
    }
    shared.wake.notify_one();
    shared.txn_wake.notify_one();
    shared.progress.notify_waiters();
}

/// Applies a request's result to each of its batches: complete, retry, or give up (past
/// `delivery.timeout.ms`, out of retries, or stopped by `close`).
pub(super) fn settle(
    shared: &Arc<Shared>,
    node: i32,
    batches: Vec<Batch>,
    result: Result<Option<(crate::BrokerRef, Vec<PartitionOutcome>)>>,
) {
    let now = Instant::now().into_std();
    let mut completed: Vec<(Batch, Option<i64>, Option<i64>)> = Vec::new();
    let mut failed: Vec<(Batch, Error)> = Vec::new();
    let mut fatal: Option<Error> = None;
    let mut gave_up: Vec<(Batch, GiveUp, bool, Option<String>)> = Vec::new();
    let mut stale = false;
    let mut retried: Vec<(String, usize)> = Vec::new();
    {
        let mut guard = shared.lock();
        let state = &mut *guard;
        let (broker, outcomes) = match &result {
            Ok(Some((broker, outcomes))) => (Some(broker.clone()), Some(outcomes)),
            _ => (None, None),
        };
        let stopped = state.stopped;
        for mut batch in batches {
            let expired = batch.created() + shared.config.delivery_timeout <= now;
            let out_of_retries = batch.attempts() >= shared.config.retries;
            let retry_allowed = !stopped && !expired && !out_of_retries;
            let why = if stopped {
                GiveUp::Closed
            } else if expired {
                GiveUp::Expired
            } else {
                GiveUp::RetriesUsed
            };
            let mut log_append = None;
            let decision = match (&result, outcomes) {
                (Ok(None), _) => Decision::Complete { base_offset: None },
                (Ok(Some(_)), Some(outcomes)) => {
                    let outcome = outcomes.iter().find(|o| o.tp == *batch.tp());
                    let mut response = match outcome {
                        Some(o) => PartitionResponse {
                            error: o.error,
                            base_offset: o.base_offset,
                            log_start_offset: o.log_start_offset,
                            message: o.error_message.clone(),
                        },
                        // A partition missing from the answer: treat as a network error.
                        None => PartitionResponse::error(ResponseError::NetworkException),
                    };
                    if let Some(code) = response.error {
                        debug!(tp = %batch.tp(), ?code, message = ?response.message, attempts = batch.attempts(), "produce error");
                        stale |= is_stale_metadata_error(code);
                        let answer = Error::from_code(ApiKey::Produce, broker.clone(), code, None);
                        batch.set_last_error(answer.to_string());
                    }
                    if let Some(
                        code @ (ResponseError::MessageTooLarge | ResponseError::RecordListTooLarge),
                    ) = response.error
                    {
                        // Java `Sender.completeBatch`: split a refused multi-record batch and
                        // resend the parts (no attempt counted); only a lone record fails.
                        let (tp, id, count) =
                            (batch.tp().clone(), batch.id(), batch.record_count());
                        match state.accumulator.split_and_reenqueue(batch) {
                            Ok(parts) => {
                                debug!(%tp, ?code, records = count, parts = ?parts, "batch too large: split and re-enqueued");
                                if let Some(idem) = &mut state.idempotence {
                                    idem.on_split(&tp, id, &parts);
                                }
                                continue;
                            }
                            Err(lone) => {
                                batch = lone;
                                response.message = Some(too_large_message(
                                    shared,
                                    &batch,
                                    response.message.take(),
                                ));
                            }
                        }
                    }
                    log_append = outcome.and_then(|o| o.log_append_time);
                    // CONCURRENT_TRANSACTIONS (a v2 leader still adding the partition while the
                    // previous markers are written) is retried like any retriable code:
                    // `error::is_retriable_code` corrects kafka-protocol's table for it.
                    decide(state, &batch, &response, retry_allowed, broker.as_ref())
                }
                (Ok(Some(_)), None) => unreachable!("outcomes are Some whenever the result is"),
                (Err(e), _) => {
                    debug!(tp = %batch.tp(), error = %e, "produce request failed");
                    stale |= !matches!(e, Error::Protocol { .. } | Error::Closed);
                    // Stopped by `close`: the error says only that, not what was tried.
                    if !stopped {
                        batch.set_last_error(e.to_string());
                    }
                    match &mut state.idempotence {
                        Some(idem) => idem.on_no_response(batch.tp(), batch.id(), e, retry_allowed),
                        None if !retry_allowed => Decision::GiveUp {
                            outcome_unknown: batch.outcome_unknown() || e.outcome_unknown(),
                        },
                        None if e.is_retriable() => Decision::Retry {
                            outcome_unknown: e.outcome_unknown(),
                        },
                        None => Decision::Fail {
                            error: e.duplicate(),
                            outcome_unknown: e.outcome_unknown() || batch.outcome_unknown(),
                        },
                    }
                }
            };
            match decision {
                Decision::Complete { base_offset } => {
                    completed.push((batch, base_offset, log_append))
                }
                Decision::Retry { outcome_unknown } => {
                    if outcome_unknown {
                        batch.mark_outcome_unknown();
                    }
                    retried.push((batch.tp().topic.clone(), batch.record_count() as usize));
                    state.accumulator.reenqueue(batch, now);
                }
                Decision::BumpEpochAndRetry => {
                    retried.push((batch.tp().topic.clone(), batch.record_count() as usize));
                    state.accumulator.reenqueue(batch, now)
                }
                Decision::Fail {
                    error,
                    outcome_unknown,
                } => {
                    if let Some(txn) = &mut state.txn {
                        txn.on_send_failed(&error);
                    }
                    if outcome_unknown {
                        // The broker's refusal of this send says nothing of an earlier one that
                        // went unanswered: the records may be in the log.
                        let why = if retry_allowed { GiveUp::Refused } else { why };
                        gave_up.push((batch, why, true, Some(error.to_string())));
                    } else {
                        failed.push((batch, error))
                    }
                }
                Decision::GiveUp { outcome_unknown } => {
                    if let Some(txn) = &mut state.txn {
                        txn.on_send_failed(&Error::Timeout {
                            api: Some(crate::error::ApiKey::Produce),
                            broker: None,
                            after: shared.config.delivery_timeout,
                            outcome_unknown,
                        });
                    }
                    gave_up.push((batch, why, outcome_unknown, None));
                }
                Decision::Fatal(error) => {
                    failed.push((batch, error.duplicate()));
                    fatal = Some(error);
                }
            }
        }
    }
    for (topic, records) in retried {
        shared.count_records(&topic, records, RecordOutcome::Retried);
    }
    for (batch, base_offset, log_append) in completed {
        let tp = batch.tp().clone();
        let records = shared.lock().accumulator.release(batch);
        // One outcome for the batch's range of indexes; each future derives its own offset.
        if let Some(first) = records.first() {
            first
                .settler
                .deliver(first.index, records.len(), &tp, base_offset, log_append);
        }
    }
    for (batch, error) in failed {
        // Every record of the batch gets an equivalent of the one error (`Error` is not `Clone`).
        shared.fail_batch(batch, &|| error.duplicate());
    }
    for (batch, why, outcome_unknown, last) in gave_up {
        let error = shared.undelivered(&batch, why, outcome_unknown, last.as_deref());
        shared.fail_batch(batch, &|| error.duplicate());
    }
    if stale {
        debug!(
            node,
            "produce answer says the metadata is stale; refreshing"
        );
        shared.refresh_metadata_in_background(None, "produce error");
    }
    if let Some(e) = fatal {
        shared.fail_fatally(&e);
    }
}

/// The error text for a single record the broker refused as too large: its encoded batch size and
/// the limit it broke (the topic's `max.message.bytes` or the broker's `message.max.bytes`; the
/// broker's own message is appended when it sent one, which may name the value).
fn too_large_message(shared: &Shared, batch: &Batch, broker_message: Option<String>) -> String {
    let bytes = encode(shared, batch).map_or(batch.size_bytes(), |b| b.len());
    let mut message = format!(
        "record of {bytes} bytes (as a one-record batch) for {} exceeds the largest batch the \
         broker accepts for the topic (topic max.message.bytes, or the broker's \
         message.max.bytes)",
        batch.tp()
    );
    if let Some(m) = broker_message.filter(|m| !m.is_empty()) {
        message.push_str(": ");
        message.push_str(&m);
    }
    message
}

/// The decision for one partition's answer: the idempotence rules when idempotent, otherwise
/// retry retriable errors while retries and time last.
fn decide(
    state: &mut ProducerState,
    batch: &Batch,
    response: &PartitionResponse,
    retry_allowed: bool,
    broker: Option<&crate::BrokerRef>,
) -> Decision {
    if let Some(idem) = &mut state.idempotence {
        return idem.on_response(batch.tp(), batch.id(), response, retry_allowed);
    }
    match response.error {
        None => Decision::Complete {
            base_offset: written_offset(response.base_offset, batch.record_count()),
        },
        Some(code) if crate::error::is_retriable_code(code) && retry_allowed => Decision::Retry {
            outcome_unknown: matches!(
                code,
                ResponseError::RequestTimedOut | ResponseError::NotEnoughReplicasAfterAppend
            ),
        },
        Some(code) => Decision::Fail {
            error: refused(
                broker.cloned(),
                code,
                Some(format!(
                    "{}{}",
                    batch.tp(),
                    response
                        .message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                )),
            ),
            outcome_unknown: false,
        },
    }
}

/// A partition's refusal of its batch: retriable codes whose retries ran out keep their class; the
/// others concern this batch only ([`ErrorClass::Rejected`]), the producer is fine.
fn refused(
    broker: Option<crate::BrokerRef>,
    code: ResponseError,
    message: Option<String>,
) -> Error {
    let class = if crate::error::is_retriable_code(code) {
        ErrorClass::Retriable
    } else {
        ErrorClass::Rejected
    };
    Error::Broker {
        api: crate::error::ApiKey::Produce,
        broker,
        code: crate::error::ErrorCode::from_protocol(code),
        message,
        class,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::records::record_fields_len;
    use crate::record::Header;
    use crate::state::accumulator::{Accumulator, AccumulatorConfig};

    /// Records queued as `ProducerState::append` queues them fill each batch to `batch.size` as
    /// encoded, and the size the accumulator counts is the encoded size, byte for byte.
    #[test]
    fn batches_fill_to_batch_size_and_count_their_encoded_size() {
        let config = AccumulatorConfig::default();
        let batch_size = config.batch_size;
        let mut acc = Accumulator::<PendingRecord>::new(config);
        let tp = TopicPartition::new("t", 0);
        let now = std::time::Instant::now();
        let settler = Settler::new();
        let mut queued = 0;
        for i in 0..3000i64 {
            // Deltas of every width: same ms, later, earlier (negative), 10 s later (3 bytes).
            let timestamp = 1_700_000_000_000 + [0, 3, -2, 10_000][i as usize % 4] + i / 7;
            let value = Bytes::from(vec![b'x'; 90 + (i % 20) as usize]);
            let key = (i % 3 == 0).then(|| Bytes::from(format!("key-{i}")));
            let headers = match i % 50 {
                0 => vec![Header::new("trace", "abc"), Header::null("n")],
                _ => Vec::new(),
            };
            let fields = record_fields_len(key.as_deref(), Some(&value[..]), &headers[..]);
            let data = RecordData {
                timestamp,
                key,
                value: Some(value),
                headers,
            };
            let appended = acc.append_with(
                &tp,
                data,
                |batch| size_in_batch(fields, timestamp, batch),
                || now,
                |data, _| PendingRecord {
                    data,
                    settler: settler.clone(),
                    index: 0,
                },
            );
            assert!(matches!(appended, AppendResult::Appended(_)));
            queued += 1;
        }
        let batches = acc.abort_all();
        assert!(batches.len() > 10);
        let mut records = 0;
        for (n, batch) in batches.iter().enumerate() {
            let mut out = BytesMut::new();
            let info = encode_batch(
                &mut out,
                &BatchOptions::default(),
                batch.records().iter().map(|r| RecordInput {
                    timestamp: r.data.timestamp,
                    key: r.data.key.as_deref(),
                    value: r.data.value.as_deref(),
                    headers: &r.data.headers[..],
                }),
            )
            .unwrap();
            assert_eq!(info.len, batch.size_bytes(), "batch {n}");
            assert!(info.len <= batch_size, "batch {n}: {} bytes", info.len);
            // Full but for less than one more record (the largest takes under 140 bytes).
            if n + 1 < batches.len() {
                assert!(info.len > batch_size - 140, "batch {n}: {} bytes", info.len);
            }
            records += batch.records().len();
        }
        assert_eq!(records, queued);
    }

    /// Without idempotence a success's base offset is checked as with it: -1 (the broker did
    /// not say) or an offset whose batch would pass `i64::MAX` leaves every record's offset
    /// unknown (Java reports -1 for each), never -1, 0, 1, ... or an overflow.
    #[test]
    fn a_non_idempotent_success_at_an_impossible_offset_leaves_the_offsets_unknown() {
        let mut state = ProducerState::new(AccumulatorConfig::default(), false, false);
        let tp = TopicPartition::new("t", 0);
        let settler = Settler::new();
        for index in 0..3 {
            let data = RecordData {
                timestamp: 0,
                key: None,
                value: Some(Bytes::from_static(b"v")),
                headers: Vec::new(),
            };
            let appended = state.accumulator.append_with(
                &tp,
                data,
                |batch| size_in_batch(1, 0, batch),
                std::time::Instant::now,
                |data, _| PendingRecord {
                    data,
                    settler: settler.clone(),
                    index,
                },
            );
            assert!(matches!(appended, AppendResult::Appended(_)));
        }
        let batch = state.accumulator.abort_all().pop().expect("one batch");
        assert_eq!(batch.record_count(), 3);
        for (base, want) in [
            (-1, None),
            (-5, None),
            (i64::MAX - 1, None),
            (i64::MAX - 2, Some(i64::MAX - 2)),
            (40, Some(40)),
        ] {
            let d = decide(&mut state, &batch, &PartitionResponse::ok(base), true, None);
            assert!(
                matches!(d, Decision::Complete { base_offset } if base_offset == want),
                "{base}: {d:?}"
            );
        }
    }
}
