//! Logs and traces: the `tracing` subscriber (text or JSON lines on stderr, filtered by
//! `RUST_LOG` or the settings), OpenTelemetry spans and their OTLP export.
//!
//! * **Spans.** Every span of the service's own crates (`api`, `persistence`, `domain`) at INFO
//!   or above is an OpenTelemetry span, whatever the log filter says, so trace contexts
//!   propagate even when logs are quiet: the GraphQL request ([`RequestTrace`]), each relayed
//!   message (`publish`) and each consumed message (`consume`), see [`persistence::trace`]. The
//!   relay's polling span `relay.batch` is left out: it belongs to no trace.
//! * **Export.** Only with an endpoint (`telemetry.otlp_endpoint`, or the standard
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`): finished spans go to a
//!   bounded queue (dropped when it is full) that a background thread exports over OTLP
//!   HTTP/protobuf in batches, each within `telemetry.export_timeout_ms`; a request never waits
//!   for the collector. Without an endpoint, trace ids are still made, propagated and logged,
//!   but nothing is recorded: spans are dropped by the sampler (their ids exist, nothing else
//!   is kept), and a GraphQL request gets no span at all, only a context ([`RequestTrace`]).
//! * **Log correlation.** JSON lines emitted inside the GraphQL request or a consumed message
//!   carry its operation as `operation`, and lines inside a traced span carry `trace_id` and
//!   `span_id`, at the top level of the line. The operation travels as a value of the span's
//!   OpenTelemetry context ([`persistence::trace::OperationName`]), so no layer has to see
//!   every span and event of every library.

use std::borrow::Cow;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_graphql::parser::types::{ExecutableDocument, Selection};
use opentelemetry::context::FutureExt as _;
use opentelemetry::trace::{SpanContext, TraceContextExt, TraceFlags, TraceState, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{BatchSpanProcessor, IdGenerator as _, RandomIdGenerator, Sampler, SdkTracerProvider};
use persistence::trace::OperationName;
use tracing::{Event, Instrument as _, Level, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets, filter_fn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Layer, SubscriberExt};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;

use crate::settings::{LogSettings, TelemetrySettings};

/// The response header that answers a request's trace context (W3C Trace Context Level 2).
pub const TRACERESPONSE: &str = "traceresponse";

/// The installed tracer provider; [`Telemetry::shutdown`] flushes it.
#[must_use = "call shutdown() when the process stops, so the last spans are exported"]
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Telemetry {
    /// Exports the spans still queued (within the export deadline) and stops the exporter.
    pub fn shutdown(self) {
        if let Some(provider) = self.provider
            && let Err(e) = provider.shutdown()
        {
            tracing::warn!(error = %e, "trace export did not shut down cleanly");
        }
    }
}

/// Installs the global subscriber without trace export (once; later calls are ignored, which
/// tests rely on).
pub fn init(log: &LogSettings) {
    // Without an endpoint nothing can fail, and there is nothing to flush.
    let _ = init_with(log, &TelemetrySettings::default());
}

/// Installs the global subscriber with OpenTelemetry spans, exported over OTLP when an endpoint
/// is configured (once; later calls change nothing and return a handle without a provider).
///
/// # Errors
/// When the OTLP exporter cannot be built (a malformed endpoint).
pub fn init_with(log: &LogSettings, telemetry: &TelemetrySettings) -> anyhow::Result<Telemetry> {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    if INSTALLED.get().is_some() {
        return Ok(Telemetry { provider: None });
    }
    let exporting = otlp_endpoint(telemetry).is_some();
    let provider = tracer_provider(telemetry, exporting)?;
    let tracer = provider.tracer("big-market");
    RECORDING.store(exporting, Ordering::Relaxed);
    // The service's own spans, whatever the log filter; not the relay's polling batches.
    let traced = Targets::new()
        .with_target("api", Level::INFO)
        .with_target("persistence", Level::INFO)
        .with_target("domain", Level::INFO)
        .and(filter_fn(|meta| meta.name() != "relay.batch"));
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
        .with_location(exporting)
        .with_tracked_inactivity(false)
        .with_filter(traced);
    let filter = || EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&log.filter));
    let json = log.json.then(|| {
        tracing_subscriber::fmt::layer()
            .json()
            .event_format(Correlated(tracing_subscriber::fmt::format().json()))
            .with_writer(std::io::stderr)
            .with_filter(filter())
    });
    let text = (!log.json).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_filter(filter())
    });
    let installed = tracing_subscriber::registry()
        .with(otel)
        .with(json)
        .with(text)
        .try_init();
    let _ = INSTALLED.set(());
    Ok(Telemetry {
        provider: installed.is_ok().then_some(provider),
    })
}

/// Whether spans are recorded (an exporter is configured); without one the provider drops
/// every span and [`record_operation`] does not rename it.
static RECORDING: AtomicBool = AtomicBool::new(false);

/// The tracer provider: exporting when an endpoint is configured, sampling then by the SDK's
/// defaults (`OTEL_TRACES_SAMPLER`; parent based, always on); without an endpoint it records
/// nothing (`always_off`), so spans still get their ids (trace context is still continued,
/// stored and sent on) but keep no data.
fn tracer_provider(telemetry: &TelemetrySettings, exporting: bool) -> anyhow::Result<SdkTracerProvider> {
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| telemetry.service_name.clone());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if !exporting {
        builder = builder.with_sampler(Sampler::AlwaysOff);
    }
    if let Some(endpoint) = otlp_endpoint(telemetry) {
        let mut exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_timeout(Duration::from_millis(telemetry.export_timeout_ms.max(1)));
        if let Some(url) = endpoint {
            exporter = exporter.with_endpoint(url);
        }
        let exporter = exporter
            .build()
            .map_err(|e| anyhow::anyhow!("building the OTLP trace exporter: {e}"))?;
        builder = builder.with_span_processor(BatchSpanProcessor::builder(exporter).build());
    }
    Ok(builder.build())
}

/// Where spans are exported: `Some(Some(url))` for `telemetry.otlp_endpoint` (its `/v1/traces`
/// path added like the standard variable's), `Some(None)` when only the standard environment
/// variables name one (the exporter reads them), `None` for no export.
fn otlp_endpoint(telemetry: &TelemetrySettings) -> Option<Option<String>> {
    let configured = telemetry.otlp_endpoint.trim();
    if !configured.is_empty() {
        let base = configured.trim_end_matches('/');
        return Some(Some(if base.ends_with("/v1/traces") {
            base.to_owned()
        } else {
            format!("{base}/v1/traces")
        }));
    }
    let from_env = ["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|s| !s.trim().is_empty()));
    from_env.then_some(None)
}

/// How one GraphQL request over HTTP is traced: continuing a valid `traceparent` header or
/// starting a trace, with the operation named once known ([`record_operation`]).
///
/// * While spans are exported, the request runs in the span `graphql` (renamed to its
///   operation), which the exporter sends with everything under it.
/// * Otherwise nothing would record a span, so none is made: the request runs in an
///   OpenTelemetry context of its own (a fresh span id in the caller's trace, or a new trace)
///   that is attached while it is polled. Outbox rows, `traceresponse` and JSON log lines get
///   the same ids as with a span, at the cost of two random numbers.
pub enum RequestTrace {
    /// The request's span (spans are exported).
    Span(tracing::Span),
    /// The request's context (nothing is exported).
    Context(opentelemetry::Context),
}

impl RequestTrace {
    /// The trace of a request with `headers`.
    pub fn start(headers: &poem::http::HeaderMap) -> Self {
        let parent = headers
            .get(persistence::trace::TRACEPARENT)
            .and_then(|v| v.to_str().ok())
            .map(|tp| persistence::trace::context_of(tp.trim()));
        if RECORDING.load(Ordering::Relaxed) {
            let span = tracing::info_span!(
                "graphql",
                otel.name = "graphql",
                otel.kind = "server",
                operation = tracing::field::Empty,
            );
            let parent = parent.unwrap_or_default();
            let _ = span.set_parent(parent.with_value(OperationName::unnamed()));
            return Self::Span(span);
        }
        let ids = RandomIdGenerator::default();
        let (trace_id, trace_state) = match &parent {
            Some(cx) if cx.span().span_context().is_valid() => {
                let span = cx.span();
                let parent = span.span_context();
                (parent.trace_id(), parent.trace_state().clone())
            }
            _ => (ids.new_trace_id(), TraceState::default()),
        };
        // Not sampled, as the span the SDK would make without an exporter.
        let own = SpanContext::new(trace_id, ids.new_span_id(), TraceFlags::default(), false, trace_state);
        Self::Context(
            opentelemetry::Context::new()
                .with_remote_span_context(own)
                .with_value(OperationName::unnamed()),
        )
    }

    /// Runs `f` (the request) in this trace.
    pub async fn run<F: Future>(&self, f: F) -> F::Output {
        match self {
            Self::Span(span) => f.instrument(span.clone()).await,
            Self::Context(cx) => f.with_context(cx.clone()).await,
        }
    }

    /// The OpenTelemetry context of this trace (a stream run in it with
    /// `opentelemetry::context::FutureExt::with_context` is in the trace while polled).
    pub fn context(&self) -> opentelemetry::Context {
        match self {
            Self::Span(span) => span.context(),
            Self::Context(cx) => cx.clone(),
        }
    }

    /// The `traceresponse` value (`00-<trace id>-<span id>-<flags>`).
    pub fn traceresponse(&self) -> Option<String> {
        match self {
            Self::Span(span) => persistence::trace::traceparent_of(&span.context()),
            Self::Context(cx) => persistence::trace::traceparent_of(cx),
        }
    }
}

/// How logs and traces name an operation of `doc`: `requested` (its `operationName`), its
/// operation's name, or for an anonymous one its type and root fields (`mutation draw`).
pub fn operation_label<'a>(requested: Option<&'a str>, doc: &'a ExecutableDocument) -> Cow<'a, str> {
    if let Some(name) = requested {
        return Cow::Borrowed(name);
    }
    let Some((name, op)) = doc.operations.iter().next() else {
        return Cow::Borrowed("-");
    };
    if let Some(name) = name {
        return Cow::Borrowed(name.as_str());
    }
    let mut label = op.node.ty.to_string();
    let mut sep = ' ';
    for s in &op.node.selection_set.node.items {
        if let Selection::Field(f) = &s.node {
            label.push(sep);
            label.push_str(f.node.name.node.as_str());
            sep = ',';
        }
    }
    Cow::Owned(label)
}

/// Names the current request's operation, for its log lines and its exported span.
pub fn record_operation(label: &str) {
    let cx = opentelemetry::Context::current();
    if let Some(name) = cx.get::<OperationName>() {
        name.set(label);
    }
    if RECORDING.load(Ordering::Relaxed) {
        tracing::Span::current().record("operation", label);
        // The OpenTelemetry span started when the request was entered: rename it directly.
        cx.span().update_name(label.to_owned());
    }
}

/// A JSON line format that puts `trace_id`, `span_id` and `operation` first in the line of an
/// event emitted inside a traced span; the rest is the wrapped format's line as it was.
struct Correlated<F>(F);

impl<S, N, F> FormatEvent<S, N> for Correlated<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(&self, ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> std::fmt::Result {
        let mut line = String::with_capacity(256);
        self.0.format_event(ctx, Writer::new(&mut line), event)?;
        let cx = opentelemetry::Context::current();
        let span = cx.span();
        let trace = span.span_context();
        let operation = persistence::trace::current_operation(&cx);
        let rest = match line.strip_prefix('{') {
            Some(rest) if trace.is_valid() || operation.is_some() => rest,
            _ => return writer.write_str(&line),
        };
        writer.write_char('{')?;
        if trace.is_valid() {
            write!(
                writer,
                "\"trace_id\":\"{}\",\"span_id\":\"{}\",",
                trace.trace_id(),
                trace.span_id()
            )?;
        }
        if let Some(operation) = operation {
            write!(writer, "\"operation\":{},", serde_json::Value::from(operation))?;
        }
        writer.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_configured_endpoint_is_a_base_url_like_the_standard_variable() {
        let with = |url: &str| TelemetrySettings {
            otlp_endpoint: url.to_owned(),
            ..TelemetrySettings::default()
        };
        assert_eq!(
            otlp_endpoint(&with("http://collector:4318")),
            Some(Some("http://collector:4318/v1/traces".to_owned()))
        );
        assert_eq!(
            otlp_endpoint(&with("http://collector:4318/")),
            Some(Some("http://collector:4318/v1/traces".to_owned()))
        );
        assert_eq!(
            otlp_endpoint(&with("http://collector:4318/v1/traces")),
            Some(Some("http://collector:4318/v1/traces".to_owned()))
        );
    }
}
