//! OpenTelemetry traces through the outbox (docs/OPERATIONS.md §12): a draw's trace context
//! goes from the GraphQL request into its `task` rows, the relay's AMQP header `traceparent`
//! and the consumer's span and log lines, and is exported over OTLP when configured.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use lapin::options::{BasicGetOptions, BasicNackOptions};
use lapin::types::AMQPValue;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use test_support::app::{CONFIG, Logs, SHARD_01, TestApp, spawn_app_with};

const BIN: &str = env!("CARGO_BIN_EXE_big-market");
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const CALLER_SPAN: &str = "00f067aa0ba902b7";

/// `(trace id, span id)` of a `traceparent` / `traceresponse` value.
fn ids(traceparent: &str) -> (String, String) {
    let parts: Vec<&str> = traceparent.split('-').collect();
    assert_eq!(parts.len(), 4, "not a traceparent: {traceparent}");
    assert_eq!(parts[0], "00", "{traceparent}");
    assert_eq!(parts[1].len(), 32, "{traceparent}");
    assert_eq!(parts[2].len(), 16, "{traceparent}");
    (parts[1].to_owned(), parts[2].to_owned())
}

/// Quota (150 draws) and a rigged strategy: every draw of xiaofuge wins award 101 (5 credits).
async fn ready_to_draw(app: &TestApp) {
    app.rig_draws_to_award_101().await;
    app.exec(CONFIG, "UPDATE award SET award_config = '5,5' WHERE award_id = 101")
        .await;
    app.ok("mutation { armActivity(activityId: 100301) }").await;
    app.ok(r#"mutation { rechargeQuota(userId: "xiaofuge", sku: 9011, outBusinessNo: "trace-1") { orderId } }"#)
        .await;
}

/// Draws as xiaofuge at `address`, with `traceparent` when given; returns the response's
/// `traceresponse` header and the draw's `messageId`.
async fn draw(app: &TestApp, address: &str, traceparent: Option<&str>) -> (String, String) {
    let mut req = app
        .client
        .post(format!("{address}/graphql"))
        .bearer_auth(app.user_token("xiaofuge"))
        .json(&json!({ "query": "mutation Draw { draw(activityId: 100301) { messageId } }" }));
    if let Some(tp) = traceparent {
        req = req.header("traceparent", tp);
    }
    let resp = req.send().await.unwrap();
    let answered = resp
        .headers()
        .get("traceresponse")
        .expect("a traceresponse header")
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    let message_id = body["data"]["draw"]["messageId"]
        .as_str()
        .unwrap_or_else(|| panic!("draw failed: {body}"))
        .to_owned();
    (answered, message_id)
}

/// The `traceparent` stored with each outbox row of the draw of `message_id`: its `send_award`
/// row and the rows written after it (with it, when no consumer runs).
async fn stored_traceparents(app: &TestApp, message_id: &str) -> Vec<Option<String>> {
    app.sql(
        SHARD_01,
        &format!(
            "SELECT traceparent FROM task WHERE id >= (SELECT id FROM task WHERE message_id = '{message_id}') \
             ORDER BY id"
        ),
    )
    .await
    .iter()
    .map(|r| r["traceparent"].as_str().map(str::to_owned))
    .collect()
}

async fn wait_for_state(app: &TestApp, message_id: &str, state: &str) {
    let query = format!(r#"{{ task(messageId: "{message_id}") {{ state }} }}"#);
    app.eventually(20, &query, |d| d["task"]["state"] == state).await;
}

#[tokio::test]
async fn a_draws_trace_goes_through_its_outbox_row_and_message_header_to_the_consumer() {
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    ready_to_draw(&app).await;

    // The request continues the caller's trace, in a span of its own.
    let caller = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let (answered, message_id) = draw(&app, &app.address, Some(&caller)).await;
    let (trace, request_span) = ids(&answered);
    assert_eq!(trace, TRACE, "the answer continues the caller's trace");
    assert_ne!(request_span, CALLER_SPAN, "the request has its own span");

    // Its outbox rows (send_award, the account change) store the request's context.
    let stored = stored_traceparents(&app, &message_id).await;
    assert!(stored.len() >= 2, "the draw's rows: {stored:?}");
    for tp in &stored {
        assert_eq!(
            tp.as_deref(),
            Some(answered.as_str()),
            "every row of the draw: {stored:?}"
        );
    }

    // Operators find the trace from the event.
    let task = app
        .ok(&format!(r#"{{ task(messageId: "{message_id}") {{ traceId }} }}"#))
        .await;
    assert_eq!(task["task"]["traceId"], TRACE, "{task}");

    // A relay process (no consumers) publishes the message with the header `traceparent`:
    // the same trace, the relay's producer span.
    let relay = app.spawn_relay_process(BIN, |s| s.consumers.enabled = false);
    wait_for_state(&app, &message_id, "PUBLISHED").await;
    let channel = app.amqp().await;
    let got = channel
        .basic_get(
            app.queue("send_award").as_str().into(),
            BasicGetOptions { no_ack: false },
        )
        .await
        .unwrap()
        .expect("the draw's message in its queue");
    let header = match got
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("traceparent"))
    {
        Some(AMQPValue::LongString(s)) => String::from_utf8(s.as_bytes().to_vec()).unwrap(),
        other => panic!("no traceparent header: {other:?}"),
    };
    let (header_trace, producer_span) = ids(&header);
    assert_eq!(header_trace, TRACE);
    assert_ne!(producer_span, request_span, "the relay publishes in a span of its own");
    got.delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    drop(relay);

    // A consumer process takes it: its JSON log line of the message carries the trace id and
    // the operation, in a span of its own.
    let consumer = app.spawn_relay_process_with(BIN, Logs::Captured, |s| {
        s.consumers.enabled = true;
        s.log.json = true;
        s.log.filter = "warn,persistence::rabbit::consumer=debug".into();
    });
    let line = consumer
        .wait_for_log(20, |l| l.contains("message handled") && l.contains(&message_id))
        .await;
    let line: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(line["trace_id"], TRACE, "{line}");
    assert_eq!(line["operation"], "consume send_award", "{line}");
    let consumer_span = line["span_id"].as_str().unwrap().to_owned();
    assert_ne!(consumer_span, producer_span, "{line}");
    assert_ne!(consumer_span, request_span, "{line}");
    wait_for_state(&app, &message_id, "DELIVERED").await;
    drop(consumer);
    app.cleanup().await;
}

#[tokio::test]
async fn a_request_without_a_valid_traceparent_starts_a_trace_and_answers_it() {
    let app = spawn_app_with(|s| s.consumers.enabled = false).await;
    ready_to_draw(&app).await;
    let (first, message_id) = draw(&app, &app.address, None).await;
    let (trace, _) = ids(&first);
    assert_ne!(trace, "0".repeat(32));
    let stored = stored_traceparents(&app, &message_id).await;
    assert!(!stored.is_empty());
    for tp in &stored {
        assert_eq!(tp.as_deref(), Some(first.as_str()), "{stored:?}");
    }
    // A malformed header is ignored: a new trace again, not the previous one.
    let (second, _) = draw(&app, &app.address, Some("00-not-a-trace-01")).await;
    let (second_trace, _) = ids(&second);
    assert_ne!(second_trace, trace);
    assert_ne!(second_trace, "0".repeat(32));
    // Every GraphQL answer names its trace, queries too.
    let resp = app
        .client
        .post(format!("{}/graphql", app.address))
        .json(&json!({ "query": "{ __typename }" }))
        .send()
        .await
        .unwrap();
    ids(resp.headers()["traceresponse"].to_str().unwrap());
    wait_for_state(&app, &message_id, "PUBLISHED").await;
    app.cleanup().await;
}

/// A stand-in OTLP/HTTP collector: answers 200 to every request and keeps the bodies.
async fn collector() -> (String, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let sink = bodies.clone();
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let sink = sink.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    // One request: headers, then Content-Length bytes of body.
                    let head_end = loop {
                        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break at + 4;
                        }
                        let mut chunk = [0u8; 8192];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    while buf.len() < head_end + length {
                        let mut chunk = [0u8; 8192];
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let body = buf[head_end..head_end + length].to_vec();
                    buf.drain(..head_end + length);
                    if head.starts_with("post /v1/traces ") {
                        sink.lock().unwrap().push(body);
                    }
                    let ok = b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\ncontent-length: 0\r\n\r\n";
                    if socket.write_all(ok).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (address, bodies)
}

/// One exported span: (trace id, span id, parent span id, name), ids in hex.
type Exported = (String, String, String, String);

fn exported(bodies: &Mutex<Vec<Vec<u8>>>) -> Vec<Exported> {
    let hex = |b: &[u8]| b.iter().map(|x| format!("{x:02x}")).collect::<String>();
    let mut out = Vec::new();
    for body in bodies.lock().unwrap().iter() {
        let req = ExportTraceServiceRequest::decode(body.as_slice()).expect("an OTLP protobuf body");
        for rs in req.resource_spans {
            let service = rs
                .resource
                .iter()
                .flat_map(|r| &r.attributes)
                .find(|a| a.key == "service.name")
                .and_then(|a| a.value.as_ref())
                .map(|v| format!("{:?}", v.value));
            assert!(
                service.as_deref().is_some_and(|s| s.contains("big-market")),
                "service.name: {service:?}"
            );
            for ss in rs.scope_spans {
                for s in ss.spans {
                    out.push((hex(&s.trace_id), hex(&s.span_id), hex(&s.parent_span_id), s.name));
                }
            }
        }
    }
    out
}

#[tokio::test]
async fn spans_of_a_draw_are_exported_over_otlp_as_one_trace() {
    let (endpoint, bodies) = collector().await;
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    ready_to_draw(&app).await;
    let server = app
        .spawn_process(BIN, |s| {
            s.relay.enabled = true;
            s.consumers.enabled = true;
            s.telemetry.otlp_endpoint = endpoint.clone();
            s.telemetry.export_timeout_ms = 2_000;
        })
        .await;
    let caller = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let (answered, message_id) = draw(&app, &server.address, Some(&caller)).await;
    let (_, request_span) = ids(&answered);
    wait_for_state(&app, &message_id, "DELIVERED").await;

    // The batch processor exports every few seconds.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let find = |spans: &[Exported], name: &str| spans.iter().find(|s| s.0 == TRACE && s.3 == name).cloned();
    let (request, publish, consume) = loop {
        let spans = exported(&bodies);
        if let (Some(r), Some(p), Some(c)) = (
            find(&spans, "Draw"),
            find(&spans, "send_award publish"),
            find(&spans, "send_award process"),
        ) {
            break (r, p, c);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the draw's spans were not exported within 30 s; got {spans:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(request.1, request_span, "the request span is the one answered");
    assert_eq!(request.2, CALLER_SPAN, "the request span's parent is the caller's");
    assert_eq!(publish.2, request.1, "the relay publishes under the draw's request");
    assert_eq!(consume.2, publish.1, "the consumer continues the relay's span");
    drop(server);
    app.cleanup().await;
}

#[tokio::test]
async fn a_requests_json_log_lines_carry_its_operation_and_trace_id() {
    let app = spawn_app_with(|s| {
        s.relay.enabled = false;
        s.consumers.enabled = false;
    })
    .await;
    // A server process whose JSON log shows the audit line an operator operation writes from
    // inside the request.
    let server = app
        .spawn_process_with(BIN, Logs::Captured, |s| {
            s.log.json = true;
            s.log.filter = "warn,api::graphql::audit=info".into();
        })
        .await;
    let register = |operation: &'static str, traceparent: Option<String>| {
        let mut req = app
            .client
            .post(format!("{}/graphql", server.address))
            .bearer_auth(&app.admin_token)
            .json(&json!({
                "query": operation,
                "variables": { "d": [format!("{{ __typename }} # {}", traceparent.is_some())] },
            }));
        if let Some(tp) = &traceparent {
            req = req.header("traceparent", tp);
        }
        async move {
            let resp = req.send().await.unwrap();
            let answered = resp.headers()["traceresponse"].to_str().unwrap().to_owned();
            let body: Value = resp.json().await.unwrap();
            assert!(body["errors"].is_null(), "{body}");
            answered
        }
    };
    let registered = |line: &str| line.contains("operator operation") && line.contains("registerTrustedDocuments");

    // A named operation, continuing the caller's trace.
    let caller = format!("00-{TRACE}-{CALLER_SPAN}-01");
    let answered = register(
        "mutation Register($d: [String!]!) { registerTrustedDocuments(documents: $d) }",
        Some(caller),
    )
    .await;
    let (_, request_span) = ids(&answered);
    let line = server.wait_for_log(10, |l| registered(l)).await;
    let line: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    assert_eq!(line["trace_id"], TRACE, "{line}");
    assert_eq!(line["span_id"], request_span.as_str(), "{line}");
    assert_eq!(line["operation"], "Register", "{line}");

    // An anonymous one is named by its type and root fields, in a trace of its own.
    let answered = register(
        "mutation($d: [String!]!) { registerTrustedDocuments(documents: $d) }",
        None,
    )
    .await;
    let (trace, _) = ids(&answered);
    assert_ne!(trace, TRACE);
    let line = server.wait_for_log(10, |l| registered(l) && !l.contains(TRACE)).await;
    let line: Value = serde_json::from_str(&line).unwrap();
    assert_eq!(line["trace_id"], trace.as_str(), "{line}");
    assert_eq!(line["operation"], "mutation registerTrustedDocuments", "{line}");
    drop(server);
    app.cleanup().await;
}
