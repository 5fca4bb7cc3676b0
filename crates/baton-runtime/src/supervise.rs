//! The long-running tasks of a service, started by one supervisor with one
//! failure policy: every task runs until shutdown, and a task that ends
//! before then, returns an error or panics has failed.
//!
//! A failure is loud at once: gRPC health and `/readyz` turn NOT_SERVING
//! (a [`Health`] fault naming the task), the cause is logged at error
//! level, the service's [`TaskCounter`] counts it (a metric), and
//! shutdown is requested, so the service flushes and its `run` returns
//! [`TaskFailed`]: the binary exits non-zero and the service manager
//! restarts it. Nothing a task does is retried here; a task retries what
//! it can recover from itself (NATS coming back) and returns an error for
//! what it cannot (storage).
//!
//! It must never swallow a task's end: every task is awaited, and the first
//! failure is what `wait` returns.

use std::{collections::HashMap, future::Future, sync::Arc, time::Duration};

use tokio::task::{Id, JoinSet};
use tokio_util::sync::CancellationToken;

use crate::Health;

/// How long tasks get to finish after shutdown is requested, before the
/// rest are aborted.
pub const DRAIN: Duration = Duration::from_secs(20);

/// A task that failed, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("task {task} failed: {cause}")]
pub struct TaskFailed {
    pub task: &'static str,
    pub cause: String,
}

/// Counts tasks for the service's metrics. `started` is called once per
/// task as it is spawned, so its failure counter exists at zero before any
/// failure (an alert on `increase()` misses a series born at one);
/// `failed` once per failure.
pub trait TaskCounter: Send + Sync {
    /// `task` was spawned.
    fn started(&self, task: &'static str);
    /// `task` failed.
    fn failed(&self, task: &'static str);
}

/// The service's long-running tasks.
pub struct Supervisor {
    tasks: JoinSet<Result<(), String>>,
    names: HashMap<Id, &'static str>,
    shutdown: CancellationToken,
    health: Health,
    counter: Arc<dyn TaskCounter>,
}

impl std::fmt::Debug for Supervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<_> = self.names.values().collect();
        names.sort();
        f.debug_struct("Supervisor").field("tasks", &names).finish()
    }
}

impl Supervisor {
    /// Tasks that stop when `shutdown` fires; a failure turns `health`
    /// NOT_SERVING and is counted by `counter`.
    pub fn new(
        shutdown: CancellationToken,
        health: Health,
        counter: Arc<dyn TaskCounter>,
    ) -> Supervisor {
        Supervisor {
            tasks: JoinSet::new(),
            names: HashMap::new(),
            shutdown,
            health,
            counter,
        }
    }

    /// Starts `task`, named `name` in logs, health and metrics. It must run
    /// until shutdown and then return `Ok`.
    pub fn spawn<E, F>(&mut self, name: &'static str, task: F)
    where
        E: std::fmt::Display,
        F: Future<Output = Result<(), E>> + Send + 'static,
    {
        let handle = self
            .tasks
            .spawn(async move { task.await.map_err(|e| e.to_string()) });
        self.names.insert(handle.id(), name);
        self.counter.started(name);
    }

    /// Waits for every task. Returns the first failure, after asking the
    /// others to stop (and aborting those still running after [`DRAIN`]).
    pub async fn wait(mut self) -> Result<(), TaskFailed> {
        let mut failed: Option<TaskFailed> = None;
        let mut drain_until: Option<tokio::time::Instant> = None;
        loop {
            let next = match drain_until {
                None => self.tasks.join_next_with_id().await,
                Some(until) => {
                    match tokio::time::timeout_at(until, self.tasks.join_next_with_id()).await {
                        Ok(next) => next,
                        Err(_) => {
                            let left: Vec<_> = self.names.values().collect();
                            tracing::error!(tasks = ?left, "tasks still running after the drain: aborted");
                            self.tasks.abort_all();
                            drain_until = Some(tokio::time::Instant::now() + DRAIN);
                            continue;
                        }
                    }
                }
            };
            let Some(next) = next else { break };
            let (id, outcome) = match next {
                Ok((id, result)) => (id, result.map_err(|e| format!("returned an error: {e}"))),
                Err(e) if e.is_panic() => (e.id(), Err(format!("panicked: {}", panic_text(e)))),
                Err(e) => (e.id(), Err("was aborted".to_owned())),
            };
            let name = self.names.remove(&id).unwrap_or("(unnamed)");
            let cause = match outcome {
                Ok(()) if self.shutdown.is_cancelled() => continue,
                Ok(()) => "ended before shutdown".to_owned(),
                Err(cause) if failed.is_some() || self.shutdown.is_cancelled() => {
                    // Stopping already: worth a line, not a second alarm.
                    tracing::warn!(task = name, %cause, "task ended badly while stopping");
                    continue;
                }
                Err(cause) => cause,
            };
            tracing::error!(task = name, %cause, "task failed: stopping the service so it is restarted");
            self.counter.failed(name);
            self.health
                .fault(format!("task:{name}"), format!("task {name} {cause}"))
                .await;
            failed = Some(TaskFailed { task: name, cause });
            self.shutdown.cancel();
            drain_until = Some(tokio::time::Instant::now() + DRAIN);
        }
        match failed {
            Some(failure) => Err(failure),
            None => Ok(()),
        }
    }
}

/// What a panicked task said (its panic message), for logs and errors.
/// Takes the panic of `e`, which must be one (`e.is_panic()`).
pub fn panic_text(e: tokio::task::JoinError) -> String {
    let payload = e.into_panic();
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn supervisor(
        shutdown: &CancellationToken,
    ) -> (Supervisor, Health, Arc<std::sync::Mutex<Vec<&'static str>>>) {
        let (reporter, _service) = tonic_health::server::health_reporter();
        let health = Health::new(reporter, "test.Service");
        let counted = Arc::new(std::sync::Mutex::new(Vec::new()));
        (
            Supervisor::new(
                shutdown.clone(),
                health.clone(),
                Arc::new(Failures(counted.clone())),
            ),
            health,
            counted,
        )
    }

    /// Records the names of failed tasks.
    struct Failures(Arc<std::sync::Mutex<Vec<&'static str>>>);

    impl TaskCounter for Failures {
        fn started(&self, _task: &'static str) {}
        fn failed(&self, task: &'static str) {
            self.0.lock().expect("not poisoned").push(task);
        }
    }

    async fn until_stopped(shutdown: CancellationToken) -> Result<(), String> {
        shutdown.cancelled().await;
        Ok(())
    }

    #[tokio::test]
    async fn tasks_that_stop_at_shutdown_are_not_failures() {
        let shutdown = CancellationToken::new();
        let (mut tasks, health, counted) = supervisor(&shutdown);
        tasks.spawn("a", until_stopped(shutdown.clone()));
        tasks.spawn("b", until_stopped(shutdown.clone()));
        shutdown.cancel();
        assert_eq!(tasks.wait().await, Ok(()));
        assert!(counted.lock().expect("lock").is_empty());
        assert!(health.faults().is_empty());
    }

    #[tokio::test]
    async fn a_panic_an_error_or_an_early_end_fails_the_service_loudly() {
        for (what, expected) in [
            ("panic", "panicked: boom"),
            ("error", "returned an error: disk gone"),
            ("end", "ended before shutdown"),
        ] {
            let shutdown = CancellationToken::new();
            let (mut tasks, health, counted) = supervisor(&shutdown);
            tasks.spawn("steady", until_stopped(shutdown.clone()));
            tasks.spawn("faulty", async move {
                match what {
                    "panic" => panic!("boom"),
                    "error" => Err("disk gone".to_owned()),
                    _ => Ok(()),
                }
            });
            let failure = tasks.wait().await.expect_err(what);
            assert_eq!(failure.task, "faulty");
            assert_eq!(failure.cause, expected);
            assert!(
                shutdown.is_cancelled(),
                "{what}: the others are asked to stop"
            );
            assert_eq!(*counted.lock().expect("lock"), ["faulty"]);
            assert!(!health.ready(), "{what}: not ready");
            assert!(
                health.faults().iter().any(|f| f.contains("task faulty")),
                "{what}: {:?}",
                health.faults()
            );
        }
    }
}
