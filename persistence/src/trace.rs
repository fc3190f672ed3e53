//! The W3C trace context of a command, carried through the outbox to its consumers.
//!
//! A command runs inside an OpenTelemetry span (the GraphQL request's, or a consumer's message):
//!
//! 1. the rows it writes to `task` store that span's context in `task.traceparent`
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

use std::collections::HashMap;

use lapin::types::{AMQPValue, FieldTable};
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header (and AMQP message header) that carries a trace context.
pub const TRACEPARENT: &str = "traceparent";

/// The span field that log lines show as `operation` (the GraphQL operation, `consume <topic>`).
pub const OPERATION_FIELD: &str = "operation";

/// `traceparent` of the current OpenTelemetry span, if there is one.
pub fn current_traceparent() -> Option<String> {
    traceparent_of(&Context::current())
}

/// `traceparent` of `cx`'s span (`00-<trace id>-<span id>-<flags>`), if it has a valid one.
pub fn traceparent_of(cx: &Context) -> Option<String> {
    if !cx.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::with_capacity(1);
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier.remove(TRACEPARENT)
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
    if let Some(parent) = traceparent {
        let _ = span.set_parent(context_of(parent));
    }
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
