//! Test support: a real `nats-server` with JetStream, started on a free port
//! with a temporary store and killed when dropped.
//!
//! Every test that needs NATS uses this, so no test ever talks to a mock. It
//! must never be a dependency of a shipped binary.
//!
//! The server is started with `-p -1` (the OS picks a free port) and the helper
//! reads the chosen port from the server's own log, so there is no port race
//! and no sleeping until it is up: `start` returns once the server says it is
//! ready.
//!
//! [`NatsCluster`] does the same for a JetStream cluster of three servers,
//! any one of which a test can stop and start again.
//!
//! [`Storage`] puts a server's store where a test says (the power-loss tests
//! put it on a filesystem that forgets what was not fsynced) and chooses
//! between nats-server's default `sync_interval` and the `always` Baton ships.

mod cluster;

pub use cluster::{ClusterStorage, NatsCluster};

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::Duration,
};

/// How long a server may take to say it is ready before the test fails.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `nats-server` with JetStream on loopback.
#[derive(Debug)]
pub struct NatsServer {
    bin: PathBuf,
    child: Option<Child>,
    port: u16,
    store: Store,
    /// The config file holding the JetStream settings, when [`Storage`] asked for one.
    config: Option<(tempfile::TempDir, PathBuf)>,
    extra_args: Vec<String>,
}

/// Where a server keeps its store.
#[derive(Debug)]
enum Store {
    Temporary(tempfile::TempDir),
    Given(PathBuf),
}

impl Store {
    fn path(&self) -> &Path {
        match self {
            Store::Temporary(dir) => dir.path(),
            Store::Given(path) => path,
        }
    }
}

/// Where and how a test's nats-server stores JetStream.
#[derive(Debug, Clone, Default)]
pub struct Storage {
    /// The store directory (a temporary one when `None`). Created if missing.
    pub dir: Option<PathBuf>,
    /// `sync_interval: always` (an fsync before every acknowledgement), as
    /// `deploy/` ships; else nats-server's default (an fsync every 2 minutes).
    pub sync_always: bool,
}

impl Storage {
    /// The `jetstream { ... }` block of a config for this storage.
    fn jetstream_block(&self, store: &Path) -> String {
        let mut text = String::from("jetstream {\n");
        text.push_str(&format!("  store_dir: {:?}\n", store.display().to_string()));
        if self.sync_always {
            text.push_str("  sync_interval: always\n");
        }
        text.push_str("}\n");
        text
    }
}

/// The `nats-server` binary: `$NATS_SERVER_BIN`, else `nats-server` on `PATH`.
pub fn nats_server_bin() -> PathBuf {
    std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("nats-server"))
}

impl NatsServer {
    /// Starts a server on a free port with an empty temporary store.
    pub fn start() -> NatsServer {
        NatsServer::start_with(&[])
    }

    /// Starts a server with extra command-line arguments.
    pub fn start_with(extra_args: &[&str]) -> NatsServer {
        NatsServer::start_binary(nats_server_bin(), extra_args)
    }

    /// Starts the `nats-server` binary at `bin` (another version than the
    /// one on `PATH`, say), with extra command-line arguments. Panics,
    /// naming the path, if it cannot be started.
    pub fn start_binary(bin: impl Into<PathBuf>, extra_args: &[&str]) -> NatsServer {
        let store = tempfile::tempdir().expect("temporary store dir");
        let mut server = NatsServer {
            bin: bin.into(),
            child: None,
            port: 0,
            store: Store::Temporary(store),
            config: None,
            extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        };
        server.spawn("-1".to_owned());
        server
    }

    /// Starts a server on a free port that stores JetStream as `storage` says.
    pub fn start_stored(storage: &Storage) -> NatsServer {
        let store = match &storage.dir {
            Some(dir) => {
                std::fs::create_dir_all(dir).expect("create the store dir");
                Store::Given(dir.clone())
            }
            None => Store::Temporary(tempfile::tempdir().expect("temporary store dir")),
        };
        let config_dir = tempfile::tempdir().expect("temporary config dir");
        let config = config_dir.path().join("nats.conf");
        std::fs::write(&config, storage.jetstream_block(store.path())).expect("write the config");
        let mut server = NatsServer {
            bin: nats_server_bin(),
            child: None,
            port: 0,
            store,
            config: Some((config_dir, config)),
            extra_args: Vec::new(),
        };
        server.spawn("-1".to_owned());
        server
    }

    /// `nats://127.0.0.1:<port>`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn store_dir(&self) -> &Path {
        self.store.path()
    }

    /// Whether the server is running (not killed, or started again).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Kills the server with SIGKILL, as a crash would; the store stays.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port with the same store.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn(self.port.to_string());
    }

    fn spawn(&mut self, port: String) {
        let mut args: Vec<std::ffi::OsString> = ["-a", "127.0.0.1", "-p", &port, "-js"]
            .iter()
            .map(Into::into)
            .collect();
        match &self.config {
            // The store dir is in the config, with the sync setting.
            Some((_, config)) => {
                args.push("-c".into());
                args.push(config.into());
            }
            None => {
                args.push("-sd".into());
                args.push(self.store.path().into());
            }
        }
        args.extend(self.extra_args.iter().map(Into::into));
        let (child, port) = launch(&self.bin, &args, "");
        match port {
            Some(port) => self.port = port,
            None => panic!("nats-server became ready without saying which port it listens on"),
        }
        self.child = Some(child);
    }
}

/// Starts the `nats-server` at `bin` with `args` and waits until it says it
/// is ready; returns it and the client port it reported. `label` prefixes
/// its log lines (shown with `BATON_TEST_NATS_LOG` set).
pub(crate) fn launch(bin: &Path, args: &[std::ffi::OsString], label: &str) -> (Child, Option<u16>) {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {}: {e}; install it (see README) or set NATS_SERVER_BIN",
                bin.display()
            )
        });
    let stderr = child.stderr.take().expect("piped stderr");
    let (tx, rx) = mpsc::channel();
    let label = label.to_owned();
    std::thread::spawn(move || {
        let mut port = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                port = rest
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.trim().parse::<u16>().ok());
            }
            if line.contains("Server is ready") {
                let _ = tx.send(port);
            }
            if std::env::var_os("BATON_TEST_NATS_LOG").is_some() {
                eprintln!("[nats-server{label}] {line}");
            }
        }
    });
    match rx.recv_timeout(READY_TIMEOUT) {
        Ok(port) => (child, port),
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("nats-server did not become ready within {READY_TIMEOUT:?}");
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A free loopback port, for components that must be told their port up front.
/// Prefer binding port 0 and passing the listener in where a component allows.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}
