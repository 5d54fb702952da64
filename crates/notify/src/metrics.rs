//! The notifier's series: distribution's (`registry_notifications_*`, the names its
//! later releases export; 2.8.2 has the same counts only in expvar) and berth's own about
//! the durable queue. Counters are atomics touched by the writer and the delivery tasks,
//! never by a request; the pending gauge is worked out at scrape time from the head and
//! each cursor.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};

use berth_metrics::{Collect, Counter, Encoder, Kind};

use crate::queue::Shared;

/// One endpoint's counts.
#[derive(Default)]
pub struct EndpointCounters {
    /// Events taken from the queue for this endpoint.
    pub events: Counter,
    /// Events delivered (a 2xx or 3xx answer).
    pub successes: Counter,
    /// Events posted and refused (any other status).
    pub failures: Counter,
    /// Events whose post failed without an answer (connection, timeout).
    pub errors: Counter,
    /// Events dropped because the endpoint was more than the limit behind.
    pub dropped: Counter,
    /// Answers by status line (`200 OK`), counted per event as distribution does.
    pub statuses: Mutex<BTreeMap<String, u64>>,
}

impl EndpointCounters {
    /// Counts an answer for `events` events.
    pub fn status(&self, line: String, events: u64) {
        let mut s = self.statuses.lock().unwrap_or_else(PoisonError::into_inner);
        *s.entry(line).or_default() += events;
    }
}

/// Everything the notifier exports.
pub struct NotifyMetrics {
    pub(crate) shared: Arc<Shared>,
    pub(crate) endpoints: Vec<(String, Arc<EndpointCounters>)>,
}

impl Collect for NotifyMetrics {
    fn collect(&self, enc: &mut Encoder) {
        let name = "registry_notifications_events_total";
        enc.family(name, "The number of total events", Kind::Counter);
        for (ep, c) in &self.endpoints {
            for (kind, counter) in [
                ("Events", &c.events),
                ("Successes", &c.successes),
                ("Failures", &c.failures),
                ("Errors", &c.errors),
            ] {
                enc.sample(name, &[("type", kind), ("endpoint", ep)], counter.get());
            }
        }
        let name = "registry_notifications_pending";
        enc.family(name, "The gauge of pending events in queue", Kind::Gauge);
        let head = self.shared.head.load(Ordering::Acquire);
        for (i, (ep, _)) in self.endpoints.iter().enumerate() {
            let cursor = self.shared.cursors[i].load(Ordering::Acquire);
            let pending = i64::try_from(head.saturating_sub(cursor)).unwrap_or(i64::MAX);
            enc.sample(name, &[("endpoint", ep)], pending);
        }
        let name = "registry_notifications_status_total";
        enc.family(name, "The number of status code", Kind::Counter);
        for (ep, c) in &self.endpoints {
            let statuses = c.statuses.lock().unwrap_or_else(PoisonError::into_inner);
            for (code, n) in statuses.iter() {
                enc.sample(name, &[("code", code), ("endpoint", ep)], *n);
            }
        }
        let name = "berth_notifications_queue_depth";
        enc.family(
            name,
            "Events in the durable queue not yet delivered to (or dropped for) the endpoint",
            Kind::Gauge,
        );
        for (i, (ep, _)) in self.endpoints.iter().enumerate() {
            let cursor = self.shared.cursors[i].load(Ordering::Acquire);
            let depth = i64::try_from(head.saturating_sub(cursor)).unwrap_or(i64::MAX);
            enc.sample(name, &[("endpoint", ep)], depth);
        }
        let name = "berth_notifications_dropped_total";
        enc.family(
            name,
            "Events dropped, oldest first, because the endpoint was behind by more than berth.notifications.queue.maxevents",
            Kind::Counter,
        );
        for (ep, c) in &self.endpoints {
            enc.sample(name, &[("endpoint", ep)], c.dropped.get());
        }
        let name = "berth_notifications_queued_total";
        enc.family(name, "Events written to the durable queue", Kind::Counter);
        enc.sample(name, &[], self.shared.appended.get());
        let name = "berth_notifications_queue_write_errors_total";
        enc.family(
            name,
            "Events lost because the queue could not be written (their requests succeeded)",
            Kind::Counter,
        );
        enc.sample(name, &[], self.shared.write_errors.get());
    }
}
