//! One OpenTelemetry trace from a clinical system's append to the
//! notification it caused. A test OTLP collector (the published
//! collector protos' `TraceService`, served by tonic on a free port)
//! receives the spans of ingest, the projector and notify, all run in this
//! process with one tracer provider exporting to it (each span says its
//! service in `baton.service`). The append carries the clinical system's
//! own `traceparent`; the breach it causes is delivered to a webhook; the
//! spans must form one trace under that parent:
//!
//! ```text
//! (clinical system) → ingest.append → projector.apply → projector.announce
//!                                          ↘ link ↗ projector.apply_batch (links to ingest.append)
//!                    → notify.handle → notify.deliver
//! ```

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use baton_e2e::{
    append, eventually, now_millis, requested, start_notify,
    webhook::{consumer_ready, receiver, Behaviour},
    Baton, TEST_CATALOG,
};
use baton_proto::v1::Priority;
use opentelemetry_proto::tonic::{
    collector::trace::v1::{
        trace_service_server::{TraceService, TraceServiceServer},
        ExportTraceServiceRequest, ExportTraceServiceResponse,
    },
    common::v1::any_value,
    trace::v1::Span,
};

/// What the collector received: every span, in arrival order.
#[derive(Debug, Clone, Default)]
struct Collected(Arc<Mutex<Vec<Span>>>);

#[tonic::async_trait]
impl TraceService for Collected {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans = request
            .into_inner()
            .resource_spans
            .into_iter()
            .flat_map(|r| r.scope_spans)
            .flat_map(|s| s.spans);
        self.0.lock().expect("lock").extend(spans);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

/// Starts the collector on a free port: its endpoint and what it receives.
async fn collector() -> (String, Collected) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let collected = Collected::default();
    let service = TraceServiceServer::new(collected.clone());
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    (format!("http://{addr}"), collected)
}

fn attribute(span: &Span, key: &str) -> Option<String> {
    span.attributes
        .iter()
        .find(|kv| kv.key == key)
        .and_then(|kv| kv.value.as_ref()?.value.as_ref())
        .map(|v| match v {
            any_value::Value::StringValue(s) => s.clone(),
            any_value::Value::IntValue(i) => i.to_string(),
            any_value::Value::BoolValue(b) => b.to_string(),
            other => format!("{other:?}"),
        })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn routes(dir: &std::path::Path, chat: std::net::SocketAddr) -> std::path::PathBuf {
    let secret = dir.join("webhook.key");
    std::fs::write(&secret, "trace-webhook-key-000000000001").expect("secret");
    let routes = dir.join("routes.json");
    let text = serde_json::json!({
        "channels": {
            "chat": {"webhook": {"url": format!("http://{chat}/hooks/baton"), "secret_file": secret, "timeout": "2s"}}
        },
        "routes": [
            {"name": "repairs", "match": {"signals": ["breach"], "supplier": ["engineering"]}, "deliver": ["chat"]}
        ]
    });
    std::fs::write(&routes, text.to_string()).expect("routes");
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_trace_runs_from_an_append_to_the_notification_of_its_breach() {
    let (endpoint, collected) = collector().await;
    let telemetry =
        baton_runtime::otel::Telemetry::install(&endpoint, "baton-e2e", Duration::from_millis(100))
            .expect("tracing on");
    let baton = Baton::start_with_catalog(TEST_CATALOG).await;
    let (chat, got) = receiver(Behaviour::FailFirst(0)).await;
    let dir = tempfile::tempdir().expect("dir");
    let routes = routes(dir.path(), chat);
    let _notify = start_notify(&baton.nats.url(), &routes, 3, Duration::from_millis(100)).await;
    consumer_ready(&baton).await;

    // The clinical system's own trace: its span is the append's parent.
    let trace_id = format!("{:032x}", now_millis() as u128 * 7_919 + 0x5eed);
    let caller_span = "00f067aa0ba902b7";
    let mut request = tonic::Request::new(append(requested(
        "pump-77",
        "repair",
        "engineering",
        "ward-5",
        Priority::Stat,
        now_millis() - 3_000,
    )));
    request.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-{caller_span}-01")
            .parse()
            .expect("ascii"),
    );
    baton.ingest().await.append(request).await.expect("append");
    eventually("the breach at the webhook", || async {
        (!got.lock().expect("lock").is_empty()).then_some(())
    })
    .await;

    // Every span of the trace, by name, once notify's delivery span is in.
    let spans = eventually("the trace's spans at the collector", || {
        let collected = collected.clone();
        let trace_id = trace_id.clone();
        async move {
            let spans = collected.0.lock().expect("lock").clone();
            let delivered = spans
                .iter()
                .any(|s| s.name == "notify.deliver" && hex(&s.trace_id) == trace_id);
            delivered.then_some(spans)
        }
    })
    .await;
    let in_trace: Vec<&Span> = spans
        .iter()
        .filter(|s| hex(&s.trace_id) == trace_id)
        .collect();
    let mut by_name: HashMap<&str, Vec<&Span>> = HashMap::new();
    for span in &in_trace {
        by_name.entry(span.name.as_str()).or_default().push(span);
    }
    let one = |name: &str| -> &Span {
        let found = by_name.get(name).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(
            found.len(),
            1,
            "one {name} span in trace {trace_id}; the trace has {:?}",
            in_trace.iter().map(|s| &s.name).collect::<Vec<_>>()
        );
        found[0]
    };
    let ingest = one("ingest.append");
    let apply = one("projector.apply");
    let announce = one("projector.announce");
    let handle = one("notify.handle");
    let deliver = one("notify.deliver");

    // Parent to child, each in its own service.
    for (child, parent, service) in [
        (ingest, None, "baton-ingest"),
        (apply, Some(ingest), "baton-projector"),
        (announce, Some(apply), "baton-projector"),
        (handle, Some(announce), "baton-notify"),
        (deliver, Some(handle), "baton-notify"),
    ] {
        let expected = parent.map_or(caller_span.to_owned(), |p| hex(&p.span_id));
        assert_eq!(
            hex(&child.parent_span_id),
            expected,
            "{}'s parent",
            child.name
        );
        assert_eq!(
            attribute(child, "baton.service").as_deref(),
            Some(service),
            "{}'s service",
            child.name
        );
    }
    assert_eq!(
        attribute(ingest, "baton.handoff_id").as_deref(),
        Some("pump-77")
    );
    assert_eq!(
        attribute(apply, "baton.handoff_id").as_deref(),
        Some("pump-77")
    );
    assert_eq!(
        attribute(announce, "baton.signal").as_deref(),
        Some("breach")
    );
    assert_eq!(
        attribute(deliver, "baton.route").as_deref(),
        Some("repairs")
    );
    assert_eq!(
        attribute(deliver, "baton.outcome").as_deref(),
        Some("delivered")
    );

    // The batch that applied the event is a span of its own, linked to the
    // append it applied; the event's span links back to it.
    let batch = spans
        .iter()
        .find(|s| {
            s.name == "projector.apply_batch"
                && s.links
                    .iter()
                    .any(|l| hex(&l.trace_id) == trace_id && l.span_id == ingest.span_id)
        })
        .expect("a projector.apply_batch span linked to the append");
    assert!(
        apply
            .links
            .iter()
            .any(|l| l.span_id == batch.span_id && l.trace_id == batch.trace_id),
        "projector.apply links to its batch"
    );
    assert!(batch.start_time_unix_nano <= apply.start_time_unix_nano);

    tokio::task::spawn_blocking(move || telemetry.shutdown())
        .await
        .expect("shutdown");
}
