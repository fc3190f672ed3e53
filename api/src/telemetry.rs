//! Logs and traces: the `tracing` subscriber (text or JSON lines on stderr, filtered by
//! `RUST_LOG` or the settings), OpenTelemetry spans and their OTLP export.
//!
//! * **Spans.** Every span of the service's own crates (`api`, `persistence`, `domain`) at INFO
//!   or above is an OpenTelemetry span, whatever the log filter says, so trace contexts
//!   propagate even when logs are quiet: the GraphQL request ([`request_span`]), each relayed
//!   message (`publish`) and each consumed message (`consume`), see [`persistence::trace`]. The
//!   relay's polling span `relay.batch` is left out: it belongs to no trace.
//! * **Export.** Only with an endpoint (`telemetry.otlp_endpoint`, or the standard
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` / `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`): finished spans go to a
//!   bounded queue (dropped when it is full) that a background thread exports over OTLP
//!   HTTP/protobuf in batches, each within `telemetry.export_timeout_ms`; a request never waits
//!   for the collector. Without an endpoint, trace ids are still made, propagated and logged.
//! * **Log correlation.** JSON lines emitted inside a span with an `operation` field (the
//!   GraphQL request, a consumed message) carry it as `operation`, and lines inside a traced
//!   span carry `trace_id` and `span_id`, at the top level of the line.

use std::cell::RefCell;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::{BatchSpanProcessor, SdkTracerProvider};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Subscriber};
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::{EnvFilter, FilterExt, Targets, filter_fn};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::{Context, Layer, SubscriberExt};
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
    let provider = tracer_provider(telemetry)?;
    let tracer = provider.tracer("big-market");
    // The service's own spans, whatever the log filter; not the relay's polling batches.
    let traced = Targets::new()
        .with_target("api", Level::INFO)
        .with_target("persistence", Level::INFO)
        .with_target("domain", Level::INFO)
        .and(filter_fn(|meta| meta.name() != "relay.batch"));
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer)
        .with_threads(false)
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
        .with(Operations)
        .with(json)
        .with(text)
        .try_init();
    let _ = INSTALLED.set(());
    Ok(Telemetry {
        provider: installed.is_ok().then_some(provider),
    })
}

/// The tracer provider: always sampling by the SDK's defaults (`OTEL_TRACES_SAMPLER`; parent
/// based, always on), exporting only when an endpoint is configured.
fn tracer_provider(telemetry: &TelemetrySettings) -> anyhow::Result<SdkTracerProvider> {
    let service = std::env::var("OTEL_SERVICE_NAME")
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| telemetry.service_name.clone());
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(service)
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
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

/// The span of one GraphQL request over HTTP: `graphql`, continuing the trace of a valid
/// `traceparent` header or starting a new one. Its `operation` is recorded once the operation
/// is known ([`record_operation`]).
pub fn request_span(headers: &poem::http::HeaderMap) -> tracing::Span {
    let span = tracing::info_span!(
        "graphql",
        otel.name = "graphql",
        otel.kind = "server",
        operation = tracing::field::Empty,
    );
    if let Some(parent) = headers
        .get(persistence::trace::TRACEPARENT)
        .and_then(|v| v.to_str().ok())
    {
        let _ = span.set_parent(persistence::trace::context_of(parent.trim()));
    }
    span
}

/// Names the current request span's operation, for its log lines and its exported span.
pub fn record_operation(label: &str) {
    let span = tracing::Span::current();
    span.record("operation", label);
    // The OpenTelemetry span started when the request was entered: rename it directly.
    span.context().span().update_name(label.to_owned());
}

/// The `traceresponse` value of `span` (`00-<trace id>-<span id>-<flags>`), if it is traced.
pub fn traceresponse(span: &tracing::Span) -> Option<String> {
    persistence::trace::traceparent_of(&span.context())
}

/// The operation of the spans this thread is in, kept by [`Operations`].
type OperationSlot = Arc<Mutex<Option<Arc<str>>>>;

thread_local! {
    /// The entered spans that have an `operation` field, innermost last.
    static ENTERED: RefCell<Vec<(Id, OperationSlot)>> = const { RefCell::new(Vec::new()) };
}

/// Keeps the `operation` field of spans that declare one, and which of them this thread is
/// in, so every log line can name its operation (whatever filter the log layer has).
struct Operations;

/// Visits the `operation` field of a span's values.
struct OperationVisitor(Option<Arc<str>>);

impl tracing::field::Visit for OperationVisitor {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == persistence::trace::OPERATION_FIELD {
            self.0 = Some(value.into());
        }
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == persistence::trace::OPERATION_FIELD {
            self.0 = Some(format!("{value:?}").into());
        }
    }
}

impl<S: Subscriber + for<'a> LookupSpan<'a>> Layer<S> for Operations {
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs
            .metadata()
            .fields()
            .field(persistence::trace::OPERATION_FIELD)
            .is_none()
        {
            return;
        }
        let mut visitor = OperationVisitor(None);
        attrs.record(&mut visitor);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut()
                .insert::<OperationSlot>(Arc::new(Mutex::new(visitor.0)));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let mut visitor = OperationVisitor(None);
        values.record(&mut visitor);
        let (Some(operation), Some(span)) = (visitor.0, ctx.span(id)) else {
            return;
        };
        if let Some(slot) = span.extensions().get::<OperationSlot>() {
            *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(operation);
        }
    }

    fn on_enter(&self, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        if let Some(slot) = span.extensions().get::<OperationSlot>() {
            let slot = slot.clone();
            ENTERED.with(|e| e.borrow_mut().push((id.clone(), slot)));
        }
    }

    fn on_exit(&self, id: &Id, _ctx: Context<'_, S>) {
        ENTERED.with(|e| {
            let mut entered = e.borrow_mut();
            if let Some(at) = entered.iter().rposition(|(entered, _)| entered == id) {
                entered.remove(at);
            }
        });
    }
}

/// The operation of the innermost entered span that has one.
fn current_operation() -> Option<Arc<str>> {
    ENTERED.with(|e| {
        e.borrow()
            .iter()
            .rev()
            .find_map(|(_, slot)| slot.lock().unwrap_or_else(PoisonError::into_inner).clone())
    })
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
        let operation = current_operation();
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
            write!(writer, "\"operation\":{},", serde_json::Value::from(&*operation))?;
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
