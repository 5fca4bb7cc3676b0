//! gRPC plumbing both services share: the bounded accept loop and the
//! HTTP/2 limits ([`GrpcArgs`]), reflection, and decode-error statuses.

use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

use crate::ports::{ConnectionCap, Deadlines, Guarded, PortCounters};

/// Default of `--grpc-max-connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Default of `--grpc-max-streams`.
pub const DEFAULT_MAX_STREAMS: u32 = 128;
/// What a new connection must send within `--grpc-handshake-timeout`: the
/// 24-byte HTTP/2 client preface and the header of the SETTINGS frame that
/// follows it (over TLS, the ClientHello is longer than that).
pub const PREFACE_BYTES: u64 = 24 + 9;

/// Bounds on the gRPC port: how many connections, how many streams each,
/// and how long a connection may stall. The same for ingest and projector.
#[derive(Debug, Clone, clap::Args)]
pub struct GrpcArgs {
    /// Most gRPC connections open at once; more are closed as soon as they
    /// are accepted (counted in baton_connections_refused_total{port="grpc"}).
    /// With --http-max-connections, sizes the open-file limit (LimitNOFILE).
    #[arg(long, env = "BATON_GRPC_MAX_CONNECTIONS", default_value_t = DEFAULT_MAX_CONNECTIONS,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=1_000_000))]
    pub grpc_max_connections: usize,

    /// Most concurrent requests (HTTP/2 streams) on one gRPC connection, as
    /// the server announces it; a client queues beyond it.
    #[arg(long, env = "BATON_GRPC_MAX_STREAMS", default_value_t = DEFAULT_MAX_STREAMS,
          value_parser = clap::value_parser!(u32).range(1..=65_536))]
    pub grpc_max_streams: u32,

    /// A new connection must finish its TLS handshake and send the HTTP/2
    /// preface within this, or it is closed.
    #[arg(long, env = "BATON_GRPC_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = crate::duration_flag)]
    pub grpc_handshake_timeout: Duration,

    /// A connection from which nothing has been read for this long is
    /// closed. A live client always answers the keepalive pings, so only a
    /// stalled or vanished one reaches it. Must exceed --grpc-keepalive plus
    /// --grpc-keepalive-timeout.
    #[arg(long, env = "BATON_GRPC_IDLE_TIMEOUT", default_value = "5m", value_parser = crate::duration_flag)]
    pub grpc_idle_timeout: Duration,

    /// How often the server pings a connection it has heard nothing from
    /// (HTTP/2 PING).
    #[arg(long, env = "BATON_GRPC_KEEPALIVE", default_value = "60s", value_parser = crate::duration_flag)]
    pub grpc_keepalive: Duration,

    /// A ping not answered within this closes the connection.
    #[arg(long, env = "BATON_GRPC_KEEPALIVE_TIMEOUT", default_value = "20s", value_parser = crate::duration_flag)]
    pub grpc_keepalive_timeout: Duration,
}

impl Default for GrpcArgs {
    fn default() -> Self {
        GrpcArgs {
            grpc_max_connections: DEFAULT_MAX_CONNECTIONS,
            grpc_max_streams: DEFAULT_MAX_STREAMS,
            grpc_handshake_timeout: Duration::from_secs(10),
            grpc_idle_timeout: Duration::from_secs(300),
            grpc_keepalive: Duration::from_secs(60),
            grpc_keepalive_timeout: Duration::from_secs(20),
        }
    }
}

impl GrpcArgs {
    /// Refuses settings that would close live connections.
    pub fn check(&self) -> Result<(), String> {
        if self.grpc_idle_timeout <= self.grpc_keepalive + self.grpc_keepalive_timeout {
            return Err(format!(
                "--grpc-idle-timeout ({:?}) must exceed --grpc-keepalive ({:?}) plus --grpc-keepalive-timeout ({:?}), or it closes clients that answer every ping",
                self.grpc_idle_timeout, self.grpc_keepalive, self.grpc_keepalive_timeout
            ));
        }
        Ok(())
    }

    /// A server builder with the HTTP/2 limits: streams per connection and
    /// keepalive pings. (tonic's per-connection concurrency limit is not
    /// used: it queues requests in the server; the stream limit makes the
    /// client queue them.)
    pub fn builder(&self) -> tonic::transport::Server {
        tonic::transport::Server::builder()
            .max_concurrent_streams(Some(self.grpc_max_streams))
            .http2_keepalive_interval(Some(self.grpc_keepalive))
            .http2_keepalive_timeout(Some(self.grpc_keepalive_timeout))
    }

    /// The TLS handshake bound, for [`tonic::transport::ServerTlsConfig::timeout`].
    pub fn tls(&self, tls: tonic::transport::ServerTlsConfig) -> tonic::transport::ServerTlsConfig {
        tls.timeout(self.grpc_handshake_timeout)
    }

    fn deadlines(&self) -> Deadlines {
        Deadlines {
            handshake: Some((PREFACE_BYTES, self.grpc_handshake_timeout)),
            idle: Some(self.grpc_idle_timeout),
            idle_counts_writes: false,
            write: None,
        }
    }
}

/// The accepted connections of the gRPC port, for
/// `serve_with_incoming_shutdown`: under the cap, each [`Guarded`] by the
/// handshake and idle deadlines, with TCP_NODELAY.
pub fn incoming(
    listener: TcpListener,
    args: &GrpcArgs,
    counters: PortCounters,
) -> impl futures::Stream<Item = Result<Guarded<TcpStream>, std::io::Error>> + Send + 'static {
    let cap = ConnectionCap::new(args.grpc_max_connections, counters);
    let deadlines = args.deadlines();
    futures::stream::unfold((listener, cap), move |(listener, cap)| async move {
        let (stream, _, slot) = crate::ports::accept(&listener, &cap).await;
        Some((Ok(Guarded::new(stream, slot, deadlines)), (listener, cap)))
    })
}

/// How long a stopping server waits for open calls (a load balancer's
/// health watch, a watch of breaches) before it drops them.
pub const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(10);

/// Runs `serving` (a server that stops taking calls once `shutdown` fires
/// and then waits for the open ones) and gives up waiting [`SHUTDOWN_GRACE`]
/// after `shutdown`: a stream that never ends cannot hold the process.
pub async fn serve_until<E>(
    serving: impl std::future::Future<Output = Result<(), E>>,
    shutdown: &tokio_util::sync::CancellationToken,
) -> Result<(), E> {
    tokio::pin!(serving);
    tokio::select! {
        served = &mut serving => return served,
        _ = shutdown.cancelled() => {}
    }
    match tokio::time::timeout(SHUTDOWN_GRACE, serving).await {
        Ok(served) => served,
        Err(_) => {
            tracing::warn!(grace = ?SHUTDOWN_GRACE, "calls still open after the grace: dropped");
            Ok(())
        }
    }
}

/// Server reflection for `baton.v1` and the health service, so generic
/// clients (grpcurl, any reflection client) need no .proto files.
pub fn reflection() -> Result<
    tonic_reflection::server::v1::ServerReflectionServer<
        impl tonic_reflection::server::v1::ServerReflection,
    >,
    tonic_reflection::server::Error,
> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(baton_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
}

/// Answers requests tonic could not decode with the codes the gRPC status
/// code guide gives them, instead of tonic's defaults:
///
/// | tonic answers | for | this layer answers |
/// |---|---|---|
/// | INTERNAL `failed to decode Protobuf message: …` | bytes that are not the request message (invalid UTF-8 in a string field, a truncated or garbled message) | INVALID_ARGUMENT |
/// | OUT_OF_RANGE `… message length too large …` | a request over the server's decoding limit | RESOURCE_EXHAUSTED |
///
/// Both are the client's doing, and a client must not retry them as it
/// might an INTERNAL. The message is kept. Decoding fails before a handler
/// runs, so tonic answers with a trailers-only response (the status in the
/// headers): only those are looked at, and only those two statuses are
/// rewritten; an INTERNAL a handler returns is left alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecodeErrorStatusLayer;

impl<S> tower::Layer<S> for DecodeErrorStatusLayer {
    type Service = DecodeErrorStatus<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DecodeErrorStatus { inner }
    }
}

/// The service [`DecodeErrorStatusLayer`] wraps around a gRPC server.
#[derive(Debug, Clone)]
pub struct DecodeErrorStatus<S> {
    inner: S,
}

/// What tonic's prost codec says when a message does not decode.
const UNDECODABLE: &str = "failed to decode Protobuf message";
/// What tonic says when a message is over the decoding limit.
const TOO_LARGE: &str = "decoded message length too large";

impl<S, RequestBody, ResponseBody> tower::Service<http::Request<RequestBody>>
    for DecodeErrorStatus<S>
where
    S: tower::Service<http::Request<RequestBody>, Response = http::Response<ResponseBody>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<Self::Response, Self::Error>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<RequestBody>) -> Self::Future {
        let response = self.inner.call(request);
        Box::pin(async move {
            let mut response = response.await?;
            remap_decode_error(response.headers_mut());
            Ok(response)
        })
    }
}

/// Rewrites a decode failure's status in trailers-only response headers.
fn remap_decode_error(headers: &mut http::HeaderMap) {
    let Some(status) = tonic::Status::from_header_map(headers) else {
        return;
    };
    let code = match status.code() {
        tonic::Code::Internal if status.message().starts_with(UNDECODABLE) => {
            tonic::Code::InvalidArgument
        }
        tonic::Code::OutOfRange if status.message().contains(TOO_LARGE) => {
            tonic::Code::ResourceExhausted
        }
        _ => return,
    };
    if let Err(e) = tonic::Status::new(code, status.message()).add_header(headers) {
        tracing::warn!(error = %e, "could not rewrite a decode error's status");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status: tonic::Status) -> tonic::Status {
        let mut response = status.into_http::<()>();
        remap_decode_error(response.headers_mut());
        tonic::Status::from_header_map(response.headers()).expect("a status")
    }

    #[test]
    fn undecodable_requests_are_the_clients_fault() {
        let status = answered(tonic::Status::internal(
            "failed to decode Protobuf message: HandoffEvent.event_id: invalid string value: data is not UTF-8 encoded",
        ));
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(status.message().contains("HandoffEvent.event_id"));
        let status = answered(tonic::Status::out_of_range(
            "Error, decoded message length too large: found 5000000 bytes, the limit is: 4194304 bytes",
        ));
        assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    }

    #[test]
    fn other_statuses_are_left_alone() {
        for status in [
            tonic::Status::internal("nats error: something broke"),
            tonic::Status::out_of_range("page_token: past the end"),
            tonic::Status::invalid_argument("failed to decode Protobuf message"),
        ] {
            let code = status.code();
            assert_eq!(answered(status).code(), code);
        }
    }
}
