//! The HTTP layer's series, in distribution's shape where distribution has one
//! (`registry_http_*`, labelled by its route names and lowercase methods) and berth's own
//! beside them (`berth_http_*`). Every series is built with [`HttpMetrics::new`]: a
//! request costs an index computation and a few atomic adds, taken where the access line
//! is written (`log.rs`), when its response body ends.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use berth_metrics::{Collect, Counter, Encoder, Gauge, HTTP_DURATION, Histogram, Kind, SIZES};
use http::{Method, StatusCode};

use crate::endpoint::Endpoint;
use crate::ratelimit::RateLimiter;

/// The API route a request was dispatched to, as the `handler` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    Base,
    Catalog,
    Tags,
    Manifest,
    Blob,
    BlobUpload,
    BlobUploadChunk,
    Referrers,
}

/// distribution's route names (with `-` as `_`, as it labels them); `referrers` is
/// berth's, for the endpoint distribution 2.8 does not have.
const ROUTES: [&str; 8] = [
    "base",
    "catalog",
    "tags",
    "manifest",
    "blob",
    "blob_upload",
    "blob_upload_chunk",
    "referrers",
];

impl Route {
    /// The route as a path template, for the request span's `http.route`.
    pub(crate) fn template(self) -> &'static str {
        match self {
            Route::Base => "/v2/",
            Route::Catalog => "/v2/_catalog",
            Route::Tags => "/v2/{name}/tags/list",
            Route::Manifest => "/v2/{name}/manifests/{reference}",
            Route::Blob => "/v2/{name}/blobs/{digest}",
            Route::BlobUpload => "/v2/{name}/blobs/uploads/",
            Route::BlobUploadChunk => "/v2/{name}/blobs/uploads/{uuid}",
            Route::Referrers => "/v2/{name}/referrers/{digest}",
        }
    }

    pub(crate) fn of(endpoint: &Endpoint) -> Route {
        match endpoint {
            Endpoint::Base => Route::Base,
            Endpoint::Catalog => Route::Catalog,
            Endpoint::Tags { .. } => Route::Tags,
            Endpoint::Manifest { .. } => Route::Manifest,
            Endpoint::Blob { .. } => Route::Blob,
            Endpoint::Uploads { .. } => Route::BlobUpload,
            Endpoint::Upload { .. } => Route::BlobUploadChunk,
            Endpoint::Referrers { .. } => Route::Referrers,
        }
    }
}

/// Marks a response as one of a route's, for the layer that records it: `dispatch`
/// puts it in the response's extensions once the endpoint is known.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Routed(pub Route);

/// The `method` label values, lowercase as distribution's instrumentation writes them;
/// anything else is `other`.
const METHODS: [&str; 8] = [
    "get", "head", "put", "post", "patch", "delete", "options", "other",
];

pub(crate) fn method_index(m: &Method) -> usize {
    match *m {
        Method::GET => 0,
        Method::HEAD => 1,
        Method::PUT => 2,
        Method::POST => 3,
        Method::PATCH => 4,
        Method::DELETE => 5,
        Method::OPTIONS => 6,
        _ => 7,
    }
}

/// Status codes are 100 to 599 (`http::StatusCode` enforces it): one counter each,
/// so a code never needs a lookup.
const FIRST_CODE: u16 = 100;
const CODES: usize = 500;

/// The series of one route.
struct RouteMetrics {
    in_flight: Gauge,
    /// By method, then by status code.
    requests: Box<[Counter]>,
    /// By method.
    durations: Box<[Histogram]>,
    request_size: Histogram,
    response_size: Histogram,
}

impl RouteMetrics {
    fn new() -> Self {
        RouteMetrics {
            in_flight: Gauge::default(),
            requests: (0..METHODS.len() * CODES)
                .map(|_| Counter::default())
                .collect(),
            durations: (0..METHODS.len())
                .map(|_| Histogram::new(HTTP_DURATION))
                .collect(),
            request_size: Histogram::new(SIZES),
            response_size: Histogram::new(SIZES),
        }
    }
}

/// One finished request, as the metrics see it.
pub(crate) struct Finished {
    pub route: Route,
    pub method: usize,
    pub status: StatusCode,
    pub request_size: u64,
    pub response_size: u64,
    pub elapsed: Duration,
}

/// Every HTTP series of one router.
pub struct HttpMetrics {
    routes: [RouteMetrics; ROUTES.len()],
    received: Counter,
    sent: Counter,
    limiter: OnceLock<Arc<RateLimiter>>,
}

impl Default for HttpMetrics {
    fn default() -> Self {
        HttpMetrics::new()
    }
}

impl HttpMetrics {
    /// Every series, at zero.
    pub fn new() -> Self {
        HttpMetrics {
            routes: std::array::from_fn(|_| RouteMetrics::new()),
            received: Counter::default(),
            sent: Counter::default(),
            limiter: OnceLock::new(),
        }
    }

    /// Reports the refusals of `limiter` with the rest.
    pub(crate) fn watch_limiter(&self, limiter: Arc<RateLimiter>) {
        let _ = self.limiter.set(limiter);
    }

    /// A request reached its route's handler.
    pub(crate) fn started(&self, route: Route) {
        self.routes[route as usize].in_flight.inc();
    }

    /// A routed request's response body ended (or was dropped).
    pub(crate) fn finished(&self, f: &Finished) {
        let r = &self.routes[f.route as usize];
        r.in_flight.dec();
        let code = usize::from(f.status.as_u16().saturating_sub(FIRST_CODE)).min(CODES - 1);
        r.requests[f.method * CODES + code].inc();
        r.durations[f.method].observe_duration(f.elapsed);
        r.request_size.observe(f.request_size);
        r.response_size.observe(f.response_size);
    }

    /// Request body bytes read.
    pub(crate) fn received(&self, n: u64) {
        self.received.add(n);
    }

    /// Response body bytes sent, of every response (routed or not).
    pub(crate) fn sent(&self, n: u64) {
        self.sent.add(n);
    }
}

impl Collect for HttpMetrics {
    fn collect(&self, enc: &mut Encoder) {
        let name = "registry_http_in_flight_requests";
        enc.family(name, "The in-flight HTTP requests", Kind::Gauge);
        for (handler, r) in ROUTES.iter().zip(&self.routes) {
            enc.sample(name, &[("handler", handler)], r.in_flight.get());
        }
        // As the Prometheus client does, a code/method pair appears once it has been
        // seen: listing every possible code would be 4,000 lines of zeros.
        let name = "registry_http_requests_total";
        enc.family(name, "Total number of HTTP requests made.", Kind::Counter);
        let mut code_text = String::new();
        for (handler, r) in ROUTES.iter().zip(&self.routes) {
            for (m, method) in METHODS.iter().enumerate() {
                for code in 0..CODES {
                    let n = r.requests[m * CODES + code].get();
                    if n == 0 {
                        continue;
                    }
                    code_text.clear();
                    code_text.push_str(&(usize::from(FIRST_CODE) + code).to_string());
                    let labels = [
                        ("handler", *handler),
                        ("code", &code_text),
                        ("method", method),
                    ];
                    enc.sample(name, &labels, n);
                }
            }
        }
        let name = "registry_http_request_duration_seconds";
        enc.family(
            name,
            "The HTTP request latencies in seconds.",
            Kind::Histogram,
        );
        for (handler, r) in ROUTES.iter().zip(&self.routes) {
            for (method, h) in METHODS.iter().zip(r.durations.iter()) {
                if h.count() > 0 {
                    enc.histogram(name, &[("handler", handler), ("method", method)], h);
                }
            }
        }
        for (name, help, pick) in [
            (
                "registry_http_request_size_bytes",
                "The HTTP request sizes in bytes.",
                (|r: &RouteMetrics| &r.request_size) as fn(&RouteMetrics) -> &Histogram,
            ),
            (
                "registry_http_response_size_bytes",
                "The HTTP response sizes in bytes.",
                |r: &RouteMetrics| &r.response_size,
            ),
        ] {
            enc.family(name, help, Kind::Histogram);
            for (handler, r) in ROUTES.iter().zip(&self.routes) {
                enc.histogram(name, &[("handler", handler)], pick(r));
            }
        }
        let name = "berth_http_received_bytes_total";
        enc.family(name, "Request body bytes read.", Kind::Counter);
        enc.sample(name, &[], self.received.get());
        let name = "berth_http_sent_bytes_total";
        enc.family(name, "Response body bytes sent.", Kind::Counter);
        enc.sample(name, &[], self.sent.get());
        let name = "berth_http_rate_limited_total";
        enc.family(
            name,
            "Requests refused by berth.limits.ratelimit, by bucket.",
            Kind::Counter,
        );
        let (client, user) = self
            .limiter
            .get()
            .map_or((0, 0), |l| (l.refused_clients(), l.refused_users()));
        enc.sample(name, &[("bucket", "client")], client);
        enc.sample(name, &[("bucket", "user")], user);
    }
}

/// distribution's (the Prometheus client's) approximate request size: the request
/// line and header text, plus the declared body length.
pub(crate) fn approximate_request_size(req: &http::Request<axum::body::Body>) -> u64 {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    let head: usize = target
        + req.method().as_str().len()
        + 8 // "HTTP/1.1"
        + req
            .headers()
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len())
            .sum::<usize>();
    let body = req
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    head as u64 + body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_and_method_has_its_series() {
        assert_eq!(ROUTES.len(), Route::Referrers as usize + 1);
        let m = HttpMetrics::new();
        m.started(Route::Blob);
        m.finished(&Finished {
            route: Route::Blob,
            method: method_index(&Method::HEAD),
            status: StatusCode::NOT_FOUND,
            request_size: 10,
            response_size: 0,
            elapsed: Duration::from_millis(3),
        });
        let mut enc = Encoder::new();
        m.collect(&mut enc);
        let text = enc.finish();
        for line in [
            "registry_http_requests_total{handler=\"blob\",code=\"404\",method=\"head\"} 1\n",
            "registry_http_in_flight_requests{handler=\"blob\"} 0\n",
            "registry_http_request_duration_seconds_count{handler=\"blob\",method=\"head\"} 1\n",
            "registry_http_request_size_bytes_bucket{handler=\"blob\",le=\"1024\"} 1\n",
            "berth_http_rate_limited_total{bucket=\"client\"} 0\n",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
        assert_eq!(method_index(&Method::CONNECT), METHODS.len() - 1);
    }
}
