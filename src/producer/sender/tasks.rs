//! The producer's tasks and how `close` ends them: every task is spawned through
//! [`Shared::spawn`], which counts it; `close` sets the stop signal, each task settles what it
//! holds and ends, and `close` waits for the count to reach zero, so nothing is sent afterwards.

use std::future::Future;
use std::sync::atomic::Ordering;

use super::*;

/// How long `close` waits for stopped tasks to settle what they hold. They do no I/O once
/// stopped, so this is only a guard against a bug keeping `close` from returning.
const TASK_STOP_GRACE: Duration = Duration::from_secs(1);

/// Counts a running task of the producer; dropped when the task ends.
struct TaskGuard(Arc<Shared>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.live_tasks.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.tasks_ended.notify_waiters();
        }
    }
}

impl Shared {
    /// Spawns a task of this producer; `close` waits until every one has ended. The task must
    /// end soon after [`Shared::stopped`] fires, having settled what it holds.
    pub(crate) fn spawn(self: &Arc<Self>, task: impl Future<Output = ()> + Send + 'static) {
        self.live_tasks.fetch_add(1, Ordering::SeqCst);
        let guard = TaskGuard(self.clone());
        tokio::spawn(async move {
            let _guard = guard;
            task.await;
        });
    }

    /// Spawns a task that holds no records (a metadata refresh, InitProducerId, the transaction
    /// driver): it is dropped where it stands once the producer stops.
    pub(crate) fn spawn_until_stopped(
        self: &Arc<Self>,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        let shared = self.clone();
        self.spawn(async move {
            tokio::select! {
                biased;
                _ = shared.stopped() => {}
                _ = task => {}
            }
        });
    }

    /// Refreshes metadata (`topics`, or all with `None`) in a task of its own. One such task runs
    /// at a time: with partitions that stay leaderless every sender pass (or, with a broker
    /// failing every answer, every answer) asks for one, and unchecked those piled up as
    /// concurrent requests, each alive for up to three request timeouts. An ask made while the
    /// task runs is recorded and merged into its next round (all topics if any ask was for all),
    /// so none is lost; the sender is woken after each round to look at the new leaders.
    pub(crate) fn refresh_metadata_in_background(
        self: &Arc<Self>,
        topics: Option<Vec<String>>,
        why: &'static str,
    ) {
        {
            let mut asks = self.metadata_refresh.lock().expect("refresh asks poisoned");
            match topics {
                None => asks.all = true,
                Some(topics) => asks.topics.extend(topics),
            }
            if asks.running {
                return;
            }
            asks.running = true;
        }
        /// Lets the next ask start a task if this one is dropped (on close) before it ends; a task
        /// that ends clears `running` itself, under the lock, and disarms this.
        struct Running(Option<Arc<Shared>>);
        impl Drop for Running {
            fn drop(&mut self) {
                if let Some(shared) = self.0.take() {
                    if let Ok(mut asks) = shared.metadata_refresh.lock() {
                        asks.running = false;
                    }
                }
            }
        }
        let running = Running(Some(self.clone()));
        let shared = self.clone();
        self.spawn_until_stopped(async move {
            let mut running = running;
            // Rounds are spaced by the retry backoff: a partition that stays leaderless is asked
            // about on every sender pass, and each round wakes the sender.
            let mut backoff = shared.cluster.retry_backoff();
            let mut first = true;
            loop {
                if !std::mem::take(&mut first) {
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                let (all, topics) = {
                    let mut asks = shared
                        .metadata_refresh
                        .lock()
                        .expect("refresh asks poisoned");
                    if !asks.all && asks.topics.is_empty() {
                        asks.running = false;
                        running.0.take();
                        return;
                    }
                    (
                        std::mem::take(&mut asks.all),
                        std::mem::take(&mut asks.topics),
                    )
                };
                let result = if all {
                    shared.cluster.refresh_metadata(TopicsQuery::All).await
                } else {
                    let names: Vec<&str> = topics.iter().map(String::as_str).collect();
                    shared
                        .cluster
                        .refresh_metadata(TopicsQuery::Some(&names))
                        .await
                };
                if let Err(e) = result {
                    debug!(error = %e, why, "background metadata refresh failed");
                }
                shared.wake.notify_one();
            }
        });
    }

    /// Resolves once `close` has stopped the producer.
    pub(crate) async fn stopped(&self) {
        let mut stop = self.stop.subscribe();
        let _ = stop.wait_for(|stopped| *stopped).await;
    }

    /// `close`'s last step: stops every task so nothing more is sent, fails every record without
    /// an outcome (queued: not written; in flight: outcome unknown), and returns how many
    /// records were failed each way.
    pub(crate) async fn shut_down(self: &Arc<Self>) -> (usize, usize) {
        {
            let mut state = self.lock();
            state.stopped = true;
            state.closing = true;
            state.accumulator.close();
        }
        self.stop.send_replace(true);
        self.give_up_queued();
        self.wake.notify_one();
        self.txn_wake.notify_one();
        let ended = async {
            loop {
                let ended = self.tasks_ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                if self.live_tasks.load(Ordering::SeqCst) == 0 {
                    return;
                }
                ended.await;
            }
        };
        if tokio::time::timeout(TASK_STOP_GRACE, ended).await.is_err() {
            warn!(
                tasks = self.live_tasks.load(Ordering::SeqCst),
                "producer tasks still running after close"
            );
        }
        // A request a connection task took just before the tasks stopped may not be written
        // yet (a full socket, or a moment's scheduling): closing the producer's connections
        // makes sure it is not written after `close` returns. The pool is the producer's own
        // (`Producer::connect` makes its cluster and shares it with no other client).
        if tokio::time::timeout(TASK_STOP_GRACE, self.cluster.pool().close())
            .await
            .is_err()
        {
            warn!("producer connections still open after close");
        }
        // A batch put back while the tasks stopped (a split) has no task left to send it.
        self.give_up_queued();
        self.progress.notify_waiters();
        let mut state = self.lock();
        (
            std::mem::take(&mut state.closed_unsent),
            std::mem::take(&mut state.closed_unknown),
        )
    }

    /// Fails every queued batch because the producer was closed.
    fn give_up_queued(&self) {
        let batches = self.lock().accumulator.abort_all();
        for batch in batches {
            let unknown = batch.outcome_unknown();
            let error = self.undelivered(&batch, GiveUp::Closed, unknown, None);
            self.fail_batch(batch, &|| error.duplicate());
        }
    }
}
