//! The W3C trace context of a command, carried through the outbox to its consumers.
//!
//! A command runs inside an OpenTelemetry context (the GraphQL request's — a span, or without an
//! exporter only a context — or a consumer's message span):
//!
//! 1. the rows it writes to `task` store that context in `task.traceparent`
//!    ([`current_traceparent`]; the draw's procedure takes it as a parameter);
//! 2. the relay, however much later and in whichever process, opens a producer span under the
//!    stored context for each message it publishes ([`publish_span`]) and sends that span's
//!    context as the AMQP header `traceparent` ([`header_value`]);
//! 3. the consumer continues from the header: its span `consume` is a child of the producer span
//!    ([`consume_span`]), so what the message causes (and the outbox rows it writes in turn) stays
//!    in the draw's trace.
//!
//! Without an OpenTelemetry layer in the process's subscriber (or outside any span) there is no
//! context: rows get `NULL` and messages no header, exactly like rows written by older code,
//! and a stored context is forwarded as it is.

use std::sync::OnceLock;

use lapin::types::{AMQPValue, FieldTable};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TraceFlags};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header (and AMQP message header) that carries a trace context.
pub const TRACEPARENT: &str = "traceparent";

/// `traceparent` of the current OpenTelemetry span, if there is one.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&Context::current())
}

/// `traceparent` of `cx`'s span (`00-<trace id>-<span id>-<flags>`), if it has a valid one.
///
/// Written directly (one allocation), as the W3C propagator would: version `00` and only the
/// `sampled` flag.
pub fn traceparent_of(cx: &Context) -> Option<String> {
    let span = cx.span();
    let sc = span.span_context();
    if !sc.is_valid() {
        return None;
    }
    let mut out = String::with_capacity(55);
    out.push_str("00-");
    push_hex(&mut out, &sc.trace_id().to_bytes());
    out.push('-');
    push_hex(&mut out, &sc.span_id().to_bytes());
    out.push('-');
    push_hex(&mut out, &[sc.trace_flags().to_u8() & TraceFlags::SAMPLED.to_u8()]);
    Some(out)
}

/// Appends `bytes` in lower-case hexadecimal.
fn push_hex(out: &mut String, bytes: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 0x0f)]));
    }
}

/// The operation a span works for (the GraphQL operation, `consume <topic>`), carried as a
/// value of its OpenTelemetry context so that log lines emitted inside it, and inside its child
/// spans, can name it without any per-poll bookkeeping. Set once.
#[derive(Debug, Default)]
pub struct OperationName(OnceLock<Box<str>>);

impl OperationName {
    /// An operation not named yet ([`OperationName::set`] names it).
    pub fn unnamed() -> Self {
        Self::default()
    }

    /// An operation named `name`.
    pub fn named(name: &str) -> Self {
        let this = Self::default();
        this.set(name);
        this
    }

    /// Names the operation; only the first name counts.
    pub fn set(&self, name: &str) {
        let _ = self.0.set(name.into());
    }

    /// The operation's name, once it has one.
    pub fn get(&self) -> Option<&str> {
        self.0.get().map(|s| &**s)
    }
}

/// The name of the operation the current OpenTelemetry context works for, if any.
pub fn current_operation(cx: &Context) -> Option<&str> {
    cx.get::<OperationName>().and_then(OperationName::get)
}

/// The remote context a `traceparent` value names (an empty context when it is malformed).
pub fn context_of(traceparent: &str) -> Context {
    TraceContextPropagator::new().extract(&One(traceparent))
}

/// A carrier of one `traceparent` value.
struct One<'a>(&'a str);

impl Extractor for One<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == TRACEPARENT).then_some(self.0)
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT]
    }
}

/// The producer span of one relayed message, under the context its row stored.
pub fn publish_span(topic: &str, message_id: &str, traceparent: &str) -> tracing::Span {
    let span = tracing::info_span!(
        target: "persistence::rabbit::publisher",
        "publish",
        otel.name = %format_args!("{topic} publish"),
        otel.kind = "producer",
        messaging.system = "rabbitmq",
        messaging.destination.name = %topic,
        messaging.message.id = %message_id,
    );
    let _ = span.set_parent(context_of(traceparent));
    span
}

/// The `traceparent` header to send for a row whose stored context is `stored`: the context of
/// its producer span `span`, or the stored one itself when this process records no spans.
pub fn header_value(span: &tracing::Span, stored: &str) -> String {
    traceparent_of(&span.context()).unwrap_or_else(|| stored.to_owned())
}

/// The `traceparent` header of a delivered message, if it has one.
pub fn traceparent_header(headers: Option<&FieldTable>) -> Option<&str> {
    match headers?.inner().get(TRACEPARENT)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

/// The span a consumer handles one message in: `consume` with `topic`, `message.id`,
/// `attempts` (recorded later) and `operation = "consume <topic>"`, a child of the producer
/// span named by the message's `traceparent` header (a new trace without one).
pub fn consume_span(topic: &str, message_id: Option<&str>, traceparent: Option<&str>) -> tracing::Span {
    // The consumer's target, so a log filter for the consumer shows its spans too.
    let span = tracing::info_span!(
        target: "persistence::rabbit::consumer",
        "consume",
        otel.name = %format_args!("{topic} process"),
        otel.kind = "consumer",
        topic,
        message.id = message_id,
        attempts = tracing::field::Empty,
        operation = %format_args!("consume {topic}"),
    );
    // The parent (or none: a new trace) with the operation, for the log lines inside.
    let parent = traceparent.map_or_else(Context::new, context_of);
    let _ = span.set_parent(parent.with_value(OperationName::named(&format!("consume {topic}"))));
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_traceparent_survives_the_round_trip_through_a_context() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let cx = context_of(tp);
        assert_eq!(
            cx.span().span_context().trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(traceparent_of(&cx).as_deref(), Some(tp));
    }

    #[test]
    fn malformed_traceparents_and_no_span_give_no_context() {
        for bad in [
            "",
            "00-zz-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        ] {
            assert_eq!(traceparent_of(&context_of(bad)), None, "{bad}");
        }
        assert_eq!(current_traceparent(), None);
    }

    #[test]
    fn the_header_is_read_as_a_long_or_short_string() {
        let tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let mut long = FieldTable::default();
        long.insert(TRACEPARENT.into(), AMQPValue::LongString(tp.into()));
        assert_eq!(traceparent_header(Some(&long)), Some(tp));
        let mut short = FieldTable::default();
        short.insert(TRACEPARENT.into(), AMQPValue::ShortString(tp.into()));
        assert_eq!(traceparent_header(Some(&short)), Some(tp));
        assert_eq!(traceparent_header(None), None);
        assert_eq!(traceparent_header(Some(&FieldTable::default())), None);
    }
}
