//! A broker's produce sink and what happens to each batch once it is sent: encoding batches,
//! submitting requests in drain order (so sequence numbers reach the broker in order), and
//! settling every partition's outcome — complete, retry in sequence order, or fail — through the
//! idempotence and transaction state.

use super::*;

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
        api: Some(ApiKey::Produce),
        broker: None,
        message: format!("cannot encode batch for {}: {e}", batch.tp()),
    })?;
    Ok(out.freeze())
}

/// The produce sink of one broker (franz-go's per-broker sink): takes the sender's requests for
/// `node` in drain order and submits each to the broker's produce connection before taking the
/// next, so requests reach the broker in sequence order; responses are awaited concurrently (up to
/// `max.in.flight.requests.per.connection`, enforced by the sender).
pub(super) async fn sink(
    shared: Arc<Shared>,
    node: i32,
    mut requests: mpsc::UnboundedReceiver<Vec<Batch>>,
) {
    while let Some(batches) = requests.recv().await {
        let (batches, request) = prepare(&shared, batches);
        match submit(&shared, node, &request).await {
            Ok((broker, version, pending)) => {
                let shared = shared.clone();
                tokio::spawn(async move {
                    let result = match pending.await {
                        Ok(_) if shared.config.acks == Acks::None => Ok(None),
                        Ok(frame) => {
                            decode_response::<ProduceRequest>(frame, version, Some(&broker))
                                .map(|response| Some((broker, parse_produce_response(&response))))
                        }
                        Err(e) => Err(e),
                    };
                    settle(&shared, node, batches, result);
                    finish_request(&shared, node);
                });
            }
            Err(e) => {
                settle(&shared, node, batches, Err(e));
                finish_request(&shared, node);
            }
        }
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
            Err(e) => {
                let message = e.to_string();
                shared.fail_batch(batch, &|| Error::InvalidState(message.clone()));
            }
        }
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
async fn submit(
    shared: &Shared,
    node: i32,
    request: &ProduceRequest,
) -> Result<(crate::BrokerRef, i16, PendingResponse)> {
    let conn = shared.cluster.connection(node, Lane::Produce).await?;
    let version = produce_version(shared, &conn)?;
    let mut frame = encode_request(request, version, &shared.config.client.client_id)?;
    // The broker never answers acks=0: such a request is done once written.
    frame.expects_response = shared.config.acks != Acks::None;
    let pending = conn.submit(frame, None).await?;
    Ok((conn.broker().clone(), version, pending))
}

/// Frees the request's in-flight slot and wakes whoever waits on progress.
fn finish_request(shared: &Shared, node: i32) {
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

/// Applies a request's result to each of its batches.
fn settle(
    shared: &Arc<Shared>,
    node: i32,
    batches: Vec<Batch>,
    result: Result<Option<(crate::BrokerRef, Vec<PartitionOutcome>)>>,
) {
    let now = Instant::now().into_std();
    let mut completed: Vec<(Batch, Option<i64>, Option<i64>)> = Vec::new();
    let mut failed: Vec<(Batch, Error)> = Vec::new();
    let mut fatal: Option<Error> = None;
    let mut stale = false;
    {
        let mut guard = shared.lock();
        let state = &mut *guard;
        let (broker, outcomes) = match &result {
            Ok(Some((broker, outcomes))) => (Some(broker.clone()), Some(outcomes)),
            _ => (None, None),
        };
        for mut batch in batches {
            let retry_allowed = batch.attempts() < shared.config.retries
                && batch.created() + shared.config.delivery_timeout > now;
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
                    stale |= !matches!(e, Error::Protocol { .. });
                    match &mut state.idempotence {
                        Some(idem) => match idem.on_no_response(batch.tp(), batch.id(), e) {
                            Decision::Retry { .. } if !retry_allowed && !e.outcome_unknown() => {
                                Decision::Fail {
                                    error: clone_error(e),
                                    outcome_unknown: false,
                                }
                            }
                            d => d,
                        },
                        None if e.is_retriable() && retry_allowed => Decision::Retry {
                            outcome_unknown: e.outcome_unknown(),
                        },
                        None => Decision::Fail {
                            error: clone_error(e),
                            outcome_unknown: e.outcome_unknown(),
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
                    state.accumulator.reenqueue(batch, now);
                }
                Decision::BumpEpochAndRetry => state.accumulator.reenqueue(batch, now),
                Decision::Fail { error, .. } => {
                    if let Some(txn) = &mut state.txn {
                        txn.on_send_failed(&error);
                    }
                    failed.push((batch, error))
                }
                Decision::Fatal(error) => {
                    failed.push((batch, clone_error(&error)));
                    fatal = Some(error);
                }
            }
        }
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
        shared.fail_batch(batch, &|| clone_error(&error));
    }
    if stale {
        let cluster = shared.cluster.clone();
        tokio::spawn(async move {
            if let Err(e) = cluster.refresh_metadata(TopicsQuery::All).await {
                debug!(error = %e, node, "metadata refresh after produce error failed");
            }
        });
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
            base_offset: Some(response.base_offset),
        },
        Some(code) if crate::error::is_retriable_code(code) && retry_allowed => Decision::Retry {
            outcome_unknown: matches!(
                code,
                ResponseError::RequestTimedOut | ResponseError::NotEnoughReplicasAfterAppend
            ),
        },
        Some(code) => Decision::Fail {
            error: Error::from_code(
                ApiKey::Produce,
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

/// `Error` is not `Clone` (it may hold an `io::Error`); batches that share one failure each get an
/// equivalent error.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::ConnectionLost {
            api,
            broker,
            outcome_unknown,
            reason,
        } => Error::ConnectionLost {
            api: *api,
            broker: broker.clone(),
            outcome_unknown: *outcome_unknown,
            reason: reason.clone(),
        },
        Error::Timeout { api, broker, after } => Error::Timeout {
            api: *api,
            broker: broker.clone(),
            after: *after,
        },
        Error::Broker {
            api,
            broker,
            code,
            message,
            class,
        } => Error::Broker {
            api: *api,
            broker: broker.clone(),
            code: *code,
            message: message.clone(),
            class: *class,
        },
        other => match other.class() {
            ErrorClass::Retriable => Error::ConnectionLost {
                api: Some(ApiKey::Produce),
                broker: other.broker().cloned().unwrap_or(crate::BrokerRef {
                    node_id: None,
                    addr: String::new(),
                }),
                outcome_unknown: true,
                reason: other.to_string(),
            },
            _ => Error::InvalidState(other.to_string()),
        },
    }
}
