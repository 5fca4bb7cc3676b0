//! Prometheus metrics of the projector, served on the HTTP side port at
//! `/metrics` (OpenMetrics text, encoded by `prometheus-client`).
//!
//! Counted as they happen:
//! - `baton_sla_announced_total{signal, policy, supplier, customer}`: what
//!   the announcer published for the first time (`breach`, `escalation`,
//!   `correction`, `warning`); a re-publish JetStream refused is not counted.
//!
//! Read from the views and the stream at each scrape:
//! - `baton_projector_events_applied_total`: stream events applied since start.
//! - `baton_projector_dead_lettered_total`: garbage parked on the dead-letter subject.
//! - `baton_projector_stream_last_sequence`, `baton_projector_views_position`,
//!   `baton_projector_consumer_lag` (the first minus the second): how far the
//!   views are behind the log. The stream's last sequence is asked of
//!   JetStream at each scrape; if NATS does not answer, the last known one stays.
//! - `baton_projector_views_current`: 1 once the views have caught up with the
//!   stream since start (until then the projector serves and pages nobody).
//! - `baton_projector_open_clocks`: running clocks, all promises.
//! - `baton_sla_clocks{policy, state}`: all-time clock tallies per promise
//!   (`open`, `met`, `breached`, `cancelled`, `warned`, `rejected`).
//! - `baton_sla_compliance_ratio{policy}`: met / (met + breached), 1 when none is decided.
//! - `baton_sla_duration_quantile_seconds{policy, quantile}`: p50/p90/p95 of stopped clocks.
//! - `baton_pair_clocks{supplier, customer, state}`: the same tallies per
//!   supplier-customer pair, all promises together.
//! - `baton_pair_late_entry_corrections{supplier, customer}`: announced
//!   breaches withdrawn by the supplier's own late entries, all time.
//! - `baton_nats_connected`: 1 while connected to NATS.
//!
//! - `baton_projector_stalled{part}`: 1 while the announcer or the timer
//!   has made no progress for longer than `--stall-after`.
//! - `baton_projector_task_failures_total{task}`: long-running tasks that
//!   failed (each ends the process, so this is seen in the last scrape
//!   before a restart, and in the logs).
//!
//! And, counted by the ports ([`baton_runtime::ports::PortMetrics`]):
//! `baton_connections_accepted_total`, `_refused_total`, `_open`,
//! `_expired_total{port, reason}`, `baton_http_logins_total{result}`,
//! `baton_http_denied_total{result}`.
//!
//! Also counted as it happens:
//! - `baton_sla_forged_signals_total`: signal subjects found holding a
//!   message that is not the signal the views computed (someone else
//!   published on `baton.sla.>`); each also holds `/readyz` not ready.

use std::{
    collections::BTreeMap,
    sync::{atomic::AtomicU64, Arc},
    time::Duration,
};

use axum::{http::header, routing::get, Router};
use baton_domain::compliance::Tallies;
use baton_views::{ComplianceScope, Signal};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use crate::Shared;

/// The content type of the OpenMetrics text exposition.
pub use baton_runtime::exposition::CONTENT_TYPE;

/// How long a scrape waits for JetStream's stream info.
const STREAM_INFO_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AnnouncedLabels {
    signal: &'static str,
    policy: String,
    supplier: String,
    customer: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyState {
    policy: String,
    state: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabel {
    policy: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyQuantile {
    policy: String,
    quantile: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PairState {
    supplier: String,
    customer: String,
    state: &'static str,
}

type FloatGauge = Gauge<f64, AtomicU64>;

/// The projector's metrics and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    announced: Family<AnnouncedLabels, Counter>,
    applied: Counter,
    dead_lettered: Counter,
    stream_last_sequence: Gauge,
    views_position: Gauge,
    consumer_lag: Gauge,
    views_current: Gauge,
    open_clocks: Gauge,
    clocks: Family<PolicyState, Gauge>,
    compliance: Family<PolicyLabel, FloatGauge>,
    quantiles: Family<PolicyQuantile, FloatGauge>,
    pair_clocks: Family<PairState, Gauge>,
    pair_late_entries: Family<PairLabels, Gauge>,
    forged_signals: Counter,
    stalled: Family<PartLabel, Gauge>,
    task_failures: baton_runtime::exposition::TaskFailures,
    nats_connected: Gauge,
    /// Connections and side-port access, counted by the ports themselves.
    pub ports: baton_runtime::ports::PortMetrics,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PartLabel {
    part: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PairLabels {
    supplier: String,
    customer: String,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("baton");
        let metrics = Metrics::unregistered();
        // The exposition lists the metrics in the order they are registered.
        metrics.ports.register(&mut registry);
        metrics.register_progress(&mut registry);
        metrics.register_clocks(&mut registry);
        metrics.register_health(&mut registry);
        Metrics {
            registry,
            ..metrics
        }
    }

    /// Every metric at zero, none of them registered yet.
    fn unregistered() -> Metrics {
        Metrics {
            announced: Family::default(),
            applied: Counter::default(),
            dead_lettered: Counter::default(),
            stream_last_sequence: Gauge::default(),
            views_position: Gauge::default(),
            consumer_lag: Gauge::default(),
            views_current: Gauge::default(),
            open_clocks: Gauge::default(),
            clocks: Family::default(),
            compliance: Family::default(),
            quantiles: Family::default(),
            pair_clocks: Family::default(),
            pair_late_entries: Family::default(),
            forged_signals: Counter::default(),
            stalled: Family::default(),
            task_failures: Default::default(),
            nats_connected: Gauge::default(),
            ports: baton_runtime::ports::PortMetrics::default(),
            registry: Registry::default(),
        }
    }

    /// How far the projector has come: signals announced, events applied and
    /// parked, and the stream's and the views' positions.
    fn register_progress(&self, registry: &mut Registry) {
        registry.register(
            "sla_announced",
            "Breaches, escalations, corrections and warnings published on NATS, by promise and pair",
            self.announced.clone(),
        );
        registry.register(
            "projector_events_applied",
            "Stream events applied to the views since start",
            self.applied.clone(),
        );
        registry.register(
            "projector_dead_lettered",
            "Messages on Baton's event subjects that are not Baton events, parked on baton.deadletter.*",
            self.dead_lettered.clone(),
        );
        registry.register(
            "projector_stream_last_sequence",
            "Last sequence of the BATON_HANDOFFS stream (as of the last answer from JetStream)",
            self.stream_last_sequence.clone(),
        );
        registry.register(
            "projector_views_position",
            "Last stream sequence the views hold",
            self.views_position.clone(),
        );
        registry.register(
            "projector_consumer_lag",
            "Stream events not yet in the views (stream last sequence - views position)",
            self.consumer_lag.clone(),
        );
        registry.register(
            "projector_views_current",
            "1 once the views have caught up with the stream since start, else 0 (rebuilding)",
            self.views_current.clone(),
        );
    }

    /// The promise clocks' tallies, per promise and per pair.
    fn register_clocks(&self, registry: &mut Registry) {
        registry.register(
            "projector_open_clocks",
            "Running promise clocks, all promises",
            self.open_clocks.clone(),
        );
        registry.register(
            "sla_clocks",
            "All-time promise clocks by state (open, met, breached, cancelled, warned, rejected)",
            self.clocks.clone(),
        );
        registry.register(
            "sla_compliance_ratio",
            "Share of decided clocks that met the promise, all time (1 when none is decided)",
            self.compliance.clone(),
        );
        registry.register(
            "sla_duration_quantile_seconds",
            "Quantiles of stopped clocks' durations, all time, within 1%",
            self.quantiles.clone(),
        );
        registry.register(
            "pair_clocks",
            "All-time promise clocks by supplier-customer pair and state, all promises",
            self.pair_clocks.clone(),
        );
        registry.register(
            "pair_late_entry_corrections",
            "Announced breaches withdrawn by the supplier's own late entries, by pair, all time",
            self.pair_late_entries.clone(),
        );
    }

    /// The projector's own health: forged signals, stalls, failed tasks and
    /// the NATS connection.
    fn register_health(&self, registry: &mut Registry) {
        registry.register(
            "sla_forged_signals",
            "Signal subjects found holding a message that is not the signal the views computed",
            self.forged_signals.clone(),
        );
        registry.register(
            "projector_stalled",
            "1 while a part (announcer, timer) has made no progress for longer than --stall-after",
            self.stalled.clone(),
        );
        self.task_failures
            .register(registry, "projector_task_failures");
        registry.register(
            "nats_connected",
            "1 while the service is connected to NATS, else 0",
            self.nats_connected.clone(),
        );
    }

    /// The announcer published `signal` for the first time (`escalation`
    /// for the copy on the escalation subject).
    pub fn announced(&self, signal: &'static str, policy: &str, supplier: &str, customer: &str) {
        self.announced
            .get_or_create(&AnnouncedLabels {
                signal,
                policy: policy.to_owned(),
                supplier: supplier.to_owned(),
                customer: customer.to_owned(),
            })
            .inc();
    }

    /// Whether `part` is stalled now.
    pub fn stalled(&self, part: &'static str, stalled: bool) {
        self.stalled
            .get_or_create(&PartLabel { part })
            .set(i64::from(stalled));
    }

    /// A signal's subject held a message that is not Baton's signal.
    pub fn forged_signal(&self) {
        self.forged_signals.inc();
    }

    /// The announcer's label for a signal.
    pub fn signal_label(signal: Signal) -> &'static str {
        match signal {
            Signal::Breach => "breach",
            Signal::Correction => "correction",
            Signal::Warning => "warning",
            Signal::Acknowledged => "acknowledgement",
        }
    }

    fn set_tallies(&self, policy: &str, t: &Tallies) {
        for (state, value) in states(t) {
            self.clocks
                .get_or_create(&PolicyState {
                    policy: policy.to_owned(),
                    state,
                })
                .set(value as i64);
        }
        self.compliance
            .get_or_create(&PolicyLabel {
                policy: policy.to_owned(),
            })
            .set(t.compliance());
        for (quantile, q) in [("0.5", 0.5), ("0.9", 0.9), ("0.95", 0.95)] {
            if let Some(d) = t.durations.quantile(q) {
                self.quantiles
                    .get_or_create(&PolicyQuantile {
                        policy: policy.to_owned(),
                        quantile,
                    })
                    .set(d.as_secs_f64());
            }
        }
    }

    /// Asks JetStream for the stream's last sequence; if it does not answer
    /// within [`STREAM_INFO_TIMEOUT`], the last known one stays.
    async fn refresh_stream_last_sequence(
        &self,
        shared: &Shared,
        js: &async_nats::jetstream::Context,
    ) {
        let info = tokio::time::timeout(STREAM_INFO_TIMEOUT, async {
            let mut stream = js
                .get_stream(shared.partition.stream())
                .await
                .map_err(|e| e.to_string())?;
            stream
                .info()
                .await
                .map(|i| i.state.last_sequence)
                .map_err(|e| e.to_string())
        })
        .await;
        match info {
            Ok(Ok(last)) => {
                self.stream_last_sequence.set(last as i64);
            }
            Ok(Err(e)) => tracing::debug!(error = %e, "no stream info for the metrics"),
            Err(_) => tracing::debug!("stream info for the metrics timed out"),
        }
    }

    /// Brings the counters of events applied and parked up to the shared
    /// counts (a Prometheus counter only goes up, by the difference).
    fn count_up_to(&self, shared: &Shared) {
        let parked = shared.dead_lettered();
        self.dead_lettered
            .inc_by(parked.saturating_sub(self.dead_lettered.get()));
        let applied = shared.applied();
        self.applied
            .inc_by(applied.saturating_sub(self.applied.get()));
    }

    /// The figures read from the views: their position and the clocks'
    /// tallies per promise and per pair.
    fn set_snapshot(&self, snapshot: &Snapshot) {
        self.views_position.set(snapshot.position as i64);
        let mut open = 0;
        for (policy, tallies) in &snapshot.per_policy {
            self.set_tallies(policy, tallies);
            open += tallies.open;
        }
        self.open_clocks.set(open as i64);
        for ((supplier, customer), (tallies, late)) in &snapshot.pairs {
            self.set_pair(supplier, customer, tallies, *late);
        }
    }

    fn set_pair(&self, supplier: &str, customer: &str, tallies: &Tallies, late_entries: u64) {
        self.pair_late_entries
            .get_or_create(&PairLabels {
                supplier: supplier.to_owned(),
                customer: customer.to_owned(),
            })
            .set(late_entries as i64);
        for (state, value) in states(tallies) {
            self.pair_clocks
                .get_or_create(&PairState {
                    supplier: supplier.to_owned(),
                    customer: customer.to_owned(),
                    state,
                })
                .set(value as i64);
        }
    }

    fn encode(&self) -> String {
        baton_runtime::exposition::encode(&self.registry)
    }
}

fn states(t: &Tallies) -> [(&'static str, u64); 6] {
    [
        ("open", t.open),
        ("met", t.met),
        ("breached", t.breached),
        ("cancelled", t.cancelled),
        ("warned", t.warned),
        ("rejected", t.rejected),
    ]
}

/// What one scrape reads from the views.
struct Snapshot {
    position: u64,
    per_policy: Vec<(String, Tallies)>,
    pairs: BTreeMap<(String, String), (Tallies, u64)>,
}

fn snapshot(shared: &Shared) -> Result<Snapshot, baton_views::ViewsError> {
    let position = shared.views.position()?;
    let mut per_policy = Vec::with_capacity(shared.catalog.promises.len());
    for promise in &shared.catalog.promises {
        let scope = ComplianceScope {
            policy: Some(promise.id.clone()),
            ..ComplianceScope::default()
        };
        per_policy.push((
            promise.id.as_str().to_owned(),
            shared.views.compliance(&scope)?,
        ));
    }
    let pairs = shared
        .views
        .matrix(None, None)?
        .into_iter()
        .map(|(pair, cell)| (pair, (cell.clocks, cell.handoffs.late_entry_corrections)))
        .collect();
    Ok(Snapshot {
        position,
        per_policy,
        pairs,
    })
}

/// Brings every scrape-time figure up to date and encodes the exposition.
pub async fn render(
    shared: Arc<Shared>,
    js: async_nats::jetstream::Context,
    client: async_nats::Client,
) -> String {
    let metrics = &shared.metrics;
    let connected = baton_log::is_connected(&client);
    metrics.nats_connected.set(i64::from(connected));
    metrics.views_current.set(i64::from(shared.is_current()));
    metrics.count_up_to(&shared);
    if connected {
        metrics.refresh_stream_last_sequence(&shared, &js).await;
    }
    let reader = shared.clone();
    match tokio::task::spawn_blocking(move || snapshot(&reader)).await {
        Ok(Ok(snapshot)) => metrics.set_snapshot(&snapshot),
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot read the views for the metrics"),
        Err(e) => tracing::warn!(error = %e, "the metrics reader failed"),
    }
    let lag = metrics
        .stream_last_sequence
        .get()
        .saturating_sub(metrics.views_position.get())
        .max(0);
    metrics.consumer_lag.set(lag);
    metrics.encode()
}

/// `GET /metrics` for the HTTP side port.
pub fn router(
    shared: Arc<Shared>,
    js: async_nats::jetstream::Context,
    client: async_nats::Client,
) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let (shared, js, client) = (shared.clone(), js.clone(), client.clone());
            async move {
                let body = render(shared, js, client).await;
                ([(header::CONTENT_TYPE, CONTENT_TYPE)], body)
            }
        }),
    )
}

impl baton_runtime::supervise::TaskCounter for Metrics {
    fn started(&self, task: &'static str) {
        self.task_failures.started(task);
    }

    fn failed(&self, task: &'static str) {
        self.task_failures.failed(task);
    }
}
