//! Bounds on what a client of a listening port can hold: a cap on open
//! connections, and deadlines that close a connection which stalls.
//!
//! Both ports (gRPC and the HTTP side port) accept through a
//! [`ConnectionCap`]: past the cap a connection is closed the moment it is
//! accepted, and counted, so a flood of idle sockets cannot take every file
//! descriptor. Each accepted connection is a [`Guarded`] stream that enforces
//! the port's [`Deadlines`] on its own reads and writes:
//!
//! - handshake: the first bytes (the HTTP/2 preface on the gRPC port) must
//!   arrive within a bound of the accept;
//! - idle: nothing read (or, where writes count, nothing moved either way)
//!   for a bound closes the connection;
//! - write: a write the client does not take (it stopped reading and its
//!   socket buffer is full) for a bound closes the connection.
//!
//! A deadline only fires while the server waits on the stream; it never
//! interrupts work in progress. [`PortMetrics`] counts what happened, for
//! `/metrics`.
//!
//! This module must never decide who a caller is or what it may do: it only
//! bounds the resources any client holds.

use std::{
    future::Future,
    io,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpListener, TcpStream},
    sync::{OwnedSemaphorePermit, Semaphore},
    time::{Instant, Sleep},
};

/// Why a connection was closed by a deadline, as `/metrics` labels it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expired {
    /// The TLS handshake or the protocol's first bytes did not arrive in time.
    Handshake,
    /// A request's head did not arrive in time (HTTP/1, timed by hyper).
    Header,
    /// Nothing moved for too long.
    Idle,
    /// The client did not take what was written to it in time.
    Write,
}

impl Expired {
    pub fn label(self) -> &'static str {
        match self {
            Expired::Handshake => "handshake",
            Expired::Header => "header",
            Expired::Idle => "idle",
            Expired::Write => "write",
        }
    }

    const ALL: [Expired; 4] = [
        Expired::Handshake,
        Expired::Header,
        Expired::Idle,
        Expired::Write,
    ];
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PortLabel {
    port: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ExpiredLabels {
    port: &'static str,
    reason: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: &'static str,
}

/// The connection and side-port access counters of one service, registered
/// in its metrics registry:
///
/// - `baton_connections_accepted_total{port}`: connections taken under the cap;
/// - `baton_connections_refused_total{port}`: connections closed at once, the cap being full;
/// - `baton_connections_open{port}`: connections open now;
/// - `baton_connections_expired_total{port, reason}`: connections closed by a
///   deadline (`handshake`, `header`, `idle`, `write`);
/// - `baton_http_logins_total{result}`: logins on the side port (`ok`,
///   `refused`, `limited`);
/// - `baton_http_denied_total{result}`: side-port requests refused
///   (`unauthenticated`, `forbidden`).
///
/// `port` is `grpc` or `http`.
#[derive(Debug, Clone, Default)]
pub struct PortMetrics {
    accepted: Family<PortLabel, Counter>,
    refused: Family<PortLabel, Counter>,
    open: Family<PortLabel, Gauge>,
    expired: Family<ExpiredLabels, Counter>,
    logins: Family<ResultLabel, Counter>,
    denied: Family<ResultLabel, Counter>,
}

impl PortMetrics {
    /// Registers the counters in `registry` (whose prefix is `baton`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "connections_accepted",
            "Connections accepted under the port's connection cap",
            self.accepted.clone(),
        );
        registry.register(
            "connections_refused",
            "Connections closed as soon as accepted, the port's connection cap being full",
            self.refused.clone(),
        );
        registry.register(
            "connections_open",
            "Connections open now",
            self.open.clone(),
        );
        registry.register(
            "connections_expired",
            "Connections closed by a deadline: handshake, header, idle or write",
            self.expired.clone(),
        );
        registry.register(
            "http_logins",
            "Screen logins on the HTTP side port: ok, refused (wrong token), limited (too many failures)",
            self.logins.clone(),
        );
        registry.register(
            "http_denied",
            "HTTP side-port requests refused: unauthenticated (401) or forbidden (403)",
            self.denied.clone(),
        );
        // Every series exists from the start, at 0.
        for port in ["grpc", "http"] {
            let _ = self.port(port);
        }
    }

    /// The counters of one port (`grpc` or `http`).
    pub fn port(&self, port: &'static str) -> PortCounters {
        // One statement per series: a family's read guard lives to the end
        // of its statement, and creating the next series needs its write lock.
        fn get<L, M>(family: &Family<L, M>, label: L) -> M
        where
            L: Clone + std::hash::Hash + Eq,
            M: Clone + prometheus_client::metrics::TypedMetric + Default,
        {
            let metric = family.get_or_create(&label).clone();
            metric
        }
        let label = PortLabel { port };
        let expired = Expired::ALL.map(|reason| {
            get(
                &self.expired,
                ExpiredLabels {
                    port,
                    reason: reason.label(),
                },
            )
        });
        let logins =
            ["ok", "refused", "limited"].map(|result| get(&self.logins, ResultLabel { result }));
        let denied = ["unauthenticated", "forbidden"]
            .map(|result| get(&self.denied, ResultLabel { result }));
        PortCounters(Arc::new(Counters {
            accepted: get(&self.accepted, label.clone()),
            refused: get(&self.refused, label.clone()),
            open: get(&self.open, label),
            expired,
            logins,
            denied,
        }))
    }
}

/// The counters of one port, cheap to clone.
#[derive(Debug, Clone)]
pub struct PortCounters(Arc<Counters>);

#[derive(Debug)]
struct Counters {
    accepted: Counter,
    refused: Counter,
    open: Gauge,
    expired: [Counter; 4],
    logins: [Counter; 3],
    denied: [Counter; 2],
}

/// How a login ended, for [`PortCounters::login`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginResult {
    Ok,
    Refused,
    Limited,
}

impl PortCounters {
    /// Counters registered nowhere (tests, or a service without metrics).
    pub fn detached(port: &'static str) -> PortCounters {
        PortMetrics::default().port(port)
    }

    pub fn expired(&self, reason: Expired) {
        let index = Expired::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or_default();
        self.0.expired[index].inc();
    }

    pub fn login(&self, result: LoginResult) {
        self.0.logins[result as usize].inc();
    }

    /// A side-port request was refused: 401 (`forbidden` false) or 403.
    pub fn denied(&self, forbidden: bool) {
        self.0.denied[usize::from(forbidden)].inc();
    }

    pub fn accepted_total(&self) -> u64 {
        self.0.accepted.get()
    }

    pub fn refused_total(&self) -> u64 {
        self.0.refused.get()
    }

    pub fn open_now(&self) -> i64 {
        self.0.open.get()
    }

    pub fn expired_total(&self, reason: Expired) -> u64 {
        let index = Expired::ALL
            .iter()
            .position(|r| *r == reason)
            .unwrap_or_default();
        self.0.expired[index].get()
    }
}

/// At most a fixed number of connections open on a port.
#[derive(Debug, Clone)]
pub struct ConnectionCap {
    slots: Arc<Semaphore>,
    counters: PortCounters,
}

impl ConnectionCap {
    pub fn new(max: usize, counters: PortCounters) -> ConnectionCap {
        ConnectionCap {
            slots: Arc::new(Semaphore::new(max.max(1))),
            counters,
        }
    }

    /// A slot for a connection just accepted, or `None` (counted) when the
    /// cap is full: the caller drops the connection at once.
    pub fn admit(&self) -> Option<Slot> {
        match self.slots.clone().try_acquire_owned() {
            Ok(permit) => {
                self.counters.0.accepted.inc();
                self.counters.0.open.inc();
                Some(Slot {
                    _permit: permit,
                    counters: self.counters.clone(),
                })
            }
            Err(_) => {
                self.counters.0.refused.inc();
                None
            }
        }
    }

    pub fn counters(&self) -> &PortCounters {
        &self.counters
    }
}

/// A connection's place under the cap, given back when it is dropped.
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    counters: PortCounters,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.counters.0.open.dec();
    }
}

/// The deadlines a [`Guarded`] stream enforces; `None` turns one off.
#[derive(Debug, Clone, Copy, Default)]
pub struct Deadlines {
    /// (bytes, within): the first `bytes` must be read within this of the accept.
    pub handshake: Option<(u64, Duration)>,
    /// Close after this long without a byte read (or moved, see `idle_counts_writes`).
    pub idle: Option<Duration>,
    /// Whether a write counts as activity for `idle`: yes on the HTTP port,
    /// where a server-sent-event stream only writes; no on gRPC, where a
    /// live client always answers the server's keepalive pings.
    pub idle_counts_writes: bool,
    /// Close when a write has waited this long for the client to take it.
    pub write: Option<Duration>,
}

/// What the server was waiting for when it polled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Waiting {
    Read,
    Write,
}

/// An accepted connection that holds a [`Slot`] and enforces [`Deadlines`].
#[derive(Debug)]
pub struct Guarded<IO> {
    io: IO,
    deadlines: Deadlines,
    accepted_at: Instant,
    read_bytes: u64,
    last_read: Instant,
    last_activity: Instant,
    write_waiting_since: Option<Instant>,
    timer: Pin<Box<Sleep>>,
    timer_at: Option<Instant>,
    expired: Option<Expired>,
    _slot: Slot,
}

impl<IO> Guarded<IO> {
    pub fn new(io: IO, slot: Slot, deadlines: Deadlines) -> Guarded<IO> {
        let now = Instant::now();
        Guarded {
            io,
            deadlines,
            accepted_at: now,
            read_bytes: 0,
            last_read: now,
            last_activity: now,
            write_waiting_since: None,
            timer: Box::pin(tokio::time::sleep_until(now)),
            timer_at: None,
            expired: None,
            _slot: slot,
        }
    }

    pub fn get_ref(&self) -> &IO {
        &self.io
    }

    /// The earliest deadline that applies while waiting for `waiting`.
    fn next_deadline(&self, waiting: Waiting) -> Option<(Instant, Expired)> {
        let mut next: Option<(Instant, Expired)> = None;
        let mut consider = |at: Instant, why: Expired| {
            if next.is_none_or(|(earliest, _)| at < earliest) {
                next = Some((at, why));
            }
        };
        if let Some((bytes, within)) = self.deadlines.handshake {
            if self.read_bytes < bytes {
                consider(self.accepted_at + within, Expired::Handshake);
            }
        }
        if let Some(idle) = self.deadlines.idle {
            let since = if self.deadlines.idle_counts_writes {
                self.last_activity
            } else {
                self.last_read
            };
            consider(since + idle, Expired::Idle);
        }
        if let (Waiting::Write, Some(write), Some(since)) =
            (waiting, self.deadlines.write, self.write_waiting_since)
        {
            consider(since + write, Expired::Write);
        }
        next
    }

    /// Called when the stream is not ready: arms the timer for the next
    /// deadline, or fails the stream if one has passed.
    fn poll_deadline(&mut self, cx: &mut Context<'_>, waiting: Waiting) -> Poll<io::Error> {
        if let Some(why) = self.expired {
            return Poll::Ready(expired_error(why));
        }
        let Some((at, why)) = self.next_deadline(waiting) else {
            return Poll::Pending;
        };
        if Instant::now() >= at {
            return Poll::Ready(self.expire(why));
        }
        if self.timer_at != Some(at) {
            self.timer.as_mut().reset(at);
            self.timer_at = Some(at);
        }
        match self.timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(self.expire(why)),
            Poll::Pending => Poll::Pending,
        }
    }

    fn expire(&mut self, why: Expired) -> io::Error {
        if self.expired.is_none() {
            self.expired = Some(why);
            self._slot.counters.expired(why);
            tracing::debug!(reason = why.label(), "connection closed by a deadline");
        }
        expired_error(why)
    }

    fn wrote(&mut self, n: usize) {
        if n > 0 {
            let now = Instant::now();
            self.last_activity = now;
            self.write_waiting_since = None;
        }
    }

    fn write_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Error> {
        if self.write_waiting_since.is_none() {
            self.write_waiting_since = Some(Instant::now());
        }
        self.poll_deadline(cx, Waiting::Write)
    }
}

fn expired_error(why: Expired) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("connection closed: {} deadline passed", why.label()),
    )
}

impl<IO: AsyncRead + Unpin> AsyncRead for Guarded<IO> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        match Pin::new(&mut this.io).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let n = buf.filled().len() - before;
                if n > 0 {
                    let now = Instant::now();
                    this.read_bytes = this.read_bytes.saturating_add(n as u64);
                    this.last_read = now;
                    this.last_activity = now;
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.poll_deadline(cx, Waiting::Read).map(Err),
        }
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Guarded<IO> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => {
                this.wrote(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.write_pending(cx).map(Err),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_write_vectored(cx, bufs) {
            Poll::Ready(Ok(n)) => {
                this.wrote(n);
                Poll::Ready(Ok(n))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => this.write_pending(cx).map(Err),
        }
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_flush(cx) {
            Poll::Pending => this.write_pending(cx).map(Err),
            done => done,
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        match Pin::new(&mut this.io).poll_shutdown(cx) {
            Poll::Pending => this.write_pending(cx).map(Err),
            done => done,
        }
    }
}

impl tonic::transport::server::Connected for Guarded<TcpStream> {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.io.connect_info()
    }
}

/// How long the accept loop pauses after an accept error (out of file
/// descriptors, most likely), instead of spinning on it.
pub const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Accepts the next connection the cap admits: refused ones are closed at
/// once (and counted), accept errors logged and waited out. With TCP_NODELAY:
/// without it, Nagle's algorithm and delayed ACKs add ~40 ms to a small
/// response.
pub async fn accept(
    listener: &TcpListener,
    cap: &ConnectionCap,
) -> (TcpStream, std::net::SocketAddr, Slot) {
    loop {
        match listener.accept().await {
            Ok((stream, remote)) => {
                let Some(slot) = cap.admit() else {
                    drop(stream);
                    continue;
                };
                let _ = stream.set_nodelay(true);
                return (stream, remote, slot);
            }
            Err(e) => {
                tracing::warn!(error = %e, "accepting a connection failed; pausing");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

/// The process's limit on open files (the soft `RLIMIT_NOFILE`), read from
/// `/proc/self/limits`; `None` where that cannot be read.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// File descriptors a service needs besides its two ports' connections:
/// listeners, NATS, sled's files, the runtime's own (epoll, eventfds,
/// timers), logs, and connections to other partitions.
pub const OTHER_FILES: u64 = 256;

/// Warns when the ports' caps and [`OTHER_FILES`] do not fit the process's
/// open-file limit: the caps would then not be what runs out first.
pub fn check_open_files(grpc_cap: usize, http_cap: usize) {
    let needed = grpc_cap as u64 + http_cap as u64 + OTHER_FILES;
    match open_files_limit() {
        Some(limit) if limit < needed => tracing::warn!(
            limit,
            needed,
            grpc_cap,
            http_cap,
            "the open-file limit is below the connection caps plus {OTHER_FILES}: raise LimitNOFILE (see deploy/production/*.service) or lower the caps"
        ),
        Some(limit) => tracing::debug!(limit, needed, "open-file limit covers the connection caps"),
        None => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn pair(deadlines: Deadlines) -> (Guarded<TcpStream>, TcpStream, PortCounters) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = TcpStream::connect(addr).await.expect("connect");
        let counters = PortCounters::detached("test");
        let cap = ConnectionCap::new(1, counters.clone());
        let (server, _, slot) = accept(&listener, &cap).await;
        (Guarded::new(server, slot, deadlines), client, counters)
    }

    #[tokio::test]
    async fn the_cap_refuses_and_counts_connections_past_it_and_frees_slots() {
        let counters = PortCounters::detached("test");
        let cap = ConnectionCap::new(2, counters.clone());
        let a = cap.admit().expect("first");
        let _b = cap.admit().expect("second");
        assert!(cap.admit().is_none());
        assert_eq!(counters.refused_total(), 1);
        assert_eq!(counters.open_now(), 2);
        drop(a);
        assert_eq!(counters.open_now(), 1);
        assert!(cap.admit().is_some());
        assert_eq!(counters.accepted_total(), 3);
    }

    #[tokio::test]
    async fn a_connection_that_sends_too_little_is_closed_at_the_handshake_deadline() {
        let (mut server, mut client, counters) = pair(Deadlines {
            handshake: Some((24, Duration::from_millis(200))),
            ..Deadlines::default()
        })
        .await;
        client.write_all(b"PRI * HTTP/2.0").await.expect("half");
        let started = std::time::Instant::now();
        let mut buf = [0u8; 64];
        let n = server.read(&mut buf).await.expect("the half preface");
        assert_eq!(n, 14);
        let err = server.read(&mut buf).await.expect_err("the deadline");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(150));
        assert_eq!(counters.expired_total(Expired::Handshake), 1);
    }

    #[tokio::test]
    async fn reading_resets_the_idle_deadline_and_silence_trips_it() {
        let (mut server, mut client, counters) = pair(Deadlines {
            idle: Some(Duration::from_millis(300)),
            ..Deadlines::default()
        })
        .await;
        let mut buf = [0u8; 8];
        for _ in 0..3 {
            tokio::time::sleep(Duration::from_millis(150)).await;
            client.write_all(b"x").await.expect("write");
            let n = server.read(&mut buf).await.expect("activity keeps it open");
            assert_eq!(n, 1);
        }
        let err = server.read(&mut buf).await.expect_err("silence");
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(counters.expired_total(Expired::Idle), 1);
    }

    #[tokio::test]
    async fn a_write_the_client_never_takes_is_failed_at_the_write_deadline() {
        let (mut server, _client, counters) = pair(Deadlines {
            write: Some(Duration::from_millis(300)),
            ..Deadlines::default()
        })
        .await;
        let chunk = vec![b'x'; 64 * 1024];
        let started = std::time::Instant::now();
        let err = loop {
            // The client never reads: the socket buffers fill, then the write waits.
            if let Err(e) = server.write_all(&chunk).await {
                break e;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the buffers never filled"
            );
        };
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(counters.expired_total(Expired::Write), 1);
    }
}
