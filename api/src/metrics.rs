//! Prometheus metrics: request counts and latency by route and status, jobs published.

use std::{sync::LazyLock, time::Instant};

use poem::{Endpoint, IntoResponse, PathPattern, Request, Response};
use prometheus::{
    Encoder, HistogramOpts, HistogramVec, IntCounterVec, Opts, Registry, TextEncoder,
};

pub struct Metrics {
    registry: Registry,
    http_requests: IntCounterVec,
    http_duration: HistogramVec,
    jobs_published: IntCounterVec,
    job_publish_failures: IntCounterVec,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

impl Metrics {
    fn new() -> Metrics {
        let registry = Registry::new_custom(Some("attendance_api".into()), None)
            .expect("a valid metric prefix");
        let http_requests = IntCounterVec::new(
            Opts::new("http_requests_total", "HTTP requests by route and status"),
            &["method", "route", "status"],
        )
        .expect("valid metric");
        let http_duration = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            )
            .buckets(vec![
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ]),
            &["method", "route"],
        )
        .expect("valid metric");
        let jobs_published = IntCounterVec::new(
            Opts::new(
                "jobs_published_total",
                "Job messages confirmed by the queue, by kind and by who published (request or relay)",
            ),
            &["kind", "via"],
        )
        .expect("valid metric");
        let job_publish_failures = IntCounterVec::new(
            Opts::new(
                "job_publish_failures_total",
                "Job messages the queue did not take (left for the outbox relay)",
            ),
            &["kind", "via"],
        )
        .expect("valid metric");
        for c in [
            Box::new(http_requests.clone()) as Box<dyn prometheus::core::Collector>,
            Box::new(http_duration.clone()),
            Box::new(jobs_published.clone()),
            Box::new(job_publish_failures.clone()),
        ] {
            registry.register(c).expect("metric registered once");
        }
        Metrics {
            registry,
            http_requests,
            http_duration,
            jobs_published,
            job_publish_failures,
        }
    }
}

pub fn job_published(kind: &str, via: &str) {
    METRICS.jobs_published.with_label_values(&[kind, via]).inc();
}

pub fn job_publish_failed(kind: &str, via: &str) {
    METRICS
        .job_publish_failures
        .with_label_values(&[kind, via])
        .inc();
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&METRICS.registry.gather(), &mut out)
        .expect("encoding to a Vec cannot fail");
    String::from_utf8(out).expect("the text format is UTF-8")
}

/// Middleware: counts and times every request. The route label is the matched path
/// pattern (`/classes/:id`), never the raw path, so label cardinality stays bounded.
pub async fn track<E: Endpoint>(next: E, req: Request) -> poem::Result<Response> {
    let method = req.method().to_string();
    let started = Instant::now();
    let resp = match next.call(req).await {
        Ok(r) => r.into_response(),
        Err(e) => e.into_response(),
    };
    let route = resp
        .data::<PathPattern>()
        .map(|p| p.0.to_string())
        .unwrap_or_else(|| "unmatched".to_string());
    METRICS
        .http_requests
        .with_label_values(&[method.as_str(), route.as_str(), resp.status().as_str()])
        .inc();
    METRICS
        .http_duration
        .with_label_values(&[method.as_str(), route.as_str()])
        .observe(started.elapsed().as_secs_f64());
    Ok(resp)
}
