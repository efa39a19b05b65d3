//! The worker's HTTP endpoints, served on `[http] address`: `GET /health-check` (200 or 503,
//! with the health check's JSON) and `GET /metrics` (Prometheus text). While it serves, the
//! worker writes a health-check probe every `[health] probe_interval_seconds`, so that the
//! probe in storage stays fresh for as long as the pipeline flows.

use std::convert::Infallible;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use anyhow::Context as _;
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pubsync_client::StorageClient;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::backends::{AnyKeyValueStore, AnyStorage};
use crate::health::{self, Health};
use crate::{App, AppQueue};

/// Histogram buckets in seconds, from a millisecond to five minutes.
const BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0,
];

/// What the endpoints answer from.
struct Endpoints {
    app: App,
    /// A worker of its own, for the queue depths and backlogs: a look at them never waits
    /// behind the running worker's work.
    worker: pubsync_backend::Worker<AppQueue, AnyKeyValueStore>,
    client: StorageClient<AnyStorage>,
    metrics: PrometheusHandle,
    /// The last probe write: when, or why it failed.
    last_probe: Mutex<Option<Result<SystemTime, String>>>,
}

/// The running endpoints and the probe writer; dropping it stops both.
pub(crate) struct Server {
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Installs the Prometheus recorder, binds `[http] address` and starts serving, and starts
/// writing probes; `None` when no address is configured.
pub(crate) async fn start(app: &App) -> anyhow::Result<Option<Server>> {
    let Some(address) = app.settings().http_address.clone() else {
        return Ok(None);
    };
    let listener = TcpListener::bind(&address)
        .await
        .with_context(|| format!("cannot serve HTTP on {address} ([http] address)"))?;
    let mut builder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
        .context("the metrics' buckets")?;
    if !app.settings().queue_prefix.is_empty() {
        builder = builder.add_global_label("queue_prefix", app.settings().queue_prefix.clone());
    }
    let metrics = builder
        .install_recorder()
        .context("installing the metrics recorder")?;
    pubsync_backend::metrics::describe();
    let endpoints = Arc::new(Endpoints {
        app: app.clone(),
        worker: app.build_worker().await?,
        client: app.client().await.context("opening the storage")?,
        metrics,
        last_probe: Mutex::new(None),
    });
    tracing::info!(address = %listener.local_addr().map_or(address, |a| a.to_string()), "serving GET /health-check and GET /metrics");
    let serving = tokio::spawn(serve(listener, endpoints.clone()));
    let probing = tokio::spawn(probe(endpoints));
    Ok(Some(Server {
        tasks: vec![serving, probing],
    }))
}

/// Writes a probe every probe interval, and keeps the metrics' histograms in shape.
async fn probe(endpoints: Arc<Endpoints>) {
    let mut interval = tokio::time::interval(endpoints.app.settings().health.probe_interval);
    loop {
        interval.tick().await;
        let written = health::write_probe(&endpoints.app).await;
        if let Err(error) = &written {
            tracing::warn!(error = %error, "health-check probe not written");
        }
        *endpoints
            .last_probe
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(written);
        endpoints.metrics.run_upkeep();
    }
}

async fn serve(listener: TcpListener, endpoints: Arc<Endpoints>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(error = %error, "accepting an HTTP connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let endpoints = endpoints.clone();
                async move { Ok::<_, Infallible>(endpoints.respond(request).await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(error = %error, "HTTP connection ended with an error");
            }
        });
    }
}

impl Endpoints {
    async fn respond(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        match (request.method(), request.uri().path()) {
            (&Method::GET, "/health-check") => {
                let health = self.health().await;
                let status = StatusCode::from_u16(health.http_status())
                    .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
                response(status, "application/json", health.to_json().to_string())
            }
            (&Method::GET, "/metrics") => match self.worker.status().await {
                Ok(status) => {
                    pubsync_backend::metrics::record_status(&status);
                    let health =
                        health::read(&self.app, &self.client, self.app.settings().health.max_age)
                            .await;
                    metrics::gauge!(pubsync_backend::metrics::READ_MODEL_AGE)
                        .set(health.age().map_or(f64::NAN, |age| age.as_secs_f64()));
                    self.metrics.run_upkeep();
                    response(
                        StatusCode::OK,
                        "text/plain; version=0.0.4",
                        self.metrics.render(),
                    )
                }
                Err(error) => response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "text/plain",
                    format!("reading the queues and outboxes failed: {error}\n"),
                ),
            },
            (_, "/health-check" | "/metrics") => response(
                StatusCode::METHOD_NOT_ALLOWED,
                "text/plain",
                "only GET\n".to_owned(),
            ),
            _ => response(
                StatusCode::NOT_FOUND,
                "text/plain",
                "GET /health-check or GET /metrics\n".to_owned(),
            ),
        }
    }

    /// The storage's probe, and whether the last probe write worked.
    async fn health(&self) -> Health {
        let max_age = self.app.settings().health.max_age;
        let write = self
            .last_probe
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        Health {
            write,
            ..health::read(&self.app, &self.client, max_age).await
        }
    }
}

fn response(status: StatusCode, content_type: &str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    if let Ok(value) = content_type.parse() {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}
