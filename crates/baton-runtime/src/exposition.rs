//! What every service's `/metrics` shares: the OpenMetrics content type,
//! encoding a registry (an encoding failure is logged, never hidden), the
//! route, and the task-failure counter the supervisor counts into, whose
//! series exist at zero from each task's start so an alert's `increase()`
//! sees the first failure.

use axum::{http::header, routing::get, Router};
use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family},
    registry::Registry,
};

use crate::supervise::TaskCounter;

/// The content type of the OpenMetrics text exposition.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `registry` as OpenMetrics text.
pub fn encode(registry: &Registry) -> String {
    let mut text = String::new();
    if let Err(e) = prometheus_client::encoding::text::encode(&mut text, registry) {
        tracing::error!(error = %e, "cannot encode the metrics");
    }
    text
}

/// `GET /metrics`, answered with what `render` returns then.
pub fn route(render: impl Fn() -> String + Clone + Send + Sync + 'static) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let body = render();
            async move { ([(header::CONTENT_TYPE, CONTENT_TYPE)], body) }
        }),
    )
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabel {
    task: &'static str,
}

/// `baton_<service>_task_failures_total{task}`.
#[derive(Debug, Clone, Default)]
pub struct TaskFailures(Family<TaskLabel, Counter>);

impl TaskFailures {
    /// Registers the counter as `<name>_total` in `registry` (whose prefix is `baton`).
    pub fn register(&self, registry: &mut Registry, name: &str) {
        registry.register(
            name,
            "Long-running tasks that failed (panicked, returned an error or ended early); each ends the process",
            self.0.clone(),
        );
    }
}

impl TaskCounter for TaskFailures {
    fn started(&self, task: &'static str) {
        let _zero = self.0.get_or_create(&TaskLabel { task });
    }

    fn failed(&self, task: &'static str) {
        self.0.get_or_create(&TaskLabel { task }).inc();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_task_s_failures_exist_at_zero_once_it_started() {
        let failures = TaskFailures::default();
        let mut registry = Registry::with_prefix("baton");
        failures.register(&mut registry, "demo_task_failures");
        failures.started("timer");
        assert!(encode(&registry).contains("baton_demo_task_failures_total{task=\"timer\"} 0"));
        failures.failed("timer");
        assert!(encode(&registry).contains("baton_demo_task_failures_total{task=\"timer\"} 1"));
    }
}
