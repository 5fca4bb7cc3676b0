//! The routes in force and their channels. Read from the routes file at
//! start, and again on each SIGHUP or when its content changes: a valid
//! file replaces the table whole;
//! an invalid one is refused with its reason (logged, counted) and the
//! routes in force keep working. A signal is routed and delivered with the
//! one table it was picked up under, so a reload never strands a delivery
//! between two tables.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
    time::Duration,
};

use tokio::signal::unix::Signal;
use tokio_util::sync::CancellationToken;

use crate::{
    channel::AnyChannel,
    metrics::Metrics,
    routes::{Routes, RoutesError},
};

/// Why a routes file cannot be put in force.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error(transparent)]
    Routes(#[from] RoutesError),
    #[error("channel {channel}: {reason}")]
    Channel { channel: String, reason: String },
}

/// Routes and the channels they deliver to.
#[derive(Debug)]
pub struct Table {
    pub routes: Routes,
    pub channels: BTreeMap<String, AnyChannel>,
}

impl Table {
    pub fn load(path: &Path) -> Result<Table, TableError> {
        let routes = Routes::load(path)?;
        let mut channels = BTreeMap::new();
        for (name, config) in &routes.channels {
            let channel =
                AnyChannel::new(config.clone()).map_err(|reason| TableError::Channel {
                    channel: name.clone(),
                    reason,
                })?;
            channels.insert(name.clone(), channel);
        }
        Ok(Table { routes, channels })
    }

    /// The longest a channel lets one attempt take.
    pub fn longest_timeout(&self) -> Duration {
        self.channels
            .values()
            .map(AnyChannel::timeout)
            .max()
            .unwrap_or(Duration::from_secs(5))
    }
}

/// The table in force, shared by the delivery loops and the reload.
#[derive(Debug, Clone)]
pub struct InForce(Arc<RwLock<Arc<Table>>>);

impl InForce {
    pub fn new(table: Table) -> InForce {
        InForce(Arc::new(RwLock::new(Arc::new(table))))
    }

    /// The table as it is now.
    pub fn now(&self) -> Arc<Table> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn replace(&self, table: Table) {
        *self.0.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(table);
    }
}

/// What the routes file holds now, as a digest (or why it cannot be read),
/// to tell a change from the same file read again.
fn fingerprint(path: &Path) -> Vec<u8> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(e) => format!("unreadable: {:?}", e.kind()).into_bytes(),
    };
    ring::digest::digest(&ring::digest::SHA256, &bytes)
        .as_ref()
        .to_vec()
}

/// Reads `path` again on each of `hangups`, and whenever its content has
/// changed when it is looked at (every `every`), until `shutdown`. A
/// change is tried once: a refused file is not logged again until it
/// changes again (or a SIGHUP asks).
pub async fn reload_on_change(
    path: PathBuf,
    in_force: InForce,
    metrics: Arc<Metrics>,
    mut hangups: Signal,
    every: Duration,
    shutdown: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    let mut seen = fingerprint(&path);
    let mut look = tokio::time::interval(every.max(Duration::from_millis(100)));
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    look.tick().await;
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = hangups.recv() => {
                seen = fingerprint(&path);
                apply(&path, &in_force, &metrics, "SIGHUP");
            }
            _ = look.tick() => {
                let now = fingerprint(&path);
                if now != seen {
                    seen = now;
                    apply(&path, &in_force, &metrics, "the file changed");
                }
            }
        }
    }
}

fn apply(path: &Path, in_force: &InForce, metrics: &Metrics, why: &'static str) {
    match Table::load(path) {
        Ok(table) => {
            metrics.zero(&table.routes);
            tracing::info!(
                routes = table.routes.routes.len(),
                channels = table.channels.len(),
                why,
                "routes reloaded"
            );
            in_force.replace(table);
            metrics.reloaded("applied");
        }
        Err(e) => {
            tracing::error!(error = %e, why, "routes not reloaded: the file is refused; the routes in force keep working");
            metrics.reloaded("refused");
        }
    }
}
