//! Test-only failure injection: a named point of a service can be made to
//! panic, return an error, hang or abort the whole process, so a test can
//! prove that a failure there is loud and loses nothing.
//!
//! A failpoint is written `name=action` or `name=action@n` (fire from the
//! n-th time the point is reached on, counting from 1; without `@n`, every
//! time), where the action is `panic`, `error`, `hang` or `abort` (the
//! process ends at once, as a power cut or `kill -9` would end it). The
//! services take them from a hidden `--failpoint` flag (`BATON_FAILPOINTS`,
//! comma-separated).
//!
//! It must never reach production: in release builds every point compiles
//! to nothing and [`Failpoints::parse`] refuses any failpoint at all.

use std::sync::{
    atomic::{AtomicU64, Ordering},
    Arc,
};

/// What a failpoint does when it fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Panic,
    Error,
    /// Never returns (an async point waits forever; a blocking one sleeps).
    Hang,
    /// Ends the process at once.
    Abort,
}

#[derive(Debug)]
struct Point {
    name: String,
    action: Action,
    /// Fire from this hit on (1-based); 0: on every hit.
    on_hit: u64,
    hits: AtomicU64,
}

/// The failpoints a service was started with.
#[derive(Debug, Clone, Default)]
pub struct Failpoints {
    points: Arc<Vec<Point>>,
}

/// Why a failpoint list is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FailpointError {
    #[error("failpoint {0:?}: expected name=action or name=action@n, action one of panic, error, hang, abort")]
    Malformed(String),
    #[error("failpoints exist only in debug builds; this is a release build")]
    Release,
}

/// The error a failpoint injects.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("failpoint {0} injected an error")]
pub struct Injected(pub String);

impl Failpoints {
    /// Parses `name=action[@n]` entries (empty entries are skipped).
    pub fn parse(specs: &[String]) -> Result<Failpoints, FailpointError> {
        let specs: Vec<&str> = specs
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if specs.is_empty() {
            return Ok(Failpoints::default());
        }
        if cfg!(not(debug_assertions)) {
            return Err(FailpointError::Release);
        }
        let mut points = Vec::with_capacity(specs.len());
        for spec in specs {
            let malformed = || FailpointError::Malformed(spec.to_owned());
            let (name, rest) = spec.split_once('=').ok_or_else(malformed)?;
            let (action, on_hit) = match rest.split_once('@') {
                Some((action, n)) => (action, n.parse::<u64>().map_err(|_| malformed())?),
                None => (rest, 0),
            };
            let action = match action {
                "panic" => Action::Panic,
                "error" => Action::Error,
                "hang" => Action::Hang,
                "abort" => Action::Abort,
                _ => return Err(malformed()),
            };
            if name.is_empty() {
                return Err(malformed());
            }
            points.push(Point {
                name: name.to_owned(),
                action,
                on_hit,
                hits: AtomicU64::new(0),
            });
        }
        Ok(Failpoints {
            points: Arc::new(points),
        })
    }

    /// The action due at `name` now, if any (counting this hit).
    fn due(&self, name: &str) -> Option<Action> {
        let point = self.points.iter().find(|p| p.name == name)?;
        let hit = point.hits.fetch_add(1, Ordering::AcqRel) + 1;
        (hit >= point.on_hit).then_some(point.action)
    }

    /// Reached point `name` in async code.
    pub async fn hit(&self, name: &str) -> Result<(), Injected> {
        if cfg!(not(debug_assertions)) || self.points.is_empty() {
            return Ok(());
        }
        match self.due(name) {
            Some(Action::Hang) => {
                tracing::warn!(failpoint = name, "failpoint: hanging");
                std::future::pending::<()>().await;
                Ok(())
            }
            Some(action) => fire(name, action),
            None => Ok(()),
        }
    }

    /// Reached point `name` in blocking code (a hang sleeps the thread).
    pub fn hit_blocking(&self, name: &str) -> Result<(), Injected> {
        if cfg!(not(debug_assertions)) || self.points.is_empty() {
            return Ok(());
        }
        match self.due(name) {
            Some(Action::Hang) => loop {
                tracing::warn!(failpoint = name, "failpoint: hanging");
                std::thread::sleep(std::time::Duration::from_secs(3600));
            },
            Some(action) => fire(name, action),
            None => Ok(()),
        }
    }
}

fn fire(name: &str, action: Action) -> Result<(), Injected> {
    match action {
        Action::Panic => panic!("failpoint {name} injected a panic"),
        Action::Error => Err(Injected(name.to_owned())),
        Action::Abort => {
            tracing::warn!(failpoint = name, "failpoint: aborting the process");
            std::process::abort()
        }
        Action::Hang => Ok(()),
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    fn points(spec: &str) -> Failpoints {
        Failpoints::parse(&[spec.to_owned()]).expect("valid")
    }

    #[tokio::test]
    async fn a_point_fires_from_its_hit_on_and_only_there() {
        let f = points("timer=error@2, announcer=error");
        assert_eq!(f.hit("timer").await, Ok(()), "not the first hit");
        assert_eq!(f.hit("timer").await, Err(Injected("timer".into())));
        assert_eq!(
            f.hit("timer").await,
            Err(Injected("timer".into())),
            "and every hit after"
        );
        assert_eq!(f.hit("consumer").await, Ok(()), "not a failpoint");
        for _ in 0..3 {
            assert!(f.hit_blocking("announcer").is_err(), "every hit");
        }
    }

    #[test]
    #[should_panic(expected = "failpoint views injected a panic")]
    fn a_panic_point_panics() {
        let _ = points("views=panic").hit_blocking("views");
    }

    #[test]
    fn malformed_points_are_refused_with_their_text() {
        for bad in ["timer", "timer=explode", "=panic", "timer=panic@x"] {
            assert_eq!(
                Failpoints::parse(&[bad.to_owned()]).map(|_| ()),
                Err(FailpointError::Malformed(bad.to_owned())),
                "{bad}"
            );
        }
        assert!(Failpoints::parse(&[String::new()]).is_ok(), "none at all");
    }
}
