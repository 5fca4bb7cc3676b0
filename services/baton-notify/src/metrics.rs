//! Prometheus metrics of notify, on its side port at `/metrics`:
//!
//! - `baton_notify_deliveries_total{route, channel, result}`: deliveries
//!   that arrived (`delivered`) or were given up and parked (`parked`).
//! - `baton_notify_failed_attempts_total{route, channel}`: attempts that
//!   failed (each retried until the bound).
//! - `baton_notify_unreadable_total`: messages on `BATON_SLA` notify could not read.
//! - `baton_notify_route_reloads_total{result}`: routes files read on SIGHUP,
//!   put in force (`applied`) or refused as invalid (`refused`).
//! - `baton_notify_task_failures_total{task}` and the side port's counters.

use std::sync::Arc;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DeliveryLabels {
    route: String,
    channel: String,
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ChannelLabels {
    route: String,
    channel: String,
}

/// Notify's metrics and the registry that encodes them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    deliveries: Family<DeliveryLabels, Counter>,
    failed: Family<ChannelLabels, Counter>,
    unreadable: Counter,
    reloads: Family<ResultLabel, Counter>,
    held: Family<RouteLabel, Counter>,
    groups: Family<RouteLabel, Counter>,
    renotified: Family<RouteLabel, Counter>,
    /// What the supervisor counts task failures into.
    pub task_failures: baton_runtime::exposition::TaskFailures,
    pub ports: baton_runtime::ports::PortMetrics,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("baton");
        let notify = registry.sub_registry_with_prefix("notify");
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        notify.register(
            "deliveries",
            "Deliveries that arrived or were parked",
            deliveries.clone(),
        );
        let failed = Family::<ChannelLabels, Counter>::default();
        notify.register(
            "failed_attempts",
            "Delivery attempts that failed",
            failed.clone(),
        );
        let unreadable = Counter::default();
        notify.register(
            "unreadable",
            "Messages on BATON_SLA notify could not read",
            unreadable.clone(),
        );
        let reloads = Family::<ResultLabel, Counter>::default();
        notify.register(
            "route_reloads",
            "Routes files read on SIGHUP, applied or refused",
            reloads.clone(),
        );
        for result in ["applied", "refused"] {
            let _zero = reloads.get_or_create(&ResultLabel { result });
        }
        let held = Family::<RouteLabel, Counter>::default();
        notify.register(
            "held",
            "Signals a route held for a grouped message (grouping, quiet hours)",
            held.clone(),
        );
        let groups = Family::<RouteLabel, Counter>::default();
        notify.register(
            "groups",
            "Grouped messages a route sent (each to all its channels)",
            groups.clone(),
        );
        let renotified = Family::<RouteLabel, Counter>::default();
        notify.register(
            "renotified",
            "Escalations nobody acknowledged, told to a route's next level",
            renotified.clone(),
        );
        let task_failures = baton_runtime::exposition::TaskFailures::default();
        task_failures.register(notify, "task_failures");
        let ports = baton_runtime::ports::PortMetrics::default();
        ports.register(&mut registry);
        Metrics {
            registry,
            deliveries,
            failed,
            unreadable,
            reloads,
            held,
            groups,
            renotified,
            task_failures,
            ports,
        }
    }

    /// Every (route, channel)'s series at zero from the start, so an
    /// alert's `increase()` sees the first parked delivery.
    pub fn zero(&self, routes: &crate::routes::Routes) {
        for route in &routes.routes {
            let label = RouteLabel {
                route: route.name.clone(),
            };
            let _zero = self.held.get_or_create(&label);
            let _zero = self.groups.get_or_create(&label);
            let _zero = self.renotified.get_or_create(&label);
            for channel in &route.deliver {
                for result in ["delivered", "parked"] {
                    let _zero = self.deliveries.get_or_create(&DeliveryLabels {
                        route: route.name.clone(),
                        channel: channel.clone(),
                        result,
                    });
                }
                let _zero = self.failed.get_or_create(&ChannelLabels {
                    route: route.name.clone(),
                    channel: channel.clone(),
                });
            }
        }
    }

    fn delivery(&self, route: &str, channel: &str, result: &'static str) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                route: route.to_owned(),
                channel: channel.to_owned(),
                result,
            })
            .inc();
    }

    pub fn delivered(&self, route: &str, channel: &str) {
        self.delivery(route, channel, "delivered");
    }

    pub fn parked(&self, route: &str, channel: &str) {
        self.delivery(route, channel, "parked");
    }

    pub fn attempt_failed(&self, route: &str, channel: &str) {
        self.failed
            .get_or_create(&ChannelLabels {
                route: route.to_owned(),
                channel: channel.to_owned(),
            })
            .inc();
    }

    /// A signal `route` held for its next grouped message.
    pub fn held(&self, route: &str) {
        self.held
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .inc();
    }

    /// A grouped message of `route` sent to its channels.
    pub fn grouped(&self, route: &str) {
        self.groups
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .inc();
    }

    /// An unacknowledged escalation of `route` told to its next level.
    pub fn renotified(&self, route: &str) {
        self.renotified
            .get_or_create(&RouteLabel {
                route: route.to_owned(),
            })
            .inc();
    }

    pub fn unreadable(&self) {
        self.unreadable.inc();
    }

    /// A routes file read on SIGHUP: `applied` or `refused`.
    pub fn reloaded(&self, result: &'static str) {
        self.reloads.get_or_create(&ResultLabel { result }).inc();
    }

    fn render(&self) -> String {
        baton_runtime::exposition::encode(&self.registry)
    }
}

/// `/metrics`.
pub fn router(metrics: Arc<Metrics>) -> axum::Router {
    baton_runtime::exposition::route(move || metrics.render())
}
