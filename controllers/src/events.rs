//! Recording Events: client-go's `tools/record` (`EventBroadcaster`, `EventCorrelator`,
//! `recordToSink`), as the controllers, the scheduler and the kubelet use it.
//!
//! - Recording never blocks the caller: an event goes into a queue of at most
//!   [`MAX_QUEUED_EVENTS`] and is dropped when the queue is full (client-go's broadcaster
//!   queue and its `ActionOrDrop`).
//! - One task per recorder writes them in order. An event seen before (same source,
//!   involved object, type, reason and message) updates the Event already written, with
//!   `count` + 1 and a new `lastTimestamp` (the correlator's aggregation; client-go sends a
//!   patch, kubesim an update of the version it wrote); when that Event is gone (its TTL
//!   expired) a new one is created, as client-go does on NotFound.
//! - A write that got an answer from the apiserver is never retried, whatever the answer
//!   (client-go gives up on any `StatusError`); one that got no answer is retried up to
//!   [`MAX_TRIES_PER_EVENT`] times, [`RETRY_SLEEP`] apart, the first wait jittered.
//! - A new Event is named `<involved object>.<timestamp in hex>` (client-go's
//!   `makeEvent`; a sequence number keeps two events of one millisecond apart).
//!
//! Events are reports, not cluster state: the recorder's task outlives a leadership term
//! (client-go's broadcaster belongs to the process), so a deposed leader's queued Events
//! may still land. The controller-single-leader invariant leaves Events out for that
//! reason.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use api::{ApiClient, ApiError, Clock, Event, EventType, Object, ObjectMeta, ObjectReference};
use futures::channel::mpsc;
use futures::StreamExt;

/// client-go's `maxQueuedEvents`.
pub const MAX_QUEUED_EVENTS: usize = 1000;
/// client-go's `maxTriesPerEvent`.
pub const MAX_TRIES_PER_EVENT: usize = 12;
/// client-go's `defaultSleepDuration` between tries.
pub const RETRY_SLEEP: Duration = Duration::from_secs(10);
/// client-go's correlator cache (`maxLruCacheEntries`); past it the oldest entry goes.
const MAX_REMEMBERED_EVENTS: usize = 4096;

/// What happened, before it is an Event object.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Report {
    involved: (String, String, String, String),
    type_: EventType,
    reason: String,
    message: String,
}

/// Emits Events on behalf of one component (`source`: "replicaset-controller",
/// "default-scheduler", "kubelet"). Cheap to clone; clones share the queue.
///
/// ```ignore
/// let recorder = EventRecorder::start(client, clock, "default-scheduler");
/// recorder.normal(&Object::Pod(pod), "Scheduled", format!("Successfully assigned {ns}/{name} to {node}"));
/// ```
#[derive(Clone)]
pub struct EventRecorder {
    /// One sender shared by the clones: a futures channel gives each sender a slot of its
    /// own, so a sender per clone would unbound the queue.
    queue: Arc<Mutex<mpsc::Sender<Report>>>,
}

impl EventRecorder {
    /// A recorder whose writer task runs on the current simulated node until it is killed.
    pub fn start(client: ApiClient, clock: Clock, source: &str) -> Self {
        let (queue, reports) = mpsc::channel(MAX_QUEUED_EVENTS);
        let sink = Sink { client, clock, source: source.to_string(), written: BTreeMap::new(), next_seq: 0 };
        madsim::task::spawn(sink.run(reports));
        Self { queue: Arc::new(Mutex::new(queue)) }
    }

    /// Records a `Normal` event about `object`.
    pub fn normal(&self, object: &Object, reason: &str, message: String) {
        self.record(object, EventType::Normal, reason, message);
    }

    /// Records a `Warning` event about `object`.
    pub fn warning(&self, object: &Object, reason: &str, message: String) {
        self.record(object, EventType::Warning, reason, message);
    }

    fn record(&self, object: &Object, type_: EventType, reason: &str, message: String) {
        let meta = object.metadata();
        let involved =
            (object.resource().kind().to_string(), meta.namespace.clone(), meta.name.clone(), meta.uid.clone());
        let report = Report { involved, type_, reason: reason.to_string(), message };
        let sent = self.queue.lock().expect("event queue lock").try_send(report);
        if sent.is_err() {
            coverage::reached!("controllers.events.dropped");
            tracing::debug!("event queue full or closed: event dropped");
        }
    }
}

struct Sink {
    client: ApiClient,
    clock: Clock,
    source: String,
    /// The Event last written for each report (the correlator's cache).
    written: BTreeMap<Report, Event>,
    next_seq: u64,
}

impl Sink {
    async fn run(mut self, mut reports: mpsc::Receiver<Report>) {
        while let Some(report) = reports.next().await {
            self.write(report).await;
        }
    }

    async fn write(&mut self, report: Report) {
        for attempt in 0..MAX_TRIES_PER_EVENT {
            if attempt > 0 {
                let sleep = if attempt == 1 { RETRY_SLEEP.mul_f64(madsim::rand::random::<f64>()) } else { RETRY_SLEEP };
                madsim::time::sleep(sleep).await;
            }
            match self.write_once(&report).await {
                Ok(event) => {
                    if self.written.len() >= MAX_REMEMBERED_EVENTS && !self.written.contains_key(&report) {
                        self.written.pop_first();
                    }
                    self.written.insert(report, event);
                    return;
                }
                Err(e) if e.is_retryable() => tracing::debug!("event not written ({e}); retrying"),
                Err(e) => {
                    tracing::debug!("event refused ({e}); dropped");
                    return;
                }
            }
        }
        tracing::debug!("event not written after {MAX_TRIES_PER_EVENT} tries; dropped");
    }

    /// One try: an update of the Event written before for the same report, or a create.
    async fn write_once(&mut self, report: &Report) -> Result<Event, ApiError> {
        let now = self.clock.now_ms();
        if let Some(previous) = self.written.get(report) {
            let mut repeated = previous.clone();
            repeated.count += 1;
            repeated.last_timestamp_ms = now;
            match self.client.update(Object::Event(repeated), None).await {
                Ok(updated) => {
                    coverage::reached!("controllers.events.aggregated");
                    return Ok(updated.into_event().unwrap_or_default());
                }
                Err(ApiError::NotFound { .. }) => coverage::reached!("controllers.events.recreated-after-expiry"),
                Err(e) => return Err(e),
            }
        }
        let (kind, namespace, name, uid) = report.involved.clone();
        let event_namespace = if namespace.is_empty() { "default".to_string() } else { namespace.clone() };
        self.next_seq += 1;
        let event = Event {
            metadata: ObjectMeta::named(
                event_namespace,
                format!("{name}.{:x}", now.saturating_mul(1_000_000) + self.next_seq),
            ),
            involved_object: ObjectReference { kind, namespace, name, uid },
            reason: report.reason.clone(),
            message: report.message.clone(),
            type_: report.type_,
            source: self.source.clone(),
            count: 1,
            first_timestamp_ms: now,
            last_timestamp_ms: now,
        };
        let created = self.client.create(Object::Event(event), None).await?;
        Ok(created.into_event().unwrap_or_default())
    }
}
