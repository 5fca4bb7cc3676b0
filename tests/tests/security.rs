//! Authentication, authorization, audit and patient-data screening, end to
//! end: real certificates (made with openssl for the test), real TLS, real
//! NATS, real services.

use baton_e2e::{
    count_messages, eventually, later, now_millis, requested,
    secure::{start_ingest_configured, start_projector_configured, Pki},
    timestamp, TEST_CATALOG,
};
use baton_proto::v1::{
    self, ingest_client::IngestClient, query_client::QueryClient, EventType, Priority,
};
use baton_testkit::NatsServer;
use futures::StreamExt;
use prost::Message as _;
use tonic::{transport::Channel, Code};

const CALLERS: &str = r#"{"callers": [
  {"id": "ward-5-system", "role": "department", "departments": ["ward-5"]},
  {"id": "lab-system", "role": "department", "departments": ["lab"]},
  {"id": "engineering-desk", "role": "department", "departments": ["engineering"]},
  {"id": "duty-desk", "role": "operator"}
]}"#;

fn append(event: v1::HandoffEvent) -> v1::AppendRequest {
    v1::AppendRequest {
        event: Some(event),
        expected_version: None,
        backfill: false,
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, tonic::Status>) -> Code {
    match result {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

struct Secured {
    nats: NatsServer,
    pki: Pki,
    ingest: baton_e2e::Running,
    projector: baton_e2e::Running,
    _dir: tempfile::TempDir,
}

impl Secured {
    async fn start(catalog: &str) -> Secured {
        let nats = NatsServer::start();
        let pki = Pki::new();
        let dir = tempfile::tempdir().expect("tempdir");
        let catalog_path = dir.path().join("catalog.json");
        let callers = dir.path().join("callers.json");
        std::fs::write(&catalog_path, catalog).expect("catalog");
        std::fs::write(&callers, CALLERS).expect("callers");
        let tls = pki.server_args(&callers);
        let ingest =
            start_ingest_configured(&nats.url(), &catalog_path, |c| c.tls = tls.clone()).await;
        let projector = start_projector_configured(
            &nats.url(),
            &catalog_path,
            &dir.path().join("views"),
            |c| c.tls = tls,
        )
        .await;
        pki.wait_serving(ingest.addr, "baton.v1.Ingest").await;
        pki.wait_serving(projector.addr, "baton.v1.Query").await;
        Secured {
            nats,
            pki,
            ingest,
            projector,
            _dir: dir,
        }
    }

    async fn ingest_as(&self, client: Option<&str>) -> IngestClient<Channel> {
        IngestClient::new(
            self.pki
                .channel(self.ingest.addr, client)
                .await
                .expect("tls channel"),
        )
    }

    async fn query_as(&self, client: Option<&str>) -> QueryClient<Channel> {
        QueryClient::new(
            self.pki
                .channel(self.projector.addr, client)
                .await
                .expect("tls channel"),
        )
    }

    async fn stop(self) {
        self.ingest.stop().await;
        self.projector.stop().await;
    }
}

/// Every event in the events stream, decoded.
async fn recorded(nats: &NatsServer) -> Vec<v1::HandoffEvent> {
    let client = async_nats::connect(nats.url()).await.expect("nats");
    let js = async_nats::jetstream::new(client);
    let stream = js.get_stream("BATON_HANDOFFS").await.expect("stream");
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: "baton.handoff.>".into(),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut consumer = consumer;
    let pending = consumer.info().await.expect("info").num_pending;
    let mut messages = consumer.messages().await.expect("messages");
    let mut events = Vec::new();
    while (events.len() as u64) < pending {
        let message = messages.next().await.expect("a message").expect("ok");
        events.push(v1::HandoffEvent::decode(message.payload.as_ref()).expect("decodes"));
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_are_authenticated_authorized_per_department_and_recorded() {
    let baton = Secured::start(TEST_CATALOG).await;
    let ward = baton.pki.client("ca", "ward-5-system", true);
    let lab = baton.pki.client("ca", "lab-system", true);
    // The operator's certificate has only a CN, no SAN: found by its CN.
    let operator = baton.pki.client("ca", "duty-desk", false);
    let stranger = baton.pki.client("ca", "stranger", true);
    // A registered caller's name as CN behind an unregistered DNS name: the
    // DNS name is who it is, the CN does not count.
    let masked = baton
        .pki
        .client_named("ca", "masked", "ward-5-system", &["stranger.example"]);
    let rogue = baton.pki.client("rogue", "ward-5-system", true);
    let t0 = now_millis() - 60_000;
    let mut tried = 0;
    let lab_request = || requested("sec-1", "lab", "lab", "ward-5", Priority::Stat, t0);

    // No certificate: UNAUTHENTICATED, on ingest and on queries.
    let mut anonymous = baton.ingest_as(None).await;
    assert_eq!(
        code(anonymous.append(append(lab_request())).await),
        Code::Unauthenticated
    );
    let mut anonymous_query = baton.query_as(None).await;
    assert_eq!(
        code(
            anonymous_query
                .get_handoff(v1::GetHandoffRequest {
                    handoff_id: "sec-1".into()
                })
                .await
        ),
        Code::Unauthenticated
    );
    tried += 2;

    // A certificate from our CA that the registry does not know: PERMISSION_DENIED.
    let mut unknown = baton.ingest_as(Some(&stranger)).await;
    let status = unknown
        .append(append(lab_request()))
        .await
        .expect_err("unregistered");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("stranger"), "{status:?}");
    tried += 1;
    let mut masked = baton.ingest_as(Some(&masked)).await;
    let status = masked
        .append(append(lab_request()))
        .await
        .expect_err("a CN behind an unregistered DNS name");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(
        status
            .message()
            .contains("stranger.example is not in the caller registry"),
        "{status:?}"
    );
    tried += 1;

    // A certificate from a CA nobody trusts does not get past the handshake,
    // and a plaintext client does not either.
    let refused = match baton.pki.channel(baton.ingest.addr, Some(&rogue)).await {
        Err(_) => true,
        Ok(channel) => IngestClient::new(channel)
            .append(append(lab_request()))
            .await
            .is_err(),
    };
    assert!(refused, "a rogue CA's certificate was accepted");
    let plaintext = Channel::from_shared(format!("http://{}", baton.ingest.addr))
        .expect("uri")
        .connect()
        .await;
    if let Ok(channel) = plaintext {
        assert!(IngestClient::new(channel)
            .append(append(lab_request()))
            .await
            .is_err());
    }
    tried += 2;

    // The ward requests for itself, and for nobody else.
    let mut ward_ingest = baton.ingest_as(Some(&ward)).await;
    ward_ingest
        .append(append(lab_request()))
        .await
        .expect("ward-5 requests from the lab");
    ward_ingest
        .append(append(requested(
            "sec-2",
            "repair",
            "engineering",
            "ward-5",
            Priority::Routine,
            t0,
        )))
        .await
        .expect("ward-5 requests a repair");
    let status = ward_ingest
        .append(append(requested(
            "sec-3",
            "lab",
            "lab",
            "ward-6",
            Priority::Stat,
            t0,
        )))
        .await
        .expect_err("ward-5 speaking for ward-6");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("customer ward-6"), "{status:?}");
    // Nor may it do the lab's part.
    assert_eq!(
        code(
            ward_ingest
                .append(append(later("sec-1", EventType::Acknowledged, t0 + 1000)))
                .await
        ),
        Code::PermissionDenied
    );
    tried += 2;

    // The lab acknowledges and completes its own hand-off, not engineering's,
    // and cannot request or cancel on a ward's behalf.
    let mut lab_ingest = baton.ingest_as(Some(&lab)).await;
    lab_ingest
        .append(append(later("sec-1", EventType::Acknowledged, t0 + 1000)))
        .await
        .expect("lab acknowledges");
    for (event, what) in [
        (
            later("sec-2", EventType::Acknowledged, t0 + 1000),
            "engineering's hand-off",
        ),
        (
            later("sec-1", EventType::Cancelled, t0 + 2000),
            "the ward's cancel",
        ),
        (
            requested("sec-4", "lab", "lab", "ward-5", Priority::Stat, t0),
            "the ward's request",
        ),
    ] {
        let status = lab_ingest.append(append(event)).await.expect_err(what);
        assert_eq!(status.code(), Code::PermissionDenied, "{what}: {status:?}");
        tried += 1;
    }
    lab_ingest
        .append(append(later("sec-1", EventType::Completed, t0 + 3000)))
        .await
        .expect("lab completes");

    // Disruptions: the lab's own, not engineering's.
    let disruption = |supplier: &str| v1::AppendDisruptionRequest {
        disruption: Some(v1::DisruptionEvent {
            disruption_id: format!("down-{supplier}"),
            phase: v1::DisruptionPhase::Started as i32,
            supplier: supplier.into(),
            occurred_at: Some(timestamp(t0)),
            reason: "analyzer down".into(),
            ..Default::default()
        }),
    };
    lab_ingest
        .append_disruption(disruption("lab"))
        .await
        .expect("the lab's disruption");
    assert_eq!(
        code(
            lab_ingest
                .append_disruption(disruption("engineering"))
                .await
        ),
        Code::PermissionDenied
    );
    tried += 1;

    // The ward rates what the lab completed; the lab may not rate itself.
    let mut rating = later("sec-1", EventType::Rated, t0 + 4000);
    rating.rating = Some(v1::Rating {
        score: 5,
        comment: "quick".into(),
    });
    assert_eq!(
        code(lab_ingest.append(append(rating.clone())).await),
        Code::PermissionDenied
    );
    ward_ingest
        .append(append(rating))
        .await
        .expect("the ward rates");
    tried += 1;

    // The operator reads, and may not append.
    let mut operator_ingest = baton.ingest_as(Some(&operator)).await;
    let status = operator_ingest
        .append(append(later("sec-2", EventType::Cancelled, t0 + 5000)))
        .await
        .expect_err("operator appends");
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    assert!(status.message().contains("read-only"), "{status:?}");
    tried += 1;
    let mut operator_query = baton.query_as(Some(&operator)).await;
    let handoff = eventually("sec-1 rated in the views", || {
        let mut query = operator_query.clone();
        async move {
            let h = query
                .get_handoff(v1::GetHandoffRequest {
                    handoff_id: "sec-1".into(),
                })
                .await
                .ok()?
                .into_inner()
                .handoff?;
            (h.version == 4).then_some(h)
        }
    })
    .await;
    // Audit: each event names who sent it, in the views and in the stream.
    let senders: Vec<&str> = handoff.events.iter().map(|e| e.sent_by.as_str()).collect();
    assert_eq!(
        senders,
        ["ward-5-system", "lab-system", "lab-system", "ward-5-system"]
    );
    let stream = recorded(&baton.nats).await;
    assert_eq!(stream.len(), 5, "only accepted events reach the stream");
    assert!(stream.iter().all(|e| !e.sent_by.is_empty()));
    assert_eq!(
        operator_query
            .list_disruptions(v1::ListDisruptionsRequest::default())
            .await
            .expect("operator lists disruptions")
            .into_inner()
            .disruptions
            .len(),
        1
    );

    // A client cannot forge the audit field: ingest overwrites it.
    let mut forged = requested("sec-5", "lab", "lab", "ward-5", Priority::Routine, t0);
    forged.sent_by = "lab-system".into();
    ward_ingest.append(append(forged)).await.expect("accepted");
    let stream = recorded(&baton.nats).await;
    assert_eq!(
        stream.last().map(|e| e.sent_by.as_str()),
        Some("ward-5-system")
    );

    println!("auth cases tried: {tried}");
    baton.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patient_data_is_refused_and_never_reaches_the_stream() {
    let catalog = TEST_CATALOG.replace(
        r#""kinds": ["#,
        r#""attributes": ["asset", "test", "sample"], "kinds": ["#,
    );
    let baton = Secured::start(&catalog).await;
    let ward = baton.pki.client("ca", "ward-5-system", true);
    let lab = baton.pki.client("ca", "lab-system", true);
    let mut ward_ingest = baton.ingest_as(Some(&ward)).await;
    let mut lab_ingest = baton.ingest_as(Some(&lab)).await;
    let t0 = now_millis() - 60_000;
    let with = |id: &str, key: &str, value: &str| {
        let mut e = requested(id, "lab", "lab", "ward-5", Priority::Stat, t0);
        e.attributes.insert(key.into(), value.into());
        e
    };

    let cases = [
        (with("pii-1", "patient", "x"), "attributes", "\"patient\""),
        (
            with("pii-2", "sample", "123456782"),
            "attributes[sample]",
            "8 or more digits",
        ),
        (
            with("pii-3", "sample", "born 12-05-1980"),
            "attributes[sample]",
            "date",
        ),
        (
            with("pii-4", "test", "ask j.jansen@example.org"),
            "attributes[test]",
            "e-mail",
        ),
        (
            with("pii-5", "test", "for Mevr. Jansen"),
            "attributes[test]",
            "name after a title",
        ),
    ];
    let tried = cases.len() + 2;
    for (event, field, what) in cases {
        let status = ward_ingest
            .append(append(event))
            .await
            .expect_err("patient data");
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        assert!(status.message().starts_with(field), "{status:?}");
        assert!(status.message().contains(what), "{status:?}");
        assert!(!status.message().contains("Jansen"), "echoed: {status:?}");
        assert!(
            !status.message().contains("123456782"),
            "echoed: {status:?}"
        );
    }
    // A listed key with a plain value is fine.
    ward_ingest
        .append(append(with("pii-ok", "test", "troponin")))
        .await
        .expect("plain attributes");

    // Free text: a rating comment and a disruption reason.
    lab_ingest
        .append(append(later("pii-ok", EventType::Completed, t0 + 1000)))
        .await
        .expect("completed");
    let mut rating = later("pii-ok", EventType::Rated, t0 + 2000);
    rating.rating = Some(v1::Rating {
        score: 2,
        comment: "Mr. Bakker waited too long".into(),
    });
    let status = ward_ingest
        .append(append(rating))
        .await
        .expect_err("a name in the comment");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("rating.comment"), "{status:?}");
    let status = lab_ingest
        .append_disruption(v1::AppendDisruptionRequest {
            disruption: Some(v1::DisruptionEvent {
                disruption_id: "down-1".into(),
                phase: v1::DisruptionPhase::Started as i32,
                supplier: "lab".into(),
                occurred_at: Some(timestamp(t0)),
                reason: "sample of patient 1234567890 lost".into(),
                ..Default::default()
            }),
        })
        .await
        .expect_err("an identifier in the reason");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().starts_with("reason"), "{status:?}");

    let client = async_nats::connect(baton.nats.url()).await.expect("nats");
    assert_eq!(
        count_messages(&client, "BATON_HANDOFFS", ">").await,
        2,
        "only the clean request and its completion were stored"
    );
    println!("patient-data cases tried: {tried}");
    baton.stop().await;
}
