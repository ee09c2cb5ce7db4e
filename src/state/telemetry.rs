//! KIP-714 client telemetry as an IO-free machine: when to ask a broker for the client's metrics
//! subscription (GetTelemetrySubscriptions), when to push (PushTelemetry), what each answer means,
//! and the terminating push on close.
//!
//! States follow the Java client's `ClientTelemetryState`: subscription-needed → (in progress) →
//! push-needed → (in progress) → push-needed …, and on close terminating-push-needed →
//! terminating-push-in-progress → terminated. Error answers are mapped as Java's
//! `ClientTelemetryUtils.maybeFetchErrorIntervalMs` does: a request the broker can never accept
//! (INVALID_REQUEST, INVALID_RECORD, UNSUPPORTED_VERSION, anything unmapped) turns telemetry off;
//! UNKNOWN_SUBSCRIPTION_ID and UNSUPPORTED_COMPRESSION_TYPE ask for a new subscription at once;
//! TELEMETRY_TOO_LARGE and THROTTLING_QUOTA_EXCEEDED ask for one after the push interval.

use std::time::{Duration, Instant};

/// Java's `ClientTelemetryReporter.DEFAULT_PUSH_INTERVAL_MS`: used when the broker names no
/// interval, after a failed request, and before any subscription is known.
pub const DEFAULT_PUSH_INTERVAL: Duration = Duration::from_secs(300);

/// The shortest push interval taken from a broker: Kafka refuses a client-metrics `interval.ms`
/// below 100, so a shorter one comes from a broken broker and would have the client push
/// (encode, compress, send) all the time.
pub const MIN_PUSH_INTERVAL: Duration = Duration::from_millis(100);

/// Kafka error codes the machine tells apart.
pub mod codes {
    /// UNSUPPORTED_VERSION.
    pub const UNSUPPORTED_VERSION: i16 = 35;
    /// INVALID_REQUEST.
    pub const INVALID_REQUEST: i16 = 42;
    /// UNSUPPORTED_COMPRESSION_TYPE.
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
    /// INVALID_RECORD.
    pub const INVALID_RECORD: i16 = 87;
    /// THROTTLING_QUOTA_EXCEEDED.
    pub const THROTTLING_QUOTA_EXCEEDED: i16 = 89;
    /// UNKNOWN_SUBSCRIPTION_ID.
    pub const UNKNOWN_SUBSCRIPTION_ID: i16 = 117;
    /// TELEMETRY_TOO_LARGE.
    pub const TELEMETRY_TOO_LARGE: i16 = 118;
}

/// Where the machine is (Java's `ClientTelemetryState`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TelemetryState {
    /// A GetTelemetrySubscriptions is due (after the current wait).
    SubscriptionNeeded,
    /// A GetTelemetrySubscriptions is on the wire.
    SubscriptionInProgress,
    /// A PushTelemetry is due (after the current wait).
    PushNeeded,
    /// A PushTelemetry is on the wire.
    PushInProgress,
    /// The client is closing; one last push with `terminating=true` is due now.
    TerminatingPushNeeded,
    /// The last push is on the wire.
    TerminatingPushInProgress,
    /// Nothing more will be sent.
    Terminated,
}

/// Which metrics a subscription asks for (its `requested_metrics`): none (empty list), all (`*`),
/// or those whose telemetry name starts with one of the prefixes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetricSelector {
    /// No metric: the client asks again after the push interval.
    Nothing,
    /// Every metric.
    All,
    /// Metrics whose name starts with one of these.
    Prefixes(Vec<String>),
}

impl MetricSelector {
    /// The selector for a subscription's `requested_metrics`.
    pub fn from_requested(requested: &[String]) -> Self {
        match requested {
            [] => MetricSelector::Nothing,
            [only] if only == "*" => MetricSelector::All,
            list => MetricSelector::Prefixes(list.to_vec()),
        }
    }

    /// Whether the metric named `name` (telemetry form, `org.apache.kafka.…`) is asked for.
    pub fn selects(&self, name: &str) -> bool {
        match self {
            MetricSelector::Nothing => false,
            MetricSelector::All => true,
            MetricSelector::Prefixes(p) => p.iter().any(|p| name.starts_with(p.as_str())),
        }
    }
}

/// A GetTelemetrySubscriptions answer, as the machine needs it.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionAnswer {
    /// The answer's error code (0: none).
    pub error_code: i16,
    /// The client instance id the broker assigned (or confirmed).
    pub client_instance_id: [u8; 16],
    /// The subscription's id, echoed in every push.
    pub subscription_id: i32,
    /// Compression codecs the broker accepts, most preferred first (Kafka's ids).
    pub accepted_compression_types: Vec<i8>,
    /// How often to push; ≤ 0 means [`DEFAULT_PUSH_INTERVAL`].
    pub push_interval_ms: i32,
    /// Largest payload the broker accepts, in bytes.
    pub telemetry_max_bytes: i32,
    /// Deltas (true) or cumulative values since the client started (false).
    pub delta_temporality: bool,
    /// Metric-name prefixes asked for (see [`MetricSelector::from_requested`]).
    pub requested_metrics: Vec<String>,
}

/// The subscription in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    /// The client instance id.
    pub client_instance_id: [u8; 16],
    /// The subscription id.
    pub subscription_id: i32,
    /// The push interval.
    pub push_interval: Duration,
    /// Accepted codecs, most preferred first.
    pub accepted_compression_types: Vec<i8>,
    /// Largest payload the broker accepts.
    pub telemetry_max_bytes: usize,
    /// Deltas or cumulative values.
    pub delta_temporality: bool,
    /// The metrics asked for.
    pub selector: MetricSelector,
}

/// What the IO task should do next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// Send GetTelemetrySubscriptions with this client instance id (zeros: none yet).
    GetSubscriptions {
        /// The id to send.
        client_instance_id: [u8; 16],
    },
    /// Collect, encode and send PushTelemetry under the current subscription.
    Push {
        /// The last push of a closing client.
        terminating: bool,
    },
    /// Nothing is due before this instant.
    WaitUntil(Instant),
    /// A request is on the wire: wait for its outcome.
    AwaitAnswer,
    /// Telemetry is off or finished: the task can end.
    Stop,
}

/// What an answer changed that the IO task must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Applied {
    /// The temporality changed: forget the values last pushed (Java's `metricsReset`).
    pub reset_last_values: bool,
}

/// The telemetry machine of one client. See the module docs.
#[derive(Debug)]
pub struct Telemetry {
    state: TelemetryState,
    subscription: Option<Subscription>,
    /// When the last request was answered (or failed); the next is due `interval` after it.
    last_request: Option<Instant>,
    interval: Duration,
    enabled: bool,
    /// A push was refused for its codec: push uncompressed from then on (the broker's list may
    /// name codecs it does not take after all, and asking again would pick the same one).
    compression_refused: bool,
    rng: u64,
}

impl Telemetry {
    /// A machine that asks for a subscription at once; `seed` drives the first push's jitter.
    pub fn new(seed: u64) -> Self {
        Telemetry {
            state: TelemetryState::SubscriptionNeeded,
            subscription: None,
            last_request: None,
            interval: Duration::ZERO,
            enabled: true,
            compression_refused: false,
            rng: seed | 1,
        }
    }

    /// The current state.
    #[cfg(test)]
    pub fn state(&self) -> TelemetryState {
        self.state
    }

    /// Whether telemetry is still on (an unrecoverable answer or a broker without the APIs turns
    /// it off).
    #[cfg(test)]
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    /// The subscription in force, if one was received.
    pub fn subscription(&self) -> Option<&Subscription> {
        self.subscription.as_ref()
    }

    /// What is due at `now`. A returned request moves the machine to its in-progress state; the
    /// caller must report its outcome with [`Self::on_subscriptions`], [`Self::on_push`] or
    /// [`Self::on_failed`].
    pub fn next(&mut self, now: Instant) -> Next {
        if !self.enabled || self.state == TelemetryState::Terminated {
            return Next::Stop;
        }
        match self.state {
            TelemetryState::SubscriptionInProgress
            | TelemetryState::PushInProgress
            | TelemetryState::TerminatingPushInProgress => Next::AwaitAnswer,
            TelemetryState::TerminatingPushNeeded => {
                self.state = TelemetryState::TerminatingPushInProgress;
                Next::Push { terminating: true }
            }
            TelemetryState::SubscriptionNeeded | TelemetryState::PushNeeded => {
                let due = self.last_request.map_or(now, |at| at + self.interval);
                if due > now {
                    return Next::WaitUntil(due);
                }
                if self.state == TelemetryState::SubscriptionNeeded || self.subscription.is_none() {
                    self.state = TelemetryState::SubscriptionInProgress;
                    let client_instance_id = self
                        .subscription
                        .as_ref()
                        .map_or([0; 16], |s| s.client_instance_id);
                    Next::GetSubscriptions { client_instance_id }
                } else {
                    self.state = TelemetryState::PushInProgress;
                    Next::Push { terminating: false }
                }
            }
            TelemetryState::Terminated => Next::Stop,
        }
    }

    /// Applies a GetTelemetrySubscriptions answer received at `now`.
    pub fn on_subscriptions(&mut self, now: Instant, answer: SubscriptionAnswer) -> Applied {
        if self.is_terminating() {
            return Applied::default();
        }
        if let Some(wait) = self.error_wait(answer.error_code) {
            // The codes that ask again at once are a push's (a stale subscription or codec,
            // which a new subscription answers); given to the subscription request itself, they
            // would have the client ask again at once for ever: it waits a push interval.
            let wait = wait.map(|w| if w.is_zero() { self.push_interval() } else { w });
            self.state = TelemetryState::SubscriptionNeeded;
            self.wait_from(now, wait);
            return Applied::default();
        }
        if answer.client_instance_id == [0; 16] {
            // Java refuses the answer (IllegalArgumentException): treat as unrecoverable.
            self.enabled = false;
            return Applied::default();
        }
        let push_interval = if answer.push_interval_ms <= 0 {
            DEFAULT_PUSH_INTERVAL
        } else {
            Duration::from_millis(answer.push_interval_ms as u64).max(MIN_PUSH_INTERVAL)
        };
        let reset_last_values = self
            .subscription
            .as_ref()
            .is_some_and(|s| s.delta_temporality != answer.delta_temporality);
        let selector = MetricSelector::from_requested(&answer.requested_metrics);
        self.state = if selector == MetricSelector::Nothing {
            TelemetryState::SubscriptionNeeded
        } else {
            TelemetryState::PushNeeded
        };
        // The first push after a new subscription comes at 50–150 % of the interval, so clients
        // started together do not push together (Java's staggered interval).
        self.interval = if self.state == TelemetryState::PushNeeded {
            push_interval.mul_f64(0.5 + self.random_unit())
        } else {
            push_interval
        };
        self.last_request = Some(now);
        self.subscription = Some(Subscription {
            client_instance_id: answer.client_instance_id,
            subscription_id: answer.subscription_id,
            push_interval,
            accepted_compression_types: answer.accepted_compression_types,
            telemetry_max_bytes: answer.telemetry_max_bytes.max(0) as usize,
            delta_temporality: answer.delta_temporality,
            selector,
        });
        Applied { reset_last_values }
    }

    /// Applies a PushTelemetry answer received at `now`.
    pub fn on_push(&mut self, now: Instant, error_code: i16) {
        if self.state == TelemetryState::TerminatingPushInProgress {
            self.state = TelemetryState::Terminated;
            return;
        }
        if self.is_terminating() {
            return;
        }
        if error_code == codes::UNSUPPORTED_COMPRESSION_TYPE {
            self.compression_refused = true;
        }
        if let Some(wait) = self.error_wait(error_code) {
            self.state = TelemetryState::SubscriptionNeeded;
            self.wait_from(now, wait);
            return;
        }
        self.state = TelemetryState::PushNeeded;
        self.last_request = Some(now);
        self.interval = self
            .subscription
            .as_ref()
            .map_or(DEFAULT_PUSH_INTERVAL, |s| s.push_interval);
    }

    /// The request could not be sent or answered (connection lost, timeout). Retriable: ask for
    /// a subscription again after [`DEFAULT_PUSH_INTERVAL`]; not: turn telemetry off. A failed
    /// terminating push ends telemetry.
    pub fn on_failed(&mut self, now: Instant, retriable: bool) {
        if self.is_terminating() {
            self.state = TelemetryState::Terminated;
            return;
        }
        if retriable {
            self.wait_from(now, Some(DEFAULT_PUSH_INTERVAL));
        } else {
            self.enabled = false;
        }
        self.state = TelemetryState::SubscriptionNeeded;
    }

    /// The client is closing. Returns true when a terminating push is due (a subscription was
    /// received and telemetry is on); otherwise the machine is terminated at once.
    pub fn close(&mut self) -> bool {
        if self.is_terminating() {
            return false;
        }
        let push = self.enabled
            && self.subscription.is_some()
            && self.last_request.is_some()
            && self.state != TelemetryState::SubscriptionNeeded
            && self.state != TelemetryState::SubscriptionInProgress;
        self.state = if push {
            TelemetryState::TerminatingPushNeeded
        } else {
            TelemetryState::Terminated
        };
        push
    }

    /// The codec to push with: the broker's most preferred one that josefk can `encode`, else
    /// none (0).
    pub fn compression(&self, can_encode: impl Fn(i8) -> bool) -> i8 {
        if self.compression_refused {
            return 0;
        }
        self.subscription
            .as_ref()
            .and_then(|s| {
                s.accepted_compression_types
                    .iter()
                    .copied()
                    .find(|&c| c != 0 && can_encode(c))
            })
            .unwrap_or(0)
    }

    /// The subscription's push interval, or the default before there is one.
    fn push_interval(&self) -> Duration {
        self.subscription
            .as_ref()
            .map_or(DEFAULT_PUSH_INTERVAL, |s| s.push_interval)
    }

    fn is_terminating(&self) -> bool {
        matches!(
            self.state,
            TelemetryState::TerminatingPushNeeded
                | TelemetryState::TerminatingPushInProgress
                | TelemetryState::Terminated
        )
    }

    /// How long to wait after an error answer before asking for a subscription again; `None`
    /// inside `Some` turns telemetry off. `None`: not an error.
    fn error_wait(&self, code: i16) -> Option<Option<Duration>> {
        let interval = self.push_interval();
        match code {
            0 => None,
            codes::UNKNOWN_SUBSCRIPTION_ID | codes::UNSUPPORTED_COMPRESSION_TYPE => {
                Some(Some(Duration::ZERO))
            }
            codes::TELEMETRY_TOO_LARGE | codes::THROTTLING_QUOTA_EXCEEDED => Some(Some(interval)),
            // The broker will never accept what this client sends: telemetry off for good.
            codes::INVALID_REQUEST | codes::INVALID_RECORD | codes::UNSUPPORTED_VERSION => {
                Some(None)
            }
            // Anything unmapped is treated the same way, as Java does.
            _ => Some(None),
        }
    }

    fn wait_from(&mut self, now: Instant, wait: Option<Duration>) {
        match wait {
            Some(wait) => {
                self.interval = wait;
                self.last_request = Some(now);
            }
            None => self.enabled = false,
        }
    }

    /// A number in [0, 1) from the xorshift sequence.
    fn random_unit(&mut self) -> f64 {
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        (self.rng >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
#[path = "tests/telemetry.rs"]
mod tests;
