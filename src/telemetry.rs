//! Logging and tracing set-up: JSON lines (or human-readable text) on stderr, filtered
//! by `log.level` or `RUST_LOG`; and, when `telemetry.otlp_endpoint` is set, every span
//! exported over OTLP (the request span, service steps, backend calls), with W3C
//! `traceparent` accepted from callers and passed on to the embedder, the LLM and
//! Kafka ([`inject`]).

use std::collections::HashMap;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::{LogFormat, LogSettings, OtlpProtocol, TelemetrySettings};

/// Flushes the spans still buffered when it is shut down (or dropped): keep it until
/// the process ends.
pub struct Tracing {
    provider: Option<SdkTracerProvider>,
}

impl Tracing {
    /// Exports what is buffered and stops the exporter.
    pub fn shutdown(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(e) = provider.shutdown()
        {
            eprintln!("ragbrain: flushing traces: {e}");
        }
    }
}

impl Drop for Tracing {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Installs the global subscriber (a second call, as in tests, changes nothing) and,
/// with an OTLP endpoint, the span exporter. Call it inside the Tokio runtime: the gRPC
/// exporter runs on it.
pub fn init(log: &LogSettings, telemetry: &TelemetrySettings) -> Tracing {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let fmt = match log.format {
        LogFormat::Json => fmt
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .boxed(),
        LogFormat::Pretty => fmt.boxed(),
    };
    let provider = match exporter(telemetry) {
        Ok(provider) => provider,
        Err(e) => {
            eprintln!("ragbrain: traces are off: {e}");
            None
        }
    };
    let otel = provider.as_ref().map(|p| {
        opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
        tracing_opentelemetry::layer().with_tracer(p.tracer("ragbrain"))
    });
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(fmt)
        .with(otel)
        .try_init();
    Tracing { provider }
}

fn exporter(settings: &TelemetrySettings) -> Result<Option<SdkTracerProvider>, String> {
    if settings.otlp_endpoint.is_empty() {
        return Ok(None);
    }
    let builder = opentelemetry_otlp::SpanExporter::builder();
    let exporter = match settings.otlp_protocol {
        OtlpProtocol::Http => builder
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(&settings.otlp_endpoint)
            .build(),
        OtlpProtocol::Grpc => builder
            .with_tonic()
            .with_endpoint(&settings.otlp_endpoint)
            .build(),
    }
    .map_err(|e| e.to_string())?;
    let sampler = Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
        settings.sampling_ratio,
    )));
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    Ok(Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_sampler(sampler)
            .with_resource(resource)
            .build(),
    ))
}

/// Makes `span` a child of the caller's trace when `headers` carry a `traceparent`
/// (nothing happens while traces are off), and returns the trace id it belongs to, for
/// the logs (`None` while traces are off).
pub fn continue_trace(
    span: &tracing::Span,
    headers: &reqwest::header::HeaderMap,
) -> Option<String> {
    let parent = opentelemetry::global::get_text_map_propagator(|p| {
        p.extract(&opentelemetry_http::HeaderExtractor(headers))
    });
    if parent.span().span_context().is_valid() {
        let _ = span.set_parent(parent);
    }
    let context = span.context();
    let span_context = context.span().span_context().clone();
    span_context
        .is_valid()
        .then(|| span_context.trace_id().to_string())
}

/// The current span's W3C trace context as `traceparent` (and `tracestate`) entries,
/// for a call to another service; empty while traces are off.
pub fn inject() -> HashMap<String, String> {
    let mut out = HashMap::new();
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut out));
    out
}

/// [`inject`] into HTTP request headers.
pub fn inject_headers(headers: &mut reqwest::header::HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut opentelemetry_http::HeaderInjector(headers))
    });
}
