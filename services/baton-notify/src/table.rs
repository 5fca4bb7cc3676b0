//! The routes in force and their channels. Read from the routes file at
//! start, and again on each SIGHUP: a valid file replaces the table whole;
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

/// Reads `path` again on each of `hangups` until `shutdown`.
pub async fn reload_on_hangup(
    path: PathBuf,
    in_force: InForce,
    metrics: Arc<Metrics>,
    mut hangups: Signal,
    shutdown: CancellationToken,
) -> Result<(), std::convert::Infallible> {
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            _ = hangups.recv() => {}
        }
        match Table::load(&path) {
            Ok(table) => {
                metrics.zero(&table.routes);
                tracing::info!(
                    routes = table.routes.routes.len(),
                    channels = table.channels.len(),
                    "routes reloaded"
                );
                in_force.replace(table);
                metrics.reloaded("applied");
            }
            Err(e) => {
                tracing::error!(error = %e, "routes not reloaded: the file is refused; the routes in force keep working");
                metrics.reloaded("refused");
            }
        }
    }
}
