//! A three-node (or n-node) JetStream cluster on loopback, for tests that
//! stop and start one server while the others carry on.
//!
//! Each node gets a free client port, a free route port, a temporary store
//! and a generated config file in the cluster's temporary directory, in the
//! shape of `deploy/nats-cluster/` (including `sync_interval: always`).
//! Nodes are killed with SIGKILL, as a crash would, and started again on the
//! same ports with the same store. [`ClusterStorage`] puts the stores
//! elsewhere, or uses nats-server's default `sync_interval` instead.

use std::{fmt::Write as _, path::PathBuf, process::Child};

use crate::{free_port, launch, nats_server_bin};

/// One server of a [`NatsCluster`].
#[derive(Debug)]
struct Node {
    name: String,
    port: u16,
    config: PathBuf,
    child: Option<Child>,
}

/// Where the nodes of a [`NatsCluster`] store JetStream, and how.
#[derive(Debug, Clone)]
pub struct ClusterStorage {
    /// One store directory per node, created if missing; empty: each node
    /// gets one in the cluster's temporary directory.
    pub dirs: Vec<PathBuf>,
    /// `sync_interval: always`, as `deploy/nats-cluster/` ships; else
    /// nats-server's default (an fsync every 2 minutes).
    pub sync_always: bool,
}

impl Default for ClusterStorage {
    fn default() -> ClusterStorage {
        ClusterStorage {
            dirs: Vec::new(),
            sync_always: true,
        }
    }
}

/// A JetStream cluster of `nats-server` processes, killed when dropped.
#[derive(Debug)]
pub struct NatsCluster {
    nodes: Vec<Node>,
    dir: tempfile::TempDir,
}

impl NatsCluster {
    /// Starts a cluster of three nodes.
    pub fn start() -> NatsCluster {
        NatsCluster::start_nodes(3)
    }

    /// Starts a cluster of `n` nodes and returns once each says it is ready
    /// (JetStream may still be electing its meta leader: clients retry).
    pub fn start_nodes(n: usize) -> NatsCluster {
        NatsCluster::start_stored(n, &ClusterStorage::default())
    }

    /// Starts a cluster of `n` nodes storing JetStream as `storage` says.
    pub fn start_stored(n: usize, storage: &ClusterStorage) -> NatsCluster {
        assert!(n >= 1, "a cluster has at least one node");
        assert!(
            storage.dirs.is_empty() || storage.dirs.len() == n,
            "one store dir per node"
        );
        let dir = tempfile::tempdir().expect("temporary cluster dir");
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route)| format!("\"nats-route://127.0.0.1:{route}\""))
            .collect();
        let mut nodes = Vec::with_capacity(n);
        for (i, (port, route)) in ports.iter().enumerate() {
            let name = format!("n{}", i + 1);
            let store = match storage.dirs.get(i) {
                Some(store) => store.clone(),
                None => dir.path().join(format!("{name}-store")),
            };
            std::fs::create_dir_all(&store).expect("create a node's store dir");
            let config = dir.path().join(format!("{name}.conf"));
            let mut text = String::new();
            let _ = writeln!(text, "server_name: \"{name}\"");
            let _ = writeln!(text, "listen: \"127.0.0.1:{port}\"");
            let _ = writeln!(text, "jetstream {{");
            let _ = writeln!(text, "  store_dir: {:?}", store.display().to_string());
            if storage.sync_always {
                let _ = writeln!(text, "  sync_interval: always");
            }
            let _ = writeln!(text, "}}");
            let _ = writeln!(text, "cluster {{");
            let _ = writeln!(text, "  name: \"baton-test\"");
            let _ = writeln!(text, "  listen: \"127.0.0.1:{route}\"");
            let _ = writeln!(text, "  routes: [{}]", routes.join(", "));
            let _ = writeln!(text, "}}");
            std::fs::write(&config, text).expect("write a node's config");
            nodes.push(Node {
                name,
                port: *port,
                config,
                child: None,
            });
        }
        let mut cluster = NatsCluster { nodes, dir };
        for i in 0..n {
            cluster.start_node(i);
        }
        cluster
    }

    /// How many nodes the cluster has (running or not).
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Every node's URL, comma-separated, as clients take them.
    pub fn urls(&self) -> String {
        (0..self.nodes.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `nats://127.0.0.1:<port>` of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.nodes[i].port)
    }

    /// The `server_name` of node `i` (`n1`, `n2`, ...), as JetStream names leaders.
    pub fn name(&self, i: usize) -> &str {
        &self.nodes[i].name
    }

    /// The index of the node called `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.nodes.iter().position(|n| n.name == name)
    }

    /// The directory holding the generated configs and the stores.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub fn is_running(&self, i: usize) -> bool {
        self.nodes[i].child.is_some()
    }

    /// Node `i`'s process id, while it runs.
    pub fn pid(&self, i: usize) -> Option<u32> {
        self.nodes[i].child.as_ref().map(Child::id)
    }

    /// Kills node `i` with SIGKILL; its store stays.
    pub fn stop_node(&mut self, i: usize) {
        if let Some(mut child) = self.nodes[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts node `i` (again) on its ports with its store.
    pub fn start_node(&mut self, i: usize) {
        self.stop_node(i);
        let node = &mut self.nodes[i];
        let args = ["-c".into(), node.config.clone().into_os_string()];
        let (child, _) = launch(&nats_server_bin(), &args, &format!(" {}", node.name));
        node.child = Some(child);
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.stop_node(i);
        }
    }
}
