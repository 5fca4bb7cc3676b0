//! Sustained load for the fault tests, and the audit that follows a fault.
//!
//! [`Load`] runs concurrent clients that each append whole hand-offs through
//! gRPC, one event at a time, retrying every event with the same `event_id`
//! until ingest acknowledges it, as a well-behaved clinical system would.
//! [`audit`] then reads the stream back and compares it with what the
//! clients were told, and with what the projector shows.

use std::{
    collections::{BTreeMap, HashMap},
    net::SocketAddr,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use async_nats::jetstream::consumer::pull::OrderedConfig;
use baton_proto::v1::{
    self, ingest_client::IngestClient, query_client::QueryClient, EventType, Priority,
};
use futures::StreamExt;
use prost::Message as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{transport::Channel, Code};

use crate::{eventually, now_millis, timestamp};

/// How long one append may take to be answered before the client counts it
/// as hung. Ingest's publish timeout in the harness is 2 s.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(8);
/// How long one event may keep failing before the client gives up (the test
/// then fails): bounds every retry loop.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(60);

const MIN: i64 = 60_000;

/// One event ingest acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acked {
    pub handoff_id: String,
    pub event_id: String,
    pub version: u64,
    pub sequence: u64,
}

/// What the clients have heard so far, shared with the test while they run.
#[derive(Debug, Default)]
pub struct Tally {
    /// Events acknowledged (first OK per event; a retry's duplicate answer included).
    pub acknowledged: AtomicU64,
    /// Answers with UNAVAILABLE.
    pub unavailable: AtomicU64,
    /// Answers with another code a client may retry (ABORTED, UNKNOWN, CANCELLED, DEADLINE_EXCEEDED).
    pub other_transient: AtomicU64,
    /// Acknowledgements that said `duplicate`: an earlier try had been stored.
    pub duplicates_answered: AtomicU64,
    /// Appends not answered within [`ANSWER_WITHIN`].
    pub hung: AtomicU64,
    codes: Mutex<BTreeMap<String, u64>>,
}

impl Tally {
    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }

    /// Non-OK answers by code.
    pub fn codes(&self) -> BTreeMap<String, u64> {
        self.codes
            .lock()
            .map(|c| c.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    fn saw(&self, code: Code) {
        let mut codes = self.codes.lock().unwrap_or_else(|p| p.into_inner());
        *codes.entry(format!("{code:?}")).or_default() += 1;
    }
}

/// The events of hand-off number `i`: a repair acknowledged then completed,
/// or every third one a lab test put on hold, resumed and completed. Every
/// promise is met, so the compliance totals are known in advance.
pub fn script(handoff_id: &str, i: usize, base: i64) -> Vec<v1::HandoffEvent> {
    let event = |n: usize, t: EventType, at: i64| v1::HandoffEvent {
        event_id: format!("{handoff_id}-e{n}"),
        handoff_id: handoff_id.into(),
        r#type: t as i32,
        occurred_at: Some(timestamp(at)),
        actor: "load-client".into(),
        ..Default::default()
    };
    let customer = if i.is_multiple_of(2) {
        "ward-5"
    } else {
        "ward-6"
    };
    if i % 3 == 2 {
        vec![
            v1::HandoffEvent {
                kind: "lab".into(),
                supplier: "lab".into(),
                customer: customer.into(),
                priority: Priority::Routine as i32,
                ..event(0, EventType::Requested, base)
            },
            event(1, EventType::OnHold, base + MIN),
            event(2, EventType::Resumed, base + 2 * MIN),
            event(3, EventType::Completed, base + 3 * MIN),
        ]
    } else {
        vec![
            v1::HandoffEvent {
                kind: "repair".into(),
                supplier: "engineering".into(),
                customer: customer.into(),
                priority: Priority::Routine as i32,
                ..event(0, EventType::Requested, base)
            },
            event(1, EventType::Acknowledged, base + 5 * MIN),
            event(2, EventType::Completed, base + 10 * MIN),
        ]
    }
}

/// Whether hand-off number `i` of [`script`] is a lab test (else a repair).
pub fn is_lab(i: usize) -> bool {
    i % 3 == 2
}

/// Concurrent clients appending until told to stop.
#[derive(Debug)]
pub struct Load {
    stop: CancellationToken,
    tally: Arc<Tally>,
    clients: Vec<JoinHandle<Result<Vec<Acked>, String>>>,
}

/// What the clients did, once they have all stopped.
#[derive(Debug)]
pub struct Finished {
    pub acked: Vec<Acked>,
    /// Hand-offs written, with their number (see [`script`]) and final version.
    pub handoffs: Vec<(String, usize, u64)>,
    pub tally: Arc<Tally>,
}

impl Load {
    /// Starts `clients` clients against the ingest at `addrs` (client `c` uses
    /// `addrs[c % len]`), naming hand-offs `<prefix>-<client>-<n>`.
    pub fn start(addrs: &[SocketAddr], clients: usize, prefix: &str) -> Load {
        assert!(!addrs.is_empty(), "at least one ingest");
        let stop = CancellationToken::new();
        let tally = Arc::new(Tally::default());
        // Repairs are acknowledged 5 minutes after `base`, within their
        // 30-minute promise, whose deadline lies 10 minutes ahead: no clock
        // breaches while the test runs, not even for a moment.
        let base = now_millis() - 20 * MIN;
        let clients = (0..clients)
            .map(|c| {
                let addr = addrs[c % addrs.len()];
                let prefix = format!("{prefix}-{c}");
                tokio::spawn(client(addr, prefix, base, stop.clone(), tally.clone()))
            })
            .collect();
        Load {
            stop,
            tally,
            clients,
        }
    }

    pub fn tally(&self) -> &Arc<Tally> {
        &self.tally
    }

    pub fn acknowledged(&self) -> u64 {
        Tally::get(&self.tally.acknowledged)
    }

    /// Waits until at least `n` events have been acknowledged in all.
    pub async fn wait_acknowledged(&self, n: u64) {
        let tally = self.tally.clone();
        eventually(&format!("{n} events acknowledged"), || {
            let tally = tally.clone();
            async move { (Tally::get(&tally.acknowledged) >= n).then_some(()) }
        })
        .await
    }

    /// Waits until the clients have been answered UNAVAILABLE more than `seen` times.
    pub async fn wait_unavailable_beyond(&self, seen: u64) -> u64 {
        let tally = self.tally.clone();
        eventually("a client answered UNAVAILABLE", || {
            let tally = tally.clone();
            async move {
                let now = Tally::get(&tally.unavailable);
                (now > seen).then_some(now)
            }
        })
        .await
    }

    /// Lets every client finish the hand-off in hand, then collects what they did.
    pub async fn finish(self) -> Finished {
        self.stop.cancel();
        let mut acked = Vec::new();
        for client in self.clients {
            match client.await {
                Ok(Ok(mine)) => acked.extend(mine),
                Ok(Err(e)) => panic!("a load client failed: {e}"),
                Err(e) => panic!("a load client panicked: {e}"),
            }
        }
        let mut handoffs: BTreeMap<String, u64> = BTreeMap::new();
        for a in &acked {
            let v = handoffs.entry(a.handoff_id.clone()).or_default();
            *v = (*v).max(a.version);
        }
        let handoffs = handoffs
            .into_iter()
            .map(|(id, version)| {
                let n = id
                    .rsplit('-')
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("hand-off ids end in their number");
                (id, n, version)
            })
            .collect();
        Finished {
            acked,
            handoffs,
            tally: self.tally,
        }
    }
}

async fn client(
    addr: SocketAddr,
    prefix: String,
    base: i64,
    stop: CancellationToken,
    tally: Arc<Tally>,
) -> Result<Vec<Acked>, String> {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .map_err(|e| e.to_string())?
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy();
    let mut ingest = IngestClient::new(channel);
    let mut acked = Vec::new();
    for i in 0.. {
        if stop.is_cancelled() {
            break;
        }
        let handoff_id = format!("{prefix}-{i}");
        for event in script(&handoff_id, i, base) {
            acked.push(append_until_acknowledged(&mut ingest, event, &tally).await?);
        }
    }
    Ok(acked)
}

/// Appends `event`, retrying with the same `event_id` on every transient answer.
async fn append_until_acknowledged(
    ingest: &mut IngestClient<Channel>,
    event: v1::HandoffEvent,
    tally: &Tally,
) -> Result<Acked, String> {
    let started = tokio::time::Instant::now();
    let request = v1::AppendRequest {
        event: Some(event.clone()),
        expected_version: None,
        backfill: false,
    };
    let mut backoff = Duration::from_millis(5);
    loop {
        if started.elapsed() > GIVE_UP_AFTER {
            return Err(format!(
                "{} of {} not acknowledged after {GIVE_UP_AFTER:?}",
                event.event_id, event.handoff_id
            ));
        }
        match tokio::time::timeout(ANSWER_WITHIN, ingest.append(request.clone())).await {
            Ok(Ok(answer)) => {
                let answer = answer.into_inner();
                tally.acknowledged.fetch_add(1, Ordering::Relaxed);
                if answer.duplicate {
                    tally.duplicates_answered.fetch_add(1, Ordering::Relaxed);
                }
                return Ok(Acked {
                    handoff_id: event.handoff_id,
                    event_id: event.event_id,
                    version: answer.version,
                    sequence: answer.stream_sequence,
                });
            }
            Ok(Err(status)) => {
                tally.saw(status.code());
                match status.code() {
                    Code::Unavailable => {
                        tally.unavailable.fetch_add(1, Ordering::Relaxed);
                    }
                    Code::Aborted | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded => {
                        tally.other_transient.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        return Err(format!(
                            "{} of {} refused: {status:?}",
                            event.event_id, event.handoff_id
                        ))
                    }
                }
            }
            Err(_) => {
                tally.hung.fetch_add(1, Ordering::Relaxed);
            }
        }
        // A client's back-off between tries, not a wait for a condition.
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_millis(200));
    }
}

/// One message of `BATON_HANDOFFS`, decoded.
#[derive(Debug, Clone)]
pub struct Stored {
    pub sequence: u64,
    pub handoff_id: String,
    pub event_id: String,
}

/// Every message of `BATON_HANDOFFS`, in stream order.
pub async fn read_stream(nats: &async_nats::Client) -> Vec<Stored> {
    let js = async_nats::jetstream::new(nats.clone());
    let mut stream = js
        .get_stream(baton_log::subject::EVENTS_STREAM)
        .await
        .expect("the events stream");
    let state = stream.info().await.expect("stream info").state.clone();
    let mut out = Vec::with_capacity(state.messages as usize);
    if state.messages == 0 {
        return out;
    }
    // Right after a fault the cluster may still be electing the stream's
    // leader and time API requests out: ask again, as any client would.
    let mut messages = eventually("an ordered consumer on the events stream", || {
        let stream = stream.clone();
        async move {
            let consumer = stream
                .create_consumer(OrderedConfig {
                    filter_subject: baton_log::subject::ALL_EVENTS.into(),
                    ..Default::default()
                })
                .await
                .ok()?;
            consumer.messages().await.ok()
        }
    })
    .await;
    while (out.len() as u64) < state.messages {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("the stream keeps delivering")
            .expect("the stream does not end")
            .expect("a message");
        let sequence = message.info().expect("jetstream message").stream_sequence;
        let event = v1::HandoffEvent::decode(message.payload.clone())
            .unwrap_or_else(|e| panic!("message {sequence} is not a hand-off event: {e}"));
        out.push(Stored {
            sequence,
            handoff_id: event.handoff_id,
            event_id: event.event_id,
        });
        if sequence >= state.last_sequence {
            break;
        }
    }
    out
}

/// The stream compared with what the clients were told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Audit {
    pub acknowledged: usize,
    pub in_stream: usize,
    /// Acknowledged, but not in the stream.
    pub lost: usize,
    /// In the stream more than once (each extra copy counts), or in it
    /// without having been acknowledged.
    pub duplicated: usize,
    /// Acknowledged with a stream sequence that holds another event.
    pub misplaced: usize,
}

/// Compares the stream with the acknowledged events.
pub fn audit(acked: &[Acked], stream: &[Stored]) -> Audit {
    let mut copies: HashMap<(&str, &str), Vec<u64>> = HashMap::new();
    for s in stream {
        copies
            .entry((s.handoff_id.as_str(), s.event_id.as_str()))
            .or_default()
            .push(s.sequence);
    }
    let mut lost = 0;
    let mut misplaced = 0;
    let mut acked_keys = std::collections::HashSet::new();
    for a in acked {
        acked_keys.insert((a.handoff_id.as_str(), a.event_id.as_str()));
        match copies.get(&(a.handoff_id.as_str(), a.event_id.as_str())) {
            None => lost += 1,
            Some(seqs) if !seqs.contains(&a.sequence) => misplaced += 1,
            Some(_) => {}
        }
    }
    let duplicated = copies
        .iter()
        .map(|(key, seqs)| {
            if acked_keys.contains(key) {
                seqs.len() - 1
            } else {
                seqs.len()
            }
        })
        .sum();
    Audit {
        acknowledged: acked.len(),
        in_stream: stream.len(),
        lost,
        duplicated,
        misplaced,
    }
}

/// Waits until the projector shows every hand-off at its final version with
/// exactly the acknowledged events, in order; returns the events it shows.
pub async fn projected_exactly(query: &QueryClient<Channel>, finished: &Finished) -> usize {
    let mut expected: HashMap<&str, Vec<&str>> = HashMap::new();
    for a in &finished.acked {
        expected
            .entry(a.handoff_id.as_str())
            .or_default()
            .push(a.event_id.as_str());
    }
    let mut projected = 0;
    for (id, _, version) in &finished.handoffs {
        let handoff = eventually(&format!("{id} at version {version} in the views"), || {
            let mut query = query.clone();
            async move {
                let request = v1::GetHandoffRequest {
                    handoff_id: id.clone(),
                };
                match query.get_handoff(request).await {
                    Ok(r) => r.into_inner().handoff.filter(|h| h.version >= *version),
                    _ => None,
                }
            }
        })
        .await;
        let shown: Vec<&str> = handoff.events.iter().map(|e| e.event_id.as_str()).collect();
        assert_eq!(
            handoff.version, *version,
            "{id}: the views went past what was acknowledged"
        );
        assert_eq!(
            shown,
            expected[id.as_str()],
            "{id}: the views show other events than were acknowledged"
        );
        projected += shown.len();
    }
    projected
}
