//! Power cuts: machines whose disk is a lossy filesystem, Baton's services
//! as child processes that die with the power, load that keeps every answer
//! a client heard, and the census of the stream afterwards.
//!
//! A [`Machine`] is a mount of `baton_lossyfs`: what its processes wrote and
//! did not fsync is lost when its power is cut. nats-server runs through
//! `baton_testkit`; ingest and the projector run as [`Service`]s, this test
//! binary started again as `child-ingest` or `child-projector` (see
//! [`child_main`]), so that a power cut can SIGKILL them like any process.

use std::{
    collections::{BTreeMap, HashMap},
    ffi::OsString,
    net::SocketAddr,
    path::{Path, PathBuf},
    process::{Command, ExitCode, Stdio},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use async_nats::jetstream::{consumer::pull::OrderedConfig, ErrorCode};
use baton_log::JetStreamCode;
use baton_lossyfs::{Durability, LossyFs, Options};
use baton_proto::v1::{self, ingest_client::IngestClient, query_client::QueryClient};
use baton_testkit::free_port;
use futures::StreamExt;
use prost::Message as _;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::{transport::Channel, Code};

use crate::load::{script, ANSWER_WITHIN, GIVE_UP_AFTER};

/// How long anything a scenario waits for may take (a restart, a catch-up,
/// an election), before the scenario fails.
pub const WITHIN: Duration = Duration::from_secs(30);

/// A machine: its disk is a lossy filesystem, and its power can be cut.
#[derive(Debug)]
pub struct Machine {
    pub name: String,
    pub fs: LossyFs,
    _dir: tempfile::TempDir,
}

impl Machine {
    /// Mounts a fresh disk for `name`. Tears the last unsynced write at each
    /// power cut, from `seed`. Fails the test, naming what is missing, if
    /// FUSE cannot be mounted. The disk behaves as a journaling filesystem
    /// (ext4, XFS), unless `BATON_POWER_DURABILITY=strict` asks for no more
    /// than POSIX promises (see `baton_lossyfs::Durability`).
    pub fn new(name: &str, seed: u64) -> Machine {
        let dir = tempfile::tempdir().expect("a temporary directory for the machine's disk");
        let durability = match std::env::var("BATON_POWER_DURABILITY").as_deref() {
            Ok("strict") => Durability::Strict,
            _ => Durability::Journaled,
        };
        let options = Options {
            durability,
            tear: true,
            seed,
        };
        let fs = LossyFs::mount(&dir.path().join("disk"), &dir.path().join("mnt"), options)
            .unwrap_or_else(|e| panic!("machine {name}: {e}"));
        Machine {
            name: name.to_owned(),
            fs,
            _dir: dir,
        }
    }

    /// A path on the machine's disk, as its processes see it.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.fs.mountpoint().join(relative)
    }
}

/// Which of Baton's services a child process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Ingest,
    Projector,
}

impl Kind {
    fn arg(self) -> &'static str {
        match self {
            Kind::Ingest => "child-ingest",
            Kind::Projector => "child-projector",
        }
    }

    fn grpc_service(self) -> &'static str {
        match self {
            Kind::Ingest => "baton.v1.Ingest",
            Kind::Projector => "baton.v1.Query",
        }
    }
}

/// Runs ingest or the projector if this process was started as one
/// (`child-ingest ...` or `child-projector ...` and the service's own
/// flags): the test binary's `main` calls this first.
pub fn child_main() -> Option<ExitCode> {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let kind = match args.first().and_then(|a| a.to_str()) {
        Some("child-ingest") => Kind::Ingest,
        Some("child-projector") => Kind::Projector,
        _ => return None,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("{}: no runtime: {e}", kind.arg());
            return Some(ExitCode::FAILURE);
        }
    };
    let result: anyhow::Result<()> = runtime.block_on(async move {
        use clap::Parser as _;
        baton_runtime::init_tracing();
        match kind {
            Kind::Ingest => {
                let config = baton_ingest::Config::try_parse_from(&args)?;
                let grpc = baton_runtime::bind(config.listen).await?;
                let http = baton_runtime::bind(config.http_listen).await?;
                let shutdown = baton_runtime::shutdown_on_signals();
                baton_ingest::run(config, grpc, http, shutdown).await?;
            }
            Kind::Projector => {
                let config = baton_projector::Config::try_parse_from(&args)?;
                let grpc = baton_runtime::bind(config.listen).await?;
                let http = baton_runtime::bind(config.http_listen).await?;
                let shutdown = baton_runtime::shutdown_on_signals();
                baton_projector::run(config, grpc, http, shutdown).await?;
            }
        }
        Ok(())
    });
    Some(match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{}: {e:#}", kind.arg());
            ExitCode::FAILURE
        }
    })
}

/// Ingest or the projector in a child process, on fixed loopback ports so
/// a restart comes back where its clients look. Killed when dropped.
#[derive(Debug)]
pub struct Service {
    kind: Kind,
    pub addr: SocketAddr,
    args: Vec<OsString>,
    child: Option<std::process::Child>,
}

impl Service {
    /// Starts ingest against `nats_url`, creating streams with `replicas`.
    pub async fn ingest(nats_url: &str, catalog: &Path, replicas: usize) -> Service {
        let args: Vec<OsString> = vec![
            "--nats-url".into(),
            nats_url.into(),
            "--catalog".into(),
            catalog.into(),
            "--stream-replicas".into(),
            replicas.to_string().into(),
            "--publish-timeout".into(),
            "2s".into(),
        ];
        Service::start(Kind::Ingest, args).await
    }

    /// Starts the projector against `nats_url`, its views in `data_dir`.
    pub async fn projector(
        nats_url: &str,
        catalog: &Path,
        data_dir: &Path,
        replicas: usize,
    ) -> Service {
        let args: Vec<OsString> = vec![
            "--nats-url".into(),
            nats_url.into(),
            "--catalog".into(),
            catalog.into(),
            "--data-dir".into(),
            data_dir.into(),
            "--stream-replicas".into(),
            replicas.to_string().into(),
        ];
        Service::start(Kind::Projector, args).await
    }

    async fn start(kind: Kind, mut args: Vec<OsString>) -> Service {
        let addr: SocketAddr = ([127, 0, 0, 1], free_port()).into();
        args.extend([
            "--listen".into(),
            addr.to_string().into(),
            "--http-listen".into(),
            "127.0.0.1:0".into(),
        ]);
        let mut service = Service {
            kind,
            addr,
            args,
            child: None,
        };
        service.spawn().await;
        service
    }

    async fn spawn(&mut self) {
        let exe = std::env::current_exe().expect("the test binary's own path");
        let child = Command::new(exe)
            .arg(self.kind.arg())
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("BATON_POWER_CHILD_LOG").unwrap_or_else(|_| "error".into()),
            )
            .stdin(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("starting {}: {e}", self.kind.arg()));
        self.child = Some(child);
        let kind = self.kind;
        tokio::select! {
            () = wait_serving(self.addr, kind.grpc_service()) => {}
            status = exited(self.child.as_mut()) => {
                panic!("{} exited while starting: {status:?}", kind.arg())
            }
        }
    }

    /// The process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(std::process::Child::id)
    }

    /// Starts it again with the same flags (reaping it first if a power cut killed it).
    pub async fn restart(&mut self) {
        self.kill();
        self.spawn().await;
    }

    /// Waits up to `within` for the process to end by itself; its exit
    /// status, or `None` if it still runs.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let child = self.child.as_mut()?;
        let status = tokio::time::timeout(within, exited(Some(child)))
            .await
            .ok()?
            .ok()?;
        self.child = None;
        Some(status)
    }

    /// SIGKILL (if still running) and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM, and waits for a clean exit.
    pub fn terminate(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let status = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status()
            .expect("kill -TERM");
        assert!(status.success(), "kill -TERM failed");
        let exit = child.wait().expect("wait for the service");
        assert!(exit.success(), "{:?} exited with {exit:?}", self.kind);
    }

    pub async fn ingest_client(&self) -> IngestClient<Channel> {
        IngestClient::new(crate::channel(self.addr).await)
    }

    pub async fn query_client(&self) -> QueryClient<Channel> {
        QueryClient::new(crate::channel(self.addr).await)
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Resolves once `child` has exited (polled: std's child has no async wait).
async fn exited(
    child: Option<&mut std::process::Child>,
) -> std::io::Result<std::process::ExitStatus> {
    let Some(child) = child else {
        return std::future::pending().await;
    };
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok(status);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until the gRPC health check at `addr` says SERVING for `service`
/// (a child process is starting, or catching up after a restart).
pub async fn wait_serving(addr: SocketAddr, service: &str) {
    use tonic_health::pb::{
        health_check_response::ServingStatus, health_client::HealthClient, HealthCheckRequest,
    };
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        let channel = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect_timeout(Duration::from_secs(1))
            .connect()
            .await;
        if let Ok(channel) = channel {
            let answer = HealthClient::new(channel)
                .check(HealthCheckRequest {
                    service: service.into(),
                })
                .await;
            if answer.is_ok_and(|r| r.get_ref().status() == ServingStatus::Serving) {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{service} at {addr} not serving after {WITHIN:?}"
        );
        // Polling a process that is starting up.
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Polls `check` every 20 ms until it gives a value; fails after [`WITHIN`].
pub async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "gave up waiting for {what} after {WITHIN:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One event ingest answered OK.
#[derive(Debug, Clone)]
pub struct Ack {
    pub handoff_id: String,
    pub event_id: String,
    pub version: u64,
    pub sequence: u64,
    /// The answer said `duplicate`: an earlier try had been stored.
    pub duplicate: bool,
    /// Transient answers (UNAVAILABLE and the like, or no answer) the
    /// client got for this event before the OK.
    pub retries: u32,
    /// What was sent, to send it again.
    pub request: v1::AppendRequest,
}

/// Everything the clients heard, as they hear it.
#[derive(Debug, Default)]
pub struct Answers {
    acks: Mutex<Vec<Ack>>,
    pub unavailable: AtomicU64,
    pub other_transient: AtomicU64,
    pub hung: AtomicU64,
    refused: Mutex<Vec<String>>,
}

impl Answers {
    pub fn acknowledged(&self) -> usize {
        lock(&self.acks).len()
    }

    pub fn refused(&self) -> Vec<String> {
        lock(&self.refused).clone()
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Concurrent clients appending whole hand-offs ([`script`]) one event at
/// a time, retrying each with the same `event_id` on every transient
/// answer, through power cuts, as a clinical system would.
#[derive(Debug)]
pub struct PowerLoad {
    /// No new event is started.
    stop: CancellationToken,
    answers: Arc<Answers>,
    clients: Vec<JoinHandle<()>>,
}

impl PowerLoad {
    /// `clients` clients against ingest at `addr`, hand-offs `<prefix>-<client>-<n>`.
    pub fn start(addr: SocketAddr, clients: usize, prefix: &str) -> PowerLoad {
        let stop = CancellationToken::new();
        let answers = Arc::new(Answers::default());
        let base = crate::now_millis() - 20 * 60_000;
        let clients = (0..clients)
            .map(|c| {
                tokio::spawn(client(
                    addr,
                    format!("{prefix}-c{c}"),
                    base,
                    stop.clone(),
                    answers.clone(),
                ))
            })
            .collect();
        PowerLoad {
            stop,
            answers,
            clients,
        }
    }

    pub fn answers(&self) -> &Arc<Answers> {
        &self.answers
    }

    pub fn acknowledged(&self) -> usize {
        self.answers.acknowledged()
    }

    /// Waits until `n` events have been acknowledged in all.
    pub async fn wait_acknowledged(&self, n: usize) {
        let answers = self.answers.clone();
        until(&format!("{n} events acknowledged"), || {
            let answers = answers.clone();
            async move { (answers.acknowledged() >= n).then_some(()) }
        })
        .await
    }

    /// Lets every client get its event in hand acknowledged, then stops them.
    pub async fn finish(self) -> Vec<Ack> {
        self.stop.cancel();
        for client in self.clients {
            if let Err(e) = client.await {
                panic!("a load client panicked: {e}");
            }
        }
        std::mem::take(&mut *lock(&self.answers.acks))
    }

    /// Stops every client at once, events in hand left as they are: for a
    /// system that lost what it acknowledged, where a retry may never succeed.
    pub async fn abandon(self) -> Vec<Ack> {
        for client in &self.clients {
            client.abort();
        }
        for client in self.clients {
            let _ = client.await;
        }
        std::mem::take(&mut *lock(&self.answers.acks))
    }
}

async fn client(
    addr: SocketAddr,
    prefix: String,
    base: i64,
    stop: CancellationToken,
    answers: Arc<Answers>,
) {
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect_timeout(Duration::from_secs(1))
        .connect_lazy();
    let mut ingest = IngestClient::new(channel);
    for i in 0.. {
        let handoff_id = format!("{prefix}-h{i}");
        'events: for event in script(&handoff_id, i, base) {
            if stop.is_cancelled() {
                return;
            }
            let request = v1::AppendRequest {
                event: Some(event.clone()),
                expected_version: None,
                backfill: false,
            };
            let started = tokio::time::Instant::now();
            let mut retries = 0;
            let mut backoff = Duration::from_millis(5);
            loop {
                if started.elapsed() > GIVE_UP_AFTER {
                    lock(&answers.refused).push(format!(
                        "{} of {}: no OK within {GIVE_UP_AFTER:?}",
                        event.event_id, handoff_id
                    ));
                    return;
                }
                match tokio::time::timeout(ANSWER_WITHIN, ingest.append(request.clone())).await {
                    Ok(Ok(answer)) => {
                        let answer = answer.into_inner();
                        lock(&answers.acks).push(Ack {
                            handoff_id: handoff_id.clone(),
                            event_id: event.event_id.clone(),
                            version: answer.version,
                            sequence: answer.stream_sequence,
                            duplicate: answer.duplicate,
                            retries,
                            request,
                        });
                        continue 'events;
                    }
                    Ok(Err(status)) => match status.code() {
                        Code::Unavailable => {
                            answers.unavailable.fetch_add(1, Ordering::Relaxed);
                        }
                        Code::Aborted
                        | Code::Unknown
                        | Code::Cancelled
                        | Code::DeadlineExceeded
                        | Code::ResourceExhausted => {
                            answers.other_transient.fetch_add(1, Ordering::Relaxed);
                        }
                        _ => {
                            // Refused for good (the hand-off is not as the
                            // client thinks): record it, go on with the next.
                            lock(&answers.refused).push(format!(
                                "{} of {}: {:?} {}",
                                event.event_id,
                                handoff_id,
                                status.code(),
                                status.message()
                            ));
                            break 'events;
                        }
                    },
                    Err(_) => {
                        answers.hung.fetch_add(1, Ordering::Relaxed);
                    }
                }
                retries += 1;
                // A client's back-off between tries, not a wait for a condition.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_millis(200));
            }
        }
    }
}

/// One message of the events stream.
#[derive(Debug, Clone)]
pub struct Stored {
    pub sequence: u64,
    pub handoff_id: String,
    pub event_id: String,
}

/// The events stream as it is: its first and last sequence and every message.
#[derive(Debug, Clone, Default)]
pub struct StreamContents {
    /// False if the stream itself is gone.
    pub exists: bool,
    pub first_sequence: u64,
    pub last_sequence: u64,
    pub messages: Vec<Stored>,
}

/// Reads every message of `BATON_HANDOFFS`, waiting (within [`WITHIN`])
/// for a cluster to have elected the stream's leader.
pub async fn read_events(nats: &async_nats::Client) -> StreamContents {
    let mut js = async_nats::jetstream::new(nats.clone());
    // Right after a restart a request may reach a node still electing:
    // ask again soon rather than wait out the default 5 s.
    js.set_timeout(Duration::from_secs(1));
    let deadline = tokio::time::Instant::now() + WITHIN;
    let (stream, state) = loop {
        match js.get_stream(baton_log::subject::EVENTS_STREAM).await {
            Ok(mut stream) => match stream.info().await {
                Ok(info) => {
                    let state = info.state.clone();
                    break (stream, state);
                }
                Err(e) => assert!(
                    tokio::time::Instant::now() < deadline,
                    "no info on the events stream: {e}"
                ),
            },
            Err(e) if e.jetstream_code() == Some(ErrorCode::STREAM_NOT_FOUND) => {
                return StreamContents::default();
            }
            Err(e) => assert!(
                tokio::time::Instant::now() < deadline,
                "the events stream did not answer within {WITHIN:?}: {e}"
            ),
        }
        // Waiting for an election after a restart.
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut contents = StreamContents {
        exists: true,
        first_sequence: state.first_sequence,
        last_sequence: state.last_sequence,
        messages: Vec::with_capacity(state.messages as usize),
    };
    if state.messages == 0 {
        return contents;
    }
    let mut messages = until("an ordered consumer on the events stream", || {
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
    while (contents.messages.len() as u64) < state.messages {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("the stream keeps delivering")
            .expect("the stream does not end")
            .expect("a message");
        let sequence = message.info().expect("a jetstream message").stream_sequence;
        let event = v1::HandoffEvent::decode(message.payload.clone())
            .unwrap_or_else(|e| panic!("message {sequence} is not a hand-off event: {e}"));
        contents.messages.push(Stored {
            sequence,
            handoff_id: event.handoff_id,
            event_id: event.event_id,
        });
        if sequence >= state.last_sequence {
            break;
        }
    }
    contents
}

/// The stream held against what the clients were told.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Census {
    pub acknowledged: usize,
    /// Acknowledged and in the stream at the sequence the client was given.
    pub found: usize,
    /// Acknowledged, not in the stream.
    pub lost: usize,
    /// Extra copies of an event in the stream (same hand-off and event id).
    pub duplicated: usize,
    /// Acknowledged at a sequence that holds another event.
    pub misplaced: usize,
    /// In the stream, never acknowledged: an append in flight when the
    /// power went, whose client stopped without an answer.
    pub unacknowledged: usize,
    /// Sequences missing between the stream's first and last.
    pub gaps: u64,
    /// Acknowledged after at least one transient answer (UNAVAILABLE...).
    pub retried: usize,
    /// Of those, in the stream exactly once at the sequence given.
    pub retried_once: usize,
}

impl Census {
    pub fn of(acks: &[Ack], stream: &StreamContents) -> Census {
        let mut copies: HashMap<(&str, &str), Vec<u64>> = HashMap::new();
        for s in &stream.messages {
            copies
                .entry((s.handoff_id.as_str(), s.event_id.as_str()))
                .or_default()
                .push(s.sequence);
        }
        let mut census = Census {
            acknowledged: acks.len(),
            ..Census::default()
        };
        let mut acked = std::collections::HashSet::new();
        for a in acks {
            let key = (a.handoff_id.as_str(), a.event_id.as_str());
            acked.insert(key);
            let at = copies.get(&key);
            match at {
                None => census.lost += 1,
                Some(seqs) if seqs.contains(&a.sequence) => census.found += 1,
                Some(_) => census.misplaced += 1,
            }
            if a.retries > 0 {
                census.retried += 1;
                if at.is_some_and(|s| s.len() == 1 && s[0] == a.sequence) {
                    census.retried_once += 1;
                }
            }
        }
        for (key, seqs) in &copies {
            census.duplicated += seqs.len() - 1;
            if !acked.contains(key) {
                census.unacknowledged += 1;
            }
        }
        // Baton never deletes an event: every sequence up to the last is one.
        let present: std::collections::HashSet<u64> =
            stream.messages.iter().map(|m| m.sequence).collect();
        census.gaps = (1..=stream.last_sequence)
            .filter(|s| !present.contains(s))
            .count() as u64;
        census
    }

    /// Whether the stream holds what the clients were told and nothing twice.
    pub fn is_exact(&self) -> bool {
        self.lost == 0
            && self.duplicated == 0
            && self.misplaced == 0
            && self.unacknowledged == 0
            && self.gaps == 0
            && self.found == self.acknowledged
    }
}

/// Sends every acknowledged event again, with its event id: each must be
/// answered OK, `duplicate`, at the sequence first given. Returns how many
/// were, and the first few that were not.
pub async fn resend_all(addr: SocketAddr, acks: &[Ack]) -> (usize, Vec<String>) {
    let channel = crate::channel(addr).await;
    let mut tasks = Vec::new();
    for share in acks.chunks(acks.len().div_ceil(8).max(1)) {
        let share = share.to_vec();
        let mut ingest = IngestClient::new(channel.clone());
        tasks.push(tokio::spawn(async move {
            let mut ok = 0;
            let mut wrong = Vec::new();
            for a in share {
                match ingest.append(a.request.clone()).await {
                    Ok(answer) => {
                        let answer = answer.into_inner();
                        if answer.duplicate && answer.stream_sequence == a.sequence {
                            ok += 1;
                        } else {
                            wrong.push(format!(
                                "{} of {}: answered {answer:?}, first at {}",
                                a.event_id, a.handoff_id, a.sequence
                            ));
                        }
                    }
                    Err(status) => {
                        wrong.push(format!("{} of {}: {status:?}", a.event_id, a.handoff_id))
                    }
                }
            }
            (ok, wrong)
        }));
    }
    let mut ok = 0;
    let mut wrong = Vec::new();
    for task in tasks {
        let (o, w) = task.await.expect("a resend task");
        ok += o;
        wrong.extend(w);
    }
    wrong.truncate(5);
    (ok, wrong)
}

/// What ingest answered when acknowledged events the stream lost were sent again.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LostResent {
    /// Answered OK as duplicates: ingest said they were on record.
    pub claimed_stored: usize,
    /// Appended again, at a new sequence.
    pub appended_again: usize,
    /// Refused, or not answered.
    pub refused: usize,
}

/// Sends again every acknowledged event missing from `stream`, and tells
/// what ingest made of each.
pub async fn resend_lost(addr: SocketAddr, acks: &[Ack], stream: &StreamContents) -> LostResent {
    let present: std::collections::HashSet<(&str, &str)> = stream
        .messages
        .iter()
        .map(|m| (m.handoff_id.as_str(), m.event_id.as_str()))
        .collect();
    let mut ingest = IngestClient::new(crate::channel(addr).await);
    let mut out = LostResent::default();
    for a in acks {
        if present.contains(&(a.handoff_id.as_str(), a.event_id.as_str())) {
            continue;
        }
        match ingest.append(a.request.clone()).await {
            Ok(answer) if answer.get_ref().duplicate => out.claimed_stored += 1,
            Ok(_) => out.appended_again += 1,
            Err(_) => out.refused += 1,
        }
    }
    out
}

/// Every message on `BATON_SLA` under `filter`, counted by subject.
pub async fn announcements(nats: &async_nats::Client, filter: &str) -> BTreeMap<String, usize> {
    let js = async_nats::jetstream::new(nats.clone());
    let mut stream = until("the SLA stream", || {
        let js = js.clone();
        async move { js.get_stream(baton_log::subject::SLA_STREAM).await.ok() }
    })
    .await;
    let total = stream.info().await.expect("SLA stream info").state.messages;
    let mut counts = BTreeMap::new();
    if total == 0 {
        return counts;
    }
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter.into(),
            ..Default::default()
        })
        .await
        .expect("an ordered consumer on the SLA stream");
    let mut consumer = consumer;
    let pending = consumer.info().await.expect("consumer info").num_pending;
    let mut messages = consumer.messages().await.expect("SLA messages");
    for _ in 0..pending {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .expect("the SLA stream keeps delivering")
            .expect("the SLA stream does not end")
            .expect("an SLA message");
        *counts.entry(message.subject.to_string()).or_insert(0) += 1;
    }
    counts
}

/// A scenario's figures, printed as one line and gathered into the table.
#[derive(Debug, Clone)]
pub struct Figures {
    pub scenario: String,
    pub acknowledged: usize,
    pub found: usize,
    pub lost: usize,
    pub duplicated: usize,
    /// Power cuts.
    pub runs: usize,
    pub seconds: f64,
    /// Whatever else the scenario saw.
    pub note: String,
}

impl Figures {
    pub fn line(&self) -> String {
        format!(
            "{}: acknowledged {}, found {}, lost {}, duplicated {}, runs {}, {:.1}s; {}",
            self.scenario,
            self.acknowledged,
            self.found,
            self.lost,
            self.duplicated,
            self.runs,
            self.seconds,
            self.note
        )
    }
}
